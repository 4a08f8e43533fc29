"""``WISHROIHeads``: Stage 1 narration alignment, pseudo-labelling, Stage 2 contactness + matching, inference.

Thin Detectron2 glue around the plain-torch core (:mod:`.heads`, :mod:`.losses`, :mod:`.pseudo_labels`,
:mod:`.inference`, :mod:`.baselines`). It works on the padded batch tensors of ``docs/ARCHITECTURE.md``.
The calibrated thresholds are buffers, so a checkpoint reproduces its metrics under ``--eval-only``.

**Registry and calling convention (differ from Detectron2's ``ROIHeads`` on purpose).** The heads are built by
:func:`build_wish_heads` from :data:`wish_d2.registry.WISH_HEADS_REGISTRY` (the name is ``MODEL.ROI_HEADS.NAME``,
kept so that configs stay as they are), not from Detectron2's ``ROI_HEADS_REGISTRY``, because they do not honour
its contract: they are built as ``cls(cfg, {"clip": embed_dim})`` instead of from backbone ``ShapeSpec`` objects, and
called as

    heads(batch: dict[str, Tensor], targets: Optional[Tensor]) -> dict of losses | list of selections

instead of ``heads(images, features, proposals, targets) -> (instances, losses)``. WISH has no trainable backbone
and no box regression: its proposals are frozen masks whose CLIP embeddings and hand geometry are extracted once
into the feature cache, and the heads score the padded per-image tensors of that cache (``collate_records``),
whether they come from the cache or from the online path. A stock ``ROIHeads`` would find none of the features it
expects, so a registry of their own (as PointRend gives its point heads) says so at build time.
"""
from types import MappingProxyType
from typing import Dict, List, Mapping, Optional

import torch
from detectron2.config import configurable
from detectron2.utils.events import get_event_storage
from torch import nn

from ..registry import WISH_HEADS_REGISTRY
from .baselines import clip_zero_shot_scores, nearest_to_hand_scores, open_vocab_scores
from .geometry import GEOMETRY_DIM, NEAR_HAND_FRAC_OF_OBJ
from .heads import AlignmentHead, ContactMatchingHeads
from .inference import INFERENCE_RULES, select_in_hand
from .losses import (NEG, contact_loss, image_narration_scores, image_narration_valid, matching_loss, pair_scores,
                     symmetric_info_nce)
from .pseudo_labels import assign_pseudo_labels

__all__ = ["WISHROIHeads", "build_wish_heads", "HEAD_METHODS", "BASELINES", "STAGES", "SUPERVISIONS"]

#: Training-free baselines: raw scores, read with the matching-only rule.
BASELINES = ("nearest_to_hand", "clip_zero_shot", "open_vocab")
#: What the heads can infer with (``MODEL.WISH.METHOD``): the trained rules, then the baselines.
HEAD_METHODS = INFERENCE_RULES + BASELINES
#: What trains (``MODEL.WISH.STAGE``): Stage 1 alignment, Stage 2 heads, or both with pseudo-labels between.
STAGES = ("stage1", "stage2", "all")
#: Stage 2 targets (``MODEL.WISH.SUPERVISION``): Stage 1's pseudo-labels, or the ground truth (upper bound).
SUPERVISIONS = ("pseudo", "gt")
#: ``MODEL.WISH.LOSS_WEIGHTS`` (read-only: a default argument is shared by every call).
DEFAULT_LOSS_WEIGHTS = MappingProxyType({"align": 1.0, "contact": 1.0, "match": 1.0})
# Contactness threshold of a model whose threshold was never calibrated (buffer < 0): even odds of contact.
UNCALIBRATED_CONTACT_THRESHOLD = 0.5


def build_wish_heads(cfg, input_shape: Dict[str, int]) -> nn.Module:
    """The heads named by ``MODEL.ROI_HEADS.NAME`` in :data:`WISH_HEADS_REGISTRY`; ``input_shape = {"clip": D}``."""
    return WISH_HEADS_REGISTRY.get(cfg.MODEL.ROI_HEADS.NAME)(cfg, input_shape)


