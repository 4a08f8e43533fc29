"""open_clip builder / loader: seeded random init, local checkpoint round trip, clear errors, registry entry."""
import pytest
import torch

from wish_d2.modeling.clip_encoder import build_clip_encoder, build_mask_pooled_clip, build_open_clip
from wish_d2.modeling.clip_pooling import MaskPooledCLIP

NAME = "WISH-Test-ViT"


def _embed(clip):
    g = torch.Generator().manual_seed(0)
    raw = [torch.randint(0, 256, (3, 64, 64), generator=g, dtype=torch.uint8)]
    m = torch.zeros(2, 64, 64, dtype=torch.bool)
    m[0, 10:40, 5:30] = True
    m[1] = True
    x = clip.preprocess(raw)
    return clip.pool(x, [m])[0], clip.encode_text(["cup in contact with the left hand"])


def test_random_init_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = build_open_clip(NAME, init_seed=0)
    after = torch.rand(1)
    assert torch.equal(before, after)
    b = build_open_clip(NAME, init_seed=0)
    c = build_open_clip(NAME, init_seed=1)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["visual.proj"], sc["visual.proj"])
    assert not a.training and not any(p.requires_grad for p in a.parameters())


def test_checkpoint_round_trip(tmp_path):
    src = build_mask_pooled_clip(NAME, init_seed=7)
    path = tmp_path / "tiny_clip.pth"
    torch.save(src.model.state_dict(), path)
    loaded = build_mask_pooled_clip(NAME, pretrained=str(path), init_seed=0)  # seed must not matter now
    (v1, t1), (v2, t2) = _embed(src), _embed(loaded)
    assert torch.equal(v1, v2) and torch.equal(t1, t2)
    other = build_mask_pooled_clip(NAME, init_seed=0)
    assert not torch.allclose(_embed(other)[0], v1)


def test_missing_checkpoint_names_path_and_remedy(tmp_path):
    path = tmp_path / "nope" / "clip.pth"
    with pytest.raises(FileNotFoundError) as e:
        build_open_clip(NAME, pretrained=str(path))
    assert str(path) in str(e.value) and "PRETRAINED" in str(e.value)


def test_corrupt_checkpoint_names_path(tmp_path):
    path = tmp_path / "corrupt.pth"
    path.write_bytes(b"this is not a torch checkpoint" * 10)
    with pytest.raises(RuntimeError) as e:
        build_open_clip(NAME, pretrained=str(path))
    assert str(path) in str(e.value)


def test_wrong_architecture_checkpoint_names_path(tmp_path):
    path = tmp_path / "other_arch.pth"
    sd = build_open_clip(NAME).state_dict()
    sd.pop("visual.proj")
    torch.save(sd, path)
    with pytest.raises(RuntimeError) as e:
        build_open_clip(NAME, pretrained=str(path))
    assert str(path) in str(e.value)


def test_unknown_model_name():
    with pytest.raises(ValueError, match="Unknown open_clip model"):
        build_open_clip("No-Such-ViT")


def test_registry_builds_from_cfg(tmp_path):
    from detectron2.config import get_cfg

    from wish_d2 import add_wish_config
    from wish_d2.registry import CLIP_ENCODER_REGISTRY

    assert "OpenCLIPEncoder" in CLIP_ENCODER_REGISTRY
    cfg = get_cfg()
    add_wish_config(cfg)
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WISH.CLIP.MODEL_NAME = NAME
    cfg.MODEL.WISH.CLIP.INIT_SEED = 3
    cfg.MODEL.WISH.CLIP.MASK_SOFT_COVERAGE = False
    enc = build_clip_encoder(cfg)
    assert isinstance(enc, MaskPooledCLIP) and enc.soft_coverage is False and enc.embed_dim == 32
    ref = build_mask_pooled_clip(NAME, init_seed=3, soft_coverage=False)
    assert torch.equal(_embed(enc)[0], _embed(ref)[0])
    cfg.MODEL.WISH.CLIP.PRETRAINED = str(tmp_path / "missing.pth")
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        build_clip_encoder(cfg)


def test_building_leaves_logging_alone(caplog, monkeypatch):
    """Only open_clip's 'initialized randomly' record is dropped, and only during the build: a warning that any
    other logger emits meanwhile still gets through, and the root logging state is the same afterwards."""
    import logging

    import open_clip

    root = logging.getLogger()
    state = lambda: (logging.root.manager.disable, root.level, list(root.handlers), list(root.filters))  # noqa: E731
    before = state()
    create = open_clip.create_model

    def create_and_warn(*args, **kwargs):
        logging.getLogger("wish_d2.some_other_part").warning("unrelated warning while CLIP is built")
        return create(*args, **kwargs)

    monkeypatch.setattr(open_clip, "create_model", create_and_warn)
    with caplog.at_level(logging.INFO):
        build_mask_pooled_clip(NAME, init_seed=0)
    assert state() == before
    messages = [r.getMessage() for r in caplog.records]
    assert "unrelated warning while CLIP is built" in messages
    assert not any("initialized randomly" in m for m in messages)
    logging.getLogger("wish_d2.after").warning("after the build")
    assert caplog.records[-1].getMessage() == "after the build"
