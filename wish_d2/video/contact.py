"""Smoothing a hand's contact state over time, leaving the choice of object to each frame (docs/VIDEO.md).

WHY this form: per-frame WISH makes two decisions per hand. *Whether* the hand holds something: the best fused
probability ``p = max_i q_i`` clears the calibrated threshold ``theta``. *Which* object: ``argmax_i q_i``. The first
flickers: ``p`` dips below ``theta`` for a frame or two while the hand keeps holding, and spikes while a free hand
passes over a counter full of objects. A contact state is a property of the hand, so its evidence can be averaged
over time whatever the segmenter does to object identities between frames: ``m <- (1 - alpha) m + alpha p``, with
hysteresis (the hand takes hold when ``m`` reaches ``theta (1 + margin)`` and lets go below ``theta (1 - margin)``).
A real grasp or release moves ``m`` across ``theta`` within a few frames.

The object stays the per-frame argmax. Making the choice itself sticky (averaging each linked track's evidence,
``evidence.EvidenceFilter``) means that a wrong first pick is kept for as long as it was averaged. On the video
benchmark that won on the validation videos and lost on the test videos (docs/RESULTS.md), while smoothing the
contact state alone gained on both.

``alpha = 1, margin = 0`` is exactly the per-frame rule. Causal, and the state is one number per hand.
"""
from typing import Optional

from .evidence import check_smoothing

__all__ = ["ContactFilter"]


class ContactFilter:
    """Online contact smoothing for one hand. :meth:`step` takes this frame's best evidence and returns whether the
    hand holds an object."""

    def __init__(self, theta: float, alpha: float = 0.5, margin: float = 0.1):
        check_smoothing(theta, alpha, margin)
        self.theta, self.alpha, self.margin = float(theta), float(alpha), float(margin)
        self.reset()

    def reset(self) -> None:
        self.avg: Optional[float] = None  # averaged best evidence; None until the hand is seen
        self.holding = False

    def step(self, best: Optional[float], present: bool = True) -> bool:
        """``best``: this frame's largest ``q`` of the hand over the proposals (``None`` when the frame has no
        proposal: no support, the average decays). An absent hand holds nothing and the filter restarts."""
        if not present:
            self.reset()
            return False
        p = 0.0 if best is None else float(best)
        self.avg = p if self.avg is None else (1.0 - self.alpha) * self.avg + self.alpha * p
        bound = self.theta * ((1.0 - self.margin) if self.holding else (1.0 + self.margin))
        self.holding = self.avg >= bound
        return self.holding
