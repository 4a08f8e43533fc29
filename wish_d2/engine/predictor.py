"""``WISHPredictor``: the online path on single frames (demo, new images), like Detectron2's DefaultPredictor."""
import logging
import os
from typing import Dict, List, Optional

import numpy as np
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model


logger = logging.getLogger(__name__)


class WISHPredictor:
    """Frame in, in-hand objects out. Runs the frozen models online; no narration is used.

    ``predictor(image_rgb, hands=None, image_id="")`` returns ``{"instances", "record"}``: the predictions
    (Instances with ``pred_masks``, ``pred_classes`` 0 left / 1 right / 2 both, ``scores``) and the frame's
    feature record (proposal masks as RLE, hand masks), which the demo draws.
    """

    def __init__(self, cfg, weights: Optional[str] = None):
        self.cfg = cfg.clone()
        self.model = build_model(self.cfg).eval()
        weights = weights if weights is not None else cfg.MODEL.WEIGHTS
        if weights:
            if not os.path.isfile(weights):
                raise FileNotFoundError(f"WISH weights not found: {weights} (MODEL.WEIGHTS); train with "
                                        "tools/train_net.py first or point MODEL.WEIGHTS at model_final.pth")
            DetectionCheckpointer(self.model).load(weights)
        else:
            logger.warning("No MODEL.WEIGHTS given: the WISH heads are randomly initialised, predictions are "
                           "meaningless except as a smoke test")

    @torch.no_grad()
    def __call__(self, image_rgb: np.ndarray, hands: Optional[List[Dict]] = None, image_id: str = "",
                 extra: Optional[Dict] = None) -> Dict:
        h, w = image_rgb.shape[:2]
        x = {"image": torch.as_tensor(np.ascontiguousarray(image_rgb.transpose(2, 0, 1))),
             "height": h, "width": w, "image_id": image_id, "hands": hands or []}
        x.update(extra or {})
        record = self.model.extract([x])[0]
        out = self.model([{**x, "wish_features": record}])[0]
        return {"instances": out["instances"], "record": record}
