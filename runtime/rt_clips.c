/* rt_clips.c — the NVGesture clips source (rt_source.h): a
 * nvgesture_*_correct_cvpr2016_v2.lst list of clips, each a frame range of
 * one AVI per sensor, decoded by FFmpeg (libavformat, libavcodec,
 * libswscale) when an example is read.
 *
 * The list's format and the meaning of its numbers are NVIDIA's, as their
 * loader for the data set (readdata.py: load_split_nvgesture and
 * load_data_from_file) reads them: one clip per line,
 *
 *     path:./Video_data/class_01/subject13_r0 depth:sk_depth:138:218 color:sk_color:138:218 duo_left:duo_left:161:254 label:1
 *
 * a sensor's field is SENSOR:FILE:START:END naming PATH/FILE.avi, END
 * exclusive (the loader seeks to START and reads range(START, END) into an
 * 80-frame buffer), and labels count from 1. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>

#include "rt_source.h"

/* The most fields a line may hold: path, label and the sensors (NVIDIA's
 * lists name three: depth, color, duo_left). */
#define CLIP_MAX_FIELDS 16

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = rt_alloc(n);
    memcpy(d, s, n);
    return d;
}

/* ---- FFmpeg's messages -------------------------------------------------------- */
/* FFmpeg reports what it could not decode through av_log, not through its
 * return codes ("Invalid data found" says little). Its messages go to a
 * per-thread buffer instead of stderr (several threads decode at once), and
 * the last error there is added to ours. */
static _Thread_local char av_last[256];

static void av_log_to_buffer(void *avcl, int level, const char *fmt, va_list ap) {
    (void)avcl;
    if (level > AV_LOG_ERROR) return;
    size_t n = strlen(av_last);
    /* A message may come in pieces; one that ended with a newline is done. */
    if (n > 0 && av_last[n - 1] == '\n') n = 0;
    vsnprintf(av_last + n, sizeof av_last - n, fmt, ap);
}

static pthread_once_t av_once = PTHREAD_ONCE_INIT;
static void av_setup(void) {
    av_log_set_callback(av_log_to_buffer);
}

/* " (ffmpeg: MESSAGE)" for the last error FFmpeg logged on this thread, or "". */
static const char *av_detail(char *buf, size_t n) {
    size_t len = strlen(av_last);
    while (len > 0 && (av_last[len - 1] == '\n' || av_last[len - 1] == ' ')) len--;
    if (len == 0) return "";
    snprintf(buf, n, " (ffmpeg: %.*s)", (int)len, av_last);
    return buf;
}

static const char *av_err(int code, char *buf, size_t n) {
    if (av_strerror(code, buf, n) < 0) snprintf(buf, n, "error %d", code);
    return buf;
}

/* ---- the list ------------------------------------------------------------------- */
typedef struct {
    char *path;     /* ROOT/PATH/FILE.avi */
    int start, end; /* frames [start, end) */
} clip_video;

typedef struct {
    int line;          /* in the list, for messages */
    int32_t label;     /* from 0 */
    clip_video *video; /* [ninputs] */
} clip;

typedef struct {
    int c, t, h, w;
} clip_shape;

typedef struct {
    char *list;
    int nclips;
    clip *clips;
    int ninputs;
    clip_shape *shape; /* [ninputs] */
} clips_impl;

typedef struct {
    const char *key;   /* up to the first ':' */
    const char *value; /* after it */
    int keylen;
} field;

/* A frame number or label: decimal digits only, at most INT_MAX. */
static bool parse_int(const char *s, size_t n, int *out) {
    if (n == 0 || n > 10) return false;
    long long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v > INT_MAX) return false;
    *out = (int)v;
    return true;
}

/* SENSOR:FILE:START:END, END exclusive. 0, or -1 with the problem in msg. */
static int parse_sensor(const field *f, const char **file, int *filelen, int *start, int *end, char *msg, size_t msglen) {
    const char *v = f->value, *c1 = strchr(v, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c1 || !c2 || strchr(c2 + 1, ':')) {
        rt_set_err(msg, msglen, "field '%s' is not SENSOR:FILE:START:END", f->key);
        return -1;
    }
    if (c1 == v) {
        rt_set_err(msg, msglen, "field '%s' names no file", f->key);
        return -1;
    }
    if (!parse_int(c1 + 1, (size_t)(c2 - c1 - 1), start) || !parse_int(c2 + 1, strlen(c2 + 1), end)) {
        rt_set_err(msg, msglen, "field '%s': the start and end frames must be whole numbers >= 0", f->key);
        return -1;
    }
    if (*start >= *end) {
        rt_set_err(msg, msglen, "field '%s': the frame range %d:%d is empty (START must be less than END, which is exclusive)",
                f->key, *start, *end);
        return -1;
    }
    *file = v;
    *filelen = (int)(c1 - v);
    return 0;
}

