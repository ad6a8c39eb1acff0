/* mmrt_cpu.h — what generated C code includes: the CPU back end's state
 * (rt_exec) and the few building blocks the generated kernels call with
 * constant arguments (im2col, col2im and the GEMM micro-kernels, which are
 * in mmrt_cpu_gemm.h), so that the compiler specialises them per call site.
 *
 * Generated kernels are single functions with their shapes as constants;
 * these helpers are static inline on purpose. */
#ifndef MMRT_CPU_H
#define MMRT_CPU_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "mmrt.h"
#include "mmrt_ewise.h"

#if defined(__AVX512F__) && !defined(MMNET_F64)
#include <immintrin.h>
#define MMK_SIMD "avx512"
#elif defined(__AVX2__) && defined(__FMA__) && !defined(MMNET_F64)
#include <immintrin.h>
#define MMK_SIMD "avx2"
#else
#define MMK_SIMD "scalar"
#endif

/* Weight-gradient reductions over the batch are split into RT_DW_CHUNKS
 * fixed chunks (mmnet_shared.h: the memory plan counts them), summed in
 * order: the result does not depend on the thread count. */

typedef struct rt_cpu_impl rt_cpu_impl;

struct rt_exec {
    const rt_model *m;
    const rt_cpu_impl *impl;
    int max_batch;
    int nthreads;
    mm_real *params, *grads, *mom, *mom2, *states; /* mom2: Adam's second moment */
    mm_real *act, *fixed;
    mm_real *scratch;        /* nthreads * impl->scratch_floats */
    mm_real *wt;             /* impl->wt_floats: a transposed weight matrix */
    mm_real *partial;        /* RT_DW_CHUNKS * impl->partial_floats */
    double (*norms)[2];
    double (*norm_parts)[2]; /* per work item of the update */
    /* profiling (mmc build --profile) */
    double *prof_time;
    int prof_on;
    /* tracing (rt_backend.trace) */
    void (*trace)(void *user, int k, const float *out, size_t n);
    void *trace_user;
    /* A data-parallel step's buckets (rt_cpu.c): called after kernel k
     * wherever impl->grad_ready says more gradients became final. */
    void (*grads_ready)(rt_exec *e, int k);
    int run_v;               /* the variant running */
    size_t bucket_hi;        /* the gradients from here on are being averaged */
    float bucket_w;          /* this rank's examples: each bucket's weight before the sum */
};

typedef void (*rt_cpu_run_fn)(rt_exec *e, const rt_batch *b, const rt_hyper *h, rt_result *r);


typedef struct {
    const char *name;        /* "%11 conv" */
    double flops;            /* per example */
    double flops_fixed;      /* independent of the batch */
} rt_kernel_info;

/* Run tables. A graph of more than a few hundred kernels runs them in a
 * loop over a table of steps instead of one call statement each
 * (codegen/emit_c.c): a function of 10^5 calls takes the C compiler
 * minutes and gigabytes, a table of 10^5 rows a second. A step calls its
 * kernel through a wrapper taking the kernel's operands as an array. Each
 * operand is a place, an arena (the IR's buffers, ir/ir.h's IrBuf) and an
 * offset in it (in floats, per example for MMK_ACT), packed as
 * offset * 8 + arena; plain integers, since the compiler's memory per
 * initializer grows with its nesting. A step is three words: its wrapper's
 * number * 256 + its operands' count, where its operands' places start
 * (the place it wrote, for tracing, follows them) and that result's size *
 * 2 + whether the size is per example. */
enum { MMK_ACT = 1, MMK_FIXED, MMK_PARAM, MMK_GRAD, MMK_STATE, MMK_INPUT, MMK_LABELS };
typedef void (*mmk_wrap_fn)(void *const *p, int B, rt_exec *e, const rt_hyper *h);

/* A large graph's kernel table from its text: per kernel its name, its
 * flops per example and its fixed flops, each NUL-terminated. */
static inline void mmk_kernel_info(rt_kernel_info *k, int n, const char *text) {
    for (int i = 0; i < n; i++) {
        k[i].name = text;
        text += strlen(text) + 1;
        k[i].flops = strtod(text, NULL);
        text += strlen(text) + 1;
        k[i].flops_fixed = strtod(text, NULL);
        text += strlen(text) + 1;
    }
}

static inline void *mmk_at(rt_exec *e, const rt_batch *bt, size_t MB, uint64_t p) {
    const size_t off = (size_t)(p >> 3);
    switch (p & 7) {
    case MMK_ACT: return e->act + off * MB;
    case MMK_FIXED: return e->fixed + off;
    case MMK_PARAM: return e->params + off;
    case MMK_GRAD: return e->grads + off;
    case MMK_STATE: return e->states + off;
    case MMK_INPUT: return (void *)bt->x[off];
    default: return (void *)bt->y; /* MMK_LABELS */
    }
}