@WISH_HEADS_REGISTRY.register()
class WISHROIHeads(nn.Module):
    """Stage 1 alignment and Stage 2 contactness/matching heads of WISH, with pseudo-labelling and inference.

    Keyword arguments mirror ``MODEL.WISH`` (:func:`wish_d2.add_wish_config`); their defaults are the config's, so a
    module built by hand from the two head modules equals the one ``build_wish_heads`` builds from a default cfg.
    """

    @configurable
    def __init__(self, *, alignment: AlignmentHead, heads: ContactMatchingHeads, stage: str = "all",
                 supervision: str = "pseudo", method: str = "wish", fusion: str = "product",
                 temperature: float = 0.07, loss_weights: Mapping[str, float] = DEFAULT_LOSS_WEIGHTS,
                 pseudo_threshold: float = -1.0, contact_threshold: float = -1.0, both_rule: bool = True,
                 match_null: bool = True, touching_pairs_only: bool = False, max_objects: int = 1,
                 extra_pseudo_threshold: float = -1.0, extra_contact_threshold: float = -1.0):
        super().__init__()
        if method not in HEAD_METHODS:
            raise ValueError(f"MODEL.WISH.METHOD={method!r} is not one of {HEAD_METHODS}")
        if stage not in STAGES:
            raise ValueError(f"MODEL.WISH.STAGE={stage!r} is not one of {STAGES}")
        if supervision not in SUPERVISIONS:
            raise ValueError(f"MODEL.WISH.SUPERVISION={supervision!r} is not one of {SUPERVISIONS}")
        self.alignment = alignment
        self.heads = heads
        self.stage = stage
        self.supervision = supervision
        self.method = method
        self.fusion = fusion
        self.temperature = temperature
        self.both_rule = both_rule
        self.match_null = match_null  # matching softmax has a "no object" option (losses.matching_loss)
        self.touching_pairs_only = touching_pairs_only  # Stage 1: only touching pairs explain a narration
        # Loss terms without a positive weight are dropped, so ablations are a config change.
        self.loss_weights = {k: v for k, v in loss_weights.items() if v > 0}
        # Calibrated thresholds (< 0 means "not calibrated yet"; the pipeline calibrates them on val).
        self.register_buffer("pseudo_threshold", torch.tensor(float(pseudo_threshold)))
        self.register_buffer("contact_threshold", torch.tensor(float(contact_threshold)))
        # Several objects per hand: the further objects' own thresholds. Registered only then, so a one-object
        # model's checkpoint keeps its keys.
        self.max_objects = int(max_objects)
        if self.max_objects > 1:
            self.register_buffer("extra_pseudo_threshold", torch.tensor(float(extra_pseudo_threshold)))
            self.register_buffer("extra_contact_threshold", torch.tensor(float(extra_contact_threshold)))
        self.set_trainable(stage)

    @classmethod
    def from_config(cls, cfg, input_shape):
        w = cfg.MODEL.WISH
        dim = input_shape["clip"] if isinstance(input_shape, dict) else int(input_shape)
        common = dict(visual_dim=dim, geometry_dim=GEOMETRY_DIM, hidden_dim=w.ADAPTER.HIDDEN_DIM,
                      dropout=w.ADAPTER.DROPOUT, use_visual=w.USE_VISUAL, use_geometry=w.USE_GEOMETRY,
                      use_contact=w.USE_CONTACT_REGION)
        return {
            "alignment": AlignmentHead(embed_dim=w.ADAPTER.EMBED_DIM, pair_visual=w.STAGE1.PAIR_VISUAL, **common),
            "heads": ContactMatchingHeads(match_both_hands=w.STAGE2.MATCH_BOTH_HANDS, pair_visual=w.STAGE2.PAIR_VISUAL,
                                          **common),
            "stage": w.STAGE,
            "supervision": w.SUPERVISION,
            "method": w.METHOD,
            "fusion": w.INFERENCE.FUSION,
            "temperature": w.STAGE1.TEMPERATURE,
            "loss_weights": {"align": w.LOSS_WEIGHTS.ALIGN, "contact": w.LOSS_WEIGHTS.CONTACT,
                             "match": w.LOSS_WEIGHTS.MATCH},
            "pseudo_threshold": w.PSEUDO.THRESHOLD,
            "contact_threshold": w.INFERENCE.CONTACT_THRESHOLD,
            "both_rule": w.PSEUDO.BOTH_RULE,
            "match_null": w.STAGE2.MATCH_NULL,
            "touching_pairs_only": w.STAGE1.TOUCHING_PAIRS_ONLY,
            "max_objects": w.MAX_OBJECTS_PER_HAND,
            "extra_pseudo_threshold": w.PSEUDO.EXTRA_THRESHOLD,
            "extra_contact_threshold": w.INFERENCE.EXTRA_CONTACT_THRESHOLD,
        }

    def set_trainable(self, stage: str) -> None:
        """Stage 1 trains only the alignment adapters, Stage 2 only the contact/matching heads."""
        self.stage = stage
        for p in self.alignment.parameters():
            p.requires_grad_(stage in ("stage1", "all"))
        for p in self.heads.parameters():
            p.requires_grad_(stage in ("stage2", "all"))

    # ---- training ------------------------------------------------------------------------------------------
    def forward(self, batch: Dict[str, torch.Tensor], targets: Optional[torch.Tensor] = None):
        if not self.training:
            return self.inference(batch)
        losses = {}
        if self.stage in ("stage1", "all") and "align" in self.loss_weights:
            losses["loss_align"] = self.loss_weights["align"] * self.alignment_loss(batch)
        if self.stage in ("stage2", "all"):
            pair_obj = batch["gt_pair_obj"] if self.supervision == "gt" else targets
            if pair_obj is None:
                raise ValueError("Stage 2 with SUPERVISION=pseudo needs pseudo-labels ('wish_targets' in the "
                                 "inputs); run Stage 1 and pseudo-labelling first (MODEL.WISH.STAGE all)")
            extra = None
            if pair_obj.dim() == 3:  # [B, K, 2]: first objects, then each hand's further ones (contact targets)
                pair_obj, extra = pair_obj[:, 0], pair_obj[:, 1:]
            contact_logits, match_logits = self.heads(batch["v"], batch["v_hands"], batch["geom"],
                                                      batch.get("v_contact"))
            valid = batch["obj_valid"][:, :, None] & batch["hand_present"][:, None, :]
            contact_target = torch.zeros_like(contact_logits)
            has = pair_obj >= 0
            b, s = torch.nonzero(has, as_tuple=True)
            contact_target[b, pair_obj[b, s], s] = 1.0
            if extra is not None:
                b, k, s = torch.nonzero(extra >= 0, as_tuple=True)
                contact_target[b, extra[b, k, s], s] = 1.0
            if "contact" in self.loss_weights:
                losses["loss_contact"] = self.loss_weights["contact"] * contact_loss(
                    contact_logits, contact_target, valid)
            if "match" in self.loss_weights:
                losses["loss_match"] = self.loss_weights["match"] * matching_loss(
                    match_logits, pair_obj, batch["obj_valid"], batch["hand_present"], null_class=self.match_null)
            _log_scalar("stage2/positive_hands", float(has.float().mean()))
        return losses

    def stage1_pairs(self, batch) -> Optional[torch.Tensor]:
        """``[B, N, 2]`` bool: the pairs Stage 1 may use, or ``None`` for all. With ``touching_pairs_only``, the
        pairs whose contact zone is not empty (the object reaches into the dilated hand: geometry feature
        ``near_hand_frac_of_obj > 0``, the zone's own dilation). WHY: an empty zone pools to the CLS-only
        embedding, a whole-frame descriptor; in videos the whole frame predicts the narration (same scene, the arm
        reaching for the named object), so Stage 1 can fit narrations through objects the hand never touches
        (docs/VIDEO.md sections 2 and 7)."""
        return batch["geom"][..., NEAR_HAND_FRAC_OF_OBJ] > 0 if self.touching_pairs_only else None

    def alignment_loss(self, batch) -> torch.Tensor:
        w = self.alignment.forward_pairs(batch["v"], batch["v_hands"], batch["geom"], batch.get("v_contact"))
        p = self.alignment.forward_text(batch["text"])
        pairs = self.stage1_pairs(batch)
        S = image_narration_scores(w, batch["obj_valid"], batch["hand_present"], p, batch["phrase_valid"],
                                   self.temperature, pairs)
        return symmetric_info_nce(S, image_narration_valid(batch["obj_valid"], batch["hand_present"],
                                                         batch["phrase_valid"], pairs),
                                  batch.get("narration_weight"))

    # ---- pseudo-labels -------------------------------------------------------------------------------------
    @torch.no_grad()
    def pseudo_scores(self, batch) -> torch.Tensor:
        """``s_{i,j,s}`` of each image against its own narration: ``[B, N, M, 2]``."""
        w = self.alignment.forward_pairs(batch["v"], batch["v_hands"], batch["geom"], batch.get("v_contact"))
        p = self.alignment.forward_text(batch["text"])
        s = pair_scores(w, p, self.temperature)
        pairs = self.stage1_pairs(batch)
        return s if pairs is None else s.masked_fill(~pairs[:, :, None, :], NEG)  # NEG: no candidate

    def pseudo_rule(self) -> Dict:
        """Keyword arguments of :func:`.pseudo_labels.assign_pseudo_labels` besides the threshold."""
        rule = {"both_rule": self.both_rule}
        if self.max_objects > 1:
            rule.update(max_objects=self.max_objects, extra_threshold=float(self.extra_pseudo_threshold))
        return rule

    @torch.no_grad()
    def pseudo_label(self, batch, threshold: Optional[float] = None) -> List:
        """Per image, Stage 1's pseudo-labels (at most MAX_OBJECTS_PER_HAND per hand) with their scores
        (narrations needed)."""
        s = self.pseudo_scores(batch)
        t = float(self.pseudo_threshold if threshold is None else threshold)
        return [assign_pseudo_labels(s[b], batch["obj_valid"][b], batch["phrase_valid"][b], batch["hand_present"][b],
                                     threshold=t, **self.pseudo_rule()) for b in range(len(s))]

    # ---- inference -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def scores(self, batch, method: Optional[str] = None):
        """(contact_logits, match_logits) [B, N, 2] of ``method`` (default: the configured one)."""
        method = method or self.method
        if method == "nearest_to_hand":
            s = nearest_to_hand_scores(batch["geom"])
            return s, s
        if method == "clip_zero_shot":
            s = clip_zero_shot_scores(batch["v"], batch["zero_shot"])
            return s, s
        if method == "open_vocab":
            vocabulary, num_nouns = batch["vocabulary"]
            s = open_vocab_scores(batch["v"], batch["geom"], vocabulary, num_nouns)
            return s, s
        return self.heads(batch["v"], batch["v_hands"], batch["geom"], batch.get("v_contact"))

    def selection_rule(self, method: Optional[str] = None) -> Dict:
        """Keyword arguments of :func:`.inference.select_in_hand` for ``method`` (default: the configured one)."""
        method = method or self.method
        baseline = method in BASELINES  # raw scores, always kept (matching-only rule)
        rule = {"method": "matching_only" if baseline else method, "fusion": self.fusion,
                "both_rule": self.both_rule, "null_class": self.match_null and not baseline}
        if self.max_objects > 1 and not baseline:  # further objects by contactness (matching_only has none)
            theta = float(self.extra_contact_threshold)
            rule.update(max_objects=self.max_objects,
                        extra_threshold=UNCALIBRATED_CONTACT_THRESHOLD if theta < 0 else theta)
        return rule

    @torch.no_grad()
    def inference(self, batch, method: Optional[str] = None, contact_threshold: Optional[float] = None):
        rule = self.selection_rule(method)
        contact_logits, match_logits = self.scores(batch, method)
        theta = float(self.contact_threshold if contact_threshold is None else contact_threshold)
        theta = UNCALIBRATED_CONTACT_THRESHOLD if theta < 0 else theta
        return [select_in_hand(contact_logits[b], match_logits[b], batch["obj_valid"][b], batch["hand_present"][b],
                               contact_threshold=theta, **rule) for b in range(len(contact_logits))]


def _log_scalar(name: str, value: float) -> None:
    try:
        get_event_storage().put_scalar(name, value, smoothing_hint=True)
    except AssertionError:  # outside a training loop
        pass
