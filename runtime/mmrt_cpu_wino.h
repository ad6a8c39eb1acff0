/* mmrt_cpu_wino.h — 3x3 stride-1 2-D convolutions by Winograd's minimal
 * filtering F(2x2, 3x3) (Lavin and Gray, 2016): each 2x2 block of outputs
 * (a tile) from its 4x4 input patch with 16 multiplications per input and
 * output channel pair instead of 36, so 2.25x fewer than the direct
 * convolution's; the additions move into transforms that are linear in the
 * map's size.
 *
 *   Y_tile = A^T [ (G g G^T) (.) (B^T d B) ] A
 *
 * with the weights g transformed once per call (U = G g G^T: 16 values per
 * channel pair, U[xi][K][C]), each input patch d into V = B^T d B, and for
 * each of the 16 positions xi a GEMM M_xi[K][tiles] = U_xi[K][C] .
 * V_xi[C][tiles] (mmk_gemm_off) whose results A^T M A turn into outputs.
 * Tiles are taken by tile rows (one example, two output rows), R rows a task,
 * so that V and M of a task stay in the core's cache; the transforms run
 * along stripes of those rows (mmk_wino_stripes), where clang vectorises
 * them. The input gradient of such a convolution is one too (dY
 * padded by 2 - p, the weights flipped and transposed: mmk_wino_weights'
 * flip). F(4x4, 3x3) (below: 4x4 blocks from 6x6 patches, 36 GEMMs, 4x
 * fewer multiplications) runs the same way on larger maps, through the same
 * driver (mmk_winom_conv).
 *
 * Part of mmrt_cpu.h (after mmrt_cpu_gemm.h). The task size R, the planes'
 * row length LD and the scratch each thread needs are mm_wino_plan's
 * (common/mmnet_shared.h), which codegen/emit_conv.c emits. */
#ifndef MMRT_CPU_WINO_H
#define MMRT_CPU_WINO_H

#ifndef MMRT_CPU_H
#error "mmrt_cpu_wino.h is part of mmrt_cpu.h: include that instead"
#endif

/* Generated kernels take F(2x2, 3x3) where it applies only when this holds
 * (both forms are emitted, codegen/emit_conv.c): AVX-512 builds, where it
 * measured 1.1-1.6x the direct form's speed (bench/wino.c), and double
 * precision, which the gradient checks run. The AVX2 builds keep the direct
 * form there: their 4-row GEMM tile gains little on the short sums over
 * channels (0.7-1.3x on a Zen 4 built for x86-64-v3). */
#if defined(__AVX512F__) || defined(MMNET_F64)
#define MMK_WINO 1
#else
#define MMK_WINO 0
#endif
/* F(4x4, 3x3) (below), on the maps codegen/emit_conv.c gives it: AVX2 builds
 * too, where it measured 1.5-1.9x the direct form's speed on 28 x 28 and
 * 56 x 56 maps (bench/wino.c). */
#if MMK_WINO || (defined(__AVX2__) && defined(__FMA__))
#define MMK_WINO4 1
#else
#define MMK_WINO4 0
#endif

/* U[xi][k][c] = (G g G^T)[xi] for g = W[k][c] (3x3), or with flip the
 * weights of the input gradient: g = W[c][k] rotated by 180 degrees (W then
 * [C][K][3][3], the forward convolution's [CO][CI]). G = [1 0 0; 1/2 1/2
 * 1/2; 1/2 -1/2 1/2; 0 0 1]. */
__attribute__((noinline, unused)) static void mmk_wino_weights(mm_real *restrict U, const mm_real *restrict W, int K, int C, int flip) {
    const size_t KC = (size_t)K * C;
#pragma omp parallel for schedule(static) if (KC >= 16384)
    for (int k = 0; k < K; k++)
        for (int c = 0; c < C; c++) {
            const mm_real *w = flip ? W + ((size_t)c * K + k) * 9 : W + ((size_t)k * C + c) * 9;
            mm_real g[3][3], t[4][3];
            for (int i = 0; i < 9; i++) g[i / 3][i % 3] = flip ? w[8 - i] : w[i];
            for (int j = 0; j < 3; j++) { /* G g: along the rows */
                t[0][j] = g[0][j];
                t[1][j] = (mm_real)0.5 * (g[0][j] + g[1][j] + g[2][j]);
                t[2][j] = (mm_real)0.5 * (g[0][j] - g[1][j] + g[2][j]);
                t[3][j] = g[2][j];
            }
            for (int i = 0; i < 4; i++) { /* (G g) G^T: along the columns */
                mm_real *u = U + (size_t)i * 4 * KC + (size_t)k * C + c;
                u[0] = t[i][0];
                u[KC] = (mm_real)0.5 * (t[i][0] + t[i][1] + t[i][2]);
                u[2 * KC] = (mm_real)0.5 * (t[i][0] - t[i][1] + t[i][2]);
                u[3 * KC] = t[i][2];
            }
        }
}

