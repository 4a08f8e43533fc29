"""A timeline plot of each hand's held object over a video (matplotlib, headless): one row per hand, the held
object's identity against time, predicted (temporal and, if given, per-frame) against ground truth where it exists.
Identities are drawn as categories: "nothing" at the bottom, then "object 1, 2..." in order of first appearance
within each series (a prediction's track ids and the ground truth's entity ids are different numberings)."""
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..classes import SIDES
from ..utils.atomic import atomic_path

__all__ = ["plot_hand_timeline"]


def _levels(series: Sequence[Sequence[Optional[object]]]) -> Dict[object, int]:
    levels: Dict[object, int] = {}
    for s in series:
        for v in s:
            if v is not None and v not in levels:
                levels[v] = len(levels) + 1
    return levels


def plot_hand_timeline(path: str, times: Sequence[float], predicted: Dict[str, List[Optional[object]]],
                       ground_truth: Optional[Dict[str, List[Optional[object]]]] = None,
                       per_frame: Optional[Dict[str, List[Optional[object]]]] = None, title: str = "") -> str:
    """Write the plot to ``path`` (PNG) and return it. Each dict maps ``"left"``/``"right"`` to one identity per
    frame (``None`` = holds nothing); identities are compared within one series only, so a prediction's track ids
    need not equal the ground truth's entity ids."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.asarray(times, float)
    fig, axes = plt.subplots(2, 1, figsize=(8, 3.6), sharex=True)
    for ax, side in zip(axes, SIDES):
        rows = [("ground truth", ground_truth, "black", 2.5, "-"), ("temporal", predicted, "tab:blue", 1.6, "-"),
                ("per frame", per_frame, "tab:orange", 1.0, ":")]
        top = 1
        for k, (label, data, colour, width, style) in enumerate(rows):
            if not data or side not in data:
                continue
            seq = list(data[side])
            levels = _levels([seq])
            top = max(top, len(levels))
            y = np.array([0 if v is None else levels[v] for v in seq], float) + 0.06 * (k - 1)
            ax.step(t[:len(y)], y, where="post", color=colour, lw=width, ls=style, label=label)
        ax.set_ylabel(f"{side} hand")
        ax.set_ylim(-0.4, top + 0.4)
        ax.set_yticks(range(top + 1))
        ax.set_yticklabels(["nothing"] + [f"object {i}" for i in range(1, top + 1)], fontsize=7)
        ax.grid(axis="x", alpha=0.3)
    axes[0].legend(loc="upper right", fontsize=7, ncol=3)
    axes[-1].set_xlabel("time (s)")
    if title:
        axes[0].set_title(title, fontsize=9)
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:  # a full disk leaves no truncated PNG behind
            fig.savefig(tmp, dpi=90, format="png")
    finally:
        plt.close(fig)
    return path
