/* emit_c.c — the C back end: one function per kernel with its shapes as
 * constants, one run function per graph variant calling them in order,
 * OpenMP across the batch (or across channels for reductions), and the
 * tables the runtime reads. The CPU path is the oracle every other back end
 * is checked against, so each kernel is written to be plainly correct
 * first; reductions are ordered so results do not depend on thread count. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emit_c.h"
#include "ewise.h"

/* Where a node's data is, as an expression inside a run function. */
static const char *ptr(const IrNode *n) {
    switch (n->buf) {
    case BUF_ACT: return arena_printf(mm_arena, "A + %zu * MB", n->off);
    case BUF_FIXED: return arena_printf(mm_arena, "F + %zu", n->off);
    case BUF_PARAM: return arena_printf(mm_arena, "P + %zu", n->off);
    case BUF_GRAD: return arena_printf(mm_arena, "G + %zu", n->off);
    case BUF_STATE: return arena_printf(mm_arena, "S + %zu", n->off);
    case BUF_INPUT: return arena_printf(mm_arena, "X[%zu]", n->off);
    case BUF_LABELS: return "Y";
    default: mm_assert(!"node without a buffer"); return NULL;
    }
}

static bool needs_exec(const IrNode *n) { return n->op == OP_CONV || n->op == OP_CONV_DX || n->op == OP_CONV_DW; }
/* The step's hyper-parameters h: an accumulator's count, and what the
 * element-wise expressions of the kernel and its epilogues read (dropout). */
static bool needs_hyper(const IrNode *n) {
    bool r = n->op == OP_ACCUM || cg_ewise_reads_hyper(n->op);
    for (int i = 0; i < n->nepi; i++) r = r || cg_ewise_reads_hyper(n->epi[i]->op);
    return r;
}

static const char *omp_for(const char *work) {
    return arena_printf(mm_arena, "    #pragma omp parallel for schedule(static) if ((size_t)(%s) >= 32768)\n", work);
}

/* Statements applying the fused element-wise ops (ewise.h) to `v`, the
 * value stored at index `idx`; a second source (a ReLU gradient's mask) is
 * read there from kernel argument e<k>. */
void cg_c_epilogue(Emit *E, const IrNode *n, const char *indent, const char *idx) {
    for (int i = 0; i < n->nepi; i++) {
        const IrNode *e = n->epi[i];
        const char *src[2] = {"v", arena_printf(mm_arena, "e%d[%s]", i, idx)};
        buf_printf(E->b, "%sv = %s;  /* %%%d %s */\n", indent, cg_ewise(e, src, idx), e->id, ir_op_name[e->op]);
    }
}

#define window_consts(E, x, y, a) cg_window_consts((E)->b, x, y, a)
#define cb cg_channel_major
#define base cg_base
#define positions cg_positions
#define count cg_count
#define ident cg_ident

/* Some of n's operands are computed by n's kernel (passes/fuse.c). */
static bool has_folded(const IrNode *n) {
    for (int j = 0; j < n->nsrc; j++)
        if (n->src[j]->fused == n) return true;
    return false;
}

/* Loop over every (channel, example) run of Q values, in parallel. */
static void for_planes(Emit *E, const IrNode *t) {
    P("    enum { C = %d, Q = %zu };\n", ir_channels(t), positions(t));
    P("%s", omp_for("B * C * Q"));
    P("    for (int i = 0; i < C * B; i++) {\n        const int c = i / B, n = i %% B;\n        const size_t o = %s;\n", base(t));
}

/* An element-wise op (OPF_ELEM): its value from its row of ewise.h. */
static void ewise_kernel(Emit *E, const IrNode *n) {
    const char *total = count(n);
    if (n->op == OP_ADD && has_folded(n)) {
        /* Operands folded into the add (passes/fuse.c): a channel scaling
         * x<j> * x<j>g[n][c], or a pooling gradient x<j>[n][c] / Q. (A
         * product is no primary expression, but the add's value is the
         * plain sum of its sources.) */
        for_planes(E, n);
        const char *src[IR_MAXSRC];
        for (int j = 0; j < n->nsrc; j++) {
            const IrNode *s = n->src[j];
            if (s->fused == n && s->op == OP_CHSCALE) {
                P("        const mm_real g%d = x%dg[(size_t)n * C + c];  /* %%%d chscale */\n", j, j, s->id);
                src[j] = arena_printf(mm_arena, "x%d[o + q] * g%d", j, j);
            } else if (s->fused == n) {
                P("        const mm_real g%d = x%d[(size_t)n * C + c] * (1.0f / Q);  /* %%%d gap_dx */\n", j, j, s->id);
                src[j] = arena_printf(mm_arena, "g%d", j);
            } else src[j] = arena_printf(mm_arena, "x%d[o + q]", j);
        }
        P("        for (int q = 0; q < Q; q++) {\n            mm_real v = %s;\n", cg_ewise(n, src, "o + q"));
        cg_c_epilogue(E, n, "            ", "o + q");
        P("            y[o + q] = v;\n        }\n    }\n");
        return;
    }
    const char *src[IR_MAXSRC];
    for (int j = 0; j < n->nsrc; j++) src[j] = arena_printf(mm_arena, "x%d[i]", j);
    P("%s", omp_for(total));
    P("    for (size_t i = 0; i < %s; i++) {\n        mm_real v = %s;\n", total, cg_ewise(n, src, "i"));
    cg_c_epilogue(E, n, "        ", "i");
    P("        y[i] = v;\n    }\n");
}

