"""The fast LSTM engines compute the same updates and meta-gradients as the straightforward one.

Engines: "reference" (lstm_cell, autograd through every op), "torch" (FusedLSTMCell with the
hand-written backward in PyTorch), "native" (the compiled kernel; skipped where it can't build).
"""

import copy
import math

import pytest
import torch

from l2l.optimizers import LSTMOptimizer, _native
from l2l.optimizers.lstm import fused_lstm_cell, lstm_cell
from l2l.optimizers.reference import LSTMCellNet, reference_optimizer

FAST = ["torch"] + (["native"] if _native.available() else [])


def _rollout(optimizer, engine, seed=1, B=3, n=257, steps=4, random_state=True):
    """Updates [steps, B, n] and the gradient of a meta-loss w.r.t. every parameter."""
    optimizer = copy.deepcopy(optimizer)
    optimizer.engine = engine
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(B, n, generator=g)
    state = optimizer.init_state(theta)
    if random_state:  # a mid-horizon state, without grad (as after a truncation)
        state = tuple(0.5 * torch.randn(s.shape, generator=g) for s in state)
    updates, meta_loss = [], 0.0
    for _ in range(steps):
        # gradients over many orders of magnitude, some zero, as real ones
        grad = torch.randn(B, n, generator=g) * torch.exp(4 * torch.randn(B, n, generator=g))
        grad[:, :5] = 0.0
        update, state = optimizer(grad, state)
        theta = theta + update
        updates.append(update)
        meta_loss = meta_loss + (theta ** 2).sum()
    meta_loss = meta_loss + sum(s.sum() for s in state)  # gradients into the final h and c too
    meta_loss.backward()
    return torch.stack(updates).detach(), [p.grad.clone() for p in optimizer.parameters()]


@pytest.mark.parametrize("engine", FAST)
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("preprocess", [True, False])
def test_updates_and_meta_gradients_match_reference(engine, num_layers, preprocess):
    torch.manual_seed(0)
    optimizer = LSTMOptimizer(num_layers=num_layers, preprocess=preprocess)
    ref_updates, ref_grads = _rollout(optimizer, "reference")
    updates, grads = _rollout(optimizer, engine)
    torch.testing.assert_close(updates, ref_updates, rtol=1e-5, atol=1e-6)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-5 * r.abs().max().item())


@pytest.mark.parametrize("engine", FAST)
def test_zero_initial_state_and_no_grad(engine):
    """From init_state (the first step) and without autograd, as in evaluation."""
    torch.manual_seed(0)
    optimizer = LSTMOptimizer()
    ref_updates, _ = _rollout(optimizer, "reference", random_state=False)
    updates, _ = _rollout(optimizer, engine, random_state=False)
    torch.testing.assert_close(updates, ref_updates, rtol=1e-5, atol=1e-6)
    fast = copy.deepcopy(optimizer)
    fast.engine = engine
    grad = torch.randn(2, 100)
    ref = _with_engine(optimizer, "reference")
    with torch.no_grad():
        (u1, s1), (u2, s2) = fast(grad, fast.init_state(grad)), ref(grad, ref.init_state(grad))
    torch.testing.assert_close(u1, u2, rtol=1e-5, atol=1e-6)
    for a, b in zip(s1, s2):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def _with_engine(optimizer, engine):
    optimizer = copy.deepcopy(optimizer)
    optimizer.engine = engine
    return optimizer


@pytest.mark.parametrize("engine", FAST)
def test_cell_gradients_for_every_input(engine):
    """All six inputs of one cell get the reference gradient (x and h included: second order)."""
    g = torch.Generator().manual_seed(3)
    N, I, H = 300, 20, 20
    tensors = [torch.randn(N, I, generator=g), torch.randn(N, H, generator=g),
               torch.randn(N, H, generator=g), 0.3 * torch.randn(4 * H, I, generator=g),
               0.3 * torch.randn(4 * H, H, generator=g), torch.randn(4 * H, generator=g)]
    weights = torch.randn(N, H, generator=g), torch.randn(N, H, generator=g)
    results = []
    for fast in (False, True):
        inputs = [t.clone().requires_grad_(True) for t in tensors]
        if fast:
            h, c = fused_lstm_cell(*inputs, native=engine == "native")
        else:
            h, c = lstm_cell(*inputs)
        ((h * weights[0]).sum() + (c * weights[1]).sum()).backward()
        results.append([h.detach(), c.detach()] + [t.grad for t in inputs])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(not _native.available(), reason="no C compiler: PyTorch fallback only")
def test_native_and_fallback_agree():
    torch.manual_seed(0)
    optimizer = LSTMOptimizer()
    u1, g1 = _rollout(optimizer, "native", n=1000)
    u2, g2 = _rollout(optimizer, "torch", n=1000)
    torch.testing.assert_close(u1, u2, rtol=1e-5, atol=1e-6)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * b.abs().max().item())


