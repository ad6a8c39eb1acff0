/* rt_main.c — the generated program's command line:
 *
 *   prog train [options]     train with the .mmnet's policy (flags override it)
 *   prog eval --checkpoint F test accuracy of the prediction and of each branch
 *   prog util --checkpoint F the conditional utilization rates (ALGORITHMS §3)
 *   prog predict --checkpoint F  per example: the prediction, each branch's class and probabilities
 *   prog info                what was compiled in
 *   prog report RUNDIR       the run as one HTML page with its curves
 *
 * The options that override the .mmnet's train section, their ranges and
 * their help lines come from its table (RT_CONFIG_FIELDS, mmnet_shared.h);
 * the others (run directory, threads, ...) are written here. A wrong flag
 * or value names itself and exits 2; other failures exit 1. */
#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "rt_dist.h"
#include "rt_policy.h"
#include "rt_train.h"

/* The policies, as --policy takes them: "vanilla, guided, random, or rubi:BRANCH". */
static const char *policy_list(char *buf, size_t n, const char *last_sep) {
    buf[0] = 0;
    for (int i = 0; i < RT_POLICY_COUNT; i++) {
        bool branch = false;
        for (int j = 0; j < RT_MAXOPTS && rt_policies[i].opts[j]; j++)
            branch |= rt_config_fields[rt_policies[i].opts[j]].kind == RT_KIND_BRANCH;
        snprintf(buf + strlen(buf), n - strlen(buf), "%s%s%s", i == 0 ? "" : i + 1 < RT_POLICY_COUNT ? ", " : last_sep,
                 rt_policies[i].name, branch ? ":BRANCH" : "");
    }
    return buf;
}

/* An ENUM field's names for messages: "'all' or 'own'". */
static const char *names_text(const rt_field *f, char *buf, size_t n) {
    char name[64], next[64];
    buf[0] = 0;
    for (int i = 0; rt_name_at(f->names, i, name, sizeof name); i++)
        snprintf(buf + strlen(buf), n - strlen(buf), "%s'%s'", i == 0 ? "" : rt_name_at(f->names, i + 1, next, sizeof next) ? ", " : " or ",
                 name);
    return buf;
}

/* The help lines of the options that override the configuration, in the
 * table's order; flags in a row with the same help text share its line. */
static void config_usage(FILE *f) {
    char line[512] = "", pol[256];
    for (int i = 1; i < RT_CFG_COUNT; i++) {
        const rt_field *fl = &rt_config_fields[i];
        if (!fl->flag) continue;
        const char *help = fl->kind == RT_KIND_POLICY ? policy_list(pol, sizeof pol, ", or ") : fl->help ? fl->help : "";
        snprintf(line + strlen(line), sizeof line - strlen(line), "%s%s %s", line[0] ? "  " : "", fl->flag,
                 fl->kind == RT_KIND_ENUM ? fl->names : fl->meta);
        int next = i + 1;
        while (next < RT_CFG_COUNT && !rt_config_fields[next].flag) next++;
        if (next < RT_CFG_COUNT && fl->kind != RT_KIND_POLICY && rt_config_fields[next].kind != RT_KIND_POLICY &&
            strcmp(help, rt_config_fields[next].help ? rt_config_fields[next].help : "") == 0)
            continue;
        if (help[0]) fprintf(f, "  %-*s %s\n", strlen(line) <= 22 ? 22 : 35, line, help);
        else fprintf(f, "  %s\n", line);
        line[0] = 0;
    }
}

