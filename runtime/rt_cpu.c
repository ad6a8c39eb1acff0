/* rt_cpu.c — the CPU back end: the arenas, and the training step around the
 * generated kernels: forward and backward (generated), then one pass over
 * the parameters that computes each one's |grad|^2 and |param|^2 (the
 * conditional-learning-speed norms, ALGORITHMS §4) and applies the
 * optimizer's update (rt_optim.h), so the
 * norms cost no extra pass over memory. */
#include <stdlib.h>
#include <string.h>

#include "mmrt_cpu.h"
#include "rt_dist.h"
#include "rt_optim.h"

#define UPDATE_CHUNK 65536  /* elements per work item of the update */
#ifdef __clang__ /* a loop to vectorise, its float sums in lanes */
#define RT_VECTORIZE _Pragma("clang loop vectorize(enable)")
#else
#define RT_VECTORIZE
#endif

static size_t update_items(const rt_model *m) {
    size_t n = 0;
    for (int i = 0; i < m->nparams; i++) n += (m->params[i].numel + UPDATE_CHUNK - 1) / UPDATE_CHUNK;
    return n;
}

static rt_exec *cpu_create(const rt_model *m, int max_batch) {
    rt_exec *e = rt_alloc(sizeof *e);
    const rt_cpu_impl *impl = m->impl;
    e->m = m;
    e->impl = impl;
    e->max_batch = max_batch;
#ifdef _OPENMP
    e->nthreads = omp_get_max_threads();
#else
    e->nthreads = 1;
#endif
    size_t np = m->params_floats;
    e->params = rt_alloc(sizeof(mm_real) * np);
    e->grads = rt_alloc(sizeof(mm_real) * np);
    e->mom = rt_alloc(sizeof(mm_real) * np);
    e->mom2 = rt_alloc(sizeof(mm_real) * np);
    e->states = rt_alloc(sizeof(mm_real) * (m->states_floats + 1));
    e->act = rt_alloc(sizeof(mm_real) * (impl->act_floats * (size_t)max_batch + 16));
    e->fixed = rt_alloc(sizeof(mm_real) * (impl->fixed_floats + 16));
    e->scratch = rt_alloc(sizeof(mm_real) * impl->scratch_floats * (size_t)e->nthreads);
    e->partial = rt_alloc(sizeof(mm_real) * impl->partial_floats * RT_DW_CHUNKS);
    e->wt = rt_alloc(sizeof(mm_real) * (impl->wt_floats + 16));
    e->norms = rt_alloc(sizeof(double[2]) * (size_t)m->nparams);
    e->norm_parts = rt_alloc(sizeof(double[2]) * update_items(m));
    int maxk = 0;
    for (int v = 0; v < m->nvariants; v++)
        if (impl->nkernels[v] > maxk) maxk = impl->nkernels[v];
    e->prof_time = rt_alloc(sizeof(double) * (size_t)(maxk + 1));
    return e;
}

static void cpu_destroy(rt_exec *e) {
    if (!e) return;
    free(e->params);
    free(e->grads);
    free(e->mom);
    free(e->mom2);
    free(e->states);
    free(e->act);
    free(e->fixed);
    free(e->scratch);
    free(e->partial);
    free(e->wt);
    free(e->norms);
    free(e->norm_parts);
    free(e->prof_time);
    free(e);
}

static mm_real *arena(rt_exec *e, int which, size_t *n) {
    switch (which) {
    case RT_ARENA_PARAMS: *n = e->m->params_floats; return e->params;
    case RT_ARENA_MOMENTUM: *n = e->m->params_floats; return e->mom;
    case RT_ARENA_MOMENT2: *n = e->m->params_floats; return e->mom2;
    default: *n = e->m->states_floats; return e->states;
    }
}

static void cpu_read(rt_exec *e, int which, mm_real *host) {
    size_t n;
    mm_real *a = arena(e, which, &n);
    memcpy(host, a, sizeof(mm_real) * n);
}

