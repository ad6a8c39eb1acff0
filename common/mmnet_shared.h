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

#include <stddef.h>

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
/* RT_STATE_LOSS_WEIGHT: one loss term's weight, a [1] tensor named
 * loss.weight.NAME that the runtime may change between steps. */
enum { RT_STATE_BN_MEAN, RT_STATE_BN_VAR, RT_STATE_GATE_MEAN, RT_STATE_SQUEEZE_MEAN, RT_STATE_LOSS_WEIGHT };
/* ACCUM modes: a running mean over steps of the batch mean (gates, §5), or
 * over samples (training-set squeeze means, §3). */
enum { RT_ACC_STEPS, RT_ACC_SAMPLES };

/* The graphs a program runs (the compiler's IrVariant uses these values). */
enum { RT_VAR_FORWARD, RT_VAR_TRAIN, RT_VAR_REBALANCE, RT_VAR_RUBI, RT_VAR_EVAL, RT_VAR_CUT, RT_VAR_SQUEEZE };

/* ---- the run configuration ------------------------------------------------
 *
 * Every setting of a run is one row of RT_CONFIG_FIELDS, and everything
 * about it is said there once: the C field (rt_config, or rt_optim for the
 * optimizer's), its default, the range a value must lie in, its name in the
 * .mmnet, the program's command-line flag and help line, and whether `mmc
 * sweep` can vary it. The compiler reads the .mmnet's values into it
 * (passes/train.c) and prints them back (mmc info), the emitter writes them
 * into the program, the program's command line overrides them
 * (runtime/rt_main.c), and mmc sweep takes its axes from it — all by walking
 * rt_config_fields (mmnet_shared.c), so a new setting is a new row.
 *
 *   X(GROUP, name, KIND, (properties))
 *
 * GROUP  OPTIM: a field of rt_optim (cfg.opt.name), the settings that the
 *        optimizer's update reads every step; RUN: a field of rt_config.
 * KIND   FLOAT (float), INT (int), U64 (unsigned long long), STR (a string
 *        of fewer than RT_STR_MAX bytes), ENUM (int: the index of one of
 *        .names), BRANCH (int: a branch, -1 for none), POLICY (int:
 *        RT_POLICY_*, named by RT_POLICIES).
 * properties are rt_field's members, as designated initialisers; all may be
 * left out:
 *   .dflt            its value when the .mmnet does not set it (numbers;
 *                    strings start empty)
 *   RT_OPTION_DEFAULT(v)  as an option of a construct: its value when the
 *                    construct is given without it, where that differs
 *                    from .dflt (plateau's patience is 10, but 0 — no
 *                    plateau — when there is no `schedule plateau`)
 *   .lo, .hi         the range of the values the .mmnet and the command line
 *                    may give; .lo_open / .hi_open leave the bound out
 *   .key             its name in the .mmnet: an option of the constructs
 *                    that list it below, or a key of the train section
 *   .needs           a required option: what the error says is missing
 *   .names           ENUM: its values' names, "all|own" ("false|true": the
 *                    .mmnet writes true or false); .choices: how the
 *                    compiler's error explains them
 *   .pair            FLOAT: the .mmnet gives this field and the next row's
 *                    as one option, a pair: betas=[0.9, 0.999]
 *   .list            STR: the .mmnet gives a list ([0, 6], [color, depth],
 *                    [[0.5], [0.4, 0.4, 0.4]]), kept as text: items
 *                    separated by ',', lists by ';' (the program's flag
 *                    takes that text)
 *   .flag, .meta     the program's option and its value's placeholder
 *   .help            its line in `prog --help`; flags in a row with the
 *                    same text share one line
 *   .any_command     the flag applies to eval, util and bench too
 *   .resume          what --resume does with it: RT_RESUME_KEEP (left out:
 *                    the checkpoint's value is restored, and a flag that
 *                    gives another is an error), RT_RESUME_RAISE (restored;
 *                    the flag may raise it), RT_RESUME_FREE (restored; the
 *                    flag may change it: it does not change the results)
 *   .sweep           RT_SWEEP_LOG: mmc sweep samples it log-uniformly in
 *                    [.sweep_lo, .sweep_hi], .sweep_n values; RT_SWEEP_COUNT:
 *                    it takes the values 1 .. .sweep_n. .noun names it in
 *                    sweep's messages.
 *
 * The order of the rows is the order of the flags in --help. */
