import copy

import pytest
import torch

from l2l.evaluate import evaluate, rollout_batched, tune_learning_rate
from l2l.meta import MetaConfig, MetaTrainer
from l2l.optimizers import LSTMOptimizer
from l2l.problems import Quadratic
from l2l.rollout import unroll
from l2l.seeding import generator


def _tiny(dtype=torch.float64, preprocess=False):
    torch.manual_seed(3)
    opt = LSTMOptimizer(hidden_size=4, num_layers=2, preprocess=preprocess, output_scale=0.3).to(dtype)
    problem = Quadratic(dim=3)
    optimizee = problem.sample(2, generator(0, "train"))
    optimizee.W, optimizee.y = optimizee.W.to(dtype), optimizee.y.to(dtype)
    optimizee.theta0 = torch.randn(2, 3, dtype=dtype, generator=torch.Generator().manual_seed(1))
    return opt, optimizee


def _meta_loss(opt, optimizee, second_order, frozen_grads=None):
    theta, state = optimizee.theta0, opt.init_state(optimizee.theta0)
    if frozen_grads is None:
        losses = unroll(optimizee, opt, theta, state, 0, 2, second_order=second_order).losses
        return losses.mean()
    # replay with the gradients recorded at φ0 fed as constants
    losses = []
    for grad in frozen_grads:
        update, state = opt(grad, state)
        theta = theta + update
        losses.append(optimizee.loss(theta, 0))
    return torch.stack(losses).mean()


def _recorded_grads(opt, optimizee):
    grads, theta, state = [], optimizee.theta0, opt.init_state(optimizee.theta0)
    for t in range(2):
        theta = theta.detach().requires_grad_()
        (g,) = torch.autograd.grad(optimizee.loss(theta, t).sum(), theta)
        grads.append(g)
        with torch.no_grad():
            update, state = opt(g, state)
        theta = theta + update
    return grads


def _finite_differences(opt, fn, eps=1e-6):
    out = []
    for p in opt.parameters():
        g = torch.zeros_like(p)
        flat, gflat = p.data.view(-1), g.view(-1)
        for i in range(flat.numel()):
            old = flat[i].item()
            flat[i] = old + eps
            plus = fn().item()
            flat[i] = old - eps
            minus = fn().item()
            flat[i] = old
            gflat[i] = (plus - minus) / (2 * eps)
        out.append(g)
    return out


@pytest.mark.parametrize("second_order", [True, False])
def test_meta_gradient_matches_finite_differences(second_order):
    """A 2-step unroll: with second derivatives against plain finite differences; without them
    against finite differences of the same unroll with the optimizee gradients held fixed."""
    opt, optimizee = _tiny()
    frozen = None if second_order else _recorded_grads(opt, optimizee)
    analytic = torch.autograd.grad(_meta_loss(opt, optimizee, second_order), list(opt.parameters()))
    with torch.no_grad():
        numeric = _finite_differences(opt, lambda: _meta_loss(opt, optimizee, True, frozen))
    for a, n in zip(analytic, numeric):
        torch.testing.assert_close(a, n, rtol=1e-5, atol=1e-8)
    if not second_order:  # and dropping second derivatives really changes the gradient here
        full = _finite_differences(opt, lambda: _meta_loss(opt, optimizee, True))
        assert not all(torch.allclose(a, f, rtol=1e-3) for a, f in zip(analytic, full))


def test_truncation_leaves_nothing_in_the_graph():
    opt, optimizee = _tiny(torch.float32)
    theta0 = optimizee.theta0.clone().requires_grad_()
    state = opt.init_state(theta0)
    first = unroll(optimizee, opt, theta0, state, 0, 3)
    theta, state = first.theta, first.state
    theta, state = theta.detach(), tuple(s.detach() for s in state)
    assert theta.grad_fn is None and all(s.grad_fn is None for s in state)
    losses = unroll(optimizee, opt, theta, state, 3, 3).losses
    losses.mean().backward()
    assert theta0.grad is None  # nothing reached the first unroll's inputs
    assert all(p.grad is not None for p in opt.parameters())


def test_trainer_rejects_bad_horizon():
    with pytest.raises(ValueError, match="multiple of unroll"):
        MetaConfig(horizon=100, unroll=30)


