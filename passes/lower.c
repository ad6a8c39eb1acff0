/* lower.c — from the syntax tree to the forward IR graph.
 *
 * Two steps. Elaboration evaluates each branch's layer list: block calls are
 * expanded with their arguments bound, `repeat` is unrolled, arguments are
 * checked against each layer's signature by args.c (unknown keys, missing
 * values and wrong types are errors naming what is allowed). Construction then walks
 * the branches in lock-step, building their layers, and pauses a branch at
 * every label an MMTM needs until all the MMTM's inputs have been built; the
 * MMTM is built there and its gated outputs continue the branches.
 *
 * Shapes are not known here: pass_shapes infers them, sizes parameters and
 * reports impossible shapes at the layer that causes them. */
#include <math.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passes.h"

/* ---- built-in layers --------------------------------------------------------- */
typedef enum { L_CONV, L_CONV2D, L_CONV3D, L_BN, L_RELU, L_SIGMOID, L_MAXPOOL, L_AVGPOOL, L_GAP, L_FLATTEN, L_LINEAR, L_DROPOUT, L_SE } LayerKind;

typedef struct {
    const char *name;
    LayerKind kind;
    Signature sig;
} LayerDef;

#define CONV_SIG {{"out", 'i', NULL}, {"k", 'k', NULL}, {"s", 'k', "1"}, {"p", 'k', "0"}, {"bias", 'b', "true"}}
#define POOL_SIG {{"k", 'k', NULL}, {"s", 'k', ""}, {"p", 'k', "0"}}

static const LayerDef layer_defs[] = {
    {"conv", L_CONV, {"layer 'conv'", CONV_SIG}},
    {"conv2d", L_CONV2D, {"layer 'conv2d'", CONV_SIG}},
    {"conv3d", L_CONV3D, {"layer 'conv3d'", CONV_SIG}},
    {"batchnorm", L_BN, {"layer 'batchnorm'", {{"eps", 'f', "0.00001"}, {"momentum", 'f', "0.1"}}}},
    {"relu", L_RELU, {"layer 'relu'", {{0}}}},
    {"sigmoid", L_SIGMOID, {"layer 'sigmoid'", {{0}}}},
    {"maxpool", L_MAXPOOL, {"layer 'maxpool'", POOL_SIG}},
    {"avgpool", L_AVGPOOL, {"layer 'avgpool'", POOL_SIG}},
    {"gap", L_GAP, {"layer 'gap'", {{0}}}},
    {"flatten", L_FLATTEN, {"layer 'flatten'", {{0}}}},
    {"linear", L_LINEAR, {"layer 'linear'", {{"out", 'i', NULL}, {"bias", 'b', "true"}}}},
    {"dropout", L_DROPOUT, {"layer 'dropout'", {{"p", 'f', "0.5"}}}},
    {"se", L_SE, {"layer 'se'", {{"ratio", 'i', "4"}, {"gate_scale", 'f', "1.0"}}}},
};

static const LayerDef *find_layer(const char *name) {
    for (int i = 0; i < ARRAY_LEN(layer_defs); i++)
        if (strcmp(layer_defs[i].name, name) == 0) return &layer_defs[i];
    return NULL;
}

/* ---- elaboration ------------------------------------------------------------- */
typedef struct Item Item;
typedef struct {
    Item **v;
    int n;
} Items;

typedef enum { IT_LAYER, IT_RESIDUAL, IT_CONCAT, IT_LABEL } ItemKind;

struct Item {
    ItemKind kind;
    SrcLoc loc;
    const LayerDef *def;
    Val args[ARGS_MAX];
    const char *pname;   /* parameter name prefix: c.down1.conv2 */
    Items body, shortcut;
    bool has_shortcut;
    Items *paths;
    int npaths;
    const char *label;   /* IT_LABEL */
    SrcLoc call;         /* IT_LABEL: the outermost block call that placed it (or its own loc) */
    int pending;         /* IT_LABEL: fusions still waiting here */
    IrNode *node;        /* IT_LABEL on a branch's main line: the tensor there, once built */
};

static void items_push(Items *s, Item *it) {
    s->v = ast_grow(s->v, s->n, sizeof(Item *));
    s->v[s->n++] = it;
}

/* A naming scope: counts layers of each kind so parameters get stable,
 * readable names (c.conv1.weight, c.down2.shortcut.conv1.weight). */
typedef struct {
    const char *prefix;
    PtrVec names;   /* const char* */
    PtrVec counts;  /* (intptr_t) */
} Scope;

static const char *scope_next(Scope *s, const char *kind) {
    for (int i = 0; i < s->names.n; i++)
        if (strcmp(s->names.v[i], kind) == 0) {
            intptr_t c = (intptr_t)s->counts.v[i] + 1;
            s->counts.v[i] = (void *)c;
            return arena_printf(mm_arena, "%s.%s%ld", s->prefix, kind, (long)c);
        }
    vec_push(&s->names, (void *)kind);
    vec_push(&s->counts, (void *)(intptr_t)1);
    return arena_printf(mm_arena, "%s.%s1", s->prefix, kind);
}

typedef struct {
    const AstModel *m;
    IrProgram *p;
    const AstBlock *stack[64]; /* blocks being expanded */
    SrcLoc call0;              /* the outermost block call being expanded */
    int depth;
    long nitems;
    /* labels of the branch being elaborated */
    PtrVec labels;       /* Item* (top-level) */
    PtrVec nested;       /* Item* inside residual/concat paths */
} Elab;

static const AstBlock *find_block(const AstModel *m, const char *name) {
    for (int i = 0; i < m->blocks.n; i++) {
        const AstBlock *b = m->blocks.v[i];
        if (strcmp(b->name, name) == 0) return b;
    }
    return NULL;
}

static _Noreturn void unknown_layer(Elab *E, const AstExpr *call) {
    const char *names[ARRAY_LEN(layer_defs) + 64];
    int n = 0;
    for (int i = 0; i < ARRAY_LEN(layer_defs); i++) names[n++] = layer_defs[i].name;
    for (int i = 0; i < E->m->blocks.n && n < ARRAY_LEN(names); i++) names[n++] = ((AstBlock *)E->m->blocks.v[i])->name;
    const char *near = nearest_name(call->s, names, n);
    if (near) error_at(call->loc, "unknown layer or block '%s'; did you mean '%s'?", call->s, near);
    error_at(call->loc, "unknown layer or block '%s' (layers: %s; or define it with: block %s { ... })", call->s,
             join_names(names, ARRAY_LEN(layer_defs), " and "), call->s);
}

static void elab_seq(Elab *E, const AstSeq *seq, Env *env, Scope *sc, Items *out, bool top);

static void add_label(Elab *E, Items *out, const char *label, SrcLoc loc, bool top) {
    PtrVec *all[2] = {&E->labels, &E->nested};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < all[k]->n; i++) {
            Item *o = all[k]->v[i];
            if (strcmp(o->label, label) == 0) {
                SrcLoc here = E->depth ? E->call0 : loc;
                if (o->loc.line == loc.line && o->loc.col == loc.col) {
                    /* One label in a block's body, placed again by a second call. */
                    diag_note_later(o->call, "the first call that places '@%s' is here", label);
                    error_at(here, "label '@%s' is placed twice in this branch: the block that defines it is called twice", label);
                }
                diag_note_later(o->loc, "'@%s' is first defined here", label);
                error_at(loc, "label '@%s' is defined twice in this branch", label);
            }
        }
    Item *it = NEW(Item);
    it->kind = IT_LABEL;
    it->loc = loc;
    it->call = E->depth ? E->call0 : loc;
    it->label = label;
    items_push(out, it);
    vec_push(top ? &E->labels : &E->nested, it);
}

