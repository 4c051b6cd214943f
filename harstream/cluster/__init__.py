"""The cluster: one router in front of several engines (issue 22; docs/scaling.md).

- :mod:`~harstream.cluster.router`: ``harstream router``, its sockets and its loop;
- :mod:`~harstream.cluster.routes`: which live engine each known stream goes to;
- :mod:`~harstream.cluster.rendezvous`: the hash that decides it, keyed by engine slot;
- :mod:`~harstream.cluster.membership`: the live engines (HELLO, PONG, timeout, BYE);
- :mod:`~harstream.cluster.report`: the cluster's ``$stats``;
- :mod:`~harstream.cluster.security`: keys on the router, and stream ownership;
- :mod:`~harstream.cluster.config`: ``RouterConfig``, every router option's default;
- ``ray_*``: the engines and the router as Ray actors (``harstream cluster``, the ``cluster`` extra).

The router is pure ZeroMQ: only the ``ray_*`` modules import Ray (pyproject's contracts).
"""
