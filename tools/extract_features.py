#!/usr/bin/env python
"""Fill the feature cache of one or more registered datasets ahead of training (frozen proposals, hands,
mask-pooled CLIP embeddings, geometry and noun-phrase text), sharded across GPUs and machines:

    python tools/extract_features.py --config-file configs/wish_epic.yaml \
        --datasets epic_visor_train_core epic_visor_train_heldout epic_visor_val
    python tools/extract_features.py --config-file configs/wish_epic.yaml --num-gpus 8 --datasets epic_visor_train_core
    python tools/extract_features.py --config-file configs/wish_epic.yaml --verify

Interrupted runs resume: finished shards are kept. Every existing file is read and checked against the checksums
of the cache index, and damaged or missing shards are rebuilt. ``--verify`` only checks: it reports every damaged
or missing file and exits 1 if there is any, extracting nothing. ``train_net.py`` extracts on demand too (checking
sizes only); this tool lets the expensive part run on its own, on more machines, first. The cache lands in
``MODEL.WISH.CACHE.DIR``. Config overrides (``KEY VALUE``) may follow ``--datasets`` directly or come after ``--``.
"""
import sys

import wish_d2  # noqa: F401  registers WISH and installs Detectron2 compat shims
from detectron2.config import get_cfg
from detectron2.engine import default_argument_parser, default_setup, launch
from detectron2.modeling import build_model
from detectron2.utils.logger import setup_logger

from wish_d2 import add_wish_config
from wish_d2.data.builtin import register_synthetic_from_cfg
from wish_d2.engine.cli import parse_args_with_overrides
from wish_d2.engine.data import ensure_feature_cache, feature_cache_for


def argument_parser():
    parser = default_argument_parser()
    parser.add_argument("--datasets", nargs="+", default=None, metavar="DATASET",
                        help="default: the config's train, val and test datasets")
    parser.add_argument("--verify", action="store_true",
                        help="only read and check every cache file; list damaged or missing ones and exit 1 if any")
    return parser


def parse_args(argv=None):
    return parse_args_with_overrides(argument_parser(), argv, {"datasets": str})


def setup_cfg(args):
    cfg = get_cfg()
    add_wish_config(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.freeze()
    register_synthetic_from_cfg(cfg)
    return cfg


def dataset_names(cfg, args):
    return args.datasets or list(dict.fromkeys(list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.VAL)
                                               + list(cfg.DATASETS.TEST)))


def verify(cfg, names, out=sys.stdout) -> int:
    """Check every cache file of each dataset (sizes, checksums, records); 0 if all are intact, else 1."""
    damaged = 0
    for name in names:
        cache = feature_cache_for(cfg, name)
        problems = cache.verify()
        if problems:
            damaged += 1
            print(f"{name}: DAMAGED {cache.dir}", file=out)
            for p in problems:
                print(f"  {p}", file=out)
        else:
            m = cache.manifest()
            print(f"{name}: ok {cache.dir} ({m['num_images']} images, {len(m['shards'])} shards)", file=out)
    if damaged:
        print(f"{damaged} of {len(names)} caches are damaged or incomplete; run this tool without --verify to "
              "rebuild them", file=out)
    return 1 if damaged else 0


def main(args):
    cfg = setup_cfg(args)
    default_setup(cfg, args)
    setup_logger(name="wish_d2")
    model = build_model(cfg)
    for name in dataset_names(cfg, args):
        cache = ensure_feature_cache(cfg, name, model, full_check=True)
        print(f"{name}: {cache.dir}")


if __name__ == "__main__":
    args = parse_args()
    if args.verify:
        setup_logger(name="wish_d2")
        cfg = setup_cfg(args)
        sys.exit(verify(cfg, dataset_names(cfg, args)))
    launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,))
