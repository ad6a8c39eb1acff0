/* fuse.c — fold element-wise consumers into the kernel of their producer.
 *
 * A ReLU (or a sigmoid) whose input has no other consumer is applied by the
 * producing kernel as it stores its result: one pass over memory instead of
 * two, and one buffer. The folded node keeps its place in the graph (so the
 * IR still reads as the model) with `fused` pointing at the producer; the
 * planner gives it the producer's buffer and the back ends emit no kernel
 * for it.
 *
 * For the C back end, a 2-D max pooling of a convolution's output (after
 * its ReLU) is folded into the convolution too: the convolution's kernel
 * pools each example's planes while they are still in cache and stores
 * only the pooled map (and, in training, the argmaxes), so the full-size
 * map is never written to memory nor read back. Its only other reader may
 * be the pooling gradient's fused ReLU gradient, which masks by the pooled
 * value instead.
 *
 * Also for the C back end, an add computes operands that are a channel
 * scaling (x * g[n][c]) or a global-average-pool gradient (s[n][c] / Q)
 * itself, when it is their only reader: in MMTM's backward pass
 * dX = chscale(dY, gate) + gap_dx(dSqueeze) (then the ReLU gradient) is one
 * pass over memory instead of three. Such an operand points its `fused` at
 * the add, which comes after it; the planner keeps its sources alive until
 * the add. The CUDA back end keeps these kernels separate. */
#include <string.h>

#include "passes.h"

/* Producers whose kernels know how to apply an epilogue at the store:
 * forward ops take ReLU and sigmoid; gradient producers take the ReLU
 * gradient (a mask by the ReLU's output, read by the producer's kernel). */
static bool takes_epilogue(const IrNode *n, IrOp epi) {
    switch (n->op) {
    case OP_CONV: case OP_LINEAR: case OP_BN_APPLY: return epi != OP_RELU_DX;
    case OP_ADD: case OP_CHSCALE: return true;
    case OP_MAXPOOL_DX: case OP_AVGPOOL_DX: case OP_CONV_DX: case OP_GAP_DX: case OP_BN_DX: return epi == OP_RELU_DX;
    default: return false;
    }
}

static void fuse_graph(IrGraph *g) {
    ir_count_uses(g);
    for (int i = 0; i < g->nodes.n; i++) {
        IrNode *n = IR_NODE(g, i);
        if (n->op != OP_RELU && n->op != OP_SIGMOID && n->op != OP_RELU_DX) continue;
        IrNode *src = n->src[0];
        while (src->fused) src = src->fused; /* relu after a fused op: fold into the root */
        if (n->src[0]->uses != 1 || !takes_epilogue(src, n->op) || src->nepi == ARRAY_LEN(src->epi)) continue;
        /* The mask must not be the buffer being written. */
        if (n->op == OP_RELU_DX && (n->src[1] == src || n->src[1]->fused == src)) continue;
        if (src->flags & (IRF_OUTPUT | IRF_GRAD) || n->src[0]->flags & (IRF_OUTPUT | IRF_GRAD)) continue;
        n->fused = src;
        src->epi[src->nepi++] = n;
    }
}

/* May m's input read by x? Only the pooling itself, the convolution's own
 * ReLU, and a ReLU gradient folded into the gradient of m whose kernel
 * masks by m's pooled values (codegen/emit_c.c: the pooled mask). */
static bool pool_reader_ok(const IrNode *x, const IrNode *m, const IrNode *conv) {
    if (x == m || (x->fused == conv && x->op == OP_RELU)) return true;
    const IrNode *d = x->fused;
    return x->op == OP_RELU_DX && x->src[1] == m->src[0] && d && d->op == OP_MAXPOOL_DX && d->src[1] == m && d->nepi == 1 &&
           d->epi[0] == x;
}

static void fuse_pools(IrGraph *g) {
    for (int i = 0; i < g->nodes.n; i++) {
        IrNode *m = IR_NODE(g, i), *c = m->src[0];
        if (m->op != OP_MAXPOOL || m->a.nsp != 2 || m->flags & (IRF_OUTPUT | IRF_GRAD)) continue;
        while (c->fused) c = c->fused;
        if (c->op != OP_CONV || c->a.nsp != 2 || c->pool || c->flags & (IRF_OUTPUT | IRF_GRAD)) continue;
        /* The kernel applies a ReLU in its GEMM; other epilogues stay unfused. */
        if (c->nepi > 1 || (c->nepi == 1 && c->epi[0]->op != OP_RELU) || m->src[0] != (c->nepi ? c->epi[0] : c)) continue;
        if (m->src[0]->flags & (IRF_OUTPUT | IRF_GRAD)) continue;
        /* The padded planes of one example (and the unrolled offsets) as the C
         * back end's implicit convolutions hold them, and the pooling's row
         * passes on the stack (mmk_maxpool2d). */
        const IrNode *x = c->src[0];
        size_t planes = ir_conv_plane_floats(x, c, &c->a, c->a.p[1], c->a.p[2], c->a.s[1], c->a.s[2], false);
        size_t kk = (size_t)ir_channels(x) * c->a.k[1] * c->a.k[2], wv = (size_t)(m->shape[3] + 15) / 16 * 16;
        if (c->a.p[1] >= c->a.k[1] || c->a.p[2] >= c->a.k[2] || kk > 8192 || planes > ((size_t)4 << 20) || (size_t)c->shape[2] * wv * 8 > 65536)
            continue;
        bool ok = true;
        for (int j = 0; j < g->nodes.n && ok; j++) {
            IrNode *u = IR_NODE(g, j);
            for (int s = 0; s < u->nsrc; s++)
                if ((u->src[s] == c || u->src[s] == m->src[0]) && !pool_reader_ok(u, m, c)) ok = false;
        }
        if (!ok) continue;
        m->fused = c;
        c->pool = m;
    }
}

static void fold_add_operands(IrGraph *g) {
    ir_count_uses(g);
    for (int i = 0; i < g->nodes.n; i++) {
        IrNode *a = IR_NODE(g, i);
        if (a->op != OP_ADD || a->fused || !a->batched || a->ndim < 3 || a->flags & (IRF_OUTPUT | IRF_GRAD)) continue;
        for (int j = 0; j < a->nsrc; j++) {
            IrNode *s = a->src[j];
            if ((s->op == OP_CHSCALE || s->op == OP_GAP_DX) && s->uses == 1 && s->nepi == 0 && !s->fused &&
                !(s->flags & (IRF_OUTPUT | IRF_GRAD)) && s->ndim == a->ndim && memcmp(s->shape, a->shape, sizeof s->shape) == 0)
                s->fused = a;
        }
    }
}

void pass_fuse(IrProgram *p) {
    for (int i = 0; i < p->graphs.n; i++) {
        fuse_graph(p->graphs.v[i]);
        if (p->c_fusions) {
            fuse_pools(p->graphs.v[i]);
            fold_add_operands(p->graphs.v[i]);
        }
    }
}
