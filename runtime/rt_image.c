/* rt_image.c — PNG (libspng) and JPEG (TurboJPEG) files decoded into a
 * model input's [C][H][W] floats (rt_image.h).
 *
 * A non-interlaced PNG is decoded row by row (libspng's progressive mode)
 * through one row of bytes, each row converted into the output planes as
 * it arrives: the decoded image never exists as a whole. Interlaced PNGs
 * and JPEGs (TurboJPEG decodes whole images) go through one decoded image;
 * an image to resize goes through float planes at its own size. Nothing is
 * shared between calls, so any number of threads may decode at once. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spng.h>
#include <turbojpeg.h>

#include "mmrt.h"
#include "rt_image.h"

/* Larger images are corruption, not training data; the limits also keep
 * a forged header from making us allocate gigabytes. */
#define IMG_MAX_SIDE 16384
#define IMG_MAX_BYTES ((size_t)1 << 28) /* a file, a decoded image */

/* Not zeroed (rt_alloc is): every byte is written before it is read, and
 * clearing a whole image per read would be a needless pass over it. */
#define img_alloc(n) img_alloc_at((n), __LINE__)
static void *img_alloc_at(size_t n, int line) {
    void *p = malloc(n ? n : 1);
    if (!p) rt_die("out of memory allocating %zu bytes (%s:%d)", n, __FILE__, line);
    return p;
}

/* ---- rows of decoded pixels into float planes ------------------------------ */
/* The layouts a decoder hands over: 8-bit gray, 8-bit RGB, 16-bit RGBA in
 * host order. */
enum { PIX_G8, PIX_RGB8, PIX_RGBA16 };
static const size_t pix_bytes[] = {1, 3, 8};

/* Where rows go: channel k of row y at base + k * plane + y * w. */
typedef struct {
    float *base;
    size_t plane;
    int c, w;
    bool gray;      /* the source is gray: RGB rows hold R = G = B, taken as is */
    float lut[256]; /* v / 255, exactly as a division gives it */
} sink;

static void sink_init(sink *s, float *base, int c, int h, int w, bool gray) {
    s->base = base;
    s->plane = (size_t)h * (size_t)w;
    s->c = c;
    s->w = w;
    s->gray = gray;
    for (int v = 0; v < 256; v++) s->lut[v] = (float)v / 255.0f;
}

/* BT.601 luma. Integer weights summing to 1000 keep gray pixels (R = G = B
 * = v) exactly at v / 255: 1000 v / 255000 rounds to the same float. */
static float luma8(unsigned r, unsigned g, unsigned b) { return (float)(299 * r + 587 * g + 114 * b) / 255000.0f; }
static float luma16(unsigned r, unsigned g, unsigned b) {
    return (float)((double)(299 * r + 587 * g + 114 * b) / 65535000.0);
}

static void put_row(const sink *s, int y, const uint8_t *row, int pix) {
    const float *lut = s->lut;
    float *d0 = s->base + (size_t)y * (size_t)s->w, *d1 = d0 + s->plane, *d2 = d1 + s->plane;
    int w = s->w;
    switch (pix) {
    case PIX_G8:
        if (s->c == 1)
            for (int x = 0; x < w; x++) d0[x] = lut[row[x]];
        else
            for (int x = 0; x < w; x++) d0[x] = d1[x] = d2[x] = lut[row[x]];
        break;
    case PIX_RGB8:
        if (s->c == 3)
            for (int x = 0; x < w; x++) {
                d0[x] = lut[row[3 * x]];
                d1[x] = lut[row[3 * x + 1]];
                d2[x] = lut[row[3 * x + 2]];
            }
        else if (s->gray)
            for (int x = 0; x < w; x++) d0[x] = lut[row[3 * x]];
        else
            for (int x = 0; x < w; x++) d0[x] = luma8(row[3 * x], row[3 * x + 1], row[3 * x + 2]);
        break;
    case PIX_RGBA16: {
        const uint16_t *p = (const uint16_t *)(const void *)row; /* our own malloc'd rows: aligned */
        if (s->c == 3)
            for (int x = 0; x < w; x++) {
                d0[x] = (float)p[4 * x] / 65535.0f;
                d1[x] = (float)p[4 * x + 1] / 65535.0f;
                d2[x] = (float)p[4 * x + 2] / 65535.0f;
            }
        else if (s->gray)
            for (int x = 0; x < w; x++) d0[x] = (float)p[4 * x] / 65535.0f;
        else
            for (int x = 0; x < w; x++) d0[x] = luma16(p[4 * x], p[4 * x + 1], p[4 * x + 2]);
        break;
    }
    }
}

