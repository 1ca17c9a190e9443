"""The coordinatewise LSTM optimizer (Section 2.1, Figure 3).

One small LSTM with weights φ is applied to every coordinate of θ separately: each coordinate
feeds its own gradient through the shared weights and keeps its own hidden and cell state. With
the paper's two layers of 20 units a coordinate carries 4 × 20 = 80 floats of state, and the whole
optimizer has about 5.1k parameters whatever the size of θ. Because the weights are shared and
every coordinate is processed independently, permuting the coordinates of θ permutes the updates.

All coordinates of all B optimizees go through the LSTM as one batch of N = B·n rows, so one call
updates every parameter of every optimizee at once.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..errors import ConfigError, check_count, check_positive
from ..preprocessing import preprocess_gradients
from . import _native
from .base import Optimizer, State

#: LSTM engines: "native" (compiled fused kernel), "torch" (fused autograd Function in plain
#: PyTorch), "reference" (:func:`lstm_cell`, autograd through every operation), "auto" (native
#: where it builds, else torch). The environment variable ``L2L_LSTM_ENGINE`` sets the default.
ENGINES = ("auto", "native", "torch", "reference")

def lstm_cell(x: Tensor, h: Tensor, c: Tensor, w_ih: Tensor, w_hh: Tensor, bias: Tensor):
    """One LSTM step for N independent rows, in ``torch.nn.LSTMCell``'s gate order (i, f, g, o).

    Shapes: x ``[N, I]``, h and c ``[N, H]``, w_ih ``[4H, I]``, w_hh ``[4H, H]``, bias ``[4H]``.
    Returns the new (h, c), each ``[N, H]``. This is the straightforward implementation, the
    ``"reference"`` engine; :func:`fused_lstm_cell` computes the same function faster.
    """
    gates = torch.addmm(bias, x, w_ih.t()) + h @ w_hh.t()
    i, f, g, o = gates.chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    return h, c


def _cell_forward(x, h, c, w_ih, w_hh, bias, native: bool, save: bool):
    """One layer without autograd: (h', c', activations ``[N, 4H]``, tanh(c')); the last two only
    with ``save``. The native kernel does the products and the gate arithmetic row block by row
    block, so the ``[N, 4H]`` gates never leave the cache unless they are saved. The PyTorch path
    adds x and h through two matrix products into one buffer (no concatenation)."""
    if native:
        return _native.forward(x, h, c, w_ih, w_hh, bias, save)
    act = torch.addmm(bias, x, w_ih.t()).addmm_(h, w_hh.t())
    H = h.shape[1]
    g = act[:, 2 * H:3 * H].tanh()
    act = act.sigmoid_()
    act[:, 2 * H:3 * H] = g
    i, f, g, o = act.chunk(4, dim=1)
    c = torch.addcmul(f * c, i, g)
    tanh_c = c.tanh()
    return o * tanh_c, c, act, tanh_c


def _cell_backward_torch(act, c, tanh_c, dh, dc):
    """Derivative of the gate arithmetic in plain PyTorch: (d gates ``[N, 4H]``, dc)."""
    i, f, g, o = act.chunk(4, dim=1)
    dct = torch.zeros_like(c) if dc is None else dc.clone()
    if dh is not None:
        dct.addcmul_(dh * o, 1 - tanh_c * tanh_c)
        d_o = dh * tanh_c * o * (1 - o)
    else:
        d_o = torch.zeros_like(c)
    dgates = torch.cat([dct * g * i * (1 - i), dct * c * f * (1 - f), dct * i * (1 - g * g), d_o],
                       dim=1)
    return dgates, dct * f


class FusedLSTMCell(torch.autograd.Function):
    """:func:`lstm_cell` as one autograd node with a hand-written backward.

    Saves only what the backward needs: the inputs x, h, c, the gate activations ``[N, 4H]``
    and tanh(c') ``[N, H]``. The backward computes the gate derivatives d and from them
    dx = d·W_ih, dh = d·W_hh, dW_ih = dᵀ·x, dW_hh = dᵀ·h and db = Σ d, the first two only where
    an input needs them (the state at an unroll's start and the gradient input do not). With the
    native kernel all of it is one pass over row blocks; in PyTorch it is one fused elementwise
    step and five matrix products.
    """

    @staticmethod
    def forward(ctx, x, h, c, w_ih, w_hh, bias, native):
        h2, c2, act, tanh_c = _cell_forward(x, h, c, w_ih, w_hh, bias, native, True)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, h, c, w_ih, w_hh)
        ctx.act, ctx.tanh_c, ctx.native = act, tanh_c, native
        return h2, c2

    @staticmethod
    def backward(ctx, dh, dc):
        x, h, c, w_ih, w_hh = ctx.saved_tensors
        need_x, need_h, need_c, need_w_ih, need_w_hh, need_bias, _ = ctx.needs_input_grad
        if dh is None and dc is None:
            return (None,) * 7
        if ctx.native:
            dx, dh_prev, dc_prev, d_w_ih, d_w_hh, d_bias = _native.backward(
                ctx.act, c, ctx.tanh_c, dh, dc, x, h, w_ih, w_hh, (need_x, need_h, need_c))
        else:
            dgates, dc_prev = _cell_backward_torch(ctx.act, c, ctx.tanh_c, dh, dc)
            dx = dgates @ w_ih if need_x else None
            dh_prev = dgates @ w_hh if need_h else None
            d_w_ih = dgates.t() @ x if need_w_ih else None
            d_w_hh = dgates.t() @ h if need_w_hh else None
            d_bias = dgates.sum(0) if need_bias else None
        return (dx, dh_prev, dc_prev if need_c else None, d_w_ih if need_w_ih else None,
                d_w_hh if need_w_hh else None, d_bias if need_bias else None, None)


def fused_lstm_cell(x: Tensor, h: Tensor, c: Tensor, w_ih: Tensor, w_hh: Tensor, bias: Tensor,
                    native: bool = True):
    """:func:`lstm_cell` computed by :class:`FusedLSTMCell` (same shapes, same result to float
    rounding). ``native`` uses the compiled kernel where it is available (float32 on CPU)."""
    native = (native and x.dtype == h.dtype == c.dtype == w_ih.dtype == torch.float32
              and x.device.type == "cpu" and _native.available())
    if torch.is_grad_enabled() and any(t.requires_grad for t in (x, h, c, w_ih, w_hh, bias)):
        return FusedLSTMCell.apply(x, h, c, w_ih, w_hh, bias, native)
    h, c, _, _ = _cell_forward(x, h, c, w_ih, w_hh, bias, native, False)
    return h, c


class CoordinatewiseLSTM(nn.Module):
    """A stack of LSTM layers and a linear read-out, applied row by row.

    This module is φ. It maps inputs ``[N, input_size]`` and a state of ``2·num_layers`` tensors
    ``[N, hidden_size]`` (h and c of each layer, bottom first) to outputs ``[N]`` and the next state.
    Weights use ``torch.nn.LSTMCell``'s layout (one bias per layer instead of two). ``engine`` (one
    of :data:`ENGINES`, default ``$L2L_LSTM_ENGINE`` or ``"auto"``) picks how a step is computed;
    every engine computes the same function.
    """

    def __init__(self, input_size: int = 2, hidden_size: int = 20, num_layers: int = 2,
                 engine: str | None = None, outputs: int = 1):
        super().__init__()
        if hidden_size < 1 or num_layers < 1:
            raise ConfigError(f"need hidden_size ≥ 1 and num_layers ≥ 1, got {hidden_size}, {num_layers}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.engine = engine or os.environ.get("L2L_LSTM_ENGINE", "auto")
        if self.engine not in ENGINES:
            raise ConfigError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        bound = 1.0 / math.sqrt(hidden_size)
        sizes = [input_size] + [hidden_size] * (num_layers - 1)

        def uniform(*shape):
            return nn.Parameter(torch.empty(*shape).uniform_(-bound, bound))

        self.w_ih = nn.ParameterList([uniform(4 * hidden_size, s) for s in sizes])
        self.w_hh = nn.ParameterList([uniform(4 * hidden_size, hidden_size) for _ in sizes])
        self.bias = nn.ParameterList([uniform(4 * hidden_size) for _ in sizes])
        self.readout = nn.Linear(hidden_size, outputs)

    def init_state(self, num_rows: int, like: Tensor) -> State:
        """Zero state for ``num_rows`` coordinates: ``2·num_layers`` tensors ``[N, H]``."""
        zeros = like.new_zeros(num_rows, self.hidden_size)
        return tuple(zeros.clone() for _ in range(2 * self.num_layers))

    def forward(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        engine = getattr(self, "engine", "auto")
        new_state = []
        for layer in range(self.num_layers):
            h, c = state[2 * layer], state[2 * layer + 1]
            weights = self.w_ih[layer], self.w_hh[layer], self.bias[layer]
            if engine == "reference":
                h, c = lstm_cell(x, h, c, *weights)
            else:
                if engine == "native" and not _native.available():
                    raise RuntimeError(f"the compiled LSTM kernel is not available here "
                                       f"({_native.status()}); use engine='auto'")
                h, c = fused_lstm_cell(x, h, c, *weights, native=engine != "torch")
            new_state += [h, c]
            x = h
        out = self.readout(x)
        return (out.squeeze(-1) if out.shape[-1] == 1 else out), tuple(new_state)


@dataclass
class LSTMConfig:
    """The architecture of an :class:`LSTMOptimizer`: its constructor's options (the engine
    aside), the ``config`` of its checkpoints, and the ``train`` command's LSTM options."""

    hidden_size: int = field(default=20, metadata={"help": "units per LSTM layer (paper: 20)"})
    num_layers: int = field(default=2, metadata={"help": "LSTM layers (paper: 2)"})
    preprocess: bool = field(default=True, metadata={
        "help": "encode gradients as in Appendix A (MNIST, CIFAR, neural art) or feed them raw"})
    p: float = field(default=10.0, metadata={
        "help": "the preprocessing scale (paper: 10, authors' code: 5)"})
    output_scale: float = field(default=0.1, metadata={
        "help": "multiplies the LSTM's output (paper: 0.1 on MNIST)"})
    groups: tuple[str, ...] | None = field(default=None, metadata={"cli": False})
    adam_inputs: bool = field(default=False, metadata={
        "help": "also feed each coordinate Adam's normalised moments (not in the paper)"})
    relative: bool = field(default=False, metadata={
        "help": "scale-free rule (not in the paper): the LSTM sees only Adam's normalised "
                "moments and scales and steers Adam's step of size output_scale"})

    def __post_init__(self):
        check_count("hidden_size", self.hidden_size)
        check_count("num_layers", self.num_layers)
        check_positive("p", self.p)
        check_positive("output_scale", self.output_scale)
        if self.groups is not None:
            self.groups = tuple(self.groups)
            if not self.groups or len(set(self.groups)) != len(self.groups):
                raise ConfigError(f"groups must be distinct names, got {list(self.groups)!r}")
        if self.relative and (self.groups is not None or self.adam_inputs):
            raise ConfigError("relative takes Adam's moments as its only inputs and has one LSTM: "
                              "drop groups and adam_inputs")


class LSTMOptimizer(Optimizer):
    """The learned optimizer m(∇, h; φ): a coordinatewise LSTM on (preprocessed) gradients.

    Options (:class:`LSTMConfig`):
        hidden_size: units per LSTM layer (paper: 20).
        num_layers: LSTM layers (paper: 2).
        preprocess: encode gradients as in Appendix A (MNIST, CIFAR, neural art) or feed them raw
            (the paper's quadratics).
        p: the preprocessing scale (paper 10, authors' code 5).
        output_scale: multiplies the LSTM's output (paper: 0.1 on MNIST, none on quadratics).
        groups: None for one LSTM over every coordinate (the paper, except on CIFAR), or names of
            parameter groups, each with its own LSTM (CIFAR's ``("conv", "other")``, Section 3.3).
            The optimizee says which coordinates form each group
            (:meth:`~l2l.problems.Optimizee.coordinate_groups`, from rules over parameter names).
        adam_inputs: also feed each coordinate Adam's normalised moments, m̂/(√v̂ + ε) and
            ∇/(√v̂ + ε) (β1 0.9, β2 0.999, ε 1e-8), beside the encoded gradient: 4 inputs instead
            of 2. Not in the paper: relative inputs of this kind are what RNNprop (Lv et al.
            2017) and Chen et al. (2020) found to fix the paper's weak late phase.
        relative: a scale-free rule built on Adam (not in the paper; for models the optimizer
            was not meta-trained on). The LSTM's only inputs are Adam's normalised moments
            m̂/(√v̂ + ε) and ∇/(√v̂ + ε), which do not change when the loss is rescaled, and its two
            outputs (a, b) per coordinate scale and steer Adam's step:
            g = −output_scale · e^s · e^{2·tanh a} · (m̂ + tanh(b)·∇)/(√v̂ + ε), with s one learned
            number. The read-out starts at zero, so before meta-training the rule is Adam with
            learning rate output_scale; afterwards the LSTM can make a coordinate's step at
            most e² ≈ 7.4 times larger or smaller than e^s times Adam's, and steer it by at most
            one normalised gradient ∇/(√v̂ + ε).

    ``engine`` says how the LSTM step is computed (see :data:`ENGINES`); it is not part of the
    config, since every engine computes the same function. Change it later with
    ``optimizer.engine = …``.

    With one LSTM the state is ``2·num_layers`` tensors ``[B·n, hidden_size]``. With groups it
    is, for each group in order, its coordinate indices ``[n_g]`` followed by its LSTM's
    ``2·num_layers`` tensors ``[B·n_g, hidden_size]``. With ``adam_inputs`` the moments m, v
    and the step count t, each ``[B·n]`` (one row per coordinate, like the LSTM's state), come
    first. Updates have the shape of the gradient, ``[B, n]``.
    """

    #: Adam's constants for ``adam_inputs`` (Torch7's defaults, as for the Adam baseline)
    BETAS, EPS = (0.9, 0.999), 1e-8

    name = "lstm"

    def __init__(self, engine: str | None = None, **options):
        super().__init__()
        config = LSTMConfig(**options)
        self.hidden_size, self.num_layers = config.hidden_size, config.num_layers
        self.preprocess, self.p, self.output_scale = config.preprocess, config.p, config.output_scale
        self.adam_inputs, self.groups = config.adam_inputs, config.groups
        self.relative = config.relative
        inputs = (2 if self.preprocess else 1) + (2 if self.adam_inputs else 0)
        if self.relative:
            self.net = CoordinatewiseLSTM(2, self.hidden_size, self.num_layers, engine, outputs=2)
            nn.init.zeros_(self.net.readout.weight)
            nn.init.zeros_(self.net.readout.bias)
            self.log_step = nn.Parameter(torch.zeros(()))
        elif self.groups is None:
            self.net = CoordinatewiseLSTM(inputs, self.hidden_size, self.num_layers, engine)
        else:
            self.nets = nn.ModuleDict({g: CoordinatewiseLSTM(inputs, self.hidden_size,
                                                             self.num_layers, engine)
                                       for g in self.groups})

    def _nets(self) -> list:
        return [self.net] if self.groups is None else list(self.nets.values())

    @property
    def engine(self) -> str:
        return self._nets()[0].engine

    @engine.setter
    def engine(self, engine: str):
        if engine not in ENGINES:
            raise ConfigError(f"engine must be one of {ENGINES}, got {engine!r}")
        for net in self._nets():
            net.engine = engine

    def group_rule(self, name: str) -> LSTMOptimizer:
        """A one-LSTM optimizer that shares the weights of group ``name``'s LSTM."""
        if self.groups is None or name not in self.groups:
            raise ConfigError(f"no LSTM group {name!r}; this optimizer has "
                              f"{', '.join(self.groups) if self.groups else 'a single LSTM'}")
        view = LSTMOptimizer(**{**self.config(), "groups": None, "hidden_size": 1, "num_layers": 1})
        view.hidden_size, view.num_layers = self.hidden_size, self.num_layers
        view.net = self.nets[name]  # shared, not copied: training one trains the other
        return view

    def init_state(self, theta: Tensor, groups=None) -> State:
        """Zero state for θ ``[B, n]``; ``groups`` (name → indices ``[n_g]``) is needed with groups."""
        moments = ()
        if self.adam_inputs or self.relative:
            zeros = theta.new_zeros(theta.numel())
            moments = (zeros, zeros.clone(), zeros.clone())
        return moments + self._lstm_state(theta, groups)

    def _lstm_state(self, theta: Tensor, groups) -> State:
        if self.groups is None:
            return self.net.init_state(theta.numel(), theta)
        if groups is None or set(groups) != set(self.groups):
            have = "none" if groups is None else ", ".join(sorted(groups))
            raise ConfigError(f"this optimizer has one LSTM per group ({', '.join(self.groups)}) "
                              f"but the optimizee's coordinate groups are: {have}")
        state = []
        for g in self.groups:
            index = torch.as_tensor(groups[g], dtype=torch.long, device=theta.device)
            state += [index, *self.nets[g].init_state(theta.shape[0] * index.numel(), theta)]
        return tuple(state)

    def encode(self, grad: Tensor) -> Tensor:
        """LSTM inputs ``[B·n, 1 or 2]`` for gradients ``[B, n]``. With the native engine and a
        gradient outside autograd (second derivatives dropped) the encoding is one compiled pass."""
        flat = grad.reshape(-1)
        if not self.preprocess:
            return flat.unsqueeze(-1)
        # the compiled log needs e^-p to be a normal float (p ≤ 80); autograd needs PyTorch
        if (self.engine in ("auto", "native") and not (torch.is_grad_enabled() and grad.requires_grad)
                and flat.dtype == torch.float32 and flat.device.type == "cpu" and self.p <= 80
                and _native.available()):
            return _native.encode(flat, self.p)
        return preprocess_gradients(flat, self.p)

    def moments(self, grad: Tensor, state: State) -> tuple[Tensor, State]:
        """Adam's normalised moments ``[B, n, 2]`` after this gradient, and the updated
        (m, v, t). The gradient is a constant of the meta-graph unless second derivatives are
        kept, so these are usually constants too."""
        (b1, b2), (m, v, t), flat = self.BETAS, state, grad.reshape(-1)
        t = t + 1
        m = b1 * m + (1 - b1) * flat
        v = b2 * v + (1 - b2) * flat * flat
        denom = (v / (1 - b2 ** t)).sqrt() + self.EPS
        extra = torch.stack((m / (1 - b1 ** t) / denom, flat / denom), dim=-1)
        return extra.view(*grad.shape, 2), (m, v, t)

    def forward(self, grad: Tensor, state: State) -> tuple[Tensor, State]:
        if self.relative:
            return self._relative_step(grad, state)
        extra, adam_state, scale = None, (), self.output_scale
        if self.adam_inputs:
            extra, adam_state = self.moments(grad, state[:3])
            state = state[3:]

        def inputs(index=None):
            g, e = (grad, extra) if index is None else (
                grad[:, index], None if extra is None else extra[:, index])
            x = self.encode(g)
            return x if e is None else torch.cat((x, e.reshape(-1, 2)), dim=1)

        if self.groups is None:
            out, state = self.net(inputs(), state)
            return scale * out.view_as(grad), adam_state + tuple(state)
        width = 1 + 2 * self.num_layers
        update, new_state = torch.zeros_like(grad), []
        for k, g in enumerate(self.groups):
            index, group_state = state[k * width], state[k * width + 1:(k + 1) * width]
            out, group_state = self.nets[g](inputs(index), group_state)
            update = update.index_copy(1, index, out.view(grad.shape[0], -1))
            new_state += [index, *group_state]
        return scale * update, adam_state + tuple(new_state)

    def _relative_step(self, grad: Tensor, state: State) -> tuple[Tensor, State]:
        """The ``relative`` rule: Adam's step, scaled and steered per coordinate by the LSTM."""
        extra, adam_state = self.moments(grad, state[:3])
        out, lstm_state = self.net(extra.reshape(-1, 2), state[3:])
        scale, steer = out.view(*grad.shape, 2).tanh().unbind(-1)
        direction = extra[..., 0] + steer * extra[..., 1]
        step = (self.output_scale * self.log_step.exp()) * (2 * scale).exp()
        return -step * direction, adam_state + tuple(lstm_state)

    def config(self) -> dict:
        config = {
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "preprocess": self.preprocess,
            "p": self.p,
            "output_scale": self.output_scale,
        }
        if self.groups is not None:
            config["groups"] = list(self.groups)
        if self.adam_inputs:  # only where set, so that earlier checkpoints' configs stay as they were
            config["adam_inputs"] = True
        if self.relative:
            config["relative"] = True
        return config
