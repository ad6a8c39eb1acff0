/* emit_conv.c — the C back end's convolutions: the forward pass, the input
 * gradient and the weight gradient of 2-D and 3-D convolutions as GEMMs on
 * the channel-major layout (runtime/mmrt_cpu.h has the GEMMs). Where the
 * shapes allow, a 2-D convolution reads its input from zero-padded planes
 * in place of an unrolled matrix, computed transposed on gathered rows
 * when that wastes less, with a max pooling folded in; a strided one's
 * input gradient is split by output phase; the rest unroll into panels
 * (im2col). docs/internals.md describes the choices. */
#include <string.h>

#include "emit_c.h"

#define window_consts(E, x, y, a) cg_window_consts((E)->b, x, y, a)
#define WIN CG_WIN
#define pointwise_conv cg_pointwise

/* Only a ReLU can ride in the GEMM's store; other epilogues get a pass. */
static bool relu_only(const IrNode *n) { return n->nepi == 1 && n->epi[0]->op == OP_RELU; }

enum { PANEL = 256 }; /* GEMM columns per panel: a multiple of every MMK_NR */
enum { MMK_THIN_MAX_EMIT = 3 }; /* MMK_THIN_MAX: outputs this few go to mmk_conv_thin */

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

/* Copy example n of the XC planes of `src` into the padded planes at xp,
 * channel c's at xp + c * cs (cs: PL, or a larger stride when the planes
 * of several examples are interleaved by channel). */
static void implicit_pad_cs(Emit *E, const char *src, int sh, int sw, const char *indent, const char *cs) {
    P("%sfor (int c = 0; c < XC; c++)\n%s    for (int h = 0; h < HU; h++) {\n", indent, indent);
    P("%s        const mm_real *xr = %s + (((size_t)c * B + n) * XH + h) * XW;\n", indent, src);
    if (sh == 1 && sw == 1)
        P("%s        memcpy(xp + (size_t)c * %s + (size_t)(h + PAH) * WQ + PAW, xr, sizeof(mm_real) * WU);\n", indent, cs);
    else {
        P("%s        mm_real *pr = xp + (size_t)c * %s + (size_t)((h + PAH) %% SH * SW) * PPL + (size_t)((h + PAH) / SH) * WQ;\n", indent, cs);
        P("%s        for (int w = 0; w < WU; w++) pr[(w + PAW) %% SW * PPL + (w + PAW) / SW] = xr[w];\n", indent);
    }
    P("%s    }\n", indent);
}
static void implicit_pad(Emit *E, const char *src, int sh, int sw, const char *indent) {
    implicit_pad_cs(E, src, sh, sw, indent, "PL");
}

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

/* W'[ci][co][t] = W[co][ci][T-1-t] into e->wt: the weights of an input
 * gradient computed as a convolution of dY (n: the input gradient). */
static void flip_weights(Emit *E, const IrNode *n, const IrNode *dy) {
    int t = n->a.k[1] * n->a.k[2] * (n->a.nsp == 3 ? n->a.k[0] : 1);
    size_t kk = (size_t)ir_channels(n) * ir_channels(dy) * t;
    if (kk > E->wt) E->wt = kk;
    P("    {   /* W'[ci][co][t] = W[co][ci][FH*FW-1-t]: the weights flipped, in and out channels swapped */\n");
    P("        enum { CO_ = %d, CI_ = %d, T_ = %d };\n", ir_channels(dy), ir_channels(n), t);
    /* by rows of W': stores in order, loads 36 bytes at a time from L2 (the other order stored 4 bytes per line) */
    P("        #pragma omp parallel for schedule(static) if (CO_ * CI_ * T_ >= 65536)\n");
    P("        for (int ci = 0; ci < CI_; ci++)\n            for (int co = 0; co < CO_; co++)\n");
    P("                for (int t = 0; t < T_; t++) e->wt[((size_t)ci * CO_ + co) * T_ + t] = x1[((size_t)co * CI_ + ci) * T_ + T_ - 1 - t];\n    }\n");
}

/* The body of a loop over blocks c0 of MMK_PACK_NR output channels: W^T
 * packed by those blocks into wp (mmk_pack_t), from w ([YC][KK]), or, w
 * NULL, an input gradient's W'^T[(co, t)][ci] = W[co][ci][T-1-t] (taps: T)
 * packed straight from W (x1): a flip into e->wt and a pack after it
 * passed over the weights twice (1.6 of the 11.3 ms of a 7 x 7, 512-channel input
 * gradient on ResNet-18; more than the GEMM on a 2 x 3 x 3 map). */
static void pack_wt(Emit *E, const char *w, const char *taps) {
    if (w) {
        P("        mmk_pack_t(wp + (size_t)c0 * KK, %s + (size_t)c0 * KK, KK, KK, YC - c0 < MMK_PACK_NR ? YC - c0 : MMK_PACK_NR);\n", w);
        return;
    }
    P("        enum { T_ = %s, CO_ = XC };  /* W: [CO_][YC][T_] */\n", taps);
    P("        mm_real *blk = wp + (size_t)c0 * KK;\n        const int nc = YC - c0 < MMK_PACK_NR ? YC - c0 : MMK_PACK_NR;\n");
    /* W read in order (the block's nc rows of T_ taps are contiguous), the
     * T_ packed rows it writes stay in L1 across them */
    P("        for (int co = 0; co < CO_; co++) {\n            mm_real *d = blk + (size_t)co * T_ * MMK_PACK_NR;\n");
    P("            const mm_real *w = x1 + ((size_t)co * YC + c0) * T_;\n");
    P("            for (int c = 0; c < nc; c++)\n                for (int t = 0; t < T_; t++) d[(T_ - 1 - t) * MMK_PACK_NR + c] = w[(size_t)c * T_ + t];\n");
    P("            for (int c = nc; c < MMK_PACK_NR; c++)\n                for (int t = 0; t < T_; t++) d[t * MMK_PACK_NR + c] = 0;\n        }\n");
}

/* Y = conv(in) (+ bias, ReLU) from the padded planes; w: the weights
 * [YC][KK], or NULL for an input gradient's (x1's, flipped). */
