/* wino.c — the Winograd F(2x2, 3x3) convolution (runtime/mmrt_cpu_wino.h)
 * alone on one thread, against the direct convolution's GEMM on the same
 * shape measured in the same run: W[K][9C] . COL[9C][positions] with the
 * unrolled input packed once (what the direct kernels reach at best, the
 * unrolling left out). Checks 200 outputs against a plain loop in double,
 * then prints both times and their ratio for the shapes of cgmnist's and
 * ResNet-18's stride-1 3x3 layers, or one given on the command line:
 *
 *   clang -O3 -march=native -fopenmp -Iruntime -Icommon bench/wino.c build/libmmrt.a -lz -lcjson -lm -o wino
 *   ./wino                      # the built-in shapes
 *   ./wino B C K H [R]          # batch, in and out channels, map size (padding 1), tile rows per task
 *
 * R defaults to the plan the generated kernels use (mm_wino_plan,
 * common/mmnet_shared.h). */
#include <stdio.h>
#include <stdlib.h>

#include "mmrt_cpu.h"

static double now(void) { return omp_get_wtime(); }

static float frand(void) { return (float)rand() / (float)RAND_MAX - 0.5f; }

/* Max |error| / max |y| of y at 200 sampled outputs against a plain loop in double. */
static double check(int B, int C, int K, int H, int P, const float *x, const float *w, const float *y) {
    const int W = H, HO = H + 2 * P - 2, WO = HO;
    double maxe = 0, maxr = 0;
    srand(7);
    for (int t = 0; t < 200; t++) {
        int k = rand() % K, n = rand() % B, h = rand() % HO, ww = rand() % WO;
        double r = 0;
        for (int c = 0; c < C; c++)
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 3; j++) {
                    int hh = h + i - P, wc = ww + j - P;
                    if (hh >= 0 && hh < H && wc >= 0 && wc < W)
                        r += (double)x[((size_t)c * B + n) * H * W + hh * W + wc] * w[((size_t)k * C + c) * 9 + i * 3 + j];
                }
        double e = fabs(r - y[((size_t)k * B + n) * HO * WO + h * WO + ww]);
        if (e > maxe) maxe = e;
        if (fabs(r) > maxr) maxr = fabs(r);
    }
    return maxe / (maxr > 0 ? maxr : 1);
}

/* One Winograd form (m = 2 or 4) on the shape: ms per call; *err its error. */
static double wino(int m, int B, int C, int K, int H, int R, const float *x, const float *w, float *y, int reps, double *err) {
    const int P = 1, W = H, WO = H, TW = (WO + m - 1) / m;
    int LD;
    size_t sf;
    R = mm_wino_plan(m, TW + 1, C, K, 0, R, &LD, &sf);
    float *U = rt_alloc(sizeof(float) * (m + 2) * (m + 2) * K * C), *s = rt_alloc(sizeof(float) * sf * omp_get_max_threads());
    if (m == 2) mmk_wino_weights(U, w, K, C, 0);
    else mmk_wino4_weights(U, w, K, C, 0);
#define CALL() (m == 2 ? mmk_wino_conv(B, C, K, H, W, P, x, U, NULL, 0, y, R, LD, s, sf) : mmk_wino4_conv(B, C, K, H, W, P, x, U, NULL, 0, y, R, LD, s, sf))
    CALL();
    *err = check(B, C, K, H, P, x, w, y);
    double t0 = now();
    for (int r = 0; r < reps; r++) CALL();
#undef CALL
    const double t = (now() - t0) / reps;
    free(U), free(s);
    return t * 1e3;
}

static void run(int B, int C, int K, int H, int R) {
    const int HO = H, WO = H;
    float *x = rt_alloc(sizeof(float) * C * B * H * H), *w = rt_alloc(sizeof(float) * K * C * 9);
    float *y = rt_alloc(sizeof(float) * K * B * HO * WO);
    for (size_t i = 0; i < (size_t)C * B * H * H; i++) x[i] = frand();
    for (size_t i = 0; i < (size_t)K * C * 9; i++) w[i] = frand();
    const double fl = 2.0 * B * HO * WO * K * C * 9;
    int reps = 3 + (int)(4e9 / fl);
    /* The direct convolution's GEMM on panels of 256 positions, packed once. */
    const int KK = 9 * C, NB = 256, NP = B * HO * WO;
    float *pan = rt_alloc(sizeof(float) * KK * NB), *out = rt_alloc(sizeof(float) * K * NB);
    for (size_t i = 0; i < (size_t)KK * NB; i++) pan[i] = frand();
    for (int j0 = 0; j0 < NP; j0 += NB) mmk_gemm(K, NP - j0 < NB ? NP - j0 : NB, KK, w, KK, pan, out, NB, NULL, 0, 0);
    double t0 = now();
    for (int r = 0; r < reps; r++)
        for (int j0 = 0; j0 < NP; j0 += NB) mmk_gemm(K, NP - j0 < NB ? NP - j0 : NB, KK, w, KK, pan, out, NB, NULL, 0, 0);
    const double td = (now() - t0) / reps * 1e3;
    double e2, e4;
    const double t2 = wino(2, B, C, K, H, R, x, w, y, reps, &e2), t4 = wino(4, B, C, K, H, R, x, w, y, reps, &e4);
    printf("%4d %4d %4d %3d  %9.3f %9.3f %9.3f  %7.1f %7.1f %7.1f  %5.2fx %5.2fx  %.1e %.1e\n", B, C, K, H, td, t2, t4, fl / td / 1e6,
           fl / t2 / 1e6, fl / t4 / 1e6, td / t2, td / t4, e2, e4);
    free(x), free(w), free(y), free(pan), free(out);
}

int main(int argc, char **argv) {
    omp_set_num_threads(1);
    printf("one thread, SIMD %s; GFLOP/s count the direct convolution's 18 C K flops per output; F2, F4: Winograd F(2x2, 3x3), F(4x4, 3x3)\n", MMK_SIMD);
    printf("   B    C    K   H  direct ms     F2 ms     F4 ms  direct GF   F2 GF   F4 GF  F2 gain F4 gain  F2 err  F4 err (max |err| / max |y|)\n");
    if (argc >= 5) {
        run(atoi(argv[1]), atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), argc > 5 ? atoi(argv[5]) : 0);
        return 0;
    }
    const int shapes[][4] = {{128, 32, 32, 14}, {8, 64, 64, 56}, {8, 128, 128, 28}, {8, 256, 256, 14}, {32, 64, 64, 56}, {8, 512, 512, 7}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) run(shapes[i][0], shapes[i][1], shapes[i][2], shapes[i][3], 0);
    return 0;
}
