#!/usr/bin/env python
"""Train and evaluate WISH: the standard Detectron2 ``DefaultTrainer`` + ``launch`` script.

    python tools/train_net.py --config-file configs/wish_synthetic.yaml
    python tools/train_net.py --config-file configs/wish_synthetic.yaml --eval-only MODEL.WEIGHTS output/wish_synthetic/model_final.pth
    python tools/train_net.py --config-file configs/wish_epic.yaml --num-gpus 8
    python tools/train_net.py --config-file configs/wish_synthetic.yaml --num-gpus 2   # no CUDA: 2 CPU processes

``--num-gpus N`` starts N processes per machine. The process-group backend follows the device: NCCL with CUDA
(one GPU per process, ``MODEL.DEVICE cuda``), gloo without CUDA (``MODEL.DEVICE cpu``), see
``wish_d2/engine/launch.py``.

``MODEL.WISH.STAGE all`` runs Stage 1, pseudo-labelling, Stage 2, calibration and evaluation in one command;
``stage1`` or ``stage2`` runs one stage (``stage2`` reads ``MODEL.WISH.PSEUDO.FILE``).

``--eval-only`` refuses an empty or missing ``MODEL.WEIGHTS``; it and training refuse weights that match the WISH
heads only partly (``--allow-partial-weights`` uses them anyway). Weights are read without running code from them
(``.pkl`` through a restricted unpickler, ``.pth`` with ``weights_only=True``). ``--resume`` refuses a
``last_checkpoint`` that does not name a checkpoint file of its own folder, and a config that changed since the run
started in a key that changes parameter shapes, the cached features or the training images
(``wish_d2/engine/resume.py``). Each of these errors, and invalid config values, stop the run before any work with
one line and exit status 2.
"""
import logging
import os
import sys

import wish_d2  # noqa: F401  registers WISH and installs Detectron2 compat shims
from detectron2.engine import default_argument_parser, default_setup
from detectron2.modeling import build_model
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from wish_d2.config_validation import ConfigError
from wish_d2.data.common import DataFormatError
from wish_d2.engine import WISHTrainer, run_pipeline
from wish_d2.engine.arg_types import check_launch_args
from wish_d2.engine.checkpoint import WeightsError, load_eval_weights
from wish_d2.engine.launch import launch  # Detectron2's launch; gloo processes without CUDA
from wish_d2.engine.resume import check_resume
from wish_d2.engine.setup import setup_cfg
from wish_d2.modeling.checkpointer import SafeDetectionCheckpointer
from wish_d2.utils.atomic import exit_on_disk_full, write_json

logger = logging.getLogger("wish_d2")


def setup(args):
    cfg = setup_cfg(args)
    if args.resume:
        check_resume(cfg)  # before default_setup overwrites OUTPUT_DIR/config.yaml, the record of the run
    default_setup(cfg, args)
    setup_logger(output=cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="wish_d2")
    return cfg


def eval_only(cfg, args):
    """Evaluate ``MODEL.WEIGHTS`` (or, with ``--resume``, the last checkpoint in OUTPUT_DIR) on DATASETS.TEST."""
    model = build_model(cfg)
    weights = cfg.MODEL.WEIGHTS
    checkpointer = SafeDetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR)
    if args.resume and checkpointer.has_checkpoint():
        weights = checkpointer.get_checkpoint_file()
    load_eval_weights(model, weights, allow_partial=args.allow_partial_weights, checkpointer=checkpointer)
    results = WISHTrainer.test(cfg, model)
    if comm.is_main_process():
        write_json(results, os.path.join(cfg.OUTPUT_DIR, "metrics_eval_only.json"))
    return results


def main(args):
    cfg = setup(args)
    if args.eval_only:
        return eval_only(cfg, args)
    return run_pipeline(cfg, resume=args.resume, allow_partial_weights=args.allow_partial_weights)


def argument_parser():
    parser = default_argument_parser()
    parser.add_argument("--allow-partial-weights", action="store_true",
                        help="use MODEL.WEIGHTS (evaluation or training init) even if they match the WISH heads "
                             "only partly")
    return parser


def parse_args(argv=None):
    """The command line, with the launch flags checked (exit status 2 naming the flag)."""
    parser = argument_parser()
    args = parser.parse_args(argv)
    check_launch_args(parser, args)
    return args


if __name__ == "__main__":
    args = parse_args()
    try:
        with exit_on_disk_full():
            launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
                   dist_url=args.dist_url, args=(args,))
    except (ConfigError, WeightsError, DataFormatError) as e:  # DataFormatError: an input file, named
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
