/* shapes.c — shape inference over the forward graph (its own walk, as
 * chibicc's add_type). Sizes every parameter and state tensor from the layer
 * that uses it, and reports impossible shapes at the layer that causes them
 * with the shapes involved. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "passes.h"

static const char *layer_name(const IrNode *n) {
    switch (n->op) {
    case OP_CONV: return "conv";
    case OP_MAXPOOL: return "maxpool";
    case OP_AVGPOOL: return "avgpool";
    default: return ir_op_name[n->op];
    }
}

static void set_param(IrProgram *p, IrNode *pn, int ndim, const int *dims, float bound) {
    IrParam *pr = IR_PARAM(p, pn->param);
    ir_set_shape(pn, false, ndim, dims);
    pr->ndim = ndim;
    pr->numel = 1;
    double e = 1;
    for (int i = 0; i < ndim; i++) {
        pr->shape[i] = dims[i];
        pr->numel *= (size_t)dims[i];
        e *= dims[i];
    }
    if (e > 1e9) error_at(pr->loc, "the parameter %s would have %.0f values: too large", pr->name, e);
    pr->bound = bound;
}

static void set_state(IrProgram *p, int idx, IrNode *sn, int c) {
    IrState *s = IR_STATE(p, idx);
    s->ndim = 1;
    s->shape[0] = c;
    s->numel = (size_t)c;
    if (sn) ir_set_shape(sn, false, 1, &c);
}

/* Fill in a window's defaults for the input's rank and compute the output
 * size; errors name the layer, its window and the input. */
static void window(IrNode *n, const IrNode *x, int *out) {
    IrAttr *a = &n->a;
    int rank = x->ndim;
    if (rank != 4 && rank != 5)
        error_at(n->loc, "%s needs a feature map [B,C,H,W] or a clip [B,C,T,H,W]; its input is %s", layer_name(n), ir_shape_str(x));
    int nsp = rank - 2;
    if (a->nsp < 0 && -a->nsp != nsp)
        error_at(n->loc, "conv%dd needs a %s input, but this one is %s", -a->nsp, -a->nsp == 2 ? "[B,C,H,W]" : "[B,C,T,H,W]",
                 ir_shape_str(x));
    if (a->nsp > 0 && a->nsp != nsp)
        error_at(n->loc, "%s: the kernel has %d sizes but the input %s has %d spatial dimensions", layer_name(n), a->nsp,
                 ir_shape_str(x), nsp);
    a->nsp = nsp;
    for (int d = 0; d < 3 - nsp; d++) { a->k[d] = 1; a->s[d] = 1; a->p[d] = 0; }
    for (int d = 3 - nsp; d < 3; d++) {
        if (a->k[d] == INT_MIN || a->s[d] == INT_MIN || a->p[d] == INT_MIN)
            error_at(n->loc, "%s: a list given for the kernel, stride or padding must have one entry per spatial dimension", layer_name(n));
        int in = x->shape[2 + d - (3 - nsp)];
        if (n->op != OP_CONV && a->p[d] * 2 > a->k[d])
            error_at(n->loc, "%s: a padding of %d is more than half the kernel size %d (at most %d)", layer_name(n), a->p[d], a->k[d],
                     a->k[d] / 2);
        long o = ((long)in + 2L * a->p[d] - a->k[d]) / a->s[d] + 1;
        if ((long)in + 2L * a->p[d] < a->k[d] || o < 1)
            error_at(n->loc, "%s: the kernel (%d) is larger than its input (%d%s) in %s %s", layer_name(n), a->k[d], in,
                     a->p[d] ? " with padding" : "", ir_shape_str(x),
                     nsp == 2 ? (d == 1 ? "(height)" : "(width)") : (d == 0 ? "(time)" : d == 1 ? "(height)" : "(width)"));
        if (o > (1L << 24)) error_at(n->loc, "%s: the output is too large (%ld positions in one dimension)", layer_name(n), o);
        out[2 + d - (3 - nsp)] = (int)o;
    }
}

static void same_shape(const IrNode *n, const IrNode *a, const IrNode *b, const char *what) {
    bool same = a->ndim == b->ndim && a->batched == b->batched;
    for (int i = 0; same && i < a->ndim; i++) same = a->shape[i] == b->shape[i];
    if (!same) error_at(n->loc, "%s: the shapes %s and %s differ", what, ir_shape_str(a), ir_shape_str(b));
}

