#!/usr/bin/env python
"""Run the configured online proposal generator (SAM or GSAM) once over a registered dataset and write the
precomputed-proposals file (``wish_d2/data/proposals_io.py`` JSON lines) that ``PrecomputedMaskProposals`` reads.

    python tools/extract_proposals.py --config-file configs/wish_epic.yaml --dataset epic_visor_train \
        --output datasets/epic_visor/proposals/train.jsonl \
        MODEL.WISH.SEGMENTER.SAM_CHECKPOINT https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth
    # several GPUs: each rank takes every world_size-th image; rank 0 merges
    python tools/extract_proposals.py ... --num-gpus 8
    # continue a killed run (keeps the finished images of every rank's part file)
    python tools/extract_proposals.py ... --resume

Which generator: ``MODEL.PROPOSAL_GENERATOR.NAME`` if it is ``SAMProposals``/``GSAMProposals``, else the one of
``MODEL.WISH.SEGMENTER.NAME`` (see ``build_online_proposal_generator``). Frames are read at full resolution, RGB.
``MODEL.WISH.PROPOSALS.{MIN_AREA, MAX_PER_IMAGE}`` apply at extraction (raise them here to keep more).

Each rank appends to ``OUTPUT.part{rank}of{world}`` as it goes (flushed every image), so ``--resume`` skips what
is done (a torn last line is dropped; any other line that is not a record is refused, naming the file and line);
the final ``OUTPUT`` is written atomically by rank 0, in dataset order, and the part files are removed. The config,
``--dataset`` and this machine's part files are checked before any process starts (exit status 2).
"""
import argparse
import difflib
import json
import logging
import os
import sys
from typing import Dict, List, Optional, Set

import torch
from tqdm import tqdm

import wish_d2  # noqa: F401  registers everything, installs the Detectron2 compat shims
from detectron2.data import DatasetCatalog
from detectron2.data import detection_utils as utils
from detectron2.engine import default_argument_parser
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from wish_d2.config_validation import ConfigError
from wish_d2.data.builtin import register_synthetic_from_cfg
from wish_d2.data.taxonomy import TaxonomyError
from wish_d2.data.proposals_io import write_proposals
from wish_d2.engine.arg_types import check_launch_args, nonneg_int, output_file
from wish_d2.engine.launch import launch  # Detectron2's launch; gloo processes without CUDA
from wish_d2.engine.setup import build_cfg
from wish_d2.modeling.proposal_generators import build_online_proposal_generator
from wish_d2.utils.atomic import disk_full_names, exit_on_disk_full
from wish_d2.utils.masks import encode_rle

logger = logging.getLogger("wish_d2.extract_proposals")


def get_parser() -> argparse.ArgumentParser:
    parser = default_argument_parser(epilog=__doc__)
    parser.add_argument("--dataset", required=True, help="registered dataset name (DatasetCatalog)")
    parser.add_argument("--output", required=True, type=output_file, help="proposals JSON-lines file to write")
    parser.add_argument("--limit", type=nonneg_int, default=0,
                        help="only the first N images (0 = all); for smoke tests")
    # default_argument_parser already has --resume ("resume from checkpoint"); here it resumes the part files.
    return parser


class PartFileError(ValueError):
    """A part file that ``--resume`` cannot trust; the message names the file and line."""


def setup(args):
    cfg = build_cfg(args.config_file, args.opts, resolve_pretrained=False)  # proposals never run CLIP
    register_synthetic_from_cfg(cfg)
    setup_logger(name="wish_d2", distributed_rank=comm.get_rank())
    setup_logger(name="detectron2", distributed_rank=comm.get_rank())
    return cfg


def part_path(output: str, rank: int, world: int) -> str:
    return f"{output}.part{rank}of{world}"


def _read_part(path: str) -> List[Dict]:
    """Complete records of a part file; a torn last line (killed mid-write) is dropped and cut off the file. Any
    other line that is not a record is an error: dropping it, and everything after it, would lose finished work
    silently."""
    records, good_bytes = [], 0
    if not os.path.isfile(path):
        return records
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if not line.endswith(b"\n"):
                break
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                record = None
            if not (isinstance(record, dict) and isinstance(record.get("image_id"), str)
                    and isinstance(record.get("masks"), list) and isinstance(record.get("scores"), list)):
                raise PartFileError(f"--resume: {path} line {number} is not a proposals record; delete the part "
                                    "file to extract its images again")
            records.append(record)
            good_bytes += len(line)
    if good_bytes != os.path.getsize(path):
        with open(path, "r+b") as f:
            f.truncate(good_bytes)
    return records


