"""The CIFAR-10 convnet optimizees: label subsets, functional batch norm, agreement with
nn.Sequential, data streams, metrics, and the parameter groups of the paper's two LSTMs."""

import math

import pytest
import torch
from torch import nn

from l2l import data
from l2l.optimizers import Adam
from l2l.problems import Cifar10, Cifar10Optimizee, Quadratic, group_coordinates, make_problem
from l2l.problems.base import layout_slices
from l2l.problems.cifar import (
    GROUP_RULES,
    batch_norm,
    convnet_layout,
    convnet_logits,
    format_labels,
    named_views,
    normalise,
    parse_labels,
)
from l2l.rollout import run
from l2l.seeding import generator
from l2l.specs import SpecError


def fake_split(n, seed):
    """uint8 images ``[n, 3, 32, 32]`` and labels ``[n]`` (every label present)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    return images, torch.arange(n) % 10


def synthetic_optimizee(B=2, labels=(0, 3, 7), channels=4, hidden=6, batch=8, dtype=torch.float64):
    """A small convnet optimizee on random images (no files needed)."""
    g = torch.Generator().manual_seed(1)
    layout = convnet_layout(len(labels), channels, hidden)
    n = sum(math.prod(shape) for _, shape in layout)
    theta0 = 0.3 * torch.randn(B, n, generator=g, dtype=dtype)
    seeds = torch.randint(0, 2**62, (B,), generator=g)
    return Cifar10Optimizee(theta0, layout, labels, seeds, batch, fake_split(60, 2), fake_split(23, 3))


def sequential(theta_b, layout) -> nn.Sequential:
    """The same convnet as nn modules (BatchNorm in training mode, weight 1), float64."""
    p = {name: v[0] for name, v in named_views(theta_b.detach().double().unsqueeze(0), layout).items()}
    modules = []
    for i in (1, 2, 3):
        weight = p[f"conv{i}.weight"]
        conv = nn.Conv2d(weight.shape[1], weight.shape[0], 5, padding=2, bias=False)
        norm = nn.BatchNorm2d(weight.shape[0])
        conv.weight.data, norm.bias.data = weight.clone(), p[f"conv{i}.shift"].clone()
        modules += [conv, norm, nn.ReLU(), nn.MaxPool2d(2)]
    fc = nn.Linear(p["fc.weight"].shape[1], p["fc.weight"].shape[0], bias=False)
    norm = nn.BatchNorm1d(p["fc.weight"].shape[0])
    out = nn.Linear(p["out.weight"].shape[1], p["out.weight"].shape[0])
    fc.weight.data, norm.bias.data = p["fc.weight"].clone(), p["fc.shift"].clone()
    out.weight.data, out.bias.data = p["out.weight"].clone(), p["out.bias"].clone()
    modules += [nn.Flatten(), fc, norm, nn.ReLU(), out]
    return nn.Sequential(*modules).double().train()


def flat_grad(net: nn.Sequential, layout) -> torch.Tensor:
    """The gradients of the module's parameters in θ's layout order (BN weights left out)."""
    grads = {}
    convs = [m for m in net if isinstance(m, nn.Conv2d)]
    norms = [m for m in net if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    linears = [m for m in net if isinstance(m, nn.Linear)]
    for i, (conv, norm) in enumerate(zip(convs, norms), 1):
        grads[f"conv{i}.weight"], grads[f"conv{i}.shift"] = conv.weight.grad, norm.bias.grad
    grads["fc.weight"], grads["fc.shift"] = linears[0].weight.grad, norms[3].bias.grad
    grads["out.weight"], grads["out.bias"] = linears[1].weight.grad, linears[1].bias.grad
    return torch.cat([grads[name].reshape(-1) for name, _ in layout])


# ----------------------------------------------------------------------------- labels, specs

def test_label_spellings():
    assert parse_labels("0-9") == tuple(range(10))
    assert parse_labels("0-4") == (0, 1, 2, 3, 4) and parse_labels("5-9") == (5, 6, 7, 8, 9)
    assert parse_labels("0-1") == parse_labels("0,1") == parse_labels("1+0") == (0, 1)
    assert parse_labels("0-1+5-6") == (0, 1, 5, 6) and parse_labels("3 3 4") == (3, 4)
    for labels in [(0, 1), (0, 1, 2, 5), (1, 3, 5, 7, 9), tuple(range(10)), (2, 3, 4, 8, 9)]:
        assert parse_labels(format_labels(labels)) == labels
    assert format_labels((0, 1, 2, 5)) == "0-2+5" and format_labels(range(10)) == "0-9"
    for bad in ["", "3", "0-10", "4-2", "a-b", "0-", "-1", "1.5"]:
        with pytest.raises(ValueError):
            parse_labels(bad)


def test_spec_parsing_and_complements():
    problem = make_problem("cifar10:labels=0-4")
    assert problem.subset == (0, 1, 2, 3, 4) and problem.spec() == "cifar10:labels=0-4"
    assert problem.labels == "0-4"  # every option is kept in its spelling
    assert make_problem(problem.spec()).config() == problem.config()
    assert make_problem("cifar10").spec() == "cifar10:labels=0-9"
    assert make_problem("cifar10:labels=0+1").spec() == "cifar10:labels=0-1"
    assert make_problem("cifar10:labels=0-1,channels=8").spec() == "cifar10:labels=0-1,channels=8"
    assert problem.complement().spec() == "cifar10:labels=5-9"
    assert make_problem("cifar10:labels=0-1").complement().subset == tuple(range(2, 10))
    with pytest.raises(ValueError, match="fewer than 2"):
        make_problem("cifar10:labels=0-8").complement()
    with pytest.raises(SpecError, match="labels are 0…9"):
        make_problem("cifar10:labels=3-12")
    with pytest.raises(SpecError, match="options: labels, channels"):
        make_problem("cifar10:classes=5")
    # the paper's two LSTMs (Section 3.3), and the shipped recipe's horizon and unroll
    assert problem.optimizer_defaults["groups"] == ("conv", "other")
    assert problem.training_defaults["horizon"] == 200 and problem.training_defaults["unroll"] == 20


def test_layout():
    layout = convnet_layout()
    assert [name for name, _ in layout] == [
        "conv1.weight", "conv1.shift", "conv2.weight", "conv2.shift", "conv3.weight",
        "conv3.shift", "fc.weight", "fc.shift", "out.weight", "out.bias"]
    assert dict(layout)["fc.weight"] == (32, 256) and dict(layout)["conv1.weight"] == (16, 3, 5, 5)
    assert Cifar10().num_params == 22602 and Cifar10("0-4").num_params == 22437
    assert Cifar10("0-1").num_params == 22338
    theta = torch.arange(2 * 22602.0).view(2, 22602)
    views = named_views(theta, layout)
    assert views["conv1.weight"].shape == (2, 16, 3, 5, 5) and views["out.bias"].shape == (2, 10)
    assert views["conv1.shift"][0, 0] == 1200 and views["out.bias"][1, -1] == 2 * 22602 - 1
    assert views["fc.weight"].data_ptr() == theta.data_ptr() + 4 * (1200 + 16 + 2 * 6416)
    with pytest.raises(ValueError, match="needs"):
        named_views(theta[:, 1:], layout)


# ----------------------------------------------------------------------------- the network

@pytest.mark.parametrize("shape", [(6, 4, 5, 5), (6, 4)])
def test_batch_norm_matches_torch_training_mode(shape):
    """Values and gradients (input and shift) of nn.BatchNorm{1,2}d in training mode, weight 1."""
    g = torch.Generator().manual_seed(0)
    x = (3 * torch.randn(*shape, generator=g, dtype=torch.float64) + 1).requires_grad_(True)
    shift = torch.randn(shape[1], generator=g, dtype=torch.float64).requires_grad_(True)
    weights = torch.randn(*shape, generator=g, dtype=torch.float64)
    y = batch_norm(x, shift)
    dx, dshift = torch.autograd.grad((y * weights).sum(), (x, shift))
    module = (nn.BatchNorm2d if len(shape) == 4 else nn.BatchNorm1d)(shape[1]).double().train()
    module.bias.data = shift.detach().clone()
    x2 = x.detach().clone().requires_grad_(True)
    y2 = module(x2)
    (y2 * weights).sum().backward()
    torch.testing.assert_close(y, y2, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(dx, x2.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(dshift, module.bias.grad, rtol=1e-10, atol=1e-12)


def test_batch_norm_statistics_stay_per_network():
    """B networks side by side as channel blocks [M, B·C, H, W]: each normalised on its own."""
    x = torch.randn(5, 2 * 3, 4, 4, dtype=torch.float64)
    x[:, 3:] = 100 * x[:, 3:] + 7  # the second network's activations, on another scale
    shift = torch.randn(2, 3, dtype=torch.float64)
    y = batch_norm(x, shift.flatten())
    for b in range(2):
        alone = batch_norm(x[:, 3 * b:3 * b + 3], shift[b])
        torch.testing.assert_close(y[:, 3 * b:3 * b + 3], alone)


def test_loss_and_gradient_match_nn_sequential():
    optimizee = synthetic_optimizee()
    theta = optimizee.theta0.clone().requires_grad_(True)
    loss = optimizee.loss(theta, step=3)
    assert loss.shape == (2,) and loss.dtype == torch.float64
    (grad,) = torch.autograd.grad(loss.sum(), theta)
    x, y = optimizee.minibatch(3, torch.float64)
    assert x.shape == (2, 8, 3, 32, 32) and y.shape == (2, 8)
    for b in range(2):
        net = sequential(theta[b], optimizee.layout)
        expected = nn.functional.cross_entropy(net(x[b]), y[b])
        assert loss[b].item() == pytest.approx(expected.item(), rel=1e-10)
        expected.backward()
        torch.testing.assert_close(grad[b], flat_grad(net, optimizee.layout), rtol=1e-8, atol=1e-11)


def test_paper_sized_network_matches_nn_sequential():
    """The default sizes (16 channels, FC 32, 10 classes) on shared images, B = 2."""
    g = torch.Generator().manual_seed(0)
    layout = convnet_layout()
    theta = 0.1 * torch.randn(2, 22602, generator=g, dtype=torch.float64)
    x = normalise(fake_split(4, 5)[0], torch.float64)
    logits = convnet_logits(theta, layout, x)
    assert logits.shape == (2, 4, 10)
    for b in range(2):
        torch.testing.assert_close(logits[b], sequential(theta[b], layout)(x), rtol=1e-9, atol=1e-11)
    per_network = convnet_logits(theta, layout, x.expand(2, -1, -1, -1, -1))
    torch.testing.assert_close(per_network, logits)


def test_normalise():
    images = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1).expand(2, 3, 2, 2)
    x = normalise(images)
    mean, std = torch.tensor(data.CIFAR10_MEAN), torch.tensor(data.CIFAR10_STD)
    torch.testing.assert_close(x[0, :, 0, 0], -mean / std)
    torch.testing.assert_close(x[1, :, 1, 1], (1 - mean) / std)


# ----------------------------------------------------------------------------- data streams

def test_label_subset_and_remapping():
    optimizee = synthetic_optimizee(B=3, labels=(2, 5), batch=32)
    assert optimizee.classes.tolist() == [-1, -1, 0, -1, -1, 1, -1, -1, -1, -1]
    rows = optimizee.indices(0)
    assert set(optimizee.train[1][rows].unique().tolist()) == {2, 5}
    x, y = optimizee.minibatch(0)
    torch.testing.assert_close(y, (optimizee.train[1][rows] == 5).long())
    torch.testing.assert_close(x, normalise(optimizee.train[0][rows]))
    assert set(optimizee.test[1][optimizee.test_rows].tolist()) == {2, 5}
    logits = optimizee.logits(optimizee.theta0, x)
    assert logits.shape == (3, 32, 2)


def test_minibatch_streams_are_deterministic_and_distinct():
    optimizee = synthetic_optimizee(B=2, batch=16)
    later = optimizee.indices(5)
    first = optimizee.indices(0)
    assert torch.equal(optimizee.indices(5), later)
    assert not torch.equal(first, later) and not torch.equal(first[0], first[1])


def test_metrics_match_a_direct_computation():
    optimizee = synthetic_optimizee(batch=4)
    metrics = optimizee.metrics(optimizee.theta0)
    assert set(metrics) == {"test_loss", "test_acc"}
    images = optimizee.test[0][optimizee.test_rows]  # 7 test images of labels 0, 3, 7
    classes = optimizee.classes[optimizee.test[1][optimizee.test_rows]]
    assert len(classes) == 7
    for b in range(2):
        net = sequential(optimizee.theta0[b], optimizee.layout)
        logits = torch.cat([net(normalise(x, torch.float64)) for x in images.tensor_split(2)])
        loss = nn.functional.cross_entropy(logits, classes).item()
        acc = (logits.argmax(1) == classes).double().mean().item()
        assert metrics["test_loss"][b].item() == pytest.approx(loss, rel=1e-9)
        assert metrics["test_acc"][b].item() == pytest.approx(acc)


def test_float32_parameters():
    optimizee = synthetic_optimizee(dtype=torch.float32)
    loss32 = optimizee.loss(optimizee.theta0, 0)
    assert loss32.dtype == torch.float32
    torch.testing.assert_close(loss32.double(), optimizee.loss(optimizee.theta0.double(), 0),
                               rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- parameter groups

def test_coordinate_groups_route_conv_weights_to_conv():
    optimizee = synthetic_optimizee()
    groups = optimizee.coordinate_groups()
    assert list(groups) == ["conv", "other"]
    n = optimizee.theta0.shape[1]
    every = torch.cat(list(groups.values()))
    assert torch.equal(every.sort().values, torch.arange(n))  # each coordinate exactly once
    slices = layout_slices(optimizee.layout)
    conv = set(groups["conv"].tolist())
    for name, where in slices.items():
        inside = set(range(where.start, where.stop)) <= conv
        assert inside == (name.startswith("conv") and name.endswith(".weight")), name
    assert len(groups["conv"]) == 4 * 3 * 25 + 2 * 4 * 4 * 25
    paper = Cifar10().coordinate_groups()
    assert len(paper["conv"]) == 14000 and len(paper["other"]) == 8602
    assert Cifar10.group_rules == GROUP_RULES and Cifar10().group_names() == ("conv", "other")


def test_group_rules_are_data():
    layout = [("conv1.weight", (2, 1, 3, 3)), ("conv1.shift", (2,)), ("fc.weight", (3, 2)),
              ("out.bias", (3,))]
    by_shape = group_coordinates(layout, {"conv": lambda name, shape: len(shape) == 4})
    by_name = group_coordinates(layout, {"conv": "conv*.weight"})
    for groups in (by_shape, by_name):
        assert groups["conv"].tolist() == list(range(18))
        assert groups["other"].tolist() == list(range(18, 29))
    first_wins = group_coordinates(layout, {"weights": "*.weight", "conv": "conv*", "empty": "x*"},
                                   default="rest")
    assert list(first_wins) == ["weights", "conv", "empty", "rest"]
    assert first_wins["weights"].tolist() == list(range(18)) + list(range(20, 26))
    assert first_wins["conv"].tolist() == [18, 19] and first_wins["empty"].dtype == torch.long
    assert len(first_wins["empty"]) == 0 and first_wins["rest"].tolist() == [26, 27, 28]
    with pytest.raises(ValueError, match="default"):
        group_coordinates(layout, {"other": "*"})
    with pytest.raises(ValueError, match="twice"):
        group_coordinates(layout + [("out.bias", (1,))], {})


def test_problems_without_layout_have_one_group():
    optimizee = Quadratic(dim=7).sample(3, generator(0, "train"))
    groups = optimizee.coordinate_groups()
    assert list(groups) == ["other"] and groups["other"].tolist() == list(range(7))
    assert Quadratic().group_names() == ("other",)


# ----------------------------------------------------------------------------- real data

def test_real_cifar2_optimizee(shared_data_dir):
    """CIFAR-2 on the real data: initial loss ln 2, Adam makes progress in 10 steps."""
    if data.cifar10_source() == "missing":
        pytest.skip(f"CIFAR-10 absent from {data.cifar10_folder()}")
    problem = make_problem("cifar10:labels=0-1")
    optimizee = problem.sample(2, generator(0, "test"))
    assert optimizee.theta0.shape == (2, 22338) and abs(optimizee.theta0.std().item() - 0.01) < 1e-3
    assert torch.equal(problem.sample(2, generator(0, "test")).indices(4), optimizee.indices(4))
    assert set(optimizee.train[1][optimizee.indices(0)].unique().tolist()) <= {0, 1}
    losses, _theta = run(optimizee, Adam(0.01), 10)
    assert losses[0].mean().item() == pytest.approx(math.log(2), abs=0.02)
    assert losses[-3:].mean().item() < losses[0].mean().item() - 0.1
    assert len(optimizee.test_rows) == 2000


@pytest.mark.parametrize("second_order", [False, True])
def test_meta_gradient_flows_through_the_unrolled_convnet(second_order):
    """A 3-step truncated unroll with the LSTM optimizer: batch norm, pooling and grouped
    convolutions stay differentiable in θ (and twice, for the second-order ablation)."""
    from l2l.optimizers import LSTMOptimizer
    from l2l.rollout import unroll

    torch.manual_seed(0)
    optimizee = synthetic_optimizee(B=2, dtype=torch.float32)
    optimizer = LSTMOptimizer(groups=("conv", "other"))
    theta = optimizee.theta0
    state = optimizer.init_state(theta, groups=optimizee.coordinate_groups())
    path = unroll(optimizee, optimizer, theta, state, 0, 3, second_order=second_order)
    assert path.losses.shape == (3, 2) and path.theta.shape == optimizee.theta0.shape
    path.losses.sum().backward()
    grads = [p.grad for p in optimizer.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


def test_meta_training_step_with_one_lstm_per_group(shared_data_dir):
    """The default CIFAR optimizer has a conv LSTM and an 'other' LSTM; a tiny unroll trains both."""
    from l2l.meta import MetaConfig, MetaTrainer

    if data.cifar10_source() == "missing":
        pytest.skip(f"CIFAR-10 absent from {data.cifar10_folder()}")
    torch.manual_seed(0)
    problem = Cifar10(labels="0-1", channels=4, hidden=8, batch=16)
    config = MetaConfig(epochs=1, batch_size=1, horizon=4, unroll=2, validate_every=1,
                        validation_size=1)
    trainer = MetaTrainer(problem, config=config, progress=False)
    assert trainer.optimizer.groups == ("conv", "other")
    before = {k: v.clone() for k, v in trainer.optimizer.state_dict().items()}
    trainer.train_epoch(0)
    after = trainer.optimizer.state_dict()
    assert not torch.equal(before["nets.conv.readout.weight"], after["nets.conv.readout.weight"])
    assert not torch.equal(before["nets.other.readout.weight"], after["nets.other.readout.weight"])


@pytest.mark.parametrize("name, labels", [
    ("cifar10", "0-9"), ("cifar5", "0-4"), ("cifar5_sub", "5-9"), ("cifar2", "0-1"),
    ("cifar2_sub", "2-9"),
])
def test_shipped_cifar_optimizers_run_on_a_convnet(name, labels):
    """Every shipped CIFAR optimizer keeps the paper's two LSTMs (convolutions, the rest), was
    meta-trained on the labels it claims (LSTM-sub: none of its test labels), records how it was
    made, and drives a convnet without blowing up."""
    from l2l.checkpoint import load_optimizer

    optimizer = load_optimizer(f"pretrained:{name}")
    assert optimizer.groups == ("conv", "other")
    provenance = optimizer.provenance
    assert provenance["problem"] == f"cifar10:labels={labels}"
    assert provenance["training"]["imitate"] == "nag:0.0215"
    optimizee = synthetic_optimizee(B=2, dtype=torch.float32)
    losses, theta = run(optimizee, optimizer, 10)
    assert torch.isfinite(losses).all() and torch.isfinite(theta).all()
    assert not torch.equal(theta, optimizee.theta0)
