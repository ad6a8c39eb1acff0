/* algo_test.c — the balancing algorithms' machinery in the generated
 * cgmnist program (ALGORITHMS §3-§5):
 *   - the norms the fused update reports equal |grad|^2 and |param|^2
 *     computed separately from the gradient and parameter buffers;
 *   - the cut graph gives the normal graph's output when every squeeze mean
 *     equals the example's own squeeze vector (a batch of one repeated
 *     example, whose "training set" mean is itself);
 *   - running gate means move on regular steps only, per branch and per
 *     MMTM, and equal the batch mean of the gates after the first step;
 *   - evaluation never reads a gate mean (garbage in them changes nothing);
 *   - parameter groups: main_k holds branch k, bypass_k the shared squeeze
 *     FC and k's excitation FC. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "mmrt_cpu.h"

extern const rt_model mm_model;

static int find_state(const rt_model *m, const char *name) {
    for (int i = 0; i < m->nstates; i++)
        if (strcmp(m->states[i].name, name) == 0) return i;
    return -1;
}

int main(void) {
    const rt_model *m = &mm_model;
    const rt_backend *be = m->backend;
    const int B = 8;
    rt_exec *e = be->create(m, B);
    rt_rng r;
    rt_rng_seed(&r, 5);
    size_t np = m->params_floats, ns = m->states_floats + 1;
    float *w0 = calloc(np, sizeof(float)), *s0 = calloc(ns, sizeof(float)), *buf = calloc(np > ns ? np : ns, sizeof(float));
    for (int i = 0; i < m->nparams; i++) {
        const rt_param_info *p = &m->params[i];
        for (size_t j = 0; j < p->numel; j++)
            w0[p->off + j] = p->init == RT_INIT_UNIFORM ? (float)((2 * rt_rng_uniform(&r) - 1) * p->bound) : (float)(p->init == RT_INIT_ONE);
    }
    for (int i = 0; i < m->nstates; i++)
        for (size_t j = 0; j < m->states[i].numel; j++) s0[m->states[i].off + j] = m->states[i].init;
    rt_batch b = {B, {0}, NULL};
    float *x[RT_MAXIN];
    for (int i = 0; i < m->ninputs; i++) {
        x[i] = calloc(m->inputs[i].numel * B, sizeof(float));
        for (size_t j = 0; j < m->inputs[i].numel * B; j++) x[i][j] = (float)rt_rng_uniform(&r);
        b.x[i] = x[i];
    }
    int32_t y[8];
    for (int k = 0; k < B; k++) y[k] = k % m->classes;
    b.y = y;
    const int vt = rt_find_variant(m, RT_VAR_TRAIN, -1), ve = rt_find_variant(m, RT_VAR_EVAL, -1);
    const int vc = rt_find_variant(m, RT_VAR_CUT, -1), vs = rt_find_variant(m, RT_VAR_SQUEEZE, -1);
    const int vr0 = rt_find_variant(m, RT_VAR_REBALANCE, 0);
    REQUIRE(vt >= 0 && ve >= 0 && vc >= 0 && vs >= 0 && vr0 >= 0, "cgmnist lacks a variant");
    rt_result res;

    /* 1. Fused norms against the buffers (with an L1 term in the gradient). */
    be->write(e, RT_ARENA_PARAMS, w0);
    be->write(e, RT_ARENA_STATES, s0);
    rt_hyper h = {{.lr = 0.05f, .momentum = 0.9f, .weight_decay = 1e-3f, .l1 = 1e-4f}, 0, 1, 0, NULL, NULL, NULL, NULL};
    be->train(e, vt, &b, &h, &res);
    int worst = -1;
    double we = 0;
    for (int p = 0; p < m->nparams; p++) {
        const rt_param_info *pi = &m->params[p];
        double g2 = 0, wsq = 0;
        for (size_t j = 0; j < pi->numel; j++) {
            double w = w0[pi->off + j], g = e->grads[pi->off + j] + (w > 0 ? h.opt.l1 : w < 0 ? -h.opt.l1 : 0);
            g2 += g * g;
            wsq += w * w;
        }
        double err = fmax(check_rel(res.norms[p][0], g2, 1e-30), check_rel(res.norms[p][1], wsq, 1e-30));
        if (err > we) we = err, worst = p;
    }
    CHECK(we < 1e-5, "fused norms differ from the buffers' by %.2e (parameter %s)", we, worst >= 0 ? m->params[worst].name : "?");
    printf("fused norms: %d parameters, worst relative difference %.2e\n", m->nparams, we);

    /* 2. Gate means: after the first regular step (acc_n = 0) each is the
     * batch mean of its gates; a re-balancing or evaluation step leaves them. */
    be->read(e, RT_ARENA_STATES, buf);
    int moved = 0;
    for (int f = 0; f < m->nfusions; f++)
        for (int k = 0; k < m->fusions[f].nb; k++) {
            const rt_state_info *si = &m->states[m->fusions[f].gate_state[k]];
            double sum = 0;
            for (size_t j = 0; j < si->numel; j++) {
                float v = buf[si->off + j];
                CHECK(v > 0 && v < 1, "%s[%zu] = %g is not a mean of sigmoid gates", si->name, j, v);
                sum += v;
            }
            moved += sum > 0;
        }
    CHECK(moved == 2 * m->nfusions, "only %d of %d gate means moved on a regular step", moved, 2 * m->nfusions);
    float *g1 = calloc(ns, sizeof(float));
    memcpy(g1, buf, sizeof(float) * ns);
    h.acc_n = 1;
    be->train(e, vr0, &b, &h, &res);
    be->eval(e, ve, &b, &h, &res);
    be->read(e, RT_ARENA_STATES, buf);
    for (int f = 0; f < m->nfusions; f++)
        for (int k = 0; k < m->fusions[f].nb; k++) {
            const rt_state_info *si = &m->states[m->fusions[f].gate_state[k]];
            CHECK(memcmp(buf + si->off, g1 + si->off, sizeof(float) * si->numel) == 0, "%s moved on a re-balancing or evaluation step",
                  si->name);
        }
    printf("gate means: set by the regular step (%d of them), unchanged by re-balancing and evaluation\n", moved);

    /* 3. Evaluation ignores the gate means. */
    be->eval(e, ve, &b, &h, &res);
    float *l0 = malloc(sizeof(float) * B * m->classes);
    memcpy(l0, res.logits[0], sizeof(float) * B * m->classes);
    be->read(e, RT_ARENA_STATES, buf);
    for (int f = 0; f < m->nfusions; f++)
        for (int k = 0; k < m->fusions[f].nb; k++) {
            const rt_state_info *si = &m->states[m->fusions[f].gate_state[k]];
            for (size_t j = 0; j < si->numel; j++) buf[si->off + j] = 1e6f;
        }
    be->write(e, RT_ARENA_STATES, buf);
    be->eval(e, ve, &b, &h, &res);
    CHECK(memcmp(l0, res.logits[0], sizeof(float) * B * m->classes) == 0, "evaluation read a gate mean");
    printf("evaluation: independent of the gate means\n");

    /* 4. The cut graph equals the normal one when the squeeze means are the
     * examples' own squeeze vectors: every example the same. */
    for (int i = 0; i < m->ninputs; i++)
        for (int c = 0; c < m->inputs[i].shape[0]; c++) {
            size_t P = m->inputs[i].numel / (size_t)m->inputs[i].shape[0];
            for (int k = 1; k < B; k++) memcpy(x[i] + ((size_t)c * B + k) * P, x[i] + (size_t)c * B * P, sizeof(float) * P);
        }
    h.acc_n = 0;
    be->eval(e, vs, &b, &h, &res); /* the squeeze means over this "training set" */
    be->eval(e, ve, &b, &h, &res);
    float *full[RT_MAXB];
    for (int k = 0; k < m->nbranches; k++) {
        full[k] = malloc(sizeof(float) * B * m->classes);
        memcpy(full[k], res.logits[k], sizeof(float) * B * m->classes);
    }
    be->eval(e, vc, &b, &h, &res);
    double ce = 0;
    for (int k = 0; k < m->nbranches; k++)
        for (int j = 0; j < B * m->classes; j++) ce = fmax(ce, check_rel(res.logits[k][j], full[k][j], 1e-30));
    CHECK(ce < 1e-4, "the cut graph differs from the normal graph by %.2e with matching squeeze means", ce);
    printf("cut graph: equal to the normal graph (worst relative difference %.2e) when squeeze means match\n", ce);
    /* ... and it does cut: other squeeze means change the output. */
    be->read(e, RT_ARENA_STATES, buf);
    for (int f = 0; f < m->nfusions; f++)
        for (int k = 0; k < m->fusions[f].nb; k++) {
            const rt_state_info *si = &m->states[m->fusions[f].squeeze_state[k]];
            for (size_t j = 0; j < si->numel; j++) buf[si->off + j] += 1.0f;
        }
    be->write(e, RT_ARENA_STATES, buf);
    be->eval(e, vc, &b, &h, &res);
    double d = 0;
    for (int j = 0; j < B * m->classes; j++) d = fmax(d, fabs(res.logits[0][j] - full[0][j]));
    CHECK(d > 1e-4, "changing the squeeze means did not change the cut graph's output");

    /* 5. Groups. */
    size_t main0 = 0, bypass0 = 0, main1 = 0, bypass1 = 0;
    for (int p = 0; p < m->nparams; p++) {
        const rt_param_info *pi = &m->params[p];
        unsigned g = pi->groups;
        if (g & RT_GROUP_MAIN(0)) main0 += pi->numel;
        if (g & RT_GROUP_BYPASS(0)) bypass0 += pi->numel;
        if (g & RT_GROUP_MAIN(1)) main1 += pi->numel;
        if (g & RT_GROUP_BYPASS(1)) bypass1 += pi->numel;
        bool squeeze = strstr(pi->name, ".squeeze.") != NULL, ex_c = strstr(pi->name, ".excite_c.") != NULL,
             ex_g = strstr(pi->name, ".excite_g.") != NULL;
        if (squeeze) CHECK(g == (RT_GROUP_BYPASS(0) | RT_GROUP_BYPASS(1)), "%s: groups 0x%x", pi->name, g);
        else if (ex_c) CHECK(g == RT_GROUP_BYPASS(0), "%s: groups 0x%x", pi->name, g);
        else if (ex_g) CHECK(g == RT_GROUP_BYPASS(1), "%s: groups 0x%x", pi->name, g);
        else if (pi->name[0] == 'c') CHECK(g == RT_GROUP_MAIN(0), "%s: groups 0x%x", pi->name, g);
        else if (pi->name[0] == 'g') CHECK(g == RT_GROUP_MAIN(1), "%s: groups 0x%x", pi->name, g);
        else CHECK(0, "%s belongs to no branch and no MMTM", pi->name);
    }
    CHECK(main0 == 67760 && main1 == 66156 && bypass0 == 18688 && bypass1 == 18688, "group sizes %zu %zu %zu %zu", main0, bypass0,
          main1, bypass1);
    printf("groups: main_c %zu, bypass_c %zu, main_g %zu, bypass_g %zu\n", main0, bypass0, main1, bypass1);
    be->destroy(e);
    for (int i = 0; i < m->ninputs; i++) free(x[i]);
    for (int k = 0; k < m->nbranches; k++) free(full[k]);
    free(w0);
    free(s0);
    free(buf);
    free(g1);
    free(l0);
    return check_summary("algo_test (cgmnist)");
}
