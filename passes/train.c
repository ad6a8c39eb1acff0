/* train.c — the `train` section: data binding, optimizer, schedule and the
 * balancing policy, checked key by key into an rt_config that the generated
 * program starts from (its command line can override each value), and
 * printed back for mmc info.
 *
 * What each key takes comes from the tables of common/mmnet_shared.h: a
 * plain key sets one field; the others choose a construct (RT_POLICIES,
 * RT_DATA_SOURCES, ...) whose options are fields, with their types,
 * defaults and ranges. Only what is particular to one construct is written
 * here. */
#include <stdio.h>
#include <string.h>

#include "passes.h"

typedef struct {
    const char *key;
    const char *form;          /* shown when a required key is missing */
    bool required;             /* no silent defaults for what decides the experiment */
    int field;                 /* a plain value: the field it sets */
    const rt_choice *choices;  /* otherwise the constructs it chooses among */
    int nchoices;
    int selector;              /* the field that records the choice (a name or an index), or none */
} TrainKey;

static const TrainKey train_keys[] = {
    {"data", "data colored_gray(variance=0.02, val=5000)", true, 0, rt_data_sources, RT_DATA_COUNT, RT_CFG_data},
    {"optimizer", "optimizer sgd(lr=0.01, momentum=0.9, weight_decay=0, l1=0)", true, 0, rt_optimizers, RT_OPTIMIZER_COUNT, RT_CFG_optimizer},
    {"batch", "batch 128", true, RT_CFG_batch, NULL, 0, 0},
    {"epochs", "epochs 20", true, RT_CFG_epochs, NULL, 0, 0},
    {"seed", "seed 1", false, RT_CFG_seed, NULL, 0, 0},
    {"schedule", "schedule plateau(factor=0.3, patience=10)", false, 0, rt_schedules, RT_SCHEDULE_COUNT, RT_CFG_schedule},
    {"early_stop", "early_stop perfect(epochs=5)", false, 0, rt_early_stops, RT_STOP_COUNT, 0},
    {"policy", "policy guided(alpha=0.1, window=5, warmup=1)", false, 0, rt_policies, RT_POLICY_COUNT, RT_CFG_policy},
    {"augment", "augment [flip, crop(256)]", false, 0, NULL, 0, 0}, /* a list of its own: augment() */
};

static const rt_field *field(int id) { return &rt_config_fields[id]; }

/* The construct that a key's value names. */
static int expect_call(const AstExpr *v, const TrainKey *k) {
    const char *allowed[32];
    for (int i = 0; i < k->nchoices; i++) allowed[i] = k->choices[i].name;
    int n = k->nchoices;
    if (k->choices == rt_schedules) allowed[n++] = rt_lr_warmup[0].name; /* index n - 1: the warm-up */
    if (v->kind != AX_CALL)
        error_at(v->loc, "'%s' expects one of %s", k->key, join_names(allowed, n, " or "));
    for (int i = 0; i < n; i++)
        if (strcmp(v->s, allowed[i]) == 0) return i;
    const char *near = nearest_name(v->s, allowed, n);
    if (near) error_at(v->loc, "unknown %s '%s'; did you mean '%s'?", k->key, v->s, near);
    error_at(v->loc, "unknown %s '%s' (allowed: %s)", k->key, v->s, join_names(allowed, n, " and "));
}

