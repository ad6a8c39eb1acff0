/* rt_train.c — the training loop (ALGORITHMS §2, §4-§7).
 *
 * One epoch: shuffle, then for each batch ask the controller what kind of
 * step comes next (regular, re-balance branch k, RUBi), run it, and on
 * regular steps add the step's norms to the conditional learning speed.
 * After the epoch: validation and test accuracy of the prediction and of
 * each branch (rt_eval.c), metrics.jsonl, best.ckpt (best validation
 * accuracy) and last.ckpt, which holds everything --resume needs to
 * continue exactly as an uninterrupted run would (rt_runckpt.c). At the
 * end, the conditional utilization rate (§3) of the best checkpoint and
 * summary.json. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rt_optim.h"
#include "rt_trainer.h"

static void fmt_eta(char *buf, size_t n, double s) {
    if (!isfinite(s) || s < 0) s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
}

static const char *kind_name(const rt_model *m, int kind, char *buf) {
    if (kind == RT_STEP_REGULAR) return "regular";
    sprintf(buf, "rebalance-%d", kind);
    (void)m;
    return buf;
}

/* What the loop needs besides the run's state (Trainer, rt_trainer.h). */
typedef struct Loop Loop;
struct Loop {
    int v_train, v_eval, v_rebal[RT_MAXB], v_rubi; /* the graph of each kind of step */
    unsigned char *mask[RT_MAXB];  /* re-balancing steps that update only their branch (§5) */
    int *perm;                     /* the epoch's order of the training examples */
    int steps_per_epoch;
    bool tty;                      /* a progress line on stderr */
    int ckpt_epoch;                /* the epoch last.ckpt holds (0: none yet) */
    int running;                   /* the epoch being trained or logged (1-based) */
    long samples;                  /* trained on by this process, and the time its steps took */
    double train_time;
};

/* What an epoch's steps leave for its bookkeeping. */
typedef struct {
    double loss, acc;              /* the prediction's, over the epoch's batches */
    long seen;
    double train_time;             /* in the back end's train calls */
    double loop_time;              /* the training loop by the clock: steps, waits for batches, bookkeeping */
    double data_wait;              /* of which waiting for the loader's batches */
    double data_cpu;               /* CPU time the loader spent on the epoch's examples */
    double allreduce;              /* of train_time, in the ranks' averaging (rank 0's) */
    long buckets;                  /* gradient buckets sent during the backward passes */
    double t0;                     /* when the epoch began */
} EpochStats;

/* A log of the run (steps.csv, metrics.jsonl, summary.json) could not be
 * written: a full disk, a quota, an I/O error. The run stops at once rather
 * than go on without its record. Logs are written before the checkpoint of
 * their epoch, so last.ckpt holds the last epoch whose lines are all on
 * disk, and --resume goes on from it, rewriting the lines after it. err is
 * the errno of the failed call. */
static _Noreturn void log_failed(const Trainer *T, const Loop *L, const char *name, int err) {
    const char *dir = T->o->out_dir;
    char ckpt[600];
    if (L->ckpt_epoch > 0)
        snprintf(ckpt, sizeof ckpt, "%s/last.ckpt holds epoch %d; once the file can be written, continue with --resume %s", dir,
                 L->ckpt_epoch, dir);
    else
        snprintf(ckpt, sizeof ckpt, "There is no checkpoint yet (the first is written after the first epoch).");
    rt_die("cannot write %s/%s: %s; training stopped in epoch %d of %d. %s", dir, name, strerror(err ? err : EIO), L->running,
           T->cfg.epochs, ckpt);
}

/* text appended to a log, or the run stopped naming it (log_failed). */
static void log_put(const Trainer *T, const Loop *L, FILE *f, const char *name, const char *text) {
    errno = 0;
    if (fputs(text, f) == EOF || ferror(f)) log_failed(T, L, name, errno);
}

/* Everything written to a log so far, on its way to the disk. */
static void log_flush(const Trainer *T, const Loop *L, FILE *f, const char *name) {
    errno = 0;
    if (fflush(f) != 0 || ferror(f)) log_failed(T, L, name, errno);
}

/* The run directory, the host buffers, and the fresh state of a run. */
static void setup(Trainer *T, const rt_model *m, const rt_train_opts *o) {
    T->m = m;
    T->be = m->backend;
    T->cfg = o->cfg;
    T->o = o;
    T->batch = T->cfg.batch;
    const rt_config *cfg = &T->cfg;
    if (rt_is_root()) {
        rt_run_mkdir(o->out_dir);
        rt_run_remove_stale_temps(o->out_dir);
    }

    size_t np = m->params_floats, ns = m->states_floats + 1;
    T->params = rt_alloc(sizeof(float) * np);
    T->mom = rt_alloc(sizeof(float) * np);
    T->mom2 = rt_alloc(sizeof(float) * np);
    T->opt_steps = rt_alloc(sizeof(long long) * (size_t)m->nparams);
    T->bias = rt_alloc(sizeof(float[2]) * (size_t)m->nparams);
    T->states = rt_alloc(sizeof(float) * ns);
    T->best_params = rt_alloc(sizeof(float) * np);
    T->best_states = rt_alloc(sizeof(float) * ns);

    T->lr = cfg->opt.lr;
    T->best_val = -1;
    T->best_epoch = -1;
    T->best_d_speed = NAN;
    T->plateau_best = INFINITY;
    rt_speed_init(&T->speed, m->nbranches);
    rt_controller_init(&T->ctl, cfg, m->nbranches, cfg->seed);
    rt_rng_seed(&T->shuffle, cfg->seed ^ 0x73687566ULL);
    rt_init_params(m, T->params, cfg->seed);
    rt_init_states(m, T->states);
}

/* --resume: the checkpoint's state instead of the fresh one. */
static void resume(Trainer *T) {
    const rt_model *m = T->m;
    const rt_config *cfg = &T->cfg;
    const rt_train_opts *o = T->o;
    rt_run_resume(T);
    /* Recompute s and d_speed from the sums (no step: zero norms add nothing). */
    if (T->regular_steps > 0) {
        double (*zero)[2] = rt_alloc(sizeof(double[2]) * (size_t)m->nparams);
        double ms[RT_MAXB], bs[RT_MAXB];
        memcpy(ms, T->speed.main_sum, sizeof ms);
        memcpy(bs, T->speed.bypass_sum, sizeof bs);
        rt_speed_add(&T->speed, m, zero);
        memcpy(T->speed.main_sum, ms, sizeof ms);
        memcpy(T->speed.bypass_sum, bs, sizeof bs);
        free(zero);
    }
    if (T->epoch >= cfg->epochs)
        fprintf(stderr, "%s: the run in %s already finished %d epochs; nothing to train\n", rt_prog, o->out_dir, T->epoch);
    if (o->lr_given) T->lr = cfg->opt.lr;
}

/* The data set, cut to --limit-test, checked against the model (and on
 * --resume against the checkpoint's step count). */
static void open_data(Trainer *T) {
    rt_open_data(T, T->o->data_dir, T->cfg.limit_test);
    if (T->o->resume) rt_run_check_steps(T);
}

