/* rt_arrays.c — the user's own arrays (rt_source.h): DIR/SPLIT.safetensors
 * holding one tensor per model input and a `label` tensor, or a directory
 * DIR/SPLIT/ of .npy files, INPUT.npy and label.npy.
 *
 * The files are memory-mapped, never read whole: opening parses and checks
 * the headers (against the file sizes, each other and the model's inputs)
 * and copies the labels; reading converts one example from the mapping
 * (uint8 / 255, float16 widened, float32 as stored). A file that shrinks
 * while mapped would fault the reader (SIGBUS); training data is not
 * expected to change under a run. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>


#include "rt_safetensors.h"
#include "rt_source.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "rt_arrays.c reads little-endian safetensors and .npy data in host order"
#endif

#define AR_MAX_DIM RT_ST_MAX_DIM

/* ---- element types ---------------------------------------------------------- */
enum { AR_BOOL, AR_U8, AR_I8, AR_U16, AR_I16, AR_U32, AR_I32, AR_U64, AR_I64, AR_F16, AR_BF16, AR_F32, AR_F64, AR_NTYPES };
/* Their safetensors names, .npy type codes (after the byte-order mark),
 * sizes, and what they may hold here: a model input or labels. */
static const struct {
    const char *st, *npy;
    int size;
    bool input, label;
} ar_types[AR_NTYPES] = {
    [AR_BOOL] = {"BOOL", "b1", 1, false, false}, [AR_U8] = {"U8", "u1", 1, true, true},
    [AR_I8] = {"I8", "i1", 1, false, true},      [AR_U16] = {"U16", "u2", 2, false, true},
    [AR_I16] = {"I16", "i2", 2, false, true},    [AR_U32] = {"U32", "u4", 4, false, true},
    [AR_I32] = {"I32", "i4", 4, false, true},    [AR_U64] = {"U64", "u8", 8, false, true},
    [AR_I64] = {"I64", "i8", 8, false, true},    [AR_F16] = {"F16", "f2", 2, true, false},
    [AR_BF16] = {"BF16", NULL, 2, false, false}, [AR_F32] = {"F32", "f4", 4, true, false},
    [AR_F64] = {"F64", "f8", 8, false, false},
};

/* One tensor as a file describes it, checked against the file's size. */
typedef struct {
    const char *file, *name; /* for messages */
    char dtype_s[16];        /* as the file spells it ("F32", "<f4") */
    int dtype;               /* AR_*, or -1: a type we do not read */
    int ndim;
    int64_t shape[AR_MAX_DIM];
    const uint8_t *data;
} ar_tensor;

static void fmt_shape(char *s, size_t n, int ndim, const int64_t *shape, bool with_n) {
    size_t k = (size_t)snprintf(s, n, "[%s", with_n ? "N" : "");
    for (int d = 0; d < ndim && k < n; d++)
        k += (size_t)snprintf(s + k, n - k, "%s%lld", d || with_n ? ", " : "", (long long)shape[d]);
    if (k < n) snprintf(s + k, n - k, "]");
}

/* IEEE half to float, exactly (subnormals, infinities, NaN payloads). */
static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        float f = (float)man * 0x1p-24f; /* zero or subnormal: man * 2^-24, exact */
        return sign ? -f : f;
    }
    bits = exp == 0x1f ? sign | 0x7f800000u | man << 13 : sign | (exp + 112) << 23 | man << 13;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* ---- mapped files ------------------------------------------------------------- */
typedef struct {
    char *path;
    const uint8_t *p;
    size_t len;
} ar_map;

static char *path_join(const char *a, const char *b, const char *c) {
    size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
    char *p = rt_alloc(n);
    snprintf(p, n, "%s%s%s", a, b, c);
    return p;
}

/* Map path (taking ownership of it) read-only: 0, or the errno (EINVAL
 * for an empty file) with err. */
static int map_file(char *path, ar_map *m, char *err, size_t errlen) {
    m->path = path;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        rt_set_err(err, errlen, "%s: %s", path, strerror(e));
        return e;
    }
    struct stat st;
    int bad = fstat(fd, &st) != 0 ? errno : S_ISDIR(st.st_mode) ? EISDIR : 0;
    if (bad || st.st_size == 0) {
        if (bad) rt_set_err(err, errlen, "%s: %s", path, strerror(bad));
        else rt_set_err(err, errlen, "%s: empty file", path);
        close(fd);
        return bad ? bad : EINVAL;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int merr = errno;
    close(fd);
    if (p == MAP_FAILED) {
        rt_set_err(err, errlen, "%s: cannot map the file: %s", path, strerror(merr));
        return merr;
    }
    m->p = p;
    m->len = (size_t)st.st_size;
    return 0;
}

