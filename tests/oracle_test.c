/* oracle_test.c — the generated cgmnist program against PyTorch.
 *
 * tests/oracle/cgmnist_ref.safetensors (made by make_reference.py) holds a
 * batch, weights under mmc's parameter names, and PyTorch's float64 logits,
 * loss and parameter gradients. This runs the generated training graph
 * (forward and backward, without the update) on the same batch and weights
 * and requires every tensor to agree to a relative error of 1e-4 (the norm
 * of the difference over the norm of the reference). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mmrt_cpu.h"

extern const rt_model mm_model;

static const float *get(const rt_ckpt *c, const char *name, size_t want) {
    int nd;
    int64_t sh[8];
    const float *p = rt_ckpt_get(c, name, RT_F32, &nd, sh);
    if (!p) {
        fprintf(stderr, "FAIL: the reference has no tensor '%s'\n", name);
        exit(1);
    }
    size_t n = 1;
    for (int d = 0; d < nd; d++) n *= (size_t)sh[d];
    if (n != want) {
        fprintf(stderr, "FAIL: '%s' has %zu elements in the reference, %zu here\n", name, n, want);
        exit(1);
    }
    return p;
}

static double rel_err(const float *a, const float *ref, size_t n, double *maxabs) {
    double d = 0, r = 0;
    *maxabs = 0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)a[i] - ref[i];
        d += e * e;
        r += (double)ref[i] * ref[i];
        if (fabs(e) > *maxabs) *maxabs = fabs(e);
    }
    return sqrt(d) / (sqrt(r) > 1e-30 ? sqrt(r) : 1e-30);
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "cgmnist_ref.safetensors";
    const double tol = 1e-4;
    const rt_model *m = &mm_model;
    char err[512];
    rt_ckpt *c = rt_ckpt_load(path, err, sizeof err);
    if (!c) {
        fprintf(stderr, "FAIL: %s\n", err);
        return 1;
    }
    int nd;
    int64_t sh[8];
    const int64_t *labels = rt_ckpt_get(c, "labels", RT_I64, &nd, sh);
    if (!labels) {
        fprintf(stderr, "FAIL: no labels in %s\n", path);
        return 1;
    }
    const int B = (int)sh[0];
    rt_exec *e = m->backend->create(m, B);
    for (int i = 0; i < m->nparams; i++) {
        char name[512];
        snprintf(name, sizeof name, "param.%s", m->params[i].name);
        memcpy(e->params + m->params[i].off, get(c, name, m->params[i].numel), sizeof(float) * m->params[i].numel);
    }
    for (int i = 0; i < m->nstates; i++)
        for (size_t j = 0; j < m->states[i].numel; j++) e->states[m->states[i].off + j] = m->states[i].init;
    rt_batch b = {B, {0}, NULL};
    for (int i = 0; i < m->ninputs; i++) {
        char name[256];
        snprintf(name, sizeof name, "input.%s", m->inputs[i].name);
        /* PyTorch's [B][C][...] to the back end's channel-major [C][B][...]. */
        const float *src = get(c, name, m->inputs[i].numel * (size_t)B);
        size_t C = (size_t)m->inputs[i].shape[0], P = m->inputs[i].numel / C;
        float *x = malloc(sizeof(float) * m->inputs[i].numel * (size_t)B);
        for (int k = 0; k < B; k++)
            for (size_t ch = 0; ch < C; ch++) memcpy(x + (ch * B + k) * P, src + ((size_t)k * C + ch) * P, sizeof(float) * P);
        b.x[i] = x;
    }
    int32_t *y = malloc(sizeof(int32_t) * (size_t)B);
    for (int k = 0; k < B; k++) y[k] = (int32_t)labels[k];
    b.y = y;
    int v = rt_find_variant(m, RT_VAR_TRAIN, -1);
    rt_hyper h = {0};
    rt_result r;
    memset(&r, 0, sizeof r);
    ((const rt_cpu_impl *)m->impl)->run[v](e, &b, &h, &r);

    int fails = 0, n = 0;
    double worst = 0, mx;
    const float *ref_loss = get(c, "loss", 1);
    float loss = (float)r.loss;
    double el = rel_err(&loss, ref_loss, 1, &mx);
    printf("%-44s rel.err %.2e  (%.6f vs %.6f)\n", "loss", el, loss, ref_loss[0]);
    fails += !(el <= tol);
    for (int k = 0; k < m->nbranches; k++) {
        char name[256];
        snprintf(name, sizeof name, "logits.%s", m->branches[k]);
        double er = rel_err(r.logits[k], get(c, name, (size_t)B * m->classes), (size_t)B * m->classes, &mx);
        printf("%-44s rel.err %.2e  max abs %.2e\n", name, er, mx);
        fails += !(er <= tol);
    }
    for (int i = 0; i < m->nparams; i++) {
        char name[512];
        snprintf(name, sizeof name, "grad.%s", m->params[i].name);
        double er = rel_err(e->grads + m->params[i].off, get(c, name, m->params[i].numel), m->params[i].numel, &mx);
        bool ok = er <= tol;
        if (!ok || getenv("VERBOSE")) printf("%-44s rel.err %.2e  max abs %.2e%s\n", name, er, mx, ok ? "" : "  FAIL");
        if (er > worst) worst = er;
        fails += !ok;
        n++;
    }
    printf("%d parameter gradients, worst rel.err %.2e (tolerance %.0e): %s\n", n, worst, tol, fails ? "FAIL" : "ok");
    m->backend->destroy(e);
    rt_ckpt_free(c);
    for (int i = 0; i < m->ninputs; i++) free((void *)b.x[i]);
    free(y);
    return fails ? 1 : 0;
}
