/* train.c — the `train` section: data binding, optimizer, schedule and the
 * balancing policy, checked key by key into an rt_config that the generated
 * program starts from (its command line can override each value). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "passes.h"

typedef struct {
    const char *key;
    const char *form;   /* shown in errors */
} TrainKey;

static const TrainKey train_keys[] = {
    {"data", "data colored_gray(variance=0.02, val=5000)"},
    {"optimizer", "optimizer sgd(lr=0.01, momentum=0.9, weight_decay=0, l1=0)"},
    {"batch", "batch 128"},
    {"epochs", "epochs 20"},
    {"seed", "seed 1"},
    {"schedule", "schedule plateau(factor=0.3, patience=10)"},
    {"early_stop", "early_stop perfect(epochs=5)"},
    {"policy", "policy guided(alpha=0.1, window=5, warmup=1)"},
};

/* A construct's options (args.c checks them): defaults preset in num/str. */
typedef struct {
    const char *key;
    char type;           /* 'f' number, 'i' integer, 's' string, 'n' name */
    double num;          /* result */
    const char *str;
    bool given;
    SrcLoc loc;
} Opt;

static void take_opts(const AstExpr *call, Opt *opts, int n, const char *what) {
    Signature sig = {what, {{0}}};
    for (int i = 0; i < n; i++) sig.spec[i] = (ArgSpec){opts[i].key, opts[i].type, ""};
    Val v[ARGS_MAX];
    bool given[ARGS_MAX];
    args_options(&sig, &call->args, call->loc, v, given);
    for (int i = 0; i < n; i++) {
        if (!given[i]) continue;
        Opt *o = &opts[i];
        o->given = true;
        o->loc = v[i].loc;
        if (o->type == 'f') o->num = v[i].f;
        else if (o->type == 'i') o->num = (double)v[i].i;
        else o->str = v[i].s;
    }
}

static double num_in(const Opt *o, double lo, double hi, bool lo_open, const char *what) {
    if (!o->given) return o->num;
    if (!(o->num >= lo) || (lo_open && o->num == lo) || o->num > hi || !isfinite(o->num))
        error_at(o->loc, "%s: '%s' is %.15g; it must be %s %.15g and at most %.15g", what, o->key, o->num, lo_open ? "above" : "at least",
                 lo, hi);
    return o->num;
}

static const AstExpr *expect_call(const AstItem *it, const char *const *allowed, int n) {
    const AstExpr *v = it->val;
    if (v->kind != AX_CALL)
        error_at(v->loc, "'%s' expects one of %s", it->key, join_names(allowed, n, " or "));
    for (int i = 0; i < n; i++)
        if (strcmp(v->s, allowed[i]) == 0) return v;
    const char *near = nearest_name(v->s, allowed, n);
    if (near) error_at(v->loc, "unknown %s '%s'; did you mean '%s'?", it->key, v->s, near);
    error_at(v->loc, "unknown %s '%s' (allowed: %s)", it->key, v->s, join_names(allowed, n, " and "));
}

static long long int_value(const AstItem *it, long long lo, long long hi) {
    const AstExpr *v = it->val;
    long long x;
    if (v->kind == AX_INT) x = v->ival;
    else if (v->kind == AX_NEG && v->l->kind == AX_INT) x = -v->l->ival;
    else error_at(v->loc, "'%s' expects an integer", it->key);
    if (x < lo || x > hi) error_at(v->loc, "'%s' is %lld; it must be between %lld and %lld", it->key, x, lo, hi);
    return x;
}

static int branch_index(const IrProgram *p, const char *name, SrcLoc loc) {
    const char *names[RT_MAXB];
    for (int i = 0; i < p->branches.n; i++) {
        names[i] = IR_BRANCH(p, i)->name;
        if (strcmp(names[i], name) == 0) return i;
    }
    error_at(loc, "no branch named '%s' (branches: %s)", name, join_names(names, p->branches.n, " and "));
}

static int has_mmtm(const IrProgram *p) {
    for (int i = 0; i < p->fusions.n; i++)
        if (IR_FUSION(p, i)->kind == FUSE_MMTM) return 1;
    return 0;
}