/* e[j] = the padded row's column 2j, o[j] = column 2j + 1, j <= TW, for
 * row xr (W floats) padded by P on the left (zeros past W). */
static inline void mmk_wino_split(mm_real *restrict e, mm_real *restrict o, const mm_real *restrict xr, int W, int P, int TW) {
#if defined(__AVX512F__) && !defined(MMNET_F64)
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    for (int j0 = 0; j0 <= TW; j0 += 16) {
        /* lanes l of the 32 read: source column 2 j0 - P + l, valid in [0, W) */
        const int lo = P - 2 * j0, hi = W + P - 2 * j0;
        const uint64_t all = hi >= 32 ? 0xFFFFFFFFull : hi <= 0 ? 0 : (1ull << hi) - 1;
        const uint64_t m = lo <= 0 ? all : all & ~((1ull << lo) - 1);
        const mm_real *src = xr + 2 * j0 - P; /* masked lanes are not read */
        const __m512 a = _mm512_maskz_loadu_ps((__mmask16)m, src), b = _mm512_maskz_loadu_ps((__mmask16)(m >> 16), src + 16);
        const int n = TW + 1 - j0;
        const __mmask16 st = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
        _mm512_mask_storeu_ps(e + j0, st, _mm512_permutex2var_ps(a, ie, b));
        _mm512_mask_storeu_ps(o + j0, st, _mm512_permutex2var_ps(a, io, b));
    }
#else
    for (int j = 0; j <= TW; j++) {
        const int c0 = 2 * j - P, c1 = c0 + 1;
        e[j] = c0 >= 0 && c0 < W ? xr[c0] : 0;
        o[j] = c1 >= 0 && c1 < W ? xr[c1] : 0;
    }
#endif
}

/* The four input rows of each tile row of a task, zero-padded and split
 * into even and odd columns, in stripes: tile row g's padded row i (2 th -
 * P + i of the plane) at s[i][g (TW + 1)] (even columns) and s[4 + i][...]
 * (odd), stripes ss floats apart. Tile (g, tw) is then stripe column u = g
 * (TW + 1) + tw, its patch's row i s[i][u], s[4 + i][u], s[i][u + 1],
 * s[4 + i][u + 1]: the transforms run over u along the whole stripe, one
 * column per tile row wasted (tw = TW). */
static inline void mmk_wino_stripes(mm_real *restrict s, size_t ss, const mm_real *restrict xc, size_t PL, int g0, int nr, int TH, int TW,
                                    int H, int W, int P) {
    for (int gr = 0; gr < nr; gr++) {
        const int n = (g0 + gr) / TH, th = (g0 + gr) % TH;
        for (int i = 0; i < 4; i++) {
            mm_real *e = s + i * ss + (size_t)gr * (TW + 1), *o = e + 4 * ss;
            const int r = 2 * th - P + i;
            if (r < 0 || r >= H) {
                mmk_zero(e, TW + 1);
                mmk_zero(o, TW + 1);
            } else {
                mmk_wino_split(e, o, xc + (size_t)n * PL + (size_t)r * W, W, P, TW);
            }
        }
    }
}

/* V[xi][u] (V rows S apart) = B^T d B for the patches of stripe columns
 * [0, nu), B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]. Separate, with
 * restrict, so that the compiler vectorises it. */
static inline void mmk_wino_in(mm_real *restrict v, size_t S, const mm_real *restrict s, size_t ss, int nu) {
    const mm_real *restrict e0 = s, *restrict e1 = s + ss, *restrict e2 = s + 2 * ss, *restrict e3 = s + 3 * ss;
    const mm_real *restrict o0 = s + 4 * ss, *restrict o1 = s + 5 * ss, *restrict o2 = s + 6 * ss, *restrict o3 = s + 7 * ss;
#define MMK_WROW(t0, t1, t2, t3, e, o) \
    const mm_real t0 = e[u] - e[u + 1], t1 = o[u] + e[u + 1], t2 = e[u + 1] - o[u], t3 = o[u] - o[u + 1];
#ifdef __clang__
#pragma clang loop vectorize(enable) /* its cost model declines 16 store streams, which measure 4x faster vectorised */
#endif
    for (int u = 0; u < nu; u++) {
        MMK_WROW(a0, a1, a2, a3, e0, o0)
        MMK_WROW(b0, b1, b2, b3, e1, o1)
        MMK_WROW(c0, c1, c2, c3, e2, o2)
        MMK_WROW(d0, d1, d2, d3, e3, o3)
        v[0 * S + u] = a0 - c0, v[1 * S + u] = a1 - c1, v[2 * S + u] = a2 - c2, v[3 * S + u] = a3 - c3;
        v[4 * S + u] = b0 + c0, v[5 * S + u] = b1 + c1, v[6 * S + u] = b2 + c2, v[7 * S + u] = b3 + c3;
        v[8 * S + u] = c0 - b0, v[9 * S + u] = c1 - b1, v[10 * S + u] = c2 - b2, v[11 * S + u] = c3 - b3;
        v[12 * S + u] = b0 - d0, v[13 * S + u] = b1 - d1, v[14 * S + u] = b2 - d2, v[15 * S + u] = b3 - d3;
    }
#undef MMK_WROW
}