struct rt_cpu_impl {
    const rt_cpu_run_fn *run;          /* per variant */
    size_t act_floats, fixed_floats;   /* largest over the variants */
    size_t scratch_floats;             /* per thread */
    size_t partial_floats;             /* per chunk */
    size_t wt_floats;                  /* the largest weight matrix */
    const int *nkernels;               /* per variant */
    const rt_kernel_info *const *kernels; /* per variant */
    const char *simd;                  /* the instruction set the kernels were compiled for */
    int profiled;                      /* built with mmc build --profile */
    const size_t *const *grad_ready;   /* per variant, per kernel: the gradient arena is final from this offset on
                                        * after the kernel (NULL: a variant without gradients) */
};

extern const rt_backend rt_cpu_backend;

/* ---- kernel building blocks ----------------------------------------------- */
#define MMK_THREAD() (omp_get_thread_num())

/* ---- layout ----------------------------------------------------------------
 * Feature maps (batched tensors of rank 3 and more) are stored channel-major:
 * [C][B][D][H][W]. A convolution over the whole batch is then one GEMM,
 * Y[CO][B*Q] = W[CO][K] . COL[K][B*Q], and per-channel reductions
 * (BatchNorm, bias gradients) read contiguous memory. Vectors [B][F] are
 * row-major. */

/* Columns [j0, j0+nb) of the unrolled input of a convolution, column j being
 * output position q = j % Q of example n = j / Q (K = CI*KD*KH*KW rows).
 * packed = 1: in the layout the GEMM reads as B (mmk_pack_index);
 * packed = 0: row-major, panel[k * nb + jj]. Zero in the padding. */
#define MMK_PACK_NR 32
/* Index of element (row r, column c) of a packed B[R][C]: blocks of 32
 * columns, each stored row after row (R x 32, zero-padded). */
static inline size_t mmk_pack_index(int R, int r, int c) {
    return ((size_t)(c / MMK_PACK_NR) * R + r) * MMK_PACK_NR + c % MMK_PACK_NR;
}

static inline int mmk_ceil_div(int a, int b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }

/* Short copies and fills with masked vector moves: the runs of im2col are a
 * few to a few dozen values, too short for memcpy's call to pay. */
__attribute__((always_inline)) static inline void mmk_copy(mm_real *restrict d, const mm_real *restrict s, int n) {
#if defined(__AVX512F__) && !defined(MMNET_F64)
    for (int u = 0; u < n; u += 16) {
        const __mmask16 m = n - u >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - u)) - 1);
        _mm512_mask_storeu_ps(d + u, m, _mm512_maskz_loadu_ps(m, s + u));
    }
#else
    for (int u = 0; u < n; u++) d[u] = s[u];
#endif
}

__attribute__((always_inline)) static inline void mmk_zero(mm_real *restrict d, int n) {
#if defined(__AVX512F__) && !defined(MMNET_F64)
    for (int u = 0; u < n; u += 16)
        _mm512_mask_storeu_ps(d + u, n - u >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - u)) - 1), _mm512_setzero_ps());
#else
    for (int u = 0; u < n; u++) d[u] = 0;
#endif
}

/* d[u] = input at output column t0 + u of a run starting at ow, for one
 * kernel column kw: zeros outside [tl, th), a (strided) copy inside. */
__attribute__((always_inline)) static inline void mmk_im2col_seg(mm_real *restrict d, const mm_real *restrict xr, int t0, int n, int tl, int th, int ow, int SW,
                                  int PW, int kw) {
    int a = tl - t0, b = th - t0;
    a = a < 0 ? 0 : a > n ? n : a;
    b = b < a ? a : b > n ? n : b;
    mmk_zero(d, a);
    const mm_real *restrict s = xr + (ow + t0) * SW - PW + kw;
    if (SW == 1)
        mmk_copy(d + a, s + a, b - a);
    else
        for (int u = a; u < b; u++) d[u] = s[u * SW];
    mmk_zero(d + b, n - b);
}