#define RT_STR_MAX 512
#define RT_DEFAULT_DATA "/usr/share/datasets/fashion-mnist" /* Debian's dataset-fashion-mnist */
#define RT_OPTION_DEFAULT(v) .odflt = (v), .has_odflt = 1

#define RT_CONFIG_FIELDS(X)                                                                                               \
    /* the data set (§9) */                                                                                               \
    X(RUN, data, STR, ()) /* its source: a name of RT_DATA_SOURCES */                                                     \
    X(RUN, data_dir, STR, (.key = "root", .flag = "--data", .meta = "DIR", .any_command = 1,                              \
                           .help = "the data set's directory (default: the .mmnet's root, else " RT_DEFAULT_DATA ")"))   \
    X(RUN, views, STR, (.key = "views", .list = 1, .needs = "its views, one per input: views=[0, 6]")) /* "0,6" */        \
    X(RUN, modalities, STR, (.key = "modalities", .list = 1,                                                              \
                             .needs = "its modalities, one per input: modalities=[color, depth]")) /* "color,depth" */  \
    X(RUN, list, STR, (.key = "list")) /* clips: the list files, {split} for train or test */                           \
    X(RUN, frames, INT, (.key = "frames", .lo = 1, .hi = 100000)) /* clips: frames read per clip (0: the input's) */    \
    X(RUN, resize, ENUM, (.key = "resize", .names = "false|true", .dflt = 1)) /* images of another size: resize, or refuse */ \
    X(RUN, mean, STR, (.key = "mean", .list = 1)) /* normalisation: "a,b,c" (every input), "a;b,c,d" (per input) */      \
    X(RUN, std, STR, (.key = "std", .list = 1))                                                                          \
    X(RUN, flip, ENUM, (.names = "off|own|same")) /* augment: no flips, each input its own, all together */             \
    X(RUN, crop, INT, (.lo = 1, .hi = 100000)) /* augment: read at crop x crop, cut the input's size (0: no crop) */     \
    X(RUN, workers, INT, (.dflt = -1, .lo = 0, .hi = 1024, .flag = "--workers", .meta = "N", .any_command = 1,           \
                          .resume = RT_RESUME_FREE,                                                                      \
                          .help = "threads decoding the next batches (default: one per core for files, none for data in memory)")) \
    X(RUN, wait, ENUM, (.names = "passive|active", .flag = "--wait", .any_command = 1, /* RT_WAIT_* */                     \
                        .help = "how idle CPU threads wait: passive (sleep at once, the default) or active (spin a while, "  \
                                "OpenMP's own default: far slower when other processes use the cores)"))                      \
    X(RUN, bucket_mb, FLOAT, (.lo = 0, .hi = 1e6, .flag = "--bucket-mb", .meta = "MB", .resume = RT_RESUME_FREE,           \
                              .help = "under mpirun: average the gradients in buckets of MB as the backward pass finishes them "  \
                                      "(0, the default: all after it)"))                                                     \
    X(RUN, variance, FLOAT, (.key = "variance", .dflt = 0.02, .lo = 0, .hi = 1)) /* colour noise */                       \
    X(RUN, synth_train, INT, (.key = "train", RT_OPTION_DEFAULT(2048), .lo = 1, .hi = 1e7)) /* synthetic examples */      \
    X(RUN, synth_test, INT, (.key = "test", RT_OPTION_DEFAULT(512), .lo = 1, .hi = 1e7))                                  \
    /* the optimizer and the schedule */                                                                                  \
    X(RUN, epochs, INT, (.key = "epochs", .lo = 1, .hi = 1000000, .flag = "--epochs", .meta = "N",                        \
                         .resume = RT_RESUME_RAISE))                                                                     \
    X(RUN, batch, INT, (.key = "batch", .lo = 1, .hi = 65536, .flag = "--batch", .meta = "B", .any_command = 1))          \
    X(OPTIM, lr, FLOAT, (.key = "lr", .needs = "a learning rate: sgd(lr=0.01)", .lo = 0, .lo_open = 1, .hi = 100,         \
                         .flag = "--lr", .meta = "X", .sweep = RT_SWEEP_LOG, .sweep_lo = 1e-3, .sweep_hi = 0.1,           \
                         .sweep_n = 8, .noun = "learning rate",                                                           \
                         .resume = RT_RESUME_FREE)) /* on --resume, a given lr replaces the scheduled one */              \
    X(RUN, seed, U64, (.key = "seed", .dflt = 1, .lo = 0, .hi = 2147483647, .flag = "--seed", .meta = "S",                \
                       .sweep = RT_SWEEP_COUNT, .sweep_n = 2, .noun = "seed")) /* initialisation, data, shuffling, policy */ \
    X(OPTIM, momentum, FLOAT, (.key = "momentum", .lo = 0, .hi = 1, .hi_open = 1, .flag = "--momentum", .meta = "X"))     \
    X(OPTIM, weight_decay, FLOAT, (.key = "weight_decay", .lo = 0, .hi = 1, .flag = "--weight-decay", .meta = "X"))       \
    X(OPTIM, l1, FLOAT, (.key = "l1", .lo = 0, .hi = 1, .flag = "--l1", .meta = "X"))                                     \
    /* the optimizer: an index of RT_OPTIMIZERS (the names are its rows', in its order) */                                \
    X(OPTIM, optimizer, ENUM, (.names = "sgd|adam|adamw", .flag = "--optimizer",                                          \
                               .help = "the optimizer; its settings are the .mmnet's unless given here"))                \
    /* adam/adamw: betas=[beta1, beta2] (the option is a pair: this row and the next) and eps */                         \
    X(OPTIM, beta1, FLOAT, (.key = "betas", .pair = 1, .dflt = 0.9, .lo = 0, .hi = 1, .hi_open = 1, .flag = "--beta1",     \
                            .meta = "X", .help = "Adam's betas and eps (adam, adamw)"))                                   \
    X(OPTIM, beta2, FLOAT, (.dflt = 0.999, .lo = 0, .hi = 1, .hi_open = 1, .flag = "--beta2", .meta = "X",                 \
                            .help = "Adam's betas and eps (adam, adamw)"))                                                \
    X(OPTIM, eps, FLOAT, (.key = "eps", .dflt = 1e-8, .lo = 0, .lo_open = 1, .hi = 1, .flag = "--eps", .meta = "X",        \
                          .help = "Adam's betas and eps (adam, adamw)"))                                                  \
    X(RUN, limit_train, INT, (.lo = 1, .hi = 2147483647, .flag = "--limit-train", .meta = "N",                            \
                              .help = "use only the first N training examples")) /* 0: all */                             \
    X(RUN, limit_test, INT, (.lo = 1, .hi = 2147483647, .flag = "--limit-test", .meta = "N",                              \
                             .help = "evaluate on only the first N validation and test examples")) /* 0: all */           \
    X(RUN, val, FLOAT, (.key = "val", .dflt = 5000, .lo = 0, .hi = 2147483647, .flag = "--val", .meta = "N",              \
                        .help = "held-out validation examples: a count, or a fraction of the training set below 1"))     \
    /* the learning-rate schedule: an index of RT_SCHEDULES (the names are its rows', in its order) */                    \
    X(RUN, schedule, ENUM, (.names = "constant|plateau|step|cosine", .flag = "--schedule",                                \
                            .help = "the learning-rate schedule (docs/training.md)"))                                     \
    /* plateau: multiply lr by plateau_factor after plateau_patience epochs without a lower training loss */              \
    X(RUN, plateau_factor, FLOAT, (.key = "factor", .dflt = 0.3, .lo = 0, .lo_open = 1, .hi = 1))                         \
    X(RUN, plateau_patience, INT, (.key = "patience", .dflt = 10, .lo = 1, .hi = 100000))                                 \
    /* step: multiply lr by step_gamma every step_every epochs (after the warm-up) */                                     \
    X(RUN, step_every, INT, (.key = "every", .needs = "its period in epochs: step(every=30, gamma=0.1)", .lo = 1,          \
                             .hi = 1000000, .flag = "--step-every", .meta = "E", .help = "step(every, gamma): the schedule's options")) \
    X(RUN, step_gamma, FLOAT, (.key = "gamma", .dflt = 0.1, .lo = 0, .lo_open = 1, .hi = 1, .flag = "--step-gamma",       \
                               .meta = "X", .help = "step(every, gamma): the schedule's options"))                        \
    /* cosine: from lr down to min_lr over the steps after the warm-up */                                                 \
    X(RUN, min_lr, FLOAT, (.key = "min_lr", .lo = 0, .hi = 100, .flag = "--min-lr", .meta = "X",                          \
                           .help = "cosine(min_lr): the learning rate it ends at"))                                        \
    /* warmup(epochs=E) or warmup(steps=S) in front of the schedule: lr rises linearly over the first steps (0: none) */  \
    X(RUN, lr_warmup_epochs, INT, (.key = "epochs", .lo = 0, .hi = 1000000, .flag = "--lr-warmup-epochs", .meta = "E",    \
                                   .help = "the learning rate's linear warm-up, in epochs or steps (0: none)"))           \
    X(RUN, lr_warmup_steps, INT, (.key = "steps", .lo = 0, .hi = 2147483647, .flag = "--lr-warmup-steps", .meta = "S",    \
                                  .help = "the learning rate's linear warm-up, in epochs or steps (0: none)"))            \
    /* stop this many epochs after 100% training accuracy (0: never) */                                                   \
    X(RUN, stop_perfect, INT, (.key = "epochs", RT_OPTION_DEFAULT(5), .lo = 1, .hi = 100000))                             \
    /* the balancing policy (§5-§7) */                                                                                    \
    X(RUN, policy, POLICY, (.dflt = RT_POLICY_VANILLA, .flag = "--policy", .meta = "P"))                                  \
    X(RUN, alpha, FLOAT, (.key = "alpha", .dflt = 0.1, .lo = 0, .hi = 1e6, .flag = "--alpha", .meta = "X",                \
                          .help = "guided/random options (ALGORITHMS 5, 6)")) /* imbalance tolerance */                   \
    X(RUN, window, INT, (.key = "window", .dflt = 5, .lo = 1, .hi = 1000000, .flag = "--window", .meta = "Q",             \
                         .help = "guided/random options (ALGORITHMS 5, 6)")) /* re-balancing steps Q */                   \
    X(RUN, warmup, INT, (.key = "warmup", .dflt = 1, .lo = 0, .hi = 1000000, .flag = "--warmup", .meta = "E",             \
                         .help = "guided/random options (ALGORITHMS 5, 6)")) /* epochs of regular steps only */           \
    X(RUN, rubi_branch, BRANCH, (.key = "bias", .dflt = -1, .needs = "its bias branch: rubi(bias=NAME)"))                 \
    X(RUN, rebalance_update, ENUM, (.key = "update", .names = "all|own", /* RT_REBAL_ALL, RT_REBAL_BRANCH */              \
                                    .choices = "'all' (every parameter, the default) or 'own' (only the re-balanced "     \
                                               "branch's own parameters)",                                                \
                                    .flag = "--rebalance-update",                                                         \
                                    .help = "what a re-balancing step updates: every parameter, or the branch's own"))   \
    /* modality_dropout(p): the probability that a training example loses one input (docs/methods.md) */                 \
    X(RUN, drop_p, FLOAT, (.key = "p", .dflt = 0.5, .lo = 0, .hi = 1, .flag = "--drop-p", .meta = "X",                    \
                           .help = "modality_dropout(p): the probability that a training example has one input zeroed"))  \
    /* ogm_ge(alpha, start, end): OGM-GE's modulation strength and its epochs, from 0 (docs/methods.md) */              \
    X(RUN, ogm_alpha, FLOAT, (.key = "alpha", .dflt = 0.5, .lo = 0, .hi = 1e6, .flag = "--ogm-alpha", .meta = "X",        \
                              .help = "ogm_ge(alpha, start, end): the modulation's strength and first and last epochs")) \
    X(RUN, ogm_start, INT, (.key = "start", .lo = 0, .hi = 1000000, .flag = "--ogm-start", .meta = "E",                   \
                            .help = "ogm_ge(alpha, start, end): the modulation's strength and first and last epochs"))   \
    X(RUN, ogm_end, INT, (.key = "end", .dflt = 50, .lo = 0, .hi = 1000000, .flag = "--ogm-end", .meta = "E",             \
                          .help = "ogm_ge(alpha, start, end): the modulation's strength and first and last epochs")) \
    X(RUN, ogm_ge, FLOAT, (.key = "ge", .dflt = 1, .lo = 0, .hi = 1e6, .flag = "--ogm-ge", .meta = "X",                    \
                           .help = "ogm_ge(ge): the noise's standard deviation over the gradient's (0: OGM without GE)"))   \
    /* gblend(every): G-Blend's super-epoch, the epochs between two re-estimates of the loss weights (docs/methods.md) */ \
    X(RUN, gblend_every, INT, (.key = "every", .dflt = 1, .lo = 1, .hi = 1000000, .flag = "--gblend-every", .meta = "E",  \
                               .help = "gblend(every): epochs between two estimates of the loss weights")) \
    /* agm(alpha, start, end): AGM's modulation strength and its epochs, from 0 (docs/methods.md) */                   \
    X(RUN, agm_alpha, FLOAT, (.key = "alpha", .dflt = 1, .lo = 0, .hi = 100, .flag = "--agm-alpha", .meta = "X",           \
                              .help = "agm(alpha, start, end): the modulation's strength and first and last epochs"))    \
    X(RUN, agm_start, INT, (.key = "start", .lo = 0, .hi = 1000000, .flag = "--agm-start", .meta = "E",                   \
                            .help = "agm(alpha, start, end): the modulation's strength and first and last epochs"))      \
    X(RUN, agm_end, INT, (.key = "end", .dflt = 19, .lo = 0, .hi = 1000000, .flag = "--agm-end", .meta = "E",             \
                          .help = "agm(alpha, start, end): the modulation's strength and first and last epochs"))    \
    X(RUN, agm_clip, FLOAT, (.key = "clip", .dflt = 1, .lo = 0, .hi = 1e6, .flag = "--agm-clip", .meta = "X",               \
                             .help = "agm(clip): the gradients' norm limit when a prediction head's gradient leaves [-X, X] (0: none)")) \
    /* mmpareto(gamma): the factor on the encoders' integrated gradients (docs/methods.md) */                          \
    X(RUN, mmp_gamma, FLOAT, (.key = "gamma", .dflt = 1.5, .lo = 0, .lo_open = 1, .hi = 1000, .flag = "--mmp-gamma",     \
                              .meta = "X", .help = "mmpareto(gamma): the factor on the encoders' integrated gradients"))