static void elab_block_call(Elab *E, const AstBlock *b, const AstExpr *call, Env *env, Scope *sc, Items *out, bool top) {
    for (int i = 0; i < E->depth; i++)
        if (E->stack[i] == b) {
            const char *chain = b->name;
            for (int j = i + 1; j < E->depth; j++) chain = arena_printf(mm_arena, "%s -> %s", chain, E->stack[j]->name);
            diag_note_later(b->loc, "block '%s' is defined here", b->name);
            if (i == E->depth - 1) error_at(call->loc, "block '%s' calls itself; blocks cannot be recursive", b->name);
            error_at(call->loc, "block '%s' calls itself through %s -> %s; blocks cannot be recursive", b->name, chain, b->name);
        }
    if (E->depth == ARRAY_LEN(E->stack)) error_at(call->loc, "blocks are nested too deeply (the limit is %d)", ARRAY_LEN(E->stack));
    /* Bind parameters: positional, then by name, then defaults. */
    Env *benv = NULL;
    Val vals[64] = {{0}};
    bool seen[64] = {0};
    if (b->nparams > 64) error_at(b->loc, "block '%s' has too many parameters (the limit is 64)", b->name);
    int pos = 0;
    for (int a = 0; a < call->args.n; a++) {
        const AstArg *arg = &call->args.v[a];
        int idx = -1;
        if (!arg->key) {
            if (pos >= b->nparams)
                error_at(arg->loc, "block '%s' takes %d argument%s", b->name, b->nparams, b->nparams == 1 ? "" : "s");
            idx = pos++;
        } else {
            for (int i = 0; i < b->nparams; i++)
                if (strcmp(b->params[i].name, arg->key) == 0) idx = i;
            if (idx < 0) {
                const char *names[64];
                for (int i = 0; i < b->nparams; i++) names[i] = b->params[i].name;
                if (b->nparams == 0) error_at(arg->loc, "block '%s' takes no arguments", b->name);
                error_at(arg->loc, "block '%s' has no parameter '%s' (parameters: %s)", b->name, arg->key,
                         join_names(names, b->nparams, " and "));
            }
        }
        if (seen[idx]) error_at(arg->loc, "block '%s': '%s' is given twice", b->name, b->params[idx].name);
        seen[idx] = true;
        vals[idx] = args_eval(arg->val, env);
    }
    for (int i = 0; i < b->nparams; i++) {
        if (!seen[i]) {
            if (!b->params[i].dflt) {
                diag_note_later(b->params[i].loc, "parameter '%s' is declared here", b->params[i].name);
                error_at(call->loc, "block '%s' needs a value for '%s'", b->name, b->params[i].name);
            }
            vals[i] = args_eval(b->params[i].dflt, NULL);
        }
        Env *e = NEW(Env);
        e->name = b->params[i].name;
        e->val = vals[i];
        e->next = benv;
        benv = e;
    }
    Scope inner = {scope_next(sc, b->name), {0}, {0}};
    if (E->depth == 0) E->call0 = call->loc;
    E->stack[E->depth++] = b;
    elab_seq(E, &b->body, benv, &inner, out, top);
    E->depth--;
}

static void elab_layer(Elab *E, const AstLayer *l, Env *env, Scope *sc, Items *out, bool top) {
    if (++E->nitems > 200000) error_at(l->loc, "the model is too large (more than 200000 layers)");
    switch (l->kind) {
    case AL_CALL: {
        const AstExpr *call = l->call;
        const LayerDef *def = find_layer(call->s);
        const AstBlock *blk = find_block(E->m, call->s);
        if (def && blk) {
            diag_note_later(blk->loc, "the block is defined here");
            error_at(call->loc, "'%s' is both a built-in layer and a block; rename the block", call->s);
        }
        if (blk) {
            elab_block_call(E, blk, call, env, sc, out, top);
        } else if (def) {
            Item *it = NEW(Item);
            it->kind = IT_LAYER;
            it->loc = call->loc;
            it->def = def;
            args_match(&def->sig, &call->args, env, call->loc, it->args, NULL);
            const char *kind = def->kind == L_BN ? "bn" : def->kind == L_CONV2D || def->kind == L_CONV3D ? "conv" : def->name;
            it->pname = scope_next(sc, kind);
            items_push(out, it);
        } else {
            unknown_layer(E, call);
        }
        break;
    }
    case AL_REPEAT: {
        Val n = args_eval(l->count, env);
        if (n.k == V_NAME) args_unknown_name(&n, env);
        if (n.k != V_INT) error_at(l->count->loc, "'repeat' needs an integer count, not %s", args_val_text(&n));
        if (n.i < 1) error_at(l->count->loc, "'repeat' needs a count of at least 1, not %lld", n.i);
        if (n.i > 10000) error_at(l->count->loc, "'repeat %lld' is too many (the limit is 10000)", n.i);
        for (long long i = 0; i < n.i; i++) elab_seq(E, &l->body, env, sc, out, top);
        break;
    }
    case AL_RESIDUAL: {
        Item *it = NEW(Item);
        it->kind = IT_RESIDUAL;
        it->loc = l->loc;
        it->has_shortcut = l->has_shortcut;
        elab_seq(E, &l->body, env, sc, &it->body, false);
        if (l->has_shortcut) {
            Scope sh = {scope_next(sc, "shortcut"), {0}, {0}};
            elab_seq(E, &l->shortcut, env, &sh, &it->shortcut, false);
        }
        if (it->body.n == 0) error_at(l->loc, "'residual' needs at least one layer in its main path");
        items_push(out, it);
        break;
    }
    case AL_CONCAT: {
        Item *it = NEW(Item);
        it->kind = IT_CONCAT;
        it->loc = l->loc;
        it->npaths = l->npaths;
        it->paths = NEWN(Items, l->npaths);
        if (l->npaths > IR_MAXSRC) error_at(l->loc, "'concat' joins at most %d paths", IR_MAXSRC);
        for (int i = 0; i < l->npaths; i++) {
            Scope ps = {scope_next(sc, "path"), {0}, {0}};
            elab_seq(E, &l->paths[i], env, &ps, &it->paths[i], false);
        }
        items_push(out, it);
        break;
    }
    }
    if (l->label) add_label(E, out, l->label, l->label_loc, top);
}

static void elab_seq(Elab *E, const AstSeq *seq, Env *env, Scope *sc, Items *out, bool top) {
    for (int i = 0; i < seq->n; i++) elab_layer(E, seq->v[i], env, sc, out, top);
}

/* ---- construction ---------------------------------------------------------- */
typedef struct {
    IrProgram *p;
    IrBuilder b;
    IrNode *labels_node;
    int ndropout;
} Build;

static int add_param(Build *B, const char *name, int init, unsigned groups, SrcLoc loc, IrNode **out) {
    IrParam *pr = NEW(IrParam);
    pr->name = name;
    pr->init = init;
    pr->groups = groups;
    pr->branch = B->b.branch;
    pr->fusion = B->b.fusion;
    pr->loc = loc;
    vec_push(&B->p->params, pr);
    IrNode *n = ir_leaf(&B->b, OP_PARAM);
    n->flags = IRF_PARAM;
    n->param = B->p->params.n - 1;
    n->name = name;
    *out = n;
    return n->param;
}

static int add_state(IrProgram *p, const char *name, int kind, float init, int branch, int fusion) {
    IrState *s = NEW(IrState);
    s->name = name;
    s->kind = kind;
    s->init = init;
    s->branch = branch;
    s->fusion = fusion;
    vec_push(&p->states, s);
    return p->states.n - 1;
}

static IrNode *state_node(Build *B, int idx) {
    IrNode *n = ir_leaf(&B->b, OP_STATE);
    n->flags = IRF_STATE;
    n->state = idx;
    n->name = IR_STATE(B->p, idx)->name;
    return n;
}

static unsigned main_group(const Build *B) { return B->b.branch >= 0 ? RT_GROUP_MAIN(B->b.branch) : 0; }

/* Window sizes not given (or not given for a dimension) are WIN_UNSET until
 * pass_shapes knows the rank. */
#define WIN_UNSET INT_MIN

