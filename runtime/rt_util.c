/* rt_util.c — checked calls, time, random numbers, and the lookup of a
 * graph variant, which the command line and the training loop share. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mmrt.h"
#include "rt_dist.h"

const char *rt_prog = "mmnet";
const rt_dist_ops *rt_dist = NULL;
const rt_dist_dev_ops *rt_dist_dev = NULL;

void rt_die(const char *fmt, ...) {
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "%s: error: ", rt_prog);
    if (rt_dist && rt_dist->size > 1) fprintf(stderr, "rank %d of %d: ", rt_dist->rank, rt_dist->size);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    /* The other ranks may be waiting for this one in a collective: stop them too. */
    if (rt_dist && rt_dist->size > 1) rt_dist->abort(1);
    exit(1);
}

double rt_dist_seconds;

int rt_dist_average(int B, double *loss, float *grads, size_t ngrads, float *states, size_t nstates) {
    double t0 = rt_now();
    double t[2] = {B > 0 ? *loss * B : 0.0, (double)B};
    rt_dist->sum_d(t, 2);
    const float w = (float)(B / t[1]);
    for (size_t i = 0; i < ngrads; i++) grads[i] *= w;
    for (size_t i = 0; i < nstates; i++) states[i] *= w;
    rt_dist->sum_f(grads, ngrads);
    rt_dist->sum_f(states, nstates);
    *loss = t[0] / t[1];
    rt_dist_seconds += rt_now() - t0;
    return (int)t[1];
}

size_t rt_dist_bucket;
long rt_dist_buckets;

int rt_dist_average_rest(int B, size_t hi, double *loss, float *grads, size_t ngrads, float *states, size_t nstates) {
    double t0 = rt_now();
    double t[2] = {B > 0 ? *loss * B : 0.0, (double)B};
    const float w = (float)B;
    for (size_t i = 0; i < hi; i++) grads[i] *= w;
    for (size_t i = 0; i < nstates; i++) states[i] *= w;
    if (hi) rt_dist->start_sum_f(grads, hi);
    if (nstates) rt_dist->start_sum_f(states, nstates);
    rt_dist->sum_d(t, 2);
    rt_dist->finish_sums();
    const float inv = (float)(1.0 / t[1]);
    for (size_t i = 0; i < ngrads; i++) grads[i] *= inv;
    for (size_t i = 0; i < nstates; i++) states[i] *= inv;
    *loss = t[0] / t[1];
    rt_dist_seconds += rt_now() - t0;
    return (int)t[1];
}

void rt_warn(const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "%s: warning: ", rt_prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void *rt_alloc_at(size_t n, const char *file, int line) {
    size_t sz = (n + 63) & ~(size_t)63;
    void *p = NULL;
    if (sz == 0) sz = 64;
    if (posix_memalign(&p, 64, sz) != 0 || !p)
        rt_die("out of memory allocating %zu bytes (%s:%d)", n, file, line);
    memset(p, 0, sz);
    return p;
}

FILE *rt_fopen_at(const char *path, const char *mode, const char *file, int line) {
    FILE *f = fopen(path, mode);
    if (!f) rt_die("cannot open '%s' for %s: %s (%s:%d)", path, mode[0] == 'r' ? "reading" : "writing", strerror(errno), file, line);
    return f;
}

double rt_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void rt_rng_seed(rt_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t rt_rng_next(rt_rng *r) {
    uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double rt_rng_uniform(rt_rng *r) { return (double)(rt_rng_next(r) >> 11) * 0x1.0p-53; }

double rt_rng_normal(rt_rng *r) {
    /* Box-Muller; one value per call keeps the stream simple to reproduce. */
    double u = rt_rng_uniform(r), v = rt_rng_uniform(r);
    if (u < 1e-300) u = 1e-300;
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

uint32_t rt_rng_below(rt_rng *r, uint32_t n) {
    uint64_t lim = UINT64_MAX - UINT64_MAX % n;
    for (;;) {
        uint64_t x = rt_rng_next(r);
        if (x < lim) return (uint32_t)(x % n);
    }
}

int rt_find_variant(const rt_model *m, int kind, int k) {
    for (int v = 0; v < m->nvariants; v++)
        if (m->variants[v].kind == kind && (k < 0 || m->variants[v].k == k)) return v;
    return -1;
}

int rt_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

void rt_wait_policy(int wait, bool given) {
    if (!given && (getenv("OMP_WAIT_POLICY") || getenv("KMP_BLOCKTIME"))) return;
    /* LLVM's libomp, which the runtime links, spins 200 ms (KMP_BLOCKTIME)
     * after every parallel region by default: on a core another process
     * needs, the spinning threads of the next barrier's wait take the time
     * the late thread needs (cgmnist fell from 1,100 to 130 samples/s with
     * one busy process on two cores). */
    if (wait == RT_WAIT_PASSIVE) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        unsetenv("KMP_BLOCKTIME");
    } else {
        unsetenv("OMP_WAIT_POLICY");
        unsetenv("KMP_BLOCKTIME");
    }
}

void rt_set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}
