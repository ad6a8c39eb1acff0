/* test_clips.c — unit tests of rt_clips.c, the NVGesture clips source: a
 * small data set in the real layout (a .lst file, Video_data/class_NN/
 * subjectS_rR/sk_color.avi and sk_depth.avi written by the ffmpeg command
 * from frames whose pixels encode the frame number), then which frame lands
 * in which slot, resizing, channel conversion, labels, seeking in long
 * videos with sparse key frames, lossy codecs, reads from several threads,
 * and every error a bad list or video produces. Prints the time of a
 * 64-frame 224x224 read of a 320x240 MJPEG clip. Exit 0 on success, 77
 * (skipped) without the ffmpeg command, else 0 when every check passes
 * (tests/check.h). Works in a fresh directory under $TMPDIR (default
 * /tmp), removed at exit. */
#define _XOPEN_SOURCE 700 /* nftw, mkdtemp */
#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../check.h"
#include "rt_source.h"

static char g_root[1024]; /* the temporary directory */

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

static void cleanup(void) {
    if (g_root[0]) nftw(g_root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static char *path_of(const char *rel) {
    static char buf[16][1400];
    static int next;
    char *p = buf[next++ % 16];
    int k = snprintf(p, sizeof buf[0], "%s/%s", g_root, rel);
    REQUIRE(k > 0 && (size_t)k < sizeof buf[0]);
    return p;
}

static void mkdirs(const char *rel) {
    char p[1400];
    snprintf(p, sizeof p, "%s", path_of(rel));
    for (char *s = p + strlen(g_root) + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            mkdir(p, 0777);
            *s = '/';
        }
    mkdir(p, 0777);
}

static void write_file(const char *rel, const void *b, size_t n) {
    FILE *f = fopen(path_of(rel), "wb");
    REQUIRE(f, "%s", rel);
    REQUIRE(n == 0 || fwrite(b, 1, n, f) == n);
    REQUIRE(fclose(f) == 0);
}

static void write_text(const char *rel, const char *s) {
    write_file(rel, s, strlen(s));
}

/* ---- the videos ------------------------------------------------------------------- */
/* The test pattern. Colour: R the frame number's low byte, B its high
 * byte (both the same over the frame, so they survive any resize), G a
 * pattern over x and y. Gray: a pattern over f, x and y. */
static uint8_t pattern(int f, int x, int y, int c, int channels) {
    if (channels == 1) return (uint8_t)(f * 3 + x * 5 + y * 2);
    return c == 0 ? (uint8_t)(f & 255) : c == 1 ? (uint8_t)(x * 7 + y * 13) : (uint8_t)(f >> 8);
}

/* Flat frames for lossy codecs: every channel 8 * f mod 256, so the frame
 * number (mod 32) is read back within a tolerance of 3. */
static uint8_t flat(int f) {
    return (uint8_t)(8 * f);
}

/* Flat coloured frames, for the YUV matrices: R as flat(), G and B far
 * from it and from gray. */
static uint8_t flat_rgb(int f, int c) {
    return c == 0 ? flat(f) : c == 1 ? (uint8_t)(255 - flat(f)) : (uint8_t)(40 + 5 * (f % 32));
}

enum { PATTERN, FLAT, FLAT_RGB };

/* A video of n frames w x h written by ffmpeg with `codec` (its options). */
static void write_video(const char *rel, const char *codec, int w, int h, int n, int channels, int kind) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "ffmpeg -nostdin -loglevel error -y -f rawvideo -pix_fmt %s -s %dx%d -r 30 -i - %s '%s'",
             channels == 3 ? "rgb24" : "gray", w, h, codec, path_of(rel));
    FILE *p = popen(cmd, "w");
    REQUIRE(p, "%s", cmd);
    size_t fb = (size_t)w * h * channels;
    uint8_t *buf = malloc(fb);
    REQUIRE(buf);
    for (int f = 0; f < n; f++) {
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < channels; c++)
                    buf[((size_t)y * w + x) * channels + c] =
                        kind == FLAT ? flat(f) : kind == FLAT_RGB ? flat_rgb(f, c) : pattern(f, x, y, c, channels);
        REQUIRE(fwrite(buf, 1, fb, p) == fb, "%s", cmd);
    }
    free(buf);
    REQUIRE(pclose(p) == 0, "%s", cmd);
}

/* ---- the expected values ---------------------------------------------------------- */
/* Source coordinate of output pixel i (OpenCV's INTER_LINEAR), clamped. */
static void src_coord(int i, int dst, int src, int *i0, int *i1, double *w) {
    double s = (i + 0.5) * src / dst - 0.5;
    if (s < 0) s = 0;
    if (s > src - 1) s = src - 1;
    *i0 = (int)s;
    *i1 = *i0 + 1 < src ? *i0 + 1 : *i0;
    *w = s - *i0;
}

/* Frame f of the pattern video (src_w x src_h, src_c channels) at h x w,
 * channel ch of c, as the source should deliver it. Luma for a colour
 * video read as gray is checked separately. */
