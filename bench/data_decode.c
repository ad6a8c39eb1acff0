/* data_decode.c — how fast rt_multiview decodes PNGs, against PIL behind a
 * PyTorch DataLoader (bench/torch_decode.py) on the same files, the same
 * cores and the same worker count, in one run.
 *
 *   data_decode [--n N] [--threads T] [--rounds R] [--dir DIR] [--script PY]
 *
 * Writes N 224x224 RGB PNGs (libspng, default compression) as
 * DIR/CLASS/train/obj_NNNNN_v1.png over 10 classes, unless DIR already
 * holds them; opens the split with rt_multiview_open (timed: a listing,
 * no decoding); then takes turns for R rounds: one pass of T threads
 * reading every example through the source's read() into [3][224][224]
 * floats, then one timed epoch of the Python side (after its warm-up
 * epoch). Prints images/s per side (medians over the rounds) and the
 * ratio. The Python side ($PYTHON, default python3) is skipped, with its
 * reason, when PIL is missing; without PyTorch it measures PIL alone. */
#define _GNU_SOURCE /* mkdtemp */
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spng.h>

#include "mmrt.h"
#include "rt_source.h"

#define SIDE 224
#define CLASSES 10

#ifndef BENCH_SCRIPT
#define BENCH_SCRIPT "bench/torch_decode.py"
#endif

static void die(const char *what) {
    fprintf(stderr, "data_decode: %s\n", what);
    exit(1);
}

/* A render-like picture: a flat background with a gentle gradient, and a
 * shaded, lightly textured ellipse whose place and size vary with i. */
static void picture(int i, uint8_t *px) {
    uint32_t h = 2166136261u ^ (uint32_t)i * 16777619u;
    double cx = 70 + (i * 37) % 84, cy = 70 + (i * 53) % 84, rx = 40 + (i * 11) % 50, ry = 40 + (i * 29) % 50;
    for (int y = 0; y < SIDE; y++)
        for (int x = 0; x < SIDE; x++) {
            uint8_t *p = px + 3 * ((size_t)y * SIDE + x);
            double dx = (x - cx) / rx, dy = (y - cy) / ry, r2 = dx * dx + dy * dy;
            if (r2 > 1) {
                p[0] = p[1] = p[2] = (uint8_t)(235 + y / 16);
                continue;
            }
            h = h * 1103515245u + 12345u; /* texture: a few levels of noise */
            int shade = (int)(200 * (1 - r2) * (0.6 + 0.4 * (x - cx + rx) / (2 * rx))) + (int)(h >> 29);
            p[0] = (uint8_t)(30 + shade / 2);
            p[1] = (uint8_t)(40 + shade * 2 / 3);
            p[2] = (uint8_t)(50 + shade * 3 / 4);
        }
}

typedef struct {
    const char *root;
    int first, step, n;
    size_t bytes;
} make_job;

static void *make_some(void *arg) {
    make_job *j = arg;
    uint8_t *px = malloc(3 * SIDE * SIDE);
    if (!px) die("out of memory");
    for (int i = j->first; i < j->n; i += j->step) {
        picture(i, px);
        spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
        struct spng_ihdr ih = {.width = SIDE, .height = SIDE, .bit_depth = 8, .color_type = SPNG_COLOR_TYPE_TRUECOLOR};
        size_t len;
        int e;
        if (!ctx || spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1) || spng_set_ihdr(ctx, &ih) ||
            spng_encode_image(ctx, px, 3 * SIDE * SIDE, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE))
            die("cannot encode a PNG");
        void *buf = spng_get_png_buffer(ctx, &len, &e);
        char path[4096];
        snprintf(path, sizeof path, "%s/class%02d/train/obj_%05d_v1.png", j->root, i % CLASSES, i);
        FILE *f = fopen(path, "wb");
        if (!buf || !f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) die(path);
        j->bytes += len;
        free(buf);
        spng_ctx_free(ctx);
    }
    free(px);
    return NULL;
}

static void make_images(const char *root, int n, int threads) {
    char p[4096];
    for (int c = 0; c < CLASSES; c++) {
        snprintf(p, sizeof p, "%s/class%02d", root, c);
        if (mkdir(p, 0777) != 0 && errno != EEXIST) die(p);
        snprintf(p, sizeof p, "%s/class%02d/train", root, c);
        if (mkdir(p, 0777) != 0 && errno != EEXIST) die(p);
    }
    pthread_t th[64];
    make_job jobs[64];
    size_t bytes = 0;
    for (int t = 0; t < threads; t++) {
        jobs[t] = (make_job){root, t, threads, n, 0};
        if (pthread_create(&th[t], NULL, make_some, &jobs[t])) die("pthread_create");
    }
    for (int t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
        bytes += jobs[t].bytes;
    }
    printf("wrote %d PNGs of %dx%d RGB, %.1f KB each on average\n", n, SIDE, SIDE, bytes / 1024.0 / n);
}

typedef struct {
    rt_source *s;
    int first, step, fails;
    char err[1024];
} read_job;

static void *read_some(void *arg) {
    read_job *j = arg;
    float *dst = rt_alloc(sizeof(float) * 3 * SIDE * SIDE);
    for (int i = j->first; i < j->s->n; i += j->step)
        if (j->s->read(j->s, i, 0, dst, j->err, sizeof j->err) != 0) j->fails++;
    free(dst);
    return NULL;
}

