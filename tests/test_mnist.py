"""The MNIST MLP optimizees: layout of θ, agreement with nn.Sequential, data streams, specs."""

import math

import pytest
import torch
from torch import nn

from l2l import data
from l2l.optimizers import Adam
from l2l.problems import Mnist, MnistOptimizee, make_problem
from l2l.problems.mnist import ACTIVATIONS, layer_sizes, mlp_logits, num_params, unflatten
from l2l.rollout import run
from l2l.seeding import generator
from l2l.specs import SpecError

MODULES = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "tanh": nn.Tanh}


def sequential(theta_b: torch.Tensor, sizes, activation: str) -> nn.Sequential:
    """An nn.Sequential MLP holding the weights of one network's flat θ ``[n]``."""
    modules = []
    for k, (i, o) in enumerate(zip(sizes[:-1], sizes[1:])):
        modules.append(nn.Linear(i, o))
        if k < len(sizes) - 2:
            modules.append(MODULES[activation]())
    net = nn.Sequential(*modules).double()
    torch.nn.utils.vector_to_parameters(theta_b.detach().double(), net.parameters())
    return net


def synthetic_optimizee(B=3, hidden=7, layers=1, activation="sigmoid", batch=16, n_train=50):
    """An optimizee on random data of MNIST's shape (no files needed), in float64."""
    g = torch.Generator().manual_seed(0)
    sizes = layer_sizes(hidden, layers)
    theta0 = torch.randn(B, num_params(sizes), generator=g, dtype=torch.float64) * 0.3
    train = (torch.rand(n_train, 784, generator=g, dtype=torch.float64),
             torch.randint(10, (n_train,), generator=g))
    test = (torch.rand(20, 784, generator=g, dtype=torch.float64), torch.randint(10, (20,), generator=g))
    seeds = torch.randint(0, 2**62, (B,), generator=g)
    return MnistOptimizee(theta0, sizes, ACTIVATIONS[activation], seeds, batch, train, test)


def test_sizes_and_layout():
    assert layer_sizes(20, 1) == [784, 20, 10]
    assert layer_sizes(30, 2) == [784, 30, 30, 10]
    assert num_params([784, 20, 10]) == 15910  # the paper's optimizee
    assert Mnist().num_params == 15910 and Mnist(layers=0).num_params == 7850
    theta = torch.arange(2 * 15910.0).view(2, 15910)
    (w1, b1), (w2, b2) = unflatten(theta, [784, 20, 10])
    assert w1.shape == (2, 20, 784) and b1.shape == (2, 20)
    assert w2.shape == (2, 10, 20) and b2.shape == (2, 10)
    assert w1[1, 0, 0] == 15910 and b1[0, 0] == 20 * 784 and b2[0, -1] == 15909
    assert w1.data_ptr() == theta.data_ptr()  # views, not copies
    with pytest.raises(ValueError, match="need"):
        unflatten(theta[:, :-1], [784, 20, 10])


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "tanh"])
@pytest.mark.parametrize("layers", [0, 1, 2])
def test_loss_and_gradient_match_nn_sequential(activation, layers):
    optimizee = synthetic_optimizee(layers=layers, activation=activation)
    theta = optimizee.theta0.clone().requires_grad_(True)
    loss = optimizee.loss(theta, step=4)
    assert loss.shape == (3,)
    (grad,) = torch.autograd.grad(loss.sum(), theta)
    x, y = optimizee.minibatch(4, torch.float64)
    assert x.shape == (3, 16, 784) and y.shape == (3, 16)
    for b in range(3):
        net = sequential(theta[b], optimizee.sizes, activation)
        expected = nn.functional.cross_entropy(net(x[b]), y[b])
        assert loss[b].item() == pytest.approx(expected.item(), rel=1e-10)
        expected.backward()
        expected_grad = torch.cat([p.grad.reshape(-1) for p in net.parameters()])
        torch.testing.assert_close(grad[b], expected_grad, rtol=1e-9, atol=1e-12)


def test_shared_inputs_agree_with_per_network_inputs():
    optimizee = synthetic_optimizee(layers=2, activation="tanh")
    x = torch.rand(9, 784, dtype=torch.float64)
    shared = mlp_logits(optimizee.theta0, optimizee.sizes, torch.tanh, x)
    per_network = mlp_logits(optimizee.theta0, optimizee.sizes, torch.tanh, x.expand(3, -1, -1))
    assert shared.shape == (3, 9, 10)
    torch.testing.assert_close(shared, per_network)


