"""MNIST from the official files: download, verify, cache (the data of Section 3.2).

The four official gzipped IDX files are looked up in ``<data dir>/mnist/``, where the data dir is
the ``L2L_DATA`` environment variable if set, else ``~/.cache/l2l`` (``$XDG_CACHE_HOME/l2l``).
A file that is missing, or whose md5 differs from the published one (a partial or corrupted
download), is fetched from the first mirror that answers, with a progress bar, into a temporary
file that is renamed into place only once its checksum is right. Without network, the error says
which file is missing and where to put it. Files that are present and valid are only read, so the
data dir may be read-only.

:func:`load_mnist` parses the files once per process and keeps the tensors in memory:
images ``[N, 784]`` float32 in [0, 1], labels ``[N]`` int64 (N = 60,000 train, 10,000 test).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

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


class DataUnavailableError(FileNotFoundError):
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
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def ensure_file(name: str, folder: Path, md5: str, mirrors=None, download_missing: bool = True,
                progress: bool = True) -> Path:
    """``folder/name`` with the right md5, fetching it from ``mirrors`` if missing or corrupted."""
    path = folder / name
    problem = f"{name} is missing from {folder}"
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
    raise DataUnavailableError(
        f"{problem}. Put the four MNIST files ({', '.join(MNIST_FILES)}) in {folder}, "
        f"or set L2L_DATA to a folder whose mnist/ subfolder holds them.")


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
        raise ValueError(f"unknown MNIST split {split!r}; expected 'train' or 'test'")
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
