/* emit_c.c — the C back end: one function per kernel with its shapes as
 * constants, one run function per graph variant calling them in order,
 * OpenMP across the batch (or across channels for reductions), and the
 * tables the runtime reads. The CPU path is the oracle every other back end
 * is checked against, so each kernel is written to be plainly correct
 * first; reductions are ordered so results do not depend on thread count. */
#include <stdio.h>
#include <string.h>

#include "codegen.h"
#include "ewise.h"

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
} Emit;

static bool supports(IrOp op) { (void)op; return true; }

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
static const char *omp_for(const char *work);
/* The step's hyper-parameters h: an accumulator's count, and what the
 * element-wise expressions of the kernel and its epilogues read (dropout). */
static bool needs_hyper(const IrNode *n) {
    bool r = n->op == OP_ACCUM || cg_ewise_reads_hyper(n->op);
    for (int i = 0; i < n->nepi; i++) r = r || cg_ewise_reads_hyper(n->epi[i]->op);
    return r;
}


/* Statements applying the fused element-wise ops (ewise.h) to `v`, the
 * value stored at index `idx`; a second source (a ReLU gradient's mask) is
 * read there from kernel argument e<k>. */
static void epilogue_at(Emit *E, const IrNode *n, const char *indent, const char *idx) {
    for (int i = 0; i < n->nepi; i++) {
        const IrNode *e = n->epi[i];
        const char *src[2] = {"v", arena_printf(mm_arena, "e%d[%s]", i, idx)};
        buf_printf(E->b, "%sv = %s;  /* %%%d %s */\n", indent, cg_ewise(e, src, idx), e->id, ir_op_name[e->op]);
    }
}
#define epilogue(E, n, indent) epilogue_at(E, n, indent, "i")

#define P(...) buf_printf(E->b, __VA_ARGS__)

static const char *omp_for(const char *work) {
    return arena_printf(mm_arena, "    #pragma omp parallel for schedule(static) if ((size_t)(%s) >= 32768)\n", work);
}

#define window_consts(E, x, y, a) cg_window_consts((E)->b, x, y, a)
#define WIN CG_WIN
#define pointwise_conv cg_pointwise
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

/* Only a ReLU can ride in the GEMM's store; other epilogues get a pass. */
static bool relu_only(const IrNode *n) { return n->nepi == 1 && n->epi[0]->op == OP_RELU; }

enum { PANEL = 256 }; /* GEMM columns per panel: a multiple of every MMK_NR */
enum { MMK_THIN_MAX_EMIT = 3 }; /* MMK_THIN_MAX: outputs this few go to mmk_conv_thin */

/* Loop over every (channel, example) run of Q values, in parallel. */
static void for_planes(Emit *E, const IrNode *t) {
    P("    enum { C = %d, Q = %zu };\n", ir_channels(t), positions(t));
    P("%s", omp_for("B * C * Q"));
    P("    for (int i = 0; i < C * B; i++) {\n        const int c = i / B, n = i %% B;\n        const size_t o = %s;\n", base(t));
}

/* 2-D convolutions run without unrolling their input (im2col): each
 * example's feature map is copied into zero-padded planes, and row
 * (c, kh, kw) of the unrolled matrix is one of those planes shifted, read in
 * place by the GEMM (mmk_gemm_off). With stride S the padded map is split
 * into S x S phase planes (phase (a, b) holds rows a, a+S, ... and columns
 * b, b+S, ...), so that each kernel tap again reads a plane shifted by
 * (kh/S, kw/S). Outputs are computed on the plane's width WQ (WQ - YW
 * wasted columns per row) and the valid ones stored. The input gradient of
 * a stride-1 convolution is one too: dY padded by k-1-p, the weights flipped
 * and transposed. */
#define implicit_floats ir_conv_plane_floats

static bool implicit_conv(const IrAttr *a, const IrNode *in, const IrNode *out, int pah, int paw, int min_k, bool strided) {
    int sh = strided ? a->s[1] : 1, sw = strided ? a->s[2] : 1, kk = ir_channels(in) * a->k[1] * a->k[2];
    /* A forward GEMM as short as K = 25 (a 5x5 over one channel) loses more
     * to the wasted columns than it saves by not unrolling (min_k 32). The
     * offset tables live on the stack (at most 8192 rows), the planes of an
     * example in each thread's scratch (at most 4M floats). */
    return a->nsp == 2 && !cg_pointwise(a) && (strided || (a->s[1] == 1 && a->s[2] == 1)) && a->p[1] < a->k[1] &&
           a->p[2] < a->k[2] && kk >= min_k && kk <= 8192 && implicit_floats(in, out, a, pah, paw, sh, sw, true) <= ((size_t)4 << 20);
}

/* Constants of the padded planes: in (the map read: XC planes of XH x XW,
 * padded by PAH, PAW, stride SH x SW), out (YC x YH x YW), kernel FH x FW;
 * and the offsets of the shifted rows. Returns the floats of the planes. */
static void implicit_consts(Emit *E, const IrNode *in, const IrNode *out, const IrAttr *a, int pah, int paw, int sh, int sw) {
    int xc = ir_channels(in), xh = in->shape[2], xw = in->shape[3], yc = ir_channels(out), yh = out->shape[2], yw = out->shape[3];
    P("    enum { XC = %d, XH = %d, XW = %d, YC = %d, YH = %d, YW = %d, FH = %d, FW = %d, PAH = %d, PAW = %d, SH = %d, SW = %d,\n", xc, xh,
      xw, yc, yh, yw, a->k[1], a->k[2], pah, paw, sh, sw);
    P("           HQ = (XH + 2 * PAH + SH - 1) / SH, WQ = (XW + 2 * PAW + SW - 1) / SW, PPL = HQ * WQ, PL = SH * SW * PPL + FW + 64,\n");
    P("           NC = YH * WQ, KK = XC * FH * FW,\n");
    /* Rows and columns no window reads (dropped by the stride) stay zero: the
     * wasted columns read them, and a weight gradient sums 0 x value there. */
    P("           HU = (YH - 1) * SH + FH - PAH < XH ? (YH - 1) * SH + FH - PAH : XH, WU = (YW - 1) * SW + FW - PAW < XW ? (YW - 1) * SW + FW - PAW : XW };\n");
    P("    int off[KK];  /* row (c, kh, kw) of the unrolled input: a plane of channel c, shifted */\n");
    P("    for (int c = 0; c < XC; c++)\n        for (int kh = 0; kh < FH; kh++)\n            for (int kw = 0; kw < FW; kw++)\n");
    P("                off[(c * FH + kh) * FW + kw] = c * PL + ((kh %% SH) * SW + kw %% SW) * PPL + (kh / SH) * WQ + kw / SW;\n");
}

