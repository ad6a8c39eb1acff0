/* rt_loader.c — batches from a data source, read ahead on worker threads
 * (see rt_loader.h).
 *
 * A pass is a sequence of n examples cut into batches of B. Batch b lives
 * in slot b % NSLOT of a ring; workers take the sequence's examples in
 * order, one at a time, and may run ahead of the caller by NSLOT - 2
 * batches: the caller holds the batch it was last given and the one
 * before it (which a GPU back end may still be copying). An example is read by the source into the worker's scratch
 * buffer (at the read shape), then cropped, flipped and normalised on its
 * way into the slot, channel-major: [C][B][positions]. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rt_dist.h"
#include "rt_loader.h"
#include "rt_policy.h"

#define NSLOT RT_LOADER_SLOTS /* the memory plan counts them (mmnet_shared.h) */

typedef struct {
    float *x[RT_MAXIN];   /* [C][B][P] */
    int32_t *y;
    long batch;           /* the pass's batch it holds; -1: none */
    int B;                /* examples in it */
    int left;             /* examples not yet written */
    bool failed;          /* an example could not be read: err says why */
    char err[1024];
} Slot;

struct rt_loader {
    const rt_model *m;
    rt_augment aug;
    rt_source_input rs[RT_MAXIN];  /* the shape each input is read at */
    size_t rs_numel[RT_MAXIN];
    int max_batch, nworkers;
    pthread_t *th;
    float **scratch;               /* one example per worker, and one for the caller */
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    Slot slot[NSLOT];
    /* the pass */
    rt_source *src;
    int *idx;                      /* NULL: 0..n-1 */
    long n;
    int B;
    /* A shard of the pass (rt_loader_start_shard): the batches' first
     * positions (nb + 1 of them), each position's batch, and its position in
     * the whole pass, from which its random draws come. NULL: batches of B,
     * positions as they are. */
    long *bfirst;
    int *bof;
    long *gpos;
    long nb;
    bool train;
    uint64_t seed;
    long next;                     /* next position to hand out */
    long cur;                      /* next batch to return */
    long released;                 /* batches before this one are done with: their slots are free */
    const rt_backend *be;          /* its host_alloc / host_free hold the batches (NULL: rt_alloc) */
    int active;                    /* workers reading an example */
    bool stop;
    double cpu;                    /* thread CPU seconds spent reading examples, all passes */
};

