"""Writes notebooks/04_cifar.ipynb (unexecuted); `python notebooks/execute.py 04` runs it.

The curves are stored one file per optimizer in notebooks/results/fig7_PANEL_NAME.pt; each is what
`python -m l2l evaluate PROBLEM --optimizer SPEC --steps 1000 --runs 8 --seed 0 --save FILE`
writes, so the panels can be computed in separate processes (notebooks/results/README.md).
"""
import sys
from pathlib import Path

import nbformat as nbf

md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
cells = [md("""# 04 · CIFAR-10: a learned optimizer for a convnet with batch norm (Figure 7)

**Claim.** The paper's third experiment trains small convolutional networks with batch
normalisation on CIFAR-10 images. One coordinatewise LSTM for every parameter is not enough there;
the paper gives the convolution weights one LSTM and the rest another (Section 3.3). Meta-trained on
CIFAR-10, the learned optimizer is fastest early (step 200: loss 1.31 against NAG's 1.41) and NAG
catches up by step 1000 (0.80 against 0.83). On CIFAR-5 and CIFAR-2 (5 or 2 of the labels) the
LSTM ends lowest, and so does **LSTM-sub**, meta-trained only on the *other* labels: an optimizer
transfers to image classes it never saw.

Which labels form CIFAR-5 and CIFAR-2 the paper does not say. Here CIFAR-5 is labels 0–4
(airplane, automobile, bird, cat, deer) and CIFAR-2 labels 0–1 (airplane, automobile); their
LSTM-sub optimizers are meta-trained on the held-out labels 5–9 and 2–9."""),
code("""import os

QUICK = os.environ.get("L2L_QUICK", "") not in ("", "0")
PANELS = {  # panel: (test problem, learned optimizers drawn in it)
    "CIFAR-10": ("cifar10", ["pretrained:cifar10"]),
    "CIFAR-5": ("cifar10:labels=0-4", ["pretrained:cifar5", "pretrained:cifar5_sub"]),
    "CIFAR-2": ("cifar10:labels=0-1", ["pretrained:cifar2", "pretrained:cifar2_sub"]),
}
SEED = 0                              # seed of the test networks (initial weights, minibatches)
RUNS = 2 if QUICK else 8              # test networks per optimizer
STEPS = 10 if QUICK else 1000         # the length of the paper's curves
MARKS = (200, 1000)                   # steps of the table (the paper's readings)
RECOMPUTE = False                     # True: ignore the stored results in results/ and recompute
RESULTS = None if QUICK else "results"  # where computed curves are stored (None: nowhere)"""),
code("""import json
from pathlib import Path

import matplotlib.pyplot as plt

import l2l
from l2l import data
from l2l.evaluate import cached_curves
from l2l.plotting import label, plot_curves, plot_training_log


def stored(name):
    return None if RESULTS is None else Path(RESULTS) / f"{name}.pt"


def short(spec):
    \"\"\"pretrained:cifar5_sub → LSTM-sub; pretrained:cifar5 → LSTM.\"\"\"
    return "lstm-sub" if spec.endswith("_sub") else "lstm\""""),
md("""## The optimizee
Each sampled optimizee is one network with its own initial weights (every parameter N(0, 0.01²))
and its own stream of minibatches of 128 training images of the chosen labels: three 5×5
convolutions of 16 channels, each followed by batch normalisation (statistics of the current
minibatch), ReLU and 2×2 max pooling, then a fully-connected layer of 32 units with batch norm and
ReLU, and a linear layer to the classes. The loss is the cross-entropy on the minibatch.
The two parameter groups — the rule `l2l.problems.cifar.GROUP_RULES`, applied to the layout — are
what routes each coordinate to its LSTM."""),
code("""names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
images, labels = data.load_cifar10("test")
fig, axes = plt.subplots(2, 10, figsize=(12, 2.8))
for j, ax in enumerate(axes.T):
    rows = (labels == j).nonzero().squeeze(1)[:2]
    for a, r in zip(ax, rows):
        a.imshow(images[r].permute(1, 2, 0).numpy())
        a.axis("off")
    ax[0].set_title(f"{j} {names[j]}", fontsize=8)
fig.tight_layout()
plt.show()
for panel, (spec, _) in PANELS.items():
    problem = l2l.make_problem(spec)
    groups = problem.coordinate_groups()
    print(f"{panel:9s} {problem.spec():24s} n = {problem.num_params:6,d}   "
          + ", ".join(f"{g}: {len(i):,d} coordinates" for g, i in groups.items()))"""),
md("""## The shipped optimizers and how they were trained
Each is the paper's two coordinatewise LSTMs (2 layers of 20 units, log/sign-encoded gradients
with p = 10, output × 0.1), one for the convolution weights and one for the rest. The horizon,
unroll and meta-loss are ours (the paper states none of them for CIFAR): every checkpoint carries
the command that made it, and `l2l/pretrained/README.md` gives the reasons."""),
code("""learned = {}
for panel, (_, specs) in PANELS.items():
    for spec in specs:
        optimizer = l2l.load_optimizer(spec)
        record = optimizer.provenance
        learned[spec] = optimizer
        print(f"{spec}: trained on {record['problem']}, best at epoch {record['best_epoch']}")
        print("   ", record["command"])
logs = [(spec, Path(l2l.checkpoint.PRETRAINED_DIR) / f"{spec.split(':')[1]}.log.json") for spec in learned]
logs = [(spec, path) for spec, path in logs if path.exists()]
if logs:
    fig, axes = plt.subplots(1, len(logs), figsize=(3.6 * len(logs), 3.2), squeeze=False)
    for ax, (spec, path) in zip(axes[0], logs):
        plot_training_log(json.loads(path.read_text())["log"], ax=ax, title=spec.split(":")[1])
    fig.tight_layout()
    plt.show()"""),
md("""## Figure 7: loss per step
Every optimizer trains the same `RUNS` test networks of each panel (same initial weights, same
minibatches). Each baseline's learning rate was tuned for these 1000 steps on validation networks
of the full training set and is stored in `l2l/pretrained/tuned_rates.json` with the command that
tuned it: for CIFAR-10 a log grid 1e-4…10 refined around the best (3 networks per rate); for
CIFAR-5 and CIFAR-2 three to five rates around the CIFAR-10 optimum, widened while the best was at
an edge (2 networks per rate, `experiments/results/cifar52_s10_tuning.txt`; CIFAR-5 SGD still
ends at the lowest rate tried, 0.215, where the losses are flat: 0.4514 against 0.4516 at 0.464). The other
hyperparameters are Torch7's defaults, as in the paper."""),
code("""def compare(panel):
    \"\"\"The panel's curves, each optimizer's stored in results/ on its own.\"\"\"
    spec, specs = PANELS[panel]
    baselines = ["sgd", "rmsprop", "adam", "nag"]
    if QUICK:  # a quick look: fixed rates near the tuned ones, no tuning
        baselines = ["sgd:0.5", "rmsprop:0.02", "adam:0.01", "nag:0.05"]
    key = panel.lower().replace("-", "")
    curves = []
    for s in specs + baselines:
        go = lambda: l2l.evaluate(spec, [learned.get(s, s)], steps=STEPS, runs=RUNS, seed=SEED,
                                  progress=False)
        (curve,) = cached_curves(stored(f"fig7_{key}_{s.split(':')[-1]}"), go, RECOMPUTE)
        if s in learned:
            curve.name = short(s)
        curves.append(curve)
    return curves

figure = {panel: compare(panel) for panel in PANELS}
fig, axes = plt.subplots(1, 3, figsize=(15, 4))
for ax, (panel, curves) in zip(axes, figure.items()):
    plot_curves(curves, ax, title=panel)
plt.show()"""),
code("""PAPER = {  # Figure 7's readings (PAPER.md)
    "CIFAR-10": {200: {"lstm": 1.31, "nag": 1.41}, 1000: {"lstm": 0.83, "nag": 0.80}},
    "CIFAR-5": {200: {"lstm": 0.61, "nag": 0.87},
                1000: {"lstm": 0.37, "lstm-sub": 0.40, "nag": 0.38, "adam": 0.38, "rmsprop": 0.42, "sgd": 0.50}},
    "CIFAR-2": {1000: {"lstm": 0.05, "lstm-sub": 0.04, "nag": 0.065, "adam": 0.07, "rmsprop": 0.09, "sgd": 0.11}},
}
marks = [m for m in MARKS if m <= STEPS] or [STEPS]
for panel, curves in figure.items():
    print(f"{panel}:")
    print(f"  {'optimizer':<10}{'tuned lr':>10}" + "".join(f"{'step ' + str(m):>12}{'paper':>7}" for m in marks)
          + f"{'test acc':>10}")
    for c in curves:
        lr = f"{c.lr:.3g}" if c.lr is not None else "-"
        paper = [PAPER[panel].get(m, {}).get(c.name) for m in marks]
        cells = "".join(f"{c.mean[m].item():>12.4g}" + (f"{x:>7.3g}" if x is not None else f"{'–':>7}")
                        for m, x in zip(marks, paper))
        print(f"  {label(c.name):<10}{lr:>10}{cells}{c.metrics['test_acc'].mean().item():>10.1%}")
    for m in marks:
        best = min(curves, key=lambda c: c.mean[m].item())
        print(f"  lowest at step {m}: {label(best.name)}")"""),
md("""## How this compares with the paper
**CIFAR-10: level with NAG, not ahead of it.** On these 8 networks NAG is lowest at step 200
(1.213 against the LSTM's 1.243; the paper: LSTM 1.31, NAG 1.41) and the LSTM is 1.1% behind it
at step 1000 (0.847 against 0.838; the paper: 0.83 against 0.80), with the same test accuracy
(66.0%). On the 10 networks of seed 21 it was the other way round by as little (step 200: 1.292
against 1.295; `l2l/pretrained/README.md`): the two are within the noise of one another. Both are
well ahead of Adam, RMSprop and SGD at step 1000.

**CIFAR-5 and CIFAR-2: the paper's result is not reproduced.** With the baselines tuned for 1000
steps on the full training set, NAG ends lowest on both (CIFAR-5: 0.475, LSTM 0.498, LSTM-sub
0.575; CIFAR-2: 0.0166, LSTM 0.0263, LSTM-sub 0.0314). The learned optimizers are level with NAG or
ahead of it up to about step 100 (CIFAR-5: 0.854 against 0.909; CIFAR-2 LSTM-sub 0.148 against
0.161), which is inside the 200-step horizon they were meta-trained on, and slower after it. LSTM-sub
transfers: trained on other labels it is within 15–20% of the LSTM trained on the test labels and
ahead of SGD on CIFAR-2, but it is not the paper's "as good or better". The test accuracies are
within about a point of each other for every optimizer. Our losses are lower than the paper's
(CIFAR-2 NAG 0.017 against 0.065): the loss plotted is that of one minibatch, and with the full
5,000 images per label small networks fit the two classes almost perfectly in 1000 steps.
What might close the gap (longer meta-training horizons, several networks per meta-update) is
listed in `experiments/README.md`."""),
]
cells[1].metadata["tags"] = ["parameters"]
nb = nbf.v4.new_notebook()
nb.cells = cells
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbf.write(nb, sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).parents[1] / "04_cifar.ipynb"))
