/* ir.c — op tables, node builders, shapes, the text dump and the verifier. */
#include "ir.h"

#include <stdio.h>
#include <string.h>

const char *const ir_op_name[OP_COUNT] = {
#define X(e, name, nsrc, flags) name,
    MM_OPS(X)
#undef X
};
const int ir_op_nsrc[OP_COUNT] = {
#define X(e, name, nsrc, flags) nsrc,
    MM_OPS(X)
#undef X
};
const unsigned ir_op_flags[OP_COUNT] = {
#define X(e, name, nsrc, flags) flags,
    MM_OPS(X)
#undef X
};
_Static_assert(sizeof(ir_op_name) / sizeof(ir_op_name[0]) == OP_COUNT, "op table out of step");

const char *const ir_variant_name[VAR_COUNT] = {
    "forward", "train", "rebalance", "rubi", "eval", "cut", "squeeze",
};

IrGraph *ir_graph_new(const char *name, IrVariant kind, int k) {
    IrGraph *g = NEW(IrGraph);
    g->name = name;
    g->kind = kind;
    g->k = k;
    return g;
}

static IrNode *new_node(IrBuilder *b, IrOp op) {
    IrNode *n = NEW(IrNode);
    n->id = b->g->nodes.n;
    n->op = op;
    n->branch = b->branch;
    n->fusion = b->fusion;
    n->param = n->state = n->input = -1;
    n->loc = b->loc;
    n->role = b->role;
    vec_push(&b->g->nodes, n);
    return n;
}

IrNode *ir_node(IrBuilder *b, IrOp op, int nsrc, IrNode **src) {
    mm_assert(nsrc <= IR_MAXSRC);
    mm_assert(ir_op_nsrc[op] < 0 ? nsrc >= 1 : nsrc == ir_op_nsrc[op] || op == OP_CONV || op == OP_LINEAR);
    IrNode *n = new_node(b, op);
    n->nsrc = nsrc;
    for (int i = 0; i < nsrc; i++) {
        mm_assert(src[i]);
        n->src[i] = src[i];
    }
    return n;
}

IrNode *ir_node1(IrBuilder *b, IrOp op, IrNode *a) { return ir_node(b, op, 1, &a); }
IrNode *ir_node2(IrBuilder *b, IrOp op, IrNode *a, IrNode *c) {
    IrNode *s[2] = {a, c};
    return ir_node(b, op, 2, s);
}
IrNode *ir_node3(IrBuilder *b, IrOp op, IrNode *a, IrNode *c, IrNode *d) {
    IrNode *s[3] = {a, c, d};
    return ir_node(b, op, 3, s);
}
IrNode *ir_node4(IrBuilder *b, IrOp op, IrNode *a, IrNode *c, IrNode *d, IrNode *e) {
    IrNode *s[4] = {a, c, d, e};
    return ir_node(b, op, 4, s);
}
IrNode *ir_leaf(IrBuilder *b, IrOp op) { return new_node(b, op); }

IrNode *ir_clone(IrBuilder *b, const IrNode *n, IrNode **src) {
    IrNode *c = new_node(b, n->op);
    int id = c->id;
    *c = *n;
    c->id = id;
    for (int i = 0; i < n->nsrc; i++) c->src[i] = src ? src[i] : NULL;
    c->grad = c->clone = NULL;
    c->needs_grad = false;
    c->uses = c->last_use = 0;
    c->buf = BUF_NONE;
    c->off = 0;
    c->fused = NULL;
    c->nepi = 0;
    c->pool = NULL;
    return c;
}

/* ---- shapes --------------------------------------------------------------- */
size_t ir_conv_plane_floats(const IrNode *in, const IrNode *out, const IrAttr *a, int pah, int paw, int sh, int sw, bool packed) {
    size_t wq = (size_t)(in->shape[3] + 2 * paw + sw - 1) / sw, hq = (size_t)(in->shape[2] + 2 * pah + sh - 1) / sh;
    size_t yc = packed ? (size_t)(ir_channels(out) + 31) / 32 * 32 : (size_t)ir_channels(out);
    return (size_t)ir_channels(in) * ((size_t)sh * sw * hq * wq + a->k[2] + 64) + yc * out->shape[2] * wq;
}

size_t ir_numel(const IrNode *n) {
    size_t e = 1;
    for (int i = n->batched ? 1 : 0; i < n->ndim; i++) e *= (size_t)n->shape[i];
    return e;
}