static long long int_value(const AstItem *it, const rt_field *f) {
    const AstExpr *v = it->val;
    long long x;
    if (v->kind == AX_INT) x = v->ival;
    else if (v->kind == AX_NEG && v->l->kind == AX_INT) x = -v->l->ival;
    else error_at(v->loc, "'%s' expects an integer", it->key);
    if (!rt_field_in_range(f, (double)x))
        error_at(v->loc, "'%s' is %lld; it must be between %lld and %lld", it->key, x, (long long)f->lo, (long long)f->hi);
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

/* The signature of construct ch: its options, typed by their fields' kinds.
 * Returns their number; the caller may add options of its own after them. */
static bool is_bool(const rt_field *f) { return f->kind == RT_KIND_ENUM && strcmp(f->names, "false|true") == 0; }

static int construct_sig(const rt_choice *ch, Signature *sig) {
    static const char type[] = {[RT_KIND_FLOAT] = 'f', [RT_KIND_INT] = 'i', [RT_KIND_U64] = 'i', [RT_KIND_STR] = 's',
                                [RT_KIND_ENUM] = 'n', [RT_KIND_BRANCH] = 'n', [RT_KIND_POLICY] = 'n'};
    memset(sig, 0, sizeof *sig);
    sig->what = arena_printf(mm_arena, "'%s'", ch->name);
    int n = 0;
    for (; n < RT_MAXOPTS && ch->opts[n]; n++) {
        const rt_field *f = field(ch->opts[n]);
        sig->spec[n] = (ArgSpec){f->key, f->list ? 'l' : f->pair ? 'p' : is_bool(f) ? 'b' : type[f->kind], ""};
    }
    return n;
}

/* A list option's value as the configuration keeps it: items separated by
 * ',', inner lists by ';' ([[0.5], [0.4, 0.4]] is "0.5;0.4,0.4"). */
static void list_text(const Signature *sig, const rt_field *f, const Val *v, char *out) {
    char buf[RT_STR_MAX * 2] = "";
    size_t n = 0;
    bool nested = v->items[0].k == V_LIST;
    for (int i = 0; i < v->n; i++) {
        const Val *x = &v->items[i];
        if ((x->k == V_LIST) != nested)
            error_at(x->loc, "%s: '%s' mixes lists and values; give [a, b] or [[a], [b, c]]", sig->what, f->key);
        const Val *items = nested ? x->items : x;
        int m = nested ? x->n : 1;
        for (int j = 0; j < m && n < sizeof buf - 64; j++) {
            const Val *y = &items[j];
            if (j > 0 || (!nested && i > 0)) buf[n++] = ',';
            if (y->k == V_NAME) n += snprintf(buf + n, sizeof buf - n, "%s", y->s);
            else if (y->k == V_INT) n += snprintf(buf + n, sizeof buf - n, "%lld", y->i);
            else n += snprintf(buf + n, sizeof buf - n, "%.9g", y->f);
        }
        if (nested && i + 1 < v->n) buf[n++] = ';';
        buf[n] = '\0';
    }
    if (n >= f->size) error_at(v->loc, "%s: '%s' is too long", sig->what, f->key);
    memcpy(out, buf, n + 1);
}

/* augment [flip, flip(together=true), crop(256)]: the training
 * augmentation, a list of its own. */
static void augment(const AstItem *it, rt_config *c) {
    const AstExpr *v = it->val;
    if (v->kind != AX_LIST) error_at(v->loc, "'augment' expects a list: augment [flip, crop(256)]");
    for (int i = 0; i < v->nitems; i++) {
        const AstExpr *e = v->items[i];
        if (e->kind != AX_CALL) error_at(e->loc, "'augment' takes flip and crop(SIZE): augment [flip, crop(256)]");
        if (strcmp(e->s, "flip") == 0) {
            Signature sig = {.what = "'flip'", .spec = {{"together", 'b', "false"}}};
            Val val[ARGS_MAX];
            bool given[ARGS_MAX];
            args_options(&sig, &e->args, e->loc, val, given);
            if (c->flip) error_at(e->loc, "'flip' is given twice");
            c->flip = given[0] && val[0].i ? RT_FLIP_SAME : RT_FLIP_OWN;
        } else if (strcmp(e->s, "crop") == 0) {
            Signature sig = {.what = "'crop'", .spec = {{"size", 'i', ""}}};
            Val val[ARGS_MAX];
            bool given[ARGS_MAX];
            args_options(&sig, &e->args, e->loc, val, given);
            if (!given[0]) error_at(e->loc, "'crop' needs the size images are read at: crop(256)");
            const rt_field *f = field(RT_CFG_crop);
            if (!rt_field_in_range(f, (double)val[0].i))
                error_at(val[0].loc, "'crop': the size is %lld; it must be between %g and %g", val[0].i, f->lo, f->hi);
            if (c->crop) error_at(e->loc, "'crop' is given twice");
            c->crop = (int)val[0].i;
        } else {
            static const char *const known[] = {"flip", "crop"};
            const char *near = nearest_name(e->s, known, 2);
            if (near) error_at(e->loc, "unknown augmentation '%s'; did you mean '%s'?", e->s, near);
            error_at(e->loc, "unknown augmentation '%s' (allowed: flip and crop)", e->s);
        }
    }
}

/* A number for field f (called `what` in messages), checked against its range. */
static void store_number(rt_config *c, const Signature *sig, const rt_field *f, const Val *v, double x, const char *what) {
    if (!rt_field_in_range(f, x)) {
        if (f->hi_open && x == f->hi) error_at(v->loc, "%s: '%s' must be below %.15g", sig->what, what, f->hi);
        error_at(v->loc, "%s: '%s' is %.15g; it must be %s %.15g and %s %.15g", sig->what, what, x, f->lo_open ? "above" : "at least",
                 f->lo, f->hi_open ? "below" : "at most", f->hi);
    }
    rt_field_set(c, f, x);
}

/* Store construct ch's options (args_options' values) in the configuration:
 * the given ones checked against their fields' ranges, the others at their
 * defaults; a required one missing is an error at the call. */
static void store_options(IrProgram *p, const rt_choice *ch, const Signature *sig, const Val *v, const bool *given,
                          SrcLoc call) {
    rt_config *c = &p->cfg;
    for (int i = 0; i < RT_MAXOPTS && ch->opts[i]; i++)
        if (!given[i] && field(ch->opts[i])->needs) error_at(call, "%s needs %s", sig->what, field(ch->opts[i])->needs);
    for (int i = 0; i < RT_MAXOPTS && ch->opts[i]; i++) {
        const rt_field *f = field(ch->opts[i]);
        if (!given[i]) {
            if (f->kind != RT_KIND_STR) rt_field_set(c, f, f->has_odflt ? f->odflt : f->dflt);
            if (f->pair) rt_field_set(c, &f[1], f[1].dflt);
            continue;
        }
        switch (f->kind) {
        case RT_KIND_STR:
            if (f->list) {
                list_text(sig, f, &v[i], rt_field_strbuf(c, f));
                break;
            }
            if (strlen(v[i].s) >= f->size) error_at(v[i].loc, "%s: '%s' is too long (the limit is %zu characters)", sig->what, f->key, f->size - 1);
            snprintf(rt_field_strbuf(c, f), f->size, "%s", v[i].s);
            break;
        case RT_KIND_ENUM: {
            int k = v[i].k == V_BOOL ? (int)v[i].i : rt_name_index(f->names, v[i].s);
            if (k < 0) error_at(v[i].loc, "'%s' is %s", f->key, f->choices ? f->choices : f->names);
            rt_field_set(c, f, k);
            break;
        }
        case RT_KIND_BRANCH: rt_field_set(c, f, branch_index(p, v[i].s, v[i].loc)); break;
        default:
            if (f->pair) { /* betas=[0.9, 0.999]: this field and the next */
                const Val *x = &v[i]; /* two numbers (args_options checked) */
                for (int j = 0; j < 2; j++)
                    store_number(c, sig, &f[j], &x->items[j], x->items[j].k == V_INT ? (double)x->items[j].i : x->items[j].f,
                                 arena_printf(mm_arena, "%s[%d]", f->key, j));
                break;
            }
            store_number(c, sig, f, &v[i], f->kind == RT_KIND_FLOAT ? v[i].f : (double)v[i].i, f->key);
        }
    }
}

/* A construct's call: its options checked and stored (store_options). */
static void construct(IrProgram *p, const rt_choice *ch, const AstExpr *call, Val *val, bool *given) {
    Signature sig;
    construct_sig(ch, &sig);
    args_options(&sig, &call->args, call->loc, val, given);
    store_options(p, ch, &sig, val, given, call->loc);
}

/* The schedule's value: X(...), warmup(...) (then a constant rate), or
 * [warmup(...), X(...)]; the warm-up's call into *warm (NULL: none) and the
 * schedule's into *main (NULL: constant). */
static void schedule_calls(const AstExpr *v, const AstExpr **warm, const AstExpr **main) {
    *warm = NULL;
    *main = v;
    if (v->kind == AX_LIST) {
        if (v->nitems != 2 || v->items[0]->kind != AX_CALL || strcmp(v->items[0]->s, rt_lr_warmup[0].name) != 0)
            error_at(v->loc, "a list of schedules is a warm-up and the schedule after it: schedule [warmup(epochs=1), cosine(min_lr=0)]");
        *warm = v->items[0];
        *main = v->items[1];
        if ((*main)->kind == AX_CALL && strcmp((*main)->s, rt_lr_warmup[0].name) == 0)
            error_at((*main)->loc, "'warmup' is given twice; give it once, in front of the schedule");
    } else if (v->kind == AX_CALL && strcmp(v->s, rt_lr_warmup[0].name) == 0) {
        *warm = v;
        *main = NULL;
    }
}

/* schedule ...: the warm-up and the schedule (RT_SCHEDULES) chosen. */
static void schedule(IrProgram *p, const AstItem *it, const TrainKey *key) {
    rt_config *c = &p->cfg;
    const AstExpr *warm, *main;
    schedule_calls(it->val, &warm, &main);
    Val val[ARGS_MAX];
    bool given[ARGS_MAX];
    if (warm) {
        construct(p, rt_lr_warmup, warm, val, given);
        if (given[0] == given[1])
            error_at(warm->loc, given[0] ? "'warmup' takes epochs or steps, not both" : "'warmup' needs its length: warmup(epochs=1) or warmup(steps=500)");
    }
    if (!main) return;
    int ci = expect_call(main, key);
    mm_assert(ci < RT_SCHEDULE_COUNT); /* not warmup: schedule_calls took it */
    c->schedule = ci;
    construct(p, &rt_schedules[ci], main, val, given);
}

/* After the whole section: a warm-up shorter than the run, a cosine that
 * ends below where it starts. */
static void check_schedule(const IrProgram *p, const AstItem *it) {
    const rt_config *c = &p->cfg;
    const AstExpr *warm, *main;
    schedule_calls(it->val, &warm, &main);
    if (warm && c->lr_warmup_epochs >= c->epochs)
        error_at(warm->loc, "'warmup(epochs=%d)' is as long as the run or longer (epochs %d); the warm-up must end before the run does",
                 c->lr_warmup_epochs, c->epochs);
    if (main && c->schedule == RT_SCHEDULE_COSINE && !(c->min_lr < c->opt.lr))
        error_at(main->loc, "'cosine': 'min_lr' is %g, not below the learning rate it starts from (lr=%g)", c->min_lr, c->opt.lr);
}

/* What the data and augmentation read must fit the model's inputs: one view
 * or modality per input, crops and frame windows no smaller than what they
 * cut. */
static void check_data_shapes(const IrProgram *p, const AstItem *data, const AstItem *aug) {
    const rt_config *c = &p->cfg;
    int ni = p->inputs.n;
    for (int f = 0; f < 2; f++) {
        const char *text = f ? c->modalities : c->views;
        if (!text[0]) continue;
        int n = 1;
        for (const char *q = text; *q; q++) n += *q == ',';
        if (n != ni)
            error_at(data->val->loc, "'%s' lists %d for the model's %d inputs; give one per input, in the inputs' order",
                     f ? "modalities" : "views", n, ni);
    }
    for (int i = 0; i < ni; i++) {
        const IrInput *in = IR_INPUT(p, i);
        if (c->crop && in->ndim >= 3 && (c->crop < in->shape[in->ndim - 2] || c->crop < in->shape[in->ndim - 1]))
            error_at(aug->val->loc, "'crop(%d)' reads images at %dx%d, smaller than input '%s' (%dx%d), which it cuts from them", c->crop,
                     c->crop, c->crop, in->name, in->shape[in->ndim - 2], in->shape[in->ndim - 1]);
        if (c->frames && in->ndim == 4 && c->frames < in->shape[1])
            error_at(data->val->loc, "'frames=%d' reads fewer frames than input '%s' holds (%d)", c->frames, in->name, in->shape[1]);
    }
}

void lower_train(const AstTrain *t, IrProgram *p) {
    rt_config *c = &p->cfg;
    rt_config_defaults(c);
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
        const TrainKey *key = &train_keys[k];
        if (strcmp(key->key, "augment") == 0) {
            augment(it, c);
            continue;
        }
        if (!key->choices) {
            rt_field_set(c, field(key->field), (double)int_value(it, field(key->field)));
            continue;
        }
        if (key->choices == rt_schedules) {
            schedule(p, it, key);
            continue;
        }
        int ci = expect_call(it->val, key);
        const rt_choice *ch = &key->choices[ci];
        const AstExpr *v = it->val;
        if (key->selector && field(key->selector)->kind == RT_KIND_STR)
            snprintf(rt_field_strbuf(c, field(key->selector)), field(key->selector)->size, "%s", ch->name);
        else if (key->selector)
            rt_field_set(c, field(key->selector), ci);
        Signature sig;
        int n = construct_sig(ch, &sig);
        bool synthetic = key->choices == rt_data_sources && ci == RT_DATA_SYNTHETIC;
        mm_assert(n < ARGS_MAX);
        if (synthetic) sig.spec[n] = (ArgSpec){"classes", 'i', ""}; /* a mistake worth its own message */
        Val val[ARGS_MAX];
        bool given[ARGS_MAX];
        args_options(&sig, &v->args, v->loc, val, given);
        store_options(p, ch, &sig, val, given, v->loc);
        /* The data sources read from files hold out 20% of the training
         * set for validation unless told otherwise (the paper's split). */
        if (key->choices == rt_data_sources && ci >= RT_DATA_MULTIVIEW) {
            int iv = 0;
            while (ch->opts[iv] != RT_CFG_val) iv++;
            if (!given[iv]) c->val = 0.2f;
        }
        /* AdamW decays by PyTorch's default unless told otherwise. */
        if (key->choices == rt_optimizers && ci == RT_OPTIMIZER_ADAMW) {
            int iw = 0;
            while (ch->opts[iw] != RT_CFG_weight_decay) iw++;
            if (!given[iw]) c->opt.weight_decay = (float)RT_ADAMW_WEIGHT_DECAY;
        }
        if (synthetic) {
            c->val = (float)c->synth_test;
            if (given[n]) error_at(val[n].loc, "'synthetic' takes its classes from the branch heads");
        }
        if (key->choices == rt_policies) {
            if (ci == RT_POLICY_RUBI) p->rubi_branch = c->rubi_branch;
            if (ch->variant == RT_VAR_RUBI && p->branches.n < 2) error_at(v->loc, "'%s' needs two or more branches", ch->name);
            if (ci == RT_POLICY_RUBI && c->rubi_branch >= 0 && IR_BRANCH(p, c->rubi_branch)->headless)
                error_at(v->loc, "rubi masks the prediction with the bias branch's logits, and branch '%s' has no head of its own (no loss term)",
                         IR_BRANCH(p, c->rubi_branch)->name);
            if (ch->variant == RT_VAR_REBALANCE && !has_mmtm(p))
                error_at(v->loc, "'%s' re-balances through MMTM gates, and this model has no mmtm", ch->name);
            if (ci == RT_POLICY_OGM_GE && p->branches.n != 2)
                error_at(v->loc, "'%s' needs exactly two branches (it compares two modalities); this model has %d", ch->name, p->branches.n);
            if (ci == RT_POLICY_AGM && p->branches.n != 2)
                error_at(v->loc, "'%s' needs exactly two branches (its Shapley responses are those of two modalities); this model has %d",
                         ch->name, p->branches.n);
            if (ci == RT_POLICY_AGM && p->branches.n == 2 && IR_BRANCH(p, 0)->input == IR_BRANCH(p, 1)->input)
                error_at(v->loc, "'%s' zeroes each branch's input in turn, and branches '%s' and '%s' read the same input", ch->name,
                         IR_BRANCH(p, 0)->name, IR_BRANCH(p, 1)->name);
            if (ci == RT_POLICY_MMPARETO && p->heads.n == 0)
                error_at(v->loc, "'%s' integrates the gradient of a multi-modal loss (a fusion head's cross-entropy) with each "
                         "branch's uni-modal one, and this model has no fusion head: add one and a loss such as "
                         "ce(fused) + ce(a) + ce(b) (examples/cgmnist_late.mmnet)", ch->name);
            if (ci == RT_POLICY_MMPARETO)
                for (int b = 0; b < p->branches.n; b++)
                    if (IR_BRANCH(p, b)->headless)
                        error_at(v->loc, "'%s' needs every branch's own loss term, and the loss has no ce(%s) (a uni-modal head for it)",
                                 ch->name, IR_BRANCH(p, b)->name);
            if (ci == RT_POLICY_MODALITY_DROPOUT && p->inputs.n < 2)
                error_at(v->loc, "'%s' zeroes one of the inputs of each example, and this model has only one", ch->name);
        }
    }
    for (int k = 0; k < ARRAY_LEN(train_keys); k++)
        if (train_keys[k].required && !seen[k])
            error_at(t->loc, "the train section has no '%s'; add e.g.: %s", train_keys[k].key, train_keys[k].form);
    check_data_shapes(p, seen[0], seen[ARRAY_LEN(train_keys) - 1]);
    /* G-Blend's weights come from the losses on the held-out split. */
    if (c->policy == RT_POLICY_GBLEND && !(c->val > 0)) {
        const AstItem *data = NULL, *pol = NULL;
        for (int k = 0; k < ARRAY_LEN(train_keys); k++) {
            if (strcmp(train_keys[k].key, "data") == 0) data = seen[k];
            if (strcmp(train_keys[k].key, "policy") == 0) pol = seen[k];
        }
        diag_note_later(data->loc, "the data is read here");
        error_at(pol->val->loc, "gblend sets the loss weights from the losses on the validation split, and this run "
                 "holds out none (val=0); hold some out: data %s(val=5000)", c->data);
    }
    for (int k = 0; k < ARRAY_LEN(train_keys); k++)
        if (train_keys[k].choices == rt_schedules && seen[k]) check_schedule(p, seen[k]);
}