static double expect(int f, int src_w, int src_h, int src_c, int ch, int h, int w, int y, int x) {
    int y0, y1, x0, x1;
    double wy, wx;
    src_coord(y, h, src_h, &y0, &y1, &wy);
    src_coord(x, w, src_w, &x0, &x1, &wx);
    int sc = src_c == 1 ? 0 : ch;
    double a = pattern(f, x0, y0, sc, src_c), b = pattern(f, x1, y0, sc, src_c);
    double c = pattern(f, x0, y1, sc, src_c), d = pattern(f, x1, y1, sc, src_c);
    double top = a + wx * (b - a), bot = c + wx * (d - c);
    return (top + wy * (bot - top)) / 255.0;
}

/* Whether a read of the pattern video shows frames[j] in slot j (within
 * 1e-5); if not, the first value that is off goes to what. */
static bool clip_matches(const float *x, const int *frames, int c, int t, int h, int w, int src_w, int src_h, int src_c, char *what,
                         size_t whatlen) {
    for (int ch = 0; ch < c; ch++)
        for (int j = 0; j < t; j++)
            for (int yy = 0; yy < h; yy++)
                for (int xx = 0; xx < w; xx++) {
                    double e = expect(frames[j], src_w, src_h, src_c, ch, h, w, yy, xx);
                    float v = x[(((size_t)ch * t + j) * h + yy) * w + xx];
                    if (fabs(v - e) > 1e-5) {
                        snprintf(what, whatlen, "channel %d slot %d (frame %d) pixel (%d, %d): %.6f, expected %.6f", ch, j, frames[j],
                                 yy, xx, v, e);
                        return false;
                    }
                }
    return true;
}

/* One check of a whole clip: a failure names the caller's line. */
#define CHECK_CLIP(x, frames, c, t, h, w, src_w, src_h, src_c)                                        \
    do {                                                                                           \
        char what_[256] = "";                                                                      \
        CHECK(clip_matches(x, frames, c, t, h, w, src_w, src_h, src_c, what_, sizeof what_), "%s", what_); \
    } while (0)

/* The frame number a slot shows, from its R and B planes (colour). */
static int frame_in(const float *x, int t, int h, int w, int j, int y, int xx) {
    size_t plane = (size_t)h * w;
    float r = x[(size_t)j * plane + (size_t)y * w + xx], b = x[((size_t)2 * t + j) * plane + (size_t)y * w + xx];
    return (int)lrintf(r * 255) + 256 * (int)lrintf(b * 255);
}

static float *read_ok(rt_source *s, int i, int in, size_t n) {
    float *x = malloc(sizeof(float) * n);
    REQUIRE(x);
    for (size_t k = 0; k < n; k++) x[k] = -1; /* every value must be written */
    char err[1024] = "";
    CHECK(s->read(s, i, in, x, err, sizeof err) == 0, "example %d input %d: %s", i, in, err);
    return x;
}

static rt_source_input clip_input(const char *name, int c, int t, int h, int w) {
    return (rt_source_input){name, 4, {c, t, h, w}};
}

static const char *const COLOR_DEPTH[] = {"color", "depth"};

static rt_source *open_ok(const char *list_rel, const char *const *mods, int nmod, const rt_source_input *in) {
    char err[1024] = "";
    rt_source *s = rt_clips_open(path_of(list_rel), NULL, mods, nmod, in, err, sizeof err);
    REQUIRE(s, "%s", err);
    return s;
}

/* ---- the data set ------------------------------------------------------------------- */
#define LIST "nvgesture_train_correct_cvpr2016_v2.lst"
#define SHORT_W 40
#define SHORT_H 30
#define SHORT_N 50
#define LONG_W 32
#define LONG_H 24
#define LONG_N 300

static void make_dataset(void) {
    mkdirs("Video_data/class_01/subject1_r0");
    mkdirs("Video_data/class_03/subject2_r1");
    mkdirs("Video_data/class_02/subject3_r0");
    /* Lossless, every frame a key frame. */
    write_video("Video_data/class_01/subject1_r0/sk_color.avi", "-c:v ffv1", SHORT_W, SHORT_H, SHORT_N, 3, PATTERN);
    write_video("Video_data/class_01/subject1_r0/sk_depth.avi", "-c:v ffv1", SHORT_W, SHORT_H, SHORT_N, 1, PATTERN);
    /* Lossless, a key frame every 25: reading 205:285 seeks to 200. */
    write_video("Video_data/class_03/subject2_r1/sk_color.avi", "-c:v ffv1 -g 25", LONG_W, LONG_H, LONG_N, 3, PATTERN);
    write_video("Video_data/class_03/subject2_r1/sk_depth.avi", "-c:v ffv1 -g 25", LONG_W, LONG_H, LONG_N, 1, PATTERN);
    /* Lossy codecs as recorded data comes: MPEG-4 with B-frames (YUV 4:2:0,
     * limited range) and MJPEG (full range). */
    write_video("Video_data/class_02/subject3_r0/sk_color.avi", "-c:v mpeg4 -q:v 2 -g 12 -bf 2", 64, 48, 100, 3, FLAT);
    write_video("Video_data/class_02/subject3_r0/sk_depth.avi", "-c:v mjpeg -q:v 2", 64, 48, 100, 1, FLAT);
    /* The duo_left videos are not read: they need not exist. */
    write_text(LIST, "path:./Video_data/class_01/subject1_r0 depth:sk_depth:10:30 color:sk_color:10:30 duo_left:duo_left:12:40 label:1\n"
                     "path:./Video_data/class_03/subject2_r1 depth:sk_depth:200:280 color:sk_color:205:285 duo_left:duo_left:1:2 label:3\r\n"
                     "\n"
                     "path:./Video_data/class_02/subject3_r0  color:sk_color:60:90\tdepth:sk_depth:0:100 duo_left:duo_left:0:1 label:2   \n");
}