/* Max and average pooling and their gradients, 2-D or 3-D. */
static void pool_kernel(Emit *E, const IrNode *n) {
    const IrNode *x = n->src[0];
    /* Each (channel, example) plane is contiguous in either layout. The
     * window is clipped to the input once per output, so the inner loops
     * have no bounds tests. In training graphs max pooling records the
     * first maximum of each window; its gradient is added there. */
    bool bwd = n->op == OP_MAXPOOL_DX || n->op == OP_AVGPOOL_DX, mx = n->op == OP_MAXPOOL || n->op == OP_MAXPOOL_DX;
    const IrNode *in = bwd ? n : x, *out = bwd ? n->src[0] : n;
    window_consts(E, in, out, &n->a);
    P("%s", omp_for("B * CO * DO * HO * WO * KD * KH * KW"));
    P("    for (int nc = 0; nc < B * CO; nc++) {\n");
    bool rec = n->op == OP_MAXPOOL && n->a.mode;
    /* A max-pool gradient followed by the gradient of the ReLU the pool read. */
    bool pooled_mask = n->op == OP_MAXPOOL_DX && n->nepi == 1 && n->epi[0]->op == OP_RELU_DX && n->epi[0]->src[1] == n->src[1]->src[0];
    if (!bwd) P("        const mm_real *xs = x0 + (size_t)nc * DI * HI * WI;\n        mm_real *ys = y + (size_t)nc * DO * HO * WO;\n");
    else {
        P("        const mm_real *dys = x0 + (size_t)nc * DO * HO * WO;\n        mm_real *dxs = y + (size_t)nc * DI * HI * WI;\n");
        P("        memset(dxs, 0, sizeof(mm_real) * DI * HI * WI);\n");
    }
    if (rec) /* the argmaxes follow the values: [B*C][DO*HO*WO] int32 */
        P("        int32_t *ix = (int32_t *)(y + (size_t)B * CO * DO * HO * WO) + (size_t)nc * DO * HO * WO;\n");
    int hi = in->shape[n->a.nsp == 3 ? 3 : 2], wo = out->shape[n->a.nsp == 3 ? 4 : 3];
    size_t ho = out->shape[n->a.nsp == 3 ? 3 : 2], stack = (size_t)hi * ((wo + 15) / 16 * 16) * 8;
    if (n->a.nsp == 3) stack += (size_t)(n->a.k[0] + 1) * ho * wo * 8;
    /* its passes' stack; in 3-D, planes of at least 4 columns (on 3 x 3 ones most lanes idle and the general loop was faster) */
    bool planar = n->a.nsp == 2 ? stack <= 65536 : stack <= 131072 && wo >= 4;
    if (mx && !bwd && planar && n->a.nsp == 2) {
        /* 2-D max pooling: two branch-free passes over the plane (mmrt_cpu.h). */
        P("        mmk_maxpool2d(xs, WI, ys, %s, HI, WI, HO, WO, KH, KW, SH, SW, PH, PW);\n", rec ? "ix" : "NULL");
    } else if (mx && !bwd && planar) {
        /* 3-D: those passes on each input slice, merged along the depth. */
        P("        mmk_maxpool3d(xs, ys, %s, DI, HI, WI, DO, HO, WO, KD, KH, KW, SD, SH, SW, PD, PH, PW);\n", rec ? "ix" : "NULL");
    } else if (bwd && mx) {
        P("        const int32_t *ix = (const int32_t *)(x1 + (size_t)B * CO * DO * HO * WO) + (size_t)nc * DO * HO * WO;\n");
        if (pooled_mask) {
            /* The ReLU's output at a window's argmax is the pooled value:
             * mask there, and skip the pass over the ReLU's output. */
            const char *src[2] = {"dys[o]", "pv[o]"};
            P("        const mm_real *pv = x1 + (size_t)nc * DO * HO * WO;\n        (void)e0;\n");
            P("        for (int o = 0; o < DO * HO * WO; o++)\n            if (ix[o] >= 0) dxs[ix[o]] += %s;  /* %%%d relu_dx */\n",
              cg_ewise(n->epi[0], src, "o"), n->epi[0]->id);
        } else P("        for (int o = 0; o < DO * HO * WO; o++)\n            if (ix[o] >= 0) dxs[ix[o]] += dys[o];\n");
    } else {
        P("        for (int od = 0; od < DO; od++) {\n");
        P("            const int d0 = od * SD - PD, dlo = d0 < 0 ? -d0 : 0, dhi = DI - d0 < KD ? DI - d0 : KD;\n");
        P("            for (int oh = 0; oh < HO; oh++) {\n");
        P("                const int h0 = oh * SH - PH, hlo = h0 < 0 ? -h0 : 0, hhi = HI - h0 < KH ? HI - h0 : KH;\n");
        if (mx && !bwd) {
            /* Windows wholly inside the input: constant bounds, fully
             * unrolled, branch-free (after a ReLU many values tie at 0, and
             * a branch on `v > m` mispredicts). The first maximum wins, as in
             * the general loop below. */
            P("                const int owa = (PW + SW - 1) / SW, owb0 = (WI + PW - KW) / SW + 1, owb = owb0 < WO ? owb0 : WO;\n");
            P("                if (dlo == 0 && dhi == KD && hlo == 0 && hhi == KH && owa < owb) {\n");
            P("                    mm_real mrow[WO];\n                    int arow[WO];\n");
            P("                    for (int ow = owa; ow < owb; ow++) { mrow[ow] = -INFINITY; arow[ow] = -1; }\n");
            P("                    for (int kd = 0; kd < KD; kd++)\n                        for (int kh = 0; kh < KH; kh++)\n");
            P("                            for (int kw = 0; kw < KW; kw++) {\n");
            P("                                const int r = ((d0 + kd) * HI + h0 + kh) * WI - PW + kw;\n");
            P("                                for (int ow = owa; ow < owb; ow++) {\n");
            P("                                    const mm_real v = xs[r + ow * SW];\n                                    const int gt = v > mrow[ow];\n");
            P("                                    mrow[ow] = gt ? v : mrow[ow];\n                                    arow[ow] = gt ? r + ow * SW : arow[ow];\n");
            P("                                }\n                            }\n");
            P("                    for (int ow = owa; ow < owb; ow++) {\n                        const int o = (od * HO + oh) * WO + ow;\n");
            P("                        ys[o] = arow[ow] >= 0 ? mrow[ow] : (mm_real)NAN;\n");
            if (rec) P("                        ix[o] = arow[ow];\n");
            P("                    }\n                }\n");
        }
        P("                for (int ow = 0; ow < WO; ow++) {\n");
        if (mx && !bwd) P("                    if (dlo == 0 && dhi == KD && hlo == 0 && hhi == KH && ow >= owa && ow < owb) continue;\n");
        P("                    const int w0 = ow * SW - PW, wlo = w0 < 0 ? -w0 : 0, whi = WI - w0 < KW ? WI - w0 : KW;\n");
        P("                    const int o = (od * HO + oh) * WO + ow;\n");
        if (mx) P("                    mm_real m = -INFINITY;\n                    int at = -1;\n");
        else if (!bwd) P("                    mm_real m = 0;\n");
        else P("                    const mm_real g = dys[o] * (1.0f / (KD * KH * KW));\n");
        P("                    for (int kd = dlo; kd < dhi; kd++)\n                        for (int kh = hlo; kh < hhi; kh++) {\n");
        P("                            const int r = ((d0 + kd) * HI + h0 + kh) * WI + w0;\n");
        P("                            for (int kw = wlo; kw < whi; kw++) {\n");
        if (mx) P("                                const mm_real v = xs[r + kw];\n                                if (v > m) { m = v; at = r + kw; }\n");
        else if (!bwd) P("                                m += xs[r + kw];\n");
        else P("                                dxs[r + kw] += g;\n");
        P("                            }\n                        }\n");
        /* A window of NaN has no maximum: its output is NaN (the loss check stops training). */
        if (!bwd) P("                    ys[o] = %s;\n", mx ? "at >= 0 ? m : (mm_real)NAN" : "m * (1.0f / (KD * KH * KW))");
        if (rec) P("                    ix[o] = at;\n");
        P("                }\n            }\n        }\n");
    }
    if (n->nepi && !pooled_mask) { /* fused epilogues, on the finished plane */
        const char *plane = bwd ? "DI * HI * WI" : "DO * HO * WO";
        P("        for (int j = 0; j < %s; j++) {\n            const size_t i = (size_t)nc * %s + j;\n", plane, plane);
        P("            mm_real v = y[i];\n");
        cg_c_epilogue(E, n, "            ", "i");
        P("            y[i] = v;\n        }\n");
    }
    P("    }\n");
}

