"""Tune a learned optimizer's step size for a horizon the way a baseline's learning rate is
tuned: its ``output_scale`` multiplied by each factor (:func:`l2l.calibrate.scaled`), every
factor run on the validation optimizees that ``python -m l2l tune`` scores baselines on
(``RUNS`` networks of validation seed 0, the same initialisations and minibatches), scored by
the mean loss at the last step.

    python experiments/step_scale.py SPEC PROBLEM STEPS[,STEPS…] RUNS FACTOR [FACTOR …] [--baseline NAME:LR …] [--out PATH]
    python experiments/step_scale.py lstm:ckpt.pt mnist 1000,2000 32 0.5 0.7 1 1.4 --baseline nag:0.316

Prints, per factor, the mean f at each of STEPS (the last is the horizon) and the standard error
of the mean at the horizon; ``--baseline NAME:LR`` adds a baseline's row on the same networks
(repeatable). ``--out PATH`` saves the rule at the best factor (lowest mean f at
the horizon), the table recorded in its provenance.
"""
import sys
import time

from l2l import checkpoint
from l2l.calibrate import scaled
from l2l.optimizers import BASELINES
from l2l.problems import make_problem
from l2l.rollout import run
from l2l.seeding import generator


def main(argv: list[str]) -> None:
    out = None
    if "--out" in argv:
        i = argv.index("--out")
        out, argv = argv[i + 1], argv[:i] + argv[i + 2:]
    baselines = []
    while "--baseline" in argv:
        i = argv.index("--baseline")
        baselines.append(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    if len(argv) < 4 or (len(argv) == 4 and not baselines):
        sys.exit(__doc__)
    spec, problem = argv[0], make_problem(argv[1])
    steps, runs = [int(s) for s in argv[2].split(",")], int(argv[3])
    factors = [float(f) for f in argv[4:]]
    rule = checkpoint.load_optimizer(spec)
    networks = problem.for_split("val").sample(runs, generator(0, "val", 0))
    head = "".join(f"{'f@' + str(s):>10}" for s in steps)
    print(f"{'factor':>8}{head}{'± s.e.':>9}{'time':>8}", flush=True)
    rows = {}

    def row(label: str, optimizer) -> dict:
        start = time.time()
        losses, _ = run(networks, optimizer, steps[-1])  # [steps + 1, RUNS]
        losses = losses.double()
        cells = "".join(f"{losses[s].mean().item():>10.4f}" for s in steps)
        se = (losses[steps[-1]].std() / runs ** 0.5).item()
        print(f"{label:>8}{cells}{se:>9.4f}{time.time() - start:>7.0f}s", flush=True)
        return {f"f@{s}": losses[s].mean().item() for s in steps}

    for name in baselines:
        kind, lr = name.split(":")
        row(kind, BASELINES[kind](float(lr)))
    for factor in factors:
        rows[factor] = row(f"{factor:.4g}", scaled(rule, factor))
    if not rows:
        return
    best = min(rows, key=lambda f: rows[f][f"f@{steps[-1]}"])
    print(f"best factor at step {steps[-1]}: {best:g}")
    if out:
        record = {"factor": best, "problem": argv[1], "steps": steps[-1], "runs": runs,
                  "validation": "seed 0, the networks baselines are tuned on", "scores": rows}
        tuned = scaled(rule, best, record)
        checkpoint.save_optimizer(tuned, out, tuned.provenance)
        print(f"saved the rule at factor {best:g} to {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
