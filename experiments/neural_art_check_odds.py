"""How often would the Figure 8 check pass? Per-crop losses on every test crop, then the check's draws.

The check (in both settings of Figure 8) runs ``evaluate PROBLEM … --steps 128 --runs 20 --seed S``:
20 test crops drawn with replacement (``torch.randint`` from the seed's generator), each started
from the photo plus noise, and asks that the LSTM's mean loss be the lowest at steps 32, 64 and 128. Here every test crop is
run once (one noise draw of its own), for the LSTM and for the baselines at their stored tuned
rates; then, for seeds 0 … K-1, the crops the check would draw are looked up and the means
compared. The noise of each run is not the check's own, so this estimates the odds; the
figures for seeds whose check was run in full are printed beside, to compare.

    python experiments/neural_art_check_odds.py [--seeds 1000] [--cache FOLDER] PROBLEM CHECKPOINT [BASELINE ...]

PROBLEM: ``neural_art`` or ``neural_art:style=vangogh_night_cafe,size=128``; baselines default to
adam and rmsprop (SGD and NAG are far behind at steps 32–128 in every run so far). ``--seeds``
defaults to the environment variable SEEDS, else 1000; ``--cache`` (default ``runs/cache``) keeps
the baselines' per-crop losses and each setting's passes, so that the second setting run with the
same checkpoint prints how often both pass.
"""

import argparse
import os
import sys

import torch

from l2l.evaluate import make_optimizer
from l2l.problems import make_problem
from l2l.rollout import run
from l2l.seeding import generator

STEPS, RUNS, AT = 128, 20, (32, 64, 128)

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("problem", metavar="PROBLEM")
parser.add_argument("checkpoint", metavar="CHECKPOINT")
parser.add_argument("baselines", nargs="*", metavar="BASELINE")
parser.add_argument("--seeds", type=int, default=int(os.environ.get("SEEDS", "1000")))
parser.add_argument("--cache", default="runs/cache", help="folder for per-crop losses and passes")
args = parser.parse_args()
torch.set_num_threads(1)
spec, checkpoint_path, baselines = args.problem, args.checkpoint, args.baselines or ["adam", "rmsprop"]
seeds, cache = args.seeds, args.cache
os.makedirs(cache, exist_ok=True)
base_problem = make_problem(spec)  # the tuned rates are stored under the problem as specified
problem = base_problem.for_split("test")
crops = len(problem.content_images())


def per_crop_losses(name: str, optimizer) -> torch.Tensor:
    """Loss ``[len(AT), crops]`` of each test crop at the steps of AT, batches of 25 crops."""
    rows = []
    for first in range(0, crops, 25):
        index = torch.arange(first, min(first + 25, crops))
        losses, _ = run(problem.optimizee(index, generator(12345, "test", first)), optimizer, STEPS)
        rows.append(losses[list(AT)])
        print(f"  {name}: crops {first}–{first + len(index) - 1}", file=sys.stderr, flush=True)
    return torch.cat(rows, dim=1)


def tag_of(spec: str) -> str:
    return spec.replace(":", "_").replace(",", "_").replace("=", "-")


table, tag = {}, tag_of(spec)
for name in baselines + [checkpoint_path]:
    path = f"{cache}/odds_{tag}_{name.replace('/', '_')}.pt"
    if name in baselines and os.path.exists(path):  # a checkpoint may change under its name
        table[name] = torch.load(path)
        continue
    _, optimizer, lr = make_optimizer(name if name in baselines else f"lstm:{name}", base_problem,
                                   STEPS)
    table[name] = per_crop_losses(name, optimizer)
    torch.save(table[name], path)

wins, passed = torch.zeros(len(AT)), []
for seed in range(seeds):
    index = torch.randint(crops, (RUNS,), generator=generator(seed, "test", 0))
    means = {name: losses[:, index].mean(1) for name, losses in table.items()}
    best_baseline = torch.stack([means[b] for b in baselines]).min(0).values
    won = means[checkpoint_path] < best_baseline
    wins += won.float()
    passed.append(bool(won.all()))
    if seed in (0, 7):
        print(f"seed {seed}: " + "  ".join(
            f"{name.split('/')[-1]} " + " ".join(f"@{t} {v:.4f}" for t, v in zip(AT, m))
            for name, m in means.items()))
print(f"{spec}, {checkpoint_path}: all test crops, mean @"
      + " @".join(f"{t} " + " / ".join(f"{table[n][k].mean():.4f}" for n in table) for k, t in enumerate(AT))
      + f"  ({' / '.join(n.split('/')[-1] for n in table)})")
print(f"check passes on {sum(passed)} of {seeds} seeds; LSTM lowest at steps {AT}: "
      + ", ".join(f"{int(w)}" for w in wins) + " seeds")
# both settings of the check on the same seeds, once the other setting has been run too
ckpt = checkpoint_path.replace("/", "_")
torch.save(torch.tensor(passed), f"{cache}/odds_passes_{tag}_{ckpt}.pt")
others = [f"{cache}/odds_passes_{t}_{ckpt}.pt"
          for t in map(tag_of, ("neural_art", "neural_art:style=vangogh_night_cafe,size=128"))]
if all(os.path.exists(o) for o in others):
    both = torch.stack([torch.load(o) for o in others]).all(0)
    print(f"both settings pass on {int(both.sum())} of {len(both)} seeds")
