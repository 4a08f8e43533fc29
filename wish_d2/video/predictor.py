"""Temporal inference on videos (docs/VIDEO.md): link each frame's proposals to object tracks, smooth each hand's
"holds track k / nothing" decision online, and emit at most one object per hand per frame. Smoothers: the hand's
contact state only, the object chosen per frame (``contact.ContactFilter``, the default); averaged track evidence
with hysteresis (``evidence.EvidenceFilter``); the switch-price HMM (``smoothing.HandHMM``).

- :class:`TemporalDecoder`: the model-free part. Per frame it takes the cached-record fields (proposal RLEs,
  embeddings, visible hands) and the Stage 2 logits, and returns the frame's selection. Causal (no future frames)
  and bounded (tracks unseen for ``max_age`` frames are forgotten), so it runs online on a stream of any length.
- :class:`VideoPredictor`: a :class:`~wish_d2.engine.predictor.WISHPredictor` over a video, frame by frame;
  ``temporal=False`` gives the per-frame predictions (the switch).
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from detectron2.structures import BitMasks, Instances

from ..classes import CLASS_BOTH
from ..modeling.inference import select_in_hand
from ..modeling.losses import NEG, null_padded_logits
from ..utils.masks import decode_rles
from .comotion import CoMotion, apply_comotion, mask_centroids
from .contact import ContactFilter
from .evidence import EvidenceFilter
from .linking import ObjectLinker, overlap_matrix, shrink_masks
from .smoothing import NOTHING, HandHMM

__all__ = ["SMOOTHERS", "TemporalParams", "hand_probabilities", "TemporalDecoder", "VideoPredictor",
           "selection_to_instances"]

#: The temporal smoothers (``TemporalParams.smoother``); the first is the default (docs/VIDEO.md section 3).
SMOOTHERS = ("contact", "evidence", "hmm")


@dataclass(frozen=True)
class TemporalParams:
    """Knobs of temporal inference; the smoothing strength (``alpha`` and ``margin``, or ``p_switch`` for the HMM)
    and ``theta_scale`` are calibrated on validation videos. The defaults are the most frequent validation choices
    on the synthetic video benchmark (docs/VIDEO.md section 7), not tuned on real video."""

    # "contact": the hand's contact state is smoothed, the object is the per-frame argmax (ContactFilter);
    # "evidence": averaged track evidence + hysteresis (EvidenceFilter); "hmm": HandHMM
    smoother: str = SMOOTHERS[0]
    alpha: float = 0.5  # ContactFilter / EvidenceFilter: weight of the newest frame in the average (1 = per frame)
    # where the average lives: "track" (per linked track) or "overlap" (per proposal, inherited from the previous
    # frame's proposals it overlaps, robust to the segmenter splitting / merging an object between frames)
    propagate: str = "track"
    min_overlap: float = 0.0  # "overlap": 0 = weight by the overlap; > 0 = continue proposals overlapping this much
    margin: float = 0.1  # ContactFilter / EvidenceFilter: hysteresis, relative to theta (0 = none)
    p_switch: float = 0.05  # HandHMM: price of changing a hand's state between frames
    # co-motion (comotion.py): evidence q' = min(1, q (2 f) ** motion_weight), f = the posterior that a proposal moves
    # with the hand; 0 = off. Displacements in fractions of the frame's long side
    motion_weight: float = 2.0
    motion_sigma: float = 0.01
    min_hand_motion: float = 0.006
    motion_memory: float = 0.8  # decay of a track's accumulated co-motion log-odds per frame (0 = this frame only)
    theta_scale: float = 1.0  # the smoother's contact threshold = theta_scale x the per-frame one
    miss: Optional[float] = None  # HandHMM: emission of a live track without a proposal; None = theta (neutral)
    floor: float = 0.05  # HandHMM: emissions below this count as this (one frame's evidence is bounded)
    emb_weight: float = 0.5  # linking score = IoU + emb_weight * cos
    min_link: float = 0.5  # linking acceptance
    max_age: int = 10  # frames a track survives unseen (the bounded window)
    carry_frames: int = 2  # a held track without a proposal keeps its last mask for this many frames


def hand_probabilities(contact_logits: torch.Tensor, match_logits: torch.Tensor, null_class: bool = True
                       ) -> torch.Tensor:
    """``[N, 2]`` fused probabilities ``q = sqrt(sigmoid(c) * softmax(a))`` of WISH's product rule
    (``modeling/inference.py``), for every proposal and hand."""
    n = contact_logits.shape[0]
    if n == 0:
        return contact_logits.new_zeros((0, 2)).float()
    c = torch.sigmoid(contact_logits.float())
    valid = torch.ones(1, n, dtype=torch.bool, device=contact_logits.device)
    if null_class:
        a = torch.softmax(null_padded_logits(match_logits.float()[None], valid), dim=1)[0, :n]
    else:
        a = torch.softmax(match_logits.float().masked_fill(~valid[0, :, None], NEG), dim=0)
    return (c * a).sqrt()


def selection_to_instances(selection: List[Tuple[torch.Tensor, int, float]], h: int, w: int) -> Instances:
    inst = Instances((h, w))
    masks = torch.stack([m for m, _, _ in selection]) if selection else torch.zeros((0, h, w), dtype=torch.bool)
    inst.pred_masks = masks
    inst.pred_boxes = BitMasks(masks).get_bounding_boxes()
    inst.pred_classes = torch.tensor([c for _, c, _ in selection], dtype=torch.long)
    inst.scores = torch.tensor([float(s) for _, _, s in selection], dtype=torch.float32)
    return inst


class TemporalDecoder:
    """Online temporal inference for one video; call :meth:`reset` between videos."""

    def __init__(self, theta: float, params: TemporalParams = TemporalParams(), both_rule: bool = True,
                 null_class: bool = True):
        self.params = params
        self.theta = float(min(0.999, max(1e-3, theta * params.theta_scale)))
        self.both_rule = both_rule
        self.null_class = null_class
        self.reset()

    def reset(self) -> None:
        p = self.params
        self.linker = ObjectLinker(p.emb_weight, p.min_link, p.max_age)
        if p.propagate not in ("track", "overlap"):
            raise ValueError(f"TemporalParams.propagate must be 'track' or 'overlap', got {p.propagate!r}")
        self.prev_small, self.prev_avg = None, None  # "overlap": last frame's small masks and averaged evidence
        self._small = None  # this frame's small masks (link())
        if p.smoother == "contact":
            self.smoothers = [ContactFilter(self.theta, p.alpha, p.margin) for _ in range(2)]
        elif p.smoother == "evidence":
            self.smoothers = [EvidenceFilter(self.theta, p.alpha, p.margin, averaged_input=p.propagate == "overlap")
                              for _ in range(2)]
        elif p.smoother == "hmm":
            self.smoothers = [HandHMM(self.theta, p.p_switch, p.miss, floor=p.floor) for _ in range(2)]
        else:
            raise ValueError(f"TemporalParams.smoother must be one of {SMOOTHERS}, got {p.smoother!r}")
        self.comotion = CoMotion(p.motion_sigma, p.min_hand_motion, p.motion_memory)
        self._held = [NOTHING, NOTHING]  # "contact": last frame's held tracks, carried over a frame without proposals
        self.t = -1

    def link(self, record: Dict, masks: Optional[torch.Tensor] = None) -> Tuple[List[int], torch.Tensor]:
        """Track ids of the frame's proposals and their full-size masks (decoded unless given)."""
        h, w = int(record["height"]), int(record["width"])
        if masks is None:
            masks = decode_rles(list(record["proposal_rles"]), h, w)
        payloads = [{"rle": r} for r in record["proposal_rles"]]
        occupancy = shrink_masks(masks, soft=True)
        small = occupancy >= 0.5
        ids = self.linker.update(small, record["v"].float(), payloads)
        self._small, self._occupancy = small, occupancy
        return ids, masks

    @staticmethod
    def _hand_centroids(record: Dict) -> torch.Tensor:
        """``[2, 2]`` centroids of the left and right hand masks (``comotion.mask_centroids``); NaN rows for absent
        hands."""
        h, w = int(record["height"]), int(record["width"])
        out = torch.full((2, 2), float("nan"))
        for s, rle in enumerate(list(record.get("hand_rles") or [])[:2]):
            if rle is not None:
                out[s] = mask_centroids(shrink_masks(decode_rles([rle], h, w), soft=True))[0]
        return out

    def _overlap_average(self, q: torch.Tensor) -> torch.Tensor:
        """``[N, 2]`` averaged evidence of this frame's proposals: ``(1 - alpha) prior + alpha q``. A proposal's prior
        is the largest average among the previous frame's proposals, each weighted by its overlap with the proposal
        (``linking.overlap_matrix``: a split or merge of one object overlaps fully); with ``min_overlap > 0`` the
        weight is 1 from that overlap on and 0 below."""
        small, a = self._small, self.params.alpha
        if self.prev_small is None or len(self.prev_small) == 0 or len(small) == 0 \
                or small.shape[-2:] != self.prev_small.shape[-2:]:
            avg = q.clone()
        else:
            ov = overlap_matrix(small, self.prev_small)  # [N, M]
            w = ov if self.params.min_overlap <= 0 else (ov >= self.params.min_overlap).float()
            prior = (w[:, :, None] * self.prev_avg[None]).amax(dim=1)  # [N, 2]
            avg = (1.0 - a) * prior + a * q
        self.prev_small, self.prev_avg = small, avg
        return avg

    def step(self, record: Dict, contact_logits: torch.Tensor, match_logits: torch.Tensor,
             masks: Optional[torch.Tensor] = None) -> Dict:
        """One frame -> ``{"selection": [(mask, class, score)], "states": [left, right] track ids (0 nothing),
        "track_ids": ids of the frame's proposals}``."""
        self.t += 1
        ids, masks = self.link(record, masks)
        q = hand_probabilities(contact_logits, match_logits, self.null_class).cpu()
        if self.params.motion_weight:
            f = self.comotion.step(ids, mask_centroids(self._occupancy), self._hand_centroids(record))
            q = apply_comotion(q, f, self.params.motion_weight)
        if self.params.smoother == "evidence" and self.params.propagate == "overlap":
            q = self._overlap_average(q)
        present = [bool(x) for x in record["hand_present"].tolist()]
        # a hand may hold only a track whose mask can still be output: seen within the last carry_frames frames
        live = [k for k, tr in self.linker.tracks.items() if self.t - tr.last_seen <= self.params.carry_frames]
        if self.params.smoother == "contact":
            states = self._contact_states(ids, q, present, live)
        else:
            states = []
            for s in (0, 1):
                evidence = {ids[i]: float(q[i, s]) for i in range(len(ids))}
                states.append(self.smoothers[s].step(evidence, live, present[s] and len(live) > 0))
        if self.both_rule and len(ids):
            for s in (0, 1):
                o = 1 - s
                if states[s] == NOTHING and present[s] and states[o] != NOTHING:
                    if ids[int(q[:, s].argmax())] == states[o]:
                        states[s] = states[o]
        return {"selection": self._select(states, ids, masks, q, record), "states": states, "track_ids": ids}

    def _contact_states(self, ids: List[int], q: torch.Tensor, present: List[bool], live: List[int]) -> List[int]:
        """Per hand: the per-frame argmax track while the smoothed contact state says "holding". A frame without
        proposals keeps the held track (its mask is carried) while it is live."""
        states = []
        for s in (0, 1):
            held = self._held[s]
            holding = self.smoothers[s].step(float(q[:, s].max()) if len(ids) else None, present[s])
            if not holding:
                state = NOTHING
            elif len(ids):
                state = ids[int(q[:, s].argmax())]
            else:
                state = held if held in live else NOTHING
            states.append(state)
        self._held = states
        return states

    def _mask_of(self, track_id: int, ids: List[int], masks: torch.Tensor, q: torch.Tensor, s: int, record: Dict):
        if track_id in ids:
            i = ids.index(track_id)
            return masks[i], float(q[i, s])
        tr = self.linker.track(track_id)
        if tr is None or self.t - tr.last_seen > self.params.carry_frames or "rle" not in tr.payload:
            return None, 0.0
        m = decode_rles([tr.payload["rle"]], int(record["height"]), int(record["width"]))[0]
        return m, self.theta

    def _select(self, states, ids, masks, q, record) -> List[Tuple[torch.Tensor, int, float]]:
        if states[0] != NOTHING and states[0] == states[1]:
            m0, p0 = self._mask_of(states[0], ids, masks, q, 0, record)
            _, p1 = self._mask_of(states[1], ids, masks, q, 1, record)
            return [(m0, CLASS_BOTH, (p0 + p1) / 2)] if m0 is not None else []
        out = []
        for s in (0, 1):
            if states[s] != NOTHING:
                m, p = self._mask_of(states[s], ids, masks, q, s, record)
                if m is not None:
                    out.append((m, s, p))
        return out


