"""Behaviour: 300 iterations per stage of WISH's two stages on a tiny split (narrations only, no masks) beat the
nearest-to-hand heuristic on held-out frames.

Every visible hand has a crumb right beside it, wholly inside the hand's surroundings, while a held object (named by
the narration) overlaps the hand only at its lower edge, and a quarter of the hands hold nothing. Nearest-to-hand
picks the crumb for every hand; WISH learns from the narrations what is held, and when nothing is."""
import os

import cv2
import numpy as np
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from wish_fixtures import tiny_cfg

from wish_d2.data.proposals_io import write_proposals
from wish_d2.engine.table import run_table
from wish_d2.utils.masks import encode_rle

NOUNS = {"cup": (220, 40, 40), "knife": (40, 40, 220)}
CRUMB = (90, 160, 90)


def _frame(rng, size=64):
    h = w = size
    img = np.full((h, w, 3), 100, np.uint8)
    masks, hands, anns, nouns = [], [], [], []
    for side, cx in (("left", w // 4), ("right", 3 * w // 4)):
        if rng.random() < 0.15:
            continue
        hand = np.zeros((h, w), np.uint8)
        cv2.ellipse(hand, (cx, h - 8), (7, 10), 0, 0, 360, 1, -1)
        img[hand.astype(bool)] = (230, 180, 150)
        hands.append({"side": side, "side_source": "gt", "segmentation": encode_rle(hand.astype(bool)),
                      "bbox": [cx - 7, h - 18, 14, 20]})
        crumb = np.zeros((h, w), np.uint8)
        cv2.circle(crumb, (cx + (10 if side == "left" else -10), h - 8), 3, 1, -1)
        img[crumb.astype(bool)] = CRUMB
        masks.append(crumb.astype(bool))
        if rng.random() < 0.75:
            noun = list(NOUNS)[int(rng.integers(0, len(NOUNS)))]
            obj = np.zeros((h, w), np.uint8)
            cv2.rectangle(obj, (cx - 5, h - 34), (cx + 5, h - 17), 1, -1)
            img[obj.astype(bool)] = NOUNS[noun]
            masks.append(obj.astype(bool))
            anns.append({"category_id": 0 if side == "left" else 1, "segmentation": encode_rle(obj.astype(bool)),
                         "bbox": [cx - 5, h - 34, 11, 18], "bbox_mode": 1, "iscrowd": 0})
            nouns.append(noun)
    return img, masks, hands, anns, nouns


def _register(root, name, n, seed):
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    dicts, records = [], []
    for i in range(n):
        img, masks, hands, anns, nouns = _frame(rng)
        path = os.path.join(root, f"{i:03d}.png")
        cv2.imwrite(path, img[:, :, ::-1])
        image_id = f"{name}_{i:03d}"
        dicts.append({"file_name": path, "image_id": image_id, "height": 64, "width": 64,
                      "narrations": [f"take {x}" for x in nouns], "noun_phrases": sorted(set(nouns)),
                      "hands": hands, "annotations": anns})
        records.append({"image_id": image_id, "height": 64, "width": 64, "masks": [encode_rle(m) for m in masks],
                        "scores": [0.9] * len(masks)})
    write_proposals(records, os.path.join(root, "proposals.jsonl"))
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    DatasetCatalog.register(name, lambda: [dict(d) for d in dicts])
    MetadataCatalog.get(name).set(thing_classes=["left", "right", "both"], evaluator_type="wish_inhand",
                                  nouns=list(NOUNS), proposals_file=os.path.join(root, "proposals.jsonl"))


def test_trained_wish_beats_nearest_to_hand(tmp_path):
    for split, n, seed in (("train", 96, 0), ("val", 24, 1), ("test", 24, 2)):
        _register(str(tmp_path / split), f"wish_crumbs_{split}", n, seed)
    cfg = tiny_cfg(tmp_path / "out", train="wish_crumbs_train", iters=300)
    cfg.merge_from_list(["DATASETS.VAL", "('wish_crumbs_val',)", "DATASETS.TEST", "('wish_crumbs_test',)",
                         "MODEL.WISH.STAGE1.IMS_PER_BATCH", "16", "MODEL.WISH.STAGE2.IMS_PER_BATCH", "16"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        res = run_table(cfg, str(tmp_path / "out"), [0], ["wish", "nearest_to_hand"], jobs=1)
    finally:
        torch.set_num_threads(threads)
    wish, nearest = res["wish"]["E-mIoU"], res["nearest_to_hand"]["E-mIoU"]
    print(f"E-mIoU on held-out frames: WISH {wish:.1f}, nearest-to-hand {nearest:.1f}")
    assert nearest < 10.0 and wish > nearest + 30.0
