/* test_sources.c — unit tests of the data sources behind rt_source.h:
 * rt_image.c (every PNG colour type and depth libspng hands over, JPEG,
 * channel conversion, bilinear resizing against PyTorch's known values and
 * a reference computed here), rt_multiview.c (the MVCNN layout: class
 * order, object order, view order by number, conversion, resizing,
 * concurrent reads) and rt_arrays.c (safetensors and .npy: uint8, float16,
 * float32, integer labels, the missing split). Every bad input is a row of
 * a table: how to make it, the phrase the error must contain and the file
 * it must name. The data sets are written here, in their real layouts
 * (PNGs by libspng, JPEGs by TurboJPEG), in a fresh directory under
 * $TMPDIR (default /tmp) removed at exit. Exit 0 when every check passes
 * (tests/check.h). */
#define _XOPEN_SOURCE 700 /* nftw, mkdtemp */
#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <spng.h>
#include <turbojpeg.h>

#include "../check.h"
#include "mmrt.h"
#include "rt_image.h"
#include "rt_source.h"

/* The first element at which two float arrays differ (up to the sign of
 * zero; NaN equals NaN), n when none does. */
static size_t first_difference(const float *got, const float *want, size_t n) {
    for (size_t q = 0; q < n; q++)
        if (got[q] != want[q] && !(isnan(got[q]) && isnan(want[q]))) return q;
    return n;
}

/* Two float arrays equal to the bit (up to the sign of zero): one check,
 * which names the first element that differs. */
#define CHECK_SAME(got, want, n)                                                                                      \
    do {                                                                                                              \
        const float *got_ = (got), *want_ = (want);                                                                   \
        const size_t n_ = (n), differs_at_ = first_difference(got_, want_, n_);                                       \
        CHECK(differs_at_ == n_, "%s and %s differ: element %zu of %zu is %.9g, expected %.9g", #got, #want, differs_at_, \
              n_, (double)got_[differs_at_], (double)want_[differs_at_]);                                             \
    } while (0)

static char g_root[1024]; /* the temporary directory */

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

