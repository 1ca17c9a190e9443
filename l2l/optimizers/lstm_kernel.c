/* The compiled LSTM kernel of l2l.optimizers._native, which builds this file with the system C
   compiler and calls it through ctypes; its docstring describes the kernel. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE__)
#include <xmmintrin.h>
/* Flush subnormal floats to zero (FTZ) and read them as zero (DAZ) within a thread's share of the
   backward pass: its gradients reach 1e-38 and below deep in an unroll, where they change nothing
   but cost x86 CPUs a microcode assist per operation. The caller's mode is restored after. */
#define L2L_FLUSH_BEGIN const unsigned int l2l_csr = _mm_getcsr(); _mm_setcsr(l2l_csr | 0x8040u);
#define L2L_FLUSH_END _mm_setcsr(l2l_csr);
#else
#define L2L_FLUSH_BEGIN
#define L2L_FLUSH_END
#endif

/* exp(x) for float, accurate to about 2 ulp (Cephes' polynomial), branch-free so that it vectorises; NaN stays NaN. */
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

/* tanh as in Cephes' tanhf (about 1 ulp): an odd polynomial below |x| = 0.625, else
   1 - 2 / (exp(2|x|) + 1); branch-free (both are computed, one is selected). */
static inline float l2l_tanh(float x) {
    const float ax = x < 0.0f ? -x : x;
    const float z = x * x;
    const float small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z
                           - 5.37397155531e-2f) * z + 1.33314422036e-1f) * z
                         - 3.33332819422e-1f) * z * ax + ax;
    const float big = 1.0f - 2.0f / (l2l_exp(2.0f * ax) + 1.0f);
    const float t = ax < 0.625f ? small : big;
    return x < 0.0f ? -t : t;
}

#define L2L_BLOCK 32        /* rows per block: a block's gates stay in L1 */
#define L2L_INLINE static inline __attribute__((always_inline))

/* Forward of rows n0..n1 of one layer. With H and I compile-time constants (see the dispatch
   below) every inner loop has a fixed trip count and vectorises fully. Per row:
   a = b + W_ih·x + W_hh·h (with wi_t [I, G], wh_t [H, G]), then the activations σ (i, f, o)
   and tanh (g), then c' = f·c + i·g;
   then tanh(c') over the block and h' = o·tanh(c'). act (if not NULL) keeps the activations. */
L2L_INLINE void fwd_block(const int64_t n0, const int64_t n1, const int64_t H, const int64_t I,
                          const float *x, const float *h, const float *c, const float *wi_t,
                          const float *wh_t, const float *bias, float *act, float *h_out,
                          float *c_out, float *tanh_c) {
    const int64_t G = 4 * H;
    float local[L2L_BLOCK * G];
    float tcb[L2L_BLOCK * H];
    float *ab = act ? act + n0 * G : local;
    for (int64_t n = n0; n < n1; n++) {
        float *a = ab + (n - n0) * G;
        const float *xn = x + n * I, *hn = h + n * H;
        #pragma omp simd
        for (int64_t k = 0; k < G; k++) a[k] = bias[k];
        for (int64_t m = 0; m < I; m++) {
            const float v = xn[m];
            #pragma omp simd
            for (int64_t k = 0; k < G; k++) a[k] += v * wi_t[m * G + k];
        }
        for (int64_t m = 0; m < H; m++) {
            const float v = hn[m];
            #pragma omp simd
            for (int64_t k = 0; k < G; k++) a[k] += v * wh_t[m * G + k];
        }
        #pragma omp simd
        for (int64_t k = 0; k < 2 * H; k++) a[k] = l2l_sigmoid(a[k]);       /* i, f */
        #pragma omp simd
        for (int64_t k = 2 * H; k < 3 * H; k++) a[k] = l2l_tanh(a[k]);      /* g */
        #pragma omp simd
        for (int64_t k = 3 * H; k < G; k++) a[k] = l2l_sigmoid(a[k]);       /* o */
        const float *cn = c + n * H;
        float *co = c_out + n * H;
        #pragma omp simd
        for (int64_t j = 0; j < H; j++) co[j] = a[H + j] * cn[j] + a[j] * a[2 * H + j];
    }
    const int64_t len = (n1 - n0) * H;
    const float *cb = c_out + n0 * H;
    float *tb = tanh_c ? tanh_c + n0 * H : tcb;
    #pragma omp simd
    for (int64_t k = 0; k < len; k++) tb[k] = l2l_tanh(cb[k]);
    for (int64_t n = n0; n < n1; n++) {
        const float *o = ab + (n - n0) * G + 3 * H, *t = tb + (n - n0) * H;
        float *hn = h_out + n * H;
        #pragma omp simd
        for (int64_t j = 0; j < H; j++) hn[j] = o[j] * t[j];
    }
}

