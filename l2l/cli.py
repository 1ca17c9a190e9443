"""Command line: ``python -m l2l {train, evaluate, tune, calibrate, reproduce, bench, list}``.

Every value is checked before any work starts. Bad input, missing or damaged files and a
training that goes non-finite print one line (``l2l: error: …``) and exit with status 2; an
interrupted training (Ctrl-C, SIGTERM) says where its state is and exits with 130. Only the
library's own errors (:mod:`l2l.errors`) and failed allocations (a request too big for the
machine) are caught: anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
from pathlib import Path

from . import checkpoint
from .errors import ConfigError, L2LError, NonFiniteError, OutputError, TrainingInterrupted
from .meta import MetaConfig


def _settings(args) -> dict:
    """The recipe settings given on the command line (each overrides every stage)."""
    from .recipes import setting_names

    settings = {name: getattr(args, name) for name in setting_names() if hasattr(args, name)}
    if str(settings.get("imitate", "")).lower() == "none":  # clears a recipe's teacher, and
        settings["imitate"] = None                           # what it would be used for
        settings.setdefault("imitate_weight", 0.0)
        settings.setdefault("imitate_epochs", 0)
    return settings


def _train(args) -> int:
    from .memory import retain_freed_memory
    from .problems import make_problem
    from .recipes import (
        check_stage,
        load_recipe,
        recipe_for,
        stage_folders,
        stage_start,
        train_stage,
    )

    recipe = load_recipe(args.recipe) if args.recipe else None
    if args.problem is None and recipe is None:
        raise ConfigError("name a PROBLEM (e.g. quadratic, mnist) or a --recipe to train")
    problem = make_problem(args.problem or recipe.problem)
    recipe = recipe or recipe_for(problem)
    device = _device(args.device)
    overrides = _settings(args)
    if overrides.get("imitate") is not None:
        _check_specs([overrides["imitate"]], "--imitate", baselines_only=True)
    stages = recipe.stages if args.init is None else recipe.stages[-1:]
    out = _writable(args.out or f"runs/{args.recipe or problem.name}", "--out", folder=True)
    folders = stage_folders(stages, out)
    for stage in stages:  # every setting and folder checked before any work
        check_stage(problem, stage, overrides)
    if args.init:
        _check_specs([args.init], "--init")
    group, device = _group(args, device)
    for stage in stages:  # before any stage's warm start
        stage.config(MetaConfig, overrides).check_split(group.world_size)
    # the folders are rank 0's to check (and clear, with --force); the others follow its answer
    resumes = _on_rank0(group, lambda: {name: _check_folder(folder, args)
                                        for name, folder in folders.items()})
    retain_freed_memory()  # the same large tensors every truncation: no page faults
    command = "python -m l2l " + shlex.join(args.argv)
    say = print if group.writes else (lambda *_: None)
    if len(stages) > 1:
        say(f"recipe {recipe.name}: {len(stages)} stages, "
            + ", then ".join(f"{s.name} in {folders[s.name]}" for s in stages))
    for stage in stages:
        folder = folders[stage.name]
        result = train_stage(problem, stage, folder, overrides=overrides,
                             init=stage_start(stage, folders, args.init),
                             resume=resumes[stage.name], command=command,
                             progress=not args.quiet, device=device, time_limit=args.time_limit,
                             group=group)
        epochs = stage.config(MetaConfig, overrides).epochs
        label = f"stage {stage.name}: " if len(stages) > 1 else ""
        say(f"{label}best validation {result.best_validation:.5g} at epoch {result.best_epoch}; "
            f"optimizer written to {folder / 'best.pt'}")
        if result.epochs_done < epochs:
            say(f"{label}stopped by the time limit after epoch {result.epochs_done} of "
                f"{epochs}; rerun the same command with --resume to continue")
            return 0
    return 0


def _group(args, device):
    """The processes of a ``torchrun`` launch (:mod:`l2l.distributed`; a single one otherwise),
    and this process's device (under torchrun, ``cuda`` means its local GPU)."""
    from .distributed import setup

    group = setup(device, getattr(args, "backend", None))
    if group.distributed and device is not None and device.type == "cuda" and device.index is None:
        import torch

        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return group, device


