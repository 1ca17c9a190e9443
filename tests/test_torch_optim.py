"""LearnedOptimizer: a trained update rule as a torch.optim.Optimizer on any nn.Module."""

import io

import pytest
import torch
from torch import nn
from torch.func import functional_call

import l2l
from l2l import LearnedOptimizer


def small_rule(seed=0):
    torch.manual_seed(seed)
    return l2l.LSTMOptimizer(hidden_size=8, preprocess=True, output_scale=0.1)


def small_cnn(seed=1):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(8 * 3 * 3, 10),
    )


def batch(step):
    g = torch.Generator().manual_seed(100 + step)
    return torch.randn(16, 1, 12, 12, generator=g), torch.randint(0, 10, (16,), generator=g)


def train(model, opt, steps, start=0):
    losses = []
    for t in range(start, start + steps):
        x, y = batch(t)
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_matches_the_functional_rule_on_flat_parameters():
    model, rule = small_cnn(), small_rule()
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).unsqueeze(0)
    state = rule.init_state(theta)
    opt = LearnedOptimizer(model.parameters(), optimizer=rule)
    for t in range(5):
        x, y = batch(t)
        flat = theta.detach().requires_grad_(True)
        views = dict(zip(names, (v.view(s) for v, s in
                                 zip(flat[0].split([s.numel() for s in shapes]), shapes))))
        loss = nn.functional.cross_entropy(functional_call(model, views, (x,)), y)
        (grad,) = torch.autograd.grad(loss, flat)
        with torch.no_grad():
            update, state = rule(grad, state)
        theta = theta + update
        train(model, opt, 1, start=t)
        ours = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        assert torch.equal(ours, theta[0])
    assert all(opt.state[p]["step"] == 5 for p in model.parameters())
    assert opt.state[next(model.parameters())]["lstm"][0].shape == (4 * 1 * 9, 8)


def test_learns_a_small_regression():
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    x = torch.randn(64, 4)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    rule = l2l.SGD(lr=0.1)  # any coordinatewise l2l rule runs, even a stateless one
    opt = LearnedOptimizer(model.parameters(), optimizer=rule)
    first = nn.functional.mse_loss(model(x), y).item()
    for _ in range(200):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    assert nn.functional.mse_loss(model(x), y).item() < 1e-3 * first


def test_state_dict_round_trip_continues_bit_for_bit(tmp_path):
    k, m = 4, 3
    model, opt = small_cnn(), None
    opt = LearnedOptimizer(model.parameters(), optimizer=small_rule())
    reference = train(model, opt, k + m)
    final = [p.detach().clone() for p in model.parameters()]

    model = small_cnn()
    opt = LearnedOptimizer(model.parameters(), optimizer=small_rule())
    first = train(model, opt, k)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    # a fresh model and an optimizer built around a different rule: the state dict restores all
    model = small_cnn(seed=7)
    opt = LearnedOptimizer(model.parameters(), optimizer=small_rule(seed=5))
    model.load_state_dict(saved["model"])
    opt.load_state_dict(saved["opt"])
    rest = train(model, opt, m, start=k)
    assert first + rest == reference
    for p, q in zip(model.parameters(), final):
        assert torch.equal(p, q)


def test_round_trip_keeps_float32_state_for_float64_parameters():
    model = small_cnn().double()
    opt = LearnedOptimizer(model.parameters(), optimizer=small_rule())
    x, y = batch(0)
    opt.zero_grad()
    nn.functional.cross_entropy(model(x.double()), y).backward()
    opt.step()
    fresh = LearnedOptimizer(model.parameters(), optimizer=small_rule())
    fresh.load_state_dict(opt.state_dict())
    for p in model.parameters():
        for a, b in zip(opt.state[p]["lstm"], fresh.state[p]["lstm"]):
            assert b.dtype == torch.float32 and torch.equal(a, b)


def test_none_gradients_are_skipped_and_keep_their_state():
    torch.manual_seed(0)
    used, unused = nn.Linear(3, 2), nn.Linear(3, 2)
    opt = LearnedOptimizer(list(used.parameters()) + list(unused.parameters()),
                           optimizer=small_rule())
    before = [p.detach().clone() for p in unused.parameters()]
    for _ in range(3):
        opt.zero_grad()
        used(torch.randn(5, 3)).pow(2).sum().backward()
        opt.step()
    for p, q in zip(unused.parameters(), before):
        assert torch.equal(p, q) and p not in opt.state
    assert all(opt.state[p]["step"] == 3 for p in used.parameters())

    # once it gets gradients it starts from a fresh state, and the others carry on
    opt.zero_grad()
    (used(torch.randn(5, 3)).sum() + unused(torch.randn(5, 3)).sum()).backward()
    opt.step()
    assert [opt.state[p]["step"] for p in opt.param_groups[0]["params"]] == [4, 4, 1, 1]
    assert not all(torch.equal(p, q) for p, q in zip(unused.parameters(), before))