/* What a re-balancing step updates (ALGORITHMS §5): rebalance_update's names. */
enum { RT_REBAL_ALL, RT_REBAL_BRANCH };
/* How idle OpenMP threads wait between parallel regions: wait's names. */
enum { RT_WAIT_PASSIVE, RT_WAIT_ACTIVE };
/* How training flips inputs left-right (augment [flip]): flip's names. */
enum { RT_FLIP_OFF, RT_FLIP_OWN, RT_FLIP_SAME };

enum { RT_KIND_FLOAT, RT_KIND_INT, RT_KIND_U64, RT_KIND_STR, RT_KIND_ENUM, RT_KIND_BRANCH, RT_KIND_POLICY };
enum { RT_SWEEP_NO, RT_SWEEP_LOG, RT_SWEEP_COUNT };
enum { RT_RESUME_KEEP, RT_RESUME_RAISE, RT_RESUME_FREE };

/* The fields' numbers: RT_CFG_lr, ...; 0 is none (it ends option lists). */
enum {
    RT_CFG_NONE,
#define X(group, name, kind, props) RT_CFG_##name,
    RT_CONFIG_FIELDS(X)
#undef X
    RT_CFG_COUNT
};

/* The structs. */
#define RT_DECL_FLOAT(name) float name;
#define RT_DECL_INT(name) int name;
#define RT_DECL_U64(name) unsigned long long name;
#define RT_DECL_STR(name) char name[RT_STR_MAX];
#define RT_DECL_ENUM(name) int name;
#define RT_DECL_BRANCH(name) int name;
#define RT_DECL_POLICY(name) int name;
#define RT_IF_OPTIM_OPTIM(decl) decl
#define RT_IF_OPTIM_RUN(decl)
#define RT_IF_RUN_OPTIM(decl)
#define RT_IF_RUN_RUN(decl) decl