@pytest.mark.parametrize("field, value", [
    ("epochs", -1), ("batch_size", 0), ("validation_size", 0), ("validate_every", 0),
    ("meta_lr", 0.0), ("meta_lr", float("nan")), ("meta_lr", float("inf")), ("meta_lr", 1e38),
    ("clip_grad", -1.0),
    ("clip_grad", 0.0), ("random_scale", float("inf")), ("imitate_weight", float("nan")),
    ("seed", -1), ("batch_size", 2.5), ("epochs", True)])
def test_every_setting_is_checked_where_it_is_made(field, value):
    from l2l.errors import ConfigError

    with pytest.raises(ConfigError, match=field):
        MetaConfig(**{field: value})


def test_the_trainer_and_the_optimizer_check_their_arguments():
    from l2l.errors import ConfigError
    from l2l.optimizers import SGD

    with pytest.raises(ConfigError, match="output_scale must be a positive finite number"):
        LSTMOptimizer(output_scale=float("nan"))
    with pytest.raises(ConfigError, match="hidden_size"):
        LSTMOptimizer(hidden_size=0)
    with pytest.raises(ConfigError, match="lr must be"):
        SGD(float("inf"))
    with pytest.raises(ConfigError, match="no weights φ to meta-train"):
        MetaTrainer("quadratic", SGD(0.1), progress=False)
    with pytest.raises(ConfigError, match="time_limit"):
        MetaTrainer("quadratic", progress=False, time_limit=-1)
    with pytest.raises(ConfigError, match="not a device"):
        MetaTrainer("quadratic", progress=False, device="gpu7")


def _config(**kw):
    base = {"epochs": 4, "batch_size": 8, "horizon": 20, "unroll": 10, "meta_lr": 3e-3, "validate_every": 2,
                "validation_size": 8}
    return MetaConfig(**{**base, **kw})


def test_checkpoint_round_trip_and_resume_is_exact(tmp_path):
    from l2l.checkpoint import load_optimizer

    torch.manual_seed(0)
    straight = MetaTrainer("quadratic", config=_config(), out=tmp_path / "a", progress=False)
    result = straight.train()

    torch.manual_seed(0)
    first = MetaTrainer("quadratic", config=_config(epochs=2), out=tmp_path / "b", progress=False)
    first.train()
    torch.manual_seed(123)  # a different initialisation must not matter after resuming
    resumed = MetaTrainer("quadratic", config=_config(), out=tmp_path / "b", progress=False)
    result_b = resumed.train(resume=True)

    for a, b in zip(straight.optimizer.parameters(), resumed.optimizer.parameters()):
        assert torch.equal(a, b)
    assert result.best_validation == result_b.best_validation
    loaded = load_optimizer(tmp_path / "b" / "best.pt")
    for a, b in zip(loaded.parameters(), result_b.optimizer.parameters()):
        assert torch.equal(a, b)
    assert loaded.provenance["problem"] == "quadratic:dim=10,distribution=gaussian,init_std=0.01"
    assert loaded.provenance["validation"]["best"] == result_b.best_validation
    assert (tmp_path / "b" / "log.csv").read_text().startswith("epoch,")


def test_resume_refuses_other_settings(tmp_path):
    MetaTrainer("quadratic", config=_config(epochs=2), out=tmp_path, progress=False).train()
    other = MetaTrainer("quadratic", config=_config(unroll=5), out=tmp_path, progress=False)
    with pytest.raises(ValueError, match="different settings"):
        other.train(resume=True)


def test_short_meta_training_beats_tuned_sgd():
    """About 20 s of meta-training on 10-d quadratics beats SGD with its tuned rate on fresh
    test functions, at step 100, by a clear margin."""
    torch.manual_seed(0)
    config = MetaConfig(epochs=50, batch_size=128, horizon=100, unroll=20, meta_lr=1e-2,
                        validate_every=25, validation_size=128)
    learned = MetaTrainer("quadratic", config=config, progress=False).train().optimizer
    sgd_lr, _ = tune_learning_rate("quadratic", "sgd", steps=100, runs=128)
    curves = evaluate("quadratic", [learned, f"sgd:{sgd_lr}"], steps=100, runs=256, seed=7,
                      progress=False)
    lstm, sgd = (c.mean[-1].item() for c in curves)
    assert lstm < 0.8 * sgd, (lstm, sgd)


