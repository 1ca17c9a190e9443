import math

import pytest
import torch

from l2l.optimizers import NAG, SGD, Adam, CoordinatewiseLSTM, LSTMOptimizer, RMSprop


def test_lstm_step_golden_numbers():
    """One layer, one unit: the LSTM equations by hand."""
    net = CoordinatewiseLSTM(input_size=1, hidden_size=1, num_layers=1)
    with torch.no_grad():
        net.w_ih[0].copy_(torch.tensor([[0.1], [0.2], [0.3], [0.4]]))
        net.w_hh[0].copy_(torch.tensor([[0.5], [0.6], [0.7], [0.8]]))
        net.bias[0].copy_(torch.tensor([0.01, -0.02, 0.03, -0.04]))
        net.readout.weight.fill_(2.0)
        net.readout.bias.fill_(-0.5)
    x, h, c = 1.0, 0.5, 0.2
    sig = lambda z: 1 / (1 + math.exp(-z))
    i, f, g, o = 0.1 * x + 0.5 * h + 0.01, 0.2 * x + 0.6 * h - 0.02, 0.3 * x + 0.7 * h + 0.03, 0.4 * x + 0.8 * h - 0.04
    c_new = sig(f) * c + sig(i) * math.tanh(g)
    h_new = sig(o) * math.tanh(c_new)
    out, (h1, c1) = net(torch.tensor([[x]]), (torch.tensor([[h]]), torch.tensor([[c]])))
    assert c1.item() == pytest.approx(c_new, rel=1e-6)
    assert h1.item() == pytest.approx(h_new, rel=1e-6)
    assert out.item() == pytest.approx(2 * h_new - 0.5, rel=1e-6)
    # the same numbers as literals, so a change of the cell's equations cannot go unnoticed
    assert c_new == pytest.approx(0.4719784, abs=1e-6)
    assert h_new == pytest.approx(0.2996570, abs=1e-6)


def test_lstm_matches_torch_lstmcell():
    torch.manual_seed(0)
    net = CoordinatewiseLSTM(input_size=2, hidden_size=5, num_layers=2)
    cells = [torch.nn.LSTMCell(2, 5), torch.nn.LSTMCell(5, 5)]
    with torch.no_grad():
        for layer, cell in enumerate(cells):
            cell.weight_ih.copy_(net.w_ih[layer])
            cell.weight_hh.copy_(net.w_hh[layer])
            cell.bias_ih.copy_(net.bias[layer])
            cell.bias_hh.zero_()
    x = torch.randn(7, 2)
    state = tuple(torch.randn(7, 5) for _ in range(4))
    out, new = net(x, state)
    h1, c1 = cells[0](x, (state[0], state[1]))
    h2, c2 = cells[1](h1, (state[2], state[3]))
    for a, b in zip(new, (h1, c1, h2, c2)):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(out, net.readout(h2).squeeze(-1))


@pytest.mark.parametrize("preprocess, adam_inputs", [(True, False), (False, False), (True, True)])
def test_permutation_invariance(preprocess, adam_inputs):
    """Permuting the coordinates of θ permutes the updates, step after step."""
    torch.manual_seed(1)
    opt = LSTMOptimizer(hidden_size=8, preprocess=preprocess, adam_inputs=adam_inputs)
    B, n = 3, 11
    perm = torch.randperm(n)
    theta = torch.zeros(B, n)
    state, state_p = opt.init_state(theta), opt.init_state(theta)
    for _ in range(4):
        grad = torch.randn(B, n) * 10 ** torch.randint(-6, 2, (B, n)).float()
        update, state = opt(grad, state)
        update_p, state_p = opt(grad[:, perm], state_p)
        torch.testing.assert_close(update_p, update[:, perm])


def test_lstm_optimizer_shapes_and_config_round_trip():
    opt = LSTMOptimizer(hidden_size=20, num_layers=2, preprocess=True, output_scale=0.1)
    assert 5000 < sum(p.numel() for p in opt.parameters()) < 5300  # paper: about 5.1k
    state = opt.init_state(torch.zeros(4, 6))
    assert len(state) == 4 and all(s.shape == (24, 20) for s in state)
    update, _ = opt(torch.randn(4, 6), state)
    assert update.shape == (4, 6)
    assert LSTMOptimizer(**opt.config()).config() == opt.config()


