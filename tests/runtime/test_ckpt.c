/* test_ckpt.c — unit tests of rt_ckpt.c: round trips of F32/F64/I64
 * tensors and metadata, the safetensors layout (length, JSON header,
 * 8-byte alignment), atomic saving (no temporary left behind, an existing
 * checkpoint survives a failed save) and the rejection of corrupt files.
 * Works in a fresh directory under $TMPDIR (default /tmp), removed at exit.
 * Exit 0 when every check passes (tests/check.h). */
#define _XOPEN_SOURCE 700 /* nftw, mkdtemp */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../check.h"
#include "mmrt.h"

static char g_root[1024];

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

static void cleanup(void) {
    if (g_root[0]) nftw(g_root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void path_in(char *buf, size_t n, const char *name) {
    int k = snprintf(buf, n, "%s/%s", g_root, name);
    REQUIRE(k > 0 && (size_t)k < n);
}

/* s is the string want (and not NULL). */
static int str_is(const char *s, const char *want) { return s && strcmp(s, want) == 0; }

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

static void write_whole(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    REQUIRE(f, "%s", path);
    REQUIRE(n == 0 || fwrite(b, 1, n, f) == n);
    REQUIRE(fclose(f) == 0);
}

/* Entries in the test directory whose name contains ".tmp." */
static int count_temps(void) {
    DIR *d = opendir(g_root);
    REQUIRE(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

/* A file: 8-byte length, the given header text, then the data bytes. */
static void write_st(const char *path, const char *json, const void *data, size_t ndata) {
    size_t h = strlen(json);
    uint8_t *b = malloc(8 + h + ndata + 1);
    REQUIRE(b);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)h >> (8 * i));
    memcpy(b + 8, json, h);
    if (ndata) memcpy(b + 8 + h, data, ndata);
    write_whole(path, b, 8 + h + ndata);
    free(b);
}

/* ---- the test tensors -------------------------------------------------------- */
static float g_w[2 * 3 * 5];
static double g_d[4];
static int64_t g_k[3] = {-5, 0, 1234567890123LL};
static float g_s = 3.25f;

static int make_tensors(rt_tensor *t) {
    for (int i = 0; i < 30; i++) g_w[i] = (float)i * 0.5f - 3.0f;
    for (int i = 0; i < 4; i++) g_d[i] = 1.0 / (i + 3);
    t[0] = (rt_tensor){"c.conv1.weight", 3, {2, 3, 5}, RT_F32, g_w};
    t[1] = (rt_tensor){"train.speed_sums", 1, {4}, RT_F64, g_d};
    t[2] = (rt_tensor){"train.step_kinds", 1, {3}, RT_I64, g_k};
    t[3] = (rt_tensor){"scalar", 0, {0}, RT_F32, &g_s};
    t[4] = (rt_tensor){"empty", 2, {0, 7}, RT_F32, NULL};
    return 5;
}

static const char *const g_meta[] = {"model", "tiny", "epoch", "7", "note", "unicode \xc3\xa9 \"quoted\" \\ tab\t."};

static void test_round_trip(void) {
    char p[1200], err[1024];
    rt_tensor t[8];
    int n = make_tensors(t);
    path_in(p, sizeof p, "rt.safetensors");
    REQUIRE(rt_ckpt_save(p, t, n, g_meta, 3, err, sizeof err) == 0, "%s", err);
    CHECK(count_temps() == 0);

    /* the layout, checked by hand */
    size_t len;
    uint8_t *b = read_whole(p, &len);
    uint64_t h = 0;
    for (int i = 0; i < 8; i++) h |= (uint64_t)b[i] << (8 * i);
    REQUIRE(len >= 8 && h <= len - 8 && (8 + h) % 8 == 0);
    REQUIRE(len - 8 - h == sizeof g_w + sizeof g_d + sizeof g_k + sizeof g_s);
    CHECK(b[8] == '{');
    cJSON *j = cJSON_ParseWithLength((const char *)b + 8, h);
    REQUIRE(j && cJSON_IsObject(j));
    cJSON *w = cJSON_GetObjectItemCaseSensitive(j, "c.conv1.weight");
    CHECK(w && str_is(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(w, "dtype")), "F32"));
    cJSON *sh = cJSON_GetObjectItemCaseSensitive(w, "shape"), *of = cJSON_GetObjectItemCaseSensitive(w, "data_offsets");
    CHECK(cJSON_GetArraySize(sh) == 3 && cJSON_GetArrayItem(sh, 2)->valuedouble == 5);
    CHECK(cJSON_GetArraySize(of) == 2 && of->child->valuedouble == 0 && of->child->next->valuedouble == sizeof g_w);
    cJSON *md = cJSON_GetObjectItemCaseSensitive(j, "__metadata__");
    CHECK(md && str_is(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(md, "epoch")), "7"));
    CHECK(memcmp(b + 8 + h, g_w, sizeof g_w) == 0); /* first tensor first, raw little-endian */
    cJSON_Delete(j);
    free(b);

    /* and through the loader */
    rt_ckpt *c = rt_ckpt_load(p, err, sizeof err);
    REQUIRE(c, "%s", err);
    int nd = -1;
    int64_t shape[8];
    const float *wf = rt_ckpt_get(c, "c.conv1.weight", RT_F32, &nd, shape);
    CHECK(wf && nd == 3 && shape[0] == 2 && shape[1] == 3 && shape[2] == 5);
    CHECK(wf && memcmp(wf, g_w, sizeof g_w) == 0);
    CHECK((uintptr_t)wf % 8 == 0);
    const double *df = rt_ckpt_get(c, "train.speed_sums", RT_F64, &nd, shape);
    CHECK(df && nd == 1 && shape[0] == 4 && memcmp(df, g_d, sizeof g_d) == 0 && (uintptr_t)df % 8 == 0);
    const int64_t *kf = rt_ckpt_get(c, "train.step_kinds", RT_I64, &nd, shape);
    CHECK(kf && nd == 1 && shape[0] == 3 && memcmp(kf, g_k, sizeof g_k) == 0 && (uintptr_t)kf % 8 == 0);
    const float *sf = rt_ckpt_get(c, "scalar", RT_F32, &nd, shape);
    CHECK(sf && nd == 0 && *sf == g_s);
    CHECK(rt_ckpt_get(c, "empty", RT_F32, &nd, shape) && nd == 2 && shape[0] == 0 && shape[1] == 7);
    CHECK(rt_ckpt_get(c, "c.conv1.weight", RT_F32, NULL, NULL) == wf);
    CHECK(rt_ckpt_get(c, "c.conv1.weight", RT_F64, &nd, shape) == NULL); /* wrong dtype */
    CHECK(rt_ckpt_get(c, "nope", RT_F32, &nd, shape) == NULL);
    CHECK(str_is(rt_ckpt_meta(c, "model"), "tiny"));
    CHECK(str_is(rt_ckpt_meta(c, "note"), g_meta[5]));
    CHECK(rt_ckpt_meta(c, "absent") == NULL);
    rt_ckpt_free(c);

    /* saving over an existing file replaces it; no tensors, no metadata is fine */
    CHECK(rt_ckpt_save(p, NULL, 0, NULL, 0, err, sizeof err) == 0, "%s", err);
    c = rt_ckpt_load(p, err, sizeof err);
    CHECK(c && rt_ckpt_get(c, "c.conv1.weight", RT_F32, NULL, NULL) == NULL && rt_ckpt_meta(c, "model") == NULL);
    rt_ckpt_free(c);
    CHECK(count_temps() == 0);
    CHECK(remove(p) == 0);
    printf("round trip: done\n");
}

