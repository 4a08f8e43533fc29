"""Grounded-SAM as a frozen proposal segmenter: Grounding DINO (``transformers``) detects boxes for a text prompt made
of a noun taxonomy fixed before evaluation (``wish_d2/data/taxonomy.py``, joined as ``"a . b . c ."``); each box above
``BOX_THRESHOLD`` whose phrase clears ``TEXT_THRESHOLD`` becomes a SAM box prompt. The paper found it better than
plain SAM.

Registered in :data:`wish_d2.registry.SEGMENTER_REGISTRY` as ``GSAM`` (``MODEL.WISH.SEGMENTER.NAME: "GSAM"``).

Weights: SAM as in :mod:`.sam`; Grounding DINO (``MODEL.WISH.SEGMENTER.GDINO_PATH``) is a local ``transformers``
folder (``save_pretrained``), or a Hugging Face repo id such as ``IDEA-Research/grounding-dino-base``, fetched and
cached by ``from_pretrained`` (``HF_HUB_OFFLINE=1`` uses the cache only; ``HF_HUB_ETAG_TIMEOUT`` and
``HF_HUB_DOWNLOAD_TIMEOUT`` bound the waits).
"""
import logging
import os
import re
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from detectron2.config import configurable

from ...registry import SEGMENTER_REGISTRY
from ..weights import hub_unreachable, offline_mode
from .common import FrozenSegmenter, freeze, to_rgb_uint8
from .sam import build_sam

logger = logging.getLogger(__name__)

__all__ = ["taxonomy_prompt", "taxonomy_phrases", "load_grounding_dino", "GSAMSegmenter", "GSAM"]

_KEY = "MODEL.WISH.SEGMENTER.GDINO_PATH"
GDINO_HINT = (
    f"Set {_KEY} to a Hugging Face repo id (e.g. 'IDEA-Research/grounding-dino-base', downloaded and cached by "
    "transformers) or to a local folder made with GroundingDinoForObjectDetection.from_pretrained(ID)"
    ".save_pretrained(DIR) and AutoProcessor.from_pretrained(ID).save_pretrained(DIR)."
)


def taxonomy_prompt(nouns: Sequence[str]) -> str:
    """Grounding DINO prompt from a noun taxonomy: ``["knife", "pan:frying"] -> "knife . frying pan ."``.

    EPIC-style colon keys (``pan:frying``) are read as "frying pan"; nouns are lower-cased, stripped, deduplicated.
    """
    return " ".join(f"{p} ." for p in taxonomy_phrases(nouns))


def taxonomy_phrases(nouns: Sequence[str]) -> List[str]:
    """The distinct noun phrases of a taxonomy, in order (what :func:`taxonomy_prompt` joins)."""
    out: List[str] = []
    for noun in nouns:
        parts = [p.strip() for p in str(noun).lower().replace("_", " ").split(":") if p.strip()]
        phrase = re.sub(r"\s+", " ", " ".join(reversed(parts))).replace(".", " ").strip()
        if phrase and phrase not in out:
            out.append(phrase)
    return out


