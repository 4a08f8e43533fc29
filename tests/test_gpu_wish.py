"""WISH on CUDA: extraction (fp32 and bf16 autocast), forward and a few training iterations. Skipped without a GPU;
``tools/gpu_check.sh`` runs them with the scale figures on a GPU machine."""
import pytest
import torch
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage

from wish_d2.data.mappers import WISHOnlineMapper
from wish_d2.engine.data import dataset_dicts

from wish_fixtures import register_tiny_dataset, tiny_cfg

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpu")
    register_tiny_dataset(str(root / "data"), n=8)
    return root


def _model(root, device, *opts):
    cfg = tiny_cfg(root / f"out_{device}")
    cfg.merge_from_list(["MODEL.DEVICE", device, "MODEL.WISH.STAGE", "stage2", "MODEL.WISH.SUPERVISION", "gt",
                         *opts])
    torch.manual_seed(0)
    return build_model(cfg)


def _inputs(n=4):
    mapper = WISHOnlineMapper(is_train=False)
    return [mapper(d) for d in dataset_dicts("wish_tiny")[:n]]


def test_extraction_on_cuda_matches_cpu(tiny):
    cpu = _model(tiny, "cpu").eval()
    gpu = _model(tiny, "cuda").eval()
    assert next(gpu.clip.parameters()).is_cuda
    with torch.no_grad():
        a, b = cpu.extract(_inputs()), gpu.extract(_inputs())
    for ra, rb in zip(a, b):
        for key in ("v", "v_hands", "v_contact", "geom"):
            assert rb[key].device.type == "cpu"  # records are always CPU tensors (cache format)
            assert torch.allclose(ra[key], rb[key], atol=1e-4), key
        assert ra["proposal_rles"] == rb["proposal_rles"] and torch.equal(ra["gt_pair_obj"], rb["gt_pair_obj"])


def test_bf16_autocast_extraction_is_close_and_float32(tiny):
    fp32 = _model(tiny, "cuda").eval()
    bf16 = _model(tiny, "cuda", "MODEL.WISH.CLIP.AUTOCAST", "bfloat16").eval()
    assert bf16.clip.autocast_dtype == torch.bfloat16
    with torch.no_grad():
        a, b = fp32.extract(_inputs()), bf16.extract(_inputs())
    for ra, rb in zip(a, b):
        assert rb["v"].dtype == torch.float32 and torch.isfinite(rb["v"]).all()
        if len(ra["v"]):
            cos = torch.nn.functional.cosine_similarity(ra["v"], rb["v"], dim=-1)
            assert cos.min() > 0.98


def test_training_iterations_and_inference_on_cuda(tiny):
    model = _model(tiny, "cuda", "MODEL.WISH.CLIP.AUTOCAST", "bfloat16")
    params = [p for p in model.parameters() if p.requires_grad]
    assert params and all(p.is_cuda for p in params)
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    xs = _inputs()
    model.train()
    with EventStorage():
        for _ in range(3):
            losses = model(xs)
            assert losses and all(torch.isfinite(v) for v in losses.values())
            optimizer.zero_grad()
            sum(losses.values()).backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        outs = model(xs)
    for out in outs:
        inst = out["instances"]
        assert set(inst.pred_classes.tolist()) <= {0, 1, 2} and torch.isfinite(inst.scores).all()
