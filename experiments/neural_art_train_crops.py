"""Where Adam ends below the LSTM, on training crops (64×64, training style).

    python experiments/neural_art_train_crops.py run PART PARTS   # rollouts, PARTS processes
    python experiments/neural_art_train_crops.py report           # the table and correlations
    python experiments/neural_art_train_crops.py hard-tame OPT... # 12 hard (f0 > 10) vs 12 tame crops

``run`` rolls the optimizers of ``$OPTIMIZERS`` (comma-separated; default
``pretrained:neural_art,adam``, Adam at its tuned rate) out for 128 steps on 96 training crops
(drawn with seed 99; part PART of PARTS of them, so that two processes can share the work) and
stores the losses in ``CACHE/traincrops_PART.pt`` (``--cache``, default ``runs/cache/train_crops``;
options go before the mode); ``report`` reads every part, compares the first
optimizer of ``$OPTIMIZERS`` with the second: losses at steps 32 / 64 / 128, the crops where the
second gains most at step 128, and how the difference goes with the RMS of the gradient at θ0. Training crops, not validation or test
ones, so that what is learnt here can guide meta-training without choosing on held-out photos.
Outputs: ``results/neural_art_stage1_train_crops.txt``, ``results/neural_art_stage1_hard_tame_train.txt``.
"""
import argparse
import os
from pathlib import Path

import numpy as np
import torch

from l2l.evaluate import make_optimizer
from l2l.problems import make_problem
from l2l.rollout import run

torch.set_num_threads(1)
CACHE = Path("runs/cache/train_crops")  # set from --cache
OPTIMIZERS = tuple(os.environ.get("OPTIMIZERS", "pretrained:neural_art,adam").split(","))
problem = make_problem("neural_art").for_split("train")


def crops() -> torch.Tensor:
    return torch.randperm(len(problem.content_images()), generator=torch.Generator().manual_seed(99))[:96]


def rollouts(part: int, parts: int) -> None:
    index = crops()[part::parts]
    path = CACHE / f"traincrops_{part}.pt"
    result = torch.load(path) if path.exists() else {"idx": index}  # add to the optimizers run before
    for spec in OPTIMIZERS:
        if spec in result:
            continue
        _, optimizer, _ = make_optimizer(spec, problem, 128)
        curves = []
        for b in range(0, len(index), 8):
            optimizee = problem.optimizee(index[b:b + 8], torch.Generator().manual_seed(1000 + b))
            curve, _ = run(optimizee, optimizer, 128)
            curves.append(curve.detach())
        result[spec] = torch.cat(curves, 1)
    CACHE.mkdir(parents=True, exist_ok=True)
    torch.save(result, path)


def report() -> None:
    parts = [torch.load(p) for p in sorted(CACHE.glob("traincrops_*.pt"))]
    index = torch.cat([p["idx"] for p in parts])
    lstm, adam = (torch.cat([p[s] for p in parts], 1).double() for s in OPTIMIZERS[:2])
    for step in (32, 64, 128):
        d = lstm[step] - adam[step]
        print(f"step {step:3d}: LSTM {lstm[step].mean():.4f}  Adam {adam[step].mean():.4f}  "
              f"LSTM lower on {int((d < 0).sum())}/{len(d)} crops; LSTM − Adam mean {d.mean():+.4f} sd {d.std():.4f}")
    optimizee = problem.optimizee(index, torch.Generator().manual_seed(5))
    theta = optimizee.theta0.clone().requires_grad_(True)
    f0 = optimizee.loss(theta)
    grad, = torch.autograd.grad(f0.sum(), theta)
    rms, f0 = grad.pow(2).mean(1).sqrt().double(), f0.detach().double()
    d = lstm[128] - adam[128]
    print(f"correlation of LSTM − Adam at step 128 with log RMS ∇f(θ0): {np.corrcoef(d, rms.log())[0, 1]:+.2f}, "
          f"with f0: {np.corrcoef(d, f0)[0, 1]:+.2f}; median RMS ∇f(θ0) {rms.median():.2e}")
    print("crops where Adam gains most at step 128:")
    print(" crop     f0  RMS∇f(θ0)   LSTM @32 @64 @128         Adam @32 @64 @128    LSTM − Adam")
    for i in torch.argsort(d, descending=True)[:8]:
        print(f"{int(index[i]):5d} {f0[i]:6.2f}  {rms[i]:.2e}   " + " ".join(f"{lstm[s, i]:.3f}" for s in (32, 64, 128))
              + "   " + " ".join(f"{adam[s, i]:.3f}" for s in (32, 64, 128)) + f"   {d[i]:+.4f}")


def hard_and_tame(specs) -> None:
    index = torch.randperm(len(problem.content_images()), generator=torch.Generator().manual_seed(123))[:400]
    optimizee = problem.optimizee(index, torch.Generator().manual_seed(1))
    with torch.no_grad():
        f0 = optimizee.loss(optimizee.theta0)
    for name, chosen in (("hard", index[f0 > 10][:12]), ("tame", index[f0 <= 10][:12])):
        print(f"== {name} crops {chosen.tolist()}")
        for spec in specs:
            _, optimizer, _ = make_optimizer(spec, problem, 128)
            curve, _ = run(problem.optimizee(chosen, torch.Generator().manual_seed(2)), optimizer, 128)
            print(f"{spec[-40:]:40s} " + " ".join(f"@{s} {curve[s].double().mean():.4f}" for s in (0, 8, 32, 64, 128)),
                  flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", default=str(CACHE), help="folder for the rollouts' losses")
    parser.add_argument("mode", choices=["run", "report", "hard-tame"])
    parser.add_argument("args", nargs="*", help="PART PARTS for run, optimizers for hard-tame")
    options = parser.parse_args()
    CACHE = Path(options.cache)
    if options.mode == "run":
        rollouts(int(options.args[0]), int(options.args[1]))
    elif options.mode == "report":
        report()
    else:
        hard_and_tame(options.args)