void ir_set_shape(IrNode *n, bool batched, int ndim, const int *dims) {
    mm_assert(ndim <= IR_MAXDIM);
    n->batched = batched;
    n->ndim = ndim;
    for (int i = 0; i < ndim; i++) n->shape[i] = dims[i];
    if (batched) n->shape[0] = 0;
}

void ir_copy_shape(IrNode *dst, const IrNode *src) {
    dst->batched = src->batched;
    dst->ndim = src->ndim;
    memcpy(dst->shape, src->shape, sizeof dst->shape);
}

char *ir_shape_str(const IrNode *n) {
    char s[96];
    int k = 0;
    s[k++] = '[';
    for (int i = 0; i < n->ndim; i++) {
        if (i) s[k++] = ',';
        if (i == 0 && n->batched)
            s[k++] = 'B';
        else
            k += snprintf(s + k, sizeof s - (size_t)k, "%d", n->shape[i]);
    }
    s[k++] = ']';
    s[k] = 0;
    return arena_strdup(mm_arena, s);
}

int ir_channels(const IrNode *n) { return n->ndim >= 2 ? n->shape[1] : 1; }

size_t ir_positions(const IrNode *n) {
    size_t e = 1;
    for (int i = 2; i < n->ndim; i++) e *= (size_t)n->shape[i];
    return e;
}

/* ---- groups ------------------------------------------------------------------ */
size_t ir_group_params(const IrProgram *p, unsigned group_bit) {
    size_t t = 0;
    for (int i = 0; i < p->params.n; i++)
        if (IR_PARAM(p, i)->groups & group_bit) t += IR_PARAM(p, i)->numel;
    return t;
}

const char *ir_group_name(const IrProgram *p, int group) {
    return arena_printf(mm_arena, "%s_%s", group % 2 ? "bypass" : "main", IR_BRANCH(p, group / 2)->name);
}

IrGraph *ir_find_graph(const IrProgram *p, const char *name) {
    for (int i = 0; i < p->graphs.n; i++) {
        IrGraph *g = p->graphs.v[i];
        if (strcmp(g->name, name) == 0) return g;
    }
    return NULL;
}

void ir_count_uses(IrGraph *g) {
    for (int i = 0; i < g->nodes.n; i++) IR_NODE(g, i)->uses = 0;
    for (int i = 0; i < g->nodes.n; i++) {
        IrNode *n = IR_NODE(g, i);
        for (int j = 0; j < n->nsrc; j++) {
            n->src[j]->uses++;
            n->src[j]->last_use = i;
        }
    }
}

/* ---- dump --------------------------------------------------------------------- */
static void dump_ints(Buf *b, const char *key, const int *v, int n) {
    buf_printf(b, " %s=", key);
    for (int i = 0; i < n; i++) buf_printf(b, "%s%d", i ? "x" : "", v[i]);
}

static void dump_attrs(Buf *b, const IrNode *n) {
    const IrAttr *a = &n->a;
    switch (n->op) {
    case OP_CONV: case OP_CONV_DX: case OP_CONV_DW:
    case OP_MAXPOOL: case OP_AVGPOOL: case OP_MAXPOOL_DX: case OP_AVGPOOL_DX: {
        int o = 3 - a->nsp;
        dump_ints(b, "k", a->k + o, a->nsp);
        dump_ints(b, "s", a->s + o, a->nsp);
        dump_ints(b, "p", a->p + o, a->nsp);
        break;
    }
    case OP_SIGMOID: case OP_SIGMOID_DX:
        if (a->f != 1.0f) buf_printf(b, " scale=%g", a->f);
        break;
    case OP_SCALE: buf_printf(b, " f=%g", a->f); break;
    case OP_DROPOUT: case OP_DROPOUT_DX: buf_printf(b, " p=%g", a->f); break;
    case OP_BN_STATS: buf_printf(b, " eps=%g momentum=%g", a->f, a->f2); break;
    case OP_BN_RUNSTATS: buf_printf(b, " eps=%g", a->f); break;
    case OP_BN_DPARAM: buf_printf(b, " of=%s", a->mode ? "gamma" : "beta"); break;
    case OP_SLICE_CH: buf_printf(b, " off=%d n=%d", a->off, a->n); break;
    case OP_ACCUM: buf_printf(b, " over=%s", a->mode == RT_ACC_STEPS ? "steps" : "samples"); break;
    default: break;
    }
}

static const char *buf_name[] = {"-", "act", "fixed", "param", "grad", "state", "input", "labels"};

