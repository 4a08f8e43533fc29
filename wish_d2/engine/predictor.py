"""``WISHPredictor``: the online path on single frames (demo, new images), like Detectron2's DefaultPredictor."""
import logging
from typing import Dict, List, Optional

import numpy as np
import torch
from detectron2.modeling import build_model

from .checkpoint import load_eval_weights

logger = logging.getLogger(__name__)


class WISHPredictor:
    """Frame in, in-hand objects out. Runs the frozen models online; no narration is used.

    ``predictor(image_rgb, hands=None, image_id="", extra=None)`` returns ``{"instances", "record"}``: the
    predictions (Instances with ``pred_masks``, ``pred_classes`` 0 left / 1 right / 2 both, ``scores``) and the
    frame's feature record (proposal masks as RLE, hand masks), which the demo draws. ``hands`` are dataset-style
    hand dicts (used by the ``dataset`` hand source); ``extra`` adds keys to the model input, e.g.
    ``proposals_file`` for ``PrecomputedMaskProposals``.

    Weights load like ``--eval-only`` does (a path or a URL): a missing file, or a checkpoint that leaves part of
    the WISH heads randomly initialised, raises :class:`~wish_d2.engine.checkpoint.WeightsError` unless
    ``allow_partial``, so a typo never silently yields random predictions.
    """

    def __init__(self, cfg, weights: Optional[str] = None, allow_partial: bool = False):
        self.cfg = cfg.clone()
        self.model = build_model(self.cfg).eval()
        weights = weights if weights is not None else cfg.MODEL.WEIGHTS
        if weights:
            load_eval_weights(self.model, weights, allow_partial=allow_partial)
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
