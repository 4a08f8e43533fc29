"""Smoothing a hand's contact decisions over time: a small online HMM over "holds track k / holds nothing"
(docs/VIDEO.md).

WHY this form: per-frame WISH keeps object ``i*`` when its fused probability ``q`` clears the calibrated threshold
``theta``. That rule is exactly the argmax of emissions ``e(k) = q_k`` and ``e(nothing) = theta``. The HMM keeps
these emissions and adds one thing, a price ``p_switch`` for changing state between frames, so a one-frame blip of
evidence no longer flips the decision, while sustained evidence does (after about ``log(1/p_switch)`` worth of
log-evidence). With ``p_switch = 0.5`` (staying costs what switching costs) the filter reduces to the per-frame rule.

Decoding is the online max-product (Viterbi) forward pass: causal, one step per frame, and the state set is
bounded by the linker's live tracks. A track that is live but has no proposal in this frame (missed by the
segmenter, briefly occluded) emits ``miss`` instead of vanishing; by default ``miss = theta``, no evidence either
way, so a hand keeps holding through a short gap and the gap alone never decides.
Emissions are floored at ``floor``: a probability near 0 is as likely a failure of the per-frame model as a fact,
and without a floor one frame with a near-zero score could outweigh any switching price.
"""
import math
from typing import Dict, Iterable, List, Optional

__all__ = ["NOTHING", "HandHMM", "smooth_sequence"]

NOTHING = 0  # the "holds nothing" state; track ids are >= 1


class HandHMM:
    """Online max-product filter for one hand. :meth:`step` takes this frame's evidence and returns the state."""

    def __init__(self, theta: float, p_switch: float = 0.05, miss: Optional[float] = None, floor: float = 1e-4):
        if not 0 < p_switch <= 1:
            raise ValueError(f"p_switch must be in (0, 1], got {p_switch}")
        if not 0 < theta < 1:
            raise ValueError(f"theta (the contact threshold) must be in (0, 1), got {theta}")
        self.log_theta = math.log(theta)
        self.log_stay = math.log1p(-p_switch) if p_switch < 1 else math.log(0.5)
        self.log_switch = math.log(p_switch)
        self.log_miss = self.log_theta if miss is None else math.log(max(miss, floor))
        self.floor = floor
        self.delta: Dict[int, float] = {}  # state -> best log-score of a path ending in it (max-normalised)

    def reset(self) -> None:
        self.delta = {}

    def step(self, evidence: Dict[int, float], live: Optional[Iterable[int]] = None, present: bool = True) -> int:
        """``evidence``: track id -> this frame's probability ``q`` that the hand holds it; ``live``: the tracks that
        may be held although unseen this frame (default: those in ``evidence`` and already in the filter). An absent
        hand (``present=False``) holds nothing and the filter restarts."""
        if not present:
            self.delta = {NOTHING: 0.0}
            return NOTHING
        states = {NOTHING}
        states.update(evidence)
        states.update(self.delta if live is None else [k for k in live if k in self.delta])
        prev_best = max(self.delta.values()) if self.delta else 0.0
        new = {}
        for k in states:
            if k == NOTHING:
                e = self.log_theta
            elif k in evidence:
                e = math.log(max(float(evidence[k]), self.floor))
            else:
                e = self.log_miss
            stay = self.delta[k] + self.log_stay if k in self.delta else -math.inf
            move = prev_best + self.log_switch if self.delta else 0.0
            new[k] = e + max(stay, move)
        top = max(new.values())
        self.delta = {k: v - top for k, v in new.items()}
        return max(new, key=lambda k: (new[k], k == NOTHING))


def smooth_sequence(evidences: List[Dict[int, float]], theta: float, p_switch: float = 0.05,
                    miss: Optional[float] = None) -> List[int]:
    """The states :class:`HandHMM` decides for a whole sequence of per-frame evidences (tests, calibration)."""
    hmm = HandHMM(theta, p_switch, miss)
    return [hmm.step(e) for e in evidences]
