"""Small convnets on CIFAR-10 and its label subsets (Section 3.3, Figure 7).

The paper's optimizee: three convolutional layers with max pooling, then a fully-connected layer
of 32 units, with ReLU and batch normalisation, trained with the cross-entropy loss on minibatches
of 128 images. PAPER.md gives the details from the authors' code, which this follows: each
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
  from a stream of its own for each network, as on MNIST (:mod:`l2l.problems.mnist`).

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
from ..seeding import minibatch_seed
from .base import Layout, Optimizee, Problem, group_coordinates, layout_size, layout_slices

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


def batch_seed(seed: int, step: int) -> int:
    """The 63-bit seed of one network's minibatch at ``step`` (see :func:`l2l.seeding.minibatch_seed`)."""
    return minibatch_seed("cifar10", seed, step)


# ----------------------------------------------------------------------------- the optimizee

# the training images copied to an accelerator, once per process: (id of the CPU tensor, device)
_ON_DEVICE: dict = {}


def on_device(split: tuple[Tensor, Tensor], device) -> tuple[Tensor, Tensor]:
    """(images, labels) of a split on ``device``: the tensors themselves on the CPU, else a copy
    made once per process (the 150 MB of training images then cross the bus only once)."""
    device = torch.device(device)
    if device.type == "cpu":
        return split
    key = (id(split[0]), str(device))
    if key not in _ON_DEVICE:
        _ON_DEVICE[key] = (split[0].to(device), split[1].to(device))
    return _ON_DEVICE[key]