static void unmap_file(ar_map *m) {
    if (m->p) munmap((void *)m->p, m->len);
    free(m->path);
    memset(m, 0, sizeof *m);
}

/* ---- the source ------------------------------------------------------------------ */
typedef struct {
    int dtype;           /* AR_U8, AR_F16, AR_F32 */
    const uint8_t *data; /* example 0 */
    size_t numel;        /* elements per example */
} ar_input;

typedef struct {
    ar_map maps[RT_MAXIN + 1];
    int nmaps;
    ar_input in[RT_MAXIN];
} ar_impl;

static void ar_close(rt_source *s) {
    if (!s) return;
    ar_impl *a = s->impl;
    if (a) {
        for (int k = 0; k < a->nmaps; k++) unmap_file(&a->maps[k]);
        free(a);
    }
    free(s->y);
    free(s);
}

static int ar_read(rt_source *s, int i, int in, float *dst, char *err, size_t errlen) {
    const ar_impl *a = s->impl;
    if (i < 0 || i >= s->n || in < 0 || in >= s->ninputs) {
        rt_set_err(err, errlen, "%s: internal: example %d of input %d asked for (%d examples, %d inputs)", s->what, i, in, s->n,
                s->ninputs);
        return -1;
    }
    const ar_input *x = &a->in[in];
    size_t n = x->numel;
    const uint8_t *p = x->data + (size_t)i * n * (size_t)ar_types[x->dtype].size;
    switch (x->dtype) {
    case AR_U8:
        for (size_t e = 0; e < n; e++) dst[e] = (float)p[e] / 255.0f;
        break;
    case AR_F16:
        for (size_t e = 0; e < n; e++) {
            uint16_t h;
            memcpy(&h, p + 2 * e, 2); /* the file need not align it */
            dst[e] = half_to_float(h);
        }
        break;
    default: memcpy(dst, p, n * sizeof(float)); break;
    }
    return 0;
}

/* ---- checks common to both formats ------------------------------------------------ */
/* t against model input `in`: its type and shape [N, ...input shape...]. */
static int check_input(const ar_tensor *t, const rt_source_input *in, char *err, size_t errlen) {
    if (t->dtype < 0 || !ar_types[t->dtype].input) {
        rt_set_err(err, errlen, "%s: tensor '%s' (the model's input '%s') has dtype %s; inputs must be uint8, float16 or float32",
                t->file, t->name, in->name, t->dtype_s);
        return -1;
    }
    bool ok = t->ndim == in->ndim + 1;
    for (int d = 0; ok && d < in->ndim; d++) ok = t->shape[d + 1] == in->shape[d];
    if (!ok) {
        char have[AR_MAX_DIM * 24], want[5 * 24];
        int64_t ws[4];
        for (int d = 0; d < in->ndim; d++) ws[d] = in->shape[d];
        fmt_shape(have, sizeof have, t->ndim, t->shape, false);
        fmt_shape(want, sizeof want, in->ndim, ws, true);
        rt_set_err(err, errlen, "%s: tensor '%s' has shape %s, but the model's input '%s' needs %s", t->file, t->name, have,
                in->name, want);
        return -1;
    }
    return 0;
}

static int check_label_type(const ar_tensor *t, char *err, size_t errlen) {
    if (t->dtype < 0 || !ar_types[t->dtype].label) {
        rt_set_err(err, errlen, "%s: tensor '%s' has dtype %s; labels must be integers", t->file, t->name, t->dtype_s);
        return -1;
    }
    if (t->ndim != 1) {
        char have[AR_MAX_DIM * 24];
        fmt_shape(have, sizeof have, t->ndim, t->shape, false);
        rt_set_err(err, errlen, "%s: tensor '%s' has shape %s; labels must be one dimension, [N]", t->file, t->name, have);
        return -1;
    }
    return 0;
}

