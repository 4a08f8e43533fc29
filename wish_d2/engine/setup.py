"""One setup for every tool: config from the command line, validated, and the datasets it names registered."""
import logging

from detectron2.config import get_cfg

from ..config import add_wish_config
from ..config_file import merge_config_file, merge_config_overrides
from ..config_validation import ConfigError, validate_wish_config

logger = logging.getLogger(__name__)


def build_cfg(config_file: str = "", opts=(), freeze: bool = True, resolve_pretrained: bool = True):
    """Detectron2's default config + ``MODEL.WISH`` + ``config_file`` (read safely) + ``KEY VALUE`` overrides,
    validated (values, and the hand detector's files when ``HANDS.SOURCE`` is ``detector``).
    ``resolve_pretrained=False`` leaves the web-pretrained CLIP unbuilt, for tools that never run CLIP."""
    cfg = get_cfg()
    add_wish_config(cfg)
    if config_file:
        merge_config_file(cfg, config_file, "--config-file")
    merge_config_overrides(cfg, opts)
    validate_wish_config(cfg)
    _check_hand_source(cfg)
    # the synthetic web-pretrained CLIP: built on first use, then loaded through CLIP.PRETRAINED like real weights
    if resolve_pretrained and cfg.MODEL.WISH.CLIP.WEB_PRETRAIN.ENABLED:
        from ..pretrain import resolve_web_pretrained

        resolve_web_pretrained(cfg)
    if freeze:
        cfg.freeze()
    return cfg


def _check_hand_source(cfg) -> None:
    """A missing hand detector (config or weights) stops every tool here, in one line, before any dataset is read."""
    from ..modeling.hands import check_hand_source
    from ..modeling.weights import WeightsUnavailableError

    try:
        check_hand_source(cfg)
    except (FileNotFoundError, WeightsUnavailableError) as e:
        raise ConfigError(str(e)) from e


def register_from_cfg(cfg) -> None:
    """Register what the config names. Real datasets register on ``import wish_d2``; the synthetic splits depend
    on ``DATASETS.SYNTHETIC`` (seed, sizes), so they are (re-)registered here. Nothing is generated until a split
    is read."""
    from ..data.builtin import register_synthetic_from_cfg

    register_synthetic_from_cfg(cfg)


def setup_cfg(args, freeze: bool = True):
    """``args.config_file`` + ``args.opts`` -> a validated config, with its datasets registered."""
    cfg = build_cfg(args.config_file, getattr(args, "opts", None) or [], freeze=freeze)
    register_from_cfg(cfg)
    return cfg
