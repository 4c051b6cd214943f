"""The gateway's one error type: bad input from a phone or a web client.

>>> str(WebInputError("batch", "expected a list of samples, got 3"))
'batch: expected a list of samples, got 3'
"""

from __future__ import annotations

from harstream.errors import HarstreamError


class WebInputError(HarstreamError):
    """Input the gateway refuses; ``code`` is stable, ``detail`` names the bad value and what was expected."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