static void implicit_conv_body(Emit *E, const IrNode *n, const IrNode *in, int pah, int paw, int sh, int sw, const char *w,
                               const char *bias, bool relu) {
    implicit_consts(E, in, n, &n->a, pah, paw, sh, sw);
    size_t need = implicit_floats(in, n, &n->a, pah, paw, sh, sw, false);
    int wq = (in->shape[3] + 2 * paw + sw - 1) / sw;
    if (gather_wins(n, wq)) {
        size_t yc = (size_t)ir_channels(n), np = (size_t)n->shape[2] * n->shape[3];
        size_t kk = (size_t)ir_channels(in) * n->a.k[1] * n->a.k[2], at = !w || strcmp(w, "x1") == 0 ? 0 : yc * kk;
        size_t po = n->pool ? (size_t)n->pool->shape[2] * n->pool->shape[3] : 0;
        size_t g = implicit_floats(in, n, &n->a, pah, paw, sh, sw, false) - yc * n->shape[2] * wq + np * yc + 32 * po;
        if (g > E->scratch) E->scratch = g;
        if (at + kk * ((yc + 31) / 32 * 32) > E->wt) E->wt = at + kk * ((yc + 31) / 32 * 32);
        P("    enum { NP = YH * YW };\n");
        P("    mm_real *wp = e->wt + %zu;  /* W^T, packed: by blocks of MMK_PACK_NR channels, in parallel for wide layers */\n", at);
        P("    #pragma omp parallel for schedule(static) if (KK * YC >= 65536)\n");
        P("    for (int c0 = 0; c0 < YC; c0 += MMK_PACK_NR) {\n");
        pack_wt(E, w, "FH * FW");
        P("    }\n    #pragma omp parallel\n    {\n");
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
            cg_c_epilogue(E, n, "                    ", "i");
            P("                    y[i] = v;\n                }\n");
        }
        P("        }\n    }\n");
        return;
    }
    if (need > E->scratch) E->scratch = need;
    if (!w) { /* an input gradient: the flipped weights */
        flip_weights(E, n, in);
        w = "e->wt";
    }
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
    if (!relu) cg_c_epilogue(E, n, "                        ", "i");
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
    cg_c_epilogue(E, n, "                            ", "i");
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

/* A weight gradient of many weights over small maps (ResNet's last stages:
 * 512 x 4608 weights, 7 x 7 positions) is computed by rows of dW^T instead
 * of by chunks of the batch: per example the GEMM would sum only NP
 * positions into RT_DW_CHUNKS partial copies of dW^T that do not fit in
 * cache (24 GFLOP/s on a Zen 4 where the GEMM does 200). Here the padded
 * planes of G examples at a time are laid side by side per channel, the
 * GEMM's sum runs over all their positions (K = G * NP), and each thread
 * owns fixed blocks of rows of the one dW^T: every sum is taken in the same
 * order whatever the thread count, with no reduction pass. */
enum { DW_ROWS_K = 1024, DW_ROWS_RB = 48 }; /* positions per GEMM pass; rows per task (a multiple of every MMK_MR_BIG) */

static bool dw_by_rows(const IrNode *n, const IrNode *dy) {
    size_t np = (size_t)dy->shape[2] * dy->shape[3];
    return np < 512 && ir_numel(n) >= 65536;
}

static void dw_rows_body(Emit *E, const IrNode *n, const IrNode *xin, const IrNode *dy) {
    int sh = n->a.s[1], sw = n->a.s[2];
    implicit_consts(E, xin, dy, &n->a, n->a.p[1], n->a.p[2], sh, sw);
    size_t np = (size_t)dy->shape[2] * dy->shape[3], g = (DW_ROWS_K + np - 1) / np;
    size_t yc32 = (size_t)(ir_channels(dy) + 31) / 32 * 32;
    size_t hq = (size_t)(xin->shape[2] + 2 * n->a.p[1] + sh - 1) / sh, wq = (size_t)(xin->shape[3] + 2 * n->a.p[2] + sw - 1) / sw;
    size_t pl = (size_t)sh * sw * hq * wq + (size_t)n->a.k[2] + 64; /* PL */
    /* dW^T, the group's planes and its dY^T in the partial sums' space */
    size_t need = ir_numel(n) + (size_t)ir_channels(xin) * g * pl + g * np * yc32;
    if ((need + RT_DW_CHUNKS - 1) / RT_DW_CHUNKS > E->partial) E->partial = (need + RT_DW_CHUNKS - 1) / RT_DW_CHUNKS;
    if (g * np > E->wt) E->wt = g * np;
    P("    enum { NW = YC * KK, NP = YH * YW, G = %zu, GP = G * PL, RB = %d };\n", g, DW_ROWS_RB);
    P("    mm_real *dwt = e->partial, *planes = dwt + (size_t)NW, *dyt = planes + (size_t)XC * GP;  /* dW^T: [KK][YC] */\n");
    P("    int *pos = (int *)e->wt;  /* position (g, h, w) of a group: in example g's planes at h * WQ + w */\n");
    P("    for (int g = 0; g < G; g++)\n        for (int h = 0; h < YH; h++)\n");
    P("            for (int w = 0; w < YW; w++) pos[(g * YH + h) * YW + w] = g * PL + h * WQ + w;\n");
    P("    const mm_real *rows[KK];  /* row (c, kh, kw): channel c's planes [G][PL], shifted */\n");
    P("    for (int k = 0; k < KK; k++) rows[k] = planes + (size_t)(off[k] / PL) * GP + off[k] %% PL;\n");
    P("    memset(planes, 0, sizeof(mm_real) * XC * GP);  /* the padding stays zero */\n");
    P("    for (int n0 = 0; n0 < B; n0 += G) {\n        const int ng = B - n0 < G ? B - n0 : G;\n");
    P("        #pragma omp parallel\n        {\n");
    P("            #pragma omp for schedule(static) nowait\n            for (int g = 0; g < ng; g++) {\n");
    P("                const int n = n0 + g;\n                mm_real *xp = planes + (size_t)g * PL;\n");
    implicit_pad_cs(E, "x1", sh, sw, "                ", "GP");
    P("            }\n");
    P("            #pragma omp for schedule(static)\n            for (int c0 = 0; c0 < YC; c0 += MMK_PACK_NR)  /* dY^T[p][co], packed */\n");
    P("                mmk_pack_t(dyt + (size_t)c0 * ng * NP, x0 + (size_t)c0 * B * NP + (size_t)n0 * NP, B * NP, ng * NP,\n");
    P("                           YC - c0 < MMK_PACK_NR ? YC - c0 : MMK_PACK_NR);\n");
    P("            #pragma omp for schedule(static)\n            for (int r0 = 0; r0 < KK; r0 += RB)\n");
    P("                mmk_gemm_gather(KK - r0 < RB ? KK - r0 : RB, YC, ng * NP, rows + r0, pos, dyt, dwt + (size_t)r0 * YC, YC, n0 > 0);\n");
    P("        }\n    }\n");
    /* dW = (dW^T)^T, 16 x 16 blocks transposed in registers: a plain loop
     * would read dW^T 2 KB apart per value (a fifth of the kernel's time). */
    P("    #pragma omp parallel for schedule(static)\n    for (int k0 = 0; k0 < KK; k0 += 16)\n");
    P("        for (int c0 = 0; c0 < YC; c0 += 16)\n");
    P("            mmk_tr16x(y + (size_t)c0 * KK + k0, KK, dwt + (size_t)k0 * YC + c0, YC, KK - k0 < 16 ? KK - k0 : 16,\n");
    P("                      YC - c0 < 16 ? YC - c0 : 16, 1, NULL, 0);\n");
}

