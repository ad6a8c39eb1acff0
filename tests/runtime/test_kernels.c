/* test_kernels.c — the CPU kernels' building blocks (mmrt_cpu.h) against
 * plain reference loops on random data: the GEMM with B read at row offsets
 * (mmk_gemm_off) and with A gathered through row pointers and an offset
 * table (mmk_gemm_gather: contiguous rows, and scattered offsets), for
 * every row count up to two big tiles (so each remainder tile runs) and
 * column counts that are not multiples of 32; 2-D max pooling (mmk_maxpool2d) for
 * strides 1, 2 and 3, padding, odd sizes, ties and all-NaN windows, values
 * and argmax indices exactly, also from rows further apart than the width
 * (a convolution's padded rows, read in place), 3-D max pooling
 * (mmk_maxpool3d) the same way, and of a map held
 * transposed before its bias and ReLU (mmk_maxpool_t16); the few-output-channel
 * convolution (mmk_conv_thin) for 1-3 channels, odd heights and widths
 * across 16 and 32; the block transpose (mmk_tr16) and the transposed
 * packing built on it (mmk_pack_t) for every block size up to 16 x 16 and
 * ragged matrices, exactly, with the zero fill they promise, and the
 * transposed store with a bias and a ReLU (mmk_tr16x); Winograd's F(2x2,
 * 3x3) and F(4x4, 3x3) convolutions against a direct loop. Built three
 * times (tests/runtime/CMakeLists.txt): for the host (AVX-512 where it has
 * it), for AVX2 and portable. Exit 0 when every check passes (tests/check.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../check.h"
#include "mmrt_cpu.h"

static float rnd(void) { return (float)((double)rand() / RAND_MAX * 2.0 - 1.0); }

static void test_thin(void) {
    static const int shapes[][6] = {/* XC, FH, FW, YH, YW, pad width */
                                    {32, 5, 5, 28, 28, 0}, {1, 5, 5, 28, 28, 3}, {3, 3, 3, 7, 13, 0}, {2, 3, 5, 9, 40, 1},
                                    {5, 1, 3, 1, 16, 0},   {4, 2, 2, 17, 33, 2}};
    for (int si = 0; si < (int)(sizeof shapes / sizeof shapes[0]); si++) {
        const int XC = shapes[si][0], FH = shapes[si][1], FW = shapes[si][2], YH = shapes[si][3], YW = shapes[si][4];
        const int WQ = YW + FW - 1 + shapes[si][5], HQ = YH + FH - 1, PL = HQ * WQ + FW + 64, KK = XC * FH * FW;
        float *x = malloc(sizeof(float) * XC * PL), *w = malloc(sizeof(float) * 4 * KK), *c = malloc(sizeof(float) * 4 * YH * WQ);
        for (int i = 0; i < XC * PL; i++) x[i] = rnd();
        for (int i = 0; i < 4 * KK; i++) w[i] = rnd();
        int *off = malloc(sizeof(int) * KK);
        for (int ci = 0; ci < XC; ci++)
            for (int kh = 0; kh < FH; kh++)
                for (int kw = 0; kw < FW; kw++) off[(ci * FH + kh) * FW + kw] = ci * PL + kh * WQ + kw;
        for (int M = 1; M <= MMK_THIN_MAX; M++) {
            for (int i = 0; i < 4 * YH * WQ; i++) c[i] = NAN;
            mmk_conv_thin(M, XC, FH, FW, YH, YW, WQ, PL, w, x, off, c, YH * WQ);
            for (int m = 0; m < M; m++)
                for (int h = 0; h < YH; h++)
                    for (int j = 0; j < YW; j++) {
                        double s = 0, mag = 0; /* float rounding grows with the sum of |terms| (800 of them here) */
                        for (int ci = 0; ci < XC; ci++)
                            for (int kh = 0; kh < FH; kh++)
                                for (int kw = 0; kw < FW; kw++) {
                                    const double t = (double)w[m * KK + (ci * FH + kh) * FW + kw] * x[ci * PL + (h + kh) * WQ + j + kw];
                                    s += t, mag += fabs(t);
                                }
                        const float v = c[m * YH * WQ + h * WQ + j];
                        CHECK_CLOSE(v, s, 1e-6 * (1 + mag), 0, "conv_thin shape %d M=%d [%d][%d][%d]", si, M, m, h, j);
                    }
        }
        free(x), free(w), free(c), free(off);
    }
}

