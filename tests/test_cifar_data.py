"""The CIFAR-10 loader: the official archive's conversion, checksums, the recovered copy, errors.

Downloads are served from a local HTTP server on 127.0.0.1 with a small archive of the official
structure; the real data are checked where they exist (``L2L_DATA``, or the data folder beside
the checkout, see conftest.py), including the exact official pixels of the recovered copy's lossless subset.
"""

import gzip
import hashlib
import io
import logging
import os
import pickle
import tarfile
import time

import numpy as np
import pytest
import torch
from conftest import serve_folder

from l2l import data

SIZES = {"data_batch_1": 3, "data_batch_2": 2, "data_batch_3": 2, "data_batch_4": 1,
         "data_batch_5": 2, "test_batch": 3}


def fake_archive(folder) -> tuple[dict, dict]:
    """Write a small ``cifar-10-python.tar.gz`` of the official structure to ``folder``.

    Returns ({file name: md5} for the archive and its batches, {split: (images [N, 32, 32, 3]
    HWC, labels [N])} as they should come out).
    """
    rng = np.random.default_rng(0)
    members, checksums, splits = {}, {}, {"train": ([], []), "test": ([], [])}
    for name, n in SIZES.items():
        images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)  # CHW, as in the batches
        labels = [int(v) for v in rng.integers(0, 10, n)]
        raw = pickle.dumps({b"batch_label": name.encode(), b"labels": labels,
                            b"data": images.reshape(n, 3072), b"filenames": [b"x.png"] * n})
        members[name] = raw
        split = "test" if name == "test_batch" else "train"
        splits[split][0].append(images.transpose(0, 2, 3, 1))
        splits[split][1].append(np.array(labels, dtype=np.uint8))
    members["batches.meta"] = pickle.dumps({b"label_names": [c.encode() for c in data.CIFAR10_CLASSES]})
    members["readme.html"] = b"<html></html>"
    buffer = io.BytesIO()
    # mtime=0: the gzip header otherwise records the current second, and two calls that straddle
    # a second would write archives with different checksums
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as packed, \
            tarfile.open(fileobj=packed, mode="w") as tar:
        for name in ["data_batch_4", "readme.html", "test_batch", "data_batch_3", "batches.meta",
                     "data_batch_2", "data_batch_5", "data_batch_1"]:  # the official order
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(members[name])
            tar.addfile(info, io.BytesIO(members[name]))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / data.CIFAR10_ARCHIVE).write_bytes(buffer.getvalue())
    checksums = {name: hashlib.md5(raw).hexdigest() for name, raw in members.items()
                 if name != "readme.html"}
    checksums[data.CIFAR10_ARCHIVE] = hashlib.md5(buffer.getvalue()).hexdigest()
    expected = {split: (np.concatenate(x), np.concatenate(y)) for split, (x, y) in splits.items()}
    return checksums, expected


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving a fake archive: (base URL, checksums, expected)."""
    served = tmp_path / "served"
    checksums, expected = fake_archive(served)
    with serve_folder(served) as url:
        yield url, checksums, expected


def check_split(x, y, expected):
    images, labels = expected
    assert x.dtype == torch.uint8 and x.shape == (len(labels), 3, 32, 32) and x.is_contiguous()
    assert y.dtype == torch.int64 and y.tolist() == labels.tolist()
    np.testing.assert_array_equal(x.permute(0, 2, 3, 1).numpy(), images)


def test_download_check_convert_and_load(server, tmp_path, caplog):
    url, checksums, expected = server
    caplog.set_level(logging.INFO, logger="l2l.data")
    x, y = data.load_cifar10("train", tmp_path, mirrors=[url], checksums=checksums, progress=False)
    check_split(x, y, expected["train"])
    assert len(y) == 10  # the five train batches, in order
    folder = tmp_path / "cifar10"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [data.CIFAR10_ARCHIVE, data.CIFAR10_MARKER, *data.CIFAR10_CACHE.values()])  # no .part
    with np.load(folder / "cifar10_test.npz") as cached:  # the recovered copy's layout
        assert cached["x"].dtype == np.uint8 and cached["x"].shape == (3, 32, 32, 3)
        assert cached["y"].dtype == np.uint8
    assert data.cifar10_source(tmp_path) == "official"
    assert [r.levelname for r in caplog.records] == ["INFO"]
    assert "official" in caplog.text and str(folder) in caplog.text
    x_test, y_test = data.load_cifar10("test", tmp_path, mirrors=[url], checksums=checksums)
    check_split(x_test, y_test, expected["test"])
    assert len(caplog.records) == 1  # said once per folder
    assert data.load_cifar10("train", tmp_path)[0] is x  # read once per process


def test_archive_in_the_folder_is_converted_without_network(server, dead_url, tmp_path):
    _, checksums, expected = server
    fake_archive(tmp_path / "cifar10")  # the same bytes (seeded)
    x, y = data.load_cifar10("test", tmp_path, download=False, mirrors=[dead_url],
                             checksums=checksums)
    check_split(x, y, expected["test"])


def test_a_batch_with_the_wrong_checksum_is_rejected(server, tmp_path):
    url, checksums, _ = server
    checksums = {**checksums, "data_batch_3": "0" * 32}
    with pytest.raises(data.DataUnavailableError, match="data_batch_3 has md5"):
        data.ensure_cifar10(tmp_path, mirrors=[url], checksums=checksums, progress=False)
    left = sorted(p.name for p in (tmp_path / "cifar10").iterdir())
    assert left == [data.CIFAR10_ARCHIVE]  # nothing converted, no temporary files


def test_wrong_archive_from_a_mirror_is_rejected(server, tmp_path):
    url, checksums, _ = server
    checksums = {**checksums, data.CIFAR10_ARCHIVE: "0" * 32}
    with pytest.raises(data.DataUnavailableError, match="expected 0{32}"):
        data.ensure_cifar10(tmp_path, mirrors=[url], checksums=checksums, progress=False)
    assert not list((tmp_path / "cifar10").iterdir())


def test_offline_and_missing_gives_a_clear_error(dead_url, tmp_path):
    with pytest.raises(data.DataUnavailableError) as error:
        data.load_cifar10("train", tmp_path, mirrors=[dead_url], progress=False)
    message = str(error.value)
    assert "cifar-10-python.tar.gz is missing" in message and "download failed" in message
    assert "cifar10_train.npz" in message and str(tmp_path / "cifar10") in message
    assert "L2L_DATA" in message and data.CIFAR10_FILES[data.CIFAR10_ARCHIVE] in message
    with pytest.raises(data.DataUnavailableError, match="downloading is off"):
        data.load_cifar10("test", tmp_path, download=False)


def test_converted_files_without_marker_are_the_recovered_copy(server, tmp_path, caplog,
                                                               monkeypatch):
    url, checksums, expected = server
    data.ensure_cifar10(tmp_path, mirrors=[url], checksums=checksums, progress=False)
    folder = tmp_path / "cifar10"
    (folder / data.CIFAR10_MARKER).unlink()
    (folder / data.CIFAR10_ARCHIVE).unlink()
    monkeypatch.setattr(data, "_CIFAR10_SOURCES", {})
    assert data.cifar10_source(tmp_path) == "recovered"
    with caplog.at_level(logging.INFO, logger="l2l.data"):
        x, y = data.load_cifar10("train", tmp_path, download=False)
        data.load_cifar10("test", tmp_path, download=False)
    check_split(x, y, expected["train"])
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "recovered copy" in caplog.text and f"{folder.name}/" in caplog.text


def test_a_marker_that_does_not_match_the_files_is_not_believed(server, tmp_path, monkeypatch,
                                                                caplog):
    url, checksums, _ = server
    data.ensure_cifar10(tmp_path, mirrors=[url], checksums=checksums, progress=False)
    folder = tmp_path / "cifar10"
    with np.load(folder / "cifar10_test.npz") as cached:
        x, y = cached["x"].copy(), cached["y"]
    x[0, 0, 0] ^= 1  # a different (e.g. recovered) file put in place of the converted one
    np.savez(folder / "cifar10_test.npz", x=x, y=y)
    monkeypatch.setattr(data, "_CIFAR10_SOURCES", {})
    with caplog.at_level(logging.WARNING, logger="l2l.data"):
        assert data.cifar10_source(tmp_path) == "recovered"
    assert "checksum mismatch" in caplog.text  # and says why
    assert "cifar10_test.npz has md5" in caplog.text and "cifar10_train.npz" not in caplog.text
    assert data.cifar10_source(tmp_path / "elsewhere") == "missing"


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_converted_file_names_itself_and_the_fix(tmp_path, damage):
    folder = tmp_path / "cifar10"
    folder.mkdir()
    for name in data.CIFAR10_CACHE.values():
        np.savez(folder / name, x=np.full((4, 32, 32, 3), 7, np.uint8), y=np.arange(4, dtype=np.uint8))
    path = folder / "cifar10_train.npz"
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        raw = raw[:len(raw) // 2]
    else:
        raw[len(raw) // 3] ^= 0x10  # one bit in the pixels: the zip's CRC catches it
    path.write_bytes(bytes(raw))
    with pytest.raises(data.DataUnavailableError) as error:
        data.load_cifar10("train", tmp_path, download=False)
    message = str(error.value)
    assert str(path) in message and "truncated or corrupted" in message and "delete it" in message
    assert "\n" not in message


def test_converting_says_when_it_replaces_a_file_already_there(server, tmp_path):
    url, checksums, expected = server
    folder = tmp_path / "cifar10"
    folder.mkdir()
    np.savez(folder / "cifar10_train.npz", x=np.zeros((1, 32, 32, 3), np.uint8), y=np.zeros(1, np.uint8))
    with pytest.warns(UserWarning, match="replacing .*cifar10_train.npz"):
        data.ensure_cifar10(tmp_path, mirrors=[url], checksums=checksums, progress=False)
    x, y = data.load_cifar10("train", tmp_path, download=False)
    check_split(x, y, expected["train"])


def test_unreadable_or_misshapen_files_say_so(tmp_path):
    folder = tmp_path / "cifar10"
    folder.mkdir()
    np.savez(folder / "cifar10_train.npz", x=np.zeros((2, 3, 32, 32), np.uint8), y=np.zeros(2, np.uint8))
    (folder / "cifar10_test.npz").write_bytes(b"not a zip")
    with pytest.raises(data.DataUnavailableError, match="expected.*32, 32, 3"):
        data.load_cifar10("train", tmp_path, download=False)
    with pytest.raises(data.DataUnavailableError, match="cannot be read.*delete it"):
        data.load_cifar10("test", tmp_path, download=False)


def test_read_cifar_batch_checks_the_structure():
    images = np.arange(2 * 3072).astype(np.uint8).reshape(2, 3072)
    x, y = data.read_cifar_batch(pickle.dumps({b"data": images, b"labels": [1, 9]}))
    assert x.shape == (2, 32, 32, 3) and y.tolist() == [1, 9]
    assert x[1, 0, 1].tolist() == [images[1, 1], images[1, 1025], images[1, 2049]]  # R, G, B planes
    with pytest.raises(ValueError, match="not a CIFAR batch"):
        data.read_cifar_batch(pickle.dumps({"data": images}))
    with pytest.raises(ValueError, match="expected uint8"):
        data.read_cifar_batch(pickle.dumps({b"data": images[:, :100], b"labels": [1, 9]}))
    with pytest.raises(ValueError, match="outside"):
        data.read_cifar_batch(pickle.dumps({b"data": images, b"labels": [1, 10]}))


def test_unknown_split():
    with pytest.raises(ValueError, match="split"):
        data.load_cifar10("validation")


# ------------------------------------------------------------------------- the real data

@pytest.fixture(scope="module")
def cifar10_dir(shared_data_dir):
    """The data dir holding the real CIFAR-10 (official or recovered); skips if absent."""
    if data.cifar10_source() == "missing":
        pytest.skip(f"CIFAR-10 absent from {data.cifar10_folder()}")
    return data.cifar10_folder()


def test_real_cifar10(cifar10_dir):
    """Shapes, label counts, the official first labels, and the official first pixels (exact on
    the official data, within the JPEG error on the recovered copy)."""
    x, y = data.load_cifar10("train", download=False)
    assert x.shape == (50000, 3, 32, 32) and x.dtype == torch.uint8
    assert torch.bincount(y).tolist() == [5000] * 10
    assert y[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    x_test, y_test = data.load_cifar10("test", download=False)
    assert x_test.shape == (10000, 3, 32, 32) and torch.bincount(y_test).tolist() == [1000] * 10
    assert y_test[:5].tolist() == [3, 8, 8, 0, 6]
    tolerance = 0 if data.cifar10_source() == "official" else 20
    assert (x[0, :, 0, 0].int() - torch.tensor([59, 62, 63])).abs().max() <= tolerance
    assert (x_test[0, :, 0, 0].int() - torch.tensor([158, 112, 49])).abs().max() <= tolerance


def test_recovered_copy_against_its_lossless_subset(cifar10_dir):
    """The lossless subset holds the exact official pixels; the loaded data have its labels and,
    unless official (then exactly), its pixels within the JPEG error (MAE about 5.8)."""
    path = cifar10_dir / "cifar10_lossless_subset.npz"
    if not path.is_file():
        pytest.skip(f"no lossless subset in {cifar10_dir}")
    with np.load(path) as subset:
        exact_train, labels_train = subset["x_train_first4000"], subset["y_train_first4000"]
        exact_test, labels_test = subset["x_test_first1000"], subset["y_test_first1000"]
    assert exact_train[0, 0, 0].tolist() == [59, 62, 63] and labels_train[0] == 6
    assert exact_test[0, 0, 0].tolist() == [158, 112, 49] and labels_test[0] == 3
    for split, exact, labels in (("train", exact_train, labels_train), ("test", exact_test, labels_test)):
        x, y = data.load_cifar10(split, download=False)
        n = len(labels)
        assert y[:n].tolist() == labels.tolist()
        error = np.abs(x[:n].permute(0, 2, 3, 1).numpy().astype(np.int16) - exact).mean()
        if data.cifar10_source() == "official":
            assert error == 0
        else:
            assert 3 < error < 6.5, error


def test_parts_left_by_a_killed_conversion_are_removed_when_stale(server, tmp_path):
    url, checksums, _ = server
    folder = tmp_path / "cifar10"
    folder.mkdir()
    old, fresh = folder / ".cifar10_train.npz.a1b2.part", folder / ".cifar10_test.npz.c3d4.part"
    for part in (old, fresh):
        part.write_bytes(b"half a file")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    data.ensure_cifar10(tmp_path, mirrors=[url], checksums=checksums, progress=False)
    assert not old.exists()  # killed long ago
    assert fresh.exists()  # may be another process's conversion at work
