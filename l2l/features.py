"""Feature networks for the neural-art optimizee (Section 3.4; Gatys et al. 2016).

The style and content losses of Gatys et al. ("Image style transfer using convolutional neural
networks", CVPR 2016) compare the activations of a fixed convolutional network. The paper used an
ImageNet-trained VGG; its weights cannot be fetched here, so this module offers two networks with
one interface:

- :func:`vgg19_features`: VGG-19's convolutional part (Simonyan & Zisserman 2015) in plain torch,
  with parameter names ``features.N.weight`` / ``features.N.bias`` laid out like torchvision's
  ``vgg19``, so a torchvision VGG-19 state dict that a user supplies loads into it
  (:func:`load_vgg19`). Layers are named as in Gatys et al.: ``conv1_1``, ``relu1_1``,
  ``pool1``, …, ``relu5_4``.
- :func:`random_features`: the offline default, a small VGG-style network (3×3 convolutions,
  ReLU, 2×2 pooling) whose weights are drawn once from a fixed seed and never trained. Random
  convolutional features are known to capture texture and style statistics (Ustyuzhaninov et al.
  2017, "What does it take to generate natural textures?"; He, Wang & Hopcroft 2016, "A powerful
  generative model using random weights for the deep image representation"). Layers:
  ``conv1``, ``relu1``, ``pool1``, …, ``relu4``.

Both take images ``[B, 3, H, W]`` with RGB values in [0, 1], normalise them with the ImageNet
channel mean and standard deviation (what torchvision's VGG weights expect), and return the
activations of the requested layers, running only as far as the deepest one. Their parameters do
not require gradients; gradients flow to the input image.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn

from .data import DataUnavailableError
from .errors import ConfigError, DataError

#: ImageNet RGB mean and standard deviation of images in [0, 1] (the VGG weights' convention)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: VGG-19's convolutional blocks: output channels of each 3×3 convolution, block by block
VGG19_BLOCKS = ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512),
                (512, 512, 512, 512))

#: Gatys et al.'s layers for VGG-19: style from the first ReLU of each block, content relu4_2
VGG19_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
VGG19_CONTENT_LAYERS = ("relu4_2",)

#: the random network's convolutions: output channels of each, one per block, 3×3 kernels
RANDOM_CHANNELS = (32, 64, 128, 128)
RANDOM_STYLE_LAYERS = ("relu1", "relu2", "relu3", "relu4")
RANDOM_CONTENT_LAYERS = ("relu3",)

#: the seed of the random network's weights (fixed: the optimizee family must not change)
RANDOM_SEED = 0


class FeatureNetwork(nn.Module):
    """A fixed stack of named layers returning the activations of chosen layers.

    Args:
        layers: (name, module) pairs in order; the modules are kept in ``self.features`` (an
            ``nn.Sequential``), so parameter names are ``features.<index>.weight``.
        normalise: subtract :data:`IMAGENET_MEAN` and divide by :data:`IMAGENET_STD` first.
    """

    def __init__(self, layers: list[tuple[str, nn.Module]], normalise: bool = True):
        super().__init__()
        self.names = [name for name, _ in layers]
        if len(set(self.names)) != len(self.names):
            raise ConfigError("layer names must be distinct")
        self.features = nn.Sequential(*(module for _, module in layers))
        self.normalise = normalise
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def forward(self, images: Tensor, layers) -> dict[str, Tensor]:
        """Activations ``name → [B, C_l, H_l, W_l]`` of ``layers`` for ``images`` ``[B, 3, H, W]``."""
        wanted = set(layers)
        unknown = wanted - set(self.names)
        if unknown:
            raise ConfigError(f"unknown layers {sorted(unknown)}; this network has {self.names}")
        x = images
        if self.normalise:
            x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        out = {}
        for name, module in zip(self.names, self.features):
            x = module(x)
            if name in wanted:
                out[name] = x
                if len(out) == len(wanted):
                    break
        return out


def vgg19_layers(pool: str = "max") -> list[tuple[str, nn.Module]]:
    """VGG-19's feature layers in torchvision's order: (name, module), 37 of them.

    ``pool`` is ``"max"`` (VGG's own) or ``"avg"`` (Gatys et al. replace max pooling by average
    pooling for image synthesis; the weights are the same).
    """
    if pool not in ("max", "avg"):
        raise ConfigError(f"pool must be 'max' or 'avg', not {pool!r}")
    layers, channels = [], 3
    for block, widths in enumerate(VGG19_BLOCKS, start=1):
        for k, width in enumerate(widths, start=1):
            layers.append((f"conv{block}_{k}", nn.Conv2d(channels, width, 3, padding=1)))
            layers.append((f"relu{block}_{k}", nn.ReLU()))
            channels = width
        pooling = nn.MaxPool2d(2, 2) if pool == "max" else nn.AvgPool2d(2, 2)
        layers.append((f"pool{block}", pooling))
    return layers


def vgg19_features(state_dict: dict | None = None, pool: str = "max") -> FeatureNetwork:
    """VGG-19's convolutional part, with torchvision's parameter names (``features.N.weight``).

    Args:
        state_dict: weights to load (see :func:`check_vgg19_state_dict`); None leaves PyTorch's
            default random initialisation, which is only good for tests.
        pool: ``"max"`` or ``"avg"`` pooling (see :func:`vgg19_layers`).
    """
    network = FeatureNetwork(vgg19_layers(pool))
    if state_dict is not None:
        network.load_state_dict(check_vgg19_state_dict(state_dict, network))
    return network


def expected_vgg19_shapes() -> dict[str, tuple[int, ...]]:
    """``features.N.weight`` / ``features.N.bias`` → shape, for torchvision's VGG-19."""
    network = FeatureNetwork(vgg19_layers())
    return {name: tuple(p.shape) for name, p in network.state_dict().items()}