/* ---- resizing ------------------------------------------------------------------ */
typedef struct {
    int i0, i1;
    float l0, l1;
} lin_tap;

/* PyTorch's compute_source_index_and_lambda (aten/src/ATen/native/UpSample.h)
 * for align_corners=False without a scale factor, in float as it is for
 * float tensors. */
static void lin_taps(int in, int out, lin_tap *t) {
    float scale = (float)in / (float)out;
    for (int o = 0; o < out; o++) {
        if (in == out) {
            t[o] = (lin_tap){o, o, 1.0f, 0.0f};
            continue;
        }
        float src = scale * ((float)o + 0.5f) - 0.5f;
        if (src < 0) src = 0;
        int i = (int)floorf(src);
        if (i > in - 1) i = in - 1;
        float l1 = src - (float)i;
        l1 = l1 < 0 ? 0 : l1 > 1 ? 1 : l1;
        t[o] = (lin_tap){i, i + (i < in - 1 ? 1 : 0), 1.0f - l1, l1};
    }
}

void rt_resize_bilinear(const float *src, int sh, int sw, float *dst, int dh, int dw) {
    lin_tap *tx = img_alloc(sizeof(lin_tap) * (size_t)dw), *ty = img_alloc(sizeof(lin_tap) * (size_t)dh);
    lin_taps(sw, dw, tx);
    lin_taps(sh, dh, ty);
    for (int y = 0; y < dh; y++) {
        const float *r0 = src + (size_t)ty[y].i0 * (size_t)sw, *r1 = src + (size_t)ty[y].i1 * (size_t)sw;
        float a = ty[y].l0, b = ty[y].l1;
        float *d = dst + (size_t)y * (size_t)dw;
        for (int x = 0; x < dw; x++) {
            const lin_tap *t = &tx[x];
            float t0 = r0[t->i0] * t->l0 + r0[t->i1] * t->l1;
            float t1 = r1[t->i0] * t->l0 + r1[t->i1] * t->l1;
            d[x] = t0 * a + t1 * b;
        }
    }
    free(tx);
    free(ty);
}

/* ---- decoders --------------------------------------------------------------------- */
/* Whether an image of sw x sh can feed an h x w input; the message names
 * both sizes. Also bounds the decoded size. */
static int check_size(const char *path, long sw, long sh, size_t pixbytes, int h, int w, bool resize, char *err, size_t errlen) {
    if (sw < 1 || sh < 1 || sw > IMG_MAX_SIDE || sh > IMG_MAX_SIDE || (size_t)sw * (size_t)sh * pixbytes > IMG_MAX_BYTES) {
        rt_set_err(err, errlen, "%s: the image is %ldx%ld (width x height): too large for a training image", path, sw, sh);
        return -1;
    }
    if ((sw != w || sh != h) && !resize) {
        rt_set_err(err, errlen, "%s: the image is %ldx%ld (width x height) but the input is %dx%d, and resizing is off", path,
                sw, sh, w, h);
        return -1;
    }
    return 0;
}

