/* gradcheck.c — finite-difference check of the generated backward pass.
 *
 * Linked with one generated model (mmc emit) and the runtime. For every
 * training variant of the model (train, rebalance-*, rubi-*): random
 * parameters and a random batch, one forward+backward, then for a sample of
 * entries of every parameter the central difference (L(w+h) - L(w-h)) / 2h
 * against the computed gradient. Every sampled entry must agree (a ReLU or
 * max-pool kink inside [w-h, w+h] may spoil a rare one).
 *
 * Built with -DMMNET_F64: the same generated kernels in double precision,
 * so the differences are accurate to many digits and the tolerance can be
 * tight (1e-4 relative, 1e-3 for a rare entry near a kink, and a median under 1e-6). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef MMNET_F64
#error "gradcheck is built with -DMMNET_F64"
#endif
#include "check.h"
#include "mmrt_cpu.h"

extern const rt_model mm_model;

static double loss_of(rt_exec *e, int v, const rt_batch *b, const rt_hyper *h, mm_real *states0) {
    /* Running statistics and accumulators change on every call; restore them
     * so each evaluation sees the same state. */
    memcpy(e->states, states0, sizeof(mm_real) * (e->m->states_floats + 1));
    rt_result r;
    memset(&r, 0, sizeof r);
    ((const rt_cpu_impl *)e->m->impl)->run[v](e, b, h, &r);
    return r.loss;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    const rt_model *m = &mm_model;
    int B = argc > 1 ? atoi(argv[1]) : 4;
    rt_exec *e = m->backend->create(m, B);
    rt_rng r;
    rt_rng_seed(&r, 1234);
    for (int i = 0; i < m->nparams; i++) {
        const rt_param_info *p = &m->params[i];
        for (size_t j = 0; j < p->numel; j++) {
            mm_real bound = p->init == RT_INIT_UNIFORM ? p->bound : 0.5f;
            e->params[p->off + j] = (mm_real)((2 * rt_rng_uniform(&r) - 1) * bound) + (p->init == RT_INIT_ONE ? 1.0f : 0.0f);
        }
    }
    mm_real *states0 = calloc(m->states_floats + 1, sizeof(mm_real));
    for (int i = 0; i < m->nstates; i++)
        for (size_t j = 0; j < m->states[i].numel; j++)
            states0[m->states[i].off + j] = m->states[i].kind == RT_STATE_BN_VAR ? 1.0f : (mm_real)(0.3 + 0.4 * rt_rng_uniform(&r));
    rt_batch b = {B, {0}, NULL};
    for (int i = 0; i < m->ninputs; i++) {
        mm_real *x = malloc(sizeof(mm_real) * m->inputs[i].numel * (size_t)B);
        for (size_t j = 0; j < m->inputs[i].numel * (size_t)B; j++) x[j] = (mm_real)rt_rng_normal(&r);
        b.x[i] = x;
    }
    int32_t *y = malloc(sizeof(int32_t) * (size_t)B);
    for (int k = 0; k < B; k++) y[k] = (int32_t)rt_rng_below(&r, (uint32_t)m->classes);
    b.y = y;
    rt_hyper h = {{.lr = 0.01f, .momentum = 0.9f}, 3, 77, 5, NULL, NULL, NULL, NULL};

    int checked_variants = 0;
    for (int v = 0; v < m->nvariants; v++) {
        const rt_variant_info *vi = &m->variants[v];
        if (!vi->has_grad) continue;
        checked_variants++;
        double L0 = loss_of(e, v, &b, &h, states0);
        mm_real *grad = malloc(sizeof(mm_real) * m->params_floats);
        memcpy(grad, e->grads, sizeof(mm_real) * m->params_floats);
        double errs[4096];
        int ne = 0, bad = 0, with_grad = 0;
        for (int i = 0; i < m->nparams; i++) {
            const rt_param_info *p = &m->params[i];
            if (!vi->has_grad[i]) continue;
            with_grad++;
            int samples = p->numel < 6 ? (int)p->numel : 6;
            for (int s = 0; s < samples && ne < 4096; s++) {
                size_t j = p->numel <= 6 ? (size_t)s : rt_rng_below(&r, (uint32_t)p->numel);
                mm_real *w = &e->params[p->off + j], w0 = *w;
                const mm_real eps = 1e-5 * fmax(1.0, fabs(w0));
                *w = w0 + eps;
                double lp = loss_of(e, v, &b, &h, states0);
                *w = w0 - eps;
                double lm = loss_of(e, v, &b, &h, states0);
                *w = w0;
                double fd = (lp - lm) / (2.0 * eps), an = grad[p->off + j];
                /* relative to the larger of the two; tiny gradients: compared absolutely */
                double err = check_rel(an, fd, fmax(fabs(an), 1e-5));
                errs[ne++] = err;
                if (err > 1e-4) {
                    bad++;
                    printf("  %-12s %-40s [%zu] analytic %+.6e  numeric %+.6e  rel.err %.3g\n", vi->name, p->name, j, an, fd, err);
                }
            }
        }
        qsort(errs, (size_t)ne, sizeof(double), cmp);
        double median = ne ? errs[ne / 2] : 0, p95 = ne ? errs[(int)(0.95 * (ne - 1))] : 0;
        bool ok = ne > 0 && median < 1e-6 && errs[ne - 1] < 1e-3 && bad <= ne / 100;
        printf("%s %-14s loss %.5f  %d parameters with gradients, %d entries: median rel.err %.2e, 95th %.2e, %d over 1e-4, max %.2e\n",
               ok ? "ok  " : "FAIL", vi->name, L0, with_grad, ne, median, p95, bad, ne ? errs[ne - 1] : 0);
        CHECK(ok, "%s: median rel.err %.2e (bound 1e-6), max %.2e (bound 1e-3), %d of %d entries over 1e-4 (at most %d)", vi->name,
              median, ne ? errs[ne - 1] : 0, bad, ne, ne / 100);
        free(grad);
    }
    REQUIRE(checked_variants > 0, "the model has no training variant");
    m->backend->destroy(e);
    for (int i = 0; i < m->ninputs; i++) free((void *)b.x[i]);
    free(y);
    free(states0);
    return check_summary(strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0]);
}