def _on_rank0(group, check):
    """``check()`` on rank 0 only, its answer (or its error) on every rank."""
    if not group.distributed:
        return check()
    answer = None
    if group.writes:
        try:
            answer = ("ok", check())
        except L2LError as error:
            answer = ("error", error)
    kind, value = group.broadcast(answer)
    if kind == "error":
        raise value
    return value


def _check_folder(folder: Path, args) -> bool:
    """Whether to resume the run in ``folder``; refuses to overwrite a run unless ``--force``
    (which then clears it)."""
    from .meta import RUN_FILES

    state = folder / "last.pt"
    if not args.resume and state.exists() and not args.force:
        raise ConfigError(f"{folder} already holds a training run; pass --resume to continue "
                          "it, --force to start over, or --out for another folder")
    resume = args.resume and state.exists()
    if args.force and not resume:  # start over: nothing of the old run may pass for the new one's
        for name in RUN_FILES:
            (folder / name).unlink(missing_ok=True)
    if args.resume and not resume:
        # a run interrupted before its first epoch ended saved nothing: resuming it is starting it
        if any((folder / name).exists() for name in ("best.pt", "log.csv", "log.json")):
            raise ConfigError(f"cannot resume: {folder} holds files of a run but no last.pt; "
                              "pass --force instead of --resume to start over")
        print(f"l2l: nothing saved in {folder} yet: starting the run from its beginning",
              file=sys.stderr)
    return resume


def _evaluate(args) -> int:
    from .evaluate import evaluate, table
    from .plotting import mark_horizon, plot_curves

    device = _device(args.device)
    for option in ("save", "json", "plot"):  # a bad path fails now, not after the rollouts
        if getattr(args, option):
            path = _writable(getattr(args, option), f"--{option}",
                             suffixes=PLOT_TYPES if option == "plot" else None)
            checkpoint.remove_stale_temporaries(path.parent, [path.name])  # of a killed write
    _check_specs(args.optimizer)
    horizon = None
    if args.beyond:
        horizon = _training_horizon(args.optimizer)
        args.steps = args.beyond * horizon
    for step in args.at or ():
        if not 0 <= step <= args.steps:
            raise ConfigError(f"--at {step}: the table has steps 0…{args.steps}")
    group, device = _group(args, device)
    curves = evaluate(args.problem, args.optimizer, steps=args.steps, runs=args.runs,
                      seed=args.seed, tune_runs=args.tune_runs, batch_size=args.batch_size,
                      progress=not args.quiet, device=device, retune=args.retune, group=group)
    if not group.writes:  # rank 0 reports and writes every process's results
        return 0
    marks = sorted({s for s in (1, 20, 100, horizon or 1, args.steps, *(args.at or ()))
                    if s <= args.steps})
    print(table(curves, marks))
    for c in curves:
        if c.metrics:
            print(f"{c.name}: " + ", ".join(f"{k} {v.double().mean():.4g}" for k, v in c.metrics.items()))
    if args.save:
        from .evaluate import save_curves

        save_curves(curves, args.save)
    if args.json:
        from .problems import make_problem

        record = {"problem": make_problem(args.problem).spec(), "steps": args.steps,
                  "runs": args.runs, "seed": args.seed, "training_horizon": horizon,
                  "results": [c.summary() for c in curves],
                  "provenance": checkpoint.provenance(**group.provenance())}
        checkpoint.atomic_write_text(json.dumps(record, indent=1), args.json)
    if args.plot:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 4))
        plot_curves(curves, ax, title=args.problem)
        if horizon:
            mark_horizon(ax, horizon)
        fig.tight_layout()
        plot = Path(args.plot).expanduser()
        try:
            plot.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(plot, dpi=120)
        except OSError as error:
            raise OutputError(f"cannot write {plot}: {error.strerror or error}") from None
    return 0