/* ---- H = 20: explicit vectors of 8 floats (GCC/Clang vector extensions; 2 SSE registers each
   where there is no AVX), register-blocked over rows. 4H = 80 gate lanes are 10 vectors. ---- */
typedef float v8 __attribute__((vector_size(32)));
typedef float v4 __attribute__((vector_size(16)));
typedef int32_t i8 __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4), may_alias));
typedef float v4u __attribute__((vector_size(16), aligned(4), may_alias));
#define LD8(p) (*(const v8u *)(p))
#define LD4(p) (*(const v4u *)(p))
#define ST8(p, v) (*(v8u *)(p) = (v))
#define ST4(p, v) (*(v4u *)(p) = (v))
L2L_INLINE v8 V8(const float s) { return (v8){s, s, s, s, s, s, s, s}; }
L2L_INLINE v4 V4(const float s) { return (v4){s, s, s, s}; }

L2L_INLINE v8 vsel(i8 m, v8 a, v8 b) { return (v8)((m & (i8)a) | (~m & (i8)b)); }

/* the scalar functions above, lane by lane, with the same operations */
L2L_INLINE v8 vexp(v8 x) {
    x = vsel(x < -87.0f, V8(-87.0f), x);
    x = vsel(x > 88.0f, V8(88.0f), x);
    const float magic = 12582912.0f;
    v8 n = (x * 1.44269504088896341f + magic) - magic;
    v8 r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    v8 p = V8(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    v8 y = p * r * r + r + 1.0f;
    i8 bits = (__builtin_convertvector(n, i8) + 127) << 23;
    return y * (v8)bits;
}

L2L_INLINE v8 vsigmoid_exp(v8 x) { return 1.0f / (1.0f + vexp(-x)); }

L2L_INLINE v8 vtanh_exp(v8 x) {
    const i8 neg = x < 0.0f;
    const v8 ax = vsel(neg, -x, x);
    const v8 z = x * x;
    const v8 small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z
                        - 5.37397155531e-2f) * z + 1.33314422036e-1f) * z
                      - 3.33332819422e-1f) * z * ax + ax;
    const v8 big = 1.0f - 2.0f / (vexp(2.0f * ax) + 1.0f);
    const v8 t = vsel(ax < 0.625f, small, big);
    return vsel(neg, -t, t);
}

/* The fast path of the gate functions: tanh(x) ≈ x·P(x²)/Q(x²) on |x| ≤ 4, one division and no
   exp, about half the work of the functions above. A rational fit of minimal maximum relative
   error made for this kernel (benchmarks/tanh_fit.py prints the coefficients); in float
   arithmetic it is within 3e-7 of tanh. A vector with a lane beyond 4 (1 − |tanh| < 7e-4) takes
   the exp path instead, where relative accuracy near saturation matters for the derivatives
   (1 − g², σ(1 − σ)); on trained optimizers that is a few percent of vectors at most. */
#define L2L_TANH_RATIONAL(x, s)                                                                  \
    ((x) * (((((s) * -1.2553553e-08f + 9.804979e-06f) * (s) + 0.002995904f) * (s)                \
             + 0.12991779f) * (s) + 1.0f)                                                         \
         / ((((s) * 0.00023777538f + 0.024079617f) * (s) + 0.4632511f) * (s) + 1.0f))

typedef int64_t l4 __attribute__((vector_size(32)));
/* whether any lane of a comparison's mask is set */
L2L_INLINE int vany(i8 m) { const l4 q = (l4)m; return (q[0] | q[1] | q[2] | q[3]) != 0; }
L2L_INLINE v8 vabs(v8 x) { return vsel(x < 0.0f, -x, x); }

L2L_INLINE v8 vtanh(v8 x) {
    if (__builtin_expect(vany(vabs(x) > 4.0f), 0)) return vtanh_exp(x);
    return L2L_TANH_RATIONAL(x, x * x);
}

/* σ(x) = (1 + tanh(x/2)) / 2 */
L2L_INLINE v8 vsigmoid(v8 x) {
    const v8 y = 0.5f * x;
    if (__builtin_expect(vany(vabs(y) > 4.0f), 0)) return vsigmoid_exp(x);
    return 0.5f * L2L_TANH_RATIONAL(y, y * y) + 0.5f;
}