void lower_train(const AstTrain *t, IrProgram *p) {
    rt_config *c = &p->cfg;
    memset(c, 0, sizeof *c);
    c->seed = 1;
    c->val_size = 5000;
    c->variance = 0.02f;
    c->policy = RT_POLICY_VANILLA;
    c->alpha = 0.1f;
    c->window = 5;
    c->warmup = 1;
    c->rubi_branch = -1;
    const AstItem *seen[ARRAY_LEN(train_keys)] = {0};
    for (int i = 0; i < t->items.n; i++) {
        const AstItem *it = t->items.v[i];
        int k = -1;
        for (int j = 0; j < ARRAY_LEN(train_keys); j++)
            if (strcmp(train_keys[j].key, it->key) == 0) k = j;
        if (k < 0) {
            const char *names[ARRAY_LEN(train_keys)];
            for (int j = 0; j < ARRAY_LEN(train_keys); j++) names[j] = train_keys[j].key;
            const char *near = nearest_name(it->key, names, ARRAY_LEN(train_keys));
            if (near)
                error_at(it->loc, "unknown key '%s' in the train section; did you mean '%s'? (allowed: %s)", it->key, near,
                         join_names(names, ARRAY_LEN(train_keys), " and "));
            error_at(it->loc, "unknown key '%s' in the train section (allowed: %s)", it->key,
                     join_names(names, ARRAY_LEN(train_keys), " and "));
        }
        if (seen[k]) {
            diag_note_later(seen[k]->loc, "the first '%s' is here", it->key);
            error_at(it->loc, "'%s' is given twice in the train section", it->key);
        }
        seen[k] = it;
        const char *key = it->key;
        if (strcmp(key, "data") == 0) {
            static const char *const kinds[] = {"colored_gray", "synthetic"};
            const AstExpr *v = expect_call(it, kinds, 2);
            snprintf(c->data, sizeof c->data, "%s", v->s);
            if (strcmp(v->s, "colored_gray") == 0) {
                Opt o[] = {{"dir", 's', 0, "", 0, {0}}, {"variance", 'f', 0.02, 0, 0, {0}}, {"val", 'i', 5000, 0, 0, {0}}};
                take_opts(v, o, 3, "'colored_gray'");
                c->variance = (float)num_in(&o[1], 0, 1, false, "'colored_gray'");
                c->val_size = (int)num_in(&o[2], 0, 50000, false, "'colored_gray'");
                if (o[0].given && strlen(o[0].str) >= sizeof c->data_dir) error_at(o[0].loc, "the directory name is too long");
                if (o[0].given) snprintf(c->data_dir, sizeof c->data_dir, "%s", o[0].str);
            } else {
                Opt o[] = {{"train", 'i', 2048, 0, 0, {0}}, {"test", 'i', 512, 0, 0, {0}}, {"classes", 'i', 0, 0, 0, {0}}};
                take_opts(v, o, 3, "'synthetic'");
                c->synth_train = (int)num_in(&o[0], 1, 1e7, false, "'synthetic'");
                c->synth_test = (int)num_in(&o[1], 1, 1e7, false, "'synthetic'");
                c->val_size = c->synth_test;
                if (o[2].given) error_at(o[2].loc, "'synthetic' takes its classes from the branch heads");
            }
        } else if (strcmp(key, "optimizer") == 0) {
            static const char *const kinds[] = {"sgd"};
            const AstExpr *v = expect_call(it, kinds, 1);
            Opt o[] = {{"lr", 'f', 0, 0, 0, {0}}, {"momentum", 'f', 0, 0, 0, {0}}, {"weight_decay", 'f', 0, 0, 0, {0}},
                       {"l1", 'f', 0, 0, 0, {0}}};
            take_opts(v, o, 4, "'sgd'");
            if (!o[0].given) error_at(v->loc, "'sgd' needs a learning rate: sgd(lr=0.01)");
            c->opt.lr = (float)num_in(&o[0], 0, 100, true, "'sgd'");
            c->opt.momentum = (float)num_in(&o[1], 0, 1, false, "'sgd'");
            if (c->opt.momentum >= 1) error_at(o[1].loc, "'sgd': 'momentum' must be below 1");
            c->opt.weight_decay = (float)num_in(&o[2], 0, 1, false, "'sgd'");
            c->opt.l1 = (float)num_in(&o[3], 0, 1, false, "'sgd'");
        } else if (strcmp(key, "batch") == 0) {
            c->batch = (int)int_value(it, 1, 65536);
        } else if (strcmp(key, "epochs") == 0) {
            c->epochs = (int)int_value(it, 1, 100000);
        } else if (strcmp(key, "seed") == 0) {
            c->seed = (unsigned long long)int_value(it, 0, 2147483647LL);
        } else if (strcmp(key, "schedule") == 0) {
            static const char *const kinds[] = {"constant", "plateau"};
            const AstExpr *v = expect_call(it, kinds, 2);
            if (strcmp(v->s, "plateau") == 0) {
                Opt o[] = {{"factor", 'f', 0.3, 0, 0, {0}}, {"patience", 'i', 10, 0, 0, {0}}};
                take_opts(v, o, 2, "'plateau'");
                c->plateau_factor = (float)num_in(&o[0], 0, 1, true, "'plateau'");
                c->plateau_patience = (int)num_in(&o[1], 1, 100000, false, "'plateau'");
            } else {
                take_opts(v, NULL, 0, "'constant'");
            }
        } else if (strcmp(key, "early_stop") == 0) {
            static const char *const kinds[] = {"none", "perfect"};
            const AstExpr *v = expect_call(it, kinds, 2);
            if (strcmp(v->s, "perfect") == 0) {
                Opt o[] = {{"epochs", 'i', 5, 0, 0, {0}}};
                take_opts(v, o, 1, "'perfect'");
                c->stop_perfect = (int)num_in(&o[0], 1, 100000, false, "'perfect'");
            } else {
                take_opts(v, NULL, 0, "'none'");
            }
        } else if (strcmp(key, "policy") == 0) {
            static const char *const kinds[] = {"vanilla", "guided", "random", "rubi"};
            const AstExpr *v = expect_call(it, kinds, 4);
            const char *pol = v->s;
            if (strcmp(pol, "vanilla") == 0) {
                take_opts(v, NULL, 0, "'vanilla'");
                c->policy = RT_POLICY_VANILLA;
            } else if (strcmp(pol, "rubi") == 0) {
                Opt o[] = {{"bias", 'n', 0, 0, 0, {0}}};
                take_opts(v, o, 1, "'rubi'");
                if (!o[0].given) error_at(v->loc, "'rubi' needs its bias branch: rubi(bias=NAME)");
                c->policy = RT_POLICY_RUBI;
                c->rubi_branch = branch_index(p, o[0].str, o[0].loc);
                p->rubi_branch = c->rubi_branch;
                if (p->branches.n < 2) error_at(v->loc, "'rubi' needs two or more branches");
            } else {
                bool guided = strcmp(pol, "guided") == 0;
                Opt o[] = {{"alpha", 'f', 0.1, 0, 0, {0}}, {"window", 'i', 5, 0, 0, {0}}, {"warmup", 'i', 1, 0, 0, {0}},
                           {"update", 'n', 0, "all", 0, {0}}};
                /* random has no tolerance and no window (ALGORITHMS §6). */
                Opt *use = guided ? o : o + 2;
                take_opts(v, use, guided ? 4 : 2, guided ? "'guided'" : "'random'");
                c->policy = guided ? RT_POLICY_GUIDED : RT_POLICY_RANDOM;
                c->alpha = (float)num_in(&o[0], 0, 1e6, false, "'guided'");
                c->window = (int)num_in(&o[1], 1, 1000000, false, "'guided'");
                c->warmup = (int)num_in(&o[2], 0, 100000, false, guided ? "'guided'" : "'random'");
                if (strcmp(o[3].str, "all") == 0) c->rebalance_update = RT_REBAL_ALL;
                else if (strcmp(o[3].str, "own") == 0) c->rebalance_update = RT_REBAL_BRANCH;
                else error_at(o[3].loc, "'update' is 'all' (every parameter, the default) or 'own' (only the re-balanced branch's own parameters)");
                if (!has_mmtm(p))
                    error_at(v->loc, "'%s' re-balances through MMTM gates, and this model has no mmtm", pol);
            }
        }
    }
    /* Required keys: no silent defaults for what decides the experiment. */
    static const char *const required[] = {"data", "optimizer", "batch", "epochs"};
    for (int r = 0; r < ARRAY_LEN(required); r++) {
        int k = 0;
        while (strcmp(train_keys[k].key, required[r]) != 0) k++;
        if (!seen[k])
            error_at(t->loc, "the train section has no '%s'; add e.g.: %s", required[r], train_keys[k].form);
    }
}
