/* mmrt_cudnn.h — what generated CUDA code built with --conv cudnn
 * includes besides mmrt_cuda.h: the cuDNN glue of its convolutions (plans
 * per batch size, algorithm choice, NCHW copies where cuDNN needs them).
 *
 * Part of mmrt_cuda.h, which includes it when MMNET_CUDNN is defined (the
 * generated code defines it first): it uses that header's rt_exec, checked
 * calls and launch helpers. The runtime library itself does not link
 * cuDNN; these functions are compiled into the generated program. */
#ifndef MMRT_CUDNN_H
#define MMRT_CUDNN_H

#ifndef MMRT_CUDA_H
#error "mmrt_cudnn.h is part of mmrt_cuda.h: include that instead (with MMNET_CUDNN defined)"
#endif

/* ---- convolutions by cuDNN (mmc build --target cuda --conv cudnn) ----------
 * Each convolution kernel has a mmk_dnn_conv: its shape, and per batch size
 * a plan (descriptors, algorithm, workspace) made before the step is run or
 * captured (rt_cuda_impl.plan), never inside a capture.
 *
 * The tensors are described to cuDNN with the channel-major strides of the
 * back end (N stride Q, C stride N*Q). When cuDNN has no algorithm for
 * those strides, the plan copies the operands to NCHW order and back
 * (mmk_swap01) around the call. The algorithm is the first of cuDNN's
 * heuristics that is deterministic, fits the workspace and runs (a trial
 * on scratch memory), so every run of the program makes the same choice;
 * with MMNET_CUDNN_FIND=1, the fastest such that cuDNN measures (which may
 * differ between runs). Arithmetic is float32 FMA unless MMNET_TF32 is set
 * (cuDNN may then use TF32 tensor cores); FMA algorithms include FFT and
 * Winograd ones, whose rounding differs from a direct sum's.
 * MMNET_CUDNN_LAYOUT=nchw forces the copies; MMNET_CUDNN_WORKSPACE_MB sets
 * the workspace (default 256). */
#include <cudnn.h>

/* dst[b][a][q] = src[a][b][q]: between the channel-major layout [C][N][Q]
 * and cuDNN's NCHW [N][C][Q], both ways. Grid: x over q, y over (a, b). */
__global__ static void mmk_swap01(float *dst, const float *src, int A, int Bn, int Q) {
    for (long r = blockIdx.y; r < (long)A * Bn; r += gridDim.y) {
        const int a = (int)(r / Bn), b = (int)(r % Bn);
        const float *s = src + (size_t)r * Q;
        float *d = dst + ((size_t)b * A + a) * Q;
        for (int q = blockIdx.x * blockDim.x + threadIdx.x; q < Q; q += gridDim.x * blockDim.x) d[q] = s[q];
    }
}
static inline void mmk_swap01_launch(cudaStream_t st, float *dst, const float *src, int A, int Bn, int Q) {
    const unsigned gx = (unsigned)((Q + MMK_THREADS - 1) / MMK_THREADS);
    mmk_swap01<<<dim3(gx < 64 ? gx : 64, mmk_grid_y((long)A * Bn)), MMK_THREADS, 0, st>>>(dst, src, A, Bn, Q);
    MMK_CHECK_LAUNCH();
}

#define CUDNN_CHECK(call) rt_cudnn_check((call), #call, __FILE__, __LINE__)
static inline void rt_cudnn_check(cudnnStatus_t st, const char *what, const char *file, int line) {
    if (st != CUDNN_STATUS_SUCCESS) {
        fprintf(stderr, "%s: cuDNN error at %s:%d: %s: %s\n", rt_prog, file, line, what, cudnnGetErrorString(st));
        exit(1);
    }
}

enum { MMK_DNN_FWD, MMK_DNN_DX, MMK_DNN_DW };
enum { MMK_DNN_PLANS = 8 };

typedef struct {
    int B;                     /* 0: unused */
    unsigned long used;        /* when last used, for replacing the least recently used */
    int nchw;                  /* operands copied to NCHW order around the call */
    int algo;
    size_t ws;
    cudnnTensorDescriptor_t x, y;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t c;
} mmk_dnn_plan;

typedef struct {
    int op, nsp;               /* MMK_DNN_*, 2 or 3 spatial dimensions */
    int ci, co, in[3], k[3], s[3], p[3], out[3];
    mmk_dnn_plan plan[MMK_DNN_PLANS];
    int next;
} mmk_dnn_conv;

