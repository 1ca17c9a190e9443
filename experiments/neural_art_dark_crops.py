"""The training photos where Adam ends far below the LSTM: gradients small for their loss.

    python experiments/neural_art_dark_crops.py ratio                 # RMS ∇f(θ0) / f(θ0), every training crop
    python experiments/neural_art_dark_crops.py scale OPT             # the LSTM on c·f, c = 1 … 16
    python experiments/neural_art_dark_crops.py output-scale OPT      # its steps multiplied by 1 … 3
    python experiments/neural_art_dark_crops.py curves OPT ...        # losses of these optimizers
    python experiments/neural_art_dark_crops.py slope STEPS           # meta-gradient vs finite differences
    python experiments/neural_art_dark_crops.py train FRACTION SEED OUT [K]  # fine-tune, dark photos oversampled
    python experiments/neural_art_dark_crops.py train-adam FRACTION SEED OUT # the same, Adam's moments as new inputs

The crops are 488, 1088 and 1593 of the training split (64×64, training style), the three where
Adam gains most at step 128 in ``neural_art_train_crops.py``. ``ratio`` stores the ratio of every
training crop in ``CACHE/ratio_train.pt`` (``--cache``, default ``runs/cache/dark_crops``; give
the same to ``train``); ``train`` fine-tunes START with
stage 2's recipe (R = 8 downward random scaling) while drawing FRACTION of its training photos
from the 5% with the lowest ratio (all photos still come from the training split); with K, its
readout weights and bias are first multiplied by K (so its steps start K times longer; the
optimizer keeps no output scaling). ``train-adam`` first gives the optimizer Adam's normalised
moments as two more inputs (``LSTMOptimizer(adam_inputs=True)``) with zero weights, so that it
starts as the shipped optimizer and can learn to use them (e.g. to lengthen its steps where the
gradient keeps its sign).

``slope``, ``train`` and ``train-adam`` start from START: ``--start``, else the environment variable
START, else ``pretrained:neural_art``. The results in ``results/neural_art_dark_crops.txt`` and
the fine-tunes logged beside it started from the first-order stage 2 shipped when they ran; to
repeat them, give ``--start lstm:experiments/results/checkpoints/neural_art_scale_down8_first_order.pt``.
Options go before the mode: ``python experiments/neural_art_dark_crops.py --cache DIR train …``.
"""
import argparse
import copy
import os
import sys
from pathlib import Path

import torch

from l2l import checkpoint
from l2l.evaluate import make_optimizer
from l2l.meta import MetaConfig, MetaTrainer
from l2l.problems import make_problem
from l2l.problems.base import Scaled
from l2l.rollout import run, unroll

torch.set_num_threads(1)
CACHE = Path("runs/cache/dark_crops")  # set from --cache
START = os.environ.get("START", "pretrained:neural_art")  # the optimizer slope and train start from; --start
DARK = torch.tensor([488, 1088, 1593])
problem = make_problem("neural_art").for_split("train")


def show(name: str, curve: torch.Tensor) -> None:
    print(f"{name:36s} " + " ".join(f"@{t} {curve[t].double().mean():.4f}" for t in (8, 32, 64, 128)), flush=True)


def dark():
    return problem.optimizee(DARK, torch.Generator().manual_seed(5))


def ratios() -> None:
    n, rows = len(problem.content_images()), []
    for first in range(0, n, 64):
        index = torch.arange(first, min(first + 64, n))
        optimizee = problem.optimizee(index, torch.Generator().manual_seed(5))
        theta = optimizee.theta0.clone().requires_grad_(True)
        f = optimizee.loss(theta, 0)
        grad, = torch.autograd.grad(f.sum(), theta)
        rows.append(torch.stack([index.double(), f.detach().double(), grad.pow(2).mean(1).sqrt().double()], 1))
    table = torch.cat(rows)
    CACHE.mkdir(parents=True, exist_ok=True)
    torch.save(table, CACHE / "ratio_train.pt")
    ratio = table[:, 2] / table[:, 1]
    q = torch.tensor([0.01, 0.05, 0.1, 0.25, 0.5, 0.9], dtype=torch.float64)
    print(f"{n} training crops; RMS ∇f(θ0) / f(θ0) at quantiles {q.tolist()}: "
          + " ".join(f"{x:.2e}" for x in torch.quantile(ratio, q).tolist()))
    for crop in DARK.tolist():
        print(f"crop {crop}: ratio {ratio[crop]:.2e}, {int((ratio < ratio[crop]).sum())} crops lower")


def scaled(spec: str) -> None:
    _, adam, _ = make_optimizer("adam", problem, 128)
    show("adam", run(dark(), adam, 128)[0])
    _, optimizer, _ = make_optimizer(spec, problem, 128)
    for c in (1.0, 2.0, 4.0, 8.0, 16.0):
        optimizee = Scaled(dark(), torch.full((len(DARK),), c))
        show(f"{spec[-24:]} on {c:g}·f (f shown)", run(optimizee, optimizer, 128)[0] / c)


