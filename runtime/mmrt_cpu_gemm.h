/* mmrt_cpu_gemm.h — the C back end's GEMM: register-blocked micro-kernels
 * (AVX-512, AVX2, or plain loops) and the drivers the generated kernels
 * call (mmk_gemm, mmk_gemm_off, mmk_gemm_gather, mmk_conv_thin).
 *
 * Part of mmrt_cpu.h, which includes it after the layout helpers: the
 * micro-kernels read B in their packed layout (MMK_PACK_NR) and use the
 * instruction set mmrt_cpu.h chose. Generated code includes mmrt_cpu.h. */
#ifndef MMRT_CPU_GEMM_H
#define MMRT_CPU_GEMM_H

#ifndef MMRT_CPU_H
#error "mmrt_cpu_gemm.h is part of mmrt_cpu.h: include that instead"
#endif

/* ---- GEMM ---------------------------------------------------------------------
 * C[M][N] = (acc ? C : bias[m] or 0) + A[M][K] . B[K][N], then max(., 0) if
 * relu. A and C row-major with leading dimensions; B packed (mmk_pack):
 * blocks of 32 columns, each K x 32 contiguous, so the micro-kernel streams
 * it. Register-blocked micro-kernels keep an MR x 32 tile of C in registers
 * over the whole K loop: AVX-512 (8 x 32) and AVX2 (4 x 16, twice); plain
 * loops otherwise (and for double precision). */
#if defined(__AVX512F__) && !defined(MMNET_F64)
#define MMK_TILE(MR, SUF, AD, AE, BD, BR)                                                                                \
    static inline void mmk_tile##SUF##MR(int K, AD, BD, float *restrict C, int ldc, int nr, const float *bias, int acc,  \
                                         int relu) {                                                                     \
        const __mmask16 m0 = nr >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nr) - 1);                                \
        const __mmask16 m1 = nr >= 32 ? (__mmask16)0xFFFF : nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : 0;           \
        __m512 c0[MR], c1[MR];                                                                                           \
        for (int r = 0; r < MR; r++) {                                                                                   \
            if (acc) {                                                                                                   \
                c0[r] = _mm512_maskz_loadu_ps(m0, C + (size_t)r * ldc);                                                   \
                c1[r] = _mm512_maskz_loadu_ps(m1, C + (size_t)r * ldc + 16);                                              \
            } else {                                                                                                     \
                c0[r] = c1[r] = _mm512_set1_ps(bias ? bias[r] : 0.0f);                                                   \
            }                                                                                                            \
        }                                                                                                                \
        for (int k = 0; k < K; k++) {                                                                                    \
            const float *restrict brow = BR(k);                                                                          \
            const __m512 b0 = _mm512_loadu_ps(brow), b1 = _mm512_loadu_ps(brow + 16);                                   \
            for (int r = 0; r < MR; r++) {                                                                               \
                const __m512 a = _mm512_set1_ps(AE(r, k));                                                               \
                c0[r] = _mm512_fmadd_ps(a, b0, c0[r]);                                                                   \
                c1[r] = _mm512_fmadd_ps(a, b1, c1[r]);                                                                   \
            }                                                                                                            \
        }                                                                                                                \
        for (int r = 0; r < MR; r++) {                                                                                   \
            if (relu) {                                                                                                  \
                c0[r] = _mm512_max_ps(c0[r], _mm512_setzero_ps());                                                       \
                c1[r] = _mm512_max_ps(c1[r], _mm512_setzero_ps());                                                       \
            }                                                                                                            \
            _mm512_mask_storeu_ps(C + (size_t)r * ldc, m0, c0[r]);                                                       \
            _mm512_mask_storeu_ps(C + (size_t)r * ldc + 16, m1, c1[r]);                                                  \
        }                                                                                                                \
    }
