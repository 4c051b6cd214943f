"""The cluster: a router in front of several engines (issue 22; docs/scaling.md)."""