static void cpu_write(rt_exec *e, int which, const mm_real *host) {
    size_t n;
    mm_real *a = arena(e, which, &n);
    memcpy(a, host, sizeof(mm_real) * n);
}

/* The optimizer's update (rt_optim.h) of every parameter, with |g|^2 and
 * |w|^2 (before the update) summed per parameter. */
static void update(rt_exec *e, const unsigned char *has_grad, const rt_hyper *h) {
    const rt_model *m = e->m;
    size_t items = update_items(m);
    const rt_optim o = h->opt;
    #pragma omp parallel for schedule(dynamic, 1)
    for (size_t it = 0; it < items; it++) {
        /* Find the parameter and chunk of work item `it`. */
        size_t k = it;
        int p = 0;
        for (;; p++) {
            size_t c = (m->params[p].numel + UPDATE_CHUNK - 1) / UPDATE_CHUNK;
            if (k < c) break;
            k -= c;
        }
        const rt_param_info *pi = &m->params[p];
        size_t lo = k * UPDATE_CHUNK, hi = lo + UPDATE_CHUNK < pi->numel ? lo + UPDATE_CHUNK : pi->numel;
        mm_real *w = e->params + pi->off, *g = e->grads + pi->off, *mo = e->mom + pi->off, *mo2 = e->mom2 + pi->off;
        const float *bias = h->bias ? h->bias[p] : NULL;
        int upd = !h->update || h->update[p];
        int hg = has_grad[p];
        double sg = 0.0, sw = 0.0;
        /* Blocks of 1024 elements: the sums of squares in float within a
         * block (in vector lanes), in double across blocks. The loops are
         * vectorised, the choices between them made once per block (a
         * scalar loop that tested them per element took 2x as long for SGD
         * over I3D x2's 37.5M parameters: bench/RESULTS.md). */
        for (size_t b0 = lo; b0 < hi; b0 += 1024) {
            const size_t b1 = b0 + 1024 < hi ? b0 + 1024 : hi;
            mm_real g2 = 0.0f, w2 = 0.0f;
            if (upd && o.optimizer == RT_OPTIMIZER_SGD) {
                RT_VECTORIZE
                for (size_t i = b0; i < b1; i++) {
                    const mm_real wi = w[i], gi = rt_optim_grad(&o, wi, hg ? g[i] : 0.0f);
                    g2 += gi * gi;
                    w2 += wi * wi;
                    w[i] = rt_optim_sgd(&o, wi, gi, &mo[i]);
                }
            } else if (upd && rt_optim_is_adam(o.optimizer)) {
                RT_VECTORIZE
                for (size_t i = b0; i < b1; i++) {
                    const mm_real wi = w[i], gi = rt_optim_grad(&o, wi, hg ? g[i] : 0.0f);
                    g2 += gi * gi;
                    w2 += wi * wi;
                    w[i] = rt_optim_adam(&o, bias, wi, gi, &mo[i], &mo2[i]);
                }
            } else if (upd) { /* a rule without a loop of its own here */
                for (size_t i = b0; i < b1; i++) {
                    const mm_real wi = w[i], gi = rt_optim_grad(&o, wi, hg ? g[i] : 0.0f);
                    g2 += gi * gi;
                    w2 += wi * wi;
                    w[i] = rt_optim_update(&o, bias, wi, gi, &mo[i], &mo2[i]);
                }
            } else {
                RT_VECTORIZE
                for (size_t i = b0; i < b1; i++) {
                    const mm_real wi = w[i], gi = rt_optim_grad(&o, wi, hg ? g[i] : 0.0f);
                    g2 += gi * gi;
                    w2 += wi * wi;
                }
            }
            sg += g2;
            sw += w2;
        }
        e->norm_parts[it][0] = sg;
        e->norm_parts[it][1] = sw;
    }
    size_t it = 0;
    for (int p = 0; p < m->nparams; p++) {
        size_t c = (m->params[p].numel + UPDATE_CHUNK - 1) / UPDATE_CHUNK;
        double a = 0.0, b = 0.0;
        for (size_t j = 0; j < c; j++, it++) {
            a += e->norm_parts[it][0];
            b += e->norm_parts[it][1];
        }
        e->norms[p][0] = a;
        e->norms[p][1] = b;
    }
}

