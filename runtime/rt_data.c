/* rt_data.c — the data sets a generated program trains on: IDX files (MNIST
 * format, plain or gzip), the colored-and-gray data built over them
 * (ALGORITHMS §9), and synthetic data shaped like a model's inputs.
 *
 * Loading reports every problem with the files as one line in `err` and
 * returns -1; it never exits, so the caller decides how to die. Only a
 * failed allocation exits (through rt_alloc), as everywhere else. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "mmrt.h"

/* The largest IDX payload we accept: the files we know are well below it,
 * and it keeps every count and offset inside an int-sized range. */
#define IDX_MAX_BYTES (1ULL << 31)
/* Buffer growth while reading: a header that claims far more data than
 * the file holds must not make us allocate the claimed size up front. */
#define IDX_FIRST_CHUNK ((size_t)16 << 20)

#define CG_CLASSES 10

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* The other name under which an IDX file may be stored: x -> x.gz, x.gz -> x. */
static char *alt_path(const char *path) {
    size_t n = strlen(path);
    char *a = rt_alloc(n + 4);
    if (n > 3 && strcmp(path + n - 3, ".gz") == 0) {
        memcpy(a, path, n - 3);
        a[n - 3] = '\0';
    } else {
        memcpy(a, path, n);
        memcpy(a + n, ".gz", 4);
    }
    return a;
}

/* Read up to n bytes; stops early only at the end of the data. -1 on a
 * read or decompression error (message in err). */
