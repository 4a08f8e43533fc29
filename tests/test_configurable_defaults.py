"""A module built by hand is the module a default config builds: every ``@configurable`` keyword argument is either
required or defaults to ``add_wish_config``'s value, and so do the plain-torch heads' arguments that mirror the
config."""
import inspect

import pytest
import torch
from torch import nn

import wish_d2  # noqa: F401  registers everything


def _default_cfg():
    from detectron2.config import get_cfg

    from wish_d2 import add_wish_config

    cfg = get_cfg()
    add_wish_config(cfg)
    # which modules to build (configs/Base-WISH.yaml); every value they are built with is add_wish_config's
    cfg.MODEL.META_ARCHITECTURE, cfg.MODEL.ROI_HEADS.NAME = "WISH", "WISHROIHeads"
    cfg.MODEL.PROPOSAL_GENERATOR.NAME = "PrecomputedMaskProposals"
    cfg.MODEL.DEVICE = "cpu"
    return cfg


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return list(a) == list(b)
    return a == b


def _heavy_builders_stubbed(monkeypatch):
    """from_config of the segmenters loads SAM and Grounding DINO: stand-ins, the keyword values are what count."""
    from wish_d2.modeling import proposal_generators
    from wish_d2.modeling.segmenters import gsam, sam

    monkeypatch.setattr(sam, "build_sam", lambda *a, **k: nn.Identity())
    monkeypatch.setattr(gsam, "build_sam", lambda *a, **k: nn.Identity())
    monkeypatch.setattr(gsam, "load_grounding_dino", lambda *a, **k: (nn.Identity(), object()))
    monkeypatch.setattr(proposal_generators, "build_segmenter", lambda *a, **k: nn.Identity())


def _configurables():
    from wish_d2.data.mappers import WISHOnlineMapper
    from wish_d2.modeling.meta_arch import WISH
    from wish_d2.modeling.proposal_generators import GSAMProposals, PrecomputedMaskProposals, SAMProposals
    from wish_d2.modeling.roi_heads import WISHROIHeads
    from wish_d2.modeling.segmenters import GSAMSegmenter, SAMSegmenter

    return {
        "WISHROIHeads": (WISHROIHeads, lambda cfg: WISHROIHeads.from_config(cfg, {"clip": 8})),
        "WISH": (WISH, None),  # its from_config builds a CLIP: compared by building below
        "PrecomputedMaskProposals": (PrecomputedMaskProposals, lambda cfg: PrecomputedMaskProposals.from_config(cfg)),
        "SAMProposals": (SAMProposals, lambda cfg: SAMProposals.from_config(cfg)),
        "GSAMProposals": (GSAMProposals, lambda cfg: GSAMProposals.from_config(cfg)),
        "SAMSegmenter": (SAMSegmenter, lambda cfg: SAMSegmenter.from_config(cfg)),
        "GSAMSegmenter": (GSAMSegmenter, lambda cfg: GSAMSegmenter.from_config(cfg)),
        "WISHOnlineMapper": (WISHOnlineMapper, lambda cfg: WISHOnlineMapper.from_config(cfg)),
    }


def test_every_configurable_class_is_checked():
    """A new @configurable class in the package must be added above."""
    import ast
    import os

    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "wish_d2")
    found = set()
    for folder, _, files in os.walk(root):
        for f in files:
            if f.endswith(".py"):
                tree = ast.parse(open(os.path.join(folder, f), encoding="utf-8").read())
                for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
                    for fn in cls.body:
                        if isinstance(fn, ast.FunctionDef) and fn.name == "__init__" and any(
                                getattr(d, "id", None) == "configurable" for d in fn.decorator_list):
                            found.add(cls.name)
    assert found == set(_configurables())


@pytest.mark.parametrize("name", [n for n, (_, f) in _configurables().items() if f is not None])
def test_keyword_defaults_are_the_config_defaults(name, monkeypatch):
    _heavy_builders_stubbed(monkeypatch)
    cls, from_config = _configurables()[name]
    args = from_config(_default_cfg())
    params = inspect.signature(cls.__init__.__wrapped__).parameters
    for key, value in args.items():
        default = params[key].default
        if default is not inspect.Parameter.empty and not isinstance(value, nn.Module):
            assert _same(default, value), f"{name}({key}={default!r}) but the default config gives {value!r}"
    required = [k for k, p in params.items() if k != "self" and p.default is inspect.Parameter.empty
                and p.kind == p.KEYWORD_ONLY]
    assert set(required) <= set(args), f"{name}: from_config does not give {set(required) - set(args)}"


def _describe(module: nn.Module):
    """Every submodule's plain attributes (not its tensors), by name: what a constructor argument decides."""
    out = {}
    for prefix, m in module.named_modules():
        attrs = {k: v for k, v in vars(m).items()
                 if not k.startswith("_") and not isinstance(v, (torch.Tensor, nn.Module)) and k != "training"}
        out[prefix or "."] = (type(m).__name__, attrs)
    return out


def test_heads_built_by_hand_equal_the_default_config_heads():
    """The issue this guards: WISHROIHeads(stage="stage2", match_null=False) and heads with pair_visual="all",
    match_both_hands=False by hand, against "all", True, "contact", True from the config."""
    from wish_d2.modeling.geometry import GEOMETRY_DIM
    from wish_d2.modeling.heads import AlignmentHead, ContactMatchingHeads
    from wish_d2.modeling.roi_heads import WISHROIHeads, build_wish_heads

    torch.manual_seed(0)
    from_cfg = build_wish_heads(_default_cfg(), {"clip": 16})
    torch.manual_seed(0)
    by_hand = WISHROIHeads(alignment=AlignmentHead(16, GEOMETRY_DIM), heads=ContactMatchingHeads(16, GEOMETRY_DIM))
    assert _describe(by_hand) == _describe(from_cfg)
    a, b = by_hand.state_dict(), from_cfg.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (from_cfg.stage, from_cfg.match_null) == ("all", True)
    assert (from_cfg.alignment.pair_visual, from_cfg.heads.match_both_hands) == ("contact", True)
    assert from_cfg.heads.pair_visual == "all"


def test_model_built_by_hand_equals_the_default_config_model():
    from detectron2.modeling import build_model

    from wish_d2.modeling.meta_arch import WISH

    cfg = _default_cfg()
    cfg.MODEL.WISH.CLIP.MODEL_NAME = "WISH-Test-ViT"
    model = build_model(cfg)
    by_hand = WISH(clip=model.clip, proposal_generator=model.proposal_generator, hand_source=model.hand_source,
                   roi_heads=model.roi_heads)
    assert _describe(by_hand) == _describe(model)