static int png_decode(const char *path, const uint8_t *buf, size_t len, int c, int h, int w, bool resize, float *dst,
                      char *err, size_t errlen) {
    /* The zlib stream's Adler-32 costs about a tenth of the decoding time
     * and guards nothing the chunks' CRC-32s do not: every compressed byte
     * is covered by its IDAT chunk's CRC. libspng checks a chunk's CRC
     * once it has read the chunk to its end, so the rows are followed by
     * reading the chunks up to IEND, or damage in the last IDAT would go
     * unnoticed. */
    spng_ctx *ctx = spng_ctx_new(SPNG_CTX_IGNORE_ADLER32);
    if (!ctx) rt_die("out of memory creating a PNG decoder (%s:%d)", __FILE__, __LINE__);
    static const int spng_fmt[] = {SPNG_FMT_G8, SPNG_FMT_RGB8, SPNG_FMT_RGBA16};
    uint8_t *img = NULL;
    float *tmp = NULL;
    int rc = -1, r;
    struct spng_ihdr ih;
    spng_set_image_limits(ctx, IMG_MAX_SIDE, IMG_MAX_SIDE);
    spng_set_chunk_limits(ctx, IMG_MAX_BYTES, IMG_MAX_BYTES);
    if ((r = spng_set_png_buffer(ctx, buf, len)) != 0 || (r = spng_get_ihdr(ctx, &ih)) != 0) goto bad;

    /* libspng gives 8-bit gray only for color type 0; gray+alpha comes as
     * RGB with R = G = B, and 16-bit anything as RGBA16. */
    int pix = ih.bit_depth == 16 ? PIX_RGBA16 : ih.color_type == SPNG_COLOR_TYPE_GRAYSCALE ? PIX_G8 : PIX_RGB8;
    bool gray = ih.color_type == SPNG_COLOR_TYPE_GRAYSCALE || ih.color_type == SPNG_COLOR_TYPE_GRAYSCALE_ALPHA;
    int sw = (int)ih.width, sh = (int)ih.height; /* <= IMG_MAX_SIDE: spng_set_image_limits */
    if (check_size(path, sw, sh, pix_bytes[pix], h, w, resize, err, errlen) != 0) goto out;
    bool resizing = sw != w || sh != h;
    if (resizing) tmp = img_alloc(sizeof(float) * (size_t)c * (size_t)sw * (size_t)sh);
    sink s;
    sink_init(&s, resizing ? tmp : dst, c, sh, sw, gray);
    size_t rowbytes = (size_t)sw * pix_bytes[pix];

    if (ih.interlace_method == SPNG_INTERLACE_NONE) {
        img = img_alloc(rowbytes);
        if ((r = spng_decode_image(ctx, NULL, 0, spng_fmt[pix], SPNG_DECODE_PROGRESSIVE)) != 0) goto bad;
        for (int y = 0; y < sh; y++) {
            r = spng_decode_row(ctx, img, rowbytes);
            if (r != 0 && !(r == SPNG_EOI && y == sh - 1)) goto bad;
            put_row(&s, y, img, pix);
        }
    } else {
        /* Adam7 passes fill every row several times: decode it whole. */
        img = img_alloc(rowbytes * (size_t)sh);
        if ((r = spng_decode_image(ctx, img, rowbytes * (size_t)sh, spng_fmt[pix], 0)) != 0) goto bad;
        for (int y = 0; y < sh; y++) put_row(&s, y, img + (size_t)y * rowbytes, pix);
    }
    if ((r = spng_decode_chunks(ctx)) != 0) goto bad; /* to IEND: the last CRCs */
    if (resizing)
        for (int k = 0; k < c; k++)
            rt_resize_bilinear(tmp + (size_t)k * s.plane, sh, sw, dst + (size_t)k * (size_t)h * (size_t)w, h, w);
    rc = 0;
    goto out;
bad:
    rt_set_err(err, errlen, "%s: corrupt or unsupported PNG: %s", path, spng_strerror(r));
out:
    free(img);
    free(tmp);
    spng_ctx_free(ctx);
    return rc;
}

