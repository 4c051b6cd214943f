"""End-to-end load test of ``harstream serve`` (``bench --streams``): N real-time HAPT streams over loopback.

One concept: what a subscriber sees when N devices stream at once. Three
processes besides this one, so that none of them steals time from the
measurement inside another's loop:

* the **engine** (:mod:`.engine_child`): ``python -m harstream serve`` with
  its default options, on free loopback ports;
* a **load generator** (:mod:`.generator`, a ``spawn``-ed process): N
  concurrent streams, each a real HAPT recording of a test subject looped
  with its ``seq`` continuing (so no stream ever restarts and every window
  is expected), at 50 Hz in 25-sample chunks, real time; stream *i* sends at
  ``i / N`` of a chunk period (starts staggered over one period, as real
  devices are not phase-locked) and starts at a random ``seq`` in [0, 64), so
  that the streams' windows complete at spread-out moments as independent
  devices' do (``aligned``: all at 0, windows in bursts). It records the
  send time of every chunk (monotonic clock, the same clock in every process
  on Linux);
* a **subscriber** (:mod:`.subscriber`, also ``spawn``-ed): a SUB socket
  with no receive high-water mark that stamps each prediction's arrival and
  reads only ``seq_end`` out of its JSON (a byte search; a full
  ``json.loads`` on every 64th, for the engine's ``t_emit``), plus every
  ``$stats`` and ``$error``.

Latency of a window = its prediction's arrival at the subscriber minus the
send time of the chunk that completed it (the chunk holding sample
``seq_end``). Windows lost = windows expected from the samples sent minus
distinct windows received (:mod:`.measure`). The engine's CPU and RSS, with
those of its model process, are read over the measurement
(:mod:`harstream.procstat`), and so are the generator's and the
subscriber's CPU, so a saturated client shows in the report. :mod:`.run`
puts it together: one level (:func:`~.run.run_level`), every level against
one engine (:func:`~.run.run_load`).
"""
