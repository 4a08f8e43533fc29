"""Pair features and heads: shapes, normalisation, ablation switches, NaN-freedom on zero vectors."""
import pytest
import torch

from wish_d2.modeling.heads import AlignmentHead, ContactMatchingHeads, pair_feature_dim, pair_features

B, N, D, G, E = 2, 5, 16, 8, 12


def _inputs():
    torch.manual_seed(0)
    v = torch.randn(B, N, D) * 5
    vh = torch.randn(B, 2, D)
    vh[1, 1] = 0  # absent hand
    return v, vh, torch.randn(B, N, 2, G)


def test_pair_features():
    v, vh, geom = _inputs()
    f = pair_features(v, vh, geom)
    assert f.shape == (B, N, 2, pair_feature_dim(D, G)) and torch.isfinite(f).all()
    assert torch.allclose(f[..., :D].norm(dim=-1), torch.ones(B, N, 2), atol=1e-5)
    assert torch.equal(f[0, 3, 1, D:2 * D], f[0, 0, 1, D:2 * D])  # hand part shared across objects
    assert f[1, :, 1, D:2 * D].abs().max() == 0  # zero hand stays zero
    assert torch.equal(f[..., 2 * D:], geom)
    nv = pair_features(v, vh, geom, use_visual=False)
    assert nv.shape == f.shape and nv[..., :2 * D].abs().max() == 0
    ng = pair_features(v, vh, geom, use_geometry=False)
    assert ng.shape == (B, N, 2, 2 * D) and torch.equal(ng, f[..., :2 * D])


def test_alignment_head():
    v, vh, geom = _inputs()
    head = AlignmentHead(D, G, hidden_dim=32, embed_dim=E, dropout=0.0)
    text = torch.randn(B, 3, 2, D)
    w, p = head(v, vh, geom, text)
    assert w.shape == (B, N, 2, E) and p.shape == (B, 3, 2, E)
    assert torch.allclose(w.norm(dim=-1), torch.ones(B, N, 2), atol=1e-5)
    assert torch.allclose(p.norm(dim=-1), torch.ones(B, 3, 2), atol=1e-5)
    # MLPt is shared across sides: identical text on both sides gives identical p
    same = text[:, :, :1].expand(B, 3, 2, D)
    p2 = head.forward_text(same)
    assert torch.allclose(p2[:, :, 0], p2[:, :, 1])
    (w.sum() + p.sum()).backward()
    assert all(q.grad is not None for q in head.parameters())
    head_geo = AlignmentHead(D, G, 32, E, 0.0, use_visual=True, use_geometry=False)
    assert head_geo.forward_pairs(v, vh, geom).shape == (B, N, 2, E)


def test_contact_matching_heads():
    v, vh, geom = _inputs()
    heads = ContactMatchingHeads(D, G, hidden_dim=32, dropout=0.0)
    c, a = heads(v, vh, geom)
    assert c.shape == (B, N, 2) and a.shape == (B, N, 2) and torch.isfinite(c).all()
    assert not torch.allclose(c, a)
    c0, a0 = heads(v[:, :0], vh, geom[:, :0])
    assert c0.shape == (B, 0, 2)
    heads_nv = ContactMatchingHeads(D, G, 32, 0.0, use_visual=False)
    c1, _ = heads_nv(v, vh, geom)
    c2, _ = heads_nv(torch.randn_like(v), torch.randn_like(vh), geom)
    assert torch.allclose(c1, c2)  # visual features off: only geometry matters


def test_pair_features_contact_region():
    v, vh, geom = _inputs()
    vc = torch.randn(B, N, 2, D) * 3
    f = pair_features(v, vh, geom, v_contact=vc, use_contact=True)
    assert f.shape == (B, N, 2, pair_feature_dim(D, G, use_contact=True)) == (B, N, 2, 3 * D + G)
    assert torch.allclose(f[..., 2 * D:3 * D], torch.nn.functional.normalize(vc, dim=-1))
    assert torch.equal(f[..., 3 * D:], geom)
    # visual features off zeroes the contact-zone embedding too; a missing one is zeros
    assert pair_features(v, vh, geom, False, True, vc, True)[..., :3 * D].abs().max() == 0
    assert pair_features(v, vh, geom, v_contact=None, use_contact=True)[..., 2 * D:3 * D].abs().max() == 0
    heads = ContactMatchingHeads(D, G, hidden_dim=32, dropout=0.0, use_contact=True)
    c, a = heads(v, vh, geom, vc)
    c2, _ = heads(v, vh, geom, torch.randn_like(vc))
    assert c.shape == (B, N, 2) and not torch.allclose(c, c2)  # the contact zone is used
    w = AlignmentHead(D, G, 32, E, 0.0, use_contact=True).forward_pairs(v, vh, geom, vc)
    assert w.shape == (B, N, 2, E)


def test_alignment_pair_visual_contact_ignores_object_and_hand_appearance():
    v, vh, geom = _inputs()
    vc = torch.randn(B, N, 2, D)
    head = AlignmentHead(D, G, 32, E, 0.0, use_contact=True, pair_visual="contact").eval()
    w1 = head.forward_pairs(v, vh, geom, vc)
    assert torch.allclose(w1, head.forward_pairs(torch.randn_like(v), torch.randn_like(vh), geom, vc))
    assert not torch.allclose(w1, head.forward_pairs(v, vh, geom, torch.randn_like(vc)))
    import pytest

    with pytest.raises(ValueError):
        AlignmentHead(D, G, 32, E, pair_visual="object")


def test_stage2_pair_visual_contact_ignores_object_and_hand_appearance():
    v, vh, geom = _inputs()
    vc = torch.randn(B, N, 2, D)
    heads = ContactMatchingHeads(D, G, hidden_dim=32, dropout=0.0, pair_visual="contact").eval()
    c1, a1 = heads(v, vh, geom, vc)
    c2, a2 = heads(torch.randn_like(v), torch.randn_like(vh), geom, vc)
    assert torch.allclose(c1, c2) and torch.allclose(a1, a2)
    assert not torch.allclose(c1, heads(v, vh, geom, torch.randn_like(vc))[0])
    c3, _ = ContactMatchingHeads(D, G, hidden_dim=32, dropout=0.0).eval()(torch.randn_like(v), vh, geom, vc)
    assert c3.shape == c1.shape  # "all" (the default) has the same width: checkpoints stay comparable
    with pytest.raises(ValueError):
        ContactMatchingHeads(D, G, pair_visual="object")


@pytest.mark.parametrize("both", [True, False])
def test_matching_head_sees_the_other_hand(both):
    v, vh, geom = _inputs()
    heads = ContactMatchingHeads(D, G, hidden_dim=32, dropout=0.0, match_both_hands=both)
    c, a = heads(v, vh, geom)
    geom2 = geom.clone()
    geom2[:, :, 1] += 1.0  # move every object relative to the right hand only
    c2, a2 = heads(v, vh, geom2)
    assert torch.equal(c[..., 0], c2[..., 0])  # contactness of (i, left) reads only the left hand's pair
    assert torch.equal(a[..., 0], a2[..., 0]) != both  # matching of (i, left) also reads the right hand's pair
    assert not torch.allclose(c[..., 1], c2[..., 1]) and not torch.allclose(a[..., 1], a2[..., 1])