/* ---- the checks ------------------------------------------------------------------- */
static void test_labels(void) {
    rt_source_input in[2] = {clip_input("rgb", 3, 4, 8, 8), clip_input("depth", 1, 4, 8, 8)};
    rt_source *s = open_ok(LIST, COLOR_DEPTH, 2, in);
    REQUIRE(s->n == 3 && s->ninputs == 2 && s->classes == 3, "%d clips, %d inputs, %d classes", s->n, s->ninputs, s->classes);
    CHECK(s->y[0] == 0 && s->y[1] == 2 && s->y[2] == 1, "labels %d %d %d", s->y[0], s->y[1], s->y[2]);
    CHECK(strstr(s->what, LIST), "%s", s->what);
    rt_source_close(s);

    /* An explicit root, the list elsewhere. */
    mkdirs("lists");
    write_text("lists/test.lst", "path:./Video_data/class_01/subject1_r0 depth:sk_depth:0:1 color:sk_color:0:1 label:25\n");
    char err[1024] = "";
    const char *mods[1] = {"color"};
    s = rt_clips_open(path_of("lists/test.lst"), g_root, mods, 1, in, err, sizeof err);
    REQUIRE(s, "%s", err);
    CHECK(s->n == 1 && s->classes == 25 && s->y[0] == 24, "%d clips, %d classes, label %d", s->n, s->classes, s->n ? s->y[0] : -1);
    rt_source_close(s);
}

/* Every frame of 10:30 at the video's size: exact values. */
static void test_frames_native(void) {
    int T = 20;
    rt_source_input in[2] = {clip_input("rgb", 3, T, SHORT_H, SHORT_W), clip_input("depth", 1, T, SHORT_H, SHORT_W)};
    rt_source *s = open_ok(LIST, COLOR_DEPTH, 2, in);
    int frames[64];
    for (int j = 0; j < T; j++) frames[j] = 10 + j;
    float *x = read_ok(s, 0, 0, (size_t)3 * T * SHORT_H * SHORT_W);
    CHECK_CLIP(x, frames, 3, T, SHORT_H, SHORT_W, SHORT_W, SHORT_H, 3);
    free(x);
    x = read_ok(s, 0, 1, (size_t)T * SHORT_H * SHORT_W);
    CHECK_CLIP(x, frames, 1, T, SHORT_H, SHORT_W, SHORT_W, SHORT_H, 1);
    free(x);
    rt_source_close(s);
}

/* Fewer slots than frames skip evenly, more repeat; resized both ways. */
static void test_sampling_and_resize(void) {
    static const struct {
        int t, h, w;
    } cases[] = {{8, 17, 23}, {50, 64, 80}, {1, 30, 40}, {20, 1, 1}, {3, 31, 7}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        int T = cases[k].t, H = cases[k].h, W = cases[k].w;
        rt_source_input in[2] = {clip_input("rgb", 3, T, H, W), clip_input("depth", 1, T, H, W)};
        rt_source *s = open_ok(LIST, COLOR_DEPTH, 2, in);
        int frames[64];
        for (int j = 0; j < T; j++) frames[j] = 10 + j * 20 / T; /* start + floor(j (end - start) / T) */
        float *x = read_ok(s, 0, 0, (size_t)3 * T * H * W);
        CHECK_CLIP(x, frames, 3, T, H, W, SHORT_W, SHORT_H, 3);
        free(x);
        x = read_ok(s, 0, 1, (size_t)T * H * W);
        CHECK_CLIP(x, frames, 1, T, H, W, SHORT_W, SHORT_H, 1);
        free(x);
        rt_source_close(s);
    }
    /* Spot checks of the rule with T = 8 written out: 10 12 15 17 20 22 25 27. */
    rt_source_input in[1] = {clip_input("rgb", 3, 8, 5, 5)};
    rt_source *s = open_ok(LIST, COLOR_DEPTH, 1, in);
    float *x = read_ok(s, 0, 0, (size_t)3 * 8 * 5 * 5);
    static const int want[8] = {10, 12, 15, 17, 20, 22, 25, 27};
    for (int j = 0; j < 8; j++)
        CHECK(frame_in(x, 8, 5, 5, j, 2, 2) == want[j], "slot %d shows frame %d", j, frame_in(x, 8, 5, 5, j, 2, 2));
    free(x);
    rt_source_close(s);
}

/* A colour video read as one channel gives its luma (BT.601); a gray one
 * read as three gives the same value thrice. */
