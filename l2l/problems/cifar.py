"""Small convnets on CIFAR-10 and its label subsets (Section 3.3, Figure 7).

The paper's optimizee: three convolutional layers with max pooling, then a fully-connected layer
of 32 units, with ReLU and batch normalisation, trained with the cross-entropy loss on minibatches
of 128 images. The details follow the authors' code: each
convolution has 16 channels, 5×5 kernels, stride 1 and same padding, and is followed by batch
normalisation, ReLU and 2×2 max pooling (32 → 16 → 8 → 4 pixels); the 16·4·4 = 256 features go
through a linear layer of 32 units, batch normalisation and ReLU, then a linear layer to the k
classes. CIFAR-5 and CIFAR-2 use only 5 or 2 of the labels (``cifar10:labels=0-4``,
``cifar10:labels=0-1``); their held-out complements (``labels=5-9``, ``labels=2-9``, see
:meth:`Cifar10.complement`) train the paper's LSTM-sub. Labels are renumbered 0…k−1 in increasing
order, so the classifier has k outputs.

Choices (the paper does not state them):

- Batch normalisation always uses the statistics of the current minibatch (training mode), also
  for the test metrics, which run over fixed chunks of about ``batch`` test images. There are no
  running averages: θ is all the state a network has, so the unrolled graph of meta-training is
  an ordinary function of θ.
- Batch normalisation has a learned shift and no learned scale, like the authors' code (Sonnet's
  ``BatchNorm`` default); ε = 1e-5 (PyTorch's default; Sonnet's is 1e-3). The layers before it
  have no bias, since a bias followed by a mean subtraction has no effect and a zero gradient
  (the authors' code keeps those biases). With k = 10 a network has n = 22,602 parameters, 14,000
  of them convolution weights.
- Images are scaled to [0, 1] and normalised per channel with the official training set's mean
  and standard deviation (:data:`l2l.data.CIFAR10_MEAN`, ``CIFAR10_STD``; the authors' code only
  scales to [0, 1]). They are stored as uint8 and normalised as each minibatch is drawn.
- Every parameter starts IID N(0, init_std²) with init_std = 0.01, as in the authors' code.
- Minibatches are drawn uniformly with replacement from the training images of the chosen labels,
  from a stream of its own for each network, as on MNIST (:mod:`.classification`).

θ is flat, ``[B, n]``, with the parameters of :func:`convnet_layout` in order. B networks run at
once as grouped convolutions (``groups=B``): network b's channels are channels b·C … b·C + C − 1
of one ``[M, B·C, H, W]`` tensor, so one ``conv2d``, ``batch_norm`` and ``max_pool2d`` call serve
all of them and batch-norm statistics stay per network and per channel.

Parameter groups (Section 3.3): the paper gives the convolutional layers one LSTM and the
fully-connected layers another; in the authors' code the convolution weights go to the first and
everything else (batch-norm shifts, fully-connected weights and biases) to the second. That is the
rule :data:`GROUP_RULES`, which :meth:`Cifar10Optimizee.coordinate_groups` applies to the layout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import data
from ..errors import ConfigError, check_positive
from .base import Layout, group_coordinates, layout_size, layout_slices
from .classification import Classification, ClassificationOptimizee

CHANNELS_IN, IMAGE, KERNEL, CONV_LAYERS, NUM_LABELS = 3, 32, 5, 3, 10

#: run the convolutions on channels-last tensors (faster on CPUs, same function)
CHANNELS_LAST = True

#: ε of every batch normalisation
BN_EPS = 1e-5

#: the paper's two LSTMs (Section 3.3): convolution weights, and everything else ("other")
GROUP_RULES = {"conv": "conv*.weight"}


# ----------------------------------------------------------------------------- label subsets

def parse_labels(text: str) -> tuple[int, ...]:
    """The labels of a subset spelling, sorted: ``"0-4"`` → (0, 1, 2, 3, 4).

    Items are single labels or inclusive ranges, separated by ``+``, ``,`` or spaces:
    ``"0-9"`` (CIFAR-10), ``"0-4"`` (CIFAR-5), ``"0-1"`` or ``"0+1"`` (CIFAR-2), ``"0-1+5-6"``.
    Inside a command-line spec use ``+`` (the comma separates options). At least two distinct
    labels in 0…9 are needed.
    """
    labels: set[int] = set()
    items = str(text).replace("+", " ").replace(",", " ").split()
    for item in items:
        first, dash, last = item.partition("-")
        try:
            low, high = int(first), int(last) if dash else int(first)
        except ValueError:
            raise ConfigError(f"bad label item {item!r} in {text!r}: write labels 0…9 and ranges "
                              "like 0-4, joined by +") from None
        if not 0 <= low <= high < NUM_LABELS:
            raise ConfigError(f"bad label item {item!r} in {text!r}: labels are 0…9 and a range "
                              "runs upwards")
        labels.update(range(low, high + 1))
    if len(labels) < 2:
        raise ConfigError(f"labels {text!r} name {len(labels)} label(s); a classifier needs ≥ 2")
    return tuple(sorted(labels))


def format_labels(labels) -> str:
    """The canonical spelling of a set of labels, with ranges: (0, 1, 2, 5) → ``"0-2+5"``."""
    labels, runs = sorted(set(labels)), []
    for label in labels:
        if runs and label == runs[-1][1] + 1:
            runs[-1][1] = label
        else:
            runs.append([label, label])
    return "+".join(f"{a}-{b}" if b > a else f"{a}" for a, b in runs)


# ----------------------------------------------------------------------------- the network

def convnet_layout(classes: int = 10, channels: int = 16, hidden: int = 32) -> Layout:
    """(name, shape) of each parameter of the convnet, in the order of the flat θ.

    ``conv{i}.weight`` ``[channels, in, 5, 5]`` and ``conv{i}.shift`` ``[channels]`` (batch-norm
    shift) for i = 1, 2, 3; ``fc.weight`` ``[hidden, channels·4·4]`` and ``fc.shift``
    ``[hidden]``; ``out.weight`` ``[classes, hidden]`` and ``out.bias`` ``[classes]``.
    """
    layout, fan_in = [], CHANNELS_IN
    for i in range(1, CONV_LAYERS + 1):
        layout += [(f"conv{i}.weight", (channels, fan_in, KERNEL, KERNEL)),
                   (f"conv{i}.shift", (channels,))]
        fan_in = channels
    side = IMAGE >> CONV_LAYERS
    layout += [("fc.weight", (hidden, channels * side * side)), ("fc.shift", (hidden,)),
               ("out.weight", (classes, hidden)), ("out.bias", (classes,))]
    return layout


def named_views(theta: Tensor, layout: Layout) -> dict[str, Tensor]:
    """Views of flat θ ``[B, n]`` as each parameter of the layout, ``[B, *shape]``."""
    slices = layout_slices(layout)
    if layout_size(layout) != theta.shape[1]:
        raise ValueError(f"θ has {theta.shape[1]} entries per network; the layout needs "
                         f"{layout_size(layout)}")
    return {name: theta[:, slices[name]].unflatten(1, shape) for name, shape in layout}


def batch_norm(x: Tensor, shift: Tensor, eps: float = BN_EPS) -> Tensor:
    """Batch normalisation with the statistics of this batch, plus a shift (no scale).

    ``x`` is ``[M, C]`` or ``[M, C, H, W]``; each channel c is normalised by the mean and the
    biased variance of x[:, c] over the batch (and space), then ``shift[c]`` is added (``shift``
    ``[C]``). This is ``torch.nn.BatchNorm{1,2}d`` in training mode with weight 1 and bias
    ``shift``, without running averages; it is differentiable twice. (The weight of ones is
    passed explicitly: with no weight, PyTorch 2.13's double backward fails.)
    """
    return F.batch_norm(x, None, None, shift.new_ones(shift.shape), shift, training=True,
                        eps=eps)


def normalise(images: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """uint8 images ``[..., 3, H, W]`` → floats scaled to [0, 1] and normalised per channel."""
    mean = torch.tensor(data.CIFAR10_MEAN, dtype=dtype, device=images.device).view(3, 1, 1)
    std = torch.tensor(data.CIFAR10_STD, dtype=dtype, device=images.device).view(3, 1, 1)
    return (images.to(dtype) / 255 - mean) / std


def convnet_logits(theta: Tensor, layout: Layout, x: Tensor, eps: float = BN_EPS) -> Tensor:
    """Logits ``[B, M, k]`` of B convnets with flat parameters θ ``[B, n]``.

    ``x`` is ``[B, M, 3, 32, 32]`` (each network its own images, e.g. its minibatch) or
    ``[M, 3, 32, 32]`` (the same images for every network, e.g. a test chunk), normalised floats.
    Batch-norm statistics are taken over the M images of each network separately.
    """
    p = named_views(theta, layout)
    B = theta.shape[0]
    if x.dim() == 4:  # shared images: network b reads channels 3b … 3b + 2
        h = x.repeat(1, B, 1, 1) if B > 1 else x
    else:  # [B, M, 3, H, W] → [M, B·3, H, W]
        h = x.transpose(0, 1).flatten(1, 2)
    if CHANNELS_LAST:
        h = h.contiguous(memory_format=torch.channels_last)
    for i in range(1, CONV_LAYERS + 1):
        weight = p[f"conv{i}.weight"]  # [B, C, C_in, 5, 5]
        h = F.conv2d(h, weight.flatten(0, 1), padding=KERNEL // 2, groups=B)
        h = batch_norm(h, p[f"conv{i}.shift"].flatten(), eps)
        h = F.max_pool2d(h, 2).relu()  # equal to pooling after the ReLU, on 4× fewer values
    M = h.shape[0]
    h = h.reshape(M, B, -1).transpose(0, 1)  # [B, M, C·4·4], each network's features in CHW order
    h = torch.bmm(h, p["fc.weight"].transpose(1, 2))  # [B, M, hidden]
    hidden = h.shape[2]
    h = batch_norm(h.transpose(0, 1).reshape(M, B * hidden), p["fc.shift"].flatten(), eps)
    h = h.view(M, B, hidden).transpose(0, 1).relu()
    return torch.baddbmm(p["out.bias"].unsqueeze(1), h, p["out.weight"].transpose(1, 2))


# ----------------------------------------------------------------------------- the optimizee

class Cifar10Optimizee(ClassificationOptimizee):
    """B convnets on a CIFAR-10 label subset, with θ0 ``[B, n]`` and minibatch streams.

    Args:
        theta0: initial flat parameters ``[B, n]``.
        layout: the parameters in θ (:func:`convnet_layout`).
        labels: the original labels used, sorted; label ``labels[j]`` becomes class j.
        seeds: one data seed per network, ``[B]`` int64.
        batch: minibatch size (paper: 128).
        train, test: (images ``[N, 3, 32, 32]`` uint8, labels ``[N]`` int64) of each split, all
            ten labels (:func:`l2l.data.load_cifar10`); only the chosen labels' images are used.
        group_rules: how θ's coordinates split between the optimizer's LSTMs.

    The metrics are the loss and accuracy on the test images of the chosen labels, in chunks of
    about ``batch`` images (batch-norm statistics of each chunk).
    """

    stream = "cifar10"
    metric_splits = ("test",)

    def __init__(self, theta0: Tensor, layout: Layout, labels: tuple[int, ...], seeds: Tensor,
                 batch: int, train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor],
                 group_rules=GROUP_RULES):
        super().__init__(theta0, seeds, batch, train, test, labels)
        self.layout, self.group_rules = layout, dict(group_rules)

    def inputs(self, examples: Tensor, dtype: torch.dtype) -> Tensor:
        """uint8 images ``[…, 3, 32, 32]`` → normalised floats (:func:`normalise`)."""
        return normalise(examples, dtype)

    def forward(self, theta: Tensor, x: Tensor) -> Tensor:
        """Logits ``[B, M, k]`` for normalised images ``[B, M, 3, 32, 32]`` or ``[M, 3, 32, 32]``
        (:func:`convnet_logits`)."""
        return convnet_logits(theta, self.layout, x)


# ----------------------------------------------------------------------------- the family

class Cifar10(Classification):
    """The paper's convnet classifying CIFAR-10 images, or a subset of the labels (Section 3.3).

    Args:
        labels: the labels used (:func:`parse_labels`): ``"0-9"`` CIFAR-10, ``"0-4"`` CIFAR-5,
            ``"0-1"`` CIFAR-2; their complements ``"5-9"``, ``"2-9"`` for LSTM-sub.
        channels: channels of each convolution (authors' code: 16).
        hidden: units of the fully-connected layer (paper: 32).
        batch: minibatch size (paper: 128).
        init_std: every parameter starts IID N(0, init_std²) (authors' code: 0.01).
        data_dir: the data dir (its ``cifar10/`` subfolder holds the files); empty:
            ``$L2L_DATA`` or the per-user cache (see :mod:`l2l.data`). Not part of the spec.

    The paper gives the optimizer one LSTM for the convolution weights and one for everything else
    (Section 3.3); its meta-training settings are in the recipe (``l2l/recipes/cifar10.toml``).
    """

    name = "cifar10"
    recipe = "cifar10"
    always_in_spec = ("labels",)
    #: the parameter groups of the paper's two LSTMs (see :func:`~l2l.problems.base.group_coordinates`)
    group_rules = GROUP_RULES

    def __init__(self, labels: str = "0-9", channels: int = 16, hidden: int = 32,
                 batch: int = 128, init_std: float = 0.01, data_dir: str = ""):
        if channels < 1 or hidden < 1 or batch < 2:
            raise ConfigError(f"need channels ≥ 1, hidden ≥ 1 and batch ≥ 2 (batch norm); got "
                              f"channels={channels}, hidden={hidden}, batch={batch}")
        check_positive("init_std", init_std, inclusive=True)
        #: the labels classified, sorted (``labels`` is their spelling: ``"0-4"``)
        self.subset = parse_labels(labels)
        self.labels = format_labels(self.subset)
        self.channels, self.hidden, self.batch = channels, hidden, batch
        self.init_std, self.data_dir = init_std, data_dir

    @property
    def layout(self) -> Layout:
        """(name, shape) of each parameter of one network (:func:`convnet_layout`)."""
        return convnet_layout(len(self.subset), self.channels, self.hidden)

    @property
    def num_params(self) -> int:
        """n, the length of each network's flat θ (22,602 for CIFAR-10, 22,437 for CIFAR-5)."""
        return layout_size(self.layout)

    def coordinate_groups(self) -> dict[str, Tensor]:
        """The coordinates of each parameter group: ``{"conv": …, "other": …}`` (int64 indices)."""
        return group_coordinates(self.layout, self.group_rules)

    def complement(self) -> Cifar10:
        """The same problem on the held-out labels (LSTM-sub's training problem)."""
        rest = [label for label in range(NUM_LABELS) if label not in self.subset]
        if len(rest) < 2:
            raise ConfigError(f"labels {self.labels} leave fewer than 2 labels out")
        return self.with_options(labels=format_labels(rest))

    def load(self, split: str) -> tuple[Tensor, Tensor]:
        return data.load_cifar10(split, self.data_dir or None)

    def optimizee(self, theta0: Tensor, seeds: Tensor, train: tuple[Tensor, Tensor],
                  test: tuple[Tensor, Tensor]) -> Cifar10Optimizee:
        return Cifar10Optimizee(theta0, self.layout, self.subset, seeds, self.batch, train, test,
                                self.group_rules)
