"""The demo's logic, beside :class:`~wish_d2.engine.predictor.WISHPredictor` the way Detectron2 keeps
``predictor.py`` beside a thin ``demo.py``; ``tools/demo.py`` only parses the command line.

* :mod:`.inputs`: what ``--input`` paths mean; :mod:`wish_d2.data.image_io` and :mod:`.video`: reading frames;
* :mod:`.dataset_index`: inputs that belong to a registered dataset (its hands, proposals, ground truth);
* :mod:`.runner`: per-frame inference, overlays, panels and per-image metrics (:mod:`.frame_metrics`);
* :mod:`.output_dir`: the output folder policy (no mixing of runs, ``--overwrite``);
* :mod:`.report`: COCO results, ``summary.json`` and the HTML gallery; :mod:`.run`: one whole run.
"""
from ..data.image_io import ImageReadError, read_image_rgb
from .inputs import collect_inputs
from .output_dir import DemoOutputDir, OutputDirError
from .run import run_demo
from .runner import DemoOptions, DemoRunner

__all__ = ["DemoOptions", "DemoOutputDir", "DemoRunner", "ImageReadError", "OutputDirError", "collect_inputs",
           "read_image_rgb", "run_demo"]