/* gate activations of one row's 10 vectors: lanes 0-39 (i, f) and 60-79 (o) σ, 40-59 (g) tanh;
   vector 7 (lanes 56-63) holds g in its first four lanes and o in the rest */
L2L_INLINE void activate20(v8 *a) {
    #pragma GCC unroll 16
    for (int v = 0; v < 5; v++) a[v] = vsigmoid(a[v]);
    a[5] = vtanh(a[5]);
    a[6] = vtanh(a[6]);
    const i8 first4 = {-1, -1, -1, -1, 0, 0, 0, 0};
    const v8 scale = {1.0f, 1.0f, 1.0f, 1.0f, 0.5f, 0.5f, 0.5f, 0.5f};
    const v8 y = scale * a[7];       /* tanh(g) and σ(o) = tanh(o/2)/2 + 1/2 in one evaluation */
    if (__builtin_expect(vany(vabs(y) > 4.0f), 0))
        a[7] = vsel(first4, vtanh_exp(a[7]), vsigmoid_exp(a[7]));
    else
        a[7] = scale * L2L_TANH_RATIONAL(y, y * y) + (1.0f - scale);
    a[8] = vsigmoid(a[8]);
    a[9] = vsigmoid(a[9]);
}

/* forward, H = 20: the products for two rows at a time in 20 vector registers, sharing each
   loaded row of the weights; then the activations in registers; then c', tanh(c'), h'. */
L2L_INLINE void fwd_block20(const int64_t n0, const int64_t n1, const int64_t I,
                            const float *x, const float *h, const float *c, const float *wi_t,
                            const float *wh_t, const float *bias, float *act, float *h_out,
                            float *c_out, float *tanh_c) {
    enum { H = 20, G = 80, NV = 10 };
    float local[L2L_BLOCK * G];
    float *ab = act ? act + n0 * G : local;
    int64_t n = n0;
    for (; n + 1 < n1; n += 2) {
        v8 a0[NV], a1[NV];
        #pragma GCC unroll 16
        for (int v = 0; v < NV; v++) a0[v] = a1[v] = LD8(bias + 8 * v);
        const float *x0 = x + n * I, *x1 = x0 + I;
        for (int64_t m = 0; m < I; m++) {
            const v8 s0 = V8(x0[m]), s1 = V8(x1[m]);
            #pragma GCC unroll 16
            for (int v = 0; v < NV; v++) {
                const v8 w = LD8(wi_t + m * G + 8 * v);
                a0[v] += s0 * w;
                a1[v] += s1 * w;
            }
        }
        const float *h0 = h + n * H, *h1 = h0 + H;
        for (int64_t m = 0; m < H; m++) {
            const v8 s0 = V8(h0[m]), s1 = V8(h1[m]);
            #pragma GCC unroll 16
            for (int v = 0; v < NV; v++) {
                const v8 w = LD8(wh_t + m * G + 8 * v);
                a0[v] += s0 * w;
                a1[v] += s1 * w;
            }
        }
        activate20(a0);
        activate20(a1);
        float *o0 = ab + (n - n0) * G;
        #pragma GCC unroll 16
        for (int v = 0; v < NV; v++) { ST8(o0 + 8 * v, a0[v]); ST8(o0 + G + 8 * v, a1[v]); }
    }
    if (n < n1) {
        v8 a0[NV];
        #pragma GCC unroll 16
        for (int v = 0; v < NV; v++) a0[v] = LD8(bias + 8 * v);
        for (int64_t m = 0; m < I; m++) {
            const v8 s0 = V8(x[n * I + m]);
            #pragma GCC unroll 16
            for (int v = 0; v < NV; v++) a0[v] += s0 * LD8(wi_t + m * G + 8 * v);
        }
        for (int64_t m = 0; m < H; m++) {
            const v8 s0 = V8(h[n * H + m]);
            #pragma GCC unroll 16
            for (int v = 0; v < NV; v++) a0[v] += s0 * LD8(wh_t + m * G + 8 * v);
        }
        activate20(a0);
        float *o0 = ab + (n - n0) * G;
        #pragma GCC unroll 16
        for (int v = 0; v < NV; v++) ST8(o0 + 8 * v, a0[v]);
    }
    /* c' = f·c + i·g, tanh(c'), h' = o·tanh(c'), 20 units as vectors at 0, 8 and 12 (the
       last overlaps the second: its first four lanes are computed twice, identically) */
    for (n = n0; n < n1; n++) {
        const float *a = ab + (n - n0) * G;
        #pragma GCC unroll 3
        for (int q = 0; q < 3; q++) {
            const int64_t j = q == 2 ? 12 : 8 * q;
            const v8 cn = LD8(c + n * H + j);
            const v8 co = LD8(a + H + j) * cn + LD8(a + j) * LD8(a + 2 * H + j);
            const v8 t = vtanh(co);
            ST8(c_out + n * H + j, co);
            if (tanh_c) ST8(tanh_c + n * H + j, t);
            ST8(h_out + n * H + j, LD8(a + 3 * H + j) * t);
        }
    }
}