static size_t check_size(const IrNode *n) {
    double e = 1;
    for (int i = n->batched ? 1 : 0; i < n->ndim; i++) e *= n->shape[i];
    if (e > 1e9) error_at(n->loc, "%s makes a tensor of %s: too large", ir_op_name[n->op], ir_shape_str(n));
    return (size_t)e;
}

/* Every branch ends in logits, and all in the same number of them. */
static void check_classes(IrProgram *p) {
    int first = -1;
    for (int b = 0; b < p->branches.n; b++) {
        IrNode *out = IR_BRANCH(p, b)->out;
        if (IR_BRANCH(p, b)->headless) continue; /* features for a fusion head */
        if (out->ndim != 2)
            error_at(IR_BRANCH(p, b)->loc, "branch '%s' must end in class logits [B,classes] (e.g. gap then linear), but it ends in %s",
                     IR_BRANCH(p, b)->name, ir_shape_str(out));
        if (first < 0) {
            first = b;
            p->nclasses = out->shape[1];
        } else if (out->shape[1] != p->nclasses)
            error_at(IR_BRANCH(p, b)->loc, "branch '%s' ends in %d logits but branch '%s' in %d; the branches predict the same classes",
                     IR_BRANCH(p, b)->name, out->shape[1], IR_BRANCH(p, first)->name, p->nclasses);
    }
    if (first < 0 && p->heads.n) { /* no branch has a head: the first fusion head's logits */
        IrHead *h = IR_HEAD(p, 0);
        if (h->out->ndim != 2)
            error_at(h->loc, "fuse '%s' must end in class logits [B,classes] (e.g. linear(10)), but it ends in %s", h->name,
                     ir_shape_str(h->out));
        p->nclasses = h->out->shape[1];
    }
    for (int i = 0; i < p->heads.n; i++) {
        IrHead *h = IR_HEAD(p, i);
        if (h->out->ndim != 2 || h->out->shape[1] != p->nclasses)
            error_at(h->loc, "fuse '%s' must end in the %d class logits the branches predict [B,%d] (e.g. linear(%d)), but it ends in %s",
                     h->name, p->nclasses, p->nclasses, p->nclasses, ir_shape_str(h->out));
    }
}

/* A fusion head's features: vectors [B,F], of one width for 'sum'. */
static void check_head(IrProgram *p, IrHead *h) {
    h->checked = true;
    for (int i = 0; i < h->nin; i++)
        if (h->in[i]->ndim != 2)
            error_at(h->comb_loc, "fuse '%s': %s is %s, but a fusion head takes feature vectors [B,F]: read the point after gap (gap @feat)",
                     h->name, h->in_text[i], ir_shape_str(h->in[i]));
    if (strcmp(h->comb, "sum") == 0)
        for (int i = 1; i < h->nin; i++)
            if (h->in[i]->shape[1] != h->in[0]->shape[1])
                error_at(h->comb_loc, "fuse '%s': 'sum' adds features of one width, but %s has %d and %s has %d", h->name,
                         h->in_text[0], h->in[0]->shape[1], h->in_text[i], h->in[i]->shape[1]);
}