static void mmk_dnn_free(rt_exec *e) {
    cudnnDestroy((cudnnHandle_t)e->dnn);
    cudaFree(e->dnn_ws);
    cudaFree(e->dnn_buf);
    e->dnn = NULL;
}

/* The environment's settings (docs/training.md), checked once. */
typedef struct {
    int find, nchw, tf32;
    size_t ws_bytes;
} mmk_dnn_env;
static inline const mmk_dnn_env *mmk_dnn_settings(void) {
    static mmk_dnn_env env;
    static int read;
    if (!read) {
        const char *f = getenv("MMNET_CUDNN_FIND"), *l = getenv("MMNET_CUDNN_LAYOUT"), *mb = getenv("MMNET_CUDNN_WORKSPACE_MB");
        if (f && *f && strcmp(f, "0") != 0 && strcmp(f, "1") != 0) rt_die("MMNET_CUDNN_FIND is '%s'; it takes 0 or 1", f);
        if (l && *l && strcmp(l, "nchw") != 0 && strcmp(l, "auto") != 0) rt_die("MMNET_CUDNN_LAYOUT is '%s'; it takes nchw or auto", l);
        char *end = NULL;
        long v = mb && *mb ? strtol(mb, &end, 10) : 256;
        if (mb && *mb && (*end || v < 0 || v > (1L << 20)))
            rt_die("MMNET_CUDNN_WORKSPACE_MB is '%s'; it takes a number of megabytes (0 to 1048576)", mb);
        env.find = f && strcmp(f, "1") == 0;
        env.nchw = l && strcmp(l, "nchw") == 0;
        env.tf32 = getenv("MMNET_TF32") != NULL; /* as cuBLAS (rt_cuda.cu) */
        env.ws_bytes = (size_t)v << 20;
        read = 1;
    }
    return &env;
}

static inline cudnnHandle_t mmk_dnn_handle(rt_exec *e) {
    if (!e->dnn) {
        cudnnHandle_t h;
        CUDNN_CHECK(cudnnCreate(&h));
        CUDNN_CHECK(cudnnSetStream(h, e->stream));
        e->dnn = h;
        e->dnn_free = mmk_dnn_free;
        e->dnn_ws_bytes = mmk_dnn_settings()->ws_bytes;
        if (e->dnn_ws_bytes) CUDA_CHECK(cudaMalloc(&e->dnn_ws, e->dnn_ws_bytes));
    }
    return (cudnnHandle_t)e->dnn;
}

static inline const char *mmk_dnn_what(const mmk_dnn_conv *c) {
    static char s[192];
    static const char *const ops[] = {"forward", "input gradient", "weight gradient"};
    const int o = 3 - c->nsp;
    if (c->nsp == 3)
        snprintf(s, sizeof s, "%s of the %dx%dx%d convolution %d->%d channels, stride %dx%dx%d, on %dx%dx%d", ops[c->op], c->k[0],
                 c->k[1], c->k[2], c->ci, c->co, c->s[0], c->s[1], c->s[2], c->in[0], c->in[1], c->in[2]);
    else
        snprintf(s, sizeof s, "%s of the %dx%d convolution %d->%d channels, stride %dx%d, on %dx%d", ops[c->op], c->k[o], c->k[o + 1],
                 c->ci, c->co, c->s[o], c->s[o + 1], c->in[o], c->in[o + 1]);
    return s;
}

/* A tensor [B][C][spatial] as cuDNN sees it: channel-major or NCHW strides. */
static inline cudnnStatus_t mmk_dnn_tensor(cudnnTensorDescriptor_t d, const mmk_dnn_conv *c, int B, int C, const int *sp, int nchw) {
    int nd = c->nsp + 2, dims[5], strides[5];
    const int *s = sp + 3 - c->nsp;
    const long Q = (long)sp[0] * sp[1] * sp[2];
    dims[0] = B;
    dims[1] = C;
    for (int i = 0; i < c->nsp; i++) dims[2 + i] = s[i];
    strides[nd - 1] = 1;
    for (int i = nd - 2; i >= 2; i--) strides[i] = strides[i + 1] * dims[i + 1];
    strides[0] = (int)(nchw ? C * Q : Q);
    strides[1] = (int)(nchw ? Q : (long)B * Q);
    return cudnnSetTensorNdDescriptor(d, CUDNN_DATA_FLOAT, nd, dims, strides);
}

/* One call of the convolution with the plan's descriptors: forward
 * (a = x, b = w) -> y; input gradient (a = dy, b = w) -> dx; weight
 * gradient (a = dy, b = x) -> dw. */
