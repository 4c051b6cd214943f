"""The data layer: recorded datasets and what is measured on them.

Readers of every layout (HAPT, MotionSense, recordings folders), the subject splits, the labelled
windows built through the signal chain, the device simulator, scoring, and the dataset downloads.
Depends on :mod:`harstream.signal` and :mod:`harstream.protocol`; never on a model or a socket.
"""