static void test_gemm(void) {
    enum { K = 37, N = 75, LD = 160, SLACK = 64 };
    int off[K];
    float *bx = malloc(sizeof(float) * (K * LD + N + SLACK)), *a = malloc(sizeof(float) * 24 * K), *bias = malloc(sizeof(float) * 24);
    for (int i = 0; i < K * LD + N + SLACK; i++) bx[i] = rnd();
    for (int i = 0; i < 24 * K; i++) a[i] = rnd();
    for (int i = 0; i < 24; i++) bias[i] = rnd();
    for (int k = 0; k < K; k++) off[k] = (k * 7919) % (K * LD - N); /* rows anywhere, overlapping */
    for (int M = 1; M <= 2 * MMK_MR_BIG + 3 && M <= 24; M++)
        for (int relu = 0; relu < 2; relu++) {
            float c[24 * N];
            mmk_gemm_off(M, N, K, a, K, bx, off, c, N, relu ? NULL : bias, relu);
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    double s = relu ? 0 : bias[i];
                    for (int k = 0; k < K; k++) s += (double)a[i * K + k] * bx[off[k] + j];
                    if (relu && s < 0) s = 0;
                    CHECK_CLOSE(c[i * N + j], s, 1e-5, 1e-5, "gemm_off M=%d relu=%d [%d][%d]", M, relu, i, j);
                }
        }
    /* C (+)= A . B, A's rows through pointers read contiguously (ak[k] = k), B packed (mmk_pack). */
    enum { KC = 45, NC = 40 };
    float *b = malloc(sizeof(float) * KC * NC), *bp = malloc(sizeof(float) * KC * 64);
    for (int i = 0; i < KC * NC; i++) b[i] = rnd();
    mmk_pack(bp, b, NC, KC, NC);
    const float *rows[24];
    for (int r = 0; r < 24; r++) rows[r] = bx + (r * 131) % (K * LD - KC);
    int iota[KC];
    for (int k = 0; k < KC; k++) iota[k] = k;
    for (int M = 1; M <= 2 * MMK_MR_BIG + 3 && M <= 24; M++)
        for (int acc = 0; acc < 2; acc++) {
            float c[24 * NC];
            for (int i = 0; i < 24 * NC; i++) c[i] = 0.5f;
            mmk_gemm_gather(M, NC, KC, rows, iota, bp, c, NC, acc);
            for (int i = 0; i < M; i++)
                for (int j = 0; j < NC; j++) {
                    double s = acc ? 0.5 : 0;
                    for (int k = 0; k < KC; k++) s += (double)rows[i][k] * b[k * NC + j];
                    CHECK_CLOSE(c[i * NC + j], s, 1e-5, 1e-5, "gemm_rows M=%d acc=%d [%d][%d]", M, acc, i, j);
                }
        }
    /* C (+)= A . B with A[r][k] = rows[r][ak[k]] (scattered offsets), B packed. */
    int ak[KC];
    for (int k = 0; k < KC; k++) ak[k] = (k * 37) % 97;
    for (int M = 1; M <= 2 * MMK_MR_BIG + 3 && M <= 24; M++)
        for (int acc = 0; acc < 2; acc++) {
            float c[24 * NC];
            for (int i = 0; i < 24 * NC; i++) c[i] = 0.5f;
            mmk_gemm_gather(M, NC, KC, rows, ak, bp, c, NC, acc);
            for (int i = 0; i < M; i++)
                for (int j = 0; j < NC; j++) {
                    double s = acc ? 0.5 : 0;
                    for (int k = 0; k < KC; k++) s += (double)rows[i][ak[k]] * b[k * NC + j];
                    CHECK_CLOSE(c[i * NC + j], s, 1e-5, 1e-5, "gemm_gather M=%d acc=%d [%d][%d]", M, acc, i, j);
                }
        }
    free(bx), free(a), free(bias), free(b), free(bp);
}