/* ---- G-Blend (docs/methods.md) ---------------------------------------------- */
/* The loss terms: every loss.weight.NAME state, NAME a branch (its head's
 * logits) or the fusion head that is the prediction. A fresh run starts
 * from the .mmnet's weights divided by their sum; the training examples
 * measured are a fixed random sample as large as the validation split. */
static void gblend_setup(Trainer *T) {
    const rt_model *m = T->m;
    const rt_config *cfg = &T->cfg;
    int heads = 0;
    double sum = 0;
    T->gb.n = 0;
    for (int i = 0; i < m->nstates; i++) {
        if (m->states[i].kind != RT_STATE_LOSS_WEIGHT) continue;
        if (T->gb.n == RT_GBLEND_MAX) rt_die("policy gblend weighs at most %d loss terms; model '%s' has more", RT_GBLEND_MAX, m->name);
        const char *name = m->states[i].name + strlen("loss.weight.");
        int b = -1;
        for (int k = 0; k < m->nbranches; k++)
            if (strcmp(m->branches[k], name) == 0) b = k;
        heads += b < 0;
        T->gb.state[T->gb.n] = i, T->gb.branch[T->gb.n] = b, T->gb.name[T->gb.n] = name;
        sum += m->states[i].init;
        T->gb.n++;
    }
    if (T->gb.n < 2)
        rt_die("policy gblend sets the weights of the loss's terms, and this program's loss keeps none (%s): build it from a "
               ".mmnet whose train section says 'policy gblend' (mmc build), or whose loss has weights or a fusion head",
               T->gb.n ? "it has one term" : "a plain sum of cross-entropies");
    if (heads > 1) rt_die("policy gblend measures one fusion head, the prediction; model '%s' has %d in its loss", m->name, heads);
    for (int k = 0; k < T->gb.n; k++)
        if (T->gb.branch[k] < 0 && (!m->predict || strcmp(m->predict, T->gb.name[k]) != 0))
            rt_die("policy gblend measures each loss term on the validation set, and fusion head '%s' is not the prediction "
                   "(model '%s' predicts %s): build it with 'predict %s'", T->gb.name[k], m->name, m->predict ? m->predict : "?",
                   T->gb.name[k]);
    const int nv = T->split[RT_SPLIT_VAL].n, nt = T->split[RT_SPLIT_TRAIN].n;
    if (nv <= 0)
        rt_die("policy gblend sets the loss weights from the losses on the validation split, and this run has none "
               "(--val 0 or val=0): hold some training examples out, e.g. --val 5000");
    /* A partial shuffle of the training positions, drawn from the seed. */
    int *perm = rt_alloc(sizeof(int) * (size_t)nt);
    for (int i = 0; i < nt; i++) perm[i] = i;
    T->gb.nsample = nv < nt ? nv : nt;
    rt_rng r;
    rt_rng_seed(&r, cfg->seed ^ 0x67626c656e64ULL);
    for (int i = 0; i < T->gb.nsample; i++) {
        int j = i + (int)rt_rng_below(&r, (uint32_t)(nt - i));
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    T->gb.sample = perm;
    for (int k = 0; k < T->gb.n; k++) {
        float *st = T->states + m->states[T->gb.state[k]].off;
        if (!T->o->resume) *st = (float)(m->states[T->gb.state[k]].init / sum);
        T->gb.w[k] = *st;
    }
}

/* Each term's mean cross-entropy over positions order[0..n) of a split
 * (order NULL: all of it) in evaluation mode, into loss[]. */
static void gblend_losses(Trainer *T, const Loop *L, int split, const int *order, int n, double *loss) {
    const rt_model *m = T->m;
    const int C = m->classes;
    double sum[RT_GBLEND_MAX] = {0};
    rt_hyper h = {0};
    rt_pass_shard(T, split, order, n, false, 0);
    rt_batch b;
    while (rt_next(T, &b)) {
        if (b.B == 0) continue;
        rt_result r;
        T->be->eval(T->e, L->v_eval, &b, &h, &r);
        for (int k = 0; k < T->gb.n; k++) {
            const mm_real *z0 = T->gb.branch[k] >= 0 ? r.logits[T->gb.branch[k]] : r.pred;
            if (!z0) rt_die("internal: gblend: the evaluation returns no logits for ce(%s)", T->gb.name[k]);
            for (int i = 0; i < b.B; i++) {
                const mm_real *z = z0 + (size_t)i * C;
                double mx = z[0], e = 0;
                for (int c = 1; c < C; c++) mx = z[c] > mx ? z[c] : mx;
                for (int c = 0; c < C; c++) e += exp(z[c] - mx);
                sum[k] += mx + log(e) - z[b.y[i]];
            }
        }
    }
    if (rt_nranks() > 1) rt_dist->sum_d(sum, (size_t)T->gb.n);
    for (int k = 0; k < T->gb.n; k++) {
        loss[k] = sum[k] / n;
        if (!isfinite(loss[k]))
            rt_die("policy gblend: the %s loss of ce(%s) is %g after epoch %d; training stopped. Try a lower learning rate (--lr).",
                   split == RT_SPLIT_VAL ? "validation" : "training", T->gb.name[k], loss[k], T->epoch);
    }
}

static void gblend_measure(Trainer *T, const Loop *L, double *lt, double *lv) {
    gblend_losses(T, L, RT_SPLIT_TRAIN, T->gb.sample, T->gb.nsample, lt);
    gblend_losses(T, L, RT_SPLIT_VAL, NULL, T->split[RT_SPLIT_VAL].n, lv);
}

/* At the end of a super-epoch: the losses now, the weights from their
 * change since its start (rt_gblend_weights), written into the loss's
 * weight states for the next super-epoch. */
static void gblend_estimate(Trainer *T, const Loop *L) {
    const rt_model *m = T->m;
    double lt[RT_GBLEND_MAX], lv[RT_GBLEND_MAX], w[RT_GBLEND_MAX];
    gblend_measure(T, L, lt, lv);
    memcpy(w, T->gb.w, sizeof w);
    T->gb.estimated = true;
    T->gb.updated = rt_gblend_weights(T->gb.n, T->gb.lt, T->gb.lv, lt, lv, w, T->gb.dG, T->gb.dO);
    memcpy(T->gb.lt, lt, sizeof lt);
    memcpy(T->gb.lv, lv, sizeof lv);
    if (!T->gb.updated) return;
    T->be->read(T->e, RT_ARENA_STATES, T->states);
    for (int k = 0; k < T->gb.n; k++) {
        float f = (float)w[k];
        T->states[m->states[T->gb.state[k]].off] = f;
        T->gb.w[k] = f;
    }
    T->be->write(T->e, RT_ARENA_STATES, T->states);
}

/* The estimate's record in the epoch's metrics.jsonl line. */
static void gblend_json(const Trainer *T, cJSON *j) {
    cJSON *w = cJSON_CreateObject();
    for (int k = 0; k < T->gb.n; k++) cJSON_AddNumberToObject(w, T->gb.name[k], T->gb.w[k]);
    cJSON_AddItemToObject(j, "loss_weights", w);
    if (!T->gb.estimated) return;
    const char *key[4] = {"train_loss", "val_loss", "dG", "dO"};
    const double *val[4] = {T->gb.lt, T->gb.lv, T->gb.dG, T->gb.dO};
    cJSON *g = cJSON_CreateObject();
    for (int i = 0; i < 4; i++) {
        cJSON *o = cJSON_CreateObject();
        for (int k = 0; k < T->gb.n; k++) cJSON_AddNumberToObject(o, T->gb.name[k], val[i][k]);
        cJSON_AddItemToObject(g, key[i], o);
    }
    cJSON_AddBoolToObject(g, "updated", T->gb.updated);
    cJSON_AddItemToObject(j, "gblend", g);
}

/* MMPareto (docs/methods.md): the model's loss terms and encoders (rt_main
 * has refused a model without them), and the step's buffers. */
static void mmp_setup(Trainer *T) {
    const rt_model *m = T->m;
    char err[1024];
    if (rt_mmp_plan_make(m, &T->mmp, err, sizeof err) != 0) rt_die("%s", err);
    T->mmp_gm = rt_alloc(sizeof(mm_real) * m->params_floats);
    T->mmp_states = rt_alloc(sizeof(float) * (m->states_floats + 1));
    T->mmp_none = rt_alloc((size_t)m->nparams);
}

/* The back end with the run's arenas, the logs, the graph of each kind of
 * step the policy takes, and the loop's buffers. */
static void start(Trainer *T, Loop *L) {
    const rt_model *m = T->m;
    const rt_config *cfg = &T->cfg;
    if (cfg->policy == RT_POLICY_GBLEND) gblend_setup(T);
    rt_dist_bucket = (size_t)(cfg->bucket_mb * (1 << 20) / sizeof(float));
    T->e = T->be->create(m, T->batch);
    T->be->write(T->e, RT_ARENA_PARAMS, T->params);
    T->be->write(T->e, RT_ARENA_MOMENTUM, T->mom);
    T->be->write(T->e, RT_ARENA_MOMENT2, T->mom2);
    T->be->write(T->e, RT_ARENA_STATES, T->states);

    char header[512] = "step,epoch,kind,loss";
    for (int k = 0; k < m->nbranches; k++) snprintf(header + strlen(header), sizeof header - strlen(header), ",s_%d", k);
    strcat(header, ",d_speed,lr");
    if (cfg->policy == RT_POLICY_OGM_GE) strcat(header, ",ogm_ratio,ogm_coeff_0,ogm_coeff_1");
    if (cfg->policy == RT_POLICY_AGM)
        strcat(header, ",agm_score_0,agm_score_1,agm_ratio_0,agm_ratio_1,agm_avg_0,agm_avg_1,agm_coeff_0,agm_coeff_1,agm_clip");
    for (int k = 0; cfg->policy == RT_POLICY_GBLEND && k < T->gb.n; k++)
        snprintf(header + strlen(header), sizeof header - strlen(header), ",w_%s", T->gb.name[k]);
    if (cfg->policy == RT_POLICY_MMPARETO) {
        for (int k = 0; k < m->nbranches; k++) snprintf(header + strlen(header), sizeof header - strlen(header), ",mmp_cos_%d", k);
        for (int k = 0; k < m->nbranches; k++) snprintf(header + strlen(header), sizeof header - strlen(header), ",mmp_alpha_%d", k);
    }
    strcat(header, "\n");
    rt_run_open_logs(T, header);

    L->v_train = rt_find_variant(m, RT_VAR_TRAIN, -1);
    L->v_eval = rt_find_variant(m, RT_VAR_EVAL, -1);
    for (int k = 0; k < m->nbranches; k++) L->v_rebal[k] = rt_find_variant(m, RT_VAR_REBALANCE, k);
    L->v_rubi = cfg->policy == RT_POLICY_RUBI ? rt_find_variant(m, RT_VAR_RUBI, cfg->rubi_branch) : -1;
    if (cfg->policy == RT_POLICY_RUBI && L->v_rubi < 0) rt_die("this model has no RUBi step for branch %d", cfg->rubi_branch);
    if ((cfg->policy == RT_POLICY_GUIDED || cfg->policy == RT_POLICY_RANDOM))
        for (int k = 0; k < m->nbranches; k++)
            if (L->v_rebal[k] < 0) rt_die("policy %s needs MMTMs on every branch; branch '%s' has none", rt_policy_name(cfg->policy), m->branches[k]);

    if (cfg->policy == RT_POLICY_OGM_GE && m->nbranches != 2)
        rt_die("policy ogm_ge needs exactly two branches (it compares two modalities); model '%s' has %d", m->name, m->nbranches);

    if (cfg->policy == RT_POLICY_AGM && m->nbranches != 2)
        rt_die("policy agm needs exactly two branches (its Shapley responses are those of two modalities); model '%s' has %d",
               m->name, m->nbranches);
    if (cfg->policy == RT_POLICY_AGM) {
        if (L->v_eval < 0) rt_die("policy agm: model '%s' has no evaluation graph", m->name);
        size_t most = 0;
        for (int i = 0; i < m->ninputs; i++) most = m->inputs[i].numel > most ? m->inputs[i].numel : most;
        T->agm_zero = rt_alloc(sizeof(mm_real) * most * (size_t)T->batch);
        for (int k = 0; k < 2; k++) {
            T->agm_pad[k] = rt_alloc(sizeof(mm_real) * (size_t)T->batch * (size_t)m->classes);
            T->agm_phi[k] = rt_alloc(sizeof(mm_real) * (size_t)T->batch * (size_t)m->classes);
        }
    }
    if (cfg->policy == RT_POLICY_MMPARETO) mmp_setup(T);

    if (cfg->rebalance_update == RT_REBAL_BRANCH)
        for (int k = 0; k < m->nbranches; k++) {
            L->mask[k] = rt_alloc((size_t)m->nparams);
            for (int p = 0; p < m->nparams; p++) L->mask[k][p] = (m->params[p].groups & RT_GROUP_MAIN(k)) != 0;
        }

    /* G-Blend: the losses at the start of the first super-epoch (a resumed
     * run has those of the one in progress from last.ckpt). */
    if (cfg->policy == RT_POLICY_GBLEND && !T->o->resume) gblend_measure(T, L, T->gb.lt, T->gb.lv);

    L->tty = isatty(2) && !T->o->quiet;
    const int n = T->split[RT_SPLIT_TRAIN].n;
    L->perm = rt_alloc(sizeof(int) * (size_t)(n > T->batch ? n : T->batch));
    L->steps_per_epoch = (n + T->batch - 1) / T->batch;
    L->ckpt_epoch = L->running = T->epoch; /* a resumed run's last.ckpt */
    char why[256];
    if (rt_schedule_check(cfg, L->steps_per_epoch, why, sizeof why)) rt_die("%s; shorten it or train longer", why);
}

/* The optimizer's settings for the step T->step: the configuration's, with
 * the schedule's learning rate (rt_schedule.c). */
static rt_optim optim_now(const Trainer *T, const Loop *L) {
    rt_optim o = T->cfg.opt;
    o.lr = (float)rt_schedule_lr(&T->cfg, T->lr, T->step, L->steps_per_epoch);
    return o;
}



/* --profile: the back end's per-kernel profile of one training step. */
static void profile(Trainer *T, Loop *L) {
    const rt_config *cfg = &T->cfg;
    for (int k = 0; k < T->batch; k++) L->perm[k] = k % T->split[RT_SPLIT_TRAIN].n;
    rt_batch b;
    rt_pass(T, RT_SPLIT_TRAIN, L->perm, T->batch, true, cfg->seed);
    rt_next(T, &b);
    rt_hyper h = {optim_now(T, L), T->regular_steps, cfg->seed, (unsigned long long)T->step, NULL, NULL, NULL, NULL};
    if (T->be->profile) T->be->profile(T->e, L->v_train, &b, &h, stderr);
}

static void announce(const Trainer *T) {
    const rt_model *m = T->m;
    if (!rt_is_root()) return;
    const rt_config *cfg = &T->cfg;
    fprintf(stderr, "%s: training %s on %s (%d train, %d val, %d test), batch %d, %d epochs, policy %s, back end %s\n", rt_prog,
            m->name, strcmp(cfg->data, "synthetic") == 0 ? "synthetic data" : T->o->data_dir, T->split[RT_SPLIT_TRAIN].n,
            T->split[RT_SPLIT_VAL].n, T->split[RT_SPLIT_TEST].n,
            T->batch, cfg->epochs, rt_policy_name(cfg->policy), T->be->target);
    if (rt_nranks() > 1)
        fprintf(stderr, "%s: data-parallel over %d ranks (%s): each reads about %d of every batch of %d\n", rt_prog, rt_nranks(),
                rt_dist->name, (T->batch + rt_nranks() - 1) / rt_nranks(), T->batch);
}

/* OGM-GE (docs/methods.md), between the backward pass and the update:
 * within epochs [ogm_start, ogm_end], the coefficients from the branch
 * heads' logits, and every parameter of branch k's own group (main_k)
 * scaled by k's coefficient, with the Gaussian noise of its gradient's
 * standard deviation. */
static void ogm_modulate(void *ctx, const rt_result *r, mm_real *grads) {
    Trainer *T = ctx;
    const rt_model *m = T->m;
    const rt_config *cfg = &T->cfg;
    const rt_batch *b = T->ogm_batch;
    double score[2];
    rt_ogm_scores(r->logits[0], r->logits[1], b->y, b->B, m->classes, score);
    if (rt_nranks() > 1) rt_dist->sum_d(score, 2); /* the global batch's; the gradients are already its mean */
    T->ogm_rho = rt_ogm_from_scores(score, cfg->ogm_alpha, T->ogm_coeff);
    if (T->epoch < cfg->ogm_start || T->epoch > cfg->ogm_end) {
        T->ogm_coeff[0] = T->ogm_coeff[1] = 1;
        return;
    }
    for (int p = 0; p < m->nparams; p++)
        for (int k = 0; k < 2; k++)
            if (m->params[p].groups & RT_GROUP_MAIN(k)) {
                rt_rng rng;
                rt_rng_seed(&rng, cfg->seed ^ 0x6f676d6765ULL ^ (0x9E3779B97F4A7C15ULL * (uint64_t)(T->step + 1)) ^
                                      (0xD1B54A32D192ED03ULL * (uint64_t)(p + 1)));
                rt_ogm_ge(grads + m->params[p].off, m->params[p].numel, T->ogm_coeff[k], cfg->ogm_ge, &rng);
                break;
            }
}

/* AGM (docs/methods.md), before the training step: the multi-modal output
 * (the prediction: a fusion head's logits, or the mean of the branch
 * logits) with each modality zeroed in turn. As in the authors' code these
 * passes run the evaluation graph: BatchNorm normalises with its running
 * statistics and does not update them. The zero replaces the normalised
 * input, as modality_dropout's does. */
static void agm_zeroed_passes(Trainer *T, const Loop *L, const rt_batch *b) {
    const rt_model *m = T->m;
    const size_t n = (size_t)b->B * (size_t)m->classes;
    if (b->B == 0) return; /* a rank with no example of a (last, small) batch: no responses */
    for (int k = 0; k < 2; k++) {
        rt_batch z = *b;
        z.x[m->branch_input ? m->branch_input[k] : k] = T->agm_zero;
        rt_hyper h = {0};
        rt_result r;
        T->be->eval(T->e, L->v_eval, &z, &h, &r);
        if (!r.pred) rt_die("policy agm: model '%s' has no prediction to take the responses from", m->name);
        memcpy(T->agm_pad[k], r.pred, sizeof(mm_real) * n);
    }
}

/* AGM's safeguard, as the authors' code has it in every step: when an
 * element of a prediction head's weight gradient leaves [-clip, clip], all
 * gradients are scaled to an L2 norm of clip (clip_grad_norm_). */
static void agm_clip(Trainer *T, mm_real *grads) {
    const rt_model *m = T->m;
    const double clip = T->cfg.agm_clip;
    T->agm_clipped = 1;
    if (!(clip > 0) || !m->head_weights) return;
    double most = 0;
    for (const int *h = m->head_weights; *h >= 0; h++) {
        const mm_real *g = grads + m->params[*h].off;
        for (size_t i = 0; i < m->params[*h].numel; i++) most = fabs((double)g[i]) > most ? fabs((double)g[i]) : most;
    }
    if (most > clip) T->agm_clipped = rt_clip_norm(grads, m->params_floats, clip);
}

/* AGM, between the backward pass and the update: the Shapley responses of
 * the two modalities, their scores, ratios and coefficients against the
 * running means of the earlier steps' scores (which every step updates),
 * and, within epochs [agm_start, agm_end], every parameter of branch k's
 * own group (main_k) scaled by k's coefficient. */
static void agm_modulate(void *ctx, const rt_result *r, mm_real *grads) {
    Trainer *T = ctx;
    const rt_model *m = T->m;
    const rt_config *cfg = &T->cfg;
    const rt_batch *b = T->agm_batch;
    if (!r->pred && b->B > 0) rt_die("policy agm: model '%s' has no prediction to take the responses from", m->name);
    if (b->B > 0) rt_agm_responses(r->pred, T->agm_pad[0], T->agm_pad[1], (size_t)b->B * (size_t)m->classes, T->agm_phi[0], T->agm_phi[1]);
    /* The scores are means over the global batch: under mpirun each rank's
     * sums over its shard are added (the gradients are already averaged). */
    double sum[3] = {0, 0, b->B};
    for (int k = 0; k < 2 && b->B > 0; k++) sum[k] = rt_agm_score(T->agm_phi[k], b->y, b->B, m->classes) * b->B;
    if (rt_nranks() > 1) rt_dist->sum_d(sum, 3);
    for (int k = 0; k < 2; k++) T->agm_score[k] = sum[2] > 0 ? sum[k] / sum[2] : NAN;
    if (!isfinite(T->agm_score[0]) || !isfinite(T->agm_score[1]))
        rt_die("policy agm: the mono-modal responses are not finite at epoch %d, step %ld (scores %g, %g); training stopped. "
               "Try a lower learning rate (--lr).", T->epoch + 1, T->step, T->agm_score[0], T->agm_score[1]);
    memcpy(T->agm_avg_used, T->agm_avg, sizeof T->agm_avg);
    rt_agm_coeffs(T->agm_score, T->agm_avg, cfg->agm_alpha, T->agm_ratio, T->agm_coeff);
    rt_agm_average(T->agm_avg, T->agm_score, T->step);
    if (T->epoch < cfg->agm_start || T->epoch > cfg->agm_end) {
        T->agm_coeff[0] = T->agm_coeff[1] = 1;
        agm_clip(T, grads);
        return;
    }
    for (int k = 0; k < 2; k++)
        if (!isfinite(T->agm_coeff[k]))
            rt_die("policy agm: coefficient %d is %g at epoch %d, step %ld (scores %g, %g; running means %g, %g; alpha %g); "
                   "training stopped. Try a lower --agm-alpha.",
                   k, T->agm_coeff[k], T->epoch + 1, T->step, T->agm_score[0], T->agm_score[1], T->agm_avg_used[0],
                   T->agm_avg_used[1], cfg->agm_alpha);
    for (int p = 0; p < m->nparams; p++)
        for (int k = 0; k < 2; k++)
            if (m->params[p].groups & RT_GROUP_MAIN(k)) {
                mm_real *g = grads + m->params[p].off;
                for (size_t i = 0; i < m->params[p].numel; i++) g[i] = (mm_real)(g[i] * T->agm_coeff[k]);
                break;
            }
    agm_clip(T, grads);
}

/* MMPareto's first pass leaves its gradient (the multi-modal terms') for
 * the second. */
static void mmp_keep(void *ctx, const rt_result *r, mm_real *grads) {
    Trainer *T = ctx;
    (void)r;
    memcpy(T->mmp_gm, grads, sizeof(mm_real) * T->m->params_floats);
}

/* MMPareto's second pass, between its backward pass and the update: grads
 * holds the uni-modal terms' gradient g_u, mmp_gm the multi-modal terms'
 * g_m. Each encoder's weights come from its whole gradients (every
 * parameter of it together), and its parameters get the integrated
 * gradient (rt_mmp_combine); every other parameter (the heads) gets
 * g_m + g_u, the loss's own gradient. */
static void mmp_modulate(void *ctx, const rt_result *r, mm_real *grads) {
    Trainer *T = ctx;
    const rt_model *m = T->m;
    const mm_real *gm = T->mmp_gm;
    (void)r;
    double mm[RT_MAXB] = {0}, mu[RT_MAXB] = {0}, uu[RT_MAXB] = {0};
    for (int p = 0; p < m->nparams; p++) {
        int k = T->mmp.enc[p];
        if (k < 0) continue;
        const mm_real *a = gm + m->params[p].off, *b = grads + m->params[p].off;
        for (size_t i = 0; i < m->params[p].numel; i++) {
            mm[k] += (double)a[i] * a[i];
            mu[k] += (double)a[i] * b[i];
            uu[k] += (double)b[i] * b[i];
        }
    }
    double alpha[RT_MAXB][2];
    for (int k = 0; k < m->nbranches; k++) {
        T->mmp_cos[k] = rt_mmp_weights(mm[k], mu[k], uu[k], alpha[k]);
        T->mmp_alpha[k] = alpha[k][0];
    }
    for (int p = 0; p < m->nparams; p++) {
        int k = T->mmp.enc[p];
        size_t off = m->params[p].off, n = m->params[p].numel;
        if (k >= 0) rt_mmp_combine(gm + off, grads + off, n, alpha[k], T->cfg.mmp_gamma);
        else
            for (size_t i = 0; i < n; i++) grads[off + i] += gm[off + i];
    }
}

/* The loss terms' weights w in the host copy of the state: the fusion
 * heads' terms' (multi) or the branches' (!multi), the others 0; both: all
 * of them. */
static void mmp_set_loss_weights(Trainer *T, const float *w, int multi, int both) {
    const rt_mmp_plan *pl = &T->mmp;
    for (int i = 0; i < pl->nterms; i++)
        T->mmp_states[pl->term_off[i]] = both || (pl->term_branch[i] < 0) == multi ? w[i] : 0.0f;
}

/* An MMPareto step: each term's gradient needs a backward pass of its own,
 * so the step runs twice on the same batch, first with only the fusion
 * heads' terms weighted (no update: the gradient is kept), then with only
 * the branches' terms, whose modulate hook integrates the two before the
 * one update. Both passes start from the step's state, so BatchNorm's
 * running statistics and the gate means advance once, and draw the same
 * dropout masks (they depend on the step); the optimizer counts one step.
 * The weights are the step's own again afterwards, as checkpoints and
 * evaluation expect. The step's loss is the sum of the two passes'. */
static void mmp_train(Trainer *T, int v, const rt_batch *b, const rt_hyper *h, rt_result *r) {
    const rt_mmp_plan *pl = &T->mmp;
    float w[RT_MMP_MAXTERMS];
    T->be->read(T->e, RT_ARENA_STATES, T->mmp_states);
    for (int i = 0; i < pl->nterms; i++) w[i] = T->mmp_states[pl->term_off[i]];
    mmp_set_loss_weights(T, w, 1, 0);
    T->be->write(T->e, RT_ARENA_STATES, T->mmp_states);
    rt_hyper h1 = *h;
    h1.update = T->mmp_none;
    h1.modulate = mmp_keep, h1.ctx = T;
    rt_result r1;
    T->be->train(T->e, v, b, &h1, &r1);
    double loss_mm = r1.loss;
    mmp_set_loss_weights(T, w, 0, 0);
    T->be->write(T->e, RT_ARENA_STATES, T->mmp_states);
    rt_hyper h2 = *h;
    h2.modulate = mmp_modulate, h2.ctx = T;
    T->be->train(T->e, v, b, &h2, r);
    r->loss += loss_mm;
    T->be->read(T->e, RT_ARENA_STATES, T->mmp_states);
    mmp_set_loss_weights(T, w, 0, 1);
    T->be->write(T->e, RT_ARENA_STATES, T->mmp_states);
}

/* One step of epoch ep on batch b: its kind (the controller's, or RUBi's),
 * the back end's train call, the conditional learning speed and the
 * controller after a regular step, and the step's line in steps.csv. */
static rt_result train_step(Trainer *T, const Loop *L, int ep, const rt_batch *b, double *t_train) {
    const rt_model *m = T->m;
    const rt_config *cfg = &T->cfg;
    int kind = cfg->policy == RT_POLICY_RUBI ? RT_STEP_REGULAR : rt_controller_next(&T->ctl, ep);
    int v = cfg->policy == RT_POLICY_RUBI ? L->v_rubi : kind == RT_STEP_REGULAR ? L->v_train : L->v_rebal[kind];
    rt_hyper h = {optim_now(T, L), T->regular_steps, cfg->seed, (unsigned long long)T->step,
                  kind == RT_STEP_REGULAR ? NULL : L->mask[kind], NULL, NULL, NULL};
    rt_optim_count(&h.opt, m->nparams, h.update, T->opt_steps, T->bias);
    h.bias = (const float(*)[2])T->bias;
    if (cfg->policy == RT_POLICY_OGM_GE) {
        h.modulate = ogm_modulate, h.ctx = T;
        T->ogm_batch = b;
    }
    double t0 = rt_now(); /* the step's time includes AGM's passes with a modality zeroed */
    if (cfg->policy == RT_POLICY_AGM) {
        agm_zeroed_passes(T, L, b);
        h.modulate = agm_modulate, h.ctx = T;
        T->agm_batch = b;
    }
    rt_result r;
    if (cfg->policy == RT_POLICY_MMPARETO) mmp_train(T, v, b, &h, &r);
    else T->be->train(T->e, v, b, &h, &r);
    *t_train += rt_now() - t0;
    if (!isfinite(r.loss)) {
        fflush(T->steps);
        fflush(T->metrics);
        rt_die("the loss is %s at epoch %d, step %ld (policy %s, learning rate %g); training stopped. "
               "The last good checkpoint is %s/last.ckpt%s. Try a lower learning rate (--lr).",
               isnan(r.loss) ? "NaN" : "infinite", ep + 1, T->step, rt_policy_name(cfg->policy), h.opt.lr, T->o->out_dir,
               T->epoch > 0 ? "" : " (none yet: it is written after the first epoch)");
    }
    /* A loss can stay finite while a gradient is not (a ReLU turns the NaN
     * of a NaN weight into 0 in the forward pass, and 0 x NaN is NaN in the
     * backward pass): the update has spoilt the parameters. */
    int bad = rt_nonfinite_param(m, r.norms);
    if (bad >= 0) {
        fflush(T->steps);
        fflush(T->metrics);
        rt_die("the %s of parameter '%s' is not finite (or so large that its square overflows) at epoch %d, step %ld, while the "
               "loss is %g (policy %s, learning rate %g); "
               "training stopped. The last good checkpoint is %s/last.ckpt%s. Try a lower learning rate (--lr).",
               isfinite(r.norms[bad][1]) ? "gradient" : "value", m->params[bad].name, ep + 1, T->step, r.loss,
               rt_policy_name(cfg->policy), h.opt.lr, T->o->out_dir, T->epoch > 0 ? "" : " (none yet: it is written after the first epoch)");
    }
    T->kind_count[kind == RT_STEP_REGULAR ? 0 : 1 + kind]++;
    if (kind == RT_STEP_REGULAR) {
        rt_speed_add(&T->speed, m, r.norms);
        T->regular_steps++;
        if (cfg->policy != RT_POLICY_RUBI) rt_controller_after_regular(&T->ctl, ep, &T->speed);
    }
    char kb[32], line[64 + 24 * (3 * RT_MAXB + 12 + RT_GBLEND_MAX)];
    int n = snprintf(line, sizeof line, "%ld,%d,%s,%.6g", T->step, ep + 1, cfg->policy == RT_POLICY_RUBI ? "rubi" : kind_name(m, kind, kb), r.loss);
    for (int k = 0; k < m->nbranches; k++) n += snprintf(line + n, sizeof line - n, ",%.6g", T->speed.s[k]);
    n += snprintf(line + n, sizeof line - n, ",%.6g,%.6g", T->speed.d_speed, h.opt.lr);
    if (cfg->policy == RT_POLICY_OGM_GE)
        n += snprintf(line + n, sizeof line - n, ",%.6g,%.6g,%.6g", T->ogm_rho, T->ogm_coeff[0], T->ogm_coeff[1]);
    for (int k = 0; cfg->policy == RT_POLICY_GBLEND && k < T->gb.n; k++) n += snprintf(line + n, sizeof line - n, ",%.6g", T->gb.w[k]);
    if (cfg->policy == RT_POLICY_AGM)
        n += snprintf(line + n, sizeof line - n, ",%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g", T->agm_score[0], T->agm_score[1],
                      T->agm_ratio[0], T->agm_ratio[1], T->agm_avg_used[0], T->agm_avg_used[1], T->agm_coeff[0], T->agm_coeff[1],
                      T->agm_clipped);
    if (cfg->policy == RT_POLICY_MMPARETO) {
        for (int k = 0; k < m->nbranches; k++) n += snprintf(line + n, sizeof line - n, ",%.6g", T->mmp_cos[k]);
        for (int k = 0; k < m->nbranches; k++) n += snprintf(line + n, sizeof line - n, ",%.6g", T->mmp_alpha[k]);
    }
    snprintf(line + n, sizeof line - n, "\n");
    log_put(T, L, T->steps, "steps.csv", line);
    T->step++;
    return r;
}

/* Training accuracy of the prediction (a fusion head's logits, or the mean
 * of the branch logits when the step does not return it): the examples of
 * batch b it gets right. */
static long count_right(const rt_model *m, const rt_result *r, const rt_batch *b) {
    long right = 0;
    for (int k = 0; k < b->B; k++) {
        int best = 0;
        double bv = -INFINITY;
        for (int c = 0; c < m->classes; c++) {
            double z = 0;
            if (r->pred) z = r->pred[(size_t)k * m->classes + c];
            else for (int br = 0; br < m->nbranches; br++) z += r->logits[br][(size_t)k * m->classes + c];
            if (z > bv) { bv = z; best = c; }
        }
        right += best == b->y[k];
    }
    return right;
}

/* One pass over the training set in a new random order. */
static EpochStats train_epoch(Trainer *T, Loop *L) {
    const rt_config *cfg = &T->cfg;
    const int n = T->split[RT_SPLIT_TRAIN].n;
    const int ep = T->epoch;
    L->running = ep + 1;
    int *perm = L->perm;
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rt_rng_below(&T->shuffle, (uint32_t)i + 1);
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    double loss_sum = 0, t_epoch = rt_now(), t_train = 0, last_print = 0;
    long right = 0, seen = 0;
    /* The augmentation's draws depend on the seed and the epoch only, so a
     * resumed run makes the same ones. */
    double t_loop = rt_now(), c_data = rt_loader_cpu_s(T->loader), t_ar = rt_dist_seconds;
    long nb = rt_dist_buckets;
    rt_pass_shard(T, RT_SPLIT_TRAIN, perm, n, true, cfg->seed ^ (0x6175676dULL + (uint64_t)ep * 0x9E3779B97F4A7C15ULL));
    double t_wait = rt_now() - t_loop;
    for (int s = 0; s < L->steps_per_epoch; s++) {
        rt_batch b;
        double tw = rt_now();
        if (!rt_next(T, &b)) rt_die("internal: the epoch's batches ended at step %d of %d", s, L->steps_per_epoch);
        t_wait += rt_now() - tw;
        /* The global batch's size: in a data-parallel run b holds this
         * rank's shard, and the step's loss is already the global mean. */
        const int B = n - s * T->batch < T->batch ? n - s * T->batch : T->batch;
        rt_result r = train_step(T, L, ep, &b, &t_train);
        loss_sum += r.loss * B;
        seen += B;
        right += count_right(T->m, &r, &b);
        if (L->tty && rt_is_root() && (rt_now() - last_print > 0.25 || s == L->steps_per_epoch - 1)) {
            last_print = rt_now();
            double sps = seen / (t_train > 0 ? t_train : 1e-9);
            double left = (double)(L->steps_per_epoch - s - 1) * T->batch + (double)(cfg->epochs - ep - 1) * n;
            char eta[32];
            fmt_eta(eta, sizeof eta, left / (sps > 0 ? sps : 1));
            fprintf(stderr, "\repoch %d/%d  step %d/%d  loss %.4f  %.0f samples/s  ETA %s   ", ep + 1, cfg->epochs, s + 1,
                    L->steps_per_epoch, loss_sum / seen, sps, eta);
        }
    }
    t_loop = rt_now() - t_loop;
    c_data = rt_loader_cpu_s(T->loader) - c_data;
    if (rt_nranks() > 1) {
        /* The training accuracy over every rank's examples; the loader's CPU time of all ranks. */
        double t[2] = {(double)right, c_data};
        rt_dist->sum_d(t, 2);
        right = (long)t[0], c_data = t[1];
    }
    if (L->tty && rt_is_root()) fputc('\n', stderr);
    return (EpochStats){loss_sum / seen, (double)right / seen, seen, t_train, t_loop, t_wait, c_data, rt_dist_seconds - t_ar,
                        rt_dist_buckets - nb, t_epoch};
}

/* Best validation accuracy: keep its test accuracy (its weights are kept
 * by save_epoch). Whether this epoch is the best so far. */
static bool keep_best(Trainer *T, const Score *val, const Score *test) {
    bool best = val->acc > T->best_val;
    if (best) {
        T->best_val = val->acc;
        T->best_test = test->acc;
        T->best_epoch = T->epoch;
        T->best_d_speed = T->speed.d_speed;
        for (int k = 0; k < T->m->nbranches; k++) T->best_branch_test[k] = test->branch[k];
    }
    return best;
}

/* Schedule and stopping options (§2): whether to stop. */
static bool schedule(Trainer *T, const EpochStats *st) {
    const rt_config *cfg = &T->cfg;
    if (cfg->schedule == RT_SCHEDULE_PLATEAU) {
        if (st->loss < T->plateau_best) {
            T->plateau_best = st->loss;
            T->plateau_stale = 0;
        } else if (++T->plateau_stale >= cfg->plateau_patience) {
            T->lr *= cfg->plateau_factor;
            T->plateau_stale = 0;
            fprintf(stderr, "%s: no lower training loss for %d epochs: learning rate now %g\n", rt_prog, cfg->plateau_patience, T->lr);
        }
    }
    if (st->acc >= 1.0) T->perfect_epochs++;
    return cfg->stop_perfect > 0 && T->perfect_epochs >= cfg->stop_perfect;
}

/* The epoch's line in metrics.jsonl and on stderr. */
static void log_epoch(Trainer *T, const Loop *L, const EpochStats *st, const Score *val, const Score *test, double sps, bool best) {
    const rt_model *m = T->m;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "epoch", T->epoch);
    cJSON_AddNumberToObject(j, "train_loss", st->loss);
    cJSON_AddNumberToObject(j, "train_acc", st->acc);
    cJSON_AddNumberToObject(j, "val_loss", val->loss);
    cJSON_AddNumberToObject(j, "val_acc", val->acc);
    cJSON_AddNumberToObject(j, "test_acc", test->acc);
    double vb[RT_MAXB], tb[RT_MAXB], sk[RT_MAXB];
    for (int k = 0; k < m->nbranches; k++) {
        vb[k] = val->branch[k];
        tb[k] = test->branch[k];
        sk[k] = isfinite(T->speed.s[k]) ? T->speed.s[k] : 0;
    }
    cJSON_AddItemToObject(j, "val_branch_acc", cJSON_CreateDoubleArray(vb, m->nbranches));
    cJSON_AddItemToObject(j, "test_branch_acc", cJSON_CreateDoubleArray(tb, m->nbranches));
    if (isfinite(T->speed.d_speed)) {
        cJSON_AddItemToObject(j, "s", cJSON_CreateDoubleArray(sk, m->nbranches));
        cJSON_AddNumberToObject(j, "d_speed", T->speed.d_speed);
    }
    double kc[RT_MAXB + 1];
    for (int k = 0; k <= m->nbranches; k++) kc[k] = (double)T->kind_count[k];
    cJSON_AddItemToObject(j, "steps_by_kind", cJSON_CreateDoubleArray(kc, m->nbranches + 1));
    if (T->cfg.policy == RT_POLICY_GBLEND) gblend_json(T, j);
    cJSON_AddNumberToObject(j, "lr", rt_schedule_lr(&T->cfg, T->lr, T->step - 1, L->steps_per_epoch)); /* its last step's */
    cJSON_AddNumberToObject(j, "samples_per_s", sps);
    cJSON_AddNumberToObject(j, "wall_samples_per_s", st->seen / (st->loop_time > 0 ? st->loop_time : 1e-9));
    cJSON_AddNumberToObject(j, "data_wait_s", st->data_wait);
    cJSON_AddNumberToObject(j, "data_cpu_s", st->data_cpu);
    if (rt_nranks() > 1) cJSON_AddNumberToObject(j, "allreduce_s", st->allreduce);
    if (rt_nranks() > 1) cJSON_AddNumberToObject(j, "allreduce_buckets", (double)st->buckets);
    cJSON_AddNumberToObject(j, "epoch_time_s", rt_now() - st->t0);
    char *line = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    log_put(T, L, T->metrics, "metrics.jsonl", line);
    free(line);
    log_put(T, L, T->metrics, "metrics.jsonl", "\n");
    log_flush(T, L, T->metrics, "metrics.jsonl");
    log_flush(T, L, T->steps, "steps.csv");

    if (!rt_is_root()) return;
    fprintf(stderr, "epoch %d/%d: loss %.4f  train %.4f  val %.4f  test %.4f  (", T->epoch, T->cfg.epochs, st->loss, st->acc,
            val->acc, test->acc);
    for (int k = 0; k < m->nbranches; k++)
        if (isnan(test->branch[k])) fprintf(stderr, "%s%s -", k ? ", " : "", m->branches[k]);
        else fprintf(stderr, "%s%s %.4f", k ? ", " : "", m->branches[k], test->branch[k]);
    fprintf(stderr, ")  %.0f samples/s%s\n", sps, best ? "  *best" : "");
    if (T->cfg.policy == RT_POLICY_GBLEND && T->gb.estimated) {
        fprintf(stderr, "gblend: loss weights");
        for (int k = 0; k < T->gb.n; k++) fprintf(stderr, "%s %s %.4f", k ? "," : "", T->gb.name[k], T->gb.w[k]);
        fprintf(stderr, "%s\n", T->gb.updated ? "" : " (kept: no held-out loss fell)");
    }
}