static void rm_tree(const char *p) { nftw(p, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

static void cleanup(void) {
    if (g_root[0]) rm_tree(g_root);
}

/* g_root/fmt..., in one of 16 rotating buffers: copy what must live longer. */
static const char *tpath(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *tpath(const char *fmt, ...) {
    static char buf[16][1400];
    static int next;
    char *p = buf[next++ % 16], rel[1024];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(rel, sizeof rel, fmt, ap);
    va_end(ap);
    REQUIRE(k > 0 && (size_t)k < sizeof rel);
    snprintf(p, sizeof buf[0], "%s/%s", g_root, rel);
    return p;
}

/* mkdir -p */
static void make_dirs(const char *path) {
    char p[1400];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + strlen(g_root) + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            REQUIRE(mkdir(p, 0777) == 0 || access(p, F_OK) == 0);
            *s = '/';
        }
    REQUIRE(mkdir(p, 0777) == 0 || access(p, F_OK) == 0);
}

static void write_bytes(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    REQUIRE(f, "%s", path);
    REQUIRE(n == 0 || fwrite(b, 1, n, f) == n);
    REQUIRE(fclose(f) == 0);
}

static uint8_t *read_bytes(const char *path, size_t *n) {
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

/* ---- images written here ------------------------------------------------------ */
/* A PNG by libspng's encoder: px in the PNG's own layout (16-bit samples
 * in host order, sub-byte samples packed). */
static void write_png(const char *path, int w, int h, int color_type, int depth, bool interlace, const void *px, size_t len,
                      const struct spng_plte *plte) {
    spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
    REQUIRE(ctx);
    REQUIRE(spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1) == 0);
    struct spng_ihdr ih = {.width = (uint32_t)w, .height = (uint32_t)h, .bit_depth = (uint8_t)depth,
                           .color_type = (uint8_t)color_type, .interlace_method = interlace};
    REQUIRE(spng_set_ihdr(ctx, &ih) == 0);
    if (plte) REQUIRE(spng_set_plte(ctx, (struct spng_plte *)plte) == 0);
    int r = spng_encode_image(ctx, px, len, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
    REQUIRE(r == 0, "%s: spng_encode_image: %s", path, spng_strerror(r));
    size_t n;
    int e;
    void *buf = spng_get_png_buffer(ctx, &n, &e);
    REQUIRE(buf && e == 0);
    write_bytes(path, buf, n);
    free(buf);
    spng_ctx_free(ctx);
}

/* A JPEG by TurboJPEG: px is RGB (3 bytes a pixel) or gray. */
static void write_jpeg(const char *path, int w, int h, bool gray, const uint8_t *px) {
    tjhandle tj = tjInitCompress();
    REQUIRE(tj);
    unsigned char *buf = NULL;
    unsigned long n = 0;
    REQUIRE(tjCompress2(tj, px, w, 0, h, gray ? TJPF_GRAY : TJPF_RGB, &buf, &n, gray ? TJSAMP_GRAY : TJSAMP_444, 92, 0) == 0);
    write_bytes(path, buf, n);
    tjFree(buf);
    tjDestroy(tj);
}

/* What TurboJPEG decodes the file to, as the reference for our reading of
 * it (JPEG is lossy: the written pixels are not what comes back). */
static uint8_t *jpeg_pixels(const char *path, bool gray, int w, int h) {
    size_t n;
    uint8_t *b = read_bytes(path, &n);
    tjhandle tj = tjInitDecompress();
    uint8_t *px = malloc((size_t)w * h * 3);
    REQUIRE(tj && px);
    REQUIRE(tjDecompress2(tj, b, n, px, w, 0, h, gray ? TJPF_GRAY : TJPF_RGB, 0) == 0);
    tjDestroy(tj);
    free(b);
    return px;
}

/* The test pattern: sample (channel ch, row y, column x) of view v of
 * object id, 8 bits; every value of an image differs from its neighbours. */
static unsigned pat8(int id, int v, int ch, int y, int x) { return (unsigned)(id * 7 + v * 29 + ch * 83 + y * 13 + x * 5) & 255; }
static unsigned pat16(int id, int v, int ch, int y, int x) {
    return pat8(id, v, ch, y, x) << 8 | (unsigned)((id + 3 * x + 7 * y + ch) & 255);
}

/* The test palette: entry e. */
static unsigned palette(unsigned e, int ch) { return ch == 0 ? e * 16 + 1 : ch == 1 ? 255 - e * 9 : e * e; }

/* What the decoder must give for one 8-bit RGB or gray pixel. */
static float luma8_ref(unsigned r, unsigned g, unsigned b) { return (float)(299 * r + 587 * g + 114 * b) / 255000.0f; }

/* The kinds of image files the tests write, and their pixels. */
enum { IMG_RGB8, IMG_GRAY8, IMG_GA8, IMG_RGBA8, IMG_RGB16, IMG_GRAY16, IMG_PALETTE, IMG_GRAY4, IMG_RGB8_ADAM7, IMG_JPEG_RGB,
       IMG_JPEG_GRAY, IMG_NKINDS };
static const char *const img_kind_name[IMG_NKINDS] = {"rgb8",  "gray8",  "ga8",   "rgba8",  "rgb16",    "gray16",
                                                      "palette", "gray4", "adam7", "jpeg-rgb", "jpeg-gray"};

/* Write an image of kind k (object id, view v, w x h) at path. */
static void write_image(const char *path, int kind, int id, int v, int w, int h) {
    size_t npx = (size_t)w * h;
    uint8_t *b8 = calloc(npx * 4, 1);
    uint16_t *b16 = calloc(npx * 4, sizeof(uint16_t));
    REQUIRE(b8 && b16);
    struct spng_plte plte = {.n_entries = 16};
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t p = (size_t)y * w + x;
            switch (kind) {
            case IMG_RGB8:
            case IMG_RGB8_ADAM7:
            case IMG_JPEG_RGB:
                for (int c = 0; c < 3; c++) b8[3 * p + c] = (uint8_t)pat8(id, v, c, y, x);
                break;
            case IMG_GRAY8:
            case IMG_JPEG_GRAY: b8[p] = (uint8_t)pat8(id, v, 0, y, x); break;
            case IMG_GA8:
                b8[2 * p] = (uint8_t)pat8(id, v, 0, y, x);
                b8[2 * p + 1] = (uint8_t)pat8(id, v, 3, y, x);
                break;
            case IMG_RGBA8:
                for (int c = 0; c < 4; c++) b8[4 * p + c] = (uint8_t)pat8(id, v, c, y, x);
                break;
            case IMG_RGB16:
                for (int c = 0; c < 3; c++) b16[3 * p + c] = (uint16_t)pat16(id, v, c, y, x);
                break;
            case IMG_GRAY16: b16[p] = (uint16_t)pat16(id, v, 0, y, x); break;
            case IMG_PALETTE: b8[p] = (uint8_t)(pat8(id, v, 0, y, x) & 15); break;
            case IMG_GRAY4: /* packed two to a byte, high nibble first, rows byte-aligned */
                b8[(size_t)y * ((w + 1) / 2) + x / 2] |= (uint8_t)((pat8(id, v, 0, y, x) & 15) << (x % 2 ? 0 : 4));
                break;
            }
        }
    for (unsigned e = 0; e < 16; e++)
        plte.entries[e] = (struct spng_plte_entry){(uint8_t)palette(e, 0), (uint8_t)palette(e, 1), (uint8_t)palette(e, 2), 255};
    switch (kind) {
    case IMG_RGB8: write_png(path, w, h, SPNG_COLOR_TYPE_TRUECOLOR, 8, false, b8, npx * 3, NULL); break;
    case IMG_RGB8_ADAM7: write_png(path, w, h, SPNG_COLOR_TYPE_TRUECOLOR, 8, true, b8, npx * 3, NULL); break;
    case IMG_GRAY8: write_png(path, w, h, SPNG_COLOR_TYPE_GRAYSCALE, 8, false, b8, npx, NULL); break;
    case IMG_GA8: write_png(path, w, h, SPNG_COLOR_TYPE_GRAYSCALE_ALPHA, 8, false, b8, npx * 2, NULL); break;
    case IMG_RGBA8: write_png(path, w, h, SPNG_COLOR_TYPE_TRUECOLOR_ALPHA, 8, false, b8, npx * 4, NULL); break;
    case IMG_RGB16: write_png(path, w, h, SPNG_COLOR_TYPE_TRUECOLOR, 16, false, b16, npx * 6, NULL); break;
    case IMG_GRAY16: write_png(path, w, h, SPNG_COLOR_TYPE_GRAYSCALE, 16, false, b16, npx * 2, NULL); break;
    case IMG_PALETTE: write_png(path, w, h, SPNG_COLOR_TYPE_INDEXED, 8, false, b8, npx, &plte); break;
    case IMG_GRAY4: write_png(path, w, h, SPNG_COLOR_TYPE_GRAYSCALE, 4, false, b8, (size_t)h * ((w + 1) / 2), NULL); break;
    case IMG_JPEG_RGB: write_jpeg(path, w, h, false, b8); break;
    case IMG_JPEG_GRAY: write_jpeg(path, w, h, true, b8); break;
    }
    free(b8);
    free(b16);
}

/* What reading the image of kind k at path into c channels must give:
 * [c][h][w], computed from the pattern (or, for JPEG, from TurboJPEG's
 * own decoding of the file). */
static void expect_image(const char *path, int kind, int id, int v, int c, int w, int h, float *out) {
    uint8_t *jp = NULL;
    if (kind == IMG_JPEG_RGB || kind == IMG_JPEG_GRAY) jp = jpeg_pixels(path, kind == IMG_JPEG_GRAY, w, h);
    size_t plane = (size_t)w * h;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t p = (size_t)y * w + x;
            float rgb[3], gray;
            switch (kind) {
            case IMG_RGB16:
                for (int ch = 0; ch < 3; ch++) rgb[ch] = (float)pat16(id, v, ch, y, x) / 65535.0f;
                gray = (float)((299.0 * pat16(id, v, 0, y, x) + 587.0 * pat16(id, v, 1, y, x) + 114.0 * pat16(id, v, 2, y, x)) /
                               65535000.0);
                break;
            case IMG_GRAY16:
                rgb[0] = rgb[1] = rgb[2] = gray = (float)pat16(id, v, 0, y, x) / 65535.0f;
                break;
            case IMG_GRAY8:
            case IMG_GA8:
                rgb[0] = rgb[1] = rgb[2] = gray = (float)pat8(id, v, 0, y, x) / 255.0f;
                break;
            case IMG_GRAY4: {
                unsigned g = (pat8(id, v, 0, y, x) & 15) * 17; /* libspng scales 4 bits to 8 */
                rgb[0] = rgb[1] = rgb[2] = gray = (float)g / 255.0f;
                break;
            }
            case IMG_JPEG_GRAY:
                rgb[0] = rgb[1] = rgb[2] = gray = (float)jp[p] / 255.0f;
                break;
            default: {
                unsigned s[3];
                for (int ch = 0; ch < 3; ch++)
                    s[ch] = kind == IMG_JPEG_RGB ? jp[3 * p + ch]
                            : kind == IMG_PALETTE ? palette(pat8(id, v, 0, y, x) & 15, ch)
                                                  : pat8(id, v, ch, y, x);
                for (int ch = 0; ch < 3; ch++) rgb[ch] = (float)s[ch] / 255.0f;
                gray = luma8_ref(s[0], s[1], s[2]);
            }
            }
            if (c == 1) out[p] = gray;
            else
                for (int ch = 0; ch < 3; ch++) out[ch * plane + p] = rgb[ch];
        }
    free(jp);
}

/* ---- rt_image: every kind into 1 and 3 channels --------------------------------- */
static void test_image_kinds(void) {
    const int w = 7, h = 5;
    char err[1024] = "";
    make_dirs(tpath("img"));
    float got[3 * 7 * 5], want[3 * 7 * 5], plain[3 * 7 * 5];
    for (int k = 0; k < IMG_NKINDS; k++) {
        const char *p = tpath("img/%s.%s", img_kind_name[k], k >= IMG_JPEG_RGB ? "jpg" : "png");
        write_image(p, k, 11 + k, 2, w, h);
        for (int c = 1; c <= 3; c += 2) {
            memset(got, 0xff, sizeof got);
            CHECK(rt_image_load(p, c, h, w, false, got, err, sizeof err) == 0, "%s into %d channels: %s", img_kind_name[k], c, err);
            expect_image(p, k, 11 + k, 2, c, w, h, want);
            CHECK_SAME(got, want, (size_t)c * w * h);
        }
    }
    /* Interlacing changes nothing; gray replicated is gray three times. */
    REQUIRE(rt_image_load(tpath("img/rgb8.png"), 3, h, w, false, plain, err, sizeof err) == 0, "%s", err);
    write_image(tpath("img/rgb8_adam7.png"), IMG_RGB8_ADAM7, 11, 2, w, h);
    CHECK(rt_image_load(tpath("img/rgb8_adam7.png"), 3, h, w, false, got, err, sizeof err) == 0, "%s", err);
    CHECK_SAME(got, plain, 3 * w * h);
    CHECK(rt_image_load(tpath("img/gray8.png"), 3, h, w, false, got, err, sizeof err) == 0, "%s", err);
    CHECK_SAME(got, got + w * h, w * h);
    CHECK_SAME(got, got + 2 * w * h, w * h);
    /* Gray pixels through RGB -> luma come back exactly (weights sum to 1000). */
    for (unsigned v = 0; v < 256; v++) CHECK(luma8_ref(v, v, v) == (float)v / 255.0f, "gray %u", v);
    /* The format is told by the signature: a JPEG named .png is a JPEG. */
    size_t n;
    uint8_t *jb = read_bytes(tpath("img/jpeg-rgb.jpg"), &n);
    write_bytes(tpath("img/really_a_jpeg.png"), jb, n);
    free(jb);
    CHECK(rt_image_load(tpath("img/really_a_jpeg.png"), 3, h, w, false, got, err, sizeof err) == 0, "%s", err);
    expect_image(tpath("img/jpeg-rgb.jpg"), IMG_JPEG_RGB, 11 + IMG_JPEG_RGB, 2, 3, w, h, want);
    CHECK_SAME(got, want, 3 * w * h);
}

/* ---- rt_image on damaged files -------------------------------------------------------- */
/* Recompute the CRC of every chunk, so that damage inside a chunk reaches
 * the decoder (inflate, filters, IHDR checks) instead of failing the CRC. */
static void png_fix_crcs(uint8_t *b, size_t n) {
    for (size_t at = 8; at + 12 <= n;) {
        size_t len = (size_t)b[at] << 24 | (size_t)b[at + 1] << 16 | (size_t)b[at + 2] << 8 | b[at + 3];
        if (len > n - at - 12) return;
        uLong crc = crc32(0, b + at + 4, (uInt)(len + 4));
        for (int i = 0; i < 4; i++) b[at + 8 + len + i] = (uint8_t)(crc >> (24 - 8 * i));
        at += 12 + len;
    }
}

/* Every truncation and every single-byte change of a few files: each
 * decode either succeeds or fails naming the file; never a crash, a read
 * out of bounds or undefined behaviour (the sanitizer build runs this). */
static void test_image_damage(void) {
    static const int kinds[] = {IMG_RGB8, IMG_RGB8_ADAM7, IMG_RGB16, IMG_PALETTE, IMG_GRAY4, IMG_JPEG_RGB, IMG_JPEG_GRAY};
    char err[1024] = "";
    float out[3 * 9 * 7];
    int failed = 0, total = 0;
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        char path[1400];
        snprintf(path, sizeof path, "%s", tpath("img/damage_%s", img_kind_name[kinds[k]]));
        write_image(path, kinds[k], 3, 1, 7, 5);
        size_t n;
        uint8_t *orig = read_bytes(path, &n), *b = malloc(n);
        REQUIRE(b);
        bool png = kinds[k] < IMG_JPEG_RGB;
        for (size_t len = 0; len <= n; len++) { /* truncated, then whole */
            memcpy(b, orig, len);
            int rc = rt_image_decode(path, b, len, 3, 5, 7, false, out, err, sizeof err);
            CHECK(rc == 0 || rc == -1, "%s cut to %zu bytes: %d", img_kind_name[kinds[k]], len, rc);
            if (rc) CHECK(strstr(err, path), "\"%s\"", err);
            failed += rc != 0, total++;
        }
        for (size_t at = 0; at < n; at++)
            for (int x = 0; x < 3; x++) {
                static const uint8_t flip[3] = {0x01, 0x80, 0xff};
                memcpy(b, orig, n);
                b[at] ^= flip[x];
                if (png && at >= 8) png_fix_crcs(b, n);
                int rc = rt_image_decode(path, b, n, 3, 5, 7, x == 2, out, err, sizeof err);
                CHECK(rc == 0 || rc == -1, "%s, byte %zu ^ 0x%02x: %d", img_kind_name[kinds[k]], at, flip[x], rc);
                if (rc) CHECK(strstr(err, path), "\"%s\"", err);
                failed += rc != 0, total++;
            }
        free(b);
        free(orig);
    }
    printf("damaged images: %d of %d decodes refused, none crashed\n", failed, total);
}

