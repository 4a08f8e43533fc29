"""Built-in dataset registrations: the embedded synthetic benchmark, and EPIC-Kitchens VISOR and Ego4D/EgoHOS
splits at their documented places under ``$DETECTRON2_DATASETS`` (see :func:`register_all_real`).

``import wish_d2`` registers ``wish_synth_train``, ``wish_synth_val`` and ``wish_synth_test`` with the defaults of
``cfg.DATASETS.SYNTHETIC`` (the one place they are set) under ``$DETECTRON2_DATASETS`` (default ``datasets``;
read at import, call ``register_synthetic`` again after changing it). Nothing is generated at import: a split is
generated the first time its ``DatasetCatalog`` loader runs (see ``synthetic.ensure_split``), or ahead of time
with ``tools/make_synthetic.py``. The splits are registered THROUGH :func:`register_epic_visor`, so they exercise
the real VISOR + EPIC-100 loader.

Other seeds or sizes: ``register_synthetic(seed, num_train, num_val, num_test, image_size)`` (or
``register_synthetic_from_cfg(cfg)``) re-registers the same names with the new parameters; pass ``prefix`` to
register them under other names instead, and ``profile="realistic"`` for 1080p frames with SAM-scale proposals
(docs/SYNTHETIC.md).

Metadata of each split: the WISH fields (``thing_classes``, ``evaluator_type="wish_inhand"``, ``image_root``),
``nouns`` (the 13-noun taxonomy, GSAM prompts), ``proposals_file`` (the segmenter imitation, generated with the
split), ``synonyms`` (synonym phrase -> taxonomy phrase), ``synthetic`` (the generation parameters) and
``split_dir``.
"""
import functools
import logging
import os
from typing import Dict, Optional, Sequence, Union

from detectron2.data import DatasetCatalog, MetadataCatalog

from .synthetic import NOUNS, SyntheticProfile, benchmark_defaults, benchmark_defaults_from_cfg, ensure_split, \
    get_profile, multi_grip_profile, split_dir, synonym_map
from .visor import register_epic_visor

logger = logging.getLogger(__name__)

__all__ = ["register_synthetic", "register_synthetic_from_cfg", "SYNTHETIC_DEFAULTS", "synthetic_names",
           "register_all_real", "EPIC_HELDOUT_PARTICIPANTS"]

# Read from cfg.DATASETS.SYNTHETIC (wish_d2/config.py), never written down here.
SYNTHETIC_DEFAULTS = benchmark_defaults()

#: Folder under the synthetic ``root`` that holds the splits' parsed dataset dicts (``cache_dicts``).
DICTS_CACHE = "wish_synth_dicts_cache"


def synthetic_names(prefix: str = "wish_synth") -> Dict[str, str]:
    return {split: f"{prefix}_{split}" for split in ("train", "val", "test")}


def register_synthetic(
    seed: Optional[int] = None,
    num_train: Optional[int] = None,
    num_val: Optional[int] = None,
    num_test: Optional[int] = None,
    image_size: Optional[Sequence[int]] = None,
    root: Optional[str] = None,
    prefix: str = "wish_synth",
    profile: Union[str, SyntheticProfile] = "default",
    cache_dicts: bool = True,
) -> Dict[str, str]:
    """(Re-)register the synthetic splits ``{prefix}_{train,val,test}``; returns ``{split: dataset name}``.

    Arguments left ``None`` take ``cfg.DATASETS.SYNTHETIC``'s defaults (``image_size``: the profile's own for a
    non-default profile). ``root`` defaults to ``$DETECTRON2_DATASETS`` (or ``datasets``), read now. Existing
    registrations of these names are replaced. Files are generated lazily, on the first ``DatasetCatalog.get``.

    With ``cache_dicts`` (default) the VISOR loader keeps the parsed dicts in a keyed file in ``root``'s
    ``wish_synth_dicts_cache/`` folder (:mod:`wish_d2.data.dict_cache`): a realistic-profile split is parsed once,
    not in every process, and the dicts read back are identical to a fresh parse. The key covers every annotation
    file's path, size and modification time, so a regenerated split gets a new entry. The cache lives beside the
    splits, not in them: a split's folder holds exactly the generated files."""
    d = SYNTHETIC_DEFAULTS
    profile = get_profile(profile)
    seed = d["seed"] if seed is None else int(seed)
    nums = {"train": num_train, "val": num_val, "test": num_test}
    nums = {k: d[f"num_{k}"] if v is None else int(v) for k, v in nums.items()}
    if image_size is None:
        image_size = d["image_size"] if profile.name == "default" else profile.image_size
    root = os.path.abspath(root or os.getenv("DETECTRON2_DATASETS", "datasets"))
    image_size = (int(image_size[0]), int(image_size[1]))
    names = synthetic_names(prefix)
    for split, num in nums.items():
        name = names[split]
        folder = split_dir(root, seed, split, num, image_size, profile.name)
        if name in DatasetCatalog.list():
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        register_epic_visor(
            name,
            os.path.join(folder, "annotations"),
            os.path.join(folder, "images"),
            os.path.join(folder, "narrations.csv"),
            frame_margin=0,
            nouns=list(NOUNS),
            metadata=dict(
                proposals_file=os.path.join(folder, "proposals.jsonl"),
                synonyms=synonym_map(),
                split_dir=folder,
                synthetic=dict(seed=int(seed), split=split, num=int(num), image_size=list(image_size),
                               profile=profile.name),
            ),
            prepare=functools.partial(ensure_split, root, int(seed), split, int(num), image_size, profile=profile),
            cache_dir=os.path.join(root, DICTS_CACHE) if cache_dicts else None,
        )
    return names


