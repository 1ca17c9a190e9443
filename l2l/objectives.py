"""Meta-objectives: what a truncation's meta-gradient is the gradient of (Section 2).

The paper's meta-loss is L(φ) = E[Σ_t w_t f(θ_t)] with w_t = 1. Here a meta-objective is a
function of one truncation's :class:`~l2l.rollout.Trajectory` and of the horizon, returning a
scalar in the meta-graph; :data:`OBJECTIVES` names them for :class:`~l2l.meta.MetaConfig` and the
``train --objective`` option. An objective that needs more than the losses says so in ``needs``
(``"updates"``, ``"grads"``), and the unroll records those for it.

Adding a meta-objective is one function and one entry of :data:`OBJECTIVES` (plus its test).

:class:`Imitation` is the term that can be added to any of them: the relative error of the
optimizer's steps against a hand-designed teacher's on the same gradients (Chen et al. 2020).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from .optimizers.base import Optimizer
from .rollout import Trajectory


def mean_loss(trajectory: Trajectory, horizon: int) -> Tensor:  # noqa: ARG001 (an objective)
    """The paper's: the mean of f(θ_t) over the truncation's steps and the batch (w_t = 1)."""
    return trajectory.losses.mean()


def mean_log_loss(trajectory: Trajectory, horizon: int) -> Tensor:  # noqa: ARG001
    """The mean of log f(θ_t): progress late in the horizon, where f is small, counts as much
    as early progress (not in the paper)."""
    return trajectory.losses.clamp_min(1e-12).log().mean()


def late_log_loss(trajectory: Trajectory, horizon: int) -> Tensor:
    """The mean of (t / horizon)·log f(θ_t): weights that ramp up along the horizon, so that
    where an optimizee ends counts most (a truncation still sees only its own steps)."""
    losses = trajectory.losses
    logs = losses.clamp_min(1e-12).log()
    start = trajectory.start
    steps = torch.arange(start + 1, start + 1 + losses.shape[0], device=losses.device)
    return (logs * (steps.to(logs.dtype) / horizon).unsqueeze(1)).mean()


@dataclass(frozen=True)
class Objective:
    """A meta-objective: ``loss(trajectory, horizon)`` → scalar, and what it needs recorded."""

    loss: Callable[[Trajectory, int], Tensor]
    needs: frozenset = frozenset()

    def __call__(self, trajectory: Trajectory, horizon: int) -> Tensor:
        return self.loss(trajectory, horizon)


#: the meta-objectives by name (``MetaConfig.objective``, ``train --objective``)
OBJECTIVES = {
    "loss": Objective(mean_loss),
    "log_loss": Objective(mean_log_loss),
    "late_log_loss": Objective(late_log_loss),
}


def imitation_error(student: Tensor, teacher: Tensor, groups: dict[str, Tensor] | None) -> Tensor:
    """Mean over groups of Σ(student − teacher)² / Σ teacher²; steps ``[..., B, n]`` → scalar.

    Groups (name → coordinate indices) weigh the small steps of one group (e.g. convolution
    weights) as much as the large steps of another; 0 means equal steps, 1 as far off as no step.
    """
    index = list(groups.values()) if groups else [None]
    errors = []
    for idx in index:
        s, t = (student, teacher) if idx is None else (student[..., idx], teacher[..., idx])
        errors.append((s - t).square().sum() / t.square().sum().clamp_min(1e-30))
    return torch.stack(errors).mean()


class Imitation:
    """``weight`` × the mean over a truncation's steps of :func:`imitation_error` between the
    optimizer's updates and those ``teacher`` proposes on the same gradients.

    The teacher's state follows the optimizer's trajectory across truncations: call
    :meth:`start` with each new batch of optimizees, then the term once per truncation, in order.
    """

    needs = frozenset({"updates", "grads"})

    def __init__(self, teacher: Optimizer, weight: float):
        self.teacher, self.weight = teacher, weight
        self.state, self.groups = None, None

    def start(self, theta: Tensor, groups=None) -> None:
        """A fresh teacher state for optimizees starting at θ ``[B, n]``."""
        self.state = self.teacher.init_state(theta, groups=groups)
        self.groups = groups

    def __call__(self, trajectory: Trajectory) -> Tensor:
        errors = []
        for grad, update in zip(trajectory.grads, trajectory.updates):
            with torch.no_grad():
                step, self.state = self.teacher(grad, self.state)
            errors.append(imitation_error(update, step, self.groups))
        return self.weight * torch.stack(errors).mean()
