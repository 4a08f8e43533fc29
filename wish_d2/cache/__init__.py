"""The feature cache: frozen-model outputs (proposals, hands, pooled CLIP embeddings, geometry, text) computed
once per frame, so every epoch of Stage 1 and Stage 2 reads small tensors instead of running SAM and CLIP.
Every file is checksummed; damage is rebuilt by extraction or refused with :class:`CacheIntegrityError`."""
from .extract import extract_dataset_features
from .integrity import CacheIntegrityError
from .store import FeatureCache, cache_key

__all__ = ["CacheIntegrityError", "FeatureCache", "cache_key", "extract_dataset_features"]
