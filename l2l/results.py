"""Stored evaluation results, used only for the settings that made them.

A notebook asks for the curves of some optimizers on a problem. Each optimizer's curve is stored
on its own under a *key* that holds everything that determines it: the problem spec, the
optimizer spec, a learned optimizer's digest (:func:`optimizer_sha256`: its class, config and
weights, not the provenance its checkpoint also carries), steps, runs, seed, and the baseline's
tuning (its fixed rate, the stored tuned rate, or the tuning settings). A stored curve
is used only when its whole key matches; otherwise it is computed (with an estimate of the cost
and a progress bar) and written to the user's cache, never into the shipped results.

Where results are looked up, in order:

- the *shipped* folders given by the caller (a notebook's ``results/``), read-only;
- the cache: ``results/`` in l2l's cache folder, ``$L2L_CACHE`` if set, else ``~/.cache/l2l``.

``refresh=True`` recomputes every curve and writes it into the first shipped folder (how the
shipped results are rebuilt: ``make notebook-results``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import checkpoint, tuned
from .evaluate import Curve, check_spec, evaluate, tuning_for
from .optimizers import BASELINES
from .problems import make_problem
from .rollout import run
from .seeding import generator

FORMAT = "l2l-result/1"


def cache_dir() -> Path:
    """Where computed results go: ``results/`` in ``$L2L_CACHE``, else in ``~/.cache/l2l``."""
    env = os.environ.get("L2L_CACHE")
    return (Path(env).expanduser() if env else Path.home() / ".cache" / "l2l") / "results"


def optimizer_sha256(path) -> str:
    """SHA-256 of what determines a learned optimizer's steps: the class and config its checkpoint
    names and every tensor of its weights (name, dtype, shape and bytes, in name order). The
    checkpoint's provenance (command, commit, date, …) is left out, so rewriting it, or saving the
    same weights again, keeps the digest; any change to a weight or to the config changes it."""
    record = checkpoint.read(path)
    if not isinstance(record, dict) or record.get("format") != checkpoint.FORMAT:
        raise checkpoint.CheckpointError(f"{path} is not an l2l optimizer checkpoint "
                                         f"(format {checkpoint.FORMAT})")
    digest = hashlib.sha256()
    head = {"class": record.get("class"), "config": record.get("config")}
    digest.update(json.dumps(head, sort_keys=True).encode())
    for name in sorted(record["state_dict"]):
        tensor = record["state_dict"][name].detach().cpu().contiguous()
        digest.update(json.dumps([name, str(tensor.dtype), list(tensor.shape)]).encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def result_key(problem, spec: str, steps: int, runs: int, seed: int,
               tune_runs: int | None = None) -> dict:
    """Everything that determines the curve of optimizer ``spec`` (see :func:`l2l.evaluate`).

    A baseline with a fixed rate (``adam:0.01``) is keyed by that rate; a tuned one by the rate
    stored in :mod:`l2l.tuned` for this problem and horizon where there is one, else by the
    tuning settings (validation runs, grid, refinement, stability check); a learned one by
    :func:`optimizer_sha256` of its checkpoint (its class, config and weights).
    """
    problem = make_problem(problem)
    text = check_spec(spec)
    head, _, rest = text.partition(":")
    key = {"problem": problem.spec(), "optimizer": text, "steps": int(steps), "runs": int(runs),
           "seed": int(seed)}
    if head in BASELINES and rest:
        key["lr"] = float(rest)
    elif head in BASELINES:
        stored = tuned.lookup(problem.spec(), head, steps)
        if stored is not None:
            key["tuning"] = {"stored_lr": stored["lr"], "runs": stored["runs"],
                             "seed": stored["seed"]}
        else:
            tuning = tuning_for(problem)
            key["tuning"] = {"runs": int(tune_runs or tuning.runs),
                             "grid": [float(r) for r in tuning.grid],
                             "refine": tuning.refine, "check_runs": tuning.check_runs,
                             "margin": tuning.margin, "check_steps": tuning.check_steps}
    else:
        key["optimizer_sha256"] = optimizer_sha256(checkpoint.resolve(text))
    return json.loads(json.dumps(key))  # the form it takes once stored


def file_name(key: dict) -> str:
    """``PROBLEM__OPTIMIZER-DIGEST.pt``: readable, and unique to the key."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9.=-]+", "_", f"{key['problem']}__{key['optimizer']}")
    return f"{slug}-{digest}.pt"


