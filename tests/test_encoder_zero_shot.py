"""The encoder probe: zero-shot top-1 of mask-pooled ground-truth masks against "a {noun}", on a real tiny
encoder (shapes, counting) and on a stub whose answers are known."""
import pytest
import torch

from wish_d2.modeling.clip_encoder import build_mask_pooled_clip
from wish_d2.pretrain.zero_shot import synthetic_zero_shot_top1, zero_shot_top1


class _Stub:
    """Text i embeds as e_i; a mask pools to e_k where k is the mask's pixel count mod 3."""

    def encode_text(self, prompts):
        assert all(p.startswith("a ") for p in prompts)
        return torch.eye(3)[: len(prompts)]

    def preprocess(self, images):
        return torch.stack(images).float()

    def pool(self, images, masks):
        return [torch.eye(3)[[int(m.sum()) % 3 for m in ms]] for ms in masks]


def _frame(sizes):
    masks = torch.zeros(len(sizes), 4, 4, dtype=torch.bool)
    for k, s in enumerate(sizes):
        masks[k].view(-1)[:s] = True
    return torch.zeros(3, 4, 4, dtype=torch.uint8), masks


def test_counts_hits_per_category_over_batches():
    img, m = _frame([3, 4, 5])  # pooled to 0, 1, 2
    img2, m2 = _frame([6, 1])  # pooled to 0, 1
    frames = [(img, m, [0, 1, 0]), (img2, m2, [0, 2]), (img, m[:0], [])]
    out = zero_shot_top1(_Stub(), frames, ["a", "b", "c"], batch_frames=2)
    assert out["objects"] == 5
    assert out["zero_shot_top1"] == pytest.approx(3 / 5)
    assert out["per_category"] == {"a": pytest.approx(2 / 3), "b": 1.0, "c": 0.0}
    with pytest.raises(ValueError, match="categories"):
        zero_shot_top1(_Stub(), [(img, m, [0])], ["a", "b", "c"])
    assert zero_shot_top1(_Stub(), [], ["a"])["zero_shot_top1"] is None


def test_probe_on_synthetic_frames_with_a_real_encoder():
    enc = build_mask_pooled_clip("WISH-Test-ViT")
    out = synthetic_zero_shot_top1(enc, seed=0, num_frames=3)
    assert out["objects"] >= 3 and 0.0 <= out["zero_shot_top1"] <= 1.0
    assert out["split"] == "test" and out["frames"] == 3