/* column m of a block's layer input (x, h, 1) as (first element, stride) */
typedef struct { const float *p; int64_t stride; } l2l_column;
static const float l2l_one = 1.0f;
L2L_INLINE l2l_column in_column(const int64_t m, const int64_t I, const int64_t n0,
                                const float *x, const float *h) {
    if (m < I) return (l2l_column){x + n0 * I + m, I};
    if (m < I + 20) return (l2l_column){h + n0 * 20 + (m - I), 20};
    return (l2l_column){&l2l_one, 0};
}

/* dwt[0, :] += Σ_r c0[r]·D[r, :] and, if pair, dwt[1, :] += Σ_r c1[r]·D[r, :] (H = 20) */
L2L_INLINE void dw_columns20(const int64_t R, const float *D, const l2l_column c0,
                             const l2l_column c1, float *dwt, const int pair) {
    enum { G = 80, NV = 10 };
    v8 a0[NV], a1[NV];
    #pragma GCC unroll 16
    for (int v = 0; v < NV; v++) { a0[v] = LD8(dwt + 8 * v); a1[v] = V8(0.0f); }
    for (int64_t r = 0; r < R; r++) {
        const v8 e0 = V8(c0.p[r * c0.stride]);
        const v8 e1 = pair ? V8(c1.p[r * c1.stride]) : V8(0.0f);
        #pragma GCC unroll 16
        for (int v = 0; v < NV; v++) {
            const v8 d = LD8(D + r * G + 8 * v);
            a0[v] += e0 * d;
            if (pair) a1[v] += e1 * d;
        }
    }
    #pragma GCC unroll 16
    for (int v = 0; v < NV; v++) ST8(dwt + 8 * v, a0[v]);
    if (pair) {
        #pragma GCC unroll 16
        for (int v = 0; v < NV; v++) ST8(dwt + G + 8 * v, LD8(dwt + G + 8 * v) + a1[v]);
    }
}

/* dx and dh of up to L2L_XH_ROWS rows together when I = H = 20: out[q, :] = Σ_k D[q, k]·wc[k, :],
   wc's rows (W_ih[k, :], W_hh[k, :]): five full vectors per row, one broadcast per row and k,
   instead of two passes of 8 + 8 + 4 lanes (14% less time for the layer's backward) */
#define L2L_XH_ROWS 2  /* 10 sums, 5 weights, 1 broadcast: AVX2's 16 registers (4 rows ran no
                          faster with AVX-512's 32) */
L2L_INLINE void dxh_rows20(const float *D, const float *wc, float *dx, float *dh,
                           const int64_t rows) {
    enum { G = 80, NV = 5 };
    v8 a[L2L_XH_ROWS][NV];
    #pragma GCC unroll 32
    for (int q = 0; q < L2L_XH_ROWS; q++)
        for (int v = 0; v < NV; v++) a[q][v] = V8(0.0f);
    for (int64_t k = 0; k < G; k++) {
        v8 w[NV];
        #pragma GCC unroll 8
        for (int v = 0; v < NV; v++) w[v] = LD8(wc + k * 40 + 8 * v);
        #pragma GCC unroll 8
        for (int q = 0; q < L2L_XH_ROWS; q++) {
            if (q >= rows) break;
            const v8 e = V8(D[q * G + k]);
            #pragma GCC unroll 8
            for (int v = 0; v < NV; v++) a[q][v] += e * w[v];
        }
    }
    for (int q = 0; q < rows && q < L2L_XH_ROWS; q++) {
        ST8(dx + q * 20, a[q][0]);
        ST8(dx + q * 20 + 8, a[q][1]);
        /* lanes 16-19 of dx and 0-3 of dh share vector 2 */
        ST4(dx + q * 20 + 16, __builtin_shufflevector(a[q][2], a[q][2], 0, 1, 2, 3));
        ST4(dh + q * 20, __builtin_shufflevector(a[q][2], a[q][2], 4, 5, 6, 7));
        ST8(dh + q * 20 + 4, a[q][3]);
        ST8(dh + q * 20 + 12, a[q][4]);
    }
}