def _training_horizon(specs) -> int:
    """The horizon the learned optimizers among ``specs`` were meta-trained for (from their
    provenance), for ``evaluate --beyond K``; an error if there is none or they differ."""
    from .optimizers import BASELINES

    horizons = {}
    for spec in specs:
        if spec.partition(":")[0] not in BASELINES:
            training = checkpoint.load_optimizer(spec).provenance.get("training") or {}
            if "horizon" in training:
                horizons[spec] = int(training["horizon"])
    if not horizons:
        raise ConfigError("--beyond K runs K times a learned optimizer's training horizon; give "
                          "one whose provenance records it (pretrained:NAME or lstm:PATH)")
    if len(set(horizons.values())) > 1:
        raise ConfigError("--beyond K needs one training horizon, and these differ: "
                          + ", ".join(f"{k} {v}" for k, v in horizons.items()) + "; use --steps")
    return next(iter(horizons.values()))


def _tune(args) -> int:
    from dataclasses import replace

    from . import tuned
    from .evaluate import tune_learning_rate, tuning_for
    from .optimizers import BASELINES
    from .problems import make_problem

    problem = make_problem(args.problem)
    device = _device(args.device)
    if args.store or args.store_path:
        store = _writable(args.store_path or tuned.STORE, "--store-path")
        checkpoint.remove_stale_temporaries(store.parent, [store.name])
        tuned.load(args.store_path)  # a damaged store fails now, not after the tuning
    tuning = tuning_for(problem)
    if args.tune_batch:
        tuning = replace(tuning, batch=args.tune_batch)
    names = args.optimizer or list(BASELINES)
    for name in names:
        if name not in BASELINES:
            raise ConfigError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")
    runs = args.runs or tuning.runs
    command = "python -m l2l " + shlex.join(args.argv)
    group, device = _group(args, device)
    say = print if group.writes else (lambda *_, **__: None)
    for name in names:
        lr, scores = tune_learning_rate(problem, name, args.steps, runs=runs, grid=args.grid,
                                        refine=args.refine, seed=args.seed,
                                        progress=not args.quiet, device=device,
                                        tuning=tuning, group=group)
        if not math.isfinite(scores[lr]):
            raise NonFiniteError(f"{name}: every rate diverged (or overflowed) within "
                                 f"{args.steps} steps: {', '.join(f'{r:.3g}' for r in scores)}; "
                                 "try a --grid of smaller rates")
        cells = "  ".join(f"{r:.3g}: {v:.4g}" for r, v in scores.items())
        say(f"{name:8} best lr {lr:.4g}   (mean loss at step {args.steps} on {runs} validation "
            f"optimizees: {cells})", flush=True)
        if args.store and group.writes:
            tuned.store(problem.spec(), name, args.steps, lr, scores, runs, args.seed, command,
                        path=args.store_path, **group.provenance())
    if args.store:
        say(f"stored in {args.store_path or tuned.STORE}")
    return 0


def _calibrate(args) -> int:
    from . import calibrate
    from .checkpoint import load_optimizer, save_optimizer

    rule = load_optimizer(args.optimizer)
    out = _writable(args.out, "--out", suffixes=(".pt",)) if args.out else None
    models = args.model or list(calibrate.MODELS)
    result = calibrate.calibrate(rule, models, steps=args.steps, seeds=args.seeds,
                                 grid=args.grid or calibrate.GRID, progress=not args.quiet)
    print(f"mean training loss of the last 50 of {args.steps} steps, over seeds "
          f"{', '.join(map(str, args.seeds))}; score: mean log loss over models and seeds")
    print(result.table())
    if not math.isfinite(result.scores[result.factor]):
        raise NonFiniteError("every factor diverged on some calibration model; try a --grid of "
                             "smaller factors")
    print(f"chosen factor {result.factor:.4g}")
    if out is not None:
        record = {**result.record(), "command": "python -m l2l " + shlex.join(args.argv)}
        calibrated = calibrate.scaled(rule, result.factor, record)
        save_optimizer(calibrated, out, calibrated.provenance)
        print(f"saved the calibrated rule (output_scale × {result.factor:.4g}) to {out}")
    return 0