/* The reference: the row-major first maximum of each clipped window. */
static void pool_ref(const float *x, float *y, int32_t *ix, int HI, int WI, int HO, int WO, int KH, int KW, int SH, int SW, int PH, int PW) {
    for (int oh = 0; oh < HO; oh++)
        for (int ow = 0; ow < WO; ow++) {
            float m = -INFINITY;
            int at = -1;
            for (int kh = 0; kh < KH; kh++)
                for (int kw = 0; kw < KW; kw++) {
                    int ih = oh * SH - PH + kh, iw = ow * SW - PW + kw;
                    if (ih < 0 || ih >= HI || iw < 0 || iw >= WI) continue;
                    if (x[ih * WI + iw] > m) m = x[ih * WI + iw], at = ih * WI + iw;
                }
            y[oh * WO + ow] = at >= 0 ? m : NAN;
            ix[oh * WO + ow] = at;
        }
}

/* Run-time shapes (the generated kernels pass constants): one compiled copy
 * of the pooling instead of one per case, which keeps this file quick to
 * compile under the sanitizers. */
__attribute__((noinline)) static void pool_run(const float *x, int ldx, float *y, int32_t *ix, int HI, int WI, int HO, int WO, int KH,
                                               int KW, int SH, int SW, int PH, int PW) {
    mmk_maxpool2d(x, ldx, y, ix, HI, WI, HO, WO, KH, KW, SH, SW, PH, PW);
}

static void pool_case(int HI, int WI, int KH, int KW, int SH, int SW, int PH, int PW) {
    const int HO = (HI + 2 * PH - KH) / SH + 1, WO = (WI + 2 * PW - KW) / SW + 1, no = HO * WO;
    float *x = malloc(sizeof(float) * HI * WI), *y = malloc(sizeof(float) * no), *yr = malloc(sizeof(float) * no),
          *y2 = malloc(sizeof(float) * no);
    int32_t *ix = malloc(sizeof(int32_t) * no), *ixr = malloc(sizeof(int32_t) * no);
    for (int t = 0; t < 3; t++) { /* random values; small integers (ties); ReLU outputs with a window of NaN */
        for (int i = 0; i < HI * WI; i++) x[i] = t == 1 ? (float)(rand() % 3) : t == 2 ? fmaxf(rnd(), 0) : rnd();
        if (t == 2)
            for (int h = 0; h < KH && h < HI; h++)
                for (int w = 0; w < KW && w < WI; w++) x[h * WI + w] = NAN;
        pool_run(x, WI, y, ix, HI, WI, HO, WO, KH, KW, SH, SW, PH, PW);
        pool_ref(x, yr, ixr, HI, WI, HO, WO, KH, KW, SH, SW, PH, PW);
        for (int o = 0; o < no; o++)
            CHECK(ix[o] == ixr[o] && (memcmp(&y[o], &yr[o], 4) == 0 || (isnan(y[o]) && isnan(yr[o]))),
                  "maxpool %dx%d k%dx%d s%dx%d p%dx%d, data %d, output %d: %g at %d, expected %g at %d", HI, WI, KH, KW, SH, SW, PH, PW, t,
                  o, y[o], ix[o], yr[o], ixr[o]);
        pool_run(x, WI, y2, NULL, HI, WI, HO, WO, KH, KW, SH, SW, PH, PW);
        CHECK(memcmp(y, y2, sizeof(float) * no) == 0, "maxpool without indices differs");
        /* The same plane read in place from rows LDX > WI apart (a convolution's
         * padded rows), garbage in the extra columns: the same values and
         * indices (which count WI per row). */
        const int LDX = WI + 5;
        float *xw = malloc(sizeof(float) * HI * LDX);
        for (int h = 0; h < HI; h++)
            for (int w = 0; w < LDX; w++) xw[h * LDX + w] = w < WI ? x[h * WI + w] : 1e30f;
        int32_t *ix2 = malloc(sizeof(int32_t) * no);
        pool_run(xw, LDX, y2, ix2, HI, WI, HO, WO, KH, KW, SH, SW, PH, PW);
        CHECK(memcmp(y, y2, sizeof(float) * no) == 0 && memcmp(ix, ix2, sizeof(int32_t) * no) == 0,
              "maxpool with rows %d apart differs (%dx%d k%dx%d s%dx%d p%dx%d)", LDX, HI, WI, KH, KW, SH, SW, PH, PW);
        free(xw), free(ix2);
    }
    free(x), free(y), free(yr), free(y2), free(ix), free(ixr);
}

