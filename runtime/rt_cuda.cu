/* rt_cuda.cu — the CUDA back end: device arenas, the transfers of a step,
 * the fused norm+update (one kernel over every parameter: |grad|^2 and
 * |param|^2 per work item in a block tree, then rt_optim.h's update, as
 * rt_cpu.c does), and a CUDA graph per variant and batch size that holds a whole
 * step: input copies, the generated kernels, the update and the output
 * copies. Checkpoints are interchangeable with the C back end's: the host
 * sees the same arenas in the same layout. */
#include <string.h>

#include "mmrt_cuda.h"
#include "rt_optim.h"

#define UPDATE_CHUNK 65536
#define MAX_GRAPH_SIZES 2

typedef struct UpdateItem {
    int param;
    size_t lo, hi;   /* element range within the parameter */
} UpdateItem;

static int count_items(const rt_model *m, UpdateItem *out) {
    int k = 0;
    for (int p = 0; p < m->nparams; p++)
        for (size_t lo = 0; lo < m->params[p].numel; lo += UPDATE_CHUNK, k++)
            if (out) out[k] = (UpdateItem){p, lo, lo + UPDATE_CHUNK < m->params[p].numel ? lo + UPDATE_CHUNK : m->params[p].numel};
    return k;
}

__global__ static void update_kernel(float *w, float *g, float *mo, float *mo2, const UpdateItem *items, const size_t *off,
                                     const unsigned char *has_grad, const unsigned char *mask, const float (*bias)[2],
                                     const rt_dev_hyper *h, double *parts, int use_mask) {
    const UpdateItem it = items[blockIdx.x];
    const size_t base = off[it.param];
    const rt_optim o = h->opt;
    const float bc[2] = {bias[it.param][0], bias[it.param][1]};
    const int hg = has_grad[it.param], upd = !use_mask || mask[it.param];
    double g2 = 0.0, w2 = 0.0;
    for (size_t i = base + it.lo + threadIdx.x; i < base + it.hi; i += blockDim.x) {
        float wi = w[i], gi = rt_optim_grad(&o, wi, hg ? g[i] : 0.0f);
        g2 += (double)gi * gi;
        w2 += (double)wi * wi;
        if (upd) w[i] = rt_optim_update(&o, bc, wi, gi, &mo[i], &mo2[i]);
    }
    g2 = mmk_block_sum(g2);
    w2 = mmk_block_sum(w2);
    if (threadIdx.x == 0) {
        parts[2 * blockIdx.x] = g2;
        parts[2 * blockIdx.x + 1] = w2;
    }
}

static void *dev_alloc(size_t bytes) {
    void *p = NULL;
    CUDA_CHECK(cudaMalloc(&p, bytes ? bytes : 16));
    CUDA_CHECK(cudaMemset(p, 0, bytes ? bytes : 16));
    return p;
}

static void require_device(void) {
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0)
        rt_die("no CUDA device found (this program was built with mmc build --target cuda; build it for the CPU without --target)");
}

/* Pinned host memory: copies from it run at the bus's speed and
 * asynchronously. Also the data loader's batch buffers. */
static void *host_alloc(size_t bytes) {
    require_device();
    void *p = NULL;
    CUDA_CHECK(cudaMallocHost(&p, bytes ? bytes : 16));
    memset(p, 0, bytes ? bytes : 16);
    return p;
}

static void host_free(void *p) { cudaFreeHost(p); }

