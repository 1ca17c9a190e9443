"""The one loop that runs an optimizer on an optimizee (Section 2, Figure 2).

Meta-training, evaluation and baseline tuning all go through :func:`optimizee_step`, so a learned
and a hand-designed optimizer cannot be compared through two different implementations.

At step t the optimizee's loss f(θ_t) and its gradient ∇_t are computed, the optimizer proposes
g_t, and θ_{t+1} = θ_t + g_t. The gradient is taken from the loss alone (``autograd.grad`` with
respect to θ_t), and by default it enters the optimizer as a constant: the paper drops the second
derivatives ∂∇_t/∂φ (the dashed edges of Figure 2). ``second_order=True`` keeps them.

Dropping them also means that the only path from f(θ_t) back to θ_t is the direct one, whose
derivative is ∇_t itself. The meta-backward then reuses the ∇_t already computed for the optimizer
(:class:`LossWithGradient`) instead of differentiating the optimizee a second time, and the
optimizee's own graph is freed as soon as ∇_t is taken.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .optimizers.base import Optimizer, State
from .problems.base import Optimizee


class LossWithGradient(torch.autograd.Function):
    """f(θ_t) ``[B]`` as a function of θ_t ``[B, n]`` whose derivative is the given ∇_t ``[B, n]``.

    Exact when second derivatives are dropped: the meta-backward through this node gives
    dL/df_b · ∇_t,b, which is what backpropagating through the optimizee's forward pass would
    give, without keeping that graph or running its backward again.
    """

    @staticmethod
    def forward(ctx, theta, loss, grad):  # noqa: ARG004 (θ: the input the gradient is for)
        ctx.save_for_backward(grad)
        return loss.clone()

    @staticmethod
    def backward(ctx, d_loss):
        (grad,) = ctx.saved_tensors
        return d_loss.unsqueeze(1) * grad, None, None


@dataclass
class Trajectory:
    """``steps`` steps of an optimizer on B optimizees, from step ``start`` (what :func:`unroll`
    returns, and what a meta-objective of :mod:`l2l.objectives` reads).

    Attributes:
        losses: f(θ_{start+1}) … f(θ_{start+steps}), ``[steps, B]``; in the meta-graph when the
            unroll kept one. f(θ_start) is not among them, since it does not depend on φ.
        initial_loss: f(θ_start), ``[B]``, a constant.
        theta: θ after the last step, ``[B, n]``.
        state: the optimizer's state after the last step.
        start: the step the trajectory starts at.
        grads: the gradients ∇_t the optimizer saw, one ``[B, n]`` per step (if recorded).
        updates: the updates g_t it proposed, one ``[B, n]`` per step (if recorded).
    """

    losses: Tensor
    initial_loss: Tensor
    theta: Tensor
    state: State
    start: int
    grads: tuple[Tensor, ...] = ()
    updates: tuple[Tensor, ...] = ()


def _step(optimizee: Optimizee, optimizer: Optimizer, theta: Tensor, state: State, t: int,
          meta: bool, second_order: bool) -> tuple[Tensor, Tensor, State, Tensor, Tensor]:
    """One step θ_t → θ_{t+1}: (f(θ_t) ``[B]``, θ_{t+1}, next state, ∇_t, g_t)."""
    if not meta or not theta.requires_grad:
        theta = theta.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = optimizee.loss(theta, t)
        (grad,) = torch.autograd.grad(loss.sum(), theta, create_graph=meta and second_order,
                                      retain_graph=meta and second_order)
    if not (meta and second_order):
        grad = grad.detach()
    if meta:
        if not second_order:
            loss = LossWithGradient.apply(theta, loss.detach(), grad)
        update, state = optimizer(grad, state)
        return loss, theta + update, state, grad, update
    with torch.no_grad():
        update, state = optimizer(grad, state)
        return loss.detach(), theta.detach() + update, state, grad, update


def optimizee_step(
    optimizee: Optimizee,
    optimizer: Optimizer,
    theta: Tensor,
    state: State,
    t: int,
    *,
    meta: bool = False,
    second_order: bool = False,
) -> tuple[Tensor, Tensor, State]:
    """One step θ_t → θ_{t+1}. Returns (f(θ_t) ``[B]``, θ_{t+1} ``[B, n]``, next state).

    With ``meta=False`` nothing is recorded for a meta-gradient: θ is detached and the optimizer
    runs without autograd. With ``meta=True`` the update stays in the graph so that later losses
    can be differentiated with respect to the optimizer's parameters φ.
    """
    return _step(optimizee, optimizer, theta, state, t, meta, second_order)[:3]


def unroll(
    optimizee: Optimizee,
    optimizer: Optimizer,
    theta: Tensor,
    state: State,
    start: int,
    steps: int,
    *,
    meta: bool = True,
    second_order: bool = False,
    record: frozenset | tuple = (),
    stop_on_divergence: bool = False,
) -> Trajectory:
    """``steps`` updates from θ_start: the one loop of meta-training, evaluation, imitation and
    analysis.

    ``meta=True`` (a truncation of meta-training) keeps the updates in the graph, so that the
    losses can be differentiated with respect to φ; ``meta=False`` runs without meta-gradients.
    ``record`` names what else to keep: ``"grads"``, ``"updates"``. ``stop_on_divergence``
    stops after the first non-finite f(θ_t) (the trajectory's losses then end with it).
    """
    losses, grads, updates = [], [], []
    initial, diverged = None, False
    for k in range(steps):
        loss, theta, state, grad, update = _step(optimizee, optimizer, theta, state, start + k,
                                                 meta, second_order)
        if k == 0:
            initial = loss.detach()
        else:
            losses.append(loss)
        if "grads" in record:
            grads.append(grad)
        if "updates" in record:
            updates.append(update)
        if stop_on_divergence and not torch.isfinite(loss).all():
            diverged = True
            break
    if not diverged:
        with torch.set_grad_enabled(meta):
            losses.append(optimizee.loss(theta, start + steps))
    if initial is None:  # no step
        initial = losses[0].detach()
        losses = []
    stacked = torch.stack(losses) if losses else initial.new_empty(0, *initial.shape)
    return Trajectory(stacked, initial, theta, state, start, tuple(grads), tuple(updates))


def replay(optimizer: Optimizer, grads, state: State) -> tuple[list[Tensor], State]:
    """The updates ``optimizer`` proposes on a recorded sequence of gradients ``[B, n]`` (θ does
    not move: e.g. a reference optimizer beside a learned one's trajectory); and its final state."""
    updates = []
    for grad in grads:
        update, state = optimizer(grad, state)
        updates.append(update)
    return updates, state


def run(optimizee: Optimizee, optimizer: Optimizer, steps: int,
        device: torch.device | str | None = None,
        stop_on_divergence: bool = False) -> tuple[Tensor, Tensor]:
    """Run ``steps`` updates without meta-gradients.

    Returns (losses ``[steps + 1, B]`` with f(θ_0) … f(θ_steps), final θ ``[B, n]``). Non-finite
    losses stay in the record, so a diverging optimizer is visible as such. ``device``: where θ
    lives (default: where the optimizee put θ_0); the optimizer must already be there.
    ``stop_on_divergence``: stop at the first non-finite loss (the record then ends there), for
    checks that only ask whether a run diverges.
    """
    theta = optimizee.theta0 if device is None else optimizee.theta0.to(device)
    state = optimizer.init_state(theta, groups=optimizee.coordinate_groups())
    trajectory = unroll(optimizee, optimizer, theta, state, 0, steps, meta=False,
                        stop_on_divergence=stop_on_divergence)
    return torch.cat([trajectory.initial_loss.unsqueeze(0), trajectory.losses]), trajectory.theta
