"""Smoothing a hand's contact decisions over time by accumulating each track's evidence (docs/VIDEO.md). An option
since the contact smoother (``contact.py``) became the default: making the object choice sticky did not transfer
from validation to test videos.

WHY this form: per-frame WISH keeps object ``i* = argmax_i q_i`` when its fused probability clears the calibrated
threshold ``theta``. Its errors are mostly flicker: the segmenter splits, merges or misses the held object in one
frame, and ``q`` of the right object dips for a frame or two. Averaging each linked track's ``q`` over its recent
frames (an exponential moving average, ``m_k <- (1 - alpha) m_k + alpha q_k``) removes that flicker, and the
per-frame rule applied to the averaged evidence keeps what per-frame WISH gets right. A real grasp, release or
handover moves the average across ``theta`` within about ``log(1/2) / log(1 - alpha)`` frames (one frame at
``alpha = 0.5``), so transitions are followed almost as fast as per frame; a filter that charges a fixed price
per switch (``smoothing.HandHMM``) must instead wait until enough log-evidence has piled up, which with weak
evidence takes many frames.

Light hysteresis (``margin``) keeps the decision from chattering when the average hovers at a boundary: a hand
takes an object when its average reaches ``theta (1 + margin)``, lets it go below ``theta (1 - margin)``, and moves
to another track only when that track's average beats the held one's by the factor ``1 + margin``.

A live track without a proposal in this frame (segmenter miss, short occlusion, or a split / merge that broke the
track) adds no support: its average decays by ``1 - alpha``. So a firmly held object is bridged over a frame or two
(its mask is carried, ``predictor.TemporalParams.carry_frames``), while a fresh track that continues the object under
a new identity wins as soon as its evidence beats the decayed one. A new track starts from its first ``q``.

With ``averaged_input`` the caller has already averaged the evidence (``predictor.TemporalDecoder`` with
``propagate="overlap"`` averages per proposal, through overlaps); it then replaces a track's average, and ``alpha``
only decays the live tracks unseen this frame.

``alpha = 1, margin = 0`` is exactly the per-frame rule. Causal and bounded: the state is one number per live
track of the linker, whose window is bounded (``linking.ObjectLinker.max_age``).
"""
from typing import Dict, Iterable, Optional

from .smoothing import NOTHING

__all__ = ["EvidenceFilter", "check_smoothing"]


def check_smoothing(theta: float, alpha: float, margin: float) -> None:
    """The settings shared by the averaging smoothers, with an error that names the bad one."""
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha (the averaging weight of a new frame) must be in (0, 1], got {alpha}")
    if not 0 < theta < 1:
        raise ValueError(f"theta (the contact threshold) must be in (0, 1), got {theta}")
    if not 0 <= margin < 1:
        raise ValueError(f"margin (the hysteresis) must be in [0, 1), got {margin}")


class EvidenceFilter:
    """Online evidence accumulation and hysteresis for one hand. :meth:`step` takes this frame's evidence and
    returns the held track (``NOTHING`` for none)."""

    def __init__(self, theta: float, alpha: float = 0.5, margin: float = 0.0, averaged_input: bool = False):
        check_smoothing(theta, alpha, margin)
        self.theta, self.alpha, self.margin = float(theta), float(alpha), float(margin)
        # averaged_input: the evidence given to step() is already averaged over time (the decoder's overlap
        # propagation); it replaces a track's average, and alpha only decays the tracks unseen this frame
        self.averaged_input = bool(averaged_input)
        self.reset()

    def reset(self) -> None:
        self.avg: Dict[int, float] = {}  # track id -> averaged evidence q
        self.held = NOTHING

    def step(self, evidence: Dict[int, float], live: Optional[Iterable[int]] = None, present: bool = True) -> int:
        """``evidence``: track id -> this frame's ``q`` that the hand holds it; ``live``: the tracks that may be held
        although unseen this frame (default: every track already averaged). An absent hand holds nothing and the
        filter restarts."""
        if not present:
            self.reset()
            return NOTHING
        keep = set(self.avg) if live is None else set(live) & set(self.avg)
        avg = {}
        for k, v in self.avg.items():
            if k in keep or k in evidence:
                if k in evidence and self.averaged_input:
                    avg[k] = float(evidence[k])
                    continue
                q = float(evidence.get(k, 0.0))  # a live track without a proposal adds no support this frame
                avg[k] = (1.0 - self.alpha) * v + self.alpha * q
        for k, q in evidence.items():
            if k not in avg:  # a new track starts from its first evidence, as the per-frame rule sees it
                avg[k] = float(q)
        self.avg = avg
        if not avg:
            self.held = NOTHING
            return NOTHING
        best = max(avg, key=lambda k: (avg[k], -k))  # ties: the older track
        on, off = self.theta * (1.0 + self.margin), self.theta * (1.0 - self.margin)
        held = self.held if self.held in avg else NOTHING
        if held == NOTHING:
            self.held = best if avg[best] >= on else NOTHING
        elif avg[held] < off:
            self.held = best if best != held and avg[best] >= on else NOTHING
        elif best != held and avg[best] >= on and avg[best] > avg[held] * (1.0 + self.margin):
            self.held = best
        return self.held
