/* plan.c — memory planning.
 *
 * Parameters, gradients, optimizer state and model state each live in one
 * allocation laid out by the parameter and state tables (shapes.c). Here
 * every other tensor of every graph gets an offset in the activation arena:
 * batched tensors in floats per example (the program multiplies by its
 * largest batch), the rest in a small fixed arena. A buffer is freed after
 * its last consumer and reused (first fit); an in-place op takes over its
 * input's buffer when the input dies at it. Views and fused element-wise
 * ops share their producer's buffer. All graphs share the arenas: they
 * never run at the same time. */
#include <stdlib.h>
#include <string.h>

#include "passes.h"

typedef struct {
    size_t off, size;
    int end;      /* last node index that reads it */
    IrNode *owner;
} Block;

typedef struct {
    Block *v;
    int n, cap;
    size_t top;
} Pool;

static size_t align16(size_t x) { return (x + 15) & ~(size_t)15; }

/* Live blocks are kept sorted by offset; freeing keeps the order. */
static void pool_free_dead(Pool *p, int now) {
    int k = 0;
    for (int i = 0; i < p->n; i++)
        if (p->v[i].end >= now) p->v[k++] = p->v[i];
    p->n = k;
}

/* First fit: the lowest gap between live blocks that holds `size`. */
static size_t pool_alloc(Pool *p, size_t size, int end, IrNode *owner) {
    size_t at = 0;
    int pos = 0;
    for (; pos < p->n; pos++) {
        if (p->v[pos].off >= at + size) break;
        if (p->v[pos].off + p->v[pos].size > at) at = p->v[pos].off + p->v[pos].size;
    }
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 64;
        p->v = arena_realloc(mm_arena, p->v, sizeof(Block) * (size_t)p->n, sizeof(Block) * (size_t)p->cap);
    }
    memmove(p->v + pos + 1, p->v + pos, sizeof(Block) * (size_t)(p->n - pos));
    p->v[pos] = (Block){at, size, end, owner};
    p->n++;
    if (at + size > p->top) p->top = at + size;
    return at;
}

static Block *pool_find(Pool *p, IrNode *owner) {
    for (int i = 0; i < p->n; i++)
        if (p->v[i].owner == owner) return &p->v[i];
    return NULL;
}

/* The node whose buffer n uses. */
static IrNode *owner_of(IrNode *n) {
    for (;;) {
        if (n->fused) n = n->fused;
        else if (ir_op_flags[n->op] & OPF_VIEW) n = n->src[0];
        else return n;
    }
}

static void plan_graph(IrProgram *p, IrGraph *g) {
    int n = g->nodes.n;
    ir_count_uses(g);
    /* Lifetimes, gathered on owners. */
    int *end = NEWN(int, n);
    for (int i = 0; i < n; i++) {
        IrNode *x = IR_NODE(g, i);
        int e = x->uses ? x->last_use : i;
        if (x->flags & (IRF_OUTPUT | IRF_LOSS)) e = n;
        IrNode *o = owner_of(x);
        if (e > end[o->id]) end[o->id] = e;
        if (i > end[o->id]) end[o->id] = i;
    }
    /* An operand computed by a later kernel (fuse.c: an add's folded channel
     * scaling) reads its sources there. */
    for (int i = 0; i < n; i++) {
        IrNode *x = IR_NODE(g, i);
        mm_assert(x->id == i);
        if (!x->fused || x->fused->id <= i) continue;
        for (int j = 0; j < x->nsrc; j++) {
            IrNode *o = owner_of(x->src[j]);
            if (x->fused->id > end[o->id]) end[o->id] = x->fused->id;
        }
    }
    Pool act = {0}, fixed = {0};
    for (int i = 0; i < n; i++) {
        IrNode *x = IR_NODE(g, i);
        if (x->op == OP_PARAM) { x->buf = BUF_PARAM; x->off = IR_PARAM(p, x->param)->off; continue; }
        if (x->op == OP_STATE) { x->buf = BUF_STATE; x->off = IR_STATE(p, x->state)->off; continue; }
        if (x->op == OP_INPUT) { x->buf = BUF_INPUT; x->off = (size_t)x->input; continue; }
        if (x->op == OP_LABELS) { x->buf = BUF_LABELS; x->off = 0; continue; }
        if (x->op == OP_ACCUM) { x->buf = BUF_NONE; continue; }
        if (x->flags & IRF_GRAD) { x->buf = BUF_GRAD; x->off = IR_PARAM(p, x->param)->off; continue; }
        /* An operand a later kernel computes (fuse.c) has no buffer. */
        if (x->fused && x->fused->id > i) { x->buf = BUF_NONE; x->off = 0; continue; }
        IrNode *o = owner_of(x);
        if (o != x) { x->buf = o->buf; x->off = o->off; continue; }
        pool_free_dead(&act, i);
        pool_free_dead(&fixed, i);
        Pool *pool = x->batched ? &act : &fixed;
        /* A max-pool that records its argmaxes keeps them after its values; a
         * convolution with a pooling folded in holds the pool's result. */
        const IrNode *r = x->pool ? x->pool : x;
        size_t size = align16(ir_numel(r) * (r->op == OP_MAXPOOL && r->a.mode ? 2 : 1));
        /* In place: take over the first input's buffer when it dies here. */
        if (ir_op_flags[x->op] & OPF_INPLACE) {
            IrNode *s = owner_of(x->src[0]);
            Block *blk = pool_find(pool, s);
            if (blk && end[s->id] == i && blk->size == size && s->batched == x->batched) {
                blk->owner = x;
                blk->end = end[i];
                x->buf = s->buf;
                x->off = s->off;
                continue;
            }
        }
        x->buf = x->batched ? BUF_ACT : BUF_FIXED;
        x->off = pool_alloc(pool, size, end[i], x);
    }
    g->act_floats = act.top;
    g->fixed_floats = fixed.top;
}

void pass_plan(IrProgram *p) {
    for (int i = 0; i < p->graphs.n; i++) plan_graph(p, p->graphs.v[i]);
}
