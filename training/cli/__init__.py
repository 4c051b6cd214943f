"""The verbs training adds to ``harstream`` (entry points ``harstream.verbs`` in pyproject.toml).

Each module has ``NAME``, ``HELP`` (its line in ``harstream --help``),
``add_arguments(parser)`` and ``run(args) -> int``. Importing one imports
neither NumPy nor TensorFlow (``harstream --help`` reads every verb's
``NAME`` and ``HELP``); ``run`` imports what the verb needs.
"""
