"""Calibrating a learned rule's step size on models wider than any it was meta-trained on.

A rule meta-trained on small networks (tens of units) chooses a good direction on a network of
hundreds of units but not always a good length: on wide layers the same per-coordinate steps add
up to a much larger change of the function. The paper tunes every baseline's learning rate on
validation optimizees; :func:`calibrate` does the same for a learned rule's one free scale. It
trains a few held-out models (:data:`MODELS`, ordinary ``nn.Module`` s at PyTorch's default
initialisation, on the training split of the family's data sets) with
:class:`~l2l.LearnedOptimizer` at each factor of a grid, on the same initialisation and
minibatches, and keeps the factor with the lowest mean log training loss over models and seeds.
:func:`scaled` then returns the rule with its ``output_scale`` multiplied by that factor (the
update g is proportional to it), the calibration recorded in its provenance.

    python -m l2l calibrate pretrained:general --out general.pt

The models are chosen to differ from the family's (wider) and from the drop-in checks of
``examples/`` (other data set or architecture), so that those checks stay a test.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import CLASSES
from .errors import ConfigError, check_count
from .optimizers.base import Optimizer as UpdateRule

#: the default grid of factors: half-decades from 1 down to 0.01
GRID = (1.0, 0.316, 0.1, 0.0316, 0.01)


def mnist_mlp() -> nn.Module:
    """A ReLU MLP on MNIST, 784 → 512 → 256 → 10 (535,818 parameters)."""
    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
                         nn.Linear(256, 10))


def cifar10_convnet() -> nn.Module:
    """A ReLU convnet on CIFAR-10: conv 16@3×3, pool, conv 32@3×3, pool, 128, 10 (268,650
    parameters)."""
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(32 * 8 * 8, 128), nn.ReLU(), nn.Linear(128, 10))


@dataclass(frozen=True)
class Model:
    """A calibration model: how to build it, its data set and its minibatch size."""
    build: object
    data: str
    batch: int


#: the held-out models a rule is calibrated on
MODELS = {
    "mnist_mlp": Model(mnist_mlp, "mnist", 128),
    "cifar10_convnet": Model(cifar10_convnet, "cifar10", 128),
}


def _training_data(name: str, data_dir=None) -> tuple[torch.Tensor, torch.Tensor]:
    from .data import load_cifar10, load_mnist
    if name == "mnist":
        return load_mnist("train", data_dir)
    images, labels = load_cifar10("train", data_dir)
    return images.float().div(255).sub_(0.5).div_(0.5), labels


def train(model: str, optimizer, steps: int, seed: int, data_dir=None) -> float:
    """Train calibration model ``model`` for ``steps`` minibatches; returns the mean training
    loss of the last 50 (``inf`` if any loss was not finite).

    ``optimizer(params)`` builds the optimizer. The initialisation and the minibatches depend on
    ``seed`` only, so every optimizer meets the same ones; the global RNG is left as it was.
    """
    spec = MODELS[model]
    x, y = _training_data(spec.data, data_dir)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = spec.build()
    opt = optimizer(net.parameters())
    batches = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        index = torch.randint(len(y), (spec.batch,), generator=batches)
        opt.zero_grad()
        loss = F.cross_entropy(net(x[index]), y[index])
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if not math.isfinite(losses[-1]):
            return math.inf
    tail = losses[-50:]
    return sum(tail) / len(tail)


def scaled(rule: UpdateRule, factor: float, calibration: dict | None = None) -> UpdateRule:
    """A copy of ``rule`` whose updates are ``factor`` times as large (its ``output_scale``
    multiplied), with ``calibration`` added to its provenance."""
    config = rule.config()
    if "output_scale" not in config or type(rule).__name__ not in CLASSES:
        raise ConfigError(f"{type(rule).__name__} has no output_scale to calibrate")
    with torch.random.fork_rng(devices=[]):
        copy = type(rule)(**{**config, "output_scale": config["output_scale"] * factor})
    copy.load_state_dict(rule.state_dict())
    copy.provenance = dict(getattr(rule, "provenance", {}) or {})
    if calibration is not None:
        copy.provenance["calibration"] = calibration
    return copy


@dataclass
class Calibration:
    """What :func:`calibrate` found: the chosen factor, each factor's score (mean log training
    loss over models and seeds; lower is better), the losses behind the scores, and Adam's."""
    factor: float
    scores: dict = field(default_factory=dict)     # factor → mean log loss
    losses: dict = field(default_factory=dict)     # factor → {model: [loss per seed]}
    adam: dict = field(default_factory=dict)       # model → [loss per seed], Adam(1e-3)
    steps: int = 0
    seeds: tuple = ()

    def record(self) -> dict:
        """Plain data, for a checkpoint's provenance."""
        return {"factor": self.factor, "steps": self.steps, "seeds": list(self.seeds),
                "models": {name: MODELS[name].build.__doc__.split("(")[0].strip()
                           for name in next(iter(self.losses.values()), {})},
                "scores": {f"{f:.4g}": s for f, s in self.scores.items()},
                "losses": {f"{f:.4g}": v for f, v in self.losses.items()},
                "adam": self.adam}

    def table(self) -> str:
        """The losses per factor and model (mean over seeds), beside Adam's, as text."""
        names = list(self.adam)
        lines = [f"{'factor':>8} " + " ".join(f"{n:>16}" for n in names) + f" {'score':>8}"]
        lines.append(f"{'adam':>8} " + " ".join(f"{_mean(self.adam[n]):16.4f}" for n in names))
        for f in sorted(self.scores, reverse=True):
            mark = "  ← chosen" if f == self.factor else ""
            lines.append(f"{f:8.4g} " + " ".join(f"{_mean(self.losses[f][n]):16.4f}" for n in names)
                         + f" {self.scores[f]:8.4f}{mark}")
        return "\n".join(lines)


