/* test_data.c — unit tests of rt_data.c: IDX reading (plain and gzip), the
 * colored-and-gray data set (values, colours, split, determinism,
 * limit_train), every error a bad data directory can produce, and
 * synthetic data. Works in a fresh directory under $TMPDIR (default /tmp),
 * removed at exit. If Debian's Fashion-MNIST is installed, it is loaded
 * too and the time printed. Exit 0 when every check passes (tests/check.h). */
#define _XOPEN_SOURCE 700 /* nftw, mkdtemp */
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "../check.h"
#include "mmrt.h"

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
    REQUIRE(k > 0 && (size_t)k < n);
}

static char *make_dir(const char *name) {
    static char buf[8][1200];
    static int next;
    char *p = buf[next++ % 8];
    path_in(p, sizeof buf[0], g_root, name);
    REQUIRE(mkdir(p, 0777) == 0, "%s", p);
    return p;
}

/* Write bytes to path, gzip-compressed when gz. */
static void write_bytes(const char *path, int gz, const uint8_t *b, size_t n) {
    if (gz) {
        gzFile g = gzopen(path, "wb");
        REQUIRE(g, "%s", path);
        REQUIRE(n == 0 || gzwrite(g, b, (unsigned)n) == (int)n);
        REQUIRE(gzclose(g) == Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        REQUIRE(f, "%s", path);
        REQUIRE(n == 0 || fwrite(b, 1, n, f) == n);
        REQUIRE(fclose(f) == 0);
    }
}

static uint8_t *read_whole(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    REQUIRE(f, "%s", path);
    REQUIRE(fseek(f, 0, SEEK_END) == 0);
    long len = ftell(f);
    REQUIRE(len >= 0);
    rewind(f);
    uint8_t *b = malloc((size_t)len + 1);
    REQUIRE(b && fread(b, 1, (size_t)len, f) == (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

/* An IDX file: the header (magic 00 00 type ndim, big-endian dims) and
 * ndata payload bytes (which need not match the dims). */
static void put_idx(const char *path, int gz, uint8_t type, int ndim, const uint32_t *dims, const uint8_t *data, size_t ndata) {
    size_t h = 4 + 4 * (size_t)ndim;
    uint8_t *b = malloc(h + ndata + 1);
    REQUIRE(b);
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
    REQUIRE(s.img && s.lab);
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
    REQUIRE(d->nstreams == 2 && d->classes == 10);
    CHECK(strcmp(d->stream[0], "color") == 0 && strcmp(d->stream[1], "gray") == 0);
    REQUIRE(d->numel[0] == 3 * hw && d->numel[1] == hw);
    CHECK(((uintptr_t)d->x[0] | (uintptr_t)d->x[1] | (uintptr_t)d->y) % 64 == 0);
    int match = 0;
    for (int i = 0; i < d->n; i++) {
        const float *g = d->x[1] + i * hw, *c = d->x[0] + i * 3 * hw;
        CHECK(g[0] == 1.0f);
        int src = (int)lroundf(g[1] * 255.0f) + 256 * (int)lroundf(g[2] * 255.0f);
        REQUIRE(src >= 0 && src < s->n, "example %d", i);
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
/* Bad IDX files, one row each: how the file is made, what rt_idx_read is
 * asked for, and what the error says besides the file's path. */
typedef enum {
    IDX_HEADER,    /* the header given (type, ndim, dims), gzip when gz, and ndata bytes of payload */
    IDX_ABSENT,    /* neither the file nor name.gz */
    IDX_EMPTY,     /* a file of 0 bytes */
    IDX_DIRECTORY, /* a directory */
    IDX_BAD_GZIP,  /* a gzip header, then junk */
} IdxHow;

static const struct {
    const char *name; /* the file, in the test's directory */
    IdxHow how;
    int gz;
    uint8_t type;
    int ndim;
    uint32_t dims[3];
    size_t ndata; /* at most 12 */
    int want_ndim;
    const char *phrase;
} k_bad_idx[] = {
    {"nothing", IDX_ABSENT, 0, 0, 0, {0}, 0, 3, "No such file or directory (also tried nothing.gz)"},
    /* the header, field by field */
    {"type", IDX_HEADER, 0, 0x0d, 3, {2, 3, 2}, 12, 3, "data type 0x0d"},
    {"ndim", IDX_HEADER, 0, 8, 3, {2, 3, 2}, 12, 1, "3 dimensions, expected 1"},
    {"zero-dim", IDX_HEADER, 1, 8, 3, {2, 0, 2}, 0, 3, "dimension 1 is 0"},
    {"over-2g", IDX_HEADER, 0, 8, 3, {60000, 60000, 28}, 12, 3, "more than 2^31 bytes"},
    {"dim-too-large", IDX_HEADER, 0, 8, 3, {0x80000000u, 1, 1}, 12, 3, "too large"},
    /* a header that claims much more than the file holds: no huge allocation, just "truncated" */
    {"claims-more", IDX_HEADER, 1, 8, 3, {2000, 1000, 1000}, 12, 3, "truncated: expected 2000000000 bytes of data, found 12"},
    {"empty", IDX_EMPTY, 0, 0, 0, {0}, 0, 3, "empty file"},
    {"a-directory", IDX_DIRECTORY, 0, 0, 0, {0}, 0, 3, "Is a directory"},
    {"bad-gzip", IDX_BAD_GZIP, 0, 0, 0, {0}, 0, 3, "read error: "},
};

static void test_idx(void) {
    char *dir = make_dir("idx");
    char p[1400], err[1024];
    uint8_t data[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    uint32_t dims[3] = {2, 3, 2};
    rt_idx x;

    /* plain, by its name */
    path_in(p, sizeof p, dir, "plain");
    put_idx(p, 0, 8, 3, dims, data, 12);
    REQUIRE(rt_idx_read(p, 3, &x, err, sizeof err) == 0, "%s", err);
    REQUIRE(x.ndim == 3 && x.dims[0] == 2 && x.dims[1] == 3 && x.dims[2] == 2 && x.count == 2 && x.item == 6);
    CHECK(memcmp(x.data, data, 12) == 0);
    rt_idx_free(&x);
    CHECK(x.data == NULL);

    /* gzip under "zipped.gz", asked for as "zipped", and the other way round */
    path_in(p, sizeof p, dir, "zipped.gz");
    put_idx(p, 1, 8, 3, dims, data, 12);
    path_in(p, sizeof p, dir, "zipped");
    REQUIRE(rt_idx_read(p, 3, &x, err, sizeof err) == 0, "%s", err);
    CHECK(x.count == 2 && x.item == 6 && memcmp(x.data, data, 12) == 0);
    rt_idx_free(&x);
    path_in(p, sizeof p, dir, "plain.gz");
    REQUIRE(rt_idx_read(p, 3, &x, err, sizeof err) == 0, "%s", err);
    CHECK(x.count == 2 && memcmp(x.data, data, 12) == 0);
    rt_idx_free(&x);

    /* labels */
    uint32_t dl[1] = {5};
    path_in(p, sizeof p, dir, "labels");
    put_idx(p, 1, 8, 1, dl, data, 5);
    REQUIRE(rt_idx_read(p, 1, &x, err, sizeof err) == 0, "%s", err);
    CHECK(x.ndim == 1 && x.count == 5 && x.item == 1 && memcmp(x.data, data, 5) == 0);
    rt_idx_free(&x);


    /* every way a file can be bad: one row each (k_bad_idx) */
    const int ncases = (int)(sizeof k_bad_idx / sizeof k_bad_idx[0]);
    for (int i = 0; i < ncases; i++) {
        path_in(p, sizeof p, dir, k_bad_idx[i].name);
        switch (k_bad_idx[i].how) {
        case IDX_HEADER:
            REQUIRE(k_bad_idx[i].ndata <= sizeof data);
            put_idx(p, k_bad_idx[i].gz, k_bad_idx[i].type, k_bad_idx[i].ndim, k_bad_idx[i].dims, data, k_bad_idx[i].ndata);
            break;
        case IDX_ABSENT: break;
        case IDX_EMPTY: write_bytes(p, 0, (const uint8_t *)"", 0); break;
        case IDX_DIRECTORY: REQUIRE(mkdir(p, 0777) == 0, "%s", p); break;
        case IDX_BAD_GZIP: {
            uint8_t junk[64] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
            for (int j = 10; j < 64; j++) junk[j] = (uint8_t)(j * 37);
            write_bytes(p, 0, junk, sizeof junk);
            break;
        }
        }
        printf("  %s: ", k_bad_idx[i].name);
        fflush(stdout); /* a crash while reading shows which case */
        strcpy(err, "(no error message)");
        memset(&x, 0x5a, sizeof x);
        CHECK(rt_idx_read(p, k_bad_idx[i].want_ndim, &x, err, sizeof err) == -1, "%s: read, but should be rejected", k_bad_idx[i].name);
        CHECK_ERR(err, p, k_bad_idx[i].phrase);
        CHECK(x.data == NULL, "%s: data left after a failed read", k_bad_idx[i].name);
        printf("rejected: %s\n", err);
    }
    printf("idx: %d bad files\n", ncases);
}

/* ---- colored-and-gray --------------------------------------------------------- */
static void test_colored_gray(void) {
    char err[1024];
    Split tr = make_split(1500, 28, 28, 0), te = make_split(1000, 28, 28, 5);
    char *dir = make_dir("cg");
    write_split(dir, "train", 1, &tr); /* gzip */
    write_split(dir, "t10k", 0, &te);  /* plain */

    rt_data d, e;
    REQUIRE(rt_load_colored_gray(dir, 0.02f, 1000, 0, 42, &d, err, sizeof err) == 0, "%s", err);
    CHECK(d.train.n == 500 && d.val.n == 1000 && d.test.n == 1000);
    int *seen = calloc((size_t)tr.n, sizeof(int));
    REQUIRE(seen);
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
        for (int ch = 0; ch < 3; ch++)
            CHECK_CLOSE(d.train.x[0][(size_t)i * 3 * 784 + ch * 784], col[ch], 5 * sqrtf(0.02f), 0, "example %d channel %d", i, ch);
    }
    /* at variance 0 the training colour is the class colour exactly */
    REQUIRE(rt_load_colored_gray(dir, 0.0f, 1000, 0, 42, &e, err, sizeof err) == 0, "%s", err);
    CHECK(check_set(&e.train, &tr, NULL) == 1.0);
    for (int i = 0; i < e.train.n; i++) {
        float col[3];
        rt_class_color(e.train.y[i], col);
        for (int ch = 0; ch < 3; ch++) CHECK(e.train.x[0][(size_t)i * 3 * 784 + ch * 784] == col[ch]);
    }
    rt_data_free(&e);

    /* determinism */
    REQUIRE(rt_load_colored_gray(dir, 0.02f, 1000, 0, 42, &e, err, sizeof err) == 0, "%s", err);
    CHECK(same_set(&d.train, &e.train) && same_set(&d.val, &e.val) && same_set(&d.test, &e.test));
    rt_data_free(&e);
    REQUIRE(rt_load_colored_gray(dir, 0.02f, 1000, 0, 43, &e, err, sizeof err) == 0, "%s", err);
    CHECK(!same_set(&d.train, &e.train) && !same_set(&d.val, &e.val) && !same_set(&d.test, &e.test));
    rt_data_free(&e);

    /* limit_train: the first examples, validation and test unchanged */
    REQUIRE(rt_load_colored_gray(dir, 0.02f, 1000, 100, 42, &e, err, sizeof err) == 0, "%s", err);
    REQUIRE(e.train.n == 100 && e.val.n == 1000 && e.test.n == 1000);
    CHECK(memcmp(e.train.x[0], d.train.x[0], sizeof(float) * 100 * 3 * 784) == 0);
    CHECK(memcmp(e.train.y, d.train.y, sizeof(int32_t) * 100) == 0);
    CHECK(same_set(&d.val, &e.val) && same_set(&d.test, &e.test));
    rt_data_free(&e);
    REQUIRE(rt_load_colored_gray(dir, 0.02f, 1000, 100000, 42, &e, err, sizeof err) == 0, "%s", err);
    CHECK(same_set(&d.train, &e.train));
    rt_data_free(&e);

    /* no validation set at all */
    REQUIRE(rt_load_colored_gray(dir, 0.02f, 0, 0, 42, &e, err, sizeof err) == 0, "%s", err);
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
    REQUIRE(rt_load_colored_gray(dir, 0.02f, 10, 0, 1, &d, err, sizeof err) == 0, "%s", err);
    CHECK(d.train.n == 20 && d.val.n == 10 && d.test.n == 20 && d.train.numel[1] == 35);
    check_set(&d.train, &a, NULL);
    check_set(&d.test, &b, NULL);
    rt_data_free(&d);
    free_split(&a);
    free_split(&b);
    printf("colored_gray: done\n");
}

/* ---- bad data directories: one row per case, one loop ----------------------- */
/* Each case starts from a good small set (40 training examples of 6 x 6,
 * plain files; 20 test examples, gzip) that a function then spoils. */
static void replace(const char *dir, const char *name, int gz, int ndim, const uint32_t *dims, const uint8_t *data, size_t ndata) {
    char p[1400];
    path_in(p, sizeof p, dir, name);
    put_idx(p, gz, 8, ndim, dims, data, ndata);
}

static void rm_in(const char *dir, const char *name) {
    char p[1400];
    path_in(p, sizeof p, dir, name);
    REQUIRE(remove(p) == 0, "%s", p);
}

static void spoil_no_dir(const char *dir, const Split *tr, const Split *te) {
    REQUIRE(nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0, "%s", dir);
}

static void spoil_no_test_split(const char *dir, const Split *tr, const Split *te) {
    rm_in(dir, "t10k-images-idx3-ubyte.gz");
    rm_in(dir, "t10k-labels-idx1-ubyte.gz");
    rm_in(dir, "train-images-idx3-ubyte"); /* and the training split gzip'd */
    rm_in(dir, "train-labels-idx1-ubyte");
    write_split(dir, "train", 1, tr);
}

static void spoil_trunc_images(const char *dir, const Split *tr, const Split *te) {
    const uint32_t di[3] = {40, 6, 6};
    replace(dir, "train-images-idx3-ubyte", 0, 3, di, tr->img, 40 * 36 - 5);
}

static void spoil_trunc_images_gz(const char *dir, const Split *tr, const Split *te) {
    const uint32_t dt[3] = {20, 6, 6};
    replace(dir, "t10k-images-idx3-ubyte.gz", 1, 3, dt, te->img, 100);
}

static void spoil_trunc_header(const char *dir, const Split *tr, const Split *te) {
    char p[1400];
    path_in(p, sizeof p, dir, "train-labels-idx1-ubyte");
    write_bytes(p, 0, (const uint8_t *)"\0\0\x08\x01\0\0", 6);
}

/* gzip twice: one decompression leaves a gzip header, as happens when a .gz
 * file is compressed again under another name */
static void spoil_gzip_twice(const char *dir, const Split *tr, const Split *te) {
    char p[1400];
    const uint32_t di[3] = {40, 6, 6};
    path_in(p, sizeof p, dir, "train-images-idx3-ubyte");
    put_idx(p, 1, 8, 3, di, tr->img, 40 * 36);
    size_t nz;
    uint8_t *z = read_whole(p, &nz);
    write_bytes(p, 1, z, nz);
    free(z);
}

static void spoil_images_2d(const char *dir, const Split *tr, const Split *te) {
    const uint32_t d2[2] = {40, 36};
    replace(dir, "train-images-idx3-ubyte", 0, 2, d2, tr->img, 40 * 36);
}

static void spoil_39_labels(const char *dir, const Split *tr, const Split *te) {
    const uint32_t d39[1] = {39};
    replace(dir, "train-labels-idx1-ubyte", 0, 1, d39, tr->lab, 39);
}

static void spoil_label_12(const char *dir, const Split *tr, const Split *te) {
    const uint32_t dl[1] = {40};
    uint8_t lab[40];
    memcpy(lab, tr->lab, 40);
    lab[17] = 12;
    replace(dir, "train-labels-idx1-ubyte", 0, 1, dl, lab, 40);
}

static void spoil_trailing(const char *dir, const Split *tr, const Split *te) {
    const uint32_t di[3] = {40, 6, 6};
    uint8_t more[40 * 36 + 3];
    memcpy(more, tr->img, 40 * 36);
    memcpy(more + 40 * 36, "xyz", 3);
    replace(dir, "train-images-idx3-ubyte", 0, 3, di, more, sizeof more);
}

static void spoil_test_6x3(const char *dir, const Split *tr, const Split *te) {
    const uint32_t d63[3] = {10, 6, 3}, d10[1] = {10};
    replace(dir, "t10k-images-idx3-ubyte.gz", 1, 3, d63, te->img, 180);
    replace(dir, "t10k-labels-idx1-ubyte.gz", 1, 1, d10, te->lab, 10);
}

static const struct {
    const char *name;                                                 /* the directory */
    void (*spoil)(const char *dir, const Split *tr, const Split *te); /* NULL: left good */
    int val_size;
    const char *file;   /* the error names it ... */
    const char *phrase; /* ... and says this */
} k_bad_dirs[] = {
    {"no-such-dir", spoil_no_dir, 10, "no-such-dir/train-images-idx3-ubyte", "No such file or directory"},
    {"missing-test", spoil_no_test_split, 10, "t10k-images-idx3-ubyte", "No such file or directory (also tried t10k-images-idx3-ubyte.gz)"},
    {"trunc-images", spoil_trunc_images, 10, "train-images-idx3-ubyte", "truncated: expected 1440 bytes of data, found 1435"},
    {"trunc-images-gz", spoil_trunc_images_gz, 10, "t10k-images-idx3-ubyte.gz", "truncated: expected 720 bytes of data, found 100"},
    {"trunc-header", spoil_trunc_header, 10, "train-labels-idx1-ubyte", "truncated header: expected 8 bytes, found 6"},
    {"magic", spoil_gzip_twice, 10, "train-images-idx3-ubyte", "not an IDX file (magic 0x1f8b0800, expected 0x00000803)"},
    {"ndim", spoil_images_2d, 10, "train-images-idx3-ubyte", "2 dimensions, expected 3"},
    {"count", spoil_39_labels, 10, "train-labels-idx1-ubyte", "39 labels, but train-images-idx3-ubyte holds 40 images"},
    {"label", spoil_label_12, 10, "train-labels-idx1-ubyte", "label 12 at index 17"},
    {"trailing", spoil_trailing, 10, "train-images-idx3-ubyte", "trailing data"},
    {"sizes", spoil_test_6x3, 10, "t10k-images-idx3-ubyte", "images are 6x3, but the training images are 6x6"},
    {"valsize", NULL, 40, "train-images-idx3-ubyte", "val_size 40 must be less than the 40 training examples"},
    {"valsize-negative", NULL, -1, "valsize-negative", "the validation split must be a count >= 0"},
};

/* Each case: loading fails (and does not crash), the error names the file
 * and says the phrase, and nothing is left allocated. */
static void test_errors(void) {
    Split tr = make_split(40, 6, 6, 0), te = make_split(20, 6, 6, 3);
    char err[1024];
    rt_data d;

    char *dir = make_dir("good");
    write_split(dir, "train", 0, &tr);
    write_split(dir, "t10k", 1, &te);
    CHECK(rt_load_colored_gray(dir, 0.02f, 10, 0, 7, &d, err, sizeof err) == 0, "%s", err);
    rt_data_free(&d);

    const int ncases = (int)(sizeof k_bad_dirs / sizeof k_bad_dirs[0]);
    for (int i = 0; i < ncases; i++) {
        dir = make_dir(k_bad_dirs[i].name);
        write_split(dir, "train", 0, &tr);
        write_split(dir, "t10k", 1, &te);
        if (k_bad_dirs[i].spoil) k_bad_dirs[i].spoil(dir, &tr, &te);
        printf("  %s: ", k_bad_dirs[i].name);
        fflush(stdout); /* a crash while loading shows which case */
        strcpy(err, "(no error message)");
        memset(&d, 0x5a, sizeof d);
        int rc = rt_load_colored_gray(dir, 0.02f, k_bad_dirs[i].val_size, 0, 7, &d, err, sizeof err);
        CHECK(rc == -1, "%s: loading did not fail (expected: %s)", k_bad_dirs[i].name, k_bad_dirs[i].phrase);
        CHECK_ERR(err, k_bad_dirs[i].file, k_bad_dirs[i].phrase);
        CHECK(d.train.x[0] == NULL && d.test.y == NULL && d.val.n == 0, "%s: data left after a failed load", k_bad_dirs[i].name);
        if (rc == 0) rt_data_free(&d);
        printf("rejected: %s\n", err);
    }

    free_split(&tr);
    free_split(&te);
    printf("errors: %d bad directories\n", ncases);
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
        REQUIRE(s[k]->nstreams == 2 && s[k]->classes == 5);
        CHECK(strcmp(s[k]->stream[0], "color") == 0 && strcmp(s[k]->stream[1], "gray") == 0);
        REQUIRE(s[k]->numel[0] == 48 && s[k]->numel[1] == 16);
        for (int i = 0; i < s[k]->n; i++) REQUIRE(s[k]->y[i] >= 0 && s[k]->y[i] < 5, "set %d example %d", k, i);
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
    printf("synthetic: done\n");
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
    CHECK(rc == 0, "%s", err);
    if (rc != 0) return;
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
    return check_summary("test_data");
}