/* backward, H = 20. Weight gradients are accumulated transposed, dwt [I + H + 1, 80] (the last
   row is db), two input columns at a time in 20 vector registers over the block's rows; the
   input gradients dh four rows at a time, each row 8 + 8 + 4 lanes, or with I = 20 and wc given
   dx and dh together (dxh_rows20). */
L2L_INLINE void bwd_block20(const int64_t n0, const int64_t n1, const int64_t I,
                            const float *act, const float *c, const float *tanh_c,
                            const float *dh, const float *dc, const float *x, const float *h,
                            const float *wi, const float *wh, const float *wc, float *dx,
                            float *dh_prev, float *dc_prev, float *dwt) {
    enum { H = 20, G = 80 };
    const int64_t R = n1 - n0, M = I + H + 1;
    float D[L2L_BLOCK * G], sink[H];
    for (int64_t n = n0; n < n1; n++) {
        const float *a = act + n * G, *cn = c + n * H, *tn = tanh_c + n * H;
        const float *dhn = dh + n * H, *dcn = dc + n * H;
        float *d = D + (n - n0) * G;
        float *dcp = dc_prev ? dc_prev + n * H : sink;
        #pragma omp simd
        for (int64_t j = 0; j < H; j++) {
            const float i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j];
            const float tc = tn[j], dhv = dhn[j];
            const float dct = dcn[j] + dhv * o * (1.0f - tc * tc);
            dcp[j] = dct * f;
            d[j] = dct * g * i * (1.0f - i);
            d[H + j] = dct * cn[j] * f * (1.0f - f);
            d[2 * H + j] = dct * i * (1.0f - g * g);
            d[3 * H + j] = dhv * tc * o * (1.0f - o);
        }
    }
    /* dwt[m, :] += Σ_r in[r, m]·D[r, :], in = (x, h, 1), two columns at a time (M is odd: the
       last, the bias's column of ones, alone) */
    int64_t m = 0;
    for (; m + 1 < M; m += 2)
        dw_columns20(R, D, in_column(m, I, n0, x, h), in_column(m + 1, I, n0, x, h), dwt + m * G, 1);
    if (m < M)
        dw_columns20(R, D, in_column(m, I, n0, x, h), in_column(m, I, n0, x, h), dwt + m * G, 0);
    if (wc) {  /* I = 20 and both dx and dh wanted (see dxh_rows20) */
        for (int64_t r = 0; r < R; r += L2L_XH_ROWS)
            dxh_rows20(D + r * G, wc, dx + (n0 + r) * H, dh_prev + (n0 + r) * H, R - r);
        return;
    }
    /* dh[r, :] = Σ_k D[r, k]·W_hh[k, :] (and dx with W_ih when I = 20 but dh is not wanted), four
       rows at a time */
    const int vx = dx != NULL && I == H;
    for (int pass = 0; pass < 2; pass++) {
        float *out = pass == 0 ? dh_prev : (vx ? dx : NULL);
        const float *w = pass == 0 ? wh : wi;
        if (!out) continue;
        int64_t r = 0;
        for (; r + 4 <= R; r += 4) {
            v8 a0[4], a1[4];
            v4 a2[4];
            #pragma GCC unroll 4
            for (int q = 0; q < 4; q++) { a0[q] = a1[q] = V8(0.0f); a2[q] = V4(0.0f); }
            for (int64_t k = 0; k < G; k++) {
                const float *dk = D + r * G + k;
                const v8 w0 = LD8(w + k * H), w1 = LD8(w + k * H + 8);
                const v4 w2 = LD4(w + k * H + 16);
                #pragma GCC unroll 4
                for (int q = 0; q < 4; q++) {
                    const float e = dk[q * G];
                    a0[q] += e * w0; a1[q] += e * w1; a2[q] += e * w2;
                }
            }
            #pragma GCC unroll 4
            for (int q = 0; q < 4; q++) {
                float *o = out + (n0 + r + q) * H;
                ST8(o, a0[q]); ST8(o + 8, a1[q]); ST4(o + 16, a2[q]);
            }
        }
        for (; r < R; r++) {
            const float *d = D + r * G;
            for (int64_t m = 0; m < H; m++) {
                float acc = 0.0f;
                for (int64_t k = 0; k < G; k++) acc += d[k] * w[k * H + m];
                out[(n0 + r) * H + m] = acc;
            }
        }
    }
    if (dx && !vx) {
        for (int64_t r = 0; r < R; r++) {
            const float *d = D + r * G;
            for (int64_t m = 0; m < I; m++) {
                float s = 0.0f;
                for (int64_t k = 0; k < G; k++) s += d[k] * wi[k * I + m];
                dx[(n0 + r) * I + m] = s;
            }
        }
    }
}