def _mean(values) -> float:
    return sum(values) / len(values)


def calibrate(rule: UpdateRule, models=tuple(MODELS), steps: int = 500, seeds=(0, 1),
              grid=GRID, data_dir=None, progress: bool = False) -> Calibration:
    """Choose the factor of ``grid`` that trains the held-out ``models`` best with ``rule``.

    Each model is trained for ``steps`` minibatches from each seed at each factor
    (``LearnedOptimizer(params, rule, lr=factor)``), and once with Adam(1e-3) for reference. The
    score of a factor is the mean over models and seeds of log(mean training loss of the last 50
    steps); a run whose loss stops being finite scores +inf.
    """
    from .torch_optim import LearnedOptimizer
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise ConfigError(f"unknown calibration model {', '.join(unknown) or '(none)'}; "
                          f"choose from {', '.join(MODELS)}")
    check_count("steps", steps)
    grid = [float(f) for f in grid]
    if not grid or not all(math.isfinite(f) and f > 0 for f in grid):
        raise ConfigError(f"the grid must hold positive factors, got {grid}")
    if not seeds:
        raise ConfigError("calibration needs at least one seed")
    from tqdm.auto import tqdm
    runs = [(m, s) for m in models for s in seeds]
    result = Calibration(factor=grid[0], steps=steps, seeds=tuple(seeds))
    with tqdm(total=len(runs) * (len(grid) + 1), desc="calibrating", disable=not progress) as bar:
        for m, s in runs:
            result.adam.setdefault(m, []).append(
                train(m, lambda p: torch.optim.Adam(p, lr=1e-3), steps, s, data_dir))
            bar.update()
        for f in grid:
            losses = result.losses.setdefault(f, {})
            for m, s in runs:
                with warnings.catch_warnings():  # past the horizon is expected here
                    warnings.filterwarnings("ignore", "LearnedOptimizer: step", RuntimeWarning)
                    loss = train(m, lambda p, f=f: LearnedOptimizer(p, rule, lr=f), steps, s,
                                 data_dir)
                losses.setdefault(m, []).append(loss)
                bar.update()
            logs = [math.log(v) if v > 0 else -math.inf for vs in losses.values() for v in vs]
            result.scores[f] = sum(logs) / len(logs)
    result.factor = min(result.scores, key=result.scores.get)
    return result


__all__ = ["MODELS", "GRID", "Calibration", "calibrate", "scaled", "train"]