def save(curve: Curve, key: dict, folder) -> Path:
    """Store one curve under ``key`` in ``folder`` (atomically); returns the file."""
    record = {"format": FORMAT, "key": key, "name": curve.name, "losses": curve.losses,
              "lr": curve.lr, "metrics": curve.metrics}
    return checkpoint.atomic_save(record, Path(folder) / file_name(key))


def load(key: dict, folders) -> Curve | None:
    """The curve stored under exactly ``key`` in the first of ``folders`` that has it, or None."""
    for folder in folders:
        path = Path(folder) / file_name(key)
        if not path.is_file():
            continue
        try:
            record = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises many types for a damaged file
            tqdm.write(f"ignoring the unreadable stored result {_shown(path)} ({error}); "
                       "it is computed again")
            continue
        if record.get("format") == FORMAT and record.get("key") == key:
            return Curve(record["name"], record["losses"], record["lr"], record["metrics"])
    return None


def estimate_seconds(problem, specs, steps: int, runs: int, keys, probe_steps: int = 3) -> float:
    """Seconds to compute ``specs`` on this machine, from a short probe of each: ``probe_steps``
    steps on a few optimizees, scaled to ``steps`` × ``runs`` (× the number of rates tried for a
    baseline that must be tuned)."""
    problem = make_problem(problem)
    optimizee = problem.for_split("test").sample(min(runs, 4), generator(0, "test", 0))
    total = 0.0
    for spec, key in zip(specs, keys):
        head = str(spec).partition(":")[0]
        rule = BASELINES[head](1e-3) if head in BASELINES else checkpoint.load_optimizer(spec)
        run(optimizee, rule, 1)  # warm-up (kernels, caches)
        started = time.perf_counter()
        run(optimizee, rule, probe_steps)
        per_step = (time.perf_counter() - started) / (probe_steps * optimizee.theta0.shape[0])
        work = steps * runs
        tuning = key.get("tuning", {})
        if "grid" in tuning:
            rates = len(tuning["grid"]) + (2 * tuning["refine"] + 1 if tuning["refine"] else 0)
            work += rates * tuning["runs"] * steps
        total += per_step * work
    return total


def _shown(path) -> str:
    """``path`` relative to the working folder, or with the home folder written ``~``, so that
    outputs name no user's folders."""
    path = Path(path).resolve()
    for base, prefix in ((Path.cwd().resolve(), ""), (Path.home().resolve(), "~/")):
        if path.is_relative_to(base):
            return prefix + str(path.relative_to(base))
    return str(path)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, math.ceil(seconds))} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def cached_evaluate(problem, specs, steps: int, runs: int, seed: int = 0,
                    tune_runs: int | None = None, shipped=(), refresh: bool = False,
                    progress: bool = True) -> list[Curve]:
    """:func:`l2l.evaluate` of each SPEC, reusing a stored curve only where its key matches.

    ``shipped``: a folder (or folders) of stored results to read, never written unless
    ``refresh``. Curves not found are computed, after one line with their estimated cost, and
    stored in :func:`cache_dir` (or, with ``refresh``, in the first shipped folder). Returns one
    :class:`~l2l.evaluate.Curve` per SPEC, in order.
    """
    specs = [str(s) for s in specs]
    shipped = [shipped] if isinstance(shipped, (str, os.PathLike)) else list(shipped)
    if refresh and not shipped:
        raise ValueError("refresh=True needs a shipped folder to write to")
    problem = make_problem(problem)
    keys = [result_key(problem, s, steps, runs, seed, tune_runs) for s in specs]
    found = [None if refresh else load(k, shipped + [cache_dir()]) for k in keys]
    todo = [i for i, c in enumerate(found) if c is None]
    if todo:
        target = Path(shipped[0]) if refresh else cache_dir()
        seconds = estimate_seconds(problem, [specs[i] for i in todo], steps, runs,
                                   [keys[i] for i in todo])
        names = ", ".join(specs[i] for i in todo)
        tqdm.write(f"{problem.spec()}: computing {names} for these settings "
                   f"(steps={steps}, runs={runs}, seed={seed}); about {_duration(seconds)} "
                   f"on this machine; stored in {_shown(target)}")
        for i in tqdm(todo, desc="computing", disable=not progress, leave=False):
            (curve,) = evaluate(problem, [specs[i]], steps=steps, runs=runs, seed=seed,
                                tune_runs=tune_runs, progress=False)
            save(curve, keys[i], target)
            found[i] = curve
    return found
