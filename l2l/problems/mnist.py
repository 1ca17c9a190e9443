"""MLPs on MNIST (Section 3.2, Figures 4 centre/right, 5 and 6).

The paper's base optimizee is an MLP with one hidden layer of 20 sigmoid units, trained with the
cross-entropy loss on minibatches of 128 MNIST images; Figure 5 varies the width (40 units), the
depth (2 hidden layers) and the activation (ReLU), and Figure 6 sweeps 5…50 units with 1 or 2
layers. All of these are spellings of one family: ``mnist``, ``mnist:hidden=40``,
``mnist:layers=2``, ``mnist:activation=relu``, ``mnist:hidden=30,layers=2``.

θ is flat, ``[B, n]``: B independent networks, each layer stored as its weight ``[out, in]``
(row-major, like ``nn.Linear.weight``) followed by its bias ``[out]``, layer after layer. The
forward pass takes views of θ and runs all B networks at once with ``torch.baddbmm``. As in the
authors' code every parameter starts IID N(0, init_std²), init_std = 0.01 (the paper says only
"IID Gaussian").

Each sampled network has its own stream of minibatches: step t of network b uses 128 training
images drawn uniformly with replacement (as in the authors' code) by a generator seeded from
(a seed drawn for b at sampling, t). So step t always sees the same minibatch, whatever order the
steps are asked in, and a network's minibatches depend on its own seed only. The loss the optimizer sees
(and that the curves plot) is this minibatch loss; :meth:`MnistOptimizee.metrics` adds the loss
and accuracy on the full training and test sets.

The data are loaded by :func:`l2l.data.load_mnist` at the first :meth:`Mnist.sample`, once per
process, so the problem can be built (and its spec parsed) without the files present.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import data
from ..errors import ConfigError, check_positive
from ..seeding import minibatch_seed
from .base import Optimizee, Problem

#: hidden-layer nonlinearities by name
ACTIVATIONS = {
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
    "tanh": torch.tanh,
    "elu": F.elu,
    "gelu": F.gelu,
    "softplus": F.softplus,
    "leaky_relu": F.leaky_relu,
    "linear": lambda x: x,
}

INPUTS, CLASSES = 784, 10

# examples × networks × units evaluated at once by metrics() (bounds its memory to ~64 MB)
METRICS_BUDGET = 1 << 24


def layer_sizes(hidden: int, layers: int) -> list[int]:
    """Widths from input to output, e.g. ``[784, 20, 10]`` for one hidden layer of 20."""
    return [INPUTS] + [hidden] * layers + [CLASSES]


def num_params(sizes: list[int]) -> int:
    """Length of the flat θ of an MLP with these widths (weights and biases)."""
    return sum(o * i + o for i, o in zip(sizes[:-1], sizes[1:]))


def unflatten(theta: Tensor, sizes: list[int]) -> list[tuple[Tensor, Tensor]]:
    """Views of flat θ ``[B, n]`` as (weight ``[B, out, in]``, bias ``[B, out]``) per layer."""
    layers, start = [], 0
    for i, o in zip(sizes[:-1], sizes[1:]):
        weight = theta[:, start:start + o * i].unflatten(1, (o, i))
        bias = theta[:, start + o * i:start + o * i + o]
        layers.append((weight, bias))
        start += o * i + o
    if start != theta.shape[1]:
        raise ValueError(f"θ has {theta.shape[1]} entries per network; widths {sizes} need {start}")
    return layers


def mlp_logits(theta: Tensor, sizes: list[int], activation, x: Tensor) -> Tensor:
    """Logits ``[B, M, 10]`` of B MLPs with flat parameters θ ``[B, n]``.

    ``x`` is ``[B, M, 784]`` (each network its own inputs, e.g. its minibatch) or ``[M, 784]``
    (the same inputs for every network, e.g. the test set).
    """
    layers = unflatten(theta, sizes)
    h = x
    for k, (weight, bias) in enumerate(layers):
        if h.dim() == 2:  # shared inputs: one [M, in] × [in, B·out] product for all networks
            B, out, _ = weight.shape
            h = (h @ weight.reshape(B * out, -1).T).view(-1, B, out).transpose(0, 1)
            h = h + bias.unsqueeze(1)
        else:
            h = torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2))
        if k < len(layers) - 1:
            h = activation(h)
    return h


def batch_seed(seed: int, step: int) -> int:
    """The 63-bit seed of one network's minibatch at ``step`` (see :func:`l2l.seeding.minibatch_seed`)."""
    return minibatch_seed("mnist", seed, step)


