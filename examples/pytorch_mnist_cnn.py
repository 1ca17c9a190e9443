"""The MNIST example of pytorch/examples, with its optimizer swappable for a learned one.

The model and the loop are those of that script (``mnist/main.py``): two 3×3 convolutions (32 and
64 channels), max-pooling, dropout 0.25, a fully-connected layer of 128 ReLU units, dropout 0.5,
10 log-softmax outputs (1,199,882 parameters); minibatches of 64 from a shuffled training set,
inputs normalised with mean 0.1307 and standard deviation 0.3081, the negative log-likelihood
loss, and its default optimizer Adadelta(lr=1) with StepLR(step_size=1, gamma=0.7) stepped once
per epoch. Only the optimizer line changes::

    python examples/pytorch_mnist_cnn.py --optimizer learned --steps 300 --seed 0
    python examples/pytorch_mnist_cnn.py --optimizer adam --steps 300 --seed 0

``learned`` is ``l2l.LearnedOptimizer(model.parameters())`` with its default rule (``--rule``
names another). Data come from ``l2l.data.load_mnist`` (``$L2L_DATA`` or ``~/.cache/l2l``) instead
of torchvision. Prints the training loss every 50 steps and the test loss and accuracy at the end.
"""

from __future__ import annotations

import argparse
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.lr_scheduler import StepLR

import l2l
from l2l.data import load_mnist


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        return F.log_softmax(self.fc2(x), dim=1)


def mnist_split(split: str) -> torch.utils.data.TensorDataset:
    images, labels = load_mnist(split)
    return torch.utils.data.TensorDataset(((images - 0.1307) / 0.3081).view(-1, 1, 28, 28), labels)


def make_optimizer(name: str, params, rule: str | None, lr: float = 1.0):
    if name == "adadelta":  # the script's default
        return torch.optim.Adadelta(params, lr=1.0)
    if name == "adam":
        return torch.optim.Adam(params, lr=1e-3)
    return l2l.LearnedOptimizer(params, lr=lr, **({} if rule is None else {"optimizer": rule}))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--optimizer", choices=("adadelta", "adam", "learned"), default="adadelta")
    parser.add_argument("--rule", default=None, help="the learned rule (default: LearnedOptimizer's)")
    parser.add_argument("--lr", type=float, default=1.0,
                        help="LearnedOptimizer's lr, a multiplier on the learned update (default 1)")
    parser.add_argument("--steps", type=int, default=300, help="training steps (minibatches)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    train_loader = torch.utils.data.DataLoader(mnist_split("train"), batch_size=args.batch_size,
                                               shuffle=True)
    test_loader = torch.utils.data.DataLoader(mnist_split("test"), batch_size=1000)
    model = Net()
    optimizer = make_optimizer(args.optimizer, model.parameters(), args.rule, args.lr)
    scheduler = StepLR(optimizer, step_size=1, gamma=0.7)

    step, losses = 0, []
    model.train()
    while step < args.steps:
        for data, target in train_loader:
            optimizer.zero_grad()
            loss = F.nll_loss(model(data), target)
            loss.backward()
            optimizer.step()
            step += 1
            losses.append(loss.item())
            if step % 50 == 0:
                print(f"{args.optimizer} step {step}: loss {loss.item():.4f}")
            if step == args.steps or not math.isfinite(losses[-1]):
                break
        else:
            scheduler.step()
            continue
        break

    model.eval()
    test_loss, correct = 0.0, 0
    with torch.no_grad():
        for data, target in test_loader:
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction="sum").item()
            correct += (output.argmax(1) == target).sum().item()
    n = len(test_loader.dataset)
    result = {"test_loss": test_loss / n, "test_accuracy": correct / n,
              "train_loss_last_50": sum(losses[-50:]) / len(losses[-50:]), "steps": step,
              "diverged": not all(math.isfinite(x) for x in losses)}
    print(f"{args.optimizer}: test loss {result['test_loss']:.4f}, accuracy "
          f"{100 * result['test_accuracy']:.2f}%, training loss (last 50) "
          f"{result['train_loss_last_50']:.4f}")
    return result


if __name__ == "__main__":
    main()