/* The two output rows of stripe columns [0, nu) from M[xi][u] (rows S
 * apart): A^T M A, A^T = [1 1 1 0; 0 1 -1 -1], + bk, ReLU; interleaved
 * into q0 and q1 (2 nu each). */
static inline void mmk_wino_out(mm_real *restrict q0, mm_real *restrict q1, const mm_real *restrict m, size_t S, int nu, mm_real bk,
                                int relu) {
    for (int u = 0; u < nu; u++) {
        const mm_real s0 = m[0 * S + u] + m[4 * S + u] + m[8 * S + u], s1 = m[1 * S + u] + m[5 * S + u] + m[9 * S + u],
                      s2 = m[2 * S + u] + m[6 * S + u] + m[10 * S + u], s3 = m[3 * S + u] + m[7 * S + u] + m[11 * S + u];
        const mm_real r0 = m[4 * S + u] - m[8 * S + u] - m[12 * S + u], r1 = m[5 * S + u] - m[9 * S + u] - m[13 * S + u],
                      r2 = m[6 * S + u] - m[10 * S + u] - m[14 * S + u], r3 = m[7 * S + u] - m[11 * S + u] - m[15 * S + u];
        mm_real y00 = s0 + s1 + s2 + bk, y01 = s1 - s2 - s3 + bk, y10 = r0 + r1 + r2 + bk, y11 = r1 - r2 - r3 + bk;
        if (relu) {
            y00 = y00 > 0 ? y00 : 0, y01 = y01 > 0 ? y01 : 0;
            y10 = y10 > 0 ? y10 : 0, y11 = y11 > 0 ? y11 : 0;
        }
        q0[2 * u] = y00, q0[2 * u + 1] = y01, q1[2 * u] = y10, q1[2 * u + 1] = y11;
    }
}

/* The tile rows of a task for G rows on this many threads: R (the plan's)
 * or fewer, so that every thread gets as many tasks (ResNet's 28 x 28
 * layers at batch 8 had 4 tasks of 16, 16, 16 and 8 rows on two threads).
 * Each output is computed alike whatever the task, so the result does not
 * depend on it. */
static inline int mmk_wino_rows(int G, int R) {
    const int T = omp_get_max_threads(), per = ((G + R - 1) / R + T - 1) / T;
    const int r = (G + per * T - 1) / (per * T);
    return r < 1 ? 1 : r < R ? r : R;
}

/* ---- F(4x4, 3x3): its transforms ----------------------------------------------
 * Each 4 x 4 block of outputs from its 6 x 6 input patch: 36 multiplications
 * per channel pair instead of 144, 4x fewer than the direct convolution
 * (F(2x2, 3x3): 2.25x), for larger transforms and rounding a few times the
 * direct form's (bench/wino.c prints both). The matrices are Lavin and
 * Gray's, for the points 0, 1, -1, 2, -2 and infinity:
 *
 *   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
 *   G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
 *   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
 *
 * Laid out as F(2x2)'s, tile (g, tw) at stripe column u = g (TW + 1) + tw,
 * but each row of the patches split into six stripes, one per patch column
 * (mmk_wino4_split). */

/* G g for a column (or row) g of 3: 6 values. */
#define MMK_W4G(u0, u1, u2, u3, u4, u5, g0, g1, g2)                                                       \
    u0 = (mm_real)0.25 * (g0), u1 = (mm_real)(-1.0 / 6) * ((g0) + (g1) + (g2)),                          \
    u2 = (mm_real)(-1.0 / 6) * ((g0) - (g1) + (g2)), u3 = (mm_real)(1.0 / 24) * (g0) + (mm_real)(1.0 / 12) * (g1) + (mm_real)(1.0 / 6) * (g2), \
    u4 = (mm_real)(1.0 / 24) * (g0) - (mm_real)(1.0 / 12) * (g1) + (mm_real)(1.0 / 6) * (g2), u5 = (g2)