/* Winograd (runtime/mmrt_cpu_wino.h): a 3x3 stride-1 2-D convolution of in
 * into out, both with at least 16 channels and 8 x 8 outputs, padded by at
 * most 2 (so that its input gradient, padded by 2 - p, is one too), by
 * F(2x2, 3x3) (2.25x fewer multiplications than the direct convolution) or
 * F(4x4, 3x3) (4x; wino_tile). bench/resnet.sh and bench/run.sh measured
 * where it pays (bench/RESULTS.md). At most 2048 channels in and out
 * together: a thread's scratch grows as 16 (C + K) LD floats for F(2x2)
 * and 36 (C + K) LD for F(4x4) (mm_wino_plan), about 23 MB at 2048 and
 * 1024 channels on maps up to 500 wide (LD grows with the width past
 * that). */
static bool wino_conv(const IrAttr *a, const IrNode *in, const IrNode *out) {
    return a->nsp == 2 && a->k[1] == 3 && a->k[2] == 3 && a->s[1] == 1 && a->s[2] == 1 && a->p[1] == a->p[2] && a->p[1] <= 2 &&
           ir_channels(in) >= 16 && ir_channels(out) >= 16 && out->shape[2] >= 8 && out->shape[3] >= 8 &&
           ir_channels(in) + ir_channels(out) <= 2048;
}

/* out = the convolution of in (padded by pad) with the weights w (x1: [K][C]
 * 3x3, or flipped for an input gradient), + bias, ReLU, then n's other
 * epilogues. wino_plan: R tile rows a task and the planes' row length
 * (mm_wino_plan, common/mmnet_shared.h), and the scratch it needs per
 * thread. */
static int wino_plan(Emit *E, int m, int c, int k, int w, int pad, bool dw, int *ld) {
    size_t need;
    int r = mm_wino_plan(m, (w + 2 * pad - 2 + m - 1) / m + 1, c, k, dw, 0, ld, &need);
    if (need > E->scratch) E->scratch = need;
    return r;
}

/* F(4x4, 3x3) where it measured faster than F(2x2, 3x3) (bench/wino.c,
 * bench/RESULTS.md): outputs of at least 28 x 28, and at most 1024
 * channels in and out together (its scratch is 36 (C + K) LD floats a
 * thread). */
static int wino_tile(int c, int k, int ho, int wo) { return ho >= 28 && wo >= 28 && c + k <= 1024 ? 4 : 2; }

static void wino_body(Emit *E, const IrNode *n, const IrNode *in, int pad, bool flip, const char *bias, bool relu) {
    int c = ir_channels(in), k = ir_channels(n), h = in->shape[2], w = in->shape[3];
    int m = wino_tile(c, k, n->shape[2], n->shape[3]), ld, r = wino_plan(E, m, c, k, w, pad, false, &ld);
    const char *f = m == 4 ? "wino4" : "wino";
    if ((size_t)(m + 2) * (m + 2) * c * k > E->wt) E->wt = (size_t)(m + 2) * (m + 2) * c * k;
    P("    mmk_%s_weights(e->wt, x1, %d, %d, %d);  /* U = G g G^T, F(%dx%d, 3x3) */\n", f, k, c, flip, m, m);
    P("    mmk_%s_conv(B, %d, %d, %d, %d, %d, x0, e->wt, %s, %d, y, %d, %d, e->scratch, e->impl->scratch_floats);\n", f, c, k, h, w, pad,
      bias, relu, r, ld);
    if (n->nepi && !relu) {
        P("    #pragma omp parallel for schedule(static)\n");
        P("    for (size_t i = 0; i < (size_t)B * %zu; i++) {\n        mm_real v = y[i];\n", ir_numel(n));
        cg_c_epilogue(E, n, "        ", "i");
        P("        y[i] = v;\n    }\n");
    }
}

/* Its weight gradient by Winograd too, on maps of at least 1024 outputs:
 * there its GEMMs sum over long runs of tiles. On smaller maps a chunk of
 * the batch holds few tiles, and each GEMM reads and writes the whole dU
 * (16 K C floats) for a short sum: ResNet-18's 28 x 28 layers gained
 * nothing at batch 8, its 14 x 14 ones ran 3x slower, cgmnist's 14 x 14
 * gained nothing (bench/RESULTS.md). */
static bool wino_dw(const IrNode *dy) { return (size_t)dy->shape[2] * dy->shape[3] >= 1024; }