static void infer(IrProgram *p, IrNode *n) {
    int s[IR_MAXDIM] = {0};
    IrNode *x = n->nsrc ? n->src[0] : NULL;
    if (n->role && strcmp(n->role, "fuse") == 0 && !IR_HEAD(p, n->a.n)->checked) check_head(p, IR_HEAD(p, n->a.n));
    switch (n->op) {
    case OP_INPUT: case OP_LABELS: case OP_PARAM: case OP_STATE: case OP_ONE: return;
    case OP_CONV: {
        int cin = ir_channels(x);
        window(n, x, s);
        s[1] = n->a.cout;
        ir_set_shape(n, true, x->ndim, s);
        int w[IR_MAXDIM] = {n->a.cout, cin};
        double fan_in = cin;
        for (int d = 0; d < n->a.nsp; d++) {
            w[2 + d] = n->a.k[3 - n->a.nsp + d];
            fan_in *= w[2 + d];
        }
        float bound = (float)(1.0 / sqrt(fan_in));
        set_param(p, n->src[1], x->ndim, w, bound);
        if (n->a.bias) set_param(p, n->src[2], 1, &n->a.cout, bound);
        break;
    }
    case OP_MAXPOOL: case OP_AVGPOOL:
        window(n, x, s);
        s[1] = ir_channels(x);
        ir_set_shape(n, true, x->ndim, s);
        break;
    case OP_GAP:
        if (x->ndim < 3 && n->fusion >= 0 && IR_FUSION(p, n->fusion)->kind == FUSE_MMTM) {
            /* Name every input of the module with its shape. */
            IrFusion *f = IR_FUSION(p, n->fusion);
            const char *desc = "";
            for (int i = 0, k = 0; i < p->fwd->nodes.n; i++) {
                IrNode *q = IR_NODE(p->fwd, i);
                if (q->op == OP_GAP && q->fusion == n->fusion && q->role && strcmp(q->role, "squeeze") == 0 && k < f->nb) {
                    desc = arena_printf(mm_arena, "%s%s%s is %s", desc, k ? ", " : "", f->point[k], ir_shape_str(q->src[0]));
                    k++;
                }
            }
            error_at(f->loc, "mmtm gates feature maps [B,C,...] of every branch, but %s: place it before gap or flatten", desc);
        }
        if (x->ndim < 3) error_at(n->loc, "%s: global average pooling needs a feature map, not %s",
                                   n->role ? "se" : "gap", ir_shape_str(x));
        s[1] = ir_channels(x);
        ir_set_shape(n, true, 2, s);
        if (n->fusion >= 0 && n->role && strcmp(n->role, "squeeze") == 0) {
            IrFusion *f = IR_FUSION(p, n->fusion);
            for (int i = 0; i < f->nb; i++)
                if (f->branch[i] == n->branch) f->chan[i] = s[1];
        }
        break;
    case OP_FLATTEN:
        s[1] = (int)ir_numel(x);
        ir_set_shape(n, true, 2, s);
        break;
    case OP_LINEAR: {
        if (x->ndim != 2)
            error_at(n->loc, "linear needs a vector per example [B,F]; its input is %s: add gap or flatten before it", ir_shape_str(x));
        if (n->a.cout == 0 && n->fusion < 0) { /* film's gamma and beta, gated's maps: the first input's width */
            n->a.cout = IR_HEAD(p, n->a.n)->in[0]->shape[1];
        } else if (n->a.cout == 0) { /* inside a fusion module: sized by the module */
            IrFusion *f = IR_FUSION(p, n->fusion);
            if (strcmp(n->role, "hidden") == 0) {
                long sum = 0;
                for (int i = 0; i < f->nb; i++) sum += f->chan[i];
                if (sum > 1 << 24) error_at(f->loc, "%s: %ld channels are too many", f->kind == FUSE_MMTM ? "mmtm" : "se", sum);
                /* MMTM: 2(C0+C1)/ratio (the reference code's convention, ALGORITHMS §1);
                 * SE: C/ratio (the SE paper's). */
                f->hidden = (int)(f->kind == FUSE_MMTM ? 2 * sum / f->ratio : sum / f->ratio);
                if (f->hidden < 1)
                    error_at(f->loc, "%s: ratio %d leaves no hidden units for %ld channels", f->kind == FUSE_MMTM ? "mmtm" : "se",
                             f->ratio, sum);
                n->a.cout = f->hidden;
            } else {
                for (int i = 0; i < f->nb; i++)
                    if (f->branch[i] == n->branch || f->nb == 1) n->a.cout = f->chan[i];
            }
        }
        s[1] = n->a.cout;
        ir_set_shape(n, true, 2, s);
        int w[2] = {n->a.cout, x->shape[1]};
        float bound = (float)(1.0 / sqrt((double)x->shape[1]));
        set_param(p, n->src[1], 2, w, bound);
        if (n->a.bias) set_param(p, n->src[2], 1, &n->a.cout, bound);
        break;
    }
    case OP_RELU: case OP_SIGMOID: case OP_DROPOUT: case OP_SCALE:
        ir_copy_shape(n, x);
        break;
    case OP_BN_STATS: {
        if (x->ndim < 2) error_at(n->loc, "batchnorm needs channels; its input is %s", ir_shape_str(x));
        int c = ir_channels(x);
        int d[2] = {2, c};
        ir_set_shape(n, false, 2, d);
        set_state(p, n->src[1]->state, n->src[1], c);
        set_state(p, n->src[2]->state, n->src[2], c);
        break;
    }
    case OP_BN_APPLY: {
        int c = ir_channels(x);
        ir_copy_shape(n, x);
        set_param(p, n->src[2], 1, &c, 0);
        set_param(p, n->src[3], 1, &c, 0);
        break;
    }
    case OP_ADD: case OP_MEAN:
        if (n == p->fwd->pred) check_classes(p);
        for (int i = 1; i < n->nsrc; i++)
            same_shape(n, x, n->src[i], n->op == OP_MEAN ? "'predict' averages branch logits of one shape, but" :
                                         n->nsrc == 2 && n->src[0]->op != OP_CE ? "residual: the main path and the shortcut disagree" : "add");
        ir_copy_shape(n, x);
        break;
    case OP_MUL:
        same_shape(n, x, n->src[1], "mul");
        ir_copy_shape(n, x);
        break;
    case OP_CONCAT: {
        long c = 0;
        for (int i = 0; i < n->nsrc; i++) {
            const IrNode *y = n->src[i];
            bool ok = y->ndim == x->ndim;
            for (int d = 2; ok && d < x->ndim; d++) ok = y->shape[d] == x->shape[d];
            if (!ok)
                error_at(n->loc, "concat: path %d gives %s but path 1 gives %s; paths must agree in everything but channels", i + 1,
                         ir_shape_str(y), ir_shape_str(x));
            c += ir_channels(y);
        }
        if (c > 1 << 24) error_at(n->loc, "concat: %ld channels are too many", c);
        ir_copy_shape(n, x);
        n->shape[1] = (int)c;
        break;
    }
    case OP_CHSCALE:
        ir_copy_shape(n, x);
        break;
    case OP_CE: {
        if (x->ndim != 2)
            error_at(IR_BRANCH(p, n->branch)->loc, "branch '%s' must end in class logits [B,classes] (e.g. gap then linear), but it ends in %s",
                     IR_BRANCH(p, n->branch)->name, ir_shape_str(x));
        int one = 1;
        ir_set_shape(n, false, 1, &one);
        break;
    }
    default:
        mm_assert(!"shape inference: op not in the forward language");
    }
    check_size(n);
}

