/* rt_runckpt.c — a training run's files: its fresh parameters and state,
 * its checkpoints (the parameters under their names as a PyTorch state
 * dict would hold them, model state, the optimizer's state, and in the
 * metadata the run state and configuration), the file part of --resume,
 * and the run directory with its logs. The safetensors format itself is
 * rt_ckpt.c's. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rt_optim.h"
#include "rt_trainer.h"

#define CKPT_FORMAT "mmnet-checkpoint-2"

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

/* ---- the metadata ---------------------------------------------------------- */
/* A checkpoint's metadata is text: every value is written by one function
 * of its type and read back by the matching one, which accepts nothing but
 * the whole text of a value of that type in the range the program allows,
 * or dies naming the file and the key. */
#define META_MAX 160                 /* keys */
#define META_VALUE_MAX (RT_STR_MAX + 64)

typedef struct {
    const char *kv[2 * META_MAX];
    char keys[META_MAX][64];
    char vals[META_MAX][META_VALUE_MAX];
    int n;
} Meta;

static void meta_add(Meta *mt, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void meta_add(Meta *mt, const char *key, const char *fmt, ...) {
    if (mt->n == META_MAX) rt_die("internal: too many checkpoint fields");
    for (int i = 0; i < mt->n; i++)
        if (strcmp(mt->keys[i], key) == 0) rt_die("internal: checkpoint field '%s' written twice", key);
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(mt->vals[mt->n], sizeof mt->vals[0], fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len >= sizeof mt->vals[0] || strlen(key) >= sizeof mt->keys[0])
        rt_die("internal: checkpoint field '%s' is too long", key);
    snprintf(mt->keys[mt->n], sizeof mt->keys[0], "%s", key);
    mt->kv[2 * mt->n] = mt->keys[mt->n];
    mt->kv[2 * mt->n + 1] = mt->vals[mt->n];
    mt->n++;
}

static _Noreturn void meta_bad(const char *path, const char *key, const char *v, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static _Noreturn void meta_bad(const char *path, const char *key, const char *v, const char *fmt, ...) {
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    rt_die("%s: corrupt checkpoint: metadata '%s' is '%.80s'%s: %s", path, key, v, strlen(v) > 80 ? "..." : "", why);
}

static const char *meta_req(const rt_ckpt *c, const char *path, const char *key) {
    const char *v = rt_ckpt_meta(c, key);
    if (!v) rt_die("%s: incomplete mmnet checkpoint (no '%s' in its metadata)", path, key);
    return v;
}

/* A whole decimal integer in [lo, hi]. */
static long long meta_int(const rt_ckpt *c, const char *path, const char *key, double lo, double hi) {
    const char *v = meta_req(c, path, key);
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (end == v || *end || (errno && errno != ERANGE) || !(v[0] == '-' || (v[0] >= '0' && v[0] <= '9')))
        meta_bad(path, key, v, "not an integer");
    if (errno == ERANGE || x < lo || x > hi) meta_bad(path, key, v, "out of range (allowed: %.0f to %.0f)", lo, hi);
    return x;
}

/* A whole number in [lo, hi]; NaN only when nan_ok. */
static double meta_num(const char *path, const char *key, const char *v, double lo, double hi, bool nan_ok) {
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end || isspace((unsigned char)v[0])) meta_bad(path, key, v, "not a number");
    if (isnan(x) ? !nan_ok : !(x >= lo && x <= hi)) meta_bad(path, key, v, "out of range (allowed: %g to %g)", lo, hi);
    return x;
}

static void put_INT(Meta *mt, const char *key, const int *v) { meta_add(mt, key, "%d", *v); }
static void put_LONG(Meta *mt, const char *key, const long *v) { meta_add(mt, key, "%ld", *v); }
static void put_F32(Meta *mt, const char *key, const float *v) { meta_add(mt, key, "%.9g", *v); }
static void put_F64(Meta *mt, const char *key, const double *v) { meta_add(mt, key, "%.17g", *v); }
static void put_F64NAN(Meta *mt, const char *key, const double *v) { meta_add(mt, key, "%.17g", *v); }
static void put_RNG(Meta *mt, const char *key, const rt_rng *r) {
    meta_add(mt, key, "%016llx%016llx%016llx%016llx", (unsigned long long)r->s[0], (unsigned long long)r->s[1],
             (unsigned long long)r->s[2], (unsigned long long)r->s[3]);
}

static void get_INT(const rt_ckpt *c, const char *path, const char *key, int *v, double lo, double hi) {
    *v = (int)meta_int(c, path, key, lo, hi);
}
static void get_LONG(const rt_ckpt *c, const char *path, const char *key, long *v, double lo, double hi) {
    *v = (long)meta_int(c, path, key, lo, hi);
}
static void get_F32(const rt_ckpt *c, const char *path, const char *key, float *v, double lo, double hi) {
    *v = (float)meta_num(path, key, meta_req(c, path, key), lo, hi, false);
}
static void get_F64(const rt_ckpt *c, const char *path, const char *key, double *v, double lo, double hi) {
    *v = meta_num(path, key, meta_req(c, path, key), lo, hi, false);
}
static void get_F64NAN(const rt_ckpt *c, const char *path, const char *key, double *v, double lo, double hi) {
    *v = meta_num(path, key, meta_req(c, path, key), lo, hi, true);
}
/* 64 hex digits: xoshiro's four words, not all zero (a state it never leaves). */
static void get_RNG(const rt_ckpt *c, const char *path, const char *key, rt_rng *r, double lo, double hi) {
    (void)lo, (void)hi;
    const char *v = meta_req(c, path, key);
    if (strlen(v) != 64 || strspn(v, "0123456789abcdef") != 64) meta_bad(path, key, v, "not 64 hexadecimal digits");
    for (int i = 0; i < 4; i++) {
        char part[17];
        memcpy(part, v + 16 * i, 16);
        part[16] = 0;
        r->s[i] = strtoull(part, NULL, 16);
    }
    if ((r->s[0] | r->s[1] | r->s[2] | r->s[3]) == 0) meta_bad(path, key, v, "a random-number state of zeros");
}

/* The run state in the metadata: X(key, TYPE, member of Trainer, lo, hi),
 * written and read in this order, so that a range may use the fields
 * above it; lo and hi are expressions of the Trainer T, whose run
 * configuration and model are already known. (The per-branch values and
 * the step counts by kind are tensors: train.*.) */
#define RUN_STATE(X)                                                                                                    \
    X(epoch, INT, epoch, 1, T->cfg.epochs)                                                                              \
    X(step, LONG, step, 0, 9007199254740992.0)                                                                          \
    X(regular_steps, LONG, regular_steps, 0, T->step)                                                                   \
    X(lr, F32, lr, FLT_TRUE_MIN, rt_config_fields[RT_CFG_lr].hi)                                                        \
    X(best_val, F64, best_val, -1, 1) /* -1: none yet */                                                                \
    X(best_test, F64, best_test, 0, 1)                                                                                  \
    X(best_epoch, INT, best_epoch, -1, T->epoch)                                                                        \
    X(best_d_speed, F64NAN, best_d_speed, -INFINITY, INFINITY)                                                          \
    X(rng_shuffle, RNG, shuffle, 0, 0)                                                                                  \
    X(rng_policy, RNG, ctl.rng, 0, 0)                                                                                   \
    /* a guided window in progress: the branch it re-balances, and its steps left */                                     \
    X(controller_mode, INT, ctl.mode, RT_STEP_REGULAR,                                                                  \
      T->cfg.policy == RT_POLICY_GUIDED ? T->m->nbranches - 1 : RT_STEP_REGULAR)                                        \
    X(controller_left, INT, ctl.left, 0, T->ctl.mode == RT_STEP_REGULAR ? 0 : T->cfg.window)                            \
    X(plateau_best, F64, plateau_best, -INFINITY, INFINITY) /* INFINITY: no epoch yet */                                \
    X(plateau_stale, INT, plateau_stale, 0, /* epochs without progress: only the plateau schedule counts them */          \
      T->cfg.schedule == RT_SCHEDULE_PLATEAU ? T->cfg.plateau_patience - 1 : 0)                                          \
    X(perfect_epochs, INT, perfect_epochs, 0, T->epoch)                                                                 \
    X(samples_per_s, F64, samples_per_s, 0, DBL_MAX)

/* ---- the run configuration in the metadata ---------------------------------- */
/* Every row of RT_CONFIG_FIELDS is saved as "config.NAME", so that --resume
 * and eval find the run as it was, whatever settings are added later. */
#define CONFIG_PREFIX "config."

/* A field's value as the metadata holds it. */
static const char *config_text(const rt_model *m, const rt_config *cfg, const rt_field *f, char *buf, size_t n) {
    double v = rt_field_get(cfg, f);
    switch (f->kind) {
    case RT_KIND_FLOAT: snprintf(buf, n, "%.9g", v); break;
    case RT_KIND_INT: snprintf(buf, n, "%d", (int)v); break;
    case RT_KIND_U64: snprintf(buf, n, "%llu", *(const unsigned long long *)((const char *)cfg + f->off)); break;
    case RT_KIND_STR: snprintf(buf, n, "%s", rt_field_str(cfg, f)); break;
    case RT_KIND_ENUM:
        if (!rt_name_at(f->names, (int)v, buf, n)) snprintf(buf, n, "%d", (int)v);
        break;
    case RT_KIND_BRANCH: snprintf(buf, n, "%s", v >= 0 && v < m->nbranches ? m->branches[(int)v] : ""); break;
    case RT_KIND_POLICY: snprintf(buf, n, "%s", rt_policy_name((int)v)); break;
    default: rt_die("internal: field %s of unknown kind", f->name);
    }
    return buf;
}

/* The text of field f into cfg: NULL, or why it is not one of f's values
 * (one the command line could give, or its default). */
static const char *config_parse(const rt_model *m, rt_config *cfg, const rt_field *f, const char *v, char *why, size_t n) {
    double x = 0;
    char *end;
    errno = 0;
    switch (f->kind) {
    case RT_KIND_STR:
        if (strlen(v) >= f->size) return snprintf(why, n, "longer than %zu characters", f->size - 1), why;
        if (f == &rt_config_fields[RT_CFG_data] && rt_choice_find(rt_data_sources, RT_DATA_COUNT, v) < 0)
            return snprintf(why, n, "not a data source"), why;
        snprintf(rt_field_strbuf(cfg, f), f->size, "%s", v);
        return NULL;
    case RT_KIND_ENUM:
        if ((x = rt_name_index(f->names, v)) < 0) return snprintf(why, n, "not one of %s", f->names), why;
        break;
    case RT_KIND_BRANCH:
        x = -1;
        for (int k = 0; k < m->nbranches; k++)
            if (strcmp(v, m->branches[k]) == 0) x = k;
        if (x < 0 && v[0]) return snprintf(why, n, "not a branch of model '%s'", m->name), why;
        break;
    case RT_KIND_POLICY:
        if ((x = rt_choice_find(rt_policies, RT_POLICY_COUNT, v)) < 0) return snprintf(why, n, "not a policy"), why;
        break;
    case RT_KIND_U64: {
        unsigned long long u = strtoull(v, &end, 10);
        if (end == v || *end || errno || !(v[0] >= '0' && v[0] <= '9')) return snprintf(why, n, "not an integer"), why;
        if (u > f->hi) return snprintf(why, n, "out of range (allowed: %.0f to %.0f)", f->lo, f->hi), why;
        x = (double)u;
        break;
    }
    case RT_KIND_INT: {
        long long i = strtoll(v, &end, 10);
        if (end == v || *end || errno || !(v[0] == '-' || (v[0] >= '0' && v[0] <= '9'))) return snprintf(why, n, "not an integer"), why;
        x = i < -1e15 ? -1e15 : i > 1e15 ? 1e15 : (double)i;
        break;
    }
    case RT_KIND_FLOAT:
        x = strtod(v, &end);
        if (end == v || *end || isspace((unsigned char)v[0]) || !isfinite(x)) return snprintf(why, n, "not a number"), why;
        break;
    default: return snprintf(why, n, "of unknown kind"), why;
    }
    bool dflt = (float)x == (float)f->dflt || (f->has_odflt && (float)x == (float)f->odflt);
    if ((f->kind == RT_KIND_INT || f->kind == RT_KIND_FLOAT || f->kind == RT_KIND_U64) && !dflt && !rt_field_in_range(f, x))
        return snprintf(why, n, "out of range (allowed: %s%g to %s%g)", f->lo_open ? "above " : "", f->lo,
                        f->hi_open ? "below " : "", f->hi),
               why;
    rt_field_set(cfg, f, x);
    return NULL;
}

/* The checkpoint's format: 2 (this one), 1 (before the whole configuration
 * was saved: its weights can be evaluated, but the run not resumed). */
#define CKPT_FORMAT_V1 "mmnet-checkpoint-1"
static int ckpt_version(const rt_ckpt *c, const char *path) {
    const char *v = rt_ckpt_meta(c, "format");
    if (!v) rt_die("%s: not an mmnet checkpoint (no 'format' in its metadata)", path);
    if (strcmp(v, CKPT_FORMAT) == 0) return 2;
    if (strcmp(v, CKPT_FORMAT_V1) == 0) return 1;
    rt_die("%s: unknown checkpoint format '%.80s' (this program reads %s and %s)", path, v, CKPT_FORMAT, CKPT_FORMAT_V1);
}

/* Format 1 did not keep the whole configuration: a run cannot go on from it. */
static void resumable(const rt_ckpt *c, const char *path) {
    if (ckpt_version(c, path) != 2)
        rt_die("%s: written by an older mmnet (%s): its weights can be evaluated, but the run cannot be resumed", path,
               CKPT_FORMAT_V1);
}

void rt_run_read_config(const rt_model *m, const rt_ckpt *c, const char *path, rt_config *cfg) {
    char why[256], key[96];
    if (ckpt_version(c, path) == 1) {
        /* What format 1 kept of the data's configuration. */
        static const struct { const char *key; int field; } v1[] = {
            {"seed", RT_CFG_seed}, {"variance", RT_CFG_variance}, {"val_size", RT_CFG_val},
            {"limit_train", RT_CFG_limit_train}, {"data_dir", RT_CFG_data_dir}};
        for (size_t i = 0; i < sizeof v1 / sizeof v1[0]; i++) {
            const char *v = rt_ckpt_meta(c, v1[i].key);
            if (v && config_parse(m, cfg, &rt_config_fields[v1[i].field], v, why, sizeof why)) meta_bad(path, v1[i].key, v, "%s", why);
        }
        return;
    }
    for (int i = 1; i < RT_CFG_COUNT; i++) {
        const rt_field *f = &rt_config_fields[i];
        snprintf(key, sizeof key, CONFIG_PREFIX "%s", f->name);
        const char *v = meta_req(c, path, key);
        if (config_parse(m, cfg, f, v, why, sizeof why)) meta_bad(path, key, v, "%s", why);
    }
    /* What every run sets (rt_main), which the fields' defaults do not. */
    if (cfg->batch < 1) meta_bad(path, CONFIG_PREFIX "batch", meta_req(c, path, CONFIG_PREFIX "batch"), "a run's batch is at least 1");
    if (cfg->epochs < 1) meta_bad(path, CONFIG_PREFIX "epochs", meta_req(c, path, CONFIG_PREFIX "epochs"), "a run has at least 1 epoch");
    if (!(cfg->opt.lr > 0)) meta_bad(path, CONFIG_PREFIX "lr", meta_req(c, path, CONFIG_PREFIX "lr"), "a run's learning rate is above 0");
    if (cfg->policy == RT_POLICY_RUBI && cfg->rubi_branch < 0)
        meta_bad(path, CONFIG_PREFIX "rubi_branch", "", "policy rubi needs its bias branch");
}

/* The checkpoint: parameters under their names (as a PyTorch state dict
 * would hold them), model state, the optimizer's state (its buffers as
 * optimizer.<buffer>.<parameter>, rt_optim_buffer_name, and Adam's count of
 * each parameter's updates as optimizer.step), and the run state. */
void rt_run_save(Trainer *T, const char *name, const float *params, const float *states) {
    if (!rt_is_root()) return; /* every rank holds the same state: rank 0 writes it */
    const rt_model *m = T->m;
    const int opt = T->cfg.opt.optimizer, nbuf = rt_optim_buffer_name(opt, 1) ? 2 : 1;
    int n = 0, cap = (1 + nbuf) * m->nparams + m->nstates + 10;
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
    t[n++] = (rt_tensor){"train.best_branch_test", 1, {m->nbranches}, RT_F64, T->best_branch_test};
    /* G-Blend: each term's training and validation loss at the start of the super-epoch in progress. */
    double gb[2 * RT_GBLEND_MAX];
    for (int k = 0; k < T->gb.n; k++) gb[k] = T->gb.lt[k], gb[T->gb.n + k] = T->gb.lv[k];
    if (T->cfg.policy == RT_POLICY_GBLEND) t[n++] = (rt_tensor){"train.gblend_losses", 1, {2 * T->gb.n}, RT_F64, gb};
    if (T->cfg.policy == RT_POLICY_AGM) t[n++] = (rt_tensor){"train.agm_avg", 1, {2}, RT_F64, T->agm_avg};

    Meta *mt = rt_alloc(sizeof *mt);
    mt->n = 0;
    meta_add(mt, "format", CKPT_FORMAT);
    meta_add(mt, "model", "%s", m->name);
    meta_add(mt, "source", "%s", m->source);
#define X(key, type, member, lo, hi) put_##type(mt, #key, &T->member);
    RUN_STATE(X)
#undef X
    /* The configuration, with the data directory the run read. */
    rt_config cfg = T->cfg;
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", T->o->data_dir);
    char key[96], val[META_VALUE_MAX];
    for (int i = 1; i < RT_CFG_COUNT; i++) {
        snprintf(key, sizeof key, CONFIG_PREFIX "%s", rt_config_fields[i].name);
        meta_add(mt, key, "%s", config_text(m, &cfg, &rt_config_fields[i], val, sizeof val));
    }

    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/%s", T->o->out_dir, name);
    if (rt_ckpt_save(path, t, n, mt->kv, mt->n, err, sizeof err) != 0) rt_die("cannot write the checkpoint: %s", err);
    free(mt);
    for (int i = 0; i < nbuf * m->nparams; i++) free(names[i]);
    free(names);
    free(steps);
    free(t);
}

/* The first element of src[0..n) that is not finite, or -1. */
static long first_nonfinite(const float *src, size_t n) {
    for (size_t j = 0; j < n; j++)
        if (!isfinite(src[j])) return (long)j;
    return -1;
}

rt_ckpt *rt_run_load_tensors(const rt_model *m, const char *path, float *params, float *states) {
    char err[512];
    rt_ckpt *c = rt_ckpt_load(path, err, sizeof err);
    if (!c) rt_die("%s", err);
    ckpt_version(c, path);
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
        /* Training stops on a non-finite loss before saving, so such a
         * value is corruption (or a diverged run saved elsewhere). */
        long bad = first_nonfinite(src, numel);
        if (bad >= 0)
            rt_die("%s: tensor '%s' holds a non-finite value (%g at element %ld of %zu)", path, name, (double)src[bad], bad, numel);
        memcpy(dst, src, sizeof(float) * numel);
    }
    return c;
}