def check_vgg19_state_dict(state_dict, network: FeatureNetwork | None = None,
                           source: str = "the state dict") -> dict[str, Tensor]:
    """The feature weights of a torchvision-layout VGG-19 state dict, or a ValueError saying why not.

    Accepts a whole ``torchvision.models.vgg19().state_dict()`` (the ``classifier.*`` entries are
    ignored) or only its ``features.*`` entries. Every ``features.N.weight`` and
    ``features.N.bias`` of the 16 convolutions must be present with VGG-19's shape.
    """
    if not isinstance(state_dict, dict):
        raise DataError(f"{source} is a {type(state_dict).__name__}, not a state dict (a dict of "
                        "tensors such as torchvision.models.vgg19().state_dict())")
    expected = (expected_vgg19_shapes() if network is None
                else {name: tuple(p.shape) for name, p in network.state_dict().items()})
    features = {k: v for k, v in state_dict.items() if str(k).startswith("features.")}
    example = "features.0.weight [64, 3, 3, 3], features.0.bias [64], …, features.34.weight [512, 512, 3, 3]"
    hint = (f"Expected torchvision's VGG-19 layout: {len(expected)} entries {example} (the "
            "classifier.* entries may be present and are ignored), e.g. the file "
            "vgg19-dcbb9e9d.pth or torch.save(torchvision.models.vgg19(weights=...).state_dict(), path).")
    missing = [k for k in expected if k not in features]
    unexpected = [k for k in features if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys ({', '.join(missing[:4])}"
                         f"{', …' if len(missing) > 4 else ''})")
        if unexpected:
            parts.append(f"unexpected keys {', '.join(map(str, unexpected[:4]))}"
                         f"{', …' if len(unexpected) > 4 else ''}")
        if not features:
            some = ", ".join(map(str, list(state_dict)[:4])) or "none"
            parts.append(f"no features.* keys at all (its first keys: {some}; is it another "
                         "network, or a checkpoint that wraps the state dict?)")
        raise DataError(f"{source} is not a VGG-19 state dict: {'; '.join(parts)}. {hint}")
    wrong = [f"{k} {list(getattr(v, 'shape', []))} (expected {list(expected[k])})"
             for k, v in features.items()
             if not isinstance(v, Tensor) or tuple(v.shape) != expected[k]]
    if wrong:
        raise DataError(f"{source} has VGG-19's keys but wrong shapes: {'; '.join(wrong[:4])}"
                        f"{'; …' if len(wrong) > 4 else ''}. Is it VGG-16, or a VGG with "
                        f"batch normalisation (vgg19_bn)? {hint}")
    return {k: v.float() for k, v in features.items()}


def load_vgg19(path: str | os.PathLike, pool: str = "max") -> FeatureNetwork:
    """VGG-19 features with the weights of a torchvision-layout state dict saved at ``path``.

    Raises ``FileNotFoundError`` if the file is missing and ``ValueError`` if it cannot be read
    or is not a VGG-19 state dict (the message names the missing, unexpected or mis-shaped keys).
    The file is loaded with ``torch.load(weights_only=True)``, so it cannot run code.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataUnavailableError(
            f"no VGG-19 weights at {path}. Save torchvision's ImageNet VGG-19 there, e.g. "
            "torch.save(torchvision.models.vgg19(weights='IMAGENET1K_V1').state_dict(), path), "
            "or copy the file vgg19-dcbb9e9d.pth from torch's hub cache.")
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle errors, zip errors, unsafe globals …
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0].split(". ")[0]
        raise DataError(f"{path} cannot be read as a torch state dict ({reason[:160]}): it is "
                        "truncated, corrupted or another kind of file; save the weights "
                        "again") from None
    return vgg19_features(check_vgg19_state_dict(state_dict, source=str(path)), pool)


def random_features(channels: tuple[int, ...] = RANDOM_CHANNELS, seed: int = RANDOM_SEED,
                    pool: str = "avg") -> FeatureNetwork:
    """A VGG-style network with fixed random weights: the offline default feature network.

    Block k is a 3×3 convolution to ``channels[k]`` channels, ReLU, and 2×2 pooling (none after
    the last block), named ``conv{k}``, ``relu{k}``, ``pool{k}``. Weights are He-normal
    (N(0, 2 / fan_in), which keeps the activations' scale through ReLU layers) and biases zero,
    drawn from a ``torch.Generator`` seeded with ``seed``, so every process gets the same network.
    Pooling (``"avg"`` by default, as Gatys et al. prefer for synthesis) doubles the receptive
    field at each block, so the layers see structure at several scales (3, 8, 18 and 38 pixels).
    """
    if pool not in ("max", "avg"):
        raise ConfigError(f"pool must be 'max' or 'avg', not {pool!r}")
    g = torch.Generator().manual_seed(seed)
    layers, previous = [], 3
    for k, width in enumerate(channels, start=1):
        conv = nn.Conv2d(previous, width, 3, padding=1)
        with torch.no_grad():
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * (2.0 / (previous * 9)) ** 0.5)
            conv.bias.zero_()
        layers += [(f"conv{k}", conv), (f"relu{k}", nn.ReLU())]
        if k < len(channels):
            layers.append((f"pool{k}", nn.MaxPool2d(2, 2) if pool == "max" else nn.AvgPool2d(2, 2)))
        previous = width
    return FeatureNetwork(layers)