static inline cudnnStatus_t mmk_dnn_call(rt_exec *e, const mmk_dnn_conv *c, const mmk_dnn_plan *pl, int algo, size_t ws, float *out,
                                         const float *a, const float *b) {
    cudnnHandle_t h = (cudnnHandle_t)e->dnn;
    const float one = 1.0f, zero = 0.0f;
    if (c->op == MMK_DNN_FWD)
        return cudnnConvolutionForward(h, &one, pl->x, a, pl->w, b, pl->c, (cudnnConvolutionFwdAlgo_t)algo, e->dnn_ws, ws, &zero, pl->y,
                                       out);
    if (c->op == MMK_DNN_DX)
        return cudnnConvolutionBackwardData(h, &one, pl->w, b, pl->y, a, pl->c, (cudnnConvolutionBwdDataAlgo_t)algo, e->dnn_ws, ws,
                                            &zero, pl->x, out);
    return cudnnConvolutionBackwardFilter(h, &one, pl->x, b, pl->y, a, pl->c, (cudnnConvolutionBwdFilterAlgo_t)algo, e->dnn_ws, ws,
                                          &zero, pl->w, out);
}

/* The candidates cuDNN offers for the plan's descriptors, best first: its
 * heuristics' order, or with MMNET_CUDNN_FIND=1 its measured times. */
typedef struct {
    int algo;
    cudnnStatus_t status;
    cudnnDeterminism_t determinism;
    cudnnMathType_t math;
} mmk_dnn_cand;
#define MMK_DNN_COPY(r, n, out)                                                  \
    for (int i = 0; i < n; i++) out[i] = {(int)r[i].algo, r[i].status, r[i].determinism, r[i].mathType};
static inline cudnnStatus_t mmk_dnn_candidates(rt_exec *e, const mmk_dnn_conv *c, const mmk_dnn_plan *pl, mmk_dnn_cand *out, int *n) {
    enum { N = 16 };
    cudnnHandle_t h = (cudnnHandle_t)e->dnn;
    const int find = mmk_dnn_settings()->find;
    cudnnStatus_t st;
    *n = 0;
    if (c->op == MMK_DNN_FWD) {
        cudnnConvolutionFwdAlgoPerf_t r[N];
        st = find ? cudnnFindConvolutionForwardAlgorithm(h, pl->x, pl->w, pl->c, pl->y, N, n, r)
                  : cudnnGetConvolutionForwardAlgorithm_v7(h, pl->x, pl->w, pl->c, pl->y, N, n, r);
        MMK_DNN_COPY(r, *n, out)
    } else if (c->op == MMK_DNN_DX) {
        cudnnConvolutionBwdDataAlgoPerf_t r[N];
        st = find ? cudnnFindConvolutionBackwardDataAlgorithm(h, pl->w, pl->y, pl->c, pl->x, N, n, r)
                  : cudnnGetConvolutionBackwardDataAlgorithm_v7(h, pl->w, pl->y, pl->c, pl->x, N, n, r);
        MMK_DNN_COPY(r, *n, out)
    } else {
        cudnnConvolutionBwdFilterAlgoPerf_t r[N];
        st = find ? cudnnFindConvolutionBackwardFilterAlgorithm(h, pl->x, pl->y, pl->c, pl->w, N, n, r)
                  : cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, pl->x, pl->y, pl->c, pl->w, N, n, r);
        MMK_DNN_COPY(r, *n, out)
    }
    if (st != CUDNN_STATUS_SUCCESS) *n = 0;
    return st;
}
#undef MMK_DNN_COPY

static inline cudnnStatus_t mmk_dnn_workspace(rt_exec *e, const mmk_dnn_conv *c, const mmk_dnn_plan *pl, int algo, size_t *ws) {
    cudnnHandle_t h = (cudnnHandle_t)e->dnn;
    if (c->op == MMK_DNN_FWD)
        return cudnnGetConvolutionForwardWorkspaceSize(h, pl->x, pl->w, pl->c, pl->y, (cudnnConvolutionFwdAlgo_t)algo, ws);
    if (c->op == MMK_DNN_DX)
        return cudnnGetConvolutionBackwardDataWorkspaceSize(h, pl->w, pl->y, pl->c, pl->x, (cudnnConvolutionBwdDataAlgo_t)algo, ws);
    return cudnnGetConvolutionBackwardFilterWorkspaceSize(h, pl->x, pl->y, pl->c, pl->w, (cudnnConvolutionBwdFilterAlgo_t)algo, ws);
}

/* One trial call on scratch memory, outside any capture: cuDNN loads or
 * builds the algorithm's kernels here, not in the captured step, and an
 * algorithm it offered but cannot run for these strides is passed over. */
