/* test_data.c — unit tests of rt_data.c: IDX reading (plain and gzip), the
 * colored-and-gray data set (values, colours, split, determinism,
 * limit_train), every error a bad data directory can produce, and
 * synthetic data. Works in a fresh directory under $TMPDIR (default /tmp),
 * removed at exit. If Debian's Fashion-MNIST is installed, it is loaded
 * too and the time printed. Exit 0 on success. */
#define _XOPEN_SOURCE 700 /* nftw, mkdtemp */
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "mmrt.h"

#define CHECK(c)                                                                 \
    do {                                                                         \
        if (!(c)) {                                                              \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c); \
            exit(1);                                                             \
        }                                                                        \
    } while (0)

/* err must mention both strings (a file name and a key phrase). */
#define CHECK_ERR(err, a, b)                                                                               \
    do {                                                                                                   \
        if (!strstr((err), (a)) || !strstr((err), (b))) {                                                  \
            fprintf(stderr, "%s:%d: error message \"%s\" lacks \"%s\" or \"%s\"\n", __FILE__, __LINE__, (err), \
                    (a), (b));                                                                             \
            exit(1);                                                                                       \
        }                                                                                                  \
    } while (0)

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

static char g_root[1024]; /* the temporary directory */

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

static void cleanup(void) {
    if (g_root[0]) nftw(g_root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void path_in(char *buf, size_t n, const char *dir, const char *name) {
    int k = snprintf(buf, n, "%s/%s", dir, name);
    CHECK(k > 0 && (size_t)k < n);
}

static char *make_dir(const char *name) {
    static char buf[8][1200];
    static int next;
    char *p = buf[next++ % 8];
    path_in(p, sizeof buf[0], g_root, name);
    CHECK(mkdir(p, 0777) == 0);
    return p;
}

/* Write bytes to path, gzip-compressed when gz. */
static void write_bytes(const char *path, int gz, const uint8_t *b, size_t n) {
    if (gz) {
        gzFile g = gzopen(path, "wb");
        CHECK(g);
        CHECK(n == 0 || gzwrite(g, b, (unsigned)n) == (int)n);
        CHECK(gzclose(g) == Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        CHECK(f);
        CHECK(n == 0 || fwrite(b, 1, n, f) == n);
        CHECK(fclose(f) == 0);
    }
}

static uint8_t *read_whole(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    CHECK(f);
    CHECK(fseek(f, 0, SEEK_END) == 0);
    long len = ftell(f);
    CHECK(len >= 0);
    rewind(f);
    uint8_t *b = malloc((size_t)len + 1);
    CHECK(b && fread(b, 1, (size_t)len, f) == (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

/* An IDX file: the header (magic 00 00 type ndim, big-endian dims) and
 * ndata payload bytes (which need not match the dims). */
static void put_idx(const char *path, int gz, uint8_t type, int ndim, const uint32_t *dims, const uint8_t *data, size_t ndata) {
    size_t h = 4 + 4 * (size_t)ndim;
    uint8_t *b = malloc(h + ndata + 1);
    CHECK(b);
    b[0] = b[1] = 0, b[2] = type, b[3] = (uint8_t)ndim;
    for (int d = 0; d < ndim; d++)
        for (int k = 0; k < 4; k++) b[4 + 4 * d + k] = (uint8_t)(dims[d] >> (24 - 8 * k));
    if (ndata) memcpy(b + h, data, ndata);
    write_bytes(path, gz, b, h + ndata);
    free(b);
}

/* A small data set: image i has pixel 0 = 255 (so color there is the rgb
 * itself), pixels 1 and 2 encoding i, the rest a pattern; label i's is
 * (i * 7 + 3) % 10. */
typedef struct {
    int n, h, w;
    uint8_t *img, *lab;
} Split;

static Split make_split(int n, int h, int w, int salt) {
    Split s = {n, h, w, malloc((size_t)n * h * w), malloc((size_t)n)};
    CHECK(s.img && s.lab);
    for (int i = 0; i < n; i++) {
        uint8_t *p = s.img + (size_t)i * h * w;
        for (int k = 0; k < h * w; k++) p[k] = (uint8_t)((i * 31 + k * 7 + salt) % 256);
        p[0] = 255, p[1] = (uint8_t)(i & 255), p[2] = (uint8_t)(i >> 8);
        s.lab[i] = (uint8_t)((i * 7 + 3 + salt) % 10);
    }
    return s;
}

static void free_split(Split *s) {
    free(s->img);
    free(s->lab);
}

static void write_split(const char *dir, const char *split, int gz, const Split *s) {
    char p[1400], name[64];
    uint32_t di[3] = {(uint32_t)s->n, (uint32_t)s->h, (uint32_t)s->w}, dl[1] = {(uint32_t)s->n};
    snprintf(name, sizeof name, "%s-images-idx3-ubyte%s", split, gz ? ".gz" : "");
    path_in(p, sizeof p, dir, name);
    put_idx(p, gz, 0x08, 3, di, s->img, (size_t)s->n * s->h * s->w);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte%s", split, gz ? ".gz" : "");
    path_in(p, sizeof p, dir, name);
    put_idx(p, gz, 0x08, 1, dl, s->lab, (size_t)s->n);
}

static int nearest_class(const float rgb[3]) {
    int best = 0;
    double bd = 1e9;
    for (int c = 0; c < 10; c++) {
        float col[3];
        rt_class_color(c, col);
        double d = 0;
        for (int ch = 0; ch < 3; ch++) d += (rgb[ch] - col[ch]) * (rgb[ch] - col[ch]);
        if (d < bd) bd = d, best = c;
    }
    return best;
}

/* Shapes and values of one set built over split s; returns the fraction of
 * examples whose colour's nearest class colour is the label. seen[] marks
 * the source indices (from pixels 1 and 2). */
static double check_set(const rt_dataset *d, const Split *s, int *seen) {
    size_t hw = (size_t)s->h * s->w;
    CHECK(d->nstreams == 2 && d->classes == 10);
    CHECK(strcmp(d->stream[0], "color") == 0 && strcmp(d->stream[1], "gray") == 0);
    CHECK(d->numel[0] == 3 * hw && d->numel[1] == hw);
    CHECK(((uintptr_t)d->x[0] | (uintptr_t)d->x[1] | (uintptr_t)d->y) % 64 == 0);
    int match = 0;
    for (int i = 0; i < d->n; i++) {
        const float *g = d->x[1] + i * hw, *c = d->x[0] + i * 3 * hw;
        CHECK(g[0] == 1.0f);
        int src = (int)lroundf(g[1] * 255.0f) + 256 * (int)lroundf(g[2] * 255.0f);
        CHECK(src >= 0 && src < s->n);
        if (seen) {
            CHECK(!seen[src]);
            seen[src] = 1;
        }
        CHECK(d->y[i] == s->lab[src]);
        float rgb[3] = {c[0], c[hw], c[2 * hw]};
        for (size_t p = 0; p < hw; p++) {
            float gv = (float)s->img[(size_t)src * hw + p] / 255.0f;
            CHECK(g[p] == gv);
            for (int ch = 0; ch < 3; ch++) CHECK(c[ch * hw + p] == gv * rgb[ch]);
        }
        for (int ch = 0; ch < 3; ch++) CHECK(rgb[ch] >= 0.0f && rgb[ch] <= 1.0f);
        match += nearest_class(rgb) == d->y[i];
    }
    return d->n ? (double)match / d->n : 0;
}

static int same_set(const rt_dataset *a, const rt_dataset *b) {
    if (a->n != b->n || a->nstreams != b->nstreams) return 0;
    for (int s = 0; s < a->nstreams; s++)
        if (a->numel[s] != b->numel[s] || memcmp(a->x[s], b->x[s], sizeof(float) * a->numel[s] * a->n) != 0) return 0;
    return memcmp(a->y, b->y, sizeof(int32_t) * a->n) == 0;
}

/* ---- IDX -------------------------------------------------------------------- */
static void test_idx(void) {
    char *dir = make_dir("idx");
    char p[1400], err[1024];
    uint8_t data[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    uint32_t dims[3] = {2, 3, 2};
    rt_idx x;

    /* plain, by its name */
    path_in(p, sizeof p, dir, "plain");
    put_idx(p, 0, 8, 3, dims, data, 12);
    CHECK(rt_idx_read(p, 3, &x, err, sizeof err) == 0);
    CHECK(x.ndim == 3 && x.dims[0] == 2 && x.dims[1] == 3 && x.dims[2] == 2 && x.count == 2 && x.item == 6);
    CHECK(memcmp(x.data, data, 12) == 0);
    rt_idx_free(&x);
    CHECK(x.data == NULL);

    /* gzip under "zipped.gz", asked for as "zipped", and the other way round */
    path_in(p, sizeof p, dir, "zipped.gz");
    put_idx(p, 1, 8, 3, dims, data, 12);
    path_in(p, sizeof p, dir, "zipped");
    CHECK(rt_idx_read(p, 3, &x, err, sizeof err) == 0);
    CHECK(x.count == 2 && x.item == 6 && memcmp(x.data, data, 12) == 0);
    rt_idx_free(&x);
    path_in(p, sizeof p, dir, "plain.gz");
    CHECK(rt_idx_read(p, 3, &x, err, sizeof err) == 0);
    CHECK(x.count == 2 && memcmp(x.data, data, 12) == 0);
    rt_idx_free(&x);

    /* labels */
    uint32_t dl[1] = {5};
    path_in(p, sizeof p, dir, "labels");
    put_idx(p, 1, 8, 1, dl, data, 5);
    CHECK(rt_idx_read(p, 1, &x, err, sizeof err) == 0);
    CHECK(x.ndim == 1 && x.count == 5 && x.item == 1 && memcmp(x.data, data, 5) == 0);
    rt_idx_free(&x);

    /* missing, under both names */
    path_in(p, sizeof p, dir, "nothing");
    CHECK(rt_idx_read(p, 3, &x, err, sizeof err) == -1);
    CHECK_ERR(err, p, "No such file or directory (also tried nothing.gz)");
    CHECK(x.data == NULL);

    /* the header, field by field */
    path_in(p, sizeof p, dir, "bad");
    put_idx(p, 0, 0x0d, 3, dims, data, 12);
    CHECK(rt_idx_read(p, 3, &x, err, sizeof err) == -1);
    CHECK_ERR(err, p, "data type 0x0d");
    put_idx(p, 0, 8, 3, dims, data, 12);
    CHECK(rt_idx_read(p, 1, &x, err, sizeof err) == -1);
    CHECK_ERR(err, p, "3 dimensions, expected 1");
    uint32_t zero[3] = {2, 0, 2};
    put_idx(p, 1, 8, 3, zero, data, 0);
    CHECK(rt_idx_read(p, 3, &x, err, sizeof err) == -1);
    CHECK_ERR(err, p, "dimension 1 is 0");
    uint32_t huge[3] = {60000, 60000, 28};
    put_idx(p, 0, 8, 3, huge, data, 12);
    CHECK(rt_idx_read(p, 3, &x, err, sizeof err) == -1);
    CHECK_ERR(err, p, "more than 2^31 bytes");
    uint32_t big[3] = {0x80000000u, 1, 1};
    put_idx(p, 0, 8, 3, big, data, 12);
    CHECK(rt_idx_read(p, 3, &x, err, sizeof err) == -1);
    CHECK_ERR(err, p, "too large");
    /* a header that claims much more than the file holds: no huge allocation, just "truncated" */
    uint32_t lots[3] = {2000, 1000, 1000};
    put_idx(p, 1, 8, 3, lots, data, 12);
    CHECK(rt_idx_read(p, 3, &x, err, sizeof err) == -1);
    CHECK_ERR(err, p, "truncated: expected 2000000000 bytes of data, found 12");
    write_bytes(p, 0, (const uint8_t *)"", 0);
    CHECK(rt_idx_read(p, 3, &x, err, sizeof err) == -1);
    CHECK_ERR(err, p, "empty file");
    /* a directory */
    CHECK(rt_idx_read(dir, 3, &x, err, sizeof err) == -1);
    CHECK_ERR(err, dir, "Is a directory");
    /* a corrupt gzip stream */
    uint8_t junk[64] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
    for (int i = 10; i < 64; i++) junk[i] = (uint8_t)(i * 37);
    write_bytes(p, 0, junk, sizeof junk);
    CHECK(rt_idx_read(p, 3, &x, err, sizeof err) == -1);
    CHECK_ERR(err, p, "read error: ");
    printf("idx: ok\n");
}

/* ---- colored-and-gray --------------------------------------------------------- */
static void test_colored_gray(void) {
    char err[1024];
    Split tr = make_split(1500, 28, 28, 0), te = make_split(1000, 28, 28, 5);
    char *dir = make_dir("cg");
    write_split(dir, "train", 1, &tr); /* gzip */
    write_split(dir, "t10k", 0, &te);  /* plain */

    rt_data d, e;
    CHECK(rt_load_colored_gray(dir, 0.02f, 1000, 0, 42, &d, err, sizeof err) == 0);
    CHECK(d.train.n == 500 && d.val.n == 1000 && d.test.n == 1000);
    int *seen = calloc((size_t)tr.n, sizeof(int));
    CHECK(seen);
    double acc_train = check_set(&d.train, &tr, seen), acc_val = check_set(&d.val, &tr, seen), acc_test = check_set(&d.test, &te, NULL);
    for (int i = 0; i < tr.n; i++) CHECK(seen[i]); /* train and val partition the training file */
    free(seen);
    printf("colored_gray: nearest colour = label: train %.3f, val %.3f, test %.3f\n", acc_train, acc_val, acc_test);
    CHECK(acc_train > 0.85);
    CHECK(acc_val > 0.05 && acc_val < 0.16);
    CHECK(acc_test > 0.05 && acc_test < 0.16);
    /* training colours lie within the noise of the label's colour (|z| < 5 sigma) */
    for (int i = 0; i < d.train.n; i++) {
        float col[3];
        rt_class_color(d.train.y[i], col);
        for (int ch = 0; ch < 3; ch++) CHECK(fabsf(d.train.x[0][(size_t)i * 3 * 784 + ch * 784] - col[ch]) < 5 * sqrtf(0.02f));
    }
    /* at variance 0 the training colour is the class colour exactly */
    CHECK(rt_load_colored_gray(dir, 0.0f, 1000, 0, 42, &e, err, sizeof err) == 0);
    CHECK(check_set(&e.train, &tr, NULL) == 1.0);
    for (int i = 0; i < e.train.n; i++) {
        float col[3];
        rt_class_color(e.train.y[i], col);
        for (int ch = 0; ch < 3; ch++) CHECK(e.train.x[0][(size_t)i * 3 * 784 + ch * 784] == col[ch]);
    }
    rt_data_free(&e);

    /* determinism */
    CHECK(rt_load_colored_gray(dir, 0.02f, 1000, 0, 42, &e, err, sizeof err) == 0);
    CHECK(same_set(&d.train, &e.train) && same_set(&d.val, &e.val) && same_set(&d.test, &e.test));
    rt_data_free(&e);
    CHECK(rt_load_colored_gray(dir, 0.02f, 1000, 0, 43, &e, err, sizeof err) == 0);
    CHECK(!same_set(&d.train, &e.train) && !same_set(&d.val, &e.val) && !same_set(&d.test, &e.test));
    rt_data_free(&e);

    /* limit_train: the first examples, validation and test unchanged */
    CHECK(rt_load_colored_gray(dir, 0.02f, 1000, 100, 42, &e, err, sizeof err) == 0);
    CHECK(e.train.n == 100 && e.val.n == 1000 && e.test.n == 1000);
    CHECK(memcmp(e.train.x[0], d.train.x[0], sizeof(float) * 100 * 3 * 784) == 0);
    CHECK(memcmp(e.train.y, d.train.y, sizeof(int32_t) * 100) == 0);
    CHECK(same_set(&d.val, &e.val) && same_set(&d.test, &e.test));
    rt_data_free(&e);
    CHECK(rt_load_colored_gray(dir, 0.02f, 1000, 100000, 42, &e, err, sizeof err) == 0);
    CHECK(same_set(&d.train, &e.train));
    rt_data_free(&e);

    /* no validation set at all */
    CHECK(rt_load_colored_gray(dir, 0.02f, 0, 0, 42, &e, err, sizeof err) == 0);
    CHECK(e.train.n == 1500 && e.val.n == 0 && e.test.n == 1000);
    rt_data_free(&e);
    CHECK(e.train.x[0] == NULL && e.train.n == 0);

    rt_data_free(&d);
    free_split(&tr);
    free_split(&te);

    /* any H x W, as long as both image files agree */
    Split a = make_split(30, 5, 7, 1), b = make_split(20, 5, 7, 2);
    dir = make_dir("cg57");
    write_split(dir, "train", 0, &a);
    write_split(dir, "t10k", 1, &b);
    CHECK(rt_load_colored_gray(dir, 0.02f, 10, 0, 1, &d, err, sizeof err) == 0);
    CHECK(d.train.n == 20 && d.val.n == 10 && d.test.n == 20 && d.train.numel[1] == 35);
    check_set(&d.train, &a, NULL);
    check_set(&d.test, &b, NULL);
    rt_data_free(&d);
    free_split(&a);
    free_split(&b);
    printf("colored_gray: ok\n");
}

/* A directory holding a good small set, then one file replaced by `bad`. */
static char *bad_dir(const char *name, const Split *tr, const Split *te) {
    char *dir = make_dir(name);
    write_split(dir, "train", 0, tr);
    write_split(dir, "t10k", 1, te);
    return dir;
}

static void expect_fail(const char *dir, int val_size, const char *file, const char *phrase) {
    char err[1024] = "";
    rt_data d;
    memset(&d, 0x5a, sizeof d);
    if (rt_load_colored_gray(dir, 0.02f, val_size, 0, 7, &d, err, sizeof err) != -1) {
        fprintf(stderr, "%s: loading did not fail (expected: %s)\n", dir, phrase);
        exit(1);
    }
    CHECK_ERR(err, file, phrase);
    CHECK(d.train.x[0] == NULL && d.test.y == NULL && d.val.n == 0); /* nothing left allocated */
    printf("  error ok: %s\n", err);
}

static void test_errors(void) {
    Split tr = make_split(40, 6, 6, 0), te = make_split(20, 6, 6, 3);
    char p[1400];
    uint32_t di[3] = {40, 6, 6}, dl[1] = {40};

    char *dir = make_dir("good");
    write_split(dir, "train", 0, &tr);
    write_split(dir, "t10k", 1, &te);
    char err[1024];
    rt_data d;
    CHECK(rt_load_colored_gray(dir, 0.02f, 10, 0, 7, &d, err, sizeof err) == 0);
    rt_data_free(&d);

    path_in(p, sizeof p, g_root, "no-such-dir");
    expect_fail(p, 10, "no-such-dir/train-images-idx3-ubyte", "No such file or directory");

    dir = make_dir("missing-test");
    write_split(dir, "train", 1, &tr);
    expect_fail(dir, 10, "t10k-images-idx3-ubyte", "No such file or directory (also tried t10k-images-idx3-ubyte.gz)");

    dir = bad_dir("trunc-images", &tr, &te);
    path_in(p, sizeof p, dir, "train-images-idx3-ubyte");
    put_idx(p, 0, 8, 3, di, tr.img, 40 * 36 - 5);
    expect_fail(dir, 10, "train-images-idx3-ubyte", "truncated: expected 1440 bytes of data, found 1435");

    dir = bad_dir("trunc-images-gz", &tr, &te);
    path_in(p, sizeof p, dir, "t10k-images-idx3-ubyte.gz");
    uint32_t dt[3] = {20, 6, 6};
    put_idx(p, 1, 8, 3, dt, te.img, 100);
    expect_fail(dir, 10, "t10k-images-idx3-ubyte.gz", "truncated: expected 720 bytes of data, found 100");

    dir = bad_dir("trunc-header", &tr, &te);
    path_in(p, sizeof p, dir, "train-labels-idx1-ubyte");
    write_bytes(p, 0, (const uint8_t *)"\0\0\x08\x01\0\0", 6);
    expect_fail(dir, 10, "train-labels-idx1-ubyte", "truncated header: expected 8 bytes, found 6");

    dir = bad_dir("magic", &tr, &te);
    path_in(p, sizeof p, dir, "train-images-idx3-ubyte");
    /* gzip twice: one decompression leaves a gzip header, as happens when
     * a .gz file is compressed again under another name */
    put_idx(p, 1, 8, 3, di, tr.img, 40 * 36);
    size_t nz;
    uint8_t *z = read_whole(p, &nz);
    write_bytes(p, 1, z, nz);
    free(z);
    expect_fail(dir, 10, "train-images-idx3-ubyte", "not an IDX file (magic 0x1f8b0800, expected 0x00000803)");

    dir = bad_dir("ndim", &tr, &te);
    path_in(p, sizeof p, dir, "train-images-idx3-ubyte");
    uint32_t d2[2] = {40, 36};
    put_idx(p, 0, 8, 2, d2, tr.img, 40 * 36);
    expect_fail(dir, 10, "train-images-idx3-ubyte", "2 dimensions, expected 3");

    dir = bad_dir("count", &tr, &te);
    path_in(p, sizeof p, dir, "train-labels-idx1-ubyte");
    uint32_t d39[1] = {39};
    put_idx(p, 0, 8, 1, d39, tr.lab, 39);
    expect_fail(dir, 10, "train-labels-idx1-ubyte", "39 labels, but train-images-idx3-ubyte holds 40 images");

    dir = bad_dir("label", &tr, &te);
    path_in(p, sizeof p, dir, "train-labels-idx1-ubyte");
    uint8_t lab[40];
    memcpy(lab, tr.lab, 40);
    lab[17] = 12;
    put_idx(p, 0, 8, 1, dl, lab, 40);
    expect_fail(dir, 10, "train-labels-idx1-ubyte", "label 12 at index 17");

    dir = bad_dir("trailing", &tr, &te);
    path_in(p, sizeof p, dir, "train-images-idx3-ubyte");
    uint8_t *more = malloc(40 * 36 + 3);
    CHECK(more);
    memcpy(more, tr.img, 40 * 36);
    memcpy(more + 40 * 36, "xyz", 3);
    put_idx(p, 0, 8, 3, di, more, 40 * 36 + 3);
    free(more);
    expect_fail(dir, 10, "train-images-idx3-ubyte", "trailing data");

    dir = bad_dir("sizes", &tr, &te);
    path_in(p, sizeof p, dir, "t10k-images-idx3-ubyte.gz");
    uint32_t d66[3] = {10, 6, 3};
    put_idx(p, 1, 8, 3, d66, te.img, 180);
    path_in(p, sizeof p, dir, "t10k-labels-idx1-ubyte.gz");
    uint32_t d10[1] = {10};
    put_idx(p, 1, 8, 1, d10, te.lab, 10);
    expect_fail(dir, 10, "t10k-images-idx3-ubyte", "images are 6x3, but the training images are 6x6");

    dir = bad_dir("valsize", &tr, &te);
    expect_fail(dir, 40, "train-images-idx3-ubyte", "val_size 40 must be less than the 40 training examples");
    expect_fail(dir, -1, "valsize", "val_size must be >= 0");

    free_split(&tr);
    free_split(&te);
    printf("errors: ok\n");
}

/* ---- synthetic ------------------------------------------------------------------ */
static void test_synthetic(void) {
    static const rt_input_info in[2] = {{"color", 3, {3, 4, 4, 0}, 48}, {"gray", 3, {1, 4, 4, 0}, 16}};
    rt_model m = {0};
    m.name = "t";
    m.ninputs = 2;
    m.inputs = in;
    m.classes = 5;
    rt_data a, b;
    rt_make_synthetic(&m, 400, 100, 9, &a);
    CHECK(a.train.n == 400 && a.val.n == 100 && a.test.n == 100);
    const rt_dataset *s[3] = {&a.train, &a.val, &a.test};
    for (int k = 0; k < 3; k++) {
        CHECK(s[k]->nstreams == 2 && s[k]->classes == 5);
        CHECK(strcmp(s[k]->stream[0], "color") == 0 && strcmp(s[k]->stream[1], "gray") == 0);
        CHECK(s[k]->numel[0] == 48 && s[k]->numel[1] == 16);
        for (int i = 0; i < s[k]->n; i++) CHECK(s[k]->y[i] >= 0 && s[k]->y[i] < 5);
    }
    CHECK(!same_set(&a.val, &a.test));
    /* learnable: nearest class mean (estimated on train) classifies test well */
    double mean[5][64] = {{0}};
    int cnt[5] = {0};
    for (int i = 0; i < a.train.n; i++) {
        int y = a.train.y[i];
        cnt[y]++;
        for (int e = 0; e < 48; e++) mean[y][e] += a.train.x[0][i * 48 + e];
        for (int e = 0; e < 16; e++) mean[y][48 + e] += a.train.x[1][i * 16 + e];
    }
    for (int c = 0; c < 5; c++) {
        CHECK(cnt[c] > 40); /* labels roughly uniform */
        for (int e = 0; e < 64; e++) mean[c][e] /= cnt[c];
    }
    int right = 0;
    for (int i = 0; i < a.test.n; i++) {
        int best = 0;
        double bd = 1e30;
        for (int c = 0; c < 5; c++) {
            double dd = 0;
            for (int e = 0; e < 64; e++) {
                double v = e < 48 ? a.test.x[0][i * 48 + e] : a.test.x[1][i * 16 + e - 48];
                dd += (v - mean[c][e]) * (v - mean[c][e]);
            }
            if (dd < bd) bd = dd, best = c;
        }
        right += best == a.test.y[i];
    }
    printf("synthetic: nearest-mean test accuracy %.2f\n", right / 100.0);
    CHECK(right > 80);
    rt_make_synthetic(&m, 400, 100, 9, &b);
    CHECK(same_set(&a.train, &b.train) && same_set(&a.val, &b.val) && same_set(&a.test, &b.test));
    rt_data_free(&b);
    rt_make_synthetic(&m, 400, 100, 10, &b);
    CHECK(!same_set(&a.train, &b.train));
    rt_data_free(&b);
    rt_data_free(&a);
    CHECK(a.train.y == NULL && a.test.n == 0);
    printf("synthetic: ok\n");
}

static void test_class_color(void) {
    static const float want[10][3] = {{0.86f, 0.08f, 0.24f}, {0.0f, 0.5f, 0.0f}, {0.12f, 0.56f, 1.0f}, {1.0f, 0.84f, 0.0f},
                                      {0.0f, 1.0f, 1.0f},    {1.0f, 0.0f, 1.0f}, {0.5f, 0.0f, 0.5f},   {1.0f, 0.55f, 0.0f},
                                      {0.5f, 0.5f, 0.5f},    {0.55f, 0.27f, 0.07f}};
    for (int c = 0; c < 10; c++) {
        float rgb[3];
        rt_class_color(c, rgb);
        CHECK(memcmp(rgb, want[c], sizeof rgb) == 0);
    }
}

static void test_fashion(void) {
    struct stat st;
    if (stat(FASHION_DIR, &st) != 0) {
        printf("fashion-mnist: %s not installed, skipped\n", FASHION_DIR);
        return;
    }
    char err[1024];
    rt_data d;
    double t0 = rt_now();
    int rc = rt_load_colored_gray(FASHION_DIR, 0.02f, 10000, 0, 1, &d, err, sizeof err);
    double t1 = rt_now();
    if (rc != 0) fprintf(stderr, "%s\n", err);
    CHECK(rc == 0);
    CHECK(d.train.n + d.val.n == 60000 && d.val.n == 10000 && d.test.n == 10000);
    CHECK(d.train.numel[0] == 3 * 784 && d.train.numel[1] == 784);
    printf("fashion-mnist: loaded %d train, %d val, %d test in %.3f s\n", d.train.n, d.val.n, d.test.n, t1 - t0);
    rt_data_free(&d);
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !tmp[0]) tmp = "/tmp";
    snprintf(g_root, sizeof g_root, "%s/mmrt_test_data.XXXXXX", tmp);
    if (!mkdtemp(g_root)) {
        perror(g_root);
        return 1;
    }
    atexit(cleanup);
    test_class_color();
    test_idx();
    test_colored_gray();
    test_errors();
    test_synthetic();
    test_fashion();
    printf("test_data: all passed\n");
    return 0;
}