class MnistOptimizee(Optimizee):
    """B MLPs on MNIST with their initial parameters θ0 ``[B, n]`` and minibatch streams.

    Args:
        theta0: initial flat parameters ``[B, n]``.
        sizes: layer widths, ``[784, hidden, …, 10]``.
        activation: the hidden nonlinearity (a function of a tensor).
        seeds: one data seed per network, ``[B]`` int64.
        batch: minibatch size (paper: 128).
        train, test: (images ``[N, 784]``, labels ``[N]``) of each split.
    """

    def __init__(self, theta0: Tensor, sizes: list[int], activation, seeds: Tensor, batch: int,
                 train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor]):
        self.theta0, self.sizes, self.activation = theta0, sizes, activation
        self.seeds, self.batch = seeds, batch
        self.train, self.test = train, test
        self._cached_step, self._cached_batch = None, None

    def repeat(self, copies: int) -> "MnistOptimizee":
        return MnistOptimizee(self.theta0.repeat(copies, 1), self.sizes, self.activation,
                              self.seeds.repeat(copies), self.batch, self.train, self.test)

    def indices(self, step: int) -> Tensor:
        """Training-set indices of every network's minibatch at ``step``: ``[B, batch]``."""
        n = len(self.train[1])
        rows = []
        for seed in self.seeds.tolist():
            g = torch.Generator().manual_seed(batch_seed(seed, step))
            rows.append(torch.randint(n, (self.batch,), generator=g))
        return torch.stack(rows)

    def minibatch(self, step: int) -> tuple[Tensor, Tensor]:
        """Images ``[B, batch, 784]`` and labels ``[B, batch]`` at ``step`` (last one cached)."""
        if self._cached_step != step:
            index = self.indices(step)
            self._cached_step = step
            self._cached_batch = (self.train[0][index], self.train[1][index])
        return self._cached_batch

    def logits(self, theta: Tensor, x: Tensor) -> Tensor:
        """Logits ``[B, M, 10]`` for inputs ``[B, M, 784]`` or ``[M, 784]``.

        The inputs follow θ's device and dtype (a no-op for float32 θ on the CPU).
        """
        x = x.to(device=theta.device, dtype=theta.dtype)
        return mlp_logits(theta, self.sizes, self.activation, x)

    def loss(self, theta: Tensor, step: int = 0) -> Tensor:
        """Mean cross-entropy of each network on its own minibatch at ``step``: ``[B]``."""
        x, y = self.minibatch(step)
        logits = self.logits(theta, x)
        y = y.to(theta.device)
        return F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(y.shape).mean(1)

    @torch.no_grad()
    def evaluate(self, theta: Tensor, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """Mean cross-entropy and accuracy ``[B]`` of each network on a whole dataset."""
        B = theta.shape[0]
        chunk = max(128, METRICS_BUDGET // (B * max(self.sizes[1:])))
        loss_sum = theta.new_zeros(B, dtype=torch.float64)
        correct = theta.new_zeros(B, dtype=torch.float64)
        for start in range(0, len(labels), chunk):
            x, y = images[start:start + chunk], labels[start:start + chunk]
            logits = self.logits(theta, x)
            target = y.to(theta.device).expand(B, -1)
            loss = F.cross_entropy(logits.flatten(0, 1), target.flatten(), reduction="none")
            loss_sum += loss.view(B, -1).double().sum(1)
            correct += (logits.argmax(-1) == target).double().sum(1)
        return (loss_sum / len(labels)).to(theta.dtype), (correct / len(labels)).to(theta.dtype)

    def metrics(self, theta: Tensor) -> dict[str, Tensor]:
        """Loss and accuracy on the full training set and the test set, each ``[B]``."""
        train_loss, train_acc = self.evaluate(theta, *self.train)
        test_loss, test_acc = self.evaluate(theta, *self.test)
        return {"train_loss": train_loss, "train_acc": train_acc,
                "test_loss": test_loss, "test_acc": test_acc}


class Mnist(Problem):
    """MLPs classifying MNIST digits with the cross-entropy loss (Section 3.2).

    Args:
        hidden: units per hidden layer (paper: 20; Figure 5: 40; Figure 6: 5…50).
        layers: number of hidden layers (paper: 1; Figures 5, 6: 2). 0 gives softmax regression.
        activation: hidden nonlinearity, one of :data:`ACTIVATIONS` (paper: sigmoid; Figure 5:
            relu).
        batch: minibatch size (paper: 128).
        init_std: every parameter starts IID N(0, init_std²) (authors' code: 0.01).
        data_dir: where the data dir is (its ``mnist/`` subfolder holds the files); empty:
            ``$L2L_DATA`` or the per-user cache (see :mod:`l2l.data`). Not part of the spec.

    The paper meta-trains here with preprocessed gradients (p = 10) and LSTM outputs scaled by 0.1.
    """

    name = "mnist"
    optimizer_defaults = {"preprocess": True, "p": 10.0, "output_scale": 0.1}
    #: functions per tuning rollout (rates × networks; see :func:`l2l.evaluate.score_rates`)
    tune_batch = 512
    #: meta-training defaults: the paper's horizon and unroll; meta-lr, schedule and clipping from
    #: experiments/mnist_sweep.sh; the log f meta-loss, which weighs late progress as much as
    #: early progress, gave a better optimizer in one run than two stages of the paper's mean f
    #: (l2l/pretrained/README.md)
    training_defaults = {"epochs": 1000, "batch_size": 1, "horizon": 100, "unroll": 20,
                         "meta_lr": 3e-3, "lr_schedule": "cosine", "clip_grad": 1.0,
                         "objective": "log_loss", "validate_every": 20, "validation_size": 16}
    tune_runs = 32

    def __init__(self, hidden: int = 20, layers: int = 1, activation: str = "sigmoid",
                 batch: int = 128, init_std: float = 0.01, data_dir: str = ""):
        if hidden < 1 or layers < 0 or batch < 1:
            raise ConfigError(f"need hidden ≥ 1, layers ≥ 0 and batch ≥ 1; got hidden={hidden}, "
                              f"layers={layers}, batch={batch}")
        check_positive("init_std", init_std, inclusive=True)
        if activation not in ACTIVATIONS:
            raise ConfigError(f"unknown activation {activation!r}; known: {', '.join(ACTIVATIONS)}")
        self.hidden, self.layers, self.activation = hidden, layers, activation
        self.batch, self.init_std, self.data_dir = batch, init_std, data_dir
        self.sizes = layer_sizes(hidden, layers)

    @property
    def num_params(self) -> int:
        """n, the length of each network's flat θ (15,910 for the paper's 784-20-10 MLP)."""
        return num_params(self.sizes)

    def sample(self, batch_size: int, generator: torch.Generator) -> MnistOptimizee:
        train = data.load_mnist("train", self.data_dir or None)
        test = data.load_mnist("test", self.data_dir or None)
        theta0 = self.init_std * torch.randn(batch_size, self.num_params, generator=generator)
        seeds = torch.randint(0, 2**62, (batch_size,), generator=generator)
        return MnistOptimizee(theta0, self.sizes, ACTIVATIONS[self.activation], seeds, self.batch,
                              train, test)

    def config(self) -> dict:
        """hidden, layers and activation always; batch and init_std where not the paper's."""
        config = {"hidden": self.hidden, "layers": self.layers, "activation": self.activation}
        if self.batch != 128:
            config["batch"] = self.batch
        if self.init_std != 0.01:
            config["init_std"] = self.init_std
        return config
