#!/usr/bin/env python
"""Train and evaluate WISH: the standard Detectron2 ``DefaultTrainer`` + ``launch`` script.

    python tools/train_net.py --config-file configs/wish_synthetic.yaml
    python tools/train_net.py --config-file configs/wish_synthetic.yaml --eval-only MODEL.WEIGHTS output/wish_synthetic/model_final.pth
    python tools/train_net.py --config-file configs/wish_epic.yaml --num-gpus 8

``MODEL.WISH.STAGE all`` runs Stage 1, pseudo-labelling, Stage 2, calibration and evaluation in one command;
``1`` or ``2`` runs one stage (``2`` reads ``MODEL.WISH.PSEUDO.FILE``).
"""
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import wish_d2  # noqa: E402  registers WISH and installs Detectron2 compat shims
from detectron2.checkpoint import DetectionCheckpointer  # noqa: E402
from detectron2.config import get_cfg  # noqa: E402
from detectron2.engine import default_argument_parser, default_setup, launch  # noqa: E402
from detectron2.utils import comm  # noqa: E402
from detectron2.utils.logger import setup_logger  # noqa: E402

from wish_d2 import add_wish_config  # noqa: E402
from wish_d2.data.builtin import register_synthetic_from_cfg  # noqa: E402
from wish_d2.engine import WISHTrainer, run_pipeline  # noqa: E402
from wish_d2.utils.atomic import write_json  # noqa: E402

logger = logging.getLogger("wish_d2")


def setup(args):
    cfg = get_cfg()
    add_wish_config(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.freeze()
    default_setup(cfg, args)
    setup_logger(output=cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="wish_d2")
    register_synthetic_from_cfg(cfg)
    return cfg


def main(args):
    cfg = setup(args)
    if args.eval_only:
        model = WISHTrainer.build_model(cfg)
        DetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        results = WISHTrainer.test(cfg, model)
        if comm.is_main_process():
            write_json(results, os.path.join(cfg.OUTPUT_DIR, "metrics_eval_only.json"))
        return results
    return run_pipeline(cfg, resume=args.resume)


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,))