__attribute__((always_inline)) static inline void mmk_im2col_cb(mm_real *restrict panel, int packed, const mm_real *restrict x, int B, int j0, int nb, int CI,
                                 int DI, int HI, int WI, int KD, int KH, int KW, int SD, int SH, int SW, int PD, int PH, int PW,
                                 int DO, int HO, int WO) {
    const int Q = DO * HO * WO, K = CI * KD * KH * KW;
    int n = j0 / Q, q = j0 % Q;
    int od = q / (HO * WO), oh = (q / WO) % HO, ow = q % WO;
    if (packed && nb % MMK_PACK_NR) /* zero the padding of the last block of 32 */
        for (int k = 0; k < K; k++)
            for (int jj = nb; jj % MMK_PACK_NR; jj++) panel[mmk_pack_index(K, k, jj)] = 0;
    for (int jj = 0; jj < nb;) {
        const int run = WO - ow < nb - jj ? WO - ow : nb - jj;
        for (int ci = 0; ci < CI; ci++)
            for (int kd = 0; kd < KD; kd++) {
                const int id = od * SD - PD + kd;
                for (int kh = 0; kh < KH; kh++) {
                    const int ih = oh * SH - PH + kh;
                    const int inside = id >= 0 && id < DI && ih >= 0 && ih < HI;
                    const mm_real *xr = x + (((size_t)ci * B + n) * DI + (inside ? id : 0)) * HI * WI + (size_t)(inside ? ih : 0) * WI;
                    for (int kw = 0; kw < KW; kw++) {
                        const int k = ((ci * KD + kd) * KH + kh) * KW + kw;
                        /* Output columns whose input column is inside [0, WI). */
                        int tl = mmk_ceil_div(PW - kw, SW) - ow, th = mmk_ceil_div(WI + PW - kw, SW) - ow;
                        if (!inside) tl = th = 0;
                        if (!packed) {
                            mmk_im2col_seg(panel + (size_t)k * nb + jj, xr, 0, run, tl, th, ow, SW, PW, kw);
                            continue;
                        }
                        for (int t = 0; t < run;) { /* contiguous within each block of 32 */
                            const int c = jj + t, seg0 = MMK_PACK_NR - c % MMK_PACK_NR, seg = seg0 < run - t ? seg0 : run - t;
                            mmk_im2col_seg(panel + mmk_pack_index(K, k, c), xr, t, seg, tl, th, ow, SW, PW, kw);
                            t += seg;
                        }
                    }
                }
            }
        jj += run;
        ow += run;
        if (ow == WO) {
            ow = 0;
            if (++oh == HO) {
                oh = 0;
                if (++od == DO) {
                    od = 0;
                    n++;
                }
            }
        }
    }
}

/* Pack rows [0, R) and columns [0, C) of a row-major matrix into the GEMM's
 * B layout; transposed = 1 packs its transpose (src is C x R). */
static inline void mmk_pack(mm_real *restrict dst, const mm_real *restrict src, int ld, int R, int C) {
    for (int c0 = 0; c0 < C; c0 += MMK_PACK_NR) {
        const int w = C - c0 < MMK_PACK_NR ? C - c0 : MMK_PACK_NR;
        for (int r = 0; r < R; r++) {
            mm_real *restrict d = dst + ((size_t)(c0 / MMK_PACK_NR) * R + r) * MMK_PACK_NR;
            const mm_real *restrict s = src + (size_t)r * ld + c0;
            int c = 0;
            for (; c < w; c++) d[c] = s[c];
            for (; c < MMK_PACK_NR; c++) d[c] = 0;
        }
    }
}

/* A transposed block of at most 16 x 16: dst[c * ldd + r] = src[r * lds + c]
 * for c < C and r < 16, zero for r >= R (each dst row gets all 16 values).
 * AVX-512 transposes in registers (64 shuffles for 256 values) where a
 * scalar loop would do one strided store per value. mmk_tr16x stores only
 * r < R when `only`, and can add bias[c] and apply a ReLU on the way (the
 * store of a convolution computed transposed). */
