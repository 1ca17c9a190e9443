"""MNIST and CIFAR-10 from the official files: download, verify, cache (Sections 3.2 and 3.3).

MNIST
-----

The four official gzipped IDX files are looked up in ``<data dir>/mnist/``, where the data dir is
the ``L2L_DATA`` environment variable if set, else ``~/.cache/l2l`` (``$XDG_CACHE_HOME/l2l``).
A file that is missing, or whose md5 differs from the published one (a partial or corrupted
download), is fetched from the first mirror that answers, with a progress bar, into a temporary
file that is renamed into place only once its checksum is right. Without network, the error says
which file is missing and where to put it. Files that are present and valid are only read, so the
data dir may be read-only.

:func:`load_mnist` parses the files once per process and keeps the tensors in memory:
images ``[N, 784]`` float32 in [0, 1], labels ``[N]`` int64 (N = 60,000 train, 10,000 test).

CIFAR-10
--------
Kept in ``<data dir>/cifar10/`` as two converted files, ``cifar10_train.npz`` (50,000 images)
and ``cifar10_test.npz`` (10,000): keys ``x`` (uint8 ``[N, 32, 32, 3]``, RGB, HWC) and ``y``
(uint8 ``[N]``), in the official order. When they are missing, the official
``cifar-10-python.tar.gz`` is fetched (or taken from the folder, if already there) with a progress
bar, its md5 is checked, every pickled batch inside is checked against its published md5 and its
shape, and the batches are converted into the two files (written atomically), followed by a
marker ``cifar10_source.json`` that records the archive's md5 and the md5 of each converted file.
The tarball is kept next to them.

Converted files without a valid marker are accepted too: that is the layout of the *recovered*
copy for machines without internet (see the data README: official labels and order, pixels from
a JPEG copy with a mean absolute error of about 5.8 per pixel value). :func:`load_cifar10` says
once per folder and process which one it is using (a warning for the recovered copy, an info
record for the official one, both on the ``l2l.data`` logger), and :func:`cifar10_source` tells
programs.

:func:`load_cifar10` returns images ``[N, 3, 32, 32]`` uint8 (CHW, like torchvision's tensors)
and labels ``[N]`` int64. They stay uint8 in memory (150 MB for the training set instead of
600 MB as float32); the optimizee normalises each minibatch as it draws it
(:data:`CIFAR10_MEAN`, :data:`CIFAR10_STD`).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import pickle
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .errors import ConfigError, L2LError

#: the official file names and their published md5 checksums
MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}

#: (images file, labels file) of each split
MNIST_SPLITS = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

#: base URLs tried in order; a file's URL is the base followed by its name
MNIST_MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]

#: seconds to wait for a mirror before trying the next one
TIMEOUT = 30.0

# parsed splits, by (folder, split): loading happens once per process
_CACHE: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}


class DataUnavailableError(L2LError, FileNotFoundError):
    """A data file is missing or corrupted and could not be fetched."""


def data_dir() -> Path:
    """The data folder: ``$L2L_DATA``, else ``$XDG_CACHE_HOME/l2l`` (default ``~/.cache/l2l``)."""
    if os.environ.get("L2L_DATA"):
        return Path(os.environ["L2L_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "l2l"


def md5sum(path: str | os.PathLike) -> str:
    """The md5 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, path: Path, md5: str | None = None, progress: bool = True) -> Path:
    """Fetch ``url`` to ``path`` atomically (temporary file, then rename), checking its md5.

    Raises ``OSError`` (``urllib.error.URLError`` among them) if the server cannot be reached,
    and ``ValueError`` if the bytes received do not have the expected checksum; in both cases
    nothing is left at ``path``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=path.name,
                      disable=not progress, leave=False) as bar:
                for chunk in iter(lambda: response.read(1 << 16), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
        if md5 is not None and (got := md5sum(tmp)) != md5:
            raise ValueError(f"{url} gave a file with md5 {got}, expected {md5}")
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def ensure_file(name: str, folder: Path, md5: str, mirrors=None, download_missing: bool = True,
                progress: bool = True, hint: str | None = None) -> Path:
    """``folder/name`` with the right md5, fetching it from ``mirrors`` if missing or corrupted.

    ``mirrors`` defaults to :data:`MNIST_MIRRORS`; ``hint`` is the end of the error message (what
    to put where), by default the MNIST one.
    """
    path = folder / name
    problem = f"{name} is missing from {folder}"
    remove_stale_parts(folder, [name])
    if path.exists():
        got = md5sum(path)
        if got == md5:
            return path
        problem = f"{path} is corrupted or partial (md5 {got}, expected {md5})"
        if download_missing:
            warnings.warn(f"{problem}; fetching it again", stacklevel=3)
    if download_missing:
        failures = []
        for base in MNIST_MIRRORS if mirrors is None else mirrors:
            url = base.rstrip("/") + "/" + name
            try:
                return download(url, path, md5, progress=progress)
            except (OSError, ValueError) as error:  # URLError and HTTPError are OSErrors
                failures.append(f"{url}: {getattr(error, 'reason', None) or error}")
        problem += "; the download failed (network unreachable?): " + "; ".join(failures)
    else:
        problem += " (downloading is off)"
    if hint is None:
        hint = (f"Put the four MNIST files ({', '.join(MNIST_FILES)}) in {folder}, "
                f"or set L2L_DATA to a folder whose mnist/ subfolder holds them.")
    raise DataUnavailableError(f"{problem}. {hint}")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Parse a gzipped IDX file of unsigned bytes (the MNIST format) into a uint8 array."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes")
    ndim = raw[3]
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path} holds {data.size} bytes of data, its header says {shape}")
    return data.reshape(shape)


def mnist_folder(root: str | os.PathLike | None = None) -> Path:
    """``<root>/mnist``, with ``root`` defaulting to :func:`data_dir`."""
    return Path(root if root else data_dir()).expanduser() / "mnist"


def ensure_mnist(root: str | os.PathLike | None = None, download: bool = True, mirrors=None,
                 checksums: dict | None = None, progress: bool = True) -> Path:
    """The folder holding the four verified MNIST files, fetching whatever is missing.

    Args:
        root: the data dir (files go in its ``mnist/`` subfolder); None: :func:`data_dir`.
        download: fetch missing or corrupted files (else raise :class:`DataUnavailableError`).
        mirrors: base URLs to try (default :data:`MNIST_MIRRORS`).
        checksums: file name → md5 (default :data:`MNIST_FILES`; tests pass their own).
        progress: show a progress bar while downloading.
    """
    folder = mnist_folder(root)
    for name, md5 in (checksums or MNIST_FILES).items():
        ensure_file(name, folder, md5, mirrors, download, progress)
    return folder


def load_mnist(split: str = "train", data_dir: str | os.PathLike | None = None,
               download: bool = True, mirrors=None, checksums: dict | None = None,
               progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST images ``[N, 784]`` (float32 in [0, 1]) and labels ``[N]`` (int64), cached in memory.

    ``split`` is ``"train"`` (N = 60,000) or ``"test"`` (N = 10,000). The other arguments are those
    of :func:`ensure_mnist`. The files are verified and parsed on the first call for a folder;
    later calls return the same tensors (shared between callers: do not modify them).
    """
    if split not in MNIST_SPLITS:
        raise ConfigError(f"unknown MNIST split {split!r}; expected 'train' or 'test'")
    key = (str(mnist_folder(data_dir).resolve()), split)
    if key not in _CACHE:
        folder = ensure_mnist(data_dir, download, mirrors, checksums, progress)
        images_file, labels_file = MNIST_SPLITS[split]
        images = read_idx(folder / images_file)
        labels = read_idx(folder / labels_file)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"MNIST {split} files in {folder} have shapes {images.shape} and "
                             f"{labels.shape}, expected [N, 28, 28] and [N]")
        x = torch.from_numpy(images.reshape(len(images), -1).astype(np.float32) / 255.0)
        y = torch.from_numpy(labels.astype(np.int64))
        _CACHE[key] = (x, y)
    return _CACHE[key]


