"""Roll out optimizers on fresh test optimizees, and tune the baselines' learning rates.

Test optimizees come from the ``"test"`` seed stream and tuning uses the ``"val"`` stream, so
neither overlaps with meta-training (``"train"``). Baselines are tuned as in the paper: one
learning rate per problem, chosen over a log grid (then refined around the best point) to minimise
the mean loss at the last step on validation optimizees; every other hyperparameter keeps Torch7's
default. All optimizers run through the same loop, :func:`l2l.rollout.run`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from . import checkpoint
from .optimizers import BASELINES, Optimizer
from .problems import Problem, make_problem
from .rollout import run
from .seeding import generator
from .specs import SpecError

#: the coarse learning-rate grid: 1e-4 … 10, three points per decade
DEFAULT_GRID = tuple(float(x) for x in np.logspace(-4, 1, 16))


@dataclass
class Curve:
    """Per-step losses of one optimizer over ``runs`` test optimizees.

    Attributes:
        name: display name (``lstm``, ``adam`` …).
        losses: ``[steps + 1, runs]`` tensor of f(θ_t); row 0 is the initial loss.
        lr: the learning rate used (baselines), None for learned optimizers.
        metrics: end-of-run figures of the problem (e.g. test accuracy), each ``[runs]``.
    """

    name: str
    losses: torch.Tensor
    lr: float | None = None
    metrics: dict = field(default_factory=dict)

    @property
    def mean(self) -> torch.Tensor:
        return self.losses.double().mean(dim=1)

    @property
    def std(self) -> torch.Tensor:
        return self.losses.double().std(dim=1) if self.losses.shape[1] > 1 else torch.zeros_like(self.mean)

    def since(self, step: int) -> "Curve":
        """The same curve from ``step`` on (for plots of a later window)."""
        return Curve(self.name, self.losses[step:], self.lr, self.metrics)

    def summary(self) -> dict:
        """The JSON record the CLI writes: name, lr, loss_mean, loss_std (and metrics)."""
        out = {"name": self.name, "lr": self.lr, "loss_mean": _floats(self.mean),
               "loss_std": _floats(self.std)}
        out.update({k: float(v.double().mean()) for k, v in self.metrics.items()})
        return out


def save_curves(curves: list[Curve], path) -> None:
    """Store curves (raw per-run losses included) so that a notebook can redraw them later."""
    checkpoint.atomic_save([{"name": c.name, "losses": c.losses, "lr": c.lr, "metrics": c.metrics}
                            for c in curves], path)


def load_curves(path) -> list[Curve]:
    """Read curves written by :func:`save_curves`."""
    return [Curve(**d) for d in torch.load(path, map_location="cpu", weights_only=True)]


def cached_curves(path, compute, recompute: bool = False) -> list[Curve]:
    """Curves from ``path`` if it exists (and ``recompute`` is false), else ``compute()`` saved
    there. ``path=None`` always computes and stores nothing (notebooks' quick mode)."""
    from pathlib import Path

    if path is not None and Path(path).exists() and not recompute:
        return load_curves(path)
    curves = compute()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        save_curves(curves, path)
    return curves


def _floats(t: torch.Tensor) -> list:
    return [float(x) if math.isfinite(x) else None for x in t.tolist()]


def rollout_batched(problem: Problem, optimizer: Optimizer, steps: int, runs: int, seed: int,
                    split: str = "test", batch_size: int | None = None, metrics: bool = True):
    """Run ``optimizer`` on ``runs`` optimizees in batches; losses ``[steps+1, runs]``, metrics.

    ``metrics=False`` skips the problem's end-of-run figures (tuning needs only the losses).
    """
    batch_size = batch_size or runs
    problem = problem.for_split(split)
    losses, figures = [], {}
    for index, first in enumerate(range(0, runs, batch_size)):
        n = min(batch_size, runs - first)
        optimizee = problem.sample(n, generator(seed, split, index))
        curve, theta = run(optimizee, optimizer, steps)
        losses.append(curve)
        for k, v in (optimizee.metrics(theta.detach()) if metrics else {}).items():
            figures.setdefault(k, []).append(v)
    return torch.cat(losses, dim=1), {k: torch.cat(v) for k, v in figures.items()}


def final_score(losses: torch.Tensor) -> float:
    """Mean loss at the last step, with divergence (nan/inf) scored as +inf."""
    last = losses[-1].double()
    return float(last.mean()) if torch.isfinite(last).all() else math.inf


def tune_learning_rate(problem, name: str, steps: int, runs: int = 64, grid=DEFAULT_GRID,
                       refine: int = 4, seed: int = 0, batch_size: int | None = None,
                       progress: bool = False) -> tuple[float, dict]:
    """Choose a baseline's learning rate on validation optimizees.

    Every rate on ``grid`` is tried; then ``refine`` more points are tried between the best one
    and its neighbours. Returns (best rate, {rate: score}) with score the mean final loss.
    """
    problem = make_problem(problem)
    cls = BASELINES[name]
    scores: dict[float, float] = {}

    def score(lr):
        if lr not in scores:
            losses, _ = rollout_batched(problem, cls(lr), steps, runs, seed, "val", batch_size,
                                        metrics=False)
            scores[lr] = final_score(losses)
        return scores[lr]

    for lr in tqdm(grid, desc=f"tuning {name}", disable=not progress, leave=False):
        score(lr)
    best = min(scores, key=scores.get)
    if refine and math.isfinite(scores[best]):
        ratio = grid[1] / grid[0] if len(grid) > 1 else 10.0
        for lr in np.geomspace(best / ratio, best * ratio, 2 * refine + 1):
            score(float(lr))
        best = min(scores, key=scores.get)
    return best, dict(sorted(scores.items()))


def check_spec(spec) -> str:
    """Validate an optimizer SPEC before any work is done; returns it as text."""
    text = str(spec)
    head, _, rest = text.partition(":")
    if head in BASELINES:
        if rest:
            try:
                if float(rest) <= 0:
                    raise ValueError
            except ValueError:
                raise SpecError(f"bad learning rate in {text!r}; write a positive number, "
                                f"e.g. {head}:0.01") from None
        return text
    if head in ("pretrained", "lstm") or text.endswith(".pt"):
        checkpoint.resolve(text)
        return text
    raise SpecError(f"unknown optimizer {text!r}; use pretrained:NAME, lstm:PATH, "
                    f"{', '.join(BASELINES)} or a fixed rate like adam:0.01")


def make_optimizer(spec, problem: Problem, steps: int, seed: int = 0, tune_runs: int | None = None,
                   batch_size: int | None = None, progress: bool = False):
    """Turn an optimizer SPEC into (name, optimizer, lr).

    SPEC is ``pretrained:NAME``, ``lstm:PATH`` (or a checkpoint path), a baseline name
    (``sgd``, ``rmsprop``, ``adam``, ``nag``: rate tuned on validation optimizees for ``steps``
    steps), a baseline with a fixed rate (``adam:0.01``), or an :class:`Optimizer` instance.
    """
    if isinstance(spec, Optimizer):
        return spec.name, spec, getattr(spec, "lr", None)
    text = check_spec(spec)
    head, _, rest = text.partition(":")
    if head in BASELINES:
        if rest:
            lr = float(rest)
        else:
            lr, _ = tune_learning_rate(problem, head, steps, runs=tune_runs or problem.tune_runs, seed=seed,
                                       batch_size=batch_size, progress=progress)
        return head, BASELINES[head](lr), lr
    if head in ("pretrained", "lstm") or text.endswith(".pt"):
        optimizer = checkpoint.load_optimizer(text)
        label = rest if head == "pretrained" else "lstm"
        return f"lstm ({label})" if head == "pretrained" else label, optimizer, None


def evaluate(problem, optimizers, steps: int = 100, runs: int = 100, seed: int = 0,
             tune_runs: int | None = None, batch_size: int | None = None,
             progress: bool = True) -> list[Curve]:
    """Run each optimizer on the same ``runs`` test optimizees (seed stream ``"test"``).

    ``optimizers`` is a list of SPECs (see :func:`make_optimizer`) or :class:`Optimizer` objects.
    Returns one :class:`Curve` per optimizer, in order.
    """
    problem = make_problem(problem)
    for spec in optimizers:
        if not isinstance(spec, Optimizer):
            check_spec(spec)
    curves = []
    bar = tqdm(optimizers, desc="evaluating", disable=not progress, leave=False)
    for spec in bar:
        name, optimizer, lr = make_optimizer(spec, problem, steps, seed=seed, tune_runs=tune_runs,
                                             batch_size=batch_size, progress=progress)
        bar.set_postfix(optimizer=name)
        losses, metrics = rollout_batched(problem, optimizer, steps, runs, seed, "test", batch_size)
        curves.append(Curve(name, losses, lr, metrics))
    return curves


def table(curves: list[Curve], steps=None) -> str:
    """A plain-text table of mean loss (± std) at chosen steps (default: the last)."""
    last = curves[0].losses.shape[0] - 1
    steps = list(steps) if steps else [last]
    head = f"{'optimizer':<22}{'lr':>10}" + "".join(f"{'step ' + str(s):>20}" for s in steps)
    lines = [head, "-" * len(head)]
    for c in curves:
        lr = f"{c.lr:.3g}" if c.lr is not None else "-"
        cells = "".join(f"{c.mean[s]:>11.4g} ± {c.std[s]:<6.2g}" for s in steps)
        lines.append(f"{c.name:<22}{lr:>10}{cells}")
    return "\n".join(lines)
