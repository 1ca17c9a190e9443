"""Data-parallel meta-training and evaluation on ``torch.distributed`` (``torchrun``).

Meta-training is data-parallel over optimizees: with N processes each runs its share of every
batch (:meth:`Group.share`), the meta-gradients are summed with one all-reduce per truncation,
and every process applies the same meta-update, so φ stays the same everywhere. The batch is
sampled whole on every process and then split, so N processes with the same ``batch_size`` and
seed see the functions one process sees, and train the same optimizer up to float summation
order. Only rank 0 writes files and shows progress.

Plain ``python -m l2l …`` has no process group: :func:`setup` returns the single-process
:data:`SINGLE`, for which every collective is a no-op. Under ``torchrun`` (``WORLD_SIZE`` > 1)
it starts the process group: gloo for CPUs, NCCL for CUDA devices, or ``backend`` /
``$L2L_BACKEND``.
"""

from __future__ import annotations

import datetime
import os
import pickle
from dataclasses import dataclass

import torch
from torch import Tensor

from .errors import ConfigError

#: how long a collective waits for the other processes before it fails
TIMEOUT = datetime.timedelta(seconds=float(os.environ.get("L2L_DIST_TIMEOUT", 600)))


@dataclass(frozen=True)
class Group:
    """This process's place among ``world_size`` processes (rank 0 writes the outputs)."""

    rank: int = 0
    world_size: int = 1
    backend: str | None = None

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def writes(self) -> bool:
        """Whether this process writes files, logs and progress bars (rank 0)."""
        return self.rank == 0

    def share(self, n: int) -> slice:
        """This rank's rows of ``n`` items: contiguous blocks, the first ``n mod N`` one larger."""
        base, extra = divmod(n, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))

    def all_reduce(self, tensor: Tensor) -> Tensor:
        """Sum ``tensor`` over the processes, in place (nothing to do alone)."""
        if self.distributed:
            torch.distributed.all_reduce(tensor)
        return tensor

    def all_gather(self, tensor: Tensor, dim: int = -1) -> Tensor:
        """Every rank's ``tensor`` concatenated along ``dim`` in rank order (shapes may differ
        along ``dim`` only)."""
        if not self.distributed:
            return tensor
        pieces = self.gather_objects(tensor.detach().cpu())
        return torch.cat(pieces, dim=dim).to(tensor.device)

    def gather_objects(self, obj) -> list:
        """Every rank's ``obj`` (picklable), in rank order."""
        if not self.distributed:
            return [obj]
        out = [None] * self.world_size
        torch.distributed.all_gather_object(out, obj)
        return out

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every rank."""
        if not self.distributed:
            return obj
        box = [obj if self.rank == 0 else None]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def check_same(self, values: dict) -> None:
        """Raise :class:`~l2l.errors.ConfigError` on every rank if the ranks' ``values`` (name →
        picklable value, e.g. their training settings) differ, naming what differs and where."""
        if not self.distributed:
            return
        everyone = self.gather_objects({k: pickle.dumps(v) for k, v in values.items()})
        for rank, theirs in enumerate(everyone):
            differ = [k for k in values if theirs.get(k) != everyone[0].get(k)]
            if differ:
                shown = "; ".join(f"{k}: {pickle.loads(theirs[k])!r} on rank {rank}, "
                                  f"{pickle.loads(everyone[0][k])!r} on rank 0" for k in differ)
                raise ConfigError(f"the processes disagree on {shown}; start every process "
                                  "with the same command")

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true on some rank (the same answer everywhere)."""
        if not self.distributed:
            return flag
        box = torch.tensor([float(flag)])
        torch.distributed.all_reduce(box)
        return bool(box.item() > 0)

    def provenance(self) -> dict:
        """What a run's provenance records of the processes that made it."""
        return {"world_size": self.world_size, "backend": self.backend}


#: one process, no process group
SINGLE = Group()


def setup(device: torch.device | str | None = None, backend: str | None = None) -> Group:
    """The process group of a ``torchrun`` launch (``WORLD_SIZE`` > 1), started here if it is not
    yet, or :data:`SINGLE` for a plain launch. ``backend`` (default ``$L2L_BACKEND``, else gloo
    on CPU and NCCL for CUDA) is checked before anything starts."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE
    device = torch.device(device or "cpu")
    backend = backend or os.environ.get("L2L_BACKEND") or ("nccl" if device.type == "cuda" else "gloo")
    available = {"gloo": torch.distributed.is_gloo_available(),
                 "nccl": torch.distributed.is_nccl_available(),
                 "mpi": torch.distributed.is_mpi_available()}
    if not available.get(backend, False):
        have = ", ".join(name for name, ok in available.items() if ok) or "none"
        raise ConfigError(f"backend {backend!r} is not available in this torch build "
                          f"(available: {have})")
    if not torch.distributed.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        torch.distributed.init_process_group(backend, timeout=TIMEOUT)
    return Group(torch.distributed.get_rank(), torch.distributed.get_world_size(),
                 torch.distributed.get_backend())


def teardown(group: Group) -> None:
    """End the process group that :func:`setup` started (nothing for a single process)."""
    if group.distributed and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
