"""Training-free baselines: the open-vocabulary rule on hand-made embeddings, and through the WISH model."""
import pytest
import torch
from detectron2.modeling import build_model

from wish_d2.data.mappers import WISHOnlineMapper
from wish_d2.engine.data import dataset_dicts
from wish_d2.modeling.baselines import open_vocab_scores
from wish_d2.modeling.inference import select_in_hand

from wish_fixtures import NOUNS, register_tiny_dataset, tiny_cfg


def _vocab():
    """Two nouns (rows 0, 1) and one background prompt (row 2), orthogonal."""
    return torch.eye(4)[:3]


def test_open_vocab_prefers_the_noun_like_proposal_near_each_hand():
    # proposal 0: a noun, by the left hand; 1: background, by the left hand; 2: a noun, far from both hands;
    # 3: a noun, by the right hand
    v = torch.tensor([[1.0, 0, 0, 0], [0, 0, 1.0, 0], [0, 1.0, 0, 0], [0, 1.0, 0, 0.1]])[None]
    near = torch.tensor([[0.9, 0.0], [1.0, 0.0], [0.0, 0.0], [0.0, 0.8]])  # [N, hand]
    geom = torch.zeros(1, 4, 2, 3)
    geom[0, :, :, 0] = near
    s = open_vocab_scores(v, geom, _vocab(), num_nouns=2)
    assert s.shape == (1, 4, 2) and torch.isfinite(s).all()
    assert s[0, :, 0].argmax() == 0  # not the background region, though it overlaps the hand more
    assert s[0, :, 1].argmax() == 3  # not the noun far from the hand
    sel = select_in_hand(s[0], s[0], torch.ones(4, dtype=torch.bool), torch.ones(2, dtype=torch.bool),
                         method="matching_only")
    assert sorted((i, c) for i, c, _ in sel) == [(0, 0), (3, 1)]


def test_open_vocab_scores_stay_finite_without_any_nearby_proposal():
    v = torch.randn(2, 5, 4)
    s = open_vocab_scores(v, torch.zeros(2, 5, 2, 3), _vocab(), num_nouns=2)
    assert torch.isfinite(s).all()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("ov")
    register_tiny_dataset(str(root / "data"), name="wish_ov", n=4)
    return root


def test_open_vocab_runs_through_the_model_with_the_dataset_taxonomy(tiny):
    cfg = tiny_cfg(tiny / "out", train="wish_ov")
    cfg.merge_from_list(["MODEL.WISH.METHOD", "open_vocab"])
    model = build_model(cfg).eval()
    mapper = WISHOnlineMapper(is_train=False)
    xs = [mapper(d) for d in dataset_dicts("wish_ov")]
    with torch.no_grad():
        outs = model(xs)
    emb, n = model.vocabulary_embeddings()
    assert n == len(NOUNS) and emb.shape[0] == n + 2  # the training dataset's registered taxonomy
    for x, out in zip(xs, outs):  # every present hand gets an object (the rule always keeps one)
        assert len(out["instances"]) >= 1 and torch.isfinite(out["instances"].scores).all()


def test_open_vocab_without_a_taxonomy_says_how_to_give_one(tiny):
    cfg = tiny_cfg(tiny / "out2", train="wish_ov")
    model = build_model(cfg).eval()
    model.taxonomy_datasets = ()
    with pytest.raises(ValueError, match="MODEL.WISH.TAXONOMY.FILE"):
        model.vocabulary_embeddings()
