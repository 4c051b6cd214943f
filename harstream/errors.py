"""Every exception harstream raises on purpose, in one place."""

from __future__ import annotations


class HarstreamError(Exception):
    """Base class: catch this to handle any harstream failure."""


class DatasetError(HarstreamError):
    """A dataset file is missing or malformed; the message names file and line."""


class ChecksumError(DatasetError):
    """A file's SHA-256 differs from the manifest the package ships."""


class DownloadError(HarstreamError):
    """The public archive could not be fetched or unpacked."""


class ArtifactError(HarstreamError):
    """A model artifact is unreadable, tampered with, or built for another chain."""


class SecurityError(HarstreamError):
    """A CurveZMQ key file is missing or malformed, or key options do not fit together."""


class ExportError(HarstreamError):
    """The classifier cannot be exported: a bad output path, a failed conversion, or disagreement with Keras."""


class ServeError(HarstreamError):
    """The engine cannot start serving (an endpoint cannot bind, a bad setting)."""


class ProtocolError(HarstreamError):
    """A message breaks protocol v1.

    ``code`` is the machine-readable reason published on ``$error``.
    """

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
