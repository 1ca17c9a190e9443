"""Neural art: style transfer as an optimizee (Section 3.4, Figures 8 and 9; Gatys et al. 2016).

θ is an image. Following Gatys et al. ("Image style transfer using convolutional neural
networks", CVPR 2016) with a total-variation regulariser, as the paper does,

    f(θ) = α · L_content(θ, c) + β · L_style(θ, s) + γ · L_tv(θ),

where c is a content photograph and s a style image, both seen through a fixed convolutional
feature network φ (:mod:`l2l.features`):

- L_content = mean over content layers l of ‖φ_l(θ) − P_l‖² / ‖P_l‖², P_l = φ_l(c): the
  squared error of the feature maps, relative to the content's own;
- L_style = mean over style layers l of ‖G_l(θ) − A_l‖² / ‖A_l‖², A_l = G_l(s), with the Gram
  matrix G_l(x) = F Fᵀ / M_l of the C_l × M_l matrix F of layer l's activations (M_l = H_l·W_l
  positions). It compares statistics, not positions, so the style image need not have the
  content's size;
- L_tv = mean_{k,i,j} (θ_{k,i+1,j} − θ_{k,i,j})² + mean_{k,i,j} (θ_{k,i,j+1} − θ_{k,i,j})²,
  the squared total variation (Mahendran & Vedaldi 2015), which discourages pixel noise.

The paper meta-trains on one style with 64×64 content images (1800 training, 20 validation and 100
test images) and tests on a new style at 128×128 (Figure 8), starting at 12,288 and 49,152
parameters. Here (see ``data/README.md``, section ``art/``): ``content_64.npz`` holds 2000 crops
of 123 openly licensed photos, split 1880 / 20 / 100 by photo, and ``content_128_heldout.npz``
the same 20 validation and 100 test crops at 128×128; ``styles/`` holds 17 style images.
Spellings:

- ``neural_art`` (``style=hokusai_great_wave,size=64,content=train``): meta-training;
- ``neural_art:content=val`` / ``neural_art:content=test``: the held-out crops, for sampling
  by hand (training, tuning and evaluation choose the split themselves via ``for_split``);
- ``neural_art:style=vangogh_night_cafe,size=128``: the paper's Figure 8 right (evaluation
  takes the test crops, tuning the validation crops: :meth:`NeuralArt.for_split`).

Choices (the paper does not state them):

- Pixels: θ holds RGB values of an image ``[3, H, W]`` with 0 black and 1 white, flattened
  channel-major (``[B, 3·H·W]``); it is not clipped (the loss is defined everywhere), and images
  are clipped to [0, 1] only for display (:meth:`NeuralArtOptimizee.images`). The feature network
  normalises them with the ImageNet mean and standard deviation.
- Relative errors: Gatys' E_l = ‖FFᵀ − SSᵀ‖² / (4 C_l² M_l²) is ‖G_l − A_l‖² / (4 C_l²), and
  their content loss ½ ‖φ_l(θ) − P_l‖²; both sum layers with free weights w_l. Here each layer is
  divided by the norm of its target instead (w_l ∝ 1 / ‖A_l‖², 1 / ‖P_l‖²), which makes every
  term dimensionless: layers count equally whatever the scale of their activations, and the
  same α, β, γ suit any feature network, style image and resolution. With the random network,
  Gatys' plain weighting lets the first layer (colour) dominate the style term and the results
  looked noisier.
- Initialisation: θ0 = the content image plus IID N(0, init_std²) noise per pixel
  (``init=content``, init_std = 0.1), so that 128 steps can reach a stylised image; Gatys et al.
  start from white noise, which ``init=noise`` gives (θ0 = 0.5 + N(0, init_std²)).
- The style image is resized (with antialiasing) so that its short side is ``size`` pixels; its
  Gram matrices are computed once per problem.
- Feature network: ``features=random`` (default), a small VGG-style network with fixed random
  weights, because the ImageNet VGG of the paper cannot be downloaded here; ``features=vgg19``
  uses torchvision-layout VGG-19 weights from ``weights=<path>``, by default
  ``<data dir>/vgg/vgg19.pth`` (or ``vgg19-dcbb9e9d.pth``, torchvision's file name), with average
  pooling and Gatys' layers (style relu1_1…relu5_1, content relu4_2).
- Weights α, β, γ (``content_weight``, ``style_weight``, ``tv_weight``) = 1, 3, 3, chosen by
  eye with Adam on the training style and random features: at θ0 (training crops, Hokusai) the
  weighted terms average about 0.06 (content), 1.6 (style) and 0.18 (TV); after 150 Adam steps
  content and style balance (about 0.3 and 0.4) with TV near 0.03, and the images are visibly
  stylised. A larger TV weight blurs, a smaller one leaves colour speckle.
- Every sampled optimizee gets one content crop, drawn uniformly with replacement from the chosen
  split; the loss is deterministic (``step`` is ignored).

The content crops and style images are openly licensed with attribution requirements;
``art/ATTRIBUTION.md`` (:data:`ATTRIBUTION`) must travel with any image made from them.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .. import data, features
from ..errors import ConfigError, check_positive
from .base import Optimizee, Problem

#: the art data's folder inside the data dir, and the attribution file that travels with images
ART_FOLDER = "art"
ATTRIBUTION = "ATTRIBUTION.md"

#: the file of each content resolution; the 128-pixel one holds only the held-out crops
CONTENT_FILES = {64: "content_64.npz", 128: "content_128_heldout.npz"}
CONTENT_SPLITS = ("train", "val", "test")

#: default layers of each feature network: (style layers, content layers)
DEFAULT_LAYERS = {
    "random": (features.RANDOM_STYLE_LAYERS, features.RANDOM_CONTENT_LAYERS),
    "vgg19": (features.VGG19_STYLE_LAYERS, features.VGG19_CONTENT_LAYERS),
}

#: where features=vgg19 looks for weights inside the data dir when no path is given
VGG19_FILES = ("vgg/vgg19.pth", "vgg/vgg19-dcbb9e9d.pth")

# loaded content crops by (folder, size, split), style images by path: once per process
_CONTENT: dict[tuple[str, int, str], Tensor] = {}
_STYLES: dict[str, Tensor] = {}


def art_folder(root=None) -> Path:
    """``<root>/art``, with ``root`` defaulting to :func:`l2l.data.data_dir`."""
    return Path(root if root else data.data_dir()).expanduser() / ART_FOLDER


def _missing(path: Path) -> data.DataUnavailableError:
    return data.DataUnavailableError(
        f"{path} is missing. The art data cannot be downloaded: copy the art/ folder of the "
        "project's shared data (see its data/README.md) into the data dir, or set L2L_DATA to a "
        "folder whose art/ subfolder holds it.")


def check_content(size: int, split: str) -> None:
    """Raise a clear ``ValueError`` unless content crops exist at ``size`` for ``split``."""
    if size not in CONTENT_FILES:
        raise ConfigError(f"size must be one of {sorted(CONTENT_FILES)}, not {size}")
    if split not in CONTENT_SPLITS:
        raise ConfigError(f"content must be one of {', '.join(CONTENT_SPLITS)}, not {split!r}")


def load_content(split: str = "train", size: int = 64, root=None) -> Tensor:
    """Content crops of one split: uint8 ``[N, 3, size, size]`` (RGB), loaded once per process.

    ``size`` 64: ``train`` (N = 1880), ``val`` (20) or ``test`` (100) from ``content_64.npz``;
    ``size`` 128: ``val`` or ``test`` from ``content_128_heldout.npz``. There are no 128-pixel
    training photos: ``train`` at 128 is the 64-pixel training crops upsampled (bilinear), blurrier
    than real 128-pixel crops; the paper never trains at 128, and here they only serve the
    stability check of baseline tuning (:data:`l2l.evaluate.TUNING`). The result is shared
    between callers: do not modify it.
    """
    check_content(size, split)
    if size == 128 and split == "train":
        key = ("upsampled", str(art_folder(root).resolve()), size, split)
        if key not in _CONTENT:
            small = load_content("train", 64, root).float()
            big = F.interpolate(small, size=(size, size), mode="bilinear", align_corners=False)
            _CONTENT[key] = big.round().clamp(0, 255).to(torch.uint8)
        return _CONTENT[key]
    path = art_folder(root) / CONTENT_FILES[size]
    key = (str(path.resolve()), size, split)
    if key not in _CONTENT:
        if not path.is_file():
            raise _missing(path)
        arrays = data.read_npz(path, ("x", split), "copy the art/ folder of the project's "
                               "shared data (see its data/README.md) again")
        x, index = arrays["x"], arrays[split]
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (size, size, 3):
            raise data.DataUnavailableError(f"{path} holds x {x.dtype}{list(x.shape)}, expected "
                                            f"uint8 [N, {size}, {size}, 3]")
        crops = np.ascontiguousarray(x[index].transpose(0, 3, 1, 2))
        _CONTENT[key] = torch.from_numpy(crops)
    return _CONTENT[key]


def style_names(root=None) -> list[str]:
    """The style images available in ``<data dir>/art/styles`` (file names without ``.png``)."""
    return sorted(p.stem for p in (art_folder(root) / "styles").glob("*.png"))


def load_style(name: str, root=None) -> Tensor:
    """The style image ``name`` (e.g. ``hokusai_great_wave``): float32 ``[3, h, w]`` in [0, 1]."""
    path = art_folder(root) / "styles" / f"{name}.png"
    key = str(path.resolve())
    if key not in _STYLES:
        if not path.is_file():
            if path.parent.is_dir():
                raise ConfigError(f"no style {name!r} in {path.parent}; known: "
                                  f"{', '.join(style_names(root))}")
            raise _missing(path)
        from PIL import Image  # a dependency of matplotlib

        try:
            with Image.open(path) as image:
                rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
        except (OSError, ValueError, SyntaxError) as error:  # PIL's errors for a damaged file
            raise data.DataUnavailableError(
                f"{path} cannot be read as an image ({error}): it is truncated or corrupted; "
                "copy the art/ folder of the project's shared data again") from None
        _STYLES[key] = torch.from_numpy(rgb.transpose(2, 0, 1).copy()).float() / 255.0
    return _STYLES[key]


def resize_short_side(image: Tensor, size: int) -> Tensor:
    """``[3, h, w]`` → ``[3, h', w']`` with min(h', w') = ``size``, same aspect, antialiased."""
    h, w = image.shape[-2:]
    scale = size / min(h, w)
    shape = (max(size, round(h * scale)), max(size, round(w * scale)))
    return F.interpolate(image[None], size=shape, mode="bilinear", antialias=True,
                         align_corners=False)[0].clamp(0, 1)


def gram_matrix(activations: Tensor) -> Tensor:
    """Gram matrices ``[B, C, C]`` of activations ``[B, C, H, W]``: F Fᵀ / (H·W), F = ``[C, H·W]``."""
    flat = activations.flatten(2)
    return flat @ flat.transpose(1, 2) / flat.shape[2]


def style_loss(activations: dict[str, Tensor], target_grams: dict[str, Tensor]) -> Tensor:
    """Mean over layers of ‖G_l − A_l‖² / ‖A_l‖² (squared Frobenius norms): ``[B]``.

    ``activations`` maps each style layer to ``[B, C, H, W]``; ``target_grams`` maps the same
    layers to the style image's Gram matrices ``[C, C]`` (or ``[B, C, C]``).
    """
    terms = []
    for layer, target in target_grams.items():
        error = (gram_matrix(activations[layer]) - target).pow(2).sum((-2, -1))
        terms.append(error / target.pow(2).sum((-2, -1)).clamp_min(1e-12))
    return torch.stack(terms).mean(0)


def content_loss(activations: dict[str, Tensor], targets: dict[str, Tensor]) -> Tensor:
    """Mean over layers of ‖φ_l(θ) − P_l‖² / ‖P_l‖²: ``[B]``; targets P_l ``[B, C, H, W]``."""
    terms = []
    for layer, target in targets.items():
        error = (activations[layer] - target).pow(2).flatten(1).sum(1)
        terms.append(error / target.pow(2).flatten(1).sum(1).clamp_min(1e-12))
    return torch.stack(terms).mean(0)


def total_variation(images: Tensor) -> Tensor:
    """Squared total variation ``[B]`` of images ``[B, C, H, W]``: the mean squared difference of
    vertical neighbours plus that of horizontal neighbours."""
    down = (images[:, :, 1:, :] - images[:, :, :-1, :]).pow(2).flatten(1).mean(1)
    right = (images[:, :, :, 1:] - images[:, :, :, :-1]).pow(2).flatten(1).mean(1)
    return down + right


class NeuralArtOptimizee(Optimizee):
    """B images to stylise: f_b(θ_b) = α·L_content(θ_b, c_b) + β·L_style(θ_b, s) + γ·L_tv(θ_b).

    Args:
        theta0: initial images, flat ``[B, 3·H·W]``.
        content: the content images ``[B, 3, H, W]`` in [0, 1].
        network: the fixed feature network (:class:`l2l.features.FeatureNetwork`).
        content_targets: content layer → the content images' activations ``[B, C, h, w]``.
        style_grams: style layer → the style image's Gram matrix ``[C, C]``.
        weights: (α, β, γ).
    """

    def __init__(self, theta0: Tensor, content: Tensor, network, content_targets: dict,
                 style_grams: dict, weights: tuple[float, float, float]):
        self.theta0, self.content, self.network = theta0, content, network
        self.content_targets, self.style_grams = content_targets, style_grams
        self.weights = weights
        self.shape = tuple(content.shape[1:])
        self._moved: dict = {}

    def _on(self, theta: Tensor):
        """The network and targets on θ's device and dtype (copied once per device and dtype)."""
        key = (theta.device, theta.dtype)
        if key == (self.content.device, torch.float32):
            return self.network, self.content_targets, self.style_grams
        if key not in self._moved:
            move = lambda d: {k: v.to(theta.device, theta.dtype) for k, v in d.items()}
            network = copy.deepcopy(self.network).to(theta.device, theta.dtype)
            self._moved[key] = (network, move(self.content_targets), move(self.style_grams))
        return self._moved[key]

    def repeat(self, copies: int) -> NeuralArtOptimizee:
        return NeuralArtOptimizee(
            self.theta0.repeat(copies, 1), self.content.repeat(copies, 1, 1, 1), self.network,
            {k: v.repeat(copies, 1, 1, 1) for k, v in self.content_targets.items()},
            self.style_grams, self.weights)

    def select(self, rows: slice) -> NeuralArtOptimizee:
        return NeuralArtOptimizee(
            self.theta0[rows], self.content[rows], self.network,
            {k: v[rows] for k, v in self.content_targets.items()}, self.style_grams, self.weights)

    def unflatten(self, theta: Tensor) -> Tensor:
        """θ ``[B, 3·H·W]`` as images ``[B, 3, H, W]`` (a view)."""
        return theta.view(theta.shape[0], *self.shape)

    def images(self, theta: Tensor) -> Tensor:
        """Displayable images ``[B, 3, H, W]``: θ clipped to [0, 1], detached."""
        return self.unflatten(theta.detach()).clamp(0, 1)

    def terms(self, theta: Tensor) -> dict[str, Tensor]:
        """The unweighted losses ``content``, ``style`` and ``tv``, each ``[B]``."""
        network, content_targets, style_grams = self._on(theta)
        x = self.unflatten(theta)
        layers = list(dict.fromkeys([*content_targets, *style_grams]))
        activations = network(x, layers)
        return {"content": content_loss(activations, content_targets),
                "style": style_loss(activations, style_grams),
                "tv": total_variation(x)}

    def loss(self, theta: Tensor, step: int = 0) -> Tensor:  # noqa: ARG002 (deterministic)
        """f_b(θ_b) for each image: ``[B, 3·H·W]`` → ``[B]`` (deterministic; ``step`` is unused)."""
        terms = self.terms(theta)
        alpha, beta, gamma = self.weights
        return alpha * terms["content"] + beta * terms["style"] + gamma * terms["tv"]

    @torch.no_grad()
    def metrics(self, theta: Tensor) -> dict[str, Tensor]:
        """The weighted terms α·L_content, β·L_style and γ·L_tv, each ``[B]`` (they sum to f)."""
        terms = self.terms(theta)
        alpha, beta, gamma = self.weights
        return {"content_term": alpha * terms["content"], "style_term": beta * terms["style"],
                "tv_term": gamma * terms["tv"]}


