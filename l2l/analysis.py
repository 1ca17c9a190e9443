"""Looking inside a learned optimizer (Appendix B): its updates beside hand-designed ones.

:func:`update_histories` runs the learned optimizer on an optimizee and, at every step, hands the
same gradient to reference optimizers (Adam, SGD …) that keep their own state along the learned
optimizer's trajectory. Comparing what each would do with identical gradient histories shows what
the learned rule adds: the paper finds larger, momentum-like steps and an update-versus-gradient
map shaped like Adam's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .optimizers.base import Optimizer
from .problems.base import Optimizee


@dataclass
class UpdateHistory:
    """What :func:`update_histories` records, for ``steps`` steps of ``B`` optimizees.

    Attributes:
        losses: f(θ_t) along the learned optimizer's trajectory, ``[steps + 1, B]``.
        grads: the gradient ∇_t at each step, ``[steps, B, n]``.
        updates: optimizer name → the update g_t it proposed from the same gradient history,
            ``[steps, B, n]`` (the learned optimizer's under ``"lstm"``; only it moves θ).
        theta: the final θ, ``[B, n]``.
    """

    losses: Tensor
    grads: Tensor
    updates: dict[str, Tensor]
    theta: Tensor


@torch.no_grad()
def update_histories(optimizee: Optimizee, learned: Optimizer, references: dict[str, Optimizer],
                     steps: int) -> UpdateHistory:
    """Run ``learned`` for ``steps`` steps; record its updates and those the ``references`` would
    make given the same gradients (each reference's state follows the learned trajectory)."""
    theta = optimizee.theta0
    groups = optimizee.coordinate_groups()
    states = {"lstm": learned.init_state(theta, groups=groups)}
    states.update({name: opt.init_state(theta, groups=groups) for name, opt in references.items()})
    optimizers = {"lstm": learned, **references}
    losses, grads, updates = [], [], {name: [] for name in optimizers}
    for t in range(steps):
        with torch.enable_grad():
            x = theta.detach().requires_grad_(True)
            loss = optimizee.loss(x, t)
            (grad,) = torch.autograd.grad(loss.sum(), x)
        losses.append(loss.detach())
        grads.append(grad)
        for name, opt in optimizers.items():
            update, states[name] = opt(grad, states[name])
            updates[name].append(update)
        theta = theta + updates["lstm"][-1]
    losses.append(optimizee.loss(theta, steps))
    return UpdateHistory(torch.stack(losses), torch.stack(grads),
                         {name: torch.stack(u) for name, u in updates.items()}, theta)
