/* rt_main.c — the generated program's command line:
 *
 *   prog train [options]     train with the .mmnet's policy (flags override it)
 *   prog eval --checkpoint F test accuracy of the prediction and of each branch
 *   prog util --checkpoint F the conditional utilization rates (ALGORITHMS §3)
 *   prog info                what was compiled in
 *
 * A wrong flag or value names itself and exits 2; other failures exit 1. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "rt_train.h"

static void usage(const rt_model *m, FILE *f) {
    fprintf(f,
            "usage: %s COMMAND [options]      (model %s, compiled from %s)\n"
            "\n"
            "commands:\n"
            "  train                  train the model (the .mmnet's train section, overridden by the options)\n"
            "  eval --checkpoint F    test accuracy of the prediction and of each branch\n"
            "  util --checkpoint F    the conditional utilization rates A(f_k), A(f_k'), u, d_util\n"
            "  info                   the model, its defaults and the back end\n"
            "  bench                  training and evaluation samples/s on random batches (--batch, --steps, --reps, --threads)\n"
            "\n"
            "train options:\n"
            "  --data DIR             directory of IDX files (default: the .mmnet's, else %s)\n"
            "  --out RUNDIR           where metrics.jsonl, steps.csv, checkpoints and summary.json go (default: runs/%s)\n"
            "  --resume RUNDIR        continue the run in RUNDIR from its last.ckpt\n"
            "  --epochs N  --batch B  --lr X  --seed S  --momentum X  --weight-decay X  --l1 X\n"
            "  --limit-train N        use only the first N training examples\n"
            "  --limit-test N         evaluate on only the first N validation and test examples\n"
            "  --val N                held-out validation examples\n"
            "  --policy P             vanilla, guided, random, or rubi:BRANCH\n"
            "  --alpha X  --window Q  --warmup E   guided/random options (ALGORITHMS 5, 6)\n"
            "  --rebalance-update all|own          what a re-balancing step updates: every parameter, or the branch's own\n"
            "  --threads N            CPU threads (default: all cores)\n"
            "  --profile              print time and GFLOP/s of every kernel for one step first\n"
            "  --quiet                no progress line\n"
            "eval/util options:\n"
            "  --checkpoint F  --data DIR  --batch B\n",
            rt_prog, m->name, m->source, RT_DEFAULT_DATA, m->name);
}

static _Noreturn void bad(const char *fmt, const char *a, const char *b) {
    fprintf(stderr, "%s: error: ", rt_prog);
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\nrun '%s --help' for the options\n", rt_prog);
    exit(2);
}

static const char *value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) bad("option '%s' needs a value%s", argv[*i], "");
    return argv[++*i];
}

static long long int_arg(const char *flag, const char *v, long long lo, long long hi) {
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || *end || end == v) bad("%s needs an integer, not '%s'", flag, v);
    if (x < lo || x > hi) {
        char range[96];
        snprintf(range, sizeof range, "'%s' (allowed: %lld to %lld)", v, lo, hi);
        bad("%s is out of range: %s", flag, range);
    }
    return x;
}

static double num_arg(const char *flag, const char *v, double lo, double hi, bool lo_open) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || *end || end == v || !isfinite(x)) bad("%s needs a number, not '%s'", flag, v);
    if (x < lo || (lo_open && x == lo) || x > hi) {
        char range[96];
        snprintf(range, sizeof range, "'%s' (allowed: %s%g to %g)", v, lo_open ? "above " : "", lo, hi);
        bad("%s is out of range: %s", flag, range);
    }
    return x;
}

static const char *base(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static void info(const rt_model *m) {
    size_t total = 0;
    for (int i = 0; i < m->nparams; i++) total += m->params[i].numel;
    printf("model %s (from %s)\nback end: %s (%s)\nparameters: %zu\n", m->name, m->source, m->backend->target, m->build_flags, total);
    printf("inputs:");
    for (int i = 0; i < m->ninputs; i++) printf(" %s", m->inputs[i].name);
    printf("\nbranches:");
    for (int i = 0; i < m->nbranches; i++) printf(" %s", m->branches[i]);
    printf("\nclasses: %d\nMMTMs: %d\ngraph variants:", m->classes, m->nfusions);
    for (int v = 0; v < m->nvariants; v++) printf(" %s", m->variants[v].name);
    printf("\ndefaults: data %s, lr %g, momentum %g, batch %d, epochs %d, seed %llu\n", m->cfg.data, m->cfg.opt.lr, m->cfg.opt.momentum,
           m->cfg.batch, m->cfg.epochs, m->cfg.seed);
}

int rt_main(const rt_model *m, int argc, char **argv) {
    rt_prog = base(argv[0]);
    if (argc < 2) {
        usage(m, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(m, stdout);
        return 0;
    }
    if (strcmp(cmd, "info") == 0) {
        info(m);
        return 0;
    }
    bool train = strcmp(cmd, "train") == 0, eval = strcmp(cmd, "eval") == 0, util = strcmp(cmd, "util") == 0;
    bool bench = strcmp(cmd, "bench") == 0;
    if (!train && !eval && !util && !bench) bad("unknown command '%s'%s (commands: train, eval, util, bench, info)", cmd, "");
    int steps = 10, reps = 5;

    rt_train_opts o = {0};
    o.cfg = m->cfg;
    const char *data = NULL, *ckpt = NULL, *out = NULL, *resume = NULL;
    int threads = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(m, stdout);
            return 0;
        }
        bool t_only = true;
        if (strcmp(a, "--data") == 0) { data = value(argc, argv, &i); t_only = false; }
        else if (strcmp(a, "--batch") == 0) { o.cfg.batch = (int)int_arg(a, value(argc, argv, &i), 1, 65536); t_only = false; }
        else if (strcmp(a, "--checkpoint") == 0) { ckpt = value(argc, argv, &i); t_only = false; }
        else if (strcmp(a, "--threads") == 0) { threads = (int)int_arg(a, value(argc, argv, &i), 1, 4096); t_only = false; }
        else if (bench && strcmp(a, "--steps") == 0) { steps = (int)int_arg(a, value(argc, argv, &i), 1, 1000000); t_only = false; }
        else if (bench && strcmp(a, "--reps") == 0) { reps = (int)int_arg(a, value(argc, argv, &i), 1, 1000); t_only = false; }
        else if (strcmp(a, "--out") == 0) out = value(argc, argv, &i);
        else if (strcmp(a, "--resume") == 0) resume = value(argc, argv, &i);
        else if (strcmp(a, "--epochs") == 0) o.cfg.epochs = (int)int_arg(a, value(argc, argv, &i), 1, 1000000);
        else if (strcmp(a, "--lr") == 0) { o.cfg.opt.lr = (float)num_arg(a, value(argc, argv, &i), 0, 1e9, true); o.lr_given = true; }
        else if (strcmp(a, "--limit-test") == 0) o.limit_test = (int)int_arg(a, value(argc, argv, &i), 1, INT_MAX);
        else if (strcmp(a, "--seed") == 0) o.cfg.seed = (unsigned long long)int_arg(a, value(argc, argv, &i), 0, LLONG_MAX);
        else if (strcmp(a, "--momentum") == 0) o.cfg.opt.momentum = (float)num_arg(a, value(argc, argv, &i), 0, 0.999999, false);
        else if (strcmp(a, "--weight-decay") == 0) o.cfg.opt.weight_decay = (float)num_arg(a, value(argc, argv, &i), 0, 1, false);
        else if (strcmp(a, "--l1") == 0) o.cfg.opt.l1 = (float)num_arg(a, value(argc, argv, &i), 0, 1, false);
        else if (strcmp(a, "--limit-train") == 0) o.cfg.limit_train = (int)int_arg(a, value(argc, argv, &i), 1, INT_MAX);
        else if (strcmp(a, "--val") == 0) o.cfg.val_size = (int)int_arg(a, value(argc, argv, &i), 0, INT_MAX);
        else if (strcmp(a, "--alpha") == 0) o.cfg.alpha = (float)num_arg(a, value(argc, argv, &i), 0, 1e6, false);
        else if (strcmp(a, "--window") == 0) o.cfg.window = (int)int_arg(a, value(argc, argv, &i), 1, 1000000);
        else if (strcmp(a, "--warmup") == 0) o.cfg.warmup = (int)int_arg(a, value(argc, argv, &i), 0, 1000000);
        else if (strcmp(a, "--rebalance-update") == 0) {
            const char *v = value(argc, argv, &i);
            if (strcmp(v, "all") == 0) o.cfg.rebalance_update = RT_REBAL_ALL;
            else if (strcmp(v, "own") == 0) o.cfg.rebalance_update = RT_REBAL_BRANCH;
            else bad("--rebalance-update is 'all' or 'own', not '%s'%s", v, "");
        } else if (strcmp(a, "--policy") == 0) {
            const char *v = value(argc, argv, &i);
            if (strcmp(v, "vanilla") == 0) o.cfg.policy = RT_POLICY_VANILLA;
            else if (strcmp(v, "guided") == 0) o.cfg.policy = RT_POLICY_GUIDED;
            else if (strcmp(v, "random") == 0) o.cfg.policy = RT_POLICY_RANDOM;
            else if (strncmp(v, "rubi", 4) == 0) {
                o.cfg.policy = RT_POLICY_RUBI;
                if (v[4] == ':') {
                    o.cfg.rubi_branch = -1;
                    for (int k = 0; k < m->nbranches; k++)
                        if (strcmp(m->branches[k], v + 5) == 0) o.cfg.rubi_branch = k;
                    if (o.cfg.rubi_branch < 0) bad("--policy %s: no branch named '%s'", v, v + 5);
                } else if (v[4] || o.cfg.rubi_branch < 0) {
                    bad("--policy rubi needs its bias branch: rubi:BRANCH (e.g. rubi:%s)%s", m->branches[0], "");
                }
            } else bad("unknown policy '%s'%s (vanilla, guided, random, rubi:BRANCH)", v, "");
        } else if (strcmp(a, "--profile") == 0) { o.profile = 1; t_only = false; }
        else if (strcmp(a, "--quiet") == 0) o.quiet = true;
        else bad("unknown option '%s'%s", a, "");
        if (t_only && !train) bad("option '%s' is for 'train', not '%s'", a, cmd);
    }
    if (threads > 0) {
#ifdef _OPENMP
        omp_set_num_threads(threads);
#endif
    }
    if (bench) return rt_bench(m, o.cfg.batch > 0 ? o.cfg.batch : 128, steps, reps, o.profile);
    if (eval || util) {
        if (!ckpt) bad("'%s' needs --checkpoint FILE%s", cmd, "");
        return rt_eval_checkpoint(m, ckpt, data, o.cfg.batch > 0 ? o.cfg.batch : 128, util);
    }
    if (ckpt) bad("--checkpoint is for eval and util; to continue a run use --resume RUNDIR%s%s", "", "");
    if (resume && out && strcmp(resume, out) != 0) bad("--resume %s and --out %s name different runs", resume, out);
    char defout[512];
    snprintf(defout, sizeof defout, "runs/%s", m->name);
    o.out_dir = resume ? resume : out ? out : defout;
    o.resume = resume != NULL;
    o.data_dir = data ? data : o.cfg.data_dir[0] ? o.cfg.data_dir : RT_DEFAULT_DATA;
    if ((o.cfg.policy == RT_POLICY_GUIDED || o.cfg.policy == RT_POLICY_RANDOM) && rt_find_variant(m, RT_VAR_REBALANCE, -1) < 0)
        bad("policy %s re-balances through MMTM gates, and model '%s' has none", o.cfg.policy == RT_POLICY_GUIDED ? "guided" : "random",
            m->name);
    if (o.cfg.policy == RT_POLICY_RUBI && rt_find_variant(m, RT_VAR_RUBI, -1) < 0)
        bad("policy rubi needs two or more branches; model '%s' has one%s", m->name, "");
    if (o.cfg.batch < 1 || o.cfg.epochs < 1 || !(o.cfg.opt.lr > 0)) bad("batch, epochs and lr must be set%s%s", "", "");
    return rt_train(m, &o);
}