/* ---- resizing ---------------------------------------------------------------------- */
/* The reference: PyTorch's formula, in double. */
static void resize_ref(const float *src, int sh, int sw, double *dst, int dh, int dw) {
    for (int oy = 0; oy < dh; oy++)
        for (int ox = 0; ox < dw; ox++) {
            double sy = ((double)sh / dh) * (oy + 0.5) - 0.5, sx = ((double)sw / dw) * (ox + 0.5) - 0.5;
            if (sy < 0) sy = 0;
            if (sx < 0) sx = 0;
            int y0 = (int)sy, x0 = (int)sx;
            if (y0 > sh - 1) y0 = sh - 1;
            if (x0 > sw - 1) x0 = sw - 1;
            int y1 = y0 + (y0 < sh - 1), x1 = x0 + (x0 < sw - 1);
            double ly = sy - y0, lx = sx - x0;
            double top = src[y0 * sw + x0] * (1 - lx) + src[y0 * sw + x1] * lx;
            double bot = src[y1 * sw + x0] * (1 - lx) + src[y1 * sw + x1] * lx;
            dst[oy * dw + ox] = top * (1 - ly) + bot * ly;
        }
}

static void test_resize(void) {
    /* F.interpolate(torch.arange(4.).view(1,1,2,2), size=4, mode='bilinear', align_corners=False) */
    static const float up_src[4] = {0, 1, 2, 3};
    static const float up_torch[16] = {0.0f, 0.25f, 0.75f, 1.0f, 0.5f, 0.75f, 1.25f, 1.5f,
                                       1.5f, 1.75f, 2.25f, 2.5f, 2.0f, 2.25f, 2.75f, 3.0f};
    float up[16];
    rt_resize_bilinear(up_src, 2, 2, up, 4, 4);
    CHECK_SAME(up, up_torch, 16);
    /* ... and torch.arange(16.).view(1,1,4,4) to 2x2: the means of 2x2 blocks */
    float down_src[16], down[4];
    for (int i = 0; i < 16; i++) down_src[i] = (float)i;
    static const float down_torch[4] = {2.5f, 4.5f, 10.5f, 12.5f};
    rt_resize_bilinear(down_src, 4, 4, down, 2, 2);
    CHECK_SAME(down, down_torch, 4);
    /* a size kept is a copy */
    float same[16];
    rt_resize_bilinear(down_src, 4, 4, same, 4, 4);
    CHECK_SAME(same, down_src, 16);

    /* Odd ratios both ways, one axis at a time and both, against the
     * formula in double. */
    static const int sizes[][4] = {{5, 7, 3, 4}, {5, 7, 11, 9}, {5, 7, 5, 13}, {5, 7, 2, 7}, {1, 7, 3, 3}, {6, 1, 4, 5}};
    for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
        int sh = sizes[t][0], sw = sizes[t][1], dh = sizes[t][2], dw = sizes[t][3];
        float src[64], dst[256];
        double ref[256];
        for (int i = 0; i < sh * sw; i++) src[i] = (float)((i * 37) % 101) / 100.0f;
        rt_resize_bilinear(src, sh, sw, dst, dh, dw);
        resize_ref(src, sh, sw, ref, dh, dw);
        for (int i = 0; i < dh * dw; i++) CHECK_CLOSE(dst[i], ref[i], 1e-6, 0, "resize %dx%d -> %dx%d: element %d", sh, sw, dh, dw, i);
    }

    /* Through the decoder: a 7x5 image read at 4x3 and 9x11 is the image
     * read at its size, resized plane by plane. */
    char err[1024] = "";
    const char *p = tpath("img/resize.png");
    write_image(p, IMG_RGB8, 5, 1, 7, 5);
    float full[3 * 35], got[3 * 99], want[3 * 99];
    REQUIRE(rt_image_load(p, 3, 5, 7, false, full, err, sizeof err) == 0, "%s", err);
    static const int to[][2] = {{3, 4}, {11, 9}};
    for (int t = 0; t < 2; t++) {
        int dh = to[t][0], dw = to[t][1];
        CHECK(rt_image_load(p, 3, dh, dw, true, got, err, sizeof err) == 0, "%s", err);
        for (int c = 0; c < 3; c++) rt_resize_bilinear(full + c * 35, 5, 7, want + c * dh * dw, dh, dw);
        CHECK_SAME(got, want, 3 * dh * dw);
        CHECK(rt_image_load(p, 3, dh, dw, false, got, err, sizeof err) == -1);
        CHECK_ERR(err, "img/resize.png", "the image is 7x5 (width x height) but the input is");
    }
    /* JPEG too, with a gray target */
    const char *jp = tpath("img/resize.jpg");
    write_image(jp, IMG_JPEG_RGB, 5, 1, 7, 5);
    REQUIRE(rt_image_load(jp, 1, 5, 7, false, full, err, sizeof err) == 0, "%s", err);
    CHECK(rt_image_load(jp, 1, 3, 4, true, got, err, sizeof err) == 0, "%s", err);
    rt_resize_bilinear(full, 5, 7, want, 3, 4);
    CHECK_SAME(got, want, 12);
}

/* ---- the multi-view layout ---------------------------------------------------------- */
#define MV_W 5
#define MV_H 4

/* One object of the test layout: its files' name pattern (one %d for the
 * view number), its id in the pattern, and its kind of image. */
typedef struct {
    const char *cls, *split, *fmt;
    int id, kind, nviews;
} mv_object;

