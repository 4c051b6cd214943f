"""The model layer: the artifact, its custom layers, the classifier and where it runs.

The only room of the package (with the tools and ``training`` that need it) that imports
TensorFlow, Keras or ONNX Runtime. The shipped model lives in :mod:`harstream.model.shipped`.
"""
