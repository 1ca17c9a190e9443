"""Meta-training by truncated backpropagation through time (Section 2, Figure 2).

For each epoch a fresh batch of optimizees is sampled and optimized for ``horizon`` steps by the
learned optimizer. Every ``unroll`` steps the meta-loss (the mean of f(θ_t) over those steps and
over the batch; w_t = 1 as in the paper) is backpropagated into φ and Adam updates φ; then θ and
the optimizer state are detached, so nothing from an earlier truncation stays in the graph and
memory does not grow with the horizon.

Every ``validate_every`` epochs the optimizer is frozen and run on a fixed set of validation
optimizees; the best one so far is kept (early stopping, Section 3). Training state is written
atomically to ``OUT/last.pt`` and the best optimizer to ``OUT/best.pt``; ``resume=True`` continues
an interrupted run from ``last.pt`` and reaches the same result as an uninterrupted one.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from . import checkpoint
from .memory import retain_freed_memory
from .optimizers import LSTMOptimizer, detach_state
from .problems import Problem, make_problem
from .problems.base import Scaled
from .rollout import run, unroll
from .seeding import generator, seed_for

#: meta-objectives over an unroll's losses (see :class:`MetaConfig`)
OBJECTIVES = ("loss", "log_loss", "late_log_loss")
#: mixed into the training seed for random scaling's factors, a stream apart from the optimizees'
SCALE_STREAM = 0x5CA1ED


def meta_objective(losses: Tensor, objective: str, start: int, horizon: int) -> Tensor:
    """The meta-loss of one truncation: losses ``[unroll, B]`` of f(θ_{start+1}) … → a scalar."""
    if objective == "loss":
        return losses.mean()
    logs = losses.clamp_min(1e-12).log()
    if objective == "late_log_loss":
        steps = torch.arange(start + 1, start + 1 + losses.shape[0], device=losses.device)
        logs = logs * (steps.to(logs.dtype) / horizon).unsqueeze(1)
    return logs.mean()


@dataclass
class MetaConfig:
    """Meta-training settings (paper defaults where it gives them).

    Attributes:
        epochs: optimizees (batches of ``batch_size``) meta-trained on, each for ``horizon`` steps.
        batch_size: optimizees sampled per epoch and optimized together.
        horizon: steps per optimizee (paper: 100).
        unroll: steps per truncation, one meta-update each (paper: 20).
        meta_lr: Adam's learning rate on φ (authors' code: 1e-3).
        lr_schedule: ``"constant"`` (the paper) or ``"cosine"``: the rate decays from ``meta_lr``
            to 0 over ``epochs`` (half a cosine), which steadies long runs on noisy problems.
        clip_grad: clip the meta-gradient to this global norm (None: no clipping).
        objective: ``"loss"`` (the paper: the mean of f(θ_t) over the unroll, w_t = 1),
            ``"log_loss"`` (the mean of log f(θ_t)), which weighs progress late in the horizon,
            where losses are small, as much as early progress, or ``"late_log_loss"``: the mean
            of (t / horizon)·log f(θ_t), which also ramps the weights up along the horizon so that
            where an optimizee ends counts most (with ``unroll < horizon`` a truncation still
            sees only its own steps).
        second_order: keep ∂∇_t/∂φ instead of dropping it (paper: dropped).
        validate_every: epochs between validations (and checkpoints).
        validation_size: number of fixed validation optimizees.
        select_by: ``"meta_loss"`` (mean f over the horizon, the paper's objective) or
            ``"final_loss"`` (f at the last step) for keeping the best optimizer.
        seed: seeds φ's initialisation and the training optimizees.
        imitate: a hand-designed teacher (``"adam:0.01"``, see :func:`l2l.evaluate.make_optimizer`)
            whose steps the optimizer keeps imitating (not in the paper; :class:`~l2l.imitation.Shadowed`):
            each truncation's meta-loss gains ``imitate_weight`` × the mean relative error of
            its steps against the teacher's on the same gradients.
        imitate_weight: the weight of that term (0: no imitation).
        random_scale: R > 1 multiplies each training function by a factor drawn log-uniformly
            from [1/R, R] (random scaling, Lv et al. 2017; not in the paper; see
            :class:`~l2l.problems.base.Scaled`); 1: the functions as they are. Validation
            optimizees are never scaled.
        scale_down: draw random scaling's factors from [1/R, 1] instead, so that training only
            ever shrinks f and its gradient (for optimizers that meet functions whose gradients
            are smaller than in training, e.g. neural art at a higher resolution; not in the
            paper).
    """

    epochs: int = 1000
    batch_size: int = 1
    horizon: int = 100
    unroll: int = 20
    meta_lr: float = 1e-3
    lr_schedule: str = "constant"
    clip_grad: float | None = None
    objective: str = "loss"
    second_order: bool = False
    validate_every: int = 100
    validation_size: int = 64
    select_by: str = "meta_loss"
    seed: int = 0
    imitate: str | None = None
    imitate_weight: float = 0.0
    random_scale: float = 1.0
    scale_down: bool = False

    def __post_init__(self):
        if self.horizon < 1 or self.unroll < 1 or self.horizon % self.unroll:
            raise ValueError(f"horizon ({self.horizon}) must be a positive multiple of unroll "
                             f"({self.unroll})")
        if self.epochs < 0 or self.batch_size < 1 or self.validate_every < 1:
            raise ValueError("epochs ≥ 0, batch_size ≥ 1 and validate_every ≥ 1 are required")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, "
                             f"got {self.objective!r}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        if self.select_by not in ("meta_loss", "final_loss"):
            raise ValueError(f"select_by must be 'meta_loss' or 'final_loss', got {self.select_by!r}")
        if self.imitate_weight < 0 or (self.imitate_weight > 0) != (self.imitate is not None):
            raise ValueError("imitation during meta-training needs both a teacher (imitate) and a "
                             f"positive imitate_weight; got {self.imitate!r} and {self.imitate_weight}")
        if not self.random_scale >= 1:
            raise ValueError(f"random_scale must be ≥ 1 (1: no scaling), got {self.random_scale}")
        if self.scale_down and self.random_scale == 1:
            raise ValueError("scale_down draws random scaling's factors from [1/R, 1]: it needs "
                             "random_scale R > 1")


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


def validation_loss(problem: Problem, optimizer, optimizees, horizon: int, device=None) -> dict:
    """Frozen-optimizer figures on fixed optimizees: mean f over steps 1…T, and f at step T."""
    losses, _ = run(optimizees, optimizer, horizon, device)
    losses = losses[1:].double()
    losses = torch.where(torch.isfinite(losses), losses, torch.full_like(losses, math.inf))
    return {"meta_loss": losses.mean().item(), "final_loss": losses[-1].mean().item()}


class MetaTrainer:
    """Meta-trains an :class:`~l2l.optimizers.LSTMOptimizer` on a problem family.

    Args:
        problem: the optimizee family (a :class:`~l2l.problems.Problem` or a spec string).
        optimizer: the learned optimizer to train; by default a fresh LSTM with the problem's
            ``optimizer_defaults``, initialised from ``config.seed``.
        config: :class:`MetaConfig`; unset fields take the problem's ``training_defaults``.
        out: folder for ``last.pt``, ``best.pt``, ``log.csv`` and ``log.json`` (None: keep in memory).
        command: the command line recorded in the checkpoints' provenance.
        progress: show a tqdm progress bar.
        init: where ``optimizer``'s starting weights came from, if not a fresh initialisation
            (recorded in the provenance, with that optimizer's own provenance).
        device: where θ, the optimizer and its meta-gradients live (default CPU; e.g. ``"cuda"``).
            Checkpoints are written with CPU tensors, so they load anywhere.
        time_limit: stop after the first epoch that ends this many seconds (wall clock) into
            :meth:`train`, validating and saving first, so ``resume`` continues the run later.
    """

    def __init__(self, problem, optimizer: LSTMOptimizer | None = None, config: MetaConfig | None = None,
                 out=None, command: str | None = None, progress: bool = True, init: str | None = None,
                 device: torch.device | str | None = None, time_limit: float | None = None):
        retain_freed_memory()  # the same large tensors every truncation: no page faults
        self.problem = make_problem(problem)
        self.train_problem = self.problem.for_split("train")
        self.config = config or MetaConfig(**self.problem.training_defaults)
        if optimizer is None:
            torch.manual_seed(self.config.seed)
            optimizer = LSTMOptimizer(**self.problem.optimizer_defaults)
        self.device = torch.device(device or "cpu")
        self.time_limit = time_limit
        self.optimizer = optimizer.to(self.device)
        self.meta_optimizer = torch.optim.Adam(optimizer.parameters(), lr=self.config.meta_lr)
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
        self._validation_set = None
        self.shadowed = None
        if self.config.imitate is not None:
            from .imitation import Shadowed, make_teacher

            teacher = make_teacher(self.config.imitate, self.problem, self.config.horizon)
            self.shadowed = Shadowed(self.optimizer, teacher.to(self.device))

    # -- one epoch -----------------------------------------------------------------------------
    def meta_lr(self, epoch: int) -> float:
        """Adam's learning rate on φ during ``epoch`` (0-based)."""
        cfg = self.config
        if cfg.lr_schedule == "cosine":
            return cfg.meta_lr * 0.5 * (1 + math.cos(math.pi * epoch / max(1, cfg.epochs)))
        return cfg.meta_lr

    def train_epoch(self, epoch: int) -> float:
        """Sample a batch of optimizees and meta-train on it for one horizon; mean meta-loss."""
        cfg = self.config
        for group in self.meta_optimizer.param_groups:
            group["lr"] = self.meta_lr(epoch)
        optimizee = self.train_problem.sample(cfg.batch_size, generator(cfg.seed, "train", epoch))
        if cfg.random_scale > 1:
            optimizee = Scaled(optimizee, scale_factors(cfg.seed, epoch, cfg.batch_size,
                                                        cfg.random_scale, cfg.scale_down))
        theta = optimizee.theta0.to(self.device)
        runner = self.optimizer if self.shadowed is None else self.shadowed
        state = runner.init_state(theta, groups=optimizee.coordinate_groups())
        meta_losses = []
        for start in range(0, cfg.horizon, cfg.unroll):
            losses, theta, state = unroll(optimizee, runner, theta, state, start, cfg.unroll,
                                          second_order=cfg.second_order)
            meta_loss = meta_objective(losses, cfg.objective, start, cfg.horizon)
            if self.shadowed is not None:
                meta_loss = meta_loss + cfg.imitate_weight * torch.stack(self.shadowed.errors).mean()
                self.shadowed.errors.clear()
            self.meta_optimizer.zero_grad(set_to_none=True)
            if torch.isfinite(meta_loss):
                meta_loss.backward()
                if cfg.clip_grad:
                    torch.nn.utils.clip_grad_norm_(self.optimizer.parameters(), cfg.clip_grad)
                self.meta_optimizer.step()
            meta_losses.append(meta_loss.item())
            theta, state = theta.detach(), detach_state(state)
            if not torch.isfinite(theta).all():
                break  # the optimizee diverged: no point unrolling further on it
        return float(sum(meta_losses) / len(meta_losses))

    def validate(self) -> dict:
        """Figures of the current optimizer on the fixed validation optimizees."""
        if self._validation_set is None:
            self._validation_set = self.problem.for_split("val").sample(
                self.config.validation_size, generator(0, "val"))
        return validation_loss(self.problem, self.optimizer, self._validation_set,
                               self.config.horizon, self.device)

    # -- the loop ------------------------------------------------------------------------------
    def train(self, resume: bool = False) -> TrainingResult:
        """Run (or, with ``resume``, continue) meta-training; return the best optimizer."""
        if resume:
            self.load_training_state()
        cfg = self.config
        bar = tqdm(range(self.epoch, cfg.epochs), initial=self.epoch, total=cfg.epochs,
                   desc=f"meta-training on {self.problem.spec()}", disable=not self.progress,
                   dynamic_ncols=True)
        started = time.perf_counter()
        # the log's "seconds" count the wall time of every leg of a resumed run
        before = self.log[-1]["seconds"] if self.log else 0.0
        try:
            for epoch in bar:
                row = {"epoch": epoch + 1, "meta_loss": self.train_epoch(epoch)}
                self.epoch = epoch + 1
                out_of_time = (self.time_limit is not None
                               and time.perf_counter() - started > self.time_limit)
                validating = (self.epoch % cfg.validate_every == 0 or self.epoch == cfg.epochs
                              or out_of_time)
                if validating:
                    figures = self.validate()
                    row.update({f"val_{k}": v for k, v in figures.items()})
                    score = figures[cfg.select_by]
                    if score < self.best_validation:
                        self.best_validation, self.best_epoch = score, self.epoch
                        self.best_state = checkpoint.cpu_state(self.optimizer)
                        self.save_best()
                    bar.set_postfix(meta_loss=f"{row['meta_loss']:.4g}",
                                    val=f"{score:.4g}", best=f"{self.best_validation:.4g}")
                row["seconds"] = round(before + time.perf_counter() - started, 2)
                self.log.append(row)
                if validating:  # a resumable state after each validation
                    self.save_training_state()
                if out_of_time:
                    bar.write(f"time limit of {self.time_limit:g} s reached after epoch "
                              f"{self.epoch} of {cfg.epochs}; --resume continues the run")
                    break
        except KeyboardInterrupt:
            self.save_training_state()
            raise
        if self.best_epoch < 0:  # no validation ran (epochs == 0 or already finished)
            self.best_validation, self.best_epoch = self.validate()[cfg.select_by], self.epoch
            self.best_state = checkpoint.cpu_state(self.optimizer)
            self.save_best()
        best = copy.deepcopy(self.optimizer)
        best.load_state_dict(self.best_state)
        best.provenance = self.provenance()
        return TrainingResult(best, self.best_validation, self.best_epoch, self.log)

    # -- persistence ---------------------------------------------------------------------------
    def provenance(self) -> dict:
        return checkpoint.provenance(
            self.command, problem=self.problem.spec(), training=asdict(self.config), init=self.init,
            best_epoch=self.best_epoch,
            validation={"select_by": self.config.select_by, "best": self.best_validation,
                        "size": self.config.validation_size},
        )

    def save_best(self):
        if self.out is None:
            return
        best = copy.deepcopy(self.optimizer)
        best.load_state_dict(self.best_state)
        checkpoint.save_optimizer(best, self.out / "best.pt", self.provenance())

    def save_training_state(self):
        if self.out is None:
            return
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
        }, self.out / "last.pt")
        self.write_log()

    def write_log(self):
        keys = list(dict.fromkeys(k for row in self.log for k in row))
        lines = [",".join(keys)] + [",".join(str(row.get(k, "")) for k in keys) for row in self.log]
        checkpoint.atomic_write_text("\n".join(lines) + "\n", self.out / "log.csv")
        record = {"provenance": self.provenance(), "log": self.log}
        checkpoint.atomic_write_text(json.dumps(record, indent=1), self.out / "log.json")

    def load_training_state(self):
        """Continue from ``OUT/last.pt`` (no-op with a message if there is none)."""
        path = None if self.out is None else self.out / "last.pt"
        if path is None or not path.exists():
            raise FileNotFoundError(f"cannot resume: no training state at {path}; run without "
                                    "--resume to start a new training")
        state = torch.load(path, map_location="cpu", weights_only=False)
        if state.get("problem") != self.problem.spec():
            raise ValueError(f"{path} was trained on {state.get('problem')!r}, not "
                             f"{self.problem.spec()!r}")
        defaults = asdict(MetaConfig())  # settings added after a run was saved take their default
        saved = {k: v for k, v in {**defaults, **state["config"]}.items() if k != "epochs"}
        mine = {k: v for k, v in asdict(self.config).items() if k != "epochs"}
        if saved != mine:
            diff = {k: (saved.get(k), mine.get(k)) for k in mine if saved.get(k) != mine.get(k)}
            raise ValueError(f"{path} used different settings (saved, now): {diff}")
        self.optimizer.load_state_dict(state["optimizer"]["state_dict"])
        self.meta_optimizer.load_state_dict(state["meta_optimizer"])
        self.epoch = state["epoch"]
        self.best_validation, self.best_epoch = state["best_validation"], state["best_epoch"]
        self.best_state = state["best_state"]
        self.log = state["log"]