static const mv_object mv_objects[] = {
    {"airplane", "train", "airplane_0627.obj.shaded_v%03d.png", 627, IMG_RGB8, 12},
    {"airplane", "train", "airplane_0001.obj.shaded_v%03d.png", 1, IMG_RGB8, 12},
    {"airplane", "test", "airplane_0700.obj.shaded_v%03d.png", 700, IMG_RGB8, 12},
    {"chair", "train", "chair_0002_%03d.jpg", 1002, IMG_JPEG_RGB, 12},
    {"chair", "train", "chair_0001_%d.png", 1001, IMG_GRAY8, 12}, /* _1 ... _12: ordered by number, not name */
    {"chair", "test", "chair_0100_%02d.png", 1100, IMG_RGB16, 12},
    {"bed", "train", "bed_0005_v%d.jpeg", 5005, IMG_JPEG_GRAY, 7},  /* views 0..6: just enough */
    {"bed", "test", "bed_0009_v%d.png", 5009, IMG_GA8, 7},
};
#define MV_NOBJ (int)(sizeof mv_objects / sizeof mv_objects[0])

/* View numbers on disk: bed counts from 0, the others from 1. */
static int view_number(const mv_object *o, int index) { return o->id >= 5000 ? index : index + 1; }

static void make_multiview(const char *root) {
    for (int k = 0; k < MV_NOBJ; k++) {
        const mv_object *o = &mv_objects[k];
        make_dirs(tpath("%s/%s/%s", root, o->cls, o->split));
        /* written in reverse so that directory order says nothing */
        for (int i = o->nviews - 1; i >= 0; i--) {
            char name[256];
            snprintf(name, sizeof name, o->fmt, view_number(o, i));
            write_image(tpath("%s/%s/%s/%s", root, o->cls, o->split, name), o->kind, o->id, view_number(o, i), MV_W, MV_H);
        }
    }
    /* what is not a class, an image or visible is passed over */
    write_bytes(tpath("%s/README.txt", root), "renders\n", 8);
    make_dirs(tpath("%s/.cache", root));
    write_bytes(tpath("%s/chair/train/notes.txt", root), "x", 1);
    write_bytes(tpath("%s/chair/train/.chair_0001_1.png", root), "x", 1);
    make_dirs(tpath("%s/chair/train/thumbs.png", root));
}

static const rt_source_input mv_inputs[2] = {{"front", 3, {3, MV_H, MV_W}}, {"rear", 3, {1, MV_H, MV_W}}};
static const int mv_views[2] = {0, 6};

/* Check example i of s (input k reads view mv_views[k]) against object o
 * of the layout at g_root/root. */
static void check_example(rt_source *s, int i, const char *root, const mv_object *o, const rt_source_input *in) {
    char err[1024] = "";
    for (int k = 0; k < s->ninputs; k++) {
        size_t n = (size_t)in[k].shape[0] * MV_H * MV_W;
        float got[3 * MV_H * MV_W], want[3 * MV_H * MV_W];
        CHECK(s->read(s, i, k, got, err, sizeof err) == 0, "example %d input %d: %s", i, k, err);
        char name[256];
        int v = view_number(o, mv_views[k]);
        snprintf(name, sizeof name, o->fmt, v);
        expect_image(tpath("%s/%s/%s/%s", root, o->cls, o->split, name), o->kind, o->id, v, in[k].shape[0], MV_W, MV_H, want);
        CHECK_SAME(got, want, n);
    }
}

typedef struct {
    rt_source *s;
    int first, step;
    float *out; /* [n][4 * H * W]: both inputs */
    int fails;
} mv_job;

static void *read_all(void *arg) {
    mv_job *j = arg;
    char err[1024] = "";
    for (int rep = 0; rep < 3; rep++)
        for (int i = j->first; i < j->s->n; i += j->step)
            for (int k = 0; k < 2; k++) {
                float *dst = j->out + (size_t)i * 4 * MV_H * MV_W + (k ? 3 * MV_H * MV_W : 0);
                j->fails += j->s->read(j->s, i, k, dst, err, sizeof err) != 0;
            }
    return NULL;
}

static void test_multiview(void) {
    char err[1024] = "";
    make_multiview("mv");
    char root[1400];
    snprintf(root, sizeof root, "%s", tpath("mv"));
    rt_source *s = rt_multiview_open(root, "train", mv_views, 2, mv_inputs, false, err, sizeof err);
    REQUIRE(s, "%s", err);
    /* classes sorted (bed, airplane..., no README or .cache), objects by name */
    REQUIRE(s->classes == 3 && s->n == 5 && s->ninputs == 2, "%d classes, %d examples, %d inputs", s->classes, s->n, s->ninputs);
    CHECK(strstr(s->what, "mv (train)"), "%s", s->what);
    static const int order[5] = {1, 0, 6, 4, 3}; /* airplane_0001, airplane_0627, bed_0005, chair_0001, chair_0002 */
    static const int label[5] = {0, 0, 1, 2, 2};
    for (int i = 0; i < 5; i++) {
        CHECK(s->y[i] == label[i], "example %d: label %d", i, s->y[i]);
        check_example(s, i, "mv", &mv_objects[order[i]], mv_inputs);
    }
    CHECK(s->read(s, 5, 0, NULL, err, sizeof err) == -1);
    CHECK_ERR(err, "mv (train)", "internal");

    /* Concurrent reads give what one thread reads. */
    enum { T = 4 };
    size_t per = 4 * MV_H * MV_W;
    float *seq = malloc(sizeof(float) * per * 5);
    REQUIRE(seq);
    mv_job one = {s, 0, 1, seq, 0};
    read_all(&one);
    CHECK(one.fails == 0);
    pthread_t th[T];
    mv_job jobs[T];
    for (int t = 0; t < T; t++) {
        jobs[t] = (mv_job){s, t % 5, 2, malloc(sizeof(float) * per * 5), 0}; /* overlapping: an example from two threads */
        REQUIRE(jobs[t].out);
        REQUIRE(pthread_create(&th[t], NULL, read_all, &jobs[t]) == 0);
    }
    for (int t = 0; t < T; t++) {
        REQUIRE(pthread_join(th[t], NULL) == 0);
        CHECK(jobs[t].fails == 0, "thread %d", t);
        for (int i = jobs[t].first; i < 5; i += 2) CHECK_SAME(jobs[t].out + i * per, seq + i * per, per);
        free(jobs[t].out);
    }
    free(seq);
    rt_source_close(s);

    /* The test split; gray into RGB and RGB into gray. */
    static const rt_source_input swapped[2] = {{"front", 3, {1, MV_H, MV_W}}, {"rear", 3, {3, MV_H, MV_W}}};
    s = rt_multiview_open(root, "test", mv_views, 2, swapped, false, err, sizeof err);
    REQUIRE(s && s->n == 3 && s->classes == 3, "%s", s ? "" : err);
    static const int torder[3] = {2, 7, 5}, tlabel[3] = {0, 1, 2};
    for (int i = 0; i < 3; i++) {
        CHECK(s->y[i] == tlabel[i], "example %d: label %d", i, s->y[i]);
        check_example(s, i, "mv", &mv_objects[torder[i]], swapped);
    }
    rt_source_close(s);

    /* One view, read at another size: the image resized. */
    static const int v3[1] = {3};
    static const rt_source_input big[1] = {{"only", 3, {3, 9, 6}}};
    s = rt_multiview_open(root, "train", v3, 1, big, true, err, sizeof err);
    REQUIRE(s && s->n == 5 && s->ninputs == 1, "%s", s ? "" : err);
    float got[3 * 54], at[3 * MV_H * MV_W], want[3 * 54];
    CHECK(s->read(s, 3, 0, got, err, sizeof err) == 0, "%s", err); /* chair_0001, view index 3 = chair_0001_4.png */
    REQUIRE(rt_image_load(tpath("mv/chair/train/chair_0001_4.png"), 3, MV_H, MV_W, false, at, err, sizeof err) == 0, "%s", err);
    for (int c = 0; c < 3; c++) rt_resize_bilinear(at + c * MV_H * MV_W, MV_H, MV_W, want + c * 54, 9, 6);
    CHECK_SAME(got, want, 3 * 54);
    rt_source_close(s);
    /* ... and refused without resize, naming the file and both sizes */
    s = rt_multiview_open(root, "train", v3, 1, big, false, err, sizeof err);
    REQUIRE(s, "%s", err);
    CHECK(s->read(s, 3, 0, got, err, sizeof err) == -1);
    CHECK_ERR(err, "mv/chair/train/chair_0001_4.png", "the image is 5x4 (width x height) but the input is 6x9");
    rt_source_close(s);
}

