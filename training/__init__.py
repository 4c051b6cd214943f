"""Training side of harstream: dataset building, architectures, training, evaluation."""