def test_float64_uses_pytorch_path():
    optimizer = LSTMOptimizer().double()
    grad = torch.randn(2, 50, dtype=torch.float64)
    update, _state = optimizer(grad, optimizer.init_state(grad))
    ref = _with_engine(optimizer, "reference")
    update_ref, _ = ref(grad, ref.init_state(grad))
    assert update.dtype == torch.float64
    torch.testing.assert_close(update, update_ref)


def test_engine_validation():
    with pytest.raises(ValueError):
        LSTMOptimizer(engine="fastest")
    optimizer = LSTMOptimizer()
    with pytest.raises(ValueError):
        optimizer.engine = "nope"
    assert "engine" not in optimizer.config()  # not part of checkpoints


def test_lstmcell_reference_computes_the_same_function():
    """The benchmark's nn.LSTMCell optimizer is a faithful copy of the LSTM optimizer."""
    torch.manual_seed(0)
    optimizer = LSTMOptimizer()
    reference = reference_optimizer(optimizer)
    assert isinstance(reference.net, LSTMCellNet)
    grad = torch.randn(2, 300)
    u1, _ = optimizer(grad, optimizer.init_state(grad))
    u2, _ = reference(grad, reference.init_state(grad))
    torch.testing.assert_close(u1, u2, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not _native.available(), reason="no C compiler: PyTorch fallback only")
@pytest.mark.parametrize("p", [10.0, 5.0, 1.0])
def test_native_gradient_encoding_matches_appendix_a(p):
    """The compiled encoding against preprocess_gradients, over 40 decades and at the edges: zero,
    the switch point e^-p, tiny, huge, ±inf and NaN; in one pass and split over threads."""
    from l2l.preprocessing import preprocess_gradients

    g = torch.Generator().manual_seed(0)
    edges = torch.tensor([0.0, -0.0, math.exp(-p), -math.exp(-p), 1e-30, -1e-38, 3e38,
                          float("inf"), float("-inf"), float("nan")])
    for n in (1000, 300_000):
        grad = torch.randn(n, generator=g) * 10.0 ** torch.randint(-20, 20, (n,), generator=g)
        grad = torch.cat([grad, edges])
        ours, ref = _native.encode(grad, p), preprocess_gradients(grad, p)
        assert ours.shape == ref.shape == (n + len(edges), 2)
        torch.testing.assert_close(ours, ref, rtol=2e-7, atol=2e-7, equal_nan=True)


@pytest.mark.skipif(not _native.available(), reason="no C compiler: PyTorch fallback only")
@pytest.mark.parametrize("hidden", [20, 7])
def test_native_gate_functions_match_torch(hidden):
    """σ and tanh inside the kernel (H = 20: a rational tanh on |x| ≤ 4, exp beyond) against
    float64 PyTorch: within 3e-7 everywhere, σ's tail to 2e-6 relative down to σ(−80) (the derivatives
    use σ(1 − σ)), ±1 / 0 / 1 for infinite inputs, NaN kept; lanes of one vector mix magnitudes."""
    g = torch.Generator().manual_seed(0)
    sweep = torch.cat([torch.linspace(-20, 20, 4001), torch.linspace(-4.01, 4.01, 2001),
                       torch.linspace(-8.02, 8.02, 2001), torch.randn(2000, generator=g) * 3,
                       torch.tensor([float("inf"), float("-inf"), float("nan"), 100.0, -100.0])])
    G = 4 * hidden
    # gate pre-activations a = x · w with w spread over [-2, 2]: every vector mixes scales
    w = torch.linspace(-2, 2, G)[torch.randperm(G, generator=g)]
    x = sweep.unsqueeze(1)
    zeros = torch.zeros(len(sweep), hidden)
    _, _, act, _ = _native.forward(x, zeros, zeros, w.unsqueeze(1), torch.zeros(G, hidden),
                                   torch.zeros(G), save=True)
    a = (x * w).double()  # [N, G]: the kernel's float products (one term each: no rounding sums)
    gate = torch.arange(G) // hidden  # 0 i, 1 f, 2 g, 3 o
    ref = torch.where(gate == 2, torch.tanh(a), torch.sigmoid(a))
    finite = a.isfinite()
    assert (act.double() - ref)[finite].abs().max() < 3e-7
    tail = (gate != 2) & (a < -8) & (a > -80)
    assert ((act.double() - ref)[tail].abs() / ref[tail]).max() < 2e-6
    infinite = a.isinf()  # σ(−∞) is e^-87 / (1 + e^-87) ≈ 6e-39 (exp's argument is clamped)
    torch.testing.assert_close(act[infinite].double(), ref[infinite], rtol=0, atol=1e-37)
    assert act[a.isnan()].isnan().all()
