/* rt_multiview.c — the MVCNN multi-view render layout (ModelNet40 in 12
 * views): ROOT/CLASS/SPLIT/NAME.png (.jpg, .jpeg), one example per
 * object, input k reading the object's view views[k] (rt_source.h).
 *
 * Opening only lists directories: one readdir per class and split, no
 * stat per file (d_type says what an entry is; a file system that does not
 * fill it in costs a stat per class directory only), no image opened.
 * An object's views are the files whose names differ only in the last
 * number before the extension ("airplane_0627.obj.shaded_v001.png" ...
 * "_v012.png"), ordered by that number; view index v is the v-th of them.
 * Examples are in class order, then by object name. Reading decodes the
 * file (rt_image.c), so it runs on as many threads as the caller has. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "rt_image.h"
#include "rt_source.h"

#define MV_MAX_PATH 4096

/* ---- a growing byte buffer of NUL-terminated names ------------------------- */
typedef struct {
    char *p;
    size_t len, cap;
} strbuf;

static size_t sb_add(strbuf *b, const char *s) {
    size_t n = strlen(s) + 1, at = b->len;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) rt_die("out of memory listing image files (%s:%d)", __FILE__, __LINE__);
        b->p = p, b->cap = cap;
    }
    memcpy(b->p + at, s, n);
    b->len += n;
    return at;
}

static void *grow(void *p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return p;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    p = realloc(p, c * elem);
    if (!p) rt_die("out of memory listing image files (%s:%d)", __FILE__, __LINE__);
    *cap = c;
    return p;
}

/* ---- the source -------------------------------------------------------------- */
typedef struct {
    char *root, *split;
    int nclasses;
    char **classes;                   /* sorted */
    int c[RT_MAXIN], h[RT_MAXIN], w[RT_MAXIN];
    bool resize;
    strbuf names;                     /* file names (within their CLASS/SPLIT directory) */
    size_t *file;                     /* [n][ninputs]: offset in names of example i's file for input k */
} mv_impl;

static void mv_close(rt_source *s) {
    if (!s) return;
    mv_impl *m = s->impl;
    if (m) {
        for (int k = 0; k < m->nclasses; k++) free(m->classes[k]);
        free(m->classes);
        free(m->names.p);
        free(m->file);
        free(m->root);
        free(m->split);
        free(m);
    }
    free(s->y);
    free(s);
}

static int mv_read(rt_source *s, int i, int in, float *dst, char *err, size_t errlen) {
    const mv_impl *m = s->impl;
    if (i < 0 || i >= s->n || in < 0 || in >= s->ninputs) {
        rt_set_err(err, errlen, "%s: internal: example %d of input %d asked for (%d examples, %d inputs)", s->what, i, in, s->n,
                s->ninputs);
        return -1;
    }
    char path[MV_MAX_PATH];
    const char *name = m->names.p + m->file[(size_t)i * (size_t)s->ninputs + (size_t)in];
    int len = snprintf(path, sizeof path, "%s/%s/%s/%s", m->root, m->classes[s->y[i]], m->split, name);
    if (len < 0 || (size_t)len >= sizeof path) {
        rt_set_err(err, errlen, "%s/%s/%s/%s: path too long", m->root, m->classes[s->y[i]], m->split, name);
        return -1;
    }
    return rt_image_load(path, m->c[in], m->h[in], m->w[in], m->resize, dst, err, errlen);
}

