/* mmnet_shared.c — the tables of mmnet_shared.h as arrays that the compiler
 * and the runtime walk (both link this file), and the few functions that
 * read and write a configuration through them. */
#include <stdio.h>
#include <string.h>

#include "mmnet_shared.h"

#define RT_UNPAREN(...) __VA_ARGS__
#define RT_PATH_OPTIM(name) opt.name
#define RT_PATH_RUN(name) name
#define RT_IS_OPTIM_OPTIM 1
#define RT_IS_OPTIM_RUN 0

const rt_field rt_config_fields[RT_CFG_COUNT] = {
/* (The parameters are not called name and kind: those are member names.) */
#define X(G, N, K, props)                                                                                             \
    [RT_CFG_##N] = {.name = #N, .kind = RT_KIND_##K, .optim = RT_IS_OPTIM_##G, .off = offsetof(rt_config, RT_PATH_##G(N)), \
                    .size = sizeof(((rt_config *)0)->RT_PATH_##G(N)), RT_UNPAREN props},
    RT_CONFIG_FIELDS(X)
#undef X
};

const rt_choice rt_policies[RT_POLICY_COUNT] = {
#define X(id, str, variant, opts) {str, variant, {RT_UNPAREN opts}},
    RT_POLICIES(X)
#undef X
};
#define X(id, str, opts) {str, RT_VAR_TRAIN, {RT_UNPAREN opts}},
const rt_choice rt_data_sources[RT_DATA_COUNT] = {RT_DATA_SOURCES(X)};
const rt_choice rt_optimizers[RT_OPTIMIZER_COUNT] = {RT_OPTIMIZERS(X)};
const rt_choice rt_schedules[RT_SCHEDULE_COUNT] = {RT_SCHEDULES(X)};
const rt_choice rt_early_stops[RT_STOP_COUNT] = {RT_EARLY_STOPS(X)};
const rt_choice rt_lr_warmup[1] = {RT_LR_WARMUP(X)};
#undef X

void rt_config_defaults(rt_config *c) {
    memset(c, 0, sizeof *c);
    for (int i = 1; i < RT_CFG_COUNT; i++)
        if (rt_config_fields[i].kind != RT_KIND_STR) rt_field_set(c, &rt_config_fields[i], rt_config_fields[i].dflt);
}

double rt_field_get(const rt_config *c, const rt_field *f) {
    const char *p = (const char *)c + f->off;
    switch (f->kind) {
    case RT_KIND_FLOAT: return *(const float *)p;
    case RT_KIND_U64: return (double)*(const unsigned long long *)p;
    case RT_KIND_STR: return 0;
    default: return *(const int *)p;
    }
}

void rt_field_set(rt_config *c, const rt_field *f, double v) {
    char *p = (char *)c + f->off;
    switch (f->kind) {
    case RT_KIND_FLOAT: *(float *)p = (float)v; break;
    case RT_KIND_U64: *(unsigned long long *)p = (unsigned long long)v; break;
    case RT_KIND_STR: break;
    default: *(int *)p = (int)v; break;
    }
}

const char *rt_field_str(const rt_config *c, const rt_field *f) { return (const char *)c + f->off; }
char *rt_field_strbuf(rt_config *c, const rt_field *f) { return (char *)c + f->off; }

static int in_range(const rt_field *f, double v) {
    return v >= f->lo && v <= f->hi && !(f->lo_open && v == f->lo) && !(f->hi_open && v == f->hi);
}

/* A float field's value is also checked as the float it becomes: momentum
 * 0.99999999 is 1 once stored. */
int rt_field_in_range(const rt_field *f, double v) { return in_range(f, v) && (f->kind != RT_KIND_FLOAT || in_range(f, (float)v)); }

int rt_name_index(const char *names, const char *name) {
    size_t n = strlen(name);
    int i = 0;
    for (const char *p = names; p; i++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0) return i;
        p = bar ? bar + 1 : NULL;
    }
    return -1;
}

const char *rt_name_at(const char *names, int i, char *buf, size_t n) {
    const char *p = names;
    for (; i > 0 && p; i--) {
        p = strchr(p, '|');
        if (p) p++;
    }
    if (!p) return NULL;
    snprintf(buf, n, "%.*s", (int)strcspn(p, "|"), p);
    return buf;
}

int rt_choice_find(const rt_choice *t, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(t[i].name, name) == 0) return i;
    return -1;
}

rt_mem_sizes rt_mem_bytes(const rt_mem_plan *p, long batch, int threads) {
    const double f = sizeof(float), b = (double)batch;
    rt_mem_sizes r;
    /* per example: activations, and its inputs and label (int32) in each of the loader's slots */
    r.per_example = f * ((double)p->act + RT_LOADER_SLOTS * ((double)p->inputs + 1));
    r.activations = f * (double)p->act * b;
    r.batches = f * RT_LOADER_SLOTS * ((double)p->inputs + 1) * b;
    /* parameters, gradients, the best epoch's and the host's copy; the
     * optimizer's buffers on the back end and their host copies */
    const double ob = p->optim_buffers > 0 ? p->optim_buffers : 1;
    r.parameters = f * ((4.0 + 2.0 * ob) * (double)p->params + 3.0 * (double)p->states);
    r.workspace = f * ((double)p->fixed + (double)p->work + (double)p->scratch * (threads > 0 ? threads : 1));
    r.total = r.activations + r.batches + r.parameters + r.workspace;
    return r;
}

long rt_mem_max_batch(const rt_mem_plan *p, double avail, int threads) {
    rt_mem_sizes one = rt_mem_bytes(p, 1, threads);
    double rest = avail - (one.total - one.per_example);
    if (rest < one.per_example) return 0;
    double b = rest / one.per_example;
    return b > 2147483647.0 ? 2147483647L : (long)b;
}