/* ---- mmc info ------------------------------------------------------------------ */
/* The construct of key k that the configuration holds; -1 when the key
 * shows nothing (no schedule, no early stop). */
static int chosen(const TrainKey *k, const rt_config *c) {
    if (k->choices == rt_data_sources) return rt_choice_find(rt_data_sources, RT_DATA_COUNT, c->data);
    if (k->choices == rt_policies) return c->policy;
    if (k->choices == rt_optimizers) return c->opt.optimizer;
    if (k->choices == rt_schedules) return c->schedule != RT_SCHEDULE_CONSTANT || c->lr_warmup_epochs || c->lr_warmup_steps ? c->schedule : -1;
    if (k->choices == rt_early_stops) return c->stop_perfect > 0 ? RT_STOP_PERFECT : -1;
    return 0;
}

/* A field's value as the .mmnet would write it. */
static const char *value_text(const IrProgram *p, const rt_field *f) {
    const rt_config *c = &p->cfg;
    double x = rt_field_get(c, f);
    char name[64];
    if (f->pair) return arena_printf(mm_arena, "[%g, %g]", x, rt_field_get(c, &f[1]));
    switch (f->kind) {
    case RT_KIND_FLOAT: return arena_printf(mm_arena, "%g", x);
    case RT_KIND_U64: return arena_printf(mm_arena, "%llu", (unsigned long long)x);
    case RT_KIND_STR:
        if (f->list) { /* "0.5;0.4,0.4" -> [[0.5], [0.4, 0.4]] */
            const char *t = rt_field_str(c, f);
            bool nested = strchr(t, ';') != NULL;
            const char *out = nested ? "[[" : "[";
            for (const char *q = t; *q; q++)
                out = *q == ',' ? arena_printf(mm_arena, "%s, ", out)
                    : *q == ';' ? arena_printf(mm_arena, "%s], [", out)
                                : arena_printf(mm_arena, "%s%c", out, *q);
            return arena_printf(mm_arena, "%s%s", out, nested ? "]]" : "]");
        }
        return arena_printf(mm_arena, "\"%s\"", rt_field_str(c, f));
    case RT_KIND_ENUM: return arena_printf(mm_arena, "%s", rt_name_at(f->names, (int)x, name, sizeof name));
    case RT_KIND_BRANCH: return IR_BRANCH(p, (int)x)->name;
    default: return arena_printf(mm_arena, "%d", (int)x);
    }
}