def _torch_equivalent(name, lr):
    p = torch.nn.Parameter(torch.zeros(5, 3, dtype=torch.float64))
    if name == "sgd":
        return p, torch.optim.SGD([p], lr=lr), SGD(lr)
    if name == "nag":
        return p, torch.optim.SGD([p], lr=lr, momentum=0.9, nesterov=True), NAG(lr)
    if name == "rmsprop":
        return p, torch.optim.RMSprop([p], lr=lr, alpha=0.99, eps=1e-8), RMSprop(lr)
    return p, torch.optim.Adam([p], lr=lr, betas=(0.9, 0.999), eps=1e-8), Adam(lr)


@pytest.mark.parametrize("name", ["sgd", "nag", "rmsprop", "adam"])
def test_baselines_match_torch_optim(name):
    torch.manual_seed(2)
    p, reference, rule = _torch_equivalent(name, lr=0.03)
    theta = torch.zeros(5, 3, dtype=torch.float64)
    state = rule.init_state(theta)
    for _ in range(10):
        grad = torch.randn(5, 3, dtype=torch.float64)
        p.grad = grad.clone()
        reference.step()
        update, state = rule(grad, state)
        theta = theta + update
        torch.testing.assert_close(theta, p.detach(), rtol=1e-10, atol=1e-12)


def test_per_optimizee_learning_rates():
    grad = torch.ones(3, 2)
    rates = torch.tensor([0.1, 1.0, 10.0])
    update, _ = SGD(rates)(grad, ())
    torch.testing.assert_close(update, -rates[:, None].expand(3, 2))


def test_one_lstm_per_parameter_group():
    """CIFAR's two LSTMs: each group's coordinates go through its own LSTM (Section 3.3)."""
    torch.manual_seed(4)
    opt = LSTMOptimizer(hidden_size=6, groups=("conv", "other"))
    assert opt.config()["groups"] == ["conv", "other"]
    groups = {"conv": torch.tensor([0, 2, 5]), "other": torch.tensor([1, 3, 4])}
    theta = torch.zeros(2, 6)
    state = opt.init_state(theta, groups=groups)
    conv, other = opt.group_rule("conv"), opt.group_rule("other")
    state_c, state_o = conv.init_state(theta[:, :3]), other.init_state(theta[:, :3])
    for _ in range(3):
        grad = torch.randn(2, 6)
        update, state = opt(grad, state)
        expect_c, state_c = conv(grad[:, groups["conv"]], state_c)
        expect_o, state_o = other(grad[:, groups["other"]], state_o)
        torch.testing.assert_close(update[:, groups["conv"]], expect_c)
        torch.testing.assert_close(update[:, groups["other"]], expect_o)
    # the same weights in both LSTMs give the single-LSTM optimizer's updates
    with torch.no_grad():
        for p_c, p_o in zip(opt.nets["conv"].parameters(), opt.nets["other"].parameters()):
            p_o.copy_(p_c)
    single = conv
    grad = torch.randn(2, 6)
    update, _ = opt(grad, opt.init_state(theta, groups=groups))
    torch.testing.assert_close(update, single(grad, single.init_state(theta))[0])
    with pytest.raises(ValueError, match="one LSTM per group"):
        opt.init_state(theta, groups={"other": torch.arange(6)})


def test_grouped_optimizer_checkpoint_round_trip(tmp_path):
    from l2l.checkpoint import load_optimizer, save_optimizer

    opt = LSTMOptimizer(hidden_size=4, groups=("conv", "other"))
    save_optimizer(opt, tmp_path / "g.pt")
    loaded = load_optimizer(tmp_path / "g.pt")
    assert loaded.groups == ("conv", "other")
    for a, b in zip(opt.parameters(), loaded.parameters()):
        assert torch.equal(a, b)