/* ---- the multi-view layout, broken one way at a time ------------------------------------- */
/* A small layout: airplane (one object, 12 PNG views), chair (one object,
 * 12 JPEG views), then one change. */
enum { MVB_NO_ROOT, MVB_NO_CLASSES, MVB_NO_SPLIT, MVB_NO_IMAGES, MVB_FEW_VIEWS, MVB_NO_NUMBER, MVB_SAME_NUMBER, MVB_TRUNC_PNG,
       MVB_CORRUPT_PNG, MVB_TRUNC_JPEG, MVB_CORRUPT_JPEG, MVB_WRONG_SIZE, MVB_NOT_IMAGE, MVB_EMPTY_FILE, MVB_GONE };

static const struct {
    int change;
    int example;      /* -1: opening fails; else reading this example's input 0 fails */
    const char *file; /* the message names it (relative to the root) */
    const char *msg;
} mv_bad[] = {
    {MVB_NO_ROOT, -1, "", "No such file or directory"},
    {MVB_NO_CLASSES, -1, "", "no class directories"},
    {MVB_NO_SPLIT, -1, "/chair", "the class has no 'train' directory"},
    {MVB_NO_IMAGES, -1, "/chair/train", "no images"},
    {MVB_FEW_VIEWS, -1, "/chair/train/chair_0001_001.jpg", "the object has 5 views (chair_0001_001.jpg ... chair_0001_005.jpg), but view 6 is asked for"},
    {MVB_NO_NUMBER, -1, "/chair/train/chair.png", "no view number before the extension"},
    {MVB_SAME_NUMBER, -1, "/chair/train", "chair_0001_001.jpg and chair_0001_1.jpg have the same view number 1"},
    {MVB_TRUNC_PNG, 0, "/airplane/train/airplane_0001_v01.png", "corrupt or unsupported PNG"},
    {MVB_CORRUPT_PNG, 0, "/airplane/train/airplane_0001_v01.png", "corrupt or unsupported PNG"},
    {MVB_TRUNC_JPEG, 1, "/chair/train/chair_0001_001.jpg", "corrupt or unsupported JPEG"},
    {MVB_CORRUPT_JPEG, 1, "/chair/train/chair_0001_001.jpg", "corrupt or unsupported JPEG"},
    {MVB_WRONG_SIZE, 0, "/airplane/train/airplane_0001_v01.png", "the image is 6x4 (width x height) but the input is 5x4"},
    {MVB_NOT_IMAGE, 0, "/airplane/train/airplane_0001_v01.png", "not a PNG or JPEG image"},
    {MVB_EMPTY_FILE, 0, "/airplane/train/airplane_0001_v01.png", "empty file"},
    {MVB_GONE, 0, "/airplane/train/airplane_0001_v01.png", "No such file or directory"},
};

/* Damage a file: keep `keep` bytes, or (keep < 0) flip byte -keep. */
static void damage(const char *path, long keep) {
    size_t n;
    uint8_t *b = read_bytes(path, &n);
    if (keep >= 0) n = (size_t)keep < n ? (size_t)keep : n;
    else b[-keep] ^= 0x5a;
    write_bytes(path, b, n);
    free(b);
}

static void make_bad_multiview(const char *root, int change) {
    if (change == MVB_NO_ROOT) return;
    make_dirs(tpath("%s", root));
    if (change == MVB_NO_CLASSES) {
        write_bytes(tpath("%s/README", root), "x", 1);
        return;
    }
    make_dirs(tpath("%s/airplane/train", root));
    make_dirs(tpath("%s/chair/%s", root, change == MVB_NO_SPLIT ? "test" : "train"));
    for (int v = 1; v <= 12; v++) {
        write_image(tpath("%s/airplane/train/airplane_0001_v%02d.png", root, v), IMG_RGB8, 1, v,
                    change == MVB_WRONG_SIZE && v == 1 ? MV_W + 1 : MV_W, MV_H);
        if (change != MVB_NO_SPLIT && change != MVB_NO_IMAGES && (change != MVB_FEW_VIEWS || v <= 5))
            write_image(tpath("%s/chair/train/chair_0001_%03d.jpg", root, v), IMG_JPEG_RGB, 2, v, MV_W, MV_H);
    }
    const char *png = tpath("%s/airplane/train/airplane_0001_v01.png", root);
    const char *jpg = tpath("%s/chair/train/chair_0001_001.jpg", root);
    size_t n;
    uint8_t *b;
    switch (change) {
    case MVB_NO_IMAGES: write_bytes(tpath("%s/chair/train/list.txt", root), "x", 1); break;
    case MVB_NO_NUMBER: write_image(tpath("%s/chair/train/chair.png", root), IMG_RGB8, 2, 0, MV_W, MV_H); break;
    case MVB_SAME_NUMBER: write_image(tpath("%s/chair/train/chair_0001_1.jpg", root), IMG_JPEG_RGB, 2, 1, MV_W, MV_H); break;
    case MVB_TRUNC_PNG:
        b = read_bytes(png, &n);
        free(b);
        damage(png, (long)n * 2 / 3);
        break;
    case MVB_CORRUPT_PNG: damage(png, -45); break; /* inside IDAT: its CRC fails */
    case MVB_TRUNC_JPEG:
        b = read_bytes(jpg, &n);
        free(b);
        damage(jpg, (long)n * 2 / 3);
        break;
    case MVB_CORRUPT_JPEG: /* the start-of-frame's sample precision: 8 -> 9 bits */
        b = read_bytes(jpg, &n);
        for (size_t i = 2; i + 4 < n; i++)
            if (b[i] == 0xff && b[i + 1] == 0xc0) {
                b[i + 4] = 9;
                break;
            }
        write_bytes(jpg, b, n);
        free(b);
        break;
    case MVB_NOT_IMAGE: write_bytes(png, "GIF89a not really", 17); break;
    case MVB_EMPTY_FILE: write_bytes(png, "", 0); break;
    case MVB_GONE: break; /* removed after opening */
    }
}

static void test_multiview_errors(void) {
    char err[1024] = "";
    float buf[3 * MV_H * MV_W];
    for (size_t t = 0; t < sizeof mv_bad / sizeof mv_bad[0]; t++) {
        char rel[64], file[512];
        snprintf(rel, sizeof rel, "mvbad%zu", t);
        make_bad_multiview(rel, mv_bad[t].change);
        char root[1400];
        snprintf(root, sizeof root, "%s", tpath("%s", mv_bad[t].change == MVB_NO_ROOT ? "nothing_here" : rel));
        snprintf(file, sizeof file, "%s%s", root, mv_bad[t].file);
        strcpy(err, "(none)");
        rt_source *s = rt_multiview_open(root, "train", mv_views, 2, mv_inputs, false, err, sizeof err);
        if (mv_bad[t].example < 0) {
            CHECK(!s, "bad multiview case %zu opened", t);
            if (s) rt_source_close(s);
        } else {
            REQUIRE(s && s->n == 2, "bad multiview case %zu: %s", t, s ? "not 2 examples" : err);
            if (mv_bad[t].change == MVB_GONE) REQUIRE(remove(file) == 0, "%s", file);
            /* the other examples still read */
            CHECK(s->read(s, 1 - mv_bad[t].example, 0, buf, err, sizeof err) == 0, "bad multiview case %zu: %s", t, err);
            CHECK(s->read(s, mv_bad[t].example, 0, buf, err, sizeof err) == -1, "bad multiview case %zu read", t);
            rt_source_close(s);
        }
        CHECK_ERR(err, file, mv_bad[t].msg);
    }
    /* Views and inputs the DSL should never pass, told rather than crashed on. */
    char root[1400];
    snprintf(root, sizeof root, "%s", tpath("mvbad1"));
    static const int neg[1] = {-1};
    CHECK(!rt_multiview_open(root, "train", neg, 1, mv_inputs, false, err, sizeof err));
    CHECK_ERR(err, "mvbad1", "negative");
    static const rt_source_input video[1] = {{"clip", 4, {3, 8, MV_H, MV_W}}};
    CHECK(!rt_multiview_open(root, "train", mv_views, 1, video, false, err, sizeof err));
    CHECK_ERR(err, "clip", "must be an image");
}