/* The weight gradient of a convolution wino_conv takes (n: dW, dy: dY, xin:
 * its input): dU per chunk of tile rows (e->partial), then dW = G^T dU G. */
static void wino_dw_body(Emit *E, const IrNode *n, const IrNode *xin, const IrNode *dy) {
    int c = ir_channels(xin), k = ir_channels(dy), ld, r = wino_plan(E, 2, c, k, xin->shape[3], n->a.p[1], true, &ld);
    if ((size_t)16 * c * k > E->partial) E->partial = (size_t)16 * c * k;
    int th = (dy->shape[2] + 1) / 2;
    P("    const int nch = B * %d < RT_DW_CHUNKS ? B * %d : RT_DW_CHUNKS;  /* chunks of the B x TH tile rows */\n", th, th);
    P("    mmk_wino_dw(B, %d, %d, %d, %d, %d, x1, x0, e->partial, e->impl->partial_floats, nch, %d, %d, e->scratch, e->impl->scratch_floats);\n", c,
      k, xin->shape[2], xin->shape[3], n->a.p[1], r, ld);
    P("    mmk_wino_dw_reduce(y, e->partial, e->impl->partial_floats, nch, %d, %d);\n", k, c);
}

/* ---- 3-D convolutions on padded volumes ---------------------------------------
 * A 3-D convolution reads its input as the 2-D one reads planes: channel c
 * of an example is a zero-padded volume of DQ depth slices, each split into
 * SH x SW phase planes of HQ x WQ (SL floats a slice), and row (c, kd, kh,
 * kw) of the unrolled matrix is that volume shifted by kd slices and by
 * (kh / SH, kw / SW) in the phase plane of (kh % SH, kw % SW). A depth
 * stride costs nothing: output slice d reads from slice d * SD on.
 *
 * Forward pass and stride-1 input gradient: one GEMM per output depth slice
 * (its YH x WQ columns, WQ - YW of each row wasted, mmk_gemm_off); the
 * slices of the examples are the threads' tasks, so batch 1 keeps every core
 * busy (the panels of im2col ran one example per task, and unrolled a
 * 3x3x3 input into 27 copies). Weight gradient: dW^T[KK][YC], its rows in
 * fixed blocks per thread (as dw_rows_body), summed over the output
 * positions gathered from the volumes, VOL_KC positions at a time so that
 * a chunk of packed dY^T stays in cache for all of a block's tiles; every
 * sum in the same order whatever the thread count. The volumes of G
 * examples are padded together in the shared partial-sum space (G: as many
 * as VOL_FLOATS holds, at least one), so small late maps still give each
 * thread work. */
enum { VOL_FLOATS = 1 << 20, VOL_KC = 512, VOL_DW_K = 1024, VOL_QG = 64 }; /* VOL_QG: chunks of dY^T packed at a time */

/* Floats of one example's padded volumes (all channels of `in`). */
static size_t vol_floats(const IrNode *in, const IrAttr *a, const int pad[3], const int s[3]) {
    int x[3];
    cg_spatial(in, 3, x);
    size_t hq = (size_t)(x[1] + 2 * pad[1] + s[1] - 1) / s[1], wq = (size_t)(x[2] + 2 * pad[2] + s[2] - 1) / s[2];
    return (size_t)ir_channels(in) * ((size_t)(x[0] + 2 * pad[0]) * s[1] * s[2] * hq * wq + a->k[2] + 64);
}

/* The share of an output slice's GEMM columns (YH rows of the padded
 * width, in blocks of 32) that are outputs. */
static double vol_col_fill(const IrNode *in, const IrNode *out, const int pad[3], const int s[3]) {
    size_t wq = (size_t)(in->shape[4] + 2 * pad[2] + s[2] - 1) / s[2], nc = (size_t)out->shape[3] * wq;
    return (double)out->shape[3] * out->shape[4] / ((nc + 31) / 32 * 32);
}

/* Computed transposed, Y^T[p][co] with the output positions gathered as
 * the GEMM's rows and the channels in blocks of 32 (as gather_wins in 2-D),
 * where that wastes less than the slices' columns, on late maps only (a
 * 2 x 3 x 3 slice fills 9 of its 32 columns; on 8 x 14 x 14 maps the slices
 * ran faster even where they wasted more). Not 1x1x1 ones: their plain
 * GEMM on panels ran faster (4 x 7 x 7 at batch 1: 80 against 50-75
 * GFLOP/s). */
static bool vol_gather(const IrAttr *a, const IrNode *in, const IrNode *out, const int pad[3], const int s[3]) {
    int yc = ir_channels(out);
    size_t np = ir_positions(out);
    return !cg_pointwise(a) && yc > MMK_THIN_MAX_EMIT && np <= 512 && (double)yc / ((yc + 31) / 32 * 32) > vol_col_fill(in, out, pad, s);
}

/* A 3-D convolution the volumes serve: an example's volumes within 32M
 * floats (128 MB, shared by the threads: at the example's 64 x 224 x 224
 * clips the 7x7x7 stem needs 11M, the input gradient of the 192-channel
 * 3x3x3 layer 22M, where im2col's panels took 735 MB a thread). With
 * `cols` (a forward pass or input gradient), only where the slices'
 * columns are at least half outputs or the transposed form wastes less. */
static bool vol_conv(const IrAttr *a, const IrNode *in, const IrNode *out, const int pad[3], const int s[3], bool cols) {
    if (a->nsp != 3) return false;
    for (int i = 0; i < 3; i++)
        if (pad[i] < 0 || pad[i] >= a->k[i]) return false;
    size_t kk = (size_t)ir_channels(in) * a->k[0] * a->k[1] * a->k[2];
    if (cols && !vol_gather(a, in, out, pad, s) && (cg_pointwise(a) || vol_col_fill(in, out, pad, s) < 0.5)) return false;
    /* up to 32768 rows: 256 KB of row pointers on the caller's stack */
    return kk <= 32768 && vol_floats(in, a, pad, s) <= ((size_t)32 << 20);
}

