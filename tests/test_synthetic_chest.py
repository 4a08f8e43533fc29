"""The chest-camera profile of the synthetic world, and the default profile left byte for byte as it was."""
import hashlib
import json

import numpy as np

from wish_d2.data.hand_side import assign_sides, mask_entry_x
from wish_d2.data.synthetic import CHEST_PROFILE, get_profile, render_frame

# sha256 of the first six train frames of seed 0 (PNG bytes + hand polygons), from the generator before the chest
# profile existed: the benchmark, and every number measured on it, stays the same.
DEFAULT_DIGEST = "c20aa19968e5f921b620eccf446097873be9eed202bf6d2e19004155cbbaa318"


def test_default_profile_is_unchanged():
    h = hashlib.sha256()
    for i in range(6):
        f = render_frame(0, "train", i, 160, 160)
        h.update(f["image"])
        h.update(json.dumps({s: hd["polys"] for s, hd in f["hands"].items()}, default=lambda o: o.tolist()).encode())
    assert h.hexdigest() == DEFAULT_DIGEST


def test_chest_camera_hands_enter_from_below_and_cross_the_midline():
    assert get_profile("chest") is CHEST_PROFILE and CHEST_PROFILE.marker()["camera"] == "chest"
    assert "camera" not in get_profile("realistic").marker()  # existing realistic splits stay valid
    crossed = split_wrong = entry_wrong = hands = own_side = 0
    for i in range(40):
        f = render_frame(0, "train", i, 160, 160, camera="chest")
        sides = list(f["hands"])
        masks = [f["hands"][s]["mask"] for s in sides]
        for s, m in zip(sides, masks):
            hands += 1
            entry = mask_entry_x(m)  # None: the arm's bottom is hidden (an object over it), rare
            own_side += int(entry is not None and m[-1].any() and (entry < 80) == (s == "left"))
            crossed += int((np.nonzero(m)[1].mean() < 80) != (s == "left"))
        split_wrong += sum(p != s for p, s in zip(assign_sides(masks, 160), sides))
        entry_wrong += sum(p != s for p, s in zip(assign_sides(masks, 160, rule="entry"), sides))
    assert own_side >= 0.95 * hands  # arms enter through the bottom edge, each on its own side
    assert hands > 40 and crossed >= 0.1 * hands  # the case where the vertical split breaks
    assert split_wrong >= 0.05 * hands and entry_wrong < split_wrong
