"""Run the drop-in checks: each model's own script with its usual optimizer, with Adam(1e-3) and
with ``l2l.LearnedOptimizer``'s default rule, over several seeds, and print one table.

    python examples/check_drop_in.py --seeds 0 1 2 --json drop_in.json

The models: the pytorch/examples MNIST CNN (``pytorch_mnist_cnn.py``, 300 steps, test accuracy)
and the three of ``small_models.py`` (1000 steps, mean training loss of the last 50 steps).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import pytorch_mnist_cnn
import small_models

#: model → (script's main, its arguments, its usual optimizer's name, steps)
CHECKS = {
    "mnist_cnn": (pytorch_mnist_cnn.main, [], "adadelta", 300),
    "cifar_mlp": (small_models.main, ["cifar_mlp"], "usual", 1000),
    "cifar_convnet": (small_models.main, ["cifar_convnet"], "usual", 1000),
    "gru": (small_models.main, ["gru"], "usual", 1000),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", choices=tuple(CHECKS), default=list(CHECKS))
    parser.add_argument("--rule", default=None, help="the learned rule (default: LearnedOptimizer's)")
    parser.add_argument("--lr", type=float, default=1.0,
                        help="LearnedOptimizer's lr, a multiplier on the learned update")
    parser.add_argument("--optimizers", nargs="+", choices=("usual", "adam", "learned"),
                        default=["usual", "adam", "learned"], help="which of the three to run")
    parser.add_argument("--json", help="also write every run's figures here")
    args = parser.parse_args()

    rows = []
    for model in args.models:
        script, base, usual, steps = CHECKS[model]
        for optimizer in (usual, "adam", "learned"):
            if ("usual" if optimizer == usual else optimizer) not in args.optimizers:
                continue
            for seed in args.seeds:
                argv = [*base, "--optimizer", optimizer, "--steps", str(steps), "--seed", str(seed)]
                if optimizer == "learned":
                    argv += ["--lr", str(args.lr)] + (["--rule", args.rule] if args.rule else [])
                started = time.perf_counter()
                with contextlib.redirect_stdout(io.StringIO()):
                    result = script(argv)
                result.update(model=model, optimizer=optimizer, seed=seed,
                              seconds=round(time.perf_counter() - started, 1))
                rows.append(result)
                print(f"{model:14} {optimizer:9} seed {seed}: training loss (last 50) "
                      f"{result['train_loss_last_50']:.4f}  test accuracy "
                      f"{100 * result['test_accuracy']:.2f}%{'  DIVERGED' if result['diverged'] else ''}"
                      f"  ({result['seconds']} s)", flush=True)

    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if set(args.optimizers) != {"usual", "adam", "learned"}:
        return
    print("\nmean over seeds; learned/adam is the ratio of the training losses")
    print(f"{'model':14} {'optimizer':9} {'train loss':>10} {'test acc':>9} {'learned/adam':>12}")
    for model in args.models:
        def mean(optimizer, key, model=model):
            return statistics.mean(r[key] for r in rows if r["model"] == model and r["optimizer"] == optimizer)

        for optimizer in (CHECKS[model][2], "adam", "learned"):
            ratio = (f"{mean('learned', 'train_loss_last_50') / mean('adam', 'train_loss_last_50'):12.3f}"
                     if optimizer == "learned" else "")
            print(f"{model:14} {optimizer:9} {mean(optimizer, 'train_loss_last_50'):10.4f} "
                  f"{100 * mean(optimizer, 'test_accuracy'):8.2f}% {ratio}")


if __name__ == "__main__":
    main()