/* Kernels over the (channel, example) planes of a feature map or vector
 * (for_planes), as QBE writes instructions: a row per op. `consts` are the
 * plane's statements (channel c, example n, its first element o); `value` is
 * the output's element o + q, which the fused epilogues then take. A row
 * without a value is a reduction of source 0's planes into a (B, C) output,
 * `consts` doing each plane's work. */
static const struct {
    IrOp op;
    const char *consts, *value;
} plane_kernels[] = {
    /* y = (x - mean) inv gamma + beta, as one multiply-add */
    {OP_BN_APPLY, "        const mm_real a = x1[C + c] * x2[c], b = x3[c] - x1[c] * a;\n", "x0[o + q] * a + b"},
    /* dx = gamma inv (dy - sum dy / N - (x - mean) inv^2 sum dy (x - mean) / N),
     * N = B * Q: through the normalisation and the batch statistics. */
    {OP_BN_DX,
     "        const mm_real inv_cnt = 1.0f / ((mm_real)B * Q), mean = x2[c], inv = x2[C + c], gi = x3[c] * inv;\n"
     "        const mm_real a = -x4[c] * gi * inv_cnt, b = -x4[C + c] * gi * inv * inv * inv_cnt;\n",
     "x0[o + q] * gi + a + b * (x1[o + q] - mean)"},
    {OP_CHSCALE, "        const mm_real g = x1[(size_t)n * C + c];\n", "x0[o + q] * g"},
    {OP_GAP_DX, "        const mm_real g = x0[(size_t)n * C + c] * (1.0f / Q);\n", "g"},
    {OP_GAP, "        y[(size_t)n * C + c] = mmk_sum(x0 + o, Q) * (1.0f / Q);\n", NULL},
    {OP_CHSCALE_DG, "        y[(size_t)n * C + c] = mmk_dot(x0 + o, x1 + o, Q);\n", NULL},
};

/* n's kernel if a row of plane_kernels has it; false otherwise. */
static bool plane_kernel(Emit *E, const IrNode *n) {
    for (int i = 0; i < ARRAY_LEN(plane_kernels); i++) {
        if (plane_kernels[i].op != n->op) continue;
        const char *value = plane_kernels[i].value;
        for_planes(E, value ? n : n->src[0]);
        P("%s", plane_kernels[i].consts);
        if (value) {
            P("        for (int q = 0; q < Q; q++) {\n            mm_real v = %s;\n", value);
            cg_c_epilogue(E, n, "            ", "o + q");
            P("            y[o + q] = v;\n        }\n");
        }
        P("    }\n");
        return true;
    }
    return false;
}

/* The row of sums `acc` of a linear layer's gradient kernels, zeroed: local
 * for up to 4096 inputs (copied to `row` at the end), else `row` itself. */
static void linear_grad_row(Emit *E, int I, const char *row) {
    if (I <= 4096) P("        mm_real acc[I];\n        for (int i = 0; i < I; i++) acc[i] = 0;\n");
    else P("        mm_real *acc = %s;\n        memset(acc, 0, sizeof(mm_real) * I);\n", row);
}

