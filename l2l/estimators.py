"""Persistent evolution strategies (PES, Vicol et al. 2021): an unbiased estimate of the
meta-gradient of a whole horizon from its truncations, without a backward pass.

Truncated backpropagation (:class:`~l2l.meta.MetaTrainer`'s default) differentiates each
truncation's meta-loss only through that truncation's own steps: how φ moved θ before the
truncation began is cut off, which biases the meta-gradient towards short-sighted optimizers
(Metz et al. 2019; Wu et al. 2018). PES instead runs antithetic pairs of particles along the
horizon, particle ± of pair i with weights φ ± ε_i, a fresh ε_i ~ N(0, σ²I) each truncation, and
keeps for each pair the sum ξ_i of all the perturbations its + particle has had. The estimate of
the gradient of a truncation's meta-loss L,

    ĝ = 1/(2Nσ²) · Σ_i ξ_i · (L(φ + ε_i; history) − L(φ − ε_i; history)),

is unbiased for the gradient of the Gaussian-smoothed meta-loss with respect to φ through the
whole history (every earlier truncation included), because each particle's past was itself
produced by perturbed weights whose perturbations ξ_i sums. Memory is one θ and one optimizer state
per particle, whatever the horizon; particles are independent, so they split across processes.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from .optimizers.base import Optimizer
from .problems.base import Optimizee
from .rollout import unroll


class PESParticles:
    """``pairs`` antithetic pairs of particles following one batch of optimizees along a horizon.

    Args:
        optimizer: the learned optimizer; its current weights are φ at every :meth:`step`
            (read afresh, so a meta-update between truncations moves every particle's centre).
        optimizee: the B functions every particle optimizes (each particle has its own θ).
        pairs: the pairs this process runs (a share of the whole set, see :meth:`step`).
        std: σ, the perturbations' standard deviation.
        device: where θ lives (default: where the optimizee put θ_0).
    """

    def __init__(self, optimizer: Optimizer, optimizee: Optimizee, pairs: int, std: float,
                 device=None):
        self.optimizer, self.optimizee, self.std = optimizer, optimizee, std
        self.probe = copy.deepcopy(optimizer)  # carries each particle's perturbed weights
        theta = optimizee.theta0 if device is None else optimizee.theta0.to(device)
        groups = optimizee.coordinate_groups()
        dim = parameters_to_vector(optimizer.parameters()).numel()
        self.theta = [[theta, theta] for _ in range(pairs)]
        self.state = [[optimizer.init_state(theta, groups=groups) for _ in range(2)]
                      for _ in range(pairs)]
        self.xi = torch.zeros(pairs, dim, dtype=theta.dtype, device=theta.device)

    @torch.no_grad()
    def step(self, start: int, steps: int, noise: Tensor, loss) -> tuple[Tensor, Tensor, bool]:
        """One truncation of every pair with perturbations ``noise`` ``[pairs, d]`` (σ·N(0, I));
        ``loss(trajectory)`` is the meta-loss of a trajectory. Returns (the pairs' terms
        ξ_i·(L⁺ − L⁻)/(2σ²), ``[pairs, d]``, whose mean over all pairs is ĝ; the losses
        ``[pairs, 2]``; whether any particle diverged)."""
        phi = parameters_to_vector(self.optimizer.parameters()).detach()
        self.xi += noise
        losses = torch.empty(len(self.theta), 2, dtype=torch.float64)
        diverged = False
        for i in range(len(self.theta)):
            for side, sign in enumerate((1.0, -1.0)):
                vector_to_parameters(phi + sign * noise[i], self.probe.parameters())
                path = unroll(self.optimizee, self.probe, self.theta[i][side],
                              self.state[i][side], start, steps, meta=False)
                losses[i, side] = float(loss(path))
                self.theta[i][side], self.state[i][side] = path.theta, path.state
                diverged = diverged or not bool(torch.isfinite(path.theta).all())
        difference = (losses[:, 0] - losses[:, 1]).to(self.xi.dtype).to(self.xi.device)
        terms = self.xi * (difference / (2 * self.std ** 2)).unsqueeze(1)
        return terms, losses, diverged
