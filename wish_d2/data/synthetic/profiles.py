"""Generation profiles. ``default`` is the embedded benchmark (small frames, about eight proposals, the
``make demo`` table); ``realistic`` has the scale of real data (1080p frames, 40-100 SAM-like proposals, every
visible object annotated) for benchmarks and scale tests. The default benchmark's seed, split sizes and frame
size have one source, ``cfg.DATASETS.SYNTHETIC`` of :func:`wish_d2.add_wish_config`."""
from dataclasses import dataclass, replace
from typing import Dict, Tuple, Union

from detectron2.config import get_cfg

from ...config import add_wish_config
from .scene import FREE_COUNTS

__all__ = ["SyntheticProfile", "benchmark_defaults", "benchmark_defaults_from_cfg", "DEFAULT_PROFILE",
           "REALISTIC_PROFILE", "CHEST_PROFILE", "PROFILES", "get_profile", "multi_grip_profile"]


def benchmark_defaults_from_cfg(cfg) -> Dict:
    """``{seed, num_train, num_val, num_test, image_size}`` of ``cfg.DATASETS.SYNTHETIC``."""
    s = cfg.DATASETS.SYNTHETIC
    return dict(seed=int(s.SEED), num_train=int(s.NUM_TRAIN), num_val=int(s.NUM_VAL), num_test=int(s.NUM_TEST),
                image_size=(int(s.IMAGE_SIZE[0]), int(s.IMAGE_SIZE[1])))


def benchmark_defaults() -> Dict:
    """The default benchmark, read from a fresh config (the only place its numbers are written down)."""
    cfg = get_cfg()
    add_wish_config(cfg)
    return benchmark_defaults_from_cfg(cfg)


@dataclass(frozen=True)
class SyntheticProfile:
    """How frames are generated. Only ``default`` reproduces the benchmark's bytes; derive variants with
    ``dataclasses.replace(REALISTIC_PROFILE, image_size=(720, 1280))`` (a new ``name`` gets its own folders)."""

    name: str  # folder tag (``wish_synth_<name>_seed...``; none for ``default``) and marker field
    image_size: Tuple[int, int]  # (H, W) of the written frames when the caller gives none
    realistic: bool = False  # False: the benchmark renderer; True: the scaled renderer with SAM-like proposals
    work_scale: int = 1  # realistic: frames are drawn at 1/work_scale and written at full size
    num_proposals: Tuple[int, int] = (0, 0)  # realistic: proposals per frame, drawn uniformly in [lo, hi]
    free_counts: Tuple[float, ...] = FREE_COUNTS  # probabilities of 0, 1, 2... free-standing objects
    image_format: str = "png"  # png (lossless, the benchmark) or jpg (like EPIC-Kitchens frames)
    jpeg_quality: int = 90  # jpg only
    camera: str = "head"  # benchmark renderer: where arms enter (synthetic.hands.CAMERAS); "chest" crosses the midline
    multi_grip: float = 0.0  # share of one-hand grips that hold a second object (``scene.sample_scene``)

    def marker(self) -> Dict:
        """What a completed split records about its profile (compared before reusing a folder). Options at their
        defaults are left out, so the markers of existing splits stay valid."""
        marker = {"name": self.name, "image_format": self.image_format, "work_scale": self.work_scale,
                  "num_proposals": list(self.num_proposals), "free_counts": list(self.free_counts),
                  "jpeg_quality": self.jpeg_quality}
        if self.camera != "head":
            marker["camera"] = self.camera
        if self.multi_grip:
            marker["multi_grip"] = self.multi_grip
        return marker


DEFAULT_PROFILE = SyntheticProfile(name="default", image_size=benchmark_defaults()["image_size"])
REALISTIC_PROFILE = SyntheticProfile(
    name="realistic",
    image_size=(1080, 1920),  # EPIC-Kitchens VISOR frame size
    realistic=True,
    work_scale=4,  # drawn at 270 x 480: masks, polygons and painting stay cheap, polygons are scaled up
    num_proposals=(40, 100),  # SAM / Grounded-SAM automatic masks per frame
    free_counts=(0.0, 0.0, 0.0, 0.1, 0.2, 0.2, 0.2, 0.15, 0.1, 0.05),  # 3-9 free objects: a busy counter
    image_format="jpg",
)
#: The benchmark's frames seen from a chest-mounted camera (the hand-detector stress test, tools/hand_benchmark.py).
CHEST_PROFILE = SyntheticProfile(name="chest", image_size=DEFAULT_PROFILE.image_size, camera="chest")
PROFILES = {p.name: p for p in (DEFAULT_PROFILE, REALISTIC_PROFILE, CHEST_PROFILE)}


def multi_grip_profile(share: float, base: SyntheticProfile = None) -> SyntheticProfile:
    """``base`` (default: the benchmark's) with ``share`` of the one-hand grips holding a second object; its own
    folders (``multigrip<share>``). A share of 0 returns ``base`` itself, bytes unchanged."""
    base = DEFAULT_PROFILE if base is None else base
    if not share:
        return base
    name = f"multigrip{share:g}" if base.name == "default" else f"{base.name}_multigrip{share:g}"
    return replace(base, name=name, multi_grip=float(share))


def get_profile(profile: Union[str, SyntheticProfile, None]) -> SyntheticProfile:
    """A profile by name (``default`` / ``realistic`` / ``chest``), or the given one."""
    if profile is None:
        return DEFAULT_PROFILE
    if isinstance(profile, SyntheticProfile):
        return profile
    if profile not in PROFILES:
        raise ValueError(f"unknown synthetic profile {profile!r}; choose one of {sorted(PROFILES)} or pass a "
                         "SyntheticProfile")
    return PROFILES[profile]

