"""The realistic profile: 1080p frames with SAM-scale proposals and every visible object annotated, written in the
real formats and read back by the real VISOR loader and the proposals reader."""
import dataclasses
import json
import os

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from wish_d2.data import synthetic as syn
from wish_d2.data.builtin import register_synthetic
from wish_d2.data.proposals_io import ProposalStore
from wish_d2.data.visor import load_epic_visor
from wish_d2.utils.masks import decode_rle, rle_area, rle_ious

NUM = 3


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("realistic") / "train")
    records, stats = syn.generate_split(out, 0, "train", NUM, progress=False, profile="realistic")
    return out, records, stats


def visor_entities(out):
    with open(os.path.join(out, "annotations", "P90_01.json")) as f:
        return [e for fr in json.load(f)["video_annotations"] for e in fr["annotations"]]


def test_loads_through_the_visor_loader_at_1080p(split):
    out, records, _ = split
    loaded = load_epic_visor(os.path.join(out, "annotations"), os.path.join(out, "images"),
                             os.path.join(out, "narrations.csv"), frame_margin=0)
    assert loaded == records and len(loaded) == NUM
    for r in loaded:
        assert (r["height"], r["width"]) == (1080, 1920)  # read from the JPEG header
        assert r["file_name"].endswith(".jpg") and r["hands"]
        for a in r["annotations"] + r["hands"]:
            assert decode_rle(a["segmentation"]).shape == (1080, 1920)


def test_every_visible_object_is_annotated(split):
    out, _, stats = split
    ents = visor_entities(out)
    objects = [e for e in ents if not e["name"].endswith("hand")]
    assert len(objects) / NUM >= 5  # a busy counter, not one object per frame
    assert all(e["segments"] and all(len(p) >= 3 for p in e["segments"]) for e in ents)
    assert any(len(e["segments"]) > 1 for e in ents)  # occlusion splits entities into several polygons
    assert stats["objects_per_frame"] == len(objects) / NUM
    xs = [pt[0] for e in ents for p in e["segments"] for pt in p]
    assert max(xs) > 960  # polygons are in full-resolution coordinates, not the working resolution


def test_proposals_are_sam_like(split):
    out, records, _ = split
    store = ProposalStore(os.path.join(out, "proposals.jsonl"))
    assert store.image_ids() == [r["image_id"] for r in records]
    parts = 0
    for r in records:
        rec = store.get(r["image_id"])
        assert (rec["height"], rec["width"]) == (1080, 1920)
        assert 40 <= len(rec["masks"]) <= 100 and len(rec["scores"]) == len(rec["masks"])
        assert rec["scores"] == sorted(rec["scores"], reverse=True)
        assert decode_rle(rec["masks"][0]).shape == (1080, 1920)
        assert min(rle_area(m) for m in rec["masks"]) > 0
        gts = [a["segmentation"] for a in r["annotations"] + r["hands"]]
        ious = rle_ious(gts, rec["masks"])
        assert (ious.max(axis=1) > 0.5).all()  # every annotated entity has a whole-mask proposal
        # part and fragment masks: proposals inside an entity, covering clearly less than it
        for g, row in zip(gts, ious):
            area = rle_area(g)
            parts += sum(1 for m, iou in zip(rec["masks"], row) if 0.02 < iou < 0.6 and rle_area(m) < area)
    assert parts >= NUM


def test_same_seed_same_bytes_and_configurable_size(tmp_path):
    small = dataclasses.replace(syn.REALISTIC_PROFILE, image_size=(270, 480))
    a, _ = syn.generate_split(str(tmp_path / "a"), 4, "val", 2, progress=False, profile=small)
    b, _ = syn.generate_split(str(tmp_path / "b"), 4, "val", 2, progress=False, profile=small)
    assert [r["height"] for r in a] == [270, 270] and [r["width"] for r in a] == [480, 480]
    for name in ("proposals.jsonl", "narrations.csv", os.path.join("annotations", "P91_01.json")):
        with open(tmp_path / "a" / name, "rb") as fa, open(tmp_path / "b" / name, "rb") as fb:
            assert fa.read() == fb.read(), name


def test_registered_realistic_split_is_generated_on_first_use(tmp_path):
    names = register_synthetic(seed=2, num_train=2, num_val=1, num_test=1, image_size=(216, 384),
                               root=str(tmp_path), prefix="test_real", profile="realistic")
    try:
        folder = syn.split_dir(str(tmp_path), 2, "train", 2, (216, 384), "realistic")
        assert "wish_synth_realistic_seed2_216x384" in folder and not os.path.exists(folder)
        dicts = DatasetCatalog.get(names["train"])
        assert len(dicts) == 2 and dicts[0]["height"] == 216
        with open(os.path.join(folder, ".done")) as f:
            assert json.load(f)["profile"]["name"] == "realistic"
        assert MetadataCatalog.get(names["train"]).synthetic["profile"] == "realistic"
        # the default-profile folder of the same numbers is a different one
        assert syn.split_dir(str(tmp_path), 2, "train", 2, (216, 384)) != folder
    finally:
        for n in names.values():
            DatasetCatalog.remove(n)
            MetadataCatalog.remove(n)


def test_unknown_profile_is_named():
    with pytest.raises(ValueError, match="huge"):
        syn.get_profile("huge")
    assert np.isclose(sum(syn.REALISTIC_PROFILE.free_counts), 1.0)