static void set_window(IrAttr *a, const Val *k, const Val *s, const Val *p) {
    const Val *v[3] = {k, s, p};
    int *dst[3] = {a->k, a->s, a->p};
    static const char *what[3] = {"kernel size", "stride", "padding"};
    for (int j = 0; j < 3; j++) {
        for (int d = 0; d < 3; d++) dst[j][d] = WIN_UNSET;
        if (v[j]->k == V_NONE) continue;
        int n = v[j]->k == V_INT ? 1 : v[j]->n;
        for (int i = 0; i < n; i++) {
            const Val *x = v[j]->k == V_INT ? v[j] : &v[j]->items[i];
            if (x->i > 65536) error_at(x->loc, "a %s of %lld is too large (the limit is 65536)", what[j], x->i);
            if (j == 2 && x->i < 0) error_at(x->loc, "the padding cannot be negative (%lld)", x->i);
            if (j < 2 && x->i < 1) error_at(x->loc, "the %s must be at least 1, not %lld", what[j], x->i);
        }
        if (v[j]->k == V_INT)
            for (int d = 0; d < 3; d++) dst[j][d] = (int)v[j]->i;
        else
            for (int d = 0; d < v[j]->n; d++) dst[j][3 - v[j]->n + d] = (int)v[j]->items[d].i;
    }
    /* The list length (if given) fixes the rank; pass_shapes checks it. */
    a->nsp = k->k == V_LIST ? k->n : 0;
    if (s->k == V_NONE)
        for (int d = 0; d < 3; d++) a->s[d] = a->k[d]; /* pooling stride defaults to the kernel */
    for (int j = 0; j < 3; j++)
        if (v[j]->k == V_LIST && k->k == V_LIST && v[j]->n != k->n)
            error_at(v[j]->loc, "this list has %d entries but the kernel has %d", v[j]->n, k->n);
}

static IrNode *build_linear(Build *B, IrNode *x, int out, bool bias, const char *pname, unsigned groups, SrcLoc loc) {
    IrNode *w, *b = NULL;
    add_param(B, arena_printf(mm_arena, "%s.weight", pname), RT_INIT_UNIFORM, groups, loc, &w);
    if (bias) add_param(B, arena_printf(mm_arena, "%s.bias", pname), RT_INIT_UNIFORM, groups, loc, &b);
    IrNode *src[3] = {x, w, b};
    IrNode *n = ir_node(&B->b, OP_LINEAR, bias ? 3 : 2, src);
    n->a.cout = out;
    n->a.bias = bias;
    return n;
}

static IrNode *build_seq(Build *B, const Items *items, IrNode *x, int from, int to);

/* Squeeze-and-excitation: the one-branch analogue of an MMTM (ALGORITHMS §1). */
static IrNode *build_se(Build *B, const Item *it, IrNode *x) {
    IrFusion *f = NEW(IrFusion);
    f->kind = FUSE_SE;
    f->name = it->pname;
    f->nb = 1;
    f->branch[0] = B->b.branch;
    f->ratio = (int)it->args[0].i;
    if (f->ratio < 1) error_at(it->args[0].loc, "'ratio' must be at least 1, not %d", f->ratio);
    f->double_sigmoid = it->args[1].f == 2.0;
    if (it->args[1].f != 1.0 && it->args[1].f != 2.0)
        error_at(it->args[1].loc, "'gate_scale' is 1 (sigmoid gates) or 2 (2*sigmoid gates), not %g", it->args[1].f);
    f->loc = it->loc;
    vec_push(&B->p->fusions, f);
    int save = B->b.fusion;
    B->b.fusion = B->p->fusions.n - 1;
    B->b.role = "squeeze";
    IrNode *s = ir_node1(&B->b, OP_GAP, x);
    B->b.role = "hidden";
    IrNode *z = build_linear(B, s, 0, true, arena_printf(mm_arena, "%s.squeeze", it->pname), main_group(B), it->loc);
    z = ir_node1(&B->b, OP_RELU, z);
    B->b.role = "excite";
    IrNode *e = build_linear(B, z, 0, true, arena_printf(mm_arena, "%s.excite", it->pname), main_group(B), it->loc);
    B->b.role = "gate";
    IrNode *g = ir_node1(&B->b, OP_SIGMOID, e);
    g->a.f = f->double_sigmoid ? 2.0f : 1.0f;
    B->b.role = NULL;
    IrNode *y = ir_node2(&B->b, OP_CHSCALE, x, g);
    B->b.fusion = save;
    return y;
}

static IrNode *build_item(Build *B, const Item *it, IrNode *x) {
    B->b.loc = it->loc;
    switch (it->kind) {
    case IT_LABEL: ((Item *)it)->node = x; return x;
    case IT_RESIDUAL: {
        IrNode *main = build_seq(B, &it->body, x, 0, it->body.n);
        IrNode *sc = it->has_shortcut && it->shortcut.n ? build_seq(B, &it->shortcut, x, 0, it->shortcut.n) : x;
        B->b.loc = it->loc;
        return ir_node2(&B->b, OP_ADD, main, sc);
    }
    case IT_CONCAT: {
        IrNode *outs[IR_MAXSRC];
        for (int i = 0; i < it->npaths; i++) outs[i] = build_seq(B, &it->paths[i], x, 0, it->paths[i].n);
        B->b.loc = it->loc;
        return ir_node(&B->b, OP_CONCAT, it->npaths, outs);
    }
    case IT_LAYER: break;
    }
    const Val *a = it->args;
    IrNode *n;
    switch (it->def->kind) {
    case L_CONV: case L_CONV2D: case L_CONV3D: {
        if (a[0].i < 1) error_at(a[0].loc, "a convolution needs at least 1 output channel, not %lld", a[0].i);
        if (a[0].i > 65536) error_at(a[0].loc, "%lld output channels are too many (the limit is 65536)", a[0].i);
        IrNode *w, *b = NULL;
        unsigned g = main_group(B);
        add_param(B, arena_printf(mm_arena, "%s.weight", it->pname), RT_INIT_UNIFORM, g, it->loc, &w);
        if (a[4].i) add_param(B, arena_printf(mm_arena, "%s.bias", it->pname), RT_INIT_UNIFORM, g, it->loc, &b);
        IrNode *src[3] = {x, w, b};
        n = ir_node(&B->b, OP_CONV, a[4].i ? 3 : 2, src);
        n->a.cout = (int)a[0].i;
        n->a.bias = a[4].i;
        set_window(&n->a, &a[1], &a[2], &a[3]);
        if (it->def->kind == L_CONV2D) n->a.nsp = n->a.nsp ? -n->a.nsp : -2;  /* negative: required rank */
        if (it->def->kind == L_CONV3D) n->a.nsp = n->a.nsp ? -n->a.nsp : -3;
        return n;
    }
    case L_BN: {
        IrNode *gamma, *beta;
        unsigned g = main_group(B);
        add_param(B, arena_printf(mm_arena, "%s.weight", it->pname), RT_INIT_ONE, g, it->loc, &gamma);
        add_param(B, arena_printf(mm_arena, "%s.bias", it->pname), RT_INIT_ZERO, g, it->loc, &beta);
        int rm = add_state(B->p, arena_printf(mm_arena, "%s.running_mean", it->pname), RT_STATE_BN_MEAN, 0, B->b.branch, B->b.fusion);
        int rv = add_state(B->p, arena_printf(mm_arena, "%s.running_var", it->pname), RT_STATE_BN_VAR, 1, B->b.branch, B->b.fusion);
        double eps = a[0].f, mom = a[1].f;
        if (!(eps > 0 && eps < 1)) error_at(a[0].loc, "batchnorm: 'eps' must be positive and below 1, not %g", eps);
        if (!(mom >= 0 && mom <= 1)) error_at(a[1].loc, "batchnorm: 'momentum' must be in [0, 1], not %g", mom);
        IrNode *st = ir_node3(&B->b, OP_BN_STATS, x, state_node(B, rm), state_node(B, rv));
        st->a.f = (float)eps;
        st->a.f2 = (float)mom;
        return ir_node4(&B->b, OP_BN_APPLY, x, st, gamma, beta);
    }
    case L_RELU: return ir_node1(&B->b, OP_RELU, x);
    case L_SIGMOID:
        n = ir_node1(&B->b, OP_SIGMOID, x);
        n->a.f = 1.0f;
        return n;
    case L_MAXPOOL: case L_AVGPOOL:
        n = ir_node1(&B->b, it->def->kind == L_MAXPOOL ? OP_MAXPOOL : OP_AVGPOOL, x);
        set_window(&n->a, &a[0], &a[1], &a[2]);
        return n;
    case L_GAP: return ir_node1(&B->b, OP_GAP, x);
    case L_FLATTEN: return ir_node1(&B->b, OP_FLATTEN, x);
    case L_LINEAR:
        if (a[0].i < 1) error_at(a[0].loc, "a linear layer needs at least 1 output, not %lld", a[0].i);
        if (a[0].i > 1 << 24) error_at(a[0].loc, "%lld outputs are too many (the limit is 16777216)", a[0].i);
        return build_linear(B, x, (int)a[0].i, a[1].i, it->pname, main_group(B), it->loc);
    case L_DROPOUT:
        if (!(a[0].f >= 0 && a[0].f < 1)) error_at(a[0].loc, "dropout: the rate must be in [0, 1), not %g", a[0].f);
        n = ir_node1(&B->b, OP_DROPOUT, x);
        n->a.f = (float)a[0].f;
        n->a.n = B->ndropout++; /* its mask's random stream */
        return n;
    case L_SE: return build_se(B, it, x);
    }
    mm_assert(0);
    return NULL;
}