static rt_exec *cuda_create(const rt_model *m, int max_batch) {
    require_device();
    rt_exec *e = (rt_exec *)rt_alloc(sizeof *e);
    const rt_cuda_impl *impl = (const rt_cuda_impl *)m->impl;
    e->m = m;
    e->impl = impl;
    e->max_batch = max_batch;
    CUDA_CHECK(cudaStreamCreate(&e->stream));
    CUDA_CHECK(cudaStreamCreateWithFlags(&e->copy_stream, cudaStreamNonBlocking));
    CUBLAS_CHECK(cublasCreate(&e->blas));
    CUBLAS_CHECK(cublasSetStream(e->blas, e->stream));
    /* FP32 arithmetic, as the C back end: no TF32 unless asked for. */
    CUBLAS_CHECK(cublasSetMathMode(e->blas, getenv("MMNET_TF32") ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    /* A fixed cuBLAS workspace, so that GEMMs can be captured in CUDA graphs. */
    e->blas_ws = dev_alloc((size_t)32 << 20);
    CUBLAS_CHECK(cublasSetWorkspace(e->blas, e->blas_ws, (size_t)32 << 20));
    size_t np = m->params_floats;
    e->params = (float *)dev_alloc(sizeof(float) * np);
    e->grads = (float *)dev_alloc(sizeof(float) * np);
    e->mom = (float *)dev_alloc(sizeof(float) * np);
    e->mom2 = (float *)dev_alloc(sizeof(float) * np);
    e->states = (float *)dev_alloc(sizeof(float) * (m->states_floats + 1));
    e->act = (float *)dev_alloc(sizeof(float) * (impl->act_floats * (size_t)max_batch + 16));
    e->fixed = (float *)dev_alloc(sizeof(float) * (impl->fixed_floats + 16));
    e->work = (float *)dev_alloc(sizeof(float) * impl->work_floats);
    for (int i = 0; i < m->ninputs; i++) e->x[i] = (float *)dev_alloc(sizeof(float) * m->inputs[i].numel * (size_t)max_batch);
    e->y = (int32_t *)dev_alloc(sizeof(int32_t) * (size_t)max_batch);
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < m->ninputs; i++)
            e->staged[s].x[i] = (float *)dev_alloc(sizeof(float) * m->inputs[i].numel * (size_t)max_batch);
        e->staged[s].y = (int32_t *)dev_alloc(sizeof(int32_t) * (size_t)max_batch);
        CUDA_CHECK(cudaEventCreateWithFlags(&e->staged[s].done, cudaEventDisableTiming));
    }
    e->hyper = (rt_dev_hyper *)dev_alloc(sizeof(rt_dev_hyper));
    e->h_hyper = (rt_dev_hyper *)host_alloc(sizeof(rt_dev_hyper));
    e->update_mask = (unsigned char *)dev_alloc((size_t)m->nparams);
    e->h_mask = (unsigned char *)host_alloc((size_t)m->nparams);
    e->bias = (float(*)[2])dev_alloc(sizeof(float[2]) * (size_t)m->nparams);
    e->h_bias = (float(*)[2])host_alloc(sizeof(float[2]) * (size_t)m->nparams);
    e->nitems = count_items(m, NULL);
    UpdateItem *items = (UpdateItem *)rt_alloc(sizeof(UpdateItem) * (size_t)e->nitems);
    count_items(m, items);
    e->items = (UpdateItem *)dev_alloc(sizeof(UpdateItem) * (size_t)e->nitems);
    CUDA_CHECK(cudaMemcpy(e->items, items, sizeof(UpdateItem) * (size_t)e->nitems, cudaMemcpyHostToDevice));
    free(items);
    size_t *off = (size_t *)rt_alloc(sizeof(size_t) * (size_t)m->nparams);
    for (int p = 0; p < m->nparams; p++) off[p] = m->params[p].off;
    e->param_off = (size_t *)dev_alloc(sizeof(size_t) * (size_t)m->nparams);
    CUDA_CHECK(cudaMemcpy(e->param_off, off, sizeof(size_t) * (size_t)m->nparams, cudaMemcpyHostToDevice));
    free(off);
    unsigned char *hg = (unsigned char *)rt_alloc((size_t)m->nvariants * m->nparams);
    for (int v = 0; v < m->nvariants; v++)
        if (m->variants[v].has_grad) memcpy(hg + (size_t)v * m->nparams, m->variants[v].has_grad, (size_t)m->nparams);
    e->has_grad = (unsigned char *)dev_alloc((size_t)m->nvariants * m->nparams);
    CUDA_CHECK(cudaMemcpy(e->has_grad, hg, (size_t)m->nvariants * m->nparams, cudaMemcpyHostToDevice));
    free(hg);
    e->norm_parts = (double *)dev_alloc(sizeof(double) * 2 * (size_t)e->nitems);
    e->h_norm_parts = (double *)host_alloc(sizeof(double) * 2 * (size_t)e->nitems);
    e->norms = (double(*)[2])rt_alloc(sizeof(double[2]) * (size_t)m->nparams);
    e->h_out = (float *)host_alloc(sizeof(float) * (1 + (size_t)(m->nbranches + 1) * m->classes * max_batch));
    e->graphs = (cudaGraphExec_t *)rt_alloc(sizeof(cudaGraphExec_t) * (size_t)m->nvariants * MAX_GRAPH_SIZES);
    e->graph_batch = (int *)rt_alloc(sizeof(int) * (size_t)m->nvariants * MAX_GRAPH_SIZES);
    e->use_graphs = !getenv("MMNET_NO_CUDA_GRAPHS");
    int maxk = 0;
    for (int v = 0; v < m->nvariants; v++)
        if (impl->nkernels[v] > maxk) maxk = impl->nkernels[v];
    e->prof_ev = (cudaEvent_t *)rt_alloc(sizeof(cudaEvent_t) * (size_t)(maxk + 1));
    for (int i = 0; i <= maxk; i++) CUDA_CHECK(cudaEventCreate(&e->prof_ev[i]));
    return e;
}