void ir_dump_graph(Buf *b, const IrProgram *p, const IrGraph *g) {
    buf_printf(b, "graph %s (%d nodes)\n", g->name, g->nodes.n);
    for (int i = 0; i < g->nodes.n; i++) {
        const IrNode *n = IR_NODE(g, i);
        buf_printf(b, "  %%%-4d = %s", n->id, ir_op_name[n->op]);
        if (n->nsrc) {
            buf_puts(b, "(");
            for (int j = 0; j < n->nsrc; j++) buf_printf(b, "%s%%%d", j ? ", " : "", n->src[j]->id);
            buf_puts(b, ")");
        }
        if (n->name) buf_printf(b, " \"%s\"", n->name);
        dump_attrs(b, n);
        buf_printf(b, " : %s%s", n->dt == DT_I32 ? "i32" : "", ir_shape_str(n));
        if (n->flags) {
            buf_puts(b, " {");
            const char *fl[] = {"input", "param", "state", "output", "loss", "grad"};
            int first = 1;
            for (int f = 0; f < 6; f++)
                if (n->flags & (1u << f)) { buf_printf(b, "%s%s", first ? "" : ",", fl[f]); first = 0; }
            buf_puts(b, "}");
        }
        if (n->branch >= 0) buf_printf(b, " group=%s", IR_BRANCH(p, n->branch)->name);
        else buf_puts(b, " group=shared");
        if (n->fusion >= 0) buf_printf(b, " fusion=%s", IR_FUSION(p, n->fusion)->name);
        if (n->role) buf_printf(b, " role=%s", n->role);
        if (n->buf != BUF_NONE) buf_printf(b, " buf=%s+%zu", buf_name[n->buf], n->off);
        if (n->fused) buf_printf(b, " fused-into=%%%d", n->fused->id);
        if (n->loc.file) buf_printf(b, " @%d:%d", n->loc.line, n->loc.col);
        buf_puts(b, "\n");
    }
}

/* ---- Graphviz ------------------------------------------------------------------- */
/* The graph for `dot`: each branch's nodes in a cluster of its own, each
 * fusion module's (MMTM, SE) in one between them, the loss and prediction
 * outside. Parameters are not drawn as nodes: their names are listed in the
 * nodes that read them. State that a variant reads in place of the other
 * branch (the training-set squeeze means of `cut`, the gate means of a
 * re-balancing step) is drawn, in orange, so that the cut or bypass shows;
 * inputs are green, outputs bold, the backward pass's nodes dashed. */
static void dot_label(Buf *b, const char *s) {
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') buf_puts(b, "\\");
        buf_printf(b, "%c", *s);
    }
}

static void dot_node(Buf *b, const IrProgram *p, const IrNode *n) {
    buf_printf(b, "    n%d [label=\"", n->id);
    if (n->op == OP_INPUT) buf_printf(b, "input %s", IR_INPUT(p, n->input)->name);
    else if (n->op == OP_STATE) buf_printf(b, "state %s", IR_STATE(p, n->state)->name);
    else buf_puts(b, ir_op_name[n->op]);
    if (n->role) buf_printf(b, " (%s)", n->role);
    if (n->name && n->op != OP_INPUT && n->op != OP_STATE) {
        buf_puts(b, "\\n");
        dot_label(b, n->name);
    }
    buf_printf(b, "\\n%s%s", n->dt == DT_I32 ? "i32 " : "", ir_shape_str(n));
    for (int j = 0; j < n->nsrc; j++)
        if (n->src[j]->op == OP_PARAM) {
            buf_puts(b, "\\n");
            dot_label(b, IR_PARAM(p, n->src[j]->param)->name);
        }
    buf_puts(b, "\"");
    if (n->op == OP_INPUT || n->op == OP_LABELS) buf_puts(b, ", style=filled, fillcolor=\"#c7e9c0\"");
    else if (n->op == OP_STATE) buf_puts(b, ", style=filled, fillcolor=\"#fdd0a2\"");
    else if (ir_op_flags[n->op] & OPF_BWD) buf_puts(b, ", style=dashed");
    if (n->flags & (IRF_OUTPUT | IRF_LOSS)) buf_puts(b, ", penwidth=2.5");
    buf_puts(b, "];\n");
}