#define MMK_MR_BIG 8
#elif defined(__AVX2__) && defined(__FMA__) && !defined(MMNET_F64)
static inline __m256i mmk_mask8(int n) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx);
}
/* Two passes of 16 columns over each 32-column block (12 accumulators). */
#define MMK_TILE(MR, SUF, AD, AE, BD, BR)                                                                                \
    static inline void mmk_tile##SUF##MR(int K, AD, BD, float *restrict C, int ldc, int nr, const float *bias, int acc,  \
                                         int relu) {                                                                     \
        for (int h = 0; h < 2 && h * 16 < nr; h++) {                                                                     \
            const int w = nr - h * 16;                                                                                   \
            const __m256i m0 = mmk_mask8(w), m1 = mmk_mask8(w - 8);                                                      \
            float *Ch = C + h * 16;                                                                                      \
            __m256 c0[MR], c1[MR];                                                                                       \
            for (int r = 0; r < MR; r++) {                                                                               \
                if (acc) {                                                                                               \
                    c0[r] = _mm256_maskload_ps(Ch + (size_t)r * ldc, m0);                                                \
                    c1[r] = _mm256_maskload_ps(Ch + (size_t)r * ldc + 8, m1);                                            \
                } else {                                                                                                 \
                    c0[r] = c1[r] = _mm256_set1_ps(bias ? bias[r] : 0.0f);                                               \
                }                                                                                                        \
            }                                                                                                            \
            for (int k = 0; k < K; k++) {                                                                                \
                const float *restrict brow = BR(k) + h * 16;                                                             \
                const __m256 b0 = _mm256_loadu_ps(brow), b1 = _mm256_loadu_ps(brow + 8);                                 \
                for (int r = 0; r < MR; r++) {                                                                           \
                    const __m256 a = _mm256_set1_ps(AE(r, k));                                                           \
                    c0[r] = _mm256_fmadd_ps(a, b0, c0[r]);                                                               \
                    c1[r] = _mm256_fmadd_ps(a, b1, c1[r]);                                                               \
                }                                                                                                        \
            }                                                                                                            \
            for (int r = 0; r < MR; r++) {                                                                               \
                if (relu) {                                                                                              \
                    c0[r] = _mm256_max_ps(c0[r], _mm256_setzero_ps());                                                   \
                    c1[r] = _mm256_max_ps(c1[r], _mm256_setzero_ps());                                                   \
                }                                                                                                        \
                _mm256_maskstore_ps(Ch + (size_t)r * ldc, m0, c0[r]);                                                    \
                _mm256_maskstore_ps(Ch + (size_t)r * ldc + 8, m1, c1[r]);                                                \
            }                                                                                                            \
        }                                                                                                                \
    }
#define MMK_MR_BIG 6
#else
#define MMK_TILE(MR, SUF, AD, AE, BD, BR)                                                                                \
    static inline void mmk_tile##SUF##MR(int K, AD, BD, mm_real *restrict C, int ldc, int nr, const mm_real *bias,       \
                                         int acc, int relu) {                                                            \
        mm_real c[MR][32];                                                                                               \
        for (int r = 0; r < MR; r++)                                                                                     \
            for (int j = 0; j < 32; j++) c[r][j] = acc ? (j < nr ? C[(size_t)r * ldc + j] : 0) : bias ? bias[r] : 0;     \
        for (int k = 0; k < K; k++)                                                                                      \
            for (int r = 0; r < MR; r++) {                                                                               \
                const mm_real a = AE(r, k);                                                                              \
                const mm_real *b = BR(k);                                                                                \
                for (int j = 0; j < 32; j++) c[r][j] += a * b[j];                                                        \
            }                                                                                                            \
        for (int r = 0; r < MR; r++)                                                                                     \
            for (int j = 0; j < nr; j++) C[(size_t)r * ldc + j] = relu && c[r][j] < 0 ? 0 : c[r][j];                     \
    }