static void test_channel_conversion(void) {
    int T = 4, H = SHORT_H, W = SHORT_W;
    const char *mods[2] = {"depth", "color"};
    rt_source_input in[2] = {clip_input("depth_rgb", 3, T, H, W), clip_input("color_gray", 1, T, H, W)};
    rt_source *s = open_ok(LIST, mods, 2, in);
    float *g3 = read_ok(s, 0, 0, (size_t)3 * T * H * W);
    float *c1 = read_ok(s, 0, 1, (size_t)T * H * W);
    size_t plane = (size_t)H * W, vol = plane * T;
    for (int j = 0; j < T; j++) {
        int f = 10 + j * 20 / T;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                size_t at = (size_t)j * plane + (size_t)y * W + x;
                double gray = pattern(f, x, y, 0, 1) / 255.0;
                for (int ch = 0; ch < 3; ch++)
                    CHECK(fabs(g3[ch * vol + at] - gray) < 1e-6, "gray frame %d at (%d, %d), channel %d: %.7f, expected %.7f", f, y, x, ch,
                          g3[ch * vol + at], gray);
                double luma = (0.299 * pattern(f, x, y, 0, 3) + 0.587 * pattern(f, x, y, 1, 3) + 0.114 * pattern(f, x, y, 2, 3)) / 255.0;
                CHECK_CLOSE(c1[at], luma, 1.5 / 255, 0, "luma of frame %d at (%d, %d)", f, y, x);
            }
    }
    free(g3);
    free(c1);
    rt_source_close(s);
}

/* 205:285 of a 300-frame video with a key frame every 25 frames: the read
 * seeks to frame 200 and decodes on. Also the first and the last frames. */
static void test_seek(void) {
    static const struct {
        int t;
        const char *line;
        int start, end;
    } cases[] = {
        {80, "path:Video_data/class_03/subject2_r1 color:sk_color:205:285 depth:sk_depth:205:285 label:1\n", 205, 285},
        {64, "path:Video_data/class_03/subject2_r1 color:sk_color:205:285 depth:sk_depth:205:285 label:1\n", 205, 285},
        {5, "path:Video_data/class_03/subject2_r1 color:sk_color:0:5 depth:sk_depth:0:5 label:1\n", 0, 5},
        {7, "path:Video_data/class_03/subject2_r1 color:sk_color:293:300 depth:sk_depth:293:300 label:1\n", 293, 300},
        {30, "path:Video_data/class_03/subject2_r1 color:sk_color:24:54 depth:sk_depth:26:56 label:1\n", 24, 54},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        int T = cases[k].t, H = LONG_H, W = LONG_W;
        write_text("seek.lst", cases[k].line);
        rt_source_input in[2] = {clip_input("rgb", 3, T, H, W), clip_input("depth", 1, T, H, W)};
        rt_source *s = open_ok("seek.lst", COLOR_DEPTH, 2, in);
        int frames[128];
        int n = cases[k].end - cases[k].start;
        for (int j = 0; j < T; j++) frames[j] = cases[k].start + j * n / T;
        float *x = read_ok(s, 0, 0, (size_t)3 * T * H * W);
        CHECK_CLIP(x, frames, 3, T, H, W, W, H, 3);
        free(x);
        if (k == 4)
            for (int j = 0; j < T; j++) frames[j] += 2; /* the depth range differs */
        x = read_ok(s, 0, 1, (size_t)T * H * W);
        CHECK_CLIP(x, frames, 1, T, H, W, W, H, 1);
        free(x);
        rt_source_close(s);
    }
}

/* MPEG-4 with B-frames and MJPEG: the right frames (by their value, within
 * the codecs' error) in every slot. */
static void test_lossy(void) {
    int T = 30, H = 48, W = 64;
    rt_source_input in[2] = {clip_input("rgb", 3, T, H, W), clip_input("depth", 1, 25, 24, 32)};
    rt_source *s = open_ok(LIST, COLOR_DEPTH, 2, in);
    float *x = read_ok(s, 2, 0, (size_t)3 * T * H * W);
    for (int ch = 0; ch < 3; ch++)
        for (int j = 0; j < T; j++) {
            float v = x[((size_t)ch * T + j) * H * W + (size_t)(H / 2) * W + W / 2] * 255;
            CHECK_CLOSE(v, flat(60 + j), 3, 0, "mpeg4 slot %d channel %d (frame %d)", j, ch, 60 + j);
        }
    free(x);
    /* Starts on, before and after MPEG-4's key frames (every 12th frame;
     * a B-frame stored after the key frame can show before it). */
    for (int start = 1; start < 70; start += start < 26 ? 1 : 11) {
        char line[256];
        snprintf(line, sizeof line, "path:Video_data/class_02/subject3_r0 color:sk_color:%d:%d label:1\n", start, start + 10);
        write_text("lossy.lst", line);
        rt_source_input in1[1] = {clip_input("rgb", 3, 10, 8, 8)};
        const char *mods[1] = {"color"};
        rt_source *s1 = open_ok("lossy.lst", mods, 1, in1);
        float *x1 = read_ok(s1, 0, 0, (size_t)3 * 10 * 8 * 8);
        for (int j = 0; j < 10; j++) {
            float v = x1[(size_t)j * 64 + 4 * 8 + 4] * 255;
            CHECK_CLOSE(v, flat(start + j), 3, 0, "mpeg4 from frame %d, slot %d (frame %d)", start, j, start + j);
        }
        free(x1);
        rt_source_close(s1);
    }
    /* MJPEG's full range (yuvj) read as gray: the value written. */
    x = read_ok(s, 2, 1, (size_t)25 * 24 * 32);
    for (int j = 0; j < 25; j++) {
        int f = j * 100 / 25;
        float v = x[(size_t)j * 24 * 32 + 12 * 32 + 16] * 255;
        CHECK_CLOSE(v, flat(f), 3, 0, "mjpeg slot %d (frame %d)", j, f);
    }
    free(x);
    rt_source_close(s);
}

