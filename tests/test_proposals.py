"""Mask proposal generators (precomputed, SAM) and tools/extract_proposals.py."""
import importlib.util
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.modeling.proposal_generator import build_proposal_generator
from detectron2.structures import Instances

from wish_d2 import add_wish_config
from wish_d2.data.proposals_io import ProposalStore, write_proposals
from wish_d2.modeling.proposal_generators import (
    PrecomputedMaskProposals,
    SAMProposals,
    postprocess_proposals,
)
from wish_d2.modeling.segmenters import SAMSegmenter, build_sam
from wish_d2.utils.masks import decode_rles, encode_rle

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _check_instances(inst, h, w, max_n=None):
    assert isinstance(inst, Instances) and inst.image_size == (h, w)
    n = len(inst)
    assert len(inst.proposal_rles) == n and all(r["size"] == [h, w] for r in inst.proposal_rles)
    if inst.has("proposal_masks"):  # online generators also keep their dense masks, equal to the RLEs
        assert inst.proposal_masks.dtype == torch.bool and inst.proposal_masks.shape == (n, h, w)
        assert torch.equal(decode_rles(inst.proposal_rles, h, w), inst.proposal_masks)
    assert inst.proposal_boxes.tensor.shape == (n, 4)
    assert inst.objectness_logits.shape == (n,) and torch.isfinite(inst.objectness_logits).all()
    assert torch.all(inst.objectness_logits[:-1] >= inst.objectness_logits[1:])
    if max_n is not None:
        assert n <= max_n
    return n


