/* test_loader.c — the batch loader (runtime/rt_loader.c) over a source whose
 * every value says where it came from: batches in the pass's order and in
 * the back ends' channel-major layout, crops and flips, normalisation,
 * modality dropout, the same batches with 0, 1 or 3 worker threads, and a read error that
 * reaches the caller with its message. Exit 0 when every check passes
 * (tests/check.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../check.h"
#include "rt_loader.h"

/* Two inputs: an image [2, 6, 8] read at the loader's read shape, and a
 * vector [5]. Value of example i, input in, channel c, row y, column x:
 * i * 1000 + in * 500 + c * 100 + y * 10 + x. */
static const rt_input_info inputs[] = {
    {.name = "img", .ndim = 3, .shape = {2, 6, 8}, .numel = 96},
    {.name = "vec", .ndim = 1, .shape = {5}, .numel = 5},
};

typedef struct {
    rt_source_input rs[2];
    int fail_at;     /* example whose read fails; -1: none */
} Fake;

static int fake_read(rt_source *s, int i, int in, float *dst, char *err, size_t errlen) {
    const Fake *f = s->impl;
    if (i == f->fail_at) {
        snprintf(err, errlen, "fake.bin: example %d is corrupt", i);
        return -1;
    }
    const rt_source_input *r = &f->rs[in];
    if (r->ndim == 4) {   /* one channel: i * 1000 + t * 100 + y * 10 + x */
        for (int t = 0; t < r->shape[1]; t++)
            for (int y = 0; y < r->shape[2]; y++)
                for (int x = 0; x < r->shape[3]; x++) *dst++ = (float)(i * 1000 + t * 100 + y * 10 + x);
    } else if (r->ndim == 3) {
        for (int c = 0; c < r->shape[0]; c++)
            for (int y = 0; y < r->shape[1]; y++)
                for (int x = 0; x < r->shape[2]; x++)
                    *dst++ = (float)(i * 1000 + in * 500 + c * 100 + y * 10 + x);
    } else {
        for (int c = 0; c < r->shape[0]; c++) *dst++ = (float)(i * 1000 + in * 500 + c * 100);
    }
    return 0;
}

static void fake_close(rt_source *s) {
    free(s->impl);
    free(s->y);
    free(s);
}

static rt_source *fake_open(const rt_model *m, const rt_augment *aug, int n, int fail_at) {
    rt_source *s = rt_alloc(sizeof *s);
    Fake *f = rt_alloc(sizeof *f);
    for (int i = 0; i < m->ninputs; i++) f->rs[i] = rt_loader_read_shape(m, i, aug);
    f->fail_at = fail_at;
    snprintf(s->what, sizeof s->what, "fake");
    s->n = n;
    s->classes = 7;
    s->y = rt_alloc(sizeof(int32_t) * (size_t)n);
    for (int i = 0; i < n; i++) s->y[i] = i % 7;
    s->ninputs = m->ninputs;
    s->read = fake_read;
    s->close = fake_close;
    s->impl = f;
    return s;
}

/* Every batch of a pass, concatenated: inputs and labels. */
typedef struct {
    float *img, *vec;
    int32_t *y;
    int batches;
} Pass;

static Pass run_pass(const rt_model *m, const rt_augment *aug, int workers, const int *idx, int n, int B, bool train) {
    rt_source *src = fake_open(m, aug, 40, -1);
    rt_loader *L = rt_loader_new(m, B, workers, aug, NULL);
    Pass p = {rt_alloc(sizeof(float) * 96 * (size_t)n), rt_alloc(sizeof(float) * 5 * (size_t)n), rt_alloc(sizeof(int32_t) * (size_t)n), 0};
    rt_loader_start(L, src, idx, n, B, train, 42);
    rt_batch b;
    char err[256];
    int done = 0, rc;
    while ((rc = rt_loader_next(L, &b, err, sizeof err)) == 1) {
        REQUIRE(b.B == (n - done < B ? n - done : B), "batch %d: %d examples", p.batches, b.B);
        /* back to example-major for comparison: [C][B][P] -> [B][C][P] */
        for (int k = 0; k < b.B; k++) {
            for (int c = 0; c < 2; c++) memcpy(p.img + (size_t)(done + k) * 96 + c * 48, b.x[0] + ((size_t)c * b.B + k) * 48, 48 * sizeof(float));
            for (int c = 0; c < 5; c++) p.vec[(done + k) * 5 + c] = b.x[1][(size_t)c * b.B + k];
            p.y[done + k] = b.y[k];
        }
        done += b.B;
        p.batches++;
    }
    CHECK(rc == 0, "%s", err);
    CHECK(done == n);
    rt_loader_free(L);
    rt_source_close(src);
    return p;
}

