"""The signal layer: pure functions and states from samples to windows, shared by training and serving.

:mod:`~harstream.signal.chain` (median, noise low-pass, gravity separation),
:mod:`~harstream.signal.resample` (any rate onto the 50 Hz grid),
:mod:`~harstream.signal.windows` (128-sample windows every 64) and
:mod:`~harstream.signal.smoothing` (the HMM forward filter over labels).
Depends on numpy and scipy only: no sockets, no model.
"""
