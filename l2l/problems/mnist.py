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

Minibatches, the loss and the metrics are those of every classifier (:mod:`.classification`):
each network draws its own stream of minibatches of 128 training images, and the metrics are the
loss and accuracy on the full training and test sets.

The data are loaded by :func:`l2l.data.load_mnist` at the first :meth:`Mnist.sample`, once per
process, so the problem can be built (and its spec parsed) without the files present.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import data
from ..errors import ConfigError, check_positive
from .classification import Classification, ClassificationOptimizee

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


class MnistOptimizee(ClassificationOptimizee):
    """B MLPs on MNIST with their initial parameters θ0 ``[B, n]`` and minibatch streams.

    Args:
        theta0: initial flat parameters ``[B, n]``.
        sizes: layer widths, ``[784, hidden, …, 10]``.
        activation: the hidden nonlinearity (a function of a tensor).
        seeds: one data seed per network, ``[B]`` int64.
        batch: minibatch size (paper: 128).
        train, test: (images ``[N, 784]``, labels ``[N]``) of each split.
    """

    stream = "mnist"

    def __init__(self, theta0: Tensor, sizes: list[int], activation, seeds: Tensor, batch: int,
                 train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor]):
        super().__init__(theta0, seeds, batch, train, test)
        self.sizes, self.activation = sizes, activation

    def forward(self, theta: Tensor, x: Tensor) -> Tensor:
        """Logits ``[B, M, 10]`` for images ``[B, M, 784]`` or ``[M, 784]`` (:func:`mlp_logits`)."""
        return mlp_logits(theta, self.sizes, self.activation, x)

    def chunks(self, examples: Tensor, labels: Tensor, networks: int):
        """Pieces of a whole set as large as :data:`METRICS_BUDGET` allows (no batch norm here:
        the chunks change nothing but the speed)."""
        size = max(128, METRICS_BUDGET // (networks * max(self.sizes[1:])))
        return zip(examples.split(size), labels.split(size))


class Mnist(Classification):
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
    recipe = "mnist"
    always_in_spec = ("hidden", "layers", "activation")

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

    def load(self, split: str) -> tuple[Tensor, Tensor]:
        return data.load_mnist(split, self.data_dir or None)

    def optimizee(self, theta0: Tensor, seeds: Tensor, train: tuple[Tensor, Tensor],
                  test: tuple[Tensor, Tensor]) -> MnistOptimizee:
        return MnistOptimizee(theta0, self.sizes, ACTIVATIONS[self.activation], seeds, self.batch,
                              train, test)
