"""The tools: programs built on the lower layers (bench, load test, demo, record, export, keys, dashboard)."""