/* U[xi][k][c] (xi < 36) = (G g G^T)[xi] for g = W[k][c], or with flip the
 * input gradient's weights (as mmk_wino_weights). */
__attribute__((noinline, unused)) static void mmk_wino4_weights(mm_real *restrict U, const mm_real *restrict W, int K, int C, int flip) {
    const size_t KC = (size_t)K * C;
#pragma omp parallel for schedule(static) if (KC >= 16384)
    for (int k = 0; k < K; k++)
        for (int c = 0; c < C; c++) {
            const mm_real *w = flip ? W + ((size_t)c * K + k) * 9 : W + ((size_t)k * C + c) * 9;
            mm_real g[3][3], t[6][3];
            for (int i = 0; i < 9; i++) g[i / 3][i % 3] = flip ? w[8 - i] : w[i];
            for (int j = 0; j < 3; j++) /* G g: down the columns */
                MMK_W4G(t[0][j], t[1][j], t[2][j], t[3][j], t[4][j], t[5][j], g[0][j], g[1][j], g[2][j]);
            for (int i = 0; i < 6; i++) { /* (G g) G^T: along the rows */
                mm_real *u = U + (size_t)i * 6 * KC + (size_t)k * C + c;
                MMK_W4G(u[0], u[KC], u[2 * KC], u[3 * KC], u[4 * KC], u[5 * KC], t[i][0], t[i][1], t[i][2]);
            }
        }
}

/* p[j][t] (j < 6; p[j] = p0 + j ps) = the padded row's column 4 t + j, t <
 * TW, for row xr (W floats) padded by P on the left (zeros outside): the six
 * columns of tile t's patch, each a stripe (a loop over the tiles then
 * reads no value another iteration reads, which clang would make a
 * recurrence it does not vectorise). */
static inline void mmk_wino4_split(mm_real *restrict p0, size_t ps, const mm_real *restrict xr, int W, int P, int TW) {
    mm_real *restrict p1 = p0 + ps, *restrict p2 = p1 + ps, *restrict p3 = p2 + ps, *restrict p4 = p3 + ps, *restrict p5 = p4 + ps;
    /* t in [ta, tb): columns 4 t - P to 4 t + 5 - P all inside the row */
    int ta = (P + 3) / 4, tb = W + P >= 6 ? (W + P - 6) / 4 + 1 : 0;
    if (ta > TW) ta = TW;
    if (tb > TW) tb = TW;
    if (tb < ta) tb = ta;
    for (int t = 0; t < TW; t++) {
        if (t == ta) t = tb; /* the inside, below */
        if (t >= TW) break;
        for (int j = 0; j < 6; j++) {
            const int c = 4 * t + j - P;
            p0[(size_t)j * ps + t] = c >= 0 && c < W ? xr[c] : 0;
        }
    }
    const mm_real *x = xr + 4 * ta - P;
    for (int v = 0; v < tb - ta; v++) {
        p0[ta + v] = x[4 * v], p1[ta + v] = x[4 * v + 1], p2[ta + v] = x[4 * v + 2];
        p3[ta + v] = x[4 * v + 3], p4[ta + v] = x[4 * v + 4], p5[ta + v] = x[4 * v + 5];
    }
}

/* The six input rows of each tile row of a task, padded and split: tile
 * row g's padded row i (4 th - P + i of the plane), patch column j at
 * s[6 i + j][g (TW + 1)] (the tile row's last stripe column unused),
 * stripes ss floats apart. */
static inline void mmk_wino4_stripes(mm_real *restrict s, size_t ss, const mm_real *restrict xc, size_t PL, int g0, int nr, int TH, int TW,
                                     int H, int W, int P) {
    for (int gr = 0; gr < nr; gr++) {
        const int n = (g0 + gr) / TH, th = (g0 + gr) % TH;
        for (int i = 0; i < 6; i++) {
            mm_real *p = s + (size_t)6 * i * ss + (size_t)gr * (TW + 1);
            const int r = 4 * th - P + i;
            if (r < 0 || r >= H) {
                for (int j = 0; j < 6; j++) mmk_zero(p + (size_t)j * ss, TW);
            } else {
                mmk_wino4_split(p, ss, xc + (size_t)n * PL + (size_t)r * W, W, P, TW);
            }
        }
    }
}

/* B^T d for a column (or row) d of 6. */
#define MMK_W4B(t0, t1, t2, t3, t4, t5, d0, d1, d2, d3, d4, d5)                                          \
    t0 = 4 * (d0) - 5 * (d2) + (d4), t1 = (d3) + (d4) - 4 * ((d1) + (d2)), t2 = 4 * ((d1) - (d2)) + (d4) - (d3), \
    t3 = 2 * ((d3) - (d1)) + (d4) - (d2), t4 = 2 * ((d1) - (d3)) + (d4) - (d2), t5 = 4 * (d1) - 5 * (d3) + (d5)