/* Copy example n of the XC planes of `src` into the padded planes at xp. */
static void implicit_pad(Emit *E, const char *src, int sh, int sw, const char *indent) {
    P("%sfor (int c = 0; c < XC; c++)\n%s    for (int h = 0; h < HU; h++) {\n", indent, indent);
    P("%s        const mm_real *xr = %s + (((size_t)c * B + n) * XH + h) * XW;\n", indent, src);
    if (sh == 1 && sw == 1)
        P("%s        memcpy(xp + (size_t)c * PL + (size_t)(h + PAH) * WQ + PAW, xr, sizeof(mm_real) * WU);\n", indent);
    else {
        P("%s        mm_real *pr = xp + (size_t)c * PL + (size_t)((h + PAH) %% SH * SW) * PPL + (size_t)((h + PAH) / SH) * WQ;\n", indent);
        P("%s        for (int w = 0; w < WU; w++) pr[(w + PAW) %% SW * PPL + (w + PAW) / SW] = xr[w];\n", indent);
    }
    P("%s    }\n", indent);
}

/* Y = conv(in), read from the padded planes. */
/* Computed transposed when that wastes less: Y^T[p][co] = sum_k X[p][k]
 * W^T[k][co] with the output positions p as GEMM rows gathered from the
 * planes (mmk_gemm_gather), so no padded column is computed; the columns
 * are output channels, in blocks of 32. The padded rows waste (WQ - YW) /
 * WQ of the columns (22% on a 7x7 map), the blocks 1 - YC / 32k. */
static bool gather_wins(const IrNode *out, int wq) {
    int yc = ir_channels(out), np = out->shape[2] * out->shape[3];
    return yc > MMK_THIN_MAX_EMIT && np <= 4096 && (double)yc / ((yc + 31) / 32 * 32) > (double)out->shape[3] / wq;
}

/* The window of a max pooling folded into a convolution's kernel. */
static void pool_consts(Emit *E, const IrNode *m) {
    P("            enum { PKH = %d, PKW = %d, PSH = %d, PSW = %d, PPH = %d, PPW = %d, PHO = %d, PWO = %d, PO = PHO * PWO };  /* %%%d maxpool */\n",
      m->a.k[1], m->a.k[2], m->a.s[1], m->a.s[2], m->a.p[1], m->a.p[2], m->shape[2], m->shape[3], m->id);
}

static void implicit_conv_body(Emit *E, const IrNode *n, const IrNode *in, int pah, int paw, int sh, int sw, const char *w,
                               const char *bias, bool relu) {
    implicit_consts(E, in, n, &n->a, pah, paw, sh, sw);
    size_t need = implicit_floats(in, n, &n->a, pah, paw, sh, sw, false);
    int wq = (in->shape[3] + 2 * paw + sw - 1) / sw;
    if (gather_wins(n, wq)) {
        size_t yc = (size_t)ir_channels(n), np = (size_t)n->shape[2] * n->shape[3];
        size_t kk = (size_t)ir_channels(in) * n->a.k[1] * n->a.k[2], at = strcmp(w, "x1") == 0 ? 0 : yc * kk;
        size_t po = n->pool ? (size_t)n->pool->shape[2] * n->pool->shape[3] : 0;
        size_t g = implicit_floats(in, n, &n->a, pah, paw, sh, sw, false) - yc * n->shape[2] * wq + np * yc + 32 * po;
        if (g > E->scratch) E->scratch = g;
        if (at + kk * ((yc + 31) / 32 * 32) > E->wt) E->wt = at + kk * ((yc + 31) / 32 * 32);
        P("    enum { NP = YH * YW };\n");
        P("    mm_real *wp = e->wt + %zu;\n    mmk_pack_t(wp, %s, KK, KK, YC);  /* W^T, packed */\n", at, w);
        P("    #pragma omp parallel\n    {\n");
        P("        mm_real *xp = e->scratch + (size_t)MMK_THREAD() * e->impl->scratch_floats, *ct = xp + (size_t)XC * PL;  /* Y^T: [NP][YC] */\n");
        P("        const mm_real *ap[NP];  /* output position p = (h, w): its planes at h * WQ + w */\n");
        P("        for (int h = 0; h < YH; h++)\n            for (int w = 0; w < YW; w++) ap[h * YW + w] = xp + (size_t)h * WQ + w;\n");
        P("        memset(xp, 0, sizeof(mm_real) * XC * PL);  /* the padding stays zero */\n");
        P("        #pragma omp for schedule(static)\n        for (int n = 0; n < B; n++) {\n");
        implicit_pad(E, "x0", sh, sw, "            ");
        P("            mmk_gemm_gather(NP, YC, KK, ap, off, wp, ct, YC, 0);\n");
        if (n->pool) {
            /* The folded max pooling, across 16 channels at a time, on the
             * transposed result; the bias and ReLU on the pooled values;
             * then transposed into the pooled map (and its argmaxes). */
            const IrNode *m = n->pool;
            pool_consts(E, m);
            P("            mm_real *pt = ct + (size_t)NP * YC;\n            int32_t *it = (int32_t *)(pt + (size_t)PO * 16);\n");
            P("            for (int c = 0; c < YC; c += 16) {\n");
            P("                mmk_maxpool_t16(ct, YC, c, YC, YH, YW, PHO, PWO, PKH, PKW, PSH, PSW, PPH, PPW, %s, %d, pt, %s);\n", bias, relu,
              m->a.mode ? "it" : "NULL");
            P("                for (int o = 0; o < PO; o += 16) {\n");
            P("                    const int r = PO - o < 16 ? PO - o : 16, w = YC - c < 16 ? YC - c : 16;\n");
            P("                    mmk_tr16x(y + ((size_t)c * B + n) * PO + o, (size_t)B * PO, pt + (size_t)o * 16, 16, r, w, 1, NULL, 0);\n");
            if (m->a.mode)
                P("                    mmk_tr16i((int32_t *)(y + (size_t)B * YC * PO) + ((size_t)c * B + n) * PO + o, (size_t)B * PO, it + (size_t)o * 16, 16, r, w);\n");
            P("                }\n            }\n");
        } else {
            /* Transposed back into the channel-major map, with the bias and a ReLU. */
            P("            for (int co = 0; co < YC; co += 16)\n                for (int p = 0; p < NP; p += 16)\n");
            P("                    mmk_tr16x(y + ((size_t)co * B + n) * NP + p, (size_t)B * NP, ct + (size_t)p * YC + co, YC, NP - p < 16 ? NP - p : 16, YC - co < 16 ? YC - co : 16, 1,\n");
            P("                              %s, %d);\n", strcmp(bias, "NULL") == 0 ? "NULL" : arena_printf(mm_arena, "%s + co", bias), relu);
        }
        if (!n->pool && n->nepi && !relu) {
            P("            for (int c = 0; c < YC; c++)\n                for (int p = 0; p < NP; p++) {\n");
            P("                    const size_t i = ((size_t)c * B + n) * NP + p;\n                    mm_real v = y[i];\n");
            epilogue_at(E, n, "                    ", "i");
            P("                    y[i] = v;\n                }\n");
        }
        P("        }\n    }\n");
        return;
    }
    if (need > E->scratch) E->scratch = need;
    P("    #pragma omp parallel\n    {\n");
    P("        mm_real *xp = e->scratch + (size_t)MMK_THREAD() * e->impl->scratch_floats, *cp = xp + (size_t)XC * PL;\n");
    P("        memset(xp, 0, sizeof(mm_real) * XC * PL);  /* the padding stays zero */\n");
    P("        #pragma omp for schedule(static)\n        for (int n = 0; n < B; n++) {\n");
    implicit_pad(E, "x0", sh, sw, "            ");
    /* Few output channels (an input gradient of a first layer): mmk_conv_thin. */
    if (sh == 1 && sw == 1 && strcmp(bias, "NULL") == 0 && !relu)
        P("            if (YC <= MMK_THIN_MAX) mmk_conv_thin(YC, XC, FH, FW, YH, YW, WQ, PL, %s, xp, off, cp, NC);\n            else\n    ", w);
    P("            mmk_gemm_off(YC, NC, KK, %s, KK, xp, off, cp, NC, %s, %d);\n", w, bias, relu);
    if (n->pool) {
        /* The folded max pooling reads the planes while they are in cache;
         * only its result is stored (passes/fuse.c). */
        const IrNode *m = n->pool;
        pool_consts(E, m);
        P("            for (int c = 0; c < YC; c++) {\n                const size_t o = ((size_t)c * B + n) * PHO * PWO;\n");
        P("                mmk_maxpool2d(cp + (size_t)c * NC, WQ, y + o, %s, YH, YW, PHO, PWO, PKH, PKW, PSH, PSW, PPH, PPW);\n",
          m->a.mode ? "(int32_t *)(y + (size_t)B * YC * PHO * PWO) + o" : "NULL");
        P("            }\n        }\n    }\n");
        return;
    }
    P("            for (int c = 0; c < YC; c++)\n                for (int h = 0; h < YH; h++)\n                    for (int w = 0; w < YW; w++) {\n");
    P("                        const size_t i = (((size_t)c * B + n) * YH + h) * YW + w;\n");
    P("                        mm_real v = cp[(size_t)c * NC + h * WQ + w];\n");
    if (!relu) epilogue_at(E, n, "                        ", "i");
    P("                        y[i] = v;\n                    }\n        }\n    }\n");
}