def test_evaluation_uses_disjoint_seed_streams():
    problem = Quadratic()
    a, _ = rollout_batched(problem, LSTMOptimizer(preprocess=False), 1, 4, seed=0, split="test")
    b, _ = rollout_batched(problem, LSTMOptimizer(preprocess=False), 1, 4, seed=0, split="val")
    assert not torch.equal(a[0], b[0])
    c, _ = rollout_batched(problem, copy.deepcopy(LSTMOptimizer(preprocess=False)), 1, 4, seed=0,
                           split="test")
    assert torch.equal(a[0], c[0])


def test_cosine_schedule_decays_the_meta_learning_rate_to_zero():
    trainer = MetaTrainer("quadratic", config=_config(epochs=10, lr_schedule="cosine", meta_lr=1e-2),
                          progress=False)
    rates = [trainer.meta_lr(e) for e in range(10)]
    assert rates[0] == 1e-2 and all(a > b for a, b in zip(rates, rates[1:])) and rates[-1] < 3e-4
    trainer.train_epoch(9)
    assert trainer.meta_optimizer.param_groups[0]["lr"] == rates[9]
    with pytest.raises(ValueError, match="lr_schedule"):
        _config(lr_schedule="linear")


def test_meta_objectives_weigh_the_unroll_as_documented():
    from l2l.objectives import OBJECTIVES
    from l2l.rollout import Trajectory

    losses = torch.tensor([[1.0, 4.0], [2.0, 2.0], [4.0, 1.0]])  # [unroll 3, B 2], steps 4, 5, 6
    path = Trajectory(losses, torch.ones(2), torch.zeros(2, 1), (), start=3)
    logs = losses.log()
    assert OBJECTIVES["loss"](path, 6) == pytest.approx(losses.mean().item())
    assert OBJECTIVES["log_loss"](path, 6) == pytest.approx(logs.mean().item())
    ramp = torch.tensor([4.0, 5.0, 6.0]).unsqueeze(1) / 6
    assert OBJECTIVES["late_log_loss"](path, 6) == pytest.approx((ramp * logs).mean().item())
    with pytest.raises(ValueError, match="objective must be one of"):
        MetaConfig(objective="final")


def test_a_meta_objective_that_needs_the_updates_gets_them(monkeypatch):
    """A new objective is a function of the trajectory and an entry of OBJECTIVES: one that asks
    for the updates receives every step's, in the meta-graph, and trains φ."""
    from l2l.objectives import OBJECTIVES, Objective

    seen = []

    def step_size(trajectory, horizon):
        seen.append(len(trajectory.updates))
        return torch.stack(trajectory.updates).square().mean() + trajectory.losses.mean()

    monkeypatch.setitem(OBJECTIVES, "step_size", Objective(step_size, needs=frozenset({"updates"})))
    trainer = MetaTrainer("quadratic:dim=3", config=_config(objective="step_size", epochs=1),
                          progress=False)
    before = [p.detach().clone() for p in trainer.optimizer.parameters()]
    trainer.train_epoch(0)
    assert seen and set(seen) == {trainer.config.unroll}
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.optimizer.parameters()))


def test_meta_training_does_not_fault_its_memory_in_again(mnist_dir):
    """Truncations reuse freed memory (l2l.memory): an MNIST epoch after the first causes few
    page faults (about 750 per step with glibc's defaults)."""
    import resource

    from l2l.memory import retain_freed_memory
    from l2l.problems import Mnist

    trainer = MetaTrainer(Mnist(), config=MetaConfig(horizon=40, unroll=20), progress=False)
    if not retain_freed_memory():
        pytest.skip("not glibc, or L2L_RETAIN_MEMORY=0")
    trainer.train_epoch(0)
    counts = []
    for epoch in (1, 2):  # the fewer of two epochs: a stray kernel event once cost 101 per step
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        trainer.train_epoch(epoch)
        counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    faults = min(counts)
    assert faults / 40 < 100, f"{faults / 40:.0f} page faults per step"


