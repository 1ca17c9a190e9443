"""PES (l2l.estimators): unbiased for the gradient of the Gaussian-smoothed meta-loss through the
whole history, where truncated backpropagation is biased; and a meta-training that uses it."""

import pytest
import torch
from torch.func import functional_call

from l2l.estimators import PESParticles
from l2l.meta import MetaConfig, MetaTrainer
from l2l.optimizers import LSTMOptimizer, Optimizer
from l2l.problems import make_problem
from l2l.rollout import unroll

STD, UNROLL = 0.05, 2


class Perturbed(Optimizer):
    """``base`` run with the weights ``params`` (tensors that may depend on φ)."""

    def __init__(self, base, params):
        super().__init__()
        self.base, self.params = base, params

    def init_state(self, theta, groups=None):
        return self.base.init_state(theta, groups=groups)

    def forward(self, grad, state):
        return functional_call(self.base, self.params, (grad, state))


def _setting():
    torch.manual_seed(0)
    optimizer = LSTMOptimizer(hidden_size=2, num_layers=1, preprocess=False, output_scale=0.1)
    optimizee = make_problem("quadratic:dim=2").sample(1, torch.Generator().manual_seed(4))
    return optimizer, optimizee


def _second_truncation_gradients(samples, through_first: bool):
    """Autograd gradients of the second truncation's mean loss with respect to φ, each with its
    own perturbations ε_1, ε_2 of the two truncations' weights: through both truncations (the
    smoothed meta-loss's gradient, sample by sample) or, as truncated backpropagation does, through
    the second only. ``[samples, d]``."""
    optimizer, optimizee = _setting()
    names = [n for n, _ in optimizer.named_parameters()]
    phi = [p.detach().clone().requires_grad_(True) for p in optimizer.parameters()]
    g = torch.Generator().manual_seed(1)
    rows = []
    for _ in range(samples):
        noise = [[STD * torch.randn(p.shape, generator=g) for p in phi] for _ in range(2)]
        theta, state = optimizee.theta0, optimizer.init_state(optimizee.theta0)
        for k in range(2):
            weights = {n: p + e for n, p, e in zip(names, phi, noise[k])}
            path = unroll(optimizee, Perturbed(optimizer, weights), theta, state, k * UNROLL,
                          UNROLL, second_order=True)
            theta, state = path.theta, path.state
            if k == 0 and not through_first:
                theta, state = theta.detach(), tuple(s.detach() for s in state)
        grads = torch.autograd.grad(path.losses.mean(), phi)
        rows.append(torch.cat([x.flatten() for x in grads]))
    return torch.stack(rows)


def _pes_terms(pairs):
    optimizer, optimizee = _setting()
    particles = PESParticles(optimizer, optimizee, pairs, STD)
    dim = sum(p.numel() for p in optimizer.parameters())
    g = torch.Generator().manual_seed(2)
    for k in range(2):
        noise = STD * torch.randn(pairs, dim, generator=g)
        terms, losses, diverged = particles.step(k * UNROLL, UNROLL, noise,
                                                 lambda path: path.losses.mean())
    assert not diverged and torch.isfinite(losses).all()
    return terms


def _z(a, b):
    """Per coordinate: the difference of two sample means in units of its standard error."""
    se = (a.var(0) / len(a) + b.var(0) / len(b)).sqrt()
    return (a.mean(0) - b.mean(0)).abs() / se


def test_pes_is_unbiased_for_the_smoothed_meta_gradient_where_truncated_backprop_is_not():
    exact = _second_truncation_gradients(400, through_first=True)
    truncated = _second_truncation_gradients(400, through_first=False)
    pes = _pes_terms(3000)
    # PES agrees with the gradient through the whole history within its standard error ...
    assert _z(pes, exact).max() < 4.5
    # ... which truncated backpropagation, cut at the truncation's start, misses by far
    assert _z(truncated, exact).max() > 8


def test_meta_training_with_pes_lowers_the_meta_loss():
    config = MetaConfig(estimator="pes", pes_pairs=8, pes_std=0.01, epochs=20, batch_size=16,
                        horizon=20, unroll=5, meta_lr=1e-2, validate_every=20,
                        validation_size=16, seed=1)
    result = MetaTrainer("quadratic", config=config, progress=False).train()
    losses = [row["meta_loss"] for row in result.log]
    assert sum(losses[-5:]) < 0.7 * sum(losses[:5])
    with pytest.raises(ValueError, match="pes"):
        MetaConfig(estimator="pes", second_order=True)
    with pytest.raises(ValueError, match="estimator must be one of"):
        MetaConfig(estimator="es")