/* A data-parallel run: every rank must hold the same parameters and state
 * (the averaged gradients make the same update everywhere). A 20-bit hash
 * of each rank's arenas, summed with its square across the ranks: all
 * equal exactly when N * sum(h^2) = sum(h)^2 (exact in doubles). */
static void check_ranks_agree(const Trainer *T) {
    if (rt_nranks() < 2) return;
    uint64_t h = 1469598103934665603ULL;
    const unsigned char *p[2] = {(const unsigned char *)T->params, (const unsigned char *)T->states};
    size_t n[2] = {sizeof(float) * T->m->params_floats, sizeof(float) * T->m->states_floats};
    for (int a = 0; a < 2; a++)
        for (size_t i = 0; i < n[a]; i++) h = (h ^ p[a][i]) * 1099511628211ULL;
    double x = (double)(h >> 44), t[2] = {x, x * x};
    rt_dist->sum_d(t, 2);
    if (t[1] * rt_nranks() != t[0] * t[0])
        rt_die("the ranks' parameters differ after epoch %d (their averaged updates should be identical): "
               "the MPI library's reductions are not deterministic across ranks", T->epoch);
}

/* last.ckpt, and best.ckpt with a copy of the weights for the final
 * diagnostic when this epoch is the best. */
static void save_epoch(Trainer *T, bool best) {
    const rt_model *m = T->m;
    T->be->read(T->e, RT_ARENA_PARAMS, T->params);
    T->be->read(T->e, RT_ARENA_MOMENTUM, T->mom);
    T->be->read(T->e, RT_ARENA_MOMENT2, T->mom2);
    T->be->read(T->e, RT_ARENA_STATES, T->states);
    check_ranks_agree(T);
    if (best) {
        memcpy(T->best_params, T->params, sizeof(float) * m->params_floats);
        memcpy(T->best_states, T->states, sizeof(float) * (m->states_floats + 1));
        rt_run_save(T, "best.ckpt", T->params, T->states);
    }
    rt_run_save(T, "last.ckpt", T->params, T->states);
}