def test_random_scaling_multiplies_each_function_by_its_own_factor():
    from l2l.meta import scale_factors
    from l2l.problems.base import Scaled

    factors = scale_factors(seed=0, epoch=3, batch_size=64, spread=4.0)
    assert factors.shape == (64,) and factors.min() >= 0.25 and factors.max() <= 4.0
    assert factors.min() < 0.5 and factors.max() > 2.0  # spread over the range, not one value
    assert torch.equal(factors, scale_factors(0, 3, 64, 4.0))  # a resumed run draws the same
    assert not torch.equal(factors, scale_factors(0, 4, 64, 4.0))
    assert torch.equal(scale_factors(0, 3, 5, 1.0), torch.ones(5))
    down = scale_factors(0, 3, 64, 4.0, down=True)  # --scale-down: [1/R, 1], spread over it
    assert down.min() >= 0.25 and down.max() <= 1.0 and down.min() < 0.4 and down.max() > 0.7

    optimizee = Quadratic(dim=3).sample(2, generator(0, "train"))
    scaled = Scaled(optimizee, torch.tensor([2.0, 0.5]))
    theta = torch.randn(2, 3, requires_grad=True)
    plain = optimizee.loss(theta, 0)
    torch.testing.assert_close(scaled.loss(theta, 0), plain * torch.tensor([2.0, 0.5]))
    (g,) = torch.autograd.grad(scaled.loss(theta, 0).sum(), theta)
    (g0,) = torch.autograd.grad(plain.sum(), theta)
    torch.testing.assert_close(g, g0 * torch.tensor([[2.0], [0.5]]))
    assert scaled.coordinate_groups().keys() == optimizee.coordinate_groups().keys()
    with pytest.raises(ValueError, match="positive factors"):
        Scaled(optimizee, torch.tensor([1.0, -1.0]))
    with pytest.raises(ValueError, match="random_scale"):
        _config(random_scale=0.5)
    with pytest.raises(ValueError, match="needs random_scale"):
        _config(scale_down=True)
    trainer = MetaTrainer("quadratic", config=_config(random_scale=4.0, epochs=1), progress=False)
    assert torch.isfinite(torch.tensor(trainer.train_epoch(0)))


# ------------------------------------------------------------------ non-finite meta-gradients

def _nan_gradient_from(monkeypatch, first_call: int, last_call: int | None = None):
    """Give the meta-loss of truncations ``first_call``…``last_call`` (1-based) a NaN gradient
    with respect to φ while its value stays finite: loss + √(0·loss), whose derivative is 0·∞."""
    from l2l.objectives import OBJECTIVES, Objective

    real, count = OBJECTIVES["loss"], [0]

    def poisoned(*args):
        count[0] += 1
        loss = real(*args)
        if count[0] >= first_call and (last_call is None or count[0] <= last_call):
            loss = loss + (loss * 0).sqrt()
        return loss

    monkeypatch.setitem(OBJECTIVES, "loss", Objective(poisoned))


def _finite_files(folder):
    for name in ("best.pt", "last.pt"):
        if (folder / name).exists():
            state = torch.load(folder / name, weights_only=False)
            weights = state["state_dict"] if name == "best.pt" else state["optimizer"]["state_dict"]
            assert all(torch.isfinite(w).all() for w in weights.values()), name


def test_a_nan_meta_gradient_is_skipped_counted_and_never_saved(tmp_path, monkeypatch):
    config = _config(epochs=4, horizon=10, unroll=5, validate_every=1)  # 2 truncations an epoch
    clean = MetaTrainer("quadratic", config=config, out=tmp_path / "clean", progress=False)
    clean.train_epoch(0)
    _nan_gradient_from(monkeypatch, 3, 4)  # both truncations of epoch 2
    trainer = MetaTrainer("quadratic", config=config, out=tmp_path / "run", progress=False)
    trainer.train_epoch(0)
    after_one = {k: v.clone() for k, v in trainer.optimizer.state_dict().items()}
    for a, b in zip(trainer.optimizer.parameters(), clean.optimizer.parameters()):
        assert torch.equal(a, b)
    trainer.train_epoch(1)  # both updates skipped: φ untouched, not NaN
    assert trainer.skipped == 2
    assert all(torch.equal(v, trainer.optimizer.state_dict()[k]) for k, v in after_one.items())
    monkeypatch.undo()
    _nan_gradient_from(monkeypatch, 3, 4)  # the same in a whole run
    result = MetaTrainer("quadratic", config=config, out=tmp_path / "full", progress=False).train()
    assert [row["skipped"] for row in result.log] == [0, 2, 0, 0]
    _finite_files(tmp_path / "full")


