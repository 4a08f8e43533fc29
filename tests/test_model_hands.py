"""Hand sources. The ``detector`` source is built through its real constructor from a tiny Detectron2 Mask R-CNN
(config and weights written in the test), with weights set so that the class of every detection is known."""
import numpy as np
import pytest
import torch

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.modeling import build_model

from wish_d2 import add_wish_config
from wish_d2.modeling.hands import DetectorHands, build_hand_source

H, W = 48, 64


def _tiny_mask_rcnn_cfg(num_classes: int):
    """A stock FPN Mask R-CNN, shrunk: R50 layout with 8-channel stem, 16-channel FPN, one-layer heads."""
    cfg = get_cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.META_ARCHITECTURE = "GeneralizedRCNN"
    cfg.MODEL.MASK_ON = True
    cfg.MODEL.BACKBONE.NAME = "build_resnet_fpn_backbone"
    cfg.MODEL.RESNETS.DEPTH = 50
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.RESNETS.STEM_OUT_CHANNELS = 8
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 16
    cfg.MODEL.RESNETS.WIDTH_PER_GROUP = 4
    cfg.MODEL.FPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.FPN.OUT_CHANNELS = 16
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[16], [32], [64], [128], [256]]
    cfg.MODEL.RPN.IN_FEATURES = ["p2", "p3", "p4", "p5", "p6"]
    cfg.MODEL.RPN.PRE_NMS_TOPK_TEST = 50
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 10
    cfg.MODEL.ROI_HEADS.NAME = "StandardROIHeads"
    cfg.MODEL.ROI_HEADS.IN_FEATURES = ["p2", "p3", "p4", "p5"]
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = num_classes
    cfg.MODEL.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
    cfg.MODEL.ROI_BOX_HEAD.NUM_FC = 1
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 16
    cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 7
    cfg.MODEL.ROI_MASK_HEAD.NAME = "MaskRCNNConvUpsampleHead"
    cfg.MODEL.ROI_MASK_HEAD.NUM_CONV = 1
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 8
    cfg.MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION = 14
    cfg.INPUT.MIN_SIZE_TEST = 64
    cfg.INPUT.MAX_SIZE_TEST = 128
    cfg.TEST.DETECTIONS_PER_IMAGE = 5
    return cfg


def _save_detector(tmp_path, class_logits):
    """Config + weights of a tiny Mask R-CNN whose box classifier ignores its input: every proposal scores
    ``softmax(class_logits)`` (last entry = background), boxes stay the proposals, masks fill their box."""
    cfg = _tiny_mask_rcnn_cfg(num_classes=len(class_logits) - 1)
    torch.manual_seed(0)
    model = build_model(cfg)
    heads = model.roi_heads
    with torch.no_grad():
        heads.box_predictor.cls_score.weight.zero_()
        heads.box_predictor.cls_score.bias.copy_(torch.tensor(class_logits, dtype=torch.float32))
        heads.box_predictor.bbox_pred.weight.zero_()
        heads.box_predictor.bbox_pred.bias.zero_()
        heads.mask_head.predictor.weight.zero_()
        heads.mask_head.predictor.bias.fill_(10.0)
    config_file = tmp_path / "hand_detector.yaml"
    config_file.write_text(cfg.dump())
    DetectionCheckpointer(model, save_dir=str(tmp_path)).save("hand_detector")
    return str(config_file), str(tmp_path / "hand_detector.pth")


def _frame(seed=0):
    rgb = np.random.default_rng(seed).integers(0, 255, (H, W, 3), dtype=np.uint8)
    return {"image": torch.from_numpy(rgb).permute(2, 0, 1).contiguous(), "image_id": "f", "height": H, "width": W}


class _Recorder:
    """Wraps the real predictor to see what it is given."""

    def __init__(self, predictor):
        self.predictor, self.seen = predictor, None

    def __call__(self, image):
        self.seen = image
        return self.predictor(image)


def test_detector_hands_keep_the_class_side(tmp_path):
    config_file, weights = _save_detector(tmp_path, [-10.0, 10.0, -10.0])  # every detection: class 1 = right
    hands = DetectorHands(config_file, weights, class_names=["left", "right"], side_heuristic=False)
    hands.predictor = _Recorder(hands.predictor)
    x = _frame()
    ((masks, present),) = hands([x])
    assert hands.predictor.seen[0, 0].tolist() == x["image"][:, 0, 0].flip(0).tolist()  # BGR, as Detectron2 wants
    assert masks.dtype == torch.bool and masks.shape == (2, H, W)
    assert present.tolist() == [False, True]  # the class decides the side, even with the heuristic off
    assert masks[1].any() and not masks[0].any()
    # a mask fills its box: the union of detections equals the union of the detector's own pasted masks
    inst = hands.predictor.predictor(np.ascontiguousarray(x["image"].permute(1, 2, 0).numpy()[:, :, ::-1]))
    assert len(inst["instances"]) > 0 and torch.equal(inst["instances"].pred_masks.any(0), masks[1])


