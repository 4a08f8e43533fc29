"""Detectron2's checkpointer, writing atomically: fvcore writes ``model_*.pth`` and ``last_checkpoint`` in place, so
a full disk leaves a truncated checkpoint under its final name for ``--resume`` or ``--eval-only`` to pick up. Here
each file goes to a temporary name and is renamed when complete; a full disk raises
:class:`~wish_d2.utils.atomic.DiskFullError` naming the file, and ``last_checkpoint`` keeps naming the previous,
complete checkpoint."""
import os

from ..modeling.checkpointer import SafeDetectionCheckpointer

from ..utils.atomic import atomic_path, save_torch

__all__ = ["AtomicCheckpointer"]


class AtomicCheckpointer(SafeDetectionCheckpointer):
    """Reads through :class:`SafeDetectionCheckpointer` (no code runs from a file), writes atomically."""

    def save(self, name: str, *, tag_last: bool = True, **kwargs) -> None:
        """fvcore's ``Checkpointer.save`` with the write through :func:`~wish_d2.utils.atomic.save_torch`.
        ``tag_last=False`` leaves ``last_checkpoint`` alone: for a file saved beside a trainer's checkpoints that
        ``--resume`` must not pick up (it holds no iteration, so training would start over at iteration 1)."""
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        basename = f"{name}.pth"
        save_file = os.path.join(self.save_dir, basename)
        self.logger.info(f"Saving checkpoint to {save_file}")
        save_torch(data, save_file)
        if tag_last:
            self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        with atomic_path(os.path.join(self.save_dir, "last_checkpoint")) as tmp, open(tmp, "w") as f:
            f.write(last_filename_basename)