/* The optimizer's settings: all that the update of a parameter reads. The
 * run configuration holds the .mmnet's (cfg.opt, which the command line
 * overrides), each step's rt_hyper the ones in force (the schedule lowers
 * lr), and the CUDA back end a device copy. An optimizer's settings are
 * OPTIM rows above, its rule goes in runtime/rt_optim.h. */
typedef struct {
#define X(group, name, kind, props) RT_IF_OPTIM_##group(RT_DECL_##kind(name))
    RT_CONFIG_FIELDS(X)
#undef X
} rt_optim;

/* The run configuration: the .mmnet's train section, which the program's
 * command line overrides. */
typedef struct {
    rt_optim opt;
#define X(group, name, kind, props) RT_IF_RUN_##group(RT_DECL_##kind(name))
    RT_CONFIG_FIELDS(X)
#undef X
} rt_config;

/* A field, as the code that walks the table sees it (rt_config_fields). */
typedef struct {
    const char *name;
    int kind;                    /* RT_KIND_* */
    int optim;                   /* a field of rt_optim: cfg.opt.name */
    size_t off, size;            /* where in rt_config, how large */
    double dflt, odflt;
    int has_odflt;
    double lo, hi;
    int lo_open, hi_open;
    const char *key, *needs, *names, *choices;
    int list;
    int pair;                    /* the option is [this, the next row] */
    const char *flag, *meta, *help;
    int any_command;
    int resume;                  /* RT_RESUME_* */
    int sweep;
    double sweep_lo, sweep_hi;
    int sweep_n;
    const char *noun;
} rt_field;

