/* rt_eval.c — a run's data and batches, the accuracy of the prediction and
 * of each branch on a split, the conditional utilization rate (ALGORITHMS
 * §3), and the evaluations of a checkpoint (./prog eval, ./prog util). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rt_trainer.h"

/* ---- data and batches -------------------------------------------------------- */
void rt_load_data(const rt_model *m, const rt_config *cfg, const char *dir, rt_data *d) {
    char err[1024];
    if (strcmp(cfg->data, "synthetic") == 0) {
        rt_make_synthetic(m, cfg->synth_train, cfg->synth_test, cfg->seed, d);
        return;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        if (strcmp(dir, RT_DEFAULT_DATA) == 0)
            rt_die("the data directory %s does not exist: install Debian's Fashion-MNIST (apt-get install dataset-fashion-mnist) "
                   "or give another directory of IDX files with --data DIR", dir);
        rt_die("the data directory '%s' %s", dir, errno == ENOENT ? "does not exist" : "is not a directory");
    }
    if (rt_load_colored_gray(dir, cfg->variance, cfg->val_size, cfg->limit_train, cfg->seed, d, err, sizeof err) != 0)
        rt_die("%s", err);
}

void rt_gather(Trainer *T, const rt_dataset *ds, const int *idx, int B, rt_batch *b) {
    const rt_model *m = T->m;
    b->B = B;
    for (int i = 0; i < m->ninputs; i++) {
        int s = -1;
        for (int j = 0; j < ds->nstreams; j++)
            if (strcmp(ds->stream[j], m->inputs[i].name) == 0) s = j;
        if (s < 0) rt_die("the data set has no input '%s'", m->inputs[i].name);
        /* Feature maps go to the back end channel-major: [C][B][positions]. */
        const size_t n = ds->numel[s], C = (size_t)m->inputs[i].shape[0], P = n / C;
        for (int k = 0; k < B; k++)
            for (size_t c = 0; c < C; c++)
                memcpy(T->bx[i] + (c * B + k) * P, ds->x[s] + (size_t)idx[k] * n + c * P, sizeof(float) * P);
        b->x[i] = T->bx[i];
    }
    for (int k = 0; k < B; k++) T->by[k] = ds->y[idx[k]];
    b->y = T->by;
}

/* ---- evaluation ---------------------------------------------------------------- */
static int argmax(const float *z, int k) {
    int a = 0;
    for (int i = 1; i < k; i++)
        if (z[i] > z[a]) a = i;
    return a;
}

Score rt_evaluate(Trainer *T, const rt_dataset *ds, int v) {
    const rt_model *m = T->m;
    Score s = {0};
    long right = 0, rb[RT_MAXB] = {0};
    double loss = 0;
    int *idx = rt_alloc(sizeof(int) * (size_t)T->batch);
    rt_hyper h = {0};
    for (int start = 0; start < ds->n; start += T->batch) {
        int B = ds->n - start < T->batch ? ds->n - start : T->batch;
        for (int k = 0; k < B; k++) idx[k] = start + k;
        rt_batch b;
        rt_gather(T, ds, idx, B, &b);
        rt_result r;
        T->be->eval(T->e, v, &b, &h, &r);
        loss += r.loss * B;
        for (int k = 0; k < B; k++) {
            if (r.pred && argmax(r.pred + (size_t)k * m->classes, m->classes) == b.y[k]) right++;
            for (int br = 0; br < m->nbranches; br++)
                if (r.logits[br] && argmax(r.logits[br] + (size_t)k * m->classes, m->classes) == b.y[k]) rb[br]++;
        }
    }
    free(idx);
    if (ds->n > 0) {
        s.acc = (double)right / ds->n;
        s.loss = loss / ds->n;
        for (int br = 0; br < m->nbranches; br++) s.branch[br] = (double)rb[br] / ds->n;
    }
    return s;
}

/* The conditional utilization rate (§3) of the network now in the back end:
 * the squeeze means over the training set (evaluation mode), then each
 * branch's test accuracy with and without the cross-modal flow. */
Util rt_utilization(Trainer *T) {
    const rt_model *m = T->m;
    Util u = {0};
    int vs = rt_find_variant(m, RT_VAR_SQUEEZE, -1), vc = rt_find_variant(m, RT_VAR_CUT, -1), ve = rt_find_variant(m, RT_VAR_EVAL, -1);
    if (vs < 0 || vc < 0 || m->nbranches < 2) return u;
    /* Zero the squeeze means, then accumulate them over the training set. */
    T->be->read(T->e, RT_ARENA_STATES, T->states);
    for (int i = 0; i < m->nstates; i++)
        if (m->states[i].kind == RT_STATE_SQUEEZE_MEAN) memset(T->states + m->states[i].off, 0, sizeof(float) * m->states[i].numel);
    T->be->write(T->e, RT_ARENA_STATES, T->states);
    const rt_dataset *tr = &T->data.train;
    int *idx = rt_alloc(sizeof(int) * (size_t)T->batch);
    rt_hyper h = {0};
    for (int start = 0; start < tr->n; start += T->batch) {
        int B = tr->n - start < T->batch ? tr->n - start : T->batch;
        for (int k = 0; k < B; k++) idx[k] = start + k;
        rt_batch b;
        rt_gather(T, tr, idx, B, &b);
        rt_result r;
        h.acc_n = start;
        T->be->eval(T->e, vs, &b, &h, &r);
    }
    free(idx);
    Score full = rt_evaluate(T, &T->data.test, ve), cut = rt_evaluate(T, &T->data.test, vc);
    u.ok = true;
    double lo = INFINITY, hi = -INFINITY;
    for (int k = 0; k < m->nbranches; k++) {
        u.a[k] = full.branch[k];
        u.a_cut[k] = cut.branch[k];
        u.u[k] = u.a[k] > 0 ? (u.a[k] - u.a_cut[k]) / u.a[k] : NAN;
        if (u.u[k] < lo) lo = u.u[k];
        if (u.u[k] > hi) hi = u.u[k];
    }
    u.d_util = m->nbranches == 2 ? u.u[0] - u.u[1] : hi - lo;
    return u;
}

