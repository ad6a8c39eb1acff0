/* rt_ckpt.c — checkpoints in the safetensors format
 * (https://huggingface.co/docs/safetensors), so that Python can read them:
 *
 *   8 bytes   N, little-endian unsigned
 *   N bytes   UTF-8 JSON: {"name": {"dtype": "F32", "shape": [..],
 *             "data_offsets": [begin, end]}, ..., "__metadata__": {"k": "v"}},
 *             padded with spaces so that the data starts 8-aligned
 *   the rest  raw little-endian tensor bytes, contiguous, in table order
 *
 * Saving is atomic (temporary file, fsync, rename, fsync of the directory),
 * so a crash never leaves a half-written checkpoint at the path. Loading
 * validates every field before handing out a pointer into the data. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "mmrt.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "rt_ckpt.c writes tensors in host order, which safetensors requires to be little-endian"
#endif

#define CKPT_MAX_HEADER (100u << 20) /* bytes; a larger header is corruption, not a model */
#define CKPT_MAX_DIM 8               /* dimensions accepted when loading */
#define CKPT_SAVE_MAX_DIM 5          /* rt_tensor.shape */
#define JSON_MAX_INT 9007199254740992.0 /* 2^53: integers a JSON number holds exactly */

static const char *dtype_name(int dtype) {
    switch (dtype) {
    case RT_F32: return "F32";
    case RT_F64: return "F64";
    case RT_I64: return "I64";
    default: return NULL;
    }
}

static size_t dtype_size(int dtype) { return dtype == RT_F32 ? 4 : 8; }

static int dtype_parse(const char *s) {
    for (int d = RT_F32; d <= RT_I64; d++) {
        const char *n = dtype_name(d);
        if (n && strcmp(s, n) == 0) return d;
    }
    return -1;
}

/* safetensors readers reject a header that is not UTF-8; check names and
 * metadata before writing rather than produce an unreadable file. */
static bool utf8_valid(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n;
        uint32_t c;
        if (*p < 0x80) {
            p++;
            continue;
        } else if ((*p & 0xe0) == 0xc0) n = 1, c = *p & 0x1f;
        else if ((*p & 0xf0) == 0xe0) n = 2, c = *p & 0x0f;
        else if ((*p & 0xf8) == 0xf0) n = 3, c = *p & 0x07;
        else return false;
        p++;
        for (int i = 0; i < n; i++, p++) {
            if ((*p & 0xc0) != 0x80) return false;
            c = c << 6 | (*p & 0x3f);
        }
        /* overlong forms, surrogates, beyond U+10FFFF */
        if ((n == 1 && c < 0x80) || (n == 2 && c < 0x800) || (n == 3 && c < 0x10000) || (c >= 0xd800 && c <= 0xdfff) ||
            c > 0x10ffff)
            return false;
    }
    return true;
}

/* ---- saving ------------------------------------------------------------------ */
static cJSON *ck(cJSON *x) {
    if (!x) rt_die("out of memory building a checkpoint header");
    return x;
}

/* An exact integer: cJSON would print numbers >= 1e15 with an exponent,
 * which safetensors' integer fields do not accept. */
static cJSON *json_u64(uint64_t v) {
    char s[32];
    snprintf(s, sizeof s, "%llu", (unsigned long long)v);
    return ck(cJSON_CreateRaw(s));
}

/* Bytes of tensor t, or -1 (with err) when the description is unusable. */
static long long tensor_bytes(const char *path, const rt_tensor *t, char *err, size_t errlen) {
    const char *name = t->name ? t->name : "(null)";
    if (!dtype_name(t->dtype)) {
        rt_set_err(err, errlen, "%s: tensor '%s': unknown dtype %d", path, name, t->dtype);
        return -1;
    }
    if (t->ndim < 0 || t->ndim > CKPT_SAVE_MAX_DIM) {
        rt_set_err(err, errlen, "%s: tensor '%s': %d dimensions (0..%d supported)", path, name, t->ndim, CKPT_SAVE_MAX_DIM);
        return -1;
    }
    uint64_t numel = 1;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] < 0 || (double)t->shape[d] > JSON_MAX_INT) {
            rt_set_err(err, errlen, "%s: tensor '%s': bad dimension %lld", path, name, (long long)t->shape[d]);
            return -1;
        }
        numel *= (uint64_t)t->shape[d];
        if ((double)numel > JSON_MAX_INT / 8) {
            rt_set_err(err, errlen, "%s: tensor '%s': too large", path, name);
            return -1;
        }
    }
    uint64_t bytes = numel * dtype_size(t->dtype);
    if (bytes > 0 && !t->data) {
        rt_set_err(err, errlen, "%s: tensor '%s': no data", path, name);
        return -1;
    }
    return (long long)bytes;
}

