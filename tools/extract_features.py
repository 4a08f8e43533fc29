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
from detectron2.data import DatasetCatalog
from detectron2.engine import default_argument_parser, default_setup
from detectron2.modeling import build_model
from detectron2.utils.logger import setup_logger

from wish_d2.config_validation import ConfigError
from wish_d2.data.common import DataFormatError
from wish_d2.engine.arg_types import check_launch_args
from wish_d2.engine.cli import parse_args_with_overrides
from wish_d2.engine.data import ensure_feature_cache, feature_cache_for
from wish_d2.engine.launch import launch  # Detectron2's launch; gloo processes without CUDA
from wish_d2.engine.setup import setup_cfg as validated_cfg
from wish_d2.modeling.weights import WeightsError
from wish_d2.utils.atomic import exit_on_disk_full


def argument_parser():
    parser = default_argument_parser()
    parser.add_argument("--datasets", nargs="+", default=None, metavar="DATASET",
                        help="default: the config's train, val and test datasets")
    parser.add_argument("--verify", action="store_true",
                        help="only read and check every cache file; list damaged or missing ones and exit 1 if any")
    return parser


def parse_args(argv=None):
    parser = argument_parser()
    args = parse_args_with_overrides(parser, argv, {"datasets": str})
    check_launch_args(parser, args)
    return args


def setup_cfg(args):
    """The validated config, its datasets registered; a bad config or an unknown ``--datasets`` name exits 2."""
    try:
        cfg = validated_cfg(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    unknown = [n for n in dataset_names(cfg, args) if n not in DatasetCatalog.list()]
    if unknown:
        print(f"error: --datasets (or the config's DATASETS): not registered: {', '.join(unknown)}", file=sys.stderr)
        sys.exit(2)
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
    setup_logger(name="wish_d2")
    try:
        with exit_on_disk_full():
            cfg = setup_cfg(args)  # checked before any process starts (may build the web-pretrained CLIP)
            if args.verify:
                sys.exit(verify(cfg, dataset_names(cfg, args)))
            launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
                   dist_url=args.dist_url, args=(args,))
    except (WeightsError, DataFormatError) as e:  # a weights or input file, named in the message
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
