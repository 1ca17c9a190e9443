"""Roll out optimizers on fresh test optimizees, and tune the baselines' learning rates.

Test optimizees come from the ``"test"`` seed stream and tuning uses the ``"val"`` stream, so
neither overlaps with meta-training (``"train"``). Baselines are tuned as in the paper: one
learning rate per problem, chosen over a log grid (then refined around the best point) to minimise
the mean loss at the last step on validation optimizees; every other hyperparameter keeps Torch7's
default. All optimizers run through the same loop, :func:`l2l.rollout.run`. How much tuning each
problem family gets (:class:`Tuning`) is in :data:`TUNING`.

Under ``torchrun`` (a :class:`~l2l.distributed.Group` of several processes) each process runs its
share of the test optimizees and of the rates being tuned, and every process ends up with all the
results, the same ones a single process gets (up to float rounding of batched operations).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from . import checkpoint, tuned
from .distributed import SINGLE, Group
from .errors import check_count
from .optimizers import BASELINES, Optimizer
from .problems import Problem, make_problem
from .rollout import run
from .seeding import generator
from .specs import SpecError

#: the coarse learning-rate grid: 1e-4 … 10, three points per decade (families may choose another)
DEFAULT_GRID = tuple(float(x) for x in np.logspace(-4, 1, 16))

#: first index of the training-stream optimizees that :func:`stable_choice` checks rates on
CHECK_INDEX = 10**9


@dataclass(frozen=True)
class Tuning:
    """How a baseline's learning rate is tuned on a problem family.

    Attributes:
        runs: validation optimizees per rate (enough that the chosen rate does not diverge on the
            test optimizees; cheap problems can afford many).
        batch: functions per rollout when rates run side by side (rates × optimizees; see
            :func:`score_rates`): as many as fit comfortably in memory.
        grid: the coarse grid of rates, and ``refine``: the refinement points on each side of its
            best rate (:func:`tune_learning_rate`).
        check_runs: training optimizees on which the chosen rate must stay finite (0: no check),
            at ``margin`` times the rate (a margin of stability), for ``check_steps`` steps (None:
            all); see :func:`stable_choice`.
    """

    runs: int = 64
    batch: int = 4096
    grid: tuple[float, ...] = DEFAULT_GRID
    refine: int = 4
    check_runs: int = 0
    margin: float = 1.0
    check_steps: int | None = None


#: each family's tuning, by problem name, where it is not :class:`Tuning`'s default
TUNING = {
    # the largest stable rate differs a lot between random W; tuning on 64 functions chose
    # rates for SGD and NAG that diverged on a few of 200 test functions
    "quadratic": Tuning(runs=1024),
    "mnist": Tuning(runs=32, batch=512),
    # a 1000-step convnet run is costly: 6 networks per rate, and rates a decade apart, then 4
    # new points at a third of a decade around the best (10 rates per baseline instead of 25)
    "cifar10": Tuning(runs=6, batch=64, grid=(1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0), refine=3),
    # all 20 validation crops. They are all tame (initial loss at most 3.4) while about 4% of
    # training and 8% of test crops start above 15, with far larger gradients; the chosen rate
    # must also stay finite on 64 training crops at twice its value over the first 32 steps,
    # where a too-large rate blows up: a rate at the very edge of stability on training crops
    # still diverged on a test crop
    "neural_art": Tuning(runs=20, batch=32, check_runs=64, margin=2.0, check_steps=32),
}


def tuning_for(problem: str | Problem) -> Tuning:
    """The :class:`Tuning` of a problem's family (:data:`TUNING`, else the defaults)."""
    return TUNING.get(make_problem(problem).name, Tuning())


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

    def since(self, step: int) -> Curve:
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


def _floats(t: torch.Tensor) -> list:
    return [float(x) if math.isfinite(x) else None for x in t.tolist()]


def rollout_batched(problem: Problem, optimizer: Optimizer, steps: int, runs: int, seed: int,
                    split: str = "test", batch_size: int | None = None, metrics: bool = True,
                    device=None, group: Group = SINGLE):
    """Run ``optimizer`` on ``runs`` optimizees in batches; losses ``[steps+1, runs]``, metrics.

    ``metrics=False`` skips the problem's end-of-run figures (tuning needs only the losses).
    ``device``: where the rollouts run (default CPU); the optimizer is moved there, the results
    come back on the CPU. ``group``: the processes that share the runs; each samples the batches
    that hold its share (:meth:`~l2l.distributed.Group.share`) whole, runs its rows of them, and
    every process returns every run's results, in order.
    """
    batch_size = batch_size or runs
    problem = problem.for_split(split)
    if device is not None and isinstance(optimizer, torch.nn.Module):
        optimizer = optimizer.to(device)
    mine = group.share(runs)
    losses, figures = [], {}
    for index, first in enumerate(range(0, runs, batch_size)):
        n = min(batch_size, runs - first)
        rows = slice(max(mine.start, first) - first, min(mine.stop, first + n) - first)
        if rows.start >= rows.stop:  # none of this process's runs in this batch
            continue
        optimizee = problem.sample(n, generator(seed, split, index))
        if group.distributed:
            optimizee = optimizee.select(rows)
        curve, theta = run(optimizee, optimizer, steps, device)
        losses.append(curve.cpu())
        for k, v in (optimizee.metrics(theta.detach()) if metrics else {}).items():
            figures.setdefault(k, []).append(v.cpu())
    if group.distributed:
        return _gather_runs(group, losses, figures)
    return torch.cat(losses, dim=1), {k: torch.cat(v) for k, v in figures.items()}