/* Constants of the volumes (in: XC volumes of XD x XH x XW, padded by PAD,
 * PAH, PAW, strides SD, SH, SW; out: YC x YD x YH x YW; kernel FD x FH x
 * FW), G examples' volumes at a time, and the rows' offsets. */
static void vol_consts(Emit *E, const IrNode *in, const IrNode *out, const IrAttr *a, const int pad[3], const int s[3], size_t g) {
    int x[3], y[3];
    cg_spatial(in, 3, x);
    cg_spatial(out, 3, y);
    P("    enum { XC = %d, XD = %d, XH = %d, XW = %d, YC = %d, YD = %d, YH = %d, YW = %d, FD = %d, FH = %d, FW = %d,\n", ir_channels(in), x[0],
      x[1], x[2], ir_channels(out), y[0], y[1], y[2], a->k[0], a->k[1], a->k[2]);
    P("           PAD = %d, PAH = %d, PAW = %d, SD = %d, SH = %d, SW = %d, G = %zu,\n", pad[0], pad[1], pad[2], s[0], s[1], s[2], g);
    P("           HQ = (XH + 2 * PAH + SH - 1) / SH, WQ = (XW + 2 * PAW + SW - 1) / SW, PPL = HQ * WQ, SL = SH * SW * PPL,\n");
    P("           PL = (XD + 2 * PAD) * SL + FW + 64, VOL = XC * PL, KK = XC * FD * FH * FW,\n");
    /* Slices, rows and columns no window reads stay zero (as the planes'). */
    P("           DU = (YD - 1) * SD + FD - PAD < XD ? (YD - 1) * SD + FD - PAD : XD,\n");
    P("           HU = (YH - 1) * SH + FH - PAH < XH ? (YH - 1) * SH + FH - PAH : XH, WU = (YW - 1) * SW + FW - PAW < XW ? (YW - 1) * SW + FW - PAW : XW };\n");
    P("    int off[KK];  /* row (c, kd, kh, kw): channel c's volume, shifted */\n");
    P("    for (int c = 0; c < XC; c++)\n        for (int kd = 0; kd < FD; kd++)\n            for (int kh = 0; kh < FH; kh++)\n");
    P("                for (int kw = 0; kw < FW; kw++)\n");
    P("                    off[((c * FD + kd) * FH + kh) * FW + kw] = c * PL + kd * SL + ((kh %% SH) * SW + kw %% SW) * PPL + (kh / SH) * WQ + kw / SW;\n");
}

/* Channel c of example n of `src` into its volume at xp (the padding is
 * zero already). */
static void vol_pad(Emit *E, const char *src, const int s[3], const char *indent) {
    P("%sfor (int d = 0; d < DU; d++)\n%s    for (int h = 0; h < HU; h++) {\n", indent, indent);
    P("%s        const mm_real *xr = %s + ((((size_t)c * B + n) * XD + d) * XH + h) * XW;\n", indent, src);
    P("%s        mm_real *vs = xp + (size_t)c * PL + (size_t)(d + PAD) * SL;\n", indent);
    if (s[1] == 1 && s[2] == 1)
        P("%s        memcpy(vs + (size_t)(h + PAH) * WQ + PAW, xr, sizeof(mm_real) * WU);\n", indent);
    else {
        P("%s        mm_real *pr = vs + (size_t)((h + PAH) %% SH * SW) * PPL + (size_t)((h + PAH) / SH) * WQ;\n", indent);
        P("%s        for (int w = 0; w < WU; w++) pr[(w + PAW) %% SW * PPL + (w + PAW) / SW] = xr[w];\n", indent);
    }
    P("%s    }\n", indent);
}

/* Zero the volumes of the first G examples (a parallel region is open). */
static void vol_zero(Emit *E) {
    P("        #pragma omp for schedule(static)\n");
    P("        for (int g = 0; g < (B < G ? B : G); g++) memset(vols + (size_t)g * VOL, 0, sizeof(mm_real) * VOL);  /* the padding stays zero */\n");
}

/* Pad examples n0 .. n0 + ng - 1 into the volumes, by (example, channel). */
static void vol_pad_group(Emit *E, const char *src, const int s[3], bool nowait) {
    P("            #pragma omp for schedule(static)%s\n            for (int t = 0; t < ng * XC; t++) {\n", nowait ? " nowait" : "");
    P("                const int n = n0 + t / XC, c = t %% XC;\n                mm_real *xp = vols + (size_t)(t / XC) * VOL;\n");
    vol_pad(E, src, s, "                ");
    P("            }\n");
}

/* Y^T = X^T W^T per example and block of 32 output channels (the tasks),
 * the rows gathered from the volumes, then transposed 16 x 16 into the
 * channel-major map with the bias and a ReLU. */