static void cuda_destroy(rt_exec *e) {
    if (!e) return;
    const rt_model *m = e->m;
    for (int i = 0; i < m->nvariants * MAX_GRAPH_SIZES; i++)
        if (e->graph_batch[i]) CUDA_CHECK(cudaGraphExecDestroy(e->graphs[i]));
    cudaFree(e->params);
    cudaFree(e->grads);
    cudaFree(e->mom);
    cudaFree(e->mom2);
    cudaFree(e->states);
    cudaFree(e->act);
    cudaFree(e->fixed);
    cudaFree(e->work);
    cudaStreamSynchronize(e->copy_stream);
    for (int i = 0; i < m->ninputs; i++) cudaFree(e->x[i]);
    cudaFree(e->y);
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < m->ninputs; i++) cudaFree(e->staged[s].x[i]);
        cudaFree(e->staged[s].y);
        cudaEventDestroy(e->staged[s].done);
    }
    cudaStreamDestroy(e->copy_stream);
    cudaFree(e->hyper);
    cudaFreeHost(e->h_hyper);
    cudaFree(e->update_mask);
    cudaFreeHost(e->h_mask);
    cudaFree(e->bias);
    cudaFreeHost(e->h_bias);
    cudaFree(e->norm_parts);
    cudaFreeHost(e->h_norm_parts);
    cudaFreeHost(e->h_out);
    if (e->h_grads) cudaFreeHost(e->h_grads);
    cudaFree(e->items);
    cudaFree(e->param_off);
    cudaFree(e->has_grad);
    cublasDestroy(e->blas);
    cudaFree(e->blas_ws);
    if (e->dnn_free) e->dnn_free(e);
    cudaStreamDestroy(e->stream);
    free(e->norms);
    free(e->graphs);
    free(e->graph_batch);
    int maxk = 0;
    for (int v = 0; v < m->nvariants; v++)
        if (e->impl->nkernels[v] > maxk) maxk = e->impl->nkernels[v];
    for (int i = 0; i <= maxk; i++) cudaEventDestroy(e->prof_ev[i]);
    free(e->prof_ev);
    cudaFreeHost(e->trace_buf);
    free(e);
}

static float *arena(rt_exec *e, int which, size_t *n) {
    switch (which) {
    case RT_ARENA_PARAMS: *n = e->m->params_floats; return e->params;
    case RT_ARENA_MOMENTUM: *n = e->m->params_floats; return e->mom;
    case RT_ARENA_MOMENT2: *n = e->m->params_floats; return e->mom2;
    default: *n = e->m->states_floats; return e->states;
    }
}

static void cuda_read(rt_exec *e, int which, mm_real *host) {
    size_t n;
    float *a = arena(e, which, &n);
    CUDA_CHECK(cudaMemcpy(host, a, sizeof(float) * n, cudaMemcpyDeviceToHost));
}

