"""Meta-training by truncated backpropagation through time (Section 2, Figure 2).

For each epoch a fresh batch of optimizees is sampled and optimized for ``horizon`` steps by the
learned optimizer. Every ``unroll`` steps the meta-loss (the mean of f(θ_t) over those steps and
over the batch; w_t = 1 as in the paper) is backpropagated into φ and Adam updates φ; then θ and
the optimizer state are detached, so nothing from an earlier truncation stays in the graph and
memory does not grow with the horizon.

That is the paper's estimator of the meta-gradient (``estimator="tbptt"``); ``"pes"`` estimates it
instead with persistent evolution strategies (:mod:`l2l.estimators`), unbiased over the whole
horizon. The horizon can grow or vary over epochs (``horizon_schedule``), and the work can be
split over processes under torchrun (:mod:`l2l.distributed`).

Every ``validate_every`` epochs the optimizer is frozen and run on a fixed set of validation
optimizees; the best one so far is kept (early stopping, Section 3). Training state is written
atomically to ``OUT/last.pt`` and the best optimizer to ``OUT/best.pt``; ``resume=True`` continues
an interrupted run from ``last.pt`` and reaches the same result as an uninterrupted one, bit for
bit (φ, Adam's state, the random generators and the log are all in ``last.pt``).

Interrupts: SIGINT (Ctrl-C) or SIGTERM during :meth:`MetaTrainer.train` only sets a flag; the
current epoch (and its validation, if due) runs to its end, the state is saved at that epoch
boundary and :class:`~l2l.errors.TrainingInterrupted` is raised. A second signal stops at once,
leaving ``last.pt`` as it was last saved (also a consistent state). Temporary files that a killed
write left in ``OUT`` are removed when training starts.

Non-finite values: a meta-update whose meta-loss or meta-gradient is NaN or infinite is skipped
(φ and Adam's state stay as they were) and counted in the log's ``skipped`` column; after
:data:`MAX_SKIPPED` skipped updates in a row, training stops with
:class:`~l2l.errors.NonFiniteError`. Non-finite weights are never saved, and a validation result
that is not finite never becomes the best.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from . import checkpoint
from .distributed import SINGLE, Group
from .errors import (
    ConfigError,
    L2LError,
    NonFiniteError,
    TrainingInterrupted,
    check_count,
    check_positive,
)
from .estimators import PESParticles
from .objectives import OBJECTIVES, Imitation
from .optimizers import LSTMOptimizer, detach_state
from .problems import make_problem
from .problems.base import Scaled
from .rollout import run, unroll
from .seeding import generator, seed_for

#: mixed into the training seed for random scaling's factors, a stream apart from the optimizees'
SCALE_STREAM = 0x5CA1ED
#: mixed into the training seed for PES's perturbations of φ
PES_STREAM = 0x9E5
#: mixed into the training seed for random horizon lengths
HORIZON_STREAM = 0x40121
#: how the training horizon varies over epochs (see :class:`MetaConfig`)
HORIZON_SCHEDULES = ("fixed", "growing", "random")
#: meta-gradient estimators (see :class:`MetaConfig`)
ESTIMATORS = ("tbptt", "pes")
#: meta-updates skipped in a row (non-finite meta-loss or meta-gradient) before training stops
MAX_SKIPPED = 5
#: the files a training writes in its folder
RUN_FILES = ("last.pt", "best.pt", "log.csv", "log.json", "imitation.json")


def _option(default, help: str, **metadata):
    """A config field with its command-line help (``python -m l2l train --help``)."""
    return field(default=default, metadata={"help": help, **metadata})


@dataclass
class MetaConfig:
    """Meta-training settings (paper defaults where it gives them); each field is also an
    option of ``python -m l2l train`` and a key of a recipe (:mod:`l2l.recipes`).

    ``objective`` names a meta-objective of :mod:`l2l.objectives`. ``imitate`` names a
    hand-designed teacher (``"nag:0.0215"``): with ``imitate_weight`` > 0 each truncation's
    meta-loss gains that weight times the relative error of the optimizer's steps against the
    teacher's on the same gradients (Chen et al. 2020, not in the paper); the warm start of
    :class:`~l2l.imitation.WarmStart` imitates the same teacher. Random scaling
    (``random_scale`` R > 1, Lv et al. 2017, not in the paper) multiplies each training function
    by a factor drawn log-uniformly from [1/R, R], or from [1/R, 1] with ``scale_down``;
    validation optimizees are never scaled (:class:`~l2l.problems.base.Scaled`).
    """

    epochs: int = _option(1000, "batches of optimizees to meta-train on, one horizon each (0: "
                                "only validate and save, e.g. after a warm start)")
    batch_size: int = _option(1, "optimizees sampled per epoch and optimized together")
    horizon: int = _option(100, "steps per optimizee (paper: 100)")
    unroll: int = _option(20, "steps per truncation, one meta-update each (paper: 20)")
    meta_lr: float = _option(1e-3, "Adam's learning rate on φ, at most 1 (authors' code: 1e-3)")
    lr_schedule: str = _option("constant", "constant (paper) or cosine decay of the meta "
                                           "learning rate to 0 over the epochs",
                               choices=("constant", "cosine"))
    clip_grad: float | None = _option(None, "clip the meta-gradient to this global norm")
    objective: str = _option("loss", "meta-loss of a truncation, a name in l2l.objectives.OBJECTIVES: "
                                     "loss (mean f, the paper), log_loss (mean log f), "
                                     "late_log_loss (log f weighted by t / horizon)")
    second_order: bool = _option(False, "keep second derivatives ∂∇/∂φ (the paper drops them)")
    validate_every: int = _option(100, "epochs between validations (and checkpoints)")
    validation_size: int = _option(64, "fixed validation optimizees")
    select_by: str = _option("meta_loss", "keep the best optimizer by mean f over the horizon or "
                                          "by f at its last step",
                             choices=("meta_loss", "final_loss"))
    seed: int = _option(0, "seeds φ's initialisation and the training optimizees")
    imitate: str | None = _option(None, "a hand-designed teacher to imitate (adam, nag:0.0215 …; "
                                        "not in the paper, see l2l.imitation; none: no teacher, "
                                        "not even a recipe's)")
    imitate_weight: float = _option(0.0, "add this weight × the imitation error to the meta-loss "
                                         "(Chen et al. 2020; 0: don't)")
    random_scale: float = _option(1.0, "multiply each training function by a factor drawn "
                                       "log-uniformly from [1/R, R] (Lv et al. 2017; 1: none)")
    scale_down: bool = _option(False, "draw random scaling's factors from [1/R, 1] only")
    estimator: str = _option("tbptt", "meta-gradient: tbptt (truncated backpropagation, the "
                                      "paper) or pes (persistent evolution strategies, unbiased "
                                      "over the whole horizon, no backward pass; l2l.estimators)",
                             choices=ESTIMATORS)
    pes_pairs: int = _option(8, "PES: antithetic pairs of particles per epoch")
    pes_std: float = _option(0.01, "PES: standard deviation σ of the perturbations of φ")
    horizon_schedule: str = _option(
        "fixed", "training horizons: fixed, growing (from one unroll to the horizon over the "
                 "epochs, a curriculum as in Chen et al. 2020) or random (a multiple of the "
                 "unroll drawn uniformly up to the horizon, each epoch); validation always runs "
                 "the whole horizon", choices=HORIZON_SCHEDULES)
    frozen: str | None = _option(None, "parameters of φ that meta-training leaves as they are, "
                                       "by name, comma-separated (e.g. nets.conv.readout.bias)")

    def __post_init__(self):
        for name in ("horizon", "unroll", "batch_size", "validate_every", "validation_size"):
            check_count(name, getattr(self, name))
        check_count("epochs", self.epochs, minimum=0)
        check_count("seed", self.seed, minimum=0)
        if self.seed >= 2**63:  # hashed into 63-bit generator seeds (l2l.seeding)
            raise ConfigError(f"seed must be below 2^63, got {self.seed}")
        check_positive("meta_lr", self.meta_lr)
        if self.meta_lr > 1:  # Adam moves each weight by about meta_lr: more is no training
            raise ConfigError(f"meta_lr must be at most 1, got {self.meta_lr!r}")
        if self.clip_grad is not None:
            check_positive("clip_grad (None: no clipping)", self.clip_grad)
        check_positive("imitate_weight", self.imitate_weight, inclusive=True)
        check_positive("random_scale", self.random_scale, minimum=1, inclusive=True)
        if self.horizon < 1 or self.unroll < 1 or self.horizon % self.unroll:
            raise ConfigError(f"horizon ({self.horizon}) must be a positive multiple of unroll "
                              f"({self.unroll})")
        if self.epochs < 0 or self.batch_size < 1 or self.validate_every < 1:
            raise ConfigError("epochs ≥ 0, batch_size ≥ 1 and validate_every ≥ 1 are required")
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"objective must be one of {', '.join(OBJECTIVES)}, "
                              f"got {self.objective!r}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ConfigError(f"lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        if self.select_by not in ("meta_loss", "final_loss"):
            raise ConfigError(f"select_by must be 'meta_loss' or 'final_loss', got {self.select_by!r}")
        if self.imitate_weight > 0 and self.imitate is None:
            raise ConfigError("imitate_weight needs imitate, the teacher whose steps to imitate")
        if not self.random_scale >= 1:
            raise ConfigError(f"random_scale must be ≥ 1 (1: no scaling), got {self.random_scale}")
        if self.estimator not in ESTIMATORS:
            raise ConfigError(f"estimator must be one of {', '.join(ESTIMATORS)}, "
                              f"got {self.estimator!r}")
        check_count("pes_pairs", self.pes_pairs)
        check_positive("pes_std", self.pes_std)
        if self.estimator == "pes" and (self.second_order or self.imitate_weight > 0):
            raise ConfigError("estimator 'pes' differentiates nothing: second_order and the "
                              "imitation term (imitate_weight) belong to 'tbptt'")
        if self.horizon_schedule not in HORIZON_SCHEDULES:
            raise ConfigError(f"horizon_schedule must be one of {', '.join(HORIZON_SCHEDULES)}, "
                              f"got {self.horizon_schedule!r}")
        if self.scale_down and self.random_scale == 1:
            raise ConfigError("scale_down draws random scaling's factors from [1/R, 1]: it needs "
                              "random_scale R > 1")
        if self.frozen is not None:
            names = [name.strip() for name in str(self.frozen).split(",")]
            if not all(names):
                raise ConfigError(f"frozen must name parameters of φ, comma-separated, got "
                                  f"{self.frozen!r}")
            self.frozen = ",".join(names)

    def horizon_at(self, epoch: int) -> int:
        """The training horizon of ``epoch`` (0-based): a multiple of ``unroll``, at most
        ``horizon`` (see ``horizon_schedule``)."""
        truncations = self.horizon // self.unroll
        if self.horizon_schedule == "growing":
            return self.unroll * max(1, math.ceil(truncations * (epoch + 1) / max(1, self.epochs)))
        if self.horizon_schedule == "random":
            draw = torch.Generator().manual_seed(seed_for(self.seed, "train", epoch) ^ HORIZON_STREAM)
            return self.unroll * int(torch.randint(1, truncations + 1, (1,), generator=draw))
        return self.horizon

    def check_split(self, processes: int) -> None:
        """Refuse work that ``processes`` cannot split (:mod:`l2l.distributed`): the batch (or
        PES's pairs, each of which runs the whole batch) and the validation set."""
        work = ("pes_pairs" if self.estimator == "pes" else "batch_size")
        sizes = {work: getattr(self, work), "validation_size": self.validation_size}
        if min(sizes.values()) < processes:
            shown = " and ".join(f"--{k.replace('_', '-')} ({v})" for k, v in sizes.items())
            raise ConfigError(f"{processes} processes split the work: {shown} must each be at "
                              "least that")


def scale_factors(seed: int, epoch: int, batch_size: int, spread: float,
                  down: bool = False) -> Tensor:
    """Random scaling's factors for one epoch: ``[batch_size]``, log-uniform in [1/spread, spread]
    (``down``: in [1/spread, 1]).

    Drawn from a stream of their own, so the optimizees sampled are the same with or without
    scaling, and a resumed run draws the same factors."""
    draw = torch.Generator().manual_seed(seed_for(seed, "train", epoch) ^ SCALE_STREAM)
    u = torch.rand(batch_size, generator=draw, dtype=torch.float64)
    u = -u if down else 2 * u - 1
    return torch.exp(u * math.log(spread)).float()


@dataclass
class TrainingResult:
    """What :meth:`MetaTrainer.train` returns: the best optimizer and the training record."""

    optimizer: LSTMOptimizer
    best_validation: float
    best_epoch: int
    log: list = field(default_factory=list)
    #: epochs done: fewer than the config's when a time limit or a signal stopped the run
    epochs_done: int = 0


def trainable_parameters(optimizer, frozen: str | None) -> list[Tensor]:
    """φ's parameters that meta-training updates: all but those named in ``frozen``
    (comma-separated names of ``optimizer.named_parameters()``)."""
    named = dict(optimizer.named_parameters())
    names = set(frozen.split(",")) if frozen else set()
    unknown = sorted(names - set(named))
    if unknown:
        raise ConfigError(f"frozen: {type(optimizer).__name__} has no parameter "
                          f"{', '.join(unknown)}; its parameters: {', '.join(named)}")
    if names and names == set(named):
        raise ConfigError("frozen names every parameter of φ: there would be nothing to meta-train")
    return [p for name, p in named.items() if name not in names]


def validation_loss(optimizer, optimizees, horizon: int, device=None, group: Group = SINGLE,
                    total: int | None = None) -> dict:
    """Frozen-optimizer figures on fixed optimizees: mean f over steps 1…T, and f at step T.

    Split across processes, each runs its share of the ``total`` optimizees and the sums are
    reduced, so every rank gets the figures of the whole set."""
    losses, _ = run(optimizees, optimizer, horizon, device)
    losses = losses[1:].double()
    losses = torch.where(torch.isfinite(losses), losses, torch.full_like(losses, math.inf))
    if not group.distributed:
        return {"meta_loss": losses.mean().item(), "final_loss": losses[-1].mean().item()}
    sums = group.all_reduce(torch.stack([losses.sum(), losses[-1].sum()]).cpu())
    return {"meta_loss": (sums[0] / (horizon * total)).item(), "final_loss": (sums[1] / total).item()}


def _weights_digest(optimizer) -> str:
    """A digest of φ (to check that every process starts from the same weights)."""
    digest = hashlib.sha256()
    for value in optimizer.state_dict().values():
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def all_finite(state: dict) -> bool:
    """Whether every floating-point tensor of a state dict is finite."""
    return all(bool(torch.isfinite(v).all()) for v in state.values()
               if isinstance(v, Tensor) and v.is_floating_point())


def fresh_optimizer(options: dict, seed: int) -> LSTMOptimizer:
    """A new :class:`~l2l.optimizers.LSTMOptimizer` with ``options``, its weights φ drawn from
    ``seed`` (the process's random generator is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LSTMOptimizer(**options)


class StopOnSignal:
    """Within ``with``: SIGINT and SIGTERM only set :attr:`signal`, so that the training loop can
    stop at a consistent point; a second signal raises ``KeyboardInterrupt`` at once. Outside the
    main thread (where Python cannot install handlers) it does nothing."""

    SIGNALS = tuple(s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None)) if s is not None)

    def __init__(self, notice: str = ""):
        self.signal, self.notice, self._previous = None, notice, {}

    def _handle(self, signum, frame):  # noqa: ARG002 (a signal handler's signature)
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum
        if self.notice:
            tqdm.write(self.notice, file=sys.stderr)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}
        return False


class MetaTrainer:
    """Meta-trains an :class:`~l2l.optimizers.LSTMOptimizer` on a problem family.

    Constructing one changes nothing outside it. (The command line also keeps freed memory in
    the process, :func:`l2l.memory.retain_freed_memory`, which saves the page faults of
    reallocating the same large tensors every truncation; call it yourself for the same speed.)

    Args:
        problem: the optimizee family (a :class:`~l2l.problems.Problem` or a spec string).
        optimizer: the learned optimizer to train; by default a fresh LSTM with the problem's
            ``optimizer_defaults``, initialised from ``config.seed``.
        config: :class:`MetaConfig`; by default the problem's ``training_defaults`` (the last stage
            of its shipped recipe).
        out: folder for ``last.pt``, ``best.pt``, ``log.csv`` and ``log.json`` (None: keep in memory).
        command: the command line recorded in the checkpoints' provenance.
        progress: show a tqdm progress bar.
        init: where ``optimizer``'s starting weights came from, if not a fresh initialisation
            (recorded in the provenance, with that optimizer's own provenance).
        device: where θ, the optimizer and its meta-gradients live (default CPU; e.g. ``"cuda"``).
            Checkpoints are written with CPU tensors, so they load anywhere.
        time_limit: stop after the first epoch that ends this many seconds (wall clock) into
            :meth:`train`, validating and saving first, so ``resume`` continues the run later.
        group: the processes meta-training together (:mod:`l2l.distributed`): each runs its
            share of every batch and of the validation set, the meta-gradients are summed with one
            all-reduce per truncation, and only rank 0 writes files and shows progress.
    """

    def __init__(self, problem, optimizer: LSTMOptimizer | None = None, config: MetaConfig | None = None,
                 out=None, command: str | None = None, progress: bool = True, init: str | None = None,
                 device: torch.device | str | None = None, time_limit: float | None = None,
                 group: Group = SINGLE):
        self.problem = make_problem(problem)
        self.train_problem = self.problem.for_split("train")
        self.config = config or MetaConfig(**self.problem.training_defaults)
        if optimizer is None:
            optimizer = fresh_optimizer(self.problem.optimizer_defaults, self.config.seed)
        try:
            self.device = torch.device(device or "cpu")
        except RuntimeError:
            raise ConfigError(f"device {device!r} is not a device; use cpu, cuda, cuda:N or "
                              "mps") from None
        if time_limit is not None:
            check_positive("time_limit (seconds; None: no limit)", time_limit, inclusive=True)
        self.time_limit = time_limit
        self.group = group
        self.config.check_split(group.world_size)
        if not getattr(optimizer, "learnable", False):
            raise ConfigError(f"MetaTrainer trains a learned optimizer such as LSTMOptimizer; "
                              f"{type(optimizer).__name__} has no weights φ to meta-train")
        self.optimizer = optimizer.to(self.device)
        self.trainable = trainable_parameters(self.optimizer, self.config.frozen)
        self.meta_optimizer = torch.optim.Adam(self.trainable, lr=self.config.meta_lr)
        self.out = Path(out) if out is not None else None
        self.command = command
        self.init = None if init is None else {"from": str(init),
                                                "provenance": getattr(optimizer, "provenance", {})}
        self.progress = progress
        self.epoch = 0
        self.best_validation = math.inf
        self.best_epoch = -1
        self.best_state = checkpoint.cpu_state(optimizer)
        self.log: list[dict] = []
        self.skipped = 0  # meta-updates skipped in the last epoch
        self.skipped_in_a_row = 0
        self._out_of_time = False
        self._saved_epoch = None
        self._validation_set = None
        self.imitation = None
        if self.config.imitate_weight > 0:
            from .imitation import make_teacher

            teacher = make_teacher(self.config.imitate, self.problem, self.config.horizon)
            self.imitation = Imitation(teacher.to(self.device), self.config.imitate_weight)

    # -- one epoch -----------------------------------------------------------------------------
    def meta_lr(self, epoch: int) -> float:
        """Adam's learning rate on φ during ``epoch`` (0-based)."""
        cfg = self.config
        if cfg.lr_schedule == "cosine":
            return cfg.meta_lr * 0.5 * (1 + math.cos(math.pi * epoch / max(1, cfg.epochs)))
        return cfg.meta_lr

    def train_epoch(self, epoch: int) -> float:
        """Sample a batch of optimizees and meta-train on it for one horizon; mean meta-loss.

        A truncation whose meta-loss or meta-gradient is not finite changes nothing (counted in
        :attr:`skipped`); :data:`MAX_SKIPPED` of them in a row raise
        :class:`~l2l.errors.NonFiniteError`."""
        cfg = self.config
        self.skipped = 0
        for group in self.meta_optimizer.param_groups:
            group["lr"] = self.meta_lr(epoch)
        optimizee = self._sample(epoch)
        if cfg.estimator == "pes":
            return self._pes_epoch(epoch, optimizee)
        share = self.group.share(cfg.batch_size)
        if self.group.distributed:
            optimizee = optimizee.select(share)
        weight = (share.stop - share.start) / cfg.batch_size  # of this share in the batch's mean
        theta = optimizee.theta0.to(self.device)
        groups = optimizee.coordinate_groups()
        state = self.optimizer.init_state(theta, groups=groups)
        objective = OBJECTIVES[cfg.objective]
        record = objective.needs
        if self.imitation is not None:
            self.imitation.start(theta, groups)
            record = record | self.imitation.needs
        meta_losses = []
        for start in range(0, cfg.horizon_at(epoch), cfg.unroll):
            trajectory = unroll(optimizee, self.optimizer, theta, state, start, cfg.unroll,
                                second_order=cfg.second_order, record=record)
            meta_loss = objective(trajectory, cfg.horizon)
            if self.imitation is not None:
                meta_loss = meta_loss + self.imitation(trajectory)
            if self.group.distributed:
                applied, value, diverged = self._reduced_update(meta_loss * weight,
                                                                trajectory.theta)
            else:
                applied, value = self._update(meta_loss), meta_loss.item()
                diverged = not torch.isfinite(trajectory.theta).all()
            self._count(applied, epoch)
            meta_losses.append(value)
            theta, state = trajectory.theta.detach(), detach_state(trajectory.state)
            if diverged:
                break  # an optimizee diverged: no point unrolling further on it
        return float(sum(meta_losses) / len(meta_losses))

    def _sample(self, epoch: int):
        """The epoch's batch of training optimizees (randomly scaled if configured)."""
        cfg = self.config
        optimizee = self.train_problem.sample(cfg.batch_size, generator(cfg.seed, "train", epoch))
        if cfg.random_scale > 1:
            optimizee = Scaled(optimizee, scale_factors(cfg.seed, epoch, cfg.batch_size,
                                                        cfg.random_scale, cfg.scale_down))
        return optimizee

    def _pes_epoch(self, epoch: int, optimizee) -> float:
        """One horizon of PES (:mod:`l2l.estimators`): every truncation, each pair of particles
        runs with fresh antithetic perturbations of φ, and the estimate (summed over the
        processes' pairs with one all-reduce) is Adam's gradient."""
        cfg = self.config
        params = list(self.optimizer.parameters())
        dim = sum(p.numel() for p in params)
        trainable = {id(p) for p in self.trainable}  # frozen coordinates are never perturbed
        mask = torch.cat([torch.full((p.numel(),), float(id(p) in trainable)) for p in params])
        share = self.group.share(cfg.pes_pairs)
        particles = PESParticles(self.optimizer, optimizee, share.stop - share.start, cfg.pes_std,
                                 device=self.device)
        draw = torch.Generator().manual_seed(seed_for(cfg.seed, "train", epoch) ^ PES_STREAM)
        objective = OBJECTIVES[cfg.objective]
        meta_losses = []
        for start in range(0, cfg.horizon_at(epoch), cfg.unroll):
            noise = torch.randn(cfg.pes_pairs, dim, generator=draw) * (cfg.pes_std * mask)
            terms, losses, diverged = particles.step(
                start, cfg.unroll, noise[share].to(self.device),
                lambda path: objective(path, cfg.horizon))
            flat = torch.cat([terms.sum(0).double().cpu(),
                              torch.tensor([losses.sum().item(), float(diverged)],
                                           dtype=torch.float64)])
            self.group.all_reduce(flat)
            estimate, value = flat[:dim] / cfg.pes_pairs, (flat[dim] / (2 * cfg.pes_pairs)).item()
            diverged = flat[dim + 1].item() > 0
            applied = bool(torch.isfinite(estimate).all()) and math.isfinite(value)
            if applied:
                offset = 0
                for p in params:
                    p.grad = estimate[offset:offset + p.numel()].view_as(p).to(p)
                    offset += p.numel()
                if cfg.clip_grad:
                    torch.nn.utils.clip_grad_norm_(self.trainable, cfg.clip_grad)
                self.meta_optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
            self._count(applied, epoch)
            meta_losses.append(value)
            if diverged:
                break
        return float(sum(meta_losses) / len(meta_losses))

    def _count(self, applied: bool, epoch: int) -> None:
        """Count a skipped meta-update; stop after :data:`MAX_SKIPPED` in a row."""
        if applied:
            self.skipped_in_a_row = 0
            return
        self.skipped += 1
        self.skipped_in_a_row += 1
        if self.skipped_in_a_row >= MAX_SKIPPED:
            raise NonFiniteError(
                f"meta-training stopped in epoch {epoch + 1}: {self.skipped_in_a_row} "
                "meta-updates in a row were skipped because the meta-loss or its "
                "gradient was NaN or infinite (the optimizees diverge, or φ's steps "
                "overflow); nothing non-finite was saved. Try a smaller meta learning "
                "rate or output scale, or clip the meta-gradient")

    def _update(self, meta_loss: Tensor) -> bool:
        """One meta-update of φ from this process's meta-loss; whether it was applied (not when
        the meta-loss or its gradient is not finite)."""
        cfg = self.config
        self.meta_optimizer.zero_grad(set_to_none=True)
        applied = False
        if torch.isfinite(meta_loss):
            meta_loss.backward()
            grads = [p.grad for p in self.trainable if p.grad is not None]
            if all(bool(torch.isfinite(g).all()) for g in grads):
                if cfg.clip_grad:
                    torch.nn.utils.clip_grad_norm_(self.trainable, cfg.clip_grad)
                self.meta_optimizer.step()
                applied = True
            self.optimizer.zero_grad(set_to_none=True)  # φ's frozen parameters too
        return applied

    def _reduced_update(self, meta_loss: Tensor, theta: Tensor) -> tuple[bool, float, bool]:
        """The meta-update of a process group: this share's weighted meta-loss is differentiated
        here, and one all-reduce sums the gradients, the meta-loss, which parameters have a
        gradient, and whether any share's meta-loss is not finite or its optimizees diverged;
        every process then takes the same decision and the same step. Returns (applied, the
        batch's meta-loss, diverged)."""
        cfg = self.config
        params = self.trainable
        self.meta_optimizer.zero_grad(set_to_none=True)
        finite = bool(torch.isfinite(meta_loss))
        if finite:
            meta_loss.backward()
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flags = [float(p.grad is not None) for p in params]
        flags += [float(not finite), float(not torch.isfinite(theta).all())]
        value = meta_loss.detach().reshape(1).to(params[0].dtype)
        flat = torch.cat([g.reshape(-1) for g in grads] + [value, value.new_tensor(flags)])
        self.group.all_reduce(flat)
        sizes = [p.numel() for p in params]
        summed = flat[:sum(sizes)].split(sizes)
        tail = flat[sum(sizes):]
        has_grad, bad, diverged = tail[1:1 + len(params)], tail[-2].item(), tail[-1].item() > 0
        applied = bad == 0 and bool(torch.isfinite(flat[:sum(sizes)]).all())
        if applied:
            for p, g, has in zip(params, summed, has_grad.tolist()):
                p.grad = g.view_as(p).clone() if has > 0 else None
            if cfg.clip_grad:
                torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad)
            self.meta_optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return applied, tail[0].item(), diverged

    def validate(self) -> dict:
        """Figures of the current optimizer on the fixed validation optimizees."""
        size = self.config.validation_size
        if self._validation_set is None:
            optimizees = self.problem.for_split("val").sample(size, generator(0, "val"))
            if self.group.distributed:
                optimizees = optimizees.select(self.group.share(size))
            self._validation_set = optimizees
        return validation_loss(self.optimizer, self._validation_set, self.config.horizon,
                               self.device, self.group, size)

    # -- the loop ------------------------------------------------------------------------------
    def train(self, resume: bool = False) -> TrainingResult:
        """Run (or, with ``resume``, continue) meta-training; return the best optimizer.

        Raises :class:`~l2l.errors.TrainingInterrupted` after saving, on SIGINT or SIGTERM (see
        the module's docstring), and :class:`~l2l.errors.NonFiniteError` when the run goes
        non-finite."""
        self.group.check_same({"problem": self.problem.spec(), **asdict(self.config),
                               "optimizer": self.optimizer.config(),
                               "starting weights": _weights_digest(self.optimizer),
                               "resume": resume})
        if self.writes:
            checkpoint.remove_stale_temporaries(self.out, RUN_FILES)
        if resume:
            self.load_training_state()
            self.write_log()  # a write killed between last.pt and the logs left them behind
        cfg = self.config
        bar = tqdm(range(self.epoch, cfg.epochs), initial=self.epoch, total=cfg.epochs,
                   desc=f"meta-training on {self.problem.spec()}",
                   disable=not (self.progress and self.group.writes),
                   dynamic_ncols=True)
        started = time.perf_counter()
        # the log's "seconds" count the wall time of every leg of a resumed run
        before = self.log[-1]["seconds"] if self.log else 0.0
        notice = ("l2l: interrupted: finishing this epoch, then saving the training state "
                  "(interrupt again to stop at once)")
        stopping = False
        try:
            with StopOnSignal(notice) as stop:
                for epoch in bar:
                    self._epoch(epoch, bar, started, before)
                    stopping = self.group.any(stop.signal is not None)  # every process stops
                    if self.epoch < cfg.epochs and (stopping or self._out_of_time):
                        break
        except KeyboardInterrupt:  # a second signal: last.pt is as it was last saved
            saved = f"; {self.out / 'last.pt'} holds the last saved state" if self.out else ""
            raise TrainingInterrupted(f"meta-training stopped at once{saved}; "
                                      f"{self._resume_hint()}") from None
        if self.epoch < cfg.epochs and stopping:
            if self._saved_epoch != self.epoch:  # a validated epoch is saved already
                self.save_training_state()
            where = (f"the training state is saved in {self.out / 'last.pt'}; {self._resume_hint()}"
                     if self.out else "nothing was saved (no output folder)")
            raise TrainingInterrupted(f"interrupted after epoch {self.epoch} of {cfg.epochs}; "
                                      f"{where}")
        if self.best_epoch < 0:  # no validation ran (epochs == 0 or already finished)
            score = self.validate()[cfg.select_by]
            if not math.isfinite(score):
                raise NonFiniteError(f"the optimizer's validation {cfg.select_by} is {score}: "
                                     "it diverges on the validation optimizees; no best.pt "
                                     "written")
            self.best_validation, self.best_epoch = score, self.epoch
            self.best_state = checkpoint.cpu_state(self.optimizer)
            self.save_best()
            self.save_training_state()  # so that resume finds the run finished
        best = copy.deepcopy(self.optimizer)
        best.load_state_dict(self.best_state)
        best.provenance = self.provenance()
        return TrainingResult(best, self.best_validation, self.best_epoch, self.log, self.epoch)

    def _resume_hint(self) -> str:
        """How to continue: the command line's way if it started this training."""
        if self.command and self.command.startswith("python -m l2l train"):
            return "rerun the same command with --resume to continue"
        return "MetaTrainer.train(resume=True) with the same settings continues it"

    def _epoch(self, epoch: int, bar, started: float, before: float) -> None:
        """One epoch of :meth:`train`: meta-train, validate if due, log, save if validated."""
        cfg = self.config
        row = {"epoch": epoch + 1, "meta_loss": self.train_epoch(epoch), "skipped": self.skipped}
        self.epoch = epoch + 1
        if not all_finite(self.optimizer.state_dict()):
            raise NonFiniteError(f"φ is not finite after epoch {self.epoch} (the meta-updates "
                                 "overflowed); nothing non-finite was saved. Try a smaller meta "
                                 "learning rate, or clip the meta-gradient")
        self._out_of_time = self.group.any(self.time_limit is not None
                                           and time.perf_counter() - started > self.time_limit)
        validating = (self.epoch % cfg.validate_every == 0 or self.epoch == cfg.epochs
                      or self._out_of_time)
        if validating:
            figures = self.validate()
            row.update({f"val_{k}": v for k, v in figures.items()})
            score = figures[cfg.select_by]
            if score < self.best_validation:  # never true for NaN or infinity
                self.best_validation, self.best_epoch = score, self.epoch
                self.best_state = checkpoint.cpu_state(self.optimizer)
                self.save_best()
            bar.set_postfix(meta_loss=f"{row['meta_loss']:.4g}",
                            val=f"{score:.4g}", best=f"{self.best_validation:.4g}")
        row["seconds"] = round(before + time.perf_counter() - started, 2)
        self.log.append(row)
        if validating:  # a resumable state after each validation
            self.save_training_state()
        if self._out_of_time and self.epoch < cfg.epochs:
            bar.write(f"time limit of {self.time_limit:g} s reached after epoch "
                      f"{self.epoch} of {cfg.epochs}; --resume continues the run")

    # -- persistence ---------------------------------------------------------------------------
    def provenance(self) -> dict:
        return checkpoint.provenance(
            self.command, problem=self.problem.spec(), training=asdict(self.config), init=self.init,
            best_epoch=self.best_epoch,
            validation={"select_by": self.config.select_by, "best": self.best_validation,
                        "size": self.config.validation_size},
            **self.group.provenance(),
        )

    @property
    def writes(self) -> bool:
        """Whether this process writes the run's files (an output folder, and rank 0)."""
        return self.out is not None and self.group.writes

    def save_best(self):
        if not self.writes:
            return
        if not all_finite(self.best_state):  # the checks in train() make this unreachable
            raise NonFiniteError("refusing to save non-finite weights as best.pt")
        best = copy.deepcopy(self.optimizer)
        best.load_state_dict(self.best_state)
        checkpoint.save_optimizer(best, self.out / "best.pt", self.provenance())

    def save_training_state(self):
        self._saved_epoch = self.epoch
        if not self.writes:
            return
        if not all_finite(self.optimizer.state_dict()):  # unreachable through train()
            raise NonFiniteError("refusing to save non-finite weights in last.pt")
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        checkpoint.atomic_save({
            "format": "l2l-training/1",
            "problem": self.problem.spec(),
            "config": asdict(self.config),
            "optimizer": checkpoint.optimizer_record(self.optimizer),
            "meta_optimizer": self.meta_optimizer.state_dict(),
            "epoch": self.epoch,
            "best_validation": self.best_validation,
            "best_epoch": self.best_epoch,
            "best_state": self.best_state,
            "log": self.log,
            "skipped_in_a_row": self.skipped_in_a_row,
            "rng": rng,
        }, self.out / "last.pt")
        self.write_log()

    def write_log(self):
        if not self.writes:
            return
        keys = list(dict.fromkeys(k for row in self.log for k in row))
        lines = [",".join(keys)] + [",".join(str(row.get(k, "")) for k in keys) for row in self.log]
        checkpoint.atomic_write_text("\n".join(lines) + "\n", self.out / "log.csv")
        record = {"provenance": self.provenance(), "log": self.log}
        checkpoint.atomic_write_text(json.dumps(record, indent=1), self.out / "log.json")

    def load_training_state(self):
        """Continue from ``OUT/last.pt``; a :class:`~l2l.errors.ConfigError` if there is none,
        a :class:`~l2l.checkpoint.CheckpointError` if it is damaged. In a process group rank 0
        reads it and sends it to the others (whatever number of processes saved it)."""
        if self.group.distributed:
            read = None
            if self.group.writes:
                try:
                    read = ("state", self._read_training_state())
                except L2LError as error:
                    read = ("error", error)
            kind, state = self.group.broadcast(read)
            if kind == "error":
                raise state
        else:
            state = self._read_training_state()
        self.optimizer.load_state_dict(state["optimizer"]["state_dict"])
        self.meta_optimizer.load_state_dict(state["meta_optimizer"])
        self.epoch = state["epoch"]
        self.best_validation, self.best_epoch = state["best_validation"], state["best_epoch"]
        self.best_state = state["best_state"]
        self.log = state["log"]
        self.skipped_in_a_row = state.get("skipped_in_a_row", 0)
        self._saved_epoch = self.epoch
        rng = state.get("rng", {})  # absent from states saved before it was recorded
        if "torch" in rng:
            torch.set_rng_state(rng["torch"])
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)

    def _read_training_state(self) -> dict:
        """``OUT/last.pt``, checked against this run's problem and settings."""
        path = None if self.out is None else self.out / "last.pt"
        if path is None or not path.exists():
            raise ConfigError(f"cannot resume: no training state at {path}; run without "
                              "--resume to start a new training")
        fix = "restore it, or start over with --force (or another --out)"
        state = checkpoint.read(path, "training state", weights_only=False, fix=fix)
        if not isinstance(state, dict) or state.get("format") != "l2l-training/1":
            raise checkpoint.CheckpointError(f"{path} is not an l2l training state; {fix}")
        if state.get("problem") != self.problem.spec():
            raise ConfigError(f"{path} was trained on {state.get('problem')!r}, not "
                              f"{self.problem.spec()!r}")
        defaults = asdict(MetaConfig())  # settings added after a run was saved take their default
        saved = {k: v for k, v in {**defaults, **state["config"]}.items() if k != "epochs"}
        mine = {k: v for k, v in asdict(self.config).items() if k != "epochs"}
        if saved != mine:
            diff = {k: (saved.get(k), mine.get(k)) for k in mine if saved.get(k) != mine.get(k)}
            raise ConfigError(f"{path} used different settings (saved, now): {diff}")
        return state