__attribute__((always_inline)) static inline void mmk_tr16x(mm_real *restrict dst, size_t ldd, const mm_real *restrict src, size_t lds,
                                                            int R, int C, int only, const mm_real *bias, int relu) {
#if defined(__AVX512F__) && !defined(MMNET_F64)
    const __mmask16 mc = C >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << C) - 1);
    __m512 r[16], t[16];
    for (int i = 0; i < 16; i++) r[i] = i < R ? _mm512_maskz_loadu_ps(mc, src + (size_t)i * lds) : _mm512_setzero_ps();
    /* In each 128-bit lane L: pairs of rows interleaved, then 4 rows of
     * column 4L + j in r[4g + j] (rows 4g..4g+3), then the lanes gathered. */
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int g = 0; g < 4; g++) {
        const __m512d a = _mm512_castps_pd(t[4 * g]), b = _mm512_castps_pd(t[4 * g + 1]);
        const __m512d c = _mm512_castps_pd(t[4 * g + 2]), d = _mm512_castps_pd(t[4 * g + 3]);
        r[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        r[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        r[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        r[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    for (int j = 0; j < 4; j++) {
        const __m512 v0 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x44), v1 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xEE);
        const __m512 v2 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x44), v3 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xEE);
        t[j] = _mm512_shuffle_f32x4(v0, v2, 0x88);       /* column j */
        t[4 + j] = _mm512_shuffle_f32x4(v0, v2, 0xDD);   /* column 4 + j */
        t[8 + j] = _mm512_shuffle_f32x4(v1, v3, 0x88);   /* column 8 + j */
        t[12 + j] = _mm512_shuffle_f32x4(v1, v3, 0xDD);  /* column 12 + j */
    }
    const __mmask16 mr = only && R < 16 ? (__mmask16)((1u << R) - 1) : (__mmask16)0xFFFF;
    for (int c = 0; c < C; c++) {
        __m512 v = t[c];
        if (bias) v = _mm512_add_ps(v, _mm512_set1_ps(bias[c]));
        if (relu) v = _mm512_max_ps(v, _mm512_setzero_ps());
        _mm512_mask_storeu_ps(dst + (size_t)c * ldd, mr, v);
    }
#else
    for (int c = 0; c < C; c++)
        for (int r = 0; r < (only ? R : 16); r++) {
            mm_real v = r < R ? src[(size_t)r * lds + c] + (bias ? bias[c] : 0) : 0;
            dst[(size_t)c * ldd + r] = relu && v < 0 ? 0 : v;
        }
#endif
}
static inline void mmk_tr16(mm_real *restrict dst, size_t ldd, const mm_real *restrict src, size_t lds, int R, int C) {
    mmk_tr16x(dst, ldd, src, lds, R, C, 0, NULL, 0);
}
/* The same for int32 (argmax indices), storing only r < R: the float
 * shuffles move the bits unchanged. */
static inline void mmk_tr16i(int32_t *restrict dst, size_t ldd, const int32_t *restrict src, size_t lds, int R, int C) {
#if defined(__AVX512F__) && !defined(MMNET_F64)
    mmk_tr16x((float *)dst, ldd, (const float *)src, lds, R, C, 1, NULL, 0);
#else
    for (int c = 0; c < C; c++)
        for (int r = 0; r < R; r++) dst[(size_t)c * ldd + r] = src[(size_t)r * lds + c];
#endif
}

/* The transpose of a row-major src[C][R] (leading dimension ld), packed as
 * B[R][C]: dst holds src^T. */
static inline void mmk_pack_t(mm_real *restrict dst, const mm_real *restrict src, int ld, int R, int C) {
    for (int c0 = 0; c0 < C; c0 += 16) {
        mm_real *restrict blk = dst + (size_t)(c0 / MMK_PACK_NR) * R * MMK_PACK_NR + c0 % MMK_PACK_NR;
        const int w = C - c0 < 16 ? C - c0 : 16;
        for (int r0 = 0; r0 < R; r0 += 16)
            mmk_tr16(blk + (size_t)r0 * MMK_PACK_NR, MMK_PACK_NR, src + (size_t)c0 * ld + r0, ld, w, R - r0 < 16 ? R - r0 : 16);
        if (c0 % MMK_PACK_NR == 0 && c0 + 16 >= C) /* the block's other half, beyond C */
            for (int r = 0; r < R; r++) memset(blk + (size_t)r * MMK_PACK_NR + 16, 0, sizeof(mm_real) * 16);
    }
}

/* The adjoint of mmk_im2col_cb: add the columns of a row-major panel
 * [K][ldp] back into dx at their input positions. */
static inline void mmk_col2im_cb(mm_real *restrict dx, const mm_real *restrict panel, int ldp, int B, int j0, int nb, int CI,
                                 int DI, int HI, int WI, int KD, int KH, int KW, int SD, int SH, int SW, int PD, int PH, int PW,
                                 int DO, int HO, int WO) {
    const int Q = DO * HO * WO;
    int n = j0 / Q, q = j0 % Q;
    int od = q / (HO * WO), oh = (q / WO) % HO, ow = q % WO;
    for (int jj = 0; jj < nb;) {
        int run = WO - ow < nb - jj ? WO - ow : nb - jj;
        for (int ci = 0; ci < CI; ci++)
            for (int kd = 0; kd < KD; kd++) {
                const int id = od * SD - PD + kd;
                if (id < 0 || id >= DI) continue;
                for (int kh = 0; kh < KH; kh++) {
                    const int ih = oh * SH - PH + kh;
                    if (ih < 0 || ih >= HI) continue;
                    mm_real *restrict xr = dx + (((size_t)ci * B + n) * DI + id) * HI * WI + (size_t)ih * WI;
                    for (int kw = 0; kw < KW; kw++) {
                        const mm_real *restrict src = panel + (size_t)(((ci * KD + kd) * KH + kh) * KW + kw) * ldp + jj;
                        for (int t = 0; t < run; t++) {
                            int iw = (ow + t) * SW - PW + kw;
                            if (iw >= 0 && iw < WI) xr[iw] += src[t];
                        }
                    }
                }
            }
        jj += run;
        ow += run;
        if (ow == WO) {
            ow = 0;
            if (++oh == HO) {
                oh = 0;
                if (++od == DO) {
                    od = 0;
                    n++;
                }
            }
        }
    }
}

