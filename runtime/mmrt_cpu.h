/* mmrt_cpu.h — what generated C code includes: the CPU back end's state
 * (rt_exec) and the few building blocks the generated kernels call with
 * constant arguments (im2col, col2im and the GEMM micro-kernels), so that
 * the compiler specialises them per call site.
 *
 * Generated kernels are single functions with their shapes as constants;
 * these helpers are static inline on purpose. */
#ifndef MMRT_CPU_H
#define MMRT_CPU_H

#include <math.h>
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "mmrt.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#define MMK_SIMD "avx512"
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define MMK_SIMD "avx2"
#else
#define MMK_SIMD "scalar"
#endif

/* Weight-gradient reductions over the batch are split into this many fixed
 * chunks, summed in order: the result does not depend on the thread count. */
#define RT_DW_CHUNKS 8

#ifdef MMNET_F64
#define MMK_EXP exp
#define MMK_SQRT sqrt
#else
#define MMK_EXP expf
#define MMK_SQRT sqrtf
#endif

typedef struct rt_cpu_impl rt_cpu_impl;

struct rt_exec {
    const rt_model *m;
    const rt_cpu_impl *impl;
    int max_batch;
    int nthreads;
    mm_real *params, *grads, *mom, *states;
    mm_real *act, *fixed;
    mm_real *scratch;        /* nthreads * impl->scratch_floats */
    mm_real *partial;        /* RT_DW_CHUNKS * impl->partial_floats */
    double (*norms)[2];
    double (*norm_parts)[2]; /* per work item of the update */
    /* profiling (mmc build --profile) */
    double *prof_time;
    int prof_on;
};

typedef void (*rt_cpu_run_fn)(rt_exec *e, const rt_batch *b, const rt_hyper *h, rt_result *r);

typedef struct {
    const char *name;        /* "%11 conv" */
    double flops;            /* per example */
    double flops_fixed;      /* independent of the batch */
} rt_kernel_info;

struct rt_cpu_impl {
    const rt_cpu_run_fn *run;          /* per variant */
    size_t act_floats, fixed_floats;   /* largest over the variants */
    size_t scratch_floats;             /* per thread */
    size_t partial_floats;             /* per chunk */
    const int *nkernels;               /* per variant */
    const rt_kernel_info *const *kernels; /* per variant */
    const char *simd;                  /* the instruction set the kernels were compiled for */
    int profiled;                      /* built with mmc build --profile */
};

extern const rt_backend rt_cpu_backend;

/* ---- kernel building blocks ----------------------------------------------- */
#define MMK_THREAD() (omp_get_thread_num())

/* Unrolled column of an input for a convolution window: col[K][P], K =
 * CI*KD*KH*KW rows of P = DO*HO*WO output positions; zero where the window
 * falls in the padding. */
static inline void mmk_im2col(mm_real *restrict col, const mm_real *restrict x, int CI, int DI, int HI, int WI, int KD, int KH,
                              int KW, int SD, int SH, int SW, int PD, int PH, int PW, int DO, int HO, int WO) {
    const int P = DO * HO * WO;
    for (int ci = 0; ci < CI; ci++)
        for (int kd = 0; kd < KD; kd++)
            for (int kh = 0; kh < KH; kh++)
                for (int kw = 0; kw < KW; kw++) {
                    mm_real *restrict row = col + ((size_t)((ci * KD + kd) * KH + kh) * KW + kw) * P;
                    for (int od = 0; od < DO; od++) {
                        int id = od * SD - PD + kd;
                        for (int oh = 0; oh < HO; oh++) {
                            int ih = oh * SH - PH + kh;
                            mm_real *restrict r = row + (od * HO + oh) * WO;
                            if (id < 0 || id >= DI || ih < 0 || ih >= HI) {
                                for (int ow = 0; ow < WO; ow++) r[ow] = 0.0f;
                                continue;
                            }
                            const mm_real *restrict xr = x + (((size_t)ci * DI + id) * HI + ih) * WI;
                            if (SW == 1) {
                                for (int ow = 0; ow < WO; ow++) {
                                    int iw = ow - PW + kw;
                                    r[ow] = (iw >= 0 && iw < WI) ? xr[iw] : 0.0f;
                                }
                            } else {
                                for (int ow = 0; ow < WO; ow++) {
                                    int iw = ow * SW - PW + kw;
                                    r[ow] = (iw >= 0 && iw < WI) ? xr[iw] : 0.0f;
                                }
                            }
                        }
                    }
                }
}

