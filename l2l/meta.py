"""Meta-training by truncated backpropagation through time (Section 2, Figure 2).

For each epoch a fresh batch of optimizees is sampled and optimized for ``horizon`` steps by the
learned optimizer. Every ``unroll`` steps the meta-loss (the mean of f(θ_t) over those steps and
over the batch; w_t = 1 as in the paper) is backpropagated into φ and Adam updates φ; then θ and
the optimizer state are detached, so nothing from an earlier truncation stays in the graph and
memory does not grow with the horizon.

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
from .errors import ConfigError, NonFiniteError, TrainingInterrupted, check_count, check_positive
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
#: meta-updates skipped in a row (non-finite meta-loss or meta-gradient) before training stops
MAX_SKIPPED = 5
#: the files a training writes in its folder
RUN_FILES = ("last.pt", "best.pt", "log.csv", "log.json", "imitation.json")


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
        for name in ("horizon", "unroll", "batch_size", "validate_every", "validation_size"):
            check_count(name, getattr(self, name))
        check_count("epochs", self.epochs, minimum=0)
        check_count("seed", self.seed, minimum=0)
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
        if self.imitate_weight < 0 or (self.imitate_weight > 0) != (self.imitate is not None):
            raise ConfigError("imitation during meta-training needs both a teacher (imitate) and a "
                              f"positive imitate_weight; got {self.imitate!r} and {self.imitate_weight}")
        if not self.random_scale >= 1:
            raise ConfigError(f"random_scale must be ≥ 1 (1: no scaling), got {self.random_scale}")
        if self.scale_down and self.random_scale == 1:
            raise ConfigError("scale_down draws random scaling's factors from [1/R, 1]: it needs "
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


def all_finite(state: dict) -> bool:
    """Whether every floating-point tensor of a state dict is finite."""
    return all(bool(torch.isfinite(v).all()) for v in state.values()
               if isinstance(v, Tensor) and v.is_floating_point())


class StopOnSignal:
    """Within ``with``: SIGINT and SIGTERM only set :attr:`signal`, so that the training loop can
    stop at a consistent point; a second signal raises ``KeyboardInterrupt`` at once. Outside the
    main thread (where Python cannot install handlers) it does nothing."""

    SIGNALS = tuple(s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None)) if s is not None)

    def __init__(self, notice: str = ""):
        self.signal, self.notice, self._previous = None, notice, {}

    def _handle(self, signum, frame):
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
        try:
            self.device = torch.device(device or "cpu")
        except RuntimeError:
            raise ConfigError(f"device {device!r} is not a device; use cpu, cuda, cuda:N or "
                              "mps") from None
        if time_limit is not None:
            check_positive("time_limit (seconds; None: no limit)", time_limit, inclusive=True)
        self.time_limit = time_limit
        if not getattr(optimizer, "learnable", False):
            raise ConfigError(f"MetaTrainer trains a learned optimizer such as LSTMOptimizer; "
                              f"{type(optimizer).__name__} has no weights φ to meta-train")
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
        self.skipped = 0  # meta-updates skipped in the last epoch
        self.skipped_in_a_row = 0
        self._out_of_time = False
        self._saved_epoch = None
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
        """Sample a batch of optimizees and meta-train on it for one horizon; mean meta-loss.

        A truncation whose meta-loss or meta-gradient is not finite changes nothing (counted in
        :attr:`skipped`); :data:`MAX_SKIPPED` of them in a row raise
        :class:`~l2l.errors.NonFiniteError`."""
        cfg = self.config
        self.skipped = 0
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
            applied = False
            if torch.isfinite(meta_loss):
                meta_loss.backward()
                grads = [p.grad for p in self.optimizer.parameters() if p.grad is not None]
                if all(bool(torch.isfinite(g).all()) for g in grads):
                    if cfg.clip_grad:
                        torch.nn.utils.clip_grad_norm_(self.optimizer.parameters(), cfg.clip_grad)
                    self.meta_optimizer.step()
                    applied = True
                self.meta_optimizer.zero_grad(set_to_none=True)
            if applied:
                self.skipped_in_a_row = 0
            else:
                self.skipped += 1
                self.skipped_in_a_row += 1
                if self.skipped_in_a_row >= MAX_SKIPPED:
                    raise NonFiniteError(
                        f"meta-training stopped in epoch {epoch + 1}: {self.skipped_in_a_row} "
                        "meta-updates in a row were skipped because the meta-loss or its "
                        "gradient was NaN or infinite (the optimizees diverge, or φ's steps "
                        "overflow); nothing non-finite was saved. Try a smaller meta learning "
                        "rate or output scale, or clip the meta-gradient")
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
        """Run (or, with ``resume``, continue) meta-training; return the best optimizer.

        Raises :class:`~l2l.errors.TrainingInterrupted` after saving, on SIGINT or SIGTERM (see
        the module's docstring), and :class:`~l2l.errors.NonFiniteError` when the run goes
        non-finite."""
        if self.out is not None:
            checkpoint.remove_stale_temporaries(self.out, RUN_FILES)
        if resume:
            self.load_training_state()
            self.write_log()  # a write killed between last.pt and the logs left them behind
        cfg = self.config
        bar = tqdm(range(self.epoch, cfg.epochs), initial=self.epoch, total=cfg.epochs,
                   desc=f"meta-training on {self.problem.spec()}", disable=not self.progress,
                   dynamic_ncols=True)
        started = time.perf_counter()
        # the log's "seconds" count the wall time of every leg of a resumed run
        before = self.log[-1]["seconds"] if self.log else 0.0
        notice = ("l2l: interrupted: finishing this epoch, then saving the training state "
                  "(interrupt again to stop at once)")
        try:
            with StopOnSignal(notice) as stop:
                for epoch in bar:
                    self._epoch(epoch, bar, started, before)
                    if self.epoch < cfg.epochs and (stop.signal is not None or self._out_of_time):
                        break
        except KeyboardInterrupt:  # a second signal: last.pt is as it was last saved
            saved = f"; {self.out / 'last.pt'} holds the last saved state" if self.out else ""
            raise TrainingInterrupted(f"meta-training stopped at once{saved}; "
                                      f"{self._resume_hint()}") from None
        if self.epoch < cfg.epochs and stop.signal is not None:
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
        best = copy.deepcopy(self.optimizer)
        best.load_state_dict(self.best_state)
        best.provenance = self.provenance()
        return TrainingResult(best, self.best_validation, self.best_epoch, self.log)

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
        self._out_of_time = (self.time_limit is not None
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
        )

    def save_best(self):
        if self.out is None:
            return
        if not all_finite(self.best_state):  # the checks in train() make this unreachable
            raise NonFiniteError("refusing to save non-finite weights as best.pt")
        best = copy.deepcopy(self.optimizer)
        best.load_state_dict(self.best_state)
        checkpoint.save_optimizer(best, self.out / "best.pt", self.provenance())

    def save_training_state(self):
        if self.out is None:
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
        self._saved_epoch = self.epoch
        self.write_log()

    def write_log(self):
        keys = list(dict.fromkeys(k for row in self.log for k in row))
        lines = [",".join(keys)] + [",".join(str(row.get(k, "")) for k in keys) for row in self.log]
        checkpoint.atomic_write_text("\n".join(lines) + "\n", self.out / "log.csv")
        record = {"provenance": self.provenance(), "log": self.log}
        checkpoint.atomic_write_text(json.dumps(record, indent=1), self.out / "log.json")

    def load_training_state(self):
        """Continue from ``OUT/last.pt``; a :class:`~l2l.errors.ConfigError` if there is none,
        a :class:`~l2l.checkpoint.CheckpointError` if it is damaged."""
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