/* The input gradient of a strided 2-D convolution, by output phases: the
 * rows h = SH u + a and columns w = SW v + b of dX (phase (a, b)) receive
 * dY only through the taps kh = a + PH (mod SH), kw = b + PW (mod SW), from
 * dY[u + th][v + tw] with th = (a + PH - kh) / SH, tw likewise. So each
 * phase is a stride-1 correlation of dY (padded planes, read in place) with
 * that phase's taps: one GEMM with K = CO x taps, and its result scattered
 * into every SH-th row and SW-th column of dX. No unrolling and no col2im.
 * False (and nothing emitted) when the shapes do not fit the planes. */
static bool strided_dx(Emit *E, const IrNode *n) {
    const IrNode *dy = n->src[0];
    const IrAttr *a = &n->a;
    int S[2] = {a->s[1], a->s[2]}, Pd[2] = {a->p[1], a->p[2]}, F[2] = {a->k[1], a->k[2]};
    int X[2] = {n->shape[2], n->shape[3]}, Yd[2] = {dy->shape[2], dy->shape[3]}, co = ir_channels(dy), ci = ir_channels(n);
    if (a->nsp != 2 || (S[0] == 1 && S[1] == 1) || Pd[0] >= F[0] || Pd[1] >= F[1]) return false;
    /* Per dimension: the offsets t of each phase's taps, the phase's extent u
     * (rows of dX in it), and the padding of dY the offsets need. */
    int lo[2] = {0, 0}, hi[2] = {0, 0}, umax[2] = {0, 0};
    for (int d = 0; d < 2; d++)
        for (int ph = 0; ph < S[d]; ph++) {
            int u = ph < X[d] ? (X[d] - ph + S[d] - 1) / S[d] : 0;
            if (u > umax[d]) umax[d] = u;
            for (int k = 0; k < F[d]; k++)
                if ((ph + Pd[d] - k) % S[d] == 0) {
                    int t = (ph + Pd[d] - k) / S[d];
                    if (t < lo[d]) lo[d] = t;
                    if (t > hi[d]) hi[d] = t;
                }
        }
    int pt = -lo[0], pl = -lo[1];
    int hq = pt + (umax[0] + hi[0] > Yd[0] ? umax[0] + hi[0] : Yd[0]), wq = pl + (umax[1] + hi[1] > Yd[1] ? umax[1] + hi[1] : Yd[1]);
    size_t plane = (size_t)hq * wq + wq + 64, kk = (size_t)co * F[0] * F[1];
    size_t need = (size_t)co * plane + (size_t)ci * umax[0] * wq;
    if ((size_t)S[0] * S[1] * kk > 16384 || need > ((size_t)4 << 20)) return false; /* offsets on the stack, planes in scratch */
    /* Each phase transposed (positions as GEMM rows, gathered) where that
     * wastes less than its padded rows. */
    bool gather = ci > MMK_THIN_MAX_EMIT && (size_t)umax[0] * umax[1] <= 4096 && (double)ci / ((ci + 31) / 32 * 32) > (double)umax[1] / wq;
    size_t ci32 = (size_t)(ci + 31) / 32 * 32;
    if (gather) need += (size_t)ci * umax[0] * umax[1];
    if (need > E->scratch) E->scratch = need;
    if (kk * (ci + (gather ? ci32 : 0)) > E->wt) E->wt = kk * (ci + (gather ? ci32 : 0));
    int nph = S[0] * S[1];
    P("    /* By output phase (a, b): taps kh = a + PH, kw = b + PW (mod the stride), offsets (th, tw) into dY. */\n");
    P("    enum { CO = %d, CI = %d, YH = %d, YW = %d, XH = %d, XW = %d, FH = %d, FW = %d, SH = %d, SW = %d, NPH = %d,\n", co, ci, Yd[0],
      Yd[1], X[0], X[1], F[0], F[1], S[0], S[1], nph);
    P("           PT = %d, PLW = %d, HQ = %d, WQ = %d, PL = HQ * WQ + WQ + 64, UHM = %d };\n", pt, pl, hq, wq, umax[0]);
    /* Tables: per phase its taps (kh, kw, th, tw), first weight, extent. */
    P("    static const struct { int a, b, uh, uw, nt, w0, kh[%d], kw[%d], th[%d], tw[%d]; } ph[NPH] = {\n", F[0] * F[1], F[0] * F[1],
      F[0] * F[1], F[0] * F[1]);
    int w0 = 0;
    for (int pa = 0; pa < S[0]; pa++)
        for (int pb = 0; pb < S[1]; pb++) {
            int uh = pa < X[0] ? (X[0] - pa + S[0] - 1) / S[0] : 0, uw = pb < X[1] ? (X[1] - pb + S[1] - 1) / S[1] : 0, nt = 0;
            Buf kh = {0}, kw = {0}, th = {0}, tw = {0};
            for (int i = 0; i < F[0]; i++)
                for (int j = 0; j < F[1]; j++)
                    if ((pa + Pd[0] - i) % S[0] == 0 && (pb + Pd[1] - j) % S[1] == 0) {
                        buf_printf(&kh, "%s%d", nt ? ", " : "", i);
                        buf_printf(&kw, "%s%d", nt ? ", " : "", j);
                        buf_printf(&th, "%s%d", nt ? ", " : "", (pa + Pd[0] - i) / S[0]);
                        buf_printf(&tw, "%s%d", nt ? ", " : "", (pb + Pd[1] - j) / S[1]);
                        nt++;
                    }
            P("        {%d, %d, %d, %d, %d, %d, {%s}, {%s}, {%s}, {%s}},\n", pa, pb, uh, uw, nt, w0, nt ? kh.s : "0", nt ? kw.s : "0",
              nt ? th.s : "0", nt ? tw.s : "0");
            w0 += ci * co * nt;
            buf_free(&kh), buf_free(&kw), buf_free(&th), buf_free(&tw);
        }
    P("    };\n");
    P("    int off[NPH][CO * FH * FW];  /* row (co, tap) of phase p: dY's plane co, shifted by (th, tw) */\n");
    P("    for (int p = 0; p < NPH; p++)\n        for (int co = 0; co < CO; co++)\n            for (int j = 0; j < ph[p].nt; j++) {\n");
    P("                off[p][co * ph[p].nt + j] = co * PL + (ph[p].th[j] + PT) * WQ + ph[p].tw[j] + PLW;\n");
    P("                for (int ci = 0; ci < CI; ci++)  /* the phase's weights: [CI][CO x taps] */\n");
    P("                    e->wt[ph[p].w0 + ((size_t)ci * CO + co) * ph[p].nt + j] = x1[((size_t)(co * CI + ci) * FH + ph[p].kh[j]) * FW + ph[p].kw[j]];\n");
    P("            }\n");
    if (gather) { /* each phase's weights packed transposed: [CO x taps][CI], after the plain ones */
        P("    enum { WPK = CI * CO * FH * FW };\n");
        P("    for (int p = 0; p < NPH; p++)\n        mmk_pack_t(e->wt + WPK + ph[p].w0 / CI * %zu, e->wt + ph[p].w0, CO * ph[p].nt, CO * ph[p].nt, CI);\n", ci32);
    }
    P("    #pragma omp parallel\n    {\n");
    P("        mm_real *xp = e->scratch + (size_t)MMK_THREAD() * e->impl->scratch_floats, *cp = xp + (size_t)CO * PL;\n");
    if (gather) P("        mm_real *ct = cp + (size_t)CI * UHM * WQ;  /* a phase transposed: [positions][CI] */\n        const mm_real *ap[%d];\n",
                  umax[0] * umax[1]);
    P("        memset(xp, 0, sizeof(mm_real) * CO * PL);  /* the padding stays zero */\n");
    P("        #pragma omp for schedule(static)\n        for (int n = 0; n < B; n++) {\n");
    P("            for (int c = 0; c < CO; c++)\n                for (int h = 0; h < YH; h++)\n");
    P("                    memcpy(xp + (size_t)c * PL + (size_t)(h + PT) * WQ + PLW, x0 + (((size_t)c * B + n) * YH + h) * YW, sizeof(mm_real) * YW);\n");
    P("            for (int p = 0; p < NPH; p++) {\n");
    P("                const int nc = ph[p].uh * WQ, k = CO * ph[p].nt;\n");
    if (gather) {
        /* Rows: the phase's positions (u, q), gathered; then transposed into
         * cp's rows (u * WQ + q), where the scatter below reads them. */
        P("                const int np = ph[p].uh * ph[p].uw;\n");
        P("                for (int u = 0; u < ph[p].uh; u++)\n                    for (int q = 0; q < ph[p].uw; q++) ap[u * ph[p].uw + q] = xp + (size_t)u * WQ + q;\n");
        P("                if (k) {\n");
        P("                    mmk_gemm_gather(np, CI, k, ap, off[p], e->wt + WPK + ph[p].w0 / CI * %zu, ct, CI, 0);\n", ci32);
        P("                    for (int c = 0; c < CI; c += 16)  /* cp: [CI][np] */\n                        for (int j = 0; j < np; j += 16)\n");
        P("                            mmk_tr16x(cp + (size_t)c * np + j, np, ct + (size_t)j * CI + c, CI, np - j < 16 ? np - j : 16, CI - c < 16 ? CI - c : 16, 1, NULL, 0);\n");
        P("                } else memset(cp, 0, sizeof(mm_real) * CI * np);  /* no tap reaches this phase */\n");
    } else {
        P("                if (k) mmk_gemm_off(CI, nc, k, e->wt + ph[p].w0, k, xp, off[p], cp, nc, NULL, 0);\n");
        P("                else memset(cp, 0, sizeof(mm_real) * CI * nc);  /* no tap reaches this phase */\n");
    }
    P("                for (int c = 0; c < CI; c++)\n                    for (int u = 0; u < ph[p].uh; u++)\n");
    P("                        for (int q = 0; q < ph[p].uw; q++) {\n");
    P("                            const size_t i = (((size_t)c * B + n) * XH + SH * u + ph[p].a) * XW + SW * q + ph[p].b;\n");
    P("                            mm_real v = cp[%s];\n", gather ? "(size_t)c * np + u * ph[p].uw + q" : "(size_t)c * nc + u * WQ + q");
    epilogue_at(E, n, "                            ", "i");
    P("                            y[i] = v;\n                        }\n            }\n        }\n    }\n");
    return true;
}