def output_scaled(spec: str) -> None:
    base = checkpoint.load_optimizer(spec)
    for s in (1.0, 1.5, 2.0, 3.0):
        optimizer = copy.deepcopy(base)
        optimizer.output_scale = base.output_scale * s
        show(f"{spec[-24:]} steps ×{s:g}", run(dark(), optimizer, 128)[0])


def curves(specs) -> None:
    for spec in specs:
        _, optimizer, _ = make_optimizer(spec, problem, 128)
        show(spec[-36:], run(dark(), optimizer, 128)[0])


def slope(steps: int) -> None:
    """d(mean f over the first STEPS steps)/d(step length) at 1, in float64: the first-order (paper)
    and second-order meta-gradients against central differences."""
    optimizer = checkpoint.load_optimizer(START).double()
    optimizee = dark()
    optimizee.network = copy.deepcopy(optimizee.network).double()
    for name in ("theta0", "content", "content_targets", "style_grams"):
        value = getattr(optimizee, name)
        setattr(optimizee, name, {k: v.double() for k, v in value.items()} if isinstance(value, dict) else value.double())

    def meta_loss(length: float, second_order: bool = False):
        optimizer.output_scale = torch.tensor(length, dtype=torch.float64, requires_grad=True)
        state = optimizer.init_state(optimizee.theta0, groups=optimizee.coordinate_groups())
        losses = unroll(optimizee, optimizer, optimizee.theta0, state, 0, steps, second_order=second_order).losses
        return losses.mean(), optimizer.output_scale

    for second_order in (False, True):
        value, length = meta_loss(1.0, second_order)
        grad, = torch.autograd.grad(value, length)
        print(f"{'second' if second_order else 'first'}-order meta-gradient {grad.item():+.5f}", flush=True)
    for eps in (1e-2, 1e-3, 1e-4, 1e-5):
        print(f"central difference, eps {eps:g}: "
              f"{(meta_loss(1 + eps)[0].item() - meta_loss(1 - eps)[0].item()) / (2 * eps):+.5f}", flush=True)


def with_adam_inputs(optimizer):
    """The same optimizer with Adam's moments as two more inputs, weighted 0 (the same steps)."""
    record = checkpoint.optimizer_record(optimizer, getattr(optimizer, "provenance", {}))
    state = dict(record["state_dict"])
    weight = state["net.w_ih.0"]
    state["net.w_ih.0"] = torch.cat([weight, torch.zeros(weight.shape[0], 2)], dim=1)
    record = {**record, "config": {**record["config"], "adam_inputs": True}, "state_dict": state}
    return checkpoint.optimizer_from_record(record)


def train(fraction: float, seed: int, out: str, readout: float = 1.0, adam_inputs: bool = False) -> None:
    if not (CACHE / "ratio_train.pt").exists():
        sys.exit(f"no {CACHE / 'ratio_train.pt'}: run `python experiments/neural_art_dark_crops.py ratio` "
                 "first, with the same --cache")
    table = torch.load(CACHE / "ratio_train.pt")
    ratio = table[:, 2] / table[:, 1]
    pool = torch.nonzero(ratio <= torch.quantile(ratio, 0.05)).flatten()
    config = MetaConfig(**{**problem.training_defaults, "epochs": 300, "validation_size": 8,  # stage 2's recipe
                           "seed": seed, "random_scale": 8.0, "scale_down": True})
    optimizer = checkpoint.load_optimizer(START)
    if adam_inputs:
        optimizer = with_adam_inputs(optimizer)
    with torch.no_grad():
        for weight in optimizer.net.readout.parameters():
            weight.mul_(readout)
    trainer = MetaTrainer("neural_art", optimizer, config,
                          out=out, progress=False, init=START,
                          command="python experiments/neural_art_dark_crops.py " + " ".join(sys.argv[1:]))
    train_problem = trainer.train_problem

    def sample(batch_size: int, generator: torch.Generator):
        index = torch.randint(len(train_problem.content_images()), (batch_size,), generator=generator)
        from_pool = torch.rand(batch_size, generator=generator) < fraction
        pick = pool[torch.randint(len(pool), (batch_size,), generator=generator)]
        return train_problem.optimizee(torch.where(from_pool, pick, index), generator)

    train_problem.sample = sample
    trainer.train()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", default=str(CACHE), help="folder for ratio_train.pt")
    parser.add_argument("--start", default=START, help="the optimizer slope and train start from")
    parser.add_argument("mode", choices=["ratio", "scale", "output-scale", "curves", "slope", "train",
                                         "train-adam"])
    parser.add_argument("args", nargs="*", help="the mode's arguments (see above)")
    options = parser.parse_args()
    CACHE, START, mode, rest = Path(options.cache), options.start, options.mode, options.args
    if mode == "ratio":
        ratios()
    elif mode == "scale":
        scaled(rest[0])
    elif mode == "output-scale":
        output_scaled(rest[0])
    elif mode == "curves":
        curves(rest)
    elif mode == "slope":
        slope(int(rest[0]))
    elif mode == "train-adam":
        train(float(rest[0]), int(rest[1]), rest[2], adam_inputs=True)
    else:
        train(float(rest[0]), int(rest[1]), rest[2], *map(float, rest[3:4]))
