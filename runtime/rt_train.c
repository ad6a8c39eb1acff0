/* rt_train.c — training (ALGORITHMS §2, §4-§7), evaluation and the
 * conditional utilization rate (§3).
 *
 * One epoch: shuffle, then for each batch ask the controller what kind of
 * step comes next (regular, re-balance branch k, RUBi), run it, and on
 * regular steps add the step's norms to the conditional learning speed.
 * After the epoch: validation and test accuracy of the prediction and of
 * each branch, metrics.jsonl, best.ckpt (best validation accuracy) and
 * last.ckpt, which holds everything --resume needs to continue exactly as
 * an uninterrupted run would. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "rt_policy.h"
#include "rt_train.h"

#define CKPT_FORMAT "mmnet-checkpoint-1"

typedef struct {
    const rt_model *m;
    const rt_backend *be;
    rt_exec *e;
    rt_config cfg;
    const rt_train_opts *o;
    rt_data data;
    float *params, *mom, *states;  /* host copies for checkpoints */
    float *best_params, *best_states;
    float *bx[RT_MAXIN];
    int32_t *by;
    int batch;
    /* run state (all of it goes into last.ckpt) */
    int epoch;                     /* epochs completed */
    long step, regular_steps;
    float lr;
    double best_val, best_test, best_branch_test[RT_MAXB], best_d_speed;
    int best_epoch;
    rt_speed speed;
    rt_controller ctl;
    rt_rng shuffle;
    double plateau_best;
    int plateau_stale, perfect_epochs;
    long kind_count[RT_MAXB + 1];  /* steps of each kind: [0] regular, [1 + k] re-balance k */
    double samples_per_s;
    FILE *steps, *metrics;
} Trainer;

typedef struct {
    double acc, loss, branch[RT_MAXB];
} Score;

static int rt_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* ---- parameters and checkpoints ----------------------------------------- */
static void init_params(const rt_model *m, float *p, uint64_t seed) {
    rt_rng r;
    rt_rng_seed(&r, seed ^ 0x696e6974ULL);
    for (int i = 0; i < m->nparams; i++) {
        const rt_param_info *pi = &m->params[i];
        float *w = p + pi->off;
        for (size_t j = 0; j < pi->numel; j++)
            w[j] = pi->init == RT_INIT_ONE ? 1.0f : pi->init == RT_INIT_ZERO ? 0.0f : (float)((2 * rt_rng_uniform(&r) - 1) * pi->bound);
    }
}

static void init_states(const rt_model *m, float *s) {
    for (int i = 0; i < m->nstates; i++)
        for (size_t j = 0; j < m->states[i].numel; j++) s[m->states[i].off + j] = m->states[i].init;
}

static char *hex_rng(char *buf, const rt_rng *r) {
    sprintf(buf, "%016llx%016llx%016llx%016llx", (unsigned long long)r->s[0], (unsigned long long)r->s[1],
            (unsigned long long)r->s[2], (unsigned long long)r->s[3]);
    return buf;
}

static int parse_rng(const char *s, rt_rng *r) {
    if (!s || strlen(s) != 64) return -1;
    for (int i = 0; i < 4; i++) {
        char part[17];
        memcpy(part, s + 16 * i, 16);
        part[16] = 0;
        char *end;
        r->s[i] = strtoull(part, &end, 16);
        if (*end) return -1;
    }
    return 0;
}

#define MAX_META 64
typedef struct {
    const char *kv[2 * MAX_META];
    char store[MAX_META][160];
    int n;
} Meta;