/* One pass over every example with T threads: images/s. */
static double read_pass(rt_source *s, int threads) {
    pthread_t th[64];
    read_job *jobs = calloc((size_t)threads, sizeof *jobs);
    if (!jobs) die("out of memory");
    double t0 = rt_now();
    for (int t = 0; t < threads; t++) {
        jobs[t] = (read_job){.s = s, .first = t, .step = threads};
        if (pthread_create(&th[t], NULL, read_some, &jobs[t])) die("pthread_create");
    }
    for (int t = 0; t < threads; t++) pthread_join(th[t], NULL);
    double dt = rt_now() - t0;
    for (int t = 0; t < threads; t++)
        if (jobs[t].fails) die(jobs[t].err);
    free(jobs);
    return s->n / dt;
}

/* One epoch of the Python side: images/s, or 0 with why in `why`. */
static double python_pass(const char *script, const char *root, int threads, char *side, size_t sidelen, char *why,
                          size_t whylen) {
    char cmd[8192], line[4096] = "";
    const char *py = getenv("PYTHON");
    snprintf(cmd, sizeof cmd, "'%s' '%s' --dir '%s' --threads %d --epochs 1 2>&1", py && py[0] ? py : "python3", script, root,
             threads);
    FILE *p = popen(cmd, "r");
    if (!p) die("popen");
    char buf[4096];
    while (fgets(buf, sizeof buf, p))
        if (buf[0] == '{') snprintf(line, sizeof line, "%s", buf);
    pclose(p);
    char *r = strstr(line, "\"images_per_s\": "), *sd = strstr(line, "\"side\": \"");
    if (!r || !sd) {
        char *m = strstr(line, "\"missing\": \"");
        snprintf(why, whylen, "%s", m ? m + 12 : "bench/torch_decode.py printed no result");
        char *q = strchr(why, '"');
        if (q) *q = '\0';
        return 0;
    }
    snprintf(side, sidelen, "%s", sd + 9);
    char *q = strchr(side, '"');
    if (q) *q = '\0';
    return strtod(r + 16, NULL);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

int main(int argc, char **argv) {
    int n = 1000, threads = (int)sysconf(_SC_NPROCESSORS_ONLN), rounds = 3;
    const char *dir = NULL, *script = BENCH_SCRIPT;
    for (int a = 1; a < argc; a++) {
        if (a + 1 < argc && strcmp(argv[a], "--n") == 0) n = atoi(argv[++a]);
        else if (a + 1 < argc && strcmp(argv[a], "--threads") == 0) threads = atoi(argv[++a]);
        else if (a + 1 < argc && strcmp(argv[a], "--rounds") == 0) rounds = atoi(argv[++a]);
        else if (a + 1 < argc && strcmp(argv[a], "--dir") == 0) dir = argv[++a];
        else if (a + 1 < argc && strcmp(argv[a], "--script") == 0) script = argv[++a];
        else {
            fprintf(stderr, "usage: %s [--n N] [--threads T] [--rounds R] [--dir DIR] [--script torch_decode.py]\n", argv[0]);
            return 2;
        }
    }
    if (n < 1 || threads < 1 || threads > 64 || rounds < 1 || rounds > 99) die("bad --n, --threads (1..64) or --rounds");
    char tmp[4096];
    bool own = !dir;
    if (own) {
        const char *t = getenv("TMPDIR");
        snprintf(tmp, sizeof tmp, "%s/mmnet_decode.XXXXXX", t && t[0] ? t : "/tmp");
        if (!mkdtemp(tmp)) die(tmp);
        dir = tmp;
    } else if (mkdir(dir, 0777) != 0 && errno != EEXIST) die(dir);

    char err[1024];
    static const int views[1] = {0};
    static const rt_source_input in[1] = {{"image", 3, {3, SIDE, SIDE}}};
    rt_source *s = rt_multiview_open(dir, "train", views, 1, in, false, err, sizeof err);
    if (!s || s->n < n) make_images(dir, n, threads);
    rt_source_close(s);
    double t0 = rt_now();
    s = rt_multiview_open(dir, "train", views, 1, in, false, err, sizeof err);
    double topen = rt_now() - t0;
    if (!s) die(err);

    printf("machine: ");
    fflush(stdout);
    if (system("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//' | tr -d '\\n'") != 0) printf("?");
    printf(", %ld cores\n", sysconf(_SC_NPROCESSORS_ONLN));
    printf("%s: %d images, %d classes, opened in %.1f ms\n", dir, s->n, s->classes, topen * 1e3);

    double ours[99], theirs[99], first = read_pass(s, threads); /* warm: page cache, allocator */
    (void)first;
    char side[512] = "", why[512] = "";
    int nth = 0;
    for (int r = 0; r < rounds; r++) {
        ours[r] = read_pass(s, threads);
        double t = why[0] ? 0 : python_pass(script, dir, threads, side, sizeof side, why, sizeof why);
        if (t > 0) theirs[nth++] = t;
    }
    double mo = median(ours, rounds);
    printf("%-58s %10.1f images/s  (%d threads, median of %d)\n", "mmnet rt_multiview read() (libspng)", mo, threads, rounds);
    if (nth == rounds) {
        double mt = median(theirs, nth);
        printf("%-58.58s %10.1f images/s  (%d workers, median of %d)\n", side, mt, threads, nth);
        printf("ratio mmnet / reference: %.2fx\n", mo / mt);
    } else {
        printf("reference: skipped (%s)\n", why[0] ? why : "the Python side failed");
    }
    rt_source_close(s);
    if (own) nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
