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
from .rollout import replay, unroll


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
    path = unroll(optimizee, learned, theta, learned.init_state(theta, groups=groups), 0, steps,
                  meta=False, record=("grads", "updates"))
    updates = {"lstm": torch.stack(path.updates)}
    for name, opt in references.items():
        proposed, _ = replay(opt, path.grads, opt.init_state(theta, groups=groups))
        updates[name] = torch.stack(proposed)
    losses = torch.cat([path.initial_loss.unsqueeze(0), path.losses])
    return UpdateHistory(losses, torch.stack(path.grads), updates, path.theta)