/* A 1-D tensor train.NAME of n values of type dtype. */
static const void *train_tensor(const rt_ckpt *c, const char *path, const char *name, int dtype, int n) {
    int nd;
    int64_t sh[8];
    const void *p = rt_ckpt_get(c, name, dtype, &nd, sh);
    if (!p) rt_die("%s: no training state '%s' (%s)", path, name, dtype == RT_I64 ? "int64" : "float64");
    if (nd != 1 || sh[0] != n) rt_die("%s: corrupt checkpoint: training state '%s' does not hold %d values", path, name, n);
    return p;
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
                rt_die("%s: corrupt checkpoint: no float32 tensor '%s', which optimizer %s (its metadata 'config.optimizer') keeps", path,
                       name, rt_name_at(rt_config_fields[RT_CFG_optimizer].names, opt, optname, sizeof optname));
            bool ok = nd == pi->ndim;
            for (int d = 0; ok && d < nd; d++) ok = sh[d] == pi->shape[d];
            if (!ok) rt_die("%s: tensor '%s' has another shape than this model's", path, name);
            long bad = first_nonfinite(src, pi->numel);
            if (bad >= 0)
                rt_die("%s: tensor '%s' holds a non-finite value (%g at element %ld of %zu)", path, name, (double)src[bad], bad, pi->numel);
            memcpy((b ? T->mom2 : T->mom) + pi->off, src, sizeof(float) * pi->numel);
        }
    if (!rt_optim_is_adam(opt)) return;
    int nd;
    int64_t sh[RT_CKPT_MAXDIM];
    const int64_t *st = rt_ckpt_get(c, "optimizer.step", RT_I64, &nd, sh);
    if (!st || nd != 1 || sh[0] != m->nparams) rt_die("%s: no int64 tensor 'optimizer.step' of %d counts", path, m->nparams);
    for (int i = 0; i < m->nparams; i++) {
        if (st[i] < 0 || st[i] > T->step)
            rt_die("%s: corrupt checkpoint: optimizer.step[%d] is %lld, not a count of at most %ld steps", path, i, (long long)st[i], T->step);
        T->opt_steps[i] = st[i];
    }
}