def test_batch_norm_normalises_each_hidden_unit_over_the_minibatch():
    optimizee = synthetic_optimizee(layers=2, activation="relu")
    x = torch.rand(3, 16, 784, dtype=torch.float64)
    seen = []
    identity = lambda h: seen.append(h) or h  # records the pre-activations
    mlp_logits(optimizee.theta0, optimizee.sizes, identity, x, norm=True)
    for h in seen:  # [B, M, hidden]: mean 0 and variance 1 over each network's M examples
        torch.testing.assert_close(h.mean(1), torch.zeros_like(h.mean(1)), atol=1e-10, rtol=0)
        torch.testing.assert_close(h.var(1, unbiased=False), torch.ones_like(h[:, 0]), atol=1e-3,
                                   rtol=0)
    # batch statistics: the same image gets different logits in a different minibatch
    other = torch.cat([x[:, :1], torch.rand(3, 15, 784, dtype=torch.float64)], 1)
    a = mlp_logits(optimizee.theta0, optimizee.sizes, torch.relu, x, norm=True)[:, 0]
    b = mlp_logits(optimizee.theta0, optimizee.sizes, torch.relu, other, norm=True)[:, 0]
    assert not torch.allclose(a, b)


def test_dropout_masks_are_reproducible_per_network_and_step_and_spare_the_metrics():
    plain = synthetic_optimizee(layers=2, activation="relu")
    dropped = MnistOptimizee(plain.theta0, plain.sizes, torch.relu, plain.seeds, plain.batch,
                             plain.train, plain.test, dropout=0.5)
    masks = dropped.dropout_masks(3, "cpu", torch.float64)
    assert [m.shape for m in masks] == [(3, 16, 7), (3, 16, 7)]
    assert set(masks[0].unique().tolist()) == {0.0, 2.0}  # inverted dropout: kept units × 1/(1−p)
    for a, b in zip(masks, dropped.dropout_masks(3, "cpu", torch.float64)):
        assert torch.equal(a, b)
    assert not torch.equal(masks[0], dropped.dropout_masks(4, "cpu", torch.float64)[0])
    assert not torch.equal(masks[0][0], masks[0][1])  # each network its own
    loss = dropped.loss(dropped.theta0, 3)
    assert torch.equal(loss, dropped.loss(dropped.theta0, 3))
    assert not torch.allclose(loss, plain.loss(plain.theta0, 3))
    theta = dropped.theta0.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(dropped.loss(theta, 3).sum(), theta)
    assert torch.isfinite(grad).all()
    for key, value in dropped.metrics(dropped.theta0).items():  # whole sets: no dropout
        torch.testing.assert_close(value, plain.metrics(plain.theta0)[key])


def test_metrics_match_a_direct_computation(monkeypatch):
    optimizee = synthetic_optimizee()
    monkeypatch.setattr("l2l.problems.mnist.METRICS_BUDGET", 1)  # force many small chunks
    metrics = optimizee.metrics(optimizee.theta0)
    assert set(metrics) == {"train_loss", "train_acc", "test_loss", "test_acc"}
    for split, (x, y) in (("train", optimizee.train), ("test", optimizee.test)):
        for b in range(3):
            logits = sequential(optimizee.theta0[b], optimizee.sizes, "sigmoid")(x)
            loss = nn.functional.cross_entropy(logits, y).item()
            acc = (logits.argmax(1) == y).double().mean().item()
            assert metrics[f"{split}_loss"][b].item() == pytest.approx(loss, rel=1e-9)
            assert metrics[f"{split}_acc"][b].item() == pytest.approx(acc)


def test_minibatch_streams_are_deterministic_and_distinct():
    optimizee = synthetic_optimizee(batch=32)
    later = optimizee.indices(5)
    first = optimizee.indices(0)
    assert torch.equal(optimizee.indices(5), later)  # order of the requests does not matter
    assert not torch.equal(first, later)  # steps see different minibatches
    assert not torch.equal(first[0], first[1])  # so do the networks
    assert first.min() >= 0 and first.max() < 50


