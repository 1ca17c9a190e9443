"""Reproduce the paper's figures: evaluate, draw, and compare with the paper's numbers.

Each :class:`FigureSpec` names a problem, the shipped optimizer to test, the steps and runs, and
the final losses read off the paper's plot (±10%). :func:`reproduce` evaluates the
learned optimizer against the four tuned baselines on fresh test optimizees, writes ``NAME.png``
and ``NAME.json`` (every curve, the tuned rates, and the command that made them), and returns a
table beside the paper's numbers. ``retrain=True`` meta-trains a new optimizer first instead of
using the shipped one.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt

from . import checkpoint
from .errors import ConfigError
from .evaluate import Curve, evaluate
from .plotting import plot_curves
from .problems import make_problem
from .recipes import recipe_for, stage_folders, stage_start, train_stage

BASELINE_SPECS = ("sgd", "rmsprop", "adam", "nag")


@dataclass
class FigureSpec:
    """One panel of a paper figure."""

    name: str
    title: str
    problem: str
    pretrained: str
    steps: int = 100
    runs: int = 200
    table_steps: tuple = (100,)
    #: final-step losses read off the paper's figure, by optimizer
    paper: dict = field(default_factory=dict)
    #: steps of the paper's figure (used to label the comparison)
    paper_step: int = 100
    #: first step drawn (Figure 4 right shows steps 100–200 of 200-step runs)
    plot_from: int = 0
    #: validation optimizees per learning rate when tuning a baseline (None: the problem's)
    tune_runs: int | None = None


FIGURES = {
    "fig4-left": FigureSpec(
        name="fig4-left", title="Quadratics (Figure 4 left)", problem="quadratic",
        pretrained="quadratic", steps=100, runs=200, table_steps=(20, 100),
        paper={"lstm": 0.04, "adam": 0.05, "rmsprop": 0.06, "nag": 0.08, "sgd": 0.21}),
    "fig4-centre": FigureSpec(
        name="fig4-centre", title="MNIST, 100 steps (Figure 4 centre)", problem="mnist",
        pretrained="mnist", steps=100, runs=100, table_steps=(20, 100),
        paper={"lstm": 0.26, "nag": 0.32, "adam": 0.36, "rmsprop": 0.36, "sgd": 0.47}),
    "fig4-right": FigureSpec(
        name="fig4-right", title="MNIST, steps 100–200 (Figure 4 right)", problem="mnist",
        pretrained="mnist", steps=200, runs=100, table_steps=(100, 200), paper_step=200,
        plot_from=100,
        paper={"lstm": 0.21, "nag": 0.26, "rmsprop": 0.29, "adam": 0.31, "sgd": 0.33}),
    "fig5-wide": FigureSpec(
        name="fig5-wide", title="MNIST, 40 hidden units (Figure 5 left)", problem="mnist:hidden=40",
        pretrained="mnist", steps=100, runs=100, table_steps=(20, 100),
        paper={"lstm": 0.19, "nag": 0.30, "adam": 0.32, "rmsprop": 0.32, "sgd": 0.45}),
    "fig5-deep": FigureSpec(
        name="fig5-deep", title="MNIST, 2 hidden layers (Figure 5 centre)", problem="mnist:layers=2",
        pretrained="mnist", steps=100, runs=100, table_steps=(20, 100),
        paper={"lstm": 0.33, "adam": 0.71, "rmsprop": 0.76, "nag": 0.77, "sgd": 1.8}),
    "fig5-relu": FigureSpec(
        name="fig5-relu", title="MNIST, ReLU (Figure 5 right)", problem="mnist:activation=relu",
        pretrained="mnist", steps=100, runs=100, table_steps=(20, 100),
        paper={"lstm": 2.55}),
}
ALIASES = {"4left": "fig4-left", "fig4left": "fig4-left", "quadratic": "fig4-left",
           "4centre": "fig4-centre", "fig4-center": "fig4-centre", "mnist": "fig4-centre",
           "4right": "fig4-right"}


def quick_mode() -> bool:
    """Whether ``L2L_QUICK`` asks for the shortened runs used in CI."""
    return os.environ.get("L2L_QUICK", "").lower() not in ("", "0", "false", "no")


def figure_spec(name: str) -> FigureSpec:
    key = ALIASES.get(name, name)
    if key not in FIGURES:
        raise ConfigError(f"unknown figure {name!r}; known: {', '.join(FIGURES)}")
    return FIGURES[key]


def train_for_figure(spec: FigureSpec, out: Path, quick: bool, progress: bool = True):
    """Meta-train a fresh optimizer for a figure by its problem's shipped recipe, every stage in
    turn (``quick``: a few epochs of each)."""
    problem = make_problem(spec.problem)
    recipe = recipe_for(problem)
    quick_settings = {"epochs": 10, "validate_every": 5, "validation_size": 16}
    folders = stage_folders(recipe.stages, out)
    for stage in recipe.stages:
        overrides = dict(quick_settings)
        if quick and stage.settings.get("imitate_epochs"):
            overrides["imitate_epochs"] = 2
        result = train_stage(problem, stage, folders[stage.name],
                             overrides=overrides if quick else None,
                             init=stage_start(stage, folders), progress=progress)
    return result.optimizer


def comparison_table(curves: list[Curve], spec: FigureSpec) -> str:
    """Mean ± std at the figure's steps, beside the paper's final reading."""
    steps = [s for s in spec.table_steps if s <= curves[0].losses.shape[0] - 1]
    head = f"{'optimizer':<18}{'lr':>9}" + "".join(f"{'step ' + str(s):>20}" for s in steps)
    head += f"{'paper @' + str(spec.paper_step):>12}"
    lines = [head, "-" * len(head)]
    for c in curves:
        key = c.name.split(" ")[0].lower()
        paper = spec.paper.get(key)
        lr = f"{c.lr:.3g}" if c.lr is not None else "-"
        cells = "".join(f"{c.mean[s]:>11.4g} ± {c.std[s]:<6.2g}" for s in steps)
        lines.append(f"{c.name:<18}{lr:>9}{cells}{(f'{paper:.3g}' if paper else '-'):>12}")
    return "\n".join(lines)


def reproduce(name: str, retrain: bool = False, quick: bool | None = None, out="figures",
              seed: int = 0, runs: int | None = None, progress: bool = True):
    """Reproduce one figure; returns (curves, table text, png path)."""
    spec = figure_spec(name)
    quick = quick_mode() if quick is None else quick
    out = Path(out)
    runs = runs or (20 if quick else spec.runs)
    if retrain:
        learned = train_for_figure(spec, out / "runs" / spec.name, quick, progress)
        learned_name = "lstm (retrained)"
    else:
        learned = checkpoint.load_optimizer(f"pretrained:{spec.pretrained}")
        learned_name = f"lstm ({spec.pretrained})"
    learned.name = learned_name
    curves = evaluate(spec.problem, [learned, *BASELINE_SPECS], steps=spec.steps, runs=runs,
                      seed=seed, tune_runs=16 if quick else spec.tune_runs,
                      progress=progress)
    curves[0].name = learned_name

    fig, ax = plt.subplots(figsize=(5, 4))
    plot_curves([c.since(spec.plot_from) for c in curves], ax, title=spec.title,
                start=spec.plot_from)
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    png = out / f"{spec.name}.png"
    fig.savefig(png, dpi=120)
    plt.close(fig)

    table = comparison_table(curves, spec)
    record = {
        "figure": asdict(spec), "problem": spec.problem, "steps": spec.steps, "runs": runs,
        "seed": seed, "quick": quick, "retrained": retrain,
        "provenance": checkpoint.provenance(),
        "optimizer_provenance": getattr(learned, "provenance", {}),
        "results": [c.summary() for c in curves],
        "table": table,
    }
    checkpoint.atomic_write_text(json.dumps(record, indent=1), out / f"{spec.name}.json")
    return curves, table, png