static long long gz_read_full(gzFile g, void *buf, size_t n, const char *path, char *err, size_t errlen) {
    size_t got = 0;
    while (got < n) {
        size_t want = n - got;
        if (want > (1u << 30)) want = 1u << 30; /* gzread counts in unsigned int */
        int r = gzread(g, (unsigned char *)buf + got, (unsigned)want);
        if (r < 0) {
            int zerr;
            const char *msg = gzerror(g, &zerr);
            /* zlib prefixes the name it knows the stream by: "<fd:3>: " */
            if (strncmp(msg, "<fd:", 4) == 0 && strstr(msg, ": ")) msg = strstr(msg, ": ") + 2;
            rt_set_err(err, errlen, "%s: read error: %s", path, zerr == Z_ERRNO ? strerror(errno) : msg);
            return -1;
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    return (long long)got;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Header and payload of an open IDX stream; `path` is the name it was opened under. */
static int idx_parse(gzFile g, const char *path, int want_ndim, rt_idx *out, char *err, size_t errlen) {
    uint8_t hdr[4 + 4 * 4];
    long long got = gz_read_full(g, hdr, 4, path, err, errlen);
    if (got < 0) return -1;
    if (got == 0) {
        rt_set_err(err, errlen, "%s: empty file (not an IDX file)", path);
        return -1;
    }
    if (got < 4) {
        rt_set_err(err, errlen, "%s: truncated header: expected %d bytes, found %lld", path, 4 + 4 * want_ndim, got);
        return -1;
    }
    /* Byte 2 is the element type, byte 3 the number of dimensions. */
    if (hdr[0] != 0 || hdr[1] != 0) {
        rt_set_err(err, errlen, "%s: not an IDX file (magic 0x%08x, expected 0x000008%02x)", path, be32(hdr), want_ndim);
        return -1;
    }
    if (hdr[2] != 0x08) {
        rt_set_err(err, errlen, "%s: unsupported IDX data type 0x%02x (expected 0x08, unsigned byte)", path, hdr[2]);
        return -1;
    }
    if (hdr[3] != want_ndim) {
        rt_set_err(err, errlen, "%s: the IDX file has %d dimensions, expected %d (%s)", path, hdr[3], want_ndim,
                want_ndim == 1 ? "labels" : "images");
        return -1;
    }
    size_t dbytes = 4 * (size_t)want_ndim;
    got = gz_read_full(g, hdr + 4, dbytes, path, err, errlen);
    if (got < 0) return -1;
    if ((size_t)got < dbytes) {
        rt_set_err(err, errlen, "%s: truncated header: expected %zu bytes, found %lld", path, 4 + dbytes, 4 + got);
        return -1;
    }
    uint64_t total = 1;
    for (int d = 0; d < want_ndim; d++) {
        uint32_t v = be32(hdr + 4 + 4 * d);
        if (v == 0) {
            rt_set_err(err, errlen, "%s: dimension %d is 0", path, d);
            return -1;
        }
        if (v > INT_MAX) {
            rt_set_err(err, errlen, "%s: dimension %d is %u, too large", path, d, v);
            return -1;
        }
        out->dims[d] = (int)v;
        total *= v; /* <= 2^31 * 2^31 before the check below: no overflow */
        if (total > IDX_MAX_BYTES) {
            rt_set_err(err, errlen, "%s: the dimensions describe more than 2^31 bytes of data", path);
            return -1;
        }
    }
    out->ndim = want_ndim;
    out->count = (size_t)out->dims[0];
    out->item = (size_t)(total / (uint64_t)out->dims[0]);

    /* The payload, growing the buffer as data actually arrives. */
    size_t need = (size_t)total, cap = need < IDX_FIRST_CHUNK ? need : IDX_FIRST_CHUNK, have = 0;
    uint8_t *buf = rt_alloc(cap);
    for (;;) {
        got = gz_read_full(g, buf + have, cap - have, path, err, errlen);
        if (got < 0) {
            free(buf);
            return -1;
        }
        have += (size_t)got;
        if (have < cap || cap == need) break;
        size_t ncap = cap > need / 2 ? need : 2 * cap;
        uint8_t *nb = rt_alloc(ncap);
        memcpy(nb, buf, have);
        free(buf);
        buf = nb, cap = ncap;
    }
    if (have < need) {
        rt_set_err(err, errlen, "%s: truncated: expected %zu bytes of data, found %zu", path, need, have);
        free(buf);
        return -1;
    }
    uint8_t extra;
    got = gz_read_full(g, &extra, 1, path, err, errlen);
    if (got != 0) {
        if (got > 0) rt_set_err(err, errlen, "%s: trailing data after the %zu bytes of data the header describes", path, need);
        free(buf);
        return -1;
    }
    out->data = buf;
    return 0;
}

int rt_idx_read(const char *path, int want_ndim, rt_idx *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (want_ndim < 1 || want_ndim > 4) {
        rt_set_err(err, errlen, "%s: internal: cannot read IDX files of %d dimensions", path, want_ndim);
        return -1;
    }
    /* open() first so that a missing file is told apart from other errors
     * and the .gz (or plain) sibling is tried only then. */
    char *alt = alt_path(path);
    const char *used = path;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        fd = open(alt, O_RDONLY | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT) {
            rt_set_err(err, errlen, "%s: %s (also tried %s)", path, strerror(ENOENT), base_name(alt));
            free(alt);
            return -1;
        }
        used = alt;
    }
    if (fd < 0) {
        rt_set_err(err, errlen, "%s: %s", used, strerror(errno));
        free(alt);
        return -1;
    }
    struct stat st;
    int bad = fstat(fd, &st) != 0 ? errno : S_ISDIR(st.st_mode) ? EISDIR : 0;
    if (bad) {
        rt_set_err(err, errlen, "%s: %s", used, strerror(bad));
        close(fd);
        free(alt);
        return -1;
    }
    /* gzdopen reads plain files transparently, so one path serves both. */
    gzFile g = gzdopen(fd, "rb");
    if (!g) {
        rt_set_err(err, errlen, "%s: cannot set up decompression (out of memory)", used);
        close(fd);
        free(alt);
        return -1;
    }
    gzbuffer(g, 256u << 10);
    int rc = idx_parse(g, used, want_ndim, out, err, errlen);
    gzclose(g);
    free(alt);
    if (rc != 0) memset(out, 0, sizeof *out);
    return rc;
}

void rt_idx_free(rt_idx *x) {
    if (!x) return;
    free(x->data);
    memset(x, 0, sizeof *x);
}

/* ---- colored-and-gray (ALGORITHMS §9) ------------------------------------ */
void rt_class_color(int c, float rgb[3]) {
    static const float col[CG_CLASSES][3] = {
        {0.86f, 0.08f, 0.24f}, /* 0 crimson */
        {0.0f, 0.5f, 0.0f},    /* 1 green */
        {0.12f, 0.56f, 1.0f},  /* 2 dodger blue */
        {1.0f, 0.84f, 0.0f},   /* 3 gold */
        {0.0f, 1.0f, 1.0f},    /* 4 cyan */
        {1.0f, 0.0f, 1.0f},    /* 5 magenta */
        {0.5f, 0.0f, 0.5f},    /* 6 purple */
        {1.0f, 0.55f, 0.0f},   /* 7 dark orange */
        {0.5f, 0.5f, 0.5f},    /* 8 gray */
        {0.55f, 0.27f, 0.07f}, /* 9 saddle brown */
    };
    /* Classes beyond the palette (only a model with more classes could ask)
     * reuse it rather than read out of bounds. */
    c = ((c % CG_CLASSES) + CG_CLASSES) % CG_CLASSES;
    memcpy(rgb, col[c], sizeof col[c]);
}

/* The colour of one example: class c's colour plus N(0, std^2) per channel,
 * clipped to [0, 1]. Always draws three normals, so the stream's position
 * does not depend on the variance. */
static void draw_color(rt_rng *r, int c, double std, float rgb[3]) {
    rt_class_color(c, rgb);
    for (int ch = 0; ch < 3; ch++) {
        double v = rgb[ch] + std * rt_rng_normal(r);
        rgb[ch] = (float)(v < 0 ? 0 : v > 1 ? 1 : v);
    }
}

static void cg_alloc(rt_dataset *d, int n, size_t hw) {
    d->n = n;
    d->nstreams = 2;
    d->stream[0] = "color";
    d->stream[1] = "gray";
    d->numel[0] = 3 * hw;
    d->numel[1] = hw;
    d->x[0] = rt_alloc(sizeof(float) * 3 * hw * (size_t)n);
    d->x[1] = rt_alloc(sizeof(float) * hw * (size_t)n);
    d->y = rt_alloc(sizeof(int32_t) * (size_t)n);
    d->classes = CG_CLASSES;
}

/* Example i of d: gray = pixel/255, color[ch] = gray * rgb[ch] (CHW). */
static void cg_fill(rt_dataset *d, int i, const uint8_t *pix, size_t hw, int label, const float rgb[3], const float lut[256]) {
    float *g = d->x[1] + (size_t)i * hw, *c = d->x[0] + (size_t)i * 3 * hw;
    for (size_t p = 0; p < hw; p++) g[p] = lut[pix[p]];
    for (int ch = 0; ch < 3; ch++)
        for (size_t p = 0; p < hw; p++) c[ch * hw + p] = g[p] * rgb[ch];
    d->y[i] = label;
}

/* Images and labels of one split ("train" or "t10k"), checked against each other. */
static int cg_read_split(const char *dir, const char *split, rt_idx *img, rt_idx *lab, char *err, size_t errlen) {
    size_t n = strlen(dir) + strlen(split) + 32;
    char *ip = rt_alloc(n), *lp = rt_alloc(n);
    snprintf(ip, n, "%s/%s-images-idx3-ubyte", dir, split);
    snprintf(lp, n, "%s/%s-labels-idx1-ubyte", dir, split);
    int rc = -1;
    if (rt_idx_read(ip, 3, img, err, errlen) != 0 || rt_idx_read(lp, 1, lab, err, errlen) != 0) goto out;
    if (lab->count != img->count) {
        rt_set_err(err, errlen, "%s: %zu labels, but %s holds %zu images", lp, lab->count, base_name(ip), img->count);
        goto out;
    }
    for (size_t i = 0; i < lab->count; i++)
        if (lab->data[i] >= CG_CLASSES) {
            rt_set_err(err, errlen, "%s: label %u at index %zu is not a class in 0..%d", lp, lab->data[i], i, CG_CLASSES - 1);
            goto out;
        }
    rc = 0;
out:
    free(ip);
    free(lp);
    return rc;
}

/* The random stream, in this fixed order (same seed -> bit-identical data):
 *   1. a Fisher-Yates permutation of the training file's indices
 *      (i = n-1 .. 1: swap i with rt_rng_below(i + 1));
 *   2. the colours of all n - val_size training examples, in permutation
 *      order (three normals each), including those limit_train then drops,
 *      so that validation and test do not depend on limit_train;
 *   3. the validation colours: per example a class rt_rng_below(10), then
 *      three normals;
 *   4. the test colours, drawn like the validation ones. */
int rt_load_colored_gray(const char *dir, float variance, double val, int limit_train, uint64_t seed, rt_data *out,
                         char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (!(variance >= 0) || !isfinite(variance)) {
        rt_set_err(err, errlen, "%s: the colour variance must be a finite number >= 0 (got %g)", dir, (double)variance);
        return -1;
    }
    if (!(val >= 0) || !(val < 2147483648.0)) {
        rt_set_err(err, errlen, "%s: the validation split must be a count >= 0 or a fraction below 1 (got %g)", dir, val);
        return -1;
    }
    rt_idx tri = {0}, trl = {0}, tei = {0}, tel = {0};
    int *perm = NULL;
    if (cg_read_split(dir, "train", &tri, &trl, err, errlen) != 0 || cg_read_split(dir, "t10k", &tei, &tel, err, errlen) != 0)
        goto fail;
    if (tri.dims[1] != tei.dims[1] || tri.dims[2] != tei.dims[2]) {
        rt_set_err(err, errlen, "%s/t10k-images-idx3-ubyte: images are %dx%d, but the training images are %dx%d", dir, tei.dims[1],
                tei.dims[2], tri.dims[1], tri.dims[2]);
        goto fail;
    }
    /* count * item <= 2^31 bytes, and item >= 1, so counts fit an int. */
    int n = (int)tri.count, nt = (int)tei.count;
    /* A count of held-out examples, or a fraction of the training file. */
    int val_size = val < 1 ? (int)(val * n + 0.5) : (int)val;
    if (val_size >= n) {
        rt_set_err(err, errlen, "%s/train-images-idx3-ubyte: val_size %d must be less than the %d training examples", dir, val_size,
                n);
        goto fail;
    }
    size_t hw = tri.item;
    int ntr_all = n - val_size, ntr = limit_train > 0 && limit_train < ntr_all ? limit_train : ntr_all;

    rt_rng r;
    rt_rng_seed(&r, seed ^ 0x636f6c6f72ULL); /* "color" */
    perm = rt_alloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rt_rng_below(&r, (uint32_t)i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }

    float lut[256];
    for (int v = 0; v < 256; v++) lut[v] = (float)v / 255.0f;
    double std = sqrt((double)variance);
    float rgb[3];

    cg_alloc(&out->train, ntr, hw);
    cg_alloc(&out->val, val_size, hw);
    cg_alloc(&out->test, nt, hw);
    for (int k = 0; k < ntr_all; k++) {
        int src = perm[val_size + k], y = trl.data[src];
        draw_color(&r, y, std, rgb); /* colour predicts the label */
        if (k < ntr) cg_fill(&out->train, k, tri.data + (size_t)src * hw, hw, y, rgb, lut);
    }
    for (int k = 0; k < val_size; k++) {
        int src = perm[k];
        draw_color(&r, (int)rt_rng_below(&r, CG_CLASSES), std, rgb); /* colour independent of the label */
        cg_fill(&out->val, k, tri.data + (size_t)src * hw, hw, trl.data[src], rgb, lut);
    }
    for (int k = 0; k < nt; k++) {
        draw_color(&r, (int)rt_rng_below(&r, CG_CLASSES), std, rgb);
        cg_fill(&out->test, k, tei.data + (size_t)k * hw, hw, tel.data[k], rgb, lut);
    }
    free(perm);
    rt_idx_free(&tri);
    rt_idx_free(&trl);
    rt_idx_free(&tei);
    rt_idx_free(&tel);
    return 0;

fail:
    free(perm);
    rt_idx_free(&tri);
    rt_idx_free(&trl);
    rt_idx_free(&tei);
    rt_idx_free(&tel);
    rt_data_free(out);
    return -1;
}

/* ---- synthetic data -------------------------------------------------------- */
/* Examples of every model input: x = pattern[label] + 0.5 N(0,1), labels
 * uniform. Draw order per example: the label, then each input's noise. */
static void synth_set(const rt_model *m, rt_dataset *d, int n, float *const *pat, rt_rng *r) {
    d->n = n;
    d->nstreams = m->ninputs;
    d->classes = m->classes;
    d->y = rt_alloc(sizeof(int32_t) * (size_t)n);
    for (int i = 0; i < m->ninputs; i++) {
        d->stream[i] = m->inputs[i].name;
        d->numel[i] = m->inputs[i].numel;
        d->x[i] = rt_alloc(sizeof(float) * m->inputs[i].numel * (size_t)n);
    }
    for (int k = 0; k < n; k++) {
        int y = (int)rt_rng_below(r, (uint32_t)m->classes);
        d->y[k] = y;
        for (int i = 0; i < m->ninputs; i++) {
            size_t ne = m->inputs[i].numel;
            const float *p = pat[i] + (size_t)y * ne;
            float *x = d->x[i] + (size_t)k * ne;
            for (size_t e = 0; e < ne; e++) x[e] = p[e] + (float)(0.5 * rt_rng_normal(r));
        }
    }
}

/* The stream: first the patterns (per input, per class, 0.5 N(0,1) each),
 * then the training, validation and test examples. */
void rt_make_synthetic(const rt_model *m, int ntrain, int ntest, uint64_t seed, rt_data *out) {
    memset(out, 0, sizeof *out);
    if (m->ninputs < 1 || m->ninputs > RT_MAXIN || m->classes < 1 || ntrain < 0 || ntest < 0)
        rt_die("internal: synthetic data for %d inputs, %d classes, %d/%d examples", m->ninputs, m->classes, ntrain, ntest);
    rt_rng r;
    rt_rng_seed(&r, seed ^ 0x73796e7468ULL); /* "synth" */
    float *pat[RT_MAXIN] = {0};
    for (int i = 0; i < m->ninputs; i++) {
        size_t len = m->inputs[i].numel * (size_t)m->classes;
        pat[i] = rt_alloc(sizeof(float) * len);
        for (size_t e = 0; e < len; e++) pat[i][e] = (float)(0.5 * rt_rng_normal(&r));
    }
    synth_set(m, &out->train, ntrain, pat, &r);
    synth_set(m, &out->val, ntest, pat, &r);
    synth_set(m, &out->test, ntest, pat, &r);
    for (int i = 0; i < m->ninputs; i++) free(pat[i]);
}

void rt_data_free(rt_data *d) {
    if (!d) return;
    rt_dataset *s[3] = {&d->train, &d->val, &d->test};
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < RT_MAXIN; i++) free(s[k]->x[i]);
        free(s[k]->y);
    }
    memset(d, 0, sizeof *d);
}
