"""Every shipped config merges onto ``add_wish_config`` and passes validation, without touching weights or data."""
import glob
import os

import pytest
from detectron2.config import get_cfg

from wish_d2 import add_wish_config
from wish_d2.config_validation import validate_wish_config

CONFIGS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "configs", "*.yaml")))


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