def test_spec_parsing():
    problem = make_problem("mnist:hidden=30,layers=2")
    assert (problem.hidden, problem.layers, problem.activation) == (30, 2, "sigmoid")
    assert problem.spec() == "mnist:hidden=30,layers=2,activation=sigmoid"
    assert make_problem(problem.spec()).config() == problem.config()
    assert make_problem("mnist").spec() == "mnist:hidden=20,layers=1,activation=sigmoid"
    assert make_problem("mnist:activation=relu").activation == "relu"
    assert make_problem("mnist:hidden=40").sizes == [784, 40, 10]
    assert make_problem("mnist:batch=64").spec().endswith(",batch=64")
    with pytest.raises(SpecError, match="known: sigmoid, relu, tanh"):
        make_problem("mnist:activation=swish")
    with pytest.raises(ValueError, match="sigmoid"):
        Mnist(activation="swish")
    with pytest.raises(SpecError, match="options: hidden, layers, activation"):
        make_problem("mnist:width=3")
    assert Mnist().optimizer_defaults == {"hidden_size": 20, "num_layers": 2, "preprocess": True,
                                          "p": 10.0, "output_scale": 0.1, "groups": None,
                                          "adam_inputs": False, "relative": False}


def test_built_without_data_and_sample_says_where_to_put_it(monkeypatch, tmp_path):
    problem = Mnist(data_dir=str(tmp_path))  # no files there: building is fine
    monkeypatch.setattr(data, "MNIST_MIRRORS", [])  # offline
    with pytest.raises(data.DataUnavailableError, match="L2L_DATA"):
        problem.sample(2, generator(0, "train"))


def test_real_mnist_optimizee(mnist_dir):
    """The paper's optimizee on the real data: initial loss ≈ ln 10, Adam makes progress."""
    problem = make_problem("mnist")
    optimizee = problem.sample(4, generator(0, "test"))
    assert optimizee.theta0.shape == (4, 15910) and optimizee.theta0.is_contiguous()
    assert abs(optimizee.theta0.std().item() - 0.01) < 1e-3
    again = problem.sample(4, generator(0, "test"))
    assert torch.equal(again.theta0, optimizee.theta0)
    assert torch.equal(again.indices(3), optimizee.indices(3))
    losses, theta = run(optimizee, Adam(0.03), 20)
    assert losses.shape == (21, 4) and theta.shape == (4, 15910)
    assert losses[0].mean().item() == pytest.approx(math.log(10), abs=0.01)
    assert losses[-1].mean().item() < 1.5
    metrics = optimizee.metrics(theta)
    assert all(v.shape == (4,) for v in metrics.values())
    assert (metrics["test_acc"] > 0.5).all() and (metrics["train_loss"] < 1.5).all()


def test_float64_parameters_on_float32_data():
    optimizee = synthetic_optimizee()
    optimizee.train = (optimizee.train[0].float(), optimizee.train[1])
    theta = optimizee.theta0.double()
    loss64 = optimizee.loss(theta, 0)
    assert loss64.dtype == torch.float64
    torch.testing.assert_close(optimizee.loss(theta.float(), 0).double(), loss64, rtol=1e-5, atol=1e-6)


def test_meta_training_beats_tuned_sgd_on_a_small_mlp(mnist_dir):
    """Convergence check (about 50 s on 2 quiet CPU cores): 200 meta-training epochs on MLPs with 5
    hidden units over 40 steps give an optimizer that ends below SGD with a tuned learning rate,
    on fresh test optimizees (measured with 2 threads: 1.14 vs 1.38; 1.04 and 1.12 when
    meta-trained from seeds 1 and 3). After 100 epochs the result still depended on the seed and
    on float rounding (1.09–1.35 over four seeds and two commits), too close to SGD to test."""
    from l2l.evaluate import final_score, rollout_batched, tune_learning_rate
    from l2l.meta import MetaConfig, MetaTrainer
    from l2l.optimizers import SGD

    problem, steps = make_problem("mnist:hidden=5"), 40
    config = MetaConfig(epochs=200, batch_size=1, horizon=steps, unroll=20, meta_lr=3e-3,
                        validate_every=20, validation_size=8)
    learned = MetaTrainer(problem, config=config, progress=False).train().optimizer
    lr, _ = tune_learning_rate(problem, "sgd", steps, runs=16)
    lstm, _ = rollout_batched(problem, learned, steps, 16, 0, "test")
    sgd, _ = rollout_batched(problem, SGD(lr), steps, 16, 0, "test")
    assert final_score(lstm) < final_score(sgd) - 0.1


def test_evaluation_reports_end_of_run_metrics(mnist_dir):
    """`evaluate` returns the full-set loss and accuracy of every test network."""
    import l2l

    (curve,) = l2l.evaluate("mnist:hidden=5", ["sgd:0.5"], steps=2, runs=2, progress=False)
    assert set(curve.metrics) == {"train_loss", "train_acc", "test_loss", "test_acc"}
    assert curve.metrics["test_acc"].shape == (2,)
    assert "test_acc" in curve.summary()