static int jpeg_decode(const char *path, const uint8_t *buf, size_t len, int c, int h, int w, bool resize, float *dst,
                       char *err, size_t errlen) {
    if (len > ULONG_MAX) {
        rt_set_err(err, errlen, "%s: too large for a JPEG file", path);
        return -1;
    }
    tjhandle tj = tjInitDecompress();
    if (!tj) rt_die("cannot create a JPEG decoder: %s (%s:%d)", tjGetErrorStr2(NULL), __FILE__, __LINE__);
    uint8_t *img = NULL;
    float *tmp = NULL;
    int rc = -1, sw, sh, subsamp, cs;
    if (tjDecompressHeader3(tj, buf, (unsigned long)len, &sw, &sh, &subsamp, &cs) != 0) goto bad;
    if (cs == TJCS_CMYK || cs == TJCS_YCCK) {
        rt_set_err(err, errlen, "%s: a CMYK JPEG; only gray and colour (RGB, YCbCr) JPEGs are read", path);
        goto out;
    }
    int pix = cs == TJCS_GRAY ? PIX_G8 : PIX_RGB8;
    if (check_size(path, sw, sh, pix_bytes[pix], h, w, resize, err, errlen) != 0) goto out;
    bool resizing = sw != w || sh != h;
    size_t rowbytes = (size_t)sw * pix_bytes[pix];
    img = img_alloc(rowbytes * (size_t)sh);
    /* A warning (premature end of data, a corrupt segment) is an error: the
     * decoder would fill what it could not read with gray, and train on
     * that. LIMITSCANS bounds the work a malicious progressive JPEG costs. */
    if (tjDecompress2(tj, buf, (unsigned long)len, img, sw, 0, sh, pix == PIX_G8 ? TJPF_GRAY : TJPF_RGB,
                      TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS) != 0)
        goto bad;
    if (resizing) tmp = img_alloc(sizeof(float) * (size_t)c * (size_t)sw * (size_t)sh);
    sink s;
    sink_init(&s, resizing ? tmp : dst, c, sh, sw, cs == TJCS_GRAY);
    for (int y = 0; y < sh; y++) put_row(&s, y, img + (size_t)y * rowbytes, pix);
    if (resizing)
        for (int k = 0; k < c; k++)
            rt_resize_bilinear(tmp + (size_t)k * s.plane, sh, sw, dst + (size_t)k * (size_t)h * (size_t)w, h, w);
    rc = 0;
    goto out;
bad:
    rt_set_err(err, errlen, "%s: corrupt or unsupported JPEG: %s", path, tjGetErrorStr2(tj));
out:
    free(img);
    free(tmp);
    tjDestroy(tj);
    return rc;
}

int rt_image_decode(const char *path, const uint8_t *buf, size_t len, int c, int h, int w, bool resize, float *dst,
                    char *err, size_t errlen) {
    if ((c != 1 && c != 3) || h < 1 || w < 1 || h > IMG_MAX_SIDE || w > IMG_MAX_SIDE) {
        rt_set_err(err, errlen, "%s: internal: images decode into 1 or 3 channels of at most %dx%d, not [%d, %d, %d]", path,
                IMG_MAX_SIDE, IMG_MAX_SIDE, c, h, w);
        return -1;
    }
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (len >= 8 && memcmp(buf, png_sig, 8) == 0) return png_decode(path, buf, len, c, h, w, resize, dst, err, errlen);
    if (len >= 3 && buf[0] == 0xff && buf[1] == 0xd8 && buf[2] == 0xff)
        return jpeg_decode(path, buf, len, c, h, w, resize, dst, err, errlen);
    if (len == 0) rt_set_err(err, errlen, "%s: empty file (not a PNG or JPEG image)", path);
    else rt_set_err(err, errlen, "%s: not a PNG or JPEG image (unknown signature)", path);
    return -1;
}

int rt_image_load(const char *path, int c, int h, int w, bool resize, float *dst, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rt_set_err(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    int bad = fstat(fd, &st) != 0 ? errno : S_ISDIR(st.st_mode) ? EISDIR : 0;
    if (bad) {
        rt_set_err(err, errlen, "%s: %s", path, strerror(bad));
        close(fd);
        return -1;
    }
    if ((uint64_t)st.st_size > IMG_MAX_BYTES) {
        rt_set_err(err, errlen, "%s: %lld bytes: too large for an image file", path, (long long)st.st_size);
        close(fd);
        return -1;
    }
    size_t size = (size_t)st.st_size, got = 0;
    uint8_t *buf = img_alloc(size);
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            rt_set_err(err, errlen, "%s: read error: %s", path, strerror(errno));
            close(fd);
            free(buf);
            return -1;
        }
        if (r == 0) break; /* shrank since fstat: decode what is there, which will tell */
        got += (size_t)r;
    }
    close(fd);
    int rc = rt_image_decode(path, buf, got, c, h, w, resize, dst, err, errlen);
    free(buf);
    return rc;
}
