"""The shipped web-pretrained encoder: the file is the one its manifest describes, the manifest's settings are the
release config's, the script's first steps reproduce the manifest's losses, a damaged or missing file fails with a
clear error, and the long run resumes exactly."""
import json
import os
import shutil

import numpy as np
import pytest
import torch

from wish_d2.engine.setup import build_cfg
from wish_d2.modeling.clip_encoder import build_mask_pooled_clip, build_open_clip
from wish_d2.pretrain import WebPretrainSettings, pretrain_web_clip
from wish_d2.modeling.shipped import MODEL_ZOO_DIR, manifest_path, resolve_shipped, verify_shipped
from wish_d2.pretrain.store import settings_from_cfg
from wish_d2.pretrain.zero_shot import synthetic_zero_shot_top1

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = os.path.join(MODEL_ZOO_DIR, "WISH-Tiny-ViT-web.pt")
RELEASE_CONFIG = os.path.join(ROOT, "configs", "web_clip_release.yaml")
TINY = dict(model_name="WISH-Test-ViT", image_size=64, batch_size=4, steps=4, warmup=1, num_pairs=0,
            unlocked_image_groups=-1, object_share=0.5)


def test_shipped_file_matches_its_manifest_and_the_release_config():
    manifest = verify_shipped(SHIPPED)
    assert manifest["file"]["bytes"] == os.path.getsize(SHIPPED) <= 25 * 2 ** 20
    cfg = build_cfg(RELEASE_CONFIG, freeze=False)
    assert manifest["settings"] == settings_from_cfg(cfg).as_dict()
    assert "--ship" in manifest["command"] and "web_clip_release.yaml" in manifest["command"]
    curve = manifest["probe_curve"]
    assert curve[-1]["step"] == manifest["settings"]["steps"] and all("val" in e and "test" in e for e in curve)


def test_shipped_encoder_loads_through_the_config_key_and_knows_nouns():
    cfg = build_cfg(os.path.join(ROOT, "configs", "wish_synthetic_pretrained.yaml"), freeze=False)
    assert cfg.MODEL.WISH.CLIP.PRETRAINED == "wish_d2://WISH-Tiny-ViT-web.pt"
    c = cfg.MODEL.WISH.CLIP
    enc = build_mask_pooled_clip(c.MODEL_NAME, c.PRETRAINED, c.INIT_SEED)
    rand = build_mask_pooled_clip(c.MODEL_NAME, "", c.INIT_SEED)
    pre = synthetic_zero_shot_top1(enc, 0, 12, (160, 160), "val")["zero_shot_top1"]
    base = synthetic_zero_shot_top1(rand, 0, 12, (160, 160), "val")["zero_shot_top1"]
    assert pre > base + 0.15 and pre > 0.3, (pre, base)


def test_first_steps_of_the_script_reproduce_the_manifest_losses():
    """The file is the script's output: replaying the run's first steps from the seeded init gives the logged
    losses. Float summation order differs between thread counts, hence the tolerance (measured well under it)."""
    manifest = verify_shipped(SHIPPED)
    settings = WebPretrainSettings(**manifest["settings"])
    _, losses, _ = pretrain_web_clip(settings, stop_at=2)
    np.testing.assert_allclose(losses, manifest["loss_first"][:2], rtol=0, atol=2e-3)


@pytest.mark.parametrize("damage", ["flip", "truncate", "missing", "no_manifest"])
def test_damaged_or_missing_shipped_file_gives_a_clear_error(tmp_path, damage):
    path = str(tmp_path / "enc.pt")
    shutil.copy(SHIPPED, path)
    shutil.copy(manifest_path(SHIPPED), manifest_path(path))
    if damage == "flip":
        data = bytearray(open(path, "rb").read())
        data[len(data) // 2] ^= 0xFF
        open(path, "wb").write(bytes(data))
    elif damage == "truncate":
        open(path, "r+b").truncate(1000)
    elif damage == "missing":
        os.remove(path)
    else:
        os.remove(manifest_path(path))
    with pytest.raises((ValueError, FileNotFoundError)) as e:
        verify_shipped(path)
    assert "enc.pt" in str(e.value)


@pytest.mark.parametrize("name", ["nothing-here.pt", "../config.py", "model_configs/WISH-Tiny-ViT.json"])
def test_shipped_names_outside_the_model_zoo_are_refused(name):
    with pytest.raises((ValueError, FileNotFoundError)) as e:
        build_open_clip("WISH-Tiny-ViT", "wish_d2://" + name)
    assert "MODEL.WISH.CLIP.PRETRAINED" in str(e.value) and name in str(e.value)


def test_shipped_encoder_of_another_architecture_is_refused_by_name():
    with pytest.raises(ValueError, match="holds 'WISH-Tiny-ViT' weights.*'WISH-Test-ViT'.*PRETRAINED"):
        build_open_clip("WISH-Test-ViT", "wish_d2://WISH-Tiny-ViT-web.pt")


def test_other_values_pass_through_unchanged():
    assert resolve_shipped("") == "" and resolve_shipped("openai") == "openai"
    assert resolve_shipped("/x/y.pt") == "/x/y.pt"


def test_interrupted_run_resumes_to_the_same_model(tmp_path):
    s = WebPretrainSettings(**TINY)
    full, losses_full, _ = pretrain_web_clip(s)
    state = str(tmp_path / "state.pt")
    probes = []
    pretrain_web_clip(s, state_path=state, save_every=2, stop_at=2,
                      on_save=lambda step, m: probes.append(step) or {"marker": step})
    assert probes == [2] and os.path.isfile(state)
    resumed, losses, timings = pretrain_web_clip(s, state_path=state, save_every=2,
                                                 on_save=lambda step, m: {"marker": step})
    assert losses == pytest.approx(losses_full, abs=1e-6)
    assert [e["step"] for e in timings["log"]] == [2, 4]
    for k, v in full.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[k], v, atol=1e-6, rtol=0)


def test_resume_refuses_a_state_of_other_settings(tmp_path):
    state = str(tmp_path / "state.pt")
    pretrain_web_clip(WebPretrainSettings(**TINY), state_path=state, save_every=2, stop_at=2)
    with pytest.raises(ValueError, match="other settings.*lr"):
        pretrain_web_clip(WebPretrainSettings(**{**TINY, "lr": 1e-4}), state_path=state)
    open(state, "wb").write(b"garbage")
    with pytest.raises(RuntimeError, match="cannot resume from .*state.pt"):
        pretrain_web_clip(WebPretrainSettings(**TINY), state_path=state)


def test_object_close_ups_name_their_subject_first_and_leave_other_pairs_alone():
    from wish_d2.data.synthetic.web import web_pair

    plain = [web_pair(3, i) for i in range(6)]
    shared = [web_pair(3, i, object_share=0.0) for i in range(6)]
    assert all(np.array_equal(a["image"], b["image"]) and a["caption"] == b["caption"] for a, b in zip(plain, shared))
    ups = [web_pair(3, i, object_share=1.0) for i in range(12)]
    assert sum(u["caption"] != p["caption"] for u, p in zip(ups, plain + [web_pair(3, i) for i in range(6, 12)])) >= 8
    for u in ups:
        assert not any(w in u["caption"] for w in (" held", " holding", " touch", " near ")), u["caption"]