extern const rt_field rt_config_fields[RT_CFG_COUNT]; /* [RT_CFG_NONE] is empty */

/* ---- the train section's constructs --------------------------------------
 *
 *   X(ID, "name", (options))                 and for policies
 *   X(ID, "name", variant, (options))
 *
 * A construct is one of the values of a train-section key (`policy
 * guided(...)`); its options are fields of RT_CONFIG_FIELDS, in the order the
 * .mmnet's messages and mmc info list them (the first may be given without
 * its name). A policy also names the graph variant its steps need (for
 * guided: the re-balancing graphs, which need MMTMs), so that the compiler
 * and the program can refuse it for a model that has none. A new policy is
 * a row here (and its rule in runtime/rt_policy.c). */
#define RT_POLICIES(X)                                                                                              \
    X(VANILLA, "vanilla", RT_VAR_TRAIN, ())                                                                         \
    X(GUIDED, "guided", RT_VAR_REBALANCE, (RT_CFG_alpha, RT_CFG_window, RT_CFG_warmup, RT_CFG_rebalance_update))   \
    X(RANDOM, "random", RT_VAR_REBALANCE, (RT_CFG_warmup, RT_CFG_rebalance_update))                                 \
    X(RUBI, "rubi", RT_VAR_RUBI, (RT_CFG_rubi_branch))                                                              \
    X(MODALITY_DROPOUT, "modality_dropout", RT_VAR_TRAIN, (RT_CFG_drop_p))                                          \
    X(OGM_GE, "ogm_ge", RT_VAR_TRAIN, (RT_CFG_ogm_alpha, RT_CFG_ogm_start, RT_CFG_ogm_end, RT_CFG_ogm_ge))          \
    X(GBLEND, "gblend", RT_VAR_TRAIN, (RT_CFG_gblend_every))                                                        \
    X(AGM, "agm", RT_VAR_TRAIN, (RT_CFG_agm_alpha, RT_CFG_agm_start, RT_CFG_agm_end, RT_CFG_agm_clip))              \
    X(MMPARETO, "mmpareto", RT_VAR_TRAIN, (RT_CFG_mmp_gamma))

