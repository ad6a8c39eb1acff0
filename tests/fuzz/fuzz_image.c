/* fuzz_image.c — libFuzzer target: the image decoder (runtime/rt_image.c:
 * PNG by libspng, JPEG by libjpeg-turbo) on arbitrary bytes, decoded to a
 * gray and an RGB input, with and without resizing. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "rt_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static float dst[3 * 24 * 24];
    char err[512];
    for (int c = 1; c <= 3; c += 2)
        for (int resize = 0; resize < 2; resize++)
            rt_image_decode("fuzz.png", data, size, c, 24, 24, resize, dst, err, sizeof err);
    return 0;
}