class VideoPredictor:
    """Frames of a video in, in-hand objects out, one frame at a time (online). ``temporal=True`` (default) links
    and smooths across frames; ``temporal=False`` is per-frame WISH. Call :meth:`reset` at each new video."""

    def __init__(self, predictor, temporal: bool = True, params: TemporalParams = TemporalParams()):
        self.predictor = predictor  # a WISHPredictor
        self.temporal = temporal
        heads = predictor.model.roi_heads
        theta = float(heads.contact_threshold)
        self.theta = theta if theta >= 0 else 0.5
        self.rule = heads.selection_rule()
        self.decoder = TemporalDecoder(self.theta, params, both_rule=self.rule["both_rule"],
                                       null_class=self.rule["null_class"])

    def reset(self) -> None:
        self.decoder.reset()

    @torch.no_grad()
    def __call__(self, image_rgb: np.ndarray, hands: Optional[List[Dict]] = None, image_id: str = "",
                 extra: Optional[Dict] = None) -> Dict:
        from ..modeling.meta_arch import collate_records

        model = self.predictor.model
        h, w = image_rgb.shape[:2]
        x = {"image": torch.as_tensor(np.ascontiguousarray(image_rgb.transpose(2, 0, 1))), "height": h, "width": w,
             "image_id": image_id, "hands": hands or []}
        x.update(extra or {})
        record = model.extract([x])[0]
        batch = collate_records([record], [torch.zeros((0, 2, record["v_hands"].shape[-1]))], model.device)
        c, a = model.roi_heads.scores(batch)
        n = len(record["v"])
        c, a = c[0, :n].cpu(), a[0, :n].cpu()
        if self.temporal:
            out = self.decoder.step(record, c, a)
            # the per-frame rule's choice in the same track ids, for timelines that compare the two
            pf = select_in_hand(c, a, torch.ones(n, dtype=torch.bool), record["hand_present"],
                                contact_threshold=self.theta, **self.rule)
            pf_states = [NOTHING, NOTHING]
            for i, k, _ in pf:
                for s in ((0, 1) if k == CLASS_BOTH else (k,)):
                    pf_states[s] = out["track_ids"][i]
            return {"instances": selection_to_instances(out["selection"], h, w), "record": record,
                    "states": out["states"], "per_frame_states": pf_states}
        sel = select_in_hand(c, a, torch.ones(n, dtype=torch.bool), record["hand_present"],
                             contact_threshold=self.theta, **self.rule)
        masks = decode_rles([record["proposal_rles"][i] for i, _, _ in sel], h, w)
        return {"instances": selection_to_instances([(m, k, s) for m, (_, k, s) in zip(masks, sel)], h, w),
                "record": record, "states": None, "per_frame_states": None}
