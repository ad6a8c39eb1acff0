/* rt_bench.c — ./prog bench: training and evaluation throughput on random
 * batches of the model's shapes, medians of `reps` timed runs of `steps`
 * steps after a warm-up, and the process's peak memory. The training steps
 * use the program's optimizer (the .mmnet's, or --optimizer and its
 * settings). One JSON line on stdout. */
#include <stdlib.h>
#include <sys/resource.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "rt_optim.h"
#include "rt_trainer.h"

static int rt_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int rt_bench(const rt_model *m, const rt_optim *opt, int batch, int steps, int reps, bool profile) {
    const rt_backend *be = m->backend;
    rt_memory_check(m, opt->optimizer, batch);
    rt_exec *e = be->create(m, batch);
    float *params = rt_alloc(sizeof(float) * m->params_floats), *states = rt_alloc(sizeof(float) * (m->states_floats + 1));
    rt_init_params(m, params, 1);
    rt_init_states(m, states);
    be->write(e, RT_ARENA_PARAMS, params);
    be->write(e, RT_ARENA_STATES, states);
    rt_rng r;
    rt_rng_seed(&r, 7);
    rt_batch b = {batch, {0}, NULL};
    float *x[RT_MAXIN];
    for (int i = 0; i < m->ninputs; i++) {
        x[i] = rt_alloc(sizeof(float) * m->inputs[i].numel * (size_t)batch);
        for (size_t j = 0; j < m->inputs[i].numel * (size_t)batch; j++) x[i][j] = (float)rt_rng_uniform(&r);
        b.x[i] = x[i];
    }
    int32_t *y = rt_alloc(sizeof(int32_t) * (size_t)batch);
    for (int k = 0; k < batch; k++) y[k] = (int32_t)rt_rng_below(&r, (uint32_t)m->classes);
    b.y = y;
    rt_hyper h = {*opt, 0, 1, 0, NULL, NULL, NULL, NULL};
    long long *count = rt_alloc(sizeof(long long) * (size_t)m->nparams);
    float(*bias)[2] = rt_alloc(sizeof(float[2]) * (size_t)m->nparams);
    rt_optim_count(&h.opt, m->nparams, NULL, count, bias);
    h.bias = (const float(*)[2])bias;
    int vt = rt_find_variant(m, RT_VAR_TRAIN, -1), ve = rt_find_variant(m, RT_VAR_EVAL, -1);
    if (profile && be->profile) {
        be->profile(e, vt, &b, &h, stderr);
        be->profile(e, ve, &b, &h, stderr);
    }
    double *tt = rt_alloc(sizeof(double) * (size_t)reps), *te = rt_alloc(sizeof(double) * (size_t)reps);
    rt_result res;
    for (int w = 0; w < 3; w++) {
        be->train(e, vt, &b, &h, &res);
        be->eval(e, ve, &b, &h, &res);
    }
    for (int rep = 0; rep < reps; rep++) {
        double t0 = rt_now();
        for (int s = 0; s < steps; s++) {
            h.step++;
            be->train(e, vt, &b, &h, &res);
        }
        tt[rep] = (double)steps * batch / (rt_now() - t0);
        t0 = rt_now();
        for (int s = 0; s < steps; s++) be->eval(e, ve, &b, &h, &res);
        te[rep] = (double)steps * batch / (rt_now() - t0);
    }
    qsort(tt, (size_t)reps, sizeof(double), cmp_double);
    qsort(te, (size_t)reps, sizeof(double), cmp_double);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    char oname[32];
    printf("{\"model\": \"%s\", \"backend\": \"%s\", \"optimizer\": \"%s\", \"batch\": %d, \"threads\": %d, "
           "\"train_samples_per_s\": %.3f, \"eval_samples_per_s\": %.3f, \"peak_rss_mb\": %.1f}\n",
           m->name, be->target, rt_name_at(rt_config_fields[RT_CFG_optimizer].names, opt->optimizer, oname, sizeof oname), batch,
           rt_threads(), tt[reps / 2], te[reps / 2], ru.ru_maxrss / 1024.0);
    be->destroy(e);
    for (int i = 0; i < m->ninputs; i++) free(x[i]);
    free(y);
    free(params);
    free(states);
    free(tt);
    free(te);
    free(count);
    free(bias);
    return 0;
}
