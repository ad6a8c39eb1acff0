/* autodiff.c — reverse-mode differentiation of the training graphs.
 *
 * One reverse walk over the forward nodes; one switch over the op table
 * builds each op's gradient from the builders (the ggml way). A node used
 * several times gets the sum of its gradients. Each parameter's gradient
 * node is flagged IRF_GRAD: the planner places it in the gradient arena.
 * Anything without a rule aborts with the op's name (an mmc bug). */
#include <stdio.h>
#include <string.h>

#include "passes.h"

typedef struct {
    IrProgram *p;
    IrBuilder b;
} Diff;

static IrNode *like(IrNode *n, const IrNode *shape_of) {
    ir_copy_shape(n, shape_of);
    return n;
}

static void add_grad(Diff *D, IrNode *x, IrNode *g) {
    if (!x->needs_grad) return;
    if (!x->grad) {
        x->grad = g;
        return;
    }
    x->grad = like(ir_node2(&D->b, OP_ADD, x->grad, g), x);
}

/* (C) sums over batch and positions: the gradient of a per-channel bias. */
static IrNode *reduce_ch(Diff *D, IrNode *dy) {
    IrNode *r = ir_node1(&D->b, OP_REDUCE_CH, dy);
    int c = ir_channels(dy);
    ir_set_shape(r, false, 1, &c);
    return r;
}

static void backward(Diff *D, IrNode *n) {
    IrNode *dy = n->grad, **s = n->src, *r;
    IrBuilder *b = &D->b;
    b->loc = n->loc;
    b->branch = n->branch;
    b->fusion = n->fusion;
    b->role = n->role;
    switch (n->op) {
    case OP_CONV:
        if (s[0]->needs_grad) {
            r = like(ir_node2(b, OP_CONV_DX, dy, s[1]), s[0]);
            r->a = n->a;
            add_grad(D, s[0], r);
        }
        if (s[1]->needs_grad) {
            r = like(ir_node2(b, OP_CONV_DW, dy, s[0]), s[1]);
            r->a = n->a;
            add_grad(D, s[1], r);
        }
        if (n->nsrc > 2 && s[2]->needs_grad) add_grad(D, s[2], reduce_ch(D, dy));
        break;
    case OP_MAXPOOL:
        /* The forward pass records where each window's maximum is; the
         * backward adds the gradient there. */
        n->a.mode = 1;
        r = like(ir_node2(b, OP_MAXPOOL_DX, dy, n), s[0]);
        r->a = n->a;
        add_grad(D, s[0], r);
        break;
    case OP_AVGPOOL:
        r = like(ir_node1(b, OP_AVGPOOL_DX, dy), s[0]);
        r->a = n->a;
        add_grad(D, s[0], r);
        break;
    case OP_GAP: add_grad(D, s[0], like(ir_node1(b, OP_GAP_DX, dy), s[0])); break;
    case OP_FLATTEN: add_grad(D, s[0], like(ir_node1(b, OP_RESHAPE, dy), s[0])); break;
    case OP_LINEAR:
        if (s[0]->needs_grad) add_grad(D, s[0], like(ir_node2(b, OP_LINEAR_DX, dy, s[1]), s[0]));
        if (s[1]->needs_grad) add_grad(D, s[1], like(ir_node2(b, OP_LINEAR_DW, dy, s[0]), s[1]));
        if (n->nsrc > 2 && s[2]->needs_grad) add_grad(D, s[2], reduce_ch(D, dy));
        break;
    case OP_RELU: add_grad(D, s[0], like(ir_node2(b, OP_RELU_DX, dy, n), n)); break;
    case OP_SIGMOID:
        r = like(ir_node2(b, OP_SIGMOID_DX, dy, n), n);
        r->a.f = n->a.f;
        add_grad(D, s[0], r);
        break;
    case OP_BN_APPLY: {
        /* Batch normalisation in training, y = (x - mean) * inv * gamma +
         * beta with the batch's own mean and inv = 1/std (s[1], BN_STATS of
         * the same x), differentiated as one: one reduction over dy and x
         * gives sum dy and sum dy (x - mean) per channel; beta's and gamma's
         * gradients are those sums (the latter times inv), and x's is one
         * element-wise pass, through the statistics included. BN_STATS
         * itself then receives no gradient. */
        mm_assert(s[1]->op == OP_BN_STATS && s[1]->src[0] == s[0]);
        IrNode *sums = like(ir_node3(b, OP_BN_DSUMS, dy, s[0], s[1]), s[1]);
        if (s[0]->needs_grad) {
            IrNode *in[5] = {dy, s[0], s[1], s[2], sums};
            add_grad(D, s[0], like(ir_node(b, OP_BN_DX, 5, in), s[0]));
        }
        for (int i = 2; i < 4; i++)
            if (s[i]->needs_grad) {
                r = like(ir_node2(b, OP_BN_DPARAM, sums, s[1]), s[i]);
                r->a.mode = i == 2;
                add_grad(D, s[i], r);
            }
        break;
    }
    case OP_DROPOUT:
        r = like(ir_node1(b, OP_DROPOUT_DX, dy), n);
        r->a = n->a;
        add_grad(D, s[0], r);
        break;
    case OP_ADD:
        for (int i = 0; i < n->nsrc; i++) add_grad(D, s[i], dy);
        break;
    case OP_MUL:
        add_grad(D, s[0], like(ir_node2(b, OP_MUL, dy, s[1]), n));
        add_grad(D, s[1], like(ir_node2(b, OP_MUL, dy, s[0]), n));
        break;
    case OP_MEAN:
        if (n->nsrc == 1) {
            add_grad(D, s[0], dy);
            break;
        }
        r = like(ir_node1(b, OP_SCALE, dy), n);
        r->a.f = 1.0f / (float)n->nsrc;
        for (int i = 0; i < n->nsrc; i++) add_grad(D, s[i], r);
        break;
    case OP_SCALE:
        r = like(ir_node1(b, OP_SCALE, dy), n);
        r->a.f = n->a.f;
        add_grad(D, s[0], r);
        break;
    case OP_CONCAT: {
        int off = 0;
        for (int i = 0; i < n->nsrc; i++) {
            if (s[i]->needs_grad) {
                r = like(ir_node1(b, OP_SLICE_CH, dy), s[i]);
                r->a.off = off;
                r->a.n = ir_channels(s[i]);
                add_grad(D, s[i], r);
            }
            off += ir_channels(s[i]);
        }
        break;
    }
    case OP_CHSCALE:
        if (s[0]->needs_grad) add_grad(D, s[0], like(ir_node2(b, OP_CHSCALE, dy, s[1]), s[0]));
        if (s[1]->needs_grad) add_grad(D, s[1], like(ir_node2(b, OP_CHSCALE_DG, dy, s[0]), s[1]));
        break;
    case OP_CE: add_grad(D, s[0], like(ir_node3(b, OP_CE_DX, dy, s[0], s[1]), s[0])); break;
    default: {
        char msg[96];
        snprintf(msg, sizeof msg, "autodiff: no gradient rule for op '%s'", ir_op_name[n->op]);
        mm_panic(__FILE__, __LINE__, msg);
    }
    }
}