static IrNode *build_seq(Build *B, const Items *items, IrNode *x, int from, int to) {
    for (int i = from; i < to; i++) x = build_item(B, items->v[i], x);
    return x;
}

/* ---- fusion placement --------------------------------------------------------- */
typedef struct {
    const AstExpr *call;
    int nb;
    int branch[RT_MAXB];
    int pos[RT_MAXB];      /* index of the label item in the branch's top-level items */
    Item *label[RT_MAXB];
    int ratio;
    bool double_sigmoid;
    bool done;
} PendingFusion;

static int find_branch(const IrProgram *p, const char *name, SrcLoc loc) {
    for (int i = 0; i < p->branches.n; i++)
        if (strcmp(IR_BRANCH(p, i)->name, name) == 0) return i;
    const char *names[RT_MAXB];
    for (int i = 0; i < p->branches.n; i++) names[i] = IR_BRANCH(p, i)->name;
    const char *near = nearest_name(name, names, p->branches.n);
    if (near) error_at(loc, "no branch named '%s'; did you mean '%s'?", name, near);
    error_at(loc, "no branch named '%s' (branches: %s)", name, join_names(names, p->branches.n, " and "));
}

static const Signature mmtm_sig = {"'mmtm'", {{"ratio", 'i', "4"}, {"gate_scale", 'f', "1.0"}}};

static void resolve_fusion(IrProgram *p, const AstExpr *call, Items *branch_items, PtrVec *nested, PendingFusion *f) {
    f->call = call;
    if (strcmp(call->s, "mmtm") != 0) {
        const char *names[] = {"mmtm"};
        if (nearest_name(call->s, names, 1))
            error_at(call->loc, "unknown fusion module '%s'; did you mean 'mmtm'?", call->s);
        error_at(call->loc, "unknown model item '%s'; expected input, block, branch, mmtm(...), predict or loss", call->s);
    }
    AstArgs rest = {0};
    for (int i = 0; i < call->args.n; i++) {
        const AstArg *a = &call->args.v[i];
        if (a->key || a->val->kind != AX_REF) {
            ast_args_push(&rest, *a);
            continue;
        }
        if (rest.n) error_at(a->loc, "'mmtm': branch points (like c.s1) come before the options");
        if (f->nb == RT_MAXB) error_at(a->loc, "'mmtm' joins at most %d branches", RT_MAXB);
        int b = find_branch(p, a->val->s, a->val->loc);
        for (int j = 0; j < f->nb; j++)
            if (f->branch[j] == b)
                error_at(a->val->loc, "'mmtm' joins branch '%s' twice; it joins different branches", a->val->s);
        int pos = -1;
        Items *items = &branch_items[b];
        for (int j = 0; j < items->n; j++)
            if (items->v[j]->kind == IT_LABEL && strcmp(items->v[j]->label, a->val->s2) == 0) pos = j;
        if (pos < 0) {
            for (int j = 0; j < nested[b].n; j++) {
                Item *it = nested[b].v[j];
                if (strcmp(it->label, a->val->s2) == 0) {
                    diag_note_later(it->loc, "'@%s' is defined here", it->label);
                    error_at(a->val->loc2, "'%s.%s' is inside a residual or concat path; an MMTM connects points on a branch's main line",
                             a->val->s, a->val->s2);
                }
            }
            const char *names[256];
            int n = 0;
            for (int j = 0; j < items->n && n < 256; j++)
                if (items->v[j]->kind == IT_LABEL) names[n++] = items->v[j]->label;
            const char *near = nearest_name(a->val->s2, names, n);
            if (near) error_at(a->val->loc2, "branch '%s' has no label '@%s'; did you mean '@%s'?", a->val->s, a->val->s2, near);
            if (n == 0)
                error_at(a->val->loc2, "branch '%s' has no label '@%s'; mark the point with @%s after a layer", a->val->s,
                         a->val->s2, a->val->s2);
            error_at(a->val->loc2, "branch '%s' has no label '@%s' (labels: %s)", a->val->s, a->val->s2, join_names(names, n, " and "));
        }
        f->branch[f->nb] = b;
        f->pos[f->nb] = pos;
        f->label[f->nb] = items->v[pos];
        items->v[pos]->pending++;
        f->nb++;
    }
    if (f->nb < 2) error_at(call->loc, "'mmtm' joins two or more branches, given as branch.label (e.g. mmtm(a.s1, b.s1))");
    Val v[ARGS_MAX] = {{0}};
    args_match(&mmtm_sig, &rest, NULL, call->loc, v, NULL);
    f->ratio = (int)v[0].i;
    if (f->ratio < 1) error_at(v[0].loc, "'ratio' must be at least 1, not %d", f->ratio);
    if (v[1].f != 1.0 && v[1].f != 2.0)
        error_at(v[1].loc, "'gate_scale' is 1 (sigmoid gates) or 2 (2*sigmoid gates), not %g", v[1].f);
    f->double_sigmoid = v[1].f == 2.0;
}

/* The MMTM of ALGORITHMS §1: squeeze each input, one shared FC-ReLU, one
 * excitation FC per input, sigmoid gates, channel-wise rescaling. */
static void build_mmtm(Build *B, PendingFusion *pf, int index, IrNode **cur) {
    IrProgram *p = B->p;
    IrFusion *f = NEW(IrFusion);
    f->kind = FUSE_MMTM;
    f->name = arena_printf(mm_arena, "mmtm%d", index);
    f->nb = pf->nb;
    f->ratio = pf->ratio;
    f->double_sigmoid = pf->double_sigmoid;
    f->loc = pf->call->loc;
    vec_push(&p->fusions, f);
    int fi = p->fusions.n - 1;
    B->b.fusion = fi;
    B->b.loc = pf->call->loc;
    unsigned shared = 0;
    for (int i = 0; i < pf->nb; i++) {
        f->branch[i] = pf->branch[i];
        f->point[i] = arena_printf(mm_arena, "%s.%s", IR_BRANCH(p, pf->branch[i])->name, pf->label[i]->label);
        shared |= RT_GROUP_BYPASS(pf->branch[i]);
    }
    IrNode *sq[RT_MAXB];
    for (int i = 0; i < pf->nb; i++) {
        B->b.branch = pf->branch[i];
        B->b.role = "squeeze";
        sq[i] = ir_node1(&B->b, OP_GAP, cur[pf->branch[i]]);
    }
    B->b.branch = -1;
    B->b.role = "squeeze";
    IrNode *cat = ir_node(&B->b, OP_CONCAT, pf->nb, sq);
    B->b.role = "hidden";
    IrNode *z = build_linear(B, cat, 0, true, arena_printf(mm_arena, "%s.squeeze", f->name), shared, pf->call->loc);
    z = ir_node1(&B->b, OP_RELU, z);
    for (int i = 0; i < pf->nb; i++) {
        int b = pf->branch[i];
        const char *bn = IR_BRANCH(p, b)->name;
        /* The excitation that gates branch b carries the other modalities into it: bypass_b. */
        B->b.branch = b;
        B->b.role = "excite";
        IrNode *e = build_linear(B, z, 0, true, arena_printf(mm_arena, "%s.excite_%s", f->name, bn), RT_GROUP_BYPASS(b),
                                 pf->call->loc);
        B->b.role = "gate";
        IrNode *g = ir_node1(&B->b, OP_SIGMOID, e);
        g->a.f = f->double_sigmoid ? 2.0f : 1.0f;
        B->b.role = NULL;
        cur[b] = ir_node2(&B->b, OP_CHSCALE, cur[b], g);
        f->gate_state[i] = add_state(p, arena_printf(mm_arena, "%s.gate_mean_%s", f->name, bn), RT_STATE_GATE_MEAN, 0, b, fi);
        f->squeeze_state[i] = add_state(p, arena_printf(mm_arena, "%s.squeeze_mean_%s", f->name, bn), RT_STATE_SQUEEZE_MEAN, 0, b, fi);
    }
    B->b.fusion = -1;
    B->b.role = NULL;
}