#define RT_DATA_SOURCES(X)                                                                                          \
    X(COLORED_GRAY, "colored_gray", (RT_CFG_data_dir, RT_CFG_variance, RT_CFG_val))                                 \
    X(SYNTHETIC, "synthetic", (RT_CFG_synth_train, RT_CFG_synth_test))                                              \
    X(MULTIVIEW, "multiview", (RT_CFG_data_dir, RT_CFG_views, RT_CFG_val, RT_CFG_resize, RT_CFG_mean, RT_CFG_std))  \
    X(CLIPS, "clips", (RT_CFG_data_dir, RT_CFG_modalities, RT_CFG_list, RT_CFG_frames, RT_CFG_val, RT_CFG_mean,     \
                       RT_CFG_std))                                                                                 \
    X(ARRAYS, "arrays", (RT_CFG_data_dir, RT_CFG_val, RT_CFG_mean, RT_CFG_std))

/* The optimizers (their rules: runtime/rt_optim.h); the optimizer field's
 * names are these rows', in this order. */
#define RT_OPTIMIZERS(X)                                                                                            \
    X(SGD, "sgd", (RT_CFG_lr, RT_CFG_momentum, RT_CFG_weight_decay, RT_CFG_l1))                                     \
    X(ADAM, "adam", (RT_CFG_lr, RT_CFG_beta1, RT_CFG_eps, RT_CFG_weight_decay, RT_CFG_l1))                          \
    X(ADAMW, "adamw", (RT_CFG_lr, RT_CFG_beta1, RT_CFG_eps, RT_CFG_weight_decay, RT_CFG_l1))