/* A file another writer could produce: header not padded, so the data and
 * the tensors start unaligned; the loader must still hand out aligned data. */
static void test_unaligned(void) {
    char p[1200], err[1024];
    path_in(p, sizeof p, "unaligned.safetensors");
    double v[2] = {1.5, -2.25};
    uint8_t data[1 + sizeof v];
    data[0] = 0xee;
    memcpy(data + 1, v, sizeof v);
    write_st(p, "{\"pad\":{\"dtype\":\"I64\",\"shape\":[0],\"data_offsets\":[0,0]},"
                "\"v\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[1,17]}}",
             data, sizeof data);
    rt_ckpt *c = rt_ckpt_load(p, err, sizeof err);
    REQUIRE(c, "%s", err);
    const double *d = rt_ckpt_get(c, "v", RT_F64, NULL, NULL);
    CHECK(d && (uintptr_t)d % 8 == 0 && d[0] == 1.5 && d[1] == -2.25);
    rt_ckpt_free(c);
    remove(p);
    printf("unaligned: done\n");
}

static void test_failed_saves(void) {
    char p[1200], err[1024] = "";
    rt_tensor t[8];
    int n = make_tensors(t);

    /* into a missing directory: -1, the path and the errno text, nothing left */
    path_in(p, sizeof p, "no-such-dir/x.safetensors");
    CHECK(rt_ckpt_save(p, t, n, g_meta, 3, err, sizeof err) == -1);
    CHECK_ERR(err, p, "No such file or directory");
    path_in(p, sizeof p, "no-such-dir");
    CHECK(access(p, F_OK) != 0);
    CHECK(count_temps() == 0);

    /* an existing checkpoint survives a save that fails while writing: a
     * file size limit makes write() fail with EFBIG (works as root too) */
    path_in(p, sizeof p, "keep.safetensors");
    REQUIRE(rt_ckpt_save(p, t, n, g_meta, 3, err, sizeof err) == 0, "%s", err);
    size_t len0;
    uint8_t *before = read_whole(p, &len0);
    static float big[1 << 18];
    rt_tensor bt = {"big", 1, {1 << 18}, RT_F32, big};
    struct rlimit old, lim;
    REQUIRE(getrlimit(RLIMIT_FSIZE, &old) == 0);
    lim = old;
    lim.rlim_cur = 64 << 10;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    REQUIRE(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    int rc = rt_ckpt_save(p, &bt, 1, NULL, 0, err, sizeof err);
    REQUIRE(setrlimit(RLIMIT_FSIZE, &old) == 0);
    signal(SIGXFSZ, prev);
    CHECK(rc == -1);
    CHECK_ERR(err, p, "File too large");
    printf("  failed save: %s\n", err);
    size_t len1;
    uint8_t *after = read_whole(p, &len1);
    CHECK(len0 == len1 && memcmp(before, after, len0) == 0);
    free(before);
    free(after);
    CHECK(count_temps() == 0);

    /* bad descriptions are refused before anything is written */
    rt_tensor bad[2] = {t[0], t[0]};
    CHECK(rt_ckpt_save(p, bad, 2, NULL, 0, err, sizeof err) == -1);
    CHECK_ERR(err, "c.conv1.weight", "appears twice");
    bad[1].name = "other", bad[1].dtype = 9;
    CHECK(rt_ckpt_save(p, bad, 2, NULL, 0, err, sizeof err) == -1);
    CHECK_ERR(err, "other", "unknown dtype");
    bad[1] = t[1], bad[1].name = "__metadata__";
    CHECK(rt_ckpt_save(p, bad, 2, NULL, 0, err, sizeof err) == -1);
    CHECK_ERR(err, "__metadata__", "reserved");
    const char *badmeta[] = {"k", "\xff\xfe"};
    CHECK(rt_ckpt_save(p, t, 1, badmeta, 1, err, sizeof err) == -1);
    CHECK_ERR(err, p, "UTF-8");
    CHECK(count_temps() == 0);
    after = read_whole(p, &len1);
    CHECK(len0 == len1);
    free(after);
    remove(p);
    printf("failed saves: done\n");
}

/* ---- corrupt files: one row per case, one loop ------------------------------ */
typedef enum {
    CUT,    /* the good checkpoint's first n bytes (n < 0: all but its last -n) */
    BYTES,  /* the n bytes at text */
    HEADER, /* an 8-byte length, text as the header, then n bytes of the floats 1, 2, 3, 4 */
    ABSENT, /* no file at all */
} How;

static const struct {
    const char *name; /* the file is name.safetensors */
    How how;
    long n;
    const char *text;
    const char *phrase; /* what the error says, besides the file's path */
} k_corrupt[] = {
    {"truncated", CUT, -4, NULL, "lie outside the data section"},
    {"header-cut", CUT, 8 + 10, NULL, "larger than the rest of the file"},
    {"empty", CUT, 0, NULL, "empty file"},
    {"short", CUT, 5, NULL, "too short"},
    {"huge-len", BYTES, 16, "\0\0\0\0\0\0\0\x10{}\0\0\0\0\0\0", "larger than the rest of the file"},
    {"json-unclosed", HEADER, 16, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]", "not valid JSON"},
    {"json-trailing", HEADER, 16, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}} x", "not valid JSON"},
    {"json-array", HEADER, 16, "[1, 2]", "not a JSON object"},
    {"offsets-shape", HEADER, 16, "{\"c.conv1.weight\":{\"dtype\":\"F32\",\"shape\":[32,3,5,5],\"data_offsets\":[0,16]}}",
     "tensor 'c.conv1.weight': data_offsets [0, 16] hold 16 bytes, but shape [32, 3, 5, 5] of F32 needs 9600"},
    {"offsets-reversed", HEADER, 16, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,4]}}", "data_offsets [12, 4]"},
    {"offsets-one", HEADER, 16, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0]}}", "\"data_offsets\" is not a pair"},
    {"offsets-negative", HEADER, 16, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[-16,0]}}", "\"data_offsets\" is not a pair"},
    {"shape-overflow", HEADER, 16, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4000000000,4000000000,4000000000],\"data_offsets\":[0,16]}}",
     "shape [4000000000, 4000000000, 4000000000] of F32 is too large"},
    {"dtype-f16", HEADER, 16, "{\"a\":{\"dtype\":\"F16\",\"shape\":[8],\"data_offsets\":[0,16]}}", "unsupported dtype 'F16'"},
    {"dtype-missing", HEADER, 16, "{\"a\":{\"shape\":[4],\"data_offsets\":[0,16]}}", "no \"dtype\""},
    {"meta-number", HEADER, 16, "{\"__metadata__\":{\"epoch\":3},\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
     "\"__metadata__\" is not a single object of strings"},
    {"shape-9-dims", HEADER, 16, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,4],\"data_offsets\":[0,16]}}", "at most 8"},
    {"shape-negative", HEADER, 16, "{\"a\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", "non-negative integer"},
    {"shape-fraction", HEADER, 16, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,16]}}", "non-negative integer"},
    {"name-twice", HEADER, 16,
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
     "appears twice"},
    {"overlap", HEADER, 16,
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
     "overlap"},
    {"overlap-same", HEADER, 16,
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
     "overlap"},
    {"meta-not-string", HEADER, 0, "{\"__metadata__\":{\"epoch\":7}}", "__metadata__"},
    {"does-not-exist", ABSENT, 0, NULL, "No such file or directory"},
};

