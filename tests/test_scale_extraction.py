"""Extraction at real frame sizes: masks are measured and pooled at a working resolution, never at full resolution,
and the result does not depend on the frame size beyond it."""
import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
import torch.nn.functional as F

from wish_d2.modeling.geometry import (
    contact_region_masks,
    hand_overlap_fraction,
    pair_geometry,
    to_working_res,
    working_size,
)
from wish_d2.modeling.meta_arch import gt_pair_targets
from wish_d2.utils.masks import encode_rle


def _boxes(n, H, W, seed=0, unit=1):
    """n random rectangles (edges on multiples of ``unit``) in a bool [n, H, W]."""
    g = torch.Generator().manual_seed(seed)
    m = torch.zeros(n, H, W, dtype=torch.bool)
    for k in range(n):
        y0, x0 = (int(v) * unit for v in torch.randint(0, H // unit - 2, (2,), generator=g).clamp(max=W // unit - 2))
        h, w = (int(v) * unit for v in torch.randint(1, H // (2 * unit), (2,), generator=g))
        m[k, y0:y0 + h, x0:x0 + w] = True
    return m


def test_working_size_is_a_noop_for_small_frames():
    assert working_size(160, 160, 224) == (160, 160)
    assert working_size(1080, 1920, 224) == (120, 214)  # 9 x 9 pixel blocks, the last column 3 pixels wide
    assert working_size(1920, 1080, 224) == (214, 120)
    assert working_size(896, 1792, 224) == (112, 224)
    m = _boxes(3, 160, 160)
    out = to_working_res(m, (160, 160))
    assert out.dtype == torch.float32 and torch.equal(out, m.float())
    assert to_working_res(m[:0], (80, 80)).shape == (0, 80, 80)  # no proposals: still the working size


@pytest.mark.parametrize("H,W,size", [(540, 960, (108, 192)), (333, 517, (100, 155)), (100, 30, (50, 15))])
def test_to_working_res_keeps_area_and_position(H, W, size):
    m = _boxes(6, H, W, seed=1)
    out = to_working_res(m, size)
    assert out.shape == (6, *size) and out.min() >= 0 and out.max() <= 1
    frac_full = m.flatten(1).float().mean(1)
    assert torch.allclose(out.flatten(1).mean(1), frac_full, atol=5e-3)
    direct = F.adaptive_avg_pool2d(m.float().unsqueeze(1), size).squeeze(1)  # the exact area average
    assert (out - direct).abs().mean() < 0.01


def test_contact_zone_at_working_res_matches_full_resolution():
    H = W = 400
    masks = _boxes(8, H, W, seed=2, unit=4)
    hands = torch.zeros(2, H, W, dtype=torch.bool)
    hands[0, 240:360, 60:180] = True
    hands[1, 240:360, 220:340] = True
    masks[0, 180:244, 80:160] = True  # touches the left hand
    present = torch.tensor([True, True])
    full = contact_region_masks(masks, hands, present, 0.03)
    assert set(full.unique().tolist()) <= {0.0, 1.0}
    size = working_size(H, W, 100)
    work = contact_region_masks(to_working_res(masks, size), to_working_res(hands, size), present, 0.03)
    assert work.shape == (8, 2, 100, 100)
    grid = lambda z: F.adaptive_avg_pool2d(z.flatten(0, 1).unsqueeze(1), (10, 10)).squeeze(1)  # noqa: E731
    cov_full, cov_work = grid(full), grid(work)
    assert (cov_full - cov_work).abs().max() < 0.15 and (cov_full - cov_work).abs().mean() < 0.01
    assert cov_work[0].sum() > 0  # object 0 and the left hand meet


def test_hand_filter_and_geometry_at_working_res():
    H, W = 480, 640
    masks = _boxes(6, H, W, seed=3, unit=4)
    hands = _boxes(2, H, W, seed=4, unit=4)
    masks[0] = hands[0]  # a proposal that is a hand
    size = working_size(H, W, 160)
    m_w, h_w = to_working_res(masks, size), to_working_res(hands, size)
    exact = hand_overlap_fraction(masks, hands)
    assert torch.allclose(hand_overlap_fraction(m_w, h_w), exact, atol=0.02)
    assert exact[0] == 1.0
    present = torch.tensor([True, True])
    g_full = pair_geometry(masks, hands, present, max_side=128)
    g_work = pair_geometry(m_w, h_w, present, max_side=max(size))  # as WISH.extract does for large frames
    assert torch.allclose(g_full, g_work, atol=0.03)


def _dense_gt_pair_targets(masks, annotations, min_iou=0.5):
    """The dense float32 reference: per hand, best IoU proposal if IoU >= 0.5."""
    target = torch.full((2,), -1, dtype=torch.long)
    flat = masks.flatten(1).float()
    for ann in annotations:
        g = torch.from_numpy(ann["_dense"]).flatten().float()
        inter = flat @ g
        iou = inter / (flat.sum(1) + g.sum() - inter).clamp(min=1)
        best = int(iou.argmax())
        if float(iou[best]) >= min_iou:
            for s in ((0,) if ann["category_id"] == 0 else (1,) if ann["category_id"] == 1 else (0, 1)):
                target[s] = best
    return target


def test_gt_pair_targets_from_rles_equal_dense_computation():
    H, W = 60, 80
    for seed in range(6):
        masks = _boxes(7, H, W, seed=seed)
        masks[3] = masks[2]  # a tie: the first one wins, as with argmax
        rles = [encode_rle(m) for m in masks]
        poly = [[10.0, 10.0, 50.0, 10.0, 50.0, 40.0, 10.0, 40.0]]
        poly_mask = mask_util.decode(mask_util.merge(mask_util.frPyObjects(poly, H, W))).astype(bool)
        dense_rle = mask_util.encode(np.asfortranarray(masks[2].numpy().astype(np.uint8)))
        uncompressed = {"size": [H, W], "counts": [H * W]}  # all background
        anns = [{"category_id": seed % 3, "segmentation": poly, "_dense": poly_mask},
                {"category_id": 1, "segmentation": {"size": [H, W], "counts": dense_rle["counts"].decode()},
                 "_dense": masks[2].numpy()},
                {"category_id": 2, "segmentation": uncompressed, "_dense": np.zeros((H, W), bool)}]
        assert torch.equal(gt_pair_targets(rles, anns, (H, W)), _dense_gt_pair_targets(masks, anns))
    assert gt_pair_targets(rles, [], (H, W)).tolist() == [-1, -1]
    assert gt_pair_targets([], anns, (H, W)).tolist() == [-1, -1]
    with pytest.raises(ValueError, match="ground-truth mask"):
        gt_pair_targets(rles, [{"category_id": 0, "segmentation": {"size": [H + 1, W], "counts": [H * W + W]}}],
                        (H, W))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from detectron2.modeling import build_model

    from wish_fixtures import tiny_cfg

    cfg = tiny_cfg(tmp_path_factory.mktemp("scale"))
    cfg.merge_from_list(["MODEL.WISH.PROPOSALS.MAX_PER_IMAGE", "64"])
    torch.manual_seed(0)
    return build_model(cfg).eval()


def _frame_input(folder, scale: int):
    """A 224x448 frame from the benchmark's generator, nearest-upscaled ``scale`` times (masks, hands, image)."""
    from wish_d2.benchmark.extraction import load_input, write_frame
    from wish_d2.data.proposals_io import write_proposals
    from wish_d2.utils.masks import decode_rle

    spec = write_frame(str(folder), seed=7, n=12, hw=(224, 448))
    x = load_input(spec)
    if scale == 1:
        return x
    up = lambda a: np.repeat(np.repeat(a, scale, 0), scale, 1)  # noqa: E731
    rle = lambda seg: encode_rle(up(decode_rle(seg)))  # noqa: E731
    with open(spec["proposals_file"]) as f:
        rec = __import__("json").loads(f.readline())
    big = dict(rec, height=224 * scale, width=448 * scale, masks=[rle(r) for r in rec["masks"]])
    path = str(folder / f"up{scale}.jsonl")
    write_proposals([big], path)
    return dict(x, image=torch.from_numpy(up(x["image"].permute(1, 2, 0).numpy())).permute(2, 0, 1).contiguous(),
                height=224 * scale, width=448 * scale, proposals_file=path,
                hands=[dict(h, segmentation=rle(h["segmentation"])) for h in x["hands"]],
                annotations=[dict(a, segmentation=rle(a["segmentation"])) for a in x["annotations"]])


def test_extract_pools_at_working_res_and_ignores_frame_size(model, tmp_path):
    pooled_shapes = []
    pool = model.clip.pool

    def spy(images, masks):
        pooled_shapes.extend(tuple(m.shape[-2:]) for m in masks)
        return pool(images, masks)

    model.clip.pool = spy
    try:
        with torch.no_grad():
            small = model.extract([_frame_input(tmp_path, 1)])[0]
            big = model.extract([_frame_input(tmp_path, 4)])[0]  # 896 x 1792
    finally:
        model.clip.pool = pool
    assert model.working_side == 224
    assert pooled_shapes == [(112, 224), (112, 224)]  # never the 896 x 1792 frame
    assert (big["height"], big["width"]) == (896, 1792) and big["proposal_rles"][0]["size"] == [896, 1792]
    assert len(big["v"]) == len(small["v"]) > 0
    # the working-resolution masks are the same (2x2 vs 8x8 blocks), so all but the pixels the ViT sees is the same
    assert torch.allclose(big["geom"], small["geom"], atol=1e-6)
    assert torch.equal(big["gt_pair_obj"], small["gt_pair_obj"])
    assert torch.isfinite(big["v"]).all() and torch.isfinite(big["v_contact"]).all()


def test_extract_large_frame_without_proposals_or_hands(model, tmp_path):
    from wish_d2.data.proposals_io import write_proposals

    x = _frame_input(tmp_path, 4)
    empty = str(tmp_path / "empty.jsonl")
    write_proposals([{"image_id": x["image_id"], "height": 896, "width": 1792, "masks": [], "scores": []}], empty)
    with torch.no_grad():
        none, no_hands = model.extract([dict(x, proposals_file=empty), dict(x, hands=[])])
    assert none["v"].shape == (0, model.clip.embed_dim) and none["geom"].shape[0] == 0
    assert none["gt_pair_obj"].tolist() == [-1, -1] and torch.isfinite(none["v_hands"]).all()
    assert not no_hands["hand_present"].any() and (no_hands["v_contact"] == 0).all() and len(no_hands["v"]) > 0
