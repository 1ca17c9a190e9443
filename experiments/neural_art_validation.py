"""Candidate neural-art optimizers against Adam and RMSprop on the validation crops.

For choosing between meta-training recipes without looking at the test crops: both settings of
Figure 8 (training style at 64×64, new style at 128×128) on SPLIT (default ``val``, 20 crops),
baselines at their stored tuned rates (their curves cached in ``$CACHE``, default /tmp):

    python experiments/neural_art_validation.py CHECKPOINT [CHECKPOINT ...]

Environment: SPLIT, RUNS (20), SEED (0), SETTINGS (``64,128``), CACHE.
"""

import os
import sys

import torch

from l2l import checkpoint
from l2l.evaluate import make_optimizer, rollout_batched
from l2l.problems import make_problem

torch.set_num_threads(1)
split = os.environ.get("SPLIT", "val")
runs, seed = int(os.environ.get("RUNS", "20")), int(os.environ.get("SEED", "0"))
settings = os.environ.get("SETTINGS", "64,128").split(",")
cache = os.environ.get("CACHE", "/tmp")
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
    for spec in sys.argv[1:]:
        losses, _ = rollout_batched(problem, checkpoint.load_optimizer(spec), 128, runs, seed,
                                    split=split, metrics=False)
        rows.append(("/".join(spec.split("/")[-2:]), losses.mean(1)))
    print(f"== {setting}px {split} runs={runs} seed={seed}")
    for name, mean in rows:
        print(f"{name:40s} " + " ".join(f"@{k} {mean[k]:.4f}" for k in (8, 16, 32, 64, 100, 128)),
              flush=True)