/* After an epoch: validation and test accuracy, the best epoch, the
 * schedule, the logs and the checkpoints. Whether to stop. */
static bool end_epoch(Trainer *T, Loop *L, const EpochStats *st) {
    double sps = st->seen / (st->train_time > 0 ? st->train_time : 1e-9);
    L->samples += st->seen;
    L->train_time += st->train_time;
    Score val = rt_evaluate(T, RT_SPLIT_VAL, L->v_eval), test = rt_evaluate(T, RT_SPLIT_TEST, L->v_eval);
    T->epoch++;
    bool best = keep_best(T, &val, &test);
    bool stop = schedule(T, st);
    T->gb.estimated = false;
    if (T->cfg.policy == RT_POLICY_GBLEND && T->epoch % T->cfg.gblend_every == 0) gblend_estimate(T, L);
    T->samples_per_s = L->samples / (L->train_time > 0 ? L->train_time : 1e-9);
    log_epoch(T, L, st, &val, &test, sps, best);
    save_epoch(T, best);
    L->ckpt_epoch = T->epoch;
    if (stop) fprintf(stderr, "%s: 100%% training accuracy for %d epochs: stopping (early_stop perfect)\n", rt_prog, T->perfect_epochs);
    return stop;
}

/* summary.json (written atomically) and stdout: the best epoch's
 * accuracies, the conditional utilization rate u of its weights, the
 * learning speeds and the run's configuration. */
