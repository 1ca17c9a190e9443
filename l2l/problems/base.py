"""The optimizee interface: a family of problems, and batches of instances sampled from it.

A :class:`Problem` is a distribution over functions f (the paper's "class of functions", Section
2); :meth:`Problem.sample` draws B of them at once as an :class:`Optimizee`, whose parameters θ
are one flat tensor ``[B, n]``. Losses are written functionally (plain tensor code or
``torch.func.functional_call``), so θ_{t+1} = θ_t + g_t stays in the autograd graph.
"""

from __future__ import annotations

import torch
from torch import Tensor


class Optimizee:
    """B sampled functions f_b(θ_b) with their initial parameters.

    Attributes:
        theta0: the initial parameters, ``[B, n]``.
    """

    theta0: Tensor

    @property
    def batch_size(self) -> int:
        return self.theta0.shape[0]

    def loss(self, theta: Tensor, step: int) -> Tensor:
        """f_b(θ_b) for each of the B functions: ``[B, n]`` → ``[B]``.

        ``step`` selects the data for stochastic problems (step t always sees the same
        minibatch for a given sample); deterministic problems ignore it.
        """
        raise NotImplementedError

    def metrics(self, theta: Tensor) -> dict[str, Tensor]:
        """Extra end-of-run figures (e.g. test accuracy), each ``[B]``; none by default."""
        return {}


class Problem:
    """A family of optimizees, with the paper's optimizer and meta-training setup for it."""

    #: the command-line name
    name: str = "problem"
    #: keyword arguments of :class:`~l2l.optimizers.LSTMOptimizer` that the paper uses here
    optimizer_defaults: dict = {}
    #: keyword arguments of :class:`~l2l.meta.MetaTrainer` that the paper (or we) use here
    training_defaults: dict = {}

    def sample(self, batch_size: int, generator: torch.Generator) -> Optimizee:
        """Draw ``batch_size`` optimizees using ``generator`` for every random choice."""
        raise NotImplementedError

    def config(self) -> dict:
        """Constructor keyword arguments (used in specs, checkpoints and logs)."""
        return {}

    def spec(self) -> str:
        """The command-line spelling of this problem, e.g. ``quadratic:dim=10``."""
        options = ",".join(f"{k}={v}" for k, v in self.config().items())
        return f"{self.name}:{options}" if options else self.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec()!r})"