/* V[xi][u] (rows S apart) = B^T d B for the patches of stripe columns [0,
 * nu), 64 columns at a time: each patch row through B (into t, 36 rows of
 * 64), then each column of those. Each pass is a loop of six streams in and
 * six out, which the compiler vectorises (one loop of 36 and 36 it does
 * not). */
static inline void mmk_wino4_in(mm_real *restrict v, size_t S, const mm_real *restrict s, size_t ss, int nu) {
    mm_real t[36][64];
    for (int u0 = 0; u0 < nu; u0 += 64) {
        const int nb = nu - u0 < 64 ? nu - u0 : 64;
        for (int i = 0; i < 6; i++) {
            const mm_real *restrict p0 = s + (size_t)6 * i * ss + u0, *restrict p1 = p0 + ss, *restrict p2 = p1 + ss, *restrict p3 = p2 + ss,
                                    *restrict p4 = p3 + ss, *restrict p5 = p4 + ss;
            mm_real *restrict t0 = t[6 * i], *restrict t1 = t[6 * i + 1], *restrict t2 = t[6 * i + 2], *restrict t3 = t[6 * i + 3],
                              *restrict t4 = t[6 * i + 4], *restrict t5 = t[6 * i + 5];
            for (int u = 0; u < nb; u++) MMK_W4B(t0[u], t1[u], t2[u], t3[u], t4[u], t5[u], p0[u], p1[u], p2[u], p3[u], p4[u], p5[u]);
        }
        for (int j = 0; j < 6; j++) {
            mm_real *restrict v0 = v + (size_t)j * S + u0, *restrict v1 = v0 + 6 * S, *restrict v2 = v1 + 6 * S, *restrict v3 = v2 + 6 * S,
                              *restrict v4 = v3 + 6 * S, *restrict v5 = v4 + 6 * S;
            const mm_real *restrict r0 = t[j], *restrict r1 = t[6 + j], *restrict r2 = t[12 + j], *restrict r3 = t[18 + j],
                                    *restrict r4 = t[24 + j], *restrict r5 = t[30 + j];
            for (int u = 0; u < nb; u++) MMK_W4B(v0[u], v1[u], v2[u], v3[u], v4[u], v5[u], r0[u], r1[u], r2[u], r3[u], r4[u], r5[u]);
        }
    }
}

/* A^T m for a column (or row) m of 6. */
#define MMK_W4A(y0, y1, y2, y3, m0, m1, m2, m3, m4, m5)                                                   \
    y0 = (m0) + (m1) + (m2) + (m3) + (m4), y1 = (m1) - (m2) + 2 * ((m3) - (m4)), y2 = (m1) + (m2) + 4 * ((m3) + (m4)), \
    y3 = (m1) - (m2) + 8 * ((m3) - (m4)) + (m5)

/* The four output rows of stripe columns [0, nu) from M[xi][u] (rows S
 * apart): A^T M A, + bk, ReLU; row i into q[i] (q rows qs floats apart), 4
 * nu each. Two passes, as mmk_wino4_in. */
static inline void mmk_wino4_out(mm_real *restrict q, size_t qs, const mm_real *restrict m, size_t S, int nu, mm_real bk, int relu) {
    mm_real w[24][64];
    for (int u0 = 0; u0 < nu; u0 += 64) {
        const int nb = nu - u0 < 64 ? nu - u0 : 64;
        for (int j = 0; j < 6; j++) { /* w[6 i + j] = row i of A^T M, column j */
            const mm_real *restrict m0 = m + (size_t)j * S + u0, *restrict m1 = m0 + 6 * S, *restrict m2 = m1 + 6 * S,
                                    *restrict m3 = m2 + 6 * S, *restrict m4 = m3 + 6 * S, *restrict m5 = m4 + 6 * S;
            mm_real *restrict w0 = w[j], *restrict w1 = w[6 + j], *restrict w2 = w[12 + j], *restrict w3 = w[18 + j];
            for (int u = 0; u < nb; u++) MMK_W4A(w0[u], w1[u], w2[u], w3[u], m0[u], m1[u], m2[u], m3[u], m4[u], m5[u]);
        }
        for (int i = 0; i < 4; i++) {
            const mm_real *restrict a0 = w[6 * i], *restrict a1 = w[6 * i + 1], *restrict a2 = w[6 * i + 2], *restrict a3 = w[6 * i + 3],
                                    *restrict a4 = w[6 * i + 4], *restrict a5 = w[6 * i + 5];
            mm_real *restrict qi = q + (size_t)i * qs + 4 * (size_t)u0;
            for (int u = 0; u < nb; u++) {
                mm_real y0, y1, y2, y3;
                MMK_W4A(y0, y1, y2, y3, a0[u], a1[u], a2[u], a3[u], a4[u], a5[u]);
                y0 += bk, y1 += bk, y2 += bk, y3 += bk;
                if (relu) {
                    y0 = y0 > 0 ? y0 : 0, y1 = y1 > 0 ? y1 : 0;
                    y2 = y2 > 0 ? y2 : 0, y3 = y3 > 0 ? y3 : 0;
                }
                qi[4 * u] = y0, qi[4 * u + 1] = y1, qi[4 * u + 2] = y2, qi[4 * u + 3] = y3;
            }
        }
    }
}