static void kernel_body(Emit *E, const IrNode *n) {
    const IrNode *x = n->nsrc ? n->src[0] : NULL;
    const char *total = count(n);
    if (ir_op_flags[n->op] & OPF_ELEM) {
        ewise_kernel(E, n);
        return;
    }
    if (plane_kernel(E, n)) return;
    switch (n->op) {
    case OP_ONE:
        P("    y[0] = 1.0f;\n");
        break;
    case OP_CONV: case OP_CONV_DX: case OP_CONV_DW:
        cg_c_conv(E, n);
        break;
    case OP_MAXPOOL: case OP_AVGPOOL: case OP_MAXPOOL_DX: case OP_AVGPOOL_DX:
        pool_kernel(E, n);
        break;
    case OP_FLATTEN: case OP_RESHAPE: {
        /* Between a feature map (channel-major) and a vector per example. */
        const IrNode *map = n->op == OP_FLATTEN ? x : n;
        if (!cb(map)) {
            P("    memcpy(y, x0, sizeof(mm_real) * %s);\n", total);
            break;
        }
        for_planes(E, map);
        if (n->op == OP_FLATTEN) P("        memcpy(y + (size_t)n * C * Q + (size_t)c * Q, x0 + o, sizeof(mm_real) * Q);\n    }\n");
        else P("        memcpy(y + o, x0 + (size_t)n * C * Q + (size_t)c * Q, sizeof(mm_real) * Q);\n    }\n");
        break;
    }
    case OP_LINEAR: {
        /* Up to 16384 weights and 16 to 1024 outputs: W transposed once on
         * the stack, then each example's outputs are sums of rows of it (a
         * vector of O sums kept in registers, no per-output reduction).
         * Other layers (a head of a few classes: each sum would be a chain
         * of I dependent adds) take a dot product per output. */
        const int I = x->shape[1], O = n->shape[1];
        P("    enum { I = %d, O = %d };\n", I, O);
        if ((size_t)I * O <= 16384 && O >= 16 && O <= 1024) {
            P("    mm_real wt[I * O];\n    for (int o = 0; o < O; o++)\n        for (int i = 0; i < I; i++) wt[i * O + o] = x1[(size_t)o * I + i];\n");
            P("%s", omp_for("B * I * O"));
            P("    for (int n = 0; n < B; n++) {\n        mm_real *ys = y + (size_t)n * O, acc[O];\n");
            P("        for (int o = 0; o < O; o++) acc[o] = %s;\n", n->a.bias ? "x2[o]" : "0");
            P("        for (int i = 0; i < I; i++) {\n            const mm_real g = x0[(size_t)n * I + i];\n");
            P("            for (int o = 0; o < O; o++) acc[o] += g * wt[i * O + o];\n        }\n");
            P("        for (int o = 0; o < O; o++) {\n            mm_real v = acc[o];\n");
        } else {
            P("%s", omp_for("B * I * O"));
            P("    for (int n = 0; n < B; n++) {\n        mm_real *ys = y + (size_t)n * O;\n");
            P("        for (int o = 0; o < O; o++) {\n            mm_real v = %smmk_dot(x0 + (size_t)n * I, x1 + (size_t)o * I, I);\n",
              n->a.bias ? "x2[o] + " : "");
        }
        cg_c_epilogue(E, n, "            ", "(size_t)n * O + o");
        P("            ys[o] = v;\n        }\n    }\n");
        break;
    }
    /* The gradients sum into a row of sums, local (registers, for the
     * widths of MMTM and the heads) up to 4096 inputs, stored once. */
    case OP_LINEAR_DX: /* dx[n][i] = sum_o dy[n][o] w[o][i] */
        P("    enum { I = %d, O = %d };\n", n->shape[1], n->src[0]->shape[1]);
        P("%s", omp_for("B * I * O"));
        P("    for (int n = 0; n < B; n++) {\n");
        linear_grad_row(E, n->shape[1], "y + (size_t)n * I");
        P("        for (int o = 0; o < O; o++) {\n            const mm_real g = x0[(size_t)n * O + o];\n");
        P("            for (int i = 0; i < I; i++) acc[i] += g * x1[(size_t)o * I + i];\n        }\n");
        if (n->shape[1] <= 4096) P("        memcpy(y + (size_t)n * I, acc, sizeof(mm_real) * I);\n");
        P("    }\n");
        break;
    case OP_LINEAR_DW: /* dw[o][i] = sum_n dy[n][o] x[n][i]; rows in parallel, examples in order */
        P("    enum { I = %d, O = %d };\n", n->shape[1], n->shape[0]);
        P("%s", omp_for("B * I * O"));
        P("    for (int o = 0; o < O; o++) {\n");
        linear_grad_row(E, n->shape[1], "y + (size_t)o * I");
        P("        for (int n = 0; n < B; n++) {\n            const mm_real g = x0[(size_t)n * O + o];\n");
        P("            const mm_real *xs = x1 + (size_t)n * I;\n            for (int i = 0; i < I; i++) acc[i] += g * xs[i];\n        }\n");
        if (n->shape[1] <= 4096) P("        memcpy(y + (size_t)o * I, acc, sizeof(mm_real) * I);\n");
        P("    }\n");
        break;
    case OP_BN_STATS: {
        /* Batch mean and 1/std per channel (biased variance, as PyTorch
         * normalises); the running statistics move by `momentum` with the
         * unbiased variance. Sums in double (eight lanes), channels in
         * parallel. */
        P("    enum { C = %d, Q = %zu };\n", ir_channels(x), positions(x));
        P("    const double cnt = (double)B * Q;\n");
        P("%s", omp_for("B * C * Q"));
        P("    for (int c = 0; c < C; c++) {\n        double s = 0.0, ss = 0.0, l[8];\n");
        /* Eight lanes per pass: independent adds that vectorise. */
        P("        for (int u = 0; u < 8; u++) l[u] = 0.0;\n");
        P("        for (int n = 0; n < B; n++) {\n            const mm_real *xs = x0 + %s;\n            int q = 0;\n", base(x));
        P("            for (; q + 8 <= Q; q += 8)\n                for (int u = 0; u < 8; u++) l[u] += xs[q + u];\n");
        P("            for (; q < Q; q++) l[0] += xs[q];\n        }\n");
        P("        for (int u = 0; u < 8; u++) s += l[u], l[u] = 0.0;\n        const double mean = s / cnt;\n");
        P("        for (int n = 0; n < B; n++) {\n            const mm_real *xs = x0 + %s;\n            int q = 0;\n", base(x));
        P("            for (; q + 8 <= Q; q += 8)\n                for (int u = 0; u < 8; u++) l[u] += (xs[q + u] - mean) * (xs[q + u] - mean);\n");
        P("            for (; q < Q; q++) l[0] += (xs[q] - mean) * (xs[q] - mean);\n        }\n");
        P("        for (int u = 0; u < 8; u++) ss += l[u];\n");
        P("        const double var = ss / cnt;\n");
        P("        y[c] = (mm_real)mean;\n        y[C + c] = (mm_real)(1.0 / sqrt(var + %s));\n", cg_float(n->a.f));
        P("        x1[c] = (mm_real)((1.0 - %s) * x1[c] + %s * mean);\n", cg_float(n->a.f2), cg_float(n->a.f2));
        P("        x2[c] = (mm_real)((1.0 - %s) * x2[c] + %s * (cnt > 1 ? var * cnt / (cnt - 1) : var));\n    }\n",
          cg_float(n->a.f2), cg_float(n->a.f2));
        break;
    }
    case OP_BN_RUNSTATS:
        P("    enum { C = %d };\n", n->shape[1]);
        P("    for (int c = 0; c < C; c++) {\n        y[c] = x0[c];\n        y[C + c] = 1.0f / MMK_SQRT(x1[c] + %s);\n    }\n", cg_float(n->a.f));
        break;
    case OP_BN_DSUMS: {
        /* Per channel: sum dy and sum dy (x - mean), eight lanes each. */
        const IrNode *dy = n->src[0];
        P("    enum { C = %d, Q = %zu };\n", ir_channels(dy), positions(dy));
        P("%s", omp_for("B * C * Q"));
        P("    for (int c = 0; c < C; c++) {\n        const mm_real mean = x2[c];\n");
        P("        double sg = 0.0, sgx = 0.0, lg[8] = {0}, lgx[8] = {0};  /* eight lanes: independent adds */\n");
        P("        for (int n = 0; n < B; n++) {\n            const size_t o = %s;\n            int q = 0;\n", base(dy));
        P("            for (; q + 8 <= Q; q += 8)\n                for (int u = 0; u < 8; u++) {\n");
        P("                    lg[u] += x0[o + q + u];\n                    lgx[u] += x0[o + q + u] * (x1[o + q + u] - mean);\n                }\n");
        P("            for (; q < Q; q++) {\n                lg[0] += x0[o + q];\n                lgx[0] += x0[o + q] * (x1[o + q] - mean);\n            }\n        }\n");
        P("        for (int u = 0; u < 8; u++) sg += lg[u], sgx += lgx[u];\n");
        P("        y[c] = (mm_real)sg;\n        y[C + c] = (mm_real)sgx;\n    }\n");
        break;
    }
    case OP_BN_DPARAM:
        /* beta's gradient: sum dy; gamma's: sum dy (x - mean) * inv. */
        P("    enum { C = %d };\n", n->shape[0]);
        if (n->a.mode) P("    for (int c = 0; c < C; c++) y[c] = x0[C + c] * x1[C + c];\n");
        else P("    for (int c = 0; c < C; c++) y[c] = x0[c];\n");
        break;
    case OP_REDUCE_CH:
        P("    enum { C = %d, Q = %zu };\n", ir_channels(x), positions(x));
        P("%s", omp_for("B * C * Q"));
        /* Per channel, in double: a channel-major map's channel is one run of
         * B Q values (mmk_sum_long); otherwise each example's Q values. */
        P("    for (int c = 0; c < C; c++) {\n");
        if (cb(x)) {
            P("        y[c] = (mm_real)mmk_sum_long(x0 + (size_t)c * B * Q, (size_t)B * Q);\n    }\n");
            break;
        }
        P("        double s = 0.0;\n");
        P("        for (int n = 0; n < B; n++) s += %s;\n", positions(x) == 1 ? arena_printf(mm_arena, "x0[%s]", base(x))
                                                                              : arena_printf(mm_arena, "mmk_sum(x0 + %s, Q)", base(x)));
        P("        y[c] = (mm_real)s;\n    }\n");
        break;
    case OP_CONCAT: {
        int off = 0;
        if (cb(n)) { /* channel-major: each path's whole buffer is one block */
            P("    enum { Q = %zu };\n", ir_positions(n));
            for (int i = 0; i < n->nsrc; i++) {
                int c = ir_channels(n->src[i]);
                P("    memcpy(y + (size_t)%d * B * Q, x%d, sizeof(mm_real) * %d * B * Q);\n", off, i, c);
                off += c;
            }
            break;
        }
        P("    enum { C = %d };\n", ir_channels(n));
        P("    for (int n = 0; n < B; n++) {\n");
        for (int i = 0; i < n->nsrc; i++) {
            int c = ir_channels(n->src[i]);
            P("        memcpy(y + (size_t)n * C + %d, x%d + (size_t)n * %d, sizeof(mm_real) * %d);\n", off, i, c, c);
            off += c;
        }
        P("    }\n");
        break;
    }
    case OP_SLICE_CH:
        if (cb(n)) {
            P("    enum { Q = %zu, N = %d, OFF = %d };\n", ir_positions(n), n->a.n, n->a.off);
            P("    memcpy(y, x0 + (size_t)OFF * B * Q, sizeof(mm_real) * N * B * Q);\n");
        } else {
            P("    enum { C = %d, N = %d, OFF = %d };\n", ir_channels(x), n->a.n, n->a.off);
            P("    for (int n = 0; n < B; n++)\n        memcpy(y + (size_t)n * N, x0 + (size_t)n * C + OFF, sizeof(mm_real) * N);\n");
        }
        break;
    case OP_BCAST:
        P("    enum { C = %d };\n", n->shape[1]);
        P("    for (int n = 0; n < B; n++) memcpy(y + (size_t)n * C, x0, sizeof(mm_real) * C);\n");
        break;
    case OP_CE:
        /* Mean cross-entropy over the batch, log-sum-exp in double. */
        P("    enum { K = %d };\n", x->shape[1]);
        P("    double s = 0.0;\n");
        P("    for (int n = 0; n < B; n++) {\n        const mm_real *z = x0 + (size_t)n * K;\n");
        P("        mm_real m = z[0];\n        for (int k = 1; k < K; k++) m = z[k] > m ? z[k] : m;\n");
        P("        double se = 0.0;\n        for (int k = 0; k < K; k++) se += exp((double)z[k] - m);\n");
        P("        s += log(se) + m - z[x1[n]];\n    }\n    y[0] = (mm_real)(s / B);\n");
        break;
    case OP_CE_DX:
        P("    enum { K = %d };\n", n->shape[1]);
        P("    const mm_real g = x0[0] / B;\n");
        P("    for (int n = 0; n < B; n++) {\n        const mm_real *z = x1 + (size_t)n * K;\n        mm_real *d = y + (size_t)n * K;\n");
        P("        mm_real m = z[0];\n        for (int k = 1; k < K; k++) m = z[k] > m ? z[k] : m;\n");
        P("        double se = 0.0;\n        for (int k = 0; k < K; k++) se += exp((double)z[k] - m);\n");
        P("        for (int k = 0; k < K; k++) d[k] = g * (mm_real)(exp((double)z[k] - m) / se);\n");
        P("        d[x2[n]] -= g;\n    }\n");
        break;
    case OP_ACCUM:
        /* A running mean kept in state: over steps of the batch mean (gates),
         * or over examples (squeeze vectors); h->acc_n counts what came before. */
        P("    enum { C = %d };\n", n->src[1]->shape[0]);
        P("    for (int c = 0; c < C; c++) {\n        double s = 0.0;\n");
        P("        for (int n = 0; n < B; n++) s += x0[(size_t)n * C + c];\n");
        if (n->a.mode == RT_ACC_STEPS) P("        x1[c] += (mm_real)((s / B - x1[c]) / (double)(h->acc_n + 1));\n    }\n");
        else P("        x1[c] += (mm_real)((s - (double)B * x1[c]) / (double)(h->acc_n + B));\n    }\n");
        break;
    default: {
        char msg[96];
        snprintf(msg, sizeof msg, "C back end: no kernel for op '%s'", ir_op_name[n->op]);
        mm_panic(__FILE__, __LINE__, msg);
    }
    }
}

