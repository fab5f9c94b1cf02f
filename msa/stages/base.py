"""What the training stages' LightningModules share: the policy they train, checkpoints that hold
only the trainable weights plus the RNG states, and AdamW with warmup + cosine."""

from __future__ import annotations

import logging
import os
import random

import lightning as L
import numpy as np
import torch

from msa.models import set_train_mode, trainable_parameters
from msa.models.loader import export_digest
from msa.seeding import seed_globals, seed_rank

log = logging.getLogger(__name__)
from msa.schedules import warmup_cosine


def rng_state() -> dict:
    """Every global RNG this process draws from in a training step (sampling in GRPO, dropout in SFT).

    Lightning checkpoints do not hold them; without them a resumed GRPO run samples other rollouts than
    the uninterrupted run would have. Under DDP each rank's are gathered into the checkpoint by
    :class:`PolicyModule` (``checkpoint["msa_rng"]``: one per rank). CUDA: this process's device only (a
    DDP rank's other devices' generators belong to the other ranks).
    """
    # Plain types and tensors only: Lightning loads checkpoints with torch.load(weights_only=True).
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(), "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss,
                                                    gauss], "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()  # the current device's
    return state


def set_rng_state(state: dict | None) -> None:
    """Restore :func:`rng_state` (no-op for a checkpoint written without one)."""
    if not state:
        return
    random.setstate(state["python"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        if isinstance(state["cuda"], (list, tuple)):  # written before: every device's, by one process
            torch.cuda.set_rng_state_all(state["cuda"])
        else:
            torch.cuda.set_rng_state(state["cuda"])


def gather_rng_states() -> list[dict]:
    """:func:`rng_state` of every DDP rank, in rank order, on every rank (one process: its own). All ranks must
    call it together: Lightning calls ``on_save_checkpoint`` on every rank, rank 0 writes the file."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return [rng_state()]
    states = [None] * dist.get_world_size()
    dist.all_gather_object(states, rng_state())
    return states


class PolicyModule(L.LightningModule):
    def __init__(self, policy):
        super().__init__()
        self.policy = policy
        self.model = policy.model  # registered so Lightning moves it and checkpoints it
        # Checkpoints keep only the trainable weights; the frozen base comes from the model config.
        self.strict_loading = False
        # Lightning keeps the modes it finds (and restores them after validation): the language model must
        # be in train mode for gradient checkpointing and dropout to act; the frozen towers stay in eval.
        set_train_mode(policy)
        self._init_record: dict | None = None  # the export the base was merged from (see init_record)

    def setup(self, stage: str) -> None:
        # Lightning's DDP setup has just reseeded every rank with PL_GLOBAL_SEED (reset_seed): one stream on
        # all ranks, so their rollouts would be copies. Each rank draws from its own (rank 0's is that seed).
        # Before on_load_checkpoint, which restores each rank's saved states on a resume.
        if self.trainer.world_size > 1:
            seed_globals(seed_rank(int(os.environ.get("PL_GLOBAL_SEED", 0)), self.global_rank))

    def state_dict(self, *args, **kwargs):
        # Only what training changes: the adapter (or, with full fine-tuning, the unfrozen weights).
        full = super().state_dict(*args, **kwargs)
        keep = {"model." + n for n in trainable_parameters(self.model)}
        return type(full)((k, v) for k, v in full.items() if k in keep)

    def on_fit_start(self):
        # After the precision plugin has converted the module (bf16-true casts every weight, adapter included).
        low = sorted({str(p.dtype) for p in trainable_parameters(self.model).values() if p.dtype != torch.float32})
        if low:
            raise ValueError(
                f"trainable parameters are {', '.join(low)} (trainer.precision={self.trainer.precision!r}, "
                f"model.dtype): AdamW steps of ~lr round away in low precision. Keep them fp32: "
                "trainer.precision=bf16-mixed (trainer=gpu) with LoRA, or model.dtype=float32 for full fine-tuning")

    def init_record(self) -> dict:
        """The export this policy's base was merged from (``init_from``): its path and weights digest (None
        for none). Hashed once per run; the checkpoints record it so a resume onto another base is refused."""
        if self._init_record is None:
            init = self.policy.init
            self._init_record = {"path": str(init) if init else None, "digest": export_digest(init) if init else None}
        return self._init_record

    def on_save_checkpoint(self, checkpoint):
        # Sampling and dropout draw from the global RNGs; Lightning does not save them, an exact resume needs them.
        checkpoint["msa_rng"] = gather_rng_states()  # one per rank: each rank restores its own
        checkpoint["msa_init"] = self.init_record()

    def on_load_checkpoint(self, checkpoint):
        self._check_init(checkpoint.get("msa_init"))
        self._restore_rng(checkpoint.get("msa_rng"))

    def _restore_rng(self, saved) -> None:
        """This rank's saved RNG states. A checkpoint of another world size cannot resume exactly (its data
        shards differ too): then every rank keeps the stream it was seeded with, and a warning says so."""
        if not saved:
            return
        states = [saved] if isinstance(saved, dict) else list(saved)  # a dict: written before, rank 0's only
        world = self.trainer.world_size if self._trainer is not None else 1
        rank = self.global_rank if self._trainer is not None else 0
        if len(states) == world:
            set_rng_state(states[rank])
            return
        if rank == 0:
            log.warning("the checkpoint holds the RNG states of %d process(es), this run has %d: each keeps the "
                        "stream it was seeded with, so the resumed run does not draw what an uninterrupted one "
                        "would have (resume with as many processes for an exact resume)", len(states), world)

    def _check_init(self, saved: dict | None) -> None:
        """The checkpoint's adapter only means what it was trained as on the same base (and, in GRPO, the same
        KL reference): refuse a resume whose ``init_from`` holds other weights, or none. Checkpoints written
        before the record was kept pass unchecked."""
        if saved is None:
            return
        mine = self.init_record()
        if saved["digest"] == mine["digest"]:
            return
        ckpt = getattr(self._trainer, "ckpt_path", None) if self._trainer is not None else None
        def name(rec):
            return f"init_from={rec['path']} (weights sha256 {rec['digest'][:12]})" if rec["digest"] else "no init_from"
        raise ValueError(f"ckpt_path={ckpt or '<checkpoint>'} was trained on {name(saved)}, but this run has "
                         f"{name(mine)}: resuming would continue its adapter on another base and another "
                         f"reference. Pass the checkpoint's init_from, or start without ckpt_path")

    def zero_loss(self) -> torch.Tensor:
        """A loss of 0 that touches every trainable parameter, for a DDP rank with nothing to learn (its batch
        skipped, every GRPO group dropped): backpropagating it keeps the rank in each gradient all-reduce, so
        the other ranks do not wait on it, and it steps with their averaged gradients like they do."""
        return sum(p.sum() for p in self.model.parameters() if p.requires_grad) * 0.0

    def adamw_warmup_cosine(self, *, lr: float, weight_decay: float, warmup_steps: int) -> dict:
        """AdamW over the trainable parameters; linear warmup, then cosine to zero at the last step."""
        params = list(trainable_parameters(self.model).values())
        if not params:
            raise ValueError("no trainable parameters: enable model.lora or unfreeze something")
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        total = self.total_steps()
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, total, warmup_steps))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def total_steps(self) -> int:
        """Optimizer steps of the whole fit (Lightning's estimate: epochs x batches / accumulation, or max_steps)."""
        return max(1, int(self.trainer.estimated_stepping_batches))