/* Pooling of a map held transposed (positions x channels) before its bias
 * and ReLU (mmk_maxpool_t16), against pooling each channel's plane after
 * them: the same values; the same argmaxes wherever the pooled value is
 * positive (at 0 the ReLU's ties may pick another position, and the
 * gradient is masked there); and the int32 transpose of the indices. */
static void pool_t_case(int C, int HI, int WI, int KH, int KW, int SH, int SW, int PH, int PW, int relu) {
    const int HO = (HI + 2 * PH - KH) / SH + 1, WO = (WI + 2 * PW - KW) / SW + 1, NP = HI * WI, PO = HO * WO, LDX = C + 3;
    float *x = malloc(sizeof(float) * NP * LDX), *bias = malloc(sizeof(float) * C), *plane = malloc(sizeof(float) * NP);
    float *yt = malloc(sizeof(float) * PO * 16), *yr = malloc(sizeof(float) * PO);
    int32_t *it = malloc(sizeof(int32_t) * PO * 16), *ir = malloc(sizeof(int32_t) * PO), *itr = malloc(sizeof(int32_t) * 16 * PO);
    for (int i = 0; i < NP * LDX; i++) x[i] = rnd();
    for (int c = 0; c < C; c++) bias[c] = rnd() * 0.5f;
    for (int h = 0; h < KH && h < HI; h++) /* channel 0's first window: NaN */
        for (int w = 0; w < KW && w < WI; w++) x[(h * WI + w) * LDX] = NAN;
    for (int c0 = 0; c0 < C; c0 += 16) {
        mmk_maxpool_t16(x, LDX, c0, C, HI, WI, HO, WO, KH, KW, SH, SW, PH, PW, bias, relu, yt, it);
        const int w = C - c0 < 16 ? C - c0 : 16;
        for (int o = 0; o < PO; o += 16) mmk_tr16i(itr + o, PO, it + o * 16, 16, PO - o < 16 ? PO - o : 16, w);
        for (int j = 0; j < w; j++) {
            const int c = c0 + j;
            for (int p = 0; p < NP; p++) { /* the ReLU as both back ends apply it: NaN -> 0 */
                float v = x[p * LDX + c] + bias[c];
                plane[p] = relu ? (v > 0 ? v : 0) : v;
            }
            pool_ref(plane, yr, ir, HI, WI, HO, WO, KH, KW, SH, SW, PH, PW);
            for (int o = 0; o < PO; o++) {
                CHECK((memcmp(&yt[o * 16 + j], &yr[o], 4) == 0 || (isnan(yt[o * 16 + j]) && isnan(yr[o]))) &&
                          (yr[o] <= 0 || it[o * 16 + j] == ir[o]) && (!isnan(yr[o]) || it[o * 16 + j] == -1) && itr[j * PO + o] == it[o * 16 + j],
                      "maxpool_t16 C=%d %dx%d k%dx%d s%dx%d p%dx%d relu=%d channel %d output %d: %g at %d, expected %g at %d", C, HI, WI,
                      KH, KW, SH, SW, PH, PW, relu, c, o, yt[o * 16 + j], it[o * 16 + j], yr[o], ir[o]);
            }
        }
    }
    free(x), free(bias), free(plane), free(yt), free(yr), free(it), free(ir), free(itr);
}

/* 3-D max pooling (mmk_maxpool3d) against the first maximum of each clipped
 * window in (d, h, w) order: values and volume indices exactly, with ties
 * across slices, ReLU zeros and a window of NaN. */
static void pool3_ref(const float *x, float *y, int32_t *ix, int DI, int HI, int WI, int DO, int HO, int WO, int KD, int KH, int KW,
                      int SD, int SH, int SW, int PD, int PH, int PW) {
    for (int od = 0; od < DO; od++)
        for (int oh = 0; oh < HO; oh++)
            for (int ow = 0; ow < WO; ow++) {
                float m = -INFINITY;
                int at = -1;
                for (int kd = 0; kd < KD; kd++)
                    for (int kh = 0; kh < KH; kh++)
                        for (int kw = 0; kw < KW; kw++) {
                            int id = od * SD - PD + kd, ih = oh * SH - PH + kh, iw = ow * SW - PW + kw;
                            if (id < 0 || id >= DI || ih < 0 || ih >= HI || iw < 0 || iw >= WI) continue;
                            const int i = (id * HI + ih) * WI + iw;
                            if (x[i] > m) m = x[i], at = i;
                        }
                const int o = (od * HO + oh) * WO + ow;
                y[o] = at >= 0 ? m : NAN;
                ix[o] = at;
            }
}

