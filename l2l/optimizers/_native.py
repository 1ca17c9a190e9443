"""A small compiled kernel for one coordinatewise LSTM layer, built with the system C compiler.

In plain PyTorch the LSTM step is memory-bound: every matrix product writes an ``[N, 4H]`` gates
tensor (5 MB for MNIST's 15,910 coordinates) and every ``sigmoid``, ``tanh``, ``mul`` and ``add``
reads and writes another (see ``benchmarks/README.md``). The two functions here do one layer's
whole step, and its whole derivative, block of 32 rows by block, so a block's gates stay in the L1
cache: the products with W_ih and W_hh (no concatenation), the gate arithmetic, and in backward
the weight gradients (per-thread sums) and the gradients of x and h. Rows are split over threads
with OpenMP. For the paper's H = 20 the products are written with explicit 8-float vectors (GCC
vector extensions) and blocked over rows so that the accumulators stay in registers: the forward
works two rows at a time (20 vectors of gate sums, activations applied in registers), the weight
gradients two input columns at a time over a block's rows (accumulated transposed, [I + H + 1, 4H]),
and dh four rows at a time (with I = 20, dx and dh together, two rows at a time); other sizes use
plain loops with fixed trip counts. σ and tanh are a rational function where that is accurate. The
backward pass flushes subnormal floats to zero in its own threads (x86 FTZ and DAZ), where they
would cost a microcode assist per operation.

The kernel is plain C (no PyTorch headers, ``lstm_kernel.c`` beside this module, shipped as
package data), so it compiles in about a second; it is built on first use into ``$L2L_CACHE``
(default ``~/.cache/l2l``), keyed by a hash of its source, flags and CPU, and called through
``ctypes`` on the tensors' memory. The build tries ``-march=native``, then a portable build; each
build must pass a self-check (forward and backward of every path against PyTorch autograd). If
there is no compiler, or no build passes, :func:`load` returns ``None``, the caller uses the
pure-PyTorch path, and one warning says why; :func:`status` says which engine runs. Set
``L2L_NATIVE=0`` to never try. Linked against ``libgomp.so.1``, it shares the OpenMP runtime that
PyTorch has already loaded, so both use the same thread pool size (``torch.set_num_threads``).

Gate order is ``torch.nn.LSTMCell``'s (i, f, g, o). For row n and unit j (H units, G = 4H):

    forward:  a = b + W_ih·x + W_hh·h
              i, f, o = σ(a_i), σ(a_f), σ(a_o);  g = tanh(a_g)
              c' = f·c + i·g;   h' = o·tanh(c')
    backward: dc̃ = dc' + dh'·o·(1 − tanh²c')
              da_o = dh'·tanh(c')·o(1 − o);  da_i = dc̃·g·i(1 − i)
              da_f = dc̃·c·f(1 − f);          da_g = dc̃·i·(1 − g²);   dc = dc̃·f
              dx = W_ihᵀ·da, dh = W_hhᵀ·da;  dW_ih += da·xᵀ, dW_hh += da·hᵀ, db += da
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from importlib import resources
from pathlib import Path

import torch
from torch import Tensor

#: the kernel's C source, package data beside this module
SOURCE_FILE = "lstm_kernel.c"


def source() -> str:
    """The text of the kernel's C source (:data:`SOURCE_FILE`)."""
    return resources.files(__package__).joinpath(SOURCE_FILE).read_text(encoding="utf-8")


#: -fno-trapping-math lets the compiler turn the branch-free selects into vector blends
FLAGS = ["-O3", "-std=gnu99", "-fPIC", "-shared", "-fopenmp", "-fno-math-errno",
         "-fno-trapping-math"]
#: how much slower MNIST meta-training and evaluation run on the PyTorch ("torch") engine
TORCH_SLOWDOWN = "about 1.5–2×"
_lock = threading.Lock()
_lib = None
_tried = False
_status = "not loaded yet"


def _cpu_tag() -> str:
    """Machine-specific part of the cache key (the build uses ``-march=native``)."""
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:
        pass
    return f"{platform.machine()}:{flags}"


class BuildError(RuntimeError):
    """The compiler failed; the message names it, its exit status and its first errors."""


