"""Scoring passes over a cached split: the one place that runs a trained model's heads on a whole split.

The pipeline, threshold calibration (val-label and label-free), the results table and the video benchmark all
need the same thing: every image of a split with its Stage 1 scores, its Stage 2 scores or its pseudo-labels, so
that any threshold can then be tried without running the model again. They all call this module, which sits below
them (it imports no other engine module but the cached-data reader), so none of them reaches into another.
"""
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import torch

from ..classes import CLASS_BOTH
from ..modeling.meta_arch import collate_records
from .data import iterate_cached

__all__ = ["unwrap_model", "pseudo_selection", "pseudo_label_split", "pseudo_score_split", "split_scores"]


def unwrap_model(model):
    """The model inside a ``DistributedDataParallel`` (or the model itself)."""
    return model.module if hasattr(model, "module") else model


def pseudo_selection(label) -> List[Tuple[int, int, float]]:
    """Pseudo-label of one image -> (proposal, class, score) instances; one object for both hands is ``both``."""
    objs, scores = [int(o) for o in label.obj_idx], [float(s) for s in label.score]
    if objs[0] >= 0 and objs[0] == objs[1]:
        out = [(objs[0], CLASS_BOTH, (scores[0] + scores[1]) / 2)]
    else:
        out = [(o, s, sc) for s, (o, sc) in enumerate(zip(objs, scores)) if o >= 0]
    if label.extra_idx is not None:  # further objects, each in its hand's class
        out += [(int(o), s, float(sc)) for s in (0, 1) for o, sc in zip(label.extra_idx[s], label.extra_score[s])
                if int(o) >= 0]
    return out


@torch.no_grad()
def pseudo_label_split(cfg, model, name: str, threshold: Optional[float] = None):
    """[(image_id, pseudo-label, record)] of a split under the given (or the model's) threshold."""
    m = unwrap_model(model)
    if threshold is not None:
        m.roi_heads.pseudo_threshold.fill_(threshold)
    model.eval()
    out = []
    for batch in iterate_cached(cfg, name, model):
        for x, label in zip(batch, m.pseudo_label(batch)):
            out.append((str(x["image_id"]), label, x["wish_features"]))
    return out


def _scored_batches(cfg, model, name: str, score: Callable) -> Iterator[Tuple[List[Dict], List[Dict], Dict, object]]:
    """(mapped batch, records, collated batch, ``score(heads, collated batch)``) of each batch of a split, in dataset
    order, with the model in eval mode: the one loop behind every scoring pass."""
    m = unwrap_model(model)
    m.eval()
    for batch in iterate_cached(cfg, name, model):
        records = [x["wish_features"] for x in batch]
        b = collate_records(records, [x["text_embeds"] for x in batch], m.device)
        b["zero_shot"] = batch[0]["zero_shot_embeds"].to(m.device)
        yield batch, records, b, score(m.roi_heads, b)


@torch.no_grad()
def pseudo_score_split(cfg, model, name: str):
    """[(image_id, scores [N, M, 2], obj_valid [N], phrase_valid [M], hand_present [2], record)] of a split:
    Stage 1 runs once; any threshold is then applied without running the model again."""
    out = []
    for batch, records, b, s in _scored_batches(cfg, model, name, lambda heads, b: heads.pseudo_scores(b).cpu()):
        for k, x in enumerate(batch):
            out.append((str(x["image_id"]), s[k], b["obj_valid"][k].cpu(), b["phrase_valid"][k].cpu(),
                        b["hand_present"][k].cpu(), records[k]))
    return out


@torch.no_grad()
def split_scores(cfg, model, name: str):
    """[(image_id, contact_logits, match_logits, obj_valid, hand_present, record)] of a split (Stage 2 heads)."""
    out = []
    for batch, records, b, (c, a) in _scored_batches(cfg, model, name, lambda heads, b: heads.scores(b)):
        for k, x in enumerate(batch):
            out.append((str(x["image_id"]), c[k], a[k], b["obj_valid"][k], b["hand_present"][k], records[k]))
    return out