def proposals_to_record(d: Dict, instances) -> Dict:
    masks = instances.proposal_masks.cpu()
    scores = torch.sigmoid(instances.objectness_logits.float().cpu())
    h, w = instances.image_size
    return {
        "image_id": str(d["image_id"]),
        "height": int(h),
        "width": int(w),
        "masks": [encode_rle(m) for m in masks],
        "scores": [round(float(s), 6) for s in scores],
    }


def extract_shard(cfg, dicts: List[Dict], dataset: str, part_file: str, resume: bool, show_progress: bool) -> None:
    """Proposals of ``dicts`` appended to ``part_file`` (skipping image ids already there if ``resume``)."""
    done: Set[str] = {r["image_id"] for r in _read_part(part_file)} if resume else set()
    todo = [d for d in dicts if str(d["image_id"]) not in done]
    if done:
        logger.info(f"{part_file}: resuming, {len(done)} images done, {len(todo)} to go")
    if not todo:
        return
    generator = build_online_proposal_generator(cfg).to(torch.device(cfg.MODEL.DEVICE)).eval()
    os.makedirs(os.path.dirname(os.path.abspath(part_file)), exist_ok=True)
    # a full disk names the part file; its cut last line is dropped by --resume (_read_part)
    with disk_full_names(part_file), open(part_file, "a" if resume else "w") as f, torch.no_grad():
        for d in tqdm(todo, desc=f"proposals {dataset}", disable=not show_progress, dynamic_ncols=True):
            image = utils.read_image(d["file_name"], format="RGB")
            inp = {
                "image": torch.as_tensor(image.transpose(2, 0, 1).copy()),
                "image_id": d["image_id"],
                "height": image.shape[0],
                "width": image.shape[1],
                "dataset_name": dataset,
            }
            (instances,) = generator([inp])
            f.write(json.dumps(proposals_to_record(d, instances)) + "\n")
            f.flush()


def merge_parts(dicts: List[Dict], parts: List[str], output: str) -> int:
    """Merge part files into ``output`` atomically, in dataset order; returns the number of records."""
    by_id: Dict[str, Dict] = {}
    for p in parts:
        for r in _read_part(p):
            by_id[r["image_id"]] = r
    missing = [str(d["image_id"]) for d in dicts if str(d["image_id"]) not in by_id]
    if missing:
        raise RuntimeError(f"{len(missing)} images have no proposals in {parts} (e.g. {missing[:3]}); rerun --resume")
    n = write_proposals((by_id[str(d["image_id"])] for d in dicts), output)
    for p in parts:
        os.remove(p)
    return n


def main(args) -> Optional[int]:
    cfg = setup(args)  # validated: a bad value or taxonomy file fails before any image is read
    rank, world = comm.get_rank(), comm.get_world_size()
    dicts = DatasetCatalog.get(args.dataset)
    if args.limit > 0:
        dicts = dicts[: args.limit]
    ids = [str(d["image_id"]) for d in dicts]
    if len(set(ids)) != len(ids):
        raise ValueError(f"dataset {args.dataset} has duplicate image_ids; proposals are looked up by image_id")
    extract_shard(cfg, dicts[rank::world], args.dataset, part_path(args.output, rank, world), args.resume,
                  show_progress=comm.is_main_process())
    comm.synchronize()
    if comm.is_main_process():
        n = merge_parts(dicts, [part_path(args.output, r, world) for r in range(world)], args.output)
        logger.info(f"wrote proposals of {n} images to {args.output}")
        return n
    return None


def check_inputs(parser: argparse.ArgumentParser, args) -> None:
    """Everything the flags name, checked before any process starts: the config, the dataset and, with
    ``--resume``, the part files of this machine (exit status 2 and one line on the first problem)."""
    check_launch_args(parser, args)
    try:
        cfg = build_cfg(args.config_file, args.opts, resolve_pretrained=False)
        register_synthetic_from_cfg(cfg)
        if args.resume:
            world = args.num_gpus * args.num_machines
            for r in range(args.machine_rank * args.num_gpus, (args.machine_rank + 1) * args.num_gpus):
                _read_part(part_path(args.output, r, world))
    except (ConfigError, TaxonomyError, PartFileError) as e:
        parser.error(str(e))
    if args.dataset not in DatasetCatalog.list():
        close = difflib.get_close_matches(args.dataset, DatasetCatalog.list(), n=5, cutoff=0.5)
        parser.error(f"--dataset {args.dataset!r} is not registered"
                     + (f" (did you mean {', '.join(close)}?)" if close else ""))


def invoke(argv=None):
    parser = get_parser()
    args = parser.parse_args(argv)
    check_inputs(parser, args)
    print("Command Line Args:", args)
    try:
        launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
               dist_url=args.dist_url, args=(args,))
    except (ConfigError, TaxonomyError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    with exit_on_disk_full():
        invoke(sys.argv[1:])