/* The learning-rate schedules (runtime/rt_schedule.c); the schedule field's
 * names are these rows', in this order. RT_LR_WARMUP may come in front of
 * any of them: schedule [warmup(steps=500), cosine(min_lr=0)]. */
#define RT_SCHEDULES(X)                                                                                             \
    X(CONSTANT, "constant", ())                                                                                     \
    X(PLATEAU, "plateau", (RT_CFG_plateau_factor, RT_CFG_plateau_patience))                                         \
    X(STEP, "step", (RT_CFG_step_every, RT_CFG_step_gamma))                                                         \
    X(COSINE, "cosine", (RT_CFG_min_lr))
#define RT_LR_WARMUP(X) X(WARMUP, "warmup", (RT_CFG_lr_warmup_epochs, RT_CFG_lr_warmup_steps))
/* AdamW's weight decay when adamw() does not give it (PyTorch's default);
 * sgd and adam default to the field's, 0. */
#define RT_ADAMW_WEIGHT_DECAY 0.01

#define RT_EARLY_STOPS(X)                                                                                           \
    X(NONE, "none", ())                                                                                             \
    X(PERFECT, "perfect", (RT_CFG_stop_perfect))

#define RT_MAXOPTS 8

typedef struct {
    const char *name;
    int variant;                 /* policies: RT_VAR_* its steps need */
    int opts[RT_MAXOPTS];        /* RT_CFG_*, ended by RT_CFG_NONE */
} rt_choice;

enum {
#define X(id, name, variant, opts) RT_POLICY_##id,
    RT_POLICIES(X)
#undef X
    RT_POLICY_COUNT
};
#define X(id, name, opts) RT_DATA_##id,
enum { RT_DATA_SOURCES(X) RT_DATA_COUNT };
#undef X
#define X(id, name, opts) RT_OPTIMIZER_##id,
enum { RT_OPTIMIZERS(X) RT_OPTIMIZER_COUNT };
#undef X
#define X(id, name, opts) RT_SCHEDULE_##id,
enum { RT_SCHEDULES(X) RT_SCHEDULE_COUNT };
#undef X
#define X(id, name, opts) RT_STOP_##id,
enum { RT_EARLY_STOPS(X) RT_STOP_COUNT };
#undef X

extern const rt_choice rt_policies[RT_POLICY_COUNT], rt_data_sources[RT_DATA_COUNT], rt_optimizers[RT_OPTIMIZER_COUNT],
    rt_schedules[RT_SCHEDULE_COUNT], rt_early_stops[RT_STOP_COUNT], rt_lr_warmup[1];

/* ---- walking the table (mmnet_shared.c) ------------------------------------ */
/* Every configuration at its defaults. */
void rt_config_defaults(rt_config *c);
/* A numeric field's value, and setting it (converted to its C type). */
double rt_field_get(const rt_config *c, const rt_field *f);
void rt_field_set(rt_config *c, const rt_field *f, double v);
/* A string field's text. */
const char *rt_field_str(const rt_config *c, const rt_field *f);
char *rt_field_strbuf(rt_config *c, const rt_field *f);
/* Whether v lies in the field's range (as given, and as stored). */
int rt_field_in_range(const rt_field *f, double v);
/* The index of name among "a|b|c", or -1; the i-th name into buf. */
int rt_name_index(const char *names, const char *name);
const char *rt_name_at(const char *names, int i, char *buf, size_t n);
/* The choice called name in a table of n, or -1. */
int rt_choice_find(const rt_choice *t, int n, const char *name);