/* ---- late-fusion heads ---------------------------------------------------------- */
/* fuse NAME { COMB(refs) layers }: the combiner joins branch features (a
 * branch's output, or the tensor at one of its labels) from primitive ops,
 * as the fusion modules of the OGM-GE and PMR code bases do:
 *   concat(a, b)  [a, b] along features
 *   sum(a, b)     a + b (one width)
 *   film(a by b)  gamma(b) * a + beta(b), gamma and beta linear maps of b to a's width
 *   gated(a, b)   W_a a * sigmoid(W_b b), both to a's width (the gate comes from b)
 * and the layers after it (usually linear(classes)) end in the head's logits.
 * Its parameters belong to no branch's group. */
static const char *const fuse_combs[] = {"concat", "sum", "film", "gated"};

static IrNode *fuse_ref(IrProgram *p, const AstExpr *e, Items *items, PtrVec *nested, const char **text, int *branch) {
    if (e->kind == AX_CALL) {
        int b = find_branch(p, e->s, e->loc);
        *branch = b;
        *text = IR_BRANCH(p, b)->name;
        return IR_BRANCH(p, b)->out;
    }
    int b = find_branch(p, e->s, e->loc);
    *branch = b;
    *text = arena_printf(mm_arena, "%s.%s", e->s, e->s2);
    for (int j = 0; j < items[b].n; j++)
        if (items[b].v[j]->kind == IT_LABEL && strcmp(items[b].v[j]->label, e->s2) == 0) return items[b].v[j]->node;
    for (int j = 0; j < nested[b].n; j++) {
        Item *it = nested[b].v[j];
        if (strcmp(it->label, e->s2) == 0) {
            diag_note_later(it->loc, "'@%s' is defined here", it->label);
            error_at(e->loc2, "'%s.%s' is inside a residual or concat path; a fusion head reads a point on a branch's main line",
                     e->s, e->s2);
        }
    }
    const char *names[256];
    int n = 0;
    for (int j = 0; j < items[b].n && n < 256; j++)
        if (items[b].v[j]->kind == IT_LABEL) names[n++] = items[b].v[j]->label;
    const char *near = nearest_name(e->s2, names, n);
    if (near) error_at(e->loc2, "branch '%s' has no label '@%s'; did you mean '@%s'?", e->s, e->s2, near);
    if (n == 0)
        error_at(e->loc2, "branch '%s' has no label '@%s'; mark the point with @%s after a layer (e.g. gap @%s)", e->s, e->s2,
                 e->s2, e->s2);
    error_at(e->loc2, "branch '%s' has no label '@%s' (labels: %s)", e->s, e->s2, join_names(names, n, " and "));
}

static void build_fuse(Build *B, const AstModel *m, const AstFuse *af, Items *items, PtrVec *nested) {
    IrProgram *p = B->p;
    for (int i = 0; i < p->branches.n; i++)
        if (strcmp(IR_BRANCH(p, i)->name, af->name) == 0) {
            diag_note_later(IR_BRANCH(p, i)->loc, "branch '%s' is here", af->name);
            error_at(af->loc, "'%s' is already a branch; give the fusion head another name", af->name);
        }
    for (int i = 0; i < p->heads.n; i++)
        if (strcmp(IR_HEAD(p, i)->name, af->name) == 0) {
            diag_note_later(IR_HEAD(p, i)->loc, "the first fusion head '%s' is here", af->name);
            error_at(af->loc, "fusion head '%s' is defined twice", af->name);
        }
    const AstExpr *c = af->comb;
    int kind = -1;
    for (int i = 0; i < ARRAY_LEN(fuse_combs); i++)
        if (strcmp(c->s, fuse_combs[i]) == 0) kind = i;
    if (kind < 0) {
        const char *near = nearest_name(c->s, fuse_combs, ARRAY_LEN(fuse_combs));
        if (near) error_at(c->loc, "unknown fusion '%s'; did you mean '%s'?", c->s, near);
        error_at(c->loc, "unknown fusion '%s' (fusions: %s)", c->s, join_names(fuse_combs, ARRAY_LEN(fuse_combs), " and "));
    }
    if (kind == 2 && !af->by) error_at(c->loc, "'film' modulates one branch by another: film(a by b) is gamma(b) * a + beta(b)");
    if (kind != 2 && af->by) error_at(c->loc, "'%s' takes its branches separated by commas: %s(a, b)", c->s, c->s);
    if (c->args.n < 2)
        error_at(c->loc, "'%s' fuses two or more branches, e.g. %s(a, b)%s", c->s, c->s, c->args.n ? "; a head over one branch is a branch layer" : "");
    if (kind >= 2 && c->args.n != 2) error_at(c->args.v[2].loc, "'%s' fuses exactly two branches", c->s);
    if (c->args.n > RT_MAXB) error_at(c->args.v[RT_MAXB].loc, "'%s' fuses at most %d branches", c->s, RT_MAXB);

    IrHead *h = NEW(IrHead);
    h->name = af->name;
    h->comb = fuse_combs[kind];
    h->loc = af->loc;
    h->comb_loc = c->loc;
    int hi = p->heads.n;
    vec_push(&p->heads, h);
    int br[RT_MAXB];
    const char *text = "";
    for (int i = 0; i < c->args.n; i++) {
        h->in[i] = fuse_ref(p, c->args.v[i].val, items, nested, &h->in_text[i], &br[i]);
        h->in_branch[i] = br[i];
        for (int j = 0; j < i; j++)
            if (br[j] == br[i])
                error_at(c->args.v[i].loc, "'%s' reads branch '%s' twice; it fuses different branches", c->s, IR_BRANCH(p, br[i])->name);
        text = arena_printf(mm_arena, "%s%s%s", text, i ? (af->by ? " by " : ", ") : "", h->in_text[i]);
    }
    h->nin = c->args.n;
    h->text = arena_printf(mm_arena, "%s(%s)", c->s, text);

    B->b.branch = -1;
    B->b.fusion = -1;
    B->b.loc = c->loc;
    B->b.role = "fuse";
    int first = B->b.g->nodes.n;
    IrNode *x;
    const char *pre = af->name;
    switch (kind) {
    case 0: x = ir_node(&B->b, OP_CONCAT, h->nin, h->in); break;
    case 1: x = ir_node(&B->b, OP_ADD, h->nin, h->in); break;
    case 2: { /* gamma(b) * a + beta(b) */
        IrNode *gamma = build_linear(B, h->in[1], 0, true, arena_printf(mm_arena, "%s.film.gamma", pre), 0, c->loc);
        IrNode *beta = build_linear(B, h->in[1], 0, true, arena_printf(mm_arena, "%s.film.beta", pre), 0, c->loc);
        gamma->a.n = beta->a.n = hi;
        IrNode *y = ir_node2(&B->b, OP_MUL, gamma, h->in[0]);
        x = ir_node2(&B->b, OP_ADD, y, beta);
        break;
    }
    default: { /* W_a a * sigmoid(W_b b) */
        IrNode *fa = build_linear(B, h->in[0], 0, true, arena_printf(mm_arena, "%s.gated.in", pre), 0, c->loc);
        IrNode *fb = build_linear(B, h->in[1], 0, true, arena_printf(mm_arena, "%s.gated.gate", pre), 0, c->loc);
        fa->a.n = fb->a.n = hi;
        IrNode *g = ir_node1(&B->b, OP_SIGMOID, fb);
        g->a.f = 1.0f;
        x = ir_node2(&B->b, OP_MUL, fa, g);
        break;
    }
    }
    for (int i = first; i < B->b.g->nodes.n; i++)
        if (IR_NODE(B->b.g, i)->op != OP_PARAM) IR_NODE(B->b.g, i)->a.n = hi;
    B->b.role = NULL;
    /* The layers after the combiner, named under the head: fused.linear1. */
    Elab E = {m, p, {0}, {0}, 0, 0, {0}, {0}};
    Scope sc = {af->name, {0}, {0}};
    Items body = {0};
    elab_seq(&E, &af->body, NULL, &sc, &body, true);
    if (E.labels.n) error_at(((Item *)E.labels.v[0])->loc, "a fusion head's layers cannot carry labels");
    if (body.n == 0) error_at(af->loc, "fusion head '%s' needs layers after its fusion that end in class logits, e.g. linear(10)", af->name);
    h->out = build_seq(B, &body, x, 0, body.n);
    h->out->flags |= IRF_OUTPUT;
    h->out->name = af->name;
}

