/* mmrt_cuda.h — what generated CUDA code includes: the CUDA back end's
 * state (rt_exec), the checked-call wrappers, and the device building blocks
 * the generated kernels share (im2col/col2im on the channel-major layout,
 * block reductions, GEMM through cuBLAS or a tiled kernel); with
 * MMNET_CUDNN defined, also the cuDNN glue in mmrt_cudnn.h.
 *
 * Layout and semantics are the C back end's (mmrt_cpu.h): feature maps are
 * [C][B][positions], vectors [B][F]; every reduction sums in a fixed order,
 * so a step gives the same result every time it runs. */
#ifndef MMRT_CUDA_H
#define MMRT_CUDA_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "mmrt.h"
#include "rt_dist.h"
}
#include "mmrt_ewise.h"

/* Every CUDA and cuBLAS call is checked; a failure names the call site. */
#define CUDA_CHECK(call) rt_cuda_check((call), #call, __FILE__, __LINE__)
#define CUBLAS_CHECK(call) rt_cublas_check((call), #call, __FILE__, __LINE__)
static inline void rt_cuda_check(cudaError_t err, const char *what, const char *file, int line) {
    if (err != cudaSuccess) {
        fprintf(stderr, "%s: CUDA error at %s:%d: %s: %s\n", rt_prog, file, line, what, cudaGetErrorString(err));
        exit(1);
    }
}
static inline void rt_cublas_check(cublasStatus_t st, const char *what, const char *file, int line) {
    if (st != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "%s: cuBLAS error %d at %s:%d: %s\n", rt_prog, (int)st, file, line, what);
        exit(1);
    }
}

/* Per-step values the kernels read from device memory, so that one captured
 * CUDA graph serves every step. */
typedef struct {
    rt_optim opt;
    long long acc_n;
    unsigned long long seed, step;
    float dist_w;                  /* data-parallel: this rank's share of the global batch (rt_dist.h) */
} rt_dev_hyper;

typedef struct rt_cuda_impl rt_cuda_impl;

struct rt_exec {
    const rt_model *m;
    const rt_cuda_impl *impl;
    int max_batch;
    cudaStream_t stream;
    cublasHandle_t blas;
    void *blas_ws;
    float *params, *grads, *mom, *mom2, *states; /* device arenas (mom2: Adam's second moment) */
    float *act, *fixed, *work;                /* activations; GEMM workspace (impl->work_floats) */
    float *x[RT_MAXIN];                       /* device inputs, channel-major */
    int32_t *y;                               /* device labels */
    rt_dev_hyper *hyper;                      /* device copy of the step's values */
    unsigned char *update_mask;               /* device, per parameter */
    float (*bias)[2];                         /* device, per parameter: Adam's bias corrections (rt_hyper) */
    double *norm_parts;                       /* device: per update block |g|^2, |w|^2 */
    struct UpdateItem *items;                 /* device: the update's work items (rt_cuda.c) */
    int nitems;
    size_t *param_off;                        /* device: offset of each parameter */
    unsigned char *has_grad;                  /* device: variant x parameter */
    /* Batches copied ahead (rt_backend.stage): the copy stream fills one of
     * two device buffers while the step before runs; the step that gets
     * the batch waits for the copy's event and takes it from there. */
    cudaStream_t copy_stream;
    struct {
        float *x[RT_MAXIN];
        int32_t *y;
        const void *from_x[RT_MAXIN], *from_y; /* the host batch it holds (from_y NULL: none) */
        int B;
        cudaEvent_t done;
    } staged[2];
    int stage_next;
    /* pinned host staging */
    rt_dev_hyper *h_hyper;
    unsigned char *h_mask;
    float (*h_bias)[2];
    double *h_norm_parts;
    float *h_out;                             /* loss, logits, prediction */
    float *h_grads;                           /* the gradients on the host, for rt_hyper.modulate (made on first use) */
    double (*norms)[2];
    /* CUDA graphs, per variant and batch size */
    cudaGraphExec_t *graphs;
    int *graph_batch;
    int use_graphs;
    /* profiling */
    cudaEvent_t *prof_ev;
    int prof_on;
    /* tracing (rt_backend.trace): outputs copied to trace_buf after each kernel */
    void (*trace)(void *user, int k, const float *out, size_t n);
    void *trace_user;
    float *trace_buf;
    size_t trace_cap;
    /* cuDNN (programs built with --conv cudnn): the handle, its workspace
     * and the buffer for copies in NCHW order, made by the first plan
     * (mmk_dnn_prepare) and freed by dnn_free; the runtime library itself
     * does not link cuDNN. */
    void *dnn;
    void (*dnn_free)(rt_exec *e);
    void *dnn_ws;
    size_t dnn_ws_bytes;
    float *dnn_buf;
};

