"""What every frozen segmenter shares: frozen weights, eval mode for good, RGB ``uint8`` input."""
import numpy as np
import torch
from torch import nn

__all__ = ["freeze", "to_rgb_uint8", "FrozenSegmenter"]


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode and ``requires_grad=False``: the segmenters are never trained here."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def to_rgb_uint8(image) -> np.ndarray:
    """RGB ``[H, W, 3]`` uint8 numpy from a numpy array or tensor (HWC), the input SAM's predictor expects."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image [H, W, 3], got shape {image.shape}")
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image)


class FrozenSegmenter(nn.Module):
    """Stays in eval mode even when the surrounding meta-architecture is put in training mode (Grounding DINO has
    dropout, and a frozen model must give the same proposals in training and at test time)."""

    def train(self, mode: bool = True):
        return super().train(False)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device
