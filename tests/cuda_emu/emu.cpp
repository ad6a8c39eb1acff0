/* emu.cpp — a CPU emulation of the parts of the CUDA runtime, cuBLAS and
 * cuDNN that mmnet's CUDA back end uses, so that tests/gpu_check.c can run
 * the generated CUDA code on a machine without a GPU (CI). It checks the
 * host code's use of the API more strictly than a GPU would, and it runs
 * every kernel, but says nothing about speed; tools/gpu-check.sh on a GPU
 * remains the real check.
 *
 * The generated model.cu, rt_cuda.cu, mmrt_cuda.h and mmrt_cudnn.h are compiled as C++
 * after launches.pl rewrites each kernel<<<...>>>(args) into a closure.
 * Kernels run on the host: thread by thread, or, for kernels that use
 * __syncthreads (listed in threaded_kernel), on real threads with a barrier.
 * Streams execute at once unless capturing; a capture records closures
 * (arguments by value, as CUDA does) that cudaGraphLaunch replays. A
 * stream made with cudaStreamNonBlocking (a copy stream) runs late: its
 * work waits until another stream waits for one of its events, or it is
 * synchronised, so that a step that forgets to wait for a copy reads stale
 * device memory, and a host buffer changed before its copy ran is copied
 * changed: both show as wrong results. Calls
 * that CUDA forbids during a capture, copies outside allocations, cuBLAS
 * captured without a workspace, and cuDNN misuse (undersized workspace,
 * non-deterministic algorithms, tensors outside device memory, searches in
 * a capture) abort with a message. The cuDNN mock computes convolutions
 * directly in double; EMU_CUDNN_PACKED_ONLY=1 makes it refuse strided
 * (channel-major) tensors, EMU_CUDNN_FAIL1=1 makes its algorithm 1 fail
 * at run time, EMU_CUDNN_NONE=1 offers nothing. */
#include <barrier>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cublas_v2.h"

thread_local emu_uint3 emu_tidx, emu_bidx;
dim3 blockDim, gridDim;

struct emu_stream {
    std::vector<std::function<void()>> *cap = nullptr;
    bool late = false;                                  /* cudaStreamNonBlocking: work runs when waited for */
    std::vector<std::function<void()>> pending;
};
struct emu_graph { std::vector<std::function<void()>> ops; };
struct emu_event { double t = 0; bool rec = false; cudaStream_t late = nullptr; /* recorded on this late stream, not yet run */ };
struct emu_blas { cudaStream_t s = nullptr; void *ws = nullptr; };

static int capturing_count;
static void die(const char *what) { fprintf(stderr, "EMU ERROR: %s\n", what); abort(); }
static void no_capture(const char *what) {
    if (capturing_count) { fprintf(stderr, "EMU ERROR: %s called while a stream is being captured (illegal in ThreadLocal/Global capture mode)\n", what); abort(); }
}

/* allocations */
struct Alloc { size_t n; int kind; }; /* 0 device, 1 pinned host */
static std::map<const char *, Alloc> &allocs = *new std::map<const char *, Alloc>; /* outlives the exit report */
static int kind_of(const void *p, size_t n) { /* -1 unknown (pageable host) */
    const char *c = (const char *)p;
    auto it = allocs.upper_bound(c);
    if (it == allocs.begin()) return -1;
    --it;
    if (c >= it->first && c + n <= it->first + it->second.n) return it->second.kind;
    if (c >= it->first && c < it->first + it->second.n) { fprintf(stderr, "EMU ERROR: copy of %zu bytes at offset %zu overruns an allocation of %zu bytes\n", n, (size_t)(c - it->first), it->second.n); abort(); }
    return -1;
}
static void check_copy(void *d, const void *s, size_t n, cudaMemcpyKind k, bool async_capture) {
    if (!n) return;
    int kd = kind_of(d, n), ks = kind_of(s, n);
    bool dd = k == cudaMemcpyHostToDevice || k == cudaMemcpyDeviceToDevice, sd = k == cudaMemcpyDeviceToHost || k == cudaMemcpyDeviceToDevice;
    char msg[256];
    if (dd && kd != 0) { snprintf(msg, sizeof msg, "memcpy kind %d: destination %p is not device memory", (int)k, d); die(msg); }
    if (sd && ks != 0) { snprintf(msg, sizeof msg, "memcpy kind %d: source %p is not device memory", (int)k, s); die(msg); }
    if (!dd && kd == 0) die("memcpy: destination is device memory but the kind says host");
    if (!sd && ks == 0) die("memcpy: source is device memory but the kind says host");
    if (async_capture && ((!dd && kd != 1) || (!sd && ks != 1))) die("memcpy from/to pageable host memory captured in a graph");
}