#ifndef MMNET_F64 /* the double-precision test build runs in one process */
/* A data-parallel step's buckets, after kernel k of the backward pass: the
 * gradients from grad_ready[k] on are final; once those not yet on their
 * way make a bucket (rt_dist_bucket), they are weighted by this rank's
 * examples and their sum across the ranks is started, while the next
 * kernels run. The decisions depend on the table alone, so every rank
 * starts the same sums in the same order. */
static void grads_ready(rt_exec *e, int k) {
    const size_t lo = e->impl->grad_ready[e->run_v][k];
    if (e->bucket_hi <= lo || e->bucket_hi - lo < rt_dist_bucket) {
        rt_dist->poll();
        return;
    }
    double t0 = rt_now();
    mm_real *g = e->grads + lo;
    const size_t n = e->bucket_hi - lo;
    for (size_t i = 0; i < n; i++) g[i] *= e->bucket_w;
    rt_dist->start_sum_f(g, n);
    rt_dist_buckets++;
    e->bucket_hi = lo;
    rt_dist_seconds += rt_now() - t0;
}
#endif

static void cpu_train(rt_exec *e, int v, const rt_batch *b, const rt_hyper *h, rt_result *r) {
    const rt_model *m = e->m;
    memset(r, 0, sizeof *r);
    bool buckets = false;
#ifndef MMNET_F64
    buckets = rt_dist && rt_dist->size > 1 && rt_dist_bucket > 0 && b && e->impl->grad_ready && e->impl->grad_ready[v];
    if (buckets) {
        e->run_v = v;
        e->bucket_hi = m->params_floats;
        e->bucket_w = (float)b->B;
        e->grads_ready = grads_ready;
    }
#endif
    /* A rank of a data-parallel run may have no example of a (last, small)
     * batch: it contributes nothing but takes part in the averages (and
     * starts the buckets the others start). */
    if (!b || b->B > 0) e->impl->run[v](e, b, h, r); /* b NULL: a test's own tensors, set by hand */
    else {
        memset(e->grads, 0, sizeof(mm_real) * m->params_floats);
        for (int k = 0; buckets && k < e->impl->nkernels[v]; k++) e->grads_ready(e, k);
    }
    e->grads_ready = NULL;
#ifndef MMNET_F64
    if (buckets) rt_dist_average_rest(b->B, e->bucket_hi, &r->loss, e->grads, m->params_floats, e->states, m->states_floats);
    else if (rt_dist && rt_dist->size > 1) rt_dist_average(b ? b->B : 0, &r->loss, e->grads, m->params_floats, e->states, m->states_floats);
#else
    (void)buckets;
#endif
    /* A policy's gradient modulation (OGM-GE, AGM, MMPareto), between
     * backward and update, on the gradients averaged over the ranks. */
    if (h->modulate) h->modulate(h->ctx, r, e->grads);
    update(e, e->m->variants[v].has_grad, h);
    r->norms = e->norms;
}

static void cpu_eval(rt_exec *e, int v, const rt_batch *b, const rt_hyper *h, rt_result *r) {
    memset(r, 0, sizeof *r);
    e->impl->run[v](e, b, h, r);
}

/* One step with every kernel timed; prints time and GFLOP/s per kernel.
 * Parameters are saved and restored so the step changes nothing. */