#define MMK_MR_BIG 4
#endif
/* Three ways to address the operands: A row-major (lda) or gathered
 * through row pointers and an offset table (A[r][k] = Ar[r][ak[k]]); B
 * packed (mmk_pack) or as rows of an unpacked matrix at given offsets
 * (B[k][j] = Bx[off[k] + j]: the shifted views of a padded feature map, a
 * convolution's unrolled input without unrolling it). */
#define MMK_AD_M const mm_real *restrict A, int lda
#define MMK_AE_M(r, k) A[(size_t)(r) * lda + (k)]
#define MMK_AD_G const mm_real *const *restrict Ar, const int *restrict ak
#define MMK_AE_G(r, k) Ar[r][ak[k]]
#define MMK_BD_P const mm_real *restrict Bp
#define MMK_BR_P(k) (Bp + (size_t)(k) * 32)
#define MMK_BD_O const mm_real *restrict Bx, const int *restrict off
#define MMK_BR_O(k) (Bx + off[k])
#define MMK_TILES(MR)                                         \
    MMK_TILE(MR, , MMK_AD_M, MMK_AE_M, MMK_BD_P, MMK_BR_P)    \
    MMK_TILE(MR, o, MMK_AD_M, MMK_AE_M, MMK_BD_O, MMK_BR_O)   \
    MMK_TILE(MR, g, MMK_AD_G, MMK_AE_G, MMK_BD_P, MMK_BR_P)
#define MMK_TILES_(n) MMK_TILES(n)
MMK_TILES_(MMK_MR_BIG)
MMK_TILES(2)
MMK_TILES(1)
#define MMK_CAT_(a, b) a##b
#define MMK_CAT(a, b) MMK_CAT_(a, b)
/* The rows left below a multiple of MMK_MR_BIG, in tiles of 4, 2 and 1
 * (three output channels are one tile of 2 and one of 1, not three of 1
 * that would each stream B). T(MR) is the driver's tile call at row i. */
#if MMK_MR_BIG > 4
MMK_TILES(4)
#define MMK_REMAINDER(T)        \
    if (M - i >= 4) {           \
        T(4);                   \
        i += 4;                 \
    }                           \
    MMK_REMAINDER_2(T)
#else
#define MMK_REMAINDER(T) MMK_REMAINDER_2(T)
#endif
#define MMK_REMAINDER_2(T)      \
    if (M - i >= 2) {           \
        T(2);                   \
        i += 2;                 \
    }                           \
    if (M - i >= 1) T(1);

/* Kept out of line: one copy serves every call site (compile time), and
 * its arguments vary at run time anyway. */
__attribute__((noinline, unused)) static void mmk_gemm(int M, int N, int K, const mm_real *A, int lda, const mm_real *Bp,
                                                       mm_real *C, int ldc, const mm_real *bias, int acc, int relu) {
    for (int j0 = 0; j0 < N; j0 += MMK_PACK_NR) {
        const int nr = N - j0 < MMK_PACK_NR ? N - j0 : MMK_PACK_NR;
        const mm_real *b = Bp + (size_t)(j0 / MMK_PACK_NR) * K * MMK_PACK_NR;
        int i = 0;
#define T_(MR) MMK_CAT(mmk_tile, MR)(K, A + (size_t)i * lda, lda, b, C + (size_t)i * ldc + j0, ldc, nr, bias ? bias + i : NULL, acc, relu)
        for (; i + MMK_MR_BIG <= M; i += MMK_MR_BIG) T_(MMK_MR_BIG);
        MMK_REMAINDER(T_)
#undef T_
    }
}

