"""Stage 1 on touching pairs only (MODEL.WISH.STAGE1.TOUCHING_PAIRS_ONLY, the video benchmark's setting): a pair
whose contact zone is empty cannot explain a narration in the InfoNCE nor become a pseudo-label, even when its
(whole-frame) embedding matches the narration best; off, everything is as before. The video benchmark trains with
it on and without the both-hands rule (docs/VIDEO.md section 6)."""
import os

import torch
import torch.nn.functional as F

from wish_d2.modeling.geometry import GEOMETRY_DIM
from wish_d2.modeling.heads import AlignmentHead, ContactMatchingHeads
from wish_d2.modeling.losses import image_narration_scores, image_narration_valid
from wish_d2.modeling.pseudo_labels import pseudo_labels_batched
from wish_d2.modeling.roi_heads import WISHROIHeads
from wish_d2.video import benchmark

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
D = 8


def _unit(*shape, seed=0):
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_scores_and_validity_use_only_the_allowed_pairs():
    # one image, two objects; the narration matches object 1 with the left hand exactly, object 0 only weakly
    p = _unit(1, 1, 2, D)
    w = _unit(1, 2, 2, D, seed=1)
    w[0, 1, 0] = p[0, 0, 0]
    ones = torch.ones(1, 2, dtype=torch.bool)
    hands = torch.tensor([[True, True]])
    phrases = torch.ones(1, 1, dtype=torch.bool)
    S_all = image_narration_scores(w, ones, hands, p, phrases, 1.0)
    assert torch.allclose(S_all, torch.ones(1, 1))  # the exact match wins
    touching = torch.tensor([[[True, True], [False, False]]])  # object 1 touches no hand
    S_touch = image_narration_scores(w, ones, hands, p, phrases, 1.0, touching)
    expected = (w[0, 0] * p[0, 0]).sum(-1).max()
    assert torch.allclose(S_touch, expected.reshape(1, 1)) and float(S_touch) < 0.99
    assert torch.equal(image_narration_scores(w, ones, hands, p, phrases, 1.0, torch.ones(1, 2, 2, dtype=torch.bool)),
                       S_all)
    assert image_narration_valid(ones, hands, phrases, touching).tolist() == [True]
    assert image_narration_valid(ones, hands, phrases, torch.zeros(1, 2, 2, dtype=torch.bool)).tolist() == [False]


def _heads(touching: bool) -> WISHROIHeads:
    torch.manual_seed(0)
    common = dict(visual_dim=D, geometry_dim=GEOMETRY_DIM, hidden_dim=16, use_contact=True)
    return WISHROIHeads(alignment=AlignmentHead(embed_dim=8, pair_visual="contact", **common),
                        heads=ContactMatchingHeads(**common), stage="stage1", touching_pairs_only=touching)


def _batch():
    """Two images, three objects; in image 0 only object 2 touches the left hand and nothing touches the right
    hand; in image 1 nothing touches any hand."""
    B, N = 2, 3
    geom = torch.zeros(B, N, 2, GEOMETRY_DIM)
    geom[..., 6] = 0.3  # box gap: far apart
    geom[0, 2, 0, 0], geom[0, 2, 0, 6] = 0.4, 0.0
    return {"v": _unit(B, N, D), "v_hands": _unit(B, 2, D, seed=1), "v_contact": _unit(B, N, 2, D, seed=2),
            "geom": geom, "text": _unit(B, 1, 2, D, seed=3), "obj_valid": torch.ones(B, N, dtype=torch.bool),
            "phrase_valid": torch.ones(B, 1, dtype=torch.bool), "hand_present": torch.ones(B, 2, dtype=torch.bool)}


def test_pseudo_labels_only_name_objects_the_hand_touches():
    batch = _batch()
    heads = _heads(touching=True)
    labels = pseudo_labels_batched(heads.pseudo_scores(batch), batch["hand_present"], threshold=-1e9,
                                   obj_valid=batch["obj_valid"], phrase_valid=batch["phrase_valid"])
    assert labels.obj_idx.tolist() == [[2, -1], [-1, -1]]  # even at the lowest threshold
    assert labels.candidate_idx.tolist() == [[2, -1], [-1, -1]]
    off = _heads(touching=False)
    assert (off.pseudo_scores(batch) > -100).all()  # off: every pair is a candidate, as before
    labels_off = pseudo_labels_batched(off.pseudo_scores(batch), batch["hand_present"], threshold=-1e9)
    assert (labels_off.obj_idx >= 0).all()


def test_alignment_loss_leaves_out_images_without_a_touching_pair():
    batch = _batch()
    heads = _heads(touching=True)
    heads.train()
    # image 1 has no touching pair: one valid image is left, and InfoNCE needs two -> a graph-connected zero
    loss = heads.alignment_loss(batch)
    assert float(loss.detach()) == 0.0 and loss.requires_grad
    off = _heads(touching=False)
    assert float(off.alignment_loss(batch)) > 0.0


def test_video_benchmark_trains_on_touching_pairs_without_the_both_hands_rule(tmp_path):
    config = os.path.join(ROOT, "configs", "wish_synthetic.yaml")
    cfg = benchmark._cfg(config, str(tmp_path), benchmark.BenchmarkSize(), 0)
    assert cfg.MODEL.WISH.STAGE1.TOUCHING_PAIRS_ONLY is True and cfg.MODEL.WISH.PSEUDO.BOTH_RULE is False
    args = WISHROIHeads.from_config(cfg, D)
    assert args["touching_pairs_only"] is True and args["both_rule"] is False
    frame_rules = benchmark.BenchmarkSize(touching_pairs_only=False, both_rule=True)
    cfg = benchmark._cfg(config, str(tmp_path), frame_rules, 0)
    assert cfg.MODEL.WISH.STAGE1.TOUCHING_PAIRS_ONLY is False and cfg.MODEL.WISH.PSEUDO.BOTH_RULE is True
