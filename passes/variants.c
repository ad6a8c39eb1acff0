/* variants.c — derive, from the one forward graph, every graph the training
 * program runs (ALGORITHMS §2-§7):
 *
 *   train          regular step; accumulates the running gate means (§5)
 *   rebalance-B    re-balancing step for branch B: in every MMTM, B's gate is
 *                  the running mean of its gates over regular steps (§5)
 *   rubi-B         RUBi step with B as the bias branch (§7)
 *   eval           evaluation mode: BatchNorm running statistics, no dropout
 *   cut            evaluation with the cross-modal flow cut: in every MMTM the
 *                  other branches' squeeze vectors are their training-set
 *                  means (§3), separately for each branch's gate
 *   squeeze        evaluation that accumulates those training-set means
 *
 * Each is a copy of the forward graph in which some nodes are replaced; dead
 * nodes are then dropped. Training graphs get their backward in autodiff.c. */
#include <string.h>

#include "passes.h"

typedef struct {
    IrProgram *p;
    IrBuilder b;
    IrVariant kind;
    int k;
} Derive;

static bool is_role(const IrNode *n, const char *role) { return n->role && strcmp(n->role, role) == 0; }

static bool mmtm_node(const IrProgram *p, const IrNode *n) {
    return n->fusion >= 0 && IR_FUSION(p, n->fusion)->kind == FUSE_MMTM;
}

static int slot_of(const IrFusion *f, int branch) {
    for (int i = 0; i < f->nb; i++)
        if (f->branch[i] == branch) return i;
    mm_assert(0);
    return -1;
}

static IrNode *state_leaf(Derive *D, int idx) {
    IrNode *s = ir_leaf(&D->b, OP_STATE);
    s->flags = IRF_STATE;
    s->state = idx;
    s->name = IR_STATE(D->p, idx)->name;
    int c = (int)IR_STATE(D->p, idx)->numel;
    ir_set_shape(s, false, 1, &c);
    return s;
}

/* (C) state -> (B, C) per example. */
static IrNode *bcast_state(Derive *D, int idx, const char *role) {
    D->b.role = role;
    IrNode *s = state_leaf(D, idx);
    IrNode *n = ir_node1(&D->b, OP_BCAST, s);
    int d[2] = {0, s->shape[0]};
    ir_set_shape(n, true, 2, d);
    return n;
}

static IrNode *cloned(IrNode *n) { return n->clone; }

/* The MMTM gate of branch b with the cross-modal flow cut (§3): built from
 * the forward graph's nodes of this module: gate = sigmoid(excite(relu(
 * squeeze_fc(concat(squeezes))))). */
static IrNode *cut_gate(Derive *D, IrNode *gate) {
    IrProgram *p = D->p;
    IrFusion *f = IR_FUSION(p, gate->fusion);
    IrNode *excite = gate->src[0], *relu = excite->src[0], *hidden = relu->src[0], *cat = hidden->src[0];
    mm_assert(excite->op == OP_LINEAR && relu->op == OP_RELU && hidden->op == OP_LINEAR && cat->op == OP_CONCAT);
    IrNode *parts[IR_MAXSRC];
    D->b.loc = gate->loc;
    D->b.branch = gate->branch;
    D->b.fusion = gate->fusion;
    for (int i = 0; i < cat->nsrc; i++)
        parts[i] = f->branch[i] == gate->branch ? cloned(cat->src[i]) : bcast_state(D, f->squeeze_state[i], "squeeze-mean");
    D->b.role = "cut";
    IrNode *c = ir_clone(&D->b, cat, parts);
    c->branch = gate->branch;
    IrNode *src[3] = {c, cloned(hidden->src[1]), hidden->nsrc > 2 ? cloned(hidden->src[2]) : NULL};
    IrNode *h = ir_clone(&D->b, hidden, src);
    h->branch = gate->branch;
    IrNode *r = ir_clone(&D->b, relu, &h);
    r->branch = gate->branch;
    IrNode *esrc[3] = {r, cloned(excite->src[1]), excite->nsrc > 2 ? cloned(excite->src[2]) : NULL};
    IrNode *e = ir_clone(&D->b, excite, esrc);
    IrNode *g = ir_clone(&D->b, gate, &e);
    g->role = "cut-gate";
    D->b.role = NULL;
    return g;
}