/* name(option=value, ...): a construct as the .mmnet would write it. */
static void print_call(FILE *out, const IrProgram *p, const rt_choice *ch) {
    fprintf(out, "%s", ch->name);
    int shown = 0;
    for (int i = 0; i < RT_MAXOPTS && ch->opts[i]; i++) {
        const rt_field *f = field(ch->opts[i]);
        if (f->kind == RT_KIND_STR && !rt_field_str(&p->cfg, f)[0]) continue; /* unset: the default */
        fprintf(out, "%s%s=%s", shown++ ? ", " : "(", f->key, value_text(p, f));
    }
    fprintf(out, "%s", shown ? ")" : "");
}

void train_print(FILE *out, const IrProgram *p) {
    const char *plain = NULL;
    for (int k = 0; k < ARRAY_LEN(train_keys); k++) {
        const TrainKey *key = &train_keys[k];
        if (strcmp(key->key, "augment") == 0) {
            const rt_config *c = &p->cfg;
            if (c->flip || c->crop)
                fprintf(out, "  %-10s [%s%s%s]\n", key->key, c->flip == RT_FLIP_SAME ? "flip(together=true)" : c->flip ? "flip" : "",
                        c->flip && c->crop ? ", " : "", c->crop ? arena_printf(mm_arena, "crop(%d)", c->crop) : "");
            continue;
        }
        if (!key->choices) { /* plain keys in a row share a line: batch 128, epochs 20, seed 1 */
            const char *kv = arena_printf(mm_arena, "%s %s", key->key, value_text(p, field(key->field)));
            plain = plain ? arena_printf(mm_arena, "%s, %s", plain, kv) : kv;
            if (k + 1 == ARRAY_LEN(train_keys) || !train_keys[k + 1].choices) continue;
            fprintf(out, "  %s\n", plain);
            plain = NULL;
            continue;
        }
        int ci = chosen(key, &p->cfg);
        if (ci < 0) continue;
        fprintf(out, "  %-10s ", key->key);
        const rt_config *c = &p->cfg;
        bool warm = key->choices == rt_schedules && (c->lr_warmup_epochs || c->lr_warmup_steps);
        if (warm) fprintf(out, "[warmup(%s=%d), ", c->lr_warmup_steps ? "steps" : "epochs", c->lr_warmup_steps ? c->lr_warmup_steps : c->lr_warmup_epochs);
        print_call(out, p, &key->choices[ci]);
        fprintf(out, "%s\n", warm ? "]" : "");
    }
    if (plain) fprintf(out, "  %s\n", plain);
}
