"""Time the same meta-training and evaluation under two checkouts of l2l, alternately.

    python benchmarks/compare_checkouts.py OTHER_CHECKOUT [--rounds 3] [--threads 1]

Runs, in a fresh subprocess per checkout and round (alternating, so load from other processes
falls on both): MNIST meta-training (``MetaTrainer.train_epoch``, MLP 784-20-10 on real data,
horizon 100, unroll 20, one optimizee per epoch; ms per optimizee step, median over epochs) and
evaluation (``l2l.rollout.run``, 100 steps of 8 networks; ms per step), through the API both
checkouts share. Prints each checkout's medians over rounds and their ratio: a refactor should
leave it at 1.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

WORK = r'''
import json, statistics, sys, time
import torch
torch.set_num_threads(int(sys.argv[1]))
from l2l.meta import MetaConfig, MetaTrainer
from l2l.optimizers import LSTMOptimizer
from l2l.problems import make_problem
from l2l.rollout import run
from l2l.seeding import generator
problem = make_problem("mnist")
torch.manual_seed(0)
optimizer = LSTMOptimizer(preprocess=True, p=10.0, output_scale=0.1)
config = MetaConfig(epochs=10, horizon=100, unroll=20, meta_lr=1e-3, validation_size=1)
trainer = MetaTrainer(problem, optimizer, config, progress=False)
train = []
for epoch in range(4):
    start = time.perf_counter()
    trainer.train_epoch(epoch)
    train.append((time.perf_counter() - start) / 100 * 1e3)
optimizees = problem.for_split("test").sample(8, generator(0, "test"))
evaluate = []
with torch.no_grad():
    for _ in range(4):
        start = time.perf_counter()
        run(optimizees, optimizer, 100)
        evaluate.append((time.perf_counter() - start) / 100 * 1e3)
print(json.dumps({"train_ms": statistics.median(train[1:]),
                  "eval_ms": statistics.median(evaluate[1:])}))
'''


def measure(checkout: Path, threads: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(checkout), "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run([sys.executable, "-c", WORK, str(threads)], cwd=checkout, env=env,
                          capture_output=True, text=True, check=True, timeout=1800)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", type=Path, help="the other checkout (e.g. a git worktree)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    here = Path(__file__).resolve().parents[1]
    checkouts = {"other": args.other.resolve(), "this": here}
    results = {name: [] for name in checkouts}
    for _ in range(args.rounds):
        for name, path in checkouts.items():
            results[name].append(measure(path, args.threads))
    print(f"{args.rounds} rounds, {args.threads} thread(s); medians over rounds")
    print(f"{'checkout':<8}{'meta-train ms/step':>20}{'evaluate ms/step':>18}")
    medians = {}
    for name, rows in results.items():
        medians[name] = {k: statistics.median(r[k] for r in rows) for k in ("train_ms", "eval_ms")}
        print(f"{name:<8}{medians[name]['train_ms']:>20.2f}{medians[name]['eval_ms']:>18.3f}")
    ratio = {k: medians["this"][k] / medians["other"][k] for k in ("train_ms", "eval_ms")}
    print(f"{'this/other':<8}{ratio['train_ms']:>20.3f}{ratio['eval_ms']:>18.3f}")


if __name__ == "__main__":
    main()
