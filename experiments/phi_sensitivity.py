"""How the loss a learned optimizer reaches moves when its weights φ are changed slightly: the
mean f at chosen steps of one run on the first NETWORKS validation networks of seed 0 (those
`MetaTrainer.validate` uses), for each change.

    shift: every entry of the named parameters moved by the same offset δ;
    noise: every entry of the named parameters (or of all, with ``all``) moved by σ·N(0, 1),
           one draw per σ from a generator of seed 0 (what a PES particle sees);
    each:  each parameter alone moved by σ·N(0, 1) (seed 0), one row per parameter.

    python experiments/phi_sensitivity.py SPEC PROBLEM STEPS[,STEPS…] NETWORKS shift PARAMETER[,…] OFFSET [OFFSET …]
    python experiments/phi_sensitivity.py SPEC PROBLEM STEPS[,STEPS…] NETWORKS noise PARAMETER[,…]|all SIGMA [SIGMA …]
    python experiments/phi_sensitivity.py SPEC PROBLEM STEPS[,STEPS…] NETWORKS each SIGMA
    python experiments/phi_sensitivity.py pretrained:cifar2 cifar10:labels=0-1 200,1000 2 shift nets.conv.readout.bias -1e-4 0 1e-4

Each row also gives the mean log f over all steps (the log f meta-loss of the whole run).
"""
import sys

import torch

from l2l import checkpoint
from l2l.problems import make_problem
from l2l.rollout import run
from l2l.seeding import generator


def figures(optimizer, networks, steps: list[int]) -> str:
    losses, _ = run(networks, optimizer, max(steps))  # [steps + 1, NETWORKS]
    losses = losses.double()
    cells = [f"{losses[s].mean().item():>12.4f}" for s in steps]
    return "".join(cells) + f"{losses[1:].clamp_min(1e-30).log().mean().item():>14.3f}"


if __name__ == "__main__":
    if len(sys.argv) < 7 or sys.argv[5] not in ("shift", "noise", "each"):
        sys.exit(__doc__)
    spec, problem = sys.argv[1], make_problem(sys.argv[2])
    steps, count, mode = [int(s) for s in sys.argv[3].split(",")], int(sys.argv[4]), sys.argv[5]
    optimizer = checkpoint.load_optimizer(spec)
    params = dict(optimizer.named_parameters())
    if mode == "each":
        names, values = list(params), [float(sys.argv[6])]
    else:
        names = list(params) if sys.argv[6] == "all" else sys.argv[6].split(",")
        values = [float(x) for x in sys.argv[7:]]
    unknown = [n for n in names if n not in params]
    if unknown or not values:
        sys.exit(f"no parameter {', '.join(unknown)} in {spec}; it has: {', '.join(params)}"
                 if unknown else __doc__)
    networks = problem.for_split("val").sample(count, generator(0, "val"))
    start = {n: p.detach().clone() for n, p in params.items()}
    head = "".join(f"{'f@' + str(s):>12}" for s in steps) + f"{'mean log f':>14}"
    print(f"{'change':<34}{head}", flush=True)
    print(f"{'none':<34}{figures(optimizer, networks, steps)}", flush=True)
    rows = [(n, values[0]) for n in names] if mode == "each" else [(None, v) for v in values]
    for name, value in rows:
        draw = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for n in ([name] if name else names):
                change = (value if mode == "shift"
                          else value * torch.randn(start[n].shape, generator=draw))
                params[n].copy_(start[n] + change)
        label = f"{name} σ {value:g}" if name else f"{mode} {value:g}"
        print(f"{label:<34}{figures(optimizer, networks, steps)}", flush=True)
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(start[n])