/* One layer, forward, all N rows: x [N, I], h, c [N, H], wi_t [I, 4H], wh_t [H, 4H], bias [4H];
   writes h_out, c_out [N, H] and, if not NULL, act [N, 4H] and tanh_c [N, H] (for backward). */
void l2l_lstm_forward(int64_t N, int64_t H, int64_t I, const float *x, const float *h,
                      const float *c, const float *wi_t, const float *wh_t, const float *bias,
                      float *act, float *h_out, float *c_out, float *tanh_c) {
    const int64_t blocks = (N + L2L_BLOCK - 1) / L2L_BLOCK;
    #pragma omp parallel for schedule(static) if (N * H > 8192)
    for (int64_t b = 0; b < blocks; b++) {
        const int64_t n0 = b * L2L_BLOCK, n1 = n0 + L2L_BLOCK < N ? n0 + L2L_BLOCK : N;
#define L2L_FWD(HH, II) fwd_block(n0, n1, HH, II, x, h, c, wi_t, wh_t, bias, act, h_out, c_out, tanh_c)
        if (H == 20 && I == 20) fwd_block20(n0, n1, 20, x, h, c, wi_t, wh_t, bias, act, h_out, c_out, tanh_c);
        else if (H == 20 && I == 2) fwd_block20(n0, n1, 2, x, h, c, wi_t, wh_t, bias, act, h_out, c_out, tanh_c);
        else if (H == 20) fwd_block20(n0, n1, I, x, h, c, wi_t, wh_t, bias, act, h_out, c_out, tanh_c);
        else L2L_FWD(H, I);
#undef L2L_FWD
    }
}

/* Backward of rows n0..n1 of one layer, accumulating weight gradients into dwi [G, I],
   dwh [G, H] and db [G] (thread-local float sums). Per row, with d = dL/da:
   dc̃ = dc' + dh'·o·(1 − tanh²c'), d_o = dh'·tanh(c')·o(1 − o), d_i = dc̃·g·i(1 − i),
   d_f = dc̃·c·f(1 − f), d_g = dc̃·i·(1 − g²), dc = dc̃·f; dx = W_ihᵀd, dh = W_hhᵀd,
   dW_ih += d xᵀ, dW_hh += d hᵀ, db += d. */
