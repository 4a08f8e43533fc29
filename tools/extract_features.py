#!/usr/bin/env python
"""Fill the feature cache of one or more registered datasets ahead of training (frozen proposals, hands,
mask-pooled CLIP embeddings, geometry and noun-phrase text), sharded across GPUs and machines:

    python tools/extract_features.py --config-file configs/wish_epic.yaml --datasets epic_visor_train epic_visor_val
    python tools/extract_features.py --config-file configs/wish_epic.yaml --num-gpus 8 --datasets epic_visor_train

Interrupted runs resume: finished shards are kept. ``train_net.py`` does the same on demand; this tool only lets
the expensive part run on its own (and on more machines) first. The cache lands in ``MODEL.WISH.CACHE.DIR``.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import wish_d2  # noqa: E402,F401
from detectron2.config import get_cfg  # noqa: E402
from detectron2.engine import default_argument_parser, default_setup, launch  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402
from detectron2.utils.logger import setup_logger  # noqa: E402

from wish_d2 import add_wish_config  # noqa: E402
from wish_d2.data.builtin import register_synthetic_from_cfg  # noqa: E402
from wish_d2.engine.data import ensure_feature_cache  # noqa: E402


def main(args):
    cfg = get_cfg()
    add_wish_config(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.freeze()
    default_setup(cfg, args)
    setup_logger(name="wish_d2")
    register_synthetic_from_cfg(cfg)
    names = args.datasets or list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.VAL) + list(cfg.DATASETS.TEST)
    model = build_model(cfg)
    for name in names:
        cache = ensure_feature_cache(cfg, name, model)
        print(f"{name}: {cache.dir}")


if __name__ == "__main__":
    parser = default_argument_parser()
    parser.add_argument("--datasets", nargs="+", default=None, help="default: the config's train, val and test")
    args = parser.parse_args()
    launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,))