static const field *find_field(const field *f, int n, const char *key) {
    for (int i = 0; i < n; i++)
        if ((size_t)f[i].keylen == strlen(key) && memcmp(f[i].key, key, (size_t)f[i].keylen) == 0) return &f[i];
    return NULL;
}

/* One line of the list (NUL-terminated, trailing white space removed) into
 * c. 0, or -1 with the problem (without the list's name) in msg. */
static int parse_line(char *line, const char *root, const char *const *modalities, int nmod, clip *c, char *msg,
                      size_t msglen) {
    field f[CLIP_MAX_FIELDS];
    int nf = 0;
    for (char *save = NULL, *tok = strtok_r(line, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        char *colon = strchr(tok, ':');
        if (!colon) {
            rt_set_err(msg, msglen, "'%s' is not KEY:VALUE", tok);
            return -1;
        }
        *colon = '\0';
        if (colon == tok) {
            rt_set_err(msg, msglen, "':%s' has no key", colon + 1);
            return -1;
        }
        if (find_field(f, nf, tok)) {
            rt_set_err(msg, msglen, "field '%s' appears twice", tok);
            return -1;
        }
        if (nf == CLIP_MAX_FIELDS) {
            rt_set_err(msg, msglen, "more than %d fields", CLIP_MAX_FIELDS);
            return -1;
        }
        f[nf++] = (field){tok, colon + 1, (int)(colon - tok)};
    }

    const field *path = find_field(f, nf, "path"), *label = find_field(f, nf, "label");
    if (!path || !path->value[0]) {
        rt_set_err(msg, msglen, "no path:DIRECTORY field");
        return -1;
    }
    if (!label) {
        rt_set_err(msg, msglen, "no label:N field");
        return -1;
    }
    int lab;
    if (!parse_int(label->value, strlen(label->value), &lab) || lab < 1) {
        rt_set_err(msg, msglen, "label '%s' is not a whole number >= 1 (labels count from 1)", label->value);
        return -1;
    }
    c->label = lab - 1;

    /* Every sensor's field must parse, read or not, as the loader's would. */
    for (int i = 0; i < nf; i++) {
        if (&f[i] == path || &f[i] == label) continue;
        const char *file;
        int filelen, s, e;
        if (parse_sensor(&f[i], &file, &filelen, &s, &e, msg, msglen) != 0) return -1;
    }

    c->video = rt_alloc(sizeof(clip_video) * (size_t)nmod);
    for (int k = 0; k < nmod; k++) {
        const field *m = find_field(f, nf, modalities[k]);
        if (!m) {
            rt_set_err(msg, msglen, "no %s:FILE:START:END field (model input %d reads the %s video)", modalities[k], k, modalities[k]);
            return -1;
        }
        const char *file;
        int filelen;
        clip_video *v = &c->video[k];
        parse_sensor(m, &file, &filelen, &v->start, &v->end, msg, msglen);
        const char *p = path->value;
        if (p[0] == '.' && p[1] == '/') p += 2;
        size_t n = strlen(root) + strlen(p) + (size_t)filelen + 8;
        v->path = rt_alloc(n);
        if (p[0] == '/') snprintf(v->path, n, "%s/%.*s.avi", p, filelen, file);
        else snprintf(v->path, n, "%s/%s/%.*s.avi", root, p, filelen, file);
    }
    return 0;
}

/* The whole file, NUL-terminated; NULL with err set. */
static char *read_text(const char *path, char *err, size_t errlen) {
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        rt_set_err(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = rt_alloc(cap);
    for (;;) {
        if (n + 1 >= cap) {
            char *nb = rt_alloc(2 * cap);
            memcpy(nb, buf, n);
            free(buf);
            buf = nb, cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, fp);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(fp) ? errno : 0;
    fclose(fp);
    if (bad) {
        rt_set_err(err, errlen, "%s: read error: %s", path, strerror(bad));
        free(buf);
        return NULL;
    }
    if (memchr(buf, '\0', n)) {
        rt_set_err(err, errlen, "%s: not a text file (it holds NUL bytes)", path);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

/* ---- decoding ------------------------------------------------------------------- */
/* One open video: each read opens its own, so threads share nothing. */
typedef struct {
    const char *path;
    AVFormatContext *fmt;
    AVCodecContext *dec;
    AVPacket *pkt;
    AVFrame *frame;
    int stream;
    bool flushed;    /* the end of the file was reached and the decoder told */
    AVRational rate; /* frames per second; 0/1 when unknown */
    bool timed;      /* frames are told by their timestamps, else counted */
    int64_t t0;      /* the first frame's timestamp */
    /* Frames in other formats than planar YUV, converted to packed RGB24
     * or GRAY8 at their own size (convert_sws). */
    struct SwsContext *sws;
    int sws_w, sws_h, sws_fmt, sws_range, sws_space;
    uint8_t *pix;
    int pix_stride;
} video;

static void video_close(video *v) {
    if (v->dec) avcodec_free_context(&v->dec);
    if (v->fmt) avformat_close_input(&v->fmt);
    av_packet_free(&v->pkt);
    av_frame_free(&v->frame);
    sws_freeContext(v->sws);
    free(v->pix);
    memset(v, 0, sizeof *v);
}

static int video_open(video *v, const char *path, char *err, size_t errlen) {
    char e[128], d[300];
    memset(v, 0, sizeof *v);
    v->path = path;
    /* Named as a file, so that a ':' in the path is not read as a
     * protocol, and only files: a crafted file must not open the network. */
    size_t n = strlen(path) + 6;
    char *url = rt_alloc(n);
    snprintf(url, n, "file:%s", path);
    AVDictionary *opt = NULL;
    av_dict_set(&opt, "protocol_whitelist", "file", 0);
    int r = avformat_open_input(&v->fmt, url, NULL, &opt);
    av_dict_free(&opt);
    free(url);
    if (r < 0) {
        rt_set_err(err, errlen, "%s: cannot open the video: %s%s", path, av_err(r, e, sizeof e), av_detail(d, sizeof d));
        return -1;
    }
    if ((r = avformat_find_stream_info(v->fmt, NULL)) < 0) {
        rt_set_err(err, errlen, "%s: cannot read the video's streams: %s%s", path, av_err(r, e, sizeof e), av_detail(d, sizeof d));
        return -1;
    }
    const AVCodec *codec = NULL;
    v->stream = av_find_best_stream(v->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (v->stream < 0) {
        rt_set_err(err, errlen, "%s: %s", path,
                v->stream == AVERROR_DECODER_NOT_FOUND ? "FFmpeg has no decoder for its video stream" : "no video stream (not a video?)");
        return -1;
    }
    AVStream *st = v->fmt->streams[v->stream];
    v->dec = avcodec_alloc_context3(codec);
    if (!v->dec) rt_die("out of memory opening %s", path);
    if ((r = avcodec_parameters_to_context(v->dec, st->codecpar)) < 0) {
        rt_set_err(err, errlen, "%s: %s", path, av_err(r, e, sizeof e));
        return -1;
    }
    /* Examples are decoded on several threads already; a decoder's own
     * threads would only compete with them. */
    v->dec->thread_count = 1;
    if ((r = avcodec_open2(v->dec, codec, NULL)) < 0) {
        rt_set_err(err, errlen, "%s: cannot open the %s decoder: %s%s", path, codec->name, av_err(r, e, sizeof e),
                av_detail(d, sizeof d));
        return -1;
    }
    v->pkt = av_packet_alloc();
    v->frame = av_frame_alloc();
    if (!v->pkt || !v->frame) rt_die("out of memory opening %s", path);
    v->rate = st->avg_frame_rate.num > 0 && st->avg_frame_rate.den > 0 ? st->avg_frame_rate : st->r_frame_rate;
    if (v->rate.num <= 0 || v->rate.den <= 0) v->rate = (AVRational){0, 1};
    v->sws_fmt = -1;
    return 0;
}

/* The next frame into v->frame: 1, or 0 at the end of the video, or -1
 * with err set. */
static int video_next(video *v, char *err, size_t errlen) {
    char e[128], d[300];
    for (;;) {
        int r = avcodec_receive_frame(v->dec, v->frame);
        if (r == 0) return 1;
        if (r == AVERROR_EOF) return 0;
        if (r != AVERROR(EAGAIN)) {
            rt_set_err(err, errlen, "%s: cannot decode a frame: %s%s", v->path, av_err(r, e, sizeof e), av_detail(d, sizeof d));
            return -1;
        }
        r = av_read_frame(v->fmt, v->pkt);
        if (r == AVERROR_EOF) {
            if (v->flushed) return 0;
            v->flushed = true;
            avcodec_send_packet(v->dec, NULL); /* returns the frames it holds back */
            continue;
        }
        if (r < 0) {
            rt_set_err(err, errlen, "%s: read error: %s%s", v->path, av_err(r, e, sizeof e), av_detail(d, sizeof d));
            return -1;
        }
        if (v->pkt->stream_index != v->stream) {
            av_packet_unref(v->pkt);
            continue;
        }
        r = avcodec_send_packet(v->dec, v->pkt);
        av_packet_unref(v->pkt);
        if (r < 0) {
            rt_set_err(err, errlen, "%s: cannot decode a frame: %s%s", v->path, av_err(r, e, sizeof e), av_detail(d, sizeof d));
            return -1;
        }
    }
}

/* Opens the video and decodes its first frame into v->frame. That is
 * frame 0, as OpenCV's FFmpeg reader (which NVIDIA's loader used) counts:
 * the others are numbered by their timestamps from its timestamp, which
 * need not be the stream's start time (a decoder that reorders frames
 * shifts them all). 0, or -1 with err set. */
static int video_start(video *v, const char *path, char *err, size_t errlen) {
    if (video_open(v, path, err, errlen) != 0) return -1;
    int r = video_next(v, err, errlen);
    if (r < 0) return -1;
    if (r == 0) {
        char d[300];
        rt_set_err(err, errlen, "%s: the video has no frames%s", path, av_detail(d, sizeof d));
        return -1;
    }
    v->t0 = v->frame->best_effort_timestamp;
    v->timed = v->t0 != AV_NOPTS_VALUE && v->rate.num != 0;
    return 0;
}

/* The frame number of v->frame from its timestamp into *n; false without one. */
static bool frame_number(const video *v, int64_t *n) {
    int64_t ts = v->frame->best_effort_timestamp;
    if (ts == AV_NOPTS_VALUE || !v->timed) return false;
    const AVStream *st = v->fmt->streams[v->stream];
    *n = av_rescale_q_rnd(ts - v->t0, st->time_base, av_inv_q(v->rate), AV_ROUND_NEAR_INF | AV_ROUND_PASS_MINMAX);
    return true;
}

/* Go to the key frame at or before frame n. 0, or -1 if the container
 * cannot seek (the caller then decodes from the start). */
static int video_seek(video *v, int n) {
    const AVStream *st = v->fmt->streams[v->stream];
    if (!v->timed) return -1;
    int64_t ts = v->t0 + av_rescale_q(n, av_inv_q(v->rate), st->time_base);
    if (av_seek_frame(v->fmt, v->stream, ts, AVSEEK_FLAG_BACKWARD) < 0) return -1;
    avcodec_flush_buffers(v->dec);
    v->flushed = false;
    return 0;
}

/* ---- frames to the input's planes --------------------------------------------------- */
/* Bilinear resampling as OpenCV's cv2.resize (INTER_LINEAR) does it, which
 * NVIDIA's loader calls: output pixel x samples the source at
 * (x + 0.5) * src / dst - 0.5, clamped to the edge pixels, without
 * averaging over the footprint when shrinking. Separable: each source row
 * a slot needs is interpolated along x once, then pairs of rows along y. */
typedef struct {
    int i0, i1; /* source pixels */
    float w;    /* weight of i1 */
} lerp;

typedef struct {
    int src_w, src_h; /* the source plane the tables are for; 0 before the first */
    lerp *tx, *ty;    /* [w], [h] */
} lerp2d;

typedef struct {
    int h, w;                 /* the input's */
    lerp2d full, sub;         /* luma (and RGB) planes; subsampled chroma planes */
    float *row[2];            /* [w] rows interpolated along x */
    float *cb, *cr;           /* [h * w] resized chroma */
} resizer;

static void lerp_table(lerp *t, int dst, int src) {
    double scale = (double)src / dst;
    for (int x = 0; x < dst; x++) {
        double s = (x + 0.5) * scale - 0.5;
        int i = (int)floor(s);
        double w = s - i;
        if (i < 0) i = 0, w = 0;
        if (i >= src - 1) i = src - 1, w = 0;
        t[x] = (lerp){i, i + (w > 0), (float)w};
    }
}

static const lerp2d *lerp_for(lerp2d *t, int src_w, int src_h, int w, int h) {
    if (t->src_w != src_w || t->src_h != src_h) {
        if (!t->tx) t->tx = rt_alloc(sizeof(lerp) * (size_t)w), t->ty = rt_alloc(sizeof(lerp) * (size_t)h);
        lerp_table(t->tx, w, src_w);
        lerp_table(t->ty, h, src_h);
        t->src_w = src_w, t->src_h = src_h;
    }
    return t;
}

static void resizer_free(resizer *r) {
    free(r->full.tx), free(r->full.ty), free(r->sub.tx), free(r->sub.ty);
    free(r->row[0]), free(r->row[1]), free(r->cb), free(r->cr);
}

/* One 8-bit plane (`step` bytes from pixel to pixel, `stride` from row to
 * row) resized to out[h][w] = value * scale + offset. */
static void resize_plane(resizer *r, float *out, const uint8_t *src, int stride, int step, const lerp2d *t, float scale,
                         float offset) {
    int w = r->w, have[2] = {-1, -1};
    for (int y = 0; y < r->h; y++) {
        const float *rows[2];
        for (int k = 0; k < 2; k++) {
            int i = k ? t->ty[y].i1 : t->ty[y].i0;
            int slot = have[0] == i ? 0 : have[1] == i ? 1 : -1;
            if (slot < 0) {
                /* Replace the row the other half of this pair does not use. */
                slot = k == 1 && have[0] == t->ty[y].i0 ? 1 : 0;
                const uint8_t *p = src + (ptrdiff_t)i * stride;
                float *o = r->row[slot];
                for (int x = 0; x < w; x++) {
                    float a = p[t->tx[x].i0 * step], b = p[t->tx[x].i1 * step];
                    o[x] = a + t->tx[x].w * (b - a);
                }
                have[slot] = i;
            }
            rows[k] = r->row[slot];
        }
        const float *a = rows[0], *b = rows[1];
        float wy = t->ty[y].w, *o = out + (size_t)y * (size_t)w;
        for (int x = 0; x < w; x++) o[x] = (a[x] + wy * (b[x] - a[x])) * scale + offset;
    }
}

/* Whether a frame's pixel format is planar 8-bit YUV (or gray), which is
 * resized plane by plane and then converted, without swscale: what
 * FFmpeg's JPEG, MPEG and H.26x decoders put out. */
static bool planar_yuv8(const AVPixFmtDescriptor *d) {
    if (!d || (d->flags & (AV_PIX_FMT_FLAG_RGB | AV_PIX_FMT_FLAG_PAL | AV_PIX_FMT_FLAG_BITSTREAM | AV_PIX_FMT_FLAG_HWACCEL |
                           AV_PIX_FMT_FLAG_BE | AV_PIX_FMT_FLAG_FLOAT | AV_PIX_FMT_FLAG_ALPHA | AV_PIX_FMT_FLAG_BAYER)))
        return false;
    if (d->nb_components != 1 && d->nb_components != 3) return false;
    for (int i = 0; i < d->nb_components; i++)
        if (d->comp[i].plane != i || d->comp[i].depth != 8 || d->comp[i].step != 1 || d->comp[i].shift != 0 || d->comp[i].offset != 0)
            return false;
    return true;
}

static float clamp01(float v) {
    return v < 0 ? 0 : v > 1 ? 1 : v;
}

/* v->frame, planar YUV: each plane resized with its range scaling folded
 * in (full range: Y / 255, (C - 128) / 255; limited: (Y - 16) / 219,
 * (C - 128) / 224), then R = Y + 2 (1 - Kr) Cr, B = Y + 2 (1 - Kb) Cb,
 * G = (Y - Kr R - Kb B) / Kg with the frame's matrix (BT.601 unless it
 * says otherwise). One channel is BT.601's luma whatever the matrix, as
 * swscale and OpenCV make gray from RGB: Y itself for BT.601. Gray frames
 * are full range unless they say otherwise. */
static void convert_yuv(video *v, const AVPixFmtDescriptor *d, int c, float *dst, size_t cstride, resizer *r) {
    const AVFrame *f = v->frame;
    bool gray = d->nb_components == 1;
    bool full = f->color_range == AVCOL_RANGE_JPEG || (gray && f->color_range != AVCOL_RANGE_MPEG) || f->format == AV_PIX_FMT_YUVJ420P ||
                f->format == AV_PIX_FMT_YUVJ422P || f->format == AV_PIX_FMT_YUVJ444P || f->format == AV_PIX_FMT_YUVJ440P ||
                f->format == AV_PIX_FMT_YUVJ411P;
    float kr = 0.299f, kb = 0.114f;
    switch (f->colorspace) {
    case AVCOL_SPC_BT709: kr = 0.2126f, kb = 0.0722f; break;
    case AVCOL_SPC_BT2020_NCL:
    case AVCOL_SPC_BT2020_CL: kr = 0.2627f, kb = 0.0593f; break;
    case AVCOL_SPC_SMPTE240M: kr = 0.212f, kb = 0.087f; break;
    case AVCOL_SPC_FCC: kr = 0.30f, kb = 0.11f; break;
    default: break; /* BT.601: BT470BG, SMPTE170M, unspecified */
    }
    bool bt601 = kr == 0.299f && kb == 0.114f;

    float ys = full ? 1.0f / 255 : 1.0f / 219, yo = full ? 0 : -16.0f / 219;
    size_t plane = (size_t)r->h * (size_t)r->w;
    const lerp2d *tl = lerp_for(&r->full, f->width, f->height, r->w, r->h);
    resize_plane(r, dst, f->data[0], f->linesize[0], 1, tl, ys, yo);
    if (gray || (c == 1 && bt601)) {
        if (!full)
            for (size_t p = 0; p < plane; p++) dst[p] = clamp01(dst[p]);
        for (int ch = 1; ch < c; ch++) memcpy(dst + (size_t)ch * cstride, dst, sizeof(float) * plane);
        return;
    }
    int cw = (f->width + (1 << d->log2_chroma_w) - 1) >> d->log2_chroma_w;
    int chh = (f->height + (1 << d->log2_chroma_h) - 1) >> d->log2_chroma_h;
    const lerp2d *tc = lerp_for(&r->sub, cw, chh, r->w, r->h);
    float cs = full ? 1.0f / 255 : 1.0f / 224, co = -128.0f * cs;
    if (!r->cb) r->cb = rt_alloc(sizeof(float) * plane), r->cr = rt_alloc(sizeof(float) * plane);
    resize_plane(r, r->cb, f->data[1], f->linesize[1], 1, tc, cs, co);
    resize_plane(r, r->cr, f->data[2], f->linesize[2], 1, tc, cs, co);
    float kg = 1 - kr - kb, rv = 2 * (1 - kr), bu = 2 * (1 - kb), gu = bu * kb / kg, gv = rv * kr / kg;
    if (c == 1) {
        for (size_t p = 0; p < plane; p++) {
            float y = dst[p], u = r->cb[p], w = r->cr[p];
            dst[p] = 0.299f * clamp01(y + rv * w) + 0.587f * clamp01(y - gu * u - gv * w) + 0.114f * clamp01(y + bu * u);
        }
        return;
    }
    float *pr = dst, *pg = dst + cstride, *pb = dst + 2 * cstride;
    for (size_t p = 0; p < plane; p++) {
        float y = pr[p], u = r->cb[p], w = r->cr[p];
        pr[p] = clamp01(y + rv * w);
        pg[p] = clamp01(y - gu * u - gv * w);
        pb[p] = clamp01(y + bu * u);
    }
}

/* v->frame, any other format: swscale converts it to packed RGB24 or
 * GRAY8 at its own size, then the channels are resized. 0, or -1. */
static int convert_sws(video *v, int c, float *dst, size_t cstride, resizer *r, char *err, size_t errlen) {
    const AVFrame *f = v->frame;
    int range = f->color_range == AVCOL_RANGE_JPEG, space = f->colorspace;
    if (!v->sws || f->width != v->sws_w || f->height != v->sws_h || f->format != v->sws_fmt || range != v->sws_range ||
        space != v->sws_space) {
        sws_freeContext(v->sws);
        free(v->pix);
        v->pix = NULL;
        v->sws = sws_getContext(f->width, f->height, f->format, f->width, f->height, c == 3 ? AV_PIX_FMT_RGB24 : AV_PIX_FMT_GRAY8,
                                SWS_BILINEAR, NULL, NULL, NULL);
        if (!v->sws) {
            const char *name = av_get_pix_fmt_name(f->format);
            rt_set_err(err, errlen, "%s: cannot convert its pixel format (%s) to %s", v->path, name ? name : "unknown",
                    c == 3 ? "RGB" : "gray");
            return -1;
        }
        /* The range and matrix the frame declares, where swscale would
         * assume limited-range BT.601 (the "J" formats aside). */
        int *inv, *tab, src_range, dst_range, bright, contrast, sat;
        if (sws_getColorspaceDetails(v->sws, &inv, &src_range, &tab, &dst_range, &bright, &contrast, &sat) >= 0) {
            const int *coef = sws_getCoefficients(space == AVCOL_SPC_UNSPECIFIED || space == AVCOL_SPC_RGB ? SWS_CS_DEFAULT : space);
            sws_setColorspaceDetails(v->sws, coef, src_range || range, tab, dst_range, bright, contrast, sat);
        }
        v->sws_w = f->width, v->sws_h = f->height, v->sws_fmt = f->format, v->sws_range = range, v->sws_space = space;
        v->pix_stride = f->width * c;
        v->pix = rt_alloc((size_t)v->pix_stride * (size_t)f->height + 64); /* swscale may write a little past the end */
    }
    uint8_t *out[4] = {v->pix, NULL, NULL, NULL};
    int stride[4] = {v->pix_stride, 0, 0, 0};
    if (sws_scale(v->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, out, stride) != f->height) {
        rt_set_err(err, errlen, "%s: cannot convert a frame to %s", v->path, c == 3 ? "RGB" : "gray");
        return -1;
    }
    const lerp2d *t = lerp_for(&r->full, f->width, f->height, r->w, r->h);
    for (int ch = 0; ch < c; ch++) resize_plane(r, dst + (size_t)ch * cstride, v->pix + ch, v->pix_stride, c, t, 1.0f / 255, 0);
    return 0;
}

/* v->frame as c channels (1: luma, 3: RGB) of h x w floats in [0, 1]: dst
 * the slot's first plane, cstride floats from one channel's to the next.
 * 0, or -1 with err set. */
static int frame_to_slot(video *v, int c, float *dst, size_t cstride, resizer *r, char *err, size_t errlen) {
    const AVFrame *f = v->frame;
    if (f->width <= 0 || f->height <= 0 || f->width > 16384 || f->height > 16384) {
        rt_set_err(err, errlen, "%s: a frame of %dx%d pixels", v->path, f->width, f->height);
        return -1;
    }
    if (!r->row[0]) r->row[0] = rt_alloc(sizeof(float) * (size_t)r->w), r->row[1] = rt_alloc(sizeof(float) * (size_t)r->w);
    const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(f->format);
    if (planar_yuv8(d) && f->colorspace != AVCOL_SPC_YCGCO) {
        convert_yuv(v, d, c, dst, cstride, r);
        return 0;
    }
    return convert_sws(v, c, dst, cstride, r, err, errlen);
}

/* ---- the source ------------------------------------------------------------------- */
/* Frames start .. end-1 sampled evenly to t slots: slot j shows frame
 * start + floor(j * (end - start) / t), so t == end - start reads every
 * frame once, fewer slots skip frames evenly and more repeat them. */
static int slot_frame(const clip_video *cv, int j, int t) {
    return cv->start + (int)((int64_t)j * (cv->end - cv->start) / t);
}

static int clips_read(rt_source *s, int i, int in, float *dst, char *err, size_t errlen) {
    clips_impl *im = s->impl;
    const clip *c = &im->clips[i];
    const clip_video *cv = &c->video[in];
    const clip_shape sh = im->shape[in];
    size_t plane = (size_t)sh.h * (size_t)sh.w, cstride = (size_t)sh.t * plane;
    char d[300];
    resizer rs = {.h = sh.h, .w = sh.w};
    av_last[0] = '\0';

    video v;
    if (video_start(&v, cv->path, err, errlen) != 0) goto fail;
    int64_t declared = v.fmt->streams[v.stream]->nb_frames; /* 0 when the container does not say */
    if (declared > 0 && cv->end > declared) {
        rt_set_err(err, errlen, "%s: frames %d:%d (%s:%d) reach past the end of the clip, which has %lld frames", cv->path, cv->start,
                cv->end, im->list, c->line, (long long)declared);
        goto fail;
    }

    /* Seek to the key frame before the start, unless it is the first frame
     * (decoded already). An imprecise index can land after the start: then
     * decode from the first frame. So can a frame without a timestamp: then
     * count frames from the first. */
    bool pending = true, seeked = false, restarted = false;
    if (v.timed && cv->start > 0 && video_seek(&v, cv->start) == 0) seeked = true, pending = false;
    int64_t count = 0, last = -1;
    int j = 0;
    while (j < sh.t) {
        if (!pending) {
            int r = video_next(&v, err, errlen);
            if (r < 0) goto fail;
            if (r == 0) {
                rt_set_err(err, errlen, "%s: frames %d:%d (%s:%d) reach past the end of the clip, which ends after %lld frames%s%s",
                        cv->path, cv->start, cv->end, im->list, c->line, (long long)(last + 1),
                        declared > last + 1 ? " (the container promises more: truncated?)" : "", av_detail(d, sizeof d));
                goto fail;
            }
        }
        pending = false;
        int64_t n = count++;
        bool numbered = !v.timed || frame_number(&v, &n);
        if (!numbered || (seeked && last < 0 && n > cv->start)) {
            if (restarted) {
                rt_set_err(err, errlen, "%s: cannot find frame %d: the video's timestamps are inconsistent", cv->path, cv->start);
                goto fail;
            }
            video_close(&v);
            if (video_start(&v, cv->path, err, errlen) != 0) goto fail;
            if (!numbered) v.timed = false;
            restarted = true, seeked = false, pending = true, count = 0, last = -1;
            continue;
        }
        if (n > last) last = n;
        if (n < slot_frame(cv, j, sh.t)) continue;
        /* This frame fills every slot up to its number: a frame missing from
         * the timestamps shows the one after it. */
        if (frame_to_slot(&v, sh.c, dst + (size_t)j * plane, cstride, &rs, err, errlen) != 0) goto fail;
        int first = j;
        for (j++; j < sh.t && slot_frame(cv, j, sh.t) <= n; j++)
            for (int ch = 0; ch < sh.c; ch++)
                memcpy(dst + (size_t)ch * cstride + (size_t)j * plane, dst + (size_t)ch * cstride + (size_t)first * plane,
                       sizeof(float) * plane);
    }
    resizer_free(&rs);
    video_close(&v);
    return 0;

fail:
    resizer_free(&rs);
    video_close(&v);
    return -1;
}

/* The clip's directory (its first video's), as the list names it under the root. */
static void clips_name(const rt_source *s, int i, char *buf, size_t n) {
    const clips_impl *im = s->impl;
    const char *path = im->clips[i].video[0].path, *slash = strrchr(path, '/');
    snprintf(buf, n, "%.*s", slash ? (int)(slash - path) : (int)strlen(path), path);
}

static void clips_close(rt_source *s) {
    clips_impl *im = s->impl;
    for (int i = 0; i < im->nclips; i++) {
        if (im->clips[i].video)
            for (int k = 0; k < im->ninputs; k++) free(im->clips[i].video[k].path);
        free(im->clips[i].video);
    }
    free(im->clips);
    free(im->shape);
    free(im->list);
    free(im);
    free(s->y);
    free(s);
}

rt_source *rt_clips_open(const char *list, const char *root, const char *const *modalities, int nmod,
                         const rt_source_input *inputs, char *err, size_t errlen) {
    pthread_once(&av_once, av_setup);
    if (nmod < 1) {
        rt_set_err(err, errlen, "%s: no modalities to read", list);
        return NULL;
    }
    for (int k = 0; k < nmod; k++) {
        const rt_source_input *in = &inputs[k];
        if (!modalities[k] || !modalities[k][0] || strchr(modalities[k], ':') || !strcmp(modalities[k], "path") ||
            !strcmp(modalities[k], "label")) {
            rt_set_err(err, errlen, "%s: model input '%s': '%s' is not a sensor of the list", list, in->name,
                    modalities[k] ? modalities[k] : "(null)");
            return NULL;
        }
        if (in->ndim != 4 || (in->shape[0] != 1 && in->shape[0] != 3) || in->shape[1] < 1 || in->shape[2] < 1 || in->shape[3] < 1) {
            rt_set_err(err, errlen, "%s: model input '%s' must be a clip [C, T, H, W] with 1 (gray) or 3 (RGB) channels", list,
                    in->name);
            return NULL;
        }
    }

    /* Paths in the list are relative to its directory unless told otherwise. */
    char *dir = NULL;
    if (!root) {
        const char *slash = strrchr(list, '/');
        size_t n = slash ? (size_t)(slash - list) : 1;
        dir = rt_alloc(n + 1);
        if (!slash) dir[0] = '.';
        else if (n == 0) dir[0] = '/';
        else memcpy(dir, list, n);
        root = dir;
    }
    char *text = read_text(list, err, errlen);
    if (!text) {
        free(dir);
        return NULL;
    }

    clips_impl *im = rt_alloc(sizeof *im);
    im->list = dup_str(list);
    im->ninputs = nmod;
    im->shape = rt_alloc(sizeof(clip_shape) * (size_t)nmod);
    for (int k = 0; k < nmod; k++)
        im->shape[k] = (clip_shape){inputs[k].shape[0], inputs[k].shape[1], inputs[k].shape[2], inputs[k].shape[3]};
    rt_source *s = rt_alloc(sizeof *s);
    snprintf(s->what, sizeof s->what, "%s", list);
    s->ninputs = nmod;
    s->read = clips_read;
    s->close = clips_close;
    s->name = clips_name;
    s->impl = im;

    int cap = 0, lineno = 0;
    char msg[512];
    for (char *p = text, *next; *p; p = next) {
        char *nl = strchr(p, '\n');
        next = nl ? nl + 1 : p + strlen(p);
        if (nl) *nl = '\0';
        lineno++;
        size_t n = strlen(p);
        while (n > 0 && (p[n - 1] == '\r' || p[n - 1] == ' ' || p[n - 1] == '\t')) p[--n] = '\0';
        if (strspn(p, " \t") == n) continue; /* blank */
        if (im->nclips == cap) {
            cap = cap ? 2 * cap : 256;
            clip *nc = rt_alloc(sizeof(clip) * (size_t)cap);
            if (im->nclips) memcpy(nc, im->clips, sizeof(clip) * (size_t)im->nclips);
            free(im->clips);
            im->clips = nc;
        }
        clip *c = &im->clips[im->nclips++];
        c->line = lineno;
        if (parse_line(p, root, modalities, nmod, c, msg, sizeof msg) != 0) {
            rt_set_err(err, errlen, "%s:%d: %s", list, lineno, msg);
            goto fail;
        }
        for (int k = 0; k < nmod; k++) {
            struct stat st;
            const char *vp = c->video[k].path;
            int bad = stat(vp, &st) != 0 ? errno : S_ISDIR(st.st_mode) ? EISDIR : 0;
            if (bad) {
                rt_set_err(err, errlen, "%s:%d: %s: %s", list, lineno, vp, strerror(bad));
                goto fail;
            }
        }
    }
    if (im->nclips == 0) {
        rt_set_err(err, errlen, "%s: no clips in the list", list);
        goto fail;
    }

    s->n = im->nclips;
    s->y = rt_alloc(sizeof(int32_t) * (size_t)s->n);
    for (int i = 0; i < s->n; i++) {
        s->y[i] = im->clips[i].label;
        if (s->y[i] + 1 > s->classes) s->classes = s->y[i] + 1;
    }
    free(text);
    free(dir);
    return s;

fail:
    free(text);
    free(dir);
    clips_close(s);
    return NULL;
}
