/* ewise.h — the maths of the element-wise ops, written once for both back
 * ends. emit_c.c and emit_cuda.c write every element-wise kernel, and every
 * epilogue fused into another kernel's store (passes/fuse.c), from these
 * rows; what the expressions call (MMK_EXP, mmk_keep) is defined once for C
 * and CUDA in runtime/mmrt_ewise.h. So a formula cannot drift between a
 * kernel and an epilogue, or between the CPU oracle and the GPU.
 *
 * EW(OP, value, GRAD_OP, its value)
 *   OP       an op of ir/ops.h flagged OPF_ELEM
 *   value    its value at one element, a C expression template
 *   GRAD_OP  the op autodiff uses for its gradient when that is an
 *            element-wise op of its own (also OPF_ELEM), with its value;
 *            NONE where passes/autodiff.c builds the gradient from other
 *            ops (an add passes dy on, a mul is two muls, a mean or a scale
 *            is a scale)
 *
 * In a template, {name} stands for:
 *   {x0} {x1}        the op's sources 0 and 1
 *   {dy} {y}         a gradient op's sources: the gradient of the forward
 *                    op's output, and that output
 *   {sum} {mean}     all the sources added in order, their mean
 *   {i}              the element's index
 *   {f} {1/f} {1/(1-f)}  the node's attribute f (ir.h) as a float literal
 *   {n}              the node's attribute n, an integer
 * The emitter binds each source to what it reads there (x0[i] in a kernel
 * of its own, the value being stored in an epilogue) and pastes it as
 * written, so sources are bound to primary expressions. Constants are
 * float literals (1.0f), as everywhere in the kernels. h is the step's
 * hyper-parameters (seed and step): a kernel whose expressions read h is
 * passed them.
 *
 * Adding an element-wise op: its row in ir/ops.h (OPF_ELEM), one row here,
 * and its gradient rule in passes/autodiff.c (with, when the gradient is an
 * element-wise op of its own, that op's row in ir/ops.h). */
#ifndef MM_EWISE_H
#define MM_EWISE_H

#include "../ir/ir.h"

#define CG_EWISE(EW)                                                                                                    \
    /* op       value                                                  gradient op  its value */                         \
    EW(RELU,    "{x0} > 0.0f ? {x0} : 0.0f",                           RELU_DX,    "{y} > 0.0f ? {dy} : 0.0f")            \
    /* f sigmoid(x), f the scale: its derivative f s (1 - s) is y (1 - y / f). */                                      \
    EW(SIGMOID, "{f} / (1.0f + MMK_EXP(-{x0}))",                       SIGMOID_DX, "{dy} * {y} * (1.0f - {y} * {1/f})")   \
    /* Keeps an element with probability 1 - f, by a hash of (seed, step, the node's stream n, i): the gradient     \
     * recomputes the forward pass's mask. */                                                                           \
    EW(DROPOUT, "mmk_keep(h->seed, h->step, {n}u, {i}, {f}) ? {x0} * {1/(1-f)} : 0.0f",                                 \
                DROPOUT_DX, "mmk_keep(h->seed, h->step, {n}u, {i}, {f}) ? {dy} * {1/(1-f)} : 0.0f")                      \
    EW(SCALE,   "{x0} * {f}",                                          NONE,       NULL)                                 \
    EW(MUL,     "{x0} * {x1}",                                         NONE,       NULL)                                 \
    EW(ADD,     "{sum}",                                               NONE,       NULL)                                 \
    EW(MEAN,    "{mean}",                                              NONE,       NULL)

/* Element-wise op n's value as a C expression: source k read as src[k], the
 * element's index as idx. An op without a row is an mmc bug (abort). */
const char *cg_ewise(const IrNode *n, const char *const *src, const char *idx);
/* Whether op's value reads the step's hyper-parameters h (dropout's mask). */
bool cg_ewise_reads_hyper(IrOp op);
/* An epilogue e, an element-wise op folded into its producer's store, reads
 * the value being stored as its source 0. Its source 1, if it has one (a
 * ReLU gradient's mask: the ReLU's output), is read from memory: the kernel
 * is passed it as argument e<i>. That source, or NULL. */
const IrNode *cg_epilogue_arg(const IrNode *e);

#endif
