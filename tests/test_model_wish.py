"""The WISH meta-architecture in Detectron2: forward/backward, robustness, train_net, resume, eval-only."""
import json
import os
import subprocess
import sys

import pytest
import torch
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage

from wish_d2.data.mappers import WISHOnlineMapper
from wish_d2.engine.data import dataset_dicts

from wish_fixtures import register_tiny_dataset, tiny_cfg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    register_tiny_dataset(str(root / "data"), n=12)
    return root


def _inputs(n=4, name="wish_tiny"):
    mapper = WISHOnlineMapper(is_train=False)
    return [mapper(d) for d in dataset_dicts(name)[:n]]


@pytest.mark.parametrize("stage,supervision", [("stage1", "pseudo"), ("stage2", "gt")])
def test_forward_backward_in_event_storage(tiny, stage, supervision):
    cfg = tiny_cfg(tiny / "fb")
    cfg.merge_from_list(["MODEL.WISH.STAGE", stage, "MODEL.WISH.SUPERVISION", supervision])
    model = build_model(cfg)
    model.train()
    with EventStorage():
        losses = model(_inputs())
    assert losses and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    trained = model.roi_heads.alignment if stage == "stage1" else model.roi_heads.heads
    frozen = model.roi_heads.heads if stage == "stage1" else model.roi_heads.alignment
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trained.parameters())
    assert all(p.grad is None for p in frozen.parameters())
    assert all(p.grad is None for p in model.clip.parameters())


def test_zero_proposals_no_hands_one_hand(tiny):
    """Degenerate frames train and infer without error or NaN."""
    cfg = tiny_cfg(tiny / "robust")
    cfg.merge_from_list(["MODEL.WISH.STAGE", "all", "MODEL.WISH.SUPERVISION", "gt"])
    model = build_model(cfg)
    xs = _inputs(3)
    xs[0] = dict(xs[0], hands=[])  # no hands
    xs[1] = dict(xs[1], hands=xs[1]["hands"][:1])  # one hand
    xs[2] = dict(xs[2], proposals_file=str(tiny / "empty.jsonl"))  # zero proposals
    (tiny / "empty.jsonl").write_text(json.dumps({"image_id": xs[2]["image_id"], "height": 64, "width": 64,
                                                  "masks": [], "scores": []}) + "\n")
    model.train()
    with EventStorage():
        losses = model(xs)
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    model.eval()
    with torch.no_grad():
        outs = model(xs)
    assert len(outs[0]["instances"]) == 0  # no hands: nothing can be in hand
    assert len(outs[2]["instances"]) == 0  # no proposals
    assert set(outs[1]["instances"].pred_classes.tolist()) <= {0, 1, 2}


def test_cached_and_online_features_agree(tiny):
    from wish_d2.engine.data import ensure_feature_cache

    cfg = tiny_cfg(tiny / "cache")
    model = build_model(cfg).eval()
    cache = ensure_feature_cache(cfg, "wish_tiny", model)
    index = cache.load_index()
    online = model.extract(_inputs(4))
    for rec in online:
        cached = cache.record(*index[rec["image_id"]])
        assert torch.allclose(cached["v"], rec["v"], atol=1e-6)
        assert torch.allclose(cached["v_hands"], rec["v_hands"], atol=1e-6)
        assert torch.allclose(cached["geom"], rec["geom"])
        assert torch.allclose(cached["v_contact"], rec["v_contact"], atol=1e-6)
        assert rec["v_contact"].shape == (len(rec["v"]), 2, rec["v"].shape[-1])
        assert torch.isfinite(rec["v_contact"]).all()
        assert (rec["v_contact"][:, ~rec["hand_present"]] == 0).all()  # absent hand: zeros
        assert cached["proposal_rles"] == rec["proposal_rles"]


def _train_net(cfg_opts, out, extra=()):
    script = (
        "import sys; sys.path.insert(0, %r); sys.path.insert(0, %r)\n"
        "from wish_fixtures import register_tiny_dataset\n"
        "register_tiny_dataset(%r, n=12)\n"
        "sys.argv = ['train_net.py'] + %r\n"
        "import runpy; runpy.run_path(%r, run_name='__main__')\n"
    ) % (os.path.join(ROOT, "tests"), ROOT, str(out / "data"),
         ["--config-file", os.path.join(ROOT, "configs", "Base-WISH.yaml"), *extra, *cfg_opts],
         os.path.join(ROOT, "tools", "train_net.py"))
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)


def _opts(out, iters):
    return ["MODEL.WISH.CLIP.MODEL_NAME", "WISH-Test-ViT", "MODEL.WISH.CLIP.PRETRAINED", "",
            "MODEL.WISH.ADAPTER.HIDDEN_DIM", "32",
            "MODEL.WISH.ADAPTER.EMBED_DIM", "16", "MODEL.WISH.STAGE1.MAX_ITER", str(iters),
            "MODEL.WISH.STAGE2.MAX_ITER", str(iters), "MODEL.WISH.STAGE1.IMS_PER_BATCH", "4",
            "MODEL.WISH.STAGE2.IMS_PER_BATCH", "4", "DATASETS.TRAIN", "('wish_tiny',)",
            "DATASETS.VAL", "('wish_tiny',)", "DATASETS.TEST", "('wish_tiny',)", "DATALOADER.NUM_WORKERS", "0",
            "OUTPUT_DIR", str(out / "run"), "SEED", "0"]


def test_train_net_end_to_end_resume_and_eval_only(tmp_path):
    run = _train_net(_opts(tmp_path, 20), tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    final = tmp_path / "run" / "model_final.pth"
    assert final.is_file() and (tmp_path / "run" / "stage2" / "model_final.pth").is_file()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0 <= metrics["inhand"]["E-mIoU"] <= 100

    # --resume with more iterations continues Stage 2 from its last checkpoint instead of starting over
    resumed = _train_net(_opts(tmp_path, 30), tmp_path, ["--resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = resumed.stdout + resumed.stderr
    assert "Starting training from iteration 20" in log

    # --eval-only on the saved model reproduces the pipeline's metrics exactly
    again = json.loads((tmp_path / "run" / "metrics.json").read_text())
    ev = _train_net(_opts(tmp_path, 30) + ["MODEL.WEIGHTS", str(final)], tmp_path, ["--eval-only"])
    assert ev.returncode == 0, ev.stderr[-3000:]
    evaluated = json.loads((tmp_path / "run" / "metrics_eval_only.json").read_text())
    assert evaluated["inhand"] == pytest.approx(again["inhand"], abs=1e-9)
    assert evaluated["segm"]["AP"] == pytest.approx(again["segm"]["AP"], abs=1e-9)


def test_seeded_pipeline_repeats(tiny):
    """Two runs of the same seeded config give the same metrics, whatever ran before in the process."""
    from wish_d2.engine import run_pipeline

    results = []
    for k in range(2):
        cfg = tiny_cfg(tiny / f"repeat{k}", iters=10)
        cfg.merge_from_list(["MODEL.WISH.CACHE.DIR", str(tiny / "repeat_cache")])
        cfg.freeze()
        torch.rand(k + 1)  # disturb the global RNG between runs
        results.append(run_pipeline(cfg))
    assert results[0]["inhand"] == results[1]["inhand"]
    assert results[0]["pseudo_labels_train"] == results[1]["pseudo_labels_train"]