def _rect(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_postprocess_filters_sorts_and_boxes():
    masks = torch.from_numpy(np.stack([_rect(20, 30, 0, 2, 0, 2), _rect(20, 30, 5, 10, 5, 15),
                                       _rect(20, 30, 0, 20, 0, 30), _rect(20, 30, 2, 6, 20, 24)]))
    scores = torch.tensor([0.99, 0.5, 0.7, 1.2])  # SAM's predicted IoU may exceed 1
    inst = postprocess_proposals(masks, scores, min_area=16, max_per_image=2)
    assert _check_instances(inst, 20, 30) == 2
    assert torch.equal(inst.proposal_masks[0], masks[3]) and torch.equal(inst.proposal_masks[1], masks[2])
    assert inst.proposal_boxes.tensor[0].tolist() == [20, 2, 24, 6]
    assert torch.allclose(torch.sigmoid(inst.objectness_logits[1]), torch.tensor(0.7))
    empty = postprocess_proposals(torch.zeros((0, 20, 30), dtype=torch.bool), torch.zeros(0), 16, 2)
    assert _check_instances(empty, 20, 30) == 0
    allgone = postprocess_proposals(masks, scores, min_area=10_000, max_per_image=2)
    assert _check_instances(allgone, 20, 30) == 0


@pytest.fixture
def proposals_file(tmp_path):
    h, w = 20, 30
    recs = [
        {"image_id": "a", "height": h, "width": w, "scores": [0.9, 0.8, 0.95, 0.6],
         "masks": [encode_rle(_rect(h, w, 0, 2, 0, 2)), encode_rle(_rect(h, w, 5, 10, 5, 15)),
                   encode_rle(_rect(h, w, 0, 20, 0, 30)), encode_rle(_rect(h, w, 10, 20, 0, 10))]},
        {"image_id": "empty", "height": h, "width": w, "masks": [], "scores": []},
        # extracted at twice the resolution the frames are loaded at
        {"image_id": "big", "height": 2 * h, "width": 2 * w, "scores": [0.5],
         "masks": [encode_rle(_rect(2 * h, 2 * w, 10, 20, 10, 30))]},
    ]
    path = str(tmp_path / "props.jsonl")
    write_proposals(recs, path)
    return path


def _dict(image_id, h=20, w=30, **extra):
    return {"image": torch.zeros((3, h, w), dtype=torch.uint8), "image_id": image_id, "height": h, "width": w,
            **extra}


def test_precomputed_proposals(proposals_file):
    gen = PrecomputedMaskProposals(proposals_file=proposals_file, min_area=16, max_per_image=2)
    a, empty, missing, big = gen([_dict("a"), _dict("empty"), _dict("missing"), _dict("big")])
    assert _check_instances(a, 20, 30) == 2  # the 4-pixel mask is dropped, then the top 2 of 3
    assert torch.allclose(torch.sigmoid(a.objectness_logits), torch.tensor([0.95, 0.8]))
    assert a.proposal_boxes.tensor.tolist() == [[0, 0, 30, 20], [5, 5, 15, 10]]
    assert _check_instances(empty, 20, 30) == 0
    assert _check_instances(missing, 20, 30) == 0
    assert _check_instances(big, 20, 30) == 1  # resized (nearest) to the dict's image size
    assert not big.has("proposal_masks") and not a.has("proposal_masks")  # precomputed: RLEs only
    assert torch.equal(decode_rles(big.proposal_rles, 20, 30)[0], torch.from_numpy(_rect(20, 30, 5, 10, 5, 15)))
    assert a.proposal_rles == [encode_rle(_rect(20, 30, 0, 20, 0, 30)), encode_rle(_rect(20, 30, 5, 10, 5, 15))]
    # no "image" (feature-cache mapper): size from height/width
    (no_img,) = gen([{"image_id": "a", "height": 20, "width": 30}])
    assert _check_instances(no_img, 20, 30) == 2


def test_precomputed_file_resolution(proposals_file, tmp_path):
    MetadataCatalog.get("_test_props_meta").set(proposals_file=proposals_file)
    cfg = get_cfg()
    add_wish_config(cfg)
    cfg.MODEL.PROPOSAL_GENERATOR.NAME = "PrecomputedMaskProposals"
    cfg.MODEL.WISH.PROPOSALS.MAX_PER_IMAGE = 1
    gen = build_proposal_generator(cfg, None)  # the stock Detectron2 builder works too
    assert isinstance(gen, PrecomputedMaskProposals) and gen.max_per_image == 1
    (x,) = gen([_dict("a", dataset_name="_test_props_meta")])  # metadata proposals_file
    (y,) = gen([_dict("a", proposals_file=proposals_file)])  # per-dict file from the mapper
    assert len(x) == len(y) == 1 and x.proposal_rles == y.proposal_rles
    with pytest.raises(ValueError, match="proposals file"):
        gen([_dict("a")])
    with pytest.raises(FileNotFoundError):
        gen([_dict("a", proposals_file=str(tmp_path / "nope.jsonl"))])


@pytest.fixture(scope="module")
def tiny_sam():
    return build_sam("tiny")


def _synthetic_image(h=64, w=64):
    img = np.full((h, w, 3), 30, np.uint8)
    img[8:36, 6:30] = (220, 40, 40)
    img[30:60, 34:60] = (40, 200, 60)
    return img


def test_sam_proposals(tiny_sam):
    seg = SAMSegmenter(sam=tiny_sam, points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    gen = SAMProposals(segmenter=seg, min_area=1, max_per_image=5)
    img = _synthetic_image()
    chw = torch.from_numpy(img).permute(2, 0, 1).contiguous()
    (inst,) = gen([{"image": chw, "image_id": 1, "height": 64, "width": 64}])
    assert _check_instances(inst, 64, 64, max_n=5) >= 1
    # BGR input gives the same proposals as RGB
    bgr = SAMProposals(segmenter=seg, input_format="BGR", min_area=1, max_per_image=5)
    (inst2,) = bgr([{"image": chw.flip(0), "image_id": 1, "height": 64, "width": 64}])
    assert torch.equal(inst.proposal_masks, inst2.proposal_masks)
    with pytest.raises(ValueError, match="image"):
        gen([{"image_id": 1, "height": 64, "width": 64}])


def test_sam_proposals_from_cfg():
    cfg = get_cfg()
    add_wish_config(cfg)
    cfg.MODEL.PROPOSAL_GENERATOR.NAME = "SAMProposals"
    cfg.MODEL.WISH.SEGMENTER.SAM_TYPE = "tiny"
    cfg.MODEL.WISH.SEGMENTER.POINTS_PER_SIDE = 4
    cfg.MODEL.WISH.SEGMENTER.PRED_IOU_THRESH = 0.0
    gen = build_proposal_generator(cfg, None)
    assert isinstance(gen, SAMProposals)
    chw = torch.from_numpy(_synthetic_image(48, 64)).permute(2, 0, 1).contiguous()
    (inst,) = gen([{"image": chw, "image_id": 1, "height": 48, "width": 64}])
    _check_instances(inst, 48, 64, max_n=cfg.MODEL.WISH.PROPOSALS.MAX_PER_IMAGE)


# ---------------------------------------------------------------------------------------- tools/extract_proposals.py
def _load_tool():
    spec = importlib.util.spec_from_file_location("extract_proposals", os.path.join(ROOT, "tools",
                                                                                    "extract_proposals.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def tiny_dataset(tmp_path):
    name = f"_test_extract_{os.path.basename(tmp_path)}"
    dicts = []
    for i, (h, w) in enumerate([(48, 64), (64, 40)]):
        path = str(tmp_path / f"frame{i}.png")
        Image.fromarray(_synthetic_image(h, w)).save(path)
        dicts.append({"file_name": path, "image_id": f"img{i}", "height": h, "width": w})
    DatasetCatalog.register(name, lambda: [dict(d) for d in dicts])
    yield name, dicts
    DatasetCatalog.remove(name)


def test_extract_proposals(tiny_dataset, tmp_path, monkeypatch):
    tool = _load_tool()
    name, dicts = tiny_dataset
    out = str(tmp_path / "out" / "props.jsonl")

    def add_config(cfg):  # random tiny SAM masks are unstable: switch the AMG stability filter off
        add_wish_config(cfg)
        cfg.MODEL.WISH.SEGMENTER.STABILITY_SCORE_THRESH = 0.0

    monkeypatch.setattr(tool, "add_wish_config", add_config)
    opts = ["MODEL.WISH.SEGMENTER.SAM_TYPE", "tiny", "MODEL.WISH.SEGMENTER.POINTS_PER_SIDE", "4",
            "MODEL.WISH.SEGMENTER.PRED_IOU_THRESH", "0.0", "MODEL.WISH.PROPOSALS.MIN_AREA", "1",
            "MODEL.DEVICE", "cpu"]
    args = tool.get_parser().parse_args(["--dataset", name, "--output", out] + opts)
    assert tool.main(args) == 2
    store = ProposalStore(out)
    assert store.image_ids() == ["img0", "img1"]
    for d in dicts:
        rec = store.get(d["image_id"])
        assert (rec["height"], rec["width"]) == (d["height"], d["width"])
        assert len(rec["masks"]) == len(rec["scores"]) >= 1
        assert all(tuple(m["size"]) == (d["height"], d["width"]) for m in rec["masks"])
    assert not [f for f in os.listdir(os.path.dirname(out)) if ".part" in f or f.startswith(".tmp")]

    # --resume keeps finished images of a killed run (here img0, marked by its score) and tolerates a torn line
    part = tool.part_path(out, 0, 1)
    marker = {"image_id": "img0", "height": 48, "width": 64, "masks": [], "scores": []}
    with open(part, "w") as f:
        f.write(json.dumps(marker) + "\n" + '{"image_id": "img1", "hei')
    args = tool.get_parser().parse_args(["--dataset", name, "--output", out, "--resume"] + opts)
    assert tool.main(args) == 2
    store = ProposalStore(out)
    assert store.get("img0")["masks"] == [] and len(store.get("img1")["masks"]) >= 1
    assert not os.path.exists(part)


def test_extract_proposals_with_a_bad_taxonomy_file_exits_2_naming_it(tiny_dataset, tmp_path, capsys):
    tool = _load_tool()
    name, _ = tiny_dataset
    bad = tmp_path / "nouns.txt"
    bad.write_text("# nothing but a comment\n")
    with pytest.raises(SystemExit) as e:
        tool.invoke(["--dataset", name, "--output", str(tmp_path / "p.jsonl"), "MODEL.WISH.TAXONOMY.FILE", str(bad)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"MODEL.WISH.TAXONOMY.FILE='{bad}'" in err and "holds no noun" in err and "Traceback" not in err
    assert not os.path.exists(tmp_path / "p.jsonl")