__attribute__((noinline)) static void pool3_run(const float *x, float *y, int32_t *ix, const int *d) {
    mmk_maxpool3d(x, y, ix, d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9], d[10], d[11], d[12], d[13], d[14]);
}

static void pool3_case(int DI, int HI, int WI, int KD, int KH, int KW, int SD, int SH, int SW, int PD, int PH, int PW) {
    const int DO = (DI + 2 * PD - KD) / SD + 1, HO = (HI + 2 * PH - KH) / SH + 1, WO = (WI + 2 * PW - KW) / SW + 1, ni = DI * HI * WI,
              no = DO * HO * WO;
    const int d[15] = {DI, HI, WI, DO, HO, WO, KD, KH, KW, SD, SH, SW, PD, PH, PW};
    float *x = malloc(sizeof(float) * ni), *y = malloc(sizeof(float) * no), *yr = malloc(sizeof(float) * no), *y2 = malloc(sizeof(float) * no);
    int32_t *ix = malloc(sizeof(int32_t) * no), *ixr = malloc(sizeof(int32_t) * no);
    for (int t = 0; t < 3; t++) { /* random values; small integers (ties across slices); ReLU outputs with a window of NaN */
        for (int i = 0; i < ni; i++) x[i] = t == 1 ? (float)(rand() % 3) : t == 2 ? fmaxf(rnd(), 0) : rnd();
        if (t == 2)
            for (int dd = 0; dd < KD && dd < DI; dd++)
                for (int h = 0; h < KH && h < HI; h++)
                    for (int w = 0; w < KW && w < WI; w++) x[(dd * HI + h) * WI + w] = NAN;
        pool3_run(x, y, ix, d);
        pool3_ref(x, yr, ixr, DI, HI, WI, DO, HO, WO, KD, KH, KW, SD, SH, SW, PD, PH, PW);
        for (int o = 0; o < no; o++)
            CHECK(ix[o] == ixr[o] && (memcmp(&y[o], &yr[o], 4) == 0 || (isnan(y[o]) && isnan(yr[o]))),
                  "maxpool3d %dx%dx%d k%dx%dx%d s%dx%dx%d p%dx%dx%d, data %d, output %d: %g at %d, expected %g at %d", DI, HI, WI, KD, KH,
                  KW, SD, SH, SW, PD, PH, PW, t, o, y[o], ix[o], yr[o], ixr[o]);
        pool3_run(x, y2, NULL, d);
        CHECK(memcmp(y, y2, sizeof(float) * no) == 0, "maxpool3d without indices differs");
    }
    free(x), free(y), free(yr), free(y2), free(ix), free(ixr);
}

static void test_maxpool(void) {
    pool3_case(8, 28, 28, 3, 3, 3, 1, 1, 1, 1, 1, 1); /* I3D's inception pooling */
    pool3_case(8, 28, 28, 3, 3, 3, 2, 2, 2, 1, 1, 1);
    pool3_case(8, 56, 56, 1, 3, 3, 1, 2, 2, 0, 1, 1);
    pool3_case(4, 7, 7, 2, 2, 2, 2, 2, 2, 0, 0, 0);
    pool3_case(5, 9, 11, 3, 2, 3, 3, 1, 2, 1, 0, 1);
    pool3_case(7, 9, 9, 1, 2, 2, 3, 2, 2, 0, 0, 0); /* depth stride > kernel depth: slices skipped */
    pool3_case(1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0);
    for (int relu = 0; relu < 2; relu++) {
        pool_t_case(32, 28, 28, 3, 3, 2, 2, 1, 1, relu);
        pool_t_case(20, 9, 7, 2, 2, 2, 2, 0, 0, relu);
        pool_t_case(5, 11, 13, 3, 2, 3, 1, 1, 0, relu);
    }
    pool_case(28, 28, 3, 3, 2, 2, 1, 1);
    pool_case(14, 14, 2, 2, 2, 2, 0, 0);
    pool_case(7, 9, 3, 3, 1, 1, 1, 1);
    pool_case(3, 4, 2, 2, 2, 2, 0, 0);
    pool_case(11, 37, 3, 3, 3, 3, 1, 1);
    pool_case(5, 40, 3, 5, 2, 3, 1, 2);
    pool_case(1, 1, 1, 1, 1, 1, 0, 0);
}

