/* mmrt.h — the runtime that every generated training program links.
 *
 * The generated code describes the model (tables of parameters, state,
 * inputs, branches, fusion modules, the graph variants) and provides a
 * back end (rt_backend) that runs one step of a variant. Everything else
 * lives here: the command line, data loading, the training loop and its
 * policies, checkpoints, metrics and the diagnostics of the paper.
 *
 * Every fallible call is checked by a wrapper that names the call site
 * (rt_check_alloc, rt_fopen, ...); a failure prints `prog: error: ...` and
 * exits non-zero, never losing a checkpoint (they are written atomically). */
#ifndef MMRT_H
#define MMRT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mmnet_shared.h"

#if defined(__cplusplus) && !defined(_Noreturn)
#define _Noreturn [[noreturn]]
#endif

/* ---- what the generated code describes ----------------------------------- */
typedef struct {
    const char *name;        /* c.conv1.weight */
    int ndim;
    int shape[5];
    size_t numel, off;       /* offset in floats in the parameter arena */
    unsigned groups;         /* RT_GROUP_MAIN(k) | RT_GROUP_BYPASS(k) */
    int branch;              /* -1: shared */
    int init;                /* RT_INIT_* */
    float bound;             /* RT_INIT_UNIFORM: U(-bound, bound) */
    unsigned loss_terms;     /* bit i: the loss's i-th term (the i-th RT_STATE_LOSS_WEIGHT state) depends on it */
} rt_param_info;

typedef struct {
    const char *name;        /* c.bn1.running_mean, mmtm1.gate_mean_c */
    int ndim;
    int shape[5];
    size_t numel, off;
    int kind;                /* RT_STATE_* */
    float init;
} rt_state_info;

typedef struct {
    const char *name;        /* color */
    int ndim;
    int shape[4];            /* per example */
    size_t numel;
} rt_input_info;

typedef struct {
    const char *name;        /* mmtm1 */
    int nb;
    int branch[RT_MAXB];
    int gate_state[RT_MAXB];
    int squeeze_state[RT_MAXB];
} rt_fusion_info;

typedef struct {
    const char *name;        /* train, rebalance-c, ... */
    int kind;                /* RT_VAR_* */
    int k;                   /* branch of REBALANCE / RUBI */
    const unsigned char *has_grad; /* training variants: per parameter, 1 when the step computes its gradient */
    int nkernels;
    const char *const *kernel_names; /* "%11 conv", "%11 conv+%13 maxpool": the last %N is the IR node each kernel stores */
} rt_variant_info;

/* ---- what a step exchanges with the back end ------------------------------ */
typedef struct {
    int B;                         /* examples in this batch (<= the largest batch) */
    const mm_real *x[RT_MAXIN];    /* host, in input-table order, channel-major: [C][B][positions] */
    const int32_t *y;              /* [B] */
} rt_batch;

typedef struct rt_result rt_result;
typedef struct {
    rt_optim opt;                  /* the optimizer's settings for this step */
    long acc_n;                    /* regular steps (gate means) or examples (squeeze means) accumulated so far */
    unsigned long long seed, step; /* dropout masks */
    const unsigned char *update;   /* per parameter: update it (NULL: all) */
    const float (*bias)[2];        /* per parameter: Adam's bias corrections for this update (rt_optim_bias; NULL: none) */
    /* Between the backward pass and the update: modulate(ctx, r, grads)
     * may change the gradients (host, in the parameter arena's layout)
     * from the step's logits (OGM-GE). NULL: none. The CUDA back end
     * copies the gradients to the host and back for it. */
    void (*modulate)(void *ctx, const rt_result *r, mm_real *grads);
    void *ctx;
} rt_hyper;

struct rt_result {
    double loss;                   /* the step's loss, mean over the batch */
    const mm_real *logits[RT_MAXB]; /* host [B, classes]; valid until the next call */
    const mm_real *pred;           /* host [B, classes]: the prediction (mean of the branch logits) */
    double (*norms)[2];            /* training: per parameter |grad|^2 and |param|^2, before the update (ALGORITHMS §4) */
};

/* The arenas: parameters, the optimizer's buffers (the momentum or Adam's
 * first moment; Adam's second moment), model state. */
enum { RT_ARENA_PARAMS, RT_ARENA_MOMENTUM, RT_ARENA_STATES, RT_ARENA_MOMENT2 };

typedef struct rt_model rt_model;
typedef struct rt_exec rt_exec;    /* the back end's state */