static void cuda_write(rt_exec *e, int which, const mm_real *host) {
    size_t n;
    float *a = arena(e, which, &n);
    CUDA_CHECK(cudaMemcpy(a, host, sizeof(float) * n, cudaMemcpyHostToDevice));
}

/* rt_backend.stage: copy batch b to a device buffer on the copy stream. */
static void cuda_stage(rt_exec *e, const rt_batch *b) {
    const rt_model *m = e->m;
    if (!b) {
        CUDA_CHECK(cudaStreamSynchronize(e->copy_stream));
        for (int s = 0; s < 2; s++) e->staged[s].from_y = NULL;
        return;
    }
    /* 0: a data-parallel rank's empty shard of a small last batch. */
    if (b->B < 0 || b->B > e->max_batch) rt_die("internal: batch of %d outside 0..%d", b->B, e->max_batch);
    /* The other buffer may hold the batch of the coming step; this one's
     * last reader was a step that has finished. */
    auto *s = &e->staged[e->stage_next];
    e->stage_next ^= 1;
    for (int i = 0; i < m->ninputs; i++)
        CUDA_CHECK(cudaMemcpyAsync(s->x[i], b->x[i], sizeof(float) * m->inputs[i].numel * (size_t)b->B, cudaMemcpyHostToDevice,
                                   e->copy_stream));
    CUDA_CHECK(cudaMemcpyAsync(s->y, b->y, sizeof(int32_t) * (size_t)b->B, cudaMemcpyHostToDevice, e->copy_stream));
    CUDA_CHECK(cudaEventRecord(s->done, e->copy_stream));
    for (int i = 0; i < m->ninputs; i++) s->from_x[i] = b->x[i];
    s->from_y = b->y, s->B = b->B;
}

/* Whether staged buffer s holds batch b: every input from the same host
 * buffer (a pass with one input replaced, as AGM's zeroed passes, is
 * another batch), the same labels and size. */
static int staged_holds(const rt_exec *e, int k, const rt_batch *b) {
    const auto *s = &e->staged[k];
    if (!s->from_y || s->from_y != (const void *)b->y || s->B != b->B) return 0;
    for (int i = 0; i < e->m->ninputs; i++)
        if (s->from_x[i] != (const void *)b->x[i]) return 0;
    return 1;
}

/* The step's batch into the device inputs: from the buffer it was copied
 * ahead to (a device-to-device copy, after the copy's event), else straight
 * from the host. Outside the graph, whose inputs are always e->x and e->y. */
static void load_batch(rt_exec *e, const rt_batch *b) {
    const rt_model *m = e->m;
    const int B = b->B;
    for (int k = 0; k < 2; k++) {
        auto *s = &e->staged[k];
        if (!staged_holds(e, k, b)) continue;
        CUDA_CHECK(cudaStreamWaitEvent(e->stream, s->done, 0));
        for (int i = 0; i < m->ninputs; i++)
            CUDA_CHECK(cudaMemcpyAsync(e->x[i], s->x[i], sizeof(float) * m->inputs[i].numel * (size_t)B, cudaMemcpyDeviceToDevice,
                                       e->stream));
        CUDA_CHECK(cudaMemcpyAsync(e->y, s->y, sizeof(int32_t) * (size_t)B, cudaMemcpyDeviceToDevice, e->stream));
        s->from_y = NULL;
        return;
    }
    for (int i = 0; i < m->ninputs; i++)
        CUDA_CHECK(cudaMemcpyAsync(e->x[i], b->x[i], sizeof(float) * m->inputs[i].numel * (size_t)B, cudaMemcpyHostToDevice, e->stream));
    CUDA_CHECK(cudaMemcpyAsync(e->y, b->y, sizeof(int32_t) * (size_t)B, cudaMemcpyHostToDevice, e->stream));
}

/* What a step does on the stream after its batch is on the device, in
 * three parts: the forward and backward passes (with a data-parallel run's
 * averages), the update with the norms, and the copies of the outputs to
 * the host. enqueue_step puts all three in a graph, captured once per
 * (variant, batch size); a step with a host hook between its backward
 * pass and its update (rt_hyper.modulate) runs them one by one. */