/* ---- prediction and loss ---------------------------------------------------- */
/* A branch or a fusion head, by name: its logits. *head is its index among
 * the heads, or -1 for a branch (then *branch is the branch). */
static IrNode *logits_arg(IrProgram *p, const AstExpr *e, const char *what, int *branch, int *head) {
    if (e->kind != AX_CALL || e->parens)
        error_at(e->loc, "%s expects a branch or fusion head name here", what);
    *head = -1;
    for (int i = 0; i < p->heads.n; i++)
        if (strcmp(IR_HEAD(p, i)->name, e->s) == 0) {
            *head = i;
            *branch = -1;
            return IR_HEAD(p, i)->out;
        }
    if (p->heads.n) {
        const char *names[2 * RT_MAXB + 16];
        int n = 0;
        for (int i = 0; i < p->branches.n; i++) names[n++] = IR_BRANCH(p, i)->name;
        for (int i = 0; i < p->heads.n && n < ARRAY_LEN(names); i++) names[n++] = IR_HEAD(p, i)->name;
        bool known = false;
        for (int i = 0; i < p->branches.n; i++) known |= strcmp(names[i], e->s) == 0;
        if (!known) {
            const char *near = nearest_name(e->s, names, n);
            if (near) error_at(e->loc, "no branch or fusion head named '%s'; did you mean '%s'?", e->s, near);
            error_at(e->loc, "no branch or fusion head named '%s' (%s)", e->s, join_names(names, n, " and "));
        }
    }
    *branch = find_branch(p, e->s, e->loc);
    return IR_BRANCH(p, *branch)->out;
}

static void build_predict(Build *B, const AstItem *it) {
    IrProgram *p = B->p;
    const AstExpr *e = it->val;
    IrNode *outs[IR_MAXSRC];
    int n = 0;
    const char *text = "";
    B->b.loc = it->loc;
    B->b.branch = -1;
    if (e->kind == AX_CALL && !e->parens) {
        int b, h;
        outs[n++] = logits_arg(p, e, "'predict'", &b, &h);
        text = e->s;
    } else if (e->kind == AX_CALL && strcmp(e->s, "mean") == 0) {
        if (e->args.n == 0) error_at(e->loc, "'mean' needs the branches to average, e.g. mean(a, b)");
        for (int i = 0; i < e->args.n; i++) {
            if (e->args.v[i].key) error_at(e->args.v[i].loc, "'mean' takes branch names, not options");
            if (n == IR_MAXSRC) error_at(e->args.v[i].loc, "too many branches");
            int b, h;
            outs[n++] = logits_arg(p, e->args.v[i].val, "'mean'", &b, &h);
            text = arena_printf(mm_arena, "%s%s%s", text, i ? ", " : "mean(", e->args.v[i].val->s);
        }
        text = arena_printf(mm_arena, "%s)", text);
    } else {
        error_at(e->loc, "'predict' is a branch or fusion head name, or mean(branch, ...) — the mean of the branch logits");
    }
    IrNode *pred = ir_node(&B->b, OP_MEAN, n, outs);
    pred->flags |= IRF_OUTPUT;
    pred->name = "prediction";
    p->fwd->pred = pred;
    p->predict_text = text;
}

/* loss: a sum of terms [w *] ce(NAME), NAME a branch or a fusion head, w a
 * positive number (1 when not written). */
typedef struct {
    int branch, head;
    double w;
    IrNode *logits;
    SrcLoc loc;
} LossTerm;

static double loss_weight(const AstExpr *e) {
    if (e->kind == AX_INT) return (double)e->ival;
    if (e->kind == AX_FLOAT) return e->fval;
    if (e->kind == AX_NEG) error_at(e->loc, "a loss weight must be positive");
    error_at(e->loc, "a loss weight is a number, as in 0.5 * ce(a)");
}

static void collect_ce(IrProgram *p, const AstExpr *e, double w, LossTerm *terms, int *n) {
    if (e->kind == AX_BINOP && e->op == '+') {
        collect_ce(p, e->l, 1, terms, n);
        collect_ce(p, e->r, 1, terms, n);
        return;
    }
    if (e->kind == AX_BINOP && e->op == '*') {
        bool left = !(e->l->kind == AX_CALL && e->l->parens);
        const AstExpr *num = left ? e->l : e->r, *term = left ? e->r : e->l;
        double v = loss_weight(num);
        if (!(v > 0) || !isfinite(v) || v > 1e6) error_at(num->loc, "a loss weight must be positive and at most 1e6, not %g", v);
        if (term->kind != AX_CALL) error_at(term->loc, "a loss weight multiplies one cross-entropy: 0.5 * ce(a)");
        collect_ce(p, term, w * v, terms, n);
        return;
    }
    if (e->kind != AX_CALL || strcmp(e->s, "ce") != 0 || e->args.n != 1 || e->args.v[0].key)
        error_at(e->loc, "'loss' is a weighted sum of cross-entropies: ce(a) + ce(b), or ce(fused) + 0.5 * ce(a) + 0.5 * ce(b)");
    LossTerm t = {0};
    t.logits = logits_arg(p, e->args.v[0].val, "'ce'", &t.branch, &t.head);
    t.w = w;
    t.loc = e->loc;
    for (int i = 0; i < *n; i++)
        if (terms[i].logits == t.logits) error_at(e->loc, "ce(%s) appears twice in the loss", e->args.v[0].val->s);
    if (*n == IR_MAXSRC) error_at(e->loc, "too many loss terms");
    terms[(*n)++] = t;
}

/* Each parameter's loss_terms: the terms whose cross-entropy reads it, by
 * a walk back from each term over the forward graph (sources precede their
 * users, so one sweep down the node order suffices). Policies that need
 * each term's gradient apart (mmpareto) tell an encoder shared by a fusion
 * head and a branch head from the heads themselves by it. */
static void mark_loss_terms(IrProgram *p, IrNode *const *ce, int n) {
    const PtrVec *nodes = &p->fwd->nodes;
    unsigned char *seen = NEWN(unsigned char, nodes->n);
    for (int i = 0; i < n; i++) {
        memset(seen, 0, (size_t)nodes->n);
        seen[ce[i]->id] = 1;
        for (int j = ce[i]->id; j >= 0; j--) {
            IrNode *x = nodes->v[j];
            if (!seen[j]) continue;
            if (x->flags & IRF_PARAM) IR_PARAM(p, x->param)->loss_terms |= 1u << i;
            for (int s = 0; s < x->nsrc; s++) seen[x->src[s]->id] = 1;
        }
    }
}

/* The train section's `policy gblend(...)` item, or NULL: G-Blend sets the
 * loss weights, so the loss must keep them even when written as a plain sum. */
static const AstItem *gblend_policy(const AstTrain *t) {
    for (int i = 0; t && i < t->items.n; i++) {
        const AstItem *it = t->items.v[i];
        if (strcmp(it->key, "policy") == 0 && it->val->kind == AX_CALL && strcmp(it->val->s, "gblend") == 0) return it;
    }
    return NULL;
}