static void meta_add(Meta *mt, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void meta_add(Meta *mt, const char *key, const char *fmt, ...) {
    if (mt->n == MAX_META) rt_die("internal: too many checkpoint fields");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(mt->store[mt->n], sizeof mt->store[0], fmt, ap);
    va_end(ap);
    mt->kv[2 * mt->n] = key;
    mt->kv[2 * mt->n + 1] = mt->store[mt->n];
    mt->n++;
}

static const char *policy_name(int p) {
    static const char *n[] = {"vanilla", "guided", "random", "rubi"};
    return p >= 0 && p < 4 ? n[p] : "?";
}

/* The checkpoint: parameters under their names (as a PyTorch state dict
 * would hold them), model state, optimizer momentum, and the run state. */
static void save_checkpoint(Trainer *T, const char *name, const float *params, const float *states) {
    const rt_model *m = T->m;
    int n = 0, cap = 2 * m->nparams + m->nstates + 4;
    rt_tensor *t = rt_alloc(sizeof(rt_tensor) * (size_t)cap);
    char **names = rt_alloc(sizeof(char *) * (size_t)cap);
    for (int i = 0; i < m->nparams; i++) {
        const rt_param_info *pi = &m->params[i];
        t[n] = (rt_tensor){pi->name, pi->ndim, {0}, RT_F32, params + pi->off};
        for (int d = 0; d < pi->ndim; d++) t[n].shape[d] = pi->shape[d];
        n++;
    }
    for (int i = 0; i < m->nstates; i++) {
        const rt_state_info *si = &m->states[i];
        t[n] = (rt_tensor){si->name, si->ndim, {0}, RT_F32, states + si->off};
        for (int d = 0; d < si->ndim; d++) t[n].shape[d] = si->shape[d];
        n++;
    }
    for (int i = 0; i < m->nparams; i++) {
        const rt_param_info *pi = &m->params[i];
        names[i] = rt_alloc(strlen(pi->name) + 16);
        sprintf(names[i], "optimizer.momentum.%s", pi->name);
        t[n] = (rt_tensor){names[i], pi->ndim, {0}, RT_F32, T->mom + pi->off};
        for (int d = 0; d < pi->ndim; d++) t[n].shape[d] = pi->shape[d];
        n++;
    }
    double speed[2 * RT_MAXB];
    for (int k = 0; k < m->nbranches; k++) {
        speed[2 * k] = T->speed.main_sum[k];
        speed[2 * k + 1] = T->speed.bypass_sum[k];
    }
    t[n++] = (rt_tensor){"train.speed_sums", 1, {2 * m->nbranches}, RT_F64, speed};
    int64_t kinds[RT_MAXB + 1];
    for (int k = 0; k <= m->nbranches; k++) kinds[k] = T->kind_count[k];
    t[n++] = (rt_tensor){"train.step_kinds", 1, {m->nbranches + 1}, RT_I64, kinds};

    Meta mt = {0};
    char hex[80];
    meta_add(&mt, "format", CKPT_FORMAT);
    meta_add(&mt, "model", "%s", m->name);
    meta_add(&mt, "source", "%s", m->source);
    meta_add(&mt, "epoch", "%d", T->epoch);
    meta_add(&mt, "step", "%ld", T->step);
    meta_add(&mt, "regular_steps", "%ld", T->regular_steps);
    meta_add(&mt, "lr", "%.9g", T->lr);
    meta_add(&mt, "best_val", "%.17g", T->best_val);
    meta_add(&mt, "best_test", "%.17g", T->best_test);
    meta_add(&mt, "best_epoch", "%d", T->best_epoch);
    meta_add(&mt, "best_d_speed", "%.17g", T->best_d_speed);
    char bt[160] = "";
    for (int k = 0; k < m->nbranches; k++) snprintf(bt + strlen(bt), sizeof bt - strlen(bt), "%s%.17g", k ? "," : "", T->best_branch_test[k]);
    meta_add(&mt, "best_branch_test", "%s", bt);
    meta_add(&mt, "rng_shuffle", "%s", hex_rng(hex, &T->shuffle));
    meta_add(&mt, "rng_policy", "%s", hex_rng(hex, &T->ctl.rng));
    meta_add(&mt, "controller_mode", "%d", T->ctl.mode);
    meta_add(&mt, "controller_left", "%d", T->ctl.left);
    meta_add(&mt, "plateau_best", "%.17g", T->plateau_best);
    meta_add(&mt, "plateau_stale", "%d", T->plateau_stale);
    meta_add(&mt, "perfect_epochs", "%d", T->perfect_epochs);
    meta_add(&mt, "samples_per_s", "%.9g", T->samples_per_s);
    meta_add(&mt, "seed", "%llu", T->cfg.seed);
    meta_add(&mt, "data", "%s", T->cfg.data);
    meta_add(&mt, "data_dir", "%s", T->o->data_dir);
    meta_add(&mt, "variance", "%.9g", T->cfg.variance);
    meta_add(&mt, "val_size", "%d", T->cfg.val_size);
    meta_add(&mt, "limit_train", "%d", T->cfg.limit_train);
    meta_add(&mt, "batch", "%d", T->cfg.batch);
    meta_add(&mt, "epochs", "%d", T->cfg.epochs);
    meta_add(&mt, "policy", "%s", policy_name(T->cfg.policy));
    meta_add(&mt, "alpha", "%.9g", T->cfg.alpha);
    meta_add(&mt, "window", "%d", T->cfg.window);
    meta_add(&mt, "warmup", "%d", T->cfg.warmup);
    meta_add(&mt, "rubi_branch", "%d", T->cfg.rubi_branch);
    meta_add(&mt, "rebalance_update", "%d", T->cfg.rebalance_update);
    meta_add(&mt, "momentum", "%.9g", T->cfg.momentum);
    meta_add(&mt, "weight_decay", "%.9g", T->cfg.weight_decay);
    meta_add(&mt, "l1", "%.9g", T->cfg.l1);

    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/%s", T->o->out_dir, name);
    if (rt_ckpt_save(path, t, n, mt.kv, mt.n, err, sizeof err) != 0) rt_die("cannot write the checkpoint: %s", err);
    for (int i = 0; i < m->nparams; i++) free(names[i]);
    free(names);
    free(t);
}

static const char *meta_req(const rt_ckpt *c, const char *path, const char *key) {
    const char *v = rt_ckpt_meta(c, key);
    if (!v) rt_die("%s: not a resumable mmnet checkpoint (no '%s' in its metadata)", path, key);
    return v;
}

/* Load a checkpoint's tensors into host arrays (checking every shape). */
static rt_ckpt *load_tensors(const rt_model *m, const char *path, float *params, float *states, float *mom) {
    char err[512];
    rt_ckpt *c = rt_ckpt_load(path, err, sizeof err);
    if (!c) rt_die("%s", err);
    const char *model = rt_ckpt_meta(c, "model");
    if (model && strcmp(model, m->name) != 0)
        rt_die("%s holds model '%s', but this program trains '%s'", path, model, m->name);
    for (int i = 0; i < m->nparams + m->nstates + (mom ? m->nparams : 0); i++) {
        const char *name;
        int ndim;
        const int *shape;
        size_t numel;
        float *dst;
        char mname[512];
        if (i < m->nparams) {
            const rt_param_info *pi = &m->params[i];
            name = pi->name, ndim = pi->ndim, shape = pi->shape, numel = pi->numel, dst = params + pi->off;
        } else if (i < m->nparams + m->nstates) {
            const rt_state_info *si = &m->states[i - m->nparams];
            name = si->name, ndim = si->ndim, shape = si->shape, numel = si->numel, dst = states + si->off;
        } else {
            const rt_param_info *pi = &m->params[i - m->nparams - m->nstates];
            snprintf(mname, sizeof mname, "optimizer.momentum.%s", pi->name);
            name = mname, ndim = pi->ndim, shape = pi->shape, numel = pi->numel, dst = mom + pi->off;
        }
        int nd;
        int64_t sh[8];
        const float *src = rt_ckpt_get(c, name, RT_F32, &nd, sh);
        if (!src) rt_die("%s: no float32 tensor '%s'", path, name);
        bool ok = nd == ndim;
        for (int d = 0; ok && d < nd; d++) ok = sh[d] == shape[d];
        if (!ok) rt_die("%s: tensor '%s' has another shape than this model's", path, name);
        memcpy(dst, src, sizeof(float) * numel);
    }
    return c;
}

/* ---- batches and evaluation ----------------------------------------------- */
static void gather(Trainer *T, const rt_dataset *ds, const int *idx, int B, rt_batch *b) {
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

static int argmax(const float *z, int k) {
    int a = 0;
    for (int i = 1; i < k; i++)
        if (z[i] > z[a]) a = i;
    return a;
}

/* Accuracy of the prediction and of each branch with variant v (eval or cut). */
static Score evaluate(Trainer *T, const rt_dataset *ds, int v) {
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
        gather(T, ds, idx, B, &b);
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
typedef struct {
    bool ok;
    double a[RT_MAXB], a_cut[RT_MAXB], u[RT_MAXB], d_util;
} Util;

static Util utilization(Trainer *T) {
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
        gather(T, tr, idx, B, &b);
        rt_result r;
        h.acc_n = start;
        T->be->eval(T->e, vs, &b, &h, &r);
    }
    free(idx);
    Score full = evaluate(T, &T->data.test, ve), cut = evaluate(T, &T->data.test, vc);
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

static cJSON *util_json(const rt_model *m, const Util *u) {
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

/* ---- the run directory ------------------------------------------------------ */
static void mkdir_or_die(const char *d) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", d);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(tmp, 0777);
            *p = '/';
        }
    if (mkdir(tmp, 0777) != 0 && errno != EEXIST) rt_die("cannot create the run directory '%s': %s", d, strerror(errno));
    struct stat st;
    if (stat(d, &st) != 0 || !S_ISDIR(st.st_mode)) rt_die("'%s' is not a directory", d);
}

/* On --resume: keep the lines of `file` that the checkpoint covers, so that
 * the logs read as an uninterrupted run's would. keep(line) decides. */
static FILE *reopen_log(const char *dir, const char *name, bool resume, bool (*keep)(const char *, long), long limit, const char *header) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (!resume) {
        FILE *f = rt_fopen(path, "w");
        if (header) fputs(header, f);
        return f;
    }
    FILE *in = fopen(path, "r");
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *out = rt_fopen(tmp, "w");
    if (in) {
        char *line = NULL;
        size_t cap = 0;
        while (getline(&line, &cap, in) > 0)
            if (keep(line, limit)) fputs(line, out);
        free(line);
        fclose(in);
    } else if (header) {
        fputs(header, out);
    }
    if (fclose(out) != 0 || rename(tmp, path) != 0) rt_die("cannot rewrite '%s': %s", path, strerror(errno));
    return rt_fopen(path, "a");
}

static bool keep_step(const char *line, long limit) {
    if (line[0] < '0' || line[0] > '9') return true; /* the header */
    return strtol(line, NULL, 10) <= limit;
}

static bool keep_epoch(const char *line, long limit) {
    const char *p = strstr(line, "\"epoch\":");
    return p && strtol(p + 8, NULL, 10) <= limit;
}

/* ---- training ---------------------------------------------------------------- */
static void load_data(const rt_model *m, const rt_config *cfg, const char *dir, rt_data *d) {
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

static void fmt_eta(char *buf, size_t n, double s) {
    if (!isfinite(s) || s < 0) s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
}

static const char *kind_name(const rt_model *m, int kind, char *buf) {
    if (kind == RT_STEP_REGULAR) return "regular";
    sprintf(buf, "rebalance-%d", kind);
    (void)m;
    return buf;
}

int rt_train(const rt_model *m, const rt_train_opts *o) {
    Trainer T = {0};
    T.m = m;
    T.be = m->backend;
    T.cfg = o->cfg;
    T.o = o;
    T.batch = T.cfg.batch;
    const rt_config *cfg = &T.cfg;
    mkdir_or_die(o->out_dir);

    size_t np = m->params_floats, ns = m->states_floats + 1;
    T.params = rt_alloc(sizeof(float) * np);
    T.mom = rt_alloc(sizeof(float) * np);
    T.states = rt_alloc(sizeof(float) * ns);
    T.best_params = rt_alloc(sizeof(float) * np);
    T.best_states = rt_alloc(sizeof(float) * ns);
    for (int i = 0; i < m->ninputs; i++) T.bx[i] = rt_alloc(sizeof(float) * m->inputs[i].numel * (size_t)T.batch);
    T.by = rt_alloc(sizeof(int32_t) * (size_t)T.batch);

    /* Fresh state, or the checkpoint's. */
    T.lr = cfg->lr;
    T.best_val = -1;
    T.best_epoch = -1;
    T.best_d_speed = NAN;
    T.plateau_best = INFINITY;
    rt_speed_init(&T.speed, m->nbranches);
    rt_controller_init(&T.ctl, cfg, m->nbranches, cfg->seed);
    rt_rng_seed(&T.shuffle, cfg->seed ^ 0x73687566ULL);
    init_params(m, T.params, cfg->seed);
    init_states(m, T.states);
    if (o->resume) {
        char path[4096];
        snprintf(path, sizeof path, "%s/last.ckpt", o->out_dir);
        if (access(path, F_OK) != 0) rt_die("cannot resume: %s does not exist (was the run started with --out %s?)", path, o->out_dir);
        rt_ckpt *c = load_tensors(m, path, T.params, T.states, T.mom);
        if (strcmp(meta_req(c, path, "format"), CKPT_FORMAT) != 0) rt_die("%s: unknown checkpoint format", path);
        T.epoch = atoi(meta_req(c, path, "epoch"));
        T.step = atol(meta_req(c, path, "step"));
        T.regular_steps = atol(meta_req(c, path, "regular_steps"));
        T.lr = (float)atof(meta_req(c, path, "lr"));
        T.best_val = atof(meta_req(c, path, "best_val"));
        T.best_test = atof(meta_req(c, path, "best_test"));
        T.best_epoch = atoi(meta_req(c, path, "best_epoch"));
        T.best_d_speed = atof(meta_req(c, path, "best_d_speed"));
        const char *bt = meta_req(c, path, "best_branch_test");
        for (int k = 0; k < m->nbranches; k++) {
            T.best_branch_test[k] = strtod(bt, (char **)&bt);
            if (*bt == ',') bt++;
        }
        if (parse_rng(meta_req(c, path, "rng_shuffle"), &T.shuffle) || parse_rng(meta_req(c, path, "rng_policy"), &T.ctl.rng))
            rt_die("%s: corrupt random-number state", path);
        T.ctl.mode = atoi(meta_req(c, path, "controller_mode"));
        T.ctl.left = atoi(meta_req(c, path, "controller_left"));
        T.plateau_best = atof(meta_req(c, path, "plateau_best"));
        T.plateau_stale = atoi(meta_req(c, path, "plateau_stale"));
        T.perfect_epochs = atoi(meta_req(c, path, "perfect_epochs"));
        T.samples_per_s = atof(meta_req(c, path, "samples_per_s"));
        int nd;
        int64_t sh[8];
        const double *sp = rt_ckpt_get(c, "train.speed_sums", RT_F64, &nd, sh);
        const int64_t *kc = rt_ckpt_get(c, "train.step_kinds", RT_I64, &nd, sh);
        if (!sp || !kc) rt_die("%s: no training state (train.speed_sums, train.step_kinds)", path);
        for (int k = 0; k < m->nbranches; k++) {
            T.speed.main_sum[k] = sp[2 * k];
            T.speed.bypass_sum[k] = sp[2 * k + 1];
        }
        for (int k = 0; k <= m->nbranches; k++) T.kind_count[k] = kc[k];
        /* Recompute s and d_speed from the sums (no step: zero norms add nothing). */
        if (T.regular_steps > 0) {
            double (*zero)[2] = rt_alloc(sizeof(double[2]) * (size_t)m->nparams);
            double ms[RT_MAXB], bs[RT_MAXB];
            memcpy(ms, T.speed.main_sum, sizeof ms);
            memcpy(bs, T.speed.bypass_sum, sizeof bs);
            rt_speed_add(&T.speed, m, zero);
            memcpy(T.speed.main_sum, ms, sizeof ms);
            memcpy(T.speed.bypass_sum, bs, sizeof bs);
            free(zero);
        }
        /* The best checkpoint, for the final diagnostic. */
        snprintf(path, sizeof path, "%s/best.ckpt", o->out_dir);
        if (T.best_epoch >= 0) {
            rt_ckpt *b = load_tensors(m, path, T.best_params, T.best_states, NULL);
            rt_ckpt_free(b);
        }
        rt_ckpt_free(c);
        if (T.epoch >= cfg->epochs)
            fprintf(stderr, "%s: the run in %s already finished %d epochs; nothing to train\n", rt_prog, o->out_dir, T.epoch);
    }

    if (o->resume && o->lr_given) T.lr = cfg->lr;
    load_data(m, cfg, o->data_dir, &T.data);
    if (o->limit_test > 0) {
        if (T.data.val.n > o->limit_test) T.data.val.n = o->limit_test;
        if (T.data.test.n > o->limit_test) T.data.test.n = o->limit_test;
    }
    const rt_dataset *tr = &T.data.train;
    if (tr->n == 0) rt_die("the training set is empty");
    if (tr->classes != m->classes && strcmp(cfg->data, "synthetic") != 0)
        rt_die("the data has %d classes but the model predicts %d", tr->classes, m->classes);

    T.e = T.be->create(m, T.batch);
    T.be->write(T.e, RT_ARENA_PARAMS, T.params);
    T.be->write(T.e, RT_ARENA_MOMENTUM, T.mom);
    T.be->write(T.e, RT_ARENA_STATES, T.states);

    char header[512] = "step,epoch,kind,loss";
    for (int k = 0; k < m->nbranches; k++) snprintf(header + strlen(header), sizeof header - strlen(header), ",s_%d", k);
    strcat(header, ",d_speed\n");
    T.steps = reopen_log(o->out_dir, "steps.csv", o->resume, keep_step, T.step, header);
    T.metrics = reopen_log(o->out_dir, "metrics.jsonl", o->resume, keep_epoch, T.epoch, NULL);

    int v_train = rt_find_variant(m, RT_VAR_TRAIN, -1), v_eval = rt_find_variant(m, RT_VAR_EVAL, -1);
    int v_rebal[RT_MAXB];
    for (int k = 0; k < m->nbranches; k++) v_rebal[k] = rt_find_variant(m, RT_VAR_REBALANCE, k);
    int v_rubi = cfg->policy == RT_POLICY_RUBI ? rt_find_variant(m, RT_VAR_RUBI, cfg->rubi_branch) : -1;
    if (cfg->policy == RT_POLICY_RUBI && v_rubi < 0) rt_die("this model has no RUBi step for branch %d", cfg->rubi_branch);
    if ((cfg->policy == RT_POLICY_GUIDED || cfg->policy == RT_POLICY_RANDOM))
        for (int k = 0; k < m->nbranches; k++)
            if (v_rebal[k] < 0) rt_die("policy %s needs MMTMs on every branch; branch '%s' has none", policy_name(cfg->policy), m->branches[k]);

    /* Update masks for re-balancing steps that update only their branch (§5). */
    unsigned char *mask[RT_MAXB] = {0};
    if (cfg->rebalance_update == RT_REBAL_BRANCH)
        for (int k = 0; k < m->nbranches; k++) {
            mask[k] = rt_alloc((size_t)m->nparams);
            for (int p = 0; p < m->nparams; p++) mask[k][p] = (m->params[p].groups & RT_GROUP_MAIN(k)) != 0;
        }

    const bool tty = isatty(2) && !o->quiet;
    int *perm = rt_alloc(sizeof(int) * (size_t)tr->n);
    const int steps_per_epoch = (tr->n + T.batch - 1) / T.batch;

    if (o->profile) {
        for (int k = 0; k < T.batch; k++) perm[k] = k % tr->n;
        rt_batch b;
        gather(&T, tr, perm, T.batch, &b);
        rt_hyper h = {T.lr, cfg->momentum, cfg->weight_decay, cfg->l1, T.regular_steps, cfg->seed, (unsigned long long)T.step, NULL};
        if (T.be->profile) T.be->profile(T.e, v_train, &b, &h, stderr);
    }

    fprintf(stderr, "%s: training %s on %s (%d train, %d val, %d test), batch %d, %d epochs, policy %s, back end %s\n", rt_prog,
            m->name, strcmp(cfg->data, "synthetic") == 0 ? "synthetic data" : o->data_dir, tr->n, T.data.val.n, T.data.test.n,
            T.batch, cfg->epochs, policy_name(cfg->policy), T.be->target);

    double run_t0 = rt_now();
    long run_samples = 0;
    double run_train_time = 0;
    bool stop = false;
    while (T.epoch < cfg->epochs && !stop) {
        const int ep = T.epoch;
        for (int i = 0; i < tr->n; i++) perm[i] = i;
        for (int i = tr->n - 1; i > 0; i--) {
            int j = (int)rt_rng_below(&T.shuffle, (uint32_t)i + 1);
            int t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        double loss_sum = 0, t_epoch = rt_now(), t_train = 0, last_print = 0;
        long right = 0, seen = 0;
        for (int s = 0; s < steps_per_epoch; s++) {
            int B = tr->n - s * T.batch < T.batch ? tr->n - s * T.batch : T.batch;
            rt_batch b;
            gather(&T, tr, perm + (size_t)s * T.batch, B, &b);
            int kind = cfg->policy == RT_POLICY_RUBI ? RT_STEP_REGULAR : rt_controller_next(&T.ctl, ep);
            int v = cfg->policy == RT_POLICY_RUBI ? v_rubi : kind == RT_STEP_REGULAR ? v_train : v_rebal[kind];
            rt_hyper h = {T.lr, cfg->momentum, cfg->weight_decay, cfg->l1, T.regular_steps, cfg->seed, (unsigned long long)T.step,
                          kind == RT_STEP_REGULAR ? NULL : mask[kind]};
            rt_result r;
            double t0 = rt_now();
            T.be->train(T.e, v, &b, &h, &r);
            t_train += rt_now() - t0;
            if (!isfinite(r.loss)) {
                fflush(T.steps);
                fflush(T.metrics);
                rt_die("the loss is %s at epoch %d, step %ld (policy %s, learning rate %g); training stopped. "
                       "The last good checkpoint is %s/last.ckpt%s. Try a lower learning rate (--lr).",
                       isnan(r.loss) ? "NaN" : "infinite", ep + 1, T.step, policy_name(cfg->policy), T.lr, o->out_dir,
                       T.epoch > 0 ? "" : " (none yet: it is written after the first epoch)");
            }
            T.kind_count[kind == RT_STEP_REGULAR ? 0 : 1 + kind]++;
            if (kind == RT_STEP_REGULAR) {
                rt_speed_add(&T.speed, m, r.norms);
                T.regular_steps++;
                if (cfg->policy != RT_POLICY_RUBI) rt_controller_after_regular(&T.ctl, ep, &T.speed);
            }
            loss_sum += r.loss * B;
            seen += B;
            for (int k = 0; k < B; k++) {
                /* Training accuracy of the prediction: the mean of the branch logits. */
                int best = 0;
                double bv = -INFINITY;
                for (int c = 0; c < m->classes; c++) {
                    double z = 0;
                    for (int br = 0; br < m->nbranches; br++) z += r.logits[br][(size_t)k * m->classes + c];
                    if (z > bv) { bv = z; best = c; }
                }
                right += best == b.y[k];
            }
            char kb[32];
            fprintf(T.steps, "%ld,%d,%s,%.6g", T.step, ep + 1, cfg->policy == RT_POLICY_RUBI ? "rubi" : kind_name(m, kind, kb), r.loss);
            for (int k = 0; k < m->nbranches; k++) fprintf(T.steps, ",%.6g", T.speed.s[k]);
            fprintf(T.steps, ",%.6g\n", T.speed.d_speed);
            T.step++;
            if (tty && (rt_now() - last_print > 0.25 || s == steps_per_epoch - 1)) {
                last_print = rt_now();
                double sps = seen / (t_train > 0 ? t_train : 1e-9);
                double left = (double)(steps_per_epoch - s - 1) * T.batch + (double)(cfg->epochs - ep - 1) * tr->n;
                char eta[32];
                fmt_eta(eta, sizeof eta, left / (sps > 0 ? sps : 1));
                fprintf(stderr, "\repoch %d/%d  step %d/%d  loss %.4f  %.0f samples/s  ETA %s   ", ep + 1, cfg->epochs, s + 1,
                        steps_per_epoch, loss_sum / seen, sps, eta);
            }
        }
        if (tty) fputc('\n', stderr);
        double train_loss = loss_sum / seen, train_acc = (double)right / seen;
        double sps = seen / (t_train > 0 ? t_train : 1e-9);
        run_samples += seen;
        run_train_time += t_train;
        Score val = evaluate(&T, &T.data.val, v_eval), test = evaluate(&T, &T.data.test, v_eval);
        T.epoch++;
        /* Best validation accuracy: keep its weights and test accuracy. */
        bool best = val.acc > T.best_val;
        if (best) {
            T.best_val = val.acc;
            T.best_test = test.acc;
            T.best_epoch = T.epoch;
            T.best_d_speed = T.speed.d_speed;
            for (int k = 0; k < m->nbranches; k++) T.best_branch_test[k] = test.branch[k];
        }
        /* Schedule and stopping options (§2). */
        if (cfg->plateau_patience > 0) {
            if (train_loss < T.plateau_best) {
                T.plateau_best = train_loss;
                T.plateau_stale = 0;
            } else if (++T.plateau_stale >= cfg->plateau_patience) {
                T.lr *= cfg->plateau_factor;
                T.plateau_stale = 0;
                fprintf(stderr, "%s: no lower training loss for %d epochs: learning rate now %g\n", rt_prog, cfg->plateau_patience, T.lr);
            }
        }
        if (train_acc >= 1.0) T.perfect_epochs++;
        if (cfg->stop_perfect > 0 && T.perfect_epochs >= cfg->stop_perfect) stop = true;
        T.samples_per_s = run_samples / (run_train_time > 0 ? run_train_time : 1e-9);

        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "epoch", T.epoch);
        cJSON_AddNumberToObject(j, "train_loss", train_loss);
        cJSON_AddNumberToObject(j, "train_acc", train_acc);
        cJSON_AddNumberToObject(j, "val_loss", val.loss);
        cJSON_AddNumberToObject(j, "val_acc", val.acc);
        cJSON_AddNumberToObject(j, "test_acc", test.acc);
        double vb[RT_MAXB], tb[RT_MAXB], sk[RT_MAXB];
        for (int k = 0; k < m->nbranches; k++) {
            vb[k] = val.branch[k];
            tb[k] = test.branch[k];
            sk[k] = isfinite(T.speed.s[k]) ? T.speed.s[k] : 0;
        }
        cJSON_AddItemToObject(j, "val_branch_acc", cJSON_CreateDoubleArray(vb, m->nbranches));
        cJSON_AddItemToObject(j, "test_branch_acc", cJSON_CreateDoubleArray(tb, m->nbranches));
        if (isfinite(T.speed.d_speed)) {
            cJSON_AddItemToObject(j, "s", cJSON_CreateDoubleArray(sk, m->nbranches));
            cJSON_AddNumberToObject(j, "d_speed", T.speed.d_speed);
        }
        double kc[RT_MAXB + 1];
        for (int k = 0; k <= m->nbranches; k++) kc[k] = (double)T.kind_count[k];
        cJSON_AddItemToObject(j, "steps_by_kind", cJSON_CreateDoubleArray(kc, m->nbranches + 1));
        cJSON_AddNumberToObject(j, "lr", T.lr);
        cJSON_AddNumberToObject(j, "samples_per_s", sps);
        cJSON_AddNumberToObject(j, "epoch_time_s", rt_now() - t_epoch);
        char *line = cJSON_PrintUnformatted(j);
        fprintf(T.metrics, "%s\n", line);
        free(line);
        cJSON_Delete(j);
        fflush(T.metrics);
        fflush(T.steps);

        fprintf(stderr, "epoch %d/%d: loss %.4f  train %.4f  val %.4f  test %.4f  (", T.epoch, cfg->epochs, train_loss, train_acc,
                val.acc, test.acc);
        for (int k = 0; k < m->nbranches; k++) fprintf(stderr, "%s%s %.4f", k ? ", " : "", m->branches[k], test.branch[k]);
        fprintf(stderr, ")  %.0f samples/s%s\n", sps, best ? "  *best" : "");

        T.be->read(T.e, RT_ARENA_PARAMS, T.params);
        T.be->read(T.e, RT_ARENA_MOMENTUM, T.mom);
        T.be->read(T.e, RT_ARENA_STATES, T.states);
        if (best) {
            memcpy(T.best_params, T.params, sizeof(float) * np);
            memcpy(T.best_states, T.states, sizeof(float) * ns);
            save_checkpoint(&T, "best.ckpt", T.params, T.states);
        }
        save_checkpoint(&T, "last.ckpt", T.params, T.states);
        if (stop) fprintf(stderr, "%s: 100%% training accuracy for %d epochs: stopping (early_stop perfect)\n", rt_prog, T.perfect_epochs);
    }
    (void)run_t0;
    fclose(T.steps);
    fclose(T.metrics);

    /* The diagnostic of §3 on the best checkpoint. */
    Util u = {0};
    if (T.best_epoch >= 0) {
        T.be->write(T.e, RT_ARENA_PARAMS, T.best_params);
        T.be->write(T.e, RT_ARENA_STATES, T.best_states);
        u = utilization(&T);
    }
    cJSON *sj = cJSON_CreateObject();
    cJSON_AddStringToObject(sj, "model", m->name);
    cJSON_AddNumberToObject(sj, "test_acc", T.best_test);
    cJSON_AddNumberToObject(sj, "val_acc", T.best_val);
    cJSON_AddItemToObject(sj, "branch_test_acc", cJSON_CreateDoubleArray(T.best_branch_test, m->nbranches));
    cJSON *bn = cJSON_CreateArray();
    for (int k = 0; k < m->nbranches; k++) cJSON_AddItemToArray(bn, cJSON_CreateString(m->branches[k]));
    cJSON_AddItemToObject(sj, "branches", bn);
    cJSON_AddNumberToObject(sj, "best_epoch", T.best_epoch);
    cJSON_AddNumberToObject(sj, "epochs", T.epoch);
    cJSON_AddNumberToObject(sj, "samples_per_s", T.samples_per_s);
    if (isfinite(T.best_d_speed)) cJSON_AddNumberToObject(sj, "d_speed", T.best_d_speed);
    if (isfinite(T.speed.d_speed)) cJSON_AddNumberToObject(sj, "d_speed_last", T.speed.d_speed);
    if (u.ok) {
        cJSON_AddItemToObject(sj, "util", util_json(m, &u));
        cJSON_AddNumberToObject(sj, "d_util", u.d_util);
    }
    cJSON_AddStringToObject(sj, "policy", policy_name(cfg->policy));
    cJSON_AddNumberToObject(sj, "lr", cfg->lr);
    cJSON_AddNumberToObject(sj, "seed", (double)cfg->seed);
    cJSON_AddNumberToObject(sj, "batch", T.batch);
    double kc[RT_MAXB + 1];
    for (int k = 0; k <= m->nbranches; k++) kc[k] = (double)T.kind_count[k];
    cJSON_AddItemToObject(sj, "steps_by_kind", cJSON_CreateDoubleArray(kc, m->nbranches + 1));
    cJSON_AddStringToObject(sj, "backend", T.be->target);
    char *txt = cJSON_Print(sj);
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/summary.json", o->out_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = rt_fopen(tmp, "w");
    fprintf(f, "%s\n", txt);
    if (fclose(f) != 0 || rename(tmp, path) != 0) rt_die("cannot write %s: %s", path, strerror(errno));
    printf("%s\n", txt);
    free(txt);
    cJSON_Delete(sj);

    T.be->destroy(T.e);
    rt_data_free(&T.data);
    for (int k = 0; k < m->nbranches; k++) free(mask[k]);
    for (int i = 0; i < m->ninputs; i++) free(T.bx[i]);
    free(T.by);
    free(perm);
    free(T.params);
    free(T.mom);
    free(T.states);
    free(T.best_params);
    free(T.best_states);
    return 0;
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
    rt_ckpt *c = load_tensors(m, ckpt, T.params, T.states, NULL);
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
    load_data(m, &T.cfg, dir, &T.data);
    T.e = T.be->create(m, batch);
    T.be->write(T.e, RT_ARENA_PARAMS, T.params);
    T.be->write(T.e, RT_ARENA_STATES, T.states);
    if (!util) {
        Score s = evaluate(&T, &T.data.test, rt_find_variant(m, RT_VAR_EVAL, -1));
        printf("test accuracy %.4f  (%d examples)\n", s.acc, T.data.test.n);
        for (int k = 0; k < m->nbranches; k++) printf("  branch %-10s %.4f\n", m->branches[k], s.branch[k]);
    } else {
        Util u = utilization(&T);
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

/* ./prog bench: training and evaluation throughput on random batches of the
 * model's shapes, medians of `reps` timed runs of `steps` steps after a
 * warm-up, and the process's peak memory. One JSON line on stdout. */
static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int rt_bench(const rt_model *m, int batch, int steps, int reps, bool profile) {
    const rt_backend *be = m->backend;
    rt_exec *e = be->create(m, batch);
    float *params = rt_alloc(sizeof(float) * m->params_floats), *states = rt_alloc(sizeof(float) * (m->states_floats + 1));
    init_params(m, params, 1);
    init_states(m, states);
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
    rt_hyper h = {0.001f, 0.9f, 0, 0, 0, 1, 0, NULL};
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
    printf("{\"model\": \"%s\", \"backend\": \"%s\", \"batch\": %d, \"threads\": %d, \"train_samples_per_s\": %.1f, "
           "\"eval_samples_per_s\": %.1f, \"peak_rss_mb\": %.1f}\n",
           m->name, be->target, batch, rt_threads(), tt[reps / 2], te[reps / 2], ru.ru_maxrss / 1024.0);
    be->destroy(e);
    for (int i = 0; i < m->ninputs; i++) free(x[i]);
    free(y);
    free(params);
    free(states);
    free(tt);
    free(te);
    return 0;
}