def test_detector_without_detections_gives_no_hands(tmp_path):
    config_file, weights = _save_detector(tmp_path, [-10.0, -10.0, 10.0])  # background wins everywhere
    hands = DetectorHands(config_file, weights, class_names=["left", "right"])
    ((masks, present),) = hands([_frame()])
    assert present.tolist() == [False, False] and not masks.any()


def test_detector_non_hand_classes_are_ignored(tmp_path):
    config_file, weights = _save_detector(tmp_path, [-10.0, 10.0, -10.0])  # every detection: class 1 = object
    hands = DetectorHands(config_file, weights, class_names=["hand", "object"])
    ((masks, present),) = hands([_frame()])
    assert present.tolist() == [False, False] and not masks.any()


def test_detector_side_less_hands_use_the_heuristic_from_cfg(tmp_path):
    config_file, weights = _save_detector(tmp_path, [10.0, -10.0])  # one class, "hand"
    cfg = get_cfg()
    add_wish_config(cfg)
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WISH.HANDS.SOURCE = "detector"
    cfg.MODEL.WISH.HANDS.DETECTOR_CONFIG = config_file
    cfg.MODEL.WISH.HANDS.DETECTOR_WEIGHTS = weights
    cfg.MODEL.WISH.HANDS.DETECTOR_CLASSES = ["hand"]
    hands = build_hand_source(cfg)
    assert isinstance(hands, DetectorHands)
    ((masks, present),) = hands([_frame()])
    assert present.any() and all(bool(masks[k].any()) == bool(present[k]) for k in range(2))
    cfg.MODEL.WISH.HANDS.SIDE_HEURISTIC = False  # side-less hands are dropped, not guessed
    ((masks, present),) = build_hand_source(cfg)([_frame()])
    assert not present.any() and not masks.any()


def test_detector_config_errors_name_the_key(tmp_path):
    config_file, weights = _save_detector(tmp_path, [10.0, -10.0, -10.0])
    with pytest.raises(ValueError, match="DETECTOR_CLASSES.*NUM_CLASSES=2"):
        DetectorHands(config_file, weights, class_names=["hand"])
    with pytest.raises(ValueError, match="no 'left', 'right' or 'hand'"):
        DetectorHands(config_file, weights, class_names=["object", "tool"])
    with pytest.raises(ValueError, match="DETECTOR_SCORE_THRESH"):
        DetectorHands(config_file, weights, class_names=["left", "right"], score_thresh=1.5)
    with pytest.raises(FileNotFoundError, match="DETECTOR_CONFIG"):
        DetectorHands(str(tmp_path / "nope.yaml"), weights)
    with pytest.raises(FileNotFoundError, match="DETECTOR_WEIGHTS"):
        DetectorHands(config_file, str(tmp_path / "nope.pth"), class_names=["left", "right"])


def test_detector_weights_that_do_not_match_are_refused(tmp_path):
    (tmp_path / "two").mkdir()
    config_file, _ = _save_detector(tmp_path / "two", [10.0, -10.0, -10.0])  # a left/right detector
    _, one_class_weights = _save_detector(tmp_path, [10.0, -10.0])  # the weights of a 1-class detector
    with pytest.raises(ValueError, match="DETECTOR_WEIGHTS.*roi_heads.box_predictor.cls_score.weight"):
        DetectorHands(config_file, one_class_weights, class_names=["left", "right"])
    empty = tmp_path / "empty.pth"
    torch.save({"model": {}}, empty)
    with pytest.raises(ValueError, match="DETECTOR_WEIGHTS.*holds no weights"):
        DetectorHands(config_file, str(empty), class_names=["left", "right"])
    wish_like = tmp_path / "wish_like.pth"
    torch.save({"model": {"roi_heads.heads.contact.0.weight": torch.zeros(2, 3)}}, wish_like)
    with pytest.raises(ValueError, match="DETECTOR_WEIGHTS.*missing backbone"):
        DetectorHands(config_file, str(wish_like), class_names=["left", "right"])

