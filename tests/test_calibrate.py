"""Calibrating a learned rule's step size on held-out models (l2l.calibrate)."""

import math

import pytest
import torch

import l2l
from l2l import calibrate
from l2l.cli import main
from l2l.errors import ConfigError


def test_scaled_multiplies_every_update_and_records_the_calibration():
    rule = l2l.load_optimizer("pretrained:general")
    before = dict(rule.provenance)
    half = calibrate.scaled(rule, 0.5, {"factor": 0.5})
    assert half.config()["output_scale"] == pytest.approx(0.5 * rule.config()["output_scale"])
    assert half.provenance["calibration"] == {"factor": 0.5}
    assert rule.provenance == before  # the rule given is left as it was
    grads = torch.randn(3, 40, generator=torch.Generator().manual_seed(0)) * 10.0 ** torch.arange(-2, 1).view(3, 1)
    a, b = rule.init_state(torch.zeros(1, 40)), half.init_state(torch.zeros(1, 40))
    for g in grads:
        (ua, a), (ub, b) = rule(g[None], a), half(g[None], b)
        torch.testing.assert_close(ub, 0.5 * ua, rtol=1e-6, atol=0)


def test_scaled_refuses_a_rule_without_a_scale():
    with pytest.raises(ConfigError, match="no output_scale"):
        calibrate.scaled(l2l.optimizers.Adam(1e-3), 0.5)


def test_calibration_shrinks_steps_that_are_too_large(mnist_dir):
    """A rule whose steps were made 100 times too large is brought back by the calibration: the
    small factor wins, and the scores are the mean log losses of the runs behind them."""
    rule = calibrate.scaled(l2l.load_optimizer("pretrained:general"), 100.0)
    result = calibrate.calibrate(rule, models=("mnist_mlp",), steps=30, seeds=(0,), grid=(1.0, 0.01))
    assert result.factor == 0.01
    assert result.scores[0.01] < result.scores[1.0]
    for factor, losses in result.losses.items():
        assert result.scores[factor] == pytest.approx(math.log(losses["mnist_mlp"][0]))
    assert set(result.adam) == {"mnist_mlp"} and "← chosen" in result.table()


def test_training_runs_are_repeatable_and_leave_the_global_rng_alone(mnist_dir):
    before = torch.random.get_rng_state()
    adam = lambda p: torch.optim.Adam(p, lr=1e-3)
    first = calibrate.train("mnist_mlp", adam, 5, seed=3)
    assert calibrate.train("mnist_mlp", adam, 5, seed=3) == first
    assert calibrate.train("mnist_mlp", adam, 5, seed=4) != first
    assert torch.equal(torch.random.get_rng_state(), before)


@pytest.mark.parametrize("argv, message", [
    (["--model", "resnet"], "unknown calibration model resnet"),
    (["--grid", "0,1"], "rates must be positive"),
    (["--out", "rule.txt"], "unknown file type '.txt'"),
])
def test_bad_calibration_input_is_one_line_before_any_work(capsys, argv, message):
    try:
        code = main(["calibrate", "pretrained:general", "--steps", "1", "--quiet", *argv])
    except SystemExit as exit:  # argparse's own checks
        code = exit.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
