"""A small compiled kernel for the LSTM gate arithmetic, built with the system C compiler.

The coordinatewise LSTM spends as much time in its gate nonlinearities as in its matrix products
(see ``benchmarks/README.md``): PyTorch runs each ``sigmoid``, ``tanh``, ``mul`` and ``add`` as a
separate pass over ``[N, 4H]`` tensors. The two functions here do the whole gate update of one
layer (forward), and its whole derivative (backward), in one pass over the rows, vectorised and
split over threads with OpenMP.

The kernel is plain C (no PyTorch headers), so it compiles in about a second; it is built on first
use into ``$L2L_CACHE`` (default ``~/.cache/l2l``), keyed by a hash of its source and flags, and
called through ``ctypes`` on the tensors' memory. If there is no compiler, or the build or a
self-check fails, :func:`load` returns ``None`` and the caller uses the pure-PyTorch path; set
``L2L_NATIVE=0`` to never try. Linked against ``libgomp.so.1``, it shares the OpenMP runtime that
PyTorch has already loaded, so both use the same thread pool size (``torch.set_num_threads``).

Gate order is ``torch.nn.LSTMCell``'s (i, f, g, o). For row n and unit j (H units, G = 4H):

    forward:  a = b + x·W_xᵀ + pre        (pre = h·W_hhᵀ [+ x·W_ihᵀ], from a matrix product)
              i, f, o = σ(a_i), σ(a_f), σ(a_o);  g = tanh(a_g)
              c' = f·c + i·g;   h' = o·tanh(c')
    backward: dc̃ = dc' + dh'·o·(1 − tanh²c')
              da_o = dh'·tanh(c')·o(1 − o);  da_i = dc̃·g·i(1 − i)
              da_f = dc̃·c·f(1 − f);          da_g = dc̃·i·(1 − g²);   dc = dc̃·f
              and column sums Σ_n da (the bias gradient) and Σ_n x·da (W_x's gradient).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import torch
from torch import Tensor

SOURCE = r"""
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* exp(x) for float, accurate to about 2 ulp, branch-free so that it vectorises; NaN stays NaN. */
static inline float l2l_exp(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    const float magic = 12582912.0f;             /* 1.5 * 2^23: round to nearest integer */
    float n = (x * 1.44269504088896341f + magic) - magic;
    float r = x - n * 0.693359375f;              /* Cody-Waite: ln 2 = hi + lo */
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return y * scale;
}

static inline float l2l_sigmoid(float x) { return 1.0f / (1.0f + l2l_exp(-x)); }

/* tanh via exp(-2|x|); for tiny |x| the odd Taylor series keeps full relative accuracy. */
static inline float l2l_tanh(float x) {
    float ax = x < 0.0f ? -x : x;
    float e = l2l_exp(-2.0f * ax);
    float t = (1.0f - e) / (1.0f + e);
    float x2 = x * x;
    float small = ax * (1.0f + x2 * (-0.333333333f + x2 * (0.133333333f - x2 * 0.0539682540f)));
    t = ax < 0.0625f ? small : t;
    return x < 0.0f ? -t : t;
}

/* One layer's gates, forward. gates [N, 4H] holds the matrix-product part on entry and the
   activations (i, f, g, o) on exit. x [N, I] with wx_t [I, 4H] (may be I = 0), bias [4H],
   c [N, H]; writes h_out, c_out [N, H] and, if not NULL, tanh_c [N, H]. */
void l2l_lstm_forward(int64_t N, int64_t H, int64_t I, float *gates, const float *x,
                      const float *wx_t, const float *bias, const float *c,
                      float *h_out, float *c_out, float *tanh_c) {
    const int64_t G = 4 * H;
    #pragma omp parallel for schedule(static) if (N * G > 32768)
    for (int64_t n = 0; n < N; n++) {
        float *a = gates + n * G;
        const float *xn = x ? x + n * I : NULL;
        #pragma omp simd
        for (int64_t k = 0; k < G; k++) {
            float v = a[k] + bias[k];
            for (int64_t m = 0; m < I; m++) v += xn[m] * wx_t[m * G + k];
            a[k] = v;
        }
        const float *cn = c + n * H;
        float *hn = h_out + n * H, *cn_out = c_out + n * H;
        if (tanh_c) {  /* two copies of the loop: a conditional store would stop vectorisation */
            float *tn = tanh_c + n * H;
            #pragma omp simd
            for (int64_t j = 0; j < H; j++) {
                float i = l2l_sigmoid(a[j]), f = l2l_sigmoid(a[H + j]);
                float g = l2l_tanh(a[2 * H + j]), o = l2l_sigmoid(a[3 * H + j]);
                float cc = f * cn[j] + i * g, tc = l2l_tanh(cc);
                a[j] = i; a[H + j] = f; a[2 * H + j] = g; a[3 * H + j] = o;
                cn_out[j] = cc; hn[j] = o * tc; tn[j] = tc;
            }
        } else {
            #pragma omp simd
            for (int64_t j = 0; j < H; j++) {
                float i = l2l_sigmoid(a[j]), f = l2l_sigmoid(a[H + j]);
                float g = l2l_tanh(a[2 * H + j]), o = l2l_sigmoid(a[3 * H + j]);
                float cc = f * cn[j] + i * g;
                cn_out[j] = cc; hn[j] = o * l2l_tanh(cc);
            }
        }
    }
}

