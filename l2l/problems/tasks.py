"""A family of tasks, for meta-training an optimizer meant for more than one problem.

Each batch of optimizees is one task, drawn with the batch's generator: an MLP on MNIST of random
width (``widths``), depth (``depths``) and activation (``activations``), the paper's CIFAR-10
convnet on a random pair of labels or all ten, or a quadratic; the MLPs with or without batch
normalisation (``norms``) and dropout (``dropouts``), the convnet always with batch normalisation
as in the paper; the networks' initial parameters
are IID N(0, σ²) with σ drawn log-uniformly from ``init_std`` (the paper's 0.01 up to the scale of
PyTorch's default initialisation), so that no one step size suits every task; every function's
loss is then multiplied by its own factor drawn log-uniformly from [1/R, R] (``loss_scale`` R;
Lv et al. 2017), so that the optimizer meets gradients of many sizes. Later work (Metz et al. 2022, Celo)
found such task distributions, not one problem, to be what lets a learned optimizer carry over to
models it never saw. Spelled ``tasks:families=mnist+cifar10+quadratic,widths=10-40``; with any
gradient estimator and horizon schedule of :class:`~l2l.meta.MetaConfig`. Validation (and baseline
tuning) uses one fixed task, the kind of model the family is most often asked to train: a ReLU
MLP on MNIST with two hidden layers of the widest width, initialised at the top of ``init_std``,
where the family has MNIST and ReLU; otherwise the task the validation seed draws.
"""

from __future__ import annotations

import math

import torch

from ..errors import ConfigError
from .base import Optimizee, Problem, Scaled
from .cifar import Cifar10
from .mnist import ACTIVATIONS, Mnist
from .quadratic import Quadratic

FAMILIES = ("mnist", "cifar10", "quadratic")


def _names(text: str, known, option: str) -> tuple[str, ...]:
    names = tuple(n for n in str(text).split("+") if n)
    unknown = [n for n in names if n not in known]
    if not names or unknown:
        raise ConfigError(f"{option}: {', '.join(unknown) or 'nothing'} is not one of "
                          f"{', '.join(known)} (join several with +)")
    return names


def _probabilities(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(p) for p in str(text).split("+"))
    except ValueError:
        values = ()
    if not values or not all(0 <= p < 1 for p in values):
        raise ConfigError(f"dropouts must be probabilities in [0, 1) joined with +, e.g. 0+0.2; "
                          f"got {text!r}")
    return values


def _range(text: str, option: str, minimum: int) -> tuple[int, int]:
    low, _, high = str(text).partition("-")
    try:
        bounds = (int(low), int(high or low))
    except ValueError:
        raise ConfigError(f"{option} must be N or LOW-HIGH, got {text!r}") from None
    if bounds[0] < minimum or bounds[1] < bounds[0]:
        raise ConfigError(f"{option} must be {minimum} or more, LOW ≤ HIGH; got {text!r}")
    return bounds


