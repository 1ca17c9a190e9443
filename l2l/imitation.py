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

Meta-training can keep imitating, as Chen et al. do: :class:`l2l.objectives.Imitation` adds the
weighted relative error of the student's steps on its own trajectory to the meta-loss
(``python -m l2l train --imitate TEACHER --imitate-weight W``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from .errors import ConfigError, check_count, check_positive
from .objectives import imitation_error
from .optimizers import Optimizer, detach_state
from .problems import make_problem
from .rollout import replay
from .rollout import unroll as trajectory
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


@dataclass
class WarmStart:
    """The imitation stage before meta-training (its teacher is ``MetaConfig.imitate``); each
    field is also an option of ``python -m l2l train`` and a key of a recipe."""

    imitate_epochs: int = field(default=0, metadata={
        "help": "optimizees to imitate the teacher on before meta-training, one horizon each "
                "(0: none)"})
    imitate_lr: float = field(default=1e-3, metadata={
        "help": "Adam's learning rate during that imitation, at most 1"})

    def __post_init__(self):
        check_count("imitate_epochs", self.imitate_epochs, minimum=0)
        check_positive("imitate_lr", self.imitate_lr)
        if self.imitate_lr > 1:  # Adam moves each weight by about lr: more is no training
            raise ConfigError(f"imitate_lr must be at most 1, got {self.imitate_lr!r}")


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
            followed = trajectory(optimizee, teacher, theta, t_state, start, unroll, meta=False,
                                  record=("grads", "updates"))
            proposed, s_state = replay(student, followed.grads, s_state)
            theta, t_state = followed.theta, followed.state
            error = imitation_error(torch.stack(proposed), torch.stack(followed.updates), groups)
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