class NeuralArt(Problem):
    """Style transfer of content crops to one style image (Section 3.4; Gatys et al. 2016).

    Args:
        style: the style image, a file name in ``<data dir>/art/styles`` without ``.png``
            (paper-like pair: train on ``hokusai_great_wave``, test on ``vangogh_night_cafe``).
        size: content resolution, 64 (train / val / test crops) or 128 (val / test only).
        content: which content crops: ``train``, ``val`` or ``test``; empty: ``train`` at 64 px,
            ``test`` at 128 px (which has no training crops). Training, validation and evaluation
            pick their split themselves (:meth:`for_split`), so a spec rarely needs it.
        content_weight, style_weight, tv_weight: α, β, γ.
        features: the feature network, ``random`` (fixed random weights, offline) or ``vgg19``.
        weights: the VGG-19 weights file for ``features=vgg19`` (torchvision layout); empty:
            ``<data dir>/vgg/vgg19.pth`` or ``vgg19-dcbb9e9d.pth``. Not part of the spec.
        style_layers, content_layers: layer names joined by ``+`` (e.g. ``relu1+relu2``); empty:
            the network's defaults (:data:`DEFAULT_LAYERS`).
        init: ``content`` (θ0 = content + noise) or ``noise`` (θ0 = 0.5 + noise).
        init_std: standard deviation of the initial noise per pixel.
        data_dir: the data dir (its ``art/`` subfolder holds the images); empty: ``$L2L_DATA`` or
            the per-user cache (see :mod:`l2l.data`). Not part of the spec.

    The paper meta-trains here with preprocessed gradients (p = 10) and no output scaling, over
    128 steps unrolled 32 at a time.
    """

    name = "neural_art"
    recipe = "neural_art"
    always_in_spec = ("style", "size", "content")
    not_in_spec = ("weights", "data_dir")

    def __init__(self, style: str = "hokusai_great_wave", size: int = 64, content: str = "",
                 content_weight: float = 1.0, style_weight: float = 3.0, tv_weight: float = 3.0,
                 features: str = "random", weights: str = "", style_layers: str = "",
                 content_layers: str = "", init: str = "content", init_std: float = 0.1,
                 data_dir: str = ""):
        content = content or ("train" if size == 64 else "test")
        check_content(size, content)
        if features not in DEFAULT_LAYERS:
            raise ConfigError(f"features must be one of {', '.join(DEFAULT_LAYERS)}, not {features!r}")
        if init not in ("content", "noise"):
            raise ConfigError(f"init must be 'content' or 'noise', not {init!r}")
        for name, value in (("content_weight", content_weight), ("style_weight", style_weight),
                            ("tv_weight", tv_weight), ("init_std", init_std)):
            check_positive(name, value, inclusive=True)
        self.style, self.size, self.content = style, size, content
        self.content_weight, self.style_weight, self.tv_weight = content_weight, style_weight, tv_weight
        self.features, self.weights = features, weights
        self.style_layers, self.content_layers = style_layers, content_layers
        self.init, self.init_std, self.data_dir = init, init_std, data_dir
        default_style, default_content = DEFAULT_LAYERS[features]
        self.style_layer_names = tuple(style_layers.split("+")) if style_layers else default_style
        self.content_layer_names = (tuple(content_layers.split("+")) if content_layers
                                    else default_content)
        self._network = None
        self._style_grams = None

    @property
    def num_params(self) -> int:
        """n = 3·size² (12,288 at 64×64, 49,152 at 128×128)."""
        return 3 * self.size * self.size

    def network(self) -> features.FeatureNetwork:
        """The feature network (built, or loaded, on first use)."""
        if self._network is None:
            if self.features == "random":
                self._network = features.random_features()
            else:
                self._network = features.load_vgg19(self.vgg19_path(), pool="avg")
            missing = set(self.style_layer_names + self.content_layer_names) - set(self._network.names)
            if missing:
                raise ConfigError(f"features={self.features} has no layers {sorted(missing)}; its "
                                  f"layers: {', '.join(self._network.names)}")
        return self._network

    def vgg19_path(self) -> Path:
        """The VGG-19 weights file: ``weights``, else the first of :data:`VGG19_FILES` present."""
        if self.weights:
            return Path(self.weights).expanduser()
        root = Path(self.data_dir or data.data_dir()).expanduser()
        return next((root / name for name in VGG19_FILES if (root / name).is_file()),
                    root / VGG19_FILES[0])

    def style_image(self) -> Tensor:
        """The style image as the loss sees it: ``[3, h, w]`` in [0, 1], short side ``size``."""
        return resize_short_side(load_style(self.style, self.data_dir or None), self.size)

    def style_grams(self) -> dict[str, Tensor]:
        """Style layer → Gram matrix ``[C, C]`` of the style image (computed once)."""
        if self._style_grams is None:
            with torch.no_grad():
                activations = self.network()(self.style_image()[None], self.style_layer_names)
            self._style_grams = {layer: gram_matrix(activations[layer])[0]
                                 for layer in self.style_layer_names}
        return self._style_grams

    def content_images(self) -> Tensor:
        """All crops of the chosen split: uint8 ``[N, 3, size, size]``."""
        return load_content(self.content, self.size, self.data_dir or None)

    def sample(self, batch_size: int, generator: torch.Generator) -> NeuralArtOptimizee:
        index = torch.randint(len(self.content_images()), (batch_size,), generator=generator)
        return self.optimizee(index, generator)

    def optimizee(self, index: Tensor, generator: torch.Generator) -> NeuralArtOptimizee:
        """Optimizees on the chosen crops ``index`` ``[B]`` of the split (θ0's noise drawn from
        ``generator``); :meth:`sample` draws the crops at random."""
        content = self.content_images()[index].float() / 255.0
        noise = self.init_std * torch.randn(content.shape, generator=generator)
        theta0 = (content if self.init == "content" else torch.full_like(content, 0.5)) + noise
        network = self.network()
        with torch.no_grad():
            activations = network(content, self.content_layer_names)
        return NeuralArtOptimizee(theta0.flatten(1), content, network, activations,
                                  self.style_grams(),
                                  (self.content_weight, self.style_weight, self.tv_weight))

    def for_split(self, split: str) -> NeuralArt:
        """The same problem on the content crops of ``split`` (``train``, ``val`` or ``test``)."""
        return self.with_options(content=split)
