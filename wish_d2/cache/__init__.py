"""The feature cache: frozen-model outputs (proposals, hands, pooled CLIP embeddings, geometry, text) computed
once per frame, so every epoch of Stage 1 and Stage 2 reads small tensors instead of running SAM and CLIP."""
from .store import FeatureCache, cache_key
from .extract import extract_dataset_features

__all__ = ["FeatureCache", "cache_key", "extract_dataset_features"]