static bool writes_input(const IrNode *n, int i) {
    /* Sources a kernel updates in place: running statistics and accumulators. */
    return (n->op == OP_BN_STATS && i >= 1) || (n->op == OP_ACCUM && i == 1);
}

/* Kernels are spread over KFILES files, compiled in parallel by mmc build. */
#define KFILES 4

/* A graph of more kernels than this runs them in a loop over a table of
 * steps (mmrt_cpu.h's run tables) instead of one call statement each: the
 * C compiler's time and memory on one function of 10^5 statements are far
 * from linear (minutes and gigabytes), and on a table of 10^5 rows they are
 * a second. Every example's graphs have fewer and keep their calls.
 * $MMNET_RUN_TABLE changes the threshold (0: every graph from tables), so
 * that the tests can check both forms on one small model. */
static int run_table_min(void) {
    static int min = -1;
    if (min < 0) {
        const char *env = getenv("MMNET_RUN_TABLE");
        char *end;
        long v = env ? strtol(env, &end, 10) : 0;
        min = env && *env && !*end && v >= 0 && v < INT_MAX ? (int)v : 512;
    }
    return min;
}
#define RUN_TABLE run_table_min()

typedef struct {
    CgKernels k;          /* already emitted, for sharing across variants */
    const char *prefix;   /* the model's name: kernels are external symbols */
    Buf files[KFILES];
    bool *wrapped;        /* per kernel: its run-table wrapper is emitted */
    int nwrapped;
} KernelTable;