/* --resume: the run state in last.ckpt's metadata and tensors; the best
 * weights, for the final diagnostic. The run configuration is already the
 * checkpoint's (rt_run_resume_config). */
void rt_run_resume(Trainer *T) {
    const rt_model *m = T->m;
    char path[4096];
    snprintf(path, sizeof path, "%s/last.ckpt", T->o->out_dir);
    if (access(path, F_OK) != 0) rt_die("cannot resume: %s does not exist (was the run started with --out %s?)", path, T->o->out_dir);
    rt_ckpt *c = rt_run_load_tensors(m, path, T->params, T->states);
    resumable(c, path);
#define X(key, type, member, lo, hi) get_##type(c, path, #key, &T->member, lo, hi);
    RUN_STATE(X)
#undef X
    load_optim(T, c, path);
    const int nb = m->nbranches;
    const double *sp = train_tensor(c, path, "train.speed_sums", RT_F64, 2 * nb);
    const int64_t *kc = train_tensor(c, path, "train.step_kinds", RT_I64, nb + 1);
    const double *bt = train_tensor(c, path, "train.best_branch_test", RT_F64, nb);
    long total = 0;
    for (int k = 0; k < nb; k++) {
        if (!(sp[2 * k] >= 0 && sp[2 * k] <= DBL_MAX && sp[2 * k + 1] >= 0 && sp[2 * k + 1] <= DBL_MAX))
            rt_die("%s: corrupt checkpoint: train.speed_sums of branch %d are not finite sums >= 0", path, k);
        T->speed.main_sum[k] = sp[2 * k];
        T->speed.bypass_sum[k] = sp[2 * k + 1];
        if (!(bt[k] >= 0 && bt[k] <= 1))
            rt_die("%s: corrupt checkpoint: train.best_branch_test of branch %d is %g, not an accuracy", path, k, bt[k]);
        T->best_branch_test[k] = bt[k];
    }
    for (int k = 0; k <= nb; k++) {
        if (kc[k] < 0 || kc[k] > T->step)
            rt_die("%s: corrupt checkpoint: train.step_kinds[%d] is %lld, not a count of at most %ld steps", path, k,
                   (long long)kc[k], T->step);
        T->kind_count[k] = kc[k];
        total += (long)kc[k];
    }
    if (total != T->step || T->kind_count[0] != T->regular_steps)
        rt_die("%s: corrupt checkpoint: train.step_kinds (%ld steps, %ld regular) disagree with metadata 'step' %ld and "
               "'regular_steps' %ld",
               path, total, T->kind_count[0], T->step, T->regular_steps);
    if (T->cfg.policy == RT_POLICY_GBLEND) {
        int nt = 0;
        for (int i = 0; i < m->nstates; i++) nt += m->states[i].kind == RT_STATE_LOSS_WEIGHT;
        const double *gb = train_tensor(c, path, "train.gblend_losses", RT_F64, 2 * nt);
        for (int k = 0; k < nt && k < RT_GBLEND_MAX; k++) {
            if (!(isfinite(gb[k]) && gb[k] >= 0 && isfinite(gb[nt + k]) && gb[nt + k] >= 0))
                rt_die("%s: corrupt checkpoint: train.gblend_losses of term %d are %g and %g, not cross-entropies", path, k, gb[k],
                       gb[nt + k]);
            T->gb.lt[k] = gb[k], T->gb.lv[k] = gb[nt + k];
        }
    }
    if (T->cfg.policy == RT_POLICY_AGM) { /* AGM's running means of its scores, each in [0, -log(1e-8)] */
        const double *a = train_tensor(c, path, "train.agm_avg", RT_F64, 2);
        for (int k = 0; k < 2; k++) {
            if (!(a[k] >= 0 && a[k] <= 18.5))
                rt_die("%s: corrupt checkpoint: train.agm_avg[%d] is %g, not a mean of AGM's scores (0 to 18.42)", path, k, a[k]);
            T->agm_avg[k] = a[k];
        }
    }
    /* The best checkpoint, for the final diagnostic. */
    snprintf(path, sizeof path, "%s/best.ckpt", T->o->out_dir);
    if (T->best_epoch >= 0) {
        rt_ckpt *b = rt_run_load_tensors(m, path, T->best_params, T->best_states);
        rt_ckpt_free(b);
    }
    rt_ckpt_free(c);
}

