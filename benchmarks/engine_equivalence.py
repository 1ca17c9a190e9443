"""Meta-train the same optimizer with the fast and the reference LSTM engine; compare.

    python benchmarks/engine_equivalence.py [--epochs 100]

Both runs start from the same seed (same φ, same training and validation optimizees) on 10-d
quadratics and differ only in how the LSTM step is computed. The fast engine must end with the
same validation loss as the reference one (within 2%); float rounding differs, so the two
trajectories are close, not bit-identical.
"""

from __future__ import annotations

import argparse
import time

import torch

from l2l.meta import MetaConfig, MetaTrainer
from l2l.optimizers import LSTMOptimizer


def train(engine: str, epochs: int) -> tuple[float, float]:
    config = MetaConfig(epochs=epochs, batch_size=128, horizon=100, unroll=20, meta_lr=3e-3,
                        validate_every=epochs, validation_size=256, seed=0)
    torch.manual_seed(config.seed)
    optimizer = LSTMOptimizer(preprocess=False, output_scale=1.0, engine=engine)
    started = time.perf_counter()
    result = MetaTrainer("quadratic", optimizer, config, progress=False).train()
    return result.best_validation, time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    args = parser.parse_args()
    fast, fast_s = train("auto", args.epochs)
    ref, ref_s = train("reference", args.epochs)
    gap = abs(fast - ref) / abs(ref)
    print(f"quadratic, {args.epochs} epochs, seed 0: validation meta-loss")
    print(f"  fast engine      {fast:.6g}  ({fast_s:.1f} s)")
    print(f"  reference engine {ref:.6g}  ({ref_s:.1f} s)")
    print(f"  relative gap     {100 * gap:.3f} %  -> {'PASS' if gap <= 0.02 else 'FAIL'} (≤ 2%)")


if __name__ == "__main__":
    main()