# ---------------------------------------------------------------------------------- CIFAR-10

#: the official archive, from the University of Toronto's CIFAR page
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"

#: base URLs tried in order for the archive
CIFAR10_MIRRORS = ["https://www.cs.toronto.edu/~kriz/"]

#: folder of the batches inside the archive
CIFAR10_ARCHIVE_FOLDER = "cifar-10-batches-py"

#: published md5 of the archive and of each file inside it
CIFAR10_FILES = {
    CIFAR10_ARCHIVE: "c58f30108f718f92721af3b95e74349a",
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}

#: the batches of each split, in the official order
CIFAR10_BATCHES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}

#: the converted file of each split (the layout of the recovered copy too)
CIFAR10_CACHE = {"train": "cifar10_train.npz", "test": "cifar10_test.npz"}

#: written after a conversion from the official archive: what it came from, md5 of each file
CIFAR10_MARKER = "cifar10_source.json"

#: class names by label
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")

#: per-channel (RGB) mean and standard deviation of the official training images scaled to [0, 1]
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

logger = logging.getLogger(__name__)

# where the converted files came from, by folder: "official" or "recovered" (checked once)
_CIFAR10_SOURCES: dict[str, str] = {}
# folders whose source has been announced in this process
_CIFAR10_ANNOUNCED: set[str] = set()