/* dW[co][k] = the RT_DW_CHUNKS partial dW^T[k][co], summed in chunk order. */
static void dw_reduce(Emit *E, const char *k, const char *co) {
    P("    #pragma omp parallel for schedule(static) if (NW >= 16384)\n");
    P("    for (int co = 0; co < %s; co++)\n        for (int k = 0; k < %s; k++) {\n            mm_real s = 0;\n", co, k);
    P("            for (int c = 0; c < nch; c++) s += e->partial[(size_t)c * e->impl->partial_floats + (size_t)k * %s + co];\n", co);
    P("            y[(size_t)co * %s + k] = s;\n        }\n", k);
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
        epilogue_at(E, n, "            ", "o + q");
        P("            y[o + q] = v;\n        }\n    }\n");
        return;
    }
    const char *src[IR_MAXSRC];
    for (int j = 0; j < n->nsrc; j++) src[j] = arena_printf(mm_arena, "x%d[i]", j);
    P("%s", omp_for(total));
    P("    for (size_t i = 0; i < %s; i++) {\n        mm_real v = %s;\n", total, cg_ewise(n, src, "i"));
    epilogue(E, n, "        ");
    P("        y[i] = v;\n    }\n");
}

static void kernel_body(Emit *E, const IrNode *n) {
    const IrNode *x = n->nsrc ? n->src[0] : NULL;
    const char *total = count(n);
    if (ir_op_flags[n->op] & OPF_ELEM) {
        ewise_kernel(E, n);
        return;
    }
    switch (n->op) {
    case OP_ONE:
        P("    y[0] = 1.0f;\n");
        break;
    case OP_CONV: {
        /* Y[CO][B*Q] = W[CO][K] . COL[K][B*Q] + bias, one panel of columns
         * per task: unroll the panel (im2col, packed for the GEMM), then the
         * GEMM; ReLU in the store. */
        bool pw = pointwise_conv(&n->a), relu = relu_only(n);
        /* With a pooling folded in (passes/fuse.c checked the planes fit), always
         * on padded planes: whole examples, pooled in place. */
        if (n->pool || implicit_conv(&n->a, x, n, n->a.p[1], n->a.p[2], 32, true)) {
            implicit_conv_body(E, n, x, n->a.p[1], n->a.p[2], n->a.s[1], n->a.s[2], "x1", n->a.bias ? "x2" : "NULL", relu);
            break;
        }
        window_consts(E, x, n, &n->a);
        size_t k = (size_t)ir_channels(x) * n->a.k[0] * n->a.k[1] * n->a.k[2];
        if (k * PANEL > E->scratch) E->scratch = k * PANEL;
        P("    enum { K = CI * KD * KH * KW, Q = DO * HO * WO, NB = %d };\n", PANEL);
        P("    const int N = B * Q;\n");
        P("    #pragma omp parallel for schedule(static)\n");
        P("    for (int j0 = 0; j0 < N; j0 += NB) {\n        const int nb = N - j0 < NB ? N - j0 : NB;\n");
        P("        mm_real *panel = e->scratch + (size_t)MMK_THREAD() * e->impl->scratch_floats;\n");
        if (pw) P("        mmk_pack(panel, x0 + j0, N, K, nb);  /* 1x1, stride 1: the input is its own column matrix */\n");
        else P("        mmk_im2col_cb(panel, 1, x0, B, j0, nb, " WIN ");\n");
        P("        mmk_gemm(CO, nb, K, x1, K, panel, y + j0, N, %s, 0, %d);\n", n->a.bias ? "x2" : "NULL", relu);
        if (n->nepi && !relu) {
            P("        for (int co = 0; co < CO; co++)\n            for (int j = j0; j < j0 + nb; j++) {\n");
            P("                mm_real v = y[(size_t)co * N + j];\n");
            epilogue_at(E, n, "                ", "(size_t)co * N + j");
            P("                y[(size_t)co * N + j] = v;\n            }\n");
        }
        P("    }\n");
        break;
    }
    case OP_CONV_DX: {
        /* dX = col2im(W^T . dY), a panel of whole examples per task (so no
         * two tasks add into the same input). n has x's shape; dy = src 0. */
        const IrNode *dy = n->src[0];
        if (implicit_conv(&n->a, dy, n, n->a.k[1] - 1 - n->a.p[1], n->a.k[2] - 1 - n->a.p[2], 1, false)) {
            size_t kk = (size_t)ir_channels(n) * ir_channels(dy) * n->a.k[1] * n->a.k[2];
            if (kk > E->wt) E->wt = kk;
            P("    {   /* W'[ci][co][t] = W[co][ci][FH*FW-1-t]: the weights flipped, in and out channels swapped */\n");
            P("        enum { CO_ = %d, CI_ = %d, T_ = %d };\n", ir_channels(dy), ir_channels(n), n->a.k[1] * n->a.k[2]);
            P("        for (int co = 0; co < CO_; co++)\n            for (int ci = 0; ci < CI_; ci++)\n");
            P("                for (int t = 0; t < T_; t++) e->wt[((size_t)ci * CO_ + co) * T_ + t] = x1[((size_t)co * CI_ + ci) * T_ + T_ - 1 - t];\n    }\n");
            implicit_conv_body(E, n, dy, n->a.k[1] - 1 - n->a.p[1], n->a.k[2] - 1 - n->a.p[2], 1, 1, "e->wt", "NULL", false);
            break;
        }
        if (!pointwise_conv(&n->a) && strided_dx(E, n)) break;
        window_consts(E, n, dy, &n->a);
        bool pw = pointwise_conv(&n->a);
        size_t k = (size_t)ir_channels(n) * n->a.k[0] * n->a.k[1] * n->a.k[2], q = ir_positions(dy), co = (size_t)ir_channels(dy);
        size_t s = q >= PANEL ? 1 : PANEL / q, cols = pw ? PANEL : s * q, cols32 = (cols + 31) / 32 * 32;
        size_t need = co * cols32 + (pw ? 0 : k * cols);
        if (need > E->scratch) E->scratch = need;
        if (co * k > E->wt) E->wt = co * k;
        P("    enum { K = CI * KD * KH * KW, Q = DO * HO * WO, QI = DI * HI * WI, S = %zu, NB = %d };\n", s, PANEL);
        P("    const int N = B * Q;\n");
        P("    mmk_transpose(e->wt, x1, CO, K);  /* W^T: [K][CO] */\n");
        P("    #pragma omp parallel for schedule(static)\n");
        if (pw) {
            P("    for (int j0 = 0; j0 < N; j0 += NB) {\n        const int nb = N - j0 < NB ? N - j0 : NB;\n");
            P("        mm_real *packed = e->scratch + (size_t)MMK_THREAD() * e->impl->scratch_floats;\n");
            P("        mmk_pack(packed, x0 + j0, N, CO, nb);\n");
            P("        mmk_gemm(CI, nb, CO, e->wt, CO, packed, y + j0, N, NULL, 0, 0);\n");
            if (n->nepi) {
                P("        for (int ci = 0; ci < CI; ci++)\n            for (size_t i = (size_t)ci * N + j0; i < (size_t)ci * N + j0 + nb; i++) {\n");
                P("                mm_real v = y[i];\n");
                epilogue(E, n, "                ");
                P("                y[i] = v;\n            }\n");
            }
            P("    }\n");
        } else {
            P("    for (int n0 = 0; n0 < B; n0 += S) {\n");
            P("        const int ns = B - n0 < S ? B - n0 : S, j0 = n0 * Q;\n");
            P("        mm_real *packed = e->scratch + (size_t)MMK_THREAD() * e->impl->scratch_floats;\n");
            P("        mm_real *dcol = packed + (size_t)CO * ((S * Q + 31) / 32 * 32);\n");
            P("        mmk_pack(packed, x0 + j0, N, CO, ns * Q);\n");
            P("        mmk_gemm(K, ns * Q, CO, e->wt, CO, packed, dcol, S * Q, NULL, 0, 0);\n");
            P("        for (int ci = 0; ci < CI; ci++) memset(y + ((size_t)ci * B + n0) * QI, 0, sizeof(mm_real) * ns * QI);\n");
            P("        mmk_col2im_cb(y, dcol, S * Q, B, j0, ns * Q, " WIN ");\n");
            if (n->nepi) {
                P("        for (int ci = 0; ci < CI; ci++)\n            for (size_t i = ((size_t)ci * B + n0) * QI; i < ((size_t)ci * B + n0 + ns) * QI; i++) {\n");
                P("                mm_real v = y[i];\n");
                epilogue(E, n, "                ");
                P("                y[i] = v;\n            }\n");
            }
            P("    }\n");
        }
        break;
    }
    case OP_CONV_DW: {
        /* dW^T[K][CO] = COL[K][B*Q] . dY^T, the batch split into RT_DW_CHUNKS
         * fixed chunks summed in order (independent of the thread count);
         * each chunk in panels: unroll (row-major), pack dY^T, GEMM. */
        const IrNode *dy = n->src[0], *xin = n->src[1];
        if (ir_numel(n) > E->partial) E->partial = ir_numel(n);
        if (implicit_conv(&n->a, xin, dy, n->a.p[1], n->a.p[2], 1, true)) {
            /* Per example: pad x, pack dY^T from its contiguous planes, and
             * accumulate dW^T[K][CO] += X_shifted[K][NP] . dY^T[NP][CO], the
             * rows of X read in place at the output positions only (gathered
             * through pos: no padded column is summed). */
            int sh = n->a.s[1], sw = n->a.s[2];
            implicit_consts(E, xin, dy, &n->a, n->a.p[1], n->a.p[2], sh, sw);
            size_t need = implicit_floats(xin, dy, &n->a, n->a.p[1], n->a.p[2], sh, sw, true);
            if (need > E->scratch) E->scratch = need;
            if (ir_positions(dy) > E->wt) E->wt = ir_positions(dy);
            P("    enum { NW = YC * KK, NP = YH * YW };\n");
            P("    const int nch = B < RT_DW_CHUNKS ? B : RT_DW_CHUNKS;\n");
            P("    int *pos = (int *)e->wt;  /* output position p = (h, w): h * WQ + w in the padded rows */\n");
            P("    for (int h = 0; h < YH; h++)\n        for (int w = 0; w < YW; w++) pos[h * YW + w] = h * WQ + w;\n");
            P("    #pragma omp parallel\n    {\n");
            P("        mm_real *xp = e->scratch + (size_t)MMK_THREAD() * e->impl->scratch_floats, *dyt = xp + (size_t)XC * PL;\n");
            P("        const mm_real *rows[KK];\n        for (int k = 0; k < KK; k++) rows[k] = xp + off[k];\n");
            P("        memset(xp, 0, sizeof(mm_real) * XC * PL);  /* the padding stays zero */\n");
            P("        #pragma omp for schedule(static)\n        for (int c = 0; c < nch; c++) {\n");
            P("            mm_real *part = e->partial + (size_t)c * e->impl->partial_floats;  /* dW^T: [K][CO] */\n");
            P("            const int na = (int)((long)B * c / nch), nb = (int)((long)B * (c + 1) / nch);\n");
            P("            for (int n = na; n < nb; n++) {\n");
            implicit_pad(E, "x1", sh, sw, "                ");
            P("                mmk_pack_t(dyt, x0 + (size_t)n * NP, B * NP, NP, YC);  /* dY^T[p][co] */\n");
            P("                mmk_gemm_gather(KK, YC, NP, rows, pos, dyt, part, YC, n > na);\n            }\n        }\n    }\n");
            dw_reduce(E, "KK", "YC");
            break;
        }
        window_consts(E, xin, dy, &n->a);
        size_t k = (size_t)ir_channels(xin) * n->a.k[0] * n->a.k[1] * n->a.k[2], co = (size_t)ir_channels(dy);
        size_t need = k * PANEL + (co + 31) / 32 * 32 * PANEL;
        if (need > E->scratch) E->scratch = need;
        P("    enum { K = CI * KD * KH * KW, Q = DO * HO * WO, NW = CO * K, NB = %d };\n", PANEL);
        P("    const int N = B * Q, nch = B < RT_DW_CHUNKS ? B : RT_DW_CHUNKS;\n");
        P("    #pragma omp parallel for schedule(static)\n");
        P("    for (int c = 0; c < nch; c++) {\n");
        P("        mm_real *part = e->partial + (size_t)c * e->impl->partial_floats;  /* dW^T: [K][CO] */\n");
        P("        mm_real *col = e->scratch + (size_t)MMK_THREAD() * e->impl->scratch_floats, *dyt = col + (size_t)K * NB;\n");
        P("        const int ja = (int)((long)B * c / nch) * Q, jb = (int)((long)B * (c + 1) / nch) * Q;\n");
        P("        for (int j0 = ja; j0 < jb; j0 += NB) {\n            const int nb = jb - j0 < NB ? jb - j0 : NB;\n");
        P("            mmk_im2col_cb(col, 0, x1, B, j0, nb, " WIN ");\n");
        P("            mmk_pack_t(dyt, x0 + j0, N, nb, CO);\n");
        P("            mmk_gemm(K, CO, nb, col, nb, dyt, part, CO, NULL, j0 > ja, 0);\n        }\n    }\n");
        dw_reduce(E, "K", "CO");
        break;
    }
    case OP_MAXPOOL: case OP_AVGPOOL: case OP_MAXPOOL_DX: case OP_AVGPOOL_DX: {
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
        bool planar = n->a.nsp == 2 && (size_t)hi * ((wo + 15) / 16 * 16) * 8 <= 65536;  /* its passes' stack */
        if (mx && !bwd && planar) {
            /* 2-D max pooling: two branch-free passes over the plane (mmrt_cpu.h). */
            P("        mmk_maxpool2d(xs, WI, ys, %s, HI, WI, HO, WO, KH, KW, SH, SW, PH, PW);\n", rec ? "ix" : "NULL");
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
            epilogue(E, n, "            ");
            P("            y[i] = v;\n        }\n");
        }
        P("    }\n");
        break;
    }
    case OP_GAP:
        for_planes(E, x);
        P("        y[(size_t)n * C + c] = mmk_sum(x0 + o, Q) * (1.0f / Q);\n    }\n");
        break;
    case OP_GAP_DX:
        for_planes(E, n);
        P("        const mm_real g = x0[(size_t)n * C + c] * (1.0f / Q);\n        for (int q = 0; q < Q; q++) {\n            mm_real v = g;\n");
        epilogue_at(E, n, "            ", "o + q");
        P("            y[o + q] = v;\n        }\n    }\n");
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
    case OP_LINEAR:
        P("    enum { I = %d, O = %d };\n", x->shape[1], n->shape[1]);
        P("%s", omp_for("B * I * O"));
        P("    for (int n = 0; n < B; n++) {\n        mm_real *ys = y + (size_t)n * O;\n");
        P("        for (int o = 0; o < O; o++) {\n            mm_real v = %smmk_dot(x0 + (size_t)n * I, x1 + (size_t)o * I, I);\n",
          n->a.bias ? "x2[o] + " : "");
        epilogue_at(E, n, "            ", "(size_t)n * O + o");
        P("            ys[o] = v;\n        }\n    }\n");
        break;
    case OP_LINEAR_DX: /* dx[n][i] = sum_o dy[n][o] w[o][i] */
        P("    enum { I = %d, O = %d };\n", n->shape[1], n->src[0]->shape[1]);
        P("%s", omp_for("B * I * O"));
        P("    for (int n = 0; n < B; n++) {\n        mm_real *dx = y + (size_t)n * I;\n        memset(dx, 0, sizeof(mm_real) * I);\n");
        P("        for (int o = 0; o < O; o++) {\n            const mm_real g = x0[(size_t)n * O + o];\n");
        P("            for (int i = 0; i < I; i++) dx[i] += g * x1[(size_t)o * I + i];\n        }\n    }\n");
        break;
    case OP_LINEAR_DW: /* dw[o][i] = sum_n dy[n][o] x[n][i]; rows in parallel, examples in order */
        P("    enum { I = %d, O = %d };\n", n->shape[1], n->shape[0]);
        P("%s", omp_for("B * I * O"));
        P("    for (int o = 0; o < O; o++) {\n        mm_real *dw = y + (size_t)o * I;\n        memset(dw, 0, sizeof(mm_real) * I);\n");
        P("        for (int n = 0; n < B; n++) {\n            const mm_real g = x0[(size_t)n * O + o];\n");
        P("            const mm_real *xs = x1 + (size_t)n * I;\n            for (int i = 0; i < I; i++) dw[i] += g * xs[i];\n        }\n    }\n");
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
    case OP_BN_APPLY:
        for_planes(E, n);
        P("        const mm_real a = x1[C + c] * x2[c], b = x3[c] - x1[c] * a;\n");
        P("        for (int q = 0; q < Q; q++) {\n            mm_real v = x0[o + q] * a + b;\n");
        epilogue_at(E, n, "            ", "o + q");
        P("            y[o + q] = v;\n        }\n    }\n");
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
    case OP_BN_DX:
        /* dx = gamma inv (dy - sum dy / N - (x - mean) inv^2 sum dy (x - mean) / N),
         * N = B * Q: through the normalisation and the batch statistics. */
        for_planes(E, n);
        P("        const mm_real inv_cnt = 1.0f / ((mm_real)B * Q), mean = x2[c], inv = x2[C + c], gi = x3[c] * inv;\n");
        P("        const mm_real a = -x4[c] * gi * inv_cnt, b = -x4[C + c] * gi * inv * inv * inv_cnt;\n");
        P("        for (int q = 0; q < Q; q++) {\n            mm_real v = x0[o + q] * gi + a + b * (x1[o + q] - mean);\n");
        epilogue_at(E, n, "            ", "o + q");
        P("            y[o + q] = v;\n        }\n    }\n");
        break;
    case OP_BN_DPARAM:
        /* beta's gradient: sum dy; gamma's: sum dy (x - mean) * inv. */
        P("    enum { C = %d };\n", n->shape[0]);
        if (n->a.mode) P("    for (int c = 0; c < C; c++) y[c] = x0[C + c] * x1[C + c];\n");
        else P("    for (int c = 0; c < C; c++) y[c] = x0[c];\n");
        break;
    case OP_REDUCE_CH:
        P("    enum { C = %d, Q = %zu };\n", ir_channels(x), positions(x));
        P("%s", omp_for("B * C * Q"));
        /* Per channel: 16 lanes per example, summed in double. */
        P("    for (int c = 0; c < C; c++) {\n        double s = 0.0;\n");
        P("        for (int n = 0; n < B; n++) {\n            const mm_real *xs = x0 + %s;\n", base(x));
        P("            mm_real l[16] = {0};\n            int q = 0;\n");
        P("            for (; q + 16 <= Q; q += 16)\n                for (int u = 0; u < 16; u++) l[u] += xs[q + u];\n");
        P("            for (; q < Q; q++) l[0] += xs[q];\n");
        P("            for (int u = 0; u < 16; u++) s += l[u];\n        }\n        y[c] = (mm_real)s;\n    }\n");
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
    case OP_CHSCALE:
        for_planes(E, n);
        P("        const mm_real g = x1[(size_t)n * C + c];\n");
        P("        for (int q = 0; q < Q; q++) {\n            mm_real v = x0[o + q] * g;\n");
        epilogue_at(E, n, "            ", "o + q");
        P("            y[o + q] = v;\n        }\n    }\n");
        break;
    case OP_CHSCALE_DG:
        for_planes(E, x);
        P("        y[(size_t)n * C + c] = mmk_dot(x0 + o, x1 + o, Q);\n    }\n");
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

typedef struct {
    CgKernels k;          /* already emitted, for sharing across variants */
    const char *prefix;   /* the model's name: kernels are external symbols */
    Buf files[KFILES];
} KernelTable;

/* Emit n's kernel unless an identical one exists; returns its name. */
static const char *emit_kernel(Emit *E, KernelTable *kt, const IrNode *n) {
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
    const char *found = cg_kernel_find(&kt->k, code.s);
    if (found) {
        buf_free(&code);
        return found;
    }
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

static void emit_graph(Emit *E, KernelTable *kt, bool profile) {
    const IrGraph *g = E->g;
    buf_printf(E->b, "\n/* ==== graph %s: %d nodes ==== */\n", g->name, g->nodes.n);
    const char **kn = NEWN(const char *, g->nodes.n);
    for (int i = 0; i < g->nodes.n; i++) {
        const IrNode *n = IR_NODE(g, i);
        if (cg_has_kernel(n)) kn[i] = emit_kernel(E, kt, n);
    }
    /* Kernel table for profiling. */
    int nk = 0;
    for (int i = 0; i < g->nodes.n; i++) nk += cg_has_kernel(IR_NODE(g, i));
    P("\nstatic const rt_kernel_info %s_kernels[%d] = {\n", E->gname, nk ? nk : 1);
    for (int i = 0; i < g->nodes.n; i++) {
        const IrNode *n = IR_NODE(g, i);
        if (!cg_has_kernel(n)) continue;
        P("    {\"%s%s%s\", %.6g, %.6g},\n", cg_kernel_label(n), n->name ? " " : "", n->name ? ident(n->name) : "",
          cg_flops(n, true), cg_flops(n, false));
    }
    if (!nk) P("    {\"\", 0, 0},\n");
    P("};\n");
    E->nk = nk;

    P("\nstatic void run_%s(rt_exec *e, const rt_batch *bt, const rt_hyper *h, rt_result *r) {\n", E->gname);
    P("    const int B = bt->B;\n    const size_t MB = (size_t)e->max_batch;\n");
    P("    mm_real *const A = e->act, *const F = e->fixed, *const P = e->params, *const G = e->grads, *const S = e->states;\n");
    P("    const mm_real *const *X = bt->x;\n    const int32_t *const Y = bt->y;\n");
    P("    (void)A; (void)F; (void)P; (void)G; (void)S; (void)X; (void)Y; (void)h; (void)MB;\n");
    int k = 0;
    for (int i = 0; i < g->nodes.n; i++) {
        const IrNode *n = IR_NODE(g, i);
        if (!cg_has_kernel(n)) continue;
        const char *args = "";
        if (n->op != OP_ACCUM) args = ptr(n);
        for (int j = 0; j < n->nsrc; j++) {
            const IrNode *s = n->src[j];
            if (s->fused == n) { /* a folded operand: its sources */
                args = arena_printf(mm_arena, "%s%s%s", args, args[0] ? ", " : "", ptr(s->src[0]));
                if (s->op == OP_CHSCALE) args = arena_printf(mm_arena, "%s, %s", args, ptr(s->src[1]));
            } else args = arena_printf(mm_arena, "%s%s%s", args, args[0] ? ", " : "", ptr(s));
        }
        for (int j = 0; j < n->nepi; j++)
            if (cg_epilogue_arg(n->epi[j])) args = arena_printf(mm_arena, "%s, %s", args, ptr(cg_epilogue_arg(n->epi[j])));
        args = arena_printf(mm_arena, "%s, B%s%s", args, needs_exec(n) ? ", e" : "", needs_hyper(n) ? ", h" : "");
        const char *call = arena_printf(mm_arena, "%s(%s);  /* %%%d %s */", kn[i], args, n->id, ir_op_name[n->op]);
        if (profile) P("    MMK_CALL(e, %d, %s);\n", k, call);
        else P("    %s\n", call);
        const IrNode *t = n->op == OP_ACCUM ? n->src[1] : n->pool ? n->pool : n; /* what the kernel wrote */
        P("    if (e->trace) e->trace(e->trace_user, %d, %s, %s);\n", k, ptr(t), count(t));
        k++;
    }
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
    PtrVec names = {0};
    KernelTable kt = {0};
    kt.prefix = ident(p->name);
    for (int gi = 0; gi < p->graphs.n; gi++) {
        const IrGraph *g = p->graphs.v[gi];
        Emit E = {b, p, g, gi, ident(g->name), 0, 0, 0, 0};
        emit_graph(&E, &kt, o->profile);
        if (E.scratch > scratch) scratch = E.scratch;
        if (E.partial > partial) partial = E.partial;
        if (E.wt > wt) wt = E.wt;
        if (g->act_floats > act) act = g->act_floats;
        if (g->fixed_floats > fixed) fixed = g->fixed_floats;
        vec_push(&names, (void *)E.gname);
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
    buf_puts(b, "};\n");
    buf_printf(b, "static const rt_cpu_impl cpu_impl = {runs, %zu, %zu, %zu, %zu, %zu, nkernels, kernels, MMK_SIMD, %d};\n", act,
               fixed, scratch, partial, wt, o->profile);
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

const CgBackend cg_c_backend = {"c", supports, emit};
