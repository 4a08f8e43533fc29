"""Contrastive pretraining of WISH's tiny open_clip model on the synthetic world's "web" split, and what the
encoder knows (zero-shot category accuracy of mask-pooled embeddings). See docs/SYNTHETIC.md, "The web split"."""
from .store import ensure_web_clip, resolve_web_pretrained, settings_from_cfg, web_clip_from_cfg, web_clip_path
from .web_clip import WebPretrainSettings, pretrain_web_clip
from .zero_shot import encoder_report, synthetic_zero_shot_top1, zero_shot_top1

__all__ = ["WebPretrainSettings", "pretrain_web_clip", "ensure_web_clip", "web_clip_path", "web_clip_from_cfg",
           "settings_from_cfg", "resolve_web_pretrained", "zero_shot_top1", "synthetic_zero_shot_top1",
           "encoder_report"]