def cifar10_folder(root: str | os.PathLike | None = None) -> Path:
    """``<root>/cifar10``, with ``root`` defaulting to :func:`data_dir`."""
    return Path(root if root else data_dir()).expanduser() / "cifar10"


def write_atomically(path: Path, write) -> None:
    """Call ``write(file)`` on a temporary file next to ``path``, then rename it into place."""
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as f:
            write(f)
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _file_mode() -> int:
    """A new file's permissions under the umask (temporary files are created 0o600)."""
    from .checkpoint import file_mode  # the one place that reads the umask

    return file_mode()


#: a temporary ``.part`` file not written to for this long was left by a killed process
STALE_SECONDS = 600.0


def remove_stale_parts(folder: Path, names) -> None:
    """Delete the temporary files (``.NAME.*.part``) that downloads or conversions of ``names``
    left in ``folder`` when their process was killed. A file written to in the last
    :data:`STALE_SECONDS` may belong to a process still at work, and is kept."""
    if not folder.is_dir():
        return
    for name in names:
        for part in folder.glob(f".{name}.*.part"):
            try:
                if time.time() - part.stat().st_mtime > STALE_SECONDS:
                    part.unlink()
            except OSError:  # gone meanwhile, or a read-only data dir
                pass


def read_npz(path: Path, keys, fix: str) -> dict[str, np.ndarray]:
    """The arrays ``keys`` of the ``.npz`` file ``path`` (no pickles), or a
    :class:`DataUnavailableError` naming the file, what is wrong and ``fix`` (what to do)."""
    try:
        with np.load(path) as arrays:
            return {key: arrays[key] for key in keys}
    except KeyError as error:
        raise DataUnavailableError(f"{path} has no array {error}; {fix}") from None
    except Exception as error:  # BadZipFile, zlib.error, EOFError, OSError, ValueError …
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
        raise DataUnavailableError(f"{path} cannot be read ({reason}): it is truncated or "
                                   f"corrupted; {fix}") from None


def read_cifar_batch(raw: bytes, name: str = "batch") -> tuple[np.ndarray, np.ndarray]:
    """One pickled CIFAR batch → images ``[n, 32, 32, 3]`` uint8 (HWC) and labels ``[n]`` uint8.

    The official batches are pickled dicts whose ``b"data"`` is ``[n, 3072]`` uint8 (each row the
    1024 red, then green, then blue values of a 32×32 image, row-major) and ``b"labels"`` a list
    of n labels in 0…9. Unpickling runs code, so only call this on bytes whose md5 was checked.
    """
    batch = pickle.loads(raw, encoding="bytes")
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise ValueError(f"{name} is not a CIFAR batch (a dict with b'data' and b'labels')")
    x, y = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"])
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32 or y.shape != (len(x),):
        raise ValueError(f"{name} holds data {x.dtype}{list(x.shape)} and labels {list(y.shape)}, "
                         "expected uint8 [n, 3072] and [n]")
    if len(y) and (y.min() < 0 or y.max() > 9):
        raise ValueError(f"{name} has labels outside 0…9")
    return x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), y.astype(np.uint8)