L2L_INLINE void bwd_block(const int64_t n0, const int64_t n1, const int64_t H, const int64_t I,
                          const float *act, const float *c, const float *tanh_c,
                          const float *dh, const float *dc, const float *x, const float *h,
                          const float *wi, const float *wh, float *dx, float *dh_prev,
                          float *dc_prev, float *dwi, float *dwh, float *db) {
    const int64_t G = 4 * H, R = n1 - n0;
    float D[L2L_BLOCK * G], sink[H];
    for (int64_t n = n0; n < n1; n++) {  /* gate derivatives of the block, kept in L1 */
        const float *a = act + n * G, *cn = c + n * H, *tn = tanh_c + n * H;
        const float *dhn = dh + n * H, *dcn = dc + n * H;
        float *d = D + (n - n0) * G;
        float *dcp = dc_prev ? dc_prev + n * H : sink;
        #pragma omp simd
        for (int64_t j = 0; j < H; j++) {
            const float i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j];
            const float tc = tn[j], dhv = dhn[j];
            const float dct = dcn[j] + dhv * o * (1.0f - tc * tc);
            dcp[j] = dct * f;
            d[j] = dct * g * i * (1.0f - i);
            d[H + j] = dct * cn[j] * f * (1.0f - f);
            d[2 * H + j] = dct * i * (1.0f - g * g);
            d[3 * H + j] = dhv * tc * o * (1.0f - o);
        }
        #pragma omp simd
        for (int64_t k = 0; k < G; k++) db[k] += d[k];
    }
    /* weight gradients: dW[k, :] += Σ_r D[r, k]·input[r, :], one row of dW in registers */
    const float *xb = x + n0 * I, *hb = h + n0 * H;
    for (int64_t k = 0; k < G; k++) {
        float acc_h[H], acc_x[I];
        for (int64_t m = 0; m < H; m++) acc_h[m] = 0.0f;
        for (int64_t m = 0; m < I; m++) acc_x[m] = 0.0f;
        for (int64_t r = 0; r < R; r++) {
            const float dk = D[r * G + k];
            #pragma omp simd
            for (int64_t m = 0; m < H; m++) acc_h[m] += dk * hb[r * H + m];
            #pragma omp simd
            for (int64_t m = 0; m < I; m++) acc_x[m] += dk * xb[r * I + m];
        }
        #pragma omp simd
        for (int64_t m = 0; m < H; m++) dwh[k * H + m] += acc_h[m];
        #pragma omp simd
        for (int64_t m = 0; m < I; m++) dwi[k * I + m] += acc_x[m];
    }
    /* input gradients: dh[r, :] = Σ_k D[r, k]·W_hh[k, :], dx likewise with W_ih */
    for (int64_t r = 0; r < R; r++) {
        const float *d = D + r * G;
        if (dh_prev) {
            float acc[H];
            for (int64_t m = 0; m < H; m++) acc[m] = 0.0f;
            for (int64_t k = 0; k < G; k++) {
                const float dk = d[k];
                #pragma omp simd
                for (int64_t m = 0; m < H; m++) acc[m] += dk * wh[k * H + m];
            }
            for (int64_t m = 0; m < H; m++) dh_prev[(n0 + r) * H + m] = acc[m];
        }
        if (dx) {
            float acc[I];
            for (int64_t m = 0; m < I; m++) acc[m] = 0.0f;
            for (int64_t k = 0; k < G; k++) {
                const float dk = d[k];
                #pragma omp simd
                for (int64_t m = 0; m < I; m++) acc[m] += dk * wi[k * I + m];
            }
            for (int64_t m = 0; m < I; m++) dx[(n0 + r) * I + m] = acc[m];
        }
    }
}

/* One layer, backward, all N rows. act [N, 4H], c [N, H] (previous cell state), tanh_c [N, H],
   dh, dc [N, H] (incoming gradients), x [N, I], h [N, H] (the inputs), wi [4H, I], wh [4H, H].
   Writes dx [N, I], dh_prev, dc_prev [N, H] (each only if not NULL) and grads, laid out as
   dW_ih [4H, I], dW_hh [4H, H], db [4H], accumulated in double. */
void l2l_lstm_backward(int64_t N, int64_t H, int64_t I, const float *act, const float *c,
                       const float *tanh_c, const float *dh, const float *dc, const float *x,
                       const float *h, const float *wi, const float *wh, float *dx,
                       float *dh_prev, float *dc_prev, double *grads) {
    const int64_t G = 4 * H, S = G * (I + H + 1);
    const int fast = H == 20;  /* per-thread sums laid out [I + H + 1, G] (transposed) */
    for (int64_t k = 0; k < S; k++) grads[k] = 0.0;
    float wc_rows[80 * 40];  /* (W_ih[k, :], W_hh[k, :]) for dxh_rows20 */
    const float *wc = NULL;
    if (H == 20 && I == 20 && dx && dh_prev) {
        for (int64_t k = 0; k < 80; k++)
            for (int64_t m = 0; m < 20; m++) {
                wc_rows[k * 40 + m] = wi[k * 20 + m];
                wc_rows[k * 40 + 20 + m] = wh[k * 20 + m];
            }
        wc = wc_rows;
    }
    const int64_t blocks = (N + L2L_BLOCK - 1) / L2L_BLOCK;
    #pragma omp parallel if (N * H > 8192)
    {
        L2L_FLUSH_BEGIN
        float *local = (float *)calloc((size_t)S, sizeof(float));
        double *total = (double *)calloc((size_t)S, sizeof(double));
        int64_t since = 0;
        #pragma omp for schedule(static)
        for (int64_t b = 0; b < blocks; b++) {
            const int64_t n0 = b * L2L_BLOCK, n1 = n0 + L2L_BLOCK < N ? n0 + L2L_BLOCK : N;
            float *dwi = local, *dwh = local + G * I, *db = local + G * (I + H);
#define L2L_BWD(HH, II) bwd_block(n0, n1, HH, II, act, c, tanh_c, dh, dc, x, h, wi, wh, dx, \
                                  dh_prev, dc_prev, dwi, dwh, db)
#define L2L_BWD20(II) bwd_block20(n0, n1, II, act, c, tanh_c, dh, dc, x, h, wi, wh, wc, dx, \
                                  dh_prev, dc_prev, local)
            if (H == 20 && I == 20) L2L_BWD20(20);
            else if (H == 20 && I == 2) L2L_BWD20(2);
            else if (H == 20) L2L_BWD20(I);
            else L2L_BWD(H, I);
#undef L2L_BWD
#undef L2L_BWD20
            if (++since == 8) {  /* short float sums (256 rows), accumulated in double */
                for (int64_t k = 0; k < S; k++) { total[k] += local[k]; local[k] = 0.0f; }
                since = 0;
            }
        }
        for (int64_t k = 0; k < S; k++) total[k] += local[k];
        #pragma omp critical
        {
            if (fast) {  /* [m, k] → dW_ih [G, I], dW_hh [G, H], db [G] */
                for (int64_t m = 0; m < I + H + 1; m++)
                    for (int64_t k = 0; k < G; k++) {
                        const double v = total[m * G + k];
                        if (m < I) grads[k * I + m] += v;
                        else if (m < I + H) grads[G * I + k * H + (m - I)] += v;
                        else grads[G * (I + H) + k] += v;
                    }
            } else {
                for (int64_t k = 0; k < S; k++) grads[k] += total[k];
            }
        }
        free(local);
        free(total);
        L2L_FLUSH_END
    }
}

