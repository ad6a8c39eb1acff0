/* rt_train.h — what the command line (rt_main.c) calls: the training loop
 * (rt_train.c), the evaluations of a checkpoint (rt_eval.c) and the
 * benchmark (rt_bench.c). */
#ifndef RT_TRAIN_H
#define RT_TRAIN_H

#include "mmrt.h"

typedef struct {
    rt_config cfg;             /* the .mmnet's, with the command line's overrides */
    const char *data_dir;      /* resolved: --data, the .mmnet's dir, or the default */
    const char *out_dir;       /* RUNDIR */
    bool resume;
    bool quiet;
    int profile;               /* print a per-kernel profile of one step first */
    bool lr_given;             /* --lr was given: it overrides a resumed run's learning rate */
    const char *init;          /* --init FILE: start from its weights (rt_init.c) */
    bool init_partial;         /* --init-partial: skip its tensors of another shape */
} rt_train_opts;

int rt_train(const rt_model *m, const rt_train_opts *o);

/* --resume DIR: cfg (the program's, with the command line's flags, given[]
 * saying which RT_CFG_* were set) becomes the run configuration saved in
 * DIR/last.ckpt. A given flag that differs where the table does not allow
 * it (rt_field.resume) returns -1 with the message in err; a checkpoint
 * that cannot be read dies naming the file. */
int rt_run_resume_config(const rt_model *m, const char *dir, rt_config *cfg, const bool *given, char *err, size_t errlen);

/* Accuracy of the prediction and of each branch on a split (RT_SPLIT_*,
 * rt_split_index), or the conditional utilization rates. */
int rt_eval_checkpoint(const rt_model *m, const char *ckpt, const char *data_dir, int batch, int workers, int split, bool util);
/* "train", "val", "test" -> RT_SPLIT_*, else -1. */
int rt_split_index(const char *name);

/* ./prog predict: per example of a split, the prediction and each branch's
 * class and probabilities (rt_predict.c). */
typedef struct {
    const char *ckpt, *data_dir;   /* data_dir NULL: the run's */
    int batch, split;              /* RT_SPLIT_* */
    int workers;                   /* the loader's threads; -1: the default */
    const char *out;               /* NULL: stdout */
    int format;                    /* RT_PREDICT_* */
    bool logits;                   /* also the logits */
} rt_predict_opts;
enum { RT_PREDICT_CSV, RT_PREDICT_JSONL };
int rt_predict(const rt_model *m, const rt_predict_opts *o);

/* Training (with the optimizer opt) and evaluation throughput on random
 * batches (./prog bench). */
int rt_bench(const rt_model *m, const rt_optim *opt, int batch, int steps, int reps, bool profile);

/* `report RUNDIR`: the run drawn as one self-contained HTML page (rt_report.c);
 * out_path NULL: RUNDIR/report.html. */
int rt_report(const char *run_dir, const char *out_path);

#endif