def convert_cifar10(archive: Path, folder: Path, checksums: dict | None = None) -> None:
    """Check every batch in the official archive and write the converted files and the marker.

    Each batch ``cifar-10-batches-py/<name>`` must have the md5 in ``checksums`` (default
    :data:`CIFAR10_FILES`) and the official structure (:func:`read_cifar_batch`). The train
    batches are concatenated in order. Raises :class:`DataUnavailableError` if any check fails,
    writing nothing.
    """
    checksums = checksums or CIFAR10_FILES
    arrays = {}
    # batches.meta (the class names) is checked, not used
    wanted = [name for names in CIFAR10_BATCHES.values() for name in names]
    wanted += ["batches.meta"] if "batches.meta" in checksums else []
    wanted = {f"{CIFAR10_ARCHIVE_FOLDER}/{name}": name for name in wanted}
    try:
        raw = {}
        with tarfile.open(archive, "r:gz") as tar:  # one pass, in the archive's order
            for member in tar:
                if member.name in wanted and member.isfile():
                    raw[wanted[member.name]] = tar.extractfile(member).read()
        for name in wanted.values():
            if name not in raw:
                raise ValueError(f"no {CIFAR10_ARCHIVE_FOLDER}/{name} inside")
            if (got := hashlib.md5(raw[name]).hexdigest()) != checksums[name]:
                raise ValueError(f"{name} has md5 {got}, expected {checksums[name]}")
        for split, names in CIFAR10_BATCHES.items():
            parts = [read_cifar_batch(raw.pop(name), name) for name in names]
            arrays[split] = (np.concatenate([x for x, _ in parts]),
                             np.concatenate([y for _, y in parts]))
    except (KeyError, ValueError, OSError, EOFError, tarfile.TarError) as error:
        raise DataUnavailableError(
            f"{archive} does not hold the official CIFAR-10 batches: {error}. Delete it to "
            "fetch it again.") from error
    files = {}
    for split, (x, y) in arrays.items():
        path = folder / CIFAR10_CACHE[split]
        if path.exists():  # e.g. one file of the recovered copy, the other missing
            message = (f"replacing {path} with its conversion from the official {archive.name}, "
                       "so that both splits come from the same source")
            warnings.warn(message, stacklevel=3)
        try:
            write_atomically(path, lambda f, x=x, y=y: np.savez(f, x=x, y=y))
        except OSError as error:
            raise DataUnavailableError(f"cannot write {path} ({error.strerror}); make {folder} "
                                       "writable, or set L2L_DATA to another folder") from None
        files[path.name] = md5sum(path)
    marker = {"source": CIFAR10_ARCHIVE, "archive_md5": md5sum(archive), "files": files}
    write_atomically(folder / CIFAR10_MARKER,
                     lambda f: f.write(json.dumps(marker, indent=1).encode()))


def _cifar10_source(folder: Path) -> str:
    """"official" if a valid marker vouches for both converted files, else "recovered"."""
    key = str(folder.resolve())
    if key not in _CIFAR10_SOURCES:
        source = "recovered"
        try:
            marker = json.loads((folder / CIFAR10_MARKER).read_text())
            files = marker["files"]
            sums = {name: md5sum(folder / name) for name in CIFAR10_CACHE.values()}
            wrong = {name: got for name, got in sums.items() if got != files[name]}
            if wrong:  # converted here once, changed since: say so rather than guess quietly
                message = (f"checksum mismatch in {folder}: "
                           + ", ".join(f"{name} has md5 {got}, {CIFAR10_MARKER} records "
                                       f"{files[name]}" for name, got in wrong.items())
                           + "; the files changed after their conversion from the official "
                           "archive (damaged, or replaced) and are taken to be the recovered "
                           f"copy. Delete them and {CIFAR10_MARKER} to convert the archive again")
                logger.warning("CIFAR-10: %s", message)
            else:
                source = "official"
        except FileNotFoundError:
            pass  # no marker: the recovered copy's layout
        except (OSError, ValueError, KeyError, TypeError) as error:
            logger.warning("CIFAR-10: %s in %s cannot be read (%s); taking the converted files "
                           "to be the recovered copy", CIFAR10_MARKER, folder, error)
        _CIFAR10_SOURCES[key] = source
    return _CIFAR10_SOURCES[key]


def cifar10_source(root: str | os.PathLike | None = None) -> str:
    """Which CIFAR-10 the data dir holds: ``"official"`` (converted here from the official
    archive, with a marker whose checksums match), ``"recovered"`` (converted files without such a
    marker, e.g. the lossy recovered copy) or ``"missing"``."""
    folder = cifar10_folder(root)
    if not all((folder / name).is_file() for name in CIFAR10_CACHE.values()):
        return "missing"
    return _cifar10_source(folder)