/* C = A . B with B[k][j] = Bx[off[k] + j] (reads up to 31 columns past N). */
__attribute__((noinline, unused)) static void mmk_gemm_off(int M, int N, int K, const mm_real *A, int lda, const mm_real *Bx,
                                                           const int *off, mm_real *C, int ldc, const mm_real *bias, int relu) {
    for (int j0 = 0; j0 < N; j0 += MMK_PACK_NR) {
        const int nr = N - j0 < MMK_PACK_NR ? N - j0 : MMK_PACK_NR;
        int i = 0;
#define T_(MR) MMK_CAT(mmk_tileo, MR)(K, A + (size_t)i * lda, lda, Bx + j0, off, C + (size_t)i * ldc + j0, ldc, nr, bias ? bias + i : NULL, 0, relu)
        for (; i + MMK_MR_BIG <= M; i += MMK_MR_BIG) T_(MMK_MR_BIG);
        MMK_REMAINDER(T_)
#undef T_
    }
}

/* C (+)= A . B with A[r][k] = Ar[r][ak[k]] and B packed: a convolution's
 * unrolled input (or its transpose) gathered from padded planes with no
 * column wasted. Forward and input gradient: rows are output positions
 * (Ar[p] = the planes at p), k the taps (ak = their offsets), C = Y^T.
 * Weight gradient: rows are taps (Ar[k] = the shifted planes), k the
 * output positions (ak = their offsets in the padded rows), B = dY^T. */
__attribute__((noinline, unused)) static void mmk_gemm_gather(int M, int N, int K, const mm_real *const *Ar, const int *ak,
                                                              const mm_real *Bp, mm_real *C, int ldc, int acc) {
    for (int j0 = 0; j0 < N; j0 += MMK_PACK_NR) {
        const int nr = N - j0 < MMK_PACK_NR ? N - j0 : MMK_PACK_NR;
        const mm_real *b = Bp + (size_t)(j0 / MMK_PACK_NR) * K * MMK_PACK_NR;
        int i = 0;
#define T_(MR) MMK_CAT(mmk_tileg, MR)(K, Ar + i, ak, b, C + (size_t)i * ldc + j0, ldc, nr, NULL, acc, 0)
        for (; i + MMK_MR_BIG <= M; i += MMK_MR_BIG) T_(MMK_MR_BIG);
        MMK_REMAINDER(T_)
#undef T_
    }
}

/* A stride-1 convolution with few output channels (M <= 3: the input
 * gradient of a first layer over a 1- or 3-channel image) on padded planes:
 * C[m][h * WQ + w] = sum over c < XC, kh < FH, kw < FW of
 * W[m][(c * FH + kh) * FW + kw] * X[c * PL + (h + kh) * WQ + w + kw], for
 * h < YH, w < YW (X: XC planes PL floats apart, YH + FH - 1 rows of WQ >=
 * YW + FW - 1 floats; off[(c * FH + kh) * FW + kw] = c * PL + kh * WQ + kw,
 * mmk_gemm_off's rows). As a GEMM each loaded row of X would serve one or
 * two FMAs; here a row loaded once serves the R output rows it is in, held
 * in registers (bench/gemm.c on a Zen 4, one thread: 1.7x the GEMM's speed
 * for one channel, 1.4x for three, none for two or four). Only clang keeps
 * the R x MT tile in registers (gcc 12 leaves it in memory and runs at half
 * the GEMM's speed), and only AVX-512 has the tile: other builds call
 * mmk_gemm_off. */