/* Each case: its file written, loading it fails (and does not crash), and
 * the error names the file and says the phrase. */
static void test_corrupt(void) {
    char p[1200], err[1024];
    rt_tensor t[8];
    int n = make_tensors(t);
    path_in(p, sizeof p, "good.safetensors");
    REQUIRE(rt_ckpt_save(p, t, n, g_meta, 3, err, sizeof err) == 0, "%s", err);
    size_t len;
    uint8_t *good = read_whole(p, &len);
    const float f[4] = {1, 2, 3, 4};
    const int ncases = (int)(sizeof k_corrupt / sizeof k_corrupt[0]);

    for (int i = 0; i < ncases; i++) {
        char name[256];
        snprintf(name, sizeof name, "%s.safetensors", k_corrupt[i].name);
        path_in(p, sizeof p, name);
        const long k = k_corrupt[i].n;
        switch (k_corrupt[i].how) {
        case CUT:
            REQUIRE(k < 0 ? (size_t)-k <= len : (size_t)k <= len);
            write_whole(p, good, k < 0 ? len - (size_t)-k : (size_t)k);
            break;
        case BYTES: write_whole(p, k_corrupt[i].text, (size_t)k); break;
        case HEADER:
            REQUIRE(k >= 0 && (size_t)k <= sizeof f);
            write_st(p, k_corrupt[i].text, f, (size_t)k);
            break;
        case ABSENT: break;
        }
        printf("  %s: ", k_corrupt[i].name);
        fflush(stdout); /* a crash while loading shows which case */
        strcpy(err, "(no error message)");
        rt_ckpt *c = rt_ckpt_load(p, err, sizeof err);
        CHECK(c == NULL, "%s: loaded, but should be rejected (%s)", name, k_corrupt[i].phrase);
        rt_ckpt_free(c);
        CHECK_ERR(err, p, k_corrupt[i].phrase);
        printf("rejected: %s\n", err);
    }

    /* 8 + 8 header bytes of padding spaces are fine; a well-formed file written by hand loads */
    path_in(p, sizeof p, "hand.safetensors");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}     ", f, sizeof f);
    rt_ckpt *c = rt_ckpt_load(p, err, sizeof err);
    REQUIRE(c, "%s", err);
    const float *a = rt_ckpt_get(c, "a", RT_F32, NULL, NULL);
    CHECK(a && a[3] == 4.0f);
    rt_ckpt_free(c);
    /* tensors side by side in any order, and empty ones anywhere, are not overlaps */
    write_st(p, "{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]},\"e\":{\"dtype\":\"F32\",\"shape\":[0],"
                "\"data_offsets\":[4,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
             f, sizeof f);
    c = rt_ckpt_load(p, err, sizeof err);
    CHECK(c != NULL, "%s", err);
    rt_ckpt_free(c);

    free(good);
    printf("corrupt files: %d cases, and a hand-written file\n", ncases);
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !tmp[0]) tmp = "/tmp";
    snprintf(g_root, sizeof g_root, "%s/mmrt_test_ckpt.XXXXXX", tmp);
    if (!mkdtemp(g_root)) {
        perror(g_root);
        return 1;
    }
    atexit(cleanup);
    test_round_trip();
    test_unaligned();
    test_failed_saves();
    test_corrupt();
    return check_summary("test_ckpt");
}