def _gather_runs(group: Group, losses: list, figures: dict):
    """Every process's runs (losses and figures, each a list of batches) joined in rank order:
    the shares are contiguous, so that is the order of the runs."""
    pieces = group.gather_objects((losses, figures))
    names = dict.fromkeys(k for _, theirs in pieces for k in theirs)
    return (torch.cat([c for theirs, _ in pieces for c in theirs], dim=1),
            {k: torch.cat([v for _, theirs in pieces for v in theirs.get(k, [])]) for k in names})


def final_score(losses: torch.Tensor) -> float:
    """Mean loss at the last step, with divergence (nan/inf) scored as +inf."""
    last = losses[-1].double()
    return float(last.mean()) if torch.isfinite(last).all() else math.inf


def score_rates(problem: Problem, name: str, rates, steps: int, runs: int, seed: int = 0,
                batch_size: int | None = None, device=None,
                tuning: Tuning | None = None, group: Group = SINGLE) -> dict[float, float]:
    """Mean final loss (:func:`final_score`) of baseline ``name`` at each rate, on the ``runs``
    validation optimizees of ``seed``.

    All rates run on the same optimizees in one batched rollout per batch of optimizees (the
    optimizee repeated once per rate, a rate per copy) where the optimizee supports
    :meth:`~l2l.problems.Optimizee.repeat`, at most ``tuning.batch`` functions (rates ×
    optimizees) per rollout (default: the family's, :func:`tuning_for`); otherwise each rate is a
    rollout of its own. ``group``: the processes that share these rollouts (each runs its share
    of them, the same rollouts one process runs); every process returns every rate's score.
    """
    rates = [float(r) for r in rates]
    functions = (tuning or tuning_for(problem)).batch
    problem_val = problem.for_split("val")
    batch_size = batch_size or runs
    cls = BASELINES[name]
    # the rollouts, in order: (batch of optimizees, its size, first rate, rates run together)
    rollouts, batches = [], 0
    for index, first in enumerate(range(0, runs, batch_size)):
        n = min(batch_size, runs - first)
        per_rollout = max(1, functions // n)
        rollouts += [(index, n, c, rates[c:c + per_rollout])
                     for c in range(0, len(rates), per_rollout)]
        batches = index + 1
    last = {}  # (batch, position in rates) → the final losses
    optimizee, sampled = None, None
    for index, n, c, chunk in rollouts[group.share(len(rollouts))]:
        if sampled != index:
            optimizee, sampled = problem_val.sample(n, generator(seed, "val", index)), index
        try:
            copies = optimizee.repeat(len(chunk)) if len(chunk) > 1 else optimizee
        except NotImplementedError:
            copies = None
        if copies is None:  # one rollout per rate
            for j, r in enumerate(chunk):
                losses, _ = run(optimizee, cls(r), steps, device)
                last[index, c + j] = losses[-1].cpu()
            continue
        lr = torch.tensor(chunk, device=device).repeat_interleave(n)
        losses, _ = run(copies, cls(lr), steps, device)
        for j in range(len(chunk)):
            last[index, c + j] = losses[-1, j * n:(j + 1) * n].cpu()
    if group.distributed:
        last = {key: v for theirs in group.gather_objects(last) for key, v in theirs.items()}
    per_rate = {r: [] for r in rates}
    for index in range(batches):
        for position, r in enumerate(rates):
            per_rate[r].append(last[index, position])
    return {r: final_score(torch.cat(v)[None]) for r, v in per_rate.items()}


def tune_learning_rate(problem, name: str, steps: int, runs: int = 64, grid=None,
                       refine: int | None = None, seed: int = 0, batch_size: int | None = None,
                       progress: bool = False, device=None, tuning: Tuning | None = None,
                       group: Group = SINGLE) -> tuple[float, dict]:
    """Choose a baseline's learning rate on validation optimizees.

    Every rate on ``grid`` is tried; then ``2·refine + 1`` points spaced evenly in log between the
    best one's neighbours (fewer where they are already scored); then, if ``tuning.check_runs``,
    the best rate that passes :func:`stable_choice`. ``tuning`` defaults to the family's
    (:func:`tuning_for`), and ``grid`` and ``refine`` to its ``grid`` and ``refine``. Returns
    (best rate, {rate: score}) with score the mean final loss. ``group``: the processes that share
    the rates of each phase (:func:`score_rates`, :func:`stable_choice`); all choose the same rate.
    """
    problem = make_problem(problem)
    check_count("steps", steps)
    check_count("runs", runs)
    tuning = tuning or tuning_for(problem)
    grid = tuple(tuning.grid if grid is None else grid)
    refine = tuning.refine if refine is None else refine
    scores: dict[float, float] = {}
    with tqdm(total=len(grid) + (2 * refine + 1 if refine else 0), desc=f"tuning {name}",
              disable=not (progress and group.writes), leave=False) as bar:
        scores.update(score_rates(problem, name, grid, steps, runs, seed, batch_size, device,
                                  tuning, group))
        bar.update(len(grid))
        best = min(scores, key=scores.get)
        if refine and math.isfinite(scores[best]):
            ratio = grid[1] / grid[0] if len(grid) > 1 else 10.0
            finer = [float(r) for r in np.geomspace(best / ratio, best * ratio, 2 * refine + 1)]
            todo = [r for r in finer if not any(math.isclose(r, q, rel_tol=1e-9) for q in scores)]
            scores.update(score_rates(problem, name, todo, steps, runs, seed, batch_size, device,
                                      tuning, group))
            bar.update(2 * refine + 1)
            best = min(scores, key=scores.get)
    if tuning.check_runs:
        best = stable_choice(problem, name, scores, steps, seed, batch_size, device, tuning,
                             group)
    return best, dict(sorted(scores.items()))


def stable_choice(problem: Problem, name: str, scores: dict, steps: int, seed: int = 0,
                  batch_size: int | None = None, device=None,
                  tuning: Tuning | None = None, group: Group = SINGLE) -> float:
    """The best-scoring rate r such that ``tuning.margin``·r still stays finite on
    ``tuning.check_runs`` training optimizees for ``tuning.check_steps`` steps (default all
    ``steps``); rates are tried best first. ``tuning`` defaults to the family's (:func:`tuning_for`).

    A few validation optimizees may all be easy where the test distribution holds hard ones (on
    neural art, a bright high-contrast crop has gradients 25 times larger than any validation
    crop's, and SGD at its validation-best rate diverges there). Asking a margin of stability on
    many training optimizees, which are not test data, keeps the selection honest and the
    baseline stable. Raises ``RuntimeError`` if no scored rate passes.

    ``group``: the processes that check rates side by side, the next ``world_size`` best rates
    at a time (one each); all return the best of them that passes.
    """
    tuning = tuning or tuning_for(problem)
    train = problem.for_split("train")
    n = tuning.check_runs
    check_steps = min(steps, tuning.check_steps or steps)
    batch_size = batch_size or n

    def stable(lr: float) -> bool:
        for index, first in enumerate(range(0, n, batch_size)):
            # training stream, indices far above any meta-training epoch's
            g = generator(seed, "train", CHECK_INDEX + index)
            optimizee = train.sample(min(batch_size, n - first), g)
            losses, _ = run(optimizee, BASELINES[name](lr * tuning.margin), check_steps,
                            device, stop_on_divergence=True)
            if not torch.isfinite(losses).all():
                return False
        return True

    candidates = sorted((r for r in scores if math.isfinite(scores[r])), key=scores.get)
    for start in range(0, len(candidates), group.world_size):
        batch = candidates[start:start + group.world_size]
        passed = group.gather_objects(group.rank < len(batch) and stable(batch[group.rank]))
        for lr, ok in zip(batch, passed):
            if ok:
                return lr
    raise RuntimeError(f"{name}: every tuned rate diverged on some of {n} training optimizees")


def check_spec(spec) -> str:
    """Validate an optimizer SPEC before any work is done; returns it as text."""
    text = str(spec)
    head, _, rest = text.partition(":")
    if head in BASELINES:
        if rest:
            try:
                if not (math.isfinite(float(rest)) and float(rest) > 0):
                    raise ValueError
            except ValueError:
                raise SpecError(f"bad learning rate in {text!r}; write a positive finite "
                                f"number, e.g. {head}:0.01") from None
        return text
    if head in ("pretrained", "lstm") or text.endswith(".pt"):
        checkpoint.resolve(text)
        return text
    raise SpecError(f"unknown optimizer {text!r}; use pretrained:NAME, lstm:PATH, "
                    f"{', '.join(BASELINES)} or a fixed rate like adam:0.01")


def make_optimizer(spec, problem: Problem, steps: int, seed: int = 0, tune_runs: int | None = None,
                   batch_size: int | None = None, progress: bool = False, device=None,
                   retune: bool = False, group: Group = SINGLE):
    """Turn an optimizer SPEC into (name, optimizer, lr).

    SPEC is ``pretrained:NAME``, ``lstm:PATH`` (or a checkpoint path), a baseline name
    (``sgd``, ``rmsprop``, ``adam``, ``nag``: rate tuned on validation optimizees for ``steps``
    steps, or taken from :mod:`l2l.tuned`'s store where it holds this problem and horizon, unless
    ``retune``), a baseline with a fixed rate (``adam:0.01``), or an :class:`Optimizer` instance.
    ``group``: the processes that share the tuning (:func:`tune_learning_rate`); rank 0 alone
    says where a stored rate comes from.
    """
    if isinstance(spec, Optimizer):
        return spec.name, spec, getattr(spec, "lr", None)
    text = check_spec(spec)
    head, _, rest = text.partition(":")
    if head in BASELINES:
        stored = None if rest or retune else tuned.lookup(problem.spec(), head, steps)
        if rest:
            lr = float(rest)
        elif stored is not None:
            lr = stored["lr"]
            if group.writes:
                tqdm.write(f"{head}: learning rate {lr:.3g} from the stored tuning on {stored['runs']} "
                           f"validation optimizees ({stored['provenance'].get('command', '?')}); "
                           "retune=True / --retune tunes again")
        else:
            runs = tune_runs or tuning_for(problem).runs
            lr, _ = tune_learning_rate(problem, head, steps, runs=runs, seed=seed,
                                       batch_size=batch_size, progress=progress, device=device,
                                       group=group)
        return head, BASELINES[head](lr), lr
    if head in ("pretrained", "lstm") or text.endswith(".pt"):
        optimizer = checkpoint.load_optimizer(text)
        label = rest if head == "pretrained" else "lstm"
        return f"lstm ({label})" if head == "pretrained" else label, optimizer, None


def evaluate(problem, optimizers, steps: int = 100, runs: int = 100, seed: int = 0,
             tune_runs: int | None = None, batch_size: int | None = None,
             progress: bool = True, device=None, retune: bool = False,
             group: Group = SINGLE) -> list[Curve]:
    """Run each optimizer on the same ``runs`` test optimizees (seed stream ``"test"``).

    ``optimizers`` is a list of SPECs (see :func:`make_optimizer`) or :class:`Optimizer` objects.
    ``device``: where to run (default CPU). ``group``: the processes (under ``torchrun``) that
    share the runs and the tuning; each returns every curve, whole. Returns one :class:`Curve`
    per optimizer, in order.
    """
    problem = make_problem(problem)
    check_count("steps", steps)
    check_count("runs", runs)
    for name, value in (("tune_runs", tune_runs), ("batch_size", batch_size)):
        if value is not None:
            check_count(name, value)
    for spec in optimizers:
        if not isinstance(spec, Optimizer):
            check_spec(spec)
    curves = []
    bar = tqdm(optimizers, desc="evaluating", disable=not (progress and group.writes), leave=False)
    for spec in bar:
        name, optimizer, lr = make_optimizer(spec, problem, steps, seed=seed, tune_runs=tune_runs,
                                             batch_size=batch_size, progress=progress,
                                             device=device, retune=retune, group=group)
        if any(c.name == name for c in curves):  # e.g. two lstm:PATH checkpoints: say which
            name = f"{name} ({spec})"
        bar.set_postfix(optimizer=name)
        losses, metrics = rollout_batched(problem, optimizer, steps, runs, seed, "test", batch_size,
                                          device=device, group=group)
        curves.append(Curve(name, losses, lr, metrics))
    return curves


def table(curves: list[Curve], steps=None) -> str:
    """A plain-text table of mean loss (± std) at chosen steps (default: the last)."""
    last = curves[0].losses.shape[0] - 1
    steps = list(steps) if steps else [last]
    width = max([22] + [len(c.name) + 2 for c in curves])
    head = f"{'optimizer':<{width}}{'lr':>10}" + "".join(f"{'step ' + str(s):>20}" for s in steps)
    lines = [head, "-" * len(head)]
    for c in curves:
        lr = f"{c.lr:.3g}" if c.lr is not None else "-"
        cells = "".join(f"{c.mean[s]:>11.4g} ± {c.std[s]:<6.2g}" for s in steps)
        lines.append(f"{c.name:<{width}}{lr:>10}{cells}")
    return "\n".join(lines)
