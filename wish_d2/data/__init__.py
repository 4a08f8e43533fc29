"""Datasets, narration parsing, mappers and the synthetic benchmark. Importing registers built-in splits."""
from . import builtin  # noqa: F401,E402  registers wish_synth_{train,val,test} (generated lazily)
from .builtin import register_synthetic, register_synthetic_from_cfg  # noqa: F401,E402  docs/SYNTHETIC.md