def ensure_cifar10(root: str | os.PathLike | None = None, download: bool = True, mirrors=None,
                   checksums: dict | None = None, progress: bool = True) -> Path:
    """The folder holding the two converted CIFAR-10 files, making them if they are missing.

    Args:
        root: the data dir (files go in its ``cifar10/`` subfolder); None: :func:`data_dir`.
        download: fetch the archive if it is missing or corrupted (else raise
            :class:`DataUnavailableError`). An archive already in the folder is used as is.
        mirrors: base URLs to try (default :data:`CIFAR10_MIRRORS`).
        checksums: file name → md5 for the archive and its batches (default
            :data:`CIFAR10_FILES`; tests pass their own).
        progress: show a progress bar while downloading.
    """
    folder = cifar10_folder(root)
    if cifar10_source(root) != "missing":
        return folder
    checksums = checksums or CIFAR10_FILES
    train, test = CIFAR10_CACHE.values()
    hint = (f"Put the official {CIFAR10_ARCHIVE} (https://www.cs.toronto.edu/~kriz/cifar.html, "
            f"md5 {checksums[CIFAR10_ARCHIVE]}), or the converted {train} and {test}, in {folder}, "
            "or set L2L_DATA to a folder whose cifar10/ subfolder holds them.")
    archive = ensure_file(CIFAR10_ARCHIVE, folder, checksums[CIFAR10_ARCHIVE],
                          CIFAR10_MIRRORS if mirrors is None else mirrors, download, progress, hint)
    remove_stale_parts(folder, [*CIFAR10_CACHE.values(), CIFAR10_MARKER])
    convert_cifar10(archive, folder, checksums)
    return folder


def _announce_cifar10(folder: Path, source: str) -> None:
    """Say once per folder and process which CIFAR-10 is used (``l2l.data`` logger)."""
    key = str(folder.resolve())
    if key in _CIFAR10_ANNOUNCED:
        return
    _CIFAR10_ANNOUNCED.add(key)
    if source == "official":
        logger.info("CIFAR-10: using the official data, converted from %s, in %s",
                    CIFAR10_ARCHIVE, folder)
    else:
        logger.warning(
            "CIFAR-10: using the converted files in the data folder's %s/, which were not made "
            "from the official %s here (no valid %s): taken to be the recovered copy, with "
            "official labels and order but lossy pixels (mean absolute error about 5.8 per pixel "
            "value)", folder.name, CIFAR10_ARCHIVE, CIFAR10_MARKER)


def load_cifar10(split: str = "train", data_dir: str | os.PathLike | None = None,
                 download: bool = True, mirrors=None, checksums: dict | None = None,
                 progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10 images ``[N, 3, 32, 32]`` (uint8, RGB, CHW) and labels ``[N]`` (int64).

    ``split`` is ``"train"`` (N = 50,000) or ``"test"`` (N = 10,000). The other arguments are those
    of :func:`ensure_cifar10`. The files are read once per folder and process; later calls
    return the same tensors (shared between callers: do not modify them). Which copy is used
    (official or recovered) is logged once; :func:`cifar10_source` returns it.
    """
    if split not in CIFAR10_CACHE:
        raise ConfigError(f"unknown CIFAR-10 split {split!r}; expected 'train' or 'test'")
    folder = cifar10_folder(data_dir)
    key = (str(folder.resolve()), split)
    if key not in _CACHE:
        ensure_cifar10(data_dir, download, mirrors, checksums, progress)
        _announce_cifar10(folder, _cifar10_source(folder))
        path = folder / CIFAR10_CACHE[split]
        arrays = read_npz(path, ("x", "y"), f"delete it (and {CIFAR10_MARKER}) to convert the "
                          "archive again, or put an intact copy in its place")
        x, y = arrays["x"], arrays["y"]
        if (x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (32, 32, 3)
                or y.shape != (len(x),) or (len(y) and int(y.max()) > 9)):
            raise DataUnavailableError(
                f"{path} holds x {x.dtype}{list(x.shape)} and y {y.dtype}{list(y.shape)}; expected "
                "uint8 [N, 32, 32, 3] and labels [N] in 0…9")
        images = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        _CACHE[key] = (images, torch.from_numpy(y.astype(np.int64)))
    return _CACHE[key]
