/* rt_trainer.h — private to the runtime: the state of a training run (or
 * of a checkpoint's evaluation), shared by the files that handle it:
 *
 *   rt_train.c    the training loop, in steps
 *   rt_predict.c  ./prog predict, from rt_eval.c's evaluation pass
 *   rt_eval.c     a run's data and batches, evaluation of a split, the
 *                 conditional utilization rate, ./prog eval and util
 *   rt_runckpt.c  a run's parameters and checkpoints: fresh, saved,
 *                 loaded on --resume; the run directory and its logs
 *
 * Calls go down that list, never up; rt_bench.c uses only rt_runckpt.c. */
#ifndef RT_TRAINER_H
#define RT_TRAINER_H

#include <cjson/cJSON.h>

#include "rt_dist.h"
#include "rt_loader.h"
#include "rt_policy.h"
#include "rt_schedule.h"
#include "rt_train.h"

/* The run's three splits. */
enum { RT_SPLIT_TRAIN, RT_SPLIT_VAL, RT_SPLIT_TEST };

/* A split: examples idx[0..n) of a source (idx NULL: its first n). */
typedef struct {
    rt_source *src;
    int *idx;
    int n;
} rt_split;

typedef struct {
    const rt_model *m;
    const rt_backend *be;
    rt_exec *e;
    rt_config cfg;
    const rt_train_opts *o;
    rt_data mem;                   /* an in-memory data set (colored_gray, synthetic) */
    rt_source *src[3];             /* the sources the splits read (val's may be train's) */
    rt_split split[3];             /* RT_SPLIT_* */
    rt_loader *loader;
    rt_batch ahead;                /* the pass's batch after the current one, being copied ahead ... */
    bool ahead_ok;                 /* ... if there is one (back ends with a stage call) */
    float *params, *mom, *states;  /* host copies for checkpoints */
    float *mom2;                   /* Adam's second moment (RT_ARENA_MOMENT2) */
    long long *opt_steps;          /* per parameter: the optimizer's updates of it so far (Adam's t) */
    float (*bias)[2];              /* per parameter: the step's bias corrections (rt_optim_bias) */
    float *best_params, *best_states;
    int batch;
    /* run state (all of it goes into last.ckpt) */
    int epoch;                     /* epochs completed */
    long step, regular_steps;
    float lr;
    double best_val, best_test, best_branch_test[RT_MAXB], best_d_speed;
    int best_epoch;
    rt_speed speed;
    rt_controller ctl;
    rt_rng shuffle;
    double plateau_best;
    int plateau_stale, perfect_epochs;
    long kind_count[RT_MAXB + 1];  /* steps of each kind: [0] regular, [1 + k] re-balance k */
    double samples_per_s;
    FILE *steps, *metrics;
    /* OGM-GE: the batch of the step in progress, and its ratio and coefficients */
    const rt_batch *ogm_batch;
    double ogm_rho, ogm_coeff[2];
    /* G-Blend (docs/methods.md): the loss terms, each a weight state
     * loss.weight.NAME, measured on the logits of a branch head or (-1) on
     * the prediction; the losses measured at the start of the super-epoch
     * in progress (they go into last.ckpt) and the weights in force. */
    struct {
        int n;
        int state[RT_GBLEND_MAX], branch[RT_GBLEND_MAX];
        const char *name[RT_GBLEND_MAX];
        double lt[RT_GBLEND_MAX], lv[RT_GBLEND_MAX];    /* training-sample and validation losses */
        double w[RT_GBLEND_MAX];                        /* as the states hold them (floats) */
        int *sample, nsample;                           /* the training examples measured */
        bool estimated, updated;                        /* this epoch: an estimate was made, and it moved the weights */
        double dG[RT_GBLEND_MAX], dO[RT_GBLEND_MAX];
    } gb;
    /* AGM: the running means of the two scores over the steps so far (they
     * go into last.ckpt), the step's scores, ratios and coefficients and the
     * means they were computed with, and buffers: a zero input, the
     * multi-modal output with each modality zeroed, the responses. */
    double agm_avg[2], agm_score[2], agm_ratio[2], agm_coeff[2], agm_avg_used[2];
    double agm_clipped;            /* the factor the step's gradients were clipped by (1: none) */
    const rt_batch *agm_batch;
    mm_real *agm_zero, *agm_pad[2], *agm_phi[2];
    /* MMPareto: the model's terms and encoders, the step's multi-modal
     * gradient, a host copy of the state, an update of nothing, and the
     * step's cosine and multi-modal weight per branch */
    rt_mmp_plan mmp;
    mm_real *mmp_gm;
    float *mmp_states;
    unsigned char *mmp_none;
    double mmp_cos[RT_MAXB], mmp_alpha[RT_MAXB];
} Trainer;