/* The number of examples, the same in every tensor; the label tensor last. */
static int check_counts(const ar_tensor *t, int nt, char *err, size_t errlen) {
    const ar_tensor *lab = &t[nt - 1];
    for (int k = 0; k < nt - 1; k++)
        if (t[k].shape[0] != lab->shape[0]) {
            rt_set_err(err, errlen, "%s: tensor '%s' holds %lld examples, but '%s' (%s) holds %lld labels", t[k].file, t[k].name,
                    (long long)t[k].shape[0], lab->name, lab->file, (long long)lab->shape[0]);
            return -1;
        }
    if (lab->shape[0] == 0) {
        rt_set_err(err, errlen, "%s: tensor '%s' holds no examples", lab->file, lab->name);
        return -1;
    }
    if (lab->shape[0] > INT_MAX) {
        rt_set_err(err, errlen, "%s: tensor '%s' holds %lld examples, more than %d", lab->file, lab->name, (long long)lab->shape[0],
                INT_MAX);
        return -1;
    }
    return 0;
}

/* The labels into s->y, each in [0, 2^31 - 1); classes = max + 1. */
static int copy_labels(rt_source *s, const ar_tensor *t, char *err, size_t errlen) {
    int n = (int)t->shape[0], size = ar_types[t->dtype].size;
    bool is_signed = t->dtype == AR_I8 || t->dtype == AR_I16 || t->dtype == AR_I32 || t->dtype == AR_I64;
    s->y = rt_alloc(sizeof(int32_t) * (size_t)n);
    s->n = n;
    int32_t max = 0;
    for (int i = 0; i < n; i++) {
        uint64_t u = 0;
        memcpy(&u, t->data + (size_t)i * (size_t)size, (size_t)size); /* little-endian host: the low bytes */
        if (is_signed && (u >> (8 * size - 1)) & 1) {
            int64_t v = (int64_t)(size < 8 ? u | ~0ULL << (8 * size) : u); /* sign-extended */
            rt_set_err(err, errlen, "%s: tensor '%s': label %lld at index %d is negative (labels are classes 0, 1, ...)", t->file,
                    t->name, (long long)v, i);
            return -1;
        }
        /* classes = max + 1 must fit an int */
        if (u >= INT32_MAX) {
            rt_set_err(err, errlen, "%s: tensor '%s': label %llu at index %d is too large", t->file, t->name,
                    (unsigned long long)u, i);
            return -1;
        }
        s->y[i] = (int32_t)u;
        if (s->y[i] > max) max = s->y[i];
    }
    s->classes = max + 1;
    return 0;
}

/* Bind model input k to tensor t (already checked). */
static void bind_input(ar_impl *a, int k, const ar_tensor *t) {
    size_t numel = 1;
    for (int d = 1; d < t->ndim; d++) numel *= (size_t)t->shape[d];
    a->in[k] = (ar_input){t->dtype, t->data, numel};
}