/* Emit n's kernel unless an identical one exists; returns its name, and
 * its number in *idx. */
static const char *emit_kernel(Emit *E, KernelTable *kt, const IrNode *n, int *idx) {
    bool out = n->op != OP_ACCUM;
    bool inplace_ok = ir_op_flags[n->op] & OPF_INPLACE;
    Buf code = {0}, *saved = E->b;
    E->b = &code;
    P("(");
    const char *sep = "";
    if (out) {
        P("mm_real *%sy", inplace_ok ? "" : "restrict ");
        sep = ", ";
    }
    for (int i = 0; i < n->nsrc; i++) {
        const IrNode *s = n->src[i];
        if (s->fused == n) { /* a folded operand: its sources */
            P("%sconst mm_real *x%d", sep, i);
            if (s->op == OP_CHSCALE) P(", const mm_real *x%dg", i);
            sep = ", ";
            continue;
        }
        if (s->dt == DT_I32) P("%sconst int32_t *restrict x%d", sep, i);
        else if (writes_input(n, i)) P("%smm_real *restrict x%d", sep, i);
        else P("%sconst mm_real *%sx%d", sep, inplace_ok ? "" : "restrict ", i);
        sep = ", ";
    }
    for (int i = 0; i < n->nepi; i++)
        if (cg_epilogue_arg(n->epi[i])) P("%sconst mm_real *e%d", sep, i);
    P("%sint B", sep);
    if (needs_exec(n)) P(", rt_exec *e");
    if (needs_hyper(n)) P(", const rt_hyper *h");
    P(") {\n");
    kernel_body(E, n);
    P("}\n");
    E->b = saved;
    int found = cg_kernel_index(&kt->k, code.s);
    if (found >= 0) {
        buf_free(&code);
        *idx = found;
        return cg_kernel_name(&kt->k, found);
    }
    *idx = kt->k.n;
    const char *name = arena_printf(mm_arena, "%s_k%d_%s", kt->prefix, kt->k.n, ir_op_name[n->op]);
    /* The definition goes to the least full kernel file; a prototype here. */
    int f = 0;
    for (int i = 1; i < KFILES; i++)
        if (kt->files[i].n < kt->files[f].n) f = i;
    buf_printf(&kt->files[f], "\n/* %s\n * %s, graph %s */\nvoid %s%s", cg_describe(n), cg_loc(n), E->g->name, name, code.s);
    char *proto = arena_strdup(mm_arena, code.s);
    *strchr(proto, '{') = 0;
    P("void %s%s;\n", name, proto);
    cg_kernel_add(&kt->k, code.s, name);
    buf_free(&code);
    return name;
}

#define RUN_PREAMBLE                                                                                                     \
    "    const int B = bt->B;\n    const size_t MB = (size_t)e->max_batch;\n"                                             \
    "    mm_real *const A = e->act, *const F = e->fixed, *const P = e->params, *const G = e->grads, *const S = e->states;\n" \
    "    const mm_real *const *X = bt->x;\n    const int32_t *const Y = bt->y;\n"                                          \
    "    (void)A; (void)F; (void)P; (void)G; (void)S; (void)X; (void)Y; (void)h; (void)MB;\n"

/* The nodes whose places a kernel takes, in the order of its parameters:
 * its result (all but an accumulator's), its sources (a folded operand's
 * sources instead), its epilogues' second operands. */
#define MAX_OPERANDS 32
static int operands(const IrNode *n, const IrNode **pl) {
    int np = 0;
    if (n->op != OP_ACCUM) pl[np++] = n;
    for (int j = 0; j < n->nsrc; j++) {
        const IrNode *s = n->src[j];
        if (s->fused == n) { /* a folded operand: its sources */
            pl[np++] = s->src[0];
            if (s->op == OP_CHSCALE) pl[np++] = s->src[1];
        } else pl[np++] = s;
    }
    for (int j = 0; j < n->nepi; j++)
        if (cg_epilogue_arg(n->epi[j])) pl[np++] = cg_epilogue_arg(n->epi[j]);
    mm_assert(np <= MAX_OPERANDS);
    return np;
}

/* What a kernel wrote, for tracing. */
static const IrNode *written(const IrNode *n) { return n->op == OP_ACCUM ? n->src[1] : n->pool ? n->pool : n; }

static void results(Emit *E);

/* A place of a run table (mmrt_cpu.h): offset * 8 + arena. */
static const char *place(const IrNode *n) {
    static const int bufs[] = {[BUF_ACT] = 1, [BUF_FIXED] = 2, [BUF_PARAM] = 3, [BUF_GRAD] = 4,
                               [BUF_STATE] = 5, [BUF_INPUT] = 6, [BUF_LABELS] = 7}; /* MMK_ACT ... */
    mm_assert(n->buf > BUF_NONE && n->buf <= BUF_LABELS);
    return arena_printf(mm_arena, "%zu", (n->buf == BUF_LABELS ? (size_t)0 : n->off) * 8 + (size_t)bufs[n->buf]);
}

/* The run function of a large graph (RUN_TABLE): its steps and their
 * operands' places as tables, a wrapper per kernel taking the operands as
 * an array (emitted once for the program), and a loop. */
