"""Per-crop losses at steps 32, 64 and 128: on which content crops does one optimizer lose to another?

    python experiments/neural_art_percrop.py PROBLEM SPLIT RUNS SEED OPTIMIZER [OPTIMIZER ...]

Output of ``neural_art:style=vangogh_night_cafe,size=128 val 20 0 pretrained:neural_art adam``:
``results/neural_art_stage1_percrop128_val.txt`` (and of ``… test 20 7 …``: ``…_test7.txt``).
"""
import sys

import torch

from l2l.evaluate import make_optimizer, rollout_batched
from l2l.problems import make_problem

torch.set_num_threads(1)
spec, split, runs, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
problem = make_problem(spec)
res = {}
for opt in sys.argv[5:]:
    _, optimizer, _ = make_optimizer(opt, problem, 128)
    losses, _ = rollout_batched(problem, optimizer, 128, runs, seed, split=split, metrics=False)
    res[opt] = losses
names = list(res)
print("crop  f0     " + "  ".join(f"{n[-18:]:>28s}" for n in names))
for i in range(runs):
    print(f"{i:4d} {res[names[0]][0, i]:6.2f} " + "  ".join(
        " ".join(f"{res[n][s, i]:.4f}" for s in (32, 64, 128)) for n in names))
print("mean        " + "  ".join(" ".join(f"{res[n][s].mean():.4f}" for s in (32, 64, 128)) for n in names))
