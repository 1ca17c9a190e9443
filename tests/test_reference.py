"""The nn.LSTMCell reference optimizer computes what the optimizer it copies computes."""

import torch

from l2l.optimizers import LSTMOptimizer
from l2l.optimizers.reference import LSTMCellNet, reference_optimizer


def test_reference_of_an_optimizer_with_groups_gives_the_same_updates():
    torch.manual_seed(0)
    optimizer = LSTMOptimizer(groups=("conv", "other"))
    reference = reference_optimizer(optimizer)
    assert all(isinstance(net, LSTMCellNet) for net in reference.nets.values())
    assert reference.engine == "reference"
    grad = torch.randn(2, 300)
    groups = {"conv": torch.arange(0, 300, 3), "other": torch.tensor(
        [i for i in range(300) if i % 3])}
    u1, _ = optimizer(grad, optimizer.init_state(grad, groups))
    u2, _ = reference(grad, reference.init_state(grad, groups))
    torch.testing.assert_close(u1, u2, rtol=1e-5, atol=1e-6)