/* The copy of node n in the variant being built, or a replacement. */
static IrNode *derive_node(Derive *D, IrNode *n) {
    IrProgram *p = D->p;
    IrNode *src[IR_MAXSRC];
    for (int i = 0; i < n->nsrc; i++) src[i] = cloned(n->src[i]);
    D->b.loc = n->loc;
    D->b.branch = n->branch;
    D->b.fusion = n->fusion;
    D->b.role = n->role;
    bool eval = D->kind == VAR_EVAL || D->kind == VAR_CUT || D->kind == VAR_SQUEEZE;
    if (eval && n->op == OP_BN_STATS) {
        IrNode *r = ir_node2(&D->b, OP_BN_RUNSTATS, src[1], src[2]);
        r->a = n->a;
        ir_copy_shape(r, n);
        return r;
    }
    if (eval && n->op == OP_DROPOUT) return src[0];
    if (n->op == OP_SIGMOID && is_role(n, "gate") && mmtm_node(p, n)) {
        IrFusion *f = IR_FUSION(p, n->fusion);
        int slot = slot_of(f, n->branch);
        if (D->kind == VAR_REBALANCE && n->branch == D->k) return bcast_state(D, f->gate_state[slot], "gate-mean");
        if (D->kind == VAR_CUT) return cut_gate(D, n);
        IrNode *g = ir_clone(&D->b, n, src);
        if (D->kind == VAR_TRAIN) {
            /* Running mean of this gate over regular steps (§5). */
            D->b.role = "gate-mean";
            IrNode *acc = ir_node2(&D->b, OP_ACCUM, g, state_leaf(D, f->gate_state[slot]));
            acc->a.mode = RT_ACC_STEPS;
            ir_copy_shape(acc, acc->src[1]);
        }
        return g;
    }
    IrNode *c = ir_clone(&D->b, n, src);
    if (D->kind == VAR_SQUEEZE && n->op == OP_GAP && is_role(n, "squeeze") && mmtm_node(p, n)) {
        IrFusion *f = IR_FUSION(p, n->fusion);
        D->b.role = "squeeze-mean";
        IrNode *acc = ir_node2(&D->b, OP_ACCUM, c, state_leaf(D, f->squeeze_state[slot_of(f, n->branch)]));
        acc->a.mode = RT_ACC_SAMPLES;
        ir_copy_shape(acc, acc->src[1]);
    }
    return c;
}

/* Keep what the outputs, the loss and the state updates need; renumber. */
static void drop_dead(IrGraph *g) {
    int n = g->nodes.n;
    bool *live = NEWN(bool, n);
    for (int i = n - 1; i >= 0; i--) {
        IrNode *x = IR_NODE(g, i);
        if (x->flags & (IRF_OUTPUT | IRF_LOSS) || x->op == OP_ACCUM) live[i] = true;
        /* BatchNorm statistics update running state, but only matter when used. */
        if (!live[i]) continue;
        for (int j = 0; j < x->nsrc; j++) live[x->src[j]->id] = true;
    }
    PtrVec kept = {0};
    for (int i = 0; i < n; i++)
        if (live[i]) {
            IrNode *x = IR_NODE(g, i);
            x->id = kept.n;
            vec_push(&kept, x);
        }
    g->nodes = kept;
}

