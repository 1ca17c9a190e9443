"""Candidate neural-art optimizers against Adam and RMSprop on the validation crops.

For choosing between meta-training recipes without looking at the test crops: both settings of
Figure 8 (training style at 64×64, new style at 128×128) on SPLIT (default ``val``, 20 crops),
baselines at their stored tuned rates (their curves cached in ``--cache``, default
``runs/cache``):

    python experiments/neural_art_validation.py [--settings 64,128] [--cache FOLDER] CHECKPOINT ...

``--split`` (``val``), ``--runs`` (20), ``--seed`` (0) and ``--settings`` (``64,128``, or one of
them) default to the environment variables SPLIT, RUNS, SEED and SETTINGS where those are set.
"""

import argparse
import os

import torch

from l2l import checkpoint
from l2l.evaluate import make_optimizer, rollout_batched
from l2l.problems import make_problem

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("checkpoints", nargs="*", metavar="CHECKPOINT")
parser.add_argument("--split", default=os.environ.get("SPLIT", "val"))
parser.add_argument("--runs", type=int, default=int(os.environ.get("RUNS", "20")))
parser.add_argument("--seed", type=int, default=int(os.environ.get("SEED", "0")))
parser.add_argument("--settings", default=os.environ.get("SETTINGS", "64,128"))
parser.add_argument("--cache", default="runs/cache", help="folder for the baselines' curves")
args = parser.parse_args()
torch.set_num_threads(1)
split, runs, seed, settings, cache = args.split, args.runs, args.seed, args.settings.split(","), args.cache
os.makedirs(cache, exist_ok=True)
specs = {"64": "neural_art", "128": "neural_art:style=vangogh_night_cafe,size=128"}
for setting in settings:
    problem = make_problem(specs[setting])
    rows = []
    for base in ("adam", "rmsprop"):
        path = f"{cache}/base_{setting}_{base}_{split}_{runs}_{seed}.pt"
        if os.path.exists(path):
            mean = torch.load(path)
        else:
            _, optimizer, _ = make_optimizer(base, problem, 128)
            losses, _ = rollout_batched(problem, optimizer, 128, runs, seed, split=split, metrics=False)
            mean = losses.mean(1)
            torch.save(mean, path)
        rows.append((base, mean))
    for spec in args.checkpoints:
        losses, _ = rollout_batched(problem, checkpoint.load_optimizer(spec), 128, runs, seed,
                                    split=split, metrics=False)
        rows.append(("/".join(spec.split("/")[-2:]), losses.mean(1)))
    print(f"== {setting}px {split} runs={runs} seed={seed}")
    for name, mean in rows:
        print(f"{name:40s} " + " ".join(f"@{k} {mean[k]:.4f}" for k in (8, 16, 32, 64, 100, 128)),
              flush=True)