/* ---- The convolution -----------------------------------------------------------
 * y[K][B][HO][WO] = conv3x3(x[C][B][H][W] padded by P) (+ bias, ReLU), HO =
 * H + 2P - 2, WO likewise, by F(m x m, 3x3), m = 2 or 4, with the weights U
 * transformed by mmk_wino_weights (m = 2) or mmk_wino4_weights (m = 4).
 * Tasks of R tile rows (m output rows of one example each), R (TW + 1)
 * stripe columns, TW = ceil(WO / m); LD >= those + 32 (the GEMM reads up
 * to 31 columns past its last); each thread's scratch (mm_wino_plan(m,
 * ...)) at scratch + thread * sfloats. */
static inline void mmk_winom_conv(int m, int B, int C, int K, int H, int W, int P, const mm_real *restrict x, const mm_real *restrict U,
                                  const mm_real *bias, int relu, mm_real *restrict y, int R, int LD, mm_real *scratch, size_t sfloats) {
    const int HO = H + 2 * P - 2, WO = W + 2 * P - 2, TH = (HO + m - 1) / m, TW = (WO + m - 1) / m, G = B * TH, WP = m * (TW + 1);
    const int NX = (m + 2) * (m + 2), NS = m == 2 ? 8 : 36; /* transform planes; stripes */
    const size_t KC = (size_t)K * C, PL = (size_t)H * W, PO = (size_t)HO * WO, ss = (size_t)R * (TW + 1) + 32;
    R = mmk_wino_rows(G, R); /* ss stays the plan's */
#pragma omp parallel
    {
        /* V[xi][C][LD] and M[xi][K][LD], their xi planes SV and SM floats apart: 64 bytes more than C LD and K LD,
         * so that the streams of a transform do not fall into one set of the L1 cache */
        const size_t SV = (size_t)C * LD + 16, SM = (size_t)K * LD + 16;
        mm_real *V = scratch + (size_t)MMK_THREAD() * sfloats, *M = V + NX * SV, *st = M + NX * SM; /* st: stripes */
        int off[C];
        for (int c = 0; c < C; c++) off[c] = c * LD;
        /* Columns past a full task's (the GEMM reads them, and the transforms
         * one past a task's last) start as zeros, not whatever the scratch
         * held; so do a short task's spare columns (below). GEMM columns are
         * independent, and the output transform stores none of them. */
        for (int xi = 0; xi < NX; xi++)
            for (int c = 0; c < C; c++) mmk_zero(V + xi * SV + (size_t)c * LD + (size_t)R * (TW + 1), LD - R * (TW + 1));
        memset(st, 0, sizeof(mm_real) * NS * ss);
#pragma omp for schedule(static)
        for (int g0 = 0; g0 < G; g0 += R) {
            const int nr = G - g0 < R ? G - g0 : R, nu = nr * (TW + 1);
            if (nr < R) /* the last task, maybe this thread's first: no stale (or never written) scratch in its spare columns */
                for (int xi = 0; xi < NX; xi++)
                    for (int c = 0; c < C; c++) mmk_zero(V + xi * SV + (size_t)c * LD + nu, (R - nr) * (TW + 1));
            /* V = B^T d B for every tile of the task and channel. */
            for (int c = 0; c < C; c++) {
                const mm_real *xc = x + (size_t)c * B * PL;
                if (m == 2) {
                    mmk_wino_stripes(st, ss, xc, PL, g0, nr, TH, TW, H, W, P);
                    mmk_wino_in(V + (size_t)c * LD, SV, st, ss, nu);
                } else {
                    mmk_wino4_stripes(st, ss, xc, PL, g0, nr, TH, TW, H, W, P);
                    mmk_wino4_in(V + (size_t)c * LD, SV, st, ss, nu);
                }
            }
            /* M_xi = U_xi . V_xi */
            for (int xi = 0; xi < NX; xi++)
                mmk_gemm_off(K, nu, C, U + xi * KC, C, V + xi * SV, off, M + xi * SM, LD, NULL, 0);
            /* Y = A^T M A: m output rows per tile row, in stripes like the input's, m ss floats apart. */
            for (int k = 0; k < K; k++) {
                const mm_real bk = bias ? bias[k] : 0;
                if (m == 2) mmk_wino_out(st, st + 2 * ss, M + (size_t)k * LD, SM, nu, bk, relu);
                else mmk_wino4_out(st, 4 * ss, M + (size_t)k * LD, SM, nu, bk, relu);
                for (int gr = 0; gr < nr; gr++) {
                    const int n = (g0 + gr) / TH, th = (g0 + gr) % TH;
                    mm_real *yr = y + ((size_t)k * B + n) * PO + (size_t)m * th * WO;
                    for (int i = 0; i < m && m * th + i < HO; i++) mmk_copy(yr + (size_t)i * WO, st + (size_t)i * m * ss + (size_t)gr * WP, WO);
                }
            }
        }
    }
}