cJSON *rt_utilization_json(const rt_model *m, const Util *u) {
    cJSON *o = cJSON_CreateObject();
    char key[64];
    for (int k = 0; k < m->nbranches; k++) {
        snprintf(key, sizeof key, "A(f%d)", k);
        cJSON_AddNumberToObject(o, key, u->a[k]);
    }
    for (int k = 0; k < m->nbranches; k++) {
        snprintf(key, sizeof key, "A(f%d')", k);
        cJSON_AddNumberToObject(o, key, u->a_cut[k]);
    }
    for (int k = 0; k < m->nbranches; k++) {
        /* u(m_other | m_k): how much branch k needs the other modalities. */
        if (m->nbranches == 2) snprintf(key, sizeof key, "u(m%d|m%d)", 1 - k, k);
        else snprintf(key, sizeof key, "u(others|m%d)", k);
        cJSON_AddNumberToObject(o, key, u->u[k]);
    }
    return o;
}

static void print_util(const rt_model *m, const Util *u) {
    for (int k = 0; k < m->nbranches; k++) printf("A(f%d)  %.4f   branch %s\n", k, u->a[k], m->branches[k]);
    for (int k = 0; k < m->nbranches; k++) printf("A(f%d') %.4f   branch %s, cross-modal flow cut\n", k, u->a_cut[k], m->branches[k]);
    for (int k = 0; k < m->nbranches; k++) {
        if (m->nbranches == 2) printf("u(m%d|m%d) %.4f\n", 1 - k, k, u->u[k]);
        else printf("u(others|m%d) %.4f\n", k, u->u[k]);
    }
    printf("d_util %.4f\n", u->d_util);
}

/* ./prog eval / ./prog util */
int rt_eval_checkpoint(const rt_model *m, const char *ckpt, const char *data_dir, int batch, bool util) {
    Trainer T = {0};
    T.m = m;
    T.be = m->backend;
    T.cfg = m->cfg;
    T.batch = batch;
    size_t np = m->params_floats, ns = m->states_floats + 1;
    T.params = rt_alloc(sizeof(float) * np);
    T.states = rt_alloc(sizeof(float) * ns);
    rt_ckpt *c = rt_run_load_tensors(m, ckpt, T.params, T.states, NULL);
    /* The data as the run made it: its seed, colours and split. */
    const char *v;
    if ((v = rt_ckpt_meta(c, "seed"))) T.cfg.seed = strtoull(v, NULL, 10);
    if ((v = rt_ckpt_meta(c, "variance"))) T.cfg.variance = (float)atof(v);
    if ((v = rt_ckpt_meta(c, "val_size"))) T.cfg.val_size = atoi(v);
    if ((v = rt_ckpt_meta(c, "limit_train"))) T.cfg.limit_train = atoi(v);
    if (!data_dir) data_dir = (v = rt_ckpt_meta(c, "data_dir")) && v[0] ? v : T.cfg.data_dir[0] ? T.cfg.data_dir : RT_DEFAULT_DATA;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", data_dir);
    rt_ckpt_free(c);
    for (int i = 0; i < m->ninputs; i++) T.bx[i] = rt_alloc(sizeof(float) * m->inputs[i].numel * (size_t)batch);
    T.by = rt_alloc(sizeof(int32_t) * (size_t)batch);
    rt_load_data(m, &T.cfg, dir, &T.data);
    T.e = T.be->create(m, batch);
    T.be->write(T.e, RT_ARENA_PARAMS, T.params);
    T.be->write(T.e, RT_ARENA_STATES, T.states);
    if (!util) {
        Score s = rt_evaluate(&T, &T.data.test, rt_find_variant(m, RT_VAR_EVAL, -1));
        printf("test accuracy %.4f  (%d examples)\n", s.acc, T.data.test.n);
        for (int k = 0; k < m->nbranches; k++) printf("  branch %-10s %.4f\n", m->branches[k], s.branch[k]);
    } else {
        Util u = rt_utilization(&T);
        if (!u.ok) rt_die("the conditional utilization rate needs a model with MMTMs between two or more branches");
        print_util(m, &u);
    }
    T.be->destroy(T.e);
    rt_data_free(&T.data);
    for (int i = 0; i < m->ninputs; i++) free(T.bx[i]);
    free(T.by);
    free(T.params);
    free(T.states);
    return 0;
}