/* ---- GEMM: the micro-kernels and their drivers --------------------------- */
#include "mmrt_cpu_gemm.h"
#include "mmrt_cpu_wino.h"

/* The 16 partial sums of mmk_dot and mmk_sum, added pairwise (8 + 8, 4 +
 * 4, ...): four dependent vector adds where adding them in turn was a chain
 * of 16 scalar ones, which cost more than the sums themselves on the short
 * runs (a 7 x 7 plane) of pooling, gate and bias gradients. */
static inline mm_real mmk_fold16(mm_real *restrict s, mm_real t) {
    for (int w = 8; w > 0; w /= 2)
        for (int l = 0; l < w; l++) s[l] += s[l + w];
    return t + s[0];
}

/* Dot product with independent partial sums (vectorises without -ffast-math). */
static inline mm_real mmk_dot(const mm_real *restrict a, const mm_real *restrict b, int n) {
    mm_real s[16] = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++) s[l] += a[i + l] * b[i + l];
    mm_real t = 0;
    for (; i < n; i++) t += a[i] * b[i];
    return mmk_fold16(s, t);
}

/* Sum with independent partial sums (vectorises; a plain loop is a chain of
 * dependent adds). */
static inline mm_real mmk_sum(const mm_real *restrict a, int n) {
    mm_real s[16] = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++) s[l] += a[i + l];
    mm_real t = 0;
    for (; i < n; i++) t += a[i];
    return mmk_fold16(s, t);
}

/* The sum of n floats in double, from float sums of 1024 each (mmk_sum): a
 * channel's values in a bias gradient. The grouping depends on n alone. */
static inline double mmk_sum_long(const mm_real *restrict a, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i += 1024) s += mmk_sum(a + i, n - i < 1024 ? (int)(n - i) : 1024);
    return s;
}

/* dst[c][r] = src[r][c] for an R x C matrix. */
__attribute__((unused)) static void mmk_transpose(mm_real *restrict dst, const mm_real *restrict src, int R, int C) {
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) dst[(size_t)c * R + r] = src[(size_t)r * C + c];
}

/* 2-D max pooling of one plane, in two passes: the first maximum of each
 * row's horizontal windows (the row padded with -inf), then the first of
 * those down each window's rows. Scanning rows in order keeps the
 * row-major first maximum of the whole window, as the CUDA kernel does.
 * ix (NULL in evaluation) receives each maximum's index in the plane; a
 * window without a maximum (all NaN) gives NaN and index -1. The plane's
 * rows are LDX floats apart (WI, or a convolution's padded row width when
 * the pooling reads its output in place); indices count WI per row. The
 * shapes are constants at every call site. The planes of hm/ha: HI x
 * round16(WO). */
