"""Stored learning rates of the baselines, for problems where tuning them is costly.

Tuning a baseline (:func:`l2l.evaluate.tune_learning_rate`) runs every rate of a grid for the
whole horizon on validation optimizees. On quadratics and MNIST that takes seconds; a
1000-step CIFAR-10 convnet or a neural-art image takes long enough on a CPU that a rate, once
tuned, is stored here with the command that tuned it and reused by
:func:`l2l.evaluate.make_optimizer` when problem, baseline and horizon match
(``python -m l2l evaluate --retune`` tunes again). The store is ``pretrained/tuned_rates.json``,
written by ``python -m l2l tune PROBLEM --steps N --store``: for each problem spec, baseline and
number of steps, the rate, every rate's validation score, and the provenance.
"""

from __future__ import annotations

import json
from pathlib import Path

try:
    import fcntl
except ImportError:  # not on Windows: stores there are not locked
    fcntl = None

from . import checkpoint
from .errors import DataError

#: the shipped store of tuned rates
STORE = Path(__file__).resolve().parent / "pretrained" / "tuned_rates.json"


def load(path=None) -> dict:
    """The whole store: ``{problem spec: {baseline: {steps (str): entry}}}`` ({} if absent)."""
    path = Path(path or STORE)
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as error:  # unreadable, truncated, not JSON
        raise DataError(f"the store of tuned rates {path} cannot be read ({error}); restore it "
                        "(git checkout for the shipped one) or delete it") from None
    if not isinstance(record, dict):
        raise DataError(f"the store of tuned rates {path} does not hold a JSON object; restore "
                        "it or delete it")
    return record


def lookup(problem_spec: str, name: str, steps: int, path=None) -> dict | None:
    """The stored entry (``lr``, ``scores``, ``runs``, ``seed``, ``provenance``) or None."""
    return load(path).get(problem_spec, {}).get(name, {}).get(str(int(steps)))


def store(problem_spec: str, name: str, steps: int, lr: float, scores: dict, runs: int,
          seed: int, command: str | None = None, path=None, **provenance) -> None:
    """Add (or replace) one tuned rate, atomically; processes storing at once are serialised by
    a lock file beside the store, so none loses another's entry. ``path``: default :data:`STORE`;
    ``provenance``: more keys for the entry's provenance (e.g. the processes that tuned it)."""
    path = Path(path or STORE)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        record = load(path)
        record.setdefault(problem_spec, {}).setdefault(name, {})[str(int(steps))] = {
            "lr": lr, "runs": runs, "seed": seed,
            "scores": {f"{r:.6g}": s for r, s in scores.items()},
            "provenance": checkpoint.provenance(command, **provenance),
        }
        checkpoint.atomic_write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", path)
