/* peak.c — this machine's FP32 peak: FMA throughput with enough independent
 * accumulators to hide latency, on one thread and on all, with the widest
 * vectors the compiler was told about (build with -O2 -march=native
 * -fopenmp). Prints GFLOP/s; the per-kernel profile of a generated program
 * (mmc build --profile) is read against it. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#define W 16
typedef __m512 vec;
#define VSET(x) _mm512_set1_ps(x)
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VSUM(v) _mm512_reduce_add_ps(v)
#define ISA "avx512"
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define W 8
typedef __m256 vec;
#define VSET(x) _mm256_set1_ps(x)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
static float vsum(__m256 v) {
    float t[8];
    _mm256_storeu_ps(t, v);
    return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}
#define VSUM(v) vsum(v)
#define ISA "avx2"
#else
#define W 1
typedef float vec;
#define VSET(x) (x)
#define VFMA(a, b, c) ((a) * (b) + (c))
#define VSUM(v) (v)
#define ISA "scalar"
#endif

#define ACC 12 /* independent FMA chains per thread */

/* Twelve named accumulators (not an array) so every compiler keeps them in
 * registers. */
static double run(long iters) {
    vec a0 = VSET(0.1f), a1 = VSET(0.2f), a2 = VSET(0.3f), a3 = VSET(0.4f), a4 = VSET(0.5f), a5 = VSET(0.6f);
    vec a6 = VSET(0.7f), a7 = VSET(0.8f), a8 = VSET(0.9f), a9 = VSET(1.0f), a10 = VSET(1.1f), a11 = VSET(1.2f);
    const vec m = VSET(0.999999f), c = VSET(1e-7f);
    for (long it = 0; it < iters; it++) {
        a0 = VFMA(a0, m, c); a1 = VFMA(a1, m, c); a2 = VFMA(a2, m, c); a3 = VFMA(a3, m, c);
        a4 = VFMA(a4, m, c); a5 = VFMA(a5, m, c); a6 = VFMA(a6, m, c); a7 = VFMA(a7, m, c);
        a8 = VFMA(a8, m, c); a9 = VFMA(a9, m, c); a10 = VFMA(a10, m, c); a11 = VFMA(a11, m, c);
    }
    return VSUM(a0) + VSUM(a1) + VSUM(a2) + VSUM(a3) + VSUM(a4) + VSUM(a5) + VSUM(a6) + VSUM(a7) + VSUM(a8) + VSUM(a9) +
           VSUM(a10) + VSUM(a11);
}

static double gflops(int threads, long iters) {
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        volatile double sink = 0;
        double t0 = omp_get_wtime();
        #pragma omp parallel num_threads(threads) reduction(+ : sink)
        sink += run(iters);
        double t = omp_get_wtime() - t0;
        double g = 2.0 * W * ACC * (double)iters * threads / t * 1e-9;
        if (g > best) best = g;
    }
    return best;
}

int main(int argc, char **argv) {
    long iters = argc > 1 ? atol(argv[1]) : 100000000L;
    int all = omp_get_max_threads();
    double g1 = gflops(1, iters), gn = gflops(all, iters);
    printf("FP32 peak (%s FMA, %d-wide, best of 5): 1 thread %.1f GFLOP/s, %d threads %.1f GFLOP/s\n", ISA, W, g1, all, gn);
    return 0;
}
