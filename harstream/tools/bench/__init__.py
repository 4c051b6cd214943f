"""``harstream bench``: what the model, the engine's state and the live path cost on this machine.

Everything is measured in one run (:func:`.run.run_full`), so the ratios are
comparable on a shared, noisy machine (medians over repeats, the runtimes
interleaved repeat by repeat):

* the **naive baseline**: Keras ``model.predict`` on one window at a time;
* the **serving path** (:meth:`Classifier.predict_proba` with ``runtime="auto"``,
  routed as ``harstream serve`` routes) and each backend alone — ``keras``
  (``predict_on_batch``), ``onnx`` (ONNX Runtime, one thread) and ``xla``
  (the Keras model under ``tf.function(jit_compile=True)``, bench only) — at
  each batch size, with their agreement with Keras on real windows of the
  test subjects (:mod:`.runtimes`, the windows from :mod:`.data`);
* the model's **FLOPs** per window, counted from its layers, this machine's
  float32 **matmul peak** (numpy), and the fraction of it each runtime
  reaches (:mod:`.flops`);
* the engine's **state per stream** (tracemalloc) and its Python time per
  chunk and per window (:mod:`.engine_cost`);
* the signal chain's samples/s; other models' windows/s (``--compare``);
* with ``--streams``, the live path end to end (:mod:`harstream.tools.loadtest`);
* the project's performance targets, met or not (:mod:`.targets`).

:mod:`.report` renders the JSON report as tables and the load test as a plot.
"""
