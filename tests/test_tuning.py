"""Baseline tuning: rates run side by side on repeated optimizees, the stored-rates file, the
stability check on training optimizees; meta-training's time limit and device argument."""

import json
import math

import pytest
import torch

from l2l import tuned
from l2l.evaluate import (
    Tuning,
    make_optimizer,
    score_rates,
    stable_choice,
    tune_learning_rate,
    tuning_for,
)
from l2l.meta import MetaConfig, MetaTrainer
from l2l.optimizers import BASELINES
from l2l.problems import Mnist, Quadratic, make_problem
from l2l.rollout import run
from l2l.seeding import generator


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_rates_side_by_side_score_like_one_rollout_per_rate(name):
    problem = Quadratic(dim=5)
    rates = [1e-3, 1e-2, 1e-1, 1.0]
    batched = score_rates(problem, name, rates, steps=30, runs=6, seed=2)
    val = problem.for_split("val").sample(6, generator(2, "val", 0))
    for lr in rates:
        losses, _ = run(val, BASELINES[name](lr), 30)
        last = losses[-1].double()
        expected = float(last.mean()) if torch.isfinite(last).all() else math.inf
        assert batched[lr] == pytest.approx(expected, rel=1e-5)


def test_each_family_has_its_tuning():
    """The tuning policy per family (result keys and stored rates depend on these values)."""
    default = Tuning()
    assert (default.runs, default.batch, default.refine, default.check_runs) == (64, 4096, 4, 0)
    assert len(default.grid) == 16 and default.grid[0] == 1e-4 and default.grid[-1] == 10.0
    assert tuning_for("quadratic:dim=3") == Tuning(runs=1024)
    assert tuning_for(Mnist(hidden=5)) == Tuning(runs=32, batch=512)
    cifar = tuning_for("cifar10:labels=0-1")
    assert (cifar.runs, cifar.batch, cifar.refine) == (6, 64, 3)
    assert cifar.grid == (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
    art = tuning_for("neural_art")
    assert (art.runs, art.batch, art.check_runs, art.margin, art.check_steps) == (20, 32, 64, 2.0, 32)


def test_repeat_gives_the_same_functions():
    problem = Mnist()
    one = problem.sample(2, generator(0, "val"))
    two = one.repeat(3)
    assert two.theta0.shape == (6, one.theta0.shape[1])
    theta = two.theta0.clone()
    torch.testing.assert_close(two.loss(theta, 4), one.loss(one.theta0, 4).repeat(3))


def test_tuned_rates_are_stored_and_reused(tmp_path, monkeypatch):
    store = tmp_path / "rates.json"
    monkeypatch.setattr(tuned, "STORE", store)
    problem = Quadratic(dim=3)
    lr, scores = tune_learning_rate(problem, "sgd", steps=10, runs=4, grid=[1e-2, 1e-1], refine=0)
    tuned.store(problem.spec(), "sgd", 10, lr, scores, 4, 0, "test command", path=store)
    tuned.store(problem.spec(), "adam", 10, 0.5, {0.5: 1.0}, 4, 0, "test command", path=store)
    record = json.loads(store.read_text())[problem.spec()]
    assert set(record) == {"sgd", "adam"}  # the second store kept the first entry
    assert make_optimizer("adam", problem, steps=10)[2] == 0.5     # from the store
    assert make_optimizer("adam", problem, steps=11)[2] != 0.5     # other horizon: tuned
    assert make_optimizer("adam", problem, steps=10, retune=True)[2] != 0.5


def test_stable_choice_skips_rates_that_diverge_on_training_optimizees():
    problem, tuning = Quadratic(dim=4), Tuning(check_runs=8)
    # pretend validation preferred a rate at which SGD diverges on quadratics
    scores = {100.0: 0.1, 1e-2: 0.5, 1e-3: 0.9}
    assert stable_choice(problem, "sgd", scores, steps=50, tuning=tuning) == 1e-2
    with pytest.raises(RuntimeError, match="diverged"):
        stable_choice(problem, "sgd", {100.0: 0.1}, steps=50, tuning=tuning)


def test_time_limit_stops_early_and_resume_continues(tmp_path):
    config = MetaConfig(epochs=50, batch_size=4, horizon=10, unroll=5, validate_every=25,
                        validation_size=4)
    torch.manual_seed(0)
    trainer = MetaTrainer("quadratic:dim=3", config=config, out=tmp_path, progress=False,
                          time_limit=0.0)
    result = trainer.train()
    assert trainer.epoch == 1 and result.best_epoch == 1  # validated and saved at the stop
    again = MetaTrainer("quadratic:dim=3", config=config, out=tmp_path, progress=False,
                        device="cpu")
    again.train(resume=True)
    assert again.epoch == 50
    seconds = [row["seconds"] for row in again.log]  # one clock across both legs
    assert seconds == sorted(seconds) and seconds[1] >= seconds[0]


def test_cli_tune_stores_rates(tmp_path, capsys):
    from l2l.cli import main

    store = tmp_path / "rates.json"
    assert main(["tune", "quadratic:dim=3", "--steps", "5", "--runs", "4", "--optimizer", "sgd",
                 "--store", "--store-path", str(store), "--quiet"]) == 0
    assert "best lr" in capsys.readouterr().out
    entry = json.loads(store.read_text())[make_problem("quadratic:dim=3").spec()]["sgd"]["5"]
    assert entry["runs"] == 4 and entry["provenance"]["command"].startswith("python -m l2l tune")
    assert main(["train", "quadratic", "--device", "cuda:7", "--out", str(tmp_path / "r")]) == 2


def test_cli_tune_grid_tries_exactly_the_given_rates(tmp_path, capsys):
    from l2l.cli import main

    store = tmp_path / "rates.json"
    assert main(["tune", "quadratic:dim=3", "--steps", "5", "--runs", "2", "--optimizer", "sgd",
                 "--grid", "0.1,0.01", "--refine", "0", "--store", "--store-path", str(store),
                 "--quiet"]) == 0
    entry = json.loads(store.read_text())[make_problem("quadratic:dim=3").spec()]["sgd"]["5"]
    assert sorted(float(r) for r in entry["scores"]) == [0.01, 0.1]
    assert entry["lr"] in (0.01, 0.1)
    with pytest.raises(SystemExit):
        main(["tune", "quadratic", "--steps", "5", "--grid", "0.1,-1"])
    assert "rates must be positive" in capsys.readouterr().err