static void test_transpose(void) {
    enum { LD = 40, LDD = 24 };
    float src[17 * LD], dst[17 * LDD];
    for (int i = 0; i < 17 * LD; i++) src[i] = rnd();
    for (int R = 0; R <= 16; R++)
        for (int C = 1; C <= 16; C++) {
            for (int i = 0; i < 17 * LDD; i++) dst[i] = 99.0f;
            mmk_tr16(dst, LDD, src + 3, LD, R, C);
            for (int c = 0; c < 17; c++)
                for (int r = 0; r < LDD; r++) {
                    const float want = c >= C || r >= 16 ? 99.0f : r < R ? src[r * LD + 3 + c] : 0.0f;
                    CHECK(memcmp(&dst[c * LDD + r], &want, 4) == 0, "tr16 R=%d C=%d dst[%d][%d] = %g, expected %g", R, C, c, r,
                          dst[c * LDD + r], want);
                }
        }
    /* mmk_tr16x storing only r < R, with a bias per dst row and a ReLU. */
    float bias[16];
    for (int c = 0; c < 16; c++) bias[c] = rnd();
    for (int R = 1; R <= 16; R++)
        for (int C = 1; C <= 16; C += 5)
            for (int relu = 0; relu < 2; relu++) {
                for (int i = 0; i < 17 * LDD; i++) dst[i] = 99.0f;
                mmk_tr16x(dst, LDD, src + 1, LD, R, C, 1, bias, relu);
                for (int c = 0; c < 17; c++)
                    for (int r = 0; r < LDD; r++) {
                        float want = 99.0f;
                        if (c < C && r < R) {
                            want = src[r * LD + 1 + c] + bias[c];
                            if (relu && want < 0) want = 0;
                        }
                        CHECK(memcmp(&dst[c * LDD + r], &want, 4) == 0, "tr16x R=%d C=%d relu=%d dst[%d][%d] = %g, expected %g", R, C,
                              relu, c, r, dst[c * LDD + r], want);
                    }
            }
    /* mmk_pack_t: src[C][R] (ld 70) packed as B[R][C] in blocks of 32 columns, zero past C. */
    static float m[70 * 70], pk[70 * 96];
    for (int i = 0; i < 70 * 70; i++) m[i] = rnd();
    const int sizes[] = {1, 7, 15, 16, 17, 31, 32, 33, 49, 64, 70};
    for (int a = 0; a < 11; a++)
        for (int b = 0; b < 11; b++) {
            const int R = sizes[a], C = sizes[b], nb = (C + 31) / 32;
            memset(pk, 0xff, sizeof pk);
            mmk_pack_t(pk, m, 70, R, C);
            for (int blk = 0; blk < nb; blk++)
                for (int r = 0; r < R; r++)
                    for (int j = 0; j < 32; j++) {
                        const int c = blk * 32 + j;
                        const float want = c < C ? m[c * 70 + r] : 0.0f, got = pk[((size_t)blk * R + r) * 32 + j];
                        CHECK(memcmp(&got, &want, 4) == 0, "pack_t R=%d C=%d [%d][%d] = %g, expected %g", R, C, r, c, got, want);
                    }
        }
}

/* Winograd F(m x m, 3x3) (mmk_wino_conv, m = 2; mmk_wino4_conv, m = 4)
 * and its input-gradient weights (flip) against a direct loop in double:
 * padding 0-2, maps whose sides are not multiples of m, a bias and a ReLU,
 * a last task of fewer tile rows, on one and on several threads. The
 * relative error bound is the float rounding of the transforms (bench/wino.c
 * measures 3e-7 and 5e-6 of the largest output on ResNet's shapes). */