static inline int mmk_dnn_trial(rt_exec *e, const mmk_dnn_conv *c, const mmk_dnn_plan *pl, int algo, size_t ws, int B) {
    const size_t QI = (size_t)c->in[0] * c->in[1] * c->in[2], Q = (size_t)c->out[0] * c->out[1] * c->out[2];
    const size_t nx = (size_t)c->ci * B * QI, ny = (size_t)c->co * B * Q, nw = (size_t)c->co * c->ci * c->k[0] * c->k[1] * c->k[2];
    const size_t ox = 0, oy = (nx + 63) / 64 * 64, ow = oy + (ny + 63) / 64 * 64;
    float *t = NULL;
    if (cudaMalloc((void **)&t, sizeof(float) * (ow + nw)) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    cudnnStatus_t st = c->op == MMK_DNN_FWD ? mmk_dnn_call(e, c, pl, algo, ws, t + oy, t + ox, t + ow)
                       : c->op == MMK_DNN_DX ? mmk_dnn_call(e, c, pl, algo, ws, t + ox, t + oy, t + ow)
                                             : mmk_dnn_call(e, c, pl, algo, ws, t + ow, t + oy, t + ox);
    const cudaError_t err = cudaStreamSynchronize(e->stream);
    (void)cudaGetLastError();
    cudaFree(t);
    return st == CUDNN_STATUS_SUCCESS && err == cudaSuccess;
}

/* The algorithm for the plan's descriptors, or -1: the first candidate
 * that is deterministic (a step gives the same result every time), uses
 * float32 FMA arithmetic unless MMNET_TF32 is set, fits the workspace and,
 * from the heuristics, runs. */
static inline int mmk_dnn_choose(rt_exec *e, const mmk_dnn_conv *c, mmk_dnn_plan *pl, int B, size_t *ws, cudnnStatus_t *why) {
    const int tf32 = mmk_dnn_settings()->tf32, find = mmk_dnn_settings()->find;
    mmk_dnn_cand r[16];
    int n = 0, algo = -1;
    *why = mmk_dnn_candidates(e, c, pl, r, &n);
    for (int i = 0; i < n && algo < 0; i++) {
        if (r[i].status != CUDNN_STATUS_SUCCESS || r[i].determinism != CUDNN_DETERMINISTIC) continue;
        if (tf32 ? r[i].math == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION : r[i].math != CUDNN_FMA_MATH && r[i].math != CUDNN_DEFAULT_MATH)
            continue;
        CUDNN_CHECK(cudnnSetConvolutionMathType(pl->c, tf32 ? r[i].math : CUDNN_FMA_MATH));
        if (mmk_dnn_workspace(e, c, pl, r[i].algo, ws) != CUDNN_STATUS_SUCCESS || *ws > e->dnn_ws_bytes) continue;
        if (!find && !mmk_dnn_trial(e, c, pl, r[i].algo, *ws, B)) continue;
        algo = r[i].algo;
    }
    /* A trial of an algorithm cuDNN could not run may leave a launch error
     * in the runtime's last-error slot, which the next MMK_CHECK_LAUNCH
     * would blame on one of our kernels. */
    (void)cudaGetLastError();
    return algo;
}

static inline void mmk_dnn_buffers(rt_exec *e, const mmk_dnn_plan *pl) {
    mmk_dnn_handle(e);
    if (pl->nchw && !e->dnn_buf)
        CUDA_CHECK(cudaMalloc((void **)&e->dnn_buf, sizeof(float) * (e->impl->dnn_floats * (size_t)e->max_batch + 64)));
}

/* The plan for batch size B, made on first use, outside stream capture
 * (the runtime plans each variant before its step). The plans are shared
 * by every rt_exec of the program (one device); the handle, workspace and
 * copy buffer are each rt_exec's own. */
static inline mmk_dnn_plan *mmk_dnn_prepare(rt_exec *e, mmk_dnn_conv *c, int B) {
    static unsigned long clock;
    mmk_dnn_plan *pl = NULL;
    for (int i = 0; i < MMK_DNN_PLANS; i++)
        if (c->plan[i].B == B) pl = &c->plan[i];
    if (pl) {
        pl->used = ++clock;
        mmk_dnn_buffers(e, pl);
        return pl;
    }
    cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    CUDA_CHECK(cudaStreamIsCapturing(e->stream, &cs));
    if (cs != cudaStreamCaptureStatusNone)
        rt_die("internal error: a cuDNN plan (batch %d) was needed inside a CUDA graph capture; the variant was not planned", B);
    pl = &c->plan[0]; /* the least recently used */
    for (int i = 1; i < MMK_DNN_PLANS; i++)
        if (c->plan[i].used < pl->used) pl = &c->plan[i];
    mmk_dnn_handle(e);
    if (!pl->c) {
        CUDNN_CHECK(cudnnCreateTensorDescriptor(&pl->x));
        CUDNN_CHECK(cudnnCreateTensorDescriptor(&pl->y));
        CUDNN_CHECK(cudnnCreateFilterDescriptor(&pl->w));
        CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&pl->c));
    }
    pl->B = 0;
    const int *k = c->k + 3 - c->nsp, *s = c->s + 3 - c->nsp, *p = c->p + 3 - c->nsp;
    int wdims[5] = {c->co, c->ci}, dil[3] = {1, 1, 1};
    for (int i = 0; i < c->nsp; i++) wdims[2 + i] = k[i];
    CUDNN_CHECK(cudnnSetFilterNdDescriptor(pl->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, c->nsp + 2, wdims));
    CUDNN_CHECK(cudnnSetConvolutionNdDescriptor(pl->c, c->nsp, p, s, dil, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    CUDNN_CHECK(cudnnSetConvolutionMathType(pl->c, mmk_dnn_settings()->tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH));
    cudnnStatus_t why = CUDNN_STATUS_SUCCESS;
    for (int nchw = mmk_dnn_settings()->nchw; nchw < 2; nchw++) {
        if (mmk_dnn_tensor(pl->x, c, B, c->ci, c->in, nchw) != CUDNN_STATUS_SUCCESS ||
            mmk_dnn_tensor(pl->y, c, B, c->co, c->out, nchw) != CUDNN_STATUS_SUCCESS)
            continue;
        size_t ws = 0;
        int algo = mmk_dnn_choose(e, c, pl, B, &ws, &why);
        if (algo < 0) continue;
        pl->B = B;
        pl->used = ++clock;
        pl->nchw = nchw;
        pl->algo = algo;
        pl->ws = ws;
        mmk_dnn_buffers(e, pl);
        if (getenv("MMNET_VERBOSE"))
            fprintf(stderr, "%s: cuDNN: %s, batch %d: algorithm %d, workspace %zu bytes%s\n", rt_prog, mmk_dnn_what(c), B, algo, ws,
                    nchw ? ", operands copied to NCHW order" : "");
        return pl;
    }
    rt_die("cuDNN has no deterministic algorithm within a %zu MB workspace for the %s (batch %d; cuDNN's search said: %s); "
           "set MMNET_CUDNN_WORKSPACE_MB higher or build with --conv gemm",
           e->dnn_ws_bytes >> 20, mmk_dnn_what(c), B, cudnnGetErrorString(why));
}

/* out = the convolution's op on (a, b), as mmk_dnn_call; on NCHW copies
 * when the plan says so (the input side at dnn_buf, the output side after
 * it, 64-float aligned). */
static inline void mmk_dnn_run(rt_exec *e, mmk_dnn_conv *c, int B, float *out, const float *a, const float *b) {
    const mmk_dnn_plan *pl = mmk_dnn_prepare(e, c, B);
    const int QI = c->in[0] * c->in[1] * c->in[2], Q = c->out[0] * c->out[1] * c->out[2];
    if (!pl->nchw) {
        CUDNN_CHECK(mmk_dnn_call(e, c, pl, pl->algo, pl->ws, out, a, b));
        return;
    }
    float *xi = e->dnn_buf, *yo = e->dnn_buf + ((size_t)B * c->ci * QI + 63) / 64 * 64;
    if (c->op == MMK_DNN_FWD) {
        mmk_swap01_launch(e->stream, xi, a, c->ci, B, QI);
        CUDNN_CHECK(mmk_dnn_call(e, c, pl, pl->algo, pl->ws, yo, xi, b));
        mmk_swap01_launch(e->stream, out, yo, B, c->co, Q);
    } else if (c->op == MMK_DNN_DX) {
        mmk_swap01_launch(e->stream, yo, a, c->co, B, Q);
        CUDNN_CHECK(mmk_dnn_call(e, c, pl, pl->algo, pl->ws, xi, yo, b));
        mmk_swap01_launch(e->stream, out, xi, B, c->ci, QI);
    } else {
        mmk_swap01_launch(e->stream, yo, a, c->co, B, Q);
        mmk_swap01_launch(e->stream, xi, b, c->ci, B, QI);
        CUDNN_CHECK(mmk_dnn_call(e, c, pl, pl->algo, pl->ws, out, yo, xi));
    }
}

#endif
