"""Hand sources: the Detectron2 hand detector gets frames in the channel order DefaultPredictor expects (BGR)."""
import numpy as np
import pytest
import torch
from detectron2.structures import Instances

from wish_d2.modeling.hands import DetectorHands


class _RecordingPredictor:
    def __init__(self):
        self.seen = None

    def __call__(self, image):
        self.seen = image
        inst = Instances(image.shape[:2])
        mask = np.zeros(image.shape[:2], dtype=bool)
        mask[2:6, 1:4] = True  # left half of the frame
        inst.pred_masks = torch.from_numpy(mask)[None]
        inst.pred_classes = torch.tensor([0])
        return {"instances": inst}


def test_detector_gets_bgr_and_returns_a_hand():
    hands = DetectorHands.__new__(DetectorHands)
    hands.side_heuristic = True
    hands.class_names = ["hand"]
    hands.predictor = _RecordingPredictor()
    rgb = np.zeros((8, 10, 3), dtype=np.uint8)
    rgb[..., 0] = 200  # red frame
    (masks, present), = hands([{"image": torch.from_numpy(rgb).permute(2, 0, 1)}])
    assert hands.predictor.seen[0, 0].tolist() == [0, 0, 200]  # BGR: red is the last channel
    assert bool(present[0]) and not bool(present[1])  # on the left half -> left hand by the heuristic
    assert int(masks[0].sum()) == 12


def test_missing_detector_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="config"):
        DetectorHands(str(tmp_path / "nope.yaml"), str(tmp_path / "w.pth"))