/* The JSON header, padded; NULL (with err) when a name or value is unusable. */
static char *build_header(const char *path, const rt_tensor *t, int n, const char *const *meta, int n_meta, size_t *hlen,
                          char *err, size_t errlen) {
    if (n < 0 || n_meta < 0 || (n > 0 && !t) || (n_meta > 0 && !meta)) {
        rt_set_err(err, errlen, "%s: internal: bad tensor or metadata table", path);
        return NULL;
    }
    cJSON *root = ck(cJSON_CreateObject());
    if (n_meta > 0) {
        cJSON *md = ck(cJSON_CreateObject());
        cJSON_AddItemToObject(root, "__metadata__", md);
        for (int i = 0; i < n_meta; i++) {
            const char *k = meta[2 * i], *v = meta[2 * i + 1];
            if (!k || !v || !utf8_valid(k) || !utf8_valid(v)) {
                rt_set_err(err, errlen, "%s: metadata entry %d is missing or not valid UTF-8", path, i);
                cJSON_Delete(root);
                return NULL;
            }
            cJSON_AddItemToObject(md, k, ck(cJSON_CreateString(v)));
        }
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        long long bytes = tensor_bytes(path, &t[i], err, errlen);
        if (bytes < 0) {
            cJSON_Delete(root);
            return NULL;
        }
        const char *name = t[i].name;
        const char *why = !name || !name[0] ? "has no name"
                          : !utf8_valid(name) ? "has a name that is not valid UTF-8"
                          : strcmp(name, "__metadata__") == 0 ? "uses the reserved name"
                          : cJSON_GetObjectItemCaseSensitive(root, name) ? "appears twice"
                                                                         : NULL;
        if (why) {
            rt_set_err(err, errlen, "%s: tensor %d ('%s') %s", path, i, name ? name : "", why);
            cJSON_Delete(root);
            return NULL;
        }
        cJSON *e = ck(cJSON_CreateObject());
        cJSON_AddItemToObject(root, name, e);
        cJSON_AddItemToObject(e, "dtype", ck(cJSON_CreateString(dtype_name(t[i].dtype))));
        cJSON *sh = ck(cJSON_CreateArray());
        cJSON_AddItemToObject(e, "shape", sh);
        for (int d = 0; d < t[i].ndim; d++) cJSON_AddItemToArray(sh, json_u64((uint64_t)t[i].shape[d]));
        cJSON *of = ck(cJSON_CreateArray());
        cJSON_AddItemToObject(e, "data_offsets", of);
        cJSON_AddItemToArray(of, json_u64(off));
        cJSON_AddItemToArray(of, json_u64(off + (uint64_t)bytes));
        off += (uint64_t)bytes;
    }
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!json) rt_die("out of memory printing a checkpoint header");
    size_t len = strlen(json), pad = (8 - (8 + len) % 8) % 8;
    char *h = rt_alloc(len + pad + 1);
    memcpy(h, json, len);
    memset(h + len, ' ', pad);
    free(json);
    *hlen = len + pad;
    return h;
}

static bool write_all(FILE *f, const void *p, size_t n) { return n == 0 || fwrite(p, 1, n, f) == n; }

