"""The multi-grip variant of the synthetic world: a share of one-hand grips hold a second object, the narration
names both, the VISOR JSON lists both as the hand's in-contact objects, and the loader gives the hand one
annotation per object (its class covers their union). The default profile is untouched (pinned by
test_synthetic_package.py)."""
import collections
import csv
import os

import pytest

from wish_d2.data import synthetic as syn
from wish_d2.data.synthetic.profiles import DEFAULT_PROFILE
from wish_d2.data.synthetic.taxonomy import CATEGORIES
from wish_d2.data.visor import load_epic_visor

SIZE = (96, 96)


@pytest.fixture(scope="module")
def multi_split(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("multi") / "val")
    records, _ = syn.generate_split(out, 0, "val", 24, SIZE, progress=False, profile=syn.multi_grip_profile(0.9))
    return out, records


def multi_hands(record):
    return [c for c, n in collections.Counter(a["category_id"] for a in record["annotations"]).items() if n >= 2]


def test_share_zero_is_the_default_profile():
    assert syn.multi_grip_profile(0.0) is DEFAULT_PROFILE
    p = syn.multi_grip_profile(0.3)
    assert p.name == "multigrip0.3" and p.multi_grip == 0.3 and p.marker()["multi_grip"] == 0.3
    assert "multi_grip" not in syn.REALISTIC_PROFILE.marker()


def test_multi_grip_frames_round_trip_through_the_visor_loader(multi_split):
    out, records = multi_split
    loaded = load_epic_visor(os.path.join(out, "annotations"), os.path.join(out, "images"),
                             os.path.join(out, "narrations.csv"), frame_margin=0)
    assert loaded == records
    multi = [r for r in records if multi_hands(r)]
    assert len(multi) >= 4
    for r in multi:
        assert all(c in (0, 1) for c in multi_hands(r))  # a second object belongs to one hand, never to "both"


def test_narration_names_both_objects_of_a_grip(multi_split):
    out, records = multi_split
    with open(os.path.join(out, "narrations.csv")) as f:
        rows = list(csv.DictReader(f))
    named = 0
    for r, row in zip(records, rows):
        if multi_hands(r):
            nouns = [a["noun"] for a in r["annotations"] if a["category_id"] in multi_hands(r)]
            named += all(n in row["narration"] or n in r["noun_phrases"] for n in nouns)
    # noise (an omitted noun, a synonym, the neighbour swap) hides some; most grips are named in full
    assert named >= 0.5 * len([r for r in records if multi_hands(r)])


def test_second_object_is_a_small_item_of_another_category(multi_split):
    _, records = multi_split
    for r in records:
        for c in multi_hands(r):
            nouns = [a["noun"] for a in r["annotations"] if a["category_id"] == c]
            assert len(set(nouns)) == len(nouns)
            small = {k.name for k in CATEGORIES if k.length[1] <= 0.3}
            assert any(n in small for n in nouns)


def test_a_listed_object_that_is_not_in_the_frame_drops_the_frame(multi_split, tmp_path):
    import json
    import shutil

    out, records = multi_split
    bad = str(tmp_path / "bad")
    shutil.copytree(out, bad)
    path = os.path.join(bad, "annotations", os.listdir(os.path.join(bad, "annotations"))[0])
    with open(path) as f:
        data = json.load(f)
    frame = next(fr for fr in data["video_annotations"]
                 if any(isinstance(e.get("in_contact_object"), list) for e in fr["annotations"]))
    hand = next(e for e in frame["annotations"] if isinstance(e.get("in_contact_object"), list))
    hand["in_contact_object"].append(999)
    with open(path, "w") as f:
        json.dump(data, f)
    loaded = load_epic_visor(os.path.join(bad, "annotations"), os.path.join(bad, "images"),
                             os.path.join(bad, "narrations.csv"), frame_margin=0)
    name = os.path.splitext(frame["image"]["name"])[0]
    assert len(loaded) == len(records) - 1 and all(d["image_id"] != name for d in loaded)