typedef struct {
    double acc, loss, branch[RT_MAXB];
} Score;

/* The conditional utilization rate (§3): each branch's test accuracy with
 * and without the cross-modal flow. */
typedef struct {
    bool ok;
    double a[RT_MAXB], a_cut[RT_MAXB], u[RT_MAXB], d_util;
} Util;

/* ---- rt_eval.c ------------------------------------------------------------- */
/* The run's data (cfg's source, from dir) as three splits, cut to
 * limit_train / limit_test, checked against the model, and a loader for
 * batches of T->batch; dies with a message naming the file on failure. */
void rt_open_data(Trainer *T, const char *dir, int limit_test);
void rt_close_data(Trainer *T);
/* Start a pass over positions order[0..n) of split s (order NULL: all of
 * it in order); `train`: with the training augmentation drawn from seed. */
void rt_pass(Trainer *T, int s, const int *order, int n, bool train, uint64_t seed);
/* The same, cut across the ranks of a data-parallel run: this rank reads
 * its shard of every batch (rt_loader_start_shard); the whole pass in one
 * process. */
void rt_pass_shard(Trainer *T, int s, const int *order, int n, bool train, uint64_t seed);
/* The pass's next batch into *b, or false at its end; dies when a file
 * cannot be read. */
bool rt_next(Trainer *T, rt_batch *b);
/* Accuracy of the prediction and of each branch with variant v (eval or cut). */
Score rt_evaluate(Trainer *T, int split, int v);
/* The same, calling fn after each batch with its results: the batch holds
 * the examples at positions first .. first + b->B - 1 of the split. */
typedef void (*rt_eval_fn)(void *user, const rt_batch *b, const rt_result *r, int first);
Score rt_evaluate_each(Trainer *T, int split, int v, rt_eval_fn fn, void *user);
/* The class with the highest score (the first, on ties), as accuracy counts it. */
int rt_argmax(const mm_real *z, int k);
/* A checkpoint's weights into a new back end, and the data as its run read
 * it (dir NULL: the run's directory), for ./prog eval, util and predict;
 * dies naming the file on any failure. workers: the loader's threads
 * (--workers; -1: the default). */
void rt_checkpoint_open(Trainer *T, const rt_model *m, const char *ckpt, const char *data_dir, int batch, int workers);
void rt_checkpoint_close(Trainer *T);
/* Of the network now in the back end; u.ok is false without MMTMs between
 * two or more branches. */
Util rt_utilization(Trainer *T);
cJSON *rt_utilization_json(const rt_model *m, const Util *u);

/* ---- rt_runckpt.c ---------------------------------------------------------- */
void rt_init_params(const rt_model *m, float *p, uint64_t seed);
void rt_init_states(const rt_model *m, float *s);
/* Create the run directory (and its parents), or die. */
void rt_run_mkdir(const char *dir);
/* Remove the temporary checkpoints that killed runs left in dir: those
 * named last.ckpt.tmp.PID or best.ckpt.tmp.PID whose process is gone. */
void rt_run_remove_stale_temps(const char *dir);
/* T->steps and T->metrics: new files, or on --resume the lines the
 * checkpoint covers, so that the logs read as an uninterrupted run's would. */
void rt_run_open_logs(Trainer *T, const char *steps_header);
/* RUNDIR/name: the parameters and state given, T's optimizer state and run state. */
void rt_run_save(Trainer *T, const char *name, const float *params, const float *states);
/* A checkpoint's parameters and model state into host arrays, every shape
 * checked and every value finite; the checkpoint, for its metadata and other
 * tensors. */
rt_ckpt *rt_run_load_tensors(const rt_model *m, const char *path, float *params, float *states);
/* ---- rt_init.c ------------------------------------------------------------- */
/* train --init: the parameters and state tensors of path that the model has
 * (by name), into T's; a shape mismatch dies unless partial skips it. */
void rt_run_init(Trainer *T, const char *path, bool partial);

/* T's run state, parameters, optimizer state and model state from
 * RUNDIR/last.ckpt, and the best parameters and state from best.ckpt; every
 * value checked (the metadata against the run's configuration and the
 * model, the tensors for non-finite values), or it dies naming the file and
 * the field. */
void rt_run_resume(Trainer *T);
/* After the data is open on --resume: the checkpoint's step count is its
 * epochs' over this training set, or it dies. */
void rt_run_check_steps(const Trainer *T);
/* The run configuration a checkpoint holds (config.* in its metadata) into
 * cfg, every field checked; a checkpoint of format 1 holds only the data's
 * seed, variance, val, limit_train and data_dir. Dies naming the file and
 * the key. */
void rt_run_read_config(const rt_model *m, const rt_ckpt *c, const char *path, rt_config *cfg);

#endif
