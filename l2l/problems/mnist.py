"""MLPs on MNIST (Section 3.2, Figures 4 centre/right, 5 and 6).

The paper's base optimizee is an MLP with one hidden layer of 20 sigmoid units, trained with the
cross-entropy loss on minibatches of 128 MNIST images; Figure 5 varies the width (40 units), the
depth (2 hidden layers) and the activation (ReLU), and Figure 6 sweeps 5…50 units with 1 or 2
layers. All of these are spellings of one family: ``mnist``, ``mnist:hidden=40``,
``mnist:layers=2``, ``mnist:activation=relu``, ``mnist:hidden=30,layers=2``. Beyond the paper,
for task families (:mod:`.tasks`): ``norm=batch`` normalises every hidden layer's pre-activations
with the statistics of the minibatch (batch normalisation without learned scale or shift), and
``dropout=P`` zeroes each hidden unit with probability P in the training loss (inverted dropout;
the masks of network b at step t depend on its data seed and t only, like its minibatch; whole-set
metrics use no dropout).

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
from ..seeding import minibatch_seed
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

#: ε of the batch normalisation of ``norm=batch``
BN_EPS = 1e-5


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


def mlp_logits(theta: Tensor, sizes: list[int], activation, x: Tensor, norm: bool = False,
               masks: list[Tensor] | None = None) -> Tensor:
    """Logits ``[B, M, 10]`` of B MLPs with flat parameters θ ``[B, n]``.

    ``x`` is ``[B, M, 784]`` (each network its own inputs, e.g. its minibatch) or ``[M, 784]``
    (the same inputs for every network, e.g. the test set). ``norm``: normalise each hidden
    pre-activation over the M examples of each network; ``masks``: one dropout factor
    ``[B, M, hidden]`` per hidden layer, multiplying its activations.
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
            if norm:
                h = (h - h.mean(1, keepdim=True)) * torch.rsqrt(
                    h.var(1, unbiased=False, keepdim=True) + BN_EPS)
            h = activation(h)
            if masks is not None:
                h = h * masks[k]
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
        norm: batch-normalise the hidden layers; dropout: the hidden units' dropout probability.
    """

    stream = "mnist"

    def __init__(self, theta0: Tensor, sizes: list[int], activation, seeds: Tensor, batch: int,
                 train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor], norm: bool = False,
                 dropout: float = 0.0):
        super().__init__(theta0, seeds, batch, train, test)
        self.sizes, self.activation, self.norm, self.dropout = sizes, activation, norm, dropout
        self._masks = None

    def forward(self, theta: Tensor, x: Tensor) -> Tensor:
        """Logits ``[B, M, 10]`` for images ``[B, M, 784]`` or ``[M, 784]`` (:func:`mlp_logits`),
        with the dropout masks of the step whose loss is being computed, if any."""
        return mlp_logits(theta, self.sizes, self.activation, x, self.norm, self._masks)

    def dropout_masks(self, step: int, device, dtype) -> list[Tensor]:
        """Inverted-dropout factors (0 or 1/(1−p)) ``[B, batch, hidden]`` per hidden layer at
        ``step``, each network's from its data seed and the step."""
        keep = 1.0 - self.dropout
        per_network = []
        for seed in self.seeds.tolist():
            g = torch.Generator().manual_seed(minibatch_seed("mnist-dropout", seed, step))
            per_network.append([torch.rand(self.batch, width, generator=g) < keep
                                for width in self.sizes[1:-1]])
        return [torch.stack(layer).to(device=device, dtype=dtype) / keep
                for layer in zip(*per_network)]

    def loss(self, theta: Tensor, step: int = 0) -> Tensor:
        if not self.dropout:
            return super().loss(theta, step)
        self._masks = self.dropout_masks(step, theta.device, theta.dtype)
        try:
            return super().loss(theta, step)
        finally:
            self._masks = None

    def chunks(self, examples: Tensor, labels: Tensor, networks: int):
        """Pieces of a whole set as large as :data:`METRICS_BUDGET` allows (the chunks change
        nothing but the speed); with batch norm, minibatch-sized pieces, as in training."""
        if self.norm:
            return super().chunks(examples, labels, networks)
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
        norm: ``none`` (the paper) or ``batch``: batch normalisation of the hidden layers.
        dropout: probability of dropping a hidden unit in the training loss (paper: 0).
        data_dir: where the data dir is (its ``mnist/`` subfolder holds the files); empty:
            ``$L2L_DATA`` or the per-user cache (see :mod:`l2l.data`). Not part of the spec.

    The paper meta-trains here with preprocessed gradients (p = 10) and LSTM outputs scaled by 0.1.
    """

    name = "mnist"
    recipe = "mnist"
    always_in_spec = ("hidden", "layers", "activation")

    def __init__(self, hidden: int = 20, layers: int = 1, activation: str = "sigmoid",
                 batch: int = 128, init_std: float = 0.01, norm: str = "none",
                 dropout: float = 0.0, data_dir: str = ""):
        if norm not in ("none", "batch"):
            raise ConfigError(f"norm must be 'none' or 'batch', got {norm!r}")
        if not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
            raise ConfigError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        if hidden < 1 or layers < 0 or batch < 1:
            raise ConfigError(f"need hidden ≥ 1, layers ≥ 0 and batch ≥ 1; got hidden={hidden}, "
                              f"layers={layers}, batch={batch}")
        check_positive("init_std", init_std, inclusive=True)
        if activation not in ACTIVATIONS:
            raise ConfigError(f"unknown activation {activation!r}; known: {', '.join(ACTIVATIONS)}")
        self.hidden, self.layers, self.activation = hidden, layers, activation
        self.batch, self.init_std, self.data_dir = batch, init_std, data_dir
        self.norm, self.dropout = norm, dropout
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
                              train, test, self.norm == "batch", self.dropout)
