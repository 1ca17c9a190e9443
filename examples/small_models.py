"""Three small models in plain PyTorch loops, each trained with its usual optimizer, with Adam(1e-3)
or with ``l2l.LearnedOptimizer`` (its default rule), on the same initialisation and minibatches.

- ``cifar_mlp``: a ReLU MLP on CIFAR-10, 3072 → 256 → 128 → 10 (820,874 parameters), minibatches
  of 128; its usual optimizer SGD(lr=0.01, momentum=0.9).
- ``cifar_convnet``: the convnet of PyTorch's CIFAR-10 tutorial (conv 6@5×5, max-pool, conv
  16@5×5, max-pool, 120, 84, 10, ReLU; 62,006 parameters), minibatches of 32; the tutorial's
  SGD(lr=0.001, momentum=0.9).
- ``gru``: the GRU sequence classifier of the README (GRU of 32 units on 8 inputs, a linear head to
  4 classes; 4,228 parameters) on a synthetic task that it can learn: 20 steps of noise in which
  one of four patterns is hidden at a random time, the class being the pattern; minibatches of
  64; RMSprop(lr=1e-3), a common choice for recurrent nets.

    python examples/small_models.py cifar_mlp --optimizer learned --steps 1000 --seed 0

Prints the training loss every 100 steps and, at the end, the mean training loss of the last 50
steps and the test accuracy. Data come from ``l2l.data`` (``$L2L_DATA`` or ``~/.cache/l2l``).
"""

from __future__ import annotations

import argparse
import math

import torch
import torch.nn.functional as F
from torch import nn

import l2l
from l2l.data import load_cifar10


def cifar_mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(3072, 256), nn.ReLU(), nn.Linear(256, 128),
                         nn.ReLU(), nn.Linear(128, 10))


def cifar_convnet() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 5 * 5, 120),
                         nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


class GRUClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(input_size=8, hidden_size=32, batch_first=True)
        self.head = nn.Linear(32, 4)

    def forward(self, x):  # x: [batch, time, 8]
        return self.head(self.gru(x)[0][:, -1])


def cifar(split: str):
    images, labels = load_cifar10(split)
    images = images.float().div_(255).sub_(0.5).div_(0.5)  # the tutorial's normalisation
    return images, labels


def patterns(count: int, generator: torch.Generator):
    """``count`` sequences [20, 8] of noise, each hiding one of 4 fixed patterns (its label) for
    3 steps at a random time."""
    shapes = torch.randn(4, 3, 8, generator=torch.Generator().manual_seed(1234))
    labels = torch.randint(4, (count,), generator=generator)
    x = torch.randn(count, 20, 8, generator=generator)
    start = torch.randint(18, (count,), generator=generator)
    rows = torch.arange(count)
    for k in range(3):
        x[rows, start + k] += 1.5 * shapes[labels, k]
    return x, labels


MODELS = {  # name: (model, batch size, usual optimizer)
    "cifar_mlp": (cifar_mlp, 128, lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9)),
    "cifar_convnet": (cifar_convnet, 32, lambda p: torch.optim.SGD(p, lr=0.001, momentum=0.9)),
    "gru": (GRUClassifier, 64, lambda p: torch.optim.RMSprop(p, lr=1e-3)),
}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", choices=tuple(MODELS))
    parser.add_argument("--optimizer", choices=("usual", "adam", "learned"), default="usual")
    parser.add_argument("--rule", default=None, help="the learned rule (default: LearnedOptimizer's)")
    parser.add_argument("--lr", type=float, default=1.0,
                        help="LearnedOptimizer's lr, a multiplier on the learned update (default 1)")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    build, batch, usual = MODELS[args.model]
    generator = torch.Generator().manual_seed(args.seed)
    if args.model == "gru":
        train, test = patterns(50_000, generator), patterns(5_000, generator)
    else:
        train, test = cifar("train"), cifar("test")
    torch.manual_seed(args.seed)
    model = build()
    params = model.parameters()
    if args.optimizer == "usual":
        optimizer = usual(params)
    elif args.optimizer == "adam":
        optimizer = torch.optim.Adam(params, lr=1e-3)
    else:
        optimizer = l2l.LearnedOptimizer(params, lr=args.lr,
                                         **({} if args.rule is None else {"optimizer": args.rule}))

    losses = []
    for step in range(1, args.steps + 1):
        index = torch.randint(len(train[1]), (batch,), generator=generator)
        optimizer.zero_grad()
        loss = F.cross_entropy(model(train[0][index]), train[1][index])
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if step % 100 == 0:
            print(f"{args.model} {args.optimizer} step {step}: loss (last 100) "
                  f"{sum(losses[-100:]) / 100:.4f}")
        if not math.isfinite(losses[-1]):
            break
    with torch.no_grad():
        correct = sum((model(x).argmax(1) == y).sum().item()
                      for x, y in zip(test[0].split(1000), test[1].split(1000)))
    result = {"train_loss_last_50": sum(losses[-50:]) / len(losses[-50:]),
              "test_accuracy": correct / len(test[1]), "steps": len(losses),
              "diverged": not all(math.isfinite(x) for x in losses)}
    print(f"{args.model} {args.optimizer}: training loss (last 50) "
          f"{result['train_loss_last_50']:.4f}, test accuracy {100 * result['test_accuracy']:.2f}%")
    return result


if __name__ == "__main__":
    main()
