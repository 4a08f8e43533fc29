"""Extraction at real scale: 1920x1080 frames with SAM-scale proposal counts, ViT-B/16 (random weights).

* ``extract_overhead_vs_vit_1080p_n64``: ``WISH.extract`` of one 1080p frame with 64 proposals and 2 hands (proposals
  read from a JSON-lines file, hands and 2 ground-truth objects from the dict, everything a cache record holds) /
  one bare ViT-B/16 forward of that frame (``preprocess`` + ``encode_image``). Each extraction is timed between
  two bare forwards, and the ratio is the median of those paired ratios.
* ``extract_growth_n16_to_n128_1080p``: extraction time with 128 proposals / with 16, paired the same way.
* ``extract_peak_rss_mb_1080p_n128``: ``VmHWM`` of a fresh process that builds the model and extracts that frame
  (its inputs are written by the parent, so the child only reads them).
* ``visor_load_frames_per_s``: register + load a VISOR-format split of the realistic profile from its keyed dict
  cache (what every load after the first does); ``visor_first_load_frames_per_s``: the first load, which parses the
  VISOR JSON and writes that cache.
* ``cache_kb_per_frame_n64_vitb16``: the records ``WISH.extract`` makes of distinct 1080p frames with 64 proposals
  and 2 hands, written through :class:`wish_d2.cache.FeatureCache` with the ``MODEL.WISH.CACHE.DTYPE`` of the
  real-data config (configs/wish_epic.yaml): shard bytes / frames, in KiB. ``cache_kb_per_frame_n64_vitb16_<dtype>``
  gives the same for every storage type the cache offers.

Masks are random ellipses and rectangles (parts, fragments, whole objects), some on or next to the hands.
"""
import json
import os

import numpy as np

from .common import log, median, proc_status_mb, timed

FRAME_HW = (1080, 1920)
MODEL_NAME = "ViT-B-16"


def _blob(rng, H, W, cy, cx, ry, rx, ellipse: bool) -> np.ndarray:
    m = np.zeros((H, W), dtype=np.uint8, order="F")
    y0, y1 = max(0, int(cy - ry)), min(H, int(cy + ry) + 1)
    x0, x1 = max(0, int(cx - rx)), min(W, int(cx + rx) + 1)
    if y1 <= y0 or x1 <= x0:
        m[min(H - 1, max(0, int(cy))), min(W - 1, max(0, int(cx)))] = 1
        return m
    if ellipse:
        yy, xx = np.ogrid[y0:y1, x0:x1]
        m[y0:y1, x0:x1] = ((yy - cy) / max(ry, 1)) ** 2 + ((xx - cx) / max(rx, 1)) ** 2 <= 1
    else:
        m[y0:y1, x0:x1] = 1
    return m