static void usage(const rt_model *m, FILE *f) {
    fprintf(f,
            "usage: %s COMMAND [options]      (model %s, compiled from %s)\n"
            "\n"
            "commands:\n"
            "  train                  train the model (the .mmnet's train section, overridden by the options)\n"
            "  eval --checkpoint F    test accuracy of the prediction and of each branch\n"
            "  util --checkpoint F    the conditional utilization rates A(f_k), A(f_k'), u, d_util\n"
            "  predict --checkpoint F per example of a split: the label, the fused prediction and each branch's class,\n"
            "                         with their probabilities (CSV or JSON Lines)\n"
            "  info                   the model, its defaults and the back end\n"
            "  bench                  training and evaluation samples/s on random batches (--batch, --steps, --reps, --threads,\n"
            "                         and the optimizer's options)\n"
            "  report RUNDIR [-o F]   the run's curves, utilization and settings as one HTML page (default RUNDIR/report.html)\n"
            "\n"
            "train options:\n"
            "  --out RUNDIR           where metrics.jsonl, steps.csv, checkpoints and summary.json go (default: runs/%s)\n"
            "  --resume RUNDIR        continue the run in RUNDIR from its last.ckpt\n"
            "  --init FILE            start from the weights in FILE (safetensors, under the names of mmc info --params)\n"
            "  --init-partial         with --init: skip the file's tensors of another shape instead of stopping\n",
            rt_prog, m->name, m->source, m->name);
    config_usage(f);
    fprintf(f, "  --threads N            CPU threads (default: all cores; under mpirun, the machine's cores over its ranks)\n"
               "  --profile              print time and GFLOP/s of every kernel for one step first\n"
               "  --quiet                no progress line\n"
               "eval/util/predict options:\n"
               "  --checkpoint F         the checkpoint to evaluate (required)\n"
               "  --data DIR             the data set's directory (default: the run's)\n"
               "  --batch B              examples per evaluation step (default 128)\n"
               "  --split test|val|train the split eval and predict read (default test; val and train as the run cut them)\n"
               "predict options:\n"
               "  -o FILE                write to FILE (default: the standard output), in the format of its extension,\n"
               "                         .csv or .jsonl\n"
               "  --format csv|jsonl     the format (default: from -o's extension, else csv)\n"
               "  --logits               also write the logits of the prediction and of each branch\n");
}

static _Noreturn void bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static _Noreturn void bad(const char *fmt, ...) {
    fprintf(stderr, "%s: error: ", rt_prog);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
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

static double num_arg(const char *flag, const char *v, const rt_field *f) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || *end || end == v || !isfinite(x)) bad("%s needs a number, not '%s'", flag, v);
    if (!rt_field_in_range(f, x))
        bad("%s is out of range: '%s' (allowed: %s%g to %s%g)", flag, v, f->lo_open ? "above " : "", f->lo, f->hi_open ? "below " : "",
            f->hi);
    return x;
}

/* --policy NAME, or NAME:BRANCH for a policy that takes a branch (rubi). */
static void policy_arg(const rt_model *m, rt_config *c, const char *v) {
    char list[256];
    size_t n = strcspn(v, ":");
    int p = -1;
    for (int i = 0; i < RT_POLICY_COUNT; i++)
        if (strlen(rt_policies[i].name) == n && strncmp(rt_policies[i].name, v, n) == 0) p = i;
    const rt_field *bf = NULL;
    for (int j = 0; p >= 0 && j < RT_MAXOPTS && rt_policies[p].opts[j]; j++)
        if (rt_config_fields[rt_policies[p].opts[j]].kind == RT_KIND_BRANCH) bf = &rt_config_fields[rt_policies[p].opts[j]];
    if (p < 0 || (v[n] && !bf)) bad("unknown policy '%s' (%s)", v, policy_list(list, sizeof list, ", "));
    c->policy = p;
    if (!bf) return;
    if (v[n]) {
        int k = -1;
        for (int b = 0; b < m->nbranches; b++)
            if (strcmp(m->branches[b], v + n + 1) == 0) k = b;
        if (k < 0) bad("--policy %s: no branch named '%s'", v, v + n + 1);
        rt_field_set(c, bf, k);
    } else if (rt_field_get(c, bf) < 0) {
        bad("--policy %s needs its %s branch: %s:BRANCH (e.g. %s:%s)", v, bf->key, v, v, m->branches[0]);
    }
}