def register_synthetic_from_cfg(cfg, root: Optional[str] = None, prefix: str = "wish_synth") -> Dict[str, str]:
    """``register_synthetic`` with ``cfg.DATASETS.SYNTHETIC.{SEED, NUM_TRAIN, NUM_VAL, NUM_TEST, IMAGE_SIZE}``;
    ``MULTI_GRIP > 0`` selects the multi-grip variant of the benchmark (its own folders)."""
    d = benchmark_defaults_from_cfg(cfg)
    profile = multi_grip_profile(float(cfg.DATASETS.SYNTHETIC.get("MULTI_GRIP", 0.0)))
    return register_synthetic(d["seed"], d["num_train"], d["num_val"], d["num_test"], d["image_size"], root=root,
                              prefix=prefix, profile=profile)


# Real datasets, relative to $DETECTRON2_DATASETS. Registration is lazy: nothing is read until a split is used,
# and a missing file then raises an error naming it. Proposals come from tools/extract_proposals.py (GSAM).
#: Participants of the public VISOR train split held out for calibration: ``epic_visor_train_heldout`` holds their
#: frames, ``epic_visor_train_core`` the rest. ``configs/wish_epic.yaml`` trains on the core and calibrates
#: (DATASETS.VAL) on the held-out slice, so the thresholds are fitted on frames, kitchens and people that Stage 2
#: never saw. A fixed, untuned choice of four participants (about a tenth of the frames); changing it changes the
#: split, so it is a constant, not a config key.
EPIC_HELDOUT_PARTICIPANTS = ("P03", "P12", "P24", "P30")
# name -> (VISOR split folder, EPIC-100 CSV, participant filter of load_epic_visor)
_EPIC_VISOR = {
    "epic_visor_train": ("train", "EPIC_100_train.csv", {}),
    "epic_visor_train_core": ("train", "EPIC_100_train.csv", {"exclude_participants": EPIC_HELDOUT_PARTICIPANTS}),
    "epic_visor_train_heldout": ("train", "EPIC_100_train.csv", {"participants": EPIC_HELDOUT_PARTICIPANTS}),
    "epic_visor_val": ("val", "EPIC_100_validation.csv", {}),
}
_EGO4D_EGOHOS = {
    "ego4d_egohos_train": "train",
    "ego4d_egohos_val": "val",
    "ego4d_egohos_test": "test_indomain",
}


def register_all_real(root: Optional[str] = None) -> None:
    """Register the EPIC-Kitchens VISOR and Ego4D/EgoHOS splits with this layout under ``root``::

        epic_visor/annotations/{train,val}/P01_01.json   VISOR GroundTruth-SparseAnnotations/annotations
        epic_visor/rgb_frames/{train,val}/P01/...        VISOR sparse rgb_frames (extracted)
        epic_visor/proposals/{train,val}.jsonl           tools/extract_proposals.py output
        epic-kitchens-100-annotations/EPIC_100_{train,validation}.csv
        epic-kitchens-100-annotations/EPIC_100_noun_classes.csv   optional: the EPIC taxonomy (taxonomy.py)
        egohos/{train,val,test_indomain}/{image,label}/  EgoHOS release (label maps 0-8)
        egohos/proposals/{train,val,test_indomain}.jsonl
        ego4d/v1/annotations/narration.json

    EPIC VISOR: ``epic_visor_train``, ``epic_visor_val`` and the participant-disjoint slices of the train split,
    ``epic_visor_train_core`` / ``epic_visor_train_heldout`` (:data:`EPIC_HELDOUT_PARTICIPANTS`). The taxonomy of
    an EPIC training split is ``EPIC_100_noun_classes.csv`` when it is there, else its narrations' nouns.

    Every split also has ``<name>_hands`` of each (:mod:`.hand_datasets`): its frames with the hand masks only.
    """
    root = root or os.getenv("DETECTRON2_DATASETS", "datasets")
    for name, (split, csv, participant_filter) in _EPIC_VISOR.items():
        base = os.path.join(root, "epic_visor")
        register_epic_visor(
            name, os.path.join(base, "annotations", split), os.path.join(base, "rgb_frames", split),
            os.path.join(root, "epic-kitchens-100-annotations", csv), frame_margin=0,
            metadata={"proposals_file": os.path.join(base, "proposals", f"{split}.jsonl")}, **participant_filter)
    from .ego4d import register_ego4d

    for name, split in _EGO4D_EGOHOS.items():
        base = os.path.join(root, "egohos")
        register_ego4d(
            name, os.path.join(base, split, "label"), os.path.join(base, split, "image"),
            os.path.join(root, "ego4d", "v1", "annotations", "narration.json"),
            metadata={"proposals_file": os.path.join(base, "proposals", f"{split}.jsonl")})
    # hand-only views of the same splits, for the hand detector (configs/hand_detector_*.yaml)
    from .hand_datasets import register_real_hands_only

    visor = os.path.join(root, "epic_visor")
    register_real_hands_only(
        {n: (os.path.join(visor, "annotations", s), os.path.join(visor, "rgb_frames", s), participant_filter)
         for n, (s, _, participant_filter) in _EPIC_VISOR.items()},
        {n: (os.path.join(root, "egohos", s, "label"), os.path.join(root, "egohos", s, "image"))
         for n, s in _EGO4D_EGOHOS.items()})


if __name__.endswith(".builtin"):
    # Registered on import of the package (Detectron2's builtin.py idiom); generation and loading stay lazy.
    register_synthetic()
    register_all_real()