#if defined(__AVX512F__) && !defined(MMNET_F64) && defined(__clang__)
#define MMK_THIN_TILES 1
#define MMK_THIN_TILE(MT, R)                                                                                           \
    static inline void mmk_thin##MT(int XC, int FH, int FW, int rows, int WQ, int PL, const float *restrict W,        \
                                    const float *restrict X, float *restrict C, int ldc, __mmask16 m0, __mmask16 m1) { \
        const int KK = XC * FH * FW, hq = rows + FH - 1;                                                               \
        __m512 c0[R][MT], c1[R][MT];                                                                                   \
        for (int r = 0; r < R; r++)                                                                                    \
            for (int m = 0; m < MT; m++) c0[r][m] = c1[r][m] = _mm512_setzero_ps();                                    \
        for (int c = 0; c < XC; c++)                                                                                   \
            for (int kw = 0; kw < FW; kw++) {                                                                          \
                const float *restrict xb = X + (size_t)c * PL + kw, *restrict wb = W + (size_t)c * FH * FW + kw;       \
                for (int pr = 0; pr < hq; pr++) {                                                                      \
                    const __m512 b0 = _mm512_maskz_loadu_ps(m0, xb + (size_t)pr * WQ);                                 \
                    const __m512 b1 = _mm512_maskz_loadu_ps(m1, xb + (size_t)pr * WQ + 16);                            \
                    for (int r = 0; r < R; r++) {                                                                      \
                        const unsigned kh = (unsigned)(pr - r);                                                        \
                        if (kh < (unsigned)FH)                                                                         \
                            for (int m = 0; m < MT; m++) {                                                             \
                                const __m512 a = _mm512_set1_ps(wb[(size_t)m * KK + kh * FW]);                         \
                                c0[r][m] = _mm512_fmadd_ps(a, b0, c0[r][m]);                                           \
                                c1[r][m] = _mm512_fmadd_ps(a, b1, c1[r][m]);                                           \
                            }                                                                                          \
                    }                                                                                                  \
                }                                                                                                      \
            }                                                                                                          \
        for (int r = 0; r < R; r++)                                                                                    \
            if (r < rows)                                                                                              \
                for (int m = 0; m < MT; m++) {                                                                         \
                    _mm512_mask_storeu_ps(C + (size_t)m * ldc + (size_t)r * WQ, m0, c0[r][m]);                         \
                    _mm512_mask_storeu_ps(C + (size_t)m * ldc + (size_t)r * WQ + 16, m1, c1[r][m]);                    \
                }                                                                                                      \
    }
MMK_THIN_TILE(1, 8)
MMK_THIN_TILE(2, 6)
MMK_THIN_TILE(3, 4)
#endif
#define MMK_THIN_MAX 3
__attribute__((noinline, unused)) static void mmk_conv_thin(int M, int XC, int FH, int FW, int YH, int YW, int WQ, int PL,
                                                            const mm_real *W, const mm_real *X, const int *off, mm_real *C, int ldc) {
#ifdef MMK_THIN_TILES
    static const int R[MMK_THIN_MAX + 1] = {0, 8, 6, 4};
    /* Hide the shape from the optimizer: where one call site gives it
     * constants, clang specialises this function and hoists the FH x M
     * weight broadcasts out of the row loop, which with the R x M tile
     * needs more than 32 registers and spills in the inner loop (conv1
     * colour's input gradient: 4.4 -> 3.2 ms a step without the hoist). */
    __asm__("" : "+r"(FH), "+r"(FW), "+r"(XC));
    for (int j0 = 0; j0 < YW; j0 += 32) {
        const int nr = YW - j0 < 32 ? YW - j0 : 32;
        const __mmask16 m0 = nr >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nr) - 1);
        const __mmask16 m1 = nr >= 32 ? (__mmask16)0xFFFF : nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : 0;
        for (int h0 = 0; h0 < YH; h0 += R[M]) {
            const int rows = YH - h0 < R[M] ? YH - h0 : R[M];
            const float *x = X + (size_t)h0 * WQ + j0;
            float *c = C + (size_t)h0 * WQ + j0;
            switch (M) {
            case 1: mmk_thin1(XC, FH, FW, rows, WQ, PL, W, x, c, ldc, m0, m1); break;
            case 2: mmk_thin2(XC, FH, FW, rows, WQ, PL, W, x, c, ldc, m0, m1); break;
            default: mmk_thin3(XC, FH, FW, rows, WQ, PL, W, x, c, ldc, m0, m1); break;
            }
        }
    }
    (void)off;
#else
    (void)YW, (void)PL;
    mmk_gemm_off(M, YH * WQ, XC * FH * FW, W, XC * FH * FW, X, off, C, ldc, NULL, 0);
#endif
}

#endif
