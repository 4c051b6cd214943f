"""Online smoothing of each stream's label sequence: an HMM forward filter.

The hidden state is the activity; it stays the same from one window to the
next with probability ``stay`` and otherwise moves to any other activity
uniformly. The model's softmax output, divided by the training class
priors, is used as the emission likelihood. The filtered belief after each
window is ``normalise(likelihood * (T.T @ belief))``; the smoothed label is
its arg-max. It is causal (no look-ahead), costs one 6x6 matrix product per
window, and is vectorised over streams.

>>> import numpy as np
>>> smoother = ForwardFilter(classes=3, stay=0.9)
>>> belief = smoother.initial(1)
>>> for p in ([0.8, 0.1, 0.1], [0.4, 0.5, 0.1], [0.8, 0.1, 0.1]):
...     belief = smoother.update(belief, np.array([p]))
>>> int(belief.argmax())  # the lone 0.5 for class 1 did not flip the label
0
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

DEFAULT_STAY = 0.9
"""Probability that the activity is unchanged from one window (1.28 s) to the next."""


class ForwardFilter:
    """HMM forward filter over class probabilities; holds configuration only."""

    def __init__(
        self, classes: int = 6, stay: float = DEFAULT_STAY, priors: npt.ArrayLike | None = None
    ) -> None:
        if not 0.0 < stay < 1.0:
            raise ValueError(f"stay: expected a probability in (0, 1), got {stay}")
        self.classes = classes
        self.stay = stay
        self.priors = (
            np.full(classes, 1.0 / classes) if priors is None else np.asarray(priors, float)
        )
        if self.priors.shape != (classes,) or (self.priors <= 0).any():
            raise ValueError(f"priors: expected {classes} positive values, got {priors!r}")
        switch = (1.0 - stay) / (classes - 1)
        self._transition = np.full((classes, classes), switch) + np.eye(classes) * (stay - switch)

    def initial(self, streams: int) -> Array:
        """Beliefs of ``streams`` new streams (the priors), shape (streams, classes)."""
        return np.tile(self.priors, (streams, 1))

    def update(self, belief: Array, probs: npt.ArrayLike) -> Array:
        """New beliefs after one window per stream (``probs``: (streams, classes))."""
        likelihood = np.asarray(probs, dtype=np.float64) / self.priors
        posterior = (belief @ self._transition) * likelihood + 1e-12
        result: Array = posterior / posterior.sum(axis=1, keepdims=True)
        return result

    def run(self, probs: npt.ArrayLike) -> Array:
        """Beliefs after each window of one stream's sequence (n, classes)."""
        seq = np.asarray(probs, dtype=np.float64)
        belief = self.initial(1)
        out = np.empty_like(seq)
        for i, p in enumerate(seq):
            belief = self.update(belief, p[None])
            out[i] = belief[0]
        return out