/* A flag that overrides field f: its value parsed, checked and stored. */
static void config_arg(const rt_model *m, rt_config *c, const rt_field *f, const char *flag, const char *v) {
    char buf[128];
    switch (f->kind) {
    case RT_KIND_FLOAT: rt_field_set(c, f, num_arg(flag, v, f)); break;
    case RT_KIND_INT:
    case RT_KIND_U64: rt_field_set(c, f, (double)int_arg(flag, v, (long long)f->lo, (long long)f->hi)); break;
    case RT_KIND_STR:
        if (strlen(v) >= f->size) bad("%s is too long (the limit is %zu characters)", flag, f->size - 1);
        snprintf(rt_field_strbuf(c, f), f->size, "%s", v);
        break;
    case RT_KIND_ENUM: {
        int k = rt_name_index(f->names, v);
        if (k < 0) bad("%s is %s, not '%s'", flag, names_text(f, buf, sizeof buf), v);
        rt_field_set(c, f, k);
        break;
    }
    case RT_KIND_POLICY: policy_arg(m, c, v); break;
    default: bad("%s cannot be given on the command line", flag);
    }
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
    char opt[32], sched[32];
    printf("\ndefaults: data %s, optimizer %s, lr %g, momentum %g, schedule %s, batch %d, epochs %d, seed %llu\n", m->cfg.data,
           rt_name_at(rt_config_fields[RT_CFG_optimizer].names, m->cfg.opt.optimizer, opt, sizeof opt), m->cfg.opt.lr,
           m->cfg.opt.momentum, rt_name_at(rt_config_fields[RT_CFG_schedule].names, m->cfg.schedule, sched, sizeof sched),
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
    if (strcmp(cmd, "report") == 0) {
        const char *dir = NULL, *out = NULL;
        for (int i = 2; i < argc; i++) {
            if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
                usage(m, stdout);
                return 0;
            }
            if (strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--out") == 0) out = value(argc, argv, &i);
            else if (argv[i][0] == '-' && argv[i][1]) bad("unknown option '%s' (report takes RUNDIR and -o FILE)", argv[i]);
            else if (!dir) dir = argv[i];
            else bad("unexpected argument '%s' (report takes one RUNDIR)", argv[i]);
        }
        if (!dir) bad("'report' needs a run directory: %s report RUNDIR [-o FILE]", rt_prog);
        return rt_report(dir, out);
    }
    bool train = strcmp(cmd, "train") == 0, eval = strcmp(cmd, "eval") == 0, util = strcmp(cmd, "util") == 0;
    bool bench = strcmp(cmd, "bench") == 0, predict = strcmp(cmd, "predict") == 0;
    if (!train && !eval && !util && !bench && !predict)
        bad("unknown command '%s'%s (commands: train, eval, util, predict, bench, report, info)", cmd, "");
    int steps = 10, reps = 5;

    rt_train_opts o = {0};
    o.cfg = m->cfg;
    bool given[RT_CFG_COUNT] = {0};
    const char *ckpt = NULL, *out = NULL, *resume = NULL, *init = NULL;
    bool init_partial = false, logits = false;
    int threads = 0, split = -1, format = -1;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(m, stdout);
            return 0;
        }
        bool t_only = true;
        int fi = 0;
        for (int j = 1; j < RT_CFG_COUNT; j++)
            if (rt_config_fields[j].flag && strcmp(a, rt_config_fields[j].flag) == 0) fi = j;
        if (fi) {
            config_arg(m, &o.cfg, &rt_config_fields[fi], a, value(argc, argv, &i));
            given[fi] = true;
            /* bench's training steps take the optimizer's settings too. */
            t_only = !rt_config_fields[fi].any_command && !(bench && rt_config_fields[fi].optim);
        } else if (strcmp(a, "--checkpoint") == 0) { ckpt = value(argc, argv, &i); t_only = false; }
        else if ((eval || predict) && strcmp(a, "--split") == 0) {
            const char *v = value(argc, argv, &i);
            if ((split = rt_split_index(v)) < 0) bad("--split is 'test', 'val' or 'train', not '%s'", v);
            t_only = false;
        } else if (predict && (strcmp(a, "-o") == 0 || strcmp(a, "--out") == 0)) { out = value(argc, argv, &i); t_only = false; }
        else if (predict && strcmp(a, "--format") == 0) {
            const char *v = value(argc, argv, &i);
            if ((format = strcmp(v, "csv") == 0 ? RT_PREDICT_CSV : strcmp(v, "jsonl") == 0 ? RT_PREDICT_JSONL : -1) < 0)
                bad("--format is 'csv' or 'jsonl', not '%s'", v);
            t_only = false;
        } else if (predict && strcmp(a, "--logits") == 0) { logits = true; t_only = false; }
        else if (strcmp(a, "--threads") == 0) { threads = (int)int_arg(a, value(argc, argv, &i), 1, 4096); t_only = false; }
        else if (bench && strcmp(a, "--steps") == 0) { steps = (int)int_arg(a, value(argc, argv, &i), 1, 1000000); t_only = false; }
        else if (bench && strcmp(a, "--reps") == 0) { reps = (int)int_arg(a, value(argc, argv, &i), 1, 1000); t_only = false; }
        else if (strcmp(a, "--out") == 0) out = value(argc, argv, &i);
        else if (strcmp(a, "--resume") == 0) resume = value(argc, argv, &i);
        else if (strcmp(a, "--init") == 0) init = value(argc, argv, &i);
        else if (strcmp(a, "--init-partial") == 0) init_partial = true;
        else if (strcmp(a, "--profile") == 0) { o.profile = 1; t_only = false; }
        else if (strcmp(a, "--quiet") == 0) o.quiet = true;
        else bad("unknown option '%s'", a);
        if (t_only && !train) bad("option '%s' is for 'train', not '%s'", a, cmd);
    }
    /* Before the first OpenMP call. */
    rt_wait_policy(o.cfg.wait, given[RT_CFG_wait]);
    /* Ranks of a data-parallel run that share a machine share its cores. */
    if (threads == 0 && rt_dist && rt_dist->local_size > 1) {
        threads = rt_cpu_count() / rt_dist->local_size;
        if (threads < 1) threads = 1;
    }
    if (threads > 0) {
#ifdef _OPENMP
        omp_set_num_threads(threads);
#endif
    }
    if (bench) return rt_bench(m, &o.cfg.opt, o.cfg.batch > 0 ? o.cfg.batch : 128, steps, reps, o.profile);
    const char *data = given[RT_CFG_data_dir] ? o.cfg.data_dir : NULL;
    if (eval || util || predict) {
        if (!ckpt) bad("'%s' needs --checkpoint FILE%s", cmd, "");
        if (split < 0) split = rt_split_index("test");
        if (!predict) return rt_eval_checkpoint(m, ckpt, data, o.cfg.batch > 0 ? o.cfg.batch : 128, o.cfg.workers, split, util);
        if (format < 0 && out) {
            const char *dot = strrchr(base(out), '.');
            format = dot && strcmp(dot, ".csv") == 0 ? RT_PREDICT_CSV : dot && strcmp(dot, ".jsonl") == 0 ? RT_PREDICT_JSONL : -1;
            if (format < 0) bad("-o %s: cannot tell the format from the name (.csv or .jsonl); give --format csv or jsonl", out);
        }
        rt_predict_opts po = {.ckpt = ckpt, .data_dir = data, .batch = o.cfg.batch > 0 ? o.cfg.batch : 128, .workers = o.cfg.workers, .split = split,
                              .out = out, .format = format < 0 ? RT_PREDICT_CSV : format, .logits = logits};
        return rt_predict(m, &po);
    }
    if (ckpt) bad("--checkpoint is for eval and util; to continue a run use --resume RUNDIR%s%s", "", "");
    if (resume && out && strcmp(resume, out) != 0) bad("--resume %s and --out %s name different runs", resume, out);
    if (init && resume) bad("--init %s starts a new run from its weights; --resume %s continues a run: give one", init, resume);
    if (init_partial && !init) bad("--init-partial goes with --init FILE%s", "");
    if (resume) {
        /* The run's own settings; --policy also sets its branch option. */
        for (int i = 1; i < RT_CFG_COUNT; i++)
            if (rt_config_fields[i].kind == RT_KIND_BRANCH) given[i] |= given[RT_CFG_policy];
        char err[2048];
        if (rt_run_resume_config(m, resume, &o.cfg, given, err, sizeof err) != 0) bad("%s", err);
        data = o.cfg.data_dir;
    }
    o.init = init;
    o.init_partial = init_partial;
    char defout[512];
    snprintf(defout, sizeof defout, "runs/%s", m->name);
    o.out_dir = resume ? resume : out ? out : defout;
    o.resume = resume != NULL;
    o.data_dir = data ? data : o.cfg.data_dir[0] ? o.cfg.data_dir : RT_DEFAULT_DATA;
    o.lr_given = given[RT_CFG_lr];
    /* The graphs the policy's steps run (RT_POLICIES). */
    const rt_choice *pol = &rt_policies[o.cfg.policy];
    if (rt_find_variant(m, pol->variant, -1) < 0) {
        if (pol->variant == RT_VAR_REBALANCE) bad("policy %s re-balances through MMTM gates, and model '%s' has none", pol->name, m->name);
        if (pol->variant == RT_VAR_RUBI && m->nbranches < 2) bad("policy %s needs two or more branches; model '%s' has one", pol->name, m->name);
        if (pol->variant == RT_VAR_RUBI) bad("policy %s needs a bias branch with a head of its own; model '%s' has none", pol->name, m->name);
        bad("policy %s: model '%s' lacks the graphs its steps run", pol->name, m->name);
    }
    if (pol->variant == RT_VAR_RUBI && o.cfg.rubi_branch >= 0 && rt_find_variant(m, RT_VAR_RUBI, o.cfg.rubi_branch) < 0)
        bad("policy %s: branch '%s' has no head of its own, and RUBi masks the prediction with the bias branch's logits", pol->name,
            m->branches[o.cfg.rubi_branch]);
    if (o.cfg.policy == RT_POLICY_MODALITY_DROPOUT && m->ninputs < 2)
        bad("policy %s zeroes one of the inputs of each example; model '%s' has only one", pol->name, m->name);
    if (o.cfg.policy == RT_POLICY_MMPARETO) {
        rt_mmp_plan pl;
        char err[1024];
        if (rt_mmp_plan_make(m, &pl, err, sizeof err) != 0) bad("%s", err);
        rt_mmp_plan_free(&pl);
    }
    if (o.cfg.batch < 1 || o.cfg.epochs < 1 || !(o.cfg.opt.lr > 0)) bad("batch, epochs and lr must be set%s%s", "", "");
    /* One warm-up length: the one the command line gives replaces the .mmnet's. */
    if (given[RT_CFG_lr_warmup_steps] && !given[RT_CFG_lr_warmup_epochs]) o.cfg.lr_warmup_epochs = 0;
    if (given[RT_CFG_lr_warmup_epochs] && !given[RT_CFG_lr_warmup_steps]) o.cfg.lr_warmup_steps = 0;
    if (o.cfg.lr_warmup_steps > 0 && o.cfg.lr_warmup_epochs > 0)
        bad("--lr-warmup-epochs %d and --lr-warmup-steps %d: give one of them", o.cfg.lr_warmup_epochs, o.cfg.lr_warmup_steps);
    if (o.cfg.schedule == RT_SCHEDULE_STEP && o.cfg.step_every < 1)
        bad("--schedule step needs its period in epochs: --step-every E%s", "");
    return rt_train(m, &o);
}
