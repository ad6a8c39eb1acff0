/* make_data.c — small data sets in the real layouts, for the end-to-end
 * tests of the data sources (tests/e2e_data.sh):
 *
 *   make_data arrays-cg IDXDIR OUT VAL LIMIT SEED TESTN
 *       the colored-and-gray data set the programs build from IDX files
 *       (rt_load_colored_gray with these settings; the first TESTN test
 *       examples), written as
 *       OUT/{train,val,test}.safetensors (float32 `color`, `gray`, int64
 *       `label`): training on it through `data arrays` must give the
 *       losses of the IDX path.
 *   make_data multiview OUT CLASSES OBJECTS VIEWS SIZE
 *       OUT/CLASS/{train,test}/cCC_oOOOO_vVVV.png (RGB, libspng): OBJECTS
 *       training and OBJECTS/2 test objects per class, VIEWS views each;
 *       view v of an object of class c is a square whose colour depends
 *       on c (so flips and crops keep the class) and whose place on the
 *       view, over noise.
 *   make_data multiview-arrays ROOT VIEWS INPUTS SIZE
 *       the multiview tree ROOT's train and test splits decoded through
 *       rt_multiview_open's read() (VIEWS like "0,6", one per input;
 *       INPUTS the model's input names, "front,rear"; SIZE x SIZE RGB),
 *       written as ROOT/{train,test}.safetensors (float32 [N, 3, SIZE,
 *       SIZE] per input, int64 `label`): `data arrays` on ROOT reads the
 *       values `data multiview` decodes, in the same order.
 *   make_data frames W H N CLASS
 *       N raw gray frames W x H on stdout (for `ffmpeg -f rawvideo`): a bar
 *       whose position depends on CLASS and moves with the frame.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <spng.h>

#include "mmrt.h"
#include "rt_source.h"

static void die(const char *fmt, const char *a) {
    fprintf(stderr, "make_data: ");
    fprintf(stderr, fmt, a);
    fprintf(stderr, "\n");
    exit(1);
}

static void mkdir_p(const char *path) {
    char p[4096];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            if (mkdir(p, 0777) != 0 && errno != EEXIST) die("cannot create %s", p);
            *s = '/';
        }
    if (mkdir(p, 0777) != 0 && errno != EEXIST) die("cannot create %s", p);
}

static void write_split(const char *out, const char *name, const rt_dataset *d) {
    rt_tensor t[3];
    int64_t *label = malloc(sizeof(int64_t) * (size_t)(d->n ? d->n : 1));
    for (int i = 0; i < d->n; i++) label[i] = d->y[i];
    for (int s = 0; s < 2; s++) {
        int C = d->numel[s] == 3 * 784 ? 3 : 1;
        t[s] = (rt_tensor){.name = d->stream[s], .ndim = 4, .shape = {d->n, C, 28, 28}, .dtype = RT_F32, .data = d->x[s]};
    }
    t[2] = (rt_tensor){.name = "label", .ndim = 1, .shape = {d->n}, .dtype = RT_I64, .data = label};
    char path[4096], err[1024];
    snprintf(path, sizeof path, "%s/%s.safetensors", out, name);
    if (rt_ckpt_save(path, t, 3, NULL, 0, err, sizeof err) != 0) die("%s", err);
    free(label);
}

static int arrays_cg(char **a) {
    rt_data d;
    char err[1024];
    if (rt_load_colored_gray(a[0], 0.02f, atoi(a[2]), atoi(a[3]), strtoull(a[4], NULL, 10), &d, err, sizeof err) != 0) die("%s", err);
    mkdir_p(a[1]);
    write_split(a[1], "train", &d.train);
    write_split(a[1], "val", &d.val);
    if (atoi(a[5]) < d.test.n) d.test.n = atoi(a[5]);
    write_split(a[1], "test", &d.test);
    rt_data_free(&d);
    return 0;
}

static void write_png(const char *path, const uint8_t *px, int w, int h) {
    spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
    FILE *f = fopen(path, "wb");
    if (!ctx || !f) die("cannot write %s", path);
    spng_set_png_file(ctx, f);
    struct spng_ihdr ih = {.width = (uint32_t)w, .height = (uint32_t)h, .bit_depth = 8, .color_type = SPNG_COLOR_TYPE_TRUECOLOR};
    spng_set_ihdr(ctx, &ih);
    if (spng_encode_image(ctx, px, (size_t)w * h * 3, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE) != 0) die("cannot encode %s", path);
    spng_ctx_free(ctx);
    fclose(f);
}

static int multiview(char **a) {
    const char *out = a[0];
    int classes = atoi(a[1]), objects = atoi(a[2]), views = atoi(a[3]), size = atoi(a[4]);
    uint8_t *px = malloc((size_t)size * size * 3);
    rt_rng r;
    rt_rng_seed(&r, 7);
    for (int c = 0; c < classes; c++)
        for (int split = 0; split < 2; split++) {
            char dir[4096];
            snprintf(dir, sizeof dir, "%s/class%02d/%s", out, c, split ? "test" : "train");
            mkdir_p(dir);
            int n = split ? (objects + 1) / 2 : objects;
            for (int o = 0; o < n; o++)
                for (int v = 0; v < views; v++) {
                    int q = size / 3, y0 = (v * 7 + o) % (size - q), x0 = (v * 5 + 3 * o) % (size - q);
                    for (int y = 0; y < size; y++)
                        for (int x = 0; x < size; x++)
                            for (int ch = 0; ch < 3; ch++) {
                                int val = (int)rt_rng_below(&r, 96);
                                if (y >= y0 && y < y0 + q && x >= x0 && x < x0 + q)
                                    val += c < 3 ? (ch == c ? 160 : 0) : 50 * (c / 3) + 20 * ch;
                                px[((size_t)y * size + x) * 3 + ch] = (uint8_t)(val > 255 ? 255 : val);
                            }
                    char path[4200];
                    snprintf(path, sizeof path, "%s/c%02d_o%05d_v%03d.png", dir, c, o, v + 1);
                    write_png(path, px, size, size);
                }
        }
    free(px);
    return 0;
}

/* A comma-separated list into at most max fields (modified in place). */
static int split_list(char *s, char **f, int max) {
    int n = 0;
    for (char *t = strtok(s, ","); t && n < max; t = strtok(NULL, ",")) f[n++] = t;
    return n;
}

