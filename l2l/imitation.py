"""A supervised warm start: fit a learned optimizer's steps to a hand-designed teacher's.

Not in the paper. Chen et al. (2020, "Training stronger baselines for learning to optimize")
found that imitating an analytical optimizer such as Adam helps a learned optimizer keep improving
beyond its meta-training horizon; here imitation is a separate first stage, whose result
``python -m l2l train --init`` then meta-trains as the paper does.

Along the teacher's own trajectory θ_{t+1} = θ_t + u_t (teacher forcing) the student sees the
same gradients ∇_t and proposes g_t. Every ``unroll`` steps the student's parameters take an Adam
step on the mean over parameter groups of the relative squared error

    Σ_i (g_t,i − u_t,i)² / Σ_i u_t,i²    (sums over a group's coordinates and the unroll's steps),

so that the small steps of one group (e.g. convolution weights) count as much as the large steps
of another. The student's state is carried across unrolls and detached between them, as in
meta-training. Nothing is differentiated through the optimizee.

:class:`Shadowed` keeps imitating during meta-training, as Chen et al. do: the teacher proposes a
step on each gradient of the student's own trajectory, and the meta-loss gains the weighted mean
relative error (``python -m l2l train --imitate TEACHER --imitate-weight W``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .errors import ConfigError, check_positive
from .optimizers import Optimizer, detach_state
from .problems import make_problem
from .seeding import generator


def make_teacher(spec: str, problem, steps: int) -> Optimizer:
    """The hand-designed optimizer of ``spec`` (``adam``, ``adam:0.01``, ``nag`` …; a bare name
    takes the rate tuned for ``steps``); a learned one is refused with a clear error."""
    from .evaluate import make_optimizer  # evaluate imports the problems this module needs too

    _, teacher, _ = make_optimizer(spec, make_problem(problem), steps)
    if teacher.learnable:
        raise ConfigError(f"imitate {spec!r}: the teacher must be a hand-designed optimizer "
                          "(sgd, rmsprop, adam, nag, with or without :RATE)")
    return teacher


def imitation_error(student: Tensor, teacher: Tensor, groups: dict[str, Tensor] | None) -> Tensor:
    """Mean over groups of Σ(student − teacher)² / Σ teacher²; steps ``[..., B, n]`` → scalar."""
    index = list(groups.values()) if groups else [None]
    errors = []
    for idx in index:
        s, t = (student, teacher) if idx is None else (student[..., idx], teacher[..., idx])
        errors.append((s - t).square().sum() / t.square().sum().clamp_min(1e-30))
    return torch.stack(errors).mean()


class Shadowed(Optimizer):
    """The student's steps, with a teacher's proposal on the same gradient recorded beside each.

    The teacher's state follows the student's trajectory. After every step the relative error
    (:func:`imitation_error`) is appended to ``errors``, in the student's autograd graph, for an
    imitation term of the meta-loss; the caller clears the list. State: the student's tuple, then
    the teacher's.
    """

    name = "shadowed"

    def __init__(self, student: Optimizer, teacher: Optimizer):
        super().__init__()
        self.student, self.teacher = student, teacher
        self.errors: list[Tensor] = []
        self._groups, self._split = None, 0

    def init_state(self, theta: Tensor, groups=None):
        self._groups = groups
        mine = tuple(self.student.init_state(theta, groups=groups))
        self._split = len(mine)
        return mine + tuple(self.teacher.init_state(theta, groups=groups))

    def forward(self, grad: Tensor, state):
        mine, theirs = state[:self._split], state[self._split:]
        update, mine = self.student(grad, mine)
        with torch.no_grad():
            step, theirs = self.teacher(grad, theirs)
        self.errors.append(imitation_error(update, step, self._groups))
        return update, tuple(mine) + tuple(theirs)

    def config(self) -> dict:
        return {"student": self.student.config(), "teacher": self.teacher.config()}


def imitate(problem, student: Optimizer, teacher: Optimizer, *, epochs: int, horizon: int,
            unroll: int = 20, lr: float = 1e-3, seed: int = 0, progress: bool = True,
            device=None) -> list[dict]:
    """Train ``student`` (in place) to reproduce ``teacher``'s steps; return the per-epoch log.

    Each epoch samples one training optimizee (seed stream ``"train"``, indices −1, −2, …, so
    that meta-training's optimizees 0, 1, … are not reused) and follows the teacher for
    ``horizon`` steps. Log rows: ``{"epoch", "error", "skipped"}`` with the epoch's mean relative
    error (0: the student's steps equal the teacher's; 1: as far off as proposing no step at all)
    and the number of its updates skipped because the error or its gradient was not finite.
    """
    if epochs < 1 or horizon < 1 or unroll < 1 or horizon % unroll:
        raise ConfigError(f"need epochs ≥ 1 and a horizon ({horizon}) that is a positive multiple "
                          f"of unroll ({unroll})")
    check_positive("lr", lr)
    if lr > 1:  # Adam moves each weight by about lr: more is no training
        raise ConfigError(f"lr must be at most 1, got {lr!r}")
    problem = make_problem(problem).for_split("train")
    device = torch.device(device or "cpu")
    student.to(device)
    adam = torch.optim.Adam(student.parameters(), lr=lr)
    log, skipped = [], 0
    bar = tqdm(range(epochs), desc=f"imitating {teacher.name} on {problem.spec()}",
               disable=not progress, dynamic_ncols=True)
    for epoch in bar:
        optimizee = problem.sample(1, generator(seed, "train", -1 - epoch))
        groups = optimizee.coordinate_groups()
        theta = optimizee.theta0.to(device)
        s_state = student.init_state(theta, groups=groups)
        t_state = teacher.init_state(theta, groups=groups)
        errors = []
        for start in range(0, horizon, unroll):
            proposed, wanted = [], []
            for t in range(start, start + unroll):
                theta = theta.detach().requires_grad_(True)
                (grad,) = torch.autograd.grad(optimizee.loss(theta, t).sum(), theta)
                with torch.no_grad():
                    step, t_state = teacher(grad, t_state)
                update, s_state = student(grad, s_state)
                proposed.append(update)
                wanted.append(step)
                theta = theta.detach() + step
            error = imitation_error(torch.stack(proposed), torch.stack(wanted), groups)
            adam.zero_grad(set_to_none=True)
            applied = False
            if math.isfinite(error.item()):
                error.backward()
                if all(bool(torch.isfinite(p.grad).all()) for p in student.parameters()
                       if p.grad is not None):
                    adam.step()
                    applied = True
                adam.zero_grad(set_to_none=True)
            skipped += not applied
            errors.append(error.item())
            s_state = detach_state(s_state)
        log.append({"epoch": epoch + 1, "error": sum(errors) / len(errors), "skipped": skipped})
        skipped = 0
        bar.set_postfix(error=f"{log[-1]['error']:.4g}")
    return log