static void write_summary(const Trainer *T, const Loop *L, const Util *u) {
    const rt_model *m = T->m;
    if (!rt_is_root()) return;
    const rt_config *cfg = &T->cfg;
    cJSON *sj = cJSON_CreateObject();
    cJSON_AddStringToObject(sj, "model", m->name);
    cJSON_AddNumberToObject(sj, "test_acc", T->best_test);
    cJSON_AddNumberToObject(sj, "val_acc", T->best_val);
    cJSON_AddItemToObject(sj, "branch_test_acc", cJSON_CreateDoubleArray(T->best_branch_test, m->nbranches));
    cJSON *bn = cJSON_CreateArray();
    for (int k = 0; k < m->nbranches; k++) cJSON_AddItemToArray(bn, cJSON_CreateString(m->branches[k]));
    cJSON_AddItemToObject(sj, "branches", bn);
    cJSON_AddNumberToObject(sj, "best_epoch", T->best_epoch);
    cJSON_AddNumberToObject(sj, "epochs", T->epoch);
    cJSON_AddNumberToObject(sj, "samples_per_s", T->samples_per_s);
    if (isfinite(T->best_d_speed)) cJSON_AddNumberToObject(sj, "d_speed", T->best_d_speed);
    if (isfinite(T->speed.d_speed)) cJSON_AddNumberToObject(sj, "d_speed_last", T->speed.d_speed);
    if (u->ok) {
        cJSON_AddItemToObject(sj, "util", rt_utilization_json(m, u));
        cJSON_AddNumberToObject(sj, "d_util", u->d_util);
    }
    cJSON_AddStringToObject(sj, "policy", rt_policy_name(cfg->policy));
    cJSON_AddNumberToObject(sj, "lr", cfg->opt.lr);
    cJSON_AddNumberToObject(sj, "seed", (double)cfg->seed);
    cJSON_AddNumberToObject(sj, "batch", T->batch);
    double kc[RT_MAXB + 1];
    for (int k = 0; k <= m->nbranches; k++) kc[k] = (double)T->kind_count[k];
    cJSON_AddItemToObject(sj, "steps_by_kind", cJSON_CreateDoubleArray(kc, m->nbranches + 1));
    cJSON_AddStringToObject(sj, "backend", T->be->target);
    char *txt = cJSON_Print(sj);
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/summary.json", T->o->out_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = rt_fopen(tmp, "w");
    errno = 0;
    bool ok = fputs(txt, f) != EOF && fputc('\n', f) != EOF && fflush(f) == 0 && !ferror(f);
    int err = errno;
    if (fclose(f) != 0 && ok) ok = false, err = errno;
    if (!ok) {
        unlink(tmp);
        log_failed(T, L, "summary.json", err);
    }
    if (rename(tmp, path) != 0) rt_die("cannot write %s: %s", path, strerror(errno));
    printf("%s\n", txt);
    free(txt);
    cJSON_Delete(sj);
}