static void vol_gather_body(Emit *E, const IrNode *n, const IrNode *in, const int s[3], size_t vol, size_t g, const char *w, const char *bias,
                            bool relu) {
    size_t yc = (size_t)ir_channels(n), np = ir_positions(n), kk = (size_t)ir_channels(in) * n->a.k[0] * n->a.k[1] * n->a.k[2];
    if (kk * ((yc + 31) / 32 * 32) > E->wt) E->wt = kk * ((yc + 31) / 32 * 32);
    if (np * 32 > E->scratch) E->scratch = np * 32;
    if ((g * vol + RT_DW_CHUNKS - 1) / RT_DW_CHUNKS > E->partial) E->partial = (g * vol + RT_DW_CHUNKS - 1) / RT_DW_CHUNKS;
    bool nb = strcmp(bias, "NULL") == 0;
    P("    enum { NP = YD * YH * YW, NB = (YC + 31) / 32 };\n");
    P("    mm_real *vols = e->partial, *wp = e->wt;  /* the volumes: [G][XC][PL]; W^T packed by blocks of 32 channels */\n");
    P("    #pragma omp parallel for schedule(static) if (KK * YC >= 65536)\n");
    P("    for (int c0 = 0; c0 < YC; c0 += MMK_PACK_NR) {\n");
    pack_wt(E, w, "FD * FH * FW");
    P("    }\n");
    P("    #pragma omp parallel\n    {\n");
    P("        mm_real *ct = e->scratch + (size_t)MMK_THREAD() * e->impl->scratch_floats;  /* Y^T of a block: [NP][32] */\n");
    P("        const mm_real *ap[NP];  /* output position (d, h, w): its example's volumes at d * SD * SL + h * WQ + w */\n");
    vol_zero(E);
    P("        for (int n0 = 0; n0 < B; n0 += G) {\n            const int ng = B - n0 < G ? B - n0 : G;\n");
    vol_pad_group(E, "x0", s, false);
    P("            #pragma omp for schedule(static)\n            for (int t = 0; t < ng * NB; t++) {\n");
    P("                const int n = n0 + t / NB, c0 = t %% NB * 32, nc = YC - c0 < 32 ? YC - c0 : 32;\n");
    P("                const mm_real *v = vols + (size_t)(t / NB) * VOL;\n");
    P("                for (int d = 0; d < YD; d++)\n                    for (int h = 0; h < YH; h++)\n");
    P("                        for (int w = 0; w < YW; w++) ap[(d * YH + h) * YW + w] = v + (size_t)d * SD * SL + h * WQ + w;\n");
    P("                mmk_gemm_gather(NP, nc, KK, ap, off, wp + (size_t)c0 * KK, ct, 32, 0);\n");
    P("                for (int c = 0; c < nc; c += 16)\n                    for (int p = 0; p < NP; p += 16)\n");
    P("                        mmk_tr16x(y + ((size_t)(c0 + c) * B + n) * NP + p, (size_t)B * NP, ct + (size_t)p * 32 + c, 32, NP - p < 16 ? NP - p : 16,\n");
    P("                                  nc - c < 16 ? nc - c : 16, 1, %s, %d);\n", nb ? "NULL" : arena_printf(mm_arena, "%s + c0 + c", bias), relu);
    if (n->nepi && !relu) {
        P("                for (int c = c0; c < c0 + nc; c++)\n                    for (int p = 0; p < NP; p++) {\n");
        P("                        const size_t i = ((size_t)c * B + n) * NP + p;\n                        mm_real v = y[i];\n");
        cg_c_epilogue(E, n, "                        ", "i");
        P("                        y[i] = v;\n                    }\n");
    }
    P("            }\n        }\n    }\n");
}

/* Y = conv(in) on the volumes, one output slice per task; w: the weights
 * [YC][KK], or NULL for an input gradient's (x1's, flipped). */
static void vol_conv_body(Emit *E, const IrNode *n, const IrNode *in, const int pad[3], const int s[3], const char *w, const char *bias,
                          bool relu) {
    size_t vol = vol_floats(in, &n->a, pad, s), g = VOL_FLOATS / vol ? VOL_FLOATS / vol : 1;
    vol_consts(E, in, n, &n->a, pad, s, g);
    if (vol_gather(&n->a, in, n, pad, s)) {
        vol_gather_body(E, n, in, s, vol, g, w, bias, relu);
        return;
    }
    if (!w) { /* an input gradient: the flipped weights */
        flip_weights(E, n, in);
        w = "e->wt";
    }
    size_t wq = (size_t)(in->shape[4] + 2 * pad[2] + s[2] - 1) / s[2], ncs = (size_t)n->shape[3] * wq;
    if (ir_channels(n) * ncs > E->scratch) E->scratch = ir_channels(n) * ncs;
    if ((g * vol + RT_DW_CHUNKS - 1) / RT_DW_CHUNKS > E->partial) E->partial = (g * vol + RT_DW_CHUNKS - 1) / RT_DW_CHUNKS;
    P("    enum { NCS = YH * WQ };  /* an output slice's columns, on the padded width */\n");
    P("    mm_real *vols = e->partial;  /* G examples' volumes: [G][XC][PL] */\n");
    P("    #pragma omp parallel\n    {\n");
    P("        mm_real *cp = e->scratch + (size_t)MMK_THREAD() * e->impl->scratch_floats;  /* a slice: [YC][NCS] */\n");
    vol_zero(E);
    P("        for (int n0 = 0; n0 < B; n0 += G) {\n            const int ng = B - n0 < G ? B - n0 : G;\n");
    vol_pad_group(E, "x0", s, false);
    P("            #pragma omp for schedule(static)\n            for (int t = 0; t < ng * YD; t++) {\n");
    P("                const int n = n0 + t / YD, d = t %% YD;\n");
    P("                mmk_gemm_off(YC, NCS, KK, %s, KK, vols + (size_t)(t / YD) * VOL + (size_t)d * SD * SL, off, cp, NCS, %s, %d);\n", w,
      bias, relu);
    P("                for (int c = 0; c < YC; c++)\n                    for (int h = 0; h < YH; h++) {\n");
    P("                        const size_t i0 = ((((size_t)c * B + n) * YD + d) * YH + h) * YW;\n");
    P("                        const mm_real *cr = cp + (size_t)c * NCS + (size_t)h * WQ;\n");
    if (n->nepi && !relu) {
        P("                        for (int w = 0; w < YW; w++) {\n                            const size_t i = i0 + w;\n");
        P("                            mm_real v = cr[w];\n");
        cg_c_epilogue(E, n, "                            ", "i");
        P("                            y[i] = v;\n                        }\n");
    } else
        P("                        memcpy(y + i0, cr, sizeof(mm_real) * YW);\n");
    P("                    }\n            }\n        }\n    }\n");
}

/* dW[YC][KK] of a 3-D convolution: dW^T by fixed blocks of rows, over the
 * positions of G examples at a time gathered from their volumes. */