def test_a_run_that_stays_non_finite_stops_with_a_clear_error(tmp_path, monkeypatch, capsys):
    from l2l.cli import main
    from l2l.meta import MAX_SKIPPED

    _nan_gradient_from(monkeypatch, 1)  # every meta-gradient NaN from the start
    out = tmp_path / "run"
    code = main(["train", "quadratic:dim=3", "--epochs", "20", "--batch-size", "2", "--horizon", "4",
                 "--unroll", "2", "--validate-every", "10", "--validation-size", "2",
                 "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("l2l: error: meta-training stopped in epoch 3")
    assert f"{MAX_SKIPPED} meta-updates in a row were skipped" in err and err.count("\n") == 1
    assert not (out / "best.pt").exists() and not (out / "last.pt").exists()  # before validation


def test_an_optimizer_that_diverges_everywhere_writes_no_best(tmp_path, capsys):
    """Steps so long that every optimizee overflows: no finite meta-loss, no finite validation,
    no best.pt, a non-zero exit."""
    from l2l.cli import main

    out = tmp_path / "run"
    code = main(["train", "quadratic:dim=3", "--epochs", "2", "--batch-size", "2", "--horizon", "4",
                 "--unroll", "2", "--validation-size", "2", "--output-scale", "1e30",
                 "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "l2l: error: " in err and "Traceback" not in err
    assert not (out / "best.pt").exists()
    _finite_files(out)


def test_evaluate_and_tuning_check_their_counts_and_rates():
    from l2l.errors import ConfigError

    for kwargs in ({"steps": 0}, {"runs": -2}, {"batch_size": 0}, {"tune_runs": 0}):
        with pytest.raises(ConfigError, match=next(iter(kwargs))):
            evaluate("quadratic", ["adam:0.1"], progress=False, **kwargs)
    for spec in ("adam:nan", "sgd:inf", "nag:-1"):
        with pytest.raises(ConfigError, match="bad learning rate"):
            evaluate("quadratic", [spec], steps=2, runs=2, progress=False)
    with pytest.raises(ConfigError, match="steps"):
        tune_learning_rate("quadratic", "sgd", steps=-3)


def test_horizon_schedules_grow_or_draw_multiples_of_the_unroll():
    growing = _config(epochs=4, horizon=20, unroll=5, horizon_schedule="growing")
    assert [growing.horizon_at(e) for e in range(4)] == [5, 10, 15, 20]
    random = _config(epochs=50, horizon=20, unroll=5, horizon_schedule="random")
    drawn = [random.horizon_at(e) for e in range(50)]
    assert set(drawn) == {5, 10, 15, 20} and drawn == [random.horizon_at(e) for e in range(50)]
    assert _config(horizon=20, unroll=5).horizon_at(3) == 20
    trainer = MetaTrainer("quadratic:dim=3", config=growing, progress=False)
    seen = []
    real = trainer._count
    trainer._count = lambda applied, epoch: seen.append(epoch) or real(applied, epoch)
    for epoch in range(4):
        trainer.train_epoch(epoch)
    assert [seen.count(e) for e in range(4)] == [1, 2, 3, 4]  # one meta-update per truncation
    with pytest.raises(ValueError, match="horizon_schedule"):
        _config(horizon_schedule="shrinking")


@pytest.mark.parametrize("estimator", ["tbptt", "pes"])
def test_frozen_parameters_stay_as_they_are_and_the_others_train(estimator):
    torch.manual_seed(0)
    optimizer = LSTMOptimizer()
    start = {name: p.detach().clone() for name, p in optimizer.named_parameters()}
    config = MetaConfig(epochs=2, horizon=10, unroll=5, validate_every=2, validation_size=2,
                        estimator=estimator, pes_pairs=2, frozen=" net.readout.bias,net.w_hh.0")
    assert config.frozen == "net.readout.bias,net.w_hh.0"
    MetaTrainer("quadratic", optimizer, config=config, progress=False).train()
    for name, p in optimizer.named_parameters():
        moved = not torch.equal(p.detach(), start[name])
        assert moved == (name not in ("net.readout.bias", "net.w_hh.0")), name


def test_frozen_names_are_checked_before_any_work():
    with pytest.raises(ValueError, match="no parameter net.readout.bais; its parameters: net.w_ih.0"):
        MetaTrainer("quadratic", LSTMOptimizer(), config=MetaConfig(frozen="net.readout.bais"))
    with pytest.raises(ValueError, match="frozen must name parameters"):
        MetaConfig(frozen="net.readout.bias,")
    every = ",".join(name for name, _ in LSTMOptimizer().named_parameters())
    with pytest.raises(ValueError, match="nothing to meta-train"):
        MetaTrainer("quadratic", LSTMOptimizer(), config=MetaConfig(frozen=every))
