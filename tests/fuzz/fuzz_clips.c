/* fuzz_clips.c — libFuzzer target: the NVGesture list parser
 * (runtime/rt_clips.c) on arbitrary bytes as the .lst file, for a model
 * reading the color and depth sensors. An open either fails with a message
 * naming the line or gives clips whose labels are in range; the first
 * clip's video (absent here) must fail to read with a message. */
#include "fuzz_files.h"
#include "rt_source.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[256], err[512];
    fuzz_write(path, sizeof path, "nvgesture_train_correct_cvpr2016_v2.lst", data, size);
    static const char *const mods[] = {"color", "depth"};
    rt_source_input in[2] = {{"rgb", 4, {3, 2, 4, 4}}, {"depth", 4, {1, 2, 4, 4}}};
    rt_source *s = rt_clips_open(path, NULL, mods, 2, in, err, sizeof err);
    if (!s) return 0;
    for (int i = 0; i < s->n; i++)
        if (s->y[i] < 0 || s->y[i] >= s->classes) abort();
    static float dst[3 * 2 * 4 * 4];
    if (s->n > 0 && s->read(s, 0, 0, dst, err, sizeof err) == 0) abort(); /* no such video */
    rt_source_close(s);
    return 0;
}
