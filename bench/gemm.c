/* gemm.c — the pieces of a generated convolution, timed alone on one
 * thread: the GEMM micro-kernels (mmrt_cpu.h) on packed panels of the
 * shapes cgmnist's convolutions give them, and the im2col that fills those
 * panels. Prints GFLOP/s of the GEMM and the time of im2col relative to it.
 *
 *   cc -O3 -march=native -fopenmp -Iruntime bench/gemm.c -o gemm && ./gemm */
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
    return 0;
}