typedef struct {
    const char *target;            /* "c", "cuda" */
    rt_exec *(*create)(const rt_model *m, int max_batch);
    void (*destroy)(rt_exec *e);
    void (*read)(rt_exec *e, int arena, mm_real *host);        /* whole arena to host */
    void (*write)(rt_exec *e, int arena, const mm_real *host); /* host to whole arena */
    /* A training step of variant v: forward, backward, then for every parameter
     * (in one fused pass) the norms and the optimizer's update. */
    void (*train)(rt_exec *e, int v, const rt_batch *b, const rt_hyper *h, rt_result *r);
    /* An evaluation pass of variant v (eval, cut or squeeze). */
    void (*eval)(rt_exec *e, int v, const rt_batch *b, const rt_hyper *h, rt_result *r);
    /* Per-kernel timing of one step (mmc build --profile); NULL when not built in. */
    void (*profile)(rt_exec *e, int v, const rt_batch *b, const rt_hyper *h, FILE *out);
    /* After every kernel of the following steps, fn(user, k, output, n): the
     * k-th kernel's result (n floats, on the host). For comparing back ends
     * kernel by kernel; NULL turns it off. */
    void (*trace)(rt_exec *e, void (*fn)(void *user, int k, const float *out, size_t n), void *user);
    /* Host memory for the data loader's batches that the back end copies
     * from fastest: pinned memory for CUDA, whose copies then run
     * asynchronously. NULL: ordinary memory. */
    void *(*host_alloc)(size_t bytes);   /* zeroed */
    void (*host_free)(void *p);
    /* Start copying batch b, the one after the batch of the next train or
     * eval call, to the device, so that the copy overlaps that step; the
     * call that gets b then uses the copy. b's memory must not change
     * until that call returns. b NULL: forget what was copied (a new pass
     * begins). NULL: the back end copies each batch in its step. */
    void (*stage)(rt_exec *e, const rt_batch *b);
    /* The back end's part of the memory plan in host memory (act, fixed,
     * scratch, work); NULL when its arenas are elsewhere (a GPU's). */
    void (*memory)(const rt_model *m, rt_mem_plan *p);
} rt_backend;

struct rt_model {
    const char *name, *source;     /* model name, the .mmnet it came from */
    int nparams;
    const rt_param_info *params;
    size_t params_floats;
    int nstates;
    const rt_state_info *states;
    size_t states_floats;
    int ninputs;
    const rt_input_info *inputs;
    int nbranches;
    const char *const *branches;
    int classes;
    int nfusions;                  /* MMTMs */
    const rt_fusion_info *fusions;
    int nvariants;
    const rt_variant_info *variants;
    const char *predict;           /* the .mmnet's predict: a head's name, or mean(a, b) */
    rt_config cfg;                 /* the .mmnet train section */
    const rt_backend *backend;
    const void *impl;              /* the back end's tables (generated) */
    const char *build_flags;       /* how the program was compiled, for logs */
    const int *branch_input;       /* [nbranches]: the input each branch reads (NULL: branch k reads input k) */
    const int *head_weights;       /* the weights of the linear layers whose logits the prediction averages (parameter
                                    * indices, ended by -1; NULL: none) */
};

/* Entry point called by the generated main(). */
int rt_main(const rt_model *m, int argc, char **argv);

/* ---- checked calls (rt_util.c) -------------------------------------------- */
extern const char *rt_prog;        /* argv[0]'s base name, for messages */
_Noreturn void rt_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void rt_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void *rt_alloc_at(size_t n, const char *file, int line);         /* zeroed, 64-byte aligned */
FILE *rt_fopen_at(const char *path, const char *mode, const char *file, int line);
#define rt_alloc(n) rt_alloc_at((n), __FILE__, __LINE__)
#define rt_fopen(p, m) rt_fopen_at((p), (m), __FILE__, __LINE__)
double rt_now(void);               /* seconds, monotonic */
/* A message into err[errlen] (nothing when err is NULL): how loaders and
 * readers report a problem and leave the caller to decide how to die. */
void rt_set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int rt_cpu_count(void);             /* processors this process may run on */
/* How idle OpenMP threads wait (RT_WAIT_*), set before the OpenMP runtime
 * starts (it reads its settings at its first call): passive, they sleep as
 * soon as a parallel region ends and leave the core to whatever else runs;
 * active, the runtime's own default, they spin a while first. An
 * OMP_WAIT_POLICY or KMP_BLOCKTIME in the environment is kept unless
 * `given` (a --wait flag). */
void rt_wait_policy(int wait, bool given);