def _first_lines(text: str, count: int = 2, width: int = 300) -> str:
    """The first ``count`` lines of compiler output ``text`` that say "error" (else "warning",
    else the first non-empty ones), joined by " | ", at most ``width`` characters."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = ([line for line in lines if "error" in line.lower()]
             or [line for line in lines if "warning" in line.lower()] or lines)[:count]
    joined = " | ".join(lines)
    return joined if len(joined) <= width else joined[:width - 1] + "…"


def _build(cc: str, march: bool, text: str | None = None) -> Path:
    """The shared library of the C source ``text`` (default: this kernel's, :func:`source`),
    compiled once into the cache. Raises :class:`BuildError` with the start of the compiler's
    error output if the build fails; the output of a successful build, if any, is kept beside the
    library (same name, ``.log``)."""
    text = source() if text is None else text
    flags = FLAGS + (["-march=native"] if march else [])
    key = hashlib.sha256("\n".join([text, cc, *flags, _cpu_tag()]).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("L2L_CACHE", Path.home() / ".cache" / "l2l"))
    lib = cache / f"lstm_kernel_{key}.so"
    if lib.exists():
        return lib
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        src = Path(tmp) / "lstm_kernel.c"
        src.write_text(text, encoding="utf-8")
        out = Path(tmp) / lib.name
        try:
            done = subprocess.run([cc, *flags, str(src), "-o", str(out)], capture_output=True,
                                  text=True, errors="replace", timeout=120)
        except subprocess.TimeoutExpired:
            raise BuildError(f"{Path(cc).name} took over 120 s") from None
        if done.returncode != 0 or not out.exists():
            detail = _first_lines(done.stderr.replace(str(src), SOURCE_FILE)) or "no output"
            raise BuildError(f"{Path(cc).name} exited with status {done.returncode}: {detail}")
        if done.stderr.strip():
            lib.with_suffix(".log").write_text(done.stderr.replace(str(src), SOURCE_FILE))
        os.replace(out, lib)  # atomic: a concurrent build leaves one complete file
    return lib


def _open(path: Path):
    """The built library at ``path`` with its functions' C signatures declared."""
    lib = ctypes.CDLL(str(path))
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    lib.l2l_lstm_forward.argtypes = [i64, i64, i64] + [ptr] * 10
    lib.l2l_lstm_forward.restype = None
    lib.l2l_lstm_backward.argtypes = [i64, i64, i64] + [ptr] * 13
    lib.l2l_lstm_backward.restype = None
    lib.l2l_encode.argtypes = [i64, ptr, ptr] + [ctypes.c_float] * 3
    lib.l2l_encode.restype = None
    return lib


#: the self-check's cases: (rows N, hidden H, input I, which of dx, dh, dc the backward computes).
#: H = 20 is the paper's LSTM, whose first layer reads I = 2 (encoded gradient), 1 (raw), 4 or 3
#: (with Adam's moments) and whose second layer reads I = 20; in meta-training the first step of
#: an unroll needs no dh or dc (the state is a constant) and the first layer no dx. N = 421 splits
#: over threads and ends in partial blocks; H = 5 is the generic path.
SELF_CHECK_CASES = [
    (421, 20, 2, (False, True, True)),
    (421, 20, 20, (True, True, True)),
    (421, 20, 20, (True, False, False)),
    (37, 20, 2, (True, False, True)),
    (37, 20, 4, (False, True, True)),
    (37, 20, 1, (True, True, True)),
    (37, 5, 3, (True, True, True)),
]


def _check_case(lib, N: int, H: int, I: int, need: tuple, g: torch.Generator) -> str | None:
    """One case of :func:`_self_check`: None if the kernel's forward (with and without saving)
    and backward match float64 autograd through the LSTM cell, else what differs."""
    x, h, c, dh, dc = (torch.randn(N, k, generator=g) for k in (I, H, H, H, H))
    bound = 2 * H ** -0.5  # twice the range of the LSTM's initial weights
    w_ih, w_hh, bias = ((2 * torch.rand(*shape, generator=g) - 1) * bound
                        for shape in ((4 * H, I), (4 * H, H), (4 * H,)))
    ref_in = [t.double().requires_grad_() for t in (x, h, c, w_ih, w_hh, bias)]
    xd, hd, cd, wid, whd, bd = ref_in
    i, f, gg, o = torch.addmm(bd, xd, wid.t()).addmm(hd, whd.t()).chunk(4, 1)
    c_ref = torch.sigmoid(f) * cd + torch.sigmoid(i) * torch.tanh(gg)
    h_ref = torch.sigmoid(o) * torch.tanh(c_ref)
    grads_ref = torch.autograd.grad((h_ref * dh.double()).sum() + (c_ref * dc.double()).sum(),
                                    ref_in)

    h1, c1, _, _ = forward(x, h, c, w_ih, w_hh, bias, False, lib)
    h2, c2, act, tanh_c = forward(x, h, c, w_ih, w_hh, bias, True, lib)
    dx, dh_prev, dc_prev, d_w_ih, d_w_hh, d_bias = backward(act, c, tanh_c, dh, dc, x, h, w_ih,
                                                            w_hh, need, lib)
    pairs = {"h'": (h1, h_ref), "c'": (c1, c_ref), "h' (saving)": (h2, h_ref),
             "c' (saving)": (c2, c_ref), "tanh(c')": (tanh_c, c_ref.tanh()),
             "dW_ih": (d_w_ih, grads_ref[3]), "dW_hh": (d_w_hh, grads_ref[4]),
             "db": (d_bias, grads_ref[5])}
    for name, got, ref in (("dx", dx, grads_ref[0]), ("dh", dh_prev, grads_ref[1]),
                           ("dc", dc_prev, grads_ref[2])):
        if need[("dx", "dh", "dc").index(name)]:
            pairs[name] = (got, ref)
    for name, (got, ref) in pairs.items():
        ref = ref.detach()
        error = (got.double() - ref).abs().max().item() if got is not None else math.inf
        if not error <= 1e-5 * max(1.0, ref.abs().max().item()):  # NaN fails too
            return f"{name} with N = {N}, H = {H}, I = {I}: max |difference| {error:.1e}"
    return None


def _self_check(lib) -> str | None:
    """Run the kernel on :data:`SELF_CHECK_CASES` and the gradient encoding on a few values,
    against PyTorch (guards against a bad build): None if all agree, else what failed."""
    g = torch.Generator().manual_seed(0)
    with torch.inference_mode(False), torch.enable_grad():
        for case in SELF_CHECK_CASES:
            failed = _check_case(lib, *case, g)
            if failed:
                return f"the self-check failed: {failed}"
    from ..preprocessing import preprocess_gradients

    grad = torch.randn(64, generator=g) * 10.0 ** torch.randint(-8, 4, (64,), generator=g)
    grad[:2] = 0.0
    out = grad.new_empty(64, 2)
    p = 10.0
    lib.l2l_encode(64, grad.data_ptr(), out.data_ptr(), math.exp(-p), p, math.exp(p))
    if not torch.allclose(out, preprocess_gradients(grad, p), rtol=1e-6, atol=1e-6):
        return "the self-check failed: the gradient encoding differs from preprocess_gradients"
    return None


def _unavailable(reason: str) -> None:
    """Record why the kernel is not used, and say it once."""
    global _status
    _status = f"native kernel unavailable: {reason}; PyTorch engine"
    warnings.warn(f"l2l: compiled LSTM kernel unavailable ({reason}); using the PyTorch engine, "
                  f"{TORCH_SLOWDOWN} slower", RuntimeWarning, stacklevel=3)


def load():
    """The compiled kernel library (a ``ctypes.CDLL``), or ``None`` where it cannot be built
    (then one ``RuntimeWarning`` says why, and so does :func:`status`)."""
    global _lib, _tried, _status
    if _tried:
        return _lib
    with _lock:
        if _tried:
            return _lib
        _tried = True
        if os.environ.get("L2L_NATIVE", "1") == "0":
            _unavailable("turned off by L2L_NATIVE=0")
            return None
        if sys.platform == "win32":
            _unavailable("not built on Windows")
            return None
        cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
        if cc is None:
            _unavailable("no C compiler: install gcc, or set CC")
            return None
        try:
            text = source()
        except OSError as error:
            _unavailable(f"its source {SOURCE_FILE} cannot be read: {error}")
            return None
        failures = []
        for march in (True, False):
            build = "the -march=native build" if march else "the portable build"
            try:
                path = _build(cc, march, text)
                lib = _open(path)
            except (OSError, AttributeError, BuildError) as error:  # AttributeError: no symbol
                failures.append((build, str(error)))
                continue
            try:
                failed = _self_check(lib)
            except Exception as error:  # any failure means: do not use this build
                failed = f"the self-check raised {type(error).__name__}: {error}"
            if failed:
                failures.append((build, failed))
                continue
            _lib = lib
            _status = (f"native kernel: built with{'' if march else 'out'} -march=native by "
                       f"{_compiler_name(cc)}, self-check passed")
            log = path.with_suffix(".log")
            if log.exists():
                messages = _first_lines(log.read_text(errors="replace"), 1, 120)
                _status += f" (compiler messages: {messages})"
            if failures:  # the portable build runs: say why the native one does not
                why = _failures(failures)
                _status += f" ({why})"
                warnings.warn(f"l2l: compiled LSTM kernel built without -march=native ({why}); "
                              "it may be slower", RuntimeWarning, stacklevel=2)
            return _lib
        _unavailable(_failures(failures))
        return None


def _failures(failures: list) -> str:
    """``[(build, what went wrong)]`` in words, once if every build failed alike."""
    if len(failures) > 1 and len({what for _, what in failures}) == 1:
        return f"both builds: {failures[0][1]}"
    return "; ".join(f"{build}: {what}" for build, what in failures)


def _compiler_name(cc: str) -> str:
    """``gcc 12.2.0``: the compiler's name and version (name only if it does not say)."""
    try:
        version = subprocess.run([cc, "-dumpfullversion", "-dumpversion"], capture_output=True,
                                 text=True, timeout=10).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        version = []
    return f"{Path(cc).name} {version[0]}" if version else Path(cc).name


def status() -> str:
    """One line saying which LSTM engine runs and why, e.g. ``native kernel: built with
    -march=native by gcc 12.2.0, self-check passed`` or ``native kernel unavailable: no C
    compiler: install gcc, or set CC; PyTorch engine`` (loads the kernel)."""
    load()
    return _status


def available() -> bool:
    """Whether the compiled kernel can be used here."""
    return load() is not None


def _ptr(t: Tensor | None):
    return None if t is None else t.data_ptr()


def forward(x: Tensor, h: Tensor, c: Tensor, w_ih: Tensor, w_hh: Tensor, bias: Tensor,
            save: bool, lib=None) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """One layer forward (float32, CPU): x ``[N, I]``, h and c ``[N, H]``, w_ih ``[4H, I]``,
    w_hh ``[4H, H]``, bias ``[4H]``. Returns (h', c', and with ``save`` the activations
    ``[N, 4H]`` and tanh(c') ``[N, H]`` that :func:`backward` needs, else None)."""
    N, H = h.shape
    I = x.shape[1]
    x, h, c = x.contiguous(), h.contiguous(), c.contiguous()
    wi_t, wh_t = w_ih.detach().t().contiguous(), w_hh.detach().t().contiguous()
    bias = bias.detach().contiguous()
    h_out, c_out = h.new_empty(N, H), h.new_empty(N, H)
    act = h.new_empty(N, 4 * H) if save else None
    tanh_c = h.new_empty(N, H) if save else None
    (lib or load()).l2l_lstm_forward(N, H, I, x.data_ptr(), h.data_ptr(), c.data_ptr(),
                                     wi_t.data_ptr(), wh_t.data_ptr(), bias.data_ptr(),
                                     _ptr(act), h_out.data_ptr(), c_out.data_ptr(), _ptr(tanh_c))
    return h_out, c_out, act, tanh_c


def encode(grad: Tensor, p: float) -> Tensor:
    """Appendix A's gradient encoding (:func:`l2l.preprocessing.preprocess_gradients`) in one
    pass, for float32 CPU gradients of any shape ``[...]`` → ``[..., 2]``; no autograd. Equal to
    the PyTorch function up to about 1 ulp of the logarithm."""
    g = grad.detach().contiguous()
    out = g.new_empty(*g.shape, 2)
    load().l2l_encode(g.numel(), g.data_ptr(), out.data_ptr(), math.exp(-p), p, math.exp(p))
    return out


def backward(act: Tensor, c: Tensor, tanh_c: Tensor, dh: Tensor | None, dc: Tensor | None,
             x: Tensor, h: Tensor, w_ih: Tensor, w_hh: Tensor, need: tuple, lib=None) -> tuple:
    """Derivative of :func:`forward` given dh', dc' (None: zero). ``need`` = (dx, dh, dc) flags.
    Returns (dx ``[N, I]``, dh ``[N, H]``, dc ``[N, H]`` (None where not needed), dW_ih ``[4H, I]``,
    dW_hh ``[4H, H]``, db ``[4H]``)."""
    N, H = h.shape
    I = x.shape[1]
    G = 4 * H
    if dh is None or dc is None:  # the kernel reads both: a missing gradient is zero
        zero = act.new_zeros(N, H)
        dh, dc = (zero if dh is None else dh), (zero if dc is None else dc)
    dx = act.new_empty(N, I) if need[0] else None
    dh_prev = act.new_empty(N, H) if need[1] else None
    dc_prev = act.new_empty(N, H) if need[2] else None
    grads = torch.empty(G * (I + H + 1), dtype=torch.float64)
    # contiguous copies are kept in variables: a temporary would be freed before the call
    c, dh, dc, x, h = (t.contiguous() for t in (c, dh, dc, x, h))
    w_ih, w_hh = w_ih.detach().contiguous(), w_hh.detach().contiguous()
    (lib or load()).l2l_lstm_backward(
        N, H, I, act.data_ptr(), c.data_ptr(), tanh_c.data_ptr(), dh.data_ptr(), dc.data_ptr(),
        x.data_ptr(), h.data_ptr(), w_ih.data_ptr(), w_hh.data_ptr(), _ptr(dx), _ptr(dh_prev),
        _ptr(dc_prev), grads.data_ptr())
    grads = grads.to(act.dtype)
    d_w_ih, d_w_hh, d_bias = grads.split([G * I, G * H, G])
    return dx, dh_prev, dc_prev, d_w_ih.view(G, I), d_w_hh.view(G, H), d_bias
