#!/usr/bin/env python
"""Train the hand detector that WISH's ``detector`` hand source runs: Detectron2's ``DefaultTrainer`` + ``launch``.

    python tools/train_hand_detector.py --config-file configs/hand_detector_visor.yaml --num-gpus 8
    python tools/train_hand_detector.py --config-file configs/hand_detector_egohos.yaml --num-gpus 8
    python tools/train_hand_detector.py --config-file configs/hand_detector_visor.yaml --eval-only \
        MODEL.WEIGHTS output/hand_detector_visor/model_final.pth

A stock Mask R-CNN with two classes, left hand and right hand, trained on hand masks only (the ``*_hands`` splits:
no object annotation, no narration). It writes ``OUTPUT_DIR/model_final.pth``, which ``configs/wish_epic.yaml`` and
``configs/wish_ego4d.yaml`` name in ``MODEL.WISH.HANDS.DETECTOR_WEIGHTS``. Evaluation: COCO mask and box AP of the
two classes on ``DATASETS.TEST``.
"""
import wish_d2  # noqa: F401  registers the hand-only splits
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.engine import default_argument_parser, default_setup, launch

from wish_d2.engine.arg_types import check_launch_args
from wish_d2.engine.hand_detector import HandDetectorTrainer, hand_detector_cfg


def setup(args):
    cfg = hand_detector_cfg(args.config_file, args.opts)
    cfg.freeze()
    default_setup(cfg, args)
    return cfg


def main(args):
    cfg = setup(args)
    if args.eval_only:
        model = HandDetectorTrainer.build_model(cfg)
        DetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        return HandDetectorTrainer.test(cfg, model)
    trainer = HandDetectorTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


def parse_args(argv=None):
    """The command line, with the launch flags checked (exit status 2 naming the flag)."""
    parser = default_argument_parser()
    args = parser.parse_args(argv)
    check_launch_args(parser, args)
    return args


if __name__ == "__main__":
    args = parse_args()
    launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,))