/* Called by the generated run functions after each kernel when tracing. */
static inline void rt_cuda_trace(rt_exec *e, int k, const float *dev, size_t n) {
    if (e->trace_cap < n) {
        cudaFreeHost(e->trace_buf);
        CUDA_CHECK(cudaMallocHost((void **)&e->trace_buf, sizeof(float) * n));
        e->trace_cap = n;
    }
    CUDA_CHECK(cudaMemcpyAsync(e->trace_buf, dev, sizeof(float) * n, cudaMemcpyDeviceToHost, e->stream));
    CUDA_CHECK(cudaStreamSynchronize(e->stream));
    e->trace(e->trace_user, k, e->trace_buf, n);
}

typedef void (*rt_cuda_run_fn)(rt_exec *e, int B);

typedef struct {
    const char *name;
    double flops;
    double flops_fixed;
} rt_cuda_kernel_info;

typedef struct {
    size_t off[RT_MAXB + 2];   /* in e->fixed... per variant: where loss, logits and prediction are */
    int buf[RT_MAXB + 2];      /* 0: fixed arena, 1: activation arena (times max batch), -1: none */
} rt_cuda_outputs;

struct rt_cuda_impl {
    const rt_cuda_run_fn *run;                /* per variant */
    const rt_cuda_outputs *outputs;           /* per variant: loss, logits per branch, prediction */
    size_t act_floats, fixed_floats, work_floats;
    const int *nkernels;
    const rt_cuda_kernel_info *const *kernels;
    int profiled;
    int use_cublas;
    const rt_cuda_run_fn *plan;               /* per variant, before each step outside capture: cuDNN plans; or NULL */
    size_t dnn_floats;                        /* per example: the largest convolution's input + output, for NCHW copies */
};

extern "C" const rt_backend rt_cuda_backend;

/* ---- device building blocks ------------------------------------------------- */
#define MMK_THREADS 256
static inline unsigned mmk_blocks(size_t n) {
    size_t b = (n + MMK_THREADS - 1) / MMK_THREADS;
    return (unsigned)(b > 65535 * 8 ? 65535 * 8 : b ? b : 1);
}
#define MMK_LAUNCH(e, k, n) k<<<mmk_blocks(n), MMK_THREADS, 0, (e)->stream>>>
#define MMK_FOR(i, n) for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (size_t)(n); i += (size_t)gridDim.x * blockDim.x)

/* Sum over a block in a fixed order (tree in shared memory). */
__device__ static inline double mmk_block_sum(double v) {
    __shared__ double sh[MMK_THREADS];
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    double r = sh[0];
    __syncthreads();
    return r;
}

/* Each warp's sum of v, in every lane of the warp, by a fixed tree (every
 * thread of the block must call it). */
