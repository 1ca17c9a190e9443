"""Recipes as data: every shipped optimizer's recipe holds the settings its training recorded,
bad recipes are refused before any work, and a multi-stage recipe runs its stages in order."""

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from l2l.checkpoint import list_pretrained, load_optimizer
from l2l.cli import main
from l2l.errors import ConfigError
from l2l.meta import MetaConfig
from l2l.optimizers.lstm import LSTMConfig
from l2l.problems import make_problem
from l2l.recipes import list_recipes, load_recipe

PRETRAINED = Path(__file__).parents[1] / "l2l" / "pretrained"
#: shipped first stages whose run is kept as a log beside the optimizer it led to
FIRST_STAGES = {("mnist", "stage1"): "mnist_u20", ("neural_art", "stage1"): "neural_art_stage1"}


def _recorded(training: dict) -> dict:
    """A provenance's training settings, with fields added since at their defaults."""
    return asdict(MetaConfig(**{**asdict(MetaConfig()), **training}))


def test_every_shipped_optimizer_has_a_recipe():
    assert set(list_pretrained()) <= set(list_recipes())


@pytest.mark.parametrize("name", sorted(list_pretrained()))
def test_recipe_holds_the_settings_the_shipped_optimizer_was_trained_with(name):
    recipe = load_recipe(name)
    optimizer = load_optimizer(f"pretrained:{name}")
    final = recipe.final()
    assert make_problem(recipe.problem).spec() == optimizer.provenance["problem"]
    assert asdict(final.config(MetaConfig)) == _recorded(optimizer.provenance["training"])
    lstm = final.config(LSTMConfig)
    trained = optimizer.config()
    calibration = optimizer.provenance.get("calibration")
    if calibration:  # calibrated after training: its steps scaled by the recorded factor
        assert "l2l calibrate" in calibration["command"]
        assert trained.pop("output_scale") / calibration["factor"] == pytest.approx(lstm.output_scale)
        trained["output_scale"] = lstm.output_scale
    assert LSTMConfig(**trained) == lstm
    init = optimizer.provenance.get("init") or {}
    started_trained = bool(init) and not init["from"].startswith("a fresh optimizer")
    assert (final.init is not None) == started_trained


@pytest.mark.parametrize("key", sorted(FIRST_STAGES))
def test_first_stages_hold_the_settings_of_their_runs(key):
    recipe, stage = key
    stage = next(s for s in load_recipe(recipe).stages if s.name == stage)
    log = json.loads((PRETRAINED / f"{FIRST_STAGES[key]}.log.json").read_text())
    expected = _recorded(log["provenance"]["training"])
    got = asdict(stage.config(MetaConfig))
    if FIRST_STAGES[key] == "neural_art_stage1":  # stopped by a time limit at the recipe's epochs
        expected["epochs"] = log["log"][-1]["epoch"]
    assert got == expected


def test_problem_defaults_are_its_recipe():
    mnist = make_problem("mnist")
    assert mnist.training_defaults == asdict(load_recipe("mnist").final().config(MetaConfig))
    assert make_problem("neural_art").optimizer_defaults["output_scale"] == 1.0


@pytest.mark.parametrize("text, message", [
    ('problem = "quadratic"\nhorizon = 10\nunroll = 3\n', "multiple of unroll"),
    ('problem = "quadratic"\nhorizn = 10\n', "unknown setting 'horizn'"),
    ('horizon = 10\n', "names no problem"),
    ('problem = "quadratic"\n[[stage]]\nname = "a"\ninit = "b"\n', "init = 'b' is not an earlier"),
    ('problem = "quadratic"\nhorizon = [\n', "not valid TOML"),
])
def test_a_bad_recipe_is_refused_with_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_recipe(path)


def test_a_two_stage_recipe_runs_its_stages_in_order_and_resumes(tmp_path, capsys):
    recipe = tmp_path / "two.toml"
    recipe.write_text('problem = "quadratic:dim=2"\nhorizon = 4\nunroll = 2\nvalidation_size = 2\n'
                      'validate_every = 1\nbatch_size = 2\n'
                      '[[stage]]\nname = "first"\nepochs = 2\n'
                      '[[stage]]\nname = "second"\ninit = "first"\nepochs = 1\nmeta_lr = 0.0001\n')
    out = tmp_path / "run"
    assert main(["train", "--recipe", str(recipe), "--out", str(out), "--quiet"]) == 0
    first, second = load_optimizer(out / "first" / "best.pt"), load_optimizer(out / "best.pt")
    assert second.provenance["init"]["from"] == f"lstm:{out / 'first' / 'best.pt'}"
    assert second.provenance["training"]["meta_lr"] == 0.0001
    assert first.provenance["training"]["epochs"] == 2
    # resuming a finished recipe runs nothing again
    before = (out / "best.pt").read_bytes()
    assert main(["train", "--recipe", str(recipe), "--out", str(out), "--quiet", "--resume"]) == 0
    assert (out / "best.pt").read_bytes() == before
    assert "stage second: best validation" in capsys.readouterr().out
    # with --init only the last stage runs, from the optimizer given
    again = tmp_path / "again"
    assert main(["train", "--recipe", str(recipe), "--out", str(again), "--quiet",
                 "--init", f"lstm:{out / 'first' / 'best.pt'}"]) == 0
    assert not (again / "first").exists()
    assert load_optimizer(again / "best.pt").provenance["training"]["meta_lr"] == 0.0001


def test_a_family_without_a_recipe_trains_with_the_configs_defaults():
    from l2l.problems import Quadratic

    class Toy(Quadratic):
        name, recipe = "toy", ""

    toy = Toy(dim=2)
    assert toy.training_defaults == asdict(MetaConfig())
    assert toy.optimizer_defaults == asdict(LSTMConfig())
