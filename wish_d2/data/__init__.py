"""Datasets, narration parsing, mappers and the synthetic benchmark. Importing registers built-in splits.

The public data API: ``from wish_d2.data import register_epic_visor, load_ego4d, register_noun_phrase_extractor``.
"""
from . import builtin  # noqa: F401,E402  registers wish_synth_{train,val,test} (generated lazily)
from .builtin import register_synthetic, register_synthetic_from_cfg  # noqa: F401,E402  docs/SYNTHETIC.md
from .coco_narrations import load_coco_narrations, register_coco_narrations  # noqa: F401,E402
from .common import DataFormatError  # noqa: F401,E402
from .ego4d import load_ego4d, load_ego4d_narrations, register_ego4d  # noqa: F401,E402
from .epic_narrations import load_epic_narrations  # noqa: F401,E402
from .narrations import (  # noqa: F401,E402
    available_noun_phrase_extractors,
    extract_noun_phrases,
    get_noun_phrase_extractor,
    register_noun_phrase_extractor,
)
from .taxonomy import TaxonomyError, load_taxonomy_file, taxonomy_for_config  # noqa: F401,E402
from .proposals_io import ProposalStore, write_proposals  # noqa: F401,E402
from .visor import load_contact_corrections, load_epic_visor, register_epic_visor  # noqa: F401,E402