def _nan_step(opt, model, step):
    """One step whose gradients hold a NaN (as an overflowing loss would give)."""
    x, y = batch(step)
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    next(model.parameters()).grad.view(-1)[0] = float("nan")
    opt.step()


def test_a_nan_gradient_spreads_as_in_torch_optim_unless_skipped():
    # the default, as torch.optim.Adam: the NaN reaches the parameter and its LSTM state
    model = small_cnn()
    opt = LearnedOptimizer(model.parameters(), optimizer=small_rule())
    train(model, opt, 2)
    _nan_step(opt, model, 2)
    first = next(model.parameters())
    assert torch.isnan(first).any() and torch.isnan(opt.state[first]["lstm"][0]).any()
    assert opt.skipped_steps == 0

    # skip_nonfinite: the step changes nothing; the run then goes on as if it never happened
    model, clean = small_cnn(), small_cnn()
    opt = LearnedOptimizer(model.parameters(), optimizer=small_rule(), skip_nonfinite=True)
    reference = LearnedOptimizer(clean.parameters(), optimizer=small_rule())
    train(model, opt, 2)
    train(clean, reference, 2)
    before = [p.detach().clone() for p in model.parameters()]
    _nan_step(opt, model, 2)
    assert opt.skipped_steps == 1
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before))
    assert all(opt.state[p]["step"] == 2 for p in model.parameters())
    train(model, opt, 3, start=3)
    train(clean, reference, 3, start=3)
    for p, q in zip(model.parameters(), clean.parameters()):
        assert torch.equal(p, q)


def test_sparse_gradients_raise_a_clear_error():
    embedding = nn.Embedding(10, 3, sparse=True)
    opt = LearnedOptimizer(embedding.parameters(), optimizer=small_rule())
    embedding(torch.tensor([1, 2])).sum().backward()
    weight = embedding.weight.detach().clone()
    with pytest.raises(RuntimeError, match="sparse gradients"):
        opt.step()
    assert torch.equal(embedding.weight, weight)


def test_bad_optimizer_specs_raise():
    params = nn.Linear(2, 2).parameters()
    with pytest.raises(l2l.checkpoint.CheckpointError, match="no pretrained optimizer"):
        LearnedOptimizer(params, optimizer="pretrained:no-such-thing")
    with pytest.raises(l2l.checkpoint.CheckpointError, match="does not exist"):
        LearnedOptimizer(params, optimizer="/no/such/file.pt")
    with pytest.raises(TypeError, match="l2l.Optimizer"):
        LearnedOptimizer(params, optimizer=torch.optim.SGD)
    with pytest.raises(ValueError, match="one row per coordinate"):
        LearnedOptimizer(params, optimizer=l2l.Adam())
    with pytest.raises(ValueError, match="complex"):
        LearnedOptimizer([nn.Parameter(torch.zeros(2, dtype=torch.complex64))],
                         optimizer=small_rule())


def test_loads_a_checkpoint_by_path(tmp_path):
    rule = small_rule()
    path = l2l.save_optimizer(rule, tmp_path / "rule.pt")
    model_a, model_b = small_cnn(), small_cnn()
    train(model_a, LearnedOptimizer(model_a.parameters(), optimizer=str(path)), 2)
    train(model_b, LearnedOptimizer(model_b.parameters(), optimizer=rule), 2)
    for p, q in zip(model_a.parameters(), model_b.parameters()):
        assert torch.equal(p, q)


def test_lr_scales_updates_per_group_and_works_with_schedulers():
    torch.manual_seed(0)
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    b.load_state_dict(a.state_dict())
    start = [p.detach().clone() for p in a.parameters()]
    rule = small_rule()
    opt = LearnedOptimizer([{"params": a.parameters()}, {"params": b.parameters(), "lr": 0.5}],
                           optimizer=rule)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.1)
    x = torch.randn(5, 3)
    (a(x).pow(2).sum() + b(x).pow(2).sum()).backward()
    opt.step()
    for p, q, s in zip(a.parameters(), b.parameters(), start):
        torch.testing.assert_close(q - s, 0.5 * (p - s))
    scheduler.step()
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.1, 0.05])
    with pytest.raises(ValueError, match="lr"):
        LearnedOptimizer(a.parameters(), optimizer=rule, lr=-1.0)


def test_lstm_group_must_name_one_of_the_rule_lstms():
    model, rule = nn.Linear(2, 2), small_rule()
    LearnedOptimizer(model.parameters(), optimizer=rule, lstm_group="all")
    LearnedOptimizer([{"params": [model.weight], "lstm_group": None}], optimizer=rule)
    with pytest.raises(ValueError, match="lstm_group 'conv'.*'all'"):
        LearnedOptimizer([{"params": [model.weight], "lstm_group": "conv"}], optimizer=rule)