/* G-Blend measures each term's cross-entropy on the training and validation
 * sets from the evaluation pass, which returns the branch heads' logits and
 * the prediction: a fusion head's term must be the prediction. */
static void check_gblend_terms(const IrProgram *p, const AstItem *pol, const LossTerm *terms, int n) {
    if (n < 2)
        error_at(pol->val->loc, "gblend weighs the terms of the loss, and this loss has one; give each modality a head of its "
                 "own and a term: loss ce(fused) + ce(a) + ce(b)");
    const IrNode *pred = p->fwd->pred;
    for (int i = 0; i < n; i++)
        if (terms[i].head >= 0 && !(pred->nsrc == 1 && pred->src[0] == terms[i].logits)) {
            diag_note_later(terms[i].loc, "ce(%s) is here", IR_HEAD(p, terms[i].head)->name);
            error_at(pol->val->loc, "gblend measures each loss term on the validation set, and fusion head '%s' is not the "
                     "prediction: write 'predict %s' (a model has one fused head under gblend)",
                     IR_HEAD(p, terms[i].head)->name, IR_HEAD(p, terms[i].head)->name);
        }
}

static void build_loss(Build *B, const AstItem *it, const AstItem *gblend) {
    IrProgram *p = B->p;
    LossTerm terms[IR_MAXSRC];
    int n = 0;
    collect_ce(p, it->val, 1, terms, &n);
    if (gblend) check_gblend_terms(p, gblend, terms, n);
    B->b.loc = it->loc;
    IrNode *ce[IR_MAXSRC];
    const char *text = "";
    /* A loss with weights or fusion heads keeps each term's weight in a state
     * tensor of its own, which the runtime may rewrite between steps; the
     * paper's plain sum of branch terms stays a plain sum, unless G-Blend
     * sets the weights. */
    bool weighted = p->heads.n > 0 || gblend;
    for (int i = 0; i < n; i++) weighted |= terms[i].w != 1;
    for (int i = 0; i < n; i++) {
        const char *name = terms[i].head >= 0 ? IR_HEAD(p, terms[i].head)->name : IR_BRANCH(p, terms[i].branch)->name;
        B->b.branch = terms[i].branch;
        ce[i] = ir_node2(&B->b, OP_CE, terms[i].logits, B->labels_node);
        if (weighted) {
            int st = add_state(p, arena_printf(mm_arena, "loss.weight.%s", name), RT_STATE_LOSS_WEIGHT, (float)terms[i].w,
                               terms[i].branch, -1);
            IrState *is = IR_STATE(p, st);
            int one = 1;
            is->ndim = 1;
            is->shape[0] = 1;
            is->numel = 1;
            IrNode *wn = state_node(B, st);
            ir_set_shape(wn, false, 1, &one);
            ce[i] = ir_node2(&B->b, OP_MUL, ce[i], wn);
        }
        text = arena_printf(mm_arena, "%s%s", text, i ? " + " : "");
        if (terms[i].w != 1) text = arena_printf(mm_arena, "%s%g * ", text, terms[i].w);
        text = arena_printf(mm_arena, "%sce(%s)", text, name);
        p->loss_weight[i] = (float)terms[i].w;
    }
    p->nloss_terms = n;
    mark_loss_terms(p, ce, n);
    B->b.branch = -1;
    IrNode *loss = ir_node(&B->b, OP_ADD, n, ce);
    p->loss_text = text;
    loss->flags |= IRF_LOSS | IRF_OUTPUT;
    loss->name = "loss";
    p->fwd->loss = loss;
    /* Every branch has its own term (ALGORITHMS §1), unless a fusion head
     * reads it: then a branch without a term has no head of its own, and
     * its output is features for the fusion head. */
    for (int b = 0; b < p->branches.n; b++) {
        bool in = false, read = false;
        for (int i = 0; i < n; i++) in |= terms[i].branch == b;
        for (int h = 0; h < p->heads.n; h++)
            for (int j = 0; j < IR_HEAD(p, h)->nin; j++) read |= IR_HEAD(p, h)->in[j] == IR_BRANCH(p, b)->out;
        if (!in && !read && p->heads.n)
            error_at(it->loc, "the loss has no ce(%s), and no fusion head reads the end of branch '%s': its last layers would "
                     "learn nothing; add ce(%s) to the loss (it may have a small weight: 0.5 * ce(%s)), or end the branch where the "
                     "fusion head reads it", IR_BRANCH(p, b)->name, IR_BRANCH(p, b)->name, IR_BRANCH(p, b)->name, IR_BRANCH(p, b)->name);
        if (!in && !read)
            error_at(it->loc, "the loss has no ce(%s); every branch is trained by its own cross-entropy (ALGORITHMS §1)",
                     IR_BRANCH(p, b)->name);
        if (!in) IR_BRANCH(p, b)->headless = true;
    }
    for (int i = 0; i < p->fwd->pred->nsrc; i++)
        for (int b = 0; b < p->branches.n; b++)
            if (IR_BRANCH(p, b)->headless && p->fwd->pred->src[i] == IR_BRANCH(p, b)->out) {
                diag_note_later(it->loc, "the loss has no ce(%s)", IR_BRANCH(p, b)->name);
                error_at(p->fwd->pred->loc, "'predict' reads branch '%s', which has no head of its own (no loss term): predict the fusion head",
                         IR_BRANCH(p, b)->name);
            }
    for (int h = 0; h < p->heads.n; h++) {
        bool in = false;
        for (int i = 0; i < n; i++) in |= terms[i].head == h;
        if (!in) {
            diag_note_later(IR_HEAD(p, h)->loc, "fusion head '%s' is defined here", IR_HEAD(p, h)->name);
            error_at(it->loc, "the loss has no ce(%s); a fusion head learns only from its own cross-entropy", IR_HEAD(p, h)->name);
        }
    }
}

/* ---- the pass ------------------------------------------------------------------ */
static void check_names(const AstModel *m) {
    /* Inputs, blocks and branches: each name once within its kind. */
    const PtrVec *kinds[3] = {&m->inputs, &m->blocks, &m->branches};
    const char *what[3] = {"input", "block", "branch"};
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < kinds[k]->n; i++)
            for (int j = 0; j < i; j++) {
                /* All three structs start with name, loc. */
                const AstInput *a = kinds[k]->v[i], *b = kinds[k]->v[j];
                if (strcmp(a->name, b->name) == 0) {
                    diag_note_later(b->loc, "the first %s '%s' is here", what[k], b->name);
                    error_at(a->loc, "%s '%s' is defined twice", what[k], a->name);
                }
            }
    for (int i = 0; i < m->blocks.n; i++) {
        const AstBlock *b = m->blocks.v[i];
        if (find_layer(b->name)) error_at(b->loc, "'%s' is a built-in layer; give the block another name", b->name);
        for (int x = 0; x < b->nparams; x++)
            for (int y = 0; y < x; y++)
                if (strcmp(b->params[x].name, b->params[y].name) == 0)
                    error_at(b->params[x].loc, "parameter '%s' is declared twice", b->params[x].name);
    }
}

