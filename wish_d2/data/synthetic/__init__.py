"""The embedded synthetic benchmark: egocentric kitchen-counter frames with hands, held objects and noisy
narrations, written in the real data formats (VISOR sparse JSON, EPIC-100 CSV, JSON-lines RLE proposals) so
that the whole pipeline, loaders included, runs on it without any download. Its rules and statistics are in
docs/SYNTHETIC.md.

    from wish_d2.data.synthetic import ensure_split
    folder = ensure_split("datasets", seed=0, split="train", num=200, profile="realistic")  # 1080p scale test
"""
from .layout import GENERATOR_VERSION, SPLITS, split_dir
from .profiles import (
    DEFAULT_PROFILE,
    PROFILES,
    REALISTIC_PROFILE,
    CHEST_PROFILE,
    SyntheticProfile,
    benchmark_defaults,
    benchmark_defaults_from_cfg,
    get_profile,
    multi_grip_profile,
)
from .realistic import render_realistic_frame
from .render import render_frame
from .split import ensure_split, generate_split, is_complete, split_params
from .stats import compute_stats, format_stats
from .taxonomy import CATEGORIES, NOUNS, SYNONYM_KEYS, synonym_map

__all__ = [
    "CATEGORIES",
    "NOUNS",
    "SYNONYM_KEYS",
    "synonym_map",
    "SPLITS",
    "GENERATOR_VERSION",
    "SyntheticProfile",
    "DEFAULT_PROFILE",
    "REALISTIC_PROFILE",
    "CHEST_PROFILE",
    "PROFILES",
    "get_profile",
    "multi_grip_profile",
    "benchmark_defaults",
    "benchmark_defaults_from_cfg",
    "split_dir",
    "split_params",
    "is_complete",
    "generate_split",
    "ensure_split",
    "compute_stats",
    "format_stats",
    "render_frame",
    "render_realistic_frame",
]
