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

import torch
from torch import Tensor, nn

from ..preprocessing import preprocess_gradients
from .base import Optimizer, State


def lstm_cell(x: Tensor, h: Tensor, c: Tensor, w_ih: Tensor, w_hh: Tensor, bias: Tensor):
    """One LSTM step for N independent rows, in ``torch.nn.LSTMCell``'s gate order (i, f, g, o).

    Shapes: x ``[N, I]``, h and c ``[N, H]``, w_ih ``[4H, I]``, w_hh ``[4H, H]``, bias ``[4H]``.
    Returns the new (h, c), each ``[N, H]``.
    """
    gates = torch.addmm(bias, x, w_ih.t()) + h @ w_hh.t()
    i, f, g, o = gates.chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    return h, c


class CoordinatewiseLSTM(nn.Module):
    """A stack of LSTM layers and a linear read-out, applied row by row.

    This module is φ. It maps inputs ``[N, input_size]`` and a state of ``2·num_layers`` tensors
    ``[N, hidden_size]`` (h and c of each layer, bottom first) to outputs ``[N]`` and the next state.
    Weights use ``torch.nn.LSTMCell``'s layout (one bias per layer instead of two).
    """

    def __init__(self, input_size: int = 2, hidden_size: int = 20, num_layers: int = 2):
        super().__init__()
        if hidden_size < 1 or num_layers < 1:
            raise ValueError(f"need hidden_size ≥ 1 and num_layers ≥ 1, got {hidden_size}, {num_layers}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        bound = 1.0 / math.sqrt(hidden_size)
        sizes = [input_size] + [hidden_size] * (num_layers - 1)

        def uniform(*shape):
            return nn.Parameter(torch.empty(*shape).uniform_(-bound, bound))

        self.w_ih = nn.ParameterList([uniform(4 * hidden_size, s) for s in sizes])
        self.w_hh = nn.ParameterList([uniform(4 * hidden_size, hidden_size) for _ in sizes])
        self.bias = nn.ParameterList([uniform(4 * hidden_size) for _ in sizes])
        self.readout = nn.Linear(hidden_size, 1)

    def init_state(self, num_rows: int, like: Tensor) -> State:
        """Zero state for ``num_rows`` coordinates: ``2·num_layers`` tensors ``[N, H]``."""
        zeros = like.new_zeros(num_rows, self.hidden_size)
        return tuple(zeros.clone() for _ in range(2 * self.num_layers))

    def forward(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        new_state = []
        for layer in range(self.num_layers):
            h, c = state[2 * layer], state[2 * layer + 1]
            h, c = lstm_cell(x, h, c, self.w_ih[layer], self.w_hh[layer], self.bias[layer])
            new_state += [h, c]
            x = h
        return self.readout(x).squeeze(-1), tuple(new_state)


class LSTMOptimizer(Optimizer):
    """The learned optimizer m(∇, h; φ): a coordinatewise LSTM on (preprocessed) gradients.

    Args:
        hidden_size: units per LSTM layer (paper: 20).
        num_layers: LSTM layers (paper: 2).
        preprocess: encode gradients as in Appendix A (MNIST, CIFAR, neural art) or feed them raw
            (the paper's quadratics).
        p: the preprocessing scale (paper 10, authors' code 5).
        output_scale: multiplies the LSTM's output (paper: 0.1 on MNIST, none on quadratics).

    The state is ``2·num_layers`` tensors ``[B·n, hidden_size]``; updates have the shape of the
    gradient, ``[B, n]``.
    """

    name = "lstm"

    def __init__(
        self,
        hidden_size: int = 20,
        num_layers: int = 2,
        preprocess: bool = True,
        p: float = 10.0,
        output_scale: float = 0.1,
    ):
        super().__init__()
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.preprocess, self.p, self.output_scale = preprocess, p, output_scale
        self.net = CoordinatewiseLSTM(2 if preprocess else 1, hidden_size, num_layers)

    def init_state(self, theta: Tensor) -> State:
        return self.net.init_state(theta.numel(), theta)

    def encode(self, grad: Tensor) -> Tensor:
        """LSTM inputs ``[B·n, 1 or 2]`` for gradients ``[B, n]``."""
        flat = grad.reshape(-1)
        return preprocess_gradients(flat, self.p) if self.preprocess else flat.unsqueeze(-1)

    def forward(self, grad: Tensor, state: State) -> tuple[Tensor, State]:
        out, state = self.net(self.encode(grad), state)
        return self.output_scale * out.view_as(grad), state

    def config(self) -> dict:
        return {
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "preprocess": self.preprocess,
            "p": self.p,
            "output_scale": self.output_scale,
        }