__attribute__((noinline, unused)) static void mmk_wino_conv(int B, int C, int K, int H, int W, int P, const mm_real *restrict x,
                                                            const mm_real *restrict U, const mm_real *bias, int relu, mm_real *restrict y,
                                                            int R, int LD, mm_real *scratch, size_t sfloats) {
    mmk_winom_conv(2, B, C, K, H, W, P, x, U, bias, relu, y, R, LD, scratch, sfloats);
}

__attribute__((noinline, unused)) static void mmk_wino4_conv(int B, int C, int K, int H, int W, int P, const mm_real *restrict x,
                                                             const mm_real *restrict U, const mm_real *bias, int relu, mm_real *restrict y,
                                                             int R, int LD, mm_real *scratch, size_t sfloats) {
    mmk_winom_conv(4, B, C, K, H, W, P, x, U, bias, relu, y, R, LD, scratch, sfloats);
}

/* Z[xi][u] (rows S apart) = A dY A^T for the 2 x 2 output blocks of stripe
 * columns [0, nu), from two output rows split like the input (e0, o0: row
 * 2 th's even and odd columns; e1, o1: row 2 th + 1's, zeros outside):
 * each row (a, b) -> (a, a + b, a - b, -b), then each column likewise. */
static inline void mmk_wino_dyt(mm_real *restrict z, size_t S, const mm_real *restrict e0, const mm_real *restrict o0,
                                const mm_real *restrict e1, const mm_real *restrict o1, int nu) {
#ifdef __clang__
#pragma clang loop vectorize(enable)
#endif
    for (int u = 0; u < nu; u++) {
        const mm_real a0 = e0[u], a1 = e0[u] + o0[u], a2 = e0[u] - o0[u], a3 = -o0[u]; /* row 0 of A dY */
        const mm_real b0 = e1[u], b1 = e1[u] + o1[u], b2 = e1[u] - o1[u], b3 = -o1[u]; /* row 1 */
        z[0 * S + u] = a0, z[1 * S + u] = a1, z[2 * S + u] = a2, z[3 * S + u] = a3;
        z[4 * S + u] = a0 + b0, z[5 * S + u] = a1 + b1, z[6 * S + u] = a2 + b2, z[7 * S + u] = a3 + b3;
        z[8 * S + u] = a0 - b0, z[9 * S + u] = a1 - b1, z[10 * S + u] = a2 - b2, z[11 * S + u] = a3 - b3;
        z[12 * S + u] = -b0, z[13 * S + u] = -b1, z[14 * S + u] = -b2, z[15 * S + u] = -b3;
    }
}

/* The weight gradient of mmk_wino_conv's convolution: with Y = A^T [U (.)
 * V] A, dU = sum over tiles of (A dY A^T) (.) V, so for each xi a GEMM
 * dU_xi[K][C] += Z_xi[K][tiles] . V_xi[C][tiles]^T over the tiles of a
 * task, and dW = G^T dU G (mmk_wino_dw_reduce). The tile rows are split
 * into nch fixed chunks (at most RT_DW_CHUNKS), each summed in order into
 * its own dU (part + chunk * pstride: 16 K C floats): the result does not
 * depend on the thread count. Scratch per thread as mmk_wino_conv's plus
 * LD ceil(C / 32) 32 floats (V_xi^T packed). */
