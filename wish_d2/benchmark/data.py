"""The benchmark's splits, configs and training steps."""
import os
import time

from .common import ROOT


def build_split(work: str, n: int, size: int):
    """Register the synthetic benchmark's seed-0 train split of ``n`` frames (generated under ``work``, read back by
    the VISOR loader); returns ``(dataset name, source description)``."""
    from wish_d2.data.builtin import register_synthetic

    name = register_synthetic(seed=0, num_train=n, num_val=1, num_test=1, image_size=(size, size),
                              root=os.path.join(work, "synthetic"), prefix=f"wish_bench{n}")["train"]
    return name, f"wish_d2.data.builtin.register_synthetic seed 0 train split, {size}x{size}"


def bench_cfg(work: str, name: str, model_name: str, batch: int, shard_size: int, tag: str):
    from detectron2.config import get_cfg

    from wish_d2 import add_wish_config
    from wish_d2.config_file import merge_config_file

    cfg = get_cfg()
    add_wish_config(cfg)
    merge_config_file(cfg, os.path.join(ROOT, "configs", "Base-WISH.yaml"))
    cfg.merge_from_list([
        "MODEL.WISH.CLIP.MODEL_NAME", model_name, "MODEL.WISH.STAGE", "stage2", "MODEL.WISH.SUPERVISION", "gt",
        "MODEL.WISH.STAGE2.IMS_PER_BATCH", str(batch), "SOLVER.IMS_PER_BATCH", str(batch),
        "DATASETS.TRAIN", f"('{name}',)", "DATASETS.TEST", "()", "DATALOADER.NUM_WORKERS", "0",
        "MODEL.WISH.CACHE.DIR", os.path.join(work, f"cache_{tag}"), "MODEL.WISH.CACHE.SHARD_SIZE", str(shard_size),
        "OUTPUT_DIR", os.path.join(work, f"out_{tag}"), "SEED", "0",
    ])
    return cfg


def pairs_of(record) -> int:
    """Object-hand pairs of one image: proposals x visible hands."""
    return int(len(record["v"])) * int(record["hand_present"].sum())


def train_steps(model, optimizer, it, steps: int):
    """``steps`` Stage 2 iterations (forward, backward, AdamW step); returns (seconds, images, pairs)."""
    images = pairs = 0
    t0 = time.perf_counter()
    for _ in range(steps):
        batch = next(it)
        losses = model(batch)
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
        images += len(batch)
        pairs += sum(pairs_of(x["wish_features"]) for x in batch if "wish_features" in x)
    return time.perf_counter() - t0, images, pairs