IrProgram *pass_lower(const AstFile *f) {
    const AstModel *m = f->model;
    IrProgram *p = NEW(IrProgram);
    p->name = m->name;
    p->src = f->src;
    p->rubi_branch = -1;
    check_names(m);

    if (m->inputs.n == 0) error_at(m->loc, "model '%s' has no inputs; declare one: input NAME [C, H, W]", m->name);
    if (m->inputs.n > RT_MAXIN) error_at(((AstInput *)m->inputs.v[RT_MAXIN])->loc, "a model has at most %d inputs", RT_MAXIN);
    if (m->branches.n == 0) error_at(m->loc, "model '%s' has no branches; add one: branch NAME(INPUT) { ... }", m->name);
    if (m->branches.n > RT_MAXB) error_at(((AstBranch *)m->branches.v[RT_MAXB])->loc, "a model has at most %d branches", RT_MAXB);
    if (!m->predict) error_at(m->loc, "model '%s' has no 'predict'; add e.g.: predict mean(a, b)", m->name);
    if (!m->loss) error_at(m->loc, "model '%s' has no 'loss'; add e.g.: loss ce(a) + ce(b)", m->name);

    for (int i = 0; i < m->inputs.n; i++) {
        const AstInput *ai = m->inputs.v[i];
        IrInput *in = NEW(IrInput);
        in->name = ai->name;
        in->loc = ai->loc;
        const AstExpr *s = ai->shape;
        if (s->nitems != 3 && s->nitems != 4)
            error_at(s->loc, "input '%s' needs a shape [C, H, W] (an image) or [C, T, H, W] (a clip), not %d dimension%s",
                     ai->name, s->nitems, s->nitems == 1 ? "" : "s");
        in->ndim = s->nitems;
        in->numel = 1;
        for (int d = 0; d < s->nitems; d++) {
            Val v = args_eval(s->items[d], NULL);
            if (v.k != V_INT) error_at(v.loc, "a dimension must be an integer, not %s", args_val_text(&v));
            if (v.i < 1) error_at(v.loc, "a dimension must be at least 1, not %lld", v.i);
            if (v.i > 65536) error_at(v.loc, "dimension %lld is too large (the limit is 65536)", v.i);
            in->shape[d] = (int)v.i;
            in->numel *= (size_t)v.i;
        }
        if (in->numel > ((size_t)1 << 28)) error_at(s->loc, "input '%s' is too large", ai->name);
        vec_push(&p->inputs, in);
    }

    /* Branches, then their elaborated layer lists. */
    Items items[RT_MAXB] = {{0}};
    PtrVec nested[RT_MAXB] = {{0}};
    for (int i = 0; i < m->branches.n; i++) {
        const AstBranch *ab = m->branches.v[i];
        IrBranch *br = NEW(IrBranch);
        br->name = ab->name;
        br->loc = ab->loc;
        br->input = -1;
        for (int j = 0; j < p->inputs.n; j++)
            if (strcmp(IR_INPUT(p, j)->name, ab->input) == 0) br->input = j;
        if (br->input < 0) {
            const char *names[RT_MAXIN];
            for (int j = 0; j < p->inputs.n; j++) names[j] = IR_INPUT(p, j)->name;
            const char *near = nearest_name(ab->input, names, p->inputs.n);
            if (near) error_at(ab->input_loc, "no input named '%s'; did you mean '%s'?", ab->input, near);
            error_at(ab->input_loc, "no input named '%s' (inputs: %s)", ab->input, join_names(names, p->inputs.n, " and "));
        }
        vec_push(&p->branches, br);
    }
    for (int j = 0; j < p->inputs.n; j++) {
        bool used = false;
        for (int i = 0; i < p->branches.n; i++) used |= IR_BRANCH(p, i)->input == j;
        if (!used) error_at(IR_INPUT(p, j)->loc, "input '%s' is not used by any branch", IR_INPUT(p, j)->name);
    }
    for (int i = 0; i < m->branches.n; i++) {
        const AstBranch *ab = m->branches.v[i];
        Elab E = {m, p, {0}, {0}, 0, 0, {0}, {0}};
        Scope sc = {ab->name, {0}, {0}};
        elab_seq(&E, &ab->body, NULL, &sc, &items[i], true);
        if (items[i].n == 0) error_at(ab->loc, "branch '%s' has no layers", ab->name);
        nested[i] = E.nested;
    }

    /* Fusion modules, resolved against the labels. */
    PendingFusion *pf = NEWN(PendingFusion, m->fusions.n + 1);
    if (m->fusions.n > RT_MAXFUSE) error_at(((AstExpr *)m->fusions.v[RT_MAXFUSE])->loc, "at most %d fusion modules", RT_MAXFUSE);
    for (int i = 0; i < m->fusions.n; i++) resolve_fusion(p, m->fusions.v[i], items, nested, &pf[i]);

    /* Construction in lock-step. */
    p->fwd = ir_graph_new("forward", VAR_FORWARD, -1);
    Build B = {p, {p->fwd, -1, -1, {0}, NULL}, NULL, 0};
    IrNode *in_nodes[RT_MAXIN];
    for (int j = 0; j < p->inputs.n; j++) {
        IrInput *in = IR_INPUT(p, j);
        B.b.loc = in->loc;
        IrNode *n = ir_leaf(&B.b, OP_INPUT);
        n->flags = IRF_INPUT;
        n->input = j;
        n->name = in->name;
        int dims[IR_MAXDIM] = {0};
        for (int d = 0; d < in->ndim; d++) dims[d + 1] = in->shape[d];
        ir_set_shape(n, true, in->ndim + 1, dims);
        in_nodes[j] = n;
    }
    B.labels_node = ir_leaf(&B.b, OP_LABELS);
    B.labels_node->dt = DT_I32;
    B.labels_node->name = "labels";
    int one_dim[1] = {0};
    ir_set_shape(B.labels_node, true, 1, one_dim);

    IrNode *cur[RT_MAXB];
    int cursor[RT_MAXB];
    for (int i = 0; i < p->branches.n; i++) {
        cur[i] = in_nodes[IR_BRANCH(p, i)->input];
        cursor[i] = 0;
    }
    int applied = 0;
    for (;;) {
        bool progress = false;
        for (int b = 0; b < p->branches.n; b++) {
            B.b.branch = b;
            while (cursor[b] < items[b].n) {
                Item *it = items[b].v[cursor[b]];
                if (it->kind == IT_LABEL && it->pending > 0) break;
                cur[b] = build_item(&B, it, cur[b]);
                cursor[b]++;
                progress = true;
            }
        }
        B.b.branch = -1;
        for (int i = 0; i < m->fusions.n; i++) {
            PendingFusion *f = &pf[i];
            if (f->done) continue;
            bool ready = true;
            for (int j = 0; j < f->nb; j++) ready &= cursor[f->branch[j]] == f->pos[j];
            /* Fusions at the same point apply in file order. */
            for (int k = 0; ready && k < i; k++)
                if (!pf[k].done)
                    for (int j = 0; j < pf[k].nb; j++)
                        for (int jj = 0; jj < f->nb; jj++)
                            if (pf[k].label[j] == f->label[jj]) ready = false;
            if (!ready) continue;
            build_mmtm(&B, f, ++applied, cur);
            f->done = true;
            progress = true;
            for (int j = 0; j < f->nb; j++)
                if (--f->label[j]->pending == 0) {
                    f->label[j]->node = cur[f->branch[j]]; /* a late-fusion head there reads the gated map */
                    cursor[f->branch[j]]++;
                }
        }
        bool all = applied == m->fusions.n;
        for (int b = 0; b < p->branches.n; b++) all &= cursor[b] == items[b].n;
        if (all) break;
        if (!progress) {
            for (int i = 0; i < m->fusions.n; i++)
                if (!pf[i].done) {
                    for (int j = 0; j < pf[i].nb; j++)
                        if (cursor[pf[i].branch[j]] != pf[i].pos[j]) {
                            int b = pf[i].branch[j];
                            Item *at = items[b].v[cursor[b]];
                            diag_note_later(at->loc, "branch '%s' is waiting at '@%s' for another module", IR_BRANCH(p, b)->name,
                                            at->label);
                        }
                    error_at(pf[i].call->loc,
                             "these fusion modules cross: each waits for a point that another branch reaches only after a later "
                             "module; connect the points in the same order along every branch");
                }
            mm_assert(0);
        }
    }
    for (int b = 0; b < p->branches.n; b++) {
        IR_BRANCH(p, b)->out = cur[b];
        IR_BRANCH(p, b)->nlayers = items[b].n;
        if (cur[b]->op == OP_LINEAR) IR_BRANCH(p, b)->head = cur[b];
    }
    for (int i = 0; i < m->fuses.n; i++) build_fuse(&B, m, m->fuses.v[i], items, nested);
    build_predict(&B, m->predict);
    build_loss(&B, m->loss, gblend_policy(f->train));
    for (int b = 0; b < p->branches.n; b++) {
        if (IR_BRANCH(p, b)->headless) {
            IR_BRANCH(p, b)->head = NULL;
            continue;
        }
        IR_BRANCH(p, b)->out->flags |= IRF_OUTPUT;
        p->fwd->logits[b] = IR_BRANCH(p, b)->out;
    }
    lower_train(f->train, p);
    return p;
}
