"""One demo run from a config and :class:`~wish_d2.demo.runner.DemoOptions`: the setup checks (exit status 2),
the frame loop with a progress bar, and the report. ``tools/demo.py`` is its command line."""
import math
import os
from typing import Callable, List, Optional

from wish_d2.config_validation import ConfigError
from wish_d2.data.common import DataFormatError
from wish_d2.engine.checkpoint import WeightsError
from wish_d2.utils.atomic import DiskFullError

from .console import say
from .inputs import collect_inputs
from .output_dir import DemoOutputDir, OutputDirError
from .report import write_demo_report
from .runner import DemoOptions, DemoRunner
from .video import VideoWriteError, sampled_frame_count

__all__ = ["run_demo"]


def _setup_notes(cfg) -> list:
    """Why these outputs may not be results: untrained heads, randomly initialised CLIP."""
    notes = []
    if not cfg.MODEL.WEIGHTS:
        notes.append("MODEL.WEIGHTS is empty: the WISH heads are untrained (random init); predictions are a smoke "
                     "test of the pipeline, not results.")
    if not cfg.MODEL.WISH.CLIP.PRETRAINED:
        notes.append(f"CLIP ({cfg.MODEL.WISH.CLIP.MODEL_NAME}) is randomly initialised (MODEL.WISH.CLIP.PRETRAINED "
                     "is empty): the embedded default, not the paper's model.")
    return notes


def option_problems(options: DemoOptions) -> List[str]:
    """What is wrong with the sampling and display options, as ``--flag: problem`` lines."""
    problems = []
    if options.max_frames < 0:
        problems.append(f"--max-frames must be >= 0 (0 = every frame), got {options.max_frames}")
    if options.video_stride < 1:
        problems.append(f"--video-stride must be >= 1 (1 = every frame), got {options.video_stride}")
    if not (math.isfinite(options.confidence) and 0.0 <= options.confidence <= 1.0):
        problems.append(f"--confidence must be a score in [0, 1], got {options.confidence}")
    if options.proposal_labels < 0:
        problems.append(f"--proposal-labels must be >= 0, got {options.proposal_labels}")
    return problems


def run_demo(cfg, options: DemoOptions, config_file: str = "",
             predictor_factory: Optional[Callable] = None) -> int:
    """Run the demo; returns the exit status: 0 when at least one frame was processed, 1 when none was or when a
    video lost frames (it stops decoding before its declared end), 2 for a setup error (missing or partly matching
    weights, an invalid config value or option, no usable input, an unusable output folder), reported before any
    file is written, or when an output cannot be written completely (a full disk).

    ``predictor_factory(cfg, weights)`` replaces :class:`~wish_d2.engine.predictor.WISHPredictor` (tests, other
    front ends).
    """
    from tqdm import tqdm

    bad_options = option_problems(options)
    if bad_options:
        for line in bad_options:
            say(f"error: {line}", err=True)
        return 2
    weights = cfg.MODEL.WEIGHTS
    if weights and "://" not in weights and not os.path.isfile(weights):
        say(f"error: weights file not found: {weights} (MODEL.WEIGHTS). Fix: train first (python tools/train_net.py "
            f"--config-file {config_file or 'CONFIG'}, which writes OUTPUT_DIR/model_final.pth) and pass that file "
            "with --opts MODEL.WEIGHTS /path/to/model_final.pth; or pass MODEL.WEIGHTS \"\" for an untrained smoke "
            "test.", err=True)
        return 2
    out = DemoOutputDir(options.output, overwrite=options.overwrite)
    try:
        out.check()
    except OutputDirError as e:
        say(f"error: {e}", err=True)
        return 2
    notes = _setup_notes(cfg)
    for n in notes:
        say(f"note: {n}")

    inputs, problems = collect_inputs(options.inputs)
    for p, why in problems:
        say(f"error: input {p} {why}; skipped. Fix: check the path (images, folders, globs or videos).", err=True)
    if not inputs:
        say(f"error: no usable input among --input {' '.join(options.inputs)} ({len(problems)} problem(s) above)",
            err=True)
        return 2

    if predictor_factory is None:
        from wish_d2.engine.predictor import WISHPredictor as predictor_factory
    try:
        predictor = predictor_factory(cfg, weights=weights or None)
    except (FileNotFoundError, ConfigError, WeightsError, DataFormatError) as e:  # e.g. a bad hands file
        say(f"error: {e}", err=True)
        return 2
    try:
        out.prepare()  # only now, once the run can start: a failed setup never deletes an earlier run
    except (OutputDirError, DiskFullError) as e:
        say(f"error: {e}", err=True)
        return 2
    if out.removed:
        say(f"note: --overwrite deleted {out.removed} file(s) of the earlier demo run in {out.root}"
            + (f"; kept {len(out.kept)} file(s) it did not write" if out.kept else ""))

    run = DemoRunner(cfg, options, predictor, out)
    run.unreadable.extend(p for p, _ in problems)
    run.datasets.inputs = [os.path.realpath(p) for k, p in inputs if k == "image"]
    total = sum(1 if kind == "image" else sampled_frame_count(path, options.video_stride, options.max_frames)
                for kind, path in inputs)
    try:
        with tqdm(total=total or None, desc="WISH demo", unit="frame", dynamic_ncols=True) as bar:
            for kind, path in inputs:
                if kind == "image":
                    run.run_image(path)
                    bar.update(1)
                else:
                    run.run_video(path, bar)
        write_demo_report(run, config_file, weights, notes)
    except (DiskFullError, VideoWriteError) as e:
        say(f"error: {e}. The outputs in {out.root} are incomplete (listed in its .wish_demo_files.txt; "
            "--overwrite clears them).", err=True)
        return 2
    if run.cut_short:
        return 1
    return 0 if run.counts["processed"] else 1
