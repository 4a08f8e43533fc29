"""Command lines whose list options never swallow config overrides.

Detectron2 tools end with ``KEY VALUE ...`` overrides (``opts``). An argparse list option (``nargs="+"``) placed
before them consumes every following word, so ``--seeds 1 2 MODEL.X Y`` would read ``MODEL.X`` as a seed. Here a
list ends at the first word that looks like a config key (an upper-case, dot-separated name such as
``MODEL.WISH.STAGE`` or ``SEED``), or at ``--``, after which everything is an override.
"""
import argparse
import re
import sys
from typing import Callable, Dict, List, Optional, Sequence

CONFIG_KEY = re.compile(r"^[A-Z][A-Z0-9_]*(\.[A-Z][A-Z0-9_]*)*$")


def is_config_key(word: str) -> bool:
    """True for words shaped like a config key (``MODEL.WISH.STAGE``, ``SEED``), never for values like ``1``."""
    return bool(CONFIG_KEY.match(word))


def split_overrides(values: Sequence[str]):
    """``(list items, overrides)``: the items before the first config key, and that key with what follows."""
    values = list(values)
    for k, v in enumerate(values):
        if is_config_key(v):
            return values[:k], values[k:]
    return values, []


def parse_args_with_overrides(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]] = None,
                              list_options: Optional[Dict[str, Callable]] = None) -> argparse.Namespace:
    """``parser.parse_args`` for a parser with a trailing ``opts`` (``nargs=argparse.REMAINDER``) and list options.

    ``list_options`` maps the ``dest`` of each list option (declared without ``type``) to the type of its items;
    the items are converted after the overrides are split off, so a bad item is reported by the parser, naming the
    option. Words after ``--`` are always overrides.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    explicit: List[str] = []
    if "--" in argv:
        k = argv.index("--")
        argv, explicit = argv[:k], argv[k + 1:]
    args = parser.parse_args(argv)
    moved: List[str] = []
    for dest, kind in (list_options or {}).items():
        values = getattr(args, dest, None)
        if not values:
            continue
        items, rest = split_overrides(values)
        if not items:
            parser.error(f"--{dest.replace('_', '-')} got no values before the config override {rest[0]!r}")
        try:
            setattr(args, dest, [kind(v) for v in items])
        except argparse.ArgumentTypeError as e:
            parser.error(f"argument --{dest.replace('_', '-')}: {e}")
        except (TypeError, ValueError):
            parser.error(f"--{dest.replace('_', '-')}: invalid {getattr(kind, '__name__', 'value')} in {items}")
        moved += rest
    opts = list(getattr(args, "opts", None) or [])
    if opts and opts[0] == "--":  # argparse keeps a "--" that follows the REMAINDER's first word
        opts = opts[1:]
    args.opts = moved + opts + explicit
    if len(args.opts) % 2:
        parser.error(f"config overrides come in KEY VALUE pairs; got {args.opts}")
    return args

