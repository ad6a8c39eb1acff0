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

#include "check.h"
#include "mmrt_cpu.h"

extern const rt_model mm_model;

static const float *get(const rt_ckpt *c, const char *name, size_t want) {
    int nd;
    int64_t sh[8];
    const float *p = rt_ckpt_get(c, name, RT_F32, &nd, sh);
    REQUIRE(p, "the reference has no tensor '%s'", name);
    size_t n = 1;
    for (int d = 0; d < nd; d++) n *= (size_t)sh[d];
    REQUIRE(n == want, "'%s' has %zu elements in the reference, %zu here", name, n, want);
    return p;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "cgmnist_ref.safetensors";
    const double tol = 1e-4;
    const rt_model *m = &mm_model;
    char err[512];
    rt_ckpt *c = rt_ckpt_load(path, err, sizeof err);
    REQUIRE(c, "%s", err);
    int nd;
    int64_t sh[8];
    const int64_t *labels = rt_ckpt_get(c, "labels", RT_I64, &nd, sh);
    REQUIRE(labels, "no labels in %s", path);
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

    int fails = 0, n = 0; /* parameter gradients: failed, compared */
    double worst = 0, mx;
    const float *ref_loss = get(c, "loss", 1);
    float loss = (float)r.loss;
    double el = check_rel_l2(&loss, ref_loss, 1, 0, &mx);
    printf("%-44s rel.err %.2e  (%.6f vs %.6f)\n", "loss", el, loss, ref_loss[0]);
    CHECK(el <= tol, "loss: rel.err %.2e", el);
    for (int k = 0; k < m->nbranches; k++) {
        char name[256];
        snprintf(name, sizeof name, "logits.%s", m->branches[k]);
        double er = check_rel_l2(r.logits[k], get(c, name, (size_t)B * m->classes), (size_t)B * m->classes, 0, &mx);
        printf("%-44s rel.err %.2e  max abs %.2e\n", name, er, mx);
        CHECK(er <= tol, "%s: rel.err %.2e", name, er);
    }
    for (int i = 0; i < m->nparams; i++) {
        char name[512];
        snprintf(name, sizeof name, "grad.%s", m->params[i].name);
        double er = check_rel_l2(e->grads + m->params[i].off, get(c, name, m->params[i].numel), m->params[i].numel, 0, &mx);
        bool ok = er <= tol;
        CHECK(ok, "%s: rel.err %.2e", name, er);
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
    return check_summary(strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0]);
}
