/* gemm.c — the pieces of a generated convolution, timed alone on one
 * thread: the GEMM micro-kernels (mmrt_cpu.h) on packed panels of the
 * shapes cgmnist's convolutions give them, and the im2col that fills those
 * panels. Prints GFLOP/s of the GEMM and the time of im2col relative to it;
 * then the input gradients of conv1 (one and three output channels, on
 * padded planes) by mmk_conv_thin and by mmk_gemm_off (the two columns
 * are the same routine unless built with clang for AVX-512).
 *
 *   cc -O3 -march=native -fopenmp -Iruntime bench/gemm.c build/libmmrt.a -lz -lcjson -lm -o gemm && ./gemm */
#include <stdio.h>
#include <stdlib.h>

#include "mmrt_cpu.h"

static double now(void) { return omp_get_wtime(); }

int main(void) {
    struct { const char *name; int M, K, CI, H, W, k, s, p; } shapes[] = {
        {"conv1 colour 3->32 5x5 28x28", 32, 75, 3, 28, 28, 5, 1, 2},
        {"conv2 32->32 3x3 14x14", 32, 288, 32, 14, 14, 3, 1, 1},
        {"conv3 32->64 3x3 s2 14->7", 64, 288, 32, 14, 14, 3, 2, 1},
        {"conv4 64->64 3x3 7x7", 64, 576, 64, 7, 7, 3, 1, 1},
    };
    const int N = 256, B = 128, reps = 400;
    printf("one thread, panels of %d columns, %d repetitions (SIMD %s)\n", N, reps, MMK_SIMD);
    printf("%-32s %12s %14s\n", "shape", "GEMM GFLOP/s", "im2col/GEMM");
    for (int i = 0; i < 4; i++) {
        int M = shapes[i].M, K = shapes[i].K, CI = shapes[i].CI, H = shapes[i].H, W = shapes[i].W;
        int k = shapes[i].k, s = shapes[i].s, p = shapes[i].p, HO = (H + 2 * p - k) / s + 1, WO = (W + 2 * p - k) / s + 1;
        float *A = rt_alloc(sizeof(float) * M * K), *Bp = rt_alloc(sizeof(float) * K * N), *C = rt_alloc(sizeof(float) * M * N);
        float *x = rt_alloc(sizeof(float) * CI * B * H * W);
        for (int j = 0; j < M * K; j++) A[j] = 0.001f * (j % 97);
        for (int j = 0; j < K * N; j++) Bp[j] = 0.001f * (j % 89);
        for (long j = 0; j < (long)CI * B * H * W; j++) x[j] = 0.001f * (j % 83);
        mmk_gemm(M, N, K, A, K, Bp, C, N, NULL, 0, 0);
        double t0 = now();
        for (int r = 0; r < reps; r++) mmk_gemm(M, N, K, A, K, Bp, C, N, NULL, 0, 0);
        double tg = (now() - t0) / reps;
        t0 = now();
        for (int r = 0; r < reps; r++)
            mmk_im2col_cb(Bp, 1, x, B, (r * N) % (B * HO * WO - N), N, CI, 1, H, W, 1, k, k, 1, s, s, 0, p, p, 1, HO, WO);
        double ti = (now() - t0) / reps;
        printf("%-32s %12.1f %13.0f%%\n", shapes[i].name, 2.0 * M * N * K / tg * 1e-9, 100 * ti / tg);
        free(A);
        free(Bp);
        free(C);
        free(x);
    }
    /* conv1's input gradients: dY (32 channels, 28x28) padded by 2 to
     * 32x32 planes, a flipped 5x5 kernel, 1 (gray) or 3 (colour) outputs. */
    enum { XC = 32, FH = 5, FW = 5, YH = 28, YW = 28, WQ = 32, PL = 32 * WQ + FW + 64, KK = XC * FH * FW };
    float *xp = rt_alloc(sizeof(float) * XC * PL), *wt = rt_alloc(sizeof(float) * 3 * KK), *cp = rt_alloc(sizeof(float) * 3 * YH * WQ + 256);
    int off[KK];
    for (int j = 0; j < XC * PL; j++) xp[j] = 0.001f * (j % 79);
    for (int j = 0; j < 3 * KK; j++) wt[j] = 0.001f * (j % 73);
    for (int c = 0; c < XC; c++)
        for (int kh = 0; kh < FH; kh++)
            for (int kw = 0; kw < FW; kw++) off[(c * FH + kh) * FW + kw] = c * PL + kh * WQ + kw;
    printf("\n%-32s %12s %14s\n", "conv1 input gradient, per example", "thin GFLOP/s", "GEMM GFLOP/s");
    for (int M = 1; M <= 3; M += 2) {
        double best[2] = {1e30, 1e30};
        for (int round = 0; round < 5; round++)
            for (int way = 0; way < 2; way++) {
                double t0 = now();
                for (int r = 0; r < reps; r++)
                    if (way == 0) mmk_conv_thin(M, XC, FH, FW, YH, YW, WQ, PL, wt, xp, off, cp, YH * WQ);
                    else mmk_gemm_off(M, YH * WQ, KK, wt, KK, xp, off, cp, YH * WQ, NULL, 0);
                double t = (now() - t0) / reps;
                if (t < best[way]) best[way] = t;
            }
        const double flop = 2.0 * M * YH * YW * KK;
        printf("%-32s %12.1f %14.1f\n", M == 1 ? "1 channel (conv1 gray)" : "3 channels (conv1 colour)", flop / best[0] * 1e-9,
               flop / best[1] * 1e-9);
    }
    free(xp);
    free(wt);
    free(cp);
    return 0;
}