/* ---- the user's arrays ------------------------------------------------------------------- */
/* safetensors written by hand: each tensor's dtype, shape and bytes, and
 * optionally forced data_offsets. */
typedef struct {
    const char *name, *dtype;
    int ndim;
    int64_t shape[5];
    const void *data;
    size_t bytes;
    long long b, e; /* forced offsets when e > 0 */
} st_tensor;

/* The files' metadata. */
static const char *st_meta = "{\"by\":\"test\"}";

/* cut: bytes to leave off the end. */
static void write_safetensors(const char *path, const st_tensor *t, int n, size_t cut) {
    char json[4096];
    size_t k = (size_t)snprintf(json, sizeof json, "{\"__metadata__\":%s", st_meta);
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        k += (size_t)snprintf(json + k, sizeof json - k, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", t[i].name, t[i].dtype);
        for (int d = 0; d < t[i].ndim; d++)
            k += (size_t)snprintf(json + k, sizeof json - k, "%s%lld", d ? "," : "", (long long)t[i].shape[d]);
        long long b = t[i].e > 0 ? t[i].b : (long long)off, e = t[i].e > 0 ? t[i].e : (long long)(off + t[i].bytes);
        k += (size_t)snprintf(json + k, sizeof json - k, "],\"data_offsets\":[%lld,%lld]}", b, e);
        off += t[i].bytes;
    }
    k += (size_t)snprintf(json + k, sizeof json - k, "}");
    while ((8 + k) % 8) json[k++] = ' ';
    REQUIRE(k < sizeof json);
    size_t total = 8 + k + off;
    uint8_t *f = malloc(total);
    REQUIRE(f);
    for (int i = 0; i < 8; i++) f[i] = (uint8_t)((uint64_t)k >> (8 * i));
    memcpy(f + 8, json, k);
    off = 8 + k;
    for (int i = 0; i < n; i++) {
        if (t[i].bytes) memcpy(f + off, t[i].data, t[i].bytes);
        off += t[i].bytes;
    }
    write_bytes(path, f, total - cut);
    free(f);
}

/* .npy written by hand (format 1.0, header padded to 64 bytes). */
static void write_npy(const char *path, const char *descr, bool fortran, int ndim, const int64_t *shape, const void *data,
                      size_t bytes) {
    char dict[512], sh[256] = "";
    size_t k = 0;
    for (int d = 0; d < ndim; d++)
        k += (size_t)snprintf(sh + k, sizeof sh - k, "%lld,%s", (long long)shape[d], d + 1 < ndim ? " " : "");
    if (ndim > 1) sh[k - 1] = '\0'; /* (4, 3) but (4,) */
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': %s, 'shape': (%s), }", descr,
                     fortran ? "True" : "False", sh);
    while ((10 + n + 1) % 64) dict[n++] = ' ';
    dict[n++] = '\n';
    uint8_t *f = malloc(10 + (size_t)n + bytes);
    REQUIRE(f);
    memcpy(f, "\x93NUMPY\x01\x00", 8);
    f[8] = (uint8_t)(n & 255), f[9] = (uint8_t)(n >> 8);
    memcpy(f + 10, dict, (size_t)n);
    if (bytes) memcpy(f + 10 + n, data, bytes);
    write_bytes(path, f, 10 + (size_t)n + bytes);
    free(f);
}

/* The test arrays: 4 examples of color [3, 2, 2] uint8 and depth [1, 2, 2]
 * float16 or float32, labels int64. */
#define AN 4
static uint8_t a_color[AN * 12];
static uint16_t a_depth16[AN * 4];
static float a_depth32[AN * 4], a_depth16_f[AN * 4];
static int64_t a_label[AN] = {2, 0, 5, 2};
static const rt_source_input a_inputs[2] = {{"color", 3, {3, 2, 2}}, {"depth", 3, {1, 2, 2}}};

static void make_arrays(void) {
    for (int i = 0; i < AN * 12; i++) a_color[i] = (uint8_t)(i * 23 + 7);
    /* halves worth checking: 1, -2, the smallest subnormal, the largest
     * finite, 1/3 rounded, -0, infinity, a NaN, the smallest normal, a
     * subnormal with many bits, 0.5, -65504, and more */
    static const uint16_t h[16] = {0x3c00, 0xc000, 0x0001, 0x7bff, 0x3555, 0x8000, 0x7c00, 0x7e00,
                                   0x0400, 0x03ff, 0x3800, 0xfbff, 0x4248, 0x1234, 0xb0cc, 0x0000};
    static const float f[16] = {1.0f, -2.0f, 0x1p-24f, 65504.0f, 0.333251953125f, -0.0f, INFINITY, NAN,
                                0x1p-14f, 0x3ffp-24f, 0.5f, -65504.0f, 3.140625f, 0x1.8dp-11f, -0x1.33p-3f, 0.0f};
    memcpy(a_depth16, h, sizeof h);
    memcpy(a_depth16_f, f, sizeof f);
    for (int i = 0; i < AN * 4; i++) a_depth32[i] = (float)i * 0.37f - 2.5f;
}

static void check_arrays(rt_source *s, bool half) {
    char err[1024] = "";
    REQUIRE(s->n == AN && s->classes == 6 && s->ninputs == 2, "%d examples, %d classes, %d inputs", s->n, s->classes, s->ninputs);
    for (int i = 0; i < AN; i++) {
        CHECK(s->y[i] == a_label[i], "example %d: label %d", i, s->y[i]);
        float c[12], d[4], want[12];
        CHECK(s->read(s, i, 0, c, err, sizeof err) == 0, "example %d: %s", i, err);
        for (int e = 0; e < 12; e++) want[e] = (float)a_color[i * 12 + e] / 255.0f;
        CHECK_SAME(c, want, 12);
        CHECK(s->read(s, i, 1, d, err, sizeof err) == 0, "example %d: %s", i, err);
        CHECK_SAME(d, (half ? a_depth16_f : a_depth32) + i * 4, 4);
        if (half && i == 1) CHECK(signbit(d[1])); /* -0 stays negative */
    }
    CHECK(s->read(s, AN, 0, NULL, err, sizeof err) == -1);
    CHECK_ERR(err, s->what, "internal");
}