/* ---- the memory plan ---------------------------------------------------------
 *
 * What a training program allocates for a batch size, apart from its data
 * set: the compiler's memory plan (passes/plan.c) and the back end's
 * workspaces, in floats. `mmc info --batch B` prints it; the program
 * compares it with the memory available before it allocates anything
 * (runtime/rt_memory.c). Both fill an rt_mem_plan and call rt_mem_bytes, so
 * they give the same figure. */
#define RT_LOADER_SLOTS 4 /* batches the data loader holds: the one in use, the one before it (a GPU may
                            still be copying it), and two read ahead */
#define RT_DW_CHUNKS 8    /* CPU: the partial sums of a weight gradient over the batch (mmrt_cpu.h) */
typedef struct {
    size_t act;       /* the activation arena, per example of the largest batch */
    size_t inputs;    /* one example's inputs (the loader's slots hold RT_LOADER_SLOTS batches) */
    size_t fixed;     /* the arena of batch-independent tensors */
    size_t params;    /* parameters: with gradients, the optimizer's buffers and the host copies */
    int optim_buffers;/* the optimizer's buffers per parameter: 1 (sgd's momentum), 2 (Adam's moments) */
    size_t states;    /* model state (running means): on the back end, a host copy, the best epoch's */
    size_t scratch;   /* per thread: the convolutions' unrolled panels */
    size_t work;      /* once: weight-gradient partial sums, a transposed weight matrix */
} rt_mem_plan;
/* The parts of the plan in bytes for a batch and a number of CPU threads:
 * what grows with the batch (activations, batches in flight), what does not
 * (parameters and the rest), and their sum. */
typedef struct {
    double per_example, activations, batches, parameters, workspace, total;
} rt_mem_sizes;
rt_mem_sizes rt_mem_bytes(const rt_mem_plan *p, long batch, int threads);
/* The largest batch whose plan fits in avail bytes (0: not even 1). */
long rt_mem_max_batch(const rt_mem_plan *p, double avail, int threads);

/* ---- Winograd F(m x m, 3x3) task plan (m = 2 or 4) ---------------------------
 * For runtime/mmrt_cpu_wino.h's kernels on maps whose tile rows have cols =
 * TW + 1 stripe columns (TW = ceil(WO / m) tiles a row): R tile rows a
 * task, so that a task's R cols stripe columns, at most 128 (or one tile
 * row), fill the GEMM's blocks of 32 columns best (bench/wino.c on a Zen 4:
 * 1.2-1.5x faster than 64 or 96 columns that leave a block part empty);
 * LD, the row length of a task's planes (R cols + 32: the GEMM reads up to
 * 31 columns past its last). Returns R; *ld = LD, and *scratch = the floats
 * of scratch each thread needs for C input and K output channels, with
 * (dw) or without the weight gradient's packed V^T. codegen/emit_conv.c
 * emits the plan, bench/wino.c measures it (and other R: r0 > 0). The
 * forward kernels may take fewer rows a task, to give every thread as many
 * tasks (mmk_wino_rows); the plan's R bounds them. */
static inline int mm_wino_plan(int m, int cols, int c, int k, int dw, int r0, int *ld, size_t *scratch) {
    int r = 1;
    for (int t = 2; r0 <= 0 && t * cols <= 128; t++) {
        double ft = t * cols / (32.0 * ((t * cols + 31) / 32)), fr = r * cols / (32.0 * ((r * cols + 31) / 32));
        if (ft >= fr) r = t;
    }
    if (r0 > 0) r = r0;
    *ld = (r * cols + 15) / 16 * 16 + 32;
    /* V and M planes ((m + 2)^2 each, padded by 16 floats), stripes (F(2x2): 8, F(4x4): 36), slack; dw: V^T packed by 32 columns */
    const size_t planes = (size_t)(m + 2) * (m + 2), stripes = m == 2 ? 8 : planes;
    *scratch = planes * ((size_t)(c + k) * *ld + 32) + stripes * ((size_t)r * cols + 32) + 512 + (dw ? (size_t)*ld * ((c + 31) / 32 * 32) : 0);
    return r;
}

#endif
