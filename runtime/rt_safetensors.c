/* rt_safetensors.c — the safetensors header parser (rt_safetensors.h).
 *
 *   8 bytes   N, little-endian unsigned
 *   N bytes   UTF-8 JSON: {"name": {"dtype": "F32", "shape": [..],
 *             "data_offsets": [begin, end]}, ..., "__metadata__": {"k": "v"}}
 *   the rest  the data section: raw little-endian tensor bytes */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mmrt.h"
#include "rt_safetensors.h"

#define JSON_MAX_INT 9007199254740992.0 /* 2^53: integers a JSON number holds exactly */

void rt_st_free(rt_st_header *h) {
    free(h->t);
    cJSON_Delete(h->root);
    memset(h, 0, sizeof *h);
}

/* A non-negative integer JSON number up to 2^53. */
static bool json_uint(const cJSON *x, uint64_t *v) {
    if (!cJSON_IsNumber(x)) return false;
    double d = x->valuedouble;
    if (!(d >= 0) || d > JSON_MAX_INT || d != floor(d)) return false;
    *v = (uint64_t)d;
    return true;
}

void rt_st_fmt_shape(char *s, size_t n, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(s, n, "[");
    for (int d = 0; d < ndim && k < n; d++) k += (size_t)snprintf(s + k, n - k, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (k < n) snprintf(s + k, n - k, "]");
}

/* One tensor entry of the header, checked against the data section. */
static int parse_entry(const char *path, const cJSON *j, const uint8_t *data, uint64_t dsize, const rt_st_dtype *types,
                       int ntypes, bool unknown_ok, rt_st_tensor *t, char *err, size_t errlen) {
    const char *name = j->string;
    memset(t, 0, sizeof *t);
    t->name = name;
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
    t->dtype_s = dt->valuestring;
    t->dtype = -1;
    for (int k = 0; k < ntypes; k++)
        if (strcmp(dt->valuestring, types[k].name) == 0) t->dtype = k;
    if (t->dtype < 0 && !unknown_ok) {
        char want[128] = "";
        size_t w = 0;
        for (int k = 0; k < ntypes && w < sizeof want; k++)
            w += (size_t)snprintf(want + w, sizeof want - w, "%s%s", k == 0 ? "" : k == ntypes - 1 ? " or " : ", ", types[k].name);
        rt_set_err(err, errlen, "%s: tensor '%s': unsupported dtype '%s' (%s expected)", path, name, dt->valuestring, want);
        return -1;
    }
    if (!cJSON_IsArray(sh) || cJSON_GetArraySize(sh) > RT_ST_MAX_DIM) {
        rt_set_err(err, errlen, "%s: tensor '%s': \"shape\" is not an array of at most %d integers", path, name, RT_ST_MAX_DIM);
        return -1;
    }
    uint64_t numel = 1;
    bool too_big = false, empty = false;
    const cJSON *x;
    cJSON_ArrayForEach(x, sh) {
        uint64_t v;
        if (!json_uint(x, &v)) {
            rt_set_err(err, errlen, "%s: tensor '%s': \"shape\" holds something other than a non-negative integer", path, name);
            return -1;
        }
        t->shape[t->ndim++] = (int64_t)v;
        empty |= v == 0;
        /* numel * 8 must not overflow; anything near that is corrupt anyway */
        if (v != 0 && numel > (UINT64_MAX / 8) / v) too_big = true;
        else numel *= v;
    }
    /* A tensor with a zero dimension is empty, whatever the others say. */
    if (empty) numel = 0, too_big = false;
    uint64_t b, e;
    if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2 || !json_uint(of->child, &b) || !json_uint(of->child->next, &e)) {
        rt_set_err(err, errlen, "%s: tensor '%s': \"data_offsets\" is not a pair of non-negative integers", path, name);
        return -1;
    }
    if (b > e || e > dsize) {
        rt_set_err(err, errlen, "%s: tensor '%s': data_offsets [%llu, %llu] lie outside the data section (%llu bytes): truncated or corrupt",
                   path, name, (unsigned long long)b, (unsigned long long)e, (unsigned long long)dsize);
        return -1;
    }
    /* A dtype the caller does not read still has its bytes checked for
     * overlaps; its size we cannot check. */
    if (t->dtype >= 0 && (too_big || e - b != numel * (uint64_t)types[t->dtype].size)) {
        char s[RT_ST_MAX_DIM * 24];
        rt_st_fmt_shape(s, sizeof s, t->ndim, t->shape);
        if (too_big) rt_set_err(err, errlen, "%s: tensor '%s': shape %s of %s is too large", path, name, s, t->dtype_s);
        else
            rt_set_err(err, errlen, "%s: tensor '%s': data_offsets [%llu, %llu] hold %llu bytes, but shape %s of %s needs %llu", path,
                       name, (unsigned long long)b, (unsigned long long)e, (unsigned long long)(e - b), s, t->dtype_s,
                       (unsigned long long)(numel * (uint64_t)types[t->dtype].size));
        return -1;
    }
    t->begin = b;
    t->end = e;
    t->data = data + b;
    return 0;
}

