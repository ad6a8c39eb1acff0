/* fuzz_idx.c — libFuzzer target: the IDX reader (runtime/rt_data.c, plain or
 * gzip-compressed MNIST files) on arbitrary bytes, asked for images (3
 * dimensions) and labels (1). A read either fails with a message or gives
 * count * item bytes, all of which are read. */
#include "fuzz_files.h"
#include "mmrt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[256], err[512];
    fuzz_write(path, sizeof path, "train-images-idx3-ubyte", data, size);
    unsigned sum = 0;
    for (int want = 1; want <= 3; want += 2) {
        rt_idx x;
        if (rt_idx_read(path, want, &x, err, sizeof err) != 0) continue;
        for (size_t i = 0; i < x.count * x.item; i++) sum += x.data[i];
        rt_idx_free(&x);
    }
    fuzz_sink = sum; /* keeps the reads */
    return 0;
}