def _is_repo_id(value: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(value)
    except HFValidationError:
        return False
    return True


def load_grounding_dino(path: str):
    """``(model, processor)`` from a local ``transformers`` folder (``local_files_only=True``), or else from a Hugging
    Face repo id through the hub cache. The model is frozen and in eval mode.

    Raises ``ValueError`` (empty value), ``FileNotFoundError`` (neither a folder nor a valid repo id) or
    ``RuntimeError`` (the folder or repo does not load: missing files, offline and not cached, unknown repo), each
    naming the key and the value.
    """
    if not path:
        raise ValueError(f"{_KEY} is empty: GSAM needs Grounding DINO. {GDINO_HINT}")
    folder = os.path.expanduser(path)
    local = os.path.isdir(folder)
    if not local and not _is_repo_id(path):
        raise FileNotFoundError(f"{_KEY}: Grounding DINO folder not found: {folder}. {GDINO_HINT}")
    try:
        from transformers import AutoProcessor, GroundingDinoForObjectDetection
    except ImportError as e:
        raise ImportError("GSAM needs transformers: pip install 'wish_d2[gsam]'") from e
    source = folder if local else path
    # No network: read the hub cache only, at once, instead of retrying every file with backoff.
    unreachable = None if local or offline_mode() else hub_unreachable()
    cache_only = local or bool(unreachable)
    try:
        model = GroundingDinoForObjectDetection.from_pretrained(source, local_files_only=cache_only)
        processor = AutoProcessor.from_pretrained(source, local_files_only=cache_only)
    except (OSError, ValueError) as e:  # missing files, offline cache miss, unknown or private repo
        what = ("the local folder did not load" if local
                else "not a local folder, and as a Hugging Face repo id it failed")
        if unreachable:
            what += f" ({unreachable}; looked in the local cache only)"
        raise RuntimeError(
            f"{_KEY}={path!r}: {what}: {type(e).__name__}: {str(e).strip().rstrip('.')}. {GDINO_HINT}"
        ) from e
    if not local:
        logger.info("Loaded Grounding DINO %s from the Hugging Face cache", path)
    return freeze(model), processor


class GSAMSegmenter(FrozenSegmenter):
    """Grounded-SAM: Grounding DINO boxes for the taxonomy prompt, then SAM box prompts.

    Steps for one image:

    1. Prompt = :func:`taxonomy_prompt` of ``nouns``. A taxonomy longer than Grounding DINO's text window
       (``config.max_text_len`` tokens, 256 for the released models; EPIC has ~300 nouns) is split into chunks of
       whole phrases; each chunk runs the detector once and the boxes are pooled.
    2. A box is kept when its score (max sigmoid over prompt tokens) is above ``box_threshold`` and some token
       of its phrase is above ``text_threshold`` (boxes whose phrase is empty are dropped).
    3. Class-agnostic box NMS at ``box_nms_thresh`` removes the duplicate queries; at most ``max_boxes`` remain.
    4. SAM embeds the image once (``SamPredictor.set_image``); all boxes go through ``predict_torch`` in batches,
       single-mask output.

    Score of a mask = its Grounding DINO box score. Masks come sorted by decreasing score. The detected phrases are
    available from :meth:`detect`.
    """

    @configurable
    def __init__(
        self,
        *,
        sam: nn.Module,
        grounding_dino: nn.Module,
        processor,
        nouns: Optional[Sequence[str]] = None,
        box_threshold: float = 0.25,
        text_threshold: float = 0.25,
        box_nms_thresh: float = 0.7,
        max_boxes: int = 100,
        sam_batch_size: int = 64,
    ):
        super().__init__()
        from segment_anything import SamPredictor

        self.sam = freeze(sam)
        self.grounding_dino = freeze(grounding_dino)
        self.processor = processor
        self.nouns = list(nouns) if nouns is not None else None
        self.box_threshold = box_threshold
        self.text_threshold = text_threshold
        self.box_nms_thresh = box_nms_thresh
        self.max_boxes = max_boxes
        self.sam_batch_size = sam_batch_size
        self.predictor = SamPredictor(self.sam)
        self._prompt_chunks: Dict[Tuple[str, ...], List[str]] = {}  # taxonomy -> prompts, tokenized once

    @classmethod
    def from_config(cls, cfg):
        S = cfg.MODEL.WISH.SEGMENTER
        gdino, processor = load_grounding_dino(S.GDINO_PATH)
        return {
            "sam": build_sam(S.SAM_TYPE, S.SAM_CHECKPOINT),
            "grounding_dino": gdino,
            "processor": processor,
            "box_threshold": S.BOX_THRESHOLD,
            "text_threshold": S.TEXT_THRESHOLD,
            "box_nms_thresh": S.BOX_NMS_THRESH,
        }

    def _chunks(self, nouns: Sequence[str]) -> List[str]:
        """Prompts of whole phrases that each fit the detector's text window (computed once per taxonomy: the
        taxonomy of a dataset, ~300 EPIC nouns, does not change from frame to frame)."""
        key = tuple(nouns)
        if key not in self._prompt_chunks:
            self._prompt_chunks[key] = self._split_into_chunks(nouns)
        return self._prompt_chunks[key]

    def _split_into_chunks(self, nouns: Sequence[str]) -> List[str]:
        phrases = taxonomy_phrases(nouns)
        if not phrases:
            raise ValueError("GSAM needs a non-empty noun taxonomy")
        budget = int(getattr(self.grounding_dino.config, "max_text_len", 256)) - 2  # [CLS] ... [SEP]
        tok = self.processor.tokenizer
        chunks, current, used = [], [], 0
        for phrase in phrases:
            n = len(tok.tokenize(f"{phrase} ."))
            if current and used + n > budget:
                chunks.append(" ".join(current))
                current, used = [], 0
            current.append(f"{phrase} .")
            used += n
        chunks.append(" ".join(current))
        return chunks

    @torch.no_grad()
    def detect(self, image, nouns: Optional[Sequence[str]] = None) -> Dict:
        """Grounding DINO alone: ``{"boxes": [K, 4] XYXY abs, "scores": [K], "phrases": [str]}`` after the
        thresholds and NMS, sorted by decreasing score."""
        from torchvision.ops import nms

        image = to_rgb_uint8(image)
        h, w = image.shape[:2]
        nouns = nouns if nouns is not None else self.nouns
        if not nouns:
            raise ValueError("GSAM needs a noun taxonomy: pass nouns= (GSAMProposals passes the config's taxonomy)")
        boxes, scores, phrases = [], [], []
        for prompt in self._chunks(nouns):
            inputs = self.processor(images=image, text=prompt, return_tensors="pt").to(self.device)
            outputs = self.grounding_dino(**inputs)
            (res,) = self.processor.post_process_grounded_object_detection(
                outputs,
                inputs["input_ids"],
                threshold=self.box_threshold,
                text_threshold=self.text_threshold,
                target_sizes=[(h, w)],
            )
            labels = [re.sub(r"\[(SEP|CLS|PAD)\]|\.|\s+", " ", str(t)).strip() for t in res["text_labels"]]
            labels = [re.sub(r"\s+", " ", t) for t in labels]
            keep = [i for i, t in enumerate(labels) if t]
            boxes.append(res["boxes"][keep].float().cpu())
            scores.append(res["scores"][keep].float().cpu())
            phrases += [labels[i] for i in keep]
        boxes, scores = torch.cat(boxes), torch.cat(scores)
        if len(boxes):
            boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
            boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
            valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            idx = valid.nonzero().flatten()
            idx = idx[nms(boxes[idx], scores[idx], self.box_nms_thresh)][: self.max_boxes]  # sorted by score
            boxes, scores, phrases = boxes[idx], scores[idx], [phrases[i] for i in idx.tolist()]
        return {"boxes": boxes, "scores": scores, "phrases": phrases}

    @torch.no_grad()
    def forward(self, image, nouns: Optional[Sequence[str]] = None, **unused) -> Tuple[torch.Tensor, torch.Tensor]:
        image = to_rgb_uint8(image)
        h, w = image.shape[:2]
        det = self.detect(image, nouns)
        boxes, scores = det["boxes"], det["scores"]
        if len(boxes) == 0:
            return torch.zeros((0, h, w), dtype=torch.bool), torch.zeros(0)
        self.predictor.set_image(image, image_format="RGB")
        masks = []
        for start in range(0, len(boxes), self.sam_batch_size):
            b = self.predictor.transform.apply_boxes_torch(boxes[start:start + self.sam_batch_size], (h, w))
            m, _, _ = self.predictor.predict_torch(
                point_coords=None, point_labels=None, boxes=b.to(self.predictor.device), multimask_output=False
            )
            masks.append(m[:, 0].cpu())
        self.predictor.reset_image()
        return torch.cat(masks).bool(), scores


@SEGMENTER_REGISTRY.register()
def GSAM(cfg) -> GSAMSegmenter:  # noqa: N802 (fvcore registries key a builder by its __name__)
    """``MODEL.WISH.SEGMENTER.NAME: "GSAM"``: :class:`GSAMSegmenter` from ``MODEL.WISH.SEGMENTER.*``."""
    return GSAMSegmenter(cfg)
