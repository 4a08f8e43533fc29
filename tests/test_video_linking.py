"""Linking proposals across frames on hand-made masks: a moving object keeps its track, a new object gets a new
one, a similar-looking object elsewhere does not steal the track, unseen tracks are forgotten (bounded), mismatched
inputs raise a clear error, and a split of an object overlaps it fully."""
import pytest
import torch

from wish_d2.video.linking import ObjectLinker, mask_iou_matrix, overlap_matrix, shrink_masks


def _box(x, y, w=8, h=8, size=32):
    m = torch.zeros(size, size, dtype=torch.bool)
    m[y:y + h, x:x + w] = True
    return m


def test_mask_iou_matrix():
    a = torch.stack([_box(0, 0), _box(16, 16)])
    b = torch.stack([_box(0, 0), _box(4, 0)])
    iou = mask_iou_matrix(a, b)
    assert iou.shape == (2, 2)
    assert abs(float(iou[0, 0]) - 1.0) < 1e-6
    assert abs(float(iou[0, 1]) - 32 / 96) < 1e-6
    assert float(iou[1, 0]) == 0.0
    assert mask_iou_matrix(a[:0], b).shape == (0, 2)


def test_shrink_masks_bounds_the_side():
    m = torch.zeros(1, 200, 100, dtype=torch.bool)
    m[0, :100] = True
    s = shrink_masks(m, 64)
    assert s.shape == (1, 64, 32) and s[0, :30].all() and not s[0, 34:].any()


def test_moving_object_keeps_its_track_and_new_one_gets_a_new_id():
    e_cup, e_knife = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    linker = ObjectLinker(emb_weight=0.5, min_score=0.5, max_age=3)
    ids0 = linker.update(torch.stack([_box(2, 2)]), e_cup[None])
    ids1 = linker.update(torch.stack([_box(5, 3), _box(20, 20)]), torch.stack([e_cup, e_knife]))
    ids2 = linker.update(torch.stack([_box(20, 21), _box(8, 4)]), torch.stack([e_knife, e_cup]))
    assert ids1[0] == ids0[0] and ids1[1] != ids0[0]
    assert ids2 == [ids1[1], ids1[0]]


def test_same_looking_object_far_away_does_not_continue_the_track():
    e = torch.tensor([1.0, 0.0])
    linker = ObjectLinker(emb_weight=0.4, min_score=0.5, max_age=3)
    a = linker.update(torch.stack([_box(0, 0)]), e[None])
    b = linker.update(torch.stack([_box(22, 22)]), e[None])  # IoU 0, cos 1 -> 0.4 < 0.5
    assert a != b


def test_unseen_tracks_are_forgotten_after_max_age():
    e = torch.tensor([1.0, 0.0])
    linker = ObjectLinker(max_age=2)
    first = linker.update(torch.stack([_box(0, 0)]), e[None])[0]
    for _ in range(3):
        linker.update(torch.zeros(0, 32, 32, dtype=torch.bool), torch.zeros(0, 2))
    assert linker.track(first) is None and len(linker.tracks) == 0
    again = linker.update(torch.stack([_box(0, 0)]), e[None])[0]
    assert again != first


def test_mismatched_embeddings_or_mask_size_raise_a_clear_error():
    linker = ObjectLinker()
    linker.update(torch.stack([_box(0, 0)]), torch.ones(1, 3))
    with pytest.raises(ValueError, match="frame 1: embeddings"):
        linker.update(torch.stack([_box(0, 0)]), torch.ones(1, 5))
    with pytest.raises(ValueError, match="masks"):
        linker.update(torch.zeros(1, 16, 16, dtype=torch.bool), torch.ones(1, 3))


def test_overlap_matrix_counts_a_split_as_full_overlap():
    whole, half, far = _box(0, 0, 8, 8), _box(0, 0, 4, 8), _box(20, 20)
    ov = overlap_matrix(torch.stack([half, far]), torch.stack([whole]))
    assert ov.shape == (2, 1) and float(ov[0, 0]) == 1.0 and float(ov[1, 0]) == 0.0
    assert overlap_matrix(torch.zeros(0, 32, 32, dtype=torch.bool), whole[None]).shape == (0, 1)
