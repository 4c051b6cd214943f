"""``ModelStage``: the one interface between the serving loop and whatever runs the model.

``serve`` classifies either on an inference thread in its own process, or through model
processes of their own (:class:`~harstream.model.process.ModelProcess`) that the loop drives.
Both implement this protocol, and the loop calls nothing else, so it has one code path
whichever runs the model. ``Item`` is what the loop hands over to be published in order with
the predictions (the serving layer's frames and ``$stats`` requests, which this layer need not
know).

>>> sorted(name for name in ModelStage.__dict__ if not name.startswith("_"))  # doctest: +NORMALIZE_WHITESPACE
['accepts_reports', 'alive', 'filenos', 'finish', 'hand_over_output', 'longest_wait_ms', 'pump',
 'send', 'start', 'wake']
"""

from __future__ import annotations

from typing import Protocol, TypeVar

Item = TypeVar("Item", contravariant=True)


class ModelStage(Protocol[Item]):
    """Classifies the engine's ready windows in batches and publishes the predictions in order."""

    dropped_windows: int
    """Windows cut but not classified by the deadline :meth:`finish` was given."""

    @property
    def alive(self) -> bool:
        """A thread of the stage still runs (:meth:`finish` stops it)."""

    def start(self) -> None:
        """Start classifying (nothing to start when the loop drives the stage)."""

    def send(self, item: Item) -> None:
        """Have ``item`` published, in the order sent, among the predictions."""

    def accepts_reports(self) -> bool:
        """Items sent now, from the calling thread, will be published."""

    def wake(self) -> None:
        """New windows are ready."""

    def pump(self) -> None:
        """Take the answers that have come and submit the next batches (nothing, for a stage that
        does this on a thread of its own)."""

    def filenos(self) -> list[int]:
        """File descriptors the loop waits on beside its socket: each readable when an answer is in."""

    def longest_wait_ms(self) -> float:
        """Longest the loop may wait for input before it must :meth:`pump` again (``math.inf``:
        the descriptors of :meth:`filenos` wake it in time)."""

    def finish(self, deadline: float) -> bool:
        """Classify and publish what is left until ``deadline`` (monotonic), drop and count the
        rest, and stop; False while a thread of the stage is still busy."""

    def hand_over_output(self) -> bool:
        """True when the output (the socket predictions go out on) is the caller's again to close;
        False when a stage thread still uses it, and closes it when it ends."""


__all__ = ["Item", "ModelStage"]