static void pass_free(Pass *p) {
    free(p->img), free(p->vec), free(p->y);
}

int main(void) {
    rt_model m = {.name = "t", .ninputs = 2, .inputs = inputs, .classes = 7};
    int idx[23];
    for (int k = 0; k < 23; k++) idx[k] = (k * 17 + 5) % 40;

    /* Plain: values exactly as read, in the order of idx, any worker count. */
    for (int w = 0; w <= 3; w += (w == 0 ? 1 : 2)) {
        Pass p = run_pass(&m, NULL, w, idx, 23, 5, true);
        CHECK(p.batches == 5);
        int bad = 0;
        for (int k = 0; k < 23; k++) {
            for (int c = 0; c < 2; c++)
                for (int y = 0; y < 6; y++)
                    for (int x = 0; x < 8; x++)
                        bad += p.img[k * 96 + c * 48 + y * 8 + x] != (float)(idx[k] * 1000 + c * 100 + y * 10 + x);
            for (int c = 0; c < 5; c++) bad += p.vec[k * 5 + c] != (float)(idx[k] * 1000 + 500 + c * 100);
            bad += p.y[k] != idx[k] % 7;
        }
        CHECK(bad == 0);
        pass_free(&p);
    }

    /* Crop 10 (read at 10 x 10, cut 6 x 8) and flip, normalised. */
    rt_augment aug = {.flip = true, .crop = 10};
    aug.nnorm[0] = 2, aug.mean[0][0] = 1, aug.mean[0][1] = 2, aug.std[0][0] = 2, aug.std[0][1] = 4;
    aug.nnorm[1] = 1, aug.mean[1][0] = 500, aug.std[1][0] = 0.5f;
    Pass ref = run_pass(&m, &aug, 0, idx, 23, 4, true);
    int flipped = 0, moved = 0, bad = 0;
    for (int k = 0; k < 23; k++) {
        /* Recover the crop's origin and the flip from the first row. */
        float v00 = ref.img[k * 96] * 2 + 1, v01 = ref.img[k * 96 + 1] * 2 + 1;
        int flip = v01 < v00;
        int base = (int)v00 - idx[k] * 1000;      /* oy * 10 + (flip ? ox + 7 : ox) */
        int oy = base / 10, ox = base % 10 - (flip ? 7 : 0);
        CHECK(oy >= 0 && oy <= 4 && ox >= 0 && ox <= 2);
        flipped += flip;
        moved += oy != 2 || ox != 1;
        for (int c = 0; c < 2; c++)
            for (int y = 0; y < 6; y++)
                for (int x = 0; x < 8; x++) {
                    int sx = flip ? ox + 7 - x : ox + x;
                    float want = ((float)(idx[k] * 1000 + c * 100 + (oy + y) * 10 + sx) - (c ? 2.0f : 1.0f)) / (c ? 4.0f : 2.0f);
                    bad += fabsf(ref.img[k * 96 + c * 48 + y * 8 + x] - want) > 1e-3f * fabsf(want) + 1e-3f;
                }
        for (int c = 0; c < 5; c++) {
            float want = (float)(idx[k] * 1000 + c * 100) * 2;
            bad += fabsf(ref.vec[k * 5 + c] - want) > 1e-5f * fabsf(want) + 1e-3f;
        }
    }
    CHECK(bad == 0);
    CHECK(flipped > 3 && flipped < 20);   /* both kinds occur among 23 examples */
    CHECK(moved > 10);                    /* random origins, not the centre */
    /* The same augmented batches with any number of workers and batch size. */
    for (int w = 1; w <= 3; w += 2) {
        Pass p = run_pass(&m, &aug, w, idx, 23, 4, true);
        CHECK(memcmp(p.img, ref.img, sizeof(float) * 96 * 23) == 0);
        CHECK(memcmp(p.vec, ref.vec, sizeof(float) * 5 * 23) == 0);
        pass_free(&p);
    }
    /* Evaluation: the central crop, never flipped. */
    Pass ev = run_pass(&m, &aug, 2, idx, 23, 6, false);
    bad = 0;
    for (int k = 0; k < 23; k++)
        for (int y = 0; y < 6; y++)
            for (int x = 0; x < 8; x++)
                bad += fabsf(ev.img[k * 96 + 48 + y * 8 + x] - ((float)(idx[k] * 1000 + 100 + (2 + y) * 10 + 1 + x) - 2) / 4) > 1e-2f;
    CHECK(bad == 0);
    pass_free(&ev);

    /* Modality dropout: with p = 1 every training example has exactly one
     * input zeroed and the other as it was (the same crops and flips);
     * both inputs are dropped about equally often; with p = 0.5 about half
     * the examples lose one; the same batches with any number of workers;
     * evaluation passes untouched. */
    for (int pi = 0; pi < 2; pi++) {
        rt_augment ad = aug;
        ad.drop = pi == 0 ? 1.0f : 0.5f;
        Pass d = run_pass(&m, &ad, 0, idx, 23, 4, true);
        int lost[2] = {0}, kept = 0;
        bad = 0;
        for (int k = 0; k < 23; k++) {
            int zi = 1, zv = 1;
            for (int q = 0; q < 96; q++) zi &= d.img[k * 96 + q] == 0;
            for (int q = 0; q < 5; q++) zv &= d.vec[k * 5 + q] == 0;
            bad += zi && zv; /* never both */
            if (!zi) bad += memcmp(d.img + k * 96, ref.img + k * 96, 96 * sizeof(float)) != 0;
            if (!zv) bad += memcmp(d.vec + k * 5, ref.vec + k * 5, 5 * sizeof(float)) != 0;
            lost[0] += zi, lost[1] += zv, kept += !zi && !zv;
        }
        CHECK(bad == 0, "p %g: %d examples wrong", ad.drop, bad);
        if (pi == 0) CHECK(kept == 0 && lost[0] >= 5 && lost[1] >= 5, "p 1: %d kept, %d/%d lost", kept, lost[0], lost[1]);
        else CHECK(kept >= 5 && kept <= 18 && lost[0] + lost[1] >= 5, "p 0.5: %d kept, %d/%d lost", kept, lost[0], lost[1]);
        Pass w3 = run_pass(&m, &ad, 3, idx, 23, 4, true);
        CHECK(memcmp(w3.img, d.img, sizeof(float) * 96 * 23) == 0 && memcmp(w3.vec, d.vec, sizeof(float) * 5 * 23) == 0);
        Pass de = run_pass(&m, &ad, 0, idx, 23, 6, false), e0 = run_pass(&m, &aug, 0, idx, 23, 6, false);
        CHECK(memcmp(de.img, e0.img, sizeof(float) * 96 * 23) == 0 && memcmp(de.vec, e0.vec, sizeof(float) * 5 * 23) == 0);
        pass_free(&d), pass_free(&w3), pass_free(&de), pass_free(&e0);
    }
    pass_free(&ref);

    /* A read error reaches the caller, with any number of workers; a new
     * pass can start after an abandoned one. */
    for (int w = 0; w <= 2; w++) {
        rt_source *src = fake_open(&m, NULL, 40, 13);
        rt_loader *L = rt_loader_new(&m, 4, w, NULL, NULL);
        rt_loader_start(L, src, NULL, 40, 4, true, 1);
        rt_batch b;
        char err[256] = "";
        int rc, got = 0;
        while ((rc = rt_loader_next(L, &b, err, sizeof err)) == 1) got++;
        CHECK(rc == -1);
        CHECK(got == 3);
        CHECK(strstr(err, "fake.bin: example 13 is corrupt") != NULL, "\"%s\"", err);
        rt_loader_start(L, src, NULL, 8, 4, false, 1);   /* examples 0-7: fine */
        got = 0;
        while ((rc = rt_loader_next(L, &b, err, sizeof err)) == 1) got++;
        CHECK(rc == 0 && got == 2);
        rt_loader_start(L, src, NULL, 40, 4, true, 1);   /* abandoned after one batch */
        CHECK(rt_loader_next(L, &b, err, sizeof err) == 1);
        rt_loader_free(L);
        rt_source_close(src);
    }

    /* Clips [1, 4, 3, 3] read at 6 frames of 5 x 5: the central 4 x 3 x 3
     * in evaluation, 4 consecutive frames from anywhere in training. */
    {
        static const rt_input_info clip[] = {{.name = "clip", .ndim = 4, .shape = {1, 4, 3, 3}, .numel = 36}};
        rt_model mc = {.name = "c", .ninputs = 1, .inputs = clip, .classes = 7};
        rt_augment ca = {.crop = 5, .frames = 6, .flip = true, .flip_same = true};
        for (int train = 0; train <= 1; train++) {
            rt_source *src = fake_open(&mc, &ca, 9, -1);
            rt_loader *L = rt_loader_new(&mc, 9, 1, &ca, NULL);
            rt_loader_start(L, src, NULL, 9, 9, train, 5);
            rt_batch b;
            char e2[128] = "";
            REQUIRE(rt_loader_next(L, &b, e2, sizeof e2) == 1 && b.B == 9, "%s", e2);
            int bad2 = 0, starts = 0;
            for (int k = 0; k < 9; k++) {
                const float *v = b.x[0] + k * 36;
                int base = (int)v[0] - k * 1000, flip = v[1] < v[0];
                int ot = base / 100, oy = base / 10 % 10, ox = base % 10 - (flip ? 2 : 0);
                if (!train) bad2 += ot != 1 || oy != 1 || ox != 1 || flip;
                bad2 += ot > 2 || oy > 2 || ox > 2 || ox < 0;
                starts |= 1 << ot;
                for (int t = 0; t < 4; t++)
                    for (int y = 0; y < 3; y++)
                        for (int x = 0; x < 3; x++)
                            bad2 += v[t * 9 + y * 3 + x] != (float)(k * 1000 + (ot + t) * 100 + (oy + y) * 10 + (flip ? ox + 2 - x : ox + x));
            }
            CHECK(bad2 == 0);
            if (train) CHECK(starts != 1 << 1);   /* not always the centre */
            rt_loader_free(L);
            rt_source_close(src);
        }
    }

    /* An in-memory data set as a source. */
    rt_dataset ds = {.n = 3, .nstreams = 2, .stream = {"vec", "img"}, .numel = {5, 96}, .classes = 7};
    ds.x[0] = rt_alloc(sizeof(float) * 15), ds.x[1] = rt_alloc(sizeof(float) * 288);
    ds.y = rt_alloc(sizeof(int32_t) * 3);
    for (int j = 0; j < 288; j++) ds.x[1][j] = (float)j;
    for (int j = 0; j < 15; j++) ds.x[0][j] = (float)-j;
    char err[256];
    rt_source *ms = rt_memory_source(&ds, &m, "mem", err, sizeof err);
    CHECK(ms && ms->n == 3, "%s", ms ? "" : err);
    if (ms) {
        float buf[96];
        CHECK(ms->read(ms, 2, 0, buf, err, sizeof err) == 0 && buf[0] == 192 && buf[95] == 287);
        CHECK(ms->read(ms, 1, 1, buf, err, sizeof err) == 0 && buf[0] == -5 && buf[4] == -9);
        rt_source_close(ms);
    }
    ds.stream[0] = "other";
    CHECK(rt_memory_source(&ds, &m, "mem", err, sizeof err) == NULL && strstr(err, "no input 'vec'"), "\"%s\"", err);
    free(ds.x[0]), free(ds.x[1]), free(ds.y);

    return check_summary("test_loader");
}