extern "C" {
/* One device, or MMNET_EMU_DEVICES of them (the data-parallel test runs a
 * rank per device); they are all the same host memory. */
cudaError_t cudaGetDeviceCount(int *n) {
    const char *e = getenv("MMNET_EMU_DEVICES");
    *n = e && atoi(e) > 0 ? atoi(e) : 1;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int d) {
    int n;
    cudaGetDeviceCount(&n);
    if (d < 0 || d >= n) die("cudaSetDevice: no such device");
    return cudaSuccess;
}
const char *cudaGetErrorString(cudaError_t) { return "emu error"; }
cudaError_t cudaPeekAtLastError(void) { return cudaSuccess; }
cudaError_t cudaGetLastError(void) { return cudaSuccess; }
cudaError_t cudaMalloc(void **p, size_t n) {
    no_capture("cudaMalloc");
    *p = malloc(n);
    memset(*p, 0xA5, n); /* garbage, as real device memory */
    allocs[(const char *)*p] = {n, 0};
    return cudaSuccess;
}
cudaError_t cudaFree(void *p) {
    no_capture("cudaFree");
    if (!p) return cudaSuccess;
    auto it = allocs.find((const char *)p);
    if (it == allocs.end() || it->second.kind != 0) die("cudaFree of a pointer cudaMalloc did not return");
    allocs.erase(it);
    free(p);
    return cudaSuccess;
}
cudaError_t cudaMallocHost(void **p, size_t n) {
    no_capture("cudaMallocHost");
    *p = malloc(n);
    allocs[(const char *)*p] = {n, 1};
    return cudaSuccess;
}
cudaError_t cudaFreeHost(void *p) {
    no_capture("cudaFreeHost");
    if (!p) return cudaSuccess;
    auto it = allocs.find((const char *)p);
    if (it == allocs.end() || it->second.kind != 1) die("cudaFreeHost of a pointer cudaMallocHost did not return");
    allocs.erase(it);
    free(p);
    return cudaSuccess;
}
cudaError_t cudaMemset(void *p, int v, size_t n) {
    no_capture("cudaMemset (synchronous)");
    if (kind_of(p, n) != 0) die("cudaMemset on non-device memory");
    memset(p, v, n);
    return cudaSuccess;
}
cudaError_t cudaMemcpy(void *d, const void *s, size_t n, cudaMemcpyKind k) {
    no_capture("cudaMemcpy (synchronous)");
    check_copy(d, s, n, k, false);
    memcpy(d, s, n);
    return cudaSuccess;
}
static void enqueue(cudaStream_t st, std::function<void()> f) {
    if (st && st->cap) st->cap->push_back(std::move(f));
    else if (st && st->late) st->pending.push_back(std::move(f));
    else f();
}
} /* extern "C" */
/* For the emulated libraries beside this one (nccl_emu.cpp). */
void emu_enqueue(cudaStream_t st, std::function<void()> f) { enqueue(st, std::move(f)); }
extern "C" {
/* Run a late stream's first n pending operations. */
static void run_late(cudaStream_t st, size_t n) {
    if (n > st->pending.size()) n = st->pending.size();
    for (size_t i = 0; i < n; i++) st->pending[i]();
    st->pending.erase(st->pending.begin(), st->pending.begin() + (long)n);
}
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind k, cudaStream_t st) {
    check_copy(d, s, n, k, st && st->cap);
    enqueue(st, [=]() { memcpy(d, s, n); });
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t st) {
    if (n && kind_of(p, n) != 0) die("cudaMemsetAsync on non-device memory");
    enqueue(st, [=]() { memset(p, v, n); });
    return cudaSuccess;
}
cudaError_t cudaMemcpy2DAsync(void *d, size_t dp, const void *s, size_t sp, size_t w, size_t h, cudaMemcpyKind k, cudaStream_t st) {
    if (w > dp || w > sp) die("cudaMemcpy2DAsync: width larger than a pitch");
    if (h) {
        check_copy(d, s, 0, k, false);
        check_copy((char *)d, (const char *)s, 0, k, false);
        if (kind_of((char *)d + (h - 1) * dp, w) < 0 || kind_of((const char *)s + (h - 1) * sp, w) < 0) die("cudaMemcpy2DAsync: last row outside allocations");
        if (kind_of(d, w) < 0 || kind_of(s, w) < 0) die("cudaMemcpy2DAsync: first row outside allocations");
    }
    enqueue(st, [=]() { for (size_t r = 0; r < h; r++) memcpy((char *)d + r * dp, (const char *)s + r * sp, w); });
    return cudaSuccess;
}
cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus *st) { *st = s && s->cap ? cudaStreamCaptureStatusActive : cudaStreamCaptureStatusNone; return cudaSuccess; }
cudaError_t cudaStreamCreate(cudaStream_t *s) { *s = new emu_stream; return cudaSuccess; }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned int flags) {
    *s = new emu_stream;
    (*s)->late = flags & cudaStreamNonBlocking;
    return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
    if (s && s->cap) die("cudaStreamDestroy of a capturing stream");
    if (s && !s->pending.empty()) die("cudaStreamDestroy of a stream with work not synchronised");
    delete s;
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
    if (s && s->cap) die("cudaStreamSynchronize on a capturing stream");
    no_capture("cudaStreamSynchronize");
    if (s && s->late) run_late(s, s->pending.size());
    return cudaSuccess;
}
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode) {
    if (s->cap) die("nested capture");
    s->cap = new std::vector<std::function<void()>>;
    capturing_count++;
    return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g) {
    if (!s->cap) die("EndCapture without BeginCapture");
    *g = new emu_graph{std::move(*s->cap)};
    delete s->cap;
    s->cap = nullptr;
    capturing_count--;
    return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *e, cudaGraph_t g, unsigned long long) { *e = new emu_graph{g->ops}; return cudaSuccess; }
