"""The synthetic web split and the web-pretrained CLIP: captions never name what is held, the stream is the web
split's own, ClipLoss training lowers the loss, the checkpoint is keyed, checked and reused, and it loads through
MODEL.WISH.CLIP.PRETRAINED like real weights."""
import json
import os
import re

import numpy as np
import pytest
import torch

from wish_d2.data.synthetic import CATEGORIES, render_frame
from wish_d2.data.synthetic.web import caption_for, colour_name, web_pair
from wish_d2.modeling.clip_encoder import build_clip_encoder, build_open_clip
from wish_d2.pretrain import WebPretrainSettings, ensure_web_clip, pretrain_web_clip, web_clip_path

TINY = dict(model_name="WISH-Test-ViT", image_size=64, batch_size=4, steps=2, warmup=1, num_pairs=8,
            unlocked_image_groups=-1)
HOLD_WORDS = re.compile(r"\b(hold|holds|holding|held|grip|grips|gripping|touch|touches|touching|near|in hand|"
                        r"in the hand|carry|carries|carrying|using|uses)\b")


def test_web_pairs_are_deterministic_and_not_benchmark_frames():
    a, b = web_pair(0, 3), web_pair(0, 3)
    assert np.array_equal(a["image"], b["image"]) and a["caption"] == b["caption"]
    assert a["id"].startswith("P99_")
    assert not np.array_equal(a["image"], web_pair(1, 3)["image"])
    import cv2

    for split in ("train", "val", "test"):
        f = render_frame(0, split, 3, 160, 160)
        frame = cv2.imdecode(np.frombuffer(f["image"], np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
        assert not np.array_equal(frame, a["image"])


def test_captions_name_visible_things_never_what_is_held():
    nouns = {c.name for c in CATEGORIES}
    from wish_d2.data.narrations import epic_noun_to_phrase

    nouns |= {epic_noun_to_phrase(s) for c in CATEGORIES for s in c.synonyms}
    named = 0
    for i in range(40):
        cap = web_pair(5, i)["caption"]
        assert not HOLD_WORDS.search(cap), cap
        named += sum(n in cap for n in nouns)
    assert named >= 40  # most captions name objects


def test_caption_for_uses_only_what_it_is_given():
    rng = np.random.default_rng(0)
    img = np.zeros((20, 20, 3), np.uint8)
    img[:10] = (220, 30, 30)
    m = np.zeros((20, 20), bool)
    m[:10] = True
    cap = caption_for(rng, img, [(8, m)], ["left"], ~m)
    assert "red" in cap and ("tomato" in cap or "cherry" in cap) and "left hand" in cap and "black" in cap
    assert colour_name((250, 250, 250)) == "white" and colour_name((20, 60, 220)) == "blue"


def test_clip_loss_goes_down_on_a_fixed_web_batch():
    s = WebPretrainSettings(**{**TINY, "steps": 8, "num_pairs": 4, "lr": 3e-3, "unlocked_image_groups": 1})
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    model, losses, _ = pretrain_web_clip(s)
    assert torch.equal(torch.rand(1), before)  # global RNG untouched
    assert all(np.isfinite(losses)) and losses[-1] < losses[0] - 0.05, losses
    assert not model.training and not any(p.requires_grad for p in model.parameters())


def test_locked_image_tower_trains_only_the_unlocked_groups():
    s = WebPretrainSettings(**{**TINY, "unlocked_image_groups": 1})
    model, _, _ = pretrain_web_clip(s)
    init = build_open_clip(s.model_name, "", init_seed=s.seed)
    sd, sd0 = model.state_dict(), init.state_dict()
    assert torch.equal(sd["visual.conv1.weight"], sd0["visual.conv1.weight"])
    assert not torch.equal(sd["visual.proj"], sd0["visual.proj"])
    assert not torch.equal(sd["text_projection"], sd0["text_projection"])
    assert torch.equal(sd["token_embedding.weight"], sd0["token_embedding.weight"])  # vocabulary table kept
    s2 = WebPretrainSettings(**{**TINY, "unlocked_image_groups": 2})
    sd2 = pretrain_web_clip(s2)[0].state_dict()
    assert torch.equal(sd2["visual.transformer.resblocks.0.mlp.c_fc.weight"],
                       sd0["visual.transformer.resblocks.0.mlp.c_fc.weight"])
    assert not torch.equal(sd2["visual.transformer.resblocks.1.mlp.c_fc.weight"],
                           sd0["visual.transformer.resblocks.1.mlp.c_fc.weight"])


@pytest.mark.parametrize("unlocked", [1, 2])
def test_fixed_feature_shortcut_computes_what_clip_forward_computes(unlocked):
    """A locked tower over a finite split: its fixed part runs once per pair; the first two losses must equal those
    of open_clip's own forward on the same pairs (the second one after one update of the unlocked part)."""
    cached = WebPretrainSettings(**{**TINY, "steps": 2, "unlocked_image_groups": unlocked, "num_pairs": 8})
    plain = WebPretrainSettings(**{**TINY, "steps": 2, "unlocked_image_groups": unlocked, "num_pairs": 0})
    a = pretrain_web_clip(cached)[1]
    b = pretrain_web_clip(plain)[1]
    assert np.allclose(a, b, atol=1e-4), (a, b)


def test_checkpoint_is_keyed_reused_checked_and_rebuilt(tmp_path):
    s = WebPretrainSettings(**TINY)
    path = ensure_web_clip(str(tmp_path), s)
    assert path == web_clip_path(str(tmp_path), s) and os.path.isfile(path)
    meta = json.load(open(os.path.splitext(path)[0] + ".json"))
    assert meta["settings"] == s.as_dict() and meta["file"]["bytes"] == os.path.getsize(path)
    assert web_clip_path(str(tmp_path), WebPretrainSettings(**{**TINY, "seed": 1})) != path
    stamp = os.stat(path).st_mtime_ns
    assert ensure_web_clip(str(tmp_path), s) == path and os.stat(path).st_mtime_ns == stamp  # reused
    good = open(path, "rb").read()
    with open(path, "r+b") as f:  # damage: same size, other bytes
        f.seek(len(good) // 2)
        f.write(bytes(16))
    ensure_web_clip(str(tmp_path), s)
    assert open(path, "rb").read() == good  # rebuilt, and deterministic
    os.remove(os.path.splitext(path)[0] + ".json")  # an interrupted write: checkpoint without digest
    ensure_web_clip(str(tmp_path), s)
    assert os.path.isfile(os.path.splitext(path)[0] + ".json")


def test_config_builds_on_first_use_and_loads_through_pretrained(tmp_path, monkeypatch):
    from wish_d2.engine.setup import build_cfg

    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    opts = ["MODEL.DEVICE", "cpu", "MODEL.WISH.CLIP.MODEL_NAME", "WISH-Test-ViT", "MODEL.WISH.CLIP.PRETRAINED", "",
            "MODEL.WISH.CLIP.WEB_PRETRAIN.ENABLED", "True", "MODEL.WISH.CLIP.WEB_PRETRAIN.NUM_PAIRS", "8",
            "MODEL.WISH.CLIP.WEB_PRETRAIN.STEPS", "2", "MODEL.WISH.CLIP.WEB_PRETRAIN.BATCH_SIZE", "4",
            "MODEL.WISH.CLIP.WEB_PRETRAIN.IMAGE_SIZE", "64"]
    cfg = build_cfg("", opts)
    path = cfg.MODEL.WISH.CLIP.PRETRAINED
    assert path.startswith(str(tmp_path)) and os.path.isfile(path)
    saved = torch.load(path, weights_only=True)
    loaded = build_clip_encoder(cfg).model.state_dict()
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)
    assert not torch.equal(saved["visual.proj"], build_open_clip("WISH-Test-ViT").state_dict()["visual.proj"])
    with pytest.raises(ValueError, match="PRETRAINED"):
        build_cfg("", opts + ["MODEL.WISH.CLIP.PRETRAINED", path])
