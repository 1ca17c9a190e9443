"""The MNIST loader: IDX parsing, checksums, re-download of bad files, offline errors.

Downloads are served from a local HTTP server on 127.0.0.1 with small fake files; the real files
are checked where they exist (``L2L_DATA``, or the data folder beside the
checkout, see conftest.py).
"""

import gzip
import hashlib

import numpy as np
import pytest
import torch
from conftest import serve_folder

from l2l import data


def idx_bytes(array: np.ndarray) -> bytes:
    """A gzipped IDX file of unsigned bytes holding ``array``."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


def fake_mnist(folder, train=5, test=3) -> dict:
    """Write four small MNIST-shaped files to ``folder``; returns {name: md5}."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (train, 28, 28)),
        "train-labels-idx1-ubyte.gz": np.arange(train) % 10,
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (test, 28, 28)),
        "t10k-labels-idx1-ubyte.gz": (np.arange(test) + 3) % 10,
    }
    folder.mkdir(parents=True, exist_ok=True)
    checksums = {}
    for name, array in arrays.items():
        raw = idx_bytes(array)
        (folder / name).write_bytes(raw)
        checksums[name] = hashlib.md5(raw).hexdigest()
    return checksums


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving fake MNIST files: (base URL, checksums, served dir)."""
    served = tmp_path / "served"
    checksums = fake_mnist(served)
    with serve_folder(served) as url:
        yield url, checksums, served


def test_read_idx_round_trip(tmp_path):
    array = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    path = tmp_path / "a.gz"
    path.write_bytes(idx_bytes(array))
    np.testing.assert_array_equal(data.read_idx(path), array)
    path.write_bytes(gzip.compress(b"\x00\x00\x0d\x01" + b"\x00" * 8))  # float IDX: not MNIST
    with pytest.raises(ValueError, match="IDX"):
        data.read_idx(path)
    path.write_bytes(gzip.compress(gzip.decompress(idx_bytes(array))[:-1]))  # one byte short
    with pytest.raises(ValueError, match="header"):
        data.read_idx(path)


def test_data_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("L2L_DATA", str(tmp_path))
    assert data.data_dir() == tmp_path
    assert data.mnist_folder() == tmp_path / "mnist"
    monkeypatch.delenv("L2L_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert data.data_dir() == tmp_path / "cache" / "l2l"


def test_download_verify_and_load(server, tmp_path):
    url, checksums, _ = server
    root = tmp_path / "root"
    x, y = data.load_mnist("train", root, mirrors=[url], checksums=checksums, progress=False)
    assert x.shape == (5, 784) and x.dtype == torch.float32
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert y.dtype == torch.int64 and y.tolist() == [0, 1, 2, 3, 4]
    for name, md5 in checksums.items():
        assert data.md5sum(root / "mnist" / name) == md5
    assert not list((root / "mnist").glob("*.part"))  # no temporary files left behind
    x_test, y_test = data.load_mnist("test", root, mirrors=[url], checksums=checksums)
    assert x_test.shape == (3, 784) and y_test.tolist() == [3, 4, 5]
    # parsed once per process: the same tensors come back
    assert data.load_mnist("train", root, mirrors=[url], checksums=checksums)[0] is x


def test_falls_back_to_the_next_mirror(server, dead_url, tmp_path):
    url, checksums, _ = server
    folder = data.ensure_mnist(tmp_path, mirrors=[dead_url, url + "missing/", url],
                               checksums=checksums)  # with the progress bar
    assert sorted(p.name for p in folder.iterdir()) == sorted(checksums)


@pytest.mark.parametrize("damage", ["corrupted", "partial"])
def test_bad_file_is_fetched_again(server, tmp_path, damage):
    url, checksums, _ = server
    folder = data.ensure_mnist(tmp_path, mirrors=[url], checksums=checksums, progress=False)
    path = folder / "train-images-idx3-ubyte.gz"
    good = path.read_bytes()
    path.write_bytes(b"garbage" + good[7:] if damage == "corrupted" else good[: len(good) // 2])
    with pytest.warns(UserWarning, match="corrupted or partial"):
        data.ensure_mnist(tmp_path, mirrors=[url], checksums=checksums, progress=False)
    assert path.read_bytes() == good


def test_offline_and_missing_gives_a_clear_error(dead_url, tmp_path):
    with pytest.raises(data.DataUnavailableError) as error:
        data.ensure_mnist(tmp_path, mirrors=[dead_url], progress=False)
    message = str(error.value)
    assert "train-images-idx3-ubyte.gz is missing" in message
    assert str(tmp_path / "mnist") in message and "L2L_DATA" in message
    assert "download failed" in message and dead_url in message
    assert not list((tmp_path / "mnist").glob("*"))  # nothing half-written


def test_download_off_and_missing(tmp_path):
    with pytest.raises(data.DataUnavailableError, match="downloading is off.*L2L_DATA"):
        data.load_mnist("test", tmp_path, download=False)


def test_corrupted_and_offline_says_so(server, dead_url, tmp_path):
    url, checksums, _ = server
    folder = data.ensure_mnist(tmp_path, mirrors=[url], checksums=checksums, progress=False)
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(b"truncated")
    with pytest.warns(UserWarning), pytest.raises(data.DataUnavailableError,
                                                  match="corrupted or partial.*download failed"):
        data.ensure_mnist(tmp_path, mirrors=[dead_url], checksums=checksums, progress=False)


def test_wrong_bytes_from_a_mirror_are_rejected(server, tmp_path):
    url, checksums, served = server
    (served / "train-labels-idx1-ubyte.gz").write_bytes(b"not what was published")
    with pytest.raises(data.DataUnavailableError, match="expected"):
        data.ensure_mnist(tmp_path, mirrors=[url], checksums=checksums, progress=False)
    assert not (tmp_path / "mnist" / "train-labels-idx1-ubyte.gz").exists()
    assert not list((tmp_path / "mnist").glob("*.part"))


def test_valid_files_are_only_read(server, dead_url, tmp_path):
    url, checksums, _ = server
    folder = data.ensure_mnist(tmp_path, mirrors=[url], checksums=checksums, progress=False)
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    data.ensure_mnist(tmp_path, mirrors=[dead_url], checksums=checksums, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before


def test_unknown_split():
    with pytest.raises(ValueError, match="split"):
        data.load_mnist("validation")


def test_real_mnist(mnist_dir):
    """The official files: checksums as published, shapes, scaling, the first labels."""
    for name, md5 in data.MNIST_FILES.items():
        assert data.md5sum(mnist_dir / name) == md5
    x, y = data.load_mnist("train", download=False)
    assert x.shape == (60000, 784) and x.dtype == torch.float32
    assert y.shape == (60000,) and y.dtype == torch.int64
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    x_test, y_test = data.load_mnist("test", download=False)
    assert x_test.shape == (10000, 784) and y_test[:5].tolist() == [7, 2, 1, 0, 4]
    assert torch.bincount(y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
