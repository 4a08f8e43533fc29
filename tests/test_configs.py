"""Every shipped config merges onto ``add_wish_config`` and passes validation, without touching weights or data."""
import glob
import os

import pytest
from detectron2.config import get_cfg

from wish_d2 import add_wish_config
from wish_d2.config_validation import validate_wish_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALL_CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "*.yaml")))
# the hand detector's configs are stock Detectron2 Mask R-CNN configs, not WISH configs
DETECTOR_CONFIGS = [p for p in ALL_CONFIGS if os.path.basename(p).startswith("hand_detector_")]
CONFIGS = [p for p in ALL_CONFIGS if p not in DETECTOR_CONFIGS]


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_merges_and_validates(path):
    cfg = get_cfg()
    add_wish_config(cfg)
    cfg.merge_from_file(path)
    validate_wish_config(cfg)
    assert cfg.MODEL.META_ARCHITECTURE == "WISH"


def test_real_data_configs_name_weights_the_ecosystem_way():
    cfg = get_cfg()
    add_wish_config(cfg)
    cfg.merge_from_file(os.path.join(os.path.dirname(__file__), "..", "configs", "wish_epic.yaml"))
    w = cfg.MODEL.WISH
    import open_clip

    assert w.CLIP.PRETRAINED in open_clip.list_pretrained_tags_by_model(w.CLIP.MODEL_NAME)
    assert w.SEGMENTER.SAM_CHECKPOINT.startswith("https://") and w.SEGMENTER.SAM_CHECKPOINT.endswith(".pth")
    assert "/" in w.SEGMENTER.GDINO_PATH and not os.path.isdir(w.SEGMENTER.GDINO_PATH)


def test_real_data_configs_follow_the_paper_and_use_no_pixel_labels():
    for name in ("wish_epic.yaml", "wish_ego4d.yaml"):
        cfg = get_cfg()
        add_wish_config(cfg)
        cfg.merge_from_file(os.path.join(os.path.dirname(__file__), "..", "configs", name))
        assert cfg.MODEL.WISH.STAGE1.PAIR_VISUAL == "all", name
        assert cfg.MODEL.WISH.CALIBRATION == "label_free", name


@pytest.mark.parametrize("path", DETECTOR_CONFIGS, ids=os.path.basename)
def test_hand_detector_configs_are_stock_mask_rcnn_on_hands_only(path):
    from detectron2.data import DatasetCatalog, MetadataCatalog

    import wish_d2  # noqa: F401  registers the hand-only splits

    cfg = get_cfg()  # Detectron2's own keys only: no WISH key may be needed
    cfg.merge_from_file(path)
    assert cfg.MODEL.META_ARCHITECTURE == "GeneralizedRCNN" and cfg.MODEL.MASK_ON
    assert cfg.MODEL.WEIGHTS == "detectron2://ImageNetPretrained/MSRA/R-50.pkl"
    assert cfg.MODEL.ROI_HEADS.NUM_CLASSES == 2 and cfg.INPUT.RANDOM_FLIP == "none"  # a flip would swap the sides
    for name in cfg.DATASETS.TRAIN + cfg.DATASETS.TEST:
        assert name.endswith("_hands") and name in DatasetCatalog.list(), name
        assert MetadataCatalog.get(name).thing_classes == ["left hand", "right hand"]


def test_real_data_configs_use_detected_hands_with_sides_from_the_classes():
    from wish_d2.modeling.hands import hand_class

    for name, detector in (("wish_epic.yaml", "hand_detector_visor.yaml"),
                           ("wish_ego4d.yaml", "hand_detector_egohos.yaml")):
        cfg = get_cfg()
        add_wish_config(cfg)
        cfg.merge_from_file(os.path.join(REPO, "configs", name))
        h = cfg.MODEL.WISH.HANDS
        assert h.SOURCE == "detector", name
        assert h.DETECTOR_CONFIG == f"configs/{detector}" and os.path.isfile(os.path.join(REPO, h.DETECTOR_CONFIG))
        assert [hand_class(c) for c in h.DETECTOR_CLASSES] == ["left", "right"], name
        out = get_cfg()
        out.merge_from_file(os.path.join(REPO, h.DETECTOR_CONFIG))
        assert h.DETECTOR_WEIGHTS == os.path.join(out.OUTPUT_DIR, "model_final.pth"), name


def test_epic_calibrates_on_train_participants_stage2_never_trains_on():
    from wish_d2.data.builtin import _EPIC_VISOR, EPIC_HELDOUT_PARTICIPANTS

    cfg = get_cfg()
    add_wish_config(cfg)
    cfg.merge_from_file(os.path.join(os.path.dirname(__file__), "..", "configs", "wish_epic.yaml"))
    (train,), (val,), (test,) = cfg.DATASETS.TRAIN, cfg.DATASETS.VAL, cfg.DATASETS.TEST
    assert (train, val, test) == ("epic_visor_train_core", "epic_visor_train_heldout", "epic_visor_val")
    assert _EPIC_VISOR[train] == ("train", "EPIC_100_train.csv", {"exclude_participants": EPIC_HELDOUT_PARTICIPANTS})
    assert _EPIC_VISOR[val] == ("train", "EPIC_100_train.csv", {"participants": EPIC_HELDOUT_PARTICIPANTS})
    assert cfg.MODEL.WISH.TAXONOMY.FILE == ""  # the EPIC noun classes file, else the core's narrations