/* ---- safetensors ---------------------------------------------------------------------- */
static int st_open(rt_source *s, ar_impl *a, char *path, const rt_source_input *inputs, int ninputs, char *err,
                   size_t errlen) {
    ar_map *m = &a->maps[a->nmaps++];
    if (map_file(path, m, err, errlen) != 0) return -1;
    /* Every dtype is parsed (and its bytes checked for overlaps); those we
     * read have their sizes checked too; which a tensor may have is
     * checked when it is used. The metadata is the writer's business
     * (numpy's and PyTorch's writers put what they like there). */
    rt_st_dtype types[AR_NTYPES];
    for (int k = 0; k < AR_NTYPES; k++) types[k] = (rt_st_dtype){ar_types[k].st, ar_types[k].size};
    rt_st_header h;
    int rc = -1;
    if (rt_st_parse(path, m->p, m->len, types, AR_NTYPES, RT_ST_OTHER_DTYPES | RT_ST_ANY_METADATA, &h, err, errlen) != 0) goto out;
    ar_tensor *t = rt_alloc(sizeof *t * (size_t)(h.n + 1));
    for (int k = 0; k < h.n; k++) {
        t[k] = (ar_tensor){.file = path, .name = h.t[k].name, .dtype = h.t[k].dtype, .ndim = h.t[k].ndim, .data = h.t[k].data};
        snprintf(t[k].dtype_s, sizeof t[k].dtype_s, "%s", h.t[k].dtype_s);
        memcpy(t[k].shape, h.t[k].shape, sizeof(int64_t) * (size_t)h.t[k].ndim);
    }
    int nt = h.n;

    /* The tensors this source uses, inputs in order and the label last. */
    ar_tensor use[RT_MAXIN + 1];
    for (int k = 0; k <= ninputs; k++) {
        const char *want = k < ninputs ? inputs[k].name : "label";
        int found = -1;
        for (int q = 0; q < nt; q++)
            if (strcmp(t[q].name, want) == 0) found = q;
        if (found < 0) {
            char have[256] = "";
            size_t hl = 0;
            for (int q = 0; q < nt && hl < sizeof have; q++)
                hl += (size_t)snprintf(have + hl, sizeof have - hl, "%s'%s'", q ? ", " : "", t[q].name);
            if (k < ninputs)
                rt_set_err(err, errlen, "%s: no tensor '%s' for the model's input '%s' (the file holds %s)", path, want, want,
                        nt ? have : "no tensors");
            else
                rt_set_err(err, errlen, "%s: no tensor 'label' (the file holds %s)", path, nt ? have : "no tensors");
            goto done;
        }
        use[k] = t[found];
        if (k < ninputs ? check_input(&use[k], &inputs[k], err, errlen) : check_label_type(&use[k], err, errlen)) goto done;
    }
    if (check_counts(use, ninputs + 1, err, errlen) != 0 || copy_labels(s, &use[ninputs], err, errlen) != 0) goto done;
    for (int k = 0; k < ninputs; k++) bind_input(a, k, &use[k]);
    rc = 0;
done:
    free(t);
out:
    rt_st_free(&h);
    return rc;
}

/* ---- .npy ------------------------------------------------------------------------------ */
/* The header is a Python dict literal:
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (100, 3, 32, 32), }
 * read by a small parser of exactly that: strings, True/False, tuples of
 * integers. */
typedef struct {
    const char *p, *end;
} cur;

static void skip_ws(cur *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

static bool eat(cur *c, char ch) {
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

/* A quoted string without escapes into out. */
static bool py_str(cur *c, char *out, size_t n) {
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return false;
    char q = *c->p++;
    size_t k = 0;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || k + 1 >= n) return false;
        out[k++] = *c->p++;
    }
    if (c->p >= c->end) return false;
    c->p++;
    out[k] = '\0';
    return true;
}

static bool py_word(cur *c, const char *w) {
    skip_ws(c);
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n) != 0) return false;
    c->p += n;
    return true;
}

/* Parse one .npy header into t; -1 with err. */
static int npy_header(const char *path, const char *h, size_t hlen, ar_tensor *t, char *err, size_t errlen) {
    cur c = {h, h + hlen};
    bool seen[3] = {false, false, false}, fortran = false;
    char descr[16] = "";
    if (!eat(&c, '{')) goto bad;
    while (!eat(&c, '}')) {
        char key[32];
        if (!py_str(&c, key, sizeof key) || !eat(&c, ':')) goto bad;
        if (strcmp(key, "descr") == 0) {
            if (!py_str(&c, descr, sizeof descr)) {
                rt_set_err(err, errlen, "%s: unsupported element type (a structured or unusual 'descr')", path);
                return -1;
            }
            seen[0] = true;
        } else if (strcmp(key, "fortran_order") == 0) {
            if (py_word(&c, "True")) fortran = true;
            else if (!py_word(&c, "False")) goto bad;
            seen[1] = true;
        } else if (strcmp(key, "shape") == 0) {
            if (!eat(&c, '(')) goto bad;
            while (!eat(&c, ')')) {
                skip_ws(&c);
                int64_t v = 0;
                const char *d0 = c.p;
                while (c.p < c.end && *c.p >= '0' && *c.p <= '9') {
                    if (v > (INT64_MAX - 9) / 10) goto bad;
                    v = v * 10 + (*c.p++ - '0');
                }
                if (c.p == d0 || t->ndim == AR_MAX_DIM) goto bad;
                t->shape[t->ndim++] = v;
                if (!eat(&c, ',') && !(skip_ws(&c), c.p < c.end && *c.p == ')')) goto bad;
            }
            seen[2] = true;
        } else {
            rt_set_err(err, errlen, "%s: unknown key '%s' in the .npy header", path, key);
            return -1;
        }
        if (!eat(&c, ',') && !(skip_ws(&c), c.p < c.end && *c.p == '}')) goto bad;
    }
    if (!seen[0] || !seen[1] || !seen[2]) goto bad;
    snprintf(t->dtype_s, sizeof t->dtype_s, "'%s'", descr);
    if (descr[0] == '>' && strcmp(descr + 1, "u1") != 0 && strcmp(descr + 1, "i1") != 0) {
        rt_set_err(err, errlen, "%s: big-endian data (%s); save it little-endian (arr.astype('<%s'))", path, t->dtype_s, descr + 1);
        return -1;
    }
    t->dtype = -1;
    if (descr[0] == '<' || descr[0] == '|' || descr[0] == '=' || descr[0] == '>')
        for (int k = 0; k < AR_NTYPES; k++)
            if (ar_types[k].npy && strcmp(descr + 1, ar_types[k].npy) == 0) t->dtype = k;
    if (t->dtype < 0) {
        rt_set_err(err, errlen, "%s: unsupported element type %s", path, t->dtype_s);
        return -1;
    }
    if (fortran && t->ndim > 1) {
        rt_set_err(err, errlen, "%s: the array is in Fortran order; save a C-order one (np.ascontiguousarray(arr))", path);
        return -1;
    }
    return 0;
bad:
    rt_set_err(err, errlen, "%s: malformed .npy header", path);
    return -1;
}