static IrGraph *derive(IrProgram *p, const char *name, IrVariant kind, int k) {
    Derive D = {p, {ir_graph_new(name, kind, k), -1, -1, {0}, NULL}, kind, k};
    IrGraph *fwd = p->fwd;
    for (int i = 0; i < fwd->nodes.n; i++) {
        IrNode *n = IR_NODE(fwd, i);
        n->clone = derive_node(&D, n);
    }
    IrGraph *g = D.b.g;
    for (int b = 0; b < p->branches.n; b++) g->logits[b] = fwd->logits[b] ? cloned(fwd->logits[b]) : NULL;
    g->pred = cloned(fwd->pred);
    g->loss = cloned(fwd->loss);
    if (kind == VAR_SQUEEZE) {
        /* Only the state updates matter. */
        for (int b = 0; b < p->branches.n; b++)
            if (g->logits[b]) g->logits[b]->flags &= ~IRF_OUTPUT;
        g->pred->flags &= ~IRF_OUTPUT;
        g->loss->flags &= ~(IRF_OUTPUT | IRF_LOSS);
        g->pred = g->loss = NULL;
        for (int b = 0; b < p->branches.n; b++) g->logits[b] = NULL;
    }
    if (kind == VAR_RUBI) {
        /* ALGORITHMS §7: the bias branch's logits, through a sigmoid, mask the
         * fused logits; loss = CE(masked, y) + CE(bias logits, y). */
        IrBuilder *b = &D.b;
        b->branch = -1;
        b->fusion = -1;
        b->role = "rubi";
        b->loc = fwd->loss->loc;
        IrNode *bias = g->logits[k];
        IrNode *mask = ir_node1(b, OP_SIGMOID, bias);
        mask->a.f = 1.0f;
        ir_copy_shape(mask, bias);
        IrNode *masked = ir_node2(b, OP_MUL, g->pred, mask);
        ir_copy_shape(masked, bias);
        IrNode *labels = NULL;
        for (int i = 0; i < g->nodes.n && !labels; i++)
            if (IR_NODE(g, i)->op == OP_LABELS) labels = IR_NODE(g, i);
        IrNode *ce1 = ir_node2(b, OP_CE, masked, labels);
        b->branch = k;
        IrNode *ce2 = ir_node2(b, OP_CE, bias, labels);
        b->branch = -1;
        int one = 1;
        ir_set_shape(ce1, false, 1, &one);
        ir_set_shape(ce2, false, 1, &one);
        IrNode *loss = ir_node2(b, OP_ADD, ce1, ce2);
        ir_set_shape(loss, false, 1, &one);
        g->loss->flags &= ~(IRF_LOSS | IRF_OUTPUT);
        loss->flags |= IRF_LOSS | IRF_OUTPUT;
        loss->name = "loss";
        g->loss = loss;
    }
    drop_dead(g);
    vec_push(&p->graphs, g);
    return g;
}

void pass_variants(IrProgram *p) {
    bool mmtm = false;
    for (int i = 0; i < p->fusions.n; i++) mmtm |= IR_FUSION(p, i)->kind == FUSE_MMTM;
    derive(p, "train", VAR_TRAIN, -1);
    if (mmtm)
        for (int b = 0; b < p->branches.n; b++) {
            /* Only branches gated by some MMTM can be re-balanced. */
            bool gated = false;
            for (int i = 0; i < p->fusions.n; i++) {
                IrFusion *f = IR_FUSION(p, i);
                for (int j = 0; f->kind == FUSE_MMTM && j < f->nb; j++) gated |= f->branch[j] == b;
            }
            if (gated) derive(p, arena_printf(mm_arena, "rebalance-%s", IR_BRANCH(p, b)->name), VAR_REBALANCE, b);
        }
    if (p->branches.n >= 2)
        for (int b = 0; b < p->branches.n; b++)
            if (!IR_BRANCH(p, b)->headless) /* the bias branch's logits mask the prediction */
                derive(p, arena_printf(mm_arena, "rubi-%s", IR_BRANCH(p, b)->name), VAR_RUBI, b);
    derive(p, "eval", VAR_EVAL, -1);
    if (mmtm) {
        derive(p, "cut", VAR_CUT, -1);
        derive(p, "squeeze", VAR_SQUEEZE, -1);
    }
}
