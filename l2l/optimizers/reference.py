"""The coordinatewise LSTM written the usual way, with ``torch.nn.LSTMCell``.

A yardstick for the fast engines of :mod:`.lstm`: the benchmark (``python -m l2l bench``) times
meta-training and evaluation with it, and the tests check that it computes the same function.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from .lstm import CoordinatewiseLSTM, LSTMOptimizer


class LSTMCellNet(nn.Module):
    """:class:`~l2l.optimizers.lstm.CoordinatewiseLSTM` written with ``torch.nn.LSTMCell``.

    Built from a CoordinatewiseLSTM and computing the same function (its bias goes to
    ``bias_ih``, ``bias_hh`` is zero), with the same ``init_state`` and ``forward`` signatures:
    inputs ``[N, input_size]`` and ``2·num_layers`` state tensors ``[N, hidden_size]`` give
    outputs ``[N]`` and the next state.
    """

    #: plain PyTorch throughout, the gradient encoding included
    engine = "reference"

    def __init__(self, net: CoordinatewiseLSTM):
        super().__init__()
        self.hidden_size = net.hidden_size
        self.cells = nn.ModuleList()
        for w_ih, w_hh, bias in zip(net.w_ih, net.w_hh, net.bias):
            cell = nn.LSTMCell(w_ih.shape[1], net.hidden_size)
            with torch.no_grad():
                cell.weight_ih.copy_(w_ih)
                cell.weight_hh.copy_(w_hh)
                cell.bias_ih.copy_(bias)
                cell.bias_hh.zero_()
            self.cells.append(cell)
        self.readout = copy.deepcopy(net.readout)

    def init_state(self, num_rows: int, like: Tensor):
        zeros = like.new_zeros(num_rows, self.hidden_size)
        return tuple(zeros.clone() for _ in range(2 * len(self.cells)))

    def forward(self, x: Tensor, state):
        new_state = []
        for k, cell in enumerate(self.cells):
            h, c = cell(x, (state[2 * k], state[2 * k + 1]))
            new_state += [h, c]
            x = h
        return self.readout(x).squeeze(-1), tuple(new_state)


def reference_optimizer(optimizer: LSTMOptimizer) -> LSTMOptimizer:
    """A copy of ``optimizer`` whose LSTM (each group's, with groups) runs on
    ``torch.nn.LSTMCell``, with the same weights."""
    reference = copy.deepcopy(optimizer)
    if optimizer.groups is None:
        reference.net = LSTMCellNet(optimizer.net)
    else:
        for name, net in optimizer.nets.items():
            reference.nets[name] = LSTMCellNet(net)
    return reference
