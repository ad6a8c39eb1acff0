/* fuse.c — fold element-wise consumers into the kernel of their producer.
 *
 * A ReLU (or a sigmoid) whose input has no other consumer is applied by the
 * producing kernel as it stores its result: one pass over memory instead of
 * two, and one buffer. The folded node keeps its place in the graph (so the
 * IR still reads as the model) with `fused` pointing at the producer; the
 * planner gives it the producer's buffer and the back ends emit no kernel
 * for it. */
#include "passes.h"

/* Producers whose kernels know how to apply an epilogue at the store:
 * forward ops take ReLU and sigmoid; gradient producers take the ReLU
 * gradient (a mask by the ReLU's output, read by the producer's kernel). */
static bool takes_epilogue(const IrNode *n, IrOp epi) {
    switch (n->op) {
    case OP_CONV: case OP_LINEAR: case OP_BN_APPLY: return epi != OP_RELU_DX;
    case OP_ADD: case OP_CHSCALE: return true;
    case OP_MAXPOOL_DX: case OP_AVGPOOL_DX: case OP_CONV_DX: case OP_GAP_DX: case OP_BN_APPLY_DX: return epi == OP_RELU_DX;
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

void pass_fuse(IrProgram *p) {
    for (int i = 0; i < p->graphs.n; i++) fuse_graph(p->graphs.v[i]);
}