static void enqueue_backward(rt_exec *e, int v, int B, int train) {
    const rt_model *m = e->m;
    CUDA_CHECK(cudaMemcpyAsync(e->hyper, e->h_hyper, sizeof(rt_dev_hyper), cudaMemcpyHostToDevice, e->stream));
    if (train) CUDA_CHECK(cudaMemcpyAsync(e->update_mask, e->h_mask, (size_t)m->nparams, cudaMemcpyHostToDevice, e->stream));
    if (train)
        CUDA_CHECK(cudaMemcpyAsync(e->bias, e->h_bias, sizeof(float[2]) * (size_t)m->nparams, cudaMemcpyHostToDevice, e->stream));
    if (B > 0) e->impl->run[v](e, B);
    else if (train) /* a rank with no example of a (last, small) batch: it adds nothing */
        CUDA_CHECK(cudaMemsetAsync(e->grads, 0, sizeof(float) * m->params_floats, e->stream));
    const rt_cuda_outputs *o = &e->impl->outputs[v];
    const size_t MB = (size_t)e->max_batch;
    if (train && rt_dist_dev) {
        /* The loss, the gradients and the state: their means over the global batch (rt_nccl.cu). */
        float *bufs[3] = {e->grads, e->states, NULL};
        size_t n[3] = {m->params_floats, m->states_floats, 0};
        if (o->buf[0] >= 0) {
            bufs[2] = o->buf[0] == 0 ? e->fixed + o->off[0] : e->act + o->off[0] * MB;
            n[2] = 1;
            if (B == 0) CUDA_CHECK(cudaMemsetAsync(bufs[2], 0, sizeof(float), e->stream));
        }
        rt_dist_dev->average(bufs, n, 3, &e->hyper->dist_w, e->stream);
    }
}

static void enqueue_update(rt_exec *e, int v, int use_mask) {
    update_kernel<<<e->nitems, MMK_THREADS, 0, e->stream>>>(e->params, e->grads, e->mom, e->mom2, e->items, e->param_off,
                                                          e->has_grad + (size_t)v * e->m->nparams, e->update_mask, e->bias,
                                                          e->hyper, e->norm_parts, use_mask);
    MMK_CHECK_LAUNCH();
    CUDA_CHECK(cudaMemcpyAsync(e->h_norm_parts, e->norm_parts, sizeof(double) * 2 * (size_t)e->nitems, cudaMemcpyDeviceToHost,
                               e->stream));
}

/* Outputs: the loss, each branch's logits, the prediction. */
static void enqueue_outputs(rt_exec *e, int v, int B) {
    const rt_model *m = e->m;
    const rt_cuda_outputs *o = &e->impl->outputs[v];
    const size_t MB = (size_t)e->max_batch;
    float *dst = e->h_out;
    for (int i = 0; i < m->nbranches + 2; i++) {
        if (o->buf[i] < 0) continue;
        size_t n = i == 0 ? 1 : (size_t)B * m->classes;
        const float *src = o->buf[i] == 0 ? e->fixed + o->off[i] : e->act + o->off[i] * MB;
        CUDA_CHECK(cudaMemcpyAsync(dst, src, sizeof(float) * n, cudaMemcpyDeviceToHost, e->stream));
        dst += i == 0 ? 1 : MB * m->classes;
    }
}

static void enqueue_step(rt_exec *e, int v, int B, int train, int use_mask) {
    enqueue_backward(e, v, B, train);
    if (train) enqueue_update(e, v, use_mask);
    enqueue_outputs(e, v, B);
}

/* The loss, logits and prediction of the outputs copied to the host. */
static void read_outputs(rt_exec *e, int v, rt_result *r) {
    const rt_model *m = e->m;
    const rt_cuda_outputs *o = &e->impl->outputs[v];
    const float *src = e->h_out;
    const size_t MB = (size_t)e->max_batch;
    for (int i = 0; i < m->nbranches + 2; i++) {
        if (o->buf[i] < 0) continue;
        if (i == 0) r->loss = src[0];
        else if (i <= m->nbranches) r->logits[i - 1] = src;
        else r->pred = src;
        src += i == 0 ? 1 : MB * m->classes;
    }
}

