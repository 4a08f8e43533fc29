"""``WISHTrainer``: Detectron2's ``DefaultTrainer`` with WISH's data loaders, evaluator and optimizer, and safe,
checked loading of weights and resumed checkpoints."""
import contextlib
import functools
import os
import weakref

import torch
from detectron2.engine import DefaultTrainer, defaults
from detectron2.utils import comm

from ..config_validation import OPTIMIZERS
from ..evaluation.inhand_evaluator import InHandEvaluator
from ..modeling.checkpointer import SafeDetectionCheckpointer
from .atomic_checkpointer import AtomicCheckpointer
from .checkpoint import check_heads_loaded
from .data import build_cached_test_loader, build_cached_train_loader, dataset_dicts, load_pseudo_labels
from .resume import ResumeError, config_resume_values, mismatch_message, resume_mismatches

RESUME_STATE_KEY = "wish_resume_config"  # in the trainer's checkpoint state: the values --resume compares


@contextlib.contextmanager
def _ddp_without_device_ids():
    """``DefaultTrainer.__init__`` wraps the model with ``defaults.create_ddp_model``, which passes
    ``device_ids=[local rank]``: DDP accepts that for CUDA modules only, so CPU processes (gloo,
    ``engine/launch.py``) build it with ``device_ids=None`` while the constructor runs."""
    original = defaults.create_ddp_model
    defaults.create_ddp_model = functools.partial(original, device_ids=None)
    try:
        yield
    finally:
        defaults.create_ddp_model = original


class WISHTrainer(DefaultTrainer):
    def __init__(self, cfg, allow_partial_weights: bool = False):
        self.allow_partial_weights = allow_partial_weights
        cpu_processes = comm.get_world_size() > 1 and cfg.MODEL.DEVICE == "cpu"
        with _ddp_without_device_ids() if cpu_processes else contextlib.nullcontext():
            super().__init__(cfg)

    def build_hooks(self):
        # DefaultTrainer built a plain DetectionCheckpointer; swap it before the checkpoint hook takes it
        self.checkpointer = AtomicCheckpointer(self.checkpointer.model, self.cfg.OUTPUT_DIR,
                                               trainer=weakref.proxy(self))
        return super().build_hooks()

    def resume_or_load(self, resume=True):
        """Detectron2's ``resume_or_load``, read through :class:`SafeDetectionCheckpointer` (no code runs from a
        file; ``last_checkpoint`` must name a file of OUTPUT_DIR; one-line errors), and refusing weights that leave
        part of the WISH heads unmatched unless ``allow_partial_weights``."""
        checkpointer = SafeDetectionCheckpointer(self.model, self.cfg.OUTPUT_DIR, **self.checkpointer.checkpointables)
        path = checkpointer.get_checkpoint_file() if resume and checkpointer.has_checkpoint() else ""
        if path:
            checkpointer.load(path)  # model, optimizer, scheduler, iteration
        else:
            checkpointer.load(self.cfg.MODEL.WEIGHTS, checkpointables=[])
        if checkpointer.source:
            check_heads_loaded(checkpointer, checkpointer.source, self.allow_partial_weights,
                               use="resume from them" if path else "train from them")
        if path:
            # the checkpoint stores the iteration that just finished, so training goes on at the next one
            self.start_iter = self.iter + 1

    def state_dict(self):
        """Detectron2's trainer state + the config values a resume must keep (:mod:`.resume`)."""
        state = super().state_dict()
        state[RESUME_STATE_KEY] = config_resume_values(self.cfg)
        return state

    def load_state_dict(self, state):
        saved = state.get(RESUME_STATE_KEY)
        if isinstance(saved, dict):
            changed = resume_mismatches(saved, config_resume_values(self.cfg))
            if changed:
                raise ResumeError(mismatch_message(f"the checkpoint in {self.cfg.OUTPUT_DIR} was trained with",
                                                   changed))
        super().load_state_dict(state)

    @classmethod
    def build_train_loader(cls, cfg):
        w = cfg.MODEL.WISH
        pseudo = None
        if w.STAGE == "stage2" and w.SUPERVISION == "pseudo":
            pseudo = load_pseudo_labels(w.PSEUDO.FILE or os.path.join(cfg.OUTPUT_DIR, "pseudo_labels.json"))
        if cfg.INPUT.DATASET_MAPPER_NAME != "wish_cached":
            raise ValueError("training reads the feature cache: INPUT.DATASET_MAPPER_NAME must be 'wish_cached' "
                             f"(got {cfg.INPUT.DATASET_MAPPER_NAME!r}); 'wish_online' is for inference and demos")
        return build_cached_train_loader(cfg, pseudo)

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        if cfg.INPUT.DATASET_MAPPER_NAME == "wish_online":
            from detectron2.data import build_detection_test_loader

            from ..data.mappers import WISHOnlineMapper

            return build_detection_test_loader(dataset_dicts(dataset_name), mapper=WISHOnlineMapper(is_train=False))
        return build_cached_test_loader(cfg, dataset_name)

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        return InHandEvaluator(dataset_name, output_dir=output_folder)

    @classmethod
    def build_optimizer(cls, cfg, model):
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError(f"MODEL.WISH.STAGE={cfg.MODEL.WISH.STAGE!r} leaves nothing to train")
        if cfg.SOLVER.OPTIMIZER == "AdamW":
            return torch.optim.AdamW(params, lr=cfg.SOLVER.BASE_LR, weight_decay=cfg.SOLVER.WEIGHT_DECAY)
        if cfg.SOLVER.OPTIMIZER == "SGD":
            return torch.optim.SGD(params, lr=cfg.SOLVER.BASE_LR, momentum=cfg.SOLVER.MOMENTUM,
                                   weight_decay=cfg.SOLVER.WEIGHT_DECAY)
        raise ValueError(f"SOLVER.OPTIMIZER={cfg.SOLVER.OPTIMIZER!r} is not one of {OPTIMIZERS}")