/* The logs closed, the diagnostic of §3 on the best checkpoint, the
 * summary, and everything freed. */
static void finish(Trainer *T, Loop *L) {
    const rt_model *m = T->m;
    errno = 0;
    if (fclose(T->steps) != 0) log_failed(T, L, "steps.csv", errno);
    errno = 0;
    if (fclose(T->metrics) != 0) log_failed(T, L, "metrics.jsonl", errno);
    Util u = {0};
    if (T->best_epoch >= 0) {
        T->be->write(T->e, RT_ARENA_PARAMS, T->best_params);
        T->be->write(T->e, RT_ARENA_STATES, T->best_states);
        u = rt_utilization(T);
    }
    write_summary(T, L, &u);

    T->be->destroy(T->e);
    rt_close_data(T);
    for (int k = 0; k < m->nbranches; k++) free(L->mask[k]);
    free(T->gb.sample);
    free(L->perm);
    free(T->params);
    free(T->mom);
    free(T->mom2);
    free(T->opt_steps);
    free(T->bias);
    free(T->states);
    free(T->best_params);
    free(T->best_states);
    free(T->agm_zero);
    for (int k = 0; k < 2; k++) free(T->agm_pad[k]), free(T->agm_phi[k]);
    rt_mmp_plan_free(&T->mmp);
    free(T->mmp_gm);
    free(T->mmp_states);
    free(T->mmp_none);
}

int rt_train(const rt_model *m, const rt_train_opts *o) {
    Trainer T = {0};
    Loop L = {0};
    setup(&T, m, o);
    if (o->resume) resume(&T);
    else if (o->init) rt_run_init(&T, o->init, o->init_partial);
    open_data(&T);
    start(&T, &L);
    if (o->profile) profile(&T, &L);
    announce(&T);
    bool stop = false;
    while (T.epoch < T.cfg.epochs && !stop) {
        EpochStats st = train_epoch(&T, &L);
        stop = end_epoch(&T, &L, &st);
    }
    finish(&T, &L);
    return 0;
}
