"""The task family: valid tasks of the declared shapes, drawn reproducibly, usable by a
meta-training."""

import pytest
import torch

from l2l.errors import ConfigError
from l2l.meta import MetaConfig, MetaTrainer
from l2l.problems import make_problem
from l2l.problems.base import Scaled


def test_tasks_are_valid_reproducible_and_varied(mnist_dir):
    family = make_problem("tasks:families=mnist+quadratic,widths=5-12,depths=1-2")
    specs = set()
    for seed in range(12):
        optimizee = family.sample(3, torch.Generator().manual_seed(seed))
        task = family.task(torch.Generator().manual_seed(seed))
        specs.add(task.spec())
        again = family.sample(3, torch.Generator().manual_seed(seed))
        assert isinstance(optimizee, Scaled) and optimizee.theta0.shape[0] == 3
        n = optimizee.theta0.shape[1]
        assert n == task.sample(1, torch.Generator().manual_seed(0)).theta0.shape[1]
        loss = optimizee.loss(optimizee.theta0, 0)
        assert loss.shape == (3,) and torch.isfinite(loss).all()
        torch.testing.assert_close(loss, again.loss(again.theta0, 0))  # the same task and data
        factors = optimizee.factors
        assert (factors >= 0.1 - 1e-6).all() and (factors <= 10 + 1e-5).all()
    assert any(s.startswith("mnist") for s in specs) and any(s.startswith("quadratic") for s in specs)
    assert len(specs) >= 6  # widths, depths, activations and dimensions vary
    assert make_problem(family.spec()).spec() == family.spec()


def test_a_meta_training_epoch_runs_on_changing_tasks(mnist_dir):
    config = MetaConfig(epochs=2, batch_size=1, horizon=4, unroll=2, validate_every=2,
                        validation_size=1)
    trainer = MetaTrainer("tasks:families=mnist+quadratic,widths=5-8", config=config,
                          progress=False)
    result = trainer.train()
    assert all(torch.isfinite(torch.tensor(row["meta_loss"])) for row in result.log)


@pytest.mark.parametrize("spec, message", [
    ("tasks:families=mnist+svhn", "svhn is not one of"),
    ("tasks:widths=40-10", "LOW ≤ HIGH"),
    ("tasks:activations=swish", "swish is not one of"),
    ("tasks:loss_scale=0.5", "loss_scale must be"),
    ("tasks:init_std=0.1-0.01", "init_std must be positive"),
    ("tasks:init_std=small", "init_std must be X or LOW-HIGH"),
    ("tasks:norms=none+layer", "layer is not one of"),
    ("tasks:dropouts=0+1", "dropouts must be probabilities"),
    ("tasks:dropouts=some", "dropouts must be probabilities"),
    ("mnist:norm=layer", "norm must be 'none' or 'batch'"),
    ("mnist:dropout=1.5", "dropout must be a probability"),
])
def test_bad_task_options_are_refused(spec, message):
    with pytest.raises(ConfigError, match=message):
        make_problem(spec)


def test_validation_is_one_fixed_relu_mlp_where_the_family_has_one(mnist_dir):
    family = make_problem("tasks:families=mnist+quadratic,widths=5-12,depths=1-3")
    val = family.for_split("val")
    specs = {val.task(torch.Generator().manual_seed(s)).spec() for s in range(5)}
    assert specs == {"mnist:hidden=12,layers=2,activation=relu"}
    assert family.for_split("train") is family and family.for_split("test") is family
    sigmoid_only = make_problem("tasks:families=mnist+quadratic,activations=sigmoid")
    assert sigmoid_only.for_split("val") is sigmoid_only


def test_initial_scales_are_drawn_from_the_range():
    family = make_problem("tasks:families=mnist+cifar10,init_std=0.01-0.1")
    stds = [family.task(torch.Generator().manual_seed(s)).init_std for s in range(20)]
    assert all(0.01 <= x <= 0.1 for x in stds) and max(stds) / min(stds) > 3
    fixed = make_problem("tasks:families=mnist+cifar10")
    assert {fixed.task(torch.Generator().manual_seed(s)).init_std for s in range(5)} == {0.01}


def test_mlps_are_drawn_with_and_without_batch_norm_and_dropout(mnist_dir):
    family = make_problem("tasks:families=mnist,norms=none+batch,dropouts=0+0.2,widths=5-8")
    assert make_problem(family.spec()).spec() == family.spec()
    tasks = [family.task(torch.Generator().manual_seed(s)) for s in range(16)]
    assert {t.norm for t in tasks} == {"none", "batch"} and {t.dropout for t in tasks} == {0, 0.2}
    for seed in range(4):
        optimizee = family.sample(2, torch.Generator().manual_seed(seed))
        loss = optimizee.loss(optimizee.theta0, 0)
        assert loss.shape == (2,) and torch.isfinite(loss).all()
    # one choice of each draws nothing: the shipped general recipe's family draws the tasks it
    # was meta-trained on (pinned before these options existed)
    general = make_problem("tasks:families=mnist+cifar10+quadratic,widths=10-40,depths=1-2")
    assert [general.task(torch.Generator().manual_seed(s)).spec() for s in range(5)] == [
        "quadratic:dim=6,distribution=gaussian,init_std=0.01", "cifar10:labels=0-9",
        "mnist:hidden=29,layers=2,activation=sigmoid", "cifar10:labels=0-9", "cifar10:labels=0-9"]