/* log(x) for float as in Cephes' logf (about 1 ulp) for normal x > 0, branch-free so that it
   vectorises; +inf stays +inf. x = m·2^e with m in [√½, √2), log x = log m + e·ln 2. */
static inline float l2l_log(float x) {
    int32_t bits;
    memcpy(&bits, &x, sizeof bits);
    int32_t e = ((bits >> 23) & 0xff) - 126;
    bits = (bits & (int32_t)0x807fffff) | 0x3f000000;
    float m;
    memcpy(&m, &bits, sizeof m);                  /* m in [0.5, 1) */
    const int32_t below = m < 0.707106781186547524f;
    e -= below;
    m = below ? m + m - 1.0f : m - 1.0f;
    const float z = m * m;
    float y = 7.0376836292e-2f;
    y = y * m - 1.1514610310e-1f;
    y = y * m + 1.1676998740e-1f;
    y = y * m - 1.2420140846e-1f;
    y = y * m + 1.4249322787e-1f;
    y = y * m - 1.6668057665e-1f;
    y = y * m + 2.0000714765e-1f;
    y = y * m - 2.4999993993e-1f;
    y = y * m + 3.3333331174e-1f;
    y = y * m * z;
    const float fe = (float)e;
    y += -2.12194440e-4f * fe;
    y += -0.5f * z;
    const float r = m + y + 0.693359375f * fe;
    return x > 3.4e38f ? x : r;
}

L2L_INLINE void encode_rows(int64_t k0, int64_t k1, const float *g, float *out,
                            float threshold, float p, float exp_p) {
    #pragma omp simd
    for (int64_t k = k0; k < k1; k++) {
        const float v = g[k];
        const float mag = v < 0.0f ? -v : v;
        const int32_t big = mag >= threshold;
        const float lg = l2l_log(mag > threshold ? mag : threshold) / p;
        out[2 * k] = big ? lg : -1.0f;
        out[2 * k + 1] = big ? (v > 0.0f ? 1.0f : -1.0f) : v * exp_p;
    }
}

/* The gradient encoding of Appendix A, g [n] -> out [n, 2]: (log|g| / p, sign g) where
   |g| >= threshold = e^-p, else (-1, e^p g). NaN gradients give (-1, NaN), as in PyTorch.
   Threads only for long inputs (entering an OpenMP region costs more than a short pass). */
void l2l_encode(int64_t n, const float *g, float *out, float threshold, float p, float exp_p) {
    const int64_t chunk = 65536, chunks = (n + chunk - 1) / chunk;
    if (chunks <= 1) {
        encode_rows(0, n, g, out, threshold, p, exp_p);
        return;
    }
    #pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < chunks; b++)
        encode_rows(b * chunk, b * chunk + chunk < n ? b * chunk + chunk : n, g, out, threshold, p,
                    exp_p);
}