static void vol_dw_body(Emit *E, const IrNode *n, const IrNode *xin, const IrNode *dy) {
    const int pad[3] = {n->a.p[0], n->a.p[1], n->a.p[2]}, s[3] = {n->a.s[0], n->a.s[1], n->a.s[2]};
    size_t vol = vol_floats(xin, &n->a, pad, s), np = ir_positions(dy);
    size_t g = (VOL_DW_K + np - 1) / np, gmax = VOL_FLOATS / vol ? VOL_FLOATS / vol : 1;
    if (g > gmax) g = gmax;
    vol_consts(E, xin, dy, &n->a, pad, s, g);
    size_t yc32 = (size_t)(ir_channels(dy) + 31) / 32 * 32, nkc = (g * np + VOL_KC - 1) / VOL_KC;
    if (nkc > VOL_QG) nkc = VOL_QG;
    size_t need = ir_numel(n) + g * vol + nkc * VOL_KC * yc32; /* dW^T, the volumes, VOL_QG chunks of dY^T */
    if ((need + RT_DW_CHUNKS - 1) / RT_DW_CHUNKS > E->partial) E->partial = (need + RT_DW_CHUNKS - 1) / RT_DW_CHUNKS;
    if (g * np > E->wt) E->wt = g * np;
    P("    enum { NW = YC * KK, NP = YD * YH * YW, KC = %d, QG = %d, RB = %d, YC32 = (YC + 31) / 32 * 32 };\n", VOL_KC, VOL_QG, DW_ROWS_RB);
    P("    mm_real *dwt = e->partial, *vols = dwt + (size_t)NW, *dyt = vols + (size_t)G * VOL;  /* dW^T: [KK][YC] */\n");
    P("    int *pos = (int *)e->wt;  /* position (g, d, h, w) of a group: in example g's volumes */\n");
    P("    for (int g = 0; g < G; g++)\n        for (int d = 0; d < YD; d++)\n            for (int h = 0; h < YH; h++)\n");
    P("                for (int w = 0; w < YW; w++) pos[((g * YD + d) * YH + h) * YW + w] = g * VOL + d * SD * SL + h * WQ + w;\n");
    P("    const mm_real *rows[KK];\n    for (int k = 0; k < KK; k++) rows[k] = vols + off[k];\n");
    P("    #pragma omp parallel\n    {\n");
    vol_zero(E);
    P("        for (int n0 = 0; n0 < B; n0 += G) {\n            const int ng = B - n0 < G ? B - n0 : G, nq = (ng * NP + KC - 1) / KC;\n");
    vol_pad_group(E, "x1", s, true);
    /* dY^T packed QG chunks at a time: all of a 32 x 56 x 56 map's would take 77 MB */
    P("            for (int q0 = 0; q0 < nq; q0 += QG) {\n                const int q1 = nq - q0 < QG ? nq : q0 + QG;\n");
    P("                #pragma omp for schedule(static)\n                for (int q = q0; q < q1; q++)  /* dY^T[p][co], packed by chunks of KC positions */\n");
    P("                    mmk_pack_t(dyt + (size_t)(q - q0) * KC * YC32, x0 + (size_t)n0 * NP + (size_t)q * KC, B * NP,\n");
    P("                               ng * NP - q * KC < KC ? ng * NP - q * KC : KC, YC);\n");
    P("                #pragma omp for schedule(static)\n                for (int r0 = 0; r0 < KK; r0 += RB)\n");
    P("                    for (int q = q0; q < q1; q++)\n");
    P("                        mmk_gemm_gather(KK - r0 < RB ? KK - r0 : RB, YC, ng * NP - q * KC < KC ? ng * NP - q * KC : KC, rows + r0, pos + q * KC,\n");
    P("                                        dyt + (size_t)(q - q0) * KC * YC32, dwt + (size_t)r0 * YC, YC, n0 > 0 || q > 0);\n");
    P("            }\n        }\n    }\n");
    P("    #pragma omp parallel for schedule(static)\n    for (int k0 = 0; k0 < KK; k0 += 16)\n");
    P("        for (int c0 = 0; c0 < YC; c0 += 16)\n");
    P("            mmk_tr16x(y + (size_t)c0 * KK + k0, KK, dwt + (size_t)k0 * YC + c0, YC, KK - k0 < 16 ? KK - k0 : 16,\n");
    P("                      YC - c0 < 16 ? YC - c0 : 16, 1, NULL, 0);\n");
}

/* A 1x1x1 convolution, or its input gradient (dx: W^T), is a plain GEMM on
 * panels of its input. On late maps a batch-1 step has one panel (4 x 7 x 7
 * = 196 positions, 2 x 3 x 3 = 18) and so one busy thread: the output rows
 * are split too, into as many blocks as give every thread two tasks. Each
 * output is still one GEMM's sum over all of K, whatever the split. */
static void pointwise3d_body(Emit *E, const IrNode *n, bool dx) {
    int m = ir_channels(n), k = ir_channels(n->src[0]);
    bool relu = !dx && relu_only(n);
    if ((size_t)k * PANEL > E->scratch) E->scratch = (size_t)k * PANEL;
    if (dx && (size_t)m * k > E->wt) E->wt = (size_t)m * k;
    P("    enum { M = %d, K = %d, Q = %zu, NB = %d };\n", m, k, ir_positions(n), PANEL);
    if (dx) P("    mmk_transpose(e->wt, x1, K, M);  /* W^T: [M][K] */\n");
    P("    const int N = B * Q, npn = (N + NB - 1) / NB, nt = omp_get_max_threads();\n");
    P("    const int rs = npn >= 2 * nt ? 1 : (2 * nt + npn - 1) / npn;  /* row blocks per panel */\n");
    P("    const int MB = ((M + rs - 1) / rs + MMK_MR_BIG - 1) / MMK_MR_BIG * MMK_MR_BIG;\n");
    P("    #pragma omp parallel for schedule(static)\n");
    P("    for (int t = 0; t < npn * rs; t++) {\n");
    P("        const int j0 = t / rs * NB, i0 = t %% rs * MB, nb = N - j0 < NB ? N - j0 : NB, mb = M - i0 < MB ? M - i0 : MB;\n");
    P("        if (mb <= 0) continue;\n");
    P("        mm_real *panel = e->scratch + (size_t)MMK_THREAD() * e->impl->scratch_floats;\n");
    P("        mmk_pack(panel, x0 + j0, N, K, nb);  /* the input is its own column matrix */\n");
    P("        mmk_gemm(mb, nb, K, %s + (size_t)i0 * K, K, panel, y + (size_t)i0 * N + j0, N, %s, 0, %d);\n", dx ? "e->wt" : "x1",
      !dx && n->a.bias ? "x2 + i0" : "NULL", relu);
    if (n->nepi && !relu) {
        P("        for (int co = i0; co < i0 + mb; co++)\n            for (int j = j0; j < j0 + nb; j++) {\n");
        P("                const size_t i = (size_t)co * N + j;\n                mm_real v = y[i];\n");
        cg_c_epilogue(E, n, "                ", "i");
        P("                y[i] = v;\n            }\n");
    }
    P("    }\n");
}

