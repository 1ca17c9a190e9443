"""Classifiers as optimizees: minibatches, the cross-entropy loss and the metrics (Sections 3.2, 3.3).

The MNIST MLPs and the CIFAR-10 convnets are the same kind of problem with another network: B
networks with flat parameters θ ``[B, n]``, all parameters IID N(0, init_std²) at the start,
trained with the mean cross-entropy on minibatches. This module holds what they share; a family
gives only its network (:meth:`ClassificationOptimizee.forward`, its layout) and its data.

Each sampled network has its own stream of minibatches: step t of network b uses ``batch``
training examples drawn uniformly with replacement (as in the authors' code) by a generator seeded
from (the family's stream, a seed drawn for b at sampling, t) (:func:`l2l.seeding.minibatch_seed`).
So step t always sees the same minibatch, whatever order the steps are asked in, and a network's
minibatches depend on its own seed only. The loss the optimizer sees (and that the curves plot) is
this minibatch loss; :meth:`ClassificationOptimizee.metrics` adds the loss and accuracy on whole
sets.

A network may classify a subset of the labels (CIFAR-5, CIFAR-2): only the examples of those
labels are drawn and evaluated, and label ``labels[j]`` becomes class j.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor

from ..seeding import minibatch_seed
from .base import Optimizee, Problem

# the training examples copied to an accelerator, once per process: (id of the CPU tensor, device)
_ON_DEVICE: dict = {}


def on_device(split: tuple[Tensor, Tensor], device) -> tuple[Tensor, Tensor]:
    """(examples, labels) of a split on ``device``: the tensors themselves on the CPU, else a copy
    made once per process (a training set then crosses the bus only once)."""
    device = torch.device(device)
    if device.type == "cpu":
        return split
    key = (id(split[0]), str(device))
    if key not in _ON_DEVICE:
        _ON_DEVICE[key] = (split[0].to(device), split[1].to(device))
    return _ON_DEVICE[key]


class ClassificationOptimizee(Optimizee):
    """B classifiers with initial parameters θ0 ``[B, n]``, each with its own minibatch stream.

    Args:
        theta0: initial flat parameters ``[B, n]``.
        seeds: one data seed per network, ``[B]`` int64.
        batch: minibatch size (paper: 128).
        train, test: (examples ``[N, …]``, labels ``[N]`` int64) of each split, as stored.
        labels: the labels classified, sorted; label ``labels[j]`` becomes class j. None: every
            label, as it is.

    A family defines :attr:`stream`, :meth:`forward` and, where its stored examples are not the
    network's inputs, :meth:`inputs`.
    """

    #: the family's name in :func:`l2l.seeding.minibatch_seed` (changing it changes every batch)
    stream: str = ""
    #: the splits whose whole-set loss and accuracy :meth:`metrics` reports
    metric_splits: tuple[str, ...] = ("train", "test")

    def __init__(self, theta0: Tensor, seeds: Tensor, batch: int, train: tuple[Tensor, Tensor],
                 test: tuple[Tensor, Tensor], labels: tuple[int, ...] | None = None):
        self.theta0, self.seeds, self.batch = theta0, seeds, batch
        self.train, self.test = train, test
        self.labels = None if labels is None else tuple(labels)
        # original label → class index (−1: not used), and the rows of the used labels
        self.classes = self.train_rows = self.test_rows = None
        if self.labels is not None:
            kept = train[1].new_tensor(self.labels)
            self.classes = torch.full((max(int(train[1].max()), *self.labels) + 1,), -1,
                                      dtype=torch.long)
            self.classes[kept] = torch.arange(len(self.labels))
            self.train_rows = torch.isin(train[1], kept).nonzero().squeeze(1)
            self.test_rows = torch.isin(test[1], kept).nonzero().squeeze(1)
        self._cached_key, self._cached_batch = None, None

    def repeat(self, copies: int) -> ClassificationOptimizee:
        twin = copy.copy(self)
        twin.theta0, twin.seeds = self.theta0.repeat(copies, 1), self.seeds.repeat(copies)
        twin._cached_key, twin._cached_batch = None, None
        return twin

    def select(self, rows: slice) -> ClassificationOptimizee:
        part = copy.copy(self)
        part.theta0, part.seeds = self.theta0[rows], self.seeds[rows]
        part._cached_key, part._cached_batch = None, None
        return part

    # -- the network ------------------------------------------------------------------------
    def inputs(self, examples: Tensor, dtype: torch.dtype) -> Tensor:
        """Stored examples ``[…, *shape]`` as the network's inputs in ``dtype`` (a cast here)."""
        return examples.to(dtype)

    def forward(self, theta: Tensor, x: Tensor) -> Tensor:
        """Logits ``[B, M, k]`` of the B networks for inputs ``x`` on θ's device and dtype, either
        ``[B, M, …]`` (each network its own inputs) or ``[M, …]`` (the same for all)."""
        raise NotImplementedError

    def logits(self, theta: Tensor, x: Tensor) -> Tensor:
        """Logits ``[B, M, k]`` for inputs ``[B, M, …]`` or ``[M, …]``, which follow θ's device and
        dtype (a no-op for float32 θ on the CPU)."""
        return self.forward(theta, x.to(device=theta.device, dtype=theta.dtype))

    def targets(self, labels: Tensor) -> Tensor:
        """Class indices 0…k−1 of original labels (the same tensor when every label is used)."""
        return labels if self.classes is None else self.classes.to(labels.device)[labels]

    # -- minibatches and the loss ---------------------------------------------------------------
    def indices(self, step: int) -> Tensor:
        """Training-set rows of every network's minibatch at ``step``: ``[B, batch]``."""
        pool = len(self.train[1]) if self.train_rows is None else len(self.train_rows)
        rows = []
        for seed in self.seeds.tolist():
            g = torch.Generator().manual_seed(minibatch_seed(self.stream, seed, step))
            rows.append(torch.randint(pool, (self.batch,), generator=g))
        rows = torch.stack(rows)
        return rows if self.train_rows is None else self.train_rows[rows]

    def minibatch(self, step: int, dtype: torch.dtype = torch.float32,
                  device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
        """Inputs ``[B, batch, …]`` in ``dtype`` and classes ``[B, batch]`` on ``device`` at
        ``step`` (the last one is cached)."""
        key = (step, dtype, torch.device(device))
        if self._cached_key != key:
            examples, labels = on_device(self.train, device)
            index = self.indices(step).to(examples.device)
            batch = (self.inputs(examples[index], dtype), self.targets(labels[index]))
            self._cached_key, self._cached_batch = key, batch
        return self._cached_batch

    def loss(self, theta: Tensor, step: int = 0) -> Tensor:
        """Mean cross-entropy of each network on its own minibatch at ``step``: ``[B]``."""
        x, y = self.minibatch(step, theta.dtype, theta.device)
        logits = self.logits(theta, x)
        return F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(y.shape).mean(1)

    # -- whole sets -------------------------------------------------------------------------
    def chunks(self, examples: Tensor, labels: Tensor, networks: int):  # noqa: ARG002 (a hook)
        """The pieces (examples, labels) of a whole set that :meth:`evaluate` runs at once:
        consecutive chunks of about ``batch`` examples, the size of a minibatch (what batch
        normalisation sees in training)."""
        count = max(1, -(-len(labels) // self.batch))
        return zip(examples.tensor_split(count), labels.tensor_split(count))

    def split(self, name: str) -> tuple[Tensor, Tensor]:
        """(examples, labels) of split ``train`` or ``test``, only of the labels used."""
        (examples, labels), rows = {"train": (self.train, self.train_rows),
                                    "test": (self.test, self.test_rows)}[name]
        return (examples, labels) if rows is None else (examples[rows], labels[rows])

    @torch.no_grad()
    def evaluate(self, theta: Tensor, examples: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """Mean cross-entropy and accuracy ``[B]`` of each network on examples ``[N, …]`` with
        original labels ``[N]``, in :meth:`chunks`."""
        B, N = theta.shape[0], len(labels)
        loss_sum = theta.new_zeros(B, dtype=torch.float64)
        correct = theta.new_zeros(B, dtype=torch.float64)
        for x, y in self.chunks(examples, labels, B):
            logits = self.logits(theta, self.inputs(x.to(theta.device), theta.dtype))
            target = self.targets(y).to(theta.device).expand(B, -1)
            loss = F.cross_entropy(logits.flatten(0, 1), target.flatten(), reduction="none")
            loss_sum += loss.view(B, -1).double().sum(1)
            correct += (logits.argmax(-1) == target).double().sum(1)
        return (loss_sum / N).to(theta.dtype), (correct / N).to(theta.dtype)

    def metrics(self, theta: Tensor) -> dict[str, Tensor]:
        """Loss and accuracy on each of :attr:`metric_splits` (``test_loss``, ``test_acc`` …),
        each ``[B]``."""
        figures = {}
        for name in self.metric_splits:
            loss, accuracy = self.evaluate(theta, *self.split(name))
            figures[f"{name}_loss"], figures[f"{name}_acc"] = loss, accuracy
        return figures


class Classification(Problem):
    """A family of classifiers: one network architecture on one dataset.

    A family defines :attr:`num_params`, :meth:`load` and :meth:`optimizee`, and keeps its options
    ``batch``, ``init_std`` and ``data_dir`` as attributes; :meth:`sample` is here.
    """

    batch: int
    init_std: float
    data_dir: str

    @property
    def num_params(self) -> int:
        """n, the length of each network's flat θ."""
        raise NotImplementedError

    def load(self, split: str) -> tuple[Tensor, Tensor]:
        """(examples, labels) of the dataset's ``train`` or ``test`` split, all labels."""
        raise NotImplementedError

    def optimizee(self, theta0: Tensor, seeds: Tensor, train: tuple[Tensor, Tensor],
                  test: tuple[Tensor, Tensor]) -> ClassificationOptimizee:
        """The networks with initial parameters ``theta0`` ``[B, n]`` and data seeds ``[B]``."""
        raise NotImplementedError

    def sample(self, batch_size: int, generator: torch.Generator) -> ClassificationOptimizee:
        """``batch_size`` networks: θ0 IID N(0, init_std²) ``[B, n]``, then a data seed each."""
        train, test = self.load("train"), self.load("test")
        theta0 = self.init_std * torch.randn(batch_size, self.num_params, generator=generator)
        seeds = torch.randint(0, 2**62, (batch_size,), generator=generator)
        return self.optimizee(theta0, seeds, train, test)
