/* mmnet_shared.h — what the compiler and the generated program share: the
 * training configuration (the .mmnet `train` section, which the program's
 * command line overrides), and the constants that name parameter groups,
 * initialisers, state, graph variants and policies.
 *
 * It lives in common/, apart from both sides, so that the compiler's folders
 * (frontend -> ir -> passes -> codegen) never reach into runtime/ and the
 * runtime stands alone. The compiler includes it as ../common/mmnet_shared.h;
 * the runtime, whose headers are installed flat in include/mmnet next to
 * it, as "mmnet_shared.h" (the build gives both folders with -I). Plain C,
 * no dependencies. */
#ifndef MMNET_SHARED_H
#define MMNET_SHARED_H

/* The element type of tensors. Programs use float; the gradient tests
 * compile the same generated kernels with -DMMNET_F64 to check them against
 * finite differences in double precision. */
#ifdef MMNET_F64
typedef double mm_real;
#else
typedef float mm_real;
#endif

#define RT_MAXB 8        /* branches (modalities) */
#define RT_MAXIN 8       /* model inputs */
#define RT_MAXFUSE 64    /* fusion modules */

/* Conditional-learning-speed groups (ALGORITHMS §4): bit 2k is main_k,
 * bit 2k+1 is bypass_k. */
#define RT_GROUP_MAIN(k) (1u << (2 * (k)))
#define RT_GROUP_BYPASS(k) (1u << (2 * (k) + 1))

enum { RT_INIT_ZERO, RT_INIT_ONE, RT_INIT_UNIFORM };
enum { RT_STATE_BN_MEAN, RT_STATE_BN_VAR, RT_STATE_GATE_MEAN, RT_STATE_SQUEEZE_MEAN };
/* ACCUM modes: a running mean over steps of the batch mean (gates, §5), or
 * over samples (training-set squeeze means, §3). */
enum { RT_ACC_STEPS, RT_ACC_SAMPLES };

/* The graphs a program runs (the compiler's IrVariant uses these values). */
enum { RT_VAR_FORWARD, RT_VAR_TRAIN, RT_VAR_REBALANCE, RT_VAR_RUBI, RT_VAR_EVAL, RT_VAR_CUT, RT_VAR_SQUEEZE };

enum { RT_POLICY_VANILLA, RT_POLICY_GUIDED, RT_POLICY_RANDOM, RT_POLICY_RUBI };
/* What a re-balancing step updates (ALGORITHMS §5). */
enum { RT_REBAL_ALL, RT_REBAL_BRANCH };

/* The optimizer's settings: all that the update of a parameter reads. The
 * run configuration holds the .mmnet's (cfg.opt, which the command line
 * overrides), each step's rt_hyper the ones in force (the schedule lowers
 * lr), and the CUDA back end a device copy. An optimizer's settings go
 * here, its rule in runtime/rt_optim.h. */
typedef struct {
    float lr, momentum, weight_decay, l1;
} rt_optim;

typedef struct {
    /* data */
    char data[32];           /* "colored_gray", "gray", "identical" */
    char data_dir[512];      /* "" = the default (Debian's Fashion-MNIST) */
    float variance;          /* colour noise variance (§9) */
    int val_size;            /* held-out validation examples */
    int limit_train;         /* 0 = all */
    int synth_train, synth_test; /* sizes of the synthetic data set */
    rt_optim opt;
    int batch, epochs;
    unsigned long long seed;
    /* schedule and stopping (§2, options) */
    float plateau_factor;    /* multiply lr by this ... */
    int plateau_patience;    /* ... after this many epochs without a lower train loss; 0 = off */
    int stop_perfect;        /* stop this many epochs after 100% train accuracy; 0 = off */
    /* policy (§5-§7) */
    int policy;
    float alpha;             /* imbalance tolerance */
    int window;              /* re-balancing window Q */
    int warmup;              /* epochs of regular steps only */
    int rubi_branch;         /* the bias branch of RUBi */
    int rebalance_update;    /* RT_REBAL_ALL or RT_REBAL_BRANCH */
} rt_config;

#endif
