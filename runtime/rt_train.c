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

int rt_train(const rt_model *m, const rt_train_opts *o) {
    Trainer T = {0};
    T.m = m;
    T.be = m->backend;
    T.cfg = o->cfg;
    T.o = o;
    T.batch = T.cfg.batch;
    const rt_config *cfg = &T.cfg;
    rt_run_mkdir(o->out_dir);

    size_t np = m->params_floats, ns = m->states_floats + 1;
    T.params = rt_alloc(sizeof(float) * np);
    T.mom = rt_alloc(sizeof(float) * np);
    T.states = rt_alloc(sizeof(float) * ns);
    T.best_params = rt_alloc(sizeof(float) * np);
    T.best_states = rt_alloc(sizeof(float) * ns);
    for (int i = 0; i < m->ninputs; i++) T.bx[i] = rt_alloc(sizeof(float) * m->inputs[i].numel * (size_t)T.batch);
    T.by = rt_alloc(sizeof(int32_t) * (size_t)T.batch);

    /* Fresh state, or the checkpoint's. */
    T.lr = cfg->lr;
    T.best_val = -1;
    T.best_epoch = -1;
    T.best_d_speed = NAN;
    T.plateau_best = INFINITY;
    rt_speed_init(&T.speed, m->nbranches);
    rt_controller_init(&T.ctl, cfg, m->nbranches, cfg->seed);
    rt_rng_seed(&T.shuffle, cfg->seed ^ 0x73687566ULL);
    rt_init_params(m, T.params, cfg->seed);
    rt_init_states(m, T.states);
    if (o->resume) {
        rt_run_resume(&T);
        /* Recompute s and d_speed from the sums (no step: zero norms add nothing). */
        if (T.regular_steps > 0) {
            double (*zero)[2] = rt_alloc(sizeof(double[2]) * (size_t)m->nparams);
            double ms[RT_MAXB], bs[RT_MAXB];
            memcpy(ms, T.speed.main_sum, sizeof ms);
            memcpy(bs, T.speed.bypass_sum, sizeof bs);
            rt_speed_add(&T.speed, m, zero);
            memcpy(T.speed.main_sum, ms, sizeof ms);
            memcpy(T.speed.bypass_sum, bs, sizeof bs);
            free(zero);
        }
        if (T.epoch >= cfg->epochs)
            fprintf(stderr, "%s: the run in %s already finished %d epochs; nothing to train\n", rt_prog, o->out_dir, T.epoch);
    }

    if (o->resume && o->lr_given) T.lr = cfg->lr;
    rt_load_data(m, cfg, o->data_dir, &T.data);
    if (o->limit_test > 0) {
        if (T.data.val.n > o->limit_test) T.data.val.n = o->limit_test;
        if (T.data.test.n > o->limit_test) T.data.test.n = o->limit_test;
    }
    const rt_dataset *tr = &T.data.train;
    if (tr->n == 0) rt_die("the training set is empty");
    if (tr->classes != m->classes && strcmp(cfg->data, "synthetic") != 0)
        rt_die("the data has %d classes but the model predicts %d", tr->classes, m->classes);

    T.e = T.be->create(m, T.batch);
    T.be->write(T.e, RT_ARENA_PARAMS, T.params);
    T.be->write(T.e, RT_ARENA_MOMENTUM, T.mom);
    T.be->write(T.e, RT_ARENA_STATES, T.states);

    char header[512] = "step,epoch,kind,loss";
    for (int k = 0; k < m->nbranches; k++) snprintf(header + strlen(header), sizeof header - strlen(header), ",s_%d", k);
    strcat(header, ",d_speed\n");
    rt_run_open_logs(&T, header);

    int v_train = rt_find_variant(m, RT_VAR_TRAIN, -1), v_eval = rt_find_variant(m, RT_VAR_EVAL, -1);
    int v_rebal[RT_MAXB];
    for (int k = 0; k < m->nbranches; k++) v_rebal[k] = rt_find_variant(m, RT_VAR_REBALANCE, k);
    int v_rubi = cfg->policy == RT_POLICY_RUBI ? rt_find_variant(m, RT_VAR_RUBI, cfg->rubi_branch) : -1;
    if (cfg->policy == RT_POLICY_RUBI && v_rubi < 0) rt_die("this model has no RUBi step for branch %d", cfg->rubi_branch);
    if ((cfg->policy == RT_POLICY_GUIDED || cfg->policy == RT_POLICY_RANDOM))
        for (int k = 0; k < m->nbranches; k++)
            if (v_rebal[k] < 0) rt_die("policy %s needs MMTMs on every branch; branch '%s' has none", rt_policy_name(cfg->policy), m->branches[k]);

    /* Update masks for re-balancing steps that update only their branch (§5). */
    unsigned char *mask[RT_MAXB] = {0};
    if (cfg->rebalance_update == RT_REBAL_BRANCH)
        for (int k = 0; k < m->nbranches; k++) {
            mask[k] = rt_alloc((size_t)m->nparams);
            for (int p = 0; p < m->nparams; p++) mask[k][p] = (m->params[p].groups & RT_GROUP_MAIN(k)) != 0;
        }

    const bool tty = isatty(2) && !o->quiet;
    int *perm = rt_alloc(sizeof(int) * (size_t)tr->n);
    const int steps_per_epoch = (tr->n + T.batch - 1) / T.batch;

    if (o->profile) {
        for (int k = 0; k < T.batch; k++) perm[k] = k % tr->n;
        rt_batch b;
        rt_gather(&T, tr, perm, T.batch, &b);
        rt_hyper h = {T.lr, cfg->momentum, cfg->weight_decay, cfg->l1, T.regular_steps, cfg->seed, (unsigned long long)T.step, NULL};
        if (T.be->profile) T.be->profile(T.e, v_train, &b, &h, stderr);
    }

    fprintf(stderr, "%s: training %s on %s (%d train, %d val, %d test), batch %d, %d epochs, policy %s, back end %s\n", rt_prog,
            m->name, strcmp(cfg->data, "synthetic") == 0 ? "synthetic data" : o->data_dir, tr->n, T.data.val.n, T.data.test.n,
            T.batch, cfg->epochs, rt_policy_name(cfg->policy), T.be->target);

    double run_t0 = rt_now();
    long run_samples = 0;
    double run_train_time = 0;
    bool stop = false;
    while (T.epoch < cfg->epochs && !stop) {
        const int ep = T.epoch;
        for (int i = 0; i < tr->n; i++) perm[i] = i;
        for (int i = tr->n - 1; i > 0; i--) {
            int j = (int)rt_rng_below(&T.shuffle, (uint32_t)i + 1);
            int t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        double loss_sum = 0, t_epoch = rt_now(), t_train = 0, last_print = 0;
        long right = 0, seen = 0;
        for (int s = 0; s < steps_per_epoch; s++) {
            int B = tr->n - s * T.batch < T.batch ? tr->n - s * T.batch : T.batch;
            rt_batch b;
            rt_gather(&T, tr, perm + (size_t)s * T.batch, B, &b);
            int kind = cfg->policy == RT_POLICY_RUBI ? RT_STEP_REGULAR : rt_controller_next(&T.ctl, ep);
            int v = cfg->policy == RT_POLICY_RUBI ? v_rubi : kind == RT_STEP_REGULAR ? v_train : v_rebal[kind];
            rt_hyper h = {T.lr, cfg->momentum, cfg->weight_decay, cfg->l1, T.regular_steps, cfg->seed, (unsigned long long)T.step,
                          kind == RT_STEP_REGULAR ? NULL : mask[kind]};
            rt_result r;
            double t0 = rt_now();
            T.be->train(T.e, v, &b, &h, &r);
            t_train += rt_now() - t0;
            if (!isfinite(r.loss)) {
                fflush(T.steps);
                fflush(T.metrics);
                rt_die("the loss is %s at epoch %d, step %ld (policy %s, learning rate %g); training stopped. "
                       "The last good checkpoint is %s/last.ckpt%s. Try a lower learning rate (--lr).",
                       isnan(r.loss) ? "NaN" : "infinite", ep + 1, T.step, rt_policy_name(cfg->policy), T.lr, o->out_dir,
                       T.epoch > 0 ? "" : " (none yet: it is written after the first epoch)");
            }
            T.kind_count[kind == RT_STEP_REGULAR ? 0 : 1 + kind]++;
            if (kind == RT_STEP_REGULAR) {
                rt_speed_add(&T.speed, m, r.norms);
                T.regular_steps++;
                if (cfg->policy != RT_POLICY_RUBI) rt_controller_after_regular(&T.ctl, ep, &T.speed);
            }
            loss_sum += r.loss * B;
            seen += B;
            for (int k = 0; k < B; k++) {
                /* Training accuracy of the prediction: the mean of the branch logits. */
                int best = 0;
                double bv = -INFINITY;
                for (int c = 0; c < m->classes; c++) {
                    double z = 0;
                    for (int br = 0; br < m->nbranches; br++) z += r.logits[br][(size_t)k * m->classes + c];
                    if (z > bv) { bv = z; best = c; }
                }
                right += best == b.y[k];
            }
            char kb[32];
            fprintf(T.steps, "%ld,%d,%s,%.6g", T.step, ep + 1, cfg->policy == RT_POLICY_RUBI ? "rubi" : kind_name(m, kind, kb), r.loss);
            for (int k = 0; k < m->nbranches; k++) fprintf(T.steps, ",%.6g", T.speed.s[k]);
            fprintf(T.steps, ",%.6g\n", T.speed.d_speed);
            T.step++;
            if (tty && (rt_now() - last_print > 0.25 || s == steps_per_epoch - 1)) {
                last_print = rt_now();
                double sps = seen / (t_train > 0 ? t_train : 1e-9);
                double left = (double)(steps_per_epoch - s - 1) * T.batch + (double)(cfg->epochs - ep - 1) * tr->n;
                char eta[32];
                fmt_eta(eta, sizeof eta, left / (sps > 0 ? sps : 1));
                fprintf(stderr, "\repoch %d/%d  step %d/%d  loss %.4f  %.0f samples/s  ETA %s   ", ep + 1, cfg->epochs, s + 1,
                        steps_per_epoch, loss_sum / seen, sps, eta);
            }
        }
        if (tty) fputc('\n', stderr);
        double train_loss = loss_sum / seen, train_acc = (double)right / seen;
        double sps = seen / (t_train > 0 ? t_train : 1e-9);
        run_samples += seen;
        run_train_time += t_train;
        Score val = rt_evaluate(&T, &T.data.val, v_eval), test = rt_evaluate(&T, &T.data.test, v_eval);
        T.epoch++;
        /* Best validation accuracy: keep its weights and test accuracy. */
        bool best = val.acc > T.best_val;
        if (best) {
            T.best_val = val.acc;
            T.best_test = test.acc;
            T.best_epoch = T.epoch;
            T.best_d_speed = T.speed.d_speed;
            for (int k = 0; k < m->nbranches; k++) T.best_branch_test[k] = test.branch[k];
        }
        /* Schedule and stopping options (§2). */
        if (cfg->plateau_patience > 0) {
            if (train_loss < T.plateau_best) {
                T.plateau_best = train_loss;
                T.plateau_stale = 0;
            } else if (++T.plateau_stale >= cfg->plateau_patience) {
                T.lr *= cfg->plateau_factor;
                T.plateau_stale = 0;
                fprintf(stderr, "%s: no lower training loss for %d epochs: learning rate now %g\n", rt_prog, cfg->plateau_patience, T.lr);
            }
        }
        if (train_acc >= 1.0) T.perfect_epochs++;
        if (cfg->stop_perfect > 0 && T.perfect_epochs >= cfg->stop_perfect) stop = true;
        T.samples_per_s = run_samples / (run_train_time > 0 ? run_train_time : 1e-9);

        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "epoch", T.epoch);
        cJSON_AddNumberToObject(j, "train_loss", train_loss);
        cJSON_AddNumberToObject(j, "train_acc", train_acc);
        cJSON_AddNumberToObject(j, "val_loss", val.loss);
        cJSON_AddNumberToObject(j, "val_acc", val.acc);
        cJSON_AddNumberToObject(j, "test_acc", test.acc);
        double vb[RT_MAXB], tb[RT_MAXB], sk[RT_MAXB];
        for (int k = 0; k < m->nbranches; k++) {
            vb[k] = val.branch[k];
            tb[k] = test.branch[k];
            sk[k] = isfinite(T.speed.s[k]) ? T.speed.s[k] : 0;
        }
        cJSON_AddItemToObject(j, "val_branch_acc", cJSON_CreateDoubleArray(vb, m->nbranches));
        cJSON_AddItemToObject(j, "test_branch_acc", cJSON_CreateDoubleArray(tb, m->nbranches));
        if (isfinite(T.speed.d_speed)) {
            cJSON_AddItemToObject(j, "s", cJSON_CreateDoubleArray(sk, m->nbranches));
            cJSON_AddNumberToObject(j, "d_speed", T.speed.d_speed);
        }
        double kc[RT_MAXB + 1];
        for (int k = 0; k <= m->nbranches; k++) kc[k] = (double)T.kind_count[k];
        cJSON_AddItemToObject(j, "steps_by_kind", cJSON_CreateDoubleArray(kc, m->nbranches + 1));
        cJSON_AddNumberToObject(j, "lr", T.lr);
        cJSON_AddNumberToObject(j, "samples_per_s", sps);
        cJSON_AddNumberToObject(j, "epoch_time_s", rt_now() - t_epoch);
        char *line = cJSON_PrintUnformatted(j);
        fprintf(T.metrics, "%s\n", line);
        free(line);
        cJSON_Delete(j);
        fflush(T.metrics);
        fflush(T.steps);

        fprintf(stderr, "epoch %d/%d: loss %.4f  train %.4f  val %.4f  test %.4f  (", T.epoch, cfg->epochs, train_loss, train_acc,
                val.acc, test.acc);
        for (int k = 0; k < m->nbranches; k++) fprintf(stderr, "%s%s %.4f", k ? ", " : "", m->branches[k], test.branch[k]);
        fprintf(stderr, ")  %.0f samples/s%s\n", sps, best ? "  *best" : "");

        T.be->read(T.e, RT_ARENA_PARAMS, T.params);
        T.be->read(T.e, RT_ARENA_MOMENTUM, T.mom);
        T.be->read(T.e, RT_ARENA_STATES, T.states);
        if (best) {
            memcpy(T.best_params, T.params, sizeof(float) * np);
            memcpy(T.best_states, T.states, sizeof(float) * ns);
            rt_run_save(&T, "best.ckpt", T.params, T.states);
        }
        rt_run_save(&T, "last.ckpt", T.params, T.states);
        if (stop) fprintf(stderr, "%s: 100%% training accuracy for %d epochs: stopping (early_stop perfect)\n", rt_prog, T.perfect_epochs);
    }
    (void)run_t0;
    fclose(T.steps);
    fclose(T.metrics);

    /* The diagnostic of §3 on the best checkpoint. */
    Util u = {0};
    if (T.best_epoch >= 0) {
        T.be->write(T.e, RT_ARENA_PARAMS, T.best_params);
        T.be->write(T.e, RT_ARENA_STATES, T.best_states);
        u = rt_utilization(&T);
    }
    cJSON *sj = cJSON_CreateObject();
    cJSON_AddStringToObject(sj, "model", m->name);
    cJSON_AddNumberToObject(sj, "test_acc", T.best_test);
    cJSON_AddNumberToObject(sj, "val_acc", T.best_val);
    cJSON_AddItemToObject(sj, "branch_test_acc", cJSON_CreateDoubleArray(T.best_branch_test, m->nbranches));
    cJSON *bn = cJSON_CreateArray();
    for (int k = 0; k < m->nbranches; k++) cJSON_AddItemToArray(bn, cJSON_CreateString(m->branches[k]));
    cJSON_AddItemToObject(sj, "branches", bn);
    cJSON_AddNumberToObject(sj, "best_epoch", T.best_epoch);
    cJSON_AddNumberToObject(sj, "epochs", T.epoch);
    cJSON_AddNumberToObject(sj, "samples_per_s", T.samples_per_s);
    if (isfinite(T.best_d_speed)) cJSON_AddNumberToObject(sj, "d_speed", T.best_d_speed);
    if (isfinite(T.speed.d_speed)) cJSON_AddNumberToObject(sj, "d_speed_last", T.speed.d_speed);
    if (u.ok) {
        cJSON_AddItemToObject(sj, "util", rt_utilization_json(m, &u));
        cJSON_AddNumberToObject(sj, "d_util", u.d_util);
    }
    cJSON_AddStringToObject(sj, "policy", rt_policy_name(cfg->policy));
    cJSON_AddNumberToObject(sj, "lr", cfg->lr);
    cJSON_AddNumberToObject(sj, "seed", (double)cfg->seed);
    cJSON_AddNumberToObject(sj, "batch", T.batch);
    double kc[RT_MAXB + 1];
    for (int k = 0; k <= m->nbranches; k++) kc[k] = (double)T.kind_count[k];
    cJSON_AddItemToObject(sj, "steps_by_kind", cJSON_CreateDoubleArray(kc, m->nbranches + 1));
    cJSON_AddStringToObject(sj, "backend", T.be->target);
    char *txt = cJSON_Print(sj);
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/summary.json", o->out_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = rt_fopen(tmp, "w");
    fprintf(f, "%s\n", txt);
    if (fclose(f) != 0 || rename(tmp, path) != 0) rt_die("cannot write %s: %s", path, strerror(errno));
    printf("%s\n", txt);
    free(txt);
    cJSON_Delete(sj);

    T.be->destroy(T.e);
    rt_data_free(&T.data);
    for (int k = 0; k < m->nbranches; k++) free(mask[k]);
    for (int i = 0; i < m->ninputs; i++) free(T.bx[i]);
    free(T.by);
    free(perm);
    free(T.params);
    free(T.mom);
    free(T.states);
    free(T.best_params);
    free(T.best_states);
    return 0;
}