static double thread_cpu(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

rt_source_input rt_loader_read_shape(const rt_model *m, int i, const rt_augment *aug) {
    const rt_input_info *in = &m->inputs[i];
    rt_source_input s = {.name = in->name, .ndim = in->ndim};
    for (int d = 0; d < in->ndim && d < 4; d++) s.shape[d] = in->shape[d];
    if (aug && aug->crop > 0 && in->ndim >= 3) s.shape[in->ndim - 2] = s.shape[in->ndim - 1] = aug->crop;
    if (aug && aug->frames > 0 && in->ndim == 4) s.shape[1] = aug->frames;
    return s;
}

static size_t shape_numel(const rt_source_input *s) {
    size_t n = 1;
    for (int d = 0; d < s->ndim; d++) n *= (size_t)s->shape[d];
    return n;
}

/* The batch that position j belongs to, and the first position of batch b
 * (b = the number of batches: the end of the pass). */
static long batch_of(const rt_loader *L, long j) { return L->bof ? L->bof[j] : j / L->B; }
static long first_of(const rt_loader *L, long b) {
    if (L->bfirst) return L->bfirst[b];
    return b * L->B < L->n ? b * L->B : L->n;
}

/* Example at position j of the pass into its slot. 0, or -1 with err. */
static int load_example(rt_loader *L, float *scratch, long j, Slot *sl, char *err, size_t errlen) {
    const rt_model *m = L->m;
    const rt_augment *a = &L->aug;
    const int i = L->idx ? L->idx[j] : (int)j;
    const int k = (int)(j - first_of(L, batch_of(L, j))), Bb = sl->B;
    /* The same draws in the same order whatever the options, so that a
     * flip does not shift the crops of later examples: where to cut (as
     * fractions, the same for every input), one flip for all inputs, one
     * for each. */
    rt_rng r;
    const long g = L->gpos ? L->gpos[j] : j;
    rt_rng_seed(&r, L->seed ^ (0x9E3779B97F4A7C15ULL * (uint64_t)(g + 1)));
    const double ut = rt_rng_uniform(&r), uy = rt_rng_uniform(&r), ux = rt_rng_uniform(&r);
    const bool flip_all = rt_rng_below(&r, 2);
    const int dropped = L->train ? rt_modality_drop(L->seed, g, m->ninputs, a->drop) : -1; /* by the global position, as the crops */
    for (int in = 0; in < m->ninputs; in++) {
        const bool flip_own = rt_rng_below(&r, 2);
        const rt_input_info *ii = &m->inputs[in];
        if (in == dropped) { /* the input's planes, all zero; not read at all */
            const size_t C = (size_t)ii->shape[0], P = ii->numel / C;
            for (size_t c = 0; c < C; c++) memset(sl->x[in] + (c * (size_t)Bb + (size_t)k) * P, 0, P * sizeof(float));
            continue;
        }
        if (L->src->read(L->src, i, in, scratch, err, errlen) != 0) return -1;
        const rt_source_input *rs = &L->rs[in];
        const size_t C = (size_t)ii->shape[0], P = ii->numel / C;
        /* Spatial inputs: [C][T][H][W] (T = 1 for images), read at Tl x Hl x Wl. */
        size_t T = 1, H = 1, W = P, Tl = 1, Hl = 1, Wl = P;
        if (ii->ndim >= 3) {
            H = (size_t)ii->shape[ii->ndim - 2], W = (size_t)ii->shape[ii->ndim - 1];
            Hl = (size_t)rs->shape[ii->ndim - 2], Wl = (size_t)rs->shape[ii->ndim - 1];
            T = P / (H * W);
            Tl = ii->ndim == 4 ? (size_t)rs->shape[1] : 1;
        }
        const bool train = L->train;
        const size_t ot = train ? (size_t)(ut * (double)(Tl - T + 1)) : (Tl - T) / 2;
        const size_t oy = train ? (size_t)(uy * (double)(Hl - H + 1)) : (Hl - H) / 2;
        const size_t ox = train ? (size_t)(ux * (double)(Wl - W + 1)) : (Wl - W) / 2;
        const bool flip = train && a->flip && ii->ndim >= 3 && (a->flip_same ? flip_all : flip_own);
        for (size_t c = 0; c < C; c++) {
            float mean = 0, inv = 1;
            if (a->nnorm[in]) {
                int q = a->nnorm[in] == 1 ? 0 : (int)c;
                mean = a->mean[in][q], inv = 1.0f / a->std[in][q];
            }
            float *dst = sl->x[in] + (c * (size_t)Bb + (size_t)k) * P;
            const float *plane = scratch + c * Tl * Hl * Wl;
            for (size_t t = 0; t < T; t++)
                for (size_t y = 0; y < H; y++) {
                    const float *s = plane + ((ot + t) * Hl + oy + y) * Wl + ox;
                    float *d = dst + (t * H + y) * W;
                    if (flip)
                        for (size_t x = 0; x < W; x++) d[x] = (s[W - 1 - x] - mean) * inv;
                    else
                        for (size_t x = 0; x < W; x++) d[x] = (s[x] - mean) * inv;
                }
        }
    }
    sl->y[k] = L->src->y[i];
    return 0;
}

/* Under the lock: the slot of position j, set up by the batch's first example. */
static Slot *slot_for(rt_loader *L, long j) {
    long b = batch_of(L, j);
    Slot *sl = &L->slot[b % NSLOT];
    if (j == first_of(L, b)) {
        sl->batch = b;
        sl->B = (int)(first_of(L, b + 1) - j);
        sl->left = sl->B;
        sl->failed = false;
    }
    return sl;
}

static void *worker(void *arg) {
    rt_loader *L = ((void **)arg)[0];
    float *scratch = ((void **)arg)[1];
    free(arg);
    char err[1024];
    pthread_mutex_lock(&L->mu);
    for (;;) {
        while (!L->stop && !(L->src && L->next < L->n && batch_of(L, L->next) < L->released + NSLOT))
            pthread_cond_wait(&L->work, &L->mu);
        if (L->stop) break;
        long j = L->next++;
        Slot *sl = slot_for(L, j);
        L->active++;
        bool skip = sl->failed;
        pthread_mutex_unlock(&L->mu);
        double c0 = thread_cpu();
        int rc = skip ? 0 : load_example(L, scratch, j, sl, err, sizeof err);
        double c1 = thread_cpu();
        pthread_mutex_lock(&L->mu);
        L->cpu += c1 - c0;
        L->active--;
        if (rc != 0 && !sl->failed) {
            sl->failed = true;
            snprintf(sl->err, sizeof sl->err, "%s", err);
        }
        if (--sl->left == 0 || L->active == 0) pthread_cond_broadcast(&L->done);
    }
    pthread_mutex_unlock(&L->mu);
    return NULL;
}

static void *batch_alloc(const rt_backend *be, size_t bytes) {
    return be && be->host_alloc ? be->host_alloc(bytes) : rt_alloc(bytes);
}

static void batch_free(const rt_backend *be, void *p) {
    if (be && be->host_free) be->host_free(p);
    else free(p);
}

rt_loader *rt_loader_new(const rt_model *m, int max_batch, int workers, const rt_augment *aug, const rt_backend *be) {
    rt_loader *L = rt_alloc(sizeof *L);
    L->m = m;
    L->be = be;
    if (aug) L->aug = *aug;
    L->max_batch = max_batch;
    L->nworkers = workers < 0 ? 0 : workers;
    size_t most = 1;
    for (int i = 0; i < m->ninputs; i++) {
        L->rs[i] = rt_loader_read_shape(m, i, aug);
        L->rs_numel[i] = shape_numel(&L->rs[i]);
        if (L->rs_numel[i] > most) most = L->rs_numel[i];
    }
    for (int s = 0; s < NSLOT; s++) {
        for (int i = 0; i < m->ninputs; i++) L->slot[s].x[i] = batch_alloc(be, sizeof(float) * m->inputs[i].numel * (size_t)max_batch);
        L->slot[s].y = batch_alloc(be, sizeof(int32_t) * (size_t)max_batch);
        L->slot[s].batch = -1;
    }
    L->scratch = rt_alloc(sizeof(float *) * (size_t)(L->nworkers + 1));
    for (int w = 0; w <= L->nworkers; w++) L->scratch[w] = rt_alloc(sizeof(float) * most);
    pthread_mutex_init(&L->mu, NULL);
    pthread_cond_init(&L->work, NULL);
    pthread_cond_init(&L->done, NULL);
    L->th = rt_alloc(sizeof(pthread_t) * (size_t)(L->nworkers + 1));
    for (int w = 0; w < L->nworkers; w++) {
        void **arg = malloc(2 * sizeof(void *));
        if (!arg) rt_die("out of memory starting the data loader");
        arg[0] = L, arg[1] = L->scratch[w + 1];
        int rc = pthread_create(&L->th[w], NULL, worker, arg);
        if (rc != 0) rt_die("cannot start data loader thread %d of %d: %s", w + 1, L->nworkers, strerror(rc));
    }
    return L;
}

/* Under the lock: hand out nothing more of the pass and wait for the
 * workers still reading. */
static void drain(rt_loader *L) {
    L->next = L->n;
    while (L->active > 0) pthread_cond_wait(&L->done, &L->mu);
}

void rt_loader_start(rt_loader *L, rt_source *src, const int *idx, int n, int B, bool train, uint64_t seed) {
    rt_loader_start_shard(L, src, idx, n, B, train, seed, 0, 1);
}

void rt_loader_start_shard(rt_loader *L, rt_source *src, const int *idx, int n, int B, bool train, uint64_t seed, int rank,
                           int nranks) {
    if (B < 1 || B > L->max_batch) rt_die("internal: batch %d outside 1..%d", B, L->max_batch);
    pthread_mutex_lock(&L->mu);
    drain(L);
    free(L->idx);
    free(L->bfirst);
    free(L->bof);
    free(L->gpos);
    L->idx = NULL, L->bfirst = NULL, L->bof = NULL, L->gpos = NULL;
    long nl = n;
    if (nranks > 1) {
        /* Rank r's part of each batch g of the whole pass: positions
         * [g*B + lo, g*B + hi) (rt_shard), kept in order. */
        long nb = ((long)n + B - 1) / B;
        L->bfirst = rt_alloc(sizeof(long) * (size_t)(nb + 1));
        L->gpos = rt_alloc(sizeof(long) * (size_t)(n > 0 ? n : 1));
        L->bof = rt_alloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
        nl = 0;
        for (long g = 0; g < nb; g++) {
            int Bg = (int)((long)n - g * B < B ? (long)n - g * B : B), lo, hi;
            rt_shard(Bg, rank, nranks, &lo, &hi);
            L->bfirst[g] = nl;
            for (int k = lo; k < hi; k++, nl++) {
                L->gpos[nl] = g * B + k;
                L->bof[nl] = (int)g;
            }
        }
        L->bfirst[nb] = nl;
        L->nb = nb;
    }
    if (idx) {
        L->idx = rt_alloc(sizeof(int) * (size_t)(nl > 0 ? nl : 1));
        for (long j = 0; j < nl; j++) L->idx[j] = idx[L->gpos ? L->gpos[j] : j];
    }
    L->src = src, L->n = nl, L->B = B, L->train = train, L->seed = seed;
    L->next = 0, L->cur = 0, L->released = 0;
    for (int s = 0; s < NSLOT; s++) L->slot[s].batch = -1;
    pthread_cond_broadcast(&L->work);
    pthread_mutex_unlock(&L->mu);
}

int rt_loader_next(rt_loader *L, rt_batch *b, char *err, size_t errlen) {
    if (!L->src) return 0;
    if (L->bfirst ? L->cur >= L->nb : L->cur * L->B >= L->n) return 0;
    long first = first_of(L, L->cur), end = first_of(L, L->cur + 1);
    Slot *sl;
    if (first == end) {
        /* A shard with no example of this batch (a last batch smaller
         * than the number of ranks): an empty batch, still a step. */
        sl = &L->slot[L->cur % NSLOT];
        L->cur++;
        b->B = 0;
        for (int i = 0; i < L->m->ninputs; i++) b->x[i] = sl->x[i];
        b->y = sl->y;
        return 1;
    }
    if (L->nworkers == 0) {
        /* In the calling thread: no lock is needed. */
        double c0 = thread_cpu();
        for (long j = first; j < end; j++) {
            sl = slot_for(L, j);
            if (load_example(L, L->scratch[0], j, sl, err, errlen) != 0) return -1;
        }
        L->cpu += thread_cpu() - c0;
        L->next = end;
        sl = &L->slot[L->cur % NSLOT];
    } else {
        pthread_mutex_lock(&L->mu);
        L->released = L->cur > 0 ? L->cur - 1 : 0; /* the caller is done with the batches before cur - 1 */
        pthread_cond_broadcast(&L->work);
        sl = &L->slot[L->cur % NSLOT];
        while (!(sl->batch == L->cur && sl->left == 0)) pthread_cond_wait(&L->done, &L->mu);
        if (sl->failed) {
            drain(L);
            snprintf(err, errlen, "%s", sl->err);
            pthread_mutex_unlock(&L->mu);
            return -1;
        }
        pthread_mutex_unlock(&L->mu);
    }
    L->cur++;
    b->B = sl->B;
    for (int i = 0; i < L->m->ninputs; i++) b->x[i] = sl->x[i];
    b->y = sl->y;
    return 1;
}

double rt_loader_cpu_s(rt_loader *L) {
    pthread_mutex_lock(&L->mu);
    double c = L->cpu;
    pthread_mutex_unlock(&L->mu);
    return c;
}

void rt_loader_free(rt_loader *L) {
    if (!L) return;
    pthread_mutex_lock(&L->mu);
    drain(L);
    L->stop = true;
    pthread_cond_broadcast(&L->work);
    pthread_mutex_unlock(&L->mu);
    for (int w = 0; w < L->nworkers; w++) pthread_join(L->th[w], NULL);
    pthread_mutex_destroy(&L->mu);
    pthread_cond_destroy(&L->work);
    pthread_cond_destroy(&L->done);
    for (int s = 0; s < NSLOT; s++) {
        for (int i = 0; i < L->m->ninputs; i++) batch_free(L->be, L->slot[s].x[i]);
        batch_free(L->be, L->slot[s].y);
    }
    for (int w = 0; w <= L->nworkers; w++) free(L->scratch[w]);
    free(L->scratch);
    free(L->th);
    free(L->idx);
    free(L->bfirst);
    free(L->bof);
    free(L->gpos);
    free(L);
}

/* ---- in-memory data sets ------------------------------------------------------ */
typedef struct {
    const rt_dataset *ds;
    int stream[RT_MAXIN];
    size_t numel[RT_MAXIN];
} MemSource;

static int mem_read(rt_source *s, int i, int in, float *dst, char *err, size_t errlen) {
    const MemSource *ms = s->impl;
    const size_t n = ms->numel[in];
    memcpy(dst, ms->ds->x[ms->stream[in]] + (size_t)i * n, sizeof(float) * n);
    return 0;
}

static void mem_close(rt_source *s) {
    free(s->impl);
    free(s);
}

rt_source *rt_memory_source(const rt_dataset *ds, const rt_model *m, const char *what, char *err, size_t errlen) {
    MemSource *ms = rt_alloc(sizeof *ms);
    ms->ds = ds;
    for (int i = 0; i < m->ninputs; i++) {
        int s = -1;
        for (int j = 0; j < ds->nstreams; j++)
            if (strcmp(ds->stream[j], m->inputs[i].name) == 0) s = j;
        if (s < 0 || ds->numel[s] != m->inputs[i].numel) {
            snprintf(err, errlen, "%s: %s input '%s'", what, s < 0 ? "the data set has no" : "the data set holds another size of",
                     m->inputs[i].name);
            free(ms);
            return NULL;
        }
        ms->stream[i] = s, ms->numel[i] = ds->numel[s];
    }
    rt_source *src = rt_alloc(sizeof *src);
    snprintf(src->what, sizeof src->what, "%s", what);
    src->n = ds->n;
    src->classes = ds->classes;
    src->y = ds->y;
    src->ninputs = m->ninputs;
    src->read = mem_read;
    src->close = mem_close;
    src->impl = ms;
    return src;
}
