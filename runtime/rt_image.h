/* rt_image.h — one PNG or JPEG file decoded into a model input's layout:
 * [C][H][W] floats in [0, 1], C 1 or 3. PNG through libspng, JPEG through
 * libjpeg-turbo's TurboJPEG API; the format is told by the file's
 * signature, not its name. Thread-safe: every call has its own decoder.
 *
 * Channels: gray -> RGB by replication, RGB -> gray by ITU-R BT.601 luma
 * (0.299 R + 0.587 G + 0.114 B, computed in floats, not rounded to 8 bits
 * as PIL's convert("L") does), alpha dropped (not composited), palettes
 * expanded, 16-bit PNG samples divided by 65535. An image whose size
 * differs from H x W is resized bilinearly when `resize` is set, else
 * rejected naming the file and both sizes. Errors are one line in `err`
 * naming the file; the functions never exit except on a failed
 * allocation. */
#ifndef RT_IMAGE_H
#define RT_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The image in buf[0, len), called `path` in messages, into dst
 * ([c][h][w] floats). 0, or -1 with err. */
int rt_image_decode(const char *path, const uint8_t *buf, size_t len, int c, int h, int w, bool resize, float *dst,
                    char *err, size_t errlen);

/* The same for the file at path. */
int rt_image_load(const char *path, int c, int h, int w, bool resize, float *dst, char *err, size_t errlen);

/* One plane src [sh][sw] resized to dst [dh][dw] as PyTorch's
 * F.interpolate(mode='bilinear', align_corners=False, antialias=False)
 * computes it in float: source coordinate (o + 0.5) * in/out - 0.5,
 * clamped at 0, the two nearest samples weighted by distance: each of
 * the two source rows interpolated along the width, then the two rows
 * combined. */
void rt_resize_bilinear(const float *src, int sh, int sw, float *dst, int dh, int dw);

#endif