def test_rule_with_one_lstm_per_group_routes_parameter_groups():
    from l2l import LSTMOptimizer

    torch.manual_seed(0)
    rule = LSTMOptimizer(hidden_size=4, groups=("conv", "other"))
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(8, 2))
    convs, rest = [model[0].weight], [model[0].bias, *model[2].parameters()]
    with pytest.raises(ValueError, match="give every parameter group an lstm_group"):
        opt = l2l.LearnedOptimizer(model.parameters(), rule)
        model(torch.randn(3, 1, 4, 4)).sum().backward()
        opt.step()
    opt = l2l.LearnedOptimizer([{"params": convs, "lstm_group": "conv"},
                                {"params": rest, "lstm_group": "other"}], rule)
    before = [p.detach().clone() for p in model.parameters()]
    opt.zero_grad()
    model(torch.randn(3, 1, 4, 4)).sum().backward()
    grad = model[0].weight.grad.reshape(1, -1).clone()
    opt.step()
    view = rule.group_rule("conv")
    expect, _ = view(grad, view.init_state(grad))
    torch.testing.assert_close(model[0].weight.detach().reshape(1, -1) - before[0].reshape(1, -1), expect)
    with pytest.raises(ValueError, match="not an LSTM of this learned optimizer"):
        l2l.LearnedOptimizer([{"params": convs, "lstm_group": "fc"}], rule)


def test_rule_with_adam_inputs_keeps_its_moments_per_parameter():
    """The moments are state per coordinate, so LearnedOptimizer splits and joins them like the
    LSTM's: the drop-in follows the functional rule exactly."""
    torch.manual_seed(3)
    rule = l2l.LSTMOptimizer(hidden_size=8, output_scale=0.1, adam_inputs=True)
    model = small_cnn()
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).unsqueeze(0)
    grads = [torch.randn_like(theta) for _ in range(3)]
    state = rule.init_state(theta)
    opt = LearnedOptimizer(model.parameters(), optimizer=rule)
    for grad in grads:
        with torch.no_grad():
            update, state = rule(grad, state)
        theta = theta + update
        for p, g in zip(model.parameters(), grad[0].split([q.numel() for q in model.parameters()])):
            p.grad = g.view_as(p).clone()
        opt.step()
    ours = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    torch.testing.assert_close(ours, theta[0], rtol=0, atol=1e-6)
    assert opt.state[next(model.parameters())]["lstm"][0].shape == (4 * 1 * 9,)


def test_a_run_past_the_training_horizon_is_said_once():
    import warnings

    from l2l import LearnedOptimizer

    model = torch.nn.Linear(3, 1)
    opt = LearnedOptimizer(model.parameters(), optimizer="pretrained:quadratic")
    assert opt.training_horizon() == 100
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(103):
            opt.zero_grad()
            model(torch.ones(2, 3)).pow(2).mean().backward()
            opt.step()
    said = [w for w in caught if "past the 100-step horizon" in str(w.message)]
    assert len(said) == 1 and "step 101" in str(said[0].message)
    assert said[0].filename == __file__  # it points at the caller's opt.step(), not at torch


def test_loading_a_rule_leaves_the_random_generator_alone(tmp_path):
    """A script that seeds, builds its model and then its optimizer draws the same dropout masks
    and shuffles whichever optimizer it builds."""
    path = l2l.save_optimizer(small_rule(), tmp_path / "rule.pt")
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    small_cnn()
    after_model = torch.rand(4)
    torch.manual_seed(3)
    model = small_cnn()
    LearnedOptimizer(model.parameters(), optimizer=str(path))
    assert torch.equal(torch.rand(4), after_model)
    assert not torch.equal(after_model, expected)  # the model itself does draw


def test_the_default_rule_trains_the_pytorch_examples_mnist_cnn(mnist_dir):
    """The default shipped rule on the CNN of pytorch/examples' MNIST script (1.2 M parameters,
    dropout, its own loop): finite losses that go down within a few steps."""
    from l2l.data import load_mnist

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Dropout(0.25), nn.Flatten(), nn.Linear(9216, 128), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(128, 10), nn.LogSoftmax(dim=1))
    opt = LearnedOptimizer(model.parameters())
    assert opt.rule.provenance["problem"].startswith("tasks:")
    images, labels = load_mnist("train")
    images = ((images[:640] - 0.1307) / 0.3081).view(-1, 1, 28, 28)
    losses = []
    for step in range(10):
        x, y = images[64 * step:64 * (step + 1)], labels[64 * step:64 * (step + 1)]
        opt.zero_grad()
        loss = nn.functional.nll_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-3:]) / 3 < 0.8 * losses[0]
