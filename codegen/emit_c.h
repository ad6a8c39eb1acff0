/* emit_c.h — what the C back end's two files share, private to them:
 * emit_c.c (kernels, run functions, tables) and emit_conv.c (the
 * convolutions and their gradients, the largest kernels by far). */
#ifndef MM_EMIT_C_H
#define MM_EMIT_C_H

#include "codegen.h"

typedef struct {
    Buf *b;
    const IrProgram *p;
    const IrGraph *g;
    int gi;
    const char *gname;   /* C identifier of the graph */
    size_t scratch;      /* floats per thread */
    size_t partial;      /* floats per chunk */
    size_t wt;           /* floats of the largest transposed weight */
    int nk;              /* kernels emitted in this graph */
    bool grads;          /* it has a table of when its gradients are final (grad_ready) */
} Emit;

#define P(...) buf_printf(E->b, __VA_ARGS__)

/* emit_c.c: statements applying n's fused element-wise ops to `v`, the
 * value to be stored at index `idx`. */
void cg_c_epilogue(Emit *E, const IrNode *n, const char *indent, const char *idx);

/* emit_conv.c: the body of the kernel of a convolution (OP_CONV), of its
 * input gradient (OP_CONV_DX) or of its weight gradient (OP_CONV_DW); it
 * raises E's scratch, partial and wt to what the kernel needs. */
void cg_c_conv(Emit *E, const IrNode *n);

#endif
