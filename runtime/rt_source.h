/* rt_source.h — one split of a data set, read one example at a time.
 *
 * A data source (multiview images, video clips, the user's arrays, ...)
 * opens a split and answers two questions: how many examples and which
 * labels (held in memory), and what example i of model input `in` looks
 * like at a given shape (read on demand, from any thread). Everything
 * common to all sources — the validation split, normalisation,
 * augmentation, batching and the background threads that decode the next
 * batches while a step runs — is done once, above this interface.
 *
 * Opening and reading report every problem with the files as one line in
 * `err` (naming the file, and the line for a list file) and return
 * NULL / -1; they never exit, so the caller decides how to die. Only a
 * failed allocation exits (through rt_alloc), as everywhere else. */
#ifndef RT_SOURCE_H
#define RT_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mmrt.h"

/* The model input a source feeds: its name and per-example shape,
 * channels first: [C, H, W] (ndim 3) or [C, T, H, W] (ndim 4). */
typedef struct {
    const char *name;
    int ndim;
    int shape[4];
} rt_source_input;

typedef struct rt_source rt_source;
struct rt_source {
    char what[512];      /* the split, for messages: "ROOT (train)" */
    int n;               /* examples */
    int classes;         /* classes the data declares (class directories), else max label + 1 */
    int32_t *y;          /* [n] labels in [0, classes) */
    int ninputs;         /* the model inputs it feeds, in the order given at open */
    /* Example i of input `in` (0 <= in < ninputs) as floats in [0, 1] (or
     * the stored values for float arrays), laid out [C][T][H][W] at the
     * input's shape given at open. Safe to call from several threads at
     * once on distinct dst. 0, or -1 with err naming the file. */
    int (*read)(rt_source *s, int i, int in, float *dst, char *err, size_t errlen);
    void (*close)(rt_source *s);   /* frees everything, s included */
    /* What the data calls example i, into buf (for ./prog predict): its
     * image file, its clip's directory. NULL: a source whose examples have
     * no name but their number. */
    void (*name)(const rt_source *s, int i, char *buf, size_t n);
    void *impl;
};

static inline void rt_source_close(rt_source *s) {
    if (s) s->close(s);
}

/* ---- the sources ------------------------------------------------------------- */

/* The MVCNN multi-view render layout (ModelNet40): ROOT/CLASS/SPLIT/NAME.png
 * (or .jpg/.jpeg), SPLIT "train" or "test", classes the sub-directories of
 * ROOT in sorted order. An object's views are the files whose names differ
 * only in the last number before the extension, ordered by that number;
 * input k reads view views[k]. Images are decoded by libspng (PNG) and
 * libjpeg-turbo (JPEG), converted to the input's channels (gray <-> RGB)
 * and, when their size differs, resized bilinearly — or, with resize
 * false, rejected naming the file. */
rt_source *rt_multiview_open(const char *root, const char *split, const int *views, int nviews,
                             const rt_source_input *inputs, bool resize, char *err, size_t errlen);

/* The NVGesture layout: `list` is a nvgesture_*_correct_cvpr2016_v2.lst
 * file, one clip per line (path:./Video_data/class_01/subject13_r0
 * depth:sk_depth:S:E color:sk_color:S:E ... label:N, labels from 1), its
 * paths relative to `root` (default: the list's directory). Input k
 * ([C, T, H, W], C 1 or 3) reads modality modalities[k] ("color", "depth",
 * ...): frames S to E - 1 (E exclusive, as NVIDIA's loader reads them) of
 * PATH/FILE.avi, FILE the modality's field (sk_color), decoded by FFmpeg's
 * libavformat/libavcodec, sampled evenly to the input's T frames (slot j
 * shows frame S + floor(j (E - S) / T)), resized bilinearly to H x W (as
 * cv2.resize does), as RGB or one channel (luma: a gray depth video's
 * values). nmod is the number of inputs. */
rt_source *rt_clips_open(const char *list, const char *root, const char *const *modalities, int nmod,
                         const rt_source_input *inputs, char *err, size_t errlen);

/* The user's own arrays: DIR/SPLIT.safetensors (one tensor per model input,
 * named like the input, uint8 / float16 / float32, shape [N, ...input
 * shape...], uint8 scaled to [0, 1]; an integer tensor `label` [N]), or
 * DIR/SPLIT/INPUT.npy and DIR/SPLIT/label.npy. Memory-mapped, not read
 * whole. SPLIT "train", "test" or "val"; *missing is set (and NULL
 * returned with no error) when the split does not exist, so that an
 * optional val split can be probed. */
rt_source *rt_arrays_open(const char *dir, const char *split, const rt_source_input *inputs, int ninputs,
                          bool *missing, char *err, size_t errlen);

#endif
