"""The serving layer: the engine behind ZeroMQ sockets, its access control, and the subscriber client."""
