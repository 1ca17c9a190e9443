"""The update-rule interface shared by every optimizer, hand-designed or learned.

An optimizer here is the paper's m: it maps the gradient ∇f(θ_t) and its own state h_t to an
update g_t and a new state, and the optimizee's parameters move by θ_{t+1} = θ_t + g_t (Section 1,
equation 1). Parameters are always a flat batch ``[B, n]``: B independent optimizees with n
coordinates each. Optimizer state is a tuple of tensors, so that the meta-trainer can detach it at
every unroll boundary without knowing what is inside.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

State = tuple[Tensor, ...]


class Optimizer(nn.Module):
    """An update rule ``(grad [B, n], state) -> (update [B, n], state)``.

    Subclasses implement :meth:`init_state` and :meth:`forward`, and :meth:`config`, the keyword
    arguments that rebuild them. Hand-designed rules have no learnable parameters; the learned one
    holds φ as ordinary module parameters.
    """

    #: short name used in plots, tables and on the command line
    name: str = "optimizer"

    def init_state(self, theta: Tensor, groups=None) -> State:
        """The state before the first step, for parameters ``theta`` of shape ``[B, n]``.

        ``groups`` (name → coordinate indices) matters only to optimizers with one LSTM per
        parameter group; the others ignore it.
        """
        raise NotImplementedError

    def forward(self, grad: Tensor, state: State) -> tuple[Tensor, State]:
        """Return the update g_t (same shape as ``grad``) and the next state."""
        raise NotImplementedError

    def config(self) -> dict:
        """Keyword arguments that rebuild this optimizer (without learned weights)."""
        raise NotImplementedError

    @property
    def learnable(self) -> bool:
        """Whether the optimizer has parameters φ to meta-train."""
        return any(True for _ in self.parameters())


def detach_state(state: State) -> State:
    """Cut a state out of the autograd graph (used at every truncation boundary)."""
    return tuple(s.detach() for s in state)


def as_rate(lr, theta: Tensor) -> Tensor | float:
    """Accept a float or a per-optimizee tensor of learning rates (``[B]`` or ``[B, 1]``)."""
    if isinstance(lr, Tensor):
        lr = lr.to(theta)
        return lr.reshape(-1, 1) if lr.dim() == 1 else lr
    return float(lr)


__all__ = ["Optimizer", "State", "as_rate", "detach_state", "torch"]