cudaError_t cudaGraphDestroy(cudaGraph_t g) { delete g; return cudaSuccess; }
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t g) { delete g; return cudaSuccess; }
cudaError_t cudaGraphLaunch(cudaGraphExec_t g, cudaStream_t s) {
    if (s && s->cap) die("graph launch while capturing");
    for (auto &f : g->ops) f();
    return cudaSuccess;
}
static int n_events;
cudaError_t cudaEventCreate(cudaEvent_t *e) { *e = new emu_event; n_events++; return cudaSuccess; }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned int) { return cudaEventCreate(e); }
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned int) {
    if (!e->rec && !e->late) die("cudaStreamWaitEvent on an event never recorded");
    if (s && s->cap && e->late) die("cudaStreamWaitEvent in a capture on an event of another stream (not supported by the emulation)");
    /* The late stream's work up to the event's record. */
    while (e->late && !e->rec && !e->late->pending.empty()) run_late(e->late, 1);
    if (!e->rec) die("cudaStreamWaitEvent: the event's stream lost its work");
    e->late = nullptr;
    return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) { delete e; n_events--; return cudaSuccess; }
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
    e->rec = false;
    e->late = nullptr;
    if (s && s->late && !s->cap) e->late = s;
    enqueue(s, [=]() { e->t = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); e->rec = true; });
    return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) {
    if (!a->rec || !b->rec) die("cudaEventElapsedTime on an event never recorded");
    *ms = (float)((b->t - a->t) * 1e3);
    return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int) { strcpy(p->name, "CPU emulator"); return cudaSuccess; }
} /* extern "C" */

int emu_live_events(void) { return n_events; }
size_t emu_live_allocs(void) { return allocs.size(); }