/* After the data is open: the steps the checkpoint counts are those of its
 * epochs over this training set. */
void rt_run_check_steps(const Trainer *T) {
    const int n = T->split[RT_SPLIT_TRAIN].n, per_epoch = (n + T->batch - 1) / T->batch;
    if (T->step != (long)T->epoch * per_epoch)
        rt_die("%s/last.ckpt: metadata 'step' is %ld, but %d epoch(s) of %d steps (%d training examples in batches of %d) are %ld: "
               "the data set has changed since the checkpoint, or the checkpoint is corrupt",
               T->o->out_dir, T->step, T->epoch, per_epoch, n, T->batch, (long)T->epoch * per_epoch);
}

/* --resume DIR's configuration: the checkpoint's, where the command line
 * (given[field]) does not set a field that the table lets it change. */
int rt_run_resume_config(const rt_model *m, const char *dir, rt_config *cfg, const bool *given, char *err, size_t errlen) {
    char path[4096], a[META_VALUE_MAX], b[META_VALUE_MAX], key[96];
    snprintf(path, sizeof path, "%s/last.ckpt", dir);
    if (access(path, F_OK) != 0) rt_die("cannot resume: %s does not exist (was the run started with --out %s?)", path, dir);
    char lerr[512];
    rt_ckpt *c = rt_ckpt_load(path, lerr, sizeof lerr);
    if (!c) rt_die("%s", lerr);
    resumable(c, path);
    const char *model = meta_req(c, path, "model");
    if (strcmp(model, m->name) != 0) rt_die("%s holds model '%s', but this program trains '%s'", path, model, m->name);
    rt_config saved = *cfg;
    rt_run_read_config(m, c, path, &saved);
    rt_ckpt_free(c);
    char restored[1024] = "";
    for (int i = 1; i < RT_CFG_COUNT; i++) {
        const rt_field *f = &rt_config_fields[i];
        config_text(m, cfg, f, a, sizeof a);
        config_text(m, &saved, f, b, sizeof b);
        if (i == RT_CFG_data_dir && !a[0]) snprintf(a, sizeof a, "%s", RT_DEFAULT_DATA); /* as rt_main resolves it */
        bool same = f->kind == RT_KIND_STR ? strcmp(a, b) == 0 : rt_field_get(cfg, f) == rt_field_get(&saved, f);
        if (i == RT_CFG_data_dir && !same) {
            char *ra = realpath(a, NULL), *rb = realpath(b, NULL);
            same = ra && rb && strcmp(ra, rb) == 0;
            free(ra);
            free(rb);
        }
        const char *name = f->flag ? f->flag : f->key ? f->key : f->name;
        if (given[i]) {
            if (same || f->resume == RT_RESUME_FREE) continue;
            if (f->resume == RT_RESUME_RAISE && rt_field_get(cfg, f) >= rt_field_get(&saved, f)) continue;
            if (f->resume == RT_RESUME_RAISE)
                snprintf(err, errlen, "%s %s is below the run's %s in %s: resume can raise it, not lower it", name, a, b, dir);
            else
                snprintf(err, errlen, "%s %s contradicts the run in %s, which has %s %s (resume keeps a run's settings; start a "
                         "new run with --out to change them)", name, a, dir, name, b[0] ? b : "''");
            return -1;
        }
        if (f->kind == RT_KIND_STR) snprintf(rt_field_strbuf(cfg, f), f->size, "%s", b);
        else memcpy((char *)cfg + f->off, (const char *)&saved + f->off, f->size);
        if (same) continue;
        snprintf(key, sizeof key, "%s%s %s", restored[0] ? ", " : "", name, b[0] ? b : "''");
        if (strlen(restored) + strlen(key) < sizeof restored - 8) strcat(restored, key);
        else if (!strstr(restored, ", ...")) strcat(restored, ", ...");
    }
    if (restored[0]) fprintf(stderr, "%s: resuming %s with its own settings: %s\n", rt_prog, dir, restored);
    return 0;
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

/* The temporary checkpoints (NAME.tmp.PID, rt_ckpt_save) that runs killed
 * while writing one left in dir: those whose process no longer exists, or
 * is this one (which has written none yet: the PID of a process gone
 * before it), are removed. */
void rt_run_remove_stale_temps(const char *dir) {
    static const char *const names[] = {"last.ckpt.tmp.", "best.ckpt.tmp."};
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            size_t k = strlen(names[i]);
            const char *pid = e->d_name + k;
            if (strncmp(e->d_name, names[i], k) != 0 || !pid[0] || strspn(pid, "0123456789") != strlen(pid) || strlen(pid) > 9) continue;
            long p = strtol(pid, NULL, 10);
            if (p <= 0 || (p != (long)getpid() && (kill((pid_t)p, 0) == 0 || errno != ESRCH))) continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            if (unlink(path) == 0) fprintf(stderr, "%s: removed %s, left by a run that was stopped while writing it\n", rt_prog, path);
        }
    }
    closedir(d);
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
    errno = 0;
    bool bad = fflush(out) != 0 || ferror(out);
    if (fclose(out) != 0 || bad || rename(tmp, path) != 0) rt_die("cannot rewrite '%s': %s", path, strerror(errno ? errno : EIO));
    return rt_fopen(path, "a");
}