/* DIR/SPLIT/NAME.npy mapped into a->maps and described in t (whose name
 * is `name`, a string that outlives it). */
static int npy_open(ar_impl *a, const char *dir, const char *name, ar_tensor *t, char *err, size_t errlen) {
    ar_map *m = &a->maps[a->nmaps++];
    size_t fl = strlen(dir) + strlen(name) + 6;
    char *file = rt_alloc(fl);
    snprintf(file, fl, "%s/%s.npy", dir, name);
    int merr = map_file(file, m, err, errlen);
    if (merr == ENOENT) { /* say what the file was for */
        if (strcmp(name, "label") == 0) rt_set_err(err, errlen, "%s: no such file (the labels)", m->path);
        else rt_set_err(err, errlen, "%s: no such file (the model's input '%s')", m->path, name);
    }
    if (merr) return -1;
    const char *path = m->path;
    memset(t, 0, sizeof *t);
    t->file = path;
    t->name = name;
    static const uint8_t magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
    if (m->len < 10 || memcmp(m->p, magic, 6) != 0) {
        rt_set_err(err, errlen, "%s: not a .npy file (no \\x93NUMPY magic)", path);
        return -1;
    }
    int major = m->p[6];
    size_t hoff = major == 1 ? 10 : 12, hlen;
    if (major < 1 || major > 3 || m->len < hoff) {
        rt_set_err(err, errlen, "%s: unsupported .npy format version %d.%d", path, major, m->p[7]);
        return -1;
    }
    hlen = major == 1 ? (size_t)m->p[8] | (size_t)m->p[9] << 8
                      : (size_t)m->p[8] | (size_t)m->p[9] << 8 | (size_t)m->p[10] << 16 | (size_t)m->p[11] << 24;
    if (hlen > m->len - hoff) {
        rt_set_err(err, errlen, "%s: truncated .npy header (%zu bytes announced, %zu in the file)", path, hlen, m->len - hoff);
        return -1;
    }
    if (npy_header(path, (const char *)m->p + hoff, hlen, t, err, errlen) != 0) return -1;
    uint64_t numel = 1;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] != 0 && numel > (UINT64_MAX / 8) / (uint64_t)t->shape[d]) {
            rt_set_err(err, errlen, "%s: the shape is too large", path);
            return -1;
        }
        numel *= (uint64_t)t->shape[d];
    }
    uint64_t need = numel * (uint64_t)ar_types[t->dtype].size, have = m->len - hoff - hlen;
    if (have != need) {
        char s[AR_MAX_DIM * 24];
        fmt_shape(s, sizeof s, t->ndim, t->shape, false);
        rt_set_err(err, errlen, "%s: %s: %llu bytes of data, but shape %s of %s needs %llu", path,
                have < need ? "truncated" : "trailing data", (unsigned long long)have, s, t->dtype_s, (unsigned long long)need);
        return -1;
    }
    t->data = m->p + hoff + hlen;
    return 0;
}