/* The kernel of a convolution, of its input gradient or of its weight
 * gradient. */
static void conv_kernel(Emit *E, const IrNode *n, bool wino) {
    const IrNode *x = n->src[0];
    switch (n->op) {
    case OP_CONV: {
        /* Y[CO][B*Q] = W[CO][K] . COL[K][B*Q] + bias, one panel of columns
         * per task: unroll the panel (im2col, packed for the GEMM), then the
         * GEMM; ReLU in the store. */
        bool pw = pointwise_conv(&n->a), relu = relu_only(n);
        const int p3[3] = {n->a.p[0], n->a.p[1], n->a.p[2]}, s3[3] = {n->a.s[0], n->a.s[1], n->a.s[2]};
        if (!n->pool && vol_conv(&n->a, x, n, p3, s3, true)) {
            vol_conv_body(E, n, x, p3, s3, "x1", n->a.bias ? "x2" : "NULL", relu);
            break;
        }
        if (wino && !n->pool && wino_conv(&n->a, x, n)) {
            wino_body(E, n, x, n->a.p[1], false, n->a.bias ? "x2" : "NULL", relu);
            break;
        }
        /* With a pooling folded in (passes/fuse.c checked the planes fit), always
         * on padded planes: whole examples, pooled in place. */
        if (n->pool || implicit_conv(&n->a, x, n, n->a.p[1], n->a.p[2], 32, true)) {
            implicit_conv_body(E, n, x, n->a.p[1], n->a.p[2], n->a.s[1], n->a.s[2], "x1", n->a.bias ? "x2" : "NULL", relu);
            break;
        }
        if (pw && n->a.nsp == 3) {
            pointwise3d_body(E, n, false);
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
            cg_c_epilogue(E, n, "                ", "(size_t)co * N + j");
            P("                y[(size_t)co * N + j] = v;\n            }\n");
        }
        P("    }\n");
        break;
    }
    case OP_CONV_DX: {
        /* dX = col2im(W^T . dY), a panel of whole examples per task (so no
         * two tasks add into the same input). n has x's shape; dy = src 0. */
        const IrNode *dy = n->src[0];
        if (wino && wino_conv(&n->a, dy, n)) {
            wino_body(E, n, dy, 2 - n->a.p[1], true, "NULL", false);
            break;
        }
        if (implicit_conv(&n->a, dy, n, n->a.k[1] - 1 - n->a.p[1], n->a.k[2] - 1 - n->a.p[2], 1, false)) {
            implicit_conv_body(E, n, dy, n->a.k[1] - 1 - n->a.p[1], n->a.k[2] - 1 - n->a.p[2], 1, 1, NULL, "NULL", false);
            break;
        }
        const int q3[3] = {n->a.k[0] - 1 - n->a.p[0], n->a.k[1] - 1 - n->a.p[1], n->a.k[2] - 1 - n->a.p[2]}, one[3] = {1, 1, 1};
        if (n->a.s[0] == 1 && n->a.s[1] == 1 && n->a.s[2] == 1 && vol_conv(&n->a, dy, n, q3, one, true)) {
            /* stride 1: the forward pass over dY padded by k-1-p, with the weights flipped */
            vol_conv_body(E, n, dy, q3, one, NULL, "NULL", false);
            break;
        }
        if (pointwise_conv(&n->a) && n->a.nsp == 3) {
            pointwise3d_body(E, n, true);
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
                cg_c_epilogue(E, n, "                ", "i");
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
                cg_c_epilogue(E, n, "                ", "i");
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
        const int p3[3] = {n->a.p[0], n->a.p[1], n->a.p[2]}, s3[3] = {n->a.s[0], n->a.s[1], n->a.s[2]};
        if (vol_conv(&n->a, xin, dy, p3, s3, false)) {
            vol_dw_body(E, n, xin, dy);
            break;
        }
        if (wino && wino_conv(&n->a, xin, dy) && wino_dw(dy)) {
            wino_dw_body(E, n, xin, dy);
            break;
        }
        if (implicit_conv(&n->a, xin, dy, n->a.p[1], n->a.p[2], 1, true) && dw_by_rows(n, dy)) {
            dw_rows_body(E, n, xin, dy);
            break;
        }
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
    default: mm_assert(!"not a convolution");
    }
}

/* Where Winograd applies (wino_conv), both forms, chosen when the kernel
 * is compiled (runtime/mmrt_cpu_wino.h): F(2x2, 3x3) where MMK_WINO holds
 * (AVX-512 builds, where it measured faster, and double precision, which
 * the gradient checks run), F(4x4, 3x3) where MMK_WINO4 does (AVX2 builds
 * too). */
void cg_c_conv(Emit *E, const IrNode *n) {
    const IrNode *a = n->op == OP_CONV_DW ? n->src[1] : n->src[0]; /* what the convolution reads, and writes */
    const IrNode *b = n->op == OP_CONV_DW ? n->src[0] : n;
    bool w = wino_conv(&n->a, a, b) && (n->op != OP_CONV || !n->pool) && (n->op != OP_CONV_DW || wino_dw(b));
    if (!w) {
        conv_kernel(E, n, false);
        return;
    }
    bool f4 = n->op != OP_CONV_DW && wino_tile(ir_channels(a), ir_channels(b), b->shape[2], b->shape[3]) == 4;
    P("#if %s\n", f4 ? "MMK_WINO4" : "MMK_WINO");
    conv_kernel(E, n, true);
    P("#else\n");
    conv_kernel(E, n, false);
    P("#endif\n");
}