/* Only whole lines: a kill while a line was being written leaves it cut. */
static bool whole_line(const char *line) { return line[0] && line[strlen(line) - 1] == '\n'; }

/* Steps count from 0: a checkpoint after `limit` steps covers steps 0 .. limit - 1. */
static bool keep_step(const char *line, long limit) {
    if (!whole_line(line)) return false;
    if (line[0] < '0' || line[0] > '9') return true; /* the header */
    return strtol(line, NULL, 10) < limit;
}

/* Epochs count from 1: a checkpoint after `limit` epochs covers epochs 1 .. limit. */
static bool keep_epoch(const char *line, long limit) {
    const char *p = strstr(line, "\"epoch\":");
    return whole_line(line) && p && strtol(p + 8, NULL, 10) <= limit;
}

void rt_run_open_logs(Trainer *T, const char *steps_header) {
    const rt_train_opts *o = T->o;
    if (!rt_is_root()) {
        /* Rank 0 alone keeps the run's logs. */
        T->steps = rt_fopen("/dev/null", "w");
        T->metrics = rt_fopen("/dev/null", "w");
        return;
    }
    T->steps = reopen_log(o->out_dir, "steps.csv", o->resume, keep_step, T->step, steps_header);
    T->metrics = reopen_log(o->out_dir, "metrics.jsonl", o->resume, keep_epoch, T->epoch, NULL);
}