/* A step whose gradients go through a host hook before the update: the
 * backward pass, the gradients and outputs to the host, the hook, the
 * gradients back, the update. Outside graphs; a copy of the gradients each
 * way is the hook's price (a policy that modulates gradients, as OGM-GE). */
static void step_with_hook(rt_exec *e, int v, int B, const rt_hyper *h, rt_result *r, int use_mask) {
    const rt_model *m = e->m;
    const size_t bytes = sizeof(float) * m->params_floats;
    if (!e->h_grads) e->h_grads = (float *)host_alloc(bytes);
    enqueue_backward(e, v, B, 1);
    enqueue_outputs(e, v, B);
    CUDA_CHECK(cudaMemcpyAsync(e->h_grads, e->grads, bytes, cudaMemcpyDeviceToHost, e->stream));
    CUDA_CHECK(cudaStreamSynchronize(e->stream));
    read_outputs(e, v, r);
    h->modulate(h->ctx, r, e->h_grads);
    CUDA_CHECK(cudaMemcpyAsync(e->grads, e->h_grads, bytes, cudaMemcpyHostToDevice, e->stream));
    enqueue_update(e, v, use_mask);
}

static void step(rt_exec *e, int v, const rt_batch *b, const rt_hyper *h, rt_result *r, int train) {
    const rt_model *m = e->m;
    const int B = b->B;
    load_batch(e, b);
    *e->h_hyper = (rt_dev_hyper){h->opt, h->acc_n, h->seed, h->step, 1.0f};
    if (train && rt_dist_dev) {
        double total = B;
        rt_dist->sum_d(&total, 1);
        e->h_hyper->dist_w = (float)(B / total);
    }
    int use_mask = train && h->update != NULL;
    if (use_mask) memcpy(e->h_mask, h->update, (size_t)m->nparams);
    /* Without per-parameter corrections: none (1 - beta^t = 1). */
    for (int p = 0; train && p < m->nparams; p++) {
        e->h_bias[p][0] = h->bias ? h->bias[p][0] : h->opt.lr;
        e->h_bias[p][1] = h->bias ? h->bias[p][1] : 1.0f;
    }
    /* cuDNN's plans for this batch size, made outside any capture. */
    if (e->impl->plan) e->impl->plan[v](e, B);
    memset(r, 0, sizeof *r);
    if (train && h->modulate) {
        step_with_hook(e, v, B, h, r, use_mask);
    } else if (!e->use_graphs || e->prof_on || e->trace || B == 0) {
        enqueue_step(e, v, B, train, use_mask);
    } else {
        /* The graph for (v, B, mask or not); captured on first use. */
        int key = -1, slot = -1;
        for (int s = 0; s < MAX_GRAPH_SIZES; s++) {
            int k = v * MAX_GRAPH_SIZES + s, tag = B * 2 + use_mask;
            if (e->graph_batch[k] == tag) key = k;
            else if (!e->graph_batch[k] && slot < 0) slot = k;
        }
        if (key < 0) {
            if (slot < 0) { /* evict: the tail batch of an epoch is rarer */
                slot = v * MAX_GRAPH_SIZES + MAX_GRAPH_SIZES - 1;
                CUDA_CHECK(cudaGraphExecDestroy(e->graphs[slot]));
            }
            cudaGraph_t g;
            CUDA_CHECK(cudaStreamBeginCapture(e->stream, cudaStreamCaptureModeThreadLocal));
            enqueue_step(e, v, B, train, use_mask);
            CUDA_CHECK(cudaStreamEndCapture(e->stream, &g));
            CUDA_CHECK(cudaGraphInstantiate(&e->graphs[slot], g, 0));
            CUDA_CHECK(cudaGraphDestroy(g));
            e->graph_batch[slot] = B * 2 + use_mask;
            key = slot;
        }
        CUDA_CHECK(cudaGraphLaunch(e->graphs[key], e->stream));
    }
    CUDA_CHECK(cudaStreamSynchronize(e->stream));
    read_outputs(e, v, r);
    if (train) {
        /* Per-parameter norms: the work items' sums, in order. */
        int it = 0;
        for (int p = 0; p < m->nparams; p++) {
            double a = 0, c = 0;
            for (size_t lo = 0; lo < m->params[p].numel; lo += UPDATE_CHUNK, it++) {
                a += e->h_norm_parts[2 * it];
                c += e->h_norm_parts[2 * it + 1];
            }
            e->norms[p][0] = a;
            e->norms[p][1] = c;
        }
        r->norms = e->norms;
    }
}