def make_frame(seed: int, n: int, hw=FRAME_HW):
    """One frame: ``(image uint8 [H, W, 3], proposal RLEs, scores, hand dicts, annotation dicts)``."""
    import pycocotools.mask as mask_util

    from ..utils.masks import rle_to_str

    H, W = hw
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (H // 8 + 1, W // 8 + 1, 3), dtype=np.uint8)  # smooth-ish texture, cheap
    image = np.ascontiguousarray(np.repeat(np.repeat(small, 8, 0), 8, 1)[:H, :W])
    hands, centres = [], []
    for side, cx in (("left", W * 0.3), ("right", W * 0.7)):
        cy = H * 0.78
        m = _blob(rng, H, W, cy, cx, H * 0.16, W * 0.07, True)
        hands.append({"side": side, "segmentation": rle_to_str(mask_util.encode(m)), "side_source": "gt"})
        centres.append((cy, cx))
    rles, scores = [], []
    for k in range(n):
        if k % 4 == 0:  # on or next to a hand: a held object or a part of one
            cy, cx = centres[k // 4 % 2]
            cy, cx = cy - H * rng.uniform(0.05, 0.2), cx + W * rng.uniform(-0.05, 0.05)
        else:
            cy, cx = rng.uniform(0, H), rng.uniform(0, W)
        scale = rng.choice([0.02, 0.06, 0.15, 0.3])  # fragment, part, object, surface
        ry, rx = H * scale * rng.uniform(0.5, 1.5), W * scale * rng.uniform(0.3, 1.0)
        rles.append(rle_to_str(mask_util.encode(_blob(rng, H, W, cy, cx, ry, rx, bool(k % 2)))))
        scores.append(float(rng.uniform(0.3, 1.0)))
    annotations = [{"category_id": s, "segmentation": rles[s] if n > s else hands[s]["segmentation"],
                    "iscrowd": 0, "noun": "object"} for s in (0, 1)]
    return image, rles, scores, hands, annotations


def write_frame(folder: str, seed: int, n: int, hw=FRAME_HW) -> dict:
    """Write one frame's inputs under ``folder``; returns a json-safe spec that :func:`load_input` reads back."""
    from ..data.proposals_io import write_proposals

    os.makedirs(folder, exist_ok=True)
    image, rles, scores, hands, annotations = make_frame(seed, n, hw)
    image_id = f"frame{seed}_n{n}"
    proposals = os.path.join(folder, f"{image_id}.jsonl")
    write_proposals([{"image_id": image_id, "height": hw[0], "width": hw[1], "masks": rles, "scores": scores}],
                    proposals)
    np.save(os.path.join(folder, f"{image_id}.npy"), image)
    with open(os.path.join(folder, f"{image_id}.json"), "w") as f:
        json.dump({"hands": hands, "annotations": annotations}, f)
    return {"folder": folder, "image_id": image_id, "height": hw[0], "width": hw[1], "proposals_file": proposals}


def load_input(spec: dict) -> dict:
    """The model input of a written frame, as the online mapper gives it (uint8 CHW RGB ``image``)."""
    import torch

    image = np.load(os.path.join(spec["folder"], f"{spec['image_id']}.npy"))
    with open(os.path.join(spec["folder"], f"{spec['image_id']}.json")) as f:
        extra = json.load(f)
    return {"image": torch.from_numpy(image).permute(2, 0, 1).contiguous(), "image_id": spec["image_id"],
            "height": spec["height"], "width": spec["width"], "proposals_file": spec["proposals_file"],
            "hands": extra["hands"], "annotations": extra["annotations"], "noun_phrases": ["object"]}


def scale_cfg(work: str, device: str = "cpu", *opts: str):
    """ViT-B-16 WISH with every proposal kept (``MAX_PER_IMAGE`` 256); ``opts``: more config overrides."""
    from detectron2.config import get_cfg

    from wish_d2 import add_wish_config
    from wish_d2.config_file import merge_config_file

    from .common import ROOT

    cfg = get_cfg()
    add_wish_config(cfg)
    merge_config_file(cfg, os.path.join(ROOT, "configs", "Base-WISH.yaml"))
    cfg.merge_from_list(["MODEL.WISH.CLIP.MODEL_NAME", MODEL_NAME, "MODEL.WISH.PROPOSALS.MAX_PER_IMAGE", "256",
                         "MODEL.DEVICE", device, "DATASETS.TRAIN", "()", "DATASETS.TEST", "()",
                         "OUTPUT_DIR", os.path.join(work, "out_scale"), "SEED", "0", *opts])
    return cfg


def build_scale_model(work: str, device: str = "cpu", *opts: str):
    import torch
    from detectron2.modeling import build_model

    torch.manual_seed(0)
    return build_model(scale_cfg(work, device, *opts)).eval()


def bare_vit_s(model, x) -> float:
    """One bare ViT-B/16 forward of the frame: resize + normalise, then ``encode_image``."""
    import torch

    with torch.no_grad():
        t, _ = timed(lambda: model.clip.encode_image(model.clip.preprocess([x["image"].to(model.device)])))
    return t


def extract_s(model, x) -> float:
    import torch

    with torch.no_grad():
        t, _ = timed(lambda: model.extract([x]))
    return t


def bench_extraction(work: str, repeats: int, threads: int, counts=(16, 64, 128)):
    """The three extraction keys (RSS in a child process)."""
    from .common import run_child

    folder = os.path.join(work, "frames_1080p")
    specs = {n: write_frame(folder, seed=n, n=n) for n in counts}
    model = build_scale_model(work)
    inputs = {n: load_input(s) for n, s in specs.items()}
    extract_s(model, inputs[counts[0]])  # warm-up, untimed
    bare_vit_s(model, inputs[counts[0]])
    vit, ext, overhead, growth = [], {n: [] for n in counts}, [], []
    for r in range(repeats):
        for n in counts:
            before = bare_vit_s(model, inputs[n])
            ext[n].append(extract_s(model, inputs[n]))
            after = bare_vit_s(model, inputs[n])
            vit += [before, after]
            if n == 64:
                overhead.append(ext[n][-1] / median([before, after]))
        growth.append(ext[counts[-1]][-1] / ext[counts[0]][-1])
        log(f"  1080p repeat {r + 1}/{repeats}: bare ViT {median(vit[-2:]):.2f}s, extract "
            + ", ".join(f"N={n} {ext[n][-1]:.2f}s" for n in counts))
    del model
    child = run_child("extract_rss", {"work": work, "frame": specs[counts[-1]], "threads": threads})
    log(f"  peak RSS of a fresh process extracting N={counts[-1]}: {child['peak_rss_mb']:.0f} MB "
        f"(after building the model {child['setup_peak_mb']:.0f} MB)")
    out = {
        "extract_overhead_vs_vit_1080p_n64": median(overhead),
        "extract_growth_n16_to_n128_1080p": median(growth),
        "extract_peak_rss_mb_1080p_n128": child["peak_rss_mb"],
        "bare_vit_b16_1080p_s": median(vit),
        "extract_rss_mb_after_model_build": child["setup_peak_mb"],
    }
    out.update({f"extract_1080p_n{n}_s": median(ext[n]) for n in counts})
    return out


def extract_rss_child(spec: dict) -> dict:
    """Fresh process: build the ViT-B-16 model, read one written frame, extract it once."""
    model = build_scale_model(spec["work"])
    x = load_input(spec["frame"])
    setup_peak = proc_status_mb("VmHWM")
    t = extract_s(model, x)
    return {"peak_rss_mb": proc_status_mb("VmHWM"), "setup_peak_mb": setup_peak, "seconds": t}


def real_data_cache_dtype() -> str:
    """``MODEL.WISH.CACHE.DTYPE`` of configs/wish_epic.yaml, the storage a real split is cached with."""
    from detectron2.config import get_cfg

    from wish_d2 import add_wish_config
    from wish_d2.config_file import merge_config_file

    from .common import ROOT

    cfg = get_cfg()
    add_wish_config(cfg)
    merge_config_file(cfg, os.path.join(ROOT, "configs", "wish_epic.yaml"))
    return cfg.MODEL.WISH.CACHE.DTYPE


def bench_cache_size(work: str, frames: int = 3, n: int = 64):
    """KB per frame of distinct 64-proposal 1080p records, as ``WISH.extract`` makes them, written through the
    feature cache in every storage dtype; the headline key is the real-data config's dtype."""
    import torch

    from wish_d2.cache import FeatureCache
    from wish_d2.cache.codec import DTYPES

    model = build_scale_model(work)
    records = []
    for k in range(frames):
        spec = write_frame(os.path.join(work, "frames_cache"), seed=1000 + k, n=n)
        with torch.no_grad():
            records += model.extract([load_input(spec)])
    del model
    D = records[0]["v_hands"].shape[-1]
    headline = real_data_cache_dtype()
    out = {}
    for dtype in DTYPES:
        cache = FeatureCache(os.path.join(work, f"cache_size_{dtype}"), "size", "k", shard_size=frames, dtype=dtype)
        cache.write_shard(0, records)
        cache.write_texts(["object"], torch.zeros(1, 2, D), torch.zeros(2, D))
        cache.finalize([r["image_id"] for r in records])
        shard = os.path.getsize(cache.shard_path(0))
        total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(cache.dir) for f in fs)
        for suffix in ([""] if dtype == headline else []) + [f"_{dtype}"]:
            out["cache_kb_per_frame_n64_vitb16" + suffix] = shard / 1024 / frames
            out["cache_dir_kb_per_frame_n64_vitb16" + suffix] = total / 1024 / frames
        log(f"  cache ({dtype}): shard {shard / 1024 / frames:.0f} KB per frame, whole folder "
            f"{total / 1024 / frames:.0f} KB per frame ({frames} frames of {n} proposals)")
    kept = [len(r["proposal_rles"]) for r in records]
    out["_cache_config"] = {"cache_dtype": f"{headline} (MODEL.WISH.CACHE.DTYPE of configs/wish_epic.yaml)",
                            "cache_frames": frames, "cache_proposals_kept": kept,
                            "cache_kb": "shard file bytes / frames / 1024 (cache_dir_*: whole folder incl. texts, "
                                        "index)"}
    return out


def bench_visor_load(work: str, frames: int, cached_repeats: int = 3):
    """Register + load a VISOR-format split of the synthetic generator's realistic profile in this process: first
    with no dict cache (the VISOR JSON parsed, the keyed dict cache written), then from that cache (the median of
    ``cached_repeats`` loads), as every later process loads it. ``visor_load_frames_per_s`` is the cached load;
    the dicts of both loads must be equal."""
    import shutil

    from detectron2.data import DatasetCatalog

    from wish_d2.data.builtin import DICTS_CACHE, register_synthetic
    from wish_d2.data.synthetic import ensure_split

    root = os.path.join(work, "realistic")
    t, _ = timed(lambda: ensure_split(root, 0, "train", frames, progress=False, profile="realistic"))
    log(f"  generated {frames} realistic frames in {t:.1f}s (setup, not a measured figure)")

    def load():
        name = register_synthetic(seed=0, num_train=frames, num_val=1, num_test=1, root=root,
                                  prefix="wish_bench_visor", profile="realistic")["train"]
        return DatasetCatalog.get(name)

    shutil.rmtree(os.path.join(root, DICTS_CACHE), ignore_errors=True)  # a cold first load, even in a reused --work-dir
    t_first, first = timed(load)
    cached = [timed(load) for _ in range(max(1, cached_repeats))]
    t_cached, dicts = median([c[0] for c in cached]), cached[-1][1]
    identical = all(c[1] == first for c in cached)
    if not identical:
        raise RuntimeError("the cached VISOR dicts differ from the freshly parsed ones")
    n_ann = sum(len(d.get("annotations", [])) for d in dicts)
    log(f"  registered + loaded {len(dicts)} frames ({n_ann} annotations): first load (parse + write the dict cache) "
        f"{t_first:.2f}s, cached load {t_cached:.3f}s (dicts identical)")
    first_d = dicts[0]
    return {"visor_load_frames_per_s": len(dicts) / t_cached, "visor_load_s": t_cached,
            "visor_first_load_frames_per_s": len(dicts) / t_first, "visor_first_load_s": t_first,
            "_visor_config": {"visor_frames": len(dicts), "visor_annotations": n_ann,
                              "visor_frame_size": [first_d["height"], first_d["width"]],
                              "visor_cached_dicts_identical": identical, "visor_cached_repeats": len(cached),
                              "visor_source": "wish_d2.data.synthetic profile 'realistic', read back by "
                                              "wish_d2.data.builtin.register_synthetic (VISOR loader, keyed dict "
                                              "cache under the root's " + DICTS_CACHE + ")"}}
