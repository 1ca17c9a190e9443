"""What every family gets from the shared bases: specs from constructor options, and the
minibatches, loss and metrics of a classifier, shown on a toy family of a few lines."""

import pytest
import torch
import torch.nn.functional as F

from l2l.problems import Classification, ClassificationOptimizee, Problem, make_problem
from l2l.seeding import generator


class SoftmaxOptimizee(ClassificationOptimizee):
    stream = "toy"

    def forward(self, theta, x):
        weight = theta.unflatten(1, (3, 4))  # [B, classes, inputs]
        return x @ weight.transpose(-1, -2) if x.dim() == 3 else torch.einsum("mi,bci->bmc", x, weight)


class Softmax(Classification):
    """Softmax regression on 40 random points of 4 features (a family in a few lines)."""

    name = "toy"
    always_in_spec = ("scale",)

    def __init__(self, scale: float = 1.0, batch: int = 8, init_std: float = 0.01,
                 data_dir: str = ""):
        self.scale, self.batch, self.init_std, self.data_dir = scale, batch, init_std, data_dir

    num_params = 12

    def load(self, split):
        g = torch.Generator().manual_seed(len(split))
        return self.scale * torch.randn(40, 4, generator=g), torch.arange(40) % 3

    def optimizee(self, theta0, seeds, train, test):
        return SoftmaxOptimizee(theta0, seeds, self.batch, train, test)


def test_config_comes_from_the_constructor_options():
    assert Softmax().spec() == "toy:scale=1.0"
    assert Softmax(batch=16, data_dir="/elsewhere").config() == {"scale": 1.0, "batch": 16}
    changed = Softmax(2.0, data_dir="/elsewhere").with_options(batch=4)
    assert (changed.scale, changed.batch, changed.data_dir) == (2.0, 4, "/elsewhere")
    assert Problem().spec() == "problem"
    for spec in ["mnist:hidden=40", "cifar10:labels=0-4", "quadratic:dim=20",
                 "neural_art:style=vangogh_night_cafe,size=128"]:
        problem = make_problem(spec)
        assert make_problem(problem.spec()).spec() == problem.spec()


def test_a_classifier_family_gets_minibatches_loss_and_metrics():
    optimizee = Softmax().sample(3, generator(0, "test"))
    assert optimizee.theta0.shape == (3, 12)
    assert torch.equal(optimizee.indices(2), optimizee.repeat(2).indices(2)[:3])
    theta = optimizee.theta0.double()
    x, y = optimizee.minibatch(1, torch.float64)
    expected = torch.stack([F.cross_entropy(x[b] @ theta[b].view(3, 4).T, y[b]) for b in range(3)])
    torch.testing.assert_close(optimizee.loss(theta, 1), expected)
    metrics = optimizee.metrics(theta)
    assert list(metrics) == ["train_loss", "train_acc", "test_loss", "test_acc"]
    assert metrics["test_loss"].shape == (3,)


def test_a_label_subset_is_renumbered():
    train = (torch.randn(30, 4), torch.arange(30) % 6)
    optimizee = SoftmaxOptimizee(torch.zeros(2, 12), torch.tensor([1, 2]), 5, train, train,
                                 labels=(1, 4, 5))
    _x, y = optimizee.minibatch(0)
    assert set(train[1][optimizee.indices(0)].flatten().tolist()) <= {1, 4, 5}
    assert set(y.flatten().tolist()) <= {0, 1, 2}
    assert optimizee.metrics(torch.zeros(2, 12))["test_acc"].tolist() == pytest.approx([1 / 3] * 2)
