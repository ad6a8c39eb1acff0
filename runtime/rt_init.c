/* rt_init.c — train --init FILE: a run that starts from weights trained
 * elsewhere (another run's checkpoint, or another framework's state dict
 * renamed to this model's names: mmc info --params lists them, and
 * tools/torchvision_resnet18.py maps torchvision's ResNet-18).
 *
 * Every parameter and state tensor of the model whose name the file holds
 * takes the file's values (float32, or float64 converted); the others keep
 * their fresh initialisation. A tensor of the same name and another shape
 * stops the program, naming both shapes, unless --init-partial, which
 * skips it (a head with another number of classes). What was loaded,
 * skipped, missing from the file or unused in it is reported on stderr. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rt_trainer.h"

#define SHOWN 6 /* names listed per kind, then a count */

typedef struct {
    const char *what;
    int n;
    char text[512];
} NameList;

static void add(NameList *l, const char *name) {
    size_t len = strlen(l->text);
    if (l->n < SHOWN) snprintf(l->text + len, sizeof l->text - len, "%s%s", l->n ? ", " : "", name);
    l->n++;
}

static void report(const NameList *l) {
    if (!l->n) return;
    fprintf(stderr, "%s: --init: %d tensor%s %s: %s%s", rt_prog, l->n, l->n == 1 ? "" : "s", l->what, l->text, l->n > SHOWN ? ", ..." : "");
    if (l->n > SHOWN) fprintf(stderr, " (%d more)", l->n - SHOWN);
    fputc('\n', stderr);
}

static const char *shape_text(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < ndim && k < n; d++) k += (size_t)snprintf(buf + k, n - k, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

void rt_run_init(Trainer *T, const char *path, bool partial) {
    const rt_model *m = T->m;
    char err[512];
    rt_ckpt *c = rt_ckpt_load(path, err, sizeof err);
    if (!c) rt_die("--init: %s", err);
    int nt = rt_ckpt_count(c);
    unsigned char *used = rt_alloc((size_t)nt + 1);
    NameList skipped = {"of another shape, skipped (--init-partial)", 0, ""}, missing = {"not in the file, freshly initialised", 0, ""},
             unused = {"of the file not in the model", 0, ""};
    int loaded[2] = {0, 0};
    for (int i = 0; i < m->nparams + m->nstates; i++) {
        bool param = i < m->nparams;
        const char *name = param ? m->params[i].name : m->states[i - m->nparams].name;
        int ndim = param ? m->params[i].ndim : m->states[i - m->nparams].ndim;
        const int *shape = param ? m->params[i].shape : m->states[i - m->nparams].shape;
        size_t numel = param ? m->params[i].numel : m->states[i - m->nparams].numel;
        float *dst = param ? T->params + m->params[i].off : T->states + m->states[i - m->nparams].off;
        int j = 0, dtype, nd;
        int64_t sh[RT_CKPT_MAXDIM];
        while (j < nt && strcmp(rt_ckpt_name(c, j, &dtype, &nd, sh), name) != 0) j++;
        if (j == nt) {
            add(&missing, name);
            continue;
        }
        used[j] = 1;
        bool same = nd == ndim;
        for (int d = 0; same && d < nd; d++) same = sh[d] == shape[d];
        if (!same || dtype == RT_I64) {
            char a[128], b[128];
            int64_t mine[RT_CKPT_MAXDIM];
            for (int d = 0; d < ndim; d++) mine[d] = shape[d];
            if (dtype == RT_I64) rt_die("--init: %s: tensor '%s' holds integers; the model's is float32", path, name);
            if (!partial)
                rt_die("--init: %s: tensor '%s' has shape %s in the file and %s in the model; --init-partial skips such tensors", path, name,
                       shape_text(a, sizeof a, nd, sh), shape_text(b, sizeof b, ndim, mine));
            add(&skipped, name);
            continue;
        }
        const void *src = rt_ckpt_get(c, name, dtype, NULL, NULL);
        if (dtype == RT_F32) memcpy(dst, src, sizeof(float) * numel);
        else for (size_t k = 0; k < numel; k++) dst[k] = (float)((const double *)src)[k];
        /* A NaN or infinite weight would train on silently where a ReLU
         * hides it from the loss (max(NaN, 0) is 0 in SIMD), or stop the run
         * at its first step far from its cause; a float64 value beyond
         * float32's range is refused the same way. */
        for (size_t k = 0; k < numel; k++)
            if (!isfinite(dst[k])) {
                double v = dtype == RT_F32 ? (double)((const float *)src)[k] : ((const double *)src)[k];
                rt_die("--init: %s: tensor '%s' holds a non-finite value as float32 (%g at element %zu of %zu)", path, name, v, k, numel);
            }
        loaded[param ? 0 : 1]++;
    }
    /* Our own checkpoints' optimizer and run state is not the model's. */
    for (int j = 0; j < nt; j++) {
        const char *name = rt_ckpt_name(c, j, NULL, NULL, NULL);
        if (!used[j] && strncmp(name, "optimizer.", 10) != 0 && strncmp(name, "train.", 6) != 0) add(&unused, name);
    }
    if (loaded[0] + loaded[1] == 0)
        rt_die("--init: %s holds none of the model's %d parameters under their names (mmc info --params lists them; e.g. '%s')", path,
               m->nparams, m->params[0].name);
    fprintf(stderr, "%s: --init %s: loaded %d of %d parameters and %d of %d state tensors\n", rt_prog, path, loaded[0], m->nparams,
            loaded[1], m->nstates);
    report(&skipped);
    report(&missing);
    report(&unused);
    free(used);
    rt_ckpt_free(c);
}