/* The data set decides the inputs available and the number of classes. */
static void bind_data(IrProgram *p) {
    int classes = p->nclasses;
    if (strcmp(p->cfg.data, "colored_gray") == 0) {
        static const struct { const char *name; int c; } streams[] = {{"color", 3}, {"gray", 1}};
        for (int i = 0; i < p->inputs.n; i++) {
            IrInput *in = IR_INPUT(p, i);
            int k = -1;
            for (int j = 0; j < 2; j++)
                if (strcmp(in->name, streams[j].name) == 0) k = j;
            if (k < 0)
                error_at(in->loc, "the data set colored_gray provides the inputs 'color' [3,28,28] and 'gray' [1,28,28], not '%s'",
                         in->name);
            if (in->ndim != 3 || in->shape[0] != streams[k].c || in->shape[1] != 28 || in->shape[2] != 28) {
                const char *d = "[";
                for (int j = 0; j < in->ndim; j++) d = arena_printf(mm_arena, "%s%s%d", d, j ? "," : "", in->shape[j]);
                error_at(in->loc, "colored_gray's '%s' images are [%d,28,28], not %s]", in->name, streams[k].c, d);
            }
        }
        if (classes != 10)
            error_at(IR_BRANCH(p, 0)->loc, "colored_gray has 10 classes, but the branches end in %d logits", classes);
    }
}

void pass_shapes(IrProgram *p) {
    IrGraph *g = p->fwd;
    for (int i = 0; i < g->nodes.n; i++) infer(p, IR_NODE(g, i));
    check_classes(p);
    if (p->nclasses < 2) error_at(IR_BRANCH(p, 0)->loc, "the branches need at least 2 class logits, not %d", p->nclasses);
    for (int i = 0; i < p->fusions.n; i++) {
        IrFusion *f = IR_FUSION(p, i);
        if (f->kind != FUSE_MMTM) continue;
        for (int j = 0; j < f->nb; j++) {
            set_state(p, f->gate_state[j], NULL, f->chan[j]);
            set_state(p, f->squeeze_state[j], NULL, f->chan[j]);
        }
    }
    bind_data(p);
    /* Lay parameters and state out, each tensor aligned to 16 floats (64 bytes). */
    size_t off = 0;
    for (int i = 0; i < p->params.n; i++) {
        IrParam *pr = IR_PARAM(p, i);
        mm_assert(pr->numel > 0);
        pr->off = off;
        off += (pr->numel + 15) & ~(size_t)15;
    }
    p->params_floats = off;
    off = 0;
    for (int i = 0; i < p->states.n; i++) {
        IrState *s = IR_STATE(p, i);
        s->off = off;
        off += (s->numel + 15) & ~(size_t)15;
    }
    p->states_floats = off;
    if (p->params_floats > ((size_t)1 << 31))
        error_at(IR_BRANCH(p, 0)->loc, "the model has %zu parameters: too many (the limit is 2^31)", p->params_floats);
}
