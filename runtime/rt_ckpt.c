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
 * parses the header with rt_safetensors.c, which validates every field
 * before handing out a pointer into the data. */
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
#include "rt_safetensors.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "rt_ckpt.c writes tensors in host order, which safetensors requires to be little-endian"
#endif

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
/* The dtypes a checkpoint holds, in RT_F32, RT_F64, RT_I64 order. */
static const rt_st_dtype ck_types[] = {{"F32", 4}, {"F64", 8}, {"I64", 8}};

struct rt_ckpt {
    uint8_t *buf;             /* the whole file */
    rt_st_header h;           /* its tensors, pointing into buf */
    const void **data;        /* each tensor's data: into buf, or an aligned copy */
    void **owned;             /* those copies */
};

void rt_ckpt_free(rt_ckpt *c) {
    if (!c) return;
    for (int i = 0; c->owned && i < c->h.n; i++) free(c->owned[i]);
    free(c->owned);
    free(c->data);
    rt_st_free(&c->h);
    free(c->buf);
    free(c);
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
    rt_ckpt *c = rt_alloc(sizeof *c);
    c->buf = rt_alloc((size_t)size + 1);
    size_t got = fread(c->buf, 1, (size_t)size, f);
    int rerr = ferror(f) ? errno : 0;
    fclose(f);
    if (got != size) {
        rt_set_err(err, errlen, "%s: read error: %s", path, rerr ? strerror(rerr) : "the file shrank while being read");
        goto fail;
    }
    if (rt_st_parse(path, c->buf, size, ck_types, 3, 0, &c->h, err, errlen) != 0) goto fail;
    c->data = rt_alloc(sizeof(void *) * (size_t)(c->h.n + 1));
    c->owned = rt_alloc(sizeof(void *) * (size_t)(c->h.n + 1));
    for (int i = 0; i < c->h.n; i++) {
        const rt_st_tensor *t = &c->h.t[i];
        c->owned[i] = NULL;
        c->data[i] = t->data;
        if ((uintptr_t)t->data % (uintptr_t)ck_types[t->dtype].size != 0) {
            /* Only a file written by someone else can misalign a tensor. */
            c->owned[i] = rt_alloc(t->end - t->begin + 1);
            memcpy(c->owned[i], t->data, t->end - t->begin);
            c->data[i] = c->owned[i];
        }
    }
    return c;

fail:
    rt_ckpt_free(c);
    return NULL;
}

const void *rt_ckpt_get(const rt_ckpt *c, const char *name, int dtype, int *ndim, int64_t *shape) {
    for (int i = 0; i < c->h.n; i++) {
        const rt_st_tensor *e = &c->h.t[i];
        if (strcmp(e->name, name) != 0) continue;
        if (e->dtype != dtype) return NULL;
        if (ndim) *ndim = e->ndim;
        if (shape) memcpy(shape, e->shape, sizeof(int64_t) * (size_t)e->ndim);
        return c->data[i];
    }
    return NULL;
}

int rt_ckpt_count(const rt_ckpt *c) { return c->h.n; }

const char *rt_ckpt_name(const rt_ckpt *c, int i, int *dtype, int *ndim, int64_t *shape) {
    const rt_st_tensor *e = &c->h.t[i];
    if (dtype) *dtype = e->dtype;
    if (ndim) *ndim = e->ndim;
    if (shape) memcpy(shape, e->shape, sizeof(int64_t) * (size_t)e->ndim);
    return e->name;
}

const char *rt_ckpt_meta(const rt_ckpt *c, const char *key) {
    const cJSON *v = c->h.meta ? cJSON_GetObjectItemCaseSensitive(c->h.meta, key) : NULL;
    return v && cJSON_IsString(v) ? v->valuestring : NULL;
}
