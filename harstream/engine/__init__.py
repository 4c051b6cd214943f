"""The engine layer: every stream's state, from protocol chunks to windows ready for the model, without sockets.

Depends on :mod:`harstream.signal` and :mod:`harstream.protocol`; knows nothing of ZeroMQ or Keras.
"""
