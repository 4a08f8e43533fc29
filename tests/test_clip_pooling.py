"""Mask-guided CLIP pooling invariants on a tiny random open_clip ViT built by the real builder."""
import pytest
import torch

from wish_d2.modeling.clip_encoder import build_mask_pooled_clip
from wish_d2.modeling.clip_pooling import NEG_BIAS, MaskPooledCLIP


@pytest.fixture(scope="module")
def clip():
    return build_mask_pooled_clip("WISH-Test-ViT", init_seed=0)


def _images(clip, sizes, seed=0):
    g = torch.Generator().manual_seed(seed)
    raw = [torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8) for h, w in sizes]
    return raw, clip.preprocess(raw)


def _rand_masks(n, h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    m = torch.zeros(n, h, w, dtype=torch.bool)
    for k in range(n):
        y0, x0 = torch.randint(0, h // 2, (2,), generator=g).tolist()
        y1 = y0 + 1 + torch.randint(0, h - y0, (1,), generator=g).item()
        x1 = x0 + 1 + torch.randint(0, w - x0, (1,), generator=g).item()
        m[k, y0:y1, x0:x1] = True
    return m


def test_properties_and_preprocess(clip):
    assert clip.embed_dim == 32 and clip.image_size == 64 and clip.grid_size == 4
    raw, x = _images(clip, [(64, 64), (90, 130)])
    assert x.shape == (2, 3, 64, 64) and x.dtype == torch.float32
    # a same-size uint8 image is only normalised: undo it and compare
    back = x[0] * clip.pixel_std + clip.pixel_mean
    assert torch.allclose(back * 255.0, raw[0].float(), atol=1e-3)
    bgr = clip.preprocess([r.flip(0) for r in raw], input_format="BGR")
    assert torch.allclose(bgr, x)


def test_full_image_mask_reproduces_encode_image(clip):
    _, x = _images(clip, [(64, 64), (100, 80), (37, 50)])
    masks = [torch.ones(1, 64, 64, dtype=torch.bool), torch.ones(2, 100, 80, dtype=torch.bool),
             torch.ones(1, 37, 50, dtype=torch.bool)]
    pooled = clip.pool(x, masks)
    ref = clip.encode_image(x)
    for b, p in enumerate(pooled):
        assert torch.allclose(p, ref[b].expand_as(p), atol=1e-5), (p - ref[b]).abs().max()


def test_full_image_mask_reproduces_encode_image_tiny_default():
    clip = build_mask_pooled_clip("WISH-Tiny-ViT")
    _, x = _images(clip, [(160, 160), (120, 200)])
    pooled = clip.pool(x, [torch.ones(1, 160, 160, dtype=torch.bool), torch.ones(1, 120, 200, dtype=torch.bool)])
    assert torch.allclose(torch.cat(pooled), clip.encode_image(x), atol=1e-5)


def test_empty_mask_is_finite_and_attends_cls_only(clip):
    _, x = _images(clip, [(64, 64)])
    empty = torch.zeros(1, 64, 64, dtype=torch.bool)
    out = clip.pool(x, [empty])[0]
    assert out.shape == (1, clip.embed_dim) and torch.isfinite(out).all()
    # binary mode too, and a sub-pixel-sized mask
    clip_bin = MaskPooledCLIP(clip.model, tokenizer=clip.tokenizer, soft_coverage=False)
    assert torch.isfinite(clip_bin.pool(x, [empty])[0]).all()
    assert torch.allclose(clip_bin.pool(x, [empty])[0], out, atol=1e-6)


def test_batched_equals_per_mask_passes(clip):
    sizes = [(64, 64), (80, 120), (48, 48)]
    _, x = _images(clip, sizes)
    masks = [_rand_masks(5, 64, 64, 1), _rand_masks(0, 80, 120, 2), _rand_masks(3, 48, 48, 3)]
    masks[0][4] = False  # one empty mask among them
    batched = clip.pool(x, masks)
    ref = clip.pool_per_mask_reference(x, masks)
    assert [t.shape for t in batched] == [(5, 32), (0, 32), (3, 32)]
    for a, b in zip(batched, ref):
        assert torch.allclose(a, b, atol=1e-5)
    # masks do not interact: adding masks leaves earlier outputs unchanged
    more = [torch.cat([masks[0], _rand_masks(4, 64, 64, 9)])] + masks[1:]
    assert torch.allclose(clip.pool(x, more)[0][:5], batched[0], atol=1e-5)


def test_zero_masks(clip):
    _, x = _images(clip, [(64, 64), (64, 64)])
    out = clip.pool(x, [torch.zeros(0, 64, 64, dtype=torch.bool)] * 2)
    assert [t.shape for t in out] == [(0, 32), (0, 32)]
    with pytest.raises(ValueError):
        clip.pool(x, [torch.zeros(0, 64, 64, dtype=torch.bool)])


def test_different_masks_differ_and_soft_float_masks_accepted(clip):
    _, x = _images(clip, [(64, 64)])
    m = torch.zeros(2, 64, 64)
    m[0, :32, :32] = 1.0
    m[1, 32:, 32:] = 1.0
    out = clip.pool(x, [m])[0]
    assert not torch.allclose(out[0], out[1], atol=1e-3)
    assert torch.allclose(out, clip.pool(x, [m.bool()])[0], atol=1e-6)


def test_patch_coverage_and_bias(clip):
    m = torch.zeros(3, 128, 96, dtype=torch.bool)
    m[0] = True
    m[1, :, :48] = True  # left half
    m[2, :8, :6] = True  # a quarter of the top-left patch (patch = 32 x 24 original pixels)
    cov = clip.patch_coverage(m)
    assert cov.shape == (3, 4, 4)
    assert torch.allclose(cov[0], torch.ones(4, 4))
    assert torch.allclose(cov[1][:, :2], torch.ones(4, 2)) and cov[1][:, 2:].abs().max() == 0
    assert cov[2][0, 0].item() == pytest.approx(48 / (32 * 24))
    bias = clip.attention_bias(cov)
    assert bias.shape == (3, 17) and (bias[:, 0] == 0).all()
    assert (bias[0] == 0).all() and bias[2, 1].item() == pytest.approx(torch.log(cov[2, 0, 0]).item())
    assert bias[2, 2].item() == NEG_BIAS and torch.isfinite(bias).all()


def test_frozen_and_always_eval(clip):
    assert not any(p.requires_grad for p in clip.parameters())
    clip.train()
    assert not clip.model.training
    clip.eval()


def test_encode_text_offline_tokenizer(clip):
    t = clip.encode_text(["frying pan in contact with the left hand", "knife in contact with the right hand"])
    assert t.shape == (2, 32) and torch.isfinite(t).all()
    assert not torch.allclose(t[0], t[1])
    assert clip.encode_text([]).shape == (0, 32)
    clip.text_batch_size = 1
    try:
        assert torch.allclose(clip.encode_text(["a", "b", "c"]), torch.cat([clip.encode_text([s]) for s in "abc"]),
                              atol=1e-6)
    finally:
        clip.text_batch_size = 256
    n = clip.encode_text(["a"], normalize=True)
    assert torch.allclose(n.norm(dim=-1), torch.ones(1))


def test_unsupported_model_fails_loudly(clip):
    clip.model.visual.pool_type = "avg"
    try:
        with pytest.raises(NotImplementedError, match="pool_type"):
            MaskPooledCLIP(clip.model, tokenizer=clip.tokenizer)
    finally:
        clip.model.visual.pool_type = "tok"


def test_autocast_is_ignored_off_cuda(clip):
    """MODEL.WISH.CLIP.AUTOCAST only acts on CUDA: the CPU path stays exact float32."""
    _, x = _images(clip, [(64, 64)])
    masks = [_rand_masks(3, 64, 64)]
    ref_pool, ref_image = clip.pool(x, masks)[0], clip.encode_image(x)
    clip.autocast_dtype = torch.bfloat16
    try:
        assert torch.equal(clip.pool(x, masks)[0], ref_pool) and torch.equal(clip.encode_image(x), ref_image)
    finally:
        clip.autocast_dtype = None


def test_autocast_config_key(tmp_path):
    from detectron2.modeling import build_model

    from wish_fixtures import tiny_cfg

    from wish_d2.config_validation import validate_wish_config

    cfg = tiny_cfg(tmp_path)
    assert cfg.MODEL.WISH.CLIP.AUTOCAST == ""
    cfg.merge_from_list(["MODEL.WISH.CLIP.AUTOCAST", "bfloat16"])
    assert build_model(cfg).clip.autocast_dtype == torch.bfloat16
    cfg.merge_from_list(["MODEL.WISH.CLIP.AUTOCAST", "int8"])
    with pytest.raises(ValueError, match="MODEL.WISH.CLIP.AUTOCAST"):  # where every config is checked
        validate_wish_config(cfg)
