"""Save and load optimizers with their config and provenance, atomically.

An optimizer checkpoint is a ``torch.save`` of plain data (loadable with ``weights_only=True``):

    {"format": "l2l-optimizer/1", "class": "LSTMOptimizer", "config": {...},
     "state_dict": {...}, "provenance": {"command", "commit", "date", "problem", ...}}

Files are written to a temporary file in the same folder and moved into place with
``os.replace``, so an interrupted save never leaves a truncated checkpoint behind. Shipped
optimizers live in ``l2l/pretrained/NAME.pt`` and load as ``pretrained:NAME``.
"""

from __future__ import annotations

import datetime
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from .optimizers import LSTMOptimizer, Optimizer

FORMAT = "l2l-optimizer/1"
PRETRAINED_DIR = Path(__file__).parent / "pretrained"
#: optimizer classes a checkpoint may name
CLASSES = {"LSTMOptimizer": LSTMOptimizer}


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or not an l2l optimizer."""


def atomic_save(obj, path: "str | os.PathLike") -> Path:
    """``torch.save`` to ``path`` via a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(text: str, path: "str | os.PathLike") -> Path:
    """Write a text file atomically (same scheme as :func:`atomic_save`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return path


def git_commit() -> str | None:
    """The commit of the working tree this package runs from, if it is a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def provenance(command: str | None = None, **extra) -> dict:
    """Where a result came from: command, commit, date, torch version, plus ``extra``."""
    if command is None:
        command = "python -m l2l " + shlex.join(sys.argv[1:]) if sys.argv else ""
    return {
        "command": command,
        "commit": git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": str(torch.__version__),
        **extra,
    }


def cpu_state(optimizer) -> dict:
    """A copy of ``optimizer.state_dict()`` with every tensor on the CPU (whatever device trained
    it), so that any machine can load it."""
    return {k: v.detach().cpu().clone() for k, v in optimizer.state_dict().items()}


def optimizer_record(optimizer: Optimizer, provenance: dict | None = None) -> dict:
    """The plain-data checkpoint of a learned optimizer."""
    name = type(optimizer).__name__
    if name not in CLASSES:
        raise CheckpointError(f"cannot checkpoint {name}; only {', '.join(CLASSES)} are learned")
    return {
        "format": FORMAT,
        "class": name,
        "config": optimizer.config(),
        "state_dict": cpu_state(optimizer),
        "provenance": provenance or {},
    }


def save_optimizer(optimizer: Optimizer, path, provenance: dict | None = None) -> Path:
    """Write an optimizer checkpoint atomically."""
    return atomic_save(optimizer_record(optimizer, provenance), path)


def optimizer_from_record(record: dict, source: str = "checkpoint") -> Optimizer:
    """Rebuild an optimizer from :func:`optimizer_record`'s output."""
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CheckpointError(f"{source} is not an l2l optimizer checkpoint (format {FORMAT})")
    cls = CLASSES.get(record["class"])
    if cls is None:
        raise CheckpointError(f"{source} holds unknown optimizer class {record['class']!r}")
    optimizer = cls(**record["config"])
    optimizer.load_state_dict(record["state_dict"])
    optimizer.provenance = record.get("provenance", {})
    return optimizer


def list_pretrained() -> list[str]:
    """Names of the shipped optimizers (``pretrained:NAME``)."""
    return sorted(p.stem for p in PRETRAINED_DIR.glob("*.pt"))


def resolve(spec: "str | os.PathLike") -> Path:
    """The file behind ``pretrained:NAME``, ``lstm:PATH`` or a plain path."""
    text = str(spec)
    if text.startswith("pretrained:"):
        name = text.split(":", 1)[1]
        path = PRETRAINED_DIR / f"{name}.pt"
        if not path.exists():
            raise CheckpointError(f"no pretrained optimizer {name!r}; shipped: "
                                  f"{', '.join(list_pretrained()) or 'none'}")
        return path
    if text.startswith("lstm:"):
        text = text.split(":", 1)[1]
    path = Path(text)
    if path.is_dir():
        path = path / "best.pt"
    if not path.exists():
        raise CheckpointError(f"optimizer checkpoint {text!r} does not exist; give a .pt file "
                              "written by `python -m l2l train` or pretrained:NAME")
    return path


def load_optimizer(spec: "str | os.PathLike") -> Optimizer:
    """Load ``pretrained:NAME``, ``lstm:PATH``, a checkpoint file, or a training folder."""
    path = resolve(spec)
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a damaged file
        raise CheckpointError(f"cannot read optimizer checkpoint {path}: {error}") from None
    return optimizer_from_record(record, source=str(path))
