/* rt_runckpt.c — a training run's files: its fresh parameters and state,
 * its checkpoints (the parameters under their names as a PyTorch state
 * dict would hold them, model state, the optimizer's state, and in the
 * metadata the run state and configuration), the file part of --resume,
 * and the run directory with its logs. The safetensors format itself is
 * rt_ckpt.c's. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rt_optim.h"
#include "rt_trainer.h"

#define CKPT_FORMAT "mmnet-checkpoint-1"

/* ---- parameters and checkpoints ----------------------------------------- */
void rt_init_params(const rt_model *m, float *p, uint64_t seed) {
    rt_rng r;
    rt_rng_seed(&r, seed ^ 0x696e6974ULL);
    for (int i = 0; i < m->nparams; i++) {
        const rt_param_info *pi = &m->params[i];
        float *w = p + pi->off;
        for (size_t j = 0; j < pi->numel; j++)
            w[j] = pi->init == RT_INIT_ONE ? 1.0f : pi->init == RT_INIT_ZERO ? 0.0f : (float)((2 * rt_rng_uniform(&r) - 1) * pi->bound);
    }
}

void rt_init_states(const rt_model *m, float *s) {
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

/* The checkpoint: parameters under their names (as a PyTorch state dict
 * would hold them), model state, the optimizer's state (its buffers as
 * optimizer.<buffer>.<parameter>, rt_optim_buffer_name, and Adam's count of
 * each parameter's updates as optimizer.step), and the run state. */
void rt_run_save(Trainer *T, const char *name, const float *params, const float *states) {
    const rt_model *m = T->m;
    const int opt = T->cfg.opt.optimizer, nbuf = rt_optim_buffer_name(opt, 1) ? 2 : 1;
    int n = 0, cap = (1 + nbuf) * m->nparams + m->nstates + 5;
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
    for (int i = 0; i < nbuf * m->nparams; i++) {
        const rt_param_info *pi = &m->params[i % m->nparams];
        names[i] = rt_alloc(strlen(pi->name) + 32);
        sprintf(names[i], "optimizer.%s.%s", rt_optim_buffer_name(opt, i / m->nparams), pi->name);
        t[n] = (rt_tensor){names[i], pi->ndim, {0}, RT_F32, (i < m->nparams ? T->mom : T->mom2) + pi->off};
        for (int d = 0; d < pi->ndim; d++) t[n].shape[d] = pi->shape[d];
        n++;
    }
    int64_t *steps = rt_alloc(sizeof(int64_t) * (size_t)m->nparams);
    for (int i = 0; i < m->nparams; i++) steps[i] = T->opt_steps[i];
    if (rt_optim_is_adam(opt)) t[n++] = (rt_tensor){"optimizer.step", 1, {m->nparams}, RT_I64, steps};
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
    meta_add(&mt, "val_size", "%.17g", T->cfg.val);
    meta_add(&mt, "limit_train", "%d", T->cfg.limit_train);
    meta_add(&mt, "batch", "%d", T->cfg.batch);
    meta_add(&mt, "epochs", "%d", T->cfg.epochs);
    meta_add(&mt, "policy", "%s", rt_policy_name(T->cfg.policy));
    meta_add(&mt, "alpha", "%.9g", T->cfg.alpha);
    meta_add(&mt, "window", "%d", T->cfg.window);
    meta_add(&mt, "warmup", "%d", T->cfg.warmup);
    meta_add(&mt, "rubi_branch", "%d", T->cfg.rubi_branch);
    meta_add(&mt, "rebalance_update", "%d", T->cfg.rebalance_update);
    meta_add(&mt, "momentum", "%.9g", T->cfg.opt.momentum);
    meta_add(&mt, "weight_decay", "%.9g", T->cfg.opt.weight_decay);
    meta_add(&mt, "l1", "%.9g", T->cfg.opt.l1);

    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/%s", T->o->out_dir, name);
    if (rt_ckpt_save(path, t, n, mt.kv, mt.n, err, sizeof err) != 0) rt_die("cannot write the checkpoint: %s", err);
    for (int i = 0; i < nbuf * m->nparams; i++) free(names[i]);
    free(names);
    free(steps);
    free(t);
}

static const char *meta_req(const rt_ckpt *c, const char *path, const char *key) {
    const char *v = rt_ckpt_meta(c, key);
    if (!v) rt_die("%s: not a resumable mmnet checkpoint (no '%s' in its metadata)", path, key);
    return v;
}

rt_ckpt *rt_run_load_tensors(const rt_model *m, const char *path, float *params, float *states) {
    char err[512];
    rt_ckpt *c = rt_ckpt_load(path, err, sizeof err);
    if (!c) rt_die("%s", err);
    const char *model = rt_ckpt_meta(c, "model");
    if (model && strcmp(model, m->name) != 0)
        rt_die("%s holds model '%s', but this program trains '%s'", path, model, m->name);
    for (int i = 0; i < m->nparams + m->nstates; i++) {
        const char *name;
        int ndim;
        const int *shape;
        size_t numel;
        float *dst;
        if (i < m->nparams) {
            const rt_param_info *pi = &m->params[i];
            name = pi->name, ndim = pi->ndim, shape = pi->shape, numel = pi->numel, dst = params + pi->off;
        } else {
            const rt_state_info *si = &m->states[i - m->nparams];
            name = si->name, ndim = si->ndim, shape = si->shape, numel = si->numel, dst = states + si->off;
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

/* The optimizer's state that rt_run_save wrote for T's optimizer. */
static void load_optim(Trainer *T, const rt_ckpt *c, const char *path) {
    const rt_model *m = T->m;
    const int opt = T->cfg.opt.optimizer;
    char name[512], optname[64];
    for (int b = 0; b < 2 && rt_optim_buffer_name(opt, b); b++)
        for (int i = 0; i < m->nparams; i++) {
            const rt_param_info *pi = &m->params[i];
            snprintf(name, sizeof name, "optimizer.%s.%s", rt_optim_buffer_name(opt, b), pi->name);
            int nd;
            int64_t sh[RT_CKPT_MAXDIM];
            const float *src = rt_ckpt_get(c, name, RT_F32, &nd, sh);
            if (!src)
                rt_die("%s: no float32 tensor '%s': the run was not trained with optimizer %s (give the run's --optimizer)", path,
                       name, rt_name_at(rt_config_fields[RT_CFG_optimizer].names, opt, optname, sizeof optname));
            bool ok = nd == pi->ndim;
            for (int d = 0; ok && d < nd; d++) ok = sh[d] == pi->shape[d];
            if (!ok) rt_die("%s: tensor '%s' has another shape than this model's", path, name);
            memcpy((b ? T->mom2 : T->mom) + pi->off, src, sizeof(float) * pi->numel);
        }
    if (!rt_optim_is_adam(opt)) return;
    int nd;
    int64_t sh[RT_CKPT_MAXDIM];
    const int64_t *st = rt_ckpt_get(c, "optimizer.step", RT_I64, &nd, sh);
    if (!st || nd != 1 || sh[0] != m->nparams) rt_die("%s: no int64 tensor 'optimizer.step' of %d counts", path, m->nparams);
    for (int i = 0; i < m->nparams; i++) T->opt_steps[i] = st[i];
}

/* --resume: the run state in last.ckpt's metadata and tensors; the best
 * weights, for the final diagnostic. */
void rt_run_resume(Trainer *T) {
    const rt_model *m = T->m;
    char path[4096];
    snprintf(path, sizeof path, "%s/last.ckpt", T->o->out_dir);
    if (access(path, F_OK) != 0) rt_die("cannot resume: %s does not exist (was the run started with --out %s?)", path, T->o->out_dir);
    rt_ckpt *c = rt_run_load_tensors(m, path, T->params, T->states);
    if (strcmp(meta_req(c, path, "format"), CKPT_FORMAT) != 0) rt_die("%s: unknown checkpoint format", path);
    load_optim(T, c, path);
    T->epoch = atoi(meta_req(c, path, "epoch"));
    T->step = atol(meta_req(c, path, "step"));
    T->regular_steps = atol(meta_req(c, path, "regular_steps"));
    T->lr = (float)atof(meta_req(c, path, "lr"));
    T->best_val = atof(meta_req(c, path, "best_val"));
    T->best_test = atof(meta_req(c, path, "best_test"));
    T->best_epoch = atoi(meta_req(c, path, "best_epoch"));
    T->best_d_speed = atof(meta_req(c, path, "best_d_speed"));
    const char *bt = meta_req(c, path, "best_branch_test");
    for (int k = 0; k < m->nbranches; k++) {
        T->best_branch_test[k] = strtod(bt, (char **)&bt);
        if (*bt == ',') bt++;
    }
    if (parse_rng(meta_req(c, path, "rng_shuffle"), &T->shuffle) || parse_rng(meta_req(c, path, "rng_policy"), &T->ctl.rng))
        rt_die("%s: corrupt random-number state", path);
    T->ctl.mode = atoi(meta_req(c, path, "controller_mode"));
    T->ctl.left = atoi(meta_req(c, path, "controller_left"));
    T->plateau_best = atof(meta_req(c, path, "plateau_best"));
    T->plateau_stale = atoi(meta_req(c, path, "plateau_stale"));
    T->perfect_epochs = atoi(meta_req(c, path, "perfect_epochs"));
    T->samples_per_s = atof(meta_req(c, path, "samples_per_s"));
    int nd;
    int64_t sh[8];
    const double *sp = rt_ckpt_get(c, "train.speed_sums", RT_F64, &nd, sh);
    const int64_t *kc = rt_ckpt_get(c, "train.step_kinds", RT_I64, &nd, sh);
    if (!sp || !kc) rt_die("%s: no training state (train.speed_sums, train.step_kinds)", path);
    for (int k = 0; k < m->nbranches; k++) {
        T->speed.main_sum[k] = sp[2 * k];
        T->speed.bypass_sum[k] = sp[2 * k + 1];
    }
    for (int k = 0; k <= m->nbranches; k++) T->kind_count[k] = kc[k];
    /* The best checkpoint, for the final diagnostic. */
    snprintf(path, sizeof path, "%s/best.ckpt", T->o->out_dir);
    if (T->best_epoch >= 0) {
        rt_ckpt *b = rt_run_load_tensors(m, path, T->best_params, T->best_states);
        rt_ckpt_free(b);
    }
    rt_ckpt_free(c);
}

/* ---- the run directory ------------------------------------------------------ */
void rt_run_mkdir(const char *d) {
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

/* On --resume: keep the lines of `file` that the checkpoint covers;
 * keep(line) decides. */
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

void rt_run_open_logs(Trainer *T, const char *steps_header) {
    const rt_train_opts *o = T->o;
    T->steps = reopen_log(o->out_dir, "steps.csv", o->resume, keep_step, T->step, steps_header);
    T->metrics = reopen_log(o->out_dir, "metrics.jsonl", o->resume, keep_epoch, T->epoch, NULL);
}
