/* fuzz_ckpt.c — libFuzzer target: the checkpoint reader (runtime/rt_ckpt.c)
 * on arbitrary bytes as last.ckpt. A load either fails with a message or
 * gives tensors whose every byte can be read: each tensor a run might ask
 * for is fetched and summed, and the metadata looked up. */
#include <stdio.h>

#include "fuzz_files.h"
#include "mmrt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[256], err[512];
    fuzz_write(path, sizeof path, "last.ckpt", data, size);
    rt_ckpt *c = rt_ckpt_load(path, err, sizeof err);
    if (!c) return 0;
    static const char *const names[] = {"w", "b", "x.conv1.weight", "state", "step"};
    static const int dtypes[] = {RT_F32, RT_F64, RT_I64};
    static const size_t sizes[] = {4, 8, 8};
    unsigned sum = 0;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        for (int d = 0; d < 3; d++) {
            int ndim;
            int64_t shape[RT_CKPT_MAXDIM];
            const unsigned char *p = rt_ckpt_get(c, names[i], dtypes[d], &ndim, shape);
            if (!p) continue;
            size_t n = sizes[d];
            for (int k = 0; k < ndim; k++) n *= (size_t)shape[k];
            for (size_t k = 0; k < n; k++) sum += p[k];
        }
    static const char *const keys[] = {"epoch", "step", "controller_mode", "format", "model"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        const char *v = rt_ckpt_meta(c, keys[i]);
        if (v) sum += (unsigned)strlen(v);
    }
    rt_ckpt_free(c);
    fuzz_sink = sum; /* keeps the reads */
    return 0;
}