static int npy_open_split(rt_source *s, ar_impl *a, const char *dir, const rt_source_input *inputs, int ninputs, char *err,
                          size_t errlen) {
    ar_tensor use[RT_MAXIN + 1];
    for (int k = 0; k <= ninputs; k++) {
        if (npy_open(a, dir, k < ninputs ? inputs[k].name : "label", &use[k], err, errlen) != 0) return -1;
        if (k < ninputs ? check_input(&use[k], &inputs[k], err, errlen) : check_label_type(&use[k], err, errlen)) return -1;
    }
    if (check_counts(use, ninputs + 1, err, errlen) != 0 || copy_labels(s, &use[ninputs], err, errlen) != 0) return -1;
    for (int k = 0; k < ninputs; k++) bind_input(a, k, &use[k]);
    /* The labels are copied: their mapping can go. */
    unmap_file(&a->maps[--a->nmaps]);
    return 0;
}

/* ---- opening -------------------------------------------------------------------------- */
rt_source *rt_arrays_open(const char *dir, const char *split, const rt_source_input *inputs, int ninputs, bool *missing,
                          char *err, size_t errlen) {
    if (missing) *missing = false;
    if (ninputs < 1 || ninputs > RT_MAXIN || !inputs) {
        rt_set_err(err, errlen, "%s: internal: %d model inputs (1 to %d)", dir, ninputs, RT_MAXIN);
        return NULL;
    }
    if (!split || !split[0] || strchr(split, '/')) {
        rt_set_err(err, errlen, "%s: internal: bad split name '%s'", dir, split ? split : "(null)");
        return NULL;
    }
    for (int k = 0; k < ninputs; k++) {
        const rt_source_input *in = &inputs[k];
        bool ok = in->name && in->name[0] && !strchr(in->name, '/') && strlen(in->name) < 256 && strcmp(in->name, "label") != 0 &&
                  in->ndim >= 1 && in->ndim <= 4;
        for (int d = 0; ok && d < in->ndim; d++) ok = in->shape[d] >= 1;
        if (!ok) {
            rt_set_err(err, errlen, "%s: internal: model input %d ('%s') cannot be read from arrays", dir, k,
                    in->name ? in->name : "(null)");
            return NULL;
        }
    }
    struct stat st;
    int e = stat(dir, &st) != 0 ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
    if (e) {
        rt_set_err(err, errlen, "%s: %s", dir, strerror(e));
        return NULL;
    }
    /* The split is there when either name exists; anything but "no such
     * file" when looking is an error, not a missing split. */
    char *stpath = path_join(dir, "/", split), *sfile = path_join(stpath, ".safetensors", "");
    int ferr = stat(sfile, &st) != 0 ? errno : 0;
    int derr = stat(stpath, &st) != 0 ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
    bool has_file = ferr == 0, has_dir = derr == 0;
    rt_source *s = NULL;
    if ((ferr && ferr != ENOENT) || (derr && derr != ENOENT && derr != ENOTDIR)) {
        rt_set_err(err, errlen, "%s: %s", ferr && ferr != ENOENT ? sfile : stpath, strerror(ferr && ferr != ENOENT ? ferr : derr));
        goto done;
    }
    if (has_file && has_dir) {
        rt_set_err(err, errlen, "%s: both %s.safetensors and the directory %s/ exist; keep one", dir, split, split);
        goto done;
    }
    if (!has_file && !has_dir) {
        if (missing) *missing = true;
        rt_set_err(err, errlen, "%s: no %s split (neither %s.safetensors nor %s/*.npy)", dir, split, split, split);
        goto done;
    }
    s = rt_alloc(sizeof *s);
    ar_impl *a = rt_alloc(sizeof *a);
    s->impl = a;
    s->read = ar_read;
    s->close = ar_close;
    s->ninputs = ninputs;
    snprintf(s->what, sizeof s->what, "%s (%s)", dir, split);
    int rc;
    if (has_file) {
        rc = st_open(s, a, sfile, inputs, ninputs, err, errlen);
        sfile = NULL; /* the mapping owns it */
    } else {
        rc = npy_open_split(s, a, stpath, inputs, ninputs, err, errlen);
    }
    if (rc != 0) {
        ar_close(s);
        s = NULL;
    }
done:
    free(stpath);
    free(sfile);
    return s;
}