__device__ static inline float mmk_warp_sums(float v) {
    __shared__ float sh[MMK_THREADS];
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = 16; s > 0; s >>= 1) {
        if ((threadIdx.x & 31) < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    float r = sh[threadIdx.x & ~31u];
    __syncthreads();
    return r;
}

/* gridDim.y is at most 65535: kernels with rows or channels in y loop over them. */
static inline unsigned mmk_grid_y(long n) { return (unsigned)(n < 65535 ? n : 65535); }

/* The convolution's window as template arguments: every division by a
 * shape is by a constant (a multiply and a shift, not a division routine). */
#define MMK_WIN_T int CI, int DI, int HI, int WI, int KD, int KH, int KW, int SD, int SH, int SW, int PD, int PH, int PW, int DO, int HO, int WO

/* Columns [j0, j0+nb) of the unrolled input (see mmk_im2col_cb in
 * mmrt_cpu.h): panel[k][jj] (ldp = nb). Grid: x over the columns, y over
 * the K rows (strided past 65535). */
template <MMK_WIN_T>
__global__ static void mmk_im2col(float *panel, const float *x, int B, int j0, int nb) {
    constexpr int Q = DO * HO * WO;
    constexpr int K = CI * KD * KH * KW;
    for (int k = blockIdx.y; k < K; k += gridDim.y) {
        const int kw = k % KW, kh = (k / KW) % KH, kd = (k / (KW * KH)) % KD, ci = k / (KW * KH * KD);
        for (int jj = blockIdx.x * blockDim.x + threadIdx.x; jj < nb; jj += gridDim.x * blockDim.x) {
            const int j = j0 + jj, n = j / Q, q = j % Q, od = q / (HO * WO), oh = (q / WO) % HO, ow = q % WO;
            const int id = od * SD - PD + kd, ih = oh * SH - PH + kh, iw = ow * SW - PW + kw;
            panel[(size_t)k * nb + jj] = id >= 0 && id < DI && ih >= 0 && ih < HI && iw >= 0 && iw < WI
                                             ? x[(((size_t)ci * B + n) * DI + id) * HI * WI + (size_t)ih * WI + iw]
                                             : 0.0f;
        }
    }
}
template <MMK_WIN_T>
static inline void mmk_im2col_launch(cudaStream_t st, float *panel, const float *x, int B, int j0, int nb) {
    unsigned gx = (unsigned)((nb + MMK_THREADS - 1) / MMK_THREADS);
    const dim3 grid(gx, mmk_grid_y(CI * KD * KH * KW));
    mmk_im2col<CI, DI, HI, WI, KD, KH, KW, SD, SH, SW, PD, PH, PW, DO, HO, WO><<<grid, MMK_THREADS, 0, st>>>(panel, x, B, j0, nb);
}

/* dX from the unrolled gradient panel[k][jj] (columns j0..j0+nb of whole
 * examples n0..): each input element gathers the entries that came from
 * it — no atomics, a fixed order. Grid: x over the ns examples' input
 * positions, y over the input channels (strided past 65535). */
template <MMK_WIN_T>
__global__ static void mmk_col2im(float *dx, const float *panel, int B, int n0, int ns) {
    constexpr int Q = DO * HO * WO, QI = DI * HI * WI;
    const int nb = ns * Q;
    for (int ci = blockIdx.y; ci < CI; ci += gridDim.y) {
        for (int r = blockIdx.x * blockDim.x + threadIdx.x; r < ns * QI; r += gridDim.x * blockDim.x) {
            const int nn = r / QI, p = r % QI;
            const int id = p / (HI * WI), ih = (p / WI) % HI, iw = p % WI;
            float s = 0.0f;
            for (int kd = 0; kd < KD; kd++) {
                const int a = id + PD - kd;
                if (a < 0 || a % SD) continue;
                const int od = a / SD;
                if (od >= DO) continue;
                for (int kh = 0; kh < KH; kh++) {
                    const int b = ih + PH - kh;
                    if (b < 0 || b % SH) continue;
                    const int oh = b / SH;
                    if (oh >= HO) continue;
                    for (int kw = 0; kw < KW; kw++) {
                        const int c = iw + PW - kw;
                        if (c < 0 || c % SW) continue;
                        const int ow = c / SW;
                        if (ow >= WO) continue;
                        const int k = ((ci * KD + kd) * KH + kh) * KW + kw;
                        s += panel[(size_t)k * nb + (size_t)nn * Q + (od * HO + oh) * WO + ow];
                    }
                }
            }
            dx[((size_t)ci * B + n0 + nn) * QI + p] = s;
        }
    }
}
template <MMK_WIN_T>
static inline void mmk_col2im_launch(cudaStream_t st, float *dx, const float *panel, int B, int n0, int ns) {
    unsigned gx = (unsigned)(((size_t)ns * DI * HI * WI + MMK_THREADS - 1) / MMK_THREADS);
    const dim3 grid(gx, mmk_grid_y(CI));
    mmk_col2im<CI, DI, HI, WI, KD, KH, KW, SD, SH, SW, PD, PH, PW, DO, HO, WO><<<grid, MMK_THREADS, 0, st>>>(dx, panel, B, n0, ns);
}

/* A 64x64 tiled SGEMM for when cuBLAS is switched off (mmc build
 * --target cuda --gemm tiled): row-major
 * C[M][N] = beta*C + op(A)[M][K] . op(B)[K][N]. */
__global__ static void mmk_sgemm_tiled(int M, int N, int K, const float *A, int lda, int ta, const float *Bm, int ldb, int tb,
                                       float *C, int ldc, float beta) {
    __shared__ float As[16][64], Bs[16][64];
    int tx = threadIdx.x % 16, ty = threadIdx.x / 16;   /* 256 threads: 16 x 16, each 4x4 outputs */
    int i0 = blockIdx.y * 64, j0 = blockIdx.x * 64;
    float acc[4][4] = {{0}};
    for (int k0 = 0; k0 < K; k0 += 16) {
        for (int l = threadIdx.x; l < 16 * 64; l += 256) {
            int kk = l / 64, ii = l % 64;
            int i = i0 + ii, k = k0 + kk, j = j0 + ii;
            As[kk][ii] = i < M && k < K ? (ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]) : 0.0f;
            Bs[kk][ii] = j < N && k < K ? (tb ? Bm[(size_t)j * ldb + k] : Bm[(size_t)k * ldb + j]) : 0.0f;
        }
        __syncthreads();
        for (int kk = 0; kk < 16; kk++)
            for (int a = 0; a < 4; a++)
                for (int b = 0; b < 4; b++) acc[a][b] += As[kk][ty * 4 + a] * Bs[kk][tx * 4 + b];
        __syncthreads();
    }
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++) {
            int i = i0 + ty * 4 + a, j = j0 + tx * 4 + b;
            if (i < M && j < N) C[(size_t)i * ldc + j] = acc[a][b] + (beta != 0.0f ? beta * C[(size_t)i * ldc + j] : 0.0f);
        }
}

/* Row-major GEMM, C = beta*C + op(A) . op(B), by cuBLAS (column-major: it
 * computes C^T = op(B)^T op(A)^T) or the tiled kernel. */
static inline void mmk_gemm(rt_exec *e, int M, int N, int K, const float *A, int lda, int ta, const float *Bm, int ldb, int tb,
                            float *C, int ldc, float beta) {
    if (M <= 0 || N <= 0) return;
    if (e->impl->use_cublas) {
        const float one = 1.0f;
        CUBLAS_CHECK(cublasSgemm(e->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &one, Bm, ldb,
                                 A, lda, &beta, C, ldc));
    } else {
        dim3 grid((N + 63) / 64, (M + 63) / 64);
        mmk_sgemm_tiled<<<grid, 256, 0, e->stream>>>(M, N, K, A, lda, ta, Bm, ldb, tb, C, ldc, beta);
    }
}

#define MMK_CHECK_LAUNCH() CUDA_CHECK(cudaPeekAtLastError())

#ifdef MMNET_CUDNN
#include "mmrt_cudnn.h" /* convolutions by cuDNN (mmc build --target cuda --conv cudnn) */
#endif

#endif
