"""The ``WISH`` meta-architecture: image -> proposals + hands -> mask-pooled CLIP -> WISH ROI heads.

Two input paths share one code path after feature extraction:
- **online**: dicts carry ``image`` (uint8 CHW RGB); :meth:`WISH.extract` runs the frozen proposal generator,
  hand source, CLIP pooling and geometry (demo, inference on new images, ``WISH.CACHE.ENABLED False``), at a
  working resolution bounded by the ViT's input, whatever the frame size;
- **cached**: dicts carry ``wish_features``, a record produced earlier by the same :meth:`WISH.extract` and read
  from the feature cache (training, evaluation). The frozen models then never run inside the training loop.
"""
import logging
from typing import Dict, List, Optional, Sequence

import numpy as np
import pycocotools.mask as mask_util
import torch
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, build_proposal_generator
from detectron2.structures import BitMasks, Instances
from torch import nn

from ..classes import CLASS_LEFT, CLASS_RIGHT, SIDES
from ..data.taxonomy import config_taxonomy
from ..registry import CLIP_ENCODER_REGISTRY
from ..utils.masks import decode_rles, encode_rle
from .geometry import (MIN_WORKING_SIDE, contact_region_masks, hand_overlap_fraction, pair_geometry,
                       to_working_res, working_size)
from .hands import build_hand_source
from .proposal_generators import proposal_masks_at, proposal_rles_of
from .roi_heads import build_wish_heads

logger = logging.getLogger(__name__)