class Tasks(Problem):
    """Tasks drawn per batch from several families (see the module's docstring).

    Args:
        families: ``+``-separated families to draw from: ``mnist``, ``cifar10``, ``quadratic``.
        activations: the MNIST MLPs' activations to draw from (``sigmoid+tanh+relu+gelu``).
        widths: the MLPs' hidden units, ``LOW-HIGH`` (drawn uniformly).
        depths: the MLPs' hidden layers, ``LOW-HIGH``.
        loss_scale: R ≥ 1: each function's loss is multiplied by a factor drawn log-uniformly
            from [1/R, R] (1: none).
        init_std: the networks' initial standard deviation, ``LOW-HIGH`` (drawn log-uniformly
            per task) or one number (the paper's 0.01, the default).
        norms: the MLPs' normalisation to draw from, ``none+batch`` (``none``: the paper's).
        dropouts: the MLPs' dropout probabilities to draw from, e.g. ``0+0.2`` (``0``: none).
        data_dir: where the MNIST and CIFAR-10 files are (see :mod:`l2l.data`). Not in the spec.
    """

    name = "tasks"
    always_in_spec = ("families",)

    def __init__(self, families: str = "mnist+quadratic", activations: str = "sigmoid+tanh+relu+gelu",
                 widths: str = "10-40", depths: str = "1-2", loss_scale: float = 10.0,
                 init_std: str = "0.01", norms: str = "none", dropouts: str = "0",
                 data_dir: str = ""):
        self.families, self.activations, self.init_std = families, activations, init_std
        self.norms, self.dropouts = norms, dropouts
        self.widths, self.depths, self.loss_scale, self.data_dir = widths, depths, loss_scale, data_dir
        self._families = _names(families, FAMILIES, "families")
        self._activations = _names(activations, tuple(ACTIVATIONS), "activations")
        self._widths = _range(widths, "widths", 1)
        self._depths = _range(depths, "depths", 1)
        self._norms = _names(norms, ("none", "batch"), "norms")
        self._dropouts = _probabilities(dropouts)
        if not (isinstance(loss_scale, (int, float)) and math.isfinite(loss_scale)
                and loss_scale >= 1):
            raise ConfigError(f"loss_scale must be a finite number ≥ 1, got {loss_scale!r}")
        low, _, high = str(init_std).partition("-")
        try:
            self._init_std = (float(low), float(high or low))
        except ValueError:
            raise ConfigError(f"init_std must be X or LOW-HIGH, got {init_std!r}") from None
        if not (0 < self._init_std[0] <= self._init_std[1] < math.inf):
            raise ConfigError(f"init_std must be positive, LOW ≤ HIGH; got {init_std!r}")
        self._built: dict[str, Problem] = {}

    def for_split(self, split: str) -> Problem:
        """The family itself for training and testing; for ``val`` its fixed validation task."""
        if split != "val" or "mnist" not in self._families or "relu" not in self._activations:
            return self
        return Validation(self, Mnist(hidden=self._widths[1], layers=min(2, self._depths[1]),
                                      activation="relu", init_std=self._init_std[1],
                                      data_dir=self.data_dir))

    def task(self, generator: torch.Generator) -> Problem:
        """Draw one task (a problem of one of the families) with ``generator``."""

        def pick(options):
            return options[int(torch.randint(len(options), (1,), generator=generator))]

        def maybe_pick(options):  # one option: nothing drawn, so the task sequence stays as it was
            return options[0] if len(options) == 1 else pick(options)

        def between(bounds):
            return int(torch.randint(bounds[0], bounds[1] + 1, (1,), generator=generator))

        def init_std():
            low, high = self._init_std
            if low == high:
                return low
            u = float(torch.rand((), generator=generator, dtype=torch.float64))
            return float(f"{math.exp(math.log(low) + u * math.log(high / low)):.3g}")

        family = pick(self._families)
        if family == "mnist":
            problem = Mnist(hidden=between(self._widths), layers=between(self._depths),
                            activation=pick(self._activations), init_std=init_std(),
                            norm=maybe_pick(self._norms), dropout=maybe_pick(self._dropouts),
                            data_dir=self.data_dir)
        elif family == "cifar10":
            pair = torch.randperm(10, generator=generator)[:2].sort().values.tolist()
            labels = pick(("0-9", f"{pair[0]}+{pair[1]}"))
            problem = Cifar10(labels=labels, init_std=init_std(), data_dir=self.data_dir)
        else:
            problem = Quadratic(dim=between((2, 20)))
        return self._built.setdefault(problem.spec(), problem)  # keeps each family's data loaded

    def sample(self, batch_size: int, generator: torch.Generator) -> Optimizee:
        task = self.task(generator)
        inner = torch.Generator().manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
        optimizee = task.sample(batch_size, inner)
        if self.loss_scale == 1:
            return optimizee
        u = 2 * torch.rand(batch_size, generator=generator, dtype=torch.float64) - 1
        return Scaled(optimizee, torch.exp(u * math.log(self.loss_scale)).float())


class Validation(Tasks):
    """A task family whose every draw is one fixed task (its validation set)."""

    def __init__(self, family: Tasks, task: Problem):
        self.__dict__.update(family.__dict__)
        self._task = task

    def task(self, generator: torch.Generator) -> Problem:  # noqa: ARG002 (always the same)
        return self._task