void ir_dump_dot(Buf *b, const IrProgram *p, const IrGraph *g) {
    buf_printf(b, "digraph \"%s.%s\" {\n", p->name, g->name);
    buf_printf(b, "    label=\"model %s, graph %s (%d nodes)\"; labelloc=t; rankdir=TB;\n", p->name, g->name, g->nodes.n);
    buf_puts(b, "    node [shape=box, style=rounded, fontname=\"Helvetica\", fontsize=10];\n");
    buf_puts(b, "    edge [color=\"#555555\"];\n");
    /* Clusters: fusion modules first (their nodes also carry a branch), then branches. */
    for (int f = 0; f < p->fusions.n; f++) {
        const IrFusion *fu = IR_FUSION(p, f);
        buf_printf(b, "  subgraph cluster_fusion%d {\n    label=\"%s %s", f, fu->kind == FUSE_MMTM ? "MMTM" : "SE", fu->name);
        if (fu->kind == FUSE_MMTM) {
            buf_puts(b, " (");
            for (int k = 0; k < fu->nb; k++) buf_printf(b, "%s%s", k ? ", " : "", fu->point[k]);
            buf_puts(b, ")");
        }
        buf_puts(b, "\"; color=\"#d62728\"; style=rounded;\n");
        for (int i = 0; i < g->nodes.n; i++) {
            const IrNode *n = IR_NODE(g, i);
            if (n->op != OP_PARAM && n->fusion == f) dot_node(b, p, n);
        }
        buf_puts(b, "  }\n");
    }
    for (int k = 0; k < p->branches.n; k++) {
        const IrBranch *br = IR_BRANCH(p, k);
        buf_printf(b, "  subgraph cluster_branch%d {\n    label=\"branch %s (input %s)\"; color=\"#1f77b4\"; style=rounded;\n", k,
                   br->name, IR_INPUT(p, br->input)->name);
        for (int i = 0; i < g->nodes.n; i++) {
            const IrNode *n = IR_NODE(g, i);
            if (n->op != OP_PARAM && n->fusion < 0 && n->branch == k) dot_node(b, p, n);
        }
        buf_puts(b, "  }\n");
    }
    for (int i = 0; i < g->nodes.n; i++) {
        const IrNode *n = IR_NODE(g, i);
        if (n->op != OP_PARAM && n->fusion < 0 && (n->branch < 0 || n->branch >= p->branches.n)) dot_node(b, p, n);
    }
    for (int i = 0; i < g->nodes.n; i++) {
        const IrNode *n = IR_NODE(g, i);
        if (n->op == OP_PARAM) continue;
        for (int j = 0; j < n->nsrc; j++)
            if (n->src[j]->op != OP_PARAM) buf_printf(b, "    n%d -> n%d;\n", n->src[j]->id, n->id);
    }
    buf_puts(b, "}\n");
}

/* ---- verifier ------------------------------------------------------------------ */
/* Checks what every pass must preserve: sources precede their users (so the
 * node order is an execution order), arities match the op table, shapes are
 * known and positive, leaves carry their table index. A failure is a bug in
 * mmc, not in the user's file. */
void ir_verify(const IrProgram *p, const IrGraph *g, const char *after) {
    for (int i = 0; i < g->nodes.n; i++) {
        IrNode *n = IR_NODE(g, i);
        char why[160] = "";
        if (n->id != i) snprintf(why, sizeof why, "id %d at position %d", n->id, i);
        else if (ir_op_nsrc[n->op] >= 0 && n->nsrc != ir_op_nsrc[n->op] && n->op != OP_CONV && n->op != OP_LINEAR)
            snprintf(why, sizeof why, "has %d sources, the op table says %d", n->nsrc, ir_op_nsrc[n->op]);
        else if (n->op == OP_PARAM && (n->param < 0 || n->param >= p->params.n))
            snprintf(why, sizeof why, "parameter without a table entry");
        else if (n->op == OP_STATE && (n->state < 0 || n->state >= p->states.n))
            snprintf(why, sizeof why, "state without a table entry");
        else if (n->ndim < 1 || n->ndim > IR_MAXDIM)
            snprintf(why, sizeof why, "rank %d", n->ndim);
        for (int j = 0; !why[0] && j < n->nsrc; j++) {
            IrNode *s = n->src[j];
            if (!s || s->id >= i || IR_NODE(g, s->id) != s)
                snprintf(why, sizeof why, "source %d is not an earlier node of this graph", j);
        }
        for (int d = n->batched ? 1 : 0; !why[0] && d < n->ndim; d++)
            if (n->shape[d] <= 0) snprintf(why, sizeof why, "dimension %d is %d", d, n->shape[d]);
        if (why[0]) {
            Buf b = {0};
            ir_dump_graph(&b, p, g);
            fprintf(stderr, "%s", b.s);
            buf_free(&b);
            fprintf(stderr, "mmc: internal error: IR verification failed after %s: graph %s, node %%%d (%s): %s\n",
                    after, g->name, i, ir_op_name[n->op], why);
            mm_panic(__FILE__, __LINE__, "ir_verify");
        }
    }
}