#define MMK_POOL_WV(WO) (((WO) + 15) / 16 * 16)
__attribute__((always_inline)) static inline void mmk_maxpool2d(const mm_real *restrict xs, int LDX, mm_real *restrict ys, int32_t *restrict ix,
                                                                int HI, int WI, int HO, int WO, int KH, int KW, int SH, int SW, int PH,
                                                                int PW) {
    const int WV = MMK_POOL_WV(WO), WPAD = (WV - 1) * SW + KW + 32;
    mm_real hm[HI * WV], pr[WPAD];
    int32_t ha[HI * WV];
    for (int w = 0; w < WPAD; w++) pr[w] = -INFINITY;
#if defined(__AVX512F__) && !defined(MMNET_F64)
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    for (int ih = 0; ih < HI; ih++) {
        memcpy(pr + PW, xs + (size_t)ih * LDX, sizeof(float) * WI);
        for (int o0 = 0; o0 < WV; o0 += 16) {
            __m512 m = ninf;
            __m512i a = _mm512_set1_epi32(-1);
            const __m512i at0 = _mm512_add_epi32(_mm512_mullo_epi32(_mm512_add_epi32(lane, _mm512_set1_epi32(o0)), _mm512_set1_epi32(SW)),
                                                 _mm512_set1_epi32(ih * WI - PW));
            for (int kw = 0; kw < KW; kw++) {
                const float *p = pr + o0 * SW + kw;
                __m512 v;
                if (SW == 1) v = _mm512_loadu_ps(p);
                else if (SW == 2) v = _mm512_permutex2var_ps(_mm512_loadu_ps(p), even, _mm512_loadu_ps(p + 16));
                else v = _mm512_i32gather_ps(_mm512_mullo_epi32(lane, _mm512_set1_epi32(SW)), p, 4);
                const __mmask16 gt = _mm512_cmp_ps_mask(v, m, _CMP_GT_OQ);
                m = _mm512_mask_mov_ps(m, gt, v);
                a = _mm512_mask_mov_epi32(a, gt, _mm512_add_epi32(at0, _mm512_set1_epi32(kw)));
            }
            _mm512_storeu_ps(hm + ih * WV + o0, m);
            _mm512_storeu_si512(ha + ih * WV + o0, a);
        }
    }
    for (int oh = 0; oh < HO; oh++)
        for (int o0 = 0; o0 < WV; o0 += 16) {
            __m512 m = ninf;
            __m512i a = _mm512_set1_epi32(-1);
            for (int kh = 0; kh < KH; kh++) {
                const int ih = oh * SH - PH + kh;
                if (ih < 0 || ih >= HI) continue;
                const __m512 v = _mm512_loadu_ps(hm + ih * WV + o0);
                const __mmask16 gt = _mm512_cmp_ps_mask(v, m, _CMP_GT_OQ);
                m = _mm512_mask_mov_ps(m, gt, v);
                a = _mm512_mask_mov_epi32(a, gt, _mm512_loadu_si512(ha + ih * WV + o0));
            }
            const int nv = WO - o0 < 16 ? WO - o0 : 16;
            const __mmask16 st = (__mmask16)((1u << nv) - 1);
            const __mmask16 found = _mm512_cmp_epi32_mask(a, _mm512_setzero_si512(), _MM_CMPINT_NLT);
            _mm512_mask_storeu_ps(ys + oh * WO + o0, st, _mm512_mask_mov_ps(_mm512_set1_ps(NAN), found, m));
            if (ix) _mm512_mask_storeu_epi32(ix + oh * WO + o0, st, a);
        }
#elif defined(__AVX2__) && defined(__FMA__) && !defined(MMNET_F64)
    /* The same two passes 8 lanes wide. */
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), none = _mm256_set1_epi32(-1);
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    for (int ih = 0; ih < HI; ih++) {
        memcpy(pr + PW, xs + (size_t)ih * LDX, sizeof(float) * WI);
        for (int o0 = 0; o0 < WV; o0 += 8) {
            __m256 m = ninf;
            __m256i a = none;
            const __m256i at0 = _mm256_add_epi32(_mm256_mullo_epi32(_mm256_add_epi32(lane, _mm256_set1_epi32(o0)), _mm256_set1_epi32(SW)),
                                                 _mm256_set1_epi32(ih * WI - PW));
            for (int kw = 0; kw < KW; kw++) {
                const float *p = pr + o0 * SW + kw;
                __m256 v;
                if (SW == 1) v = _mm256_loadu_ps(p);
                else if (SW == 2) /* the even elements of p[0..15]: [0 2 8 10 | 4 6 12 14], then the 64-bit pairs in order */
                    v = _mm256_castpd_ps(_mm256_permute4x64_pd(
                        _mm256_castps_pd(_mm256_shuffle_ps(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8), _MM_SHUFFLE(2, 0, 2, 0))), 0xD8));
                else v = _mm256_i32gather_ps(p, _mm256_mullo_epi32(lane, _mm256_set1_epi32(SW)), 4);
                const __m256 gt = _mm256_cmp_ps(v, m, _CMP_GT_OQ);
                m = _mm256_blendv_ps(m, v, gt);
                a = _mm256_blendv_epi8(a, _mm256_add_epi32(at0, _mm256_set1_epi32(kw)), _mm256_castps_si256(gt));
            }
            _mm256_storeu_ps(hm + ih * WV + o0, m);
            _mm256_storeu_si256((__m256i *)(ha + ih * WV + o0), a);
        }
    }
    for (int oh = 0; oh < HO; oh++)
        for (int o0 = 0; o0 < WO; o0 += 8) {
            __m256 m = ninf;
            __m256i a = none;
            for (int kh = 0; kh < KH; kh++) {
                const int ih = oh * SH - PH + kh;
                if (ih < 0 || ih >= HI) continue;
                const __m256 v = _mm256_loadu_ps(hm + ih * WV + o0), gt = _mm256_cmp_ps(v, m, _CMP_GT_OQ);
                m = _mm256_blendv_ps(m, v, gt);
                a = _mm256_blendv_epi8(a, _mm256_loadu_si256((const __m256i *)(ha + ih * WV + o0)), _mm256_castps_si256(gt));
            }
            const int nv = WO - o0 < 8 ? WO - o0 : 8;
            const __m256i st = _mm256_cmpgt_epi32(_mm256_set1_epi32(nv), lane);   /* the lanes inside the row */
            const __m256 found = _mm256_castsi256_ps(_mm256_cmpgt_epi32(a, none)); /* a >= 0 */
            _mm256_maskstore_ps(ys + oh * WO + o0, st, _mm256_blendv_ps(_mm256_set1_ps(NAN), m, found));
            if (ix) _mm256_maskstore_epi32(ix + oh * WO + o0, st, a);
        }