__attribute__((noinline, unused)) static void mmk_wino_dw(int B, int C, int K, int H, int W, int P, const mm_real *restrict x,
                                                          const mm_real *restrict dy, mm_real *part, size_t pstride, int nch, int R, int LD,
                                                          mm_real *scratch, size_t sfloats) {
    const int HO = H + 2 * P - 2, WO = W + 2 * P - 2, TH = (HO + 1) / 2, TW = (WO + 1) / 2, G = B * TH;
    const size_t KC = (size_t)K * C, PL = (size_t)H * W, PO = (size_t)HO * WO, ss = (size_t)R * (TW + 1) + 32;
#pragma omp parallel
    {
        const size_t SV = (size_t)C * LD + 16, SM = (size_t)K * LD + 16;
        mm_real *V = scratch + (size_t)MMK_THREAD() * sfloats, *Z = V + 16 * SV, *st = Z + 16 * SM, *bp = st + 8 * ss;
        memset(st, 0, sizeof(mm_real) * 8 * ss);
#pragma omp for schedule(static)
        for (int ch = 0; ch < nch; ch++) {
            mm_real *du = part + (size_t)ch * pstride;
            const int ga = (int)((long)G * ch / nch), gb = (int)((long)G * (ch + 1) / nch);
            for (int g0 = ga; g0 < gb; g0 += R) {
                const int nr = gb - g0 < R ? gb - g0 : R, nu = nr * (TW + 1);
                for (int c = 0; c < C; c++) {
                    mmk_wino_stripes(st, ss, x + (size_t)c * B * PL, PL, g0, nr, TH, TW, H, W, P);
                    mmk_wino_in(V + (size_t)c * LD, SV, st, ss, nu);
                }
                for (int k = 0; k < K; k++) {
                    for (int gr = 0; gr < nr; gr++) {
                        const int n = (g0 + gr) / TH, th = (g0 + gr) % TH;
                        const mm_real *d = dy + ((size_t)k * B + n) * PO + (size_t)2 * th * WO;
                        mm_real *e0 = st + (size_t)gr * (TW + 1), *o0 = e0 + ss, *e1 = e0 + 2 * ss, *o1 = e0 + 3 * ss;
                        mmk_wino_split(e0, o0, d, WO, 0, TW);
                        if (2 * th + 1 < HO) {
                            mmk_wino_split(e1, o1, d + WO, WO, 0, TW);
                        } else {
                            mmk_zero(e1, TW + 1);
                            mmk_zero(o1, TW + 1);
                        }
                    }
                    mmk_wino_dyt(Z + (size_t)k * LD, SM, st, st + ss, st + 2 * ss, st + 3 * ss, nu);
                }
                for (int xi = 0; xi < 16; xi++) {
                    mmk_pack_t(bp, V + xi * SV, LD, nu, C); /* V_xi^T [nu][C] */
                    mmk_gemm(K, C, nu, Z + xi * SM, LD, bp, du + xi * KC, C, NULL, g0 > ga, 0);
                }
            }
            if (ga == gb) memset(du, 0, sizeof(mm_real) * 16 * KC);
        }
    }
}

/* dW[K][C][3][3] = G^T dU G, dU the sum of the nch chunks' in order. */
__attribute__((noinline, unused)) static void mmk_wino_dw_reduce(mm_real *restrict dw, const mm_real *restrict part, size_t pstride, int nch,
                                                                 int K, int C) {
    const size_t KC = (size_t)K * C;
#pragma omp parallel for schedule(static) if (KC >= 4096)
    for (int k = 0; k < K; k++)
        for (int c = 0; c < C; c++) {
            mm_real u[4][4], t[3][4];
            for (int xi = 0; xi < 16; xi++) {
                mm_real sum = 0;
                for (int h = 0; h < nch; h++) sum += part[(size_t)h * pstride + xi * KC + (size_t)k * C + c];
                u[xi / 4][xi % 4] = sum;
            }
            for (int j = 0; j < 4; j++) { /* G^T dU, G^T = [1 1/2 1/2 0; 0 1/2 -1/2 0; 0 1/2 1/2 1] */
                t[0][j] = u[0][j] + (mm_real)0.5 * (u[1][j] + u[2][j]);
                t[1][j] = (mm_real)0.5 * (u[1][j] - u[2][j]);
                t[2][j] = (mm_real)0.5 * (u[1][j] + u[2][j]) + u[3][j];
            }
            mm_real *g = dw + ((size_t)k * C + c) * 9;
            for (int i = 0; i < 3; i++) { /* (G^T dU) G */
                g[i * 3 + 0] = t[i][0] + (mm_real)0.5 * (t[i][1] + t[i][2]);
                g[i * 3 + 1] = (mm_real)0.5 * (t[i][1] - t[i][2]);
                g[i * 3 + 2] = (mm_real)0.5 * (t[i][1] + t[i][2]) + t[i][3];
            }
        }
}


#endif
