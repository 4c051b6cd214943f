"""The engine layer: every stream's state, from protocol chunks to windows ready for the model, without sockets.

- :mod:`~harstream.engine.core`: :class:`~harstream.engine.core.Engine`, chunks in, windows
  queued, predictions out;
- :mod:`~harstream.engine.admission`: which chunk opens, continues, restarts or is refused by
  which stream (sequence, ownership, the stream limit), and what a chunk costs;
- :mod:`~harstream.engine.grid`: streams at other rates or with timestamps onto the 50 Hz grid;
- :mod:`~harstream.engine.predictions`: the model's output checked, smoothed and timed;
- :mod:`~harstream.engine.state`: what is held per stream and what flows between the steps;
- :mod:`~harstream.engine.ordering`: a stream's items in order, different streams together.

Depends on :mod:`harstream.signal` and :mod:`harstream.protocol`; knows nothing of ZeroMQ or Keras.
"""