def _rates(text: str) -> tuple[float, ...]:
    """A ``--grid`` value: positive rates separated by commas, in increasing order."""
    try:
        rates = tuple(sorted(float(r) for r in text.split(",")))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a list of rates; write them comma-separated, e.g. 0.01,0.0215,0.0464"
        ) from None
    if not rates or not all(math.isfinite(r) and r > 0 for r in rates):
        raise argparse.ArgumentTypeError(f"rates must be positive finite numbers, got {text!r}")
    return rates


def _count(minimum: int = 1, maximum: int | None = None):
    """An argparse type: an integer ≥ ``minimum`` (and < ``maximum``)."""

    def parse(text: str) -> int:
        allowed = ("a positive integer" if minimum == 1 else f"an integer ≥ {minimum}"
                   if maximum is None else f"an integer in [{minimum}, 2^63)")
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}") from None
        if value < minimum or (maximum is not None and value >= maximum):
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}")
        return value

    return parse


def _number(minimum: float = 0.0, inclusive: bool = False, maximum: float = math.inf):
    """An argparse type: a finite float > ``minimum`` (≥ with ``inclusive``), ≤ ``maximum``."""

    def parse(text: str) -> float:
        allowed = ("a positive finite number" if minimum == 0 and not inclusive
                   else f"a finite number {'≥' if inclusive else '>'} {minimum:g}")
        if maximum < math.inf:
            allowed = f"a number in ({minimum:g}, {maximum:g}]"
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}") from None
        if (not math.isfinite(value) or value < minimum or (value == minimum and not inclusive)
                or value > maximum):
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}")
        return value

    return parse


#: seeds are hashed into 63-bit generator seeds (:mod:`l2l.seeding`) and given to torch
_seed = _count(0, 2**63)
_positive = _count(1)


def _finite(text: str) -> float:
    """An argparse type: a finite number (its range is the setting's to check)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _integer(text: str) -> int:
    """An argparse type: an integer (its range is the setting's to check)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


#: a setting's annotation → how the command line reads it
SETTING_TYPES = {"int": _integer, "float": _finite, "str": str}
SETTING_METAVARS = {"int": "N", "float": "X", "str": "SPEC"}


def _device(name):
    """The torch device of a ``--device`` option, with a clear error when it is unknown or absent
    (called before any work starts)."""
    if name in (None, "cpu"):
        return None
    import torch

    known = "cpu, cuda, cuda:N or mps"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device {name!r} is not a device; use {known}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name}: this torch build sees no CUDA GPU "
                              f"(torch {torch.__version__}); leave --device out to run on the CPU")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {name}: there are {torch.cuda.device_count()} CUDA "
                              f"GPU(s), numbered from 0")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"--device {name}: Apple's MPS is not available on this machine; "
                              "leave --device out to run on the CPU")
    elif device.type != "cpu":
        raise ConfigError(f"--device {name!r} is not supported; use {known}")
    return device


#: file types ``--plot`` can write (matplotlib's usual backends)
PLOT_TYPES = (".png", ".pdf", ".svg", ".jpg", ".jpeg", ".eps", ".ps", ".tif", ".tiff", ".webp")


def _writable(path, option: str, folder: bool = False, suffixes=None) -> Path:
    """Check, before any work, that ``path`` can be written: a file (or with ``folder``, a
    folder) that is not the other kind, whose nearest existing parent is a writable folder, with
    one of ``suffixes`` if given."""
    path = Path(path).expanduser()
    if folder and path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path}: is a file, not a folder; give a folder to write to")
    if not folder and path.is_dir():
        raise ConfigError(f"{option} {path}: is a folder; give a file name")
    if suffixes and path.suffix.lower() not in suffixes:
        raise ConfigError(f"{option} {path}: unknown file type {path.suffix or '(none)'!r}; "
                          f"use one of {', '.join(suffixes)}")
    parent = path if folder else path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{option} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {path}: cannot write in {parent} (permission denied)")
    return path


