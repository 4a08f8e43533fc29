"""Video: temporal inference for WISH (proposal linking, co-motion evidence, per-hand smoothing of the contact state,
of averaged track evidence or with a switch-price HMM, an online video predictor) and Stage 1 narration-window
weights. See docs/VIDEO.md."""
from .comotion import CoMotion, apply_comotion, mask_centroids
from .contact import ContactFilter
from .evidence import EvidenceFilter
from .linking import ObjectLinker, mask_iou_matrix, shrink_masks
from .predictor import TemporalDecoder, TemporalParams, VideoPredictor, hand_probabilities
from .smoothing import NOTHING, HandHMM, smooth_sequence
from .window_weights import attach_narration_weights, boundary_probability, frame_weight, window_weight

__all__ = ["CoMotion", "apply_comotion", "mask_centroids", "ContactFilter", "EvidenceFilter", "ObjectLinker",
           "mask_iou_matrix", "shrink_masks", "TemporalDecoder", "TemporalParams", "VideoPredictor",
           "hand_probabilities", "NOTHING", "HandHMM", "smooth_sequence", "attach_narration_weights",
           "boundary_probability", "frame_weight", "window_weight"]
