"""Keeping freed memory in the process during meta-training (glibc only).

Every truncation of a meta-training epoch allocates the same tensors again: for MNIST's 15,910
coordinates, the saved gate activations alone are 5 MB per LSTM layer and step. glibc's malloc
serves blocks that large with ``mmap`` (above a threshold that adapts, up to 32 MB) and returns
the top of its heap to the system when it is freed, so each truncation faults its pages in again:
about 750 page faults per MNIST meta-training step, 10–15% of its CPU time on the development
machine (``benchmarks/README.md``). Raising the mmap threshold to its maximum and never trimming
keeps those pages for reuse. Peak memory is unchanged; memory the process frees is not given back
to the system until it exits.
"""

from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_applied = None


def retain_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse (once per process).

    Returns whether the setting is in effect: False on other C libraries, or when the environment
    variable ``L2L_RETAIN_MEMORY`` is ``0``.
    """
    global _applied
    if _applied is None:
        _applied = False
        if sys.platform.startswith("linux") and os.environ.get("L2L_RETAIN_MEMORY", "1") != "0":
            try:
                mallopt = ctypes.CDLL(None).mallopt
            except (OSError, AttributeError):
                return False
            mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
            _applied = bool(mallopt(_M_MMAP_THRESHOLD, 32 * 2**20)
                            and mallopt(_M_TRIM_THRESHOLD, 2**30))
    return _applied
