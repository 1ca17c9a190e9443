"""The compiled kernel's build: one warning and a status line when it cannot be used, and a
self-check that catches a wrong forward or backward."""

import ctypes
import shutil
import warnings

import pytest

from l2l.optimizers import _native

HAS_CC = bool(shutil.which("gcc") or shutil.which("cc"))


@pytest.fixture
def fresh_native(monkeypatch, tmp_path):
    """``_native`` as if not loaded yet, building into an empty cache; its state is put back
    afterwards, so the other tests keep the kernel they loaded."""
    saved = _native._lib, _native._tried, _native._status
    monkeypatch.setenv("L2L_CACHE", str(tmp_path))
    monkeypatch.delenv("L2L_NATIVE", raising=False)
    _native._lib, _native._tried, _native._status = None, False, "not loaded yet"
    yield tmp_path
    _native._lib, _native._tried, _native._status = saved


def _load_twice() -> list:
    """Load (and ask again) with every warning recorded; the l2l warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = _native.load()
        assert _native.load() is first and _native.available() is (first is not None)
    return [w for w in caught if str(w.message).startswith("l2l:")]


@pytest.mark.skipif(not HAS_CC, reason="no C compiler")
def test_a_source_that_does_not_compile_gives_the_pytorch_engine_and_says_why(
        fresh_native, monkeypatch):
    monkeypatch.setattr(_native, "source", lambda: "this is not C;\n")
    said = _load_twice()
    assert _native.load() is None
    assert len(said) == 1 and issubclass(said[0].category, RuntimeWarning)
    message = str(said[0].message)
    assert "unavailable" in message and "exited with status" in message
    assert "PyTorch engine" in message and "slower" in message
    status = _native.status()
    assert status.startswith("native kernel unavailable: both builds: ")
    assert "exited with status" in status and "lstm_kernel.c" in status
    assert not list(fresh_native.glob("*.so"))


def test_no_compiler_or_turned_off_is_said_once(fresh_native, monkeypatch):
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setattr(_native.shutil, "which", lambda name: None)
    said = _load_twice()
    assert len(said) == 1 and "no C compiler" in str(said[0].message)
    assert "no C compiler" in _native.status()

    _native._lib, _native._tried = None, False
    monkeypatch.setenv("L2L_NATIVE", "0")
    said = _load_twice()
    assert len(said) == 1 and "L2L_NATIVE=0" in _native.status()


@pytest.mark.skipif(not _native.available(), reason="no C compiler: PyTorch fallback only")
def test_status_of_a_working_kernel():
    assert _native.status().startswith("native kernel: built with")
    assert "self-check passed" in _native.status()


class _Skewed:
    """The kernel library, with one output of the backward for H = I = 20 changed by ``by``."""

    def __init__(self, lib, output: str, by: float = 1e-2):
        self.lib, self.output, self.by = lib, output, by
        self.l2l_lstm_forward, self.l2l_encode = lib.l2l_lstm_forward, lib.l2l_encode

    def l2l_lstm_backward(self, N, H, I, *pointers):
        self.lib.l2l_lstm_backward(N, H, I, *pointers)
        if H == I == 20:
            if self.output == "db":  # grads: dW_ih [4H, I], dW_hh [4H, H], db [4H] (double)
                ctypes.c_double.from_address(pointers[12] + 8 * 4 * H * (I + H)).value += self.by
            else:  # dx [N, I] (float)
                ctypes.c_float.from_address(pointers[9] + 4 * (N * I - 1)).value += self.by


@pytest.mark.skipif(not _native.available(), reason="no C compiler: PyTorch fallback only")
@pytest.mark.parametrize("output", ["db", "dx"])
def test_the_self_check_covers_the_backward_of_the_papers_lstm(output):
    lib = _native.load()
    assert _native._self_check(lib) is None
    failed = _native._self_check(_Skewed(lib, output))
    assert failed.startswith(f"the self-check failed: {output} with N = 421, H = 20, I = 20")