#else
    for (int ih = 0; ih < HI; ih++) {
        for (int w = 0; w < WI; w++) pr[PW + w] = xs[(size_t)ih * LDX + w];
        mm_real m[WV];
        int32_t a[WV];
        for (int ow = 0; ow < WO; ow++) m[ow] = -INFINITY, a[ow] = -1;
        for (int kw = 0; kw < KW; kw++)
            for (int ow = 0; ow < WO; ow++) {
                const mm_real v = pr[ow * SW + kw];
                const int gt = v > m[ow];
                m[ow] = gt ? v : m[ow];
                a[ow] = gt ? ih * WI + ow * SW + kw - PW : a[ow];
            }
        for (int ow = 0; ow < WO; ow++) hm[ih * WV + ow] = m[ow], ha[ih * WV + ow] = a[ow];
    }
    for (int oh = 0; oh < HO; oh++) {
        mm_real m[WV];
        int32_t a[WV];
        for (int ow = 0; ow < WO; ow++) m[ow] = -INFINITY, a[ow] = -1;
        for (int kh = 0; kh < KH; kh++) {
            const int ih = oh * SH - PH + kh;
            if (ih < 0 || ih >= HI) continue;
            for (int ow = 0; ow < WO; ow++) {
                const mm_real v = hm[ih * WV + ow];
                const int gt = v > m[ow];
                m[ow] = gt ? v : m[ow];
                a[ow] = gt ? ha[ih * WV + ow] : a[ow];
            }
        }
        for (int ow = 0; ow < WO; ow++) {
            ys[oh * WO + ow] = a[ow] >= 0 ? m[ow] : (mm_real)NAN;
            if (ix) ix[oh * WO + ow] = a[ow];
        }
    }
#endif
}

/* 3-D max pooling of one (example, channel) volume: for each output slice,
 * the 2-D poolings (mmk_maxpool2d) of the input slices its window covers,
 * merged in depth order with `>`. Each pass keeps the first maximum in its
 * order, so the result is the window's first maximum in (d, h, w) order,
 * the one the general loop and the CUDA kernel record; a window without one
 * (all NaN) gives NaN and index -1. ix (NULL in evaluation) receives indices
 * in the volume, (d * HI + h) * WI + w. A ring of KD pooled slices (slice d
 * in slot d % KD) pools each input slice once. The stack holds
 * mmk_maxpool2d's passes and KD + 1 pairs of HO x WO planes. */
__attribute__((always_inline)) static inline void mmk_maxpool3d(const mm_real *restrict xs, mm_real *restrict ys, int32_t *restrict ix,
                                                                int DI, int HI, int WI, int DO, int HO, int WO, int KD, int KH, int KW,
                                                                int SD, int SH, int SW, int PD, int PH, int PW) {
    const int NO = HO * WO;
    mm_real rm[KD * NO], am[NO];
    int32_t ra[KD * NO], aa[NO], tag[KD];
    for (int k = 0; k < KD; k++) tag[k] = -1;
    for (int od = 0; od < DO; od++) {
        for (int o = 0; o < NO; o++) am[o] = -INFINITY, aa[o] = -1;
        for (int kd = 0; kd < KD; kd++) {
            const int d = od * SD - PD + kd;
            if (d < 0 || d >= DI) continue;
            mm_real *sm = rm + (size_t)(d % KD) * NO;
            int32_t *sa = ra + (size_t)(d % KD) * NO;
            if (tag[d % KD] != d) {
                mmk_maxpool2d(xs + (size_t)d * HI * WI, WI, sm, sa, HI, WI, HO, WO, KH, KW, SH, SW, PH, PW);
                const int32_t base = d * HI * WI;
                for (int o = 0; o < NO; o++) sa[o] += sa[o] >= 0 ? base : 0;
                tag[d % KD] = d;
            }
            for (int o = 0; o < NO; o++) {
                const int gt = sm[o] > am[o]; /* false for NaN: a slice's window without a maximum */
                am[o] = gt ? sm[o] : am[o];
                aa[o] = gt ? sa[o] : aa[o];
            }
        }
        mm_real *y = ys + (size_t)od * NO;
        for (int o = 0; o < NO; o++) y[o] = aa[o] >= 0 ? am[o] : (mm_real)NAN;
        if (ix)
            for (int o = 0; o < NO; o++) ix[(size_t)od * NO + o] = aa[o];
    }
}

