"""The ``harstream`` command line: argument parsing and one module per verb."""
