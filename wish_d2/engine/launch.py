"""Detectron2's ``launch``, also on machines without CUDA: the process-group backend follows the device.

Detectron2 0.6's ``launch`` workers assert CUDA and join an NCCL group, so ``--num-gpus 2`` cannot start on a CPU
machine. With CUDA, or with one process, this is Detectron2's ``launch`` itself. Without CUDA it spawns the same
processes, one per ``--num-gpus``, joined by gloo, with Detectron2's local process group set as its worker sets it
(``comm.get_local_rank`` reads it). Everything after the start (``comm``, the samplers, DDP) is Detectron2's.
"""
import logging
import socket
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from detectron2.engine import launch as d2_launch
from detectron2.utils import comm

__all__ = ["dist_backend", "launch"]

logger = logging.getLogger(__name__)
DEFAULT_TIMEOUT = timedelta(minutes=30)  # Detectron2's default


def dist_backend() -> str:
    """The process-group backend for this machine's device: NCCL on CUDA, gloo on CPU."""
    return "NCCL" if torch.cuda.is_available() else "GLOO"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(main_func, num_gpus_per_machine: int, num_machines: int = 1, machine_rank: int = 0, dist_url=None,
           args=(), timeout=DEFAULT_TIMEOUT):
    """Detectron2's ``launch`` signature; ``num_gpus_per_machine`` counts processes (CPU processes without CUDA)."""
    world_size = num_machines * num_gpus_per_machine
    if world_size == 1 or dist_backend() == "NCCL":
        return d2_launch(main_func, num_gpus_per_machine, num_machines=num_machines, machine_rank=machine_rank,
                         dist_url=dist_url, args=args, timeout=timeout)
    if dist_url == "auto":
        dist_url = f"tcp://127.0.0.1:{_free_port()}"
    logger.info(f"no CUDA: {num_gpus_per_machine} CPU processes per machine, gloo backend")
    mp.spawn(_cpu_worker, nprocs=num_gpus_per_machine, daemon=False,
             args=(main_func, world_size, num_gpus_per_machine, machine_rank, dist_url, args, timeout))


def _cpu_worker(local_rank, main_func, world_size, num_per_machine, machine_rank, dist_url, args, timeout):
    dist.init_process_group(backend="GLOO", init_method=dist_url, world_size=world_size,
                            rank=machine_rank * num_per_machine + local_rank, timeout=timeout)
    for i in range(world_size // num_per_machine):  # every rank creates every group, as torch requires
        group = dist.new_group(list(range(i * num_per_machine, (i + 1) * num_per_machine)))
        if i == machine_rank:
            comm._LOCAL_PROCESS_GROUP = group
    comm.synchronize()
    main_func(*args)
