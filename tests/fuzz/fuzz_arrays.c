/* fuzz_arrays.c — libFuzzer target: the user's arrays (runtime/rt_arrays.c)
 * on arbitrary bytes. The first byte chooses the file the rest becomes:
 * 0 the split's safetensors file, 1 an input's .npy, 2 the labels' .npy
 * (the other .npy file then a valid one). The model has one input "a"
 * [1, 2, 2]. An open either fails with a message or gives a source whose
 * every example and label can be read. */
#include <sys/stat.h>

#include "fuzz_files.h"
#include "rt_source.h"

/* A .npy file: header dict, then the data. */
static size_t npy(uint8_t *out, const char *descr, const char *shape, const void *body, size_t len) {
    char dict[128];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape);
    size_t hlen = (size_t)n + 1;
    while ((10 + hlen) % 64) hlen++;
    memcpy(out, "\x93NUMPY\x01\x00", 8);
    out[8] = (uint8_t)(hlen & 255);
    out[9] = (uint8_t)(hlen >> 8);
    memset(out + 10, ' ', hlen);
    memcpy(out + 10, dict, (size_t)n);
    out[10 + hlen - 1] = '\n';
    memcpy(out + 10 + hlen, body, len);
    return 10 + hlen + len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || data[0] > 2) return -1;
    const char *dir = fuzz_scratch();
    char path[256], err[512];
    /* Only one of the two layouts may be there. */
    static const char *const old[] = {"train/a.npy", "train/label.npy", "train", "train.safetensors"};
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, old[i]);
        remove(path);
    }
    if (data[0] == 0) {
        fuzz_write(path, sizeof path, "train.safetensors", data + 1, size - 1);
    } else {
        snprintf(path, sizeof path, "%s/train", dir);
        if (mkdir(path, 0777) != 0) abort();
        static const float x[8] = {0, 1, 2, 3, 4, 5, 6, 7};
        static const int64_t y[2] = {0, 1};
        uint8_t valid[256];
        size_t n = data[0] == 1 ? npy(valid, "<i8", "(2,)", y, sizeof y) : npy(valid, "<f4", "(2, 1, 2, 2)", x, sizeof x);
        fuzz_write(path, sizeof path, data[0] == 1 ? "train/a.npy" : "train/label.npy", data + 1, size - 1);
        fuzz_write(path, sizeof path, data[0] == 1 ? "train/label.npy" : "train/a.npy", valid, n);
    }
    rt_source_input in = {"a", 3, {1, 2, 2}};
    bool missing;
    rt_source *s = rt_arrays_open(dir, "train", &in, 1, &missing, err, sizeof err);
    if (!s) return 0;
    float dst[4];
    unsigned sum = 0;
    for (int i = 0; i < s->n && i < 64; i++) {
        sum += (unsigned)s->y[i];
        if (s->read(s, i, 0, dst, err, sizeof err) == 0)
            for (int k = 0; k < 4; k++) { /* the bits: the values may be NaN */
                uint32_t u;
                memcpy(&u, &dst[k], sizeof u);
                sum += u;
            }
    }
    rt_source_close(s);
    fuzz_sink = sum; /* keeps the reads */
    return 0;
}