/* ---- memory (rt_memory.c) ------------------------------------------------- */
/* Model m's memory plan (mmnet_shared.h) on its back end. */
void rt_memory_plan(const rt_model *m, int optimizer, rt_mem_plan *p);
/* The bytes this process may still allocate: the least of MMNET_MEMORY_LIMIT
 * (a limit on the process, for tests), the cgroup's limit (v2, else v1) less
 * its use, the address-space limit (ulimit -v) less the process's, and the
 * system's MemAvailable; what bounds it, for messages, into what[n]. */
double rt_memory_available(char *what, size_t n);
/* Dies, before anything of the batch is allocated, when the plan for batch
 * B (with the OpenMP threads the run has) exceeds the memory available,
 * with both figures and the largest batch that fits. */
void rt_memory_check(const rt_model *m, int optimizer, int batch);
/* Index of the variant of this kind (and branch), or -1. */
int rt_find_variant(const rt_model *m, int kind, int k);

/* Deterministic random numbers (xoshiro256**, seeded by splitmix64). */
typedef struct { uint64_t s[4]; } rt_rng;
void rt_rng_seed(rt_rng *r, uint64_t seed);
uint64_t rt_rng_next(rt_rng *r);
double rt_rng_uniform(rt_rng *r);             /* [0, 1) */
double rt_rng_normal(rt_rng *r);              /* N(0, 1) */
uint32_t rt_rng_below(rt_rng *r, uint32_t n); /* [0, n) without bias */

/* ---- data (rt_data.c) ---------------------------------------------------- */
typedef struct {
    int n;                         /* examples */
    int nstreams;
    const char *stream[RT_MAXIN];  /* names: "color", "gray" */
    size_t numel[RT_MAXIN];        /* floats per example */
    float *x[RT_MAXIN];            /* [n, numel] */
    int32_t *y;                    /* [n] */
    int classes;
} rt_dataset;

typedef struct {
    rt_dataset train, val, test;
} rt_data;

/* One IDX file (MNIST format), read through zlib so that `path` may be
 * gzip-compressed or plain. Every header field is checked. */
typedef struct {
    int ndim;
    int dims[4];
    size_t count;                  /* dims[0] */
    size_t item;                   /* bytes per item: product of dims[1..] */
    uint8_t *data;                 /* count * item bytes */
} rt_idx;
/* 0 on success; otherwise -1 with a message naming the file in err. */
int rt_idx_read(const char *path, int want_ndim, rt_idx *out, char *err, size_t errlen);
void rt_idx_free(rt_idx *x);

/* Colored-and-gray data over an IDX image set (ALGORITHMS §9). `dir` holds
 * train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-...;
 * the validation set is `val` held-out training examples (a fraction of
 * them when below 1) with colours
 * independent of the label. Deterministic for a seed. limit_train > 0 keeps
 * that many training examples. */
int rt_load_colored_gray(const char *dir, float variance, double val, int limit_train, uint64_t seed, rt_data *out,
                         char *err, size_t errlen);
/* Random inputs shaped like the model's, with a learnable class signal. */
void rt_make_synthetic(const rt_model *m, int ntrain, int ntest, uint64_t seed, rt_data *out);
void rt_data_free(rt_data *d);
/* The colour of class c (RGB in [0,1]). */
void rt_class_color(int c, float rgb[3]);

/* ---- checkpoints (rt_ckpt.c): safetensors, written atomically ------------- */
typedef struct {
    const char *name;
    int ndim;
    int64_t shape[5];
    int dtype;                     /* RT_F32, RT_F64, RT_I64 */
    const void *data;
} rt_tensor;
enum { RT_F32, RT_F64, RT_I64 };

/* Write `path` atomically: a temporary file in the same directory, fsync,
 * rename, fsync of the directory. meta: n_meta key/value string pairs,
 * stored under "__metadata__". 0 on success, else -1 with err. */
int rt_ckpt_save(const char *path, const rt_tensor *t, int n, const char *const *meta, int n_meta, char *err, size_t errlen);

typedef struct rt_ckpt rt_ckpt;
rt_ckpt *rt_ckpt_load(const char *path, char *err, size_t errlen);
#define RT_CKPT_MAXDIM 8
/* The tensor called name, or NULL; checks dtype and fills ndim/shape
 * (shape must hold RT_CKPT_MAXDIM entries). */
const void *rt_ckpt_get(const rt_ckpt *c, const char *name, int dtype, int *ndim, int64_t *shape);
const char *rt_ckpt_meta(const rt_ckpt *c, const char *key);
/* The file's tensors, in its order: how many, and the i-th's name, dtype and
 * shape (ndim and shape may be NULL). */
int rt_ckpt_count(const rt_ckpt *c);
const char *rt_ckpt_name(const rt_ckpt *c, int i, int *dtype, int *ndim, int64_t *shape);
void rt_ckpt_free(rt_ckpt *c);

#endif