int rt_ckpt_save(const char *path, const rt_tensor *t, int n, const char *const *meta, int n_meta, char *err, size_t errlen) {
    size_t hlen;
    char *hdr = build_header(path, t, n, meta, n_meta, &hlen, err, errlen);
    if (!hdr) return -1;

    size_t plen = strlen(path);
    char *tmp = rt_alloc(plen + 32);
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        rt_set_err(err, errlen, "%s: cannot create the temporary file %s: %s", path, tmp, strerror(errno));
        free(hdr);
        free(tmp);
        return -1;
    }
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        rt_set_err(err, errlen, "%s: cannot write the temporary file %s: %s", path, tmp, strerror(errno));
        close(fd);
        goto fail;
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    bool ok = write_all(f, len8, 8) && write_all(f, hdr, hlen);
    for (int i = 0; ok && i < n; i++) ok = write_all(f, t[i].data, (size_t)tensor_bytes(path, &t[i], NULL, 0));
    const char *step = "write";
    if (ok && (step = "flush", fflush(f) != 0)) ok = false;
    if (ok && (step = "fsync", fsync(fileno(f)) != 0)) ok = false;
    if (!ok) {
        int e = errno;
        fclose(f);
        rt_set_err(err, errlen, "%s: %s of the temporary file %s failed: %s", path, step, tmp, strerror(e));
        goto fail;
    }
    if (fclose(f) != 0) {
        rt_set_err(err, errlen, "%s: closing the temporary file %s failed: %s", path, tmp, strerror(errno));
        goto fail;
    }
    if (rename(tmp, path) != 0) {
        rt_set_err(err, errlen, "%s: cannot rename %s to it: %s", path, tmp, strerror(errno));
        goto fail;
    }
    free(hdr);
    free(tmp);

    /* Make the rename itself durable. Some file systems cannot fsync a
     * directory (EINVAL): the file is in place, so that is not a failure. */
    char *dir = rt_alloc(plen + 2);
    const char *slash = strrchr(path, '/');
    if (!slash) strcpy(dir, ".");
    else if (slash == path) strcpy(dir, "/");
    else memcpy(dir, path, (size_t)(slash - path));
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;
    if (dfd < 0 || (fsync(dfd) != 0 && errno != EINVAL && errno != ENOTSUP)) {
        rt_set_err(err, errlen, "%s: written, but syncing its directory %s failed: %s", path, dir, strerror(errno));
        rc = -1;
    }
    if (dfd >= 0) close(dfd);
    free(dir);
    return rc;

fail:
    unlink(tmp);
    free(hdr);
    free(tmp);
    return -1;
}

/* ---- loading ------------------------------------------------------------------ */
typedef struct {
    const char *name;         /* into the cJSON tree */
    int dtype, ndim;
    int64_t shape[CKPT_MAX_DIM];
    uint64_t begin, end;      /* data_offsets */
    const void *data;
    void *owned;              /* an aligned copy when the file's bytes were not */
} ck_entry;

struct rt_ckpt {
    uint8_t *buf;             /* the whole file */
    cJSON *root;
    const cJSON *meta;        /* "__metadata__" or NULL */
    int n;
    ck_entry *t;
};

void rt_ckpt_free(rt_ckpt *c) {
    if (!c) return;
    for (int i = 0; i < c->n; i++) free(c->t[i].owned);
    free(c->t);
    cJSON_Delete(c->root);
    free(c->buf);
    free(c);
}

/* A non-negative integer JSON number up to 2^53. */
static bool json_uint(const cJSON *x, uint64_t *v) {
    if (!cJSON_IsNumber(x)) return false;
    double d = x->valuedouble;
    if (!(d >= 0) || d > JSON_MAX_INT || d != floor(d)) return false;
    *v = (uint64_t)d;
    return true;
}

static void fmt_shape(char *s, size_t n, const ck_entry *e) {
    size_t k = (size_t)snprintf(s, n, "[");
    for (int d = 0; d < e->ndim && k < n; d++) k += (size_t)snprintf(s + k, n - k, "%s%lld", d ? "," : "", (long long)e->shape[d]);
    if (k < n) snprintf(s + k, n - k, "]");
}