/* ---- listing ------------------------------------------------------------------ */
static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Whether the entry e of directory dir is a directory (following links). */
static bool is_dir(const char *dir, const struct dirent *e) {
    if (e->d_type == DT_DIR) return true;
    if (e->d_type != DT_UNKNOWN && e->d_type != DT_LNK) return false;
    char p[MV_MAX_PATH];
    struct stat st;
    int n = snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    return n > 0 && (size_t)n < sizeof p && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The class directories of root, sorted; -1 with err. */
static int list_classes(const char *root, mv_impl *m, char *err, size_t errlen) {
    DIR *d = opendir(root);
    if (!d) {
        rt_set_err(err, errlen, "%s: %s", root, strerror(errno));
        return -1;
    }
    size_t cap = 0;
    struct dirent *e;
    for (errno = 0; (e = readdir(d)) != NULL; errno = 0) {
        if (e->d_name[0] == '.' || !is_dir(root, e)) continue;
        if (m->nclasses == INT_MAX) break;
        m->classes = grow(m->classes, &cap, (size_t)m->nclasses + 1, sizeof *m->classes);
        m->classes[m->nclasses] = strdup(e->d_name);
        if (!m->classes[m->nclasses]) rt_die("out of memory listing %s (%s:%d)", root, __FILE__, __LINE__);
        m->nclasses++;
    }
    int rerr = errno;
    closedir(d);
    if (rerr) {
        rt_set_err(err, errlen, "%s: cannot list the directory: %s", root, strerror(rerr));
        return -1;
    }
    if (m->nclasses == 0) {
        rt_set_err(err, errlen, "%s: no class directories (expected ROOT/CLASS/%s/*.png)", root, m->split);
        return -1;
    }
    qsort(m->classes, (size_t)m->nclasses, sizeof *m->classes, cmp_str);
    return 0;
}

/* An image file of one class directory: its name split around the view
 * number, name = prefix digits suffix (suffix holding the extension). */
typedef struct {
    const char *name;
    size_t off;          /* of name in the class's strbuf, until the listing is done */
    size_t pre, dig;     /* lengths of the prefix and of the digits */
    unsigned long long num;
} mv_file;

static bool is_image_name(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && dot != name &&
           (strcasecmp(dot, ".png") == 0 || strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0);
}

/* Split name around its view number: 0, or a reason why it has none. */
static const char *parse_view(mv_file *f) {
    const char *dot = strrchr(f->name, '.'), *end = dot;
    while (end > f->name && !(end[-1] >= '0' && end[-1] <= '9')) end--;
    if (end == f->name) return "no view number before the extension (views are named like NAME_v001.png)";
    const char *beg = end;
    while (beg > f->name && beg[-1] >= '0' && beg[-1] <= '9') beg--;
    /* Leading zeros carry no value; beyond 18 significant digits the
     * number would overflow, and no renderer numbers views like that. */
    const char *sig = beg;
    while (sig < end - 1 && *sig == '0') sig++;
    if (end - sig > 18) return "the view number before the extension has more than 18 digits";
    f->num = 0;
    for (const char *p = sig; p < end; p++) f->num = f->num * 10 + (unsigned)(*p - '0');
    f->pre = (size_t)(beg - f->name);
    f->dig = (size_t)(end - beg);
    return NULL;
}

/* Objects: files with the same prefix and suffix. */
/* The object's first view's file, from the root: "chair/test/chair_0890_001.png". */
static void mv_name(const rt_source *s, int i, char *buf, size_t n) {
    const mv_impl *m = s->impl;
    snprintf(buf, n, "%s/%s/%s", m->classes[s->y[i]], m->split, m->names.p + m->file[(size_t)i * (size_t)s->ninputs]);
}

static int cmp_object(const mv_file *a, const mv_file *b) {
    size_t n = a->pre < b->pre ? a->pre : b->pre;
    int r = memcmp(a->name, b->name, n);
    if (r) return r;
    if (a->pre != b->pre) return a->pre < b->pre ? -1 : 1;
    return strcmp(a->name + a->pre + a->dig, b->name + b->pre + b->dig);
}

static int cmp_file(const void *pa, const void *pb) {
    const mv_file *a = pa, *b = pb;
    int r = cmp_object(a, b);
    if (r) return r;
    return a->num < b->num ? -1 : a->num > b->num ? 1 : strcmp(a->name, b->name);
}

/* Append the examples of class k to the source; -1 with err. */
static int scan_class(rt_source *s, mv_impl *m, int k, const int *views, int nviews, int maxview, size_t *cap_y,
                      size_t *cap_file, char *err, size_t errlen) {
    char dir[MV_MAX_PATH];
    int dl = snprintf(dir, sizeof dir, "%s/%s/%s", m->root, m->classes[k], m->split);
    if (dl < 0 || (size_t)dl >= sizeof dir) {
        rt_set_err(err, errlen, "%s/%s/%s: path too long", m->root, m->classes[k], m->split);
        return -1;
    }
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT)
            rt_set_err(err, errlen, "%s/%s: the class has no '%s' directory", m->root, m->classes[k], m->split);
        else
            rt_set_err(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    strbuf names = {0};
    mv_file *f = NULL;
    size_t nf = 0, capf = 0;
    int rc = -1;
    struct dirent *e;
    for (errno = 0; (e = readdir(d)) != NULL; errno = 0) {
        if (e->d_name[0] == '.' || e->d_type == DT_DIR || !is_image_name(e->d_name)) continue;
        f = grow(f, &capf, nf + 1, sizeof *f);
        f[nf++] = (mv_file){.off = sb_add(&names, e->d_name)};
    }
    int rerr = errno;
    closedir(d);
    if (rerr) {
        rt_set_err(err, errlen, "%s: cannot list the directory: %s", dir, strerror(rerr));
        goto out;
    }
    if (nf == 0) {
        rt_set_err(err, errlen, "%s: no images (*.png, *.jpg, *.jpeg) for class '%s'", dir, m->classes[k]);
        goto out;
    }
    for (size_t j = 0; j < nf; j++) {
        f[j].name = names.p + f[j].off;
        const char *why = parse_view(&f[j]);
        if (why) {
            rt_set_err(err, errlen, "%s/%s: %s", dir, f[j].name, why);
            goto out;
        }
    }
    qsort(f, nf, sizeof *f, cmp_file);
    for (size_t a = 0, b; a < nf; a = b) {
        for (b = a + 1; b < nf && cmp_object(&f[a], &f[b]) == 0; b++)
            if (f[b].num == f[b - 1].num) {
                rt_set_err(err, errlen, "%s: %s and %s have the same view number %llu", dir, f[b - 1].name, f[b].name, f[b].num);
                goto out;
            }
        size_t have = b - a;
        if ((size_t)maxview >= have) {
            rt_set_err(err, errlen, "%s/%s: the object has %zu view%s (%s ... %s), but view %d is asked for (views count from 0)",
                    dir, f[a].name, have, have == 1 ? "" : "s", f[a].name, f[b - 1].name, maxview);
            goto out;
        }
        if (s->n == INT_MAX) {
            rt_set_err(err, errlen, "%s: more than %d objects", m->root, INT_MAX);
            goto out;
        }
        s->y = grow(s->y, cap_y, (size_t)s->n + 1, sizeof *s->y);
        m->file = grow(m->file, cap_file, ((size_t)s->n + 1) * (size_t)nviews, sizeof *m->file);
        s->y[s->n] = k;
        size_t *row = m->file + (size_t)s->n * (size_t)nviews;
        for (int v = 0; v < nviews; v++) row[v] = sb_add(&m->names, f[a + (size_t)views[v]].name);
        s->n++;
    }
    rc = 0;
out:
    free(f);
    free(names.p);
    return rc;
}

rt_source *rt_multiview_open(const char *root, const char *split, const int *views, int nviews,
                             const rt_source_input *inputs, bool resize, char *err, size_t errlen) {
    if (nviews < 1 || nviews > RT_MAXIN || !views || !inputs) {
        rt_set_err(err, errlen, "%s: internal: %d views asked for (1 to %d, one per model input)", root, nviews, RT_MAXIN);
        return NULL;
    }
    if (!split || !split[0] || strchr(split, '/')) {
        rt_set_err(err, errlen, "%s: internal: bad split name '%s'", root, split ? split : "(null)");
        return NULL;
    }
    int maxview = 0;
    for (int v = 0; v < nviews; v++) {
        const rt_source_input *in = &inputs[v];
        if (views[v] < 0) {
            rt_set_err(err, errlen, "%s: view %d for input '%s' is negative (views count from 0)", root, views[v], in->name);
            return NULL;
        }
        if (views[v] > maxview) maxview = views[v];
        if (in->ndim != 3 || (in->shape[0] != 1 && in->shape[0] != 3) || in->shape[1] < 1 || in->shape[2] < 1) {
            rt_set_err(err, errlen, "%s: input '%s' must be an image, [1 or 3, H, W], to read views", root, in->name);
            return NULL;
        }
    }
    rt_source *s = rt_alloc(sizeof *s);
    mv_impl *m = rt_alloc(sizeof *m);
    s->impl = m;
    s->read = mv_read;
    s->close = mv_close;
    s->name = mv_name;
    s->ninputs = nviews;
    snprintf(s->what, sizeof s->what, "%s (%s)", root, split);
    m->root = strdup(root);
    m->split = strdup(split);
    if (!m->root || !m->split) rt_die("out of memory (%s:%d)", __FILE__, __LINE__);
    m->resize = resize;
    for (int v = 0; v < nviews; v++) m->c[v] = inputs[v].shape[0], m->h[v] = inputs[v].shape[1], m->w[v] = inputs[v].shape[2];

    if (list_classes(root, m, err, errlen) != 0) goto fail;
    size_t cap_y = 0, cap_file = 0;
    for (int k = 0; k < m->nclasses; k++)
        if (scan_class(s, m, k, views, nviews, maxview, &cap_y, &cap_file, err, errlen) != 0) goto fail;
    s->classes = m->nclasses;
    return s;
fail:
    mv_close(s);
    return NULL;
}