/* Coloured frames through each YUV path: limited range BT.601 (unmarked,
 * as ffmpeg converts RGB by default), full range (MJPEG), and BT.709 as
 * H.264 marks it; read as RGB and as luma. */
static void test_yuv(void) {
    mkdirs("yuv/Video_data/a");
    mkdirs("yuv/Video_data/b");
    write_video("yuv/Video_data/a/sk_color.avi", "-pix_fmt yuv420p -c:v ffv1", 64, 48, 40, 3, FLAT_RGB);
    write_video("yuv/Video_data/a/sk_depth.avi", "-c:v mjpeg -q:v 2", 64, 48, 40, 3, FLAT_RGB);
    int n = 1;
    if (system("ffmpeg -hide_banner -encoders 2>/dev/null | grep -q libx264") == 0) {
        write_video("yuv/Video_data/b/sk_color.avi",
                    "-vf scale=out_color_matrix=bt709:out_range=tv,format=yuv420p -colorspace bt709 -c:v libx264 -qp 0", 64, 48, 40,
                    3, FLAT_RGB);
        write_video("yuv/Video_data/b/sk_depth.avi", "-c:v mjpeg -q:v 2", 64, 48, 40, 3, FLAT_RGB);
        n = 2;
    } else {
        printf("no libx264: BT.709 not checked\n");
    }
    write_text("yuv/c.lst", "path:Video_data/a color:sk_color:5:35 depth:sk_depth:5:35 label:1\n"
                            "path:Video_data/b color:sk_color:5:35 depth:sk_depth:5:35 label:1\n");
    int T = 30, H = 24, W = 32;
    static const char *const mods[4] = {"color", "depth", "color", "depth"};
    rt_source_input in[4] = {clip_input("c3", 3, T, H, W), clip_input("d3", 3, T, H, W), clip_input("c1", 1, T, H, W),
                             clip_input("d1", 1, T, H, W)};
    write_text("yuv/one.lst", "path:Video_data/a color:sk_color:5:35 depth:sk_depth:5:35 label:1\n");
    rt_source *s = open_ok(n == 2 ? "yuv/c.lst" : "yuv/one.lst", mods, 4, in);
    size_t plane = (size_t)H * W;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 4; k++) {
            int c = in[k].shape[0];
            float *x = read_ok(s, i, k, (size_t)c * T * plane);
            for (int j = 0; j < T; j++) {
                int f = 5 + j;
                double want[3];
                for (int ch = 0; ch < 3; ch++) want[ch] = flat_rgb(f, ch);
                if (c == 1) want[0] = 0.299 * want[0] + 0.587 * want[1] + 0.114 * want[2];
                for (int ch = 0; ch < c; ch++) {
                    float v = x[((size_t)ch * T + j) * plane + (size_t)(H / 2) * W + W / 2] * 255;
                    CHECK_CLOSE(v, want[ch], 3, 0, "yuv clip %d input %s slot %d channel %d", i, in[k].name, j, ch);
                }
            }
            free(x);
        }
    rt_source_close(s);
}

/* ---- several threads ----------------------------------------------------------------- */
typedef struct {
    rt_source *s;
    float *want[3][2];
    size_t n[2];
    int bad;
} mt_job;

static void *mt_run(void *arg) {
    mt_job *job = arg;
    float *x = malloc(sizeof(float) * (job->n[0] > job->n[1] ? job->n[0] : job->n[1]));
    char err[1024];
    for (int rep = 0; rep < 3; rep++)
        for (int i = 0; i < 3; i++)
            for (int in = 0; in < 2; in++) {
                if (job->s->read(job->s, i, in, x, err, sizeof err) != 0 || memcmp(x, job->want[i][in], sizeof(float) * job->n[in]))
                    job->bad = 1;
            }
    free(x);
    return NULL;
}

static void test_threads(void) {
    rt_source_input in[2] = {clip_input("rgb", 3, 16, 20, 20), clip_input("depth", 1, 16, 20, 20)};
    rt_source *s = open_ok(LIST, COLOR_DEPTH, 2, in);
    mt_job job = {.s = s, .n = {3 * 16 * 400, 16 * 400}};
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 2; k++) job.want[i][k] = read_ok(s, i, k, job.n[k]);
    enum { NT = 4 };
    mt_job jobs[NT];
    pthread_t th[NT];
    for (int t = 0; t < NT; t++) {
        jobs[t] = job;
        REQUIRE(pthread_create(&th[t], NULL, mt_run, &jobs[t]) == 0);
    }
    for (int t = 0; t < NT; t++) {
        REQUIRE(pthread_join(th[t], NULL) == 0);
        CHECK(!jobs[t].bad, "thread %d", t);
    }
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 2; k++) free(job.want[i][k]);
    rt_source_close(s);
}