static void test_arrays(void) {
    char err[1024] = "";
    bool missing = true;
    make_arrays();
    make_dirs(tpath("arr"));
    /* train by hand (uint8 + float16), test by rt_ckpt_save (float32 + int64) */
    st_tensor t[3] = {{"color", "U8", 4, {AN, 3, 2, 2}, a_color, sizeof a_color, 0, 0},
                      {"depth", "F16", 4, {AN, 1, 2, 2}, a_depth16, sizeof a_depth16, 0, 0},
                      {"label", "I64", 1, {AN}, a_label, sizeof a_label, 0, 0}};
    write_safetensors(tpath("arr/train.safetensors"), t, 3, 0);
    rt_source *s = rt_arrays_open(tpath("arr"), "train", a_inputs, 2, &missing, err, sizeof err);
    REQUIRE(s && !missing, "%s", err);
    check_arrays(s, true);
    CHECK(strstr(s->what, "arr (train)"), "%s", s->what);
    rt_source_close(s);
    /* metadata that is not an object of strings is the writer's business */
    st_meta = "{\"n\":4,\"shapes\":[[3,2,2]]}";
    write_safetensors(tpath("arr/train.safetensors"), t, 3, 0);
    st_meta = "{\"by\":\"test\"}";
    s = rt_arrays_open(tpath("arr"), "train", a_inputs, 2, &missing, err, sizeof err);
    REQUIRE(s && !missing, "%s", err);
    check_arrays(s, true);
    rt_source_close(s);

    /* the label first, an extra tensor, unaligned data (a 1-byte tensor first) */
    static const uint8_t extra[1] = {9};
    static const int32_t lab32[AN] = {2, 0, 5, 2};
    st_tensor u[4] = {{"zz_extra", "U8", 1, {1}, extra, 1, 0, 0},
                      {"label", "I32", 1, {AN}, lab32, sizeof lab32, 0, 0},
                      {"depth", "F16", 4, {AN, 1, 2, 2}, a_depth16, sizeof a_depth16, 0, 0},
                      {"color", "U8", 4, {AN, 3, 2, 2}, a_color, sizeof a_color, 0, 0}};
    write_safetensors(tpath("arr/val.safetensors"), u, 4, 0);
    s = rt_arrays_open(tpath("arr"), "val", a_inputs, 2, &missing, err, sizeof err);
    REQUIRE(s && !missing, "%s", err);
    check_arrays(s, true);
    rt_source_close(s);

    rt_tensor ck[3] = {{"color", 4, {AN, 3, 2, 2}, RT_F32, NULL}, {"depth", 4, {AN, 1, 2, 2}, RT_F32, a_depth32},
                       {"label", 1, {AN}, RT_I64, a_label}};
    static const rt_source_input f32_inputs[2] = {{"color", 3, {3, 2, 2}}, {"depth", 3, {1, 2, 2}}};
    float colorf[AN * 12];
    for (int i = 0; i < AN * 12; i++) colorf[i] = (float)a_color[i] / 255.0f;
    ck[0].data = colorf;
    REQUIRE(rt_ckpt_save(tpath("arr/test.safetensors"), ck, 3, NULL, 0, err, sizeof err) == 0, "%s", err);
    s = rt_arrays_open(tpath("arr"), "test", f32_inputs, 2, &missing, err, sizeof err);
    REQUIRE(s && !missing, "%s", err);
    check_arrays(s, false);
    rt_source_close(s);

    /* no such split: missing, and a message for a caller that needs it */
    make_dirs(tpath("arr2"));
    write_safetensors(tpath("arr2/train.safetensors"), t, 3, 0);
    s = rt_arrays_open(tpath("arr2"), "val", a_inputs, 2, &missing, err, sizeof err);
    CHECK(!s && missing);
    CHECK_ERR(err, "arr2", "no val split");

    /* .npy: uint8 + float16 and int64 labels; float32 and uint8 labels */
    make_dirs(tpath("npy/train"));
    make_dirs(tpath("npy/test"));
    static const int64_t sc[4] = {AN, 3, 2, 2}, sd[4] = {AN, 1, 2, 2}, sl[1] = {AN};
    write_npy(tpath("npy/train/color.npy"), "|u1", false, 4, sc, a_color, sizeof a_color);
    write_npy(tpath("npy/train/depth.npy"), "<f2", false, 4, sd, a_depth16, sizeof a_depth16);
    write_npy(tpath("npy/train/label.npy"), "<i8", false, 1, sl, a_label, sizeof a_label);
    write_npy(tpath("npy/train/unused.npy"), ">f8", false, 1, sl, a_label, sizeof a_label);
    s = rt_arrays_open(tpath("npy"), "train", a_inputs, 2, &missing, err, sizeof err);
    REQUIRE(s && !missing, "%s", err);
    check_arrays(s, true);
    rt_source_close(s);
    static const uint8_t lab8[AN] = {2, 0, 5, 2};
    write_npy(tpath("npy/test/color.npy"), "<u1", false, 4, sc, a_color, sizeof a_color);
    write_npy(tpath("npy/test/depth.npy"), "<f4", false, 4, sd, a_depth32, sizeof a_depth32);
    write_npy(tpath("npy/test/label.npy"), "|u1", true, 1, sl, lab8, sizeof lab8); /* 1-D: Fortran order is C order */
    s = rt_arrays_open(tpath("npy"), "test", a_inputs, 2, &missing, err, sizeof err);
    REQUIRE(s && !missing, "%s", err);
    check_arrays(s, false);
    rt_source_close(s);
    s = rt_arrays_open(tpath("npy"), "val", a_inputs, 2, &missing, err, sizeof err);
    CHECK(!s && missing);
}

/* safetensors, broken one way at a time: the base file is train's above. */
enum { STB_SHAPE, STB_NDIM, STB_DTYPE, STB_NO_INPUT, STB_NO_LABEL, STB_NEG_LABEL, STB_BIG_LABEL, STB_FLOAT_LABEL, STB_LABEL_2D,
       STB_COUNT, STB_OUTSIDE, STB_OVERLAP, STB_SHORT, STB_TRUNCATED, STB_HEADER_LEN, STB_NOT_JSON, STB_EMPTY, STB_NO_EXAMPLES,
       STB_BOTH, STB_NO_DIR };

static const struct {
    int change;
    const char *file; /* what the message names, under the test directory */
    const char *msg;
} st_bad[] = {
    {STB_SHAPE, "train.safetensors", "tensor 'color' has shape [4, 3, 2, 3], but the model's input 'color' needs [N, 3, 2, 2]"},
    {STB_NDIM, "train.safetensors", "tensor 'depth' has shape [4, 4], but the model's input 'depth' needs [N, 1, 2, 2]"},
    {STB_DTYPE, "train.safetensors", "tensor 'depth' (the model's input 'depth') has dtype I16"},
    {STB_NO_INPUT, "train.safetensors", "no tensor 'depth' for the model's input 'depth' (the file holds 'color', 'dept', 'label')"},
    {STB_NO_LABEL, "train.safetensors", "no tensor 'label'"},
    {STB_NEG_LABEL, "train.safetensors", "tensor 'label': label -3 at index 2 is negative"},
    {STB_BIG_LABEL, "train.safetensors", "tensor 'label': label 4294967295 at index 1 is too large"},
    {STB_FLOAT_LABEL, "train.safetensors", "tensor 'label' has dtype F32; labels must be integers"},
    {STB_LABEL_2D, "train.safetensors", "tensor 'label' has shape [4, 1]; labels must be one dimension"},
    {STB_COUNT, "train.safetensors", "tensor 'depth' holds 3 examples, but 'label'"},
    {STB_OUTSIDE, "train.safetensors", "tensor 'label': data_offsets [80, 1080] lie outside the data section"},
    {STB_OVERLAP, "train.safetensors", "the data of tensors 'color' [0, 48] and 'depth' [40, 72] overlap"},
    {STB_SHORT, "train.safetensors", "tensor 'depth': data_offsets [48, 64] hold 16 bytes, but shape [4, 1, 2, 2] of F16 needs 32"},
    {STB_TRUNCATED, "train.safetensors", "lie outside the data section"},
    {STB_HEADER_LEN, "train.safetensors", "header length 4096 is larger than the rest of the file"},
    {STB_NOT_JSON, "train.safetensors", "header is not valid JSON"},
    {STB_EMPTY, "train.safetensors", "empty file"},
    {STB_NO_EXAMPLES, "train.safetensors", "tensor 'label' holds no examples"},
    {STB_BOTH, "", "both train.safetensors and the directory train/ exist"},
    {STB_NO_DIR, "", "No such file or directory"},
};

static void make_bad_safetensors(const char *dir, int change) {
    if (change == STB_NO_DIR) return;
    make_dirs(dir);
    static const int64_t neg[AN] = {1, 0, -3, 2};
    static const uint32_t big[AN] = {1, 0xffffffffu, 0, 2};
    static const float flab[AN] = {0, 1, 2, 3};
    static const uint8_t none[1] = {0}, wide[AN * 18] = {0};
    st_tensor t[3] = {{"color", "U8", 4, {AN, 3, 2, 2}, a_color, sizeof a_color, 0, 0},
                      {"depth", "F16", 4, {AN, 1, 2, 2}, a_depth16, sizeof a_depth16, 0, 0},
                      {"label", "I64", 1, {AN}, a_label, sizeof a_label, 0, 0}};
    int n = 3;
    size_t cut = 0;
    switch (change) {
    case STB_SHAPE: t[0].shape[3] = 3, t[0].data = wide, t[0].bytes = sizeof wide; break; /* consistent bytes, wrong shape */
    case STB_NDIM: t[1].ndim = 2, t[1].shape[1] = 4; break;
    case STB_DTYPE: t[1].dtype = "I16"; break;
    case STB_NO_INPUT: t[1].name = "dept"; break;
    case STB_NO_LABEL: n = 2; break;
    case STB_NEG_LABEL: t[2].data = neg; break;
    case STB_BIG_LABEL: t[2].dtype = "U32", t[2].data = big, t[2].bytes = sizeof big; break;
    case STB_FLOAT_LABEL: t[2].dtype = "F32", t[2].data = flab, t[2].bytes = sizeof flab; break;
    case STB_LABEL_2D: t[2].ndim = 2, t[2].shape[1] = 1; break;
    case STB_COUNT: t[1].shape[0] = 3, t[1].bytes = 3 * 8; break;
    case STB_OUTSIDE: t[2].b = 80, t[2].e = 1080; break;
    case STB_OVERLAP: t[1].b = 40, t[1].e = 72; break;
    case STB_SHORT: t[1].b = 48, t[1].e = 64; break;
    case STB_TRUNCATED: cut = 10; break; /* the label's last bytes */
    case STB_NO_EXAMPLES:
        for (int k = 0; k < 3; k++) t[k].shape[0] = 0, t[k].bytes = 0, t[k].data = none;
        break;
    case STB_BOTH: make_dirs(tpath("%s/train", dir + strlen(g_root) + 1)); break;
    }
    char path[1400];
    snprintf(path, sizeof path, "%s/train.safetensors", dir);
    if (change == STB_EMPTY) write_bytes(path, "", 0);
    else write_safetensors(path, t, n, cut);
    if (change == STB_HEADER_LEN || change == STB_NOT_JSON) {
        size_t len;
        uint8_t *b = read_bytes(path, &len);
        if (change == STB_HEADER_LEN) b[0] = 0, b[1] = 0x10; /* 4096 */
        else b[8] = '#';
        write_bytes(path, b, len);
        free(b);
    }
}