static void run_table(Emit *E, KernelTable *kt, const char **kn, const int *ki, bool profile) {
    const IrGraph *g = E->g;
    if (kt->nwrapped < kt->k.n) {
        kt->wrapped = arena_realloc(mm_arena, kt->wrapped, sizeof(bool) * (size_t)kt->nwrapped, sizeof(bool) * (size_t)kt->k.n);
        kt->nwrapped = kt->k.n;
    }
    int *fn = NEWN(int, kt->k.n); /* a kernel's wrapper's number in this graph, + 1 */
    PtrVec fns = {0};
    Buf steps = {0}, places = {0};
    int k = 0, nplaces = 0, maxops = 1;
    for (int i = 0; i < g->nodes.n; i++) {
        const IrNode *n = IR_NODE(g, i);
        if (!cg_has_kernel(n)) continue;
        const IrNode *pl[MAX_OPERANDS];
        int np = operands(n, pl);
        if (np > maxops) maxops = np;
        int w = ki[i];
        if (!kt->wrapped[w]) {
            kt->wrapped[w] = true;
            P("static void w_%s(void *const *p, int B, rt_exec *e, const rt_hyper *h) {\n    %s(", kn[i], kn[i]);
            for (int j = 0; j < np; j++) P("p[%d], ", j);
            P("B%s%s);\n    (void)e; (void)h;\n}\n", needs_exec(n) ? ", e" : "", needs_hyper(n) ? ", h" : "");
        }
        if (!fn[w]) {
            vec_push(&fns, (void *)kn[i]);
            fn[w] = fns.n;
        }
        const IrNode *t = written(n);
        buf_printf(&steps, "%d,%d,%zu,", (fn[w] - 1) * 256 + np, nplaces, ir_numel(t) * 2 + t->batched);
        for (int j = 0; j < np; j++) buf_printf(&places, "%s,", place(pl[j]));
        buf_printf(&places, "%s,", place(t));
        if (k % 8 == 7) {
            buf_puts(&steps, "\n");
            buf_puts(&places, "\n");
        }
        nplaces += np + 1;
        k++;
    }
    P("\nstatic const mmk_wrap_fn %s_fns[%d] = {", E->gname, fns.n);
    for (int i = 0; i < fns.n; i++) P("%sw_%s", i ? ", " : "", (const char *)fns.v[i]);
    P("};\n/* per kernel: wrapper * 256 + operands, first place, result's size * 2 + batched */\n");
    P("static const uint64_t %s_steps[%d] = {\n%s};\n", E->gname, 3 * k, steps.s);
    P("/* the kernels' operands' places, each kernel's result's after them: offset * 8 + arena */\n");
    P("static const uint64_t %s_places[%d] = {\n%s};\n", E->gname, nplaces, places.s);
    buf_free(&steps);
    buf_free(&places);
    P("\nstatic void run_%s(rt_exec *e, const rt_batch *bt, const rt_hyper *h, rt_result *r) {\n%s", E->gname, RUN_PREAMBLE);
    P("    for (int k = 0; k < %d; k++) {\n", k);
    P("        const uint64_t *s = &%s_steps[3 * k], *pl = &%s_places[s[1]];\n", E->gname, E->gname);
    P("        const int n = (int)(s[0] & 255);\n        void *p[%d];\n", maxops);
    P("        for (int j = 0; j < n; j++) p[j] = mmk_at(e, bt, MB, pl[j]);\n");
    if (profile) P("        MMK_CALL(e, k, %s_fns[s[0] >> 8](p, B, e, h));\n", E->gname);
    else P("        %s_fns[s[0] >> 8](p, B, e, h);\n", E->gname);
    P("        if (e->trace) e->trace(e->trace_user, k, mmk_at(e, bt, MB, pl[n]), (s[2] & 1 ? (size_t)B : 1) * (size_t)(s[2] >> 1));\n");
    if (E->grads) P("        if (e->grads_ready) e->grads_ready(e, k);\n");
    P("    }\n");
    results(E);
}

/* When the gradients are final, for a data-parallel run that averages them
 * in buckets as the backward pass goes (rt_cpu.c): per kernel k, the
 * offset from which on the gradient arena is no longer touched (read or
 * written) by any later kernel. NULL for a graph that touches no gradient. */
static size_t *grad_ready(const IrGraph *g, int nk) {
    size_t *end = NEWN(size_t, nk > 0 ? nk : 1), *lo = NEWN(size_t, nk > 0 ? nk : 1);
    bool any = false;
    int k = 0;
    for (int i = 0; i < g->nodes.n; i++) {
        const IrNode *n = IR_NODE(g, i);
        if (!cg_has_kernel(n)) continue;
        const IrNode *pl[MAX_OPERANDS + 1];
        int np = operands(n, pl);
        pl[np++] = written(n);
        end[k] = 0;
        for (int j = 0; j < np; j++)
            if (pl[j]->buf == BUF_GRAD) {
                size_t e = pl[j]->off + ir_numel(pl[j]);
                end[k] = e > end[k] ? e : end[k];
                any = true;
            }
        k++;
    }
    if (!any) return NULL;
    size_t later = 0;
    for (int j = nk - 1; j >= 0; j--) {
        lo[j] = later;
        later = end[j] > later ? end[j] : later;
    }
    return lo;
}

static void emit_graph(Emit *E, KernelTable *kt, bool profile) {
    const IrGraph *g = E->g;
    buf_printf(E->b, "\n/* ==== graph %s: %d nodes ==== */\n", g->name, g->nodes.n);
    const char **kn = NEWN(const char *, g->nodes.n);
    int *ki = NEWN(int, g->nodes.n);
    for (int i = 0; i < g->nodes.n; i++) {
        const IrNode *n = IR_NODE(g, i);
        if (cg_has_kernel(n)) kn[i] = emit_kernel(E, kt, n, &ki[i]);
    }
    /* Kernel table for profiling. */
    int nk = 0;
    for (int i = 0; i < g->nodes.n; i++) nk += cg_has_kernel(IR_NODE(g, i));
    if (nk > RUN_TABLE) {
        /* A large graph's: text the program reads into the table when it
         * starts (mmk_kernel_info), since a C initializer of 10^5 structs
         * with a string each takes the C compiler a gigabyte. */
        P("\nstatic rt_kernel_info %s_kernels[%d];\nstatic const char %s_kernel_text[] =\n", E->gname, nk, E->gname);
        for (int i = 0; i < g->nodes.n; i++) {
            const IrNode *n = IR_NODE(g, i);
            if (!cg_has_kernel(n)) continue;
            P("    \"%s%s%s\\0\" \"%.6g\\0\" \"%.6g\\0\"\n", cg_kernel_label(n), n->name ? " " : "",
              n->name ? ident(n->name) : "", cg_flops(n, true), cg_flops(n, false));
        }
        P("    ;\n__attribute__((constructor)) static void %s_kernels_read(void) {\n", E->gname);
        P("    mmk_kernel_info(%s_kernels, %d, %s_kernel_text);\n}\n", E->gname, nk, E->gname);
    } else {
        P("\nstatic const rt_kernel_info %s_kernels[%d] = {\n", E->gname, nk ? nk : 1);
        for (int i = 0; i < g->nodes.n; i++) {
            const IrNode *n = IR_NODE(g, i);
            if (!cg_has_kernel(n)) continue;
            P("    {\"%s%s%s\", %.6g, %.6g},\n", cg_kernel_label(n), n->name ? " " : "", n->name ? ident(n->name) : "",
              cg_flops(n, true), cg_flops(n, false));
        }
        if (!nk) P("    {\"\", 0, 0},\n");
        P("};\n");
    }
    E->nk = nk;
    size_t *ready = grad_ready(g, nk);
    E->grads = ready != NULL;
    if (ready) {
        P("/* per kernel: the gradients from this offset on are final after it */\nstatic const size_t %s_grad_ready[%d] = {", E->gname, nk);
        for (int k = 0; k < nk; k++) P("%s%s%zu", k ? "," : "", k % 16 ? "" : "\n    ", ready[k]);
        P("};\n");
    }

    if (nk > RUN_TABLE) {
        run_table(E, kt, kn, ki, profile);
        return;
    }
    P("\nstatic void run_%s(rt_exec *e, const rt_batch *bt, const rt_hyper *h, rt_result *r) {\n%s", E->gname, RUN_PREAMBLE);
    int k = 0;
    for (int i = 0; i < g->nodes.n; i++) {
        const IrNode *n = IR_NODE(g, i);
        if (!cg_has_kernel(n)) continue;
        const IrNode *pl[MAX_OPERANDS];
        int np = operands(n, pl);
        const char *args = "";
        for (int j = 0; j < np; j++) args = arena_printf(mm_arena, "%s%s, ", args, ptr(pl[j]));
        args = arena_printf(mm_arena, "%sB%s%s", args, needs_exec(n) ? ", e" : "", needs_hyper(n) ? ", h" : "");
        const char *call = arena_printf(mm_arena, "%s(%s);  /* %%%d %s */", kn[i], args, n->id, ir_op_name[n->op]);
        if (profile) P("    MMK_CALL(e, %d, %s);\n", k, call);
        else P("    %s\n", call);
        const IrNode *t = written(n);
        P("    if (e->trace) e->trace(e->trace_user, %d, %s, %s);\n", k, ptr(t), count(t));
        if (ready && (k == 0 || ready[k] < ready[k - 1])) P("    if (e->grads_ready) e->grads_ready(e, %d);\n", k);
        k++;
    }
    results(E);
}