/* 2-D max pooling of a convolution's output held transposed, positions x
 * channels (x[p * ldx + c], p = h * WI + w, as mmk_gemm_gather leaves it),
 * before its bias and ReLU: those are monotonic, so they are applied to the
 * C pooled values only. Vectors run across 16 channels; each window is
 * scanned in row-major order keeping the first maximum (index h * WI + w).
 * A window of NaN gives NaN and index -1; with the ReLU, 0 at the window's
 * first position, as pooling the ReLU's output (which maps NaN to 0) does.
 * Writes the pooled values (and the
 * indices when ix) transposed: yt[o * 16 + j], it[o * 16 + j] for the 16
 * channels from c0, o = oh * WO + ow; a caller transposes them into planes. */
static inline void mmk_maxpool_t16(const mm_real *restrict x, int ldx, int c0, int C, int HI, int WI, int HO, int WO, int KH, int KW,
                                   int SH, int SW, int PH, int PW, const mm_real *bias, int relu, mm_real *restrict yt,
                                   int32_t *restrict it) {
#if defined(__AVX512F__) && !defined(MMNET_F64)
    const __mmask16 mc = C - c0 >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (C - c0)) - 1);
    const __m512 b = bias ? _mm512_maskz_loadu_ps(mc, bias + c0) : _mm512_setzero_ps();
    for (int oh = 0; oh < HO; oh++) {
        const int h0 = oh * SH - PH, hlo = h0 < 0 ? 0 : h0, hhi = h0 + KH < HI ? h0 + KH : HI;
        for (int ow = 0; ow < WO; ow++) {
            const int w0 = ow * SW - PW, wlo = w0 < 0 ? 0 : w0, whi = w0 + KW < WI ? w0 + KW : WI;
            __m512 m = _mm512_set1_ps(-INFINITY);
            __m512i a = _mm512_set1_epi32(-1);
            for (int h = hlo; h < hhi; h++)
                for (int w = wlo; w < whi; w++) {
                    const int p = h * WI + w;
                    const __m512 v = _mm512_maskz_loadu_ps(mc, x + (size_t)p * ldx + c0);
                    const __mmask16 gt = _mm512_cmp_ps_mask(v, m, _CMP_GT_OQ);
                    m = _mm512_mask_mov_ps(m, gt, v);
                    a = _mm512_mask_mov_epi32(a, gt, _mm512_set1_epi32(p));
                }
            __m512 v = _mm512_add_ps(m, b);
            if (relu) v = _mm512_max_ps(v, _mm512_setzero_ps());
            const __mmask16 found = _mm512_cmp_epi32_mask(a, _mm512_setzero_si512(), _MM_CMPINT_NLT);
            const int o = oh * WO + ow;
            if (relu) a = _mm512_mask_mov_epi32(_mm512_set1_epi32(hlo * WI + wlo), found, a);
            _mm512_storeu_ps(yt + (size_t)o * 16, _mm512_mask_mov_ps(_mm512_set1_ps(relu ? 0.0f : NAN), found, v));
            if (it) _mm512_storeu_si512(it + (size_t)o * 16, a);
        }
    }
#else
    for (int j = 0; j < 16; j++) {
        const int c = c0 + j;
        for (int oh = 0; oh < HO; oh++)
            for (int ow = 0; ow < WO; ow++) {
                const int h0 = oh * SH - PH, w0 = ow * SW - PW, o = oh * WO + ow;
                mm_real m = -INFINITY;
                int at = -1;
                if (c < C)
                    for (int h = h0 < 0 ? 0 : h0; h < h0 + KH && h < HI; h++)
                        for (int w = w0 < 0 ? 0 : w0; w < w0 + KW && w < WI; w++) {
                            const mm_real v = x[(size_t)(h * WI + w) * ldx + c];
                            if (v > m) m = v, at = h * WI + w;
                        }
                mm_real v = m + (bias && c < C ? bias[c] : 0);
                if (relu) v = v > 0 ? v : 0;
                if (relu && at < 0) at = (h0 < 0 ? 0 : h0) * WI + (w0 < 0 ? 0 : w0);
                yt[(size_t)o * 16 + j] = at >= 0 ? v : (mm_real)NAN;
                if (it) it[(size_t)o * 16 + j] = at;
            }
    }
#endif
}

/* Profiling of each kernel call (mmc build --profile). */
#ifdef MMNET_PROFILE
#define MMK_CALL(e, k, call)                                   \
    do {                                                       \
        double t0_ = (e)->prof_on ? omp_get_wtime() : 0;       \
        call;                                                  \
        if ((e)->prof_on) (e)->prof_time[k] += omp_get_wtime() - t0_; \
    } while (0)
#else
#define MMK_CALL(e, k, call) call
#endif

#endif