/* .npy, broken one way at a time */
enum { NPB_SHAPE, NPB_DTYPE, NPB_BIG_ENDIAN, NPB_FORTRAN, NPB_TRUNCATED, NPB_TRAILING, NPB_NO_INPUT, NPB_NO_LABEL, NPB_NEG_LABEL,
       NPB_COUNT, NPB_MAGIC, NPB_HEADER, NPB_KEY };

static const struct {
    int change;
    const char *file;
    const char *msg;
} npy_bad[] = {
    {NPB_SHAPE, "train/color.npy", "tensor 'color' has shape [4, 2, 2, 3], but the model's input 'color' needs [N, 3, 2, 2]"},
    {NPB_DTYPE, "train/depth.npy", "has dtype '<f8'; inputs must be uint8, float16 or float32"},
    {NPB_BIG_ENDIAN, "train/depth.npy", "big-endian data ('>f4')"},
    {NPB_FORTRAN, "train/color.npy", "Fortran order"},
    {NPB_TRUNCATED, "train/depth.npy", "truncated: 31 bytes of data, but shape [4, 1, 2, 2] of '<f2' needs 32"},
    {NPB_TRAILING, "train/label.npy", "trailing data: 33 bytes of data, but shape [4] of '<i8' needs 32"},
    {NPB_NO_INPUT, "train/depth.npy", "no such file (the model's input 'depth')"},
    {NPB_NO_LABEL, "train/label.npy", "no such file (the labels)"},
    {NPB_NEG_LABEL, "train/label.npy", "label -1 at index 3 is negative"},
    {NPB_COUNT, "train/color.npy", "tensor 'color' holds 3 examples, but 'label'"},
    {NPB_MAGIC, "train/color.npy", "not a .npy file"},
    {NPB_HEADER, "train/depth.npy", "malformed .npy header"},
    {NPB_KEY, "train/depth.npy", "unknown key 'dtype'"},
};

static void make_bad_npy(const char *dir, int change) {
    char d[1400], p[1500];
    snprintf(d, sizeof d, "%s/train", dir);
    make_dirs(d);
    static const int64_t sc[4] = {AN, 3, 2, 2}, sc_bad[4] = {AN, 2, 2, 3}, sc3[4] = {3, 3, 2, 2};
    static const int64_t sd[4] = {AN, 1, 2, 2}, sl[1] = {AN};
    static const int64_t neg[AN] = {1, 0, 2, -1};
    snprintf(p, sizeof p, "%s/color.npy", d);
    write_npy(p, "|u1", change == NPB_FORTRAN, 4, change == NPB_SHAPE ? sc_bad : change == NPB_COUNT ? sc3 : sc, a_color,
              change == NPB_COUNT ? 36 : sizeof a_color);
    snprintf(p, sizeof p, "%s/depth.npy", d);
    if (change == NPB_DTYPE) {
        double dd[AN * 4] = {0};
        write_npy(p, "<f8", false, 4, sd, dd, sizeof dd);
    } else if (change == NPB_BIG_ENDIAN) write_npy(p, ">f4", false, 4, sd, a_depth32, sizeof a_depth32);
    else if (change == NPB_TRUNCATED) write_npy(p, "<f2", false, 4, sd, a_depth16, sizeof a_depth16 - 1);
    else if (change == NPB_HEADER) write_npy(p, "<f2', 'shape': (((", false, 4, sd, a_depth16, sizeof a_depth16);
    else if (change != NPB_NO_INPUT) write_npy(p, "<f2", false, 4, sd, a_depth16, sizeof a_depth16);
    if (change == NPB_KEY) {
        size_t n;
        uint8_t *b = read_bytes(p, &n);
        memcpy(strstr((char *)b + 10, "'descr'"), "'dtype'", 7);
        write_bytes(p, b, n);
        free(b);
    }
    snprintf(p, sizeof p, "%s/label.npy", d);
    if (change == NPB_TRAILING) {
        int64_t l[5] = {0, 1, 2, 3, 0};
        write_npy(p, "<i8", false, 1, sl, l, 33);
    } else if (change != NPB_NO_LABEL)
        write_npy(p, "<i8", false, 1, sl, change == NPB_NEG_LABEL ? neg : a_label, sizeof a_label);
    if (change == NPB_MAGIC) {
        snprintf(p, sizeof p, "%s/color.npy", d);
        static const char zip[] = "PK\x03\x04 a zip, not an array";
        write_bytes(p, zip, sizeof zip - 1);
    }
}

static void test_arrays_errors(void) {
    char err[1024] = "";
    bool missing;
    for (size_t t = 0; t < sizeof st_bad / sizeof st_bad[0]; t++) {
        char dir[1400];
        snprintf(dir, sizeof dir, "%s", tpath("stbad%zu", t));
        make_bad_safetensors(dir, st_bad[t].change);
        strcpy(err, "(none)");
        missing = true;
        rt_source *s = rt_arrays_open(dir, "train", a_inputs, 2, &missing, err, sizeof err);
        CHECK(!s && !missing, "bad safetensors case %zu %s", t, s ? "opened" : "missing");
        if (s) rt_source_close(s);
        char file[1500];
        snprintf(file, sizeof file, "%s%s%s", dir, st_bad[t].file[0] ? "/" : "", st_bad[t].file);
        CHECK_ERR(err, file, st_bad[t].msg);
    }
    for (size_t t = 0; t < sizeof npy_bad / sizeof npy_bad[0]; t++) {
        char dir[1400];
        snprintf(dir, sizeof dir, "%s", tpath("npybad%zu", t));
        make_bad_npy(dir, npy_bad[t].change);
        strcpy(err, "(none)");
        missing = true;
        rt_source *s = rt_arrays_open(dir, "train", a_inputs, 2, &missing, err, sizeof err);
        CHECK(!s && !missing, "bad npy case %zu %s", t, s ? "opened" : "missing");
        if (s) rt_source_close(s);
        char file[1500];
        snprintf(file, sizeof file, "%s/%s", dir, npy_bad[t].file);
        CHECK_ERR(err, file, npy_bad[t].msg);
    }
    /* Model inputs arrays cannot feed. */
    static const rt_source_input bad_in[1] = {{"label", 3, {1, 2, 2}}};
    CHECK(!rt_arrays_open(tpath("arr"), "train", bad_in, 1, &missing, err, sizeof err));
    CHECK_ERR(err, "arr", "internal");
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !tmp[0]) tmp = "/tmp";
    snprintf(g_root, sizeof g_root, "%s/mmrt_test_sources.XXXXXX", tmp);
    if (!mkdtemp(g_root)) {
        perror(g_root);
        return 1;
    }
    atexit(cleanup);
    test_image_kinds();
    test_image_damage();
    test_resize();
    test_multiview();
    test_multiview_errors();
    test_arrays();
    test_arrays_errors();
    return check_summary("test_sources");
}