/* One tensor entry of the header, checked against the data section. */
static int parse_entry(const char *path, const cJSON *j, const uint8_t *data, uint64_t dsize, ck_entry *e, char *err,
                       size_t errlen) {
    const char *name = j->string;
    e->name = name;
    if (!cJSON_IsObject(j)) {
        rt_set_err(err, errlen, "%s: tensor '%s': entry is not a JSON object", path, name);
        return -1;
    }
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(j, "dtype"), *sh = cJSON_GetObjectItemCaseSensitive(j, "shape"),
                *of = cJSON_GetObjectItemCaseSensitive(j, "data_offsets");
    if (!cJSON_IsString(dt)) {
        rt_set_err(err, errlen, "%s: tensor '%s': no \"dtype\" string", path, name);
        return -1;
    }
    if ((e->dtype = dtype_parse(dt->valuestring)) < 0) {
        rt_set_err(err, errlen, "%s: tensor '%s': unsupported dtype '%s' (F32, F64 or I64 expected)", path, name, dt->valuestring);
        return -1;
    }
    if (!cJSON_IsArray(sh) || cJSON_GetArraySize(sh) > CKPT_MAX_DIM) {
        rt_set_err(err, errlen, "%s: tensor '%s': \"shape\" is not an array of at most %d integers", path, name, CKPT_MAX_DIM);
        return -1;
    }
    uint64_t numel = 1;
    bool too_big = false;
    const cJSON *x;
    cJSON_ArrayForEach(x, sh) {
        uint64_t v;
        if (!json_uint(x, &v)) {
            rt_set_err(err, errlen, "%s: tensor '%s': \"shape\" holds something other than a non-negative integer", path, name);
            return -1;
        }
        e->shape[e->ndim++] = (int64_t)v;
        /* numel * 8 must not overflow; anything near that is corrupt anyway */
        if (v != 0 && numel > (UINT64_MAX / 8) / v) too_big = true;
        else numel *= v;
    }
    uint64_t b, en, es = dtype_size(e->dtype);
    if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2 || !json_uint(of->child, &b) || !json_uint(of->child->next, &en)) {
        rt_set_err(err, errlen, "%s: tensor '%s': \"data_offsets\" is not a pair of non-negative integers", path, name);
        return -1;
    }
    if (b > en || en > dsize) {
        rt_set_err(err, errlen, "%s: tensor '%s': data_offsets [%llu, %llu] lie outside the data section (%llu bytes): truncated or corrupt", path, name,
                (unsigned long long)b, (unsigned long long)en, (unsigned long long)dsize);
        return -1;
    }
    /* A tensor with a zero dimension is empty, whatever the others say. */
    bool empty = false;
    for (int d = 0; d < e->ndim; d++) empty |= e->shape[d] == 0;
    if (empty) too_big = false, numel = 0;
    if (too_big || en - b != numel * es) {
        char s[8 * 24];
        fmt_shape(s, sizeof s, e);
        if (too_big)
            rt_set_err(err, errlen, "%s: tensor '%s': shape %s of %s is too large", path, name, s, dt->valuestring);
        else
            rt_set_err(err, errlen, "%s: tensor '%s': data_offsets [%llu, %llu] do not match shape %s of %s (%llu bytes)", path,
                    name, (unsigned long long)b, (unsigned long long)en, s, dt->valuestring,
                    (unsigned long long)(numel * es));
        return -1;
    }
    e->begin = b;
    e->end = en;
    const uint8_t *p = data + b;
    if ((uintptr_t)p % es != 0) {
        /* Only a file written by someone else can misalign a tensor. */
        e->owned = rt_alloc(en - b);
        memcpy(e->owned, p, en - b);
        p = e->owned;
    }
    e->data = p;
    return 0;
}