@META_ARCH_REGISTRY.register()
class WISH(nn.Module):
    @configurable
    def __init__(self, *, clip: nn.Module, proposal_generator, hand_source, roi_heads: nn.Module,
                 prompt: str = "{noun} in contact with the {side} hand",
                 zero_shot_prompt: str = "an object held in the {side} hand",
                 hand_dilation: float = 0.04, max_hand_fraction: float = 0.5,
                 open_vocab_nouns: Sequence[str] = (), taxonomy_datasets: Sequence[str] = (),
                 taxonomy_file: str = "",
                 open_vocab_prompt: str = "a {noun}",
                 open_vocab_background: Sequence[str] = ("a hand", "a kitchen counter")):
        """
        Args:
            clip: a frozen :class:`MaskPooledCLIP`.
            proposal_generator: callable ``list[dict] -> list[Instances]`` with ``proposal_rles`` and / or
                ``proposal_masks`` (see :mod:`.proposal_generators`).
            hand_source: callable ``list[dict] -> list[(hand_masks [2,H,W], hand_present [2])]``.
            roi_heads: :class:`WISHROIHeads`.
            prompt / zero_shot_prompt: text templates, formatted with ``noun`` and ``side``.
            hand_dilation: hand dilation of the geometry features, as a fraction of the image diagonal.
            max_hand_fraction: proposals more than this fraction hand are hands, not object candidates.
            open_vocab_nouns: the noun list of the ``open_vocab`` baseline; when empty, the taxonomy
                (:func:`~wish_d2.data.taxonomy.config_taxonomy`) of ``taxonomy_datasets`` (the TRAINING datasets,
                never the evaluated one) or ``taxonomy_file``, read at first use.
            open_vocab_prompt / open_vocab_background: its noun template, and the prompts of what is not an object.
        """
        super().__init__()
        self.clip = clip
        for p in self.clip.parameters():
            p.requires_grad_(False)
        self.proposal_generator = proposal_generator
        self.hand_source = hand_source
        self.roi_heads = roi_heads
        self.prompt = prompt
        self.zero_shot_prompt = zero_shot_prompt
        self.hand_dilation = hand_dilation
        self.max_hand_fraction = max_hand_fraction
        self.open_vocab_nouns = list(open_vocab_nouns)
        self.taxonomy_datasets = tuple(taxonomy_datasets)
        self.taxonomy_file = taxonomy_file
        self.open_vocab_prompt = open_vocab_prompt
        self.open_vocab_background = list(open_vocab_background)
        # masks are pooled and measured at this long side at most, never finer than the ViT's own input
        self.working_side = max(MIN_WORKING_SIDE, int(getattr(clip, "image_size", 0)))
        self._text_memo: Dict[str, torch.Tensor] = {}
        self.register_buffer("_device_probe", torch.zeros(0), persistent=False)

    @classmethod
    def from_config(cls, cfg):
        w = cfg.MODEL.WISH
        clip = CLIP_ENCODER_REGISTRY.get(w.CLIP.ENCODER)(cfg)
        if w.CLIP.AUTOCAST:  # GPU only: MaskPooledCLIP ignores it elsewhere (its values: config_validation)
            clip.autocast_dtype = getattr(torch, w.CLIP.AUTOCAST)
        return {
            "clip": clip,
            "proposal_generator": build_proposal_generator(cfg, None),
            "hand_source": build_hand_source(cfg),
            "roi_heads": build_wish_heads(cfg, {"clip": clip.embed_dim}),
            "prompt": w.CLIP.PROMPT,
            "zero_shot_prompt": w.CLIP.ZERO_SHOT_PROMPT,
            "hand_dilation": w.HANDS.DILATION,
            "max_hand_fraction": w.PROPOSALS.MAX_HAND_FRACTION,
            "open_vocab_nouns": list(w.OPEN_VOCAB.NOUNS),
            "taxonomy_datasets": tuple(cfg.DATASETS.TRAIN),
            "taxonomy_file": w.TAXONOMY.FILE,
            "open_vocab_prompt": w.OPEN_VOCAB.PROMPT,
            "open_vocab_background": list(w.OPEN_VOCAB.BACKGROUND),
        }

    @property
    def device(self):
        return self._device_probe.device

    def train(self, mode: bool = True):
        super().train(mode)
        self.clip.eval()  # frozen: dropout/normalisation never in training mode
        return self

    # ---- frozen part ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def extract(self, batched_inputs: List[Dict]) -> List[Dict]:
        """Frozen features of each image (a cache record, see :mod:`wish_d2.cache.store`).

        Precomputed proposals stay RLE (stored as read, area-averaged from their runs); only the hand RLEs are
        encoded at the frame's full resolution. Hand filtering, contact zones, patch
        coverage and geometry all work on masks area-averaged once to ``working_side`` (the larger of the ViT input
        and ``geometry.MIN_WORKING_SIDE``), so their cost does not grow with the frame size; frames no larger than
        that are used as they are. Ground-truth pair labels come from RLE IoUs.
        """
        proposals = self.proposal_generator(batched_inputs)
        hands = self.hand_source(batched_inputs)
        images, all_masks, kept, work = [], [], [], []
        for x, props, (hand_masks, hand_present) in zip(batched_inputs, proposals, hands):
            # everything but the stored RLEs works at the working resolution (a no-op for small frames)
            size = working_size(*hand_masks.shape[-2:], self.working_side)
            m_w = proposal_masks_at(props, size).to(self.device)
            h_w = to_working_res(hand_masks, size).to(self.device)
            keep = torch.arange(len(m_w))  # indices, so the full-resolution masks are never copied
            if len(m_w) and hand_present.any():
                keep = torch.nonzero(hand_overlap_fraction(m_w, h_w) <= self.max_hand_fraction).flatten().cpu()
                m_w = m_w[keep.to(m_w.device)]
            kept.append((props, keep))
            work.append((m_w, h_w))
            images.append(x["image"])
            # one ViT pass pools N proposals, 2 hands and 2N contact zones (m_i, H_s) (see contact_region_masks)
            zones = contact_region_masks(m_w, h_w, hand_present, self.hand_dilation).flatten(0, 1)
            all_masks.append(torch.cat([m_w, h_w, zones]))
        pixels = self.clip.preprocess([im.to(self.device) for im in images])
        pooled = self.clip.pool(pixels, all_masks)
        records = []
        for x, (props, keep), (hand_masks, hand_present), (m_w, h_w), emb in zip(batched_inputs, kept, hands, work,
                                                                                pooled):
            n = len(keep)
            height, width = (int(s) for s in hand_masks.shape[-2:])
            proposal_rles = proposal_rles_of(props, keep.tolist())
            v_hands = emb[n:n + 2].cpu() * hand_present[:, None]
            v_contact = emb[n + 2:].cpu().reshape(n, 2, emb.shape[-1]) * hand_present[None, :, None]
            records.append({
                "image_id": str(x["image_id"]),
                "height": height,
                "width": width,
                "v": emb[:n].float().cpu(),
                "proposal_rles": proposal_rles,
                "proposal_scores": props.objectness_logits[keep.to(props.objectness_logits.device)]
                .sigmoid().float().cpu(),
                "hand_present": hand_present.clone(),
                "v_hands": v_hands.float(),
                "v_contact": v_contact.float(),
                "hand_rles": [encode_rle(m) if p else None for m, p in zip(hand_masks, hand_present.tolist())],
                "geom": pair_geometry(m_w, h_w, hand_present, self.hand_dilation,
                                      **self._geometry_side(h_w, hand_masks)).float().cpu(),
                "gt_pair_obj": gt_pair_targets(proposal_rles, x.get("annotations"), (height, width)),
            })
        return records

    @staticmethod
    def _geometry_side(h_w: torch.Tensor, hand_masks: torch.Tensor) -> Dict:
        """Geometry of a frame larger than the working resolution is measured at it (already an exact area average);
        a smaller frame keeps ``pair_geometry``'s own working side."""
        work, full = tuple(h_w.shape[-2:]), tuple(hand_masks.shape[-2:])
        return {"max_side": max(work)} if work != full else {}

    @torch.no_grad()
    def text_embeddings(self, phrases: List[str]) -> torch.Tensor:
        """CLIP text of ``prompt`` for each phrase and side: ``[P, 2, D]`` (memoised per phrase)."""
        new = [p for p in dict.fromkeys(phrases) if p not in self._text_memo]
        if new:
            texts = [self.prompt.format(noun=p, side=s) for p in new for s in SIDES]
            emb = self.clip.encode_text(texts)  # batched inside MaskPooledCLIP
            for k, p in enumerate(new):
                self._text_memo[p] = emb[2 * k:2 * k + 2].float().cpu()
        if not phrases:
            return torch.zeros((0, 2, self.clip.embed_dim))
        return torch.stack([self._text_memo[p] for p in phrases])

    @torch.no_grad()
    def zero_shot_embeddings(self) -> torch.Tensor:
        """CLIP text of the zero-shot baseline prompt per side: ``[2, D]``."""
        return self.clip.encode_text([self.zero_shot_prompt.format(side=s) for s in SIDES]).float().cpu()

    @torch.no_grad()
    def vocabulary_embeddings(self):
        """``(text embeddings [K, D], number of noun rows)`` of the ``open_vocab`` baseline: the nouns, then the
        background prompts (memoised)."""
        if not hasattr(self, "_vocabulary_memo"):
            nouns = self.open_vocab_nouns or config_taxonomy(self.taxonomy_datasets, self.taxonomy_file)
            texts = [self.open_vocab_prompt.format(noun=n) for n in nouns] + self.open_vocab_background
            self._vocabulary_memo = (self.clip.encode_text(texts).float().cpu(), len(nouns))
        emb, n = self._vocabulary_memo
        return emb.to(self.device), n

    # ---- trainable part ------------------------------------------------------------------------------------
    def forward(self, batched_inputs: List[Dict], method: Optional[str] = None,
                contact_threshold: Optional[float] = None):
        """Training: losses. Inference: instances by ``method`` (default ``MODEL.WISH.METHOD``) under
        ``contact_threshold`` (default: the calibrated one), see :meth:`WISHROIHeads.inference`."""
        records = self._records(batched_inputs)
        # At inference no narration reaches the model (NS-iHOS): the frames' noun phrases are neither encoded nor
        # batched. Only pseudo_label reads them (the pseudo_labels reference row, by design).
        texts = [self._texts_of(x) for x in batched_inputs] if self.training else \
            [self.text_embeddings([])] * len(batched_inputs)
        batch = collate_records(records, texts, self.device)
        batch["zero_shot"] = self._zero_shot_of(batched_inputs)
        if self.training:
            if all("narration_weight" in x for x in batched_inputs):  # Stage 1 window weighting (docs/VIDEO.md)
                batch["narration_weight"] = torch.tensor([float(x["narration_weight"]) for x in batched_inputs],
                                                         device=self.device)
            targets = torch.stack([x["wish_targets"] for x in batched_inputs]).to(self.device) \
                if all("wish_targets" in x for x in batched_inputs) else None
            return self.roi_heads(batch, targets)
        if (method or self.roi_heads.method) == "open_vocab":
            batch["vocabulary"] = self.vocabulary_embeddings()
        selections = self.roi_heads.inference(batch, method, contact_threshold)
        return [{"instances": selections_to_instances(sel, rec)} for sel, rec in zip(selections, records)]

    def pseudo_label(self, batched_inputs: List[Dict]):
        """Stage 1 pseudo-labels of each image from its narrations (see :mod:`.pseudo_labels`). Reads the frames'
        narrations: on training frames that is WISH's supervision; on the test split it is the ``pseudo_labels``
        reference row of the table, which reads test narrations by design and is labelled so."""
        records = self._records(batched_inputs)
        batch = collate_records(records, [self._texts_of(x) for x in batched_inputs], self.device)
        return self.roi_heads.pseudo_label(batch)

    def _records(self, batched_inputs):
        missing = [x for x in batched_inputs if "wish_features" not in x]
        if missing and any("image" not in x for x in missing):
            raise ValueError("WISH inputs need either 'wish_features' (feature cache) or 'image'")
        extracted = iter(self.extract(missing) if missing else [])
        return [x["wish_features"] if "wish_features" in x else next(extracted) for x in batched_inputs]

    def _texts_of(self, x):
        if "text_embeds" in x:
            return x["text_embeds"]
        return self.text_embeddings(list(x.get("noun_phrases", [])))

    def _zero_shot_of(self, batched_inputs):
        for x in batched_inputs:
            if "zero_shot_embeds" in x:
                return x["zero_shot_embeds"].to(self.device)
        if not hasattr(self, "_zero_shot_memo"):
            self._zero_shot_memo = self.zero_shot_embeddings()
        return self._zero_shot_memo.to(self.device)