static int multiview_arrays(char **a) {
    const char *root = a[0];
    char *vf[RT_MAXIN], *names[RT_MAXIN];
    int nv = split_list(a[1], vf, RT_MAXIN), ni = split_list(a[2], names, RT_MAXIN), size = atoi(a[3]);
    if (nv < 1 || nv != ni || size < 1) die("%s", "multiview-arrays: VIEWS and INPUTS must list as many entries, SIZE >= 1");
    int views[RT_MAXIN];
    rt_source_input in[RT_MAXIN];
    for (int k = 0; k < nv; k++) {
        views[k] = atoi(vf[k]);
        in[k] = (rt_source_input){.name = names[k], .ndim = 3, .shape = {3, size, size}};
    }
    const size_t per = (size_t)3 * size * size;
    for (int split = 0; split < 2; split++) {
        const char *sn = split ? "test" : "train";
        char err[1024], path[4096];
        rt_source *s = rt_multiview_open(root, sn, views, nv, in, false, err, sizeof err);
        if (!s) die("%s", err);
        rt_tensor t[RT_MAXIN + 1];
        float *xs[RT_MAXIN];
        int64_t *label = malloc(sizeof(int64_t) * (size_t)(s->n ? s->n : 1));
        for (int k = 0; k < nv; k++) {
            float *x = xs[k] = malloc(sizeof(float) * per * (size_t)(s->n ? s->n : 1));
            if (!x) die("%s", "out of memory");
            for (int i = 0; i < s->n; i++)
                if (s->read(s, i, k, x + per * (size_t)i, err, sizeof err) != 0) die("%s", err);
            t[k] = (rt_tensor){.name = names[k], .ndim = 4, .shape = {s->n, 3, size, size}, .dtype = RT_F32, .data = x};
        }
        for (int i = 0; i < s->n; i++) label[i] = s->y[i];
        t[nv] = (rt_tensor){.name = "label", .ndim = 1, .shape = {s->n}, .dtype = RT_I64, .data = label};
        snprintf(path, sizeof path, "%s/%s.safetensors", root, sn);
        if (rt_ckpt_save(path, t, nv + 1, NULL, 0, err, sizeof err) != 0) die("%s", err);
        for (int k = 0; k < nv; k++) free(xs[k]);
        free(label);
        rt_source_close(s);
    }
    return 0;
}

static int frames(char **a) {
    int w = atoi(a[0]), h = atoi(a[1]), n = atoi(a[2]), cls = atoi(a[3]);
    uint8_t *f = malloc((size_t)w * h);
    for (int t = 0; t < n; t++) {
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int bar = (cls * 7 + t) % w;
                f[y * w + x] = (uint8_t)((x >= bar && x < bar + w / 4) ? 220 : 30 + (y * 3 + x) % 20);
            }
        fwrite(f, 1, (size_t)w * h, stdout);
    }
    free(f);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 8 && strcmp(argv[1], "arrays-cg") == 0) return arrays_cg(argv + 2);
    if (argc == 7 && strcmp(argv[1], "multiview") == 0) return multiview(argv + 2);
    if (argc == 6 && strcmp(argv[1], "multiview-arrays") == 0) return multiview_arrays(argv + 2);
    if (argc == 6 && strcmp(argv[1], "frames") == 0) return frames(argv + 2);
    fprintf(stderr, "usage: make_data arrays-cg IDXDIR OUT VAL LIMIT SEED TESTN | multiview OUT CLASSES OBJECTS VIEWS SIZE | "
                    "multiview-arrays ROOT VIEWS INPUTS SIZE | frames W H N CLASS\n");
    return 2;
}
