"""The coefficients of the native kernel's fast tanh (``l2l/optimizers/lstm_kernel.c``).

tanh(x) ≈ x·P(x²)/Q(x²) on |x| ≤ 4, P of degree 4 and Q of degree 3 in x², Q(0) = 1, with the
smallest maximum relative error. Found by linearised weighted least squares (the residual
x·P − tanh·Q, divided by the previous iteration's tanh·Q: Sanathanan–Koerner) with Lawson's
reweighting towards the minimax solution, in u = x²/16 so that the system is well conditioned.
The coefficients are then rounded to float32 one at a time, highest power first, refitting the
others after each, so that the rounding of one is absorbed by those not yet rounded.

    python benchmarks/tanh_fit.py

prints the coefficients (lowest power first) and the error in float64 and in float32 arithmetic
(Horner's rule without fused multiply-adds; the kernel, compiled with them, is within 3e-7 of
tanh: ``tests/test_fast_lstm.py::test_native_gate_functions_match_torch``).
"""

import numpy as np

LIMIT, KP, KQ = 4.0, 5, 4  # range, number of coefficients of P and of Q

x = np.concatenate([np.linspace(1e-4, 1, 6000), np.linspace(1, LIMIT, 12000)])
t = np.tanh(x)
u = (x / LIMIT) ** 2
P_SCALE, Q_SCALE = LIMIT ** (2 * np.arange(KP)), LIMIT ** (2 * np.arange(KQ))


def fit(fixed_p: dict, fixed_q: dict, iterations: int = 600):
    """Best (max relative error, P, Q) in powers of x², with the given coefficients held fixed."""
    fixed_p = {k: v * P_SCALE[k] for k, v in fixed_p.items()}
    fixed_q = {k: v * Q_SCALE[k] for k, v in fixed_q.items()}
    q_prev, lawson, best = np.ones_like(x), np.ones_like(x), (np.inf, None, None)
    for iteration in range(iterations):
        columns, rhs = [], t.copy()
        for k in range(KP):
            if k in fixed_p:
                rhs -= fixed_p[k] * x * u ** k
            else:
                columns.append(x * u ** k)
        for k in range(1, KQ):
            if k in fixed_q:
                rhs += fixed_q[k] * t * u ** k
            else:
                columns.append(-t * u ** k)
        weight = lawson / (t * q_prev)
        solution, *_ = np.linalg.lstsq(np.stack(columns, 1) * weight[:, None], rhs * weight,
                                       rcond=None)
        free = iter(solution)
        p = np.array([fixed_p[k] if k in fixed_p else next(free) for k in range(KP)])
        q = np.array([1.0] + [fixed_q[k] if k in fixed_q else next(free) for k in range(1, KQ)])
        q_prev = np.polyval(q[::-1], u)
        error = np.abs(x * np.polyval(p[::-1], u) / q_prev - t) / t
        if error.max() < best[0]:
            best = (error.max(), p / P_SCALE, q / Q_SCALE)
        if iteration > 10:
            lawson = lawson * (error / error.max()) ** 0.3 + 1e-14
            lawson /= lawson.mean()
    return best


def horner32(coefficients, s):
    result = np.full_like(s, coefficients[-1])
    for c in coefficients[-2::-1]:
        result = result * s + c
    return result


fixed_p, fixed_q = {}, {}
for which, k in sorted([("p", k) for k in range(KP)] + [("q", k) for k in range(1, KQ)],
                       key=lambda item: -item[1]):
    _, p, q = fit(fixed_p, fixed_q)
    if which == "p":
        fixed_p[k] = float(np.float32(p[k]))
    else:
        fixed_q[k] = float(np.float32(q[k]))
P = np.array([fixed_p[k] for k in range(KP)], dtype=np.float32)
Q = np.array([1.0] + [fixed_q[k] for k in range(1, KQ)], dtype=np.float32)
xs = np.linspace(0, LIMIT, 2_000_001, dtype=np.float32)
s = xs * xs
y = xs * horner32(P, s) / horner32(Q, s)
reference = np.tanh(xs.astype(np.float64))
print("P:", ", ".join(f"{str(c)}f" for c in P))
print("Q:", ", ".join(f"{str(c)}f" for c in Q))
print(f"max relative error, float64 coefficients: {fit({}, {})[0]:.3g}")
print(f"max absolute error, float32 coefficients and arithmetic: {np.abs(y - reference).max():.3g}")