def _check_specs(specs, option: str = "--optimizer", baselines_only: bool = False) -> None:
    """Optimizer SPECs, checked before any work: names, rates, checkpoints."""
    from .evaluate import check_spec
    from .optimizers import BASELINES

    for spec in specs:
        head = spec.partition(":")[0]
        if baselines_only and head not in BASELINES:
            raise ConfigError(f"{option} {spec!r}: the teacher must be a hand-designed optimizer "
                              f"({', '.join(BASELINES)}, with or without :RATE)")
        check_spec(spec)  # names and rates
        if head not in BASELINES:
            checkpoint.load_optimizer(spec)  # a damaged or foreign file is reported now


def _reproduce(args) -> int:
    from .figures import figure_spec, reproduce

    spec = figure_spec(args.figure)
    out = _writable(args.out, "--out", folder=True)
    checkpoint.remove_stale_temporaries(out, [f"{spec.name}.json"])
    _, table, png = reproduce(args.figure, retrain=args.retrain, quick=args.quick or None,
                              out=args.out, seed=args.seed, runs=args.runs,
                              progress=not args.quiet)
    print(table)
    print(f"figure written to {png} (data: {png.with_suffix('.json')})")
    return 0


def _list(args) -> int:  # noqa: ARG001 (every command takes its args)
    from .figures import FIGURES
    from .optimizers import BASELINES
    from .problems import PROBLEMS

    print("problems:   " + ", ".join(PROBLEMS))
    print("optimizers: " + ", ".join([f"pretrained:{n}" for n in checkpoint.list_pretrained()]
                                     + list(BASELINES) + ["lstm:PATH"]))
    print("figures:    " + ", ".join(FIGURES))
    return 0


def _recipe_names() -> list[str]:
    from .recipes import list_recipes

    return list_recipes()