static int by_begin(const void *a, const void *b) {
    const rt_st_tensor *x = *(const rt_st_tensor *const *)a, *y = *(const rt_st_tensor *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : x->end < y->end ? -1 : x->end > y->end;
}

/* No two tensors share bytes: each one's data is its own (a writer that
 * aliased them would make a change to one a change to the other). */
static int check_overlaps(const char *path, const rt_st_header *h, char *err, size_t errlen) {
    const rt_st_tensor **order = rt_alloc(sizeof(rt_st_tensor *) * (size_t)(h->n + 1));
    int n = 0;
    for (int i = 0; i < h->n; i++)
        if (h->t[i].end > h->t[i].begin) order[n++] = &h->t[i];
    qsort(order, (size_t)n, sizeof *order, by_begin);
    int rc = 0;
    for (int i = 1; i < n && rc == 0; i++)
        if (order[i]->begin < order[i - 1]->end) {
            rt_set_err(err, errlen, "%s: the data of tensors '%s' [%llu, %llu] and '%s' [%llu, %llu] overlap: corrupt", path,
                       order[i - 1]->name, (unsigned long long)order[i - 1]->begin, (unsigned long long)order[i - 1]->end,
                       order[i]->name, (unsigned long long)order[i]->begin, (unsigned long long)order[i]->end);
            rc = -1;
        }
    free(order);
    return rc;
}

int rt_st_parse(const char *path, const uint8_t *buf, uint64_t size, const rt_st_dtype *types, int ntypes, int flags,
                rt_st_header *h, char *err, size_t errlen) {
    memset(h, 0, sizeof *h);
    if (size == 0) {
        rt_set_err(err, errlen, "%s: empty file (not a safetensors file)", path);
        return -1;
    }
    if (size < 8) {
        rt_set_err(err, errlen, "%s: too short for a safetensors file (%llu bytes)", path, (unsigned long long)size);
        return -1;
    }
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)buf[i] << (8 * i);
    if (hlen > size - 8) {
        rt_set_err(err, errlen, "%s: header length %llu is larger than the rest of the file (%llu bytes): truncated or not a safetensors file",
                   path, (unsigned long long)hlen, (unsigned long long)(size - 8));
        return -1;
    }
    if (hlen > RT_ST_MAX_HEADER) {
        rt_set_err(err, errlen, "%s: header length %llu exceeds the limit of %u bytes", path, (unsigned long long)hlen, RT_ST_MAX_HEADER);
        return -1;
    }
    /* cJSON wants a terminated string; a NUL inside would cut the header short. */
    if (memchr(buf + 8, '\0', (size_t)hlen)) {
        rt_set_err(err, errlen, "%s: header is not valid JSON (it contains a NUL byte)", path);
        return -1;
    }
    char *text = rt_alloc((size_t)hlen + 1);
    memcpy(text, buf + 8, (size_t)hlen);
    const char *end = NULL;
    h->root = cJSON_ParseWithOpts(text, &end, 0);
    int rc = -1;
    if (!h->root) {
        rt_set_err(err, errlen, "%s: header is not valid JSON (error at byte %lld of %llu)", path, end ? (long long)(end - text) : -1LL,
                   (unsigned long long)hlen);
        goto out;
    }
    size_t rest = strspn(end, " \t\r\n");
    if (end[rest] != '\0') {
        rt_set_err(err, errlen, "%s: header is not valid JSON (unexpected data at byte %lld after the object)", path,
                   (long long)(end + rest - text));
        goto out;
    }
    if (!cJSON_IsObject(h->root)) {
        rt_set_err(err, errlen, "%s: header is not a JSON object", path);
        goto out;
    }
    const uint8_t *data = buf + 8 + hlen;
    uint64_t dsize = size - 8 - hlen;
    h->t = rt_alloc(sizeof(rt_st_tensor) * (size_t)(cJSON_GetArraySize(h->root) + 1));
    const cJSON *j;
    cJSON_ArrayForEach(j, h->root) {
        if (strcmp(j->string, "__metadata__") == 0) {
            if (flags & RT_ST_ANY_METADATA) continue;
            bool ok = cJSON_IsObject(j) && !h->meta;
            const cJSON *kv;
            cJSON_ArrayForEach(kv, j) ok = ok && cJSON_IsString(kv);
            if (!ok) {
                rt_set_err(err, errlen, "%s: \"__metadata__\" is not a single object of strings", path);
                goto out;
            }
            h->meta = j;
            continue;
        }
        for (int i = 0; i < h->n; i++)
            if (strcmp(h->t[i].name, j->string) == 0) {
                rt_set_err(err, errlen, "%s: tensor '%s' appears twice in the header", path, j->string);
                goto out;
            }
        if (parse_entry(path, j, data, dsize, types, ntypes, flags & RT_ST_OTHER_DTYPES, &h->t[h->n], err, errlen) != 0) goto out;
        h->n++;
    }
    rc = check_overlaps(path, h, err, errlen);
out:
    free(text);
    return rc;
}
