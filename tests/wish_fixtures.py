"""A tiny registered dataset (hand-drawn frames, hands, proposals, narrations) for model and pipeline tests.

Independent of the synthetic benchmark generator so model tests stay fast and focused."""
import os

import cv2
import numpy as np

import wish_d2  # noqa: F401  (first: installs the Detectron2 compat shims)
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from wish_d2.data.proposals_io import write_proposals
from wish_d2.utils.masks import encode_rle

NOUNS = ["cup", "knife", "board"]
COLOURS = {"cup": (220, 40, 40), "knife": (40, 40, 220), "board": (160, 120, 60)}


def _frame(rng, size):
    """One frame: up to two hands at the bottom, a held object near each present hand, a distractor."""
    h = w = size
    img = np.full((h, w, 3), 90, np.uint8)
    masks, hands, anns, nouns = [], [], [], []
    held = {}
    for side, cx in (("left", w // 4), ("right", 3 * w // 4)):
        if rng.random() < 0.15:
            continue
        hand = np.zeros((h, w), np.uint8)
        cv2.ellipse(hand, (cx, h - 8), (7, 10), 0, 0, 360, 1, -1)
        hands.append({"side": side, "side_source": "gt", "segmentation": encode_rle(hand.astype(bool)),
                      "bbox": [cx - 7, h - 18, 14, 20]})
        img[hand.astype(bool)] = (230, 180, 150)
        if rng.random() < 0.75:
            noun = NOUNS[int(rng.integers(0, 2))]
            obj = np.zeros((h, w), np.uint8)
            cv2.rectangle(obj, (cx - 5, h - 30), (cx + 5, h - 16), 1, -1)
            img[obj.astype(bool)] = COLOURS[noun]
            held[side] = (obj.astype(bool), noun)
    dis = np.zeros((h, w), np.uint8)
    cv2.circle(dis, (int(rng.integers(12, w - 12)), 14), 6, 1, -1)
    img[dis.astype(bool)] = COLOURS["board"]
    masks.append(dis.astype(bool))
    for side, (obj, noun) in held.items():
        masks.append(obj)
        anns.append({"category_id": 0 if side == "left" else 1, "segmentation": encode_rle(obj),
                     "bbox": [0, 0, 1, 1], "bbox_mode": BoxMode.XYWH_ABS, "iscrowd": 0, "noun": noun})
        nouns.append(noun)
    return img, masks, hands, anns, nouns


def register_tiny_dataset(root, name="wish_tiny", n=12, size=64, seed=0):
    """Write ``n`` frames + proposals under ``root`` and register ``name`` (idempotent per process)."""
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    dicts, records = [], []
    for i in range(n):
        img, masks, hands, anns, nouns = _frame(rng, size)
        path = os.path.join(root, f"{name}_{i:03d}.png")
        cv2.imwrite(path, img[:, :, ::-1])
        image_id = f"{name}_{i:03d}"
        dicts.append({"file_name": path, "image_id": image_id, "height": size, "width": size,
                      "narrations": [f"take {x}" for x in nouns], "noun_phrases": sorted(set(nouns)),
                      "hands": hands, "annotations": anns})
        records.append({"image_id": image_id, "height": size, "width": size,
                        "masks": [encode_rle(m) for m in masks], "scores": [0.9] * len(masks)})
    proposals = os.path.join(root, f"{name}_proposals.jsonl")
    write_proposals(records, proposals)
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    DatasetCatalog.register(name, lambda: [dict(d) for d in dicts])
    MetadataCatalog.get(name).set(thing_classes=["left", "right", "both"], evaluator_type="wish_inhand",
                                  nouns=NOUNS, proposals_file=proposals, image_root=root)
    return dicts


def tiny_cfg(output_dir, train="wish_tiny", iters=20):
    from detectron2.config import get_cfg

    from wish_d2 import add_wish_config

    cfg = get_cfg()
    add_wish_config(cfg)
    cfg.merge_from_file(os.path.join(os.path.dirname(__file__), "..", "configs", "Base-WISH.yaml"))
    cfg.merge_from_list([
        "MODEL.WISH.CLIP.MODEL_NAME", "WISH-Test-ViT", "MODEL.WISH.CLIP.PRETRAINED", "",
        "MODEL.WISH.ADAPTER.HIDDEN_DIM", "32", "MODEL.WISH.ADAPTER.EMBED_DIM", "16",
        "MODEL.WISH.STAGE1.MAX_ITER", str(iters), "MODEL.WISH.STAGE2.MAX_ITER", str(iters),
        "MODEL.WISH.STAGE1.IMS_PER_BATCH", "4", "MODEL.WISH.STAGE2.IMS_PER_BATCH", "4",
        "DATASETS.TRAIN", f"('{train}',)", "DATASETS.VAL", f"('{train}',)", "DATASETS.TEST", f"('{train}',)",
        "DATALOADER.NUM_WORKERS", "0", "OUTPUT_DIR", str(output_dir), "SEED", "0",
    ])
    return cfg


def rescore_segm_ap(predictions: str, gt_json: str) -> float:
    """COCO segm AP (percent) of a predictions file against a ground-truth file, with pycocotools as a user would."""
    import json

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = COCO(gt_json)
    with open(predictions) as f:
        results = json.load(f)
    if not results:
        return 0.0
    ev = COCOeval(gt, gt.loadRes(results), "segm")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return 100.0 * float(ev.stats[0])