static void cpu_profile(rt_exec *e, int v, const rt_batch *b, const rt_hyper *h, FILE *out) {
    const rt_model *m = e->m;
    const rt_cpu_impl *impl = e->impl;
    int nk = impl->nkernels[v];
    const rt_kernel_info *ki = impl->kernels[v];
    if (!impl->profiled) {
        fprintf(out, "%s: this program was built without per-kernel timing; rebuild it with: mmc build --profile\n", rt_prog);
        return;
    }
    size_t np = m->params_floats;
    mm_real *save[4] = {rt_alloc(sizeof(mm_real) * np), rt_alloc(sizeof(mm_real) * np), rt_alloc(sizeof(mm_real) * (m->states_floats + 1)),
                        rt_alloc(sizeof(mm_real) * np)};
    memcpy(save[0], e->params, sizeof(mm_real) * np);
    memcpy(save[1], e->mom, sizeof(mm_real) * np);
    memcpy(save[2], e->states, sizeof(mm_real) * m->states_floats);
    memcpy(save[3], e->mom2, sizeof(mm_real) * np);
    rt_result r;
    const int reps = 5;
    double best_total = 1e30, *best = rt_alloc(sizeof(double) * (size_t)(nk + 1));
    for (int i = 0; i < nk; i++) best[i] = 1e30;
    for (int rep = 0; rep < reps + 1; rep++) {
        memset(e->prof_time, 0, sizeof(double) * (size_t)(nk + 1));
        e->prof_on = 1;
        double t0 = rt_now();
        impl->run[v](e, b, h, &r);
        double t = rt_now() - t0;
        e->prof_on = 0;
        if (rep == 0) continue; /* warm-up */
        if (t < best_total) best_total = t;
        for (int i = 0; i < nk; i++)
            if (e->prof_time[i] < best[i]) best[i] = e->prof_time[i];
    }
    double t0 = rt_now();
    if (m->variants[v].has_grad) update(e, m->variants[v].has_grad, h);
    double tu = rt_now() - t0;
    memcpy(e->params, save[0], sizeof(mm_real) * np);
    memcpy(e->mom, save[1], sizeof(mm_real) * np);
    memcpy(e->states, save[2], sizeof(mm_real) * m->states_floats);
    memcpy(e->mom2, save[3], sizeof(mm_real) * np);
    fprintf(out, "profile of one '%s' step, batch %d, %d threads (best of %d runs), SIMD %s\n", m->variants[v].name, b->B,
            e->nthreads, reps, impl->simd);
    fprintf(out, "%-44s %10s %8s %10s\n", "kernel", "ms", "share", "GFLOP/s");
    double sum = 0;
    for (int i = 0; i < nk; i++) sum += best[i];
    for (int i = 0; i < nk; i++) {
        double fl = ki[i].flops * b->B + ki[i].flops_fixed;
        fprintf(out, "%-44.44s %10.3f %7.1f%% %10.2f\n", ki[i].name, best[i] * 1e3, 100 * best[i] / (sum > 0 ? sum : 1),
                best[i] > 0 ? fl / best[i] * 1e-9 : 0.0);
    }
    if (m->variants[v].has_grad) fprintf(out, "%-44s %10.3f\n", "update (optimizer + norms)", tu * 1e3);
    fprintf(out, "%-44s %10.3f\n", "total (kernels, best run)", best_total * 1e3);
    free(best);
    for (int i = 0; i < 4; i++) free(save[i]);
}

static void cpu_trace(rt_exec *e, void (*fn)(void *user, int k, const float *out, size_t n), void *user) {
    e->trace = fn;
    e->trace_user = user;
}

/* What cpu_create allocates beyond the parameters and states, in floats. */
static void cpu_memory(const rt_model *m, rt_mem_plan *p) {
    const rt_cpu_impl *impl = m->impl;
    p->act = impl->act_floats;
    p->fixed = impl->fixed_floats;
    p->scratch = impl->scratch_floats;
    p->work = impl->partial_floats * RT_DW_CHUNKS + impl->wt_floats;
}

const rt_backend rt_cpu_backend = {"c", cpu_create, cpu_destroy, cpu_read, cpu_write, cpu_train, cpu_eval, cpu_profile, cpu_trace,
                                   NULL, NULL, NULL, cpu_memory};
