"""Per-frame weights for Stage 1 from the frame's position in its narration windows (docs/VIDEO.md).

WHY: EPIC-100 intervals have loose boundaries. If each boundary may be off by up to ``noise_s`` seconds (uniformly),
a frame ``d`` seconds inside a boundary lies truly inside it with probability ``clip((d + noise_s) / (2 noise_s),
0, 1)``: 1/2 exactly on the boundary, 1 from ``noise_s`` inside. A frame's weight is the probability that it lies
inside the narrated action, the product over the window's two boundaries (independent errors), and the best of
its windows when several cover it. ``noise_s = 0`` gives weight 1 to every covered frame (the unweighted loss).
Stage 1's InfoNCE then weights each image's and each narration's term by it (``losses.symmetric_info_nce``), so
frames near the edges, the ones most likely to show the hand before the grasp or after the release, count less.

The weight goes into the dataset dict as ``narration_weight``; dicts without it train exactly as before.
"""
from typing import Dict, Iterable, List, Optional, Tuple

__all__ = ["boundary_probability", "window_weight", "frame_weight", "attach_narration_weights"]


def boundary_probability(inside_s: float, noise_s: float) -> float:
    """Probability that a point ``inside_s`` seconds inside a boundary (negative: outside) is truly inside, when
    the boundary is off by ``U(-noise_s, noise_s)``."""
    if noise_s < 0:
        raise ValueError(f"noise_s must be >= 0, got {noise_s}")
    if noise_s == 0:
        return 1.0 if inside_s >= 0 else 0.0
    return min(1.0, max(0.0, (inside_s + noise_s) / (2.0 * noise_s)))


def window_weight(frame: float, start: float, stop: float, fps: float, noise_s: float) -> float:
    """Weight of ``frame`` within one narration window ``[start, stop]`` (frame numbers at ``fps``)."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return (boundary_probability((frame - start) / fps, noise_s)
            * boundary_probability((stop - frame) / fps, noise_s))


def frame_weight(frame: float, windows: Iterable[Tuple[float, float]], fps: float, noise_s: float) -> float:
    """The best weight of ``frame`` over its windows; 1.0 when no window covers it (such a frame has no phrase,
    and Stage 1 leaves it out anyway)."""
    ws = [window_weight(frame, a, b, fps, noise_s) for a, b in windows if a <= frame <= b]
    return max(ws) if ws else 1.0


def attach_narration_weights(dicts: List[Dict], narrations: Dict, fps: float, noise_s: float,
                             margin: int = 0) -> List[Dict]:
    """Add ``narration_weight`` to VISOR/EPIC dataset dicts (``video_id``, ``frame``) from the EPIC-100 narrations
    they were loaded with (``epic_narrations.load_epic_narrations``); returns the dicts."""
    for d in dicts:
        video: Optional[str] = d.get("video_id")
        rows = narrations[video].at(int(d["frame"]), margin) if video in narrations and "frame" in d else []
        windows = [(r.start_frame - margin, r.stop_frame + margin) for r in rows]
        d["narration_weight"] = float(frame_weight(int(d.get("frame", 0)), windows, fps, noise_s))
    return dicts
