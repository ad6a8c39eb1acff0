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
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "passes.h"

/* A live buffer: where it is, and the node after which it is dead. */
typedef struct {
    size_t off, size;
    int end;
    struct Pool *pool;
} Block;

/* An arena's free space, as a list of intervals sorted by offset, the last
 * one unbounded (it starts where the highest live block ends). First fit
 * then scans the free intervals, not the live blocks: in a training graph
 * every forward activation stays live until its gradient, so scanning the
 * live blocks at every node took time quadratic in the graph (18 s for
 * 10^5 layers); the free intervals stay few. The offsets are the ones a
 * scan of the live blocks gives. */
typedef struct Pool {
    size_t *off, *size;
    int n, cap;
    size_t top;
} Pool;

static size_t align16(size_t x) { return (x + 15) & ~(size_t)15; }

static void pool_init(Pool *p) {
    p->cap = 64;
    p->off = NEWN(size_t, p->cap);
    p->size = NEWN(size_t, p->cap);
    p->n = 1; /* [0, infinity) */
    p->size[0] = SIZE_MAX;
}

static void pool_insert(Pool *p, int at, size_t off, size_t size) {
    if (p->n == p->cap) {
        p->cap *= 2;
        p->off = arena_realloc(mm_arena, p->off, sizeof(size_t) * (size_t)p->n, sizeof(size_t) * (size_t)p->cap);
        p->size = arena_realloc(mm_arena, p->size, sizeof(size_t) * (size_t)p->n, sizeof(size_t) * (size_t)p->cap);
    }
    memmove(p->off + at + 1, p->off + at, sizeof(size_t) * (size_t)(p->n - at));
    memmove(p->size + at + 1, p->size + at, sizeof(size_t) * (size_t)(p->n - at));
    p->off[at] = off;
    p->size[at] = size;
    p->n++;
}

static void pool_remove(Pool *p, int at) {
    memmove(p->off + at, p->off + at + 1, sizeof(size_t) * (size_t)(p->n - at - 1));
    memmove(p->size + at, p->size + at + 1, sizeof(size_t) * (size_t)(p->n - at - 1));
    p->n--;
}

/* First fit: the lowest free interval that holds `size`. */
static size_t pool_alloc(Pool *p, size_t size) {
    int i = 0;
    while (p->size[i] < size) i++; /* the last interval holds anything */
    size_t at = p->off[i];
    if (p->size[i] == SIZE_MAX) p->off[i] += size; /* stays unbounded */
    else if (p->size[i] == size) pool_remove(p, i);
    else {
        p->off[i] += size;
        p->size[i] -= size;
    }
    if (at + size > p->top) p->top = at + size;
    return at;
}

/* Give [off, off + size) back, merging it with the free intervals it touches. */
static void pool_release(Pool *p, size_t off, size_t size) {
    int lo = 0, hi = p->n; /* the first interval after off */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (p->off[mid] > off) hi = mid;
        else lo = mid + 1;
    }
    int i = lo;
    mm_assert(i < p->n && off + size <= p->off[i]);
    if (off + size == p->off[i]) { /* joins the next */
        p->off[i] = off;
        if (p->size[i] != SIZE_MAX) p->size[i] += size;
    } else {
        pool_insert(p, i, off, size);
    }
    if (i > 0 && p->off[i - 1] + p->size[i - 1] == p->off[i]) { /* and the previous */
        p->size[i - 1] = p->size[i] == SIZE_MAX ? SIZE_MAX : p->size[i - 1] + p->size[i];
        pool_remove(p, i);
    }
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
    pool_init(&act);
    pool_init(&fixed);
    /* The live blocks by owner, and by the node they die after: dying[e]
     * lists owners whose block ended at e when listed (a block taken over
     * in place moves to its new owner and end, and its old entry is
     * skipped). Blocks die before the next node that allocates. */
    Block *live = NEWN(Block, n);
    int *dying_head = NEWN(int, n + 1), *dying_next = NEWN(int, n + 1), *dying_id = NEWN(int, n + 1), ndying = 0;
    int freed = 0; /* blocks with end < freed are given back */
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
        for (; freed < i; freed++)
            for (int d = dying_head[freed]; d; d = dying_next[d]) {
                Block *b = &live[dying_id[d]];
                if (b->pool && b->end == freed) {
                    pool_release(b->pool, b->off, b->size);
                    b->pool = NULL;
                }
            }
        Pool *pool = x->batched ? &act : &fixed;
        /* A max-pool that records its argmaxes keeps them after its values; a
         * convolution with a pooling folded in holds the pool's result. */
        const IrNode *r = x->pool ? x->pool : x;
        size_t size = align16(ir_numel(r) * (r->op == OP_MAXPOOL && r->a.mode ? 2 : 1));
        Block *blk = NULL;
        /* In place: take over the first input's buffer when it dies here. */
        if (ir_op_flags[x->op] & OPF_INPLACE) {
            IrNode *s = owner_of(x->src[0]);
            Block *b = &live[s->id];
            if (b->pool == pool && end[s->id] == i && b->size == size && s->batched == x->batched) {
                blk = &live[i];
                *blk = *b;
                b->pool = NULL;
                x->buf = s->buf;
                x->off = s->off;
            }
        }
        if (!blk) {
            x->buf = x->batched ? BUF_ACT : BUF_FIXED;
            x->off = pool_alloc(pool, size);
            blk = &live[i];
            *blk = (Block){x->off, size, 0, pool};
        }
        blk->end = end[i];
        int e = end[i] < n ? end[i] : n;
        dying_id[++ndying] = i; /* at most one entry per allocating node */
        dying_next[ndying] = dying_head[e];
        dying_head[e] = ndying;
    }
    g->act_floats = act.top;
    g->fixed_floats = fixed.top;
}

void pass_plan(IrProgram *p) {
    for (int i = 0; i < p->graphs.n; i++) plan_graph(p, p->graphs.v[i]);
}
