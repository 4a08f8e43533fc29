"""One demo run from a config and :class:`~wish_d2.demo.runner.DemoOptions`: the setup checks (exit status 2),
the frame loop with a progress bar, and the report. ``tools/demo.py`` is its command line."""
import os
from typing import Callable, Optional

from wish_d2.config_validation import ConfigError
from wish_d2.engine.checkpoint import WeightsError

from .console import say
from .inputs import collect_inputs
from .output_dir import DemoOutputDir, OutputDirError
from .report import write_demo_report
from .runner import DemoOptions, DemoRunner
from .video import sampled_frame_count

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


def run_demo(cfg, options: DemoOptions, config_file: str = "",
             predictor_factory: Optional[Callable] = None) -> int:
    """Run the demo; returns the exit status: 0 when at least one frame was processed, 1 when none was, 2 for a
    setup error (missing or partly matching weights, an invalid config value, an unusable output folder), reported
    before any file is written.

    ``predictor_factory(cfg, weights)`` replaces :class:`~wish_d2.engine.predictor.WISHPredictor` (tests, other
    front ends).
    """
    from tqdm import tqdm

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

    inputs, missing = collect_inputs(options.inputs)
    for p in missing:
        say(f"error: input not found: {p}; skipped. Fix: check the path (images, folders, globs or videos).",
            err=True)

    if predictor_factory is None:
        from wish_d2.engine.predictor import WISHPredictor as predictor_factory
    try:
        predictor = predictor_factory(cfg, weights=weights or None)
    except (FileNotFoundError, ConfigError, WeightsError) as e:
        say(f"error: {e}", err=True)
        return 2
    try:
        out.prepare()  # only now, once the run can start: a failed setup never deletes an earlier run
    except OutputDirError as e:
        say(f"error: {e}", err=True)
        return 2
    if out.removed:
        say(f"note: --overwrite deleted {out.removed} file(s) of the earlier demo run in {out.root}"
            + (f"; kept {len(out.kept)} file(s) it did not write" if out.kept else ""))

    run = DemoRunner(cfg, options, predictor, out)
    run.unreadable.extend(missing)
    run.datasets.inputs = [os.path.realpath(p) for k, p in inputs if k == "image"]
    total = sum(1 if kind == "image" else sampled_frame_count(path, options.video_stride, options.max_frames)
                for kind, path in inputs)
    with tqdm(total=total or None, desc="WISH demo", unit="frame", dynamic_ncols=True) as bar:
        for kind, path in inputs:
            if kind == "image":
                run.run_image(path)
                bar.update(1)
            else:
                run.run_video(path, bar)
    write_demo_report(run, config_file, weights, notes)
    return 0 if run.counts["processed"] else 1