/* The adjoint of im2col: add each column entry back to its input position. */
static inline void mmk_col2im(mm_real *restrict x, const mm_real *restrict col, int CI, int DI, int HI, int WI, int KD, int KH,
                              int KW, int SD, int SH, int SW, int PD, int PH, int PW, int DO, int HO, int WO) {
    const int P = DO * HO * WO;
    for (int ci = 0; ci < CI; ci++)
        for (int kd = 0; kd < KD; kd++)
            for (int kh = 0; kh < KH; kh++)
                for (int kw = 0; kw < KW; kw++) {
                    const mm_real *restrict row = col + ((size_t)((ci * KD + kd) * KH + kh) * KW + kw) * P;
                    for (int od = 0; od < DO; od++) {
                        int id = od * SD - PD + kd;
                        if (id < 0 || id >= DI) continue;
                        for (int oh = 0; oh < HO; oh++) {
                            int ih = oh * SH - PH + kh;
                            if (ih < 0 || ih >= HI) continue;
                            const mm_real *restrict r = row + (od * HO + oh) * WO;
                            mm_real *restrict xr = x + (((size_t)ci * DI + id) * HI + ih) * WI;
                            for (int ow = 0; ow < WO; ow++) {
                                int iw = ow * SW - PW + kw;
                                if (iw >= 0 && iw < WI) xr[iw] += r[ow];
                            }
                        }
                    }
                }
}

/* C[M][N] += A[M][K] . B[K][N]   (row-major, leading dimensions given) */
static inline void mmk_gemm_nn(int M, int N, int K, const mm_real *restrict A, int lda, const mm_real *restrict Bm, int ldb,
                               mm_real *restrict C, int ldc) {
    for (int i = 0; i < M; i++) {
        mm_real *restrict c = C + (size_t)i * ldc;
        for (int k = 0; k < K; k++) {
            const mm_real a = A[(size_t)i * lda + k];
            const mm_real *restrict b = Bm + (size_t)k * ldb;
            for (int j = 0; j < N; j++) c[j] += a * b[j];
        }
    }
}

/* C[M][N] += A^T . B, A stored [K][M] */
static inline void mmk_gemm_tn(int M, int N, int K, const mm_real *restrict A, int lda, const mm_real *restrict Bm, int ldb,
                               mm_real *restrict C, int ldc) {
    for (int i = 0; i < M; i++) {
        mm_real *restrict c = C + (size_t)i * ldc;
        for (int k = 0; k < K; k++) {
            const mm_real a = A[(size_t)k * lda + i];
            const mm_real *restrict b = Bm + (size_t)k * ldb;
            for (int j = 0; j < N; j++) c[j] += a * b[j];
        }
    }
}

/* Dot product with independent partial sums (vectorises without -ffast-math). */
static inline mm_real mmk_dot(const mm_real *restrict a, const mm_real *restrict b, int n) {
    mm_real s[16] = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++) s[l] += a[i + l] * b[i + l];
    mm_real t = 0;
    for (; i < n; i++) t += a[i] * b[i];
    for (int l = 0; l < 16; l++) t += s[l];
    return t;
}

/* C[M][N] += A[M][K] . B^T, B stored [N][K] */
static inline void mmk_gemm_nt(int M, int N, int K, const mm_real *restrict A, int lda, const mm_real *restrict Bm, int ldb,
                               mm_real *restrict C, int ldc) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] += mmk_dot(A + (size_t)i * lda, Bm + (size_t)j * ldb, K);
}

/* Dropout's keep mask: a counter-based hash, so the backward pass recomputes
 * exactly the forward pass's mask without storing it. */
static inline int mmk_keep(uint64_t seed, uint64_t step, uint32_t stream, uint64_t i, float p) {
    uint64_t z = seed * 0x9e3779b97f4a7c15ULL ^ (step + 1) * 0xbf58476d1ce4e5b9ULL ^ ((uint64_t)stream << 48) ^ i;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (float)(z >> 40) * (1.0f / 16777216.0f) >= p;
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