class Cifar10Optimizee(Optimizee):
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
    """

    def __init__(self, theta0: Tensor, layout: Layout, labels: tuple[int, ...], seeds: Tensor,
                 batch: int, train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor],
                 group_rules=GROUP_RULES):
        self.theta0, self.layout, self.labels = theta0, layout, tuple(labels)
        self.seeds, self.batch, self.group_rules = seeds, batch, dict(group_rules)
        self.train, self.test = train, test
        # original label → class index (−1: not used)
        self.classes = torch.full((NUM_LABELS,), -1, dtype=torch.long)
        self.classes[list(self.labels)] = torch.arange(len(self.labels))
        self.train_rows = torch.isin(train[1], self.classes.new_tensor(self.labels)).nonzero().squeeze(1)
        self.test_rows = torch.isin(test[1], self.classes.new_tensor(self.labels)).nonzero().squeeze(1)
        self._cached_key, self._cached_batch = None, None

    def repeat(self, copies: int) -> "Cifar10Optimizee":
        return Cifar10Optimizee(self.theta0.repeat(copies, 1), self.layout, self.labels,
                                self.seeds.repeat(copies), self.batch, self.train, self.test,
                                self.group_rules)

    def indices(self, step: int) -> Tensor:
        """Training-set rows of every network's minibatch at ``step``: ``[B, batch]``."""
        rows = []
        for seed in self.seeds.tolist():
            g = torch.Generator().manual_seed(batch_seed(seed, step))
            rows.append(torch.randint(len(self.train_rows), (self.batch,), generator=g))
        return self.train_rows[torch.stack(rows)]

    def minibatch(self, step: int, dtype: torch.dtype = torch.float32,
                  device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
        """Normalised images ``[B, batch, 3, 32, 32]`` and classes ``[B, batch]`` (0…k−1) at
        ``step`` (the last one is cached)."""
        key = (step, dtype, torch.device(device))
        if self._cached_key != key:
            images, labels = on_device(self.train, device)
            index = self.indices(step).to(images.device)
            x = normalise(images[index], dtype)
            y = self.classes.to(labels.device)[labels[index]]
            self._cached_key, self._cached_batch = key, (x, y)
        return self._cached_batch

    def logits(self, theta: Tensor, x: Tensor) -> Tensor:
        """Logits ``[B, M, k]`` for normalised images ``[B, M, 3, 32, 32]`` or ``[M, 3, 32, 32]``
        (they follow θ's device and dtype)."""
        return convnet_logits(theta, self.layout, x.to(device=theta.device, dtype=theta.dtype))

    def loss(self, theta: Tensor, step: int = 0) -> Tensor:
        """Mean cross-entropy of each network on its own minibatch at ``step``: ``[B]``."""
        x, y = self.minibatch(step, theta.dtype, theta.device)
        logits = self.logits(theta, x)
        return F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(y.shape).mean(1)

    @torch.no_grad()
    def evaluate(self, theta: Tensor, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """Mean cross-entropy and accuracy ``[B]`` on uint8 images ``[N, 3, 32, 32]`` with original
        labels ``[N]``, in consecutive chunks of about ``batch`` images (batch-norm statistics of
        each chunk)."""
        B, N = theta.shape[0], len(labels)
        loss_sum = theta.new_zeros(B, dtype=torch.float64)
        correct = theta.new_zeros(B, dtype=torch.float64)
        chunks = max(1, -(-N // self.batch))
        for x, y in zip(images.tensor_split(chunks), labels.tensor_split(chunks)):
            logits = self.logits(theta, normalise(x.to(theta.device), theta.dtype))
            target = self.classes[y].to(theta.device).expand(B, -1)
            loss = F.cross_entropy(logits.flatten(0, 1), target.flatten(), reduction="none")
            loss_sum += loss.view(B, -1).double().sum(1)
            correct += (logits.argmax(-1) == target).double().sum(1)
        return (loss_sum / N).to(theta.dtype), (correct / N).to(theta.dtype)

    def metrics(self, theta: Tensor) -> dict[str, Tensor]:
        """Loss and accuracy on the test images of the chosen labels, each ``[B]``."""
        images, labels = self.test[0][self.test_rows], self.test[1][self.test_rows]
        test_loss, test_acc = self.evaluate(theta, images, labels)
        return {"test_loss": test_loss, "test_acc": test_acc}


# ----------------------------------------------------------------------------- the family

class Cifar10(Problem):
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

    Meta-training settings here are provisional: the paper states neither the output scale nor
    the horizon for CIFAR; we start from the MNIST setup (preprocessing with p = 10, output scale
    0.1, 100 steps unrolled 20 at a time), to be revised by the meta-training runs.
    """

    name = "cifar10"
    # two LSTMs, one for the convolution weights and one for everything else (Section 3.3);
    # `python -m l2l train cifar10 --single-lstm` trains the one-LSTM ablation
    optimizer_defaults = {"preprocess": True, "p": 10.0, "output_scale": 0.1,
                          "groups": ["conv", "other"]}
    #: functions per tuning rollout (rates × networks; see :func:`l2l.evaluate.score_rates`)
    tune_batch = 64
    #: validation networks per rate when a baseline is tuned (a 1000-step convnet run is costly)
    tune_runs = 6
    #: a decade apart, then 4 new points at a third of a decade around the best: 10 rates per
    #: baseline instead of 25, since every rate costs 1000 convnet steps per network
    tune_grid = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
    tune_refine = 3
    training_defaults = {"epochs": 1000, "batch_size": 1, "horizon": 100, "unroll": 20,
                         "meta_lr": 1e-3, "clip_grad": 1.0, "validate_every": 20,
                         "validation_size": 8}
    #: the parameter groups of the paper's two LSTMs (see :func:`~l2l.problems.base.group_coordinates`)
    group_rules = GROUP_RULES

    def __init__(self, labels: str = "0-9", channels: int = 16, hidden: int = 32,
                 batch: int = 128, init_std: float = 0.01, data_dir: str = ""):
        if channels < 1 or hidden < 1 or batch < 2:
            raise ConfigError(f"need channels ≥ 1, hidden ≥ 1 and batch ≥ 2 (batch norm); got "
                              f"channels={channels}, hidden={hidden}, batch={batch}")
        check_positive("init_std", init_std, inclusive=True)
        self.labels = parse_labels(labels)
        self.channels, self.hidden, self.batch = channels, hidden, batch
        self.init_std, self.data_dir = init_std, data_dir

    @property
    def layout(self) -> Layout:
        """(name, shape) of each parameter of one network (:func:`convnet_layout`)."""
        return convnet_layout(len(self.labels), self.channels, self.hidden)

    @property
    def num_params(self) -> int:
        """n, the length of each network's flat θ (22,602 for CIFAR-10, 22,470 for CIFAR-5)."""
        return layout_size(self.layout)

    def coordinate_groups(self) -> dict[str, Tensor]:
        """The coordinates of each parameter group: ``{"conv": …, "other": …}`` (int64 indices)."""
        return group_coordinates(self.layout, self.group_rules)

    def complement(self) -> "Cifar10":
        """The same problem on the held-out labels (LSTM-sub's training problem)."""
        rest = [label for label in range(NUM_LABELS) if label not in self.labels]
        if len(rest) < 2:
            raise ConfigError(f"labels {format_labels(self.labels)} leave fewer than 2 labels out")
        return Cifar10(format_labels(rest), self.channels, self.hidden, self.batch,
                       self.init_std, self.data_dir)

    def sample(self, batch_size: int, generator: torch.Generator) -> Cifar10Optimizee:
        train = data.load_cifar10("train", self.data_dir or None)
        test = data.load_cifar10("test", self.data_dir or None)
        theta0 = self.init_std * torch.randn(batch_size, self.num_params, generator=generator)
        seeds = torch.randint(0, 2**62, (batch_size,), generator=generator)
        return Cifar10Optimizee(theta0, self.layout, self.labels, seeds, self.batch, train, test,
                                self.group_rules)

    def config(self) -> dict:
        """labels always; the others where they are not the paper's."""
        config = {"labels": format_labels(self.labels)}
        defaults = {"channels": 16, "hidden": 32, "batch": 128, "init_std": 0.01}
        config.update({k: getattr(self, k) for k, v in defaults.items() if getattr(self, k) != v})
        return config
