"""Hand sources. The ``detector`` source is built through its real constructor from a tiny Detectron2 Mask R-CNN
(config and weights written in the test), with weights set so that the class of every detection is known."""
import numpy as np
import pytest
import torch

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.modeling import build_model

from wish_d2 import add_wish_config
from wish_d2.modeling.hands import DetectorHands, build_hand_source, hand_class, hands_to_tensors

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
    """Wraps the real detector model to see what it is given."""

    def __init__(self, model):
        self.model, self.seen = model, None

    def __call__(self, inputs):
        self.seen = inputs
        return self.model(inputs)


def test_detector_hands_keep_the_class_side(tmp_path):
    config_file, weights = _save_detector(tmp_path, [-10.0, 10.0, -10.0])  # every detection: class 1 = right
    hands = DetectorHands(config_file, weights, class_names=["left", "right"], side_heuristic=False)
    recorder = _Recorder(hands.predictor.model)
    hands.predictor.model = recorder
    x = _frame()
    ((masks, present),) = hands([x])
    hands.predictor.model = recorder.model
    seen = recorder.seen[0]["image"]
    assert seen[:, 0, 0].tolist() == x["image"][:, 0, 0].flip(0).float().tolist()  # BGR, as Detectron2 wants
    assert masks.dtype == torch.bool and masks.shape == (2, H, W)
    assert present.tolist() == [False, True]  # the class decides the side, even with the heuristic off
    assert masks[1].any() and not masks[0].any()
    # a mask fills its box: the hand is DefaultPredictor's own pasted mask of its best-scoring detection
    inst = hands.predictor(np.ascontiguousarray(x["image"].permute(1, 2, 0).numpy()[:, :, ::-1]))["instances"]
    assert len(inst) > 1 and torch.equal(inst.pred_masks[inst.scores.argmax()], masks[1])


def test_batched_detection_is_default_predictors_own(tmp_path):
    """Several frames in one pass give what DefaultPredictor gives one at a time, and the model sees the channel
    order of the detector's INPUT.FORMAT (BGR here, as Detectron2's default)."""
    config_file, weights = _save_detector(tmp_path, [-10.0, 10.0, -10.0])
    hands = DetectorHands(config_file, weights, class_names=["left", "right"], score_thresh=0.0)
    frames = [np.ascontiguousarray(_frame()["image"].permute(1, 2, 0).numpy()) for _ in range(2)]
    frames[1] = np.ascontiguousarray(frames[1][::-1])  # a different frame
    recorder = _Recorder(hands.predictor.model)
    hands.predictor.model = recorder
    batched = hands.instances_batch(frames)
    assert len(recorder.seen) == 2 and [(x["height"], x["width"]) for x in recorder.seen] == [(H, W)] * 2
    assert recorder.seen[0]["image"][:, 0, 0].tolist() == frames[0][0, 0, ::-1].astype(float).tolist()  # BGR
    hands.predictor.model = recorder.model
    assert hands.instances_batch([]) == []
    for rgb, inst in zip(frames, batched):
        single = hands.predictor(np.ascontiguousarray(rgb[:, :, ::-1]))["instances"]
        assert len(inst) == len(single) > 0
        assert torch.allclose(inst.scores, single.scores, atol=1e-5)
        assert torch.equal(inst.pred_masks, single.pred_masks)


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
    with pytest.raises(ValueError, match=f"hand detector {config_file}: none of its classes.*is a hand"):
        DetectorHands(config_file, weights, class_names=["object", "tool"])
    with pytest.raises(FileNotFoundError, match="DETECTOR_CONFIG"):
        DetectorHands(str(tmp_path / "nope.yaml"), weights)
    with pytest.raises(FileNotFoundError, match="DETECTOR_WEIGHTS.*Train it with: python tools/train_hand_detector.py"):
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



@pytest.mark.parametrize("name, meaning", [
    ("left hand", "left"), ("Right Hand", "right"), ("left_hand", "left"), ("right", "right"), ("hand", "hand"),
    ("object", None), ("left hand object", None), ("glove", None),
])
def test_hand_class_names(name, meaning):
    assert hand_class(name) == meaning


def _two_in_the_left_half():
    a, b = torch.zeros(H, W, dtype=torch.bool), torch.zeros(H, W, dtype=torch.bool)
    a[30:48, 0:10] = True  # centroid x 5
    b[30:48, 14:24] = True  # centroid x 19; both left of W / 2 = 32
    return a, b


