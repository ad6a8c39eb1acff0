/* ewise.c — the element-wise table of ewise.h, looked up by op, and the
 * expansion of its templates into C expressions for the emitters. */
#include <stdio.h>
#include <string.h>

#include "codegen.h"
#include "ewise.h"

#define OP_NONE OP_COUNT /* a row whose gradient is built from other ops */

static const struct {
    IrOp op, grad;
    const char *value, *grad_value;
} rows[] = {
#define EW(op, value, grad, grad_value) {OP_##op, OP_##grad, value, grad_value},
    CG_EWISE(EW)
#undef EW
};

/* op's template: a forward op's value or a gradient op's, NULL if none. */
static const char *template_of(IrOp op) {
    for (int i = 0; i < ARRAY_LEN(rows); i++) {
        if (rows[i].op == op) return rows[i].value;
        if (rows[i].grad == op) return rows[i].grad_value;
    }
    return NULL;
}

static const char *source(const IrNode *n, const char *const *src, int k, const char *name) {
    if (k >= n->nsrc) {
        char msg[128];
        snprintf(msg, sizeof msg, "element-wise op '%s' has no source {%s} (codegen/ewise.h)", ir_op_name[n->op], name);
        mm_panic(__FILE__, __LINE__, msg);
    }
    return src[k];
}

const char *cg_ewise(const IrNode *n, const char *const *src, const char *idx) {
    const char *t = template_of(n->op);
    char msg[128];
    if (!t || !(ir_op_flags[n->op] & OPF_ELEM)) {
        snprintf(msg, sizeof msg, "no element-wise row for op '%s' (codegen/ewise.h)", ir_op_name[n->op]);
        mm_panic(__FILE__, __LINE__, msg);
    }
    Buf b = {0};
    for (const char *s = t; *s;) {
        const char *open = strchr(s, '{');
        if (!open) {
            buf_puts(&b, s);
            break;
        }
        buf_printf(&b, "%.*s", (int)(open - s), s);
        const char *close = strchr(open, '}');
        mm_assert(close);
        const char *name = arena_strndup(mm_arena, open + 1, (size_t)(close - open - 1));
        s = close + 1;
        if (!strcmp(name, "x0") || !strcmp(name, "dy")) buf_puts(&b, source(n, src, 0, name));
        else if (!strcmp(name, "x1") || !strcmp(name, "y")) buf_puts(&b, source(n, src, 1, name));
        else if (!strcmp(name, "sum") || !strcmp(name, "mean")) {
            bool mean = name[0] == 'm' && n->nsrc > 1;
            buf_puts(&b, mean ? "(" : "");
            for (int k = 0; k < n->nsrc; k++) buf_printf(&b, "%s%s", k ? " + " : "", src[k]);
            if (mean) buf_printf(&b, ") * %s", cg_float(1.0 / n->nsrc));
        } else if (!strcmp(name, "i")) buf_puts(&b, idx);
        else if (!strcmp(name, "f")) buf_puts(&b, cg_float(n->a.f));
        else if (!strcmp(name, "1/f")) buf_puts(&b, cg_float(1.0 / n->a.f));
        else if (!strcmp(name, "1/(1-f)")) buf_puts(&b, cg_float(1.0 / (1.0 - n->a.f)));
        else if (!strcmp(name, "n")) buf_printf(&b, "%d", n->a.n);
        else {
            snprintf(msg, sizeof msg, "unknown {%s} in the template of '%s' (codegen/ewise.h)", name, ir_op_name[n->op]);
            mm_panic(__FILE__, __LINE__, msg);
        }
    }
    const char *r = arena_strdup(mm_arena, b.s ? b.s : "");
    buf_free(&b);
    return r;
}

bool cg_ewise_reads_hyper(IrOp op) {
    const char *t = template_of(op);
    return t && strstr(t, "h->");
}

const IrNode *cg_epilogue_arg(const IrNode *e) {
    mm_assert(e->nsrc <= 2);
    return e->nsrc == 2 ? e->src[1] : NULL;
}