static int by_begin(const void *a, const void *b) {
    const ck_entry *x = *(const ck_entry *const *)a, *y = *(const ck_entry *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : x->end < y->end ? -1 : x->end > y->end;
}

/* No two tensors share bytes: each one's data is its own (a writer that
 * aliased them would make a change to one a change to the other). */
static int check_overlaps(const char *path, const rt_ckpt *c, char *err, size_t errlen) {
    const ck_entry **order = rt_alloc(sizeof(ck_entry *) * (size_t)(c->n + 1));
    int n = 0;
    for (int i = 0; i < c->n; i++)
        if (c->t[i].end > c->t[i].begin) order[n++] = &c->t[i];
    qsort(order, (size_t)n, sizeof *order, by_begin);
    int rc = 0;
    for (int i = 1; i < n && rc == 0; i++)
        if (order[i]->begin < order[i - 1]->end) {
            rt_set_err(err, errlen, "%s: tensors '%s' [%llu, %llu] and '%s' [%llu, %llu] overlap in the data section: corrupt", path,
                       order[i - 1]->name, (unsigned long long)order[i - 1]->begin, (unsigned long long)order[i - 1]->end,
                       order[i]->name, (unsigned long long)order[i]->begin, (unsigned long long)order[i]->end);
            rc = -1;
        }
    free(order);
    return rc;
}

rt_ckpt *rt_ckpt_load(const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        rt_set_err(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    int bad = fstat(fileno(f), &st) != 0 ? errno : S_ISDIR(st.st_mode) ? EISDIR : 0;
    if (bad) {
        rt_set_err(err, errlen, "%s: %s", path, strerror(bad));
        fclose(f);
        return NULL;
    }
    uint64_t size = (uint64_t)st.st_size;
    if (size == 0) {
        rt_set_err(err, errlen, "%s: empty file (not a safetensors checkpoint)", path);
        fclose(f);
        return NULL;
    }
    if (size < 8) {
        rt_set_err(err, errlen, "%s: too short for a safetensors checkpoint (%llu bytes)", path, (unsigned long long)size);
        fclose(f);
        return NULL;
    }
    rt_ckpt *c = rt_alloc(sizeof *c);
    c->buf = rt_alloc((size_t)size);
    size_t got = fread(c->buf, 1, (size_t)size, f);
    int rerr = ferror(f) ? errno : 0;
    fclose(f);
    if (got != size) {
        rt_set_err(err, errlen, "%s: read error: %s", path, rerr ? strerror(rerr) : "the file shrank while being read");
        goto fail;
    }
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)c->buf[i] << (8 * i);
    if (hlen > size - 8) {
        rt_set_err(err, errlen, "%s: header length %llu is larger than the rest of the file (%llu bytes): truncated or not a safetensors file",
                path, (unsigned long long)hlen, (unsigned long long)(size - 8));
        goto fail;
    }
    if (hlen > CKPT_MAX_HEADER) {
        rt_set_err(err, errlen, "%s: header length %llu exceeds the limit of %u bytes", path, (unsigned long long)hlen, CKPT_MAX_HEADER);
        goto fail;
    }
    /* cJSON wants a terminated string; a NUL inside would cut the header short. */
    char *h = rt_alloc((size_t)hlen + 1);
    memcpy(h, c->buf + 8, (size_t)hlen);
    if (memchr(h, '\0', (size_t)hlen)) {
        rt_set_err(err, errlen, "%s: header is not valid JSON (it contains a NUL byte)", path);
        free(h);
        goto fail;
    }
    const char *end = NULL;
    c->root = cJSON_ParseWithOpts(h, &end, 0);
    if (!c->root) {
        rt_set_err(err, errlen, "%s: header is not valid JSON (error at byte %lld of %llu)", path, end ? (long long)(end - h) : -1LL,
                (unsigned long long)hlen);
        free(h);
        goto fail;
    }
    size_t rest = strspn(end, " \t\r\n");
    if (end[rest] != '\0') {
        rt_set_err(err, errlen, "%s: header is not valid JSON (unexpected data at byte %lld after the object)", path,
                (long long)(end + rest - h));
        free(h);
        goto fail;
    }
    free(h);
    if (!cJSON_IsObject(c->root)) {
        rt_set_err(err, errlen, "%s: header is not a JSON object", path);
        goto fail;
    }

    const uint8_t *data = c->buf + 8 + hlen;
    uint64_t dsize = size - 8 - hlen;
    c->t = rt_alloc(sizeof(ck_entry) * (size_t)(cJSON_GetArraySize(c->root) + 1));
    const cJSON *j;
    cJSON_ArrayForEach(j, c->root) {
        if (strcmp(j->string, "__metadata__") == 0) {
            bool ok = cJSON_IsObject(j) && !c->meta;
            const cJSON *kv;
            cJSON_ArrayForEach(kv, j) ok = ok && cJSON_IsString(kv);
            if (!ok) {
                rt_set_err(err, errlen, "%s: \"__metadata__\" is not a single object of strings", path);
                goto fail;
            }
            c->meta = j;
            continue;
        }
        for (int i = 0; i < c->n; i++)
            if (strcmp(c->t[i].name, j->string) == 0) {
                rt_set_err(err, errlen, "%s: tensor '%s' appears twice in the header", path, j->string);
                goto fail;
            }
        if (parse_entry(path, j, data, dsize, &c->t[c->n], err, errlen) != 0) {
            free(c->t[c->n].owned);
            goto fail;
        }
        c->n++;
    }
    if (check_overlaps(path, c, err, errlen) != 0) goto fail;
    return c;

fail:
    rt_ckpt_free(c);
    return NULL;
}

const void *rt_ckpt_get(const rt_ckpt *c, const char *name, int dtype, int *ndim, int64_t *shape) {
    for (int i = 0; i < c->n; i++) {
        const ck_entry *e = &c->t[i];
        if (strcmp(e->name, name) != 0) continue;
        if (e->dtype != dtype) return NULL;
        if (ndim) *ndim = e->ndim;
        if (shape) memcpy(shape, e->shape, sizeof(int64_t) * (size_t)e->ndim);
        return e->data;
    }
    return NULL;
}

int rt_ckpt_count(const rt_ckpt *c) { return c->n; }

const char *rt_ckpt_name(const rt_ckpt *c, int i, int *dtype, int *ndim, int64_t *shape) {
    const ck_entry *e = &c->t[i];
    if (dtype) *dtype = e->dtype;
    if (ndim) *ndim = e->ndim;
    if (shape) memcpy(shape, e->shape, sizeof(int64_t) * (size_t)e->ndim);
    return e->name;
}

const char *rt_ckpt_meta(const rt_ckpt *c, const char *key) {
    const cJSON *v = c->meta ? cJSON_GetObjectItemCaseSensitive(c->meta, key) : NULL;
    return v && cJSON_IsString(v) ? v->valuestring : NULL;
}