def test_side_less_hands_of_one_half_become_two_hands():
    """assign_sides over the frame: two side-less hands in one half are a left and a right hand, not one merged."""
    a, b = _two_in_the_left_half()
    masks, present = hands_to_tensors([{"segmentation": a}, {"segmentation": b, "side": None}], H, W)
    assert present.tolist() == [True, True]
    assert torch.equal(masks[0], a) and torch.equal(masks[1], b)
    # a hand with a side keeps it, whatever the side-less ones get
    masks, present = hands_to_tensors([{"segmentation": b, "side": "left"}], H, W)
    assert present.tolist() == [True, False] and torch.equal(masks[0], b)
    # a lone side-less hand: the vertical split; with the heuristic off it is dropped
    assert hands_to_tensors([{"segmentation": b}], H, W)[1].tolist() == [True, False]
    assert hands_to_tensors([{"segmentation": b}], H, W, side_heuristic=False)[1].tolist() == [False, False]


def test_shipped_detector_config_saved_and_loaded_through_the_hand_source(tmp_path):
    """configs/hand_detector_visor.yaml shrunk, random weights saved by Detectron2's checkpointer, loaded back by the
    ``detector`` hand source with the classes the real configs name: detections carry their class's side."""
    import os

    from wish_d2.engine.hand_detector import hand_detector_cfg

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    small = _tiny_mask_rcnn_cfg(2)
    opts = []
    for key in ("MODEL.RESNETS.STEM_OUT_CHANNELS", "MODEL.RESNETS.RES2_OUT_CHANNELS", "MODEL.RESNETS.WIDTH_PER_GROUP",
                "MODEL.FPN.OUT_CHANNELS", "MODEL.ANCHOR_GENERATOR.SIZES", "MODEL.RPN.PRE_NMS_TOPK_TEST",
                "MODEL.RPN.POST_NMS_TOPK_TEST", "MODEL.ROI_BOX_HEAD.NUM_FC", "MODEL.ROI_BOX_HEAD.FC_DIM",
                "MODEL.ROI_MASK_HEAD.NUM_CONV", "MODEL.ROI_MASK_HEAD.CONV_DIM", "INPUT.MIN_SIZE_TEST",
                "INPUT.MAX_SIZE_TEST", "TEST.DETECTIONS_PER_IMAGE"):
        node = small
        for part in key.split("."):
            node = node[part]
        opts += [key, str(node)]
    cfg = hand_detector_cfg(os.path.join(repo, "configs", "hand_detector_visor.yaml"),
                            opts + ["MODEL.WEIGHTS", "", "MODEL.DEVICE", "cpu"])
    assert cfg.INPUT.RANDOM_FLIP == "none" and cfg.MODEL.ROI_HEADS.NUM_CLASSES == 2
    torch.manual_seed(0)
    model = build_model(cfg)
    with torch.no_grad():  # every proposal: class 0 (left hand), mask filling its box
        p = model.roi_heads.box_predictor
        p.cls_score.weight.zero_()
        p.cls_score.bias.copy_(torch.tensor([10.0, -10.0, -10.0]))
        model.roi_heads.mask_head.predictor.weight.zero_()
        model.roi_heads.mask_head.predictor.bias.fill_(10.0)
    config_file = tmp_path / "hand_detector.yaml"
    config_file.write_text(cfg.dump())
    DetectionCheckpointer(model, save_dir=str(tmp_path)).save("model_final")

    wcfg = get_cfg()
    add_wish_config(wcfg)
    wcfg.MODEL.DEVICE = "cpu"
    wcfg.MODEL.WISH.HANDS.SOURCE = "detector"
    wcfg.MODEL.WISH.HANDS.DETECTOR_CONFIG = str(config_file)
    wcfg.MODEL.WISH.HANDS.DETECTOR_WEIGHTS = str(tmp_path / "model_final.pth")
    wcfg.MODEL.WISH.HANDS.DETECTOR_CLASSES = ["left hand", "right hand"]
    hands = build_hand_source(wcfg)
    detected = hands.detect(_frame()["image"].permute(1, 2, 0).numpy())
    assert detected and {h["side"] for h in detected} == {"left"} and all(h["score"] > 0.9 for h in detected)
    ((masks, present),) = hands([_frame()])
    assert present.tolist() == [True, False]  # sides from the class, never from the heuristic
    # the loaded weights are the saved ones, parameter for parameter
    saved = torch.load(tmp_path / "model_final.pth", weights_only=True)["model"]
    loaded = hands.predictor.model.state_dict()
    assert all(torch.equal(loaded[k].cpu(), v) for k, v in saved.items())


def test_two_detections_of_one_side_keep_the_best_scoring_one():
    """A frame has one hand per side: of two scored detections of one side the better one is the hand, while an
    annotation given in unscored parts is merged."""
    a, b = _two_in_the_left_half()
    masks, present = hands_to_tensors([{"segmentation": a, "side": "left", "score": 0.6},
                                       {"segmentation": b, "side": "left", "score": 0.9}], H, W)
    assert present.tolist() == [True, False] and torch.equal(masks[0], b)
    masks, _ = hands_to_tensors([{"segmentation": a, "side": "left"}, {"segmentation": b, "side": "left"}], H, W)
    assert torch.equal(masks[0], a | b)