/* ---- errors ----------------------------------------------------------------------- */
/* A list that does not open: the message names the list and its line. */
static void test_list_errors(void) {
    static const struct {
        const char *text, *want1, *want2;
    } cases[] = {
        {"path:./Video_data/class_01/subject1_r0 color:sk_color:10:30 depth:sk_depth:10:30 junk label:1\n", LIST ":1:",
         "'junk' is not KEY:VALUE"},
        {"color:sk_color:10:30 depth:sk_depth:10:30 label:1\n", LIST ":1:", "no path:DIRECTORY field"},
        {"path: color:sk_color:10:30 depth:sk_depth:10:30 label:1\n", LIST ":1:", "no path:DIRECTORY field"},
        {"path:./Video_data/class_01/subject1_r0 color:sk_color:10:30 depth:sk_depth:10:30\n", LIST ":1:", "no label:N field"},
        {"path:./Video_data/class_01/subject1_r0 color:sk_color:10:30 depth:sk_depth:10:30 label:0\n", LIST ":1:",
         "labels count from 1"},
        {"path:./Video_data/class_01/subject1_r0 color:sk_color:10:30 depth:sk_depth:10:30 label:x1\n", LIST ":1:",
         "label 'x1' is not a whole number"},
        {"path:./Video_data/class_01/subject1_r0 color:sk_color:10:30 depth:sk_depth:10:30 label:99999999999\n", LIST ":1:",
         "is not a whole number"},
        {"path:./Video_data/class_01/subject1_r0 color:sk_color:10 depth:sk_depth:10:30 label:1\n", LIST ":1:",
         "field 'color' is not SENSOR:FILE:START:END"},
        {"path:./Video_data/class_01/subject1_r0 color:sk_color:10:30:40 depth:sk_depth:10:30 label:1\n", LIST ":1:",
         "field 'color' is not SENSOR:FILE:START:END"},
        {"path:./Video_data/class_01/subject1_r0 color::10:30 depth:sk_depth:10:30 label:1\n", LIST ":1:",
         "field 'color' names no file"},
        {"path:./Video_data/class_01/subject1_r0 color:sk_color:a:30 depth:sk_depth:10:30 label:1\n", LIST ":1:",
         "field 'color': the start and end frames must be whole numbers >= 0"},
        {"path:./Video_data/class_01/subject1_r0 color:sk_color:-1:30 depth:sk_depth:10:30 label:1\n", LIST ":1:",
         "whole numbers >= 0"},
        {"path:./Video_data/class_01/subject1_r0 color:sk_color:10: depth:sk_depth:10:30 label:1\n", LIST ":1:",
         "whole numbers >= 0"},
        {"path:./Video_data/class_01/subject1_r0 color:sk_color:30:10 depth:sk_depth:10:30 label:1\n", LIST ":1:",
         "the frame range 30:10 is empty"},
        {"path:./Video_data/class_01/subject1_r0 color:sk_color:10:10 depth:sk_depth:10:30 label:1\n", LIST ":1:",
         "the frame range 10:10 is empty"},
        /* duo_left is not read, but must parse too. */
        {"path:./Video_data/class_01/subject1_r0 color:sk_color:10:30 depth:sk_depth:10:30 duo_left:duo_left:5:x label:1\n",
         LIST ":1:", "field 'duo_left'"},
        {"path:./Video_data/class_01/subject1_r0 color:sk_color:10:30 depth:sk_depth:10:30 label:1 label:2\n", LIST ":1:",
         "field 'label' appears twice"},
        {"path:./Video_data/class_01/subject1_r0 :x color:sk_color:10:30 depth:sk_depth:10:30 label:1\n", LIST ":1:",
         "':x' has no key"},
        {"path:./Video_data/class_01/subject1_r0 depth:sk_depth:10:30 label:1\n", LIST ":1:",
         "no color:FILE:START:END field (model input 0 reads the color video)"},
        /* The line number counts blank lines; good lines first. */
        {"path:./Video_data/class_01/subject1_r0 color:sk_color:10:30 depth:sk_depth:10:30 label:1\n\n"
         "path:./Video_data/class_01/subject1_r0 color:sk_color:10:30 depth:sk_depth:10:30 label:y\n",
         LIST ":3:", "label 'y'"},
        /* Videos are looked for at open. */
        {"path:./Video_data/class_09/subject1_r0 color:sk_color:10:30 depth:sk_depth:10:30 label:1\n", LIST ":1:",
         "Video_data/class_09/subject1_r0/sk_color.avi: No such file or directory"},
        {"path:./Video_data/class_01/subject1_r0 color:sk_color:10:30 depth:sk_dept:10:30 label:1\n", LIST ":1:",
         "Video_data/class_01/subject1_r0/sk_dept.avi: No such file or directory"},
        {"path:./Video_data/class_01 color:subject1_r0:10:30 depth:sk_depth:10:30 label:1\n", LIST ":1:",
         "Video_data/class_01/subject1_r0.avi: Is a directory"},
        {"", LIST, "no clips in the list"},
        {"\n  \n\r\n", LIST, "no clips in the list"},
    };
    rt_source_input in[2] = {clip_input("rgb", 3, 4, 8, 8), clip_input("depth", 1, 4, 8, 8)};
    mkdirs("bad");
    mkdirs("bad/Video_data");
    REQUIRE(symlink(path_of("Video_data/class_01"), path_of("bad/Video_data/class_01")) == 0);
    mkdirs("bad/Video_data/class_01/subject1_r0.avi"); /* a directory named like a video */
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        write_text("bad/" LIST, cases[k].text);
        char err[1024] = "";
        rt_source *s = rt_clips_open(path_of("bad/" LIST), NULL, COLOR_DEPTH, 2, in, err, sizeof err);
        CHECK(!s, "case %zu: the list opened:\n%s", k, cases[k].text);
        rt_source_close(s);
        CHECK_ERR(err, cases[k].want1, cases[k].want2);
    }
    /* The list itself, and the inputs it is asked to feed. */
    char err[1024] = "";
    CHECK(!rt_clips_open(path_of("bad/none.lst"), NULL, COLOR_DEPTH, 2, in, err, sizeof err));
    CHECK_ERR(err, "bad/none.lst", "No such file or directory");
    rt_source_input flat_in[1] = {{"rgb", 3, {3, 8, 8, 0}}};
    CHECK(!rt_clips_open(path_of(LIST), NULL, COLOR_DEPTH, 1, flat_in, err, sizeof err));
    CHECK_ERR(err, "'rgb'", "must be a clip [C, T, H, W]");
    rt_source_input two_in[1] = {clip_input("rgb", 2, 4, 8, 8)};
    CHECK(!rt_clips_open(path_of(LIST), NULL, COLOR_DEPTH, 1, two_in, err, sizeof err));
    CHECK_ERR(err, "'rgb'", "1 (gray) or 3 (RGB) channels");
    const char *label_mod[1] = {"label"};
    CHECK(!rt_clips_open(path_of(LIST), NULL, label_mod, 1, in, err, sizeof err));
    CHECK_ERR(err, "'label'", "is not a sensor of the list");
}

