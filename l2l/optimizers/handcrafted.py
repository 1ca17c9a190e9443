"""Hand-designed baselines as update rules: SGD, RMSprop, Adam, NAG (Section 3).

The paper tunes each baseline's learning rate and keeps Torch7's defaults for everything else:
Adam β1 = 0.9, β2 = 0.999, ε = 1e-8; RMSprop α = 0.99, ε = 1e-8; NAG momentum 0.9. Each rule
returns the update that ``torch.optim`` would apply on the same gradients (tests check this);
NAG is written in the form ``torch.optim.SGD(nesterov=True)`` uses, which needs only the gradient
at θ_t. The learning rate may be a tensor ``[B]`` to run one rate per optimizee in a batch, which
is how baseline learning rates are tuned in one pass.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import check_positive
from .base import Optimizer, State, as_rate


class SGD(Optimizer):
    """Plain gradient descent, g_t = -lr ∇_t."""

    name = "sgd"

    def __init__(self, lr: float | Tensor = 0.1):
        super().__init__()
        if not isinstance(lr, Tensor):  # a tensor of rates is tuning's batch of them
            check_positive("lr", lr)
        self.lr = lr

    def init_state(self, theta: Tensor, groups=None) -> State:  # noqa: ARG002 (the interface)
        return ()

    def forward(self, grad: Tensor, state: State) -> tuple[Tensor, State]:
        return -as_rate(self.lr, grad) * grad, state

    def config(self) -> dict:
        return {"lr": float(self.lr) if not isinstance(self.lr, Tensor) else self.lr.tolist()}


class NAG(SGD):
    """Nesterov's accelerated gradient, momentum 0.9 (Sutskever et al. 2013 form).

    v_t = μ v_{t-1} + ∇_t,  g_t = -lr (∇_t + μ v_t).
    """

    name = "nag"

    def __init__(self, lr: float | Tensor = 0.1, momentum: float = 0.9):
        super().__init__(lr)
        check_positive("momentum", momentum, inclusive=True)
        self.momentum = momentum

    def init_state(self, theta: Tensor, groups=None) -> State:  # noqa: ARG002 (the interface)
        return (torch.zeros_like(theta),)

    def forward(self, grad: Tensor, state: State) -> tuple[Tensor, State]:
        (velocity,) = state
        velocity = self.momentum * velocity + grad
        return -as_rate(self.lr, grad) * (grad + self.momentum * velocity), (velocity,)

    def config(self) -> dict:
        return {**super().config(), "momentum": self.momentum}


class RMSprop(SGD):
    """RMSprop, α = 0.99, ε = 1e-8: s_t = α s_{t-1} + (1-α) ∇_t², g_t = -lr ∇_t / (√s_t + ε)."""

    name = "rmsprop"

    def __init__(self, lr: float | Tensor = 0.01, alpha: float = 0.99, eps: float = 1e-8):
        super().__init__(lr)
        check_positive("alpha", alpha, inclusive=True)
        check_positive("eps", eps)
        self.alpha, self.eps = alpha, eps

    def init_state(self, theta: Tensor, groups=None) -> State:  # noqa: ARG002 (the interface)
        return (torch.zeros_like(theta),)

    def forward(self, grad: Tensor, state: State) -> tuple[Tensor, State]:
        (square_avg,) = state
        square_avg = self.alpha * square_avg + (1 - self.alpha) * grad * grad
        update = -as_rate(self.lr, grad) * grad / (square_avg.sqrt() + self.eps)
        return update, (square_avg,)

    def config(self) -> dict:
        return {**super().config(), "alpha": self.alpha, "eps": self.eps}


class Adam(SGD):
    """Adam, β1 = 0.9, β2 = 0.999, ε = 1e-8, with bias correction (Kingma & Ba 2015)."""

    name = "adam"

    def __init__(self, lr: float | Tensor = 0.001, betas=(0.9, 0.999), eps: float = 1e-8):
        super().__init__(lr)
        for beta in betas:
            check_positive("betas", beta, inclusive=True)
        check_positive("eps", eps)
        self.betas, self.eps = tuple(betas), eps

    def init_state(self, theta: Tensor, groups=None) -> State:  # noqa: ARG002 (the interface)
        step = torch.zeros((), dtype=theta.dtype, device=theta.device)
        return (torch.zeros_like(theta), torch.zeros_like(theta), step)

    def forward(self, grad: Tensor, state: State) -> tuple[Tensor, State]:
        m, v, step = state
        beta1, beta2 = self.betas
        step = step + 1
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * grad * grad
        m_hat = m / (1 - beta1**step)
        v_hat = v / (1 - beta2**step)
        update = -as_rate(self.lr, grad) * m_hat / (v_hat.sqrt() + self.eps)
        return update, (m, v, step)

    def config(self) -> dict:
        return {**super().config(), "betas": list(self.betas), "eps": self.eps}


#: the paper's baselines by command-line name
BASELINES = {cls.name: cls for cls in (SGD, RMSprop, Adam, NAG)}
