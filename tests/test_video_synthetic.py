"""Synthetic videos in the real formats: the VISOR + EPIC-100 loader and the Ego4D narration reader read them back,
entity ids persist across frames, the dense ground truth agrees with the generator's timeline (a handover passes
through "both"), sparse splits annotate every k-th frame, and timing noise moves narration boundaries by at most
the configured seconds."""
import json
import os

import numpy as np
import pytest

from wish_d2.data.ego4d import load_ego4d_narrations
from wish_d2.data.epic_narrations import load_epic_narrations
from wish_d2.data.synthetic.video_script import VideoParams, script_video
from wish_d2.data.synthetic.video_split import (EPIC_FPS, ensure_video_split, held_timeline, narrations_csv,
                                                noisy_interval)
from wish_d2.data.visor import load_epic_visor

PARAMS = VideoParams(seconds=4.0, fps=10, image_size=(96, 96))


@pytest.fixture(scope="module")
def dense(tmp_path_factory):
    return ensure_video_split(str(tmp_path_factory.mktemp("vid")), 0, "test", 1, PARAMS)


def test_loader_reads_every_frame_with_persistent_ids(dense):
    dicts = load_epic_visor(os.path.join(dense, "annotations"), os.path.join(dense, "images"),
                            narrations_csv(dense, 0.0))
    assert len(dicts) == PARAMS.num_frames
    assert [d["frame"] for d in dicts] == sorted(d["frame"] for d in dicts)
    timeline = held_timeline(dense)["P82_01"]
    by_frame = {x["frame"]: x for x in timeline}
    for d in dicts:
        truth = by_frame[d["frame"]]
        cats = sorted(a["category_id"] for a in d["annotations"])
        if truth["left"] is not None and truth["left"] == truth["right"]:
            assert cats == [2]
        else:
            assert cats == sorted([s for s, side in enumerate(("left", "right")) if truth[side] is not None])
    with open(os.path.join(dense, "annotations", "P82_01.json")) as f:
        frames = json.load(f)["video_annotations"]
    names = [{e["id"]: e["name"] for e in fr["annotations"] if "hand" not in e["name"]} for fr in frames]
    for a, b in zip(names, names[1:]):  # an id never changes its noun between frames
        assert all(a[k] == b[k] for k in set(a) & set(b))


def test_sparse_split_annotates_every_kth_frame(tmp_path):
    folder = ensure_video_split(str(tmp_path), 0, "train", 1, VideoParams(seconds=2.0, image_size=(64, 64)),
                                annotate_every=4)
    dicts = load_epic_visor(os.path.join(folder, "annotations"), os.path.join(folder, "images"),
                            narrations_csv(folder, 1.0))
    assert len(dicts) == 5 and len(os.listdir(os.path.join(folder, "images", "P80_01"))) == 20


def test_narrations_in_epic_and_ego4d_formats(dense):
    clean = load_epic_narrations(narrations_csv(dense, 0.0))["P82_01"]
    noisy = load_epic_narrations(narrations_csv(dense, 1.0))["P82_01"]
    assert len(clean.rows) == len(noisy.rows) > 0
    for c, n in zip(sorted(clean.rows, key=lambda r: r.narration_id), sorted(noisy.rows, key=lambda r: r.narration_id)):
        assert c.nouns == n.nouns
        assert abs(c.start_frame - n.start_frame) <= EPIC_FPS + 1 or n.start_frame == n.stop_frame
    points = load_ego4d_narrations(os.path.join(dense, "narrations_ego4d.json"), fps=EPIC_FPS)
    frames, texts = points["P82_01"]
    assert len(texts) == len(clean.rows) and all(t.startswith("#C C ") for t in texts)


def test_noisy_interval():
    assert noisy_interval(100, 200, 0.0, 0.0, 2.0) == (100, 200)
    assert noisy_interval(100, 200, 1.0, -1.0, 1.0) == (150, 150)  # shortened
    assert noisy_interval(100, 200, -1.0, 1.0, 1.0) == (50, 250)  # lengthened
    assert noisy_interval(100, 120, 1.0, -1.0, 1.0) == (110, 110)  # collapsed to its middle
    assert noisy_interval(10, 20, -1.0, 0.0, 1.0) == (0, 20)


def test_script_is_deterministic_and_has_a_handover_somewhere():
    p = VideoParams(seconds=8.0, image_size=(96, 96))
    a = script_video(np.random.default_rng([0, 2, 0, 7]), p)
    b = script_video(np.random.default_rng([0, 2, 0, 7]), p)
    assert [(f["hands"]["left"]["held"], f["hands"]["right"]["held"]) for f in a[1]] == \
        [(f["hands"]["left"]["held"], f["hands"]["right"]["held"]) for f in b[1]]
    both = 0
    for v in range(6):
        frames = script_video(np.random.default_rng([0, 2, v, 7]), p)[1]
        both += sum(f["hands"]["left"]["held"] is not None and f["hands"]["left"]["held"] == f["hands"]["right"]["held"]
                    for f in frames)
    assert both > 0