static void wino_case(int m, int B, int C, int K, int H, int W, int P, int relu, int R) {
    const int HO = H + 2 * P - 2, WO = W + 2 * P - 2, TW = (WO + m - 1) / m;
    int LD;
    size_t sf;
    R = mm_wino_plan(m, TW + 1, C, K, 0, R, &LD, &sf);
    float *x = malloc(sizeof(float) * C * B * H * W), *w = malloc(sizeof(float) * K * C * 9), *bias = malloc(sizeof(float) * K);
    float *y = malloc(sizeof(float) * K * B * HO * WO), *U = malloc(sizeof(float) * (m + 2) * (m + 2) * K * C);
    float *s = malloc(sizeof(float) * sf * omp_get_max_threads());
    for (int i = 0; i < C * B * H * W; i++) x[i] = rnd();
    for (int i = 0; i < K * C * 9; i++) w[i] = rnd();
    for (int k = 0; k < K; k++) bias[k] = rnd();
    for (int flip = 0; flip < 2; flip++) {
        /* flip: the weights as an input gradient takes them, w read as [C][K] */
        if (m == 2) mmk_wino_weights(U, w, K, C, flip);
        else mmk_wino4_weights(U, w, K, C, flip);
        if (m == 2) mmk_wino_conv(B, C, K, H, W, P, x, U, bias, relu, y, R, LD, s, sf);
        else mmk_wino4_conv(B, C, K, H, W, P, x, U, bias, relu, y, R, LD, s, sf);
        double maxe = 0, maxr = 0;
        for (int k = 0; k < K; k++)
            for (int n = 0; n < B; n++)
                for (int h = 0; h < HO; h++)
                    for (int v = 0; v < WO; v++) {
                        double r = bias[k];
                        for (int c = 0; c < C; c++)
                            for (int i = 0; i < 3; i++)
                                for (int j = 0; j < 3; j++) {
                                    const int hh = h + i - P, ww = v + j - P;
                                    const float g = flip ? w[((size_t)c * K + k) * 9 + 8 - (i * 3 + j)] : w[((size_t)k * C + c) * 9 + i * 3 + j];
                                    if (hh >= 0 && hh < H && ww >= 0 && ww < W) r += (double)x[((size_t)c * B + n) * H * W + hh * W + ww] * g;
                                }
                        if (relu && r < 0) r = 0;
                        const double e = fabs(r - y[((size_t)k * B + n) * HO * WO + h * WO + v]);
                        if (!(e <= maxe)) maxe = e;
                        if (fabs(r) > maxr) maxr = fabs(r);
                    }
        /* The same bits on one thread (other tasks: mmk_wino_rows). */
        if (omp_get_max_threads() > 1) {
            float *y1 = malloc(sizeof(float) * K * B * HO * WO);
            const int T = omp_get_max_threads();
            omp_set_num_threads(1);
            if (m == 2) mmk_wino_conv(B, C, K, H, W, P, x, U, bias, relu, y1, R, LD, s, sf);
            else mmk_wino4_conv(B, C, K, H, W, P, x, U, bias, relu, y1, R, LD, s, sf);
            omp_set_num_threads(T);
            CHECK(memcmp(y, y1, sizeof(float) * K * B * HO * WO) == 0, "wino F(%dx%d) B=%d C=%d K=%d: one thread gives other bits", m, m, B, C, K);
            free(y1);
        }
        CHECK(maxe <= (m == 2 ? 2e-6 : 3e-5) * maxr, "wino F(%dx%d) B=%d C=%d K=%d %dx%d P=%d relu=%d R=%d flip=%d: max error %g of %g", m, m, B, C,
              K, H, W, P, relu, R, flip, maxe, maxr);
    }
    free(x), free(w), free(bias), free(y), free(U), free(s);
}

static void test_wino(void) {
    for (int m = 2; m <= 4; m += 2) {
        wino_case(m, 3, 16, 17, 29, 31, 1, 1, 0);
        wino_case(m, 2, 18, 16, 9, 11, 2, 0, 0);
        wino_case(m, 3, 17, 18, 28, 13, 0, 1, 2); /* 2 tile rows a task: 39 (m = 2) or 21 (m = 4) rows, a last task of one */
        wino_case(m, 1, 33, 40, 28, 28, 1, 0, 0);
        omp_set_num_threads(1);
        wino_case(m, 2, 16, 16, 14, 14, 1, 1, 0);
        omp_set_num_threads(omp_get_num_procs());
    }
}

int main(void) {
    srand(7);
    test_wino();
    test_transpose();
    test_gemm();
    test_thin();
    test_maxpool();
#if defined(__AVX512F__)
    return check_summary("test_kernels (AVX-512)");
#elif defined(__AVX2__)
    return check_summary("test_kernels (AVX2)");
#else
    return check_summary("test_kernels (portable)");
#endif
}