static void copy_prefix(const char *from_rel, const char *to_rel, double frac) {
    FILE *f = fopen(path_of(from_rel), "rb");
    REQUIRE(f, "%s", from_rel);
    REQUIRE(fseek(f, 0, SEEK_END) == 0);
    long n = ftell(f);
    rewind(f);
    char *b = malloc((size_t)n);
    REQUIRE(b && fread(b, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    write_file(to_rel, b, (size_t)(n * frac));
    free(b);
}

/* Videos that open as files but not as clips: read() fails naming the file. */
static void test_read_errors(void) {
    mkdirs("rd/Video_data/a");
    mkdirs("rd/Video_data/b");
    mkdirs("rd/Video_data/c");
    mkdirs("rd/Video_data/d");
    /* garbage bytes */
    uint8_t junk[4096];
    uint32_t r = 12345;
    for (size_t i = 0; i < sizeof junk; i++) r = r * 1103515245u + 12345u, junk[i] = (uint8_t)(r >> 16);
    write_file("rd/Video_data/a/sk_color.avi", junk, sizeof junk);
    write_file("rd/Video_data/a/sk_depth.avi", "", 0); /* empty */
    /* truncated: 40% of the 300-frame video */
    copy_prefix("Video_data/class_03/subject2_r1/sk_color.avi", "rd/Video_data/b/sk_color.avi", 0.4);
    copy_prefix("Video_data/class_03/subject2_r1/sk_depth.avi", "rd/Video_data/b/sk_depth.avi", 0.4);
    /* the 50-frame videos, for ranges past their end */
    copy_prefix("Video_data/class_01/subject1_r0/sk_color.avi", "rd/Video_data/c/sk_color.avi", 1);
    copy_prefix("Video_data/class_01/subject1_r0/sk_depth.avi", "rd/Video_data/c/sk_depth.avi", 1);
    /* a text file */
    write_text("rd/Video_data/d/sk_color.avi", "this is not a video\n");
    write_text("rd/Video_data/d/sk_depth.avi", "RIFF\x10\0\0\0AVI LIST");
    write_text("rd/" LIST, "path:./Video_data/a color:sk_color:0:10 depth:sk_depth:0:10 label:1\n"
                           "path:./Video_data/b color:sk_color:200:280 depth:sk_depth:0:80 label:1\n"
                           "path:./Video_data/c color:sk_color:40:60 depth:sk_depth:30:51 label:1\n"
                           "path:./Video_data/d color:sk_color:0:10 depth:sk_depth:0:10 label:1\n");
    static const struct {
        int i, in;
        const char *want1, *want2;
    } cases[] = {
        {0, 0, "Video_data/a/sk_color.avi", "cannot open the video"},
        {0, 1, "Video_data/a/sk_depth.avi", "cannot open the video"},
        {1, 0, "Video_data/b/sk_color.avi: frames 200:280 (", "(the container promises more: truncated?)"},
        {2, 0, "Video_data/c/sk_color.avi: frames 40:60 (", LIST ":3) reach past the end of the clip, which has 50 frames"},
        {2, 1, "Video_data/c/sk_depth.avi: frames 30:51 (", "which has 50 frames"},
        {3, 0, "Video_data/d/sk_color.avi", "cannot open the video"},
        {3, 1, "Video_data/d/sk_depth.avi", "cannot"},
    };
    rt_source_input in[2] = {clip_input("rgb", 3, 8, 16, 16), clip_input("depth", 1, 8, 16, 16)};
    rt_source *s = open_ok("rd/" LIST, COLOR_DEPTH, 2, in);
    float *x = malloc(sizeof(float) * 3 * 8 * 16 * 16);
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        char err[1024] = "";
        CHECK(s->read(s, cases[k].i, cases[k].in, x, err, sizeof err) != 0, "case %zu: example %d input %d read", k, cases[k].i,
              cases[k].in);
        printf("  %s\n", err);
        CHECK_ERR(err, cases[k].want1, cases[k].want2);
    }
    /* The start of the truncated video is still there. */
    char err[1024] = "";
    CHECK(s->read(s, 1, 1, x, err, sizeof err) == 0, "%s", err);
    free(x);
    rt_source_close(s);
}

/* Bytes overwritten inside the frame data: an error or frames, never a
 * crash (the sanitizer build watches). */
static void test_corrupt(void) {
    static const char *const src[] = {"Video_data/class_03/subject2_r1/sk_color.avi", "Video_data/class_02/subject3_r0/sk_color.avi",
                                      "Video_data/class_02/subject3_r0/sk_depth.avi"};
    mkdirs("cor/Video_data/x");
    rt_source_input in[1] = {clip_input("rgb", 3, 8, 16, 16)};
    const char *mods[1] = {"color"};
    float *x = malloc(sizeof(float) * 3 * 8 * 16 * 16);
    int failed = 0, total = 0;
    for (size_t v = 0; v < sizeof src / sizeof *src; v++) {
        FILE *f = fopen(path_of(src[v]), "rb");
        REQUIRE(f, "%s", src[v]);
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        rewind(f);
        uint8_t *b = malloc((size_t)n);
        REQUIRE(fread(b, 1, (size_t)n, f) == (size_t)n);
        fclose(f);
        uint32_t r = 777 + (uint32_t)v;
        for (int trial = 0; trial < 6; trial++) {
            uint8_t *c = malloc((size_t)n);
            memcpy(c, b, (size_t)n);
            /* a run of random bytes somewhere after the headers */
            r = r * 1103515245u + 12345u;
            long at = 2048 + (long)(r % (uint32_t)(n - 4096)), len = 64 + trial * 200;
            for (long i = at; i < at + len && i < n; i++) r = r * 1103515245u + 12345u, c[i] = (uint8_t)(r >> 16);
            write_file("cor/Video_data/x/sk_color.avi", c, (size_t)n);
            free(c);
            write_text("cor/c.lst", v == 0 ? "path:Video_data/x color:sk_color:100:280 label:1\n"
                                           : "path:Video_data/x color:sk_color:0:100 label:1\n");
            rt_source *s = open_ok("cor/c.lst", mods, 1, in);
            char err[1024] = "";
            total++;
            if (s->read(s, 0, 0, x, err, sizeof err) != 0) {
                failed++;
                printf("  %s\n", err);
                CHECK_ERR(err, "cor/Video_data/x/sk_color.avi", ": ");
            }
            rt_source_close(s);
        }
        free(b);
    }
    printf("corrupt videos: %d of %d reads reported an error\n", failed, total);
    free(x);
}

/* ---- timing ------------------------------------------------------------------------- */
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* NVGesture's size: 320x240 at 30 frames a second, 80-frame clips read
 * to 64 frames of 224x224. */
static void test_timing(void) {
    mkdirs("big/Video_data/class_01/subject1_r0");
    /* Content like a camera's (the test pattern's is mostly edges, slow to decode). */
    char cmd[2048];
    for (int k = 0; k < 2; k++) {
        snprintf(cmd, sizeof cmd,
                 "ffmpeg -nostdin -loglevel error -y -f lavfi -i testsrc2=size=320x240:rate=30 -frames:v 200 %s -c:v mjpeg -q:v 3 '%s'",
                 k ? "-vf format=gray" : "", path_of(k ? "big/Video_data/class_01/subject1_r0/sk_depth.avi" : "big/Video_data/class_01/subject1_r0/sk_color.avi"));
        REQUIRE(system(cmd) == 0, "%s", cmd);
    }
    write_text("big/b.lst", "path:./Video_data/class_01/subject1_r0 depth:sk_depth:100:180 color:sk_color:100:180 label:1\n");
    rt_source_input in[2] = {clip_input("rgb", 3, 64, 224, 224), clip_input("depth", 1, 64, 224, 224)};
    rt_source *s = open_ok("big/b.lst", COLOR_DEPTH, 2, in);
    float *x = malloc(sizeof(float) * 3 * 64 * 224 * 224);
    char err[1024];
    for (int in_k = 0; in_k < 2; in_k++) {
        int reps = 5;
        double best = 1e9;
        for (int r = 0; r < reps; r++) {
            double t0 = now();
            REQUIRE(s->read(s, 0, in_k, x, err, sizeof err) == 0, "%s", err);
            double t = now() - t0;
            if (t < best) best = t;
        }
        printf("%s: 80 frames of 320x240 MJPEG to [%d, 64, 224, 224]: %.1f ms a read (best of %d)\n", in_k ? "depth" : "color",
               in_k ? 1 : 3, best * 1e3, reps);
    }
    free(x);
    rt_source_close(s);
}

int main(void) {
    if (system("ffmpeg -version > /dev/null 2>&1") != 0) {
        printf("SKIP: no ffmpeg command to write the test videos\n");
        return 77;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(g_root, sizeof g_root, "%s/mmnet_clips_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    REQUIRE(mkdtemp(g_root), "%s", g_root);
    atexit(cleanup);

    make_dataset();
    test_labels();
    test_frames_native();
    test_sampling_and_resize();
    test_channel_conversion();
    test_seek();
    test_lossy();
    test_yuv();
    test_threads();
    test_list_errors();
    test_read_errors();
    test_corrupt();
    test_timing();
    return check_summary("test_clips");
}
