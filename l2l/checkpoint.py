"""Save and load optimizers with their config and provenance, atomically.

An optimizer checkpoint is a ``torch.save`` of plain data (loadable with ``weights_only=True``):

    {"format": "l2l-optimizer/1", "class": "LSTMOptimizer", "config": {...},
     "state_dict": {...}, "provenance": {"command", "commit", "date", "problem", ...}}

Files are written to a temporary file in the same folder and moved into place with
``os.replace``, so an interrupted save never leaves a truncated checkpoint behind; they get the
permissions the umask gives any new file. A temporary file that a killed process left behind is
removed by the next training in that folder (:func:`remove_stale_temporaries`). Shipped
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

from .errors import DataError, OutputError
from .optimizers import LSTMOptimizer, Optimizer

FORMAT = "l2l-optimizer/1"
PRETRAINED_DIR = Path(__file__).parent / "pretrained"
#: optimizer classes a checkpoint may name
CLASSES = {"LSTMOptimizer": LSTMOptimizer}


class CheckpointError(DataError):
    """A checkpoint is missing, unreadable or not an l2l optimizer."""


#: what a temporary file of :func:`atomic_save` and :func:`atomic_write_text` is called
TEMPORARY = ".{name}.*.tmp"


def file_mode() -> int:
    """The permissions of a new file under the current umask (0o666 & ~umask), which temporary
    files (created 0o600) are given before they are renamed into place."""
    return 0o666 & ~current_umask()


def current_umask() -> int:
    """The process's umask: read from /proc where it can be (Linux), else set and restored."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic_write(path: str | os.PathLike, write, mode: str) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it into place with
    the umask's permissions. On any failure (an interrupt included) the temporary file is
    removed and ``path`` is untouched."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error.strerror or error}") from None
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException as error:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(error, OSError):
            raise OutputError(f"cannot write {path}: {error.strerror or error}") from None
        raise
    return path


def atomic_save(obj, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` via a temporary file and an atomic rename."""
    return _atomic_write(path, lambda f: torch.save(obj, f), "wb")


def atomic_write_text(text: str, path: str | os.PathLike) -> Path:
    """Write a text file atomically (same scheme as :func:`atomic_save`)."""
    return _atomic_write(path, lambda f: f.write(text), "w")


def remove_stale_temporaries(folder: str | os.PathLike, names) -> list[Path]:
    """Delete the temporary files that writes of ``folder/NAME`` (for each of ``names``) left
    behind when their process was killed (``kill -9``, a power cut); returns what was removed.
    Call it only where no other process is writing these files."""
    folder, removed = Path(folder), []
    if not folder.is_dir():
        return removed
    for name in names:
        for stale in folder.glob(TEMPORARY.format(name=name)):
            stale.unlink(missing_ok=True)
            removed.append(stale)
    return removed


def read(path: str | os.PathLike, what: str = "optimizer checkpoint",
         weights_only: bool = True, fix: str = "write it again or give another file"):
    """``torch.load`` a file onto the CPU, with a one-line :class:`CheckpointError` naming the
    file, what is wrong (not a torch file; truncated or corrupted) and ``fix``."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as error:
        raise CheckpointError(f"cannot read {what} {path}: {error.strerror}") from None
    if not head.startswith(b"PK\x03\x04") and not head.startswith(b"\x80"):
        raise CheckpointError(f"{path} is not an l2l {what}: torch.save did not write it (it "
                              f"is empty, text, or another format); {fix}")
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as error:  # torch raises many types for a damaged file
        raise CheckpointError(f"the {what} {path} is truncated or corrupted "
                              f"({_first_sentence(error)}); {fix}") from None


def _first_sentence(error: BaseException) -> str:
    """The start of an exception's message, for one-line errors."""
    text = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return text.split(". ")[0][:160]


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
    """Rebuild an optimizer from :func:`optimizer_record`'s output. The process's random
    generator is left as it was (building the module draws weights that the record replaces)."""
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CheckpointError(f"{source} is not an l2l optimizer checkpoint (format {FORMAT})")
    cls = CLASSES.get(record.get("class"))
    if cls is None:
        raise CheckpointError(f"{source} holds unknown optimizer class {record.get('class')!r}")
    weights = record.get("state_dict")
    if isinstance(weights, dict) and not all(
            bool(torch.isfinite(w).all()) for w in weights.values()
            if isinstance(w, torch.Tensor) and w.is_floating_point()):
        raise CheckpointError(f"{source} holds non-finite (NaN or infinite) weights: it came "
                              "from a run that diverged; use another checkpoint")
    try:
        with torch.random.fork_rng(devices=[]):
            optimizer = cls(**record["config"])
        optimizer.load_state_dict(record["state_dict"])
    except (KeyError, TypeError, RuntimeError) as error:  # a damaged or hand-edited record
        raise CheckpointError(f"{source} is a damaged optimizer checkpoint "
                              f"({_first_sentence(error)})") from None
    optimizer.provenance = record.get("provenance", {})
    return optimizer


def list_pretrained() -> list[str]:
    """Names of the shipped optimizers (``pretrained:NAME``)."""
    return sorted(p.stem for p in PRETRAINED_DIR.glob("*.pt"))


def resolve(spec: str | os.PathLike) -> Path:
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
        if not (path / "best.pt").exists():
            raise CheckpointError(f"{text!r} is a folder without best.pt: not a finished "
                                  "training folder; give a .pt file or such a folder")
        path = path / "best.pt"
    if not path.exists():
        raise CheckpointError(f"optimizer checkpoint {text!r} does not exist; give a .pt file "
                              "written by `python -m l2l train` or pretrained:NAME")
    return path


def load_optimizer(spec: str | os.PathLike) -> Optimizer:
    """Load ``pretrained:NAME``, ``lstm:PATH``, a checkpoint file, or a training folder."""
    path = resolve(spec)
    return optimizer_from_record(read(path), source=str(path))


#: options of a recorded command that say where and how long it ran, not what it trained
_RUN_OPTIONS = {"--out": 1, "--time-limit": 1, "--quiet": 0, "--resume": 0}


def shown_command(command: str) -> str:
    """A recorded training command as a reader can rerun it: without the options that only say
    where and how long it ran (``--out``, ``--time-limit``, ``--quiet``, ``--resume``), and with
    any absolute path shortened to ``…/NAME`` (it named a folder of the machine it ran on)."""
    words, shown, skip = shlex.split(command), [], 0
    for word in words:
        if skip:
            skip -= 1
            continue
        if word in _RUN_OPTIONS:
            skip = _RUN_OPTIONS[word]
            continue
        head, colon, rest = word.rpartition(":") if ":/" in word else ("", "", word)
        if rest.startswith("/"):
            word = f"{head}{colon}…/{Path(rest).name}"
        shown.append(word)
    return " ".join(shown)