def test_adam_inputs_are_adams_normalised_moments():
    """With adam_inputs the LSTM also sees m̂/(√v̂ + ε) and ∇/(√v̂ + ε), as torch's Adam keeps them."""
    torch.manual_seed(2)
    opt = LSTMOptimizer(hidden_size=8, adam_inputs=True)
    assert opt.config()["adam_inputs"] and LSTMOptimizer(**opt.config()).config() == opt.config()
    assert "adam_inputs" not in LSTMOptimizer().config()  # earlier checkpoints' configs unchanged
    assert opt.net.input_size == 4
    p = torch.nn.Parameter(torch.zeros(2, 5, dtype=torch.float64))
    reference = torch.optim.Adam([p], lr=1.0, betas=(0.9, 0.999), eps=1e-8)
    theta = torch.zeros(2, 5, dtype=torch.float64)
    state = opt.init_state(theta)
    for t in range(1, 5):
        grad = torch.randn(2, 5, dtype=torch.float64) * 10.0 ** -t
        extra, moments = opt.moments(grad, state[:3])
        p.grad = grad.clone()
        reference.step()
        s = reference.state[p]
        denom = (s["exp_avg_sq"] / (1 - 0.999 ** t)).sqrt() + 1e-8
        torch.testing.assert_close(extra[..., 0], s["exp_avg"] / (1 - 0.9 ** t) / denom)
        torch.testing.assert_close(extra[..., 1], grad / denom)
        update, state = opt(grad.float(), tuple(x.float() for x in state))
        assert update.shape == (2, 5) and len(state) == 3 + 4
        torch.testing.assert_close(state[0].double(), moments[0], rtol=1e-5, atol=0)
        state = tuple(x.double() for x in state)


def _relative_rule(**options):
    torch.manual_seed(0)
    return LSTMOptimizer(relative=True, hidden_size=6, num_layers=1, output_scale=0.01, **options)


def test_relative_rule_starts_as_adam():
    """Before meta-training the relative rule is Adam with learning rate output_scale."""
    rule, adam = _relative_rule(), Adam(lr=0.01)
    theta = torch.randn(3, 40)
    s_rule, s_adam = rule.init_state(theta), adam.init_state(theta)
    for t in range(6):
        grad = torch.randn(3, 40) * 10.0 ** (t - 3)
        u_rule, s_rule = rule(grad, s_rule)
        u_adam, s_adam = adam(grad, s_adam)
        torch.testing.assert_close(u_rule, u_adam)


def test_relative_rule_ignores_the_loss_scale_and_bounds_its_steps():
    """Trained or not, rescaling the loss (hence every gradient) by c > 0 leaves the updates
    unchanged (up to Adam's ε), and no coordinate moves more than
    e^{s+2}·output_scale·(|m̂| + |∇|)/(√v̂ + ε)."""
    rule = _relative_rule()
    with torch.no_grad():
        for p in rule.net.parameters():
            p.normal_(0, 3.0)
        rule.log_step.fill_(0.5)
    grads = [torch.randn(2, 30) for _ in range(8)]
    runs = []
    for c in (1.0, 1e3, 1e-2):
        state, updates = rule.init_state(torch.zeros(2, 30)), []
        for g in grads:
            extra, _ = rule.moments(c * g, state[:3])
            u, state = rule(c * g, state)
            bound = math.exp(0.5 + 2) * 0.01 * extra.abs().sum(-1)
            assert (u.abs() <= bound * (1 + 1e-5)).all()
            updates.append(u)
        runs.append(torch.stack(updates))
    torch.testing.assert_close(runs[1], runs[0], rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(runs[2], runs[0], rtol=1e-3, atol=1e-5)


def test_relative_rule_config_round_trip_and_refuses_other_inputs():
    from l2l.errors import ConfigError

    rule = _relative_rule()
    copy = LSTMOptimizer(**rule.config())
    copy.load_state_dict(rule.state_dict())
    assert rule.config()["relative"] is True
    theta = torch.randn(2, 5)
    grad = torch.randn(2, 5)
    torch.testing.assert_close(copy(grad, copy.init_state(theta))[0],
                               rule(grad, rule.init_state(theta))[0])
    for bad in ({"adam_inputs": True}, {"groups": ("conv", "other")}):
        with pytest.raises(ConfigError, match="relative"):
            LSTMOptimizer(relative=True, **bad)