static void differentiate(IrProgram *p, IrGraph *g) {
    int nfwd = g->nodes.n;
    for (int i = 0; i < nfwd; i++) {
        IrNode *n = IR_NODE(g, i);
        n->grad = NULL;
        n->needs_grad = n->op == OP_PARAM;
        if (ir_op_flags[n->op] & OPF_DIFF)
            for (int j = 0; j < n->nsrc; j++) n->needs_grad |= n->src[j]->needs_grad;
    }
    Diff D = {p, {g, -1, -1, g->loss->loc, NULL}};
    IrNode *one = ir_leaf(&D.b, OP_ONE);
    ir_copy_shape(one, g->loss);
    g->loss->grad = one;
    for (int i = nfwd - 1; i >= 0; i--) {
        IrNode *n = IR_NODE(g, i);
        if (n->grad && n->needs_grad && n->op != OP_PARAM) backward(&D, n);
    }
    /* Each parameter's gradient gets its own node, stored in the gradient arena. */
    ir_count_uses(g);
    for (int i = 0; i < nfwd; i++) {
        IrNode *n = IR_NODE(g, i);
        if (n->op != OP_PARAM || !n->grad) continue;
        IrNode *gr = n->grad;
        if (gr->flags & IRF_GRAD || gr->uses > 0 || ir_op_flags[gr->op] & (OPF_VIEW | OPF_LEAF) || gr->buf != BUF_NONE) {
            D.b.loc = n->loc;
            gr = like(ir_node1(&D.b, OP_SCALE, gr), n);
            gr->a.f = 1.0f;
        }
        gr->flags |= IRF_GRAD;
        gr->param = n->param;
        gr->name = arena_printf(mm_arena, "grad %s", n->name);
        gr->branch = n->branch;
        gr->fusion = n->fusion;
        n->grad = gr;
    }
}

void pass_autodiff(IrProgram *p) {
    for (int i = 0; i < p->graphs.n; i++) {
        IrGraph *g = p->graphs.v[i];
        if (g->kind == VAR_TRAIN || g->kind == VAR_REBALANCE || g->kind == VAR_RUBI) differentiate(p, g);
    }
}