/* One layer's gates, backward. act [N, 4H] from the forward; c [N, H] the previous cell state;
   tanh_c [N, H]; dh, dc [N, H] the incoming gradients. Writes
   dgates [N, 4H], dc_prev [N, H] (if not NULL) and, in sums [(I + 1), 4H], row m < I:
   Σ_n x[n, m]·dgates[n, :], row I: Σ_n dgates[n, :]. */
void l2l_lstm_backward(int64_t N, int64_t H, int64_t I, const float *act, const float *c,
                       const float *tanh_c, const float *dh, const float *dc, const float *x,
                       float *dgates, float *dc_prev, double *sums) {
    const int64_t G = 4 * H;
    const int64_t S = (I + 1) * G;
    for (int64_t k = 0; k < S; k++) sums[k] = 0.0;
    #pragma omp parallel if (N * G > 32768)
    {
        float local[S];
        double total[S];
        for (int64_t k = 0; k < S; k++) { local[k] = 0.0f; total[k] = 0.0; }
        int64_t rows = 0;
        #pragma omp for schedule(static)
        for (int64_t n = 0; n < N; n++) {
            const float *a = act + n * G;
            float *d = dgates + n * G;
            const float *cn = c + n * H, *tn = tanh_c + n * H;
            #pragma omp simd
            for (int64_t j = 0; j < H; j++) {
                float i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j];
                float tc = tn[j];
                float dhv = dh[n * H + j], dcv = dc[n * H + j];
                float dct = dcv + dhv * o * (1.0f - tc * tc);
                d[j] = dct * g * i * (1.0f - i);
                d[H + j] = dct * cn[j] * f * (1.0f - f);
                d[2 * H + j] = dct * i * (1.0f - g * g);
                d[3 * H + j] = dhv * tc * o * (1.0f - o);
                if (dc_prev) dc_prev[n * H + j] = dct * f;
            }
            const float *xn = x ? x + n * I : NULL;
            for (int64_t m = 0; m < I; m++) {
                float xm = xn[m];
                #pragma omp simd
                for (int64_t k = 0; k < G; k++) local[m * G + k] += xm * d[k];
            }
            #pragma omp simd
            for (int64_t k = 0; k < G; k++) local[I * G + k] += d[k];
            if (++rows == 256) {   /* short float sums, accumulated in double */
                for (int64_t k = 0; k < S; k++) { total[k] += local[k]; local[k] = 0.0f; }
                rows = 0;
            }
        }
        for (int64_t k = 0; k < S; k++) total[k] += local[k];
        #pragma omp critical
        for (int64_t k = 0; k < S; k++) sums[k] += total[k];
    }
}
"""

#: -fno-trapping-math lets the compiler turn the branch-free selects into vector blends
FLAGS = ["-O3", "-std=c99", "-fPIC", "-shared", "-fopenmp", "-fno-math-errno",
         "-fno-trapping-math"]
_lock = threading.Lock()
_lib = None
_tried = False


def _cpu_tag() -> str:
    """Machine-specific part of the cache key (the build uses ``-march=native``)."""
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:
        pass
    return f"{platform.machine()}:{flags}"


def _build(cc: str, march: bool) -> Path:
    flags = FLAGS + (["-march=native"] if march else [])
    key = hashlib.sha256("\n".join([SOURCE, cc, *flags, _cpu_tag()]).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("L2L_CACHE", Path.home() / ".cache" / "l2l"))
    lib = cache / f"lstm_kernel_{key}.so"
    if lib.exists():
        return lib
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        src = Path(tmp) / "lstm_kernel.c"
        src.write_text(SOURCE)
        out = Path(tmp) / lib.name
        subprocess.run([cc, *flags, str(src), "-o", str(out)], check=True, capture_output=True,
                       timeout=120)
        os.replace(out, lib)  # atomic: a concurrent build leaves one complete file
    return lib


def _self_check(lib) -> bool:
    """Run the kernel on a few rows and compare with PyTorch (guards against a bad build)."""
    g = torch.Generator().manual_seed(0)
    N, H = 37, 5
    pre = 3 * torch.randn(N, 4 * H, generator=g)
    c = torch.randn(N, H, generator=g)
    a, h, c2, t = pre.clone(), torch.empty(N, H), torch.empty(N, H), torch.empty(N, H)
    zero = torch.zeros(4 * H)
    lib.l2l_lstm_forward(N, H, 0, a.data_ptr(), None, None, zero.data_ptr(), c.data_ptr(),
                         h.data_ptr(), c2.data_ptr(), t.data_ptr())
    i, f, gg, o = pre.chunk(4, 1)
    c_ref = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
    h_ref = torch.sigmoid(o) * torch.tanh(c_ref)
    return bool(torch.allclose(c2, c_ref, atol=1e-6, rtol=1e-5)
                and torch.allclose(h, h_ref, atol=1e-6, rtol=1e-5))


def load():
    """The compiled kernel library (a ``ctypes.CDLL``), or ``None`` where it cannot be built."""
    global _lib, _tried
    if _tried:
        return _lib
    with _lock:
        if _tried:
            return _lib
        _tried = True
        if os.environ.get("L2L_NATIVE", "1") == "0" or sys.platform == "win32":
            return None
        cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
        if cc is None:
            return None
        for march in (True, False):
            try:
                lib = ctypes.CDLL(str(_build(cc, march)))
            except (OSError, subprocess.SubprocessError):
                continue
            i64, ptr = ctypes.c_int64, ctypes.c_void_p
            lib.l2l_lstm_forward.argtypes = [i64, i64, i64] + [ptr] * 8
            lib.l2l_lstm_forward.restype = None
            lib.l2l_lstm_backward.argtypes = [i64, i64, i64] + [ptr] * 9
            lib.l2l_lstm_backward.restype = None
            if _self_check(lib):
                _lib = lib
                break
        return _lib


def available() -> bool:
    """Whether the compiled kernel can be used here."""
    return load() is not None


def _ptr(t: Tensor | None):
    return None if t is None else t.data_ptr()


def forward(gates: Tensor, x: Tensor | None, wx_t: Tensor | None, bias: Tensor, c: Tensor,
            save_tanh: bool) -> tuple[Tensor, Tensor, Tensor | None]:
    """Gate update of one layer. ``gates [N, 4H]`` (contiguous float32) enters with the matrix
    product part and leaves with the activations; returns (h' ``[N, H]``, c' ``[N, H]``,
    tanh(c') or None)."""
    N, G = gates.shape
    H = G // 4
    I = 0 if x is None else x.shape[1]
    h, c_out = gates.new_empty(N, H), gates.new_empty(N, H)
    tanh_c = gates.new_empty(N, H) if save_tanh else None
    load().l2l_lstm_forward(N, H, I, gates.data_ptr(), _ptr(x), _ptr(wx_t), bias.data_ptr(),
                            c.data_ptr(), h.data_ptr(), c_out.data_ptr(), _ptr(tanh_c))
    return h, c_out, tanh_c


def backward(act: Tensor, c: Tensor, tanh_c: Tensor, dh: Tensor | None, dc: Tensor | None,
             x: Tensor | None, need_dc: bool) -> tuple[Tensor, Tensor | None, Tensor]:
    """Derivative of :func:`forward`. Returns (d gates ``[N, 4H]``, dc ``[N, H]`` or None,
    sums ``[I + 1, 4H]``: Σ_n xᵀ·d gates for each input column, then Σ_n d gates)."""
    N, G = act.shape
    H = G // 4
    I = 0 if x is None else x.shape[1]
    if dh is None or dc is None:  # the kernel reads both: a missing gradient is zero
        zero = act.new_zeros(N, H)
        dh, dc = (zero if dh is None else dh), (zero if dc is None else dc)
    dgates = act.new_empty(N, G)
    dc_prev = act.new_empty(N, H) if need_dc else None
    sums = torch.empty(I + 1, G, dtype=torch.float64)
    load().l2l_lstm_backward(N, H, I, act.data_ptr(), c.data_ptr(), tanh_c.data_ptr(), _ptr(dh),
                             _ptr(dc), _ptr(x), dgates.data_ptr(), _ptr(dc_prev),
                             sums.data_ptr())
    return dgates, dc_prev, sums.to(act.dtype)
