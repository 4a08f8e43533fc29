"""Precomputed proposals stay RLE: areas, boxes, ranking and the working-resolution masks come from the runs, and
give exactly what decoding every mask at full resolution gave."""
import numpy as np
import pytest
import torch

from detectron2.structures import BitMasks, Instances

from wish_d2.modeling.geometry import to_working_res, working_size
from wish_d2.modeling.proposal_generators import (
    postprocess_proposals,
    postprocess_rle_proposals,
    proposal_masks_at,
    proposal_rles_of,
)
from wish_d2.utils.masks import (decode_rles, encode_rle, rle_area_fractions, rle_areas, rle_block_sums,
                                 rle_boxes_xyxy, rle_run_lengths)


def _random_masks(rng, n, H, W):
    """Blobs, noise, empty and full masks, and masks whose runs cross whole columns."""
    masks = np.zeros((n, H, W), bool)
    for k in range(n):
        kind = k % 5
        if kind == 0:
            masks[k] = rng.random((H, W)) < rng.uniform(0.05, 0.95)
        elif kind == 1:
            y0, x0 = rng.integers(0, H), rng.integers(0, W)
            masks[k, y0:y0 + rng.integers(1, H + 1), x0:x0 + rng.integers(1, W + 1)] = True
        elif kind == 2:
            masks[k, :, rng.integers(0, W):] = True  # runs spanning many full columns
        elif kind == 3 and k % 2:
            masks[k] = True
    return masks


def _dense_block_sums(masks, f):
    n, H, W = masks.shape
    h, w = -(-H // f), -(-W // f)
    pad = np.zeros((n, h * f, w * f), np.int64)
    pad[:, :H, :W] = masks
    return pad.reshape(n, h, f, w, f).sum((2, 4))


@pytest.mark.parametrize("H,W,f", [(17, 23, 1), (17, 23, 2), (18, 27, 3), (30, 31, 9), (5, 40, 7), (1, 1, 4)])
def test_rle_block_sums_equal_dense_block_sums(H, W, f):
    rng = np.random.default_rng(H * W + f)
    masks = _random_masks(rng, 10, H, W)
    rles = [encode_rle(m) for m in masks]
    assert np.array_equal(rle_block_sums(rles, H, W, f), _dense_block_sums(masks, f))
    assert np.array_equal(rle_areas(rles), masks.reshape(10, -1).sum(1))
    assert np.array_equal(rle_boxes_xyxy(rles), BitMasks(torch.from_numpy(masks)).get_bounding_boxes().tensor.numpy())
    assert rle_block_sums([], H, W, f).shape == (0, -(-H // f), -(-W // f))
    with pytest.raises(ValueError, match="size"):
        rle_block_sums([encode_rle(np.zeros((H + 1, W), bool))], H, W, f)


@pytest.mark.parametrize("H,W,side", [(160, 160, 224), (270, 480, 64), (481, 250, 100)])
def test_area_fractions_bit_identical_to_dense_working_res(H, W, side):
    masks = torch.from_numpy(_random_masks(np.random.default_rng(side), 9, H, W))
    rles = [encode_rle(m) for m in masks]
    size = working_size(H, W, side)
    f = -(-H // size[0]) if size != (H, W) else 1
    props = Instances((H, W), proposal_rles=rles)
    dense = to_working_res(masks, size)
    assert torch.equal(rle_area_fractions(rles, H, W, f), dense)
    assert torch.equal(proposal_masks_at(props, size), dense)
    off_grid = (size[0] + 3, size[1] + 1)  # not a block grid: resampled densely, as to_working_res does
    assert torch.equal(proposal_masks_at(props, off_grid), to_working_res(masks, off_grid))


def test_rle_postprocess_equals_dense_postprocess():
    rng = np.random.default_rng(5)
    H, W = 40, 50
    masks = torch.from_numpy(_random_masks(rng, 12, H, W))
    scores = torch.tensor(rng.choice([0.2, 0.5, 0.9], 12), dtype=torch.float32)  # ties keep the input order
    rles = [encode_rle(m) for m in masks]
    rles[1] = {"size": [H, W], "counts": rle_run_lengths(rles[1]).tolist()}  # an uncompressed RLE from a file
    for min_area, top in ((0, -1), (30, 5), (10_000, 3)):
        dense = postprocess_proposals(masks, scores, min_area, top)
        rle = postprocess_rle_proposals(rles, scores.tolist(), H, W, min_area, top)
        assert not rle.has("proposal_masks")
        assert rle.proposal_rles == dense.proposal_rles  # str counts, canonical
        assert torch.equal(rle.proposal_boxes.tensor, dense.proposal_boxes.tensor)
        assert torch.equal(rle.objectness_logits, dense.objectness_logits)
        assert torch.equal(decode_rles(rle.proposal_rles, H, W), dense.proposal_masks)
        only_dense = Instances((H, W), proposal_masks=dense.proposal_masks)
        assert proposal_rles_of(only_dense, range(len(dense))) == proposal_rles_of(rle, range(len(rle)))
    with pytest.raises(ValueError, match="scores"):
        postprocess_rle_proposals(rles, [0.5], H, W)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from detectron2.modeling import build_model

    from wish_fixtures import tiny_cfg

    cfg = tiny_cfg(tmp_path_factory.mktemp("scale_rle"))
    cfg.merge_from_list(["MODEL.WISH.PROPOSALS.MAX_PER_IMAGE", "64"])
    torch.manual_seed(0)
    return build_model(cfg).eval()


class _DenseOnly(torch.nn.Module):
    """The generator contract before RLE proposals: dense ``proposal_masks`` only."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, batched_inputs):
        out = []
        for inst in self.inner(batched_inputs):
            dense = Instances(inst.image_size, proposal_boxes=inst.proposal_boxes,
                              objectness_logits=inst.objectness_logits,
                              proposal_masks=decode_rles(inst.proposal_rles, *inst.image_size))
            out.append(dense)
        return out


@pytest.mark.parametrize("hw", [(224, 448), (540, 960)])
def test_extract_from_rles_equals_extract_from_dense_masks(model, tmp_path, hw):
    from wish_d2.benchmark.extraction import load_input, write_frame

    x = load_input(write_frame(str(tmp_path), seed=3, n=20, hw=hw))
    with torch.no_grad():
        (rle,) = model.extract([x])
        rle_gen = model.proposal_generator
        model.proposal_generator = _DenseOnly(rle_gen)
        try:
            (dense,) = model.extract([x])
        finally:
            model.proposal_generator = rle_gen
    assert rle.keys() == dense.keys() and len(rle["v"]) > 0
    for k in rle:
        same = torch.equal(rle[k], dense[k]) if isinstance(rle[k], torch.Tensor) else rle[k] == dense[k]
        assert same, k