cublasStatus_t cublasCreate(cublasHandle_t *h) { *h = new emu_blas; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasDestroy(cublasHandle_t h) { delete h; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) { h->s = s; h->ws = nullptr; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetWorkspace(cublasHandle_t h, void *ws, size_t) { h->ws = ws; return CUBLAS_STATUS_SUCCESS; }
int emu_gemms;
cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const float *alpha,
                           const float *A, int lda, const float *B, int ldb, const float *beta, float *C, int ldc) {
    if (m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
    if (lda < (ta == CUBLAS_OP_N ? (m > 1 ? m : 1) : (k > 1 ? k : 1))) { fprintf(stderr, "EMU: cublasSgemm lda %d invalid (m %d k %d ta %d)\n", lda, m, k, ta); return CUBLAS_STATUS_INVALID_VALUE; }
    if (ldb < (tb == CUBLAS_OP_N ? (k > 1 ? k : 1) : (n > 1 ? n : 1))) { fprintf(stderr, "EMU: cublasSgemm ldb %d invalid (k %d n %d tb %d)\n", ldb, k, n, tb); return CUBLAS_STATUS_INVALID_VALUE; }
    if (ldc < (m > 1 ? m : 1)) return CUBLAS_STATUS_INVALID_VALUE;
    if (h->s && h->s->cap && !h->ws) die("cuBLAS call captured without a user workspace");
    float al = *alpha, be = *beta; /* host pointer mode: read at call time */
    emu_gemms++;
    enqueue(h->s, [=]() {
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) {
                double s = 0;
                for (int l = 0; l < k; l++) {
                    float a = ta == CUBLAS_OP_N ? A[i + (size_t)l * lda] : A[l + (size_t)i * lda];
                    float b = tb == CUBLAS_OP_N ? B[l + (size_t)j * ldb] : B[j + (size_t)l * ldb];
                    s += (double)a * b;
                }
                float *c = &C[i + (size_t)j * ldc];
                *c = (float)(al * s + (be != 0.0f ? be * *c : 0.0f));
            }
    });
    return CUBLAS_STATUS_SUCCESS;
}

/* ---- kernels ---- */
static bool sync_allowed;
static std::barrier<> *blk_barrier;
void __syncthreads(void) {
    if (!sync_allowed) die("__syncthreads in a kernel the emulator runs sequentially (add it to the threaded list)");
    blk_barrier->arrive_and_wait();
}

static bool threaded_kernel(const char *name) {
    static const char *const list[] = {"_bn_stats_dev", "_bn_apply_dstats_dev", "_bn_apply_dgamma_dev", "_reduce_ch_dev", "_part", "_gap_dev", "_chscale_dg_dev", "_ce_dev", "update_kernel", "mmk_sgemm_tiled"};
    for (const char *s : list) {
        size_t a = strlen(name), b = strlen(s);
        (void)a; (void)b; if (strstr(name, s)) return true;
    }
    return false;
}

long emu_kernels;
static void run_kernel(dim3 g, dim3 b, const std::function<void()> &body, bool threaded) {
    gridDim = g;
    blockDim = b;
    emu_kernels++;
    unsigned nt = b.x * b.y * b.z;
    if (nt > 1024 || g.x == 0 || g.y == 0 || g.z == 0 || g.y > 65535 || g.z > 65535) die("invalid launch configuration");
    if (!threaded) {
        for (unsigned bz = 0; bz < g.z; bz++)
            for (unsigned by = 0; by < g.y; by++)
                for (unsigned bx = 0; bx < g.x; bx++) {
                    emu_bidx = {bx, by, bz};
                    for (unsigned t = 0; t < nt; t++) {
                        emu_tidx = {t % b.x, (t / b.x) % b.y, t / (b.x * b.y)};
                        body();
                    }
                }
        return;
    }
    /* One real thread per GPU thread for the whole grid: the blocks run one
     * after another, a barrier between them (so __shared__ data, static
     * here, is one block's at a time). */
    std::barrier<> bar((ptrdiff_t)nt);
    blk_barrier = &bar;
    sync_allowed = true;
    std::vector<std::thread> th;
    th.reserve(nt);
    for (unsigned t = 0; t < nt; t++)
        th.emplace_back([&, t]() {
            emu_tidx = {t % b.x, (t / b.x) % b.y, t / (b.x * b.y)};
            for (unsigned bz = 0; bz < g.z; bz++)
                for (unsigned by = 0; by < g.y; by++)
                    for (unsigned bx = 0; bx < g.x; bx++) {
                        emu_bidx = {bx, by, bz};
                        body();
                        bar.arrive_and_wait();
                    }
        });
    for (auto &x : th) x.join();
    sync_allowed = false;
}

void emu_launch(EmuCfg c, std::function<void()> body, const char *name) {
    bool thr = threaded_kernel(name);
    dim3 g = c.g, b = c.b;
    enqueue(c.s, [=]() { run_kernel(g, b, body, thr); });
}
/* Leaks, at exit: a program that ends normally frees what it allocated. */
__attribute__((destructor)) static void emu_report(void) {
    if (!n_events && allocs.empty()) return;
    fprintf(stderr, "EMU at exit: %d CUDA events never destroyed, %zu device/pinned allocations never freed\n", n_events, allocs.size());
}

/* ---- cuDNN (legacy convolution API) ---- */
#include "cudnn.h"
struct emu_dnn { cudaStream_t s = nullptr; };
struct emu_tdesc { int nd = 0, dims[8] = {0}, strides[8] = {0}; bool filter = false; };
struct emu_cdesc { int n = 0, pad[3], str[3], dil[3]; int mode; cudnnMathType_t math = CUDNN_DEFAULT_MATH; };
int emu_dnn_calls, emu_dnn_plans;
extern "C" {
const char *cudnnGetErrorString(cudnnStatus_t s) { return s == 0 ? "SUCCESS" : s == 2000 ? "BAD_PARAM" : s == 3000 ? "NOT_SUPPORTED" : "EMU"; }
cudnnStatus_t cudnnCreate(cudnnHandle_t *h) { no_capture("cudnnCreate"); *h = new emu_dnn; return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnDestroy(cudnnHandle_t h) { delete h; return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnSetStream(cudnnHandle_t h, cudaStream_t s) { h->s = s; return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t *d) { *d = new emu_tdesc; return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t *d) { *d = new emu_tdesc; (*d)->filter = true; return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t *d) { *d = new emu_cdesc; return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnSetTensorNdDescriptor(cudnnTensorDescriptor_t d, cudnnDataType_t t, int nd, const int *dims, const int *st) {
    if (t != CUDNN_DATA_FLOAT || nd < 4 || nd > 5) return CUDNN_STATUS_BAD_PARAM;
    d->nd = nd;
    for (int i = 0; i < nd; i++) { if (dims[i] <= 0 || st[i] <= 0) return CUDNN_STATUS_BAD_PARAM; d->dims[i] = dims[i]; d->strides[i] = st[i]; }
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetFilterNdDescriptor(cudnnFilterDescriptor_t d, cudnnDataType_t t, cudnnTensorFormat_t f, int nd, const int *dims) {
    if (t != CUDNN_DATA_FLOAT || f != CUDNN_TENSOR_NCHW || nd < 4 || nd > 5) return CUDNN_STATUS_BAD_PARAM;
    d->nd = nd;
    int s = 1;
    for (int i = nd - 1; i >= 0; i--) { d->dims[i] = dims[i]; d->strides[i] = s; s *= dims[i]; }
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionNdDescriptor(cudnnConvolutionDescriptor_t c, int n, const int *p, const int *s, const int *dl, cudnnConvolutionMode_t m, cudnnDataType_t t) {
    if (n < 2 || n > 3 || t != CUDNN_DATA_FLOAT) return CUDNN_STATUS_BAD_PARAM;
    c->n = n; c->mode = m;
    for (int i = 0; i < n; i++) { c->pad[i] = p[i]; c->str[i] = s[i]; c->dil[i] = dl[i]; if (s[i] < 1 || dl[i] != 1 || p[i] < 0) return CUDNN_STATUS_BAD_PARAM; }
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t c, cudnnMathType_t m) { c->math = m; return CUDNN_STATUS_SUCCESS; }
}
static bool packed(const emu_tdesc *t) {
    long s = 1;
    for (int i = t->nd - 1; i >= 0; i--) { if (t->strides[i] != s) return false; s *= t->dims[i]; }
    return true;
}
/* The shapes agree: x [N][C][in], w [K][C][k], y [N][K][out]. */
static cudnnStatus_t check_shapes(const emu_tdesc *x, const emu_tdesc *w, const emu_cdesc *c, const emu_tdesc *y) {
    if (!x->nd || !w->nd || !y->nd || !c->n) die("cuDNN: descriptor used before it was set");
    if (x->nd != w->nd || y->nd != x->nd || c->n != x->nd - 2) return CUDNN_STATUS_BAD_PARAM;
    if (c->mode != CUDNN_CROSS_CORRELATION) die("cuDNN: mmnet's convolutions are cross-correlations");
    if (x->dims[0] != y->dims[0] || x->dims[1] != w->dims[1] || y->dims[1] != w->dims[0]) return CUDNN_STATUS_BAD_PARAM;
    for (int i = 0; i < c->n; i++)
        if (y->dims[2 + i] != (x->dims[2 + i] + 2 * c->pad[i] - w->dims[2 + i]) / c->str[i] + 1) return CUDNN_STATUS_BAD_PARAM;
    if (getenv("EMU_CUDNN_PACKED_ONLY") && (!packed(x) || !packed(y))) return CUDNN_STATUS_NOT_SUPPORTED;
    if (getenv("EMU_CUDNN_NONE")) return CUDNN_STATUS_NOT_SUPPORTED;
    return CUDNN_STATUS_SUCCESS;
}
/* Offered algorithms: 7 (non-deterministic, must be skipped), 1 (deterministic, a 1 MB workspace), 0 (none). */
static cudnnStatus_t offer(const emu_tdesc *x, const emu_tdesc *w, const emu_cdesc *c, const emu_tdesc *y, int req, int *n, emu_perf *r) {
    no_capture("cudnnFind/Get algorithm");
    emu_dnn_plans++;
    cudnnStatus_t st = check_shapes(x, w, c, y);
    *n = 0;
    if (st) return st;
    if (c->math != CUDNN_FMA_MATH && !getenv("MMNET_TF32")) die("cuDNN: float32 (FMA) math expected without MMNET_TF32");
    emu_perf a[3] = {{7, CUDNN_STATUS_SUCCESS, 0.1f, 0, CUDNN_NON_DETERMINISTIC, c->math},
                     {1, CUDNN_STATUS_SUCCESS, 0.2f, getenv("EMU_CUDNN_BIGWS") ? (size_t)1 << 40 : (size_t)1 << 20, CUDNN_DETERMINISTIC, c->math},
                     {0, CUDNN_STATUS_SUCCESS, 0.3f, 0, CUDNN_DETERMINISTIC, c->math}};
    for (int i = 0; i < 3 && i < req; i++) r[(*n)++] = a[i];
    return CUDNN_STATUS_SUCCESS;
}
static size_t ws_of(int algo) { return algo == 1 ? (getenv("EMU_CUDNN_BIGWS") ? (size_t)1 << 40 : (size_t)1 << 20) : 0; }
extern "C" {
cudnnStatus_t cudnnFindConvolutionForwardAlgorithm(cudnnHandle_t, cudnnTensorDescriptor_t x, cudnnFilterDescriptor_t w, cudnnConvolutionDescriptor_t c, cudnnTensorDescriptor_t y, int q, int *n, emu_perf *r) { return offer(x, w, c, y, q, n, r); }
cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t, cudnnTensorDescriptor_t x, cudnnFilterDescriptor_t w, cudnnConvolutionDescriptor_t c, cudnnTensorDescriptor_t y, int q, int *n, emu_perf *r) { return offer(x, w, c, y, q, n, r); }
cudnnStatus_t cudnnFindConvolutionBackwardDataAlgorithm(cudnnHandle_t, cudnnFilterDescriptor_t w, cudnnTensorDescriptor_t dy, cudnnConvolutionDescriptor_t c, cudnnTensorDescriptor_t dx, int q, int *n, emu_perf *r) { return offer(dx, w, c, dy, q, n, r); }
cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnnHandle_t, cudnnFilterDescriptor_t w, cudnnTensorDescriptor_t dy, cudnnConvolutionDescriptor_t c, cudnnTensorDescriptor_t dx, int q, int *n, emu_perf *r) { return offer(dx, w, c, dy, q, n, r); }
cudnnStatus_t cudnnFindConvolutionBackwardFilterAlgorithm(cudnnHandle_t, cudnnTensorDescriptor_t x, cudnnTensorDescriptor_t dy, cudnnConvolutionDescriptor_t c, cudnnFilterDescriptor_t dw, int q, int *n, emu_perf *r) { return offer(x, dw, c, dy, q, n, r); }
cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnnHandle_t, cudnnTensorDescriptor_t x, cudnnTensorDescriptor_t dy, cudnnConvolutionDescriptor_t c, cudnnFilterDescriptor_t dw, int q, int *n, emu_perf *r) { return offer(x, dw, c, dy, q, n, r); }
cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t, cudnnTensorDescriptor_t x, cudnnFilterDescriptor_t w, cudnnConvolutionDescriptor_t c, cudnnTensorDescriptor_t y, int a, size_t *s) { *s = ws_of(a); return check_shapes(x, w, c, y); }
cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(cudnnHandle_t, cudnnFilterDescriptor_t w, cudnnTensorDescriptor_t dy, cudnnConvolutionDescriptor_t c, cudnnTensorDescriptor_t dx, int a, size_t *s) { *s = ws_of(a); return check_shapes(dx, w, c, dy); }
cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnnHandle_t, cudnnTensorDescriptor_t x, cudnnTensorDescriptor_t dy, cudnnConvolutionDescriptor_t c, cudnnFilterDescriptor_t dw, int a, size_t *s) { *s = ws_of(a); return check_shapes(x, dw, c, dy); }
}
static size_t extent(const emu_tdesc *t) {
    size_t e = 1;
    for (int i = 0; i < t->nd; i++) e += (size_t)(t->dims[i] - 1) * t->strides[i];
    return e * sizeof(float);
}
/* which: 0 forward (y out), 1 backward data (x out), 2 backward filter (w out). */
static cudnnStatus_t dnn_run(cudnnHandle_t h, int which, float al, const emu_tdesc *x, const float *xp, const emu_tdesc *w, const float *wp,
                             const emu_cdesc *c, int algo, void *ws, size_t wsz, float be, const emu_tdesc *y, const float *yp, float *out) {
    cudnnStatus_t st = check_shapes(x, w, c, y);
    if (st) { fprintf(stderr, "EMU: cuDNN call with descriptors it does not support (%d)\n", st); return st; }
    if (algo == 7) die("cuDNN: a non-deterministic algorithm was run");
    if (algo == 1 && getenv("EMU_CUDNN_FAIL1")) return CUDNN_STATUS_NOT_SUPPORTED;
    if (algo != 0 && algo != 1) die("cuDNN: an algorithm never offered");
    if (wsz < ws_of(algo) || (ws_of(algo) && kind_of(ws, ws_of(algo)) != 0)) die("cuDNN: workspace missing or too small");
    if (kind_of(xp ? xp : out, extent(x)) != 0 || kind_of(wp ? wp : out, extent(w)) != 0 || kind_of(yp ? yp : out, extent(y)) != 0)
        die("cuDNN: a tensor's extent is outside device memory");
    emu_dnn_calls++;
    emu_tdesc X = *x, W = *w, Y = *y, *xs = &X, *ws_ = &W, *ys = &Y;
    emu_cdesc C = *c;
    /* padded to three spatial dimensions */
    auto pad3 = [](emu_tdesc *t) { if (t->nd == 4) { t->dims[4] = t->dims[3]; t->strides[4] = t->strides[3]; t->dims[3] = t->dims[2]; t->strides[3] = t->strides[2]; t->dims[2] = 1; t->strides[2] = 0; t->nd = 5; } };
    if (C.n == 2) { C.pad[2] = C.pad[1]; C.pad[1] = C.pad[0]; C.pad[0] = 0; C.str[2] = C.str[1]; C.str[1] = C.str[0]; C.str[0] = 1; }
    pad3(xs); pad3(ws_); pad3(ys);
    enqueue(h->s, [=]() {
        const emu_tdesc &x = X, &w = W, &y = Y;
        int N = x.dims[0], CI = x.dims[1], CO = y.dims[1];
        auto at = [](const emu_tdesc &t, int a, int b, int d, int hh, int ww) { return (size_t)a * t.strides[0] + (size_t)b * t.strides[1] + (size_t)d * t.strides[2] + (size_t)hh * t.strides[3] + (size_t)ww * t.strides[4]; };
        if (which == 0) {
            for (int n = 0; n < N; n++) for (int k = 0; k < CO; k++)
            for (int od = 0; od < y.dims[2]; od++) for (int oh = 0; oh < y.dims[3]; oh++) for (int ow = 0; ow < y.dims[4]; ow++) {
                double s = 0;
                for (int ci = 0; ci < CI; ci++) for (int kd = 0; kd < w.dims[2]; kd++) for (int kh = 0; kh < w.dims[3]; kh++) for (int kw = 0; kw < w.dims[4]; kw++) {
                    int id = od * C.str[0] - C.pad[0] + kd, ih = oh * C.str[1] - C.pad[1] + kh, iw = ow * C.str[2] - C.pad[2] + kw;
                    if (id < 0 || id >= x.dims[2] || ih < 0 || ih >= x.dims[3] || iw < 0 || iw >= x.dims[4]) continue;
                    s += (double)xp[at(x, n, ci, id, ih, iw)] * wp[at(w, k, ci, kd, kh, kw)];
                }
                float *o = &out[at(y, n, k, od, oh, ow)];
                *o = (float)(al * s + (be != 0.0f ? be * *o : 0.0f));
            }
        } else if (which == 1) {
            std::vector<double> acc((size_t)N * CI * x.dims[2] * x.dims[3] * x.dims[4], 0.0);
            auto ai = [&](int n, int c, int d, int hh, int ww) { return (((size_t)n * CI + c) * x.dims[2] + d) * x.dims[3] * x.dims[4] + (size_t)hh * x.dims[4] + ww; };
            for (int n = 0; n < N; n++) for (int k = 0; k < CO; k++)
            for (int od = 0; od < y.dims[2]; od++) for (int oh = 0; oh < y.dims[3]; oh++) for (int ow = 0; ow < y.dims[4]; ow++) {
                double g = yp[at(y, n, k, od, oh, ow)];
                for (int ci = 0; ci < CI; ci++) for (int kd = 0; kd < w.dims[2]; kd++) for (int kh = 0; kh < w.dims[3]; kh++) for (int kw = 0; kw < w.dims[4]; kw++) {
                    int id = od * C.str[0] - C.pad[0] + kd, ih = oh * C.str[1] - C.pad[1] + kh, iw = ow * C.str[2] - C.pad[2] + kw;
                    if (id < 0 || id >= x.dims[2] || ih < 0 || ih >= x.dims[3] || iw < 0 || iw >= x.dims[4]) continue;
                    acc[ai(n, ci, id, ih, iw)] += g * wp[at(w, k, ci, kd, kh, kw)];
                }
            }
            for (int n = 0; n < N; n++) for (int ci = 0; ci < CI; ci++) for (int d = 0; d < x.dims[2]; d++) for (int hh = 0; hh < x.dims[3]; hh++) for (int ww = 0; ww < x.dims[4]; ww++) {
                float *o = &out[at(x, n, ci, d, hh, ww)];
                *o = (float)(al * acc[ai(n, ci, d, hh, ww)] + (be != 0.0f ? be * *o : 0.0f));
            }
        } else {
            for (int k = 0; k < CO; k++) for (int ci = 0; ci < CI; ci++) for (int kd = 0; kd < w.dims[2]; kd++) for (int kh = 0; kh < w.dims[3]; kh++) for (int kw = 0; kw < w.dims[4]; kw++) {
                double s = 0;
                for (int n = 0; n < N; n++) for (int od = 0; od < y.dims[2]; od++) for (int oh = 0; oh < y.dims[3]; oh++) for (int ow = 0; ow < y.dims[4]; ow++) {
                    int id = od * C.str[0] - C.pad[0] + kd, ih = oh * C.str[1] - C.pad[1] + kh, iw = ow * C.str[2] - C.pad[2] + kw;
                    if (id < 0 || id >= x.dims[2] || ih < 0 || ih >= x.dims[3] || iw < 0 || iw >= x.dims[4]) continue;
                    s += (double)xp[at(x, n, ci, id, ih, iw)] * yp[at(y, n, k, od, oh, ow)];
                }
                float *o = &out[at(w, k, ci, kd, kh, kw)];
                *o = (float)(al * s + (be != 0.0f ? be * *o : 0.0f));
            }
        }
    });
    return CUDNN_STATUS_SUCCESS;
}
extern "C" {
cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t h, const void *al, cudnnTensorDescriptor_t xd, const void *x, cudnnFilterDescriptor_t wd, const void *w, cudnnConvolutionDescriptor_t c, int a, void *ws, size_t wsz, const void *be, cudnnTensorDescriptor_t yd, void *y) {
    return dnn_run(h, 0, *(const float *)al, xd, (const float *)x, wd, (const float *)w, c, a, ws, wsz, *(const float *)be, yd, nullptr, (float *)y);
}
cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t h, const void *al, cudnnFilterDescriptor_t wd, const void *w, cudnnTensorDescriptor_t dyd, const void *dy, cudnnConvolutionDescriptor_t c, int a, void *ws, size_t wsz, const void *be, cudnnTensorDescriptor_t dxd, void *dx) {
    return dnn_run(h, 1, *(const float *)al, dxd, nullptr, wd, (const float *)w, c, a, ws, wsz, *(const float *)be, dyd, (const float *)dy, (float *)dx);
}
cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t h, const void *al, cudnnTensorDescriptor_t xd, const void *x, cudnnTensorDescriptor_t dyd, const void *dy, cudnnConvolutionDescriptor_t c, int a, void *ws, size_t wsz, const void *be, cudnnFilterDescriptor_t dwd, void *dw) {
    return dnn_run(h, 2, *(const float *)al, xd, (const float *)x, dwd, nullptr, c, a, ws, wsz, *(const float *)be, dyd, (const float *)dy, (float *)dw);
}
}