def _segmentation_rle(segm, height: int, width: int) -> Dict:
    """A COCO ``segmentation`` (RLE with str/bytes/list counts, or polygons) -> pycocotools RLE of that size."""
    if isinstance(segm, dict):
        counts = segm["counts"]
        if isinstance(counts, list):
            rle = mask_util.frPyObjects(segm, *segm["size"])
        else:
            rle = {"size": list(segm["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    elif isinstance(segm, list):
        rle = mask_util.merge(mask_util.frPyObjects(segm, height, width))
    else:
        raise TypeError(f"unsupported segmentation type {type(segm)}")
    if tuple(int(s) for s in rle["size"]) != (height, width):
        raise ValueError(f"ground-truth mask is {tuple(rle['size'])}, the image is ({height}, {width})")
    return rle


def gt_pair_targets(proposal_rles: List[Dict], annotations: Optional[List[Dict]], hw, min_iou: float = 0.5
                    ) -> torch.Tensor:
    """Fully supervised pair labels (docs/ARCHITECTURE.md, ``gt_pair_obj``): per hand, the proposal with the best IoU
    against that hand's ground-truth object (category side or ``both``) if IoU >= 0.5, else -1.

    IoUs come from the RLEs (pycocotools), never from full-resolution masks; the integer intersections are recovered
    from them and divided in float32, so ties and the threshold resolve exactly as a dense float32 computation would.
    """
    target = torch.full((2,), -1, dtype=torch.long)
    if not annotations or not len(proposal_rles):
        return target
    h, w = int(hw[0]), int(hw[1])
    dt = [{"size": list(r["size"]), "counts": r["counts"].encode("ascii") if isinstance(r["counts"], str)
           else r["counts"]} for r in proposal_rles]
    area_d = mask_util.area(dt).astype(np.float64)
    for ann in annotations:
        cat = int(ann["category_id"])
        gt = _segmentation_rle(ann["segmentation"], h, w)
        area_g = float(mask_util.area(gt))
        iou_d = np.asarray(mask_util.iou(dt, [gt], [0]), dtype=np.float64).reshape(-1)
        inter = np.rint(iou_d * (area_d + area_g) / (1.0 + iou_d))
        inter_t = torch.from_numpy(inter).float()
        iou = inter_t / (torch.from_numpy(area_d).float() + area_g - inter_t).clamp(min=1)
        best = int(iou.argmax())
        if float(iou[best]) >= min_iou:
            for s in ((cat,) if cat in (CLASS_LEFT, CLASS_RIGHT) else (0, 1)):  # a one-hand class is its hand's index
                target[s] = best
    return target


def collate_records(records: List[Dict], texts: List[torch.Tensor], device) -> Dict[str, torch.Tensor]:
    """Pad per-image records into the batch tensors of docs/ARCHITECTURE.md."""
    B = len(records)
    D = records[0]["v_hands"].shape[-1]
    G = records[0]["geom"].shape[-1] if records[0]["geom"].dim() == 3 else 0
    N = max(1, max(len(r["v"]) for r in records))
    M = max(1, max(len(t) for t in texts))
    v = torch.zeros(B, N, D)
    v_contact = torch.zeros(B, N, 2, D)
    geom = torch.zeros(B, N, 2, G)
    obj_valid = torch.zeros(B, N, dtype=torch.bool)
    text = torch.zeros(B, M, 2, D)
    phrase_valid = torch.zeros(B, M, dtype=torch.bool)
    for b, (r, t) in enumerate(zip(records, texts)):
        n, m = len(r["v"]), len(t)
        if n:
            v[b, :n] = r["v"]
            geom[b, :n] = r["geom"]
            v_contact[b, :n] = r["v_contact"]
            obj_valid[b, :n] = True
        if m:
            text[b, :m] = t
            phrase_valid[b, :m] = True
    batch = {
        "v": v, "v_contact": v_contact, "obj_valid": obj_valid, "geom": geom, "text": text,
        "phrase_valid": phrase_valid,
        "v_hands": torch.stack([r["v_hands"] for r in records]),
        "hand_present": torch.stack([r["hand_present"] for r in records]),
        "gt_pair_obj": torch.stack([r["gt_pair_obj"] for r in records]),
    }
    return {k: x.to(device) for k, x in batch.items()}


def selections_to_instances(selection, record: Dict) -> Instances:
    """Selected ``(object index, class, score)`` triples -> Instances at the original resolution."""
    h, w = record["height"], record["width"]
    inst = Instances((h, w))
    idx = [s[0] for s in selection]
    masks = decode_rles([record["proposal_rles"][i] for i in idx], h, w)
    inst.pred_masks = masks
    inst.pred_boxes = BitMasks(masks).get_bounding_boxes()
    inst.pred_classes = torch.tensor([s[1] for s in selection], dtype=torch.long)
    inst.scores = torch.tensor([float(s[2]) for s in selection], dtype=torch.float32)
    inst.proposal_index = torch.tensor(idx, dtype=torch.long)
    return inst