def _add_settings(parser) -> None:
    """One option per field of the recipe settings' dataclasses, grouped by concern, with the
    field's help; given options override the recipe, the others stay unset."""
    import dataclasses

    from .recipes import sections

    for title, cls in sections().items():
        group = parser.add_argument_group(f"{title} ({cls.__name__}; default: the recipe's)")
        for field in dataclasses.fields(cls):
            if not field.metadata.get("cli", True):
                continue
            flag = f"-{field.name}" if len(field.name) == 1 else "--" + field.name.replace("_", "-")
            kind = str(field.type).split("|")[0].strip()
            options = {"dest": field.name, "default": argparse.SUPPRESS,
                       "help": f"{field.metadata.get('help', '')} [{field.default} where a "
                               "recipe leaves it out]"}
            if kind == "bool":
                group.add_argument(flag, action=argparse.BooleanOptionalAction, **options)
            else:
                choices = field.metadata.get("choices")
                group.add_argument(flag, type=SETTING_TYPES[kind], choices=choices,
                                   metavar=None if choices else SETTING_METAVARS[kind], **options)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``l2l: error: …`` and where to read the usage."""

    def error(self, message):
        self.exit(2, f"l2l: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m l2l", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser(
        "train", help="meta-train a learned optimizer on a problem family",
        description="Meta-train by a recipe (l2l/recipes/NAME.toml): the problem's shipped one "
                    "unless --recipe names another. A setting given here overrides it in every "
                    "stage; with --init only the recipe's last stage runs.")
    train.add_argument("problem", nargs="?",
                       help="e.g. quadratic, mnist:hidden=40 (default: the recipe's)")
    train.add_argument("--recipe", metavar="NAME",
                       help="a shipped recipe (" + ", ".join(_recipe_names()) + ") or a .toml file")
    train.add_argument("--init", metavar="SPEC",
                       help="start from this trained optimizer (pretrained:NAME or lstm:PATH) "
                            "instead of a fresh one, and run only the recipe's last stage")
    train.add_argument("--out", help="run folder (default runs/RECIPE or runs/PROBLEM); earlier "
                                     "stages of a recipe go in subfolders named after them")
    train.add_argument("--resume", action="store_true",
                       help="continue from OUT/last.pt (a run stopped before saving anything "
                            "starts from its beginning)")
    train.add_argument("--force", action="store_true", help="overwrite an existing run folder")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--device", help="where to train: cpu (default), cuda, cuda:1 … (under "
                                        "torchrun, cuda is each process's local GPU)")
    train.add_argument("--backend", choices=("gloo", "nccl", "mpi"),
                       help="torch.distributed backend under torchrun (default: gloo on CPU, "
                            "nccl on CUDA)")
    train.add_argument("--time-limit", type=_number(0, inclusive=True), metavar="SECONDS",
                       help="stop each stage (validated and saved, resumable) after this much "
                            "wall time")
    _add_settings(train)
    train.set_defaults(run=_train)

    ev = sub.add_parser("evaluate", help="compare optimizers on fresh test optimizees")
    ev.add_argument("problem")
    ev.add_argument("--optimizer", action="append", required=True, metavar="SPEC",
                    help="pretrained:NAME, lstm:PATH, sgd|rmsprop|adam|nag (tuned) or adam:0.01")
    ev.add_argument("--steps", type=_positive, default=100)
    ev.add_argument("--beyond", type=_positive, metavar="K",
                    help="run K times the learned optimizer's training horizon instead of --steps "
                         "(baselines tuned for the whole length; the plot marks the horizon)")
    ev.add_argument("--runs", type=_positive, default=100)
    ev.add_argument("--seed", type=_seed, default=0)
    ev.add_argument("--tune-runs", type=_positive,
                    help="validation optimizees per learning rate when tuning (default: the problem's)")
    ev.add_argument("--batch-size", type=_positive, help="optimizees run together (default: all)")
    ev.add_argument("--at", type=_count(0), action="append", metavar="STEP",
                    help="also print the mean loss at this step (repeatable; e.g. --at 32 --at 64)")
    ev.add_argument("--json", help="write per-step means and stds here")
    ev.add_argument("--plot", help="write a plot of the curves here (.png, .pdf, .svg …)")
    ev.add_argument("--save", help="write the raw curves (every run's losses) here, for "
                                   "l2l.evaluate.load_curves (e.g. a notebook's results/)")
    ev.add_argument("--quiet", action="store_true")
    ev.add_argument("--device", help="where to run: cpu (default), cuda … (under torchrun, "
                                     "cuda is each process's local GPU)")
    ev.add_argument("--backend", choices=("gloo", "nccl", "mpi"),
                    help="torch.distributed backend under torchrun (default: gloo on CPU, "
                         "nccl on CUDA)")
    ev.add_argument("--retune", action="store_true",
                    help="tune baseline rates even where l2l/pretrained/tuned_rates.json has them")
    ev.set_defaults(run=_evaluate)

    tu = sub.add_parser("tune", help="tune the baselines' learning rates on validation optimizees")
    tu.add_argument("problem")
    tu.add_argument("--steps", type=_positive, required=True, help="horizon the rate is tuned for")
    tu.add_argument("--optimizer", action="append", metavar="NAME",
                    help="sgd, rmsprop, adam or nag (default: all four)")
    tu.add_argument("--runs", type=_positive, help="validation optimizees (default: the problem's)")
    tu.add_argument("--seed", type=_seed, default=0)
    tu.add_argument("--grid", type=_rates, metavar="R1,R2,…",
                    help="rates to try, comma-separated (default: the problem's grid, 1e-4 … 10)")
    tu.add_argument("--refine", type=_count(0), metavar="K",
                    help="then 2K+1 rates between the best one's neighbours (default: the "
                         "problem's; 0: none)")
    tu.add_argument("--tune-batch", type=_positive,
                    help="functions per rollout, rates × optimizees (default: the problem's)")
    tu.add_argument("--device", help="where to run: cpu (default), cuda … (under torchrun, "
                                     "cuda is each process's local GPU)")
    tu.add_argument("--backend", choices=("gloo", "nccl", "mpi"),
                    help="torch.distributed backend under torchrun (default: gloo on CPU, "
                         "nccl on CUDA)")
    tu.add_argument("--store", action="store_true",
                    help="record the rates for evaluate to reuse (l2l/pretrained/tuned_rates.json)")
    tu.add_argument("--store-path", help="another store file")
    tu.add_argument("--quiet", action="store_true")
    tu.set_defaults(run=_tune)

    ca = sub.add_parser("calibrate", help="choose a learned rule's step size on held-out "
                                          "models wider than its meta-training tasks")
    ca.add_argument("optimizer", help="the rule: pretrained:NAME or a checkpoint path")
    ca.add_argument("--model", action="append", metavar="NAME",
                    help="a calibration model (default: all; see l2l.calibrate.MODELS)")
    ca.add_argument("--steps", type=_positive, default=500, help="minibatches per run (500)")
    ca.add_argument("--seeds", type=_seed, nargs="+", default=[0, 1])
    ca.add_argument("--grid", type=_rates, metavar="F1,F2,…",
                    help="factors to try (default 0.01, 0.0316, 0.1, 0.316, 1)")
    ca.add_argument("--out", help="write the calibrated rule here (.pt)")
    ca.add_argument("--quiet", action="store_true")
    ca.set_defaults(run=_calibrate)

    rep = sub.add_parser("reproduce", help="reproduce a paper figure (PNG + JSON)")
    rep.add_argument("figure", help="e.g. fig4-left")
    rep.add_argument("--retrain", action="store_true", help="meta-train a new optimizer first")
    rep.add_argument("--quick", action="store_true", help="tiny run (as CI does)")
    rep.add_argument("--out", default="figures")
    rep.add_argument("--seed", type=_seed, default=0)
    rep.add_argument("--runs", type=_positive)
    rep.add_argument("--quiet", action="store_true")
    rep.set_defaults(run=_reproduce)

    ls = sub.add_parser("list", help="list problems, optimizers and figures")
    ls.set_defaults(run=_list)

    try:
        from . import bench
    except ImportError:
        bench = None
    if bench is not None:
        b = sub.add_parser("bench", help="time meta-training and evaluation on this machine")
        bench.add_arguments(b)
        b.set_defaults(run=bench.main)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded in provenance
    try:
        code = args.run(args)  # bench returns its results
        return code if isinstance(code, int) else 0
    except L2LError as error:
        kind = "" if isinstance(error, TrainingInterrupted) else "error: "
        print(f"l2l: {kind}{error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("l2l: interrupted", file=sys.stderr)
        return 130
    except (MemoryError, RuntimeError) as error:  # RuntimeError: torch's allocators
        if not _out_of_memory(error):
            raise
        detail = str(error).split("you tried to allocate ")[-1].split(". ")[0]
        size = f" ({detail})" if detail.endswith(("bytes", "GiB")) else ""
        print(f"l2l: error: out of memory{size}: ask for less (fewer --runs, a smaller "
              "--batch-size or --validation-size, a smaller problem)", file=sys.stderr)
        return 2
    finally:
        _end_process_group()


def _end_process_group() -> None:
    """End the torch.distributed process group a command started under torchrun, if any."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _out_of_memory(error: BaseException) -> bool:
    """Whether an error is an allocation that failed (not a bug: the request was too big)."""
    import torch

    if isinstance(error, (MemoryError, torch.OutOfMemoryError)):
        return True
    return "can't allocate memory" in str(error)  # the CPU allocator's RuntimeError