static void cuda_train(rt_exec *e, int v, const rt_batch *b, const rt_hyper *h, rt_result *r) { step(e, v, b, h, r, 1); }
static void cuda_eval(rt_exec *e, int v, const rt_batch *b, const rt_hyper *h, rt_result *r) { step(e, v, b, h, r, 0); }

/* One step outside any graph with an event between kernels. */
static void cuda_profile(rt_exec *e, int v, const rt_batch *b, const rt_hyper *h, FILE *out) {
    const rt_model *m = e->m;
    const rt_cuda_impl *impl = e->impl;
    if (!impl->profiled) {
        fprintf(out, "%s: this program was built without per-kernel timing; rebuild it with: mmc build --target cuda --profile\n", rt_prog);
        return;
    }
    size_t np = m->params_floats;
    float *save[4] = {(float *)rt_alloc(sizeof(float) * np), (float *)rt_alloc(sizeof(float) * np),
                      (float *)rt_alloc(sizeof(float) * (m->states_floats + 1))};
    cuda_read(e, RT_ARENA_PARAMS, save[0]);
    cuda_read(e, RT_ARENA_MOMENTUM, save[1]);
    cuda_read(e, RT_ARENA_STATES, save[2]);
    save[3] = (float *)rt_alloc(sizeof(float) * np);
    cuda_read(e, RT_ARENA_MOMENT2, save[3]);
    int nk = impl->nkernels[v];
    double *best = (double *)rt_alloc(sizeof(double) * (size_t)(nk + 1));
    for (int i = 0; i < nk; i++) best[i] = 1e30;
    rt_result r;
    for (int rep = 0; rep < 6; rep++) {
        e->prof_on = 1;
        step(e, v, b, h, &r, m->variants[v].has_grad != NULL);
        e->prof_on = 0;
        if (rep == 0) continue;
        for (int i = 0; i < nk; i++) {
            float ms = 0;
            CUDA_CHECK(cudaEventElapsedTime(&ms, e->prof_ev[i], e->prof_ev[i + 1]));
            if (ms * 1e-3 < best[i]) best[i] = ms * 1e-3;
        }
    }
    cuda_write(e, RT_ARENA_PARAMS, save[0]);
    cuda_write(e, RT_ARENA_MOMENTUM, save[1]);
    cuda_write(e, RT_ARENA_STATES, save[2]);
    cuda_write(e, RT_ARENA_MOMENT2, save[3]);
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    fprintf(out, "profile of one '%s' step, batch %d, on %s (best of 5 runs)\n", m->variants[v].name, b->B, prop.name);
    fprintf(out, "%-44s %10s %10s\n", "kernel", "ms", "GFLOP/s");
    double sum = 0;
    for (int i = 0; i < nk; i++) {
        const rt_cuda_kernel_info *ki = &impl->kernels[v][i];
        double fl = ki->flops * b->B + ki->flops_fixed;
        sum += best[i];
        fprintf(out, "%-44.44s %10.4f %10.1f\n", ki->name, best[i] * 1e3, best[i] > 0 ? fl / best[i] * 1e-9 : 0.0);
    }
    fprintf(out, "%-44s %10.4f\n", "total (kernels)", sum * 1e3);
    free(best);
    for (int i = 0; i < 4; i++) free(save[i]);
}

static void cuda_trace(rt_exec *e, void (*fn)(void *user, int k, const float *out, size_t n), void *user) {
    e->trace = fn;
    e->trace_user = user;
}

extern "C" const rt_backend rt_cuda_backend = {"cuda", cuda_create,  cuda_destroy, cuda_read, cuda_write,
                                               cuda_train, cuda_eval, cuda_profile, cuda_trace,
                                               host_alloc, host_free, cuda_stage,
                                               NULL /* the arenas are in the GPU's memory: cudaMalloc's errors name them */};
