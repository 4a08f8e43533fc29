"""argparse ``type=`` validators and launch-flag checks shared by the tools.

A bad flag value is reported by argparse itself: one line naming the flag (``argument --jobs: expected an integer
>= 1, got '0'``) and exit status 2, before any work, instead of a traceback later or a silently empty run.
"""
import argparse
import math
import os
from typing import Callable, Optional, Tuple


def int_in(low: int, high: Optional[int] = None) -> Callable[[str], int]:
    """An argparse type: an integer in ``[low, high]`` (no upper bound if ``high`` is None)."""
    allowed = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {text!r}")
        return value

    parse.__name__ = f"int_in_{low}_{high}"
    return parse


def float_in(low: float, high: Optional[float] = None, low_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number above ``low`` (or at least ``low`` unless ``low_open``), at most ``high``."""
    allowed = f"a number {'>' if low_open else '>='} {low}" + ("" if high is None else f" and <= {high}")

    def parse(text: str) -> float:
        try:
            value = float(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {text!r}") from None
        too_low = value < low or (low_open and value == low)
        if not math.isfinite(value) or too_low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {text!r}")
        return value

    parse.__name__ = f"float_in_{low}_{high}"
    return parse


positive_int = int_in(1)
nonneg_int = int_in(0)
seed_int = int_in(0, 2 ** 32 - 1)  # numpy and torch seeds


def image_size(text: str) -> Tuple[int, int]:
    """An argparse type: ``HxW`` with both sides in the range a synthetic frame may have."""
    from ..config_validation import IMAGE_SIDE

    lo, hi = IMAGE_SIDE
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except (AttributeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected HxW such as 160x160, got {text!r}") from None
    if not (lo <= h <= hi and lo <= w <= hi):
        raise argparse.ArgumentTypeError(f"expected HxW with both sides in [{lo}, {hi}], got {text!r}")
    return h, w


def output_dir(text: str) -> str:
    """An argparse type: a folder to write into; an existing file (at the path or above it) is refused."""
    from ..config_validation import file_in_the_way

    if not text:
        raise argparse.ArgumentTypeError("expected a folder path, got ''")
    blocking = file_in_the_way(text)
    if blocking:
        raise argparse.ArgumentTypeError(f"{text!r} cannot be an output folder: {blocking!r} is an existing file")
    return text


def output_file(text: str) -> str:
    """An argparse type: a file to (over)write; an existing folder, or a file where its folder should be, is
    refused."""
    from ..config_validation import file_in_the_way

    if not text:
        raise argparse.ArgumentTypeError("expected a file path, got ''")
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is an existing folder, not an output file")
    blocking = file_in_the_way(os.path.dirname(os.path.abspath(text)))
    if blocking:
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: {blocking!r} is an existing file, not a folder")
    return text


def check_launch_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The flags of Detectron2's ``default_argument_parser`` that ``launch`` would otherwise reject with an assert
    (or a hang): process counts, the machine rank, and, on a CUDA machine, one GPU per process. Without CUDA,
    ``--num-gpus N`` starts N CPU processes joined by gloo (:mod:`wish_d2.engine.launch`)."""
    if args.num_gpus < 1:
        parser.error(f"--num-gpus {args.num_gpus}: expected an integer >= 1 (processes per machine)")
    if args.num_machines < 1:
        parser.error(f"--num-machines {args.num_machines}: expected an integer >= 1")
    if not 0 <= args.machine_rank < args.num_machines:
        parser.error(f"--machine-rank {args.machine_rank}: expected 0 <= rank < --num-machines ({args.num_machines})")
    if args.num_machines > 1 and args.dist_url == "auto":
        parser.error("--dist-url auto works on one machine only; give tcp://HOST:PORT of machine 0")
    if args.num_gpus * args.num_machines > 1:
        import torch

        visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if visible and args.num_gpus > visible:
            parser.error(f"--num-gpus {args.num_gpus}: {visible} CUDA GPU(s) visible; with CUDA, launch runs one "
                         "process per GPU (without CUDA, N CPU processes with the gloo backend)")
