"""How large are a learned rule's steps on the pytorch/examples MNIST CNN, compared with Adam's?

Trains the CNN of ``examples/pytorch_mnist_cnn.py`` with ``l2l.LearnedOptimizer`` and feeds the same
gradients to a separate Adam at 10⁻³ (which does not move the model). Every 25 steps prints the
minibatch loss, the ratio of the L1 norms of the two updates and their cosine similarity.

    python experiments/drop_in_step_ratio.py --rule pretrained:general --seed 1 --steps 300
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

import l2l
from l2l.optimizers import Adam

sys.path.insert(0, str(Path(__file__).parents[1] / "examples"))
import pytorch_mnist_cnn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rule", default="pretrained:general")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    loader = torch.utils.data.DataLoader(pytorch_mnist_cnn.mnist_split("train"), batch_size=64,
                                         shuffle=True)
    model = pytorch_mnist_cnn.Net()
    opt = l2l.LearnedOptimizer(model.parameters(), optimizer=args.rule)
    params = list(model.parameters())
    adam = Adam(lr=1e-3)
    adam_state = adam.init_state(torch.cat([p.detach().reshape(-1) for p in params]).unsqueeze(0))
    for step, (x, y) in enumerate(loader, start=1):
        opt.zero_grad()
        loss = F.nll_loss(model(x), y)
        loss.backward()
        grad = torch.cat([p.grad.reshape(-1) for p in params]).unsqueeze(0)
        before = [p.detach().clone() for p in params]
        opt.step()
        learned = torch.cat([(p.detach() - b).reshape(-1) for p, b in zip(params, before)])
        adam_update, adam_state = adam(grad, adam_state)
        if step % 25 == 0:
            ratio = learned.abs().sum() / adam_update.abs().sum()
            cosine = F.cosine_similarity(learned, adam_update[0], dim=0)
            print(f"step {step}: loss {loss.item():.3f}  |learned|/|adam| {ratio:.2f}  "
                  f"cosine {cosine:.3f}", flush=True)
        if step == args.steps:
            break


if __name__ == "__main__":
    main()