/* The run function's end: where the loss, the logits and the prediction are. */
static void results(Emit *E) {
    const IrGraph *g = E->g;
    if (g->loss) P("    r->loss = (double)*(%s);\n", ptr(g->loss));
    for (int b = 0; b < E->p->branches.n; b++)
        if (g->logits[b]) P("    r->logits[%d] = %s;\n", b, ptr(g->logits[b]));
    if (g->pred) P("    r->pred = %s;\n", ptr(g->pred));
    P("}\n");
}

static void emit(const IrProgram *p, const CgOptions *o, CgOutput *out) {
    CgFile *f = cg_file(out, "model.c");
    Buf *b = &f->text;
    size_t total = 0;
    for (int i = 0; i < p->params.n; i++) total += IR_PARAM(p, i)->numel;
    cg_header(b, p, o, arena_printf(mm_arena, "%zu parameters, %d graphs; back end c (%s)", total, p->graphs.n,
                                      "kernels in C, OpenMP across the batch"));
    if (o->profile) buf_puts(b, "#define MMNET_PROFILE 1\n");
    buf_puts(b, "#include \"mmrt_cpu.h\"\n");
    buf_puts(b, "#ifndef MMNET_BUILD_FLAGS\n#define MMNET_BUILD_FLAGS \"\"\n#endif\n");
    size_t scratch = 16, partial = 16, wt = 16, act = 0, fixed = 0;
    PtrVec names = {0}, has_grads = {0};
    KernelTable kt = {0};
    kt.prefix = ident(p->name);
    for (int gi = 0; gi < p->graphs.n; gi++) {
        const IrGraph *g = p->graphs.v[gi];
        Emit E = {b, p, g, gi, ident(g->name), 0, 0, 0, 0, false};
        emit_graph(&E, &kt, o->profile);
        if (E.scratch > scratch) scratch = E.scratch;
        if (E.partial > partial) partial = E.partial;
        if (E.wt > wt) wt = E.wt;
        if (g->act_floats > act) act = g->act_floats;
        if (g->fixed_floats > fixed) fixed = g->fixed_floats;
        vec_push(&names, (void *)E.gname);
        vec_push(&has_grads, E.grads ? (void *)1 : NULL);
    }
    buf_puts(b, "\nstatic const rt_cpu_run_fn runs[] = {");
    for (int i = 0; i < names.n; i++) buf_printf(b, "%srun_%s", i ? ", " : "", (char *)names.v[i]);
    buf_puts(b, "};\nstatic const int nkernels[] = {");
    for (int gi = 0; gi < p->graphs.n; gi++) {
        int nk = 0;
        const IrGraph *g = p->graphs.v[gi];
        for (int i = 0; i < g->nodes.n; i++) nk += cg_has_kernel(IR_NODE(g, i));
        buf_printf(b, "%s%d", gi ? ", " : "", nk);
    }
    buf_puts(b, "};\nstatic const rt_kernel_info *const kernels[] = {");
    for (int i = 0; i < names.n; i++) buf_printf(b, "%s%s_kernels", i ? ", " : "", (char *)names.v[i]);
    buf_puts(b, "};\nstatic const size_t *const grad_ready[] = {");
    for (int i = 0; i < names.n; i++)
        buf_printf(b, "%s%s%s", i ? ", " : "", has_grads.v[i] ? (char *)names.v[i] : "NULL", has_grads.v[i] ? "_grad_ready" : "");
    buf_puts(b, "};\n");
    buf_printf(b, "static const rt_cpu_impl cpu_impl = {runs, %zu, %zu, %zu, %zu, %zu, nkernels, kernels, MMK_SIMD, %d, grad_ready};\n",
               act, fixed, scratch, partial, wt, o->profile);
    out->scratch_floats = scratch;
    out->work_floats = partial * RT_DW_CHUNKS + wt; /* as rt_cpu.c's cpu_memory counts them */
    cg_tables(b, p, "cpu_impl", "rt_cpu_backend");
    for (int i = 0; i < KFILES; i++) {
        CgFile *kf = cg_file(out, arena_printf(mm_arena, "kernels_%d.c", i));
        cg_header(&kf->text, p, o, "kernels (one of the files mmc build compiles in parallel)");
        buf_puts(&kf->text, "#include \"mmrt_cpu.h\"\n");
        if (kt.files[i].s) buf_puts(&kf->text, kt.files[i].s);
        buf_free(&kt.files[i]);
    }
    CgFile *m = cg_file(out, "main.c");
    cg_main(&m->text, p, o);
}

const CgBackend cg_c_backend = {"c", emit};
