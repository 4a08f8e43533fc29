"""Where a synthetic split lives and how its frames are named: the folder of a split, EPIC-style video ids and frame
numbers, and EPIC-100 timestamps, so that the real VISOR and EPIC-100 loaders read the benchmark unchanged."""
import os
from typing import Sequence, Tuple

__all__ = ["GENERATOR_VERSION", "SPLITS", "PARTICIPANTS", "FRAMES_PER_VIDEO", "FRAME_STRIDE", "NARRATION_HALF_WIDTH",
           "FPS", "split_dir", "video_frame", "timestamp"]

GENERATOR_VERSION = 2  # bump when the bytes of a split change; the completion marker then forces regeneration
SPLITS = {"train": 0, "val": 1, "test": 2}  # split -> code in the per-frame random stream
PARTICIPANTS = {"train": "P90", "val": "P91", "test": "P92"}  # EPIC participant id of each split's videos
FRAMES_PER_VIDEO = 50  # frames are grouped into videos of this many
FRAME_STRIDE = 100  # frame number step between consecutive frames of a video
NARRATION_HALF_WIDTH = 20  # a narration row spans [frame - 20, frame + 20]
FPS = 50  # frame rate of the EPIC timestamps


def split_dir(root: str, seed: int, split: str, num: int, image_size: Sequence[int], profile: str = "default") -> str:
    """``<root>/wish_synth[_<profile>]_seed{S}_{H}x{W}/{split}_n{N}`` (no suffix for the default profile)."""
    H, W = int(image_size[0]), int(image_size[1])
    tag = "wish_synth" if profile == "default" else f"wish_synth_{profile}"
    return os.path.join(root, f"{tag}_seed{int(seed)}_{H}x{W}", f"{split}_n{int(num)}")


def video_frame(split: str, index: int) -> Tuple[str, int]:
    """Video id and frame number of the ``index``-th frame of a split."""
    v, j = divmod(index, FRAMES_PER_VIDEO)
    return f"{PARTICIPANTS[split]}_{v + 1:02d}", FRAME_STRIDE * j + FRAME_STRIDE // 2


def timestamp(frame: int) -> str:
    """EPIC-100 ``HH:MM:SS.ss`` of a frame number."""
    t = frame / FPS
    h, rem = divmod(t, 3600)
    m, s = divmod(rem, 60)
    return f"{int(h):02d}:{int(m):02d}:{s:05.2f}"
