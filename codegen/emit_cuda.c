/* emit_cuda.c — the CUDA back end: for every kernel of the IR a host
 * function that launches its device code (element-wise and pooling ops as
 * one generated __global__ kernel; convolutions and linear layers as
 * im2col/col2im kernels around a GEMM by cuBLAS, or by a tiled kernel with
 * mmc --gemm tiled; or, with --conv cudnn, by cuDNN); one run function per
 * graph variant. The runtime
 * (rt_cuda.cu) captures each run, with its transfers and the fused
 * norm+SGD update, in a CUDA graph.
 *
 * Same layout and semantics as the C back end (the oracle): channel-major
 * feature maps, and reductions in a fixed order (block trees, no atomics). */
#include <stdio.h>
#include <string.h>

#include "codegen.h"
#include "ewise.h"

typedef struct {
    Buf *b;
    const IrProgram *p;
    const IrGraph *g;
    const char *gname;
    const CgOptions *o;
    size_t work;          /* floats of GEMM workspace needed */
    size_t dnn;           /* per example: floats of the largest cuDNN convolution's input + output */
} Emit;

#define P(...) buf_printf(E->b, __VA_ARGS__)

/* Columns of unrolled input per GEMM: the workspace holds K x CHUNK floats.
 * Channel reductions: segments of RED_SEGMENT elements, at most RED_BLOCKS
 * blocks in all (unless there are more channels). */
enum { CHUNK = 1 << 16, RED_SEGMENT = 4096, RED_BLOCKS = 2048 };

static const char *dptr(const IrNode *n) {
    switch (n->buf) {
    case BUF_ACT: return arena_printf(mm_arena, "e->act + %zu * MB", n->off);
    case BUF_FIXED: return arena_printf(mm_arena, "e->fixed + %zu", n->off);
    case BUF_PARAM: return arena_printf(mm_arena, "e->params + %zu", n->off);
    case BUF_GRAD: return arena_printf(mm_arena, "e->grads + %zu", n->off);
    case BUF_STATE: return arena_printf(mm_arena, "e->states + %zu", n->off);
    case BUF_INPUT: return arena_printf(mm_arena, "e->x[%zu]", n->off);
    case BUF_LABELS: return "e->y";
    default: mm_assert(!"node without a buffer"); return NULL;
    }
}

#define cb cg_channel_major
#define positions cg_positions
#define count cg_count
#define base cg_base
#define ident cg_ident
/* Channel of element t of a tensor, and its example. */
static const char *chan_of(const IrNode *n) {
    return cb(n) ? "(int)(t / ((size_t)B * Q))" : "(int)(t % C)";
}
static const char *ex_of(const IrNode *n) { return cb(n) ? "(int)((t / Q) % B)" : "(int)(t / C)"; }

/* Fused element-wise ops (ewise.h) on `v`, the value stored at index t; a
 * second source (a ReLU gradient's mask) is read there from kernel argument
 * e<i>, as in emit_c.c's cg_c_epilogue. */
static void epi(Emit *E, const IrNode *n, const char *ind) {
    for (int i = 0; i < n->nepi; i++) {
        const char *src[2] = {"v", arena_printf(mm_arena, "e%d[t]", i)};
        P("%sv = %s;\n", ind, cg_ewise(n->epi[i], src, "t"));
    }
}
/* The epilogues' second sources: parameters ", const float *e<i>", arguments ", e<i>". */
static void epi_params(Emit *E, const IrNode *n) {
    for (int i = 0; i < n->nepi; i++)
        if (cg_epilogue_arg(n->epi[i])) P(", const float *e%d", i);
}
static void epi_args(Emit *E, const IrNode *n) {
    for (int i = 0; i < n->nepi; i++)
        if (cg_epilogue_arg(n->epi[i])) P(", e%d", i);
}

#define window(E, x, y, a) cg_window_consts((E)->b, x, y, a)
#define WIN CG_WIN
#define pointwise cg_pointwise

/* Convolutions by cuDNN (mmc build --conv cudnn): all but the pointwise
 * ones, which are a plain GEMM on this layout already. */
static bool uses_cudnn(const CgOptions *o, const IrNode *n) {
    return o->use_cudnn && (n->op == OP_CONV || n->op == OP_CONV_DX || n->op == OP_CONV_DW) && !pointwise(&n->a);
}

/* The convolution's shape for the runtime's cuDNN plans (mmrt_cuda.h),
 * and the function that plans it for a batch size. */
static void dnn_conv(Emit *E, const IrNode *n, const IrNode *in, const IrNode *out, const char *name) {
    const IrAttr *a = &n->a;
    int nsp = a->nsp, sp[2][3];
    cg_spatial(in, nsp, sp[0]);
    cg_spatial(out, nsp, sp[1]);
    P("static mmk_dnn_conv %s_dnn = {%s, %d, %d, %d, {%d, %d, %d}, {%d, %d, %d}, {%d, %d, %d}, {%d, %d, %d}, {%d, %d, %d}};\n", name,
      n->op == OP_CONV ? "MMK_DNN_FWD" : n->op == OP_CONV_DX ? "MMK_DNN_DX" : "MMK_DNN_DW", nsp, ir_channels(in), ir_channels(out),
      sp[0][0], sp[0][1], sp[0][2], a->k[0], a->k[1], a->k[2], a->s[0], a->s[1], a->s[2], a->p[0], a->p[1], a->p[2], sp[1][0],
      sp[1][1], sp[1][2]);
    P("static void %s_plan(rt_exec *e, int B) { mmk_dnn_prepare(e, &%s_dnn, B); }\n", name, name);
}

/* Host signature: (rt_exec *e, int B, float *y, const float *x0, ...). */
static void signature(Emit *E, const IrNode *n, const char *name) {
    P("static void %s(rt_exec *e, int B", name);
    if (n->op != OP_ACCUM) P(", float *y");
    for (int i = 0; i < n->nsrc; i++) {
        if (n->src[i]->dt == DT_I32) P(", const int32_t *x%d", i);
        else if ((n->op == OP_BN_STATS && i >= 1) || (n->op == OP_ACCUM && i == 1)) P(", float *x%d", i);
        else P(", const float *x%d", i);
    }
    epi_params(E, n);
    P(")");
}

/* An element-wise kernel over n's elements: body computes `v` from index t. */
static void elementwise(Emit *E, const IrNode *n, const char *name, const char *decls, const char *expr) {
    P("__global__ static void %s_dev(", name);
    if (n->op != OP_ACCUM) P("float *y");
    for (int i = 0; i < n->nsrc; i++) P(", const %s *x%d", n->src[i]->dt == DT_I32 ? "int32_t" : "float", i);
    epi_params(E, n);
    P(", int B, const rt_dev_hyper *h) {\n%s", decls);
    P("    MMK_FOR(t, %s) {\n        float v = %s;\n", count(n), expr);
    epi(E, n, "        ");
    P("        y[t] = v;\n    }\n}\n");
    signature(E, n, name);
    P(" {\n    %s_dev<<<mmk_blocks(%s), MMK_THREADS, 0, e->stream>>>(y", name, count(n));
    for (int i = 0; i < n->nsrc; i++) P(", x%d", i);
    epi_args(E, n);
    P(", B, e->hyper);\n    MMK_CHECK_LAUNCH();\n}\n");
}

static void kernel(Emit *E, const IrNode *n, const char *name) {
    const IrNode *x = n->nsrc ? n->src[0] : NULL;
    if (ir_op_flags[n->op] & OPF_ELEM) { /* its value from its row of ewise.h */
        const char *src[IR_MAXSRC];
        for (int i = 0; i < n->nsrc; i++) src[i] = arena_printf(mm_arena, "x%d[t]", i);
        elementwise(E, n, name, "", cg_ewise(n, src, "t"));
        return;
    }
    switch (n->op) {
    case OP_ONE:
        P("__global__ static void %s_dev(float *y) { y[0] = 1.0f; }\n", name);
        signature(E, n, name);
        P(" {\n    %s_dev<<<1, 1, 0, e->stream>>>(y);\n    MMK_CHECK_LAUNCH();\n}\n", name);
        return;
    case OP_BN_APPLY: case OP_BN_DX: case OP_CHSCALE: case OP_GAP_DX: case OP_BCAST: {
        const char *decl = arena_printf(mm_arena, "    enum { C = %d, Q = %zu };\n", ir_channels(n), positions(n));
        const char *c = chan_of(n), *ex = ex_of(n), *expr;
        switch (n->op) {
        case OP_BN_APPLY: expr = arena_printf(mm_arena, "(x0[t] - x1[%s]) * x1[C + %s] * x2[%s] + x3[%s]", c, c, c, c); break;
        case OP_BN_DX: /* gamma inv (dy - sum dy / N - (x - mean) inv^2 sum dy (x - mean) / N), as emit_c.c */
            decl = arena_printf(mm_arena, "%s    const float inv_cnt = 1.0f / ((float)B * Q);\n", decl);
            expr = arena_printf(mm_arena, "(x0[t] - x4[%s] * inv_cnt - x4[C + %s] * x2[C + %s] * x2[C + %s] * inv_cnt * (x1[t] - x2[%s])) * x3[%s] * x2[C + %s]",
                                c, c, c, c, c, c, c);
            break;
        case OP_CHSCALE: expr = arena_printf(mm_arena, "x0[t] * x1[(size_t)%s * C + %s]", ex, c); break;
        case OP_GAP_DX: expr = arena_printf(mm_arena, "x0[(size_t)%s * C + %s] * (1.0f / Q)", ex, c); break;
        default: expr = "x0[t % C]"; break; /* BCAST: (C) to (B, C) */
        }
        elementwise(E, n, name, decl, expr);
        return;
    }
    default: break;
    }
    /* The rest: a dedicated device kernel and/or GEMM calls. */
    switch (n->op) {
    case OP_CONV: case OP_CONV_DX: case OP_CONV_DW: {
        bool dx = n->op == OP_CONV_DX, dw = n->op == OP_CONV_DW;
        const IrNode *in = dx ? n : dw ? n->src[1] : x, *out = dx || dw ? n->src[0] : n;
        bool dnn = uses_cudnn(E->o, n);
        size_t k = (size_t)ir_channels(in) * n->a.k[0] * n->a.k[1] * n->a.k[2];
        size_t q = ir_positions(out);
        size_t need = k * (q > CHUNK ? q : CHUNK);
        if (!dnn && need > E->work) E->work = need;
        if (dnn) {
            size_t io = (size_t)ir_channels(in) * ir_positions(in) + (size_t)ir_channels(out) * q;
            if (io > E->dnn) E->dnn = io;
            dnn_conv(E, n, in, out, name);
        }
        if (dx && n->nepi) {
            /* The fused ReLU gradient, over the finished dX. */
            P("__global__ static void %s_epi(float *y", name);
            epi_params(E, n);
            P(", size_t cnt) {\n    MMK_FOR(t, cnt) {\n        float v = y[t];\n");
            epi(E, n, "        ");
            P("        y[t] = v;\n    }\n}\n");
        }
        if (!dx && !dw) {
            /* Bias and fused epilogue after the GEMM: grid x over the columns, y over the channels. */
            P("__global__ static void %s_epi(float *y, const float *b, int N) {\n", name);
            P("    for (int c = blockIdx.y; c < %d; c += gridDim.y)\n", ir_channels(n));
            P("        for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < N; j += gridDim.x * blockDim.x) {\n");
            P("            const size_t t = (size_t)c * N + j;\n            float v = y[t]%s;\n", n->a.bias ? " + b[c]" : "");
            epi(E, n, "            ");
            P("            y[t] = v;\n        }\n}\n");
        }
        signature(E, n, name);
        P(" {\n");
        window(E, in, out, &n->a);
        P("    enum { K = CI * KD * KH * KW, Q = DO * HO * WO, QI = DI * HI * WI };\n");
        P("    const int N = B * Q;\n");
        /* The product: by cuDNN, or GEMMs on the layout / on unrolled panels. */
        if (dnn) {
            P("    mmk_dnn_run(e, &%s_dnn, B, y, x0, x1);\n", name);
        } else if (pointwise(&n->a) && !dw) {
            if (dx) P("    mmk_gemm(e, CI, N, CO, x1, K, 1, x0, N, 0, y, N, 0.0f);\n");
            else P("    mmk_gemm(e, CO, N, K, x1, K, 0, x0, N, 0, y, N, 0.0f);\n");
        } else {
            P("    const int chunk = (int)(e->impl->work_floats / K) / Q * Q > 0 ? (int)(e->impl->work_floats / K) / Q * Q : Q;\n");
            P("    for (int j0 = 0; j0 < N; j0 += chunk) {\n        const int nb = N - j0 < chunk ? N - j0 : chunk;\n");
            if (dx) {
                /* dX = col2im(W^T . dY), in panels of whole examples. */
                P("        mmk_gemm(e, K, nb, CO, x1, K, 1, x0 + j0, N, 0, e->work, nb, 0.0f);\n");
                P("        mmk_col2im_launch<" WIN ">(e->stream, y, e->work, B, j0 / Q, nb / Q);\n");
                P("        MMK_CHECK_LAUNCH();\n    }\n");
            } else {
                /* Y = W . COL; dW = dY . COL^T, chunks accumulated in order. */
                P("        mmk_im2col_launch<" WIN ">(e->stream, e->work, %s, B, j0, nb);\n", dw ? "x1" : "x0");
                P("        MMK_CHECK_LAUNCH();\n");
                if (dw) P("        mmk_gemm(e, CO, K, nb, x0 + j0, N, 0, e->work, nb, 1, y, K, j0 ? 1.0f : 0.0f);\n    }\n");
                else P("        mmk_gemm(e, CO, nb, K, x1, K, 0, e->work, nb, 0, y + j0, N, 0.0f);\n    }\n");
            }
        }
        /* Bias and fused epilogue. */
        if (n->op == OP_CONV && (n->a.bias || n->nepi)) {
            P("    %s_epi<<<dim3((N + MMK_THREADS - 1) / MMK_THREADS, mmk_grid_y(CO)), MMK_THREADS, 0, e->stream>>>(y, %s, N);\n", name,
              n->a.bias ? "x2" : "NULL");
            P("    MMK_CHECK_LAUNCH();\n");
        } else if (dx && n->nepi) {
            P("    %s_epi<<<mmk_blocks(%s), MMK_THREADS, 0, e->stream>>>(y", name, count(n));
            epi_args(E, n);
            P(", %s);\n    MMK_CHECK_LAUNCH();\n", count(n));
        }
        P("}\n");
        return;
    }
    case OP_LINEAR:
        P("__global__ static void %s_epi(float *y, const float *b, int B) {\n    MMK_FOR(t, (size_t)B * %d) {\n", name, n->shape[1]);
        P("        float v = y[t]%s;\n", n->a.bias ? arena_printf(mm_arena, " + b[t %% %d]", n->shape[1]) : "");
        epi(E, n, "        ");
        P("        y[t] = v;\n    }\n}\n");
        signature(E, n, name);
        P(" {\n    enum { I = %d, O = %d };\n", x->shape[1], n->shape[1]);
        P("    mmk_gemm(e, B, O, I, x0, I, 0, x1, I, 1, y, O, 0.0f);\n");
        if (n->a.bias || n->nepi)
            P("    %s_epi<<<mmk_blocks((size_t)B * O), MMK_THREADS, 0, e->stream>>>(y, %s, B);\n    MMK_CHECK_LAUNCH();\n", name,
              n->a.bias ? "x2" : "NULL");
        P("}\n");
        return;
    case OP_LINEAR_DX:
        signature(E, n, name);
        P(" {\n    enum { I = %d, O = %d };\n    mmk_gemm(e, B, I, O, x0, O, 0, x1, I, 0, y, I, 0.0f);\n}\n", n->shape[1],
          n->src[0]->shape[1]);
        return;
    case OP_LINEAR_DW:
        signature(E, n, name);
        P(" {\n    enum { I = %d, O = %d };\n    mmk_gemm(e, O, I, B, x0, O, 1, x1, I, 0, y, I, 0.0f);\n}\n", n->shape[1], n->shape[0]);
        return;
    case OP_MAXPOOL: case OP_AVGPOOL: case OP_MAXPOOL_DX: case OP_AVGPOOL_DX: {
        bool bwd = n->op == OP_MAXPOOL_DX || n->op == OP_AVGPOOL_DX, mx = n->op == OP_MAXPOOL || n->op == OP_MAXPOOL_DX;
        const IrNode *in = bwd ? n : x, *out = bwd ? n->src[0] : n;
        bool rec = n->op == OP_MAXPOOL && n->a.mode;
        P("__global__ static void %s_dev(float *y, const float *x0, const float *x1", name);
        epi_params(E, n);
        P(", int B) {\n");
        window(E, in, out, &n->a);
        if (!bwd) {
            P("    MMK_FOR(t, (size_t)B * CO * DO * HO * WO) {\n");
            P("        const size_t plane = t / (DO * HO * WO);\n        const int r = (int)(t %% (DO * HO * WO));\n");
            P("        const int od = r / (HO * WO), oh = (r / WO) %% HO, ow = r %% WO;\n");
            P("        const float *xs = x0 + plane * DI * HI * WI;\n        float m = %s;\n        int at = -1;\n", mx ? "-INFINITY" : "0.0f");
            P("        for (int kd = 0; kd < KD; kd++) for (int kh = 0; kh < KH; kh++) for (int kw = 0; kw < KW; kw++) {\n");
            P("            int id = od * SD - PD + kd, ih = oh * SH - PH + kh, iw = ow * SW - PW + kw;\n");
            P("            if (id < 0 || id >= DI || ih < 0 || ih >= HI || iw < 0 || iw >= WI) continue;\n");
            P("            float v = xs[(id * HI + ih) * WI + iw];\n");
            P(mx ? "            if (v > m) { m = v; at = (id * HI + ih) * WI + iw; }\n" : "            m += v;\n");
            P("        }\n        y[t] = %s;\n", mx ? "at >= 0 ? m : NAN" : "m * (1.0f / (KD * KH * KW))");
            /* Training graphs keep each window's argmax after the values. */
            if (rec) P("        ((int *)(y + (size_t)B * CO * DO * HO * WO))[t] = at;\n");
            P("    }\n}\n");
        } else {
            /* Gather: each input element sums the gradients of the windows it
             * is in (for max pooling, those where it is the first maximum). */
            P("    MMK_FOR(t, (size_t)B * CI * DI * HI * WI) {\n");
            P("        const size_t plane = t / (DI * HI * WI);\n        const int r = (int)(t %% (DI * HI * WI));\n");
            P("        const int id = r / (HI * WI), ih = (r / WI) %% HI, iw = r %% WI;\n");
            P("        const float *dys = x0 + plane * DO * HO * WO;\n");
            if (mx) P("        const int *ix = (const int *)(x1 + (size_t)B * CI * DO * HO * WO) + plane * DO * HO * WO;\n");
            P("        float s = 0.0f;\n");
            P("        for (int kd = 0; kd < KD; kd++) for (int kh = 0; kh < KH; kh++) for (int kw = 0; kw < KW; kw++) {\n");
            P("            int a = id + PD - kd, b = ih + PH - kh, c = iw + PW - kw;\n");
            P("            if (a < 0 || b < 0 || c < 0 || a %% SD || b %% SH || c %% SW) continue;\n");
            P("            int od = a / SD, oh = b / SH, ow = c / SW;\n");
            P("            if (od >= DO || oh >= HO || ow >= WO) continue;\n");
            if (mx) {
                P("            if (ix[(od * HO + oh) * WO + ow] == r) s += dys[(od * HO + oh) * WO + ow];\n");
            } else {
                P("            s += dys[(od * HO + oh) * WO + ow] * (1.0f / (KD * KH * KW));\n");
            }
            P("        }\n        float v = s;\n");
            epi(E, n, "        ");
            P("        y[t] = v;\n    }\n}\n");
        }
        signature(E, n, name);
        P(" {\n    %s_dev<<<mmk_blocks(%s), MMK_THREADS, 0, e->stream>>>(y, x0, %s", name, count(n), n->nsrc > 1 ? "x1" : "NULL");
        epi_args(E, n);
        P(", B);\n    MMK_CHECK_LAUNCH();\n}\n");
        return;
    }
    case OP_GAP: case OP_CHSCALE_DG: {
        /* A warp per (example, channel): lanes stride over the positions,
         * then a fixed tree (mmk_warp_sums). */
        bool dg = n->op == OP_CHSCALE_DG;
        P("__global__ static void %s_dev(float *y, const float *x0, const float *x1, int B) {\n", name);
        P("    enum { C = %d, Q = %zu };\n", ir_channels(x), positions(x));
        P("    const size_t t = (size_t)blockIdx.x * (MMK_THREADS / 32) + threadIdx.x / 32;\n    const int lane = threadIdx.x %% 32;\n");
        P("    float s = 0.0f;\n    if (t < (size_t)B * C) {\n        const int n = (int)(t / C), c = (int)(t %% C);\n        const size_t o = %s;\n", base(x));
        P("        for (int q = lane; q < Q; q += 32) s += x0[o + q]%s;\n    }\n", dg ? " * x1[o + q]" : "");
        P("    s = mmk_warp_sums(s);\n    if (lane == 0 && t < (size_t)B * C) y[t] = s%s;\n}\n", dg ? "" : " * (1.0f / Q)");
        signature(E, n, name);
        P(" {\n    %s_dev<<<(unsigned)(((size_t)B * %d + MMK_THREADS / 32 - 1) / (MMK_THREADS / 32)), MMK_THREADS, 0, e->stream>>>(y, x0, %s, B);\n    MMK_CHECK_LAUNCH();\n}\n",
          name, ir_channels(x), dg ? "x1" : "NULL");
        return;
    }
    case OP_FLATTEN: case OP_RESHAPE: {
        const IrNode *map = n->op == OP_FLATTEN ? x : n;
        if (!cb(map)) {
            signature(E, n, name);
            P(" {\n    CUDA_CHECK(cudaMemcpyAsync(y, x0, sizeof(float) * %s, cudaMemcpyDeviceToDevice, e->stream));\n}\n", count(n));
            return;
        }
        P("__global__ static void %s_dev(float *y, const float *x0, int B) {\n", name);
        P("    enum { C = %d, Q = %zu };\n", ir_channels(map), ir_positions(map));
        P("    MMK_FOR(t, (size_t)B * C * Q) {\n        const int c = (int)(t / ((size_t)B * Q)), n = (int)((t / Q) %% B), q = (int)(t %% Q);\n");
        if (n->op == OP_FLATTEN) P("        y[(size_t)n * C * Q + (size_t)c * Q + q] = x0[t];\n    }\n}\n");
        else P("        y[t] = x0[(size_t)n * C * Q + (size_t)c * Q + q];\n    }\n}\n");
        signature(E, n, name);
        P(" {\n    %s_dev<<<mmk_blocks(%s), MMK_THREADS, 0, e->stream>>>(y, x0, B);\n    MMK_CHECK_LAUNCH();\n}\n", name, count(n));
        return;
    }
    case OP_BN_DPARAM: /* beta's gradient: sum dy; gamma's: sum dy (x - mean) * inv */
        elementwise(E, n, name, arena_printf(mm_arena, "    enum { C = %d };\n", n->shape[0]), n->a.mode ? "x0[C + t] * x1[C + t]" : "x0[t]");
        return;
    case OP_BN_STATS: case OP_BN_DSUMS: case OP_REDUCE_CH: {
        /* Per-channel sums in two launches, in a fixed order (no atomics):
         * a grid of C channels x S segments writes partial sums (double) to
         * the workspace, then a thread per channel adds its S partials in
         * order and finishes. A block per channel alone left most of the GPU
         * idle for the few wide channels near the input. */
        const IrNode *t = n->op == OP_BN_STATS || n->op == OP_REDUCE_CH ? x : n->src[0];
        bool stats = n->op == OP_BN_STATS, two = n->op != OP_REDUCE_CH;
        int C = ir_channels(t);
        size_t need = 2 * 2 * (size_t)(C > RED_BLOCKS ? C : RED_BLOCKS);
        if (need > E->work) E->work = need;
        P("__global__ static void %s_part(double *part", name);
        for (int i = 0; i < n->nsrc; i++) P(", const float *x%d", i);
        P(", int B, int S) {\n");
        P("    enum { C = %d, Q = %zu };\n", C, positions(t));
        P("    const int c = blockIdx.x, s = blockIdx.y;\n    const size_t cnt = (size_t)B * Q, len = (cnt + S - 1) / S;\n");
        P("    const size_t i1 = (size_t)(s + 1) * len < cnt ? (size_t)(s + 1) * len : cnt;\n");
        P("    double a = 0.0, a2 = 0.0;\n");
        if (!stats && two) P("    const float mean = x2[c];\n");
        P("    for (size_t i = (size_t)s * len + threadIdx.x; i < i1; i += blockDim.x) {\n");
        P("        const size_t o = %s;\n        const double v = x0[o];\n        a += v;\n", cb(t) ? "(size_t)c * cnt + i" : "i * C + c");
        if (stats) P("        a2 += v * v;\n");
        else if (two) P("        a2 += v * (x1[o] - mean);\n");
        P("    }\n    a = mmk_block_sum(a);\n");
        if (two) P("    a2 = mmk_block_sum(a2);\n");
        P("    if (threadIdx.x == 0) {\n        part[2 * ((size_t)c * S + s)] = a;\n        part[2 * ((size_t)c * S + s) + 1] = a2;\n    }\n}\n");
        P("__global__ static void %s_fin(float *y", name);
        for (int i = 0; i < n->nsrc; i++) P(", %sfloat *x%d", stats && i >= 1 ? "" : "const ", i);
        P(", const double *part, int B, int S) {\n    enum { C = %d, Q = %zu };\n    const size_t cnt = (size_t)B * Q;\n", C, positions(t));
        P("    MMK_FOR(c, C) {\n        double s = 0.0, s2 = 0.0;\n");
        P("        for (int k = 0; k < S; k++) {\n            s += part[2 * ((size_t)c * S + k)];\n            s2 += part[2 * ((size_t)c * S + k) + 1];\n        }\n");
        if (stats) {
            P("        const double mean = s / cnt, d = s2 / cnt - mean * mean, var = d > 0.0 ? d : 0.0;\n");
            P("        y[c] = (float)mean;\n        y[C + c] = (float)(1.0 / sqrt(var + %s));\n", cg_float(n->a.f));
            P("        x1[c] = (float)((1.0 - %s) * x1[c] + %s * mean);\n", cg_float(n->a.f2), cg_float(n->a.f2));
            P("        x2[c] = (float)((1.0 - %s) * x2[c] + %s * (cnt > 1 ? var * cnt / (cnt - 1) : var));\n", cg_float(n->a.f2),
              cg_float(n->a.f2));
        } else if (!two) {
            P("        y[c] = (float)s;\n");
        } else {
            P("        y[c] = (float)s;\n        y[C + c] = (float)s2;\n");  /* BN_DSUMS */
        }
        P("    }\n}\n");
        signature(E, n, name);
        P(" {\n    const size_t cnt = (size_t)B * %zu;\n", positions(t));
        P("    int S = (int)((cnt + %d - 1) / %d), cap = %d / %d > 0 ? %d / %d : 1;\n", RED_SEGMENT, RED_SEGMENT, RED_BLOCKS, C, RED_BLOCKS, C);
        P("    if (S > cap) S = cap;\n    double *part = (double *)e->work;\n");
        P("    %s_part<<<dim3(%d, S), MMK_THREADS, 0, e->stream>>>(part", name, C);  /* S <= 2048: within gridDim.y */
        for (int i = 0; i < n->nsrc; i++) P(", x%d", i);
        P(", B, S);\n    MMK_CHECK_LAUNCH();\n");
        P("    %s_fin<<<mmk_blocks(%d), MMK_THREADS, 0, e->stream>>>(y", name, C);
        for (int i = 0; i < n->nsrc; i++) P(", x%d", i);
        P(", part, B, S);\n    MMK_CHECK_LAUNCH();\n}\n");
        return;
    }
    case OP_BN_RUNSTATS:
        P("__global__ static void %s_dev(float *y, const float *x0, const float *x1) {\n", name);
        P("    enum { C = %d };\n    MMK_FOR(c, C) {\n        y[c] = x0[c];\n        y[C + c] = 1.0f / sqrtf(x1[c] + %s);\n    }\n}\n",
          n->shape[1], cg_float(n->a.f));
        signature(E, n, name);
        P(" {\n    %s_dev<<<1, MMK_THREADS, 0, e->stream>>>(y, x0, x1);\n    MMK_CHECK_LAUNCH();\n}\n", name);
        return;
    case OP_CONCAT: case OP_SLICE_CH: {
        signature(E, n, name);
        P(" {\n");
        if (cb(n)) {
            size_t q = ir_positions(n);
            if (n->op == OP_SLICE_CH)
                P("    CUDA_CHECK(cudaMemcpyAsync(y, x0 + (size_t)%d * B * %zu, sizeof(float) * %d * B * %zu, cudaMemcpyDeviceToDevice, e->stream));\n",
                  n->a.off, q, n->a.n, q);
            else
                for (int i = 0, off = 0; i < n->nsrc; off += ir_channels(n->src[i]), i++)
                    P("    CUDA_CHECK(cudaMemcpyAsync(y + (size_t)%d * B * %zu, x%d, sizeof(float) * %d * B * %zu, cudaMemcpyDeviceToDevice, e->stream));\n",
                      off, q, i, ir_channels(n->src[i]), q);
        } else {
            int C = ir_channels(n->op == OP_CONCAT ? n : x);
            if (n->op == OP_SLICE_CH)
                P("    CUDA_CHECK(cudaMemcpy2DAsync(y, sizeof(float) * %d, x0 + %d, sizeof(float) * %d, sizeof(float) * %d, B, cudaMemcpyDeviceToDevice, e->stream));\n",
                  n->a.n, n->a.off, C, n->a.n);
            else
                for (int i = 0, off = 0; i < n->nsrc; off += ir_channels(n->src[i]), i++) {
                    int c = ir_channels(n->src[i]);
                    P("    CUDA_CHECK(cudaMemcpy2DAsync(y + %d, sizeof(float) * %d, x%d, sizeof(float) * %d, sizeof(float) * %d, B, cudaMemcpyDeviceToDevice, e->stream));\n",
                      off, C, i, c, c);
                }
        }
        P("}\n");
        return;
    }
    case OP_CE: case OP_CE_DX: {
        int K = n->op == OP_CE ? x->shape[1] : n->shape[1];
        if (n->op == OP_CE) {
            P("__global__ static void %s_dev(float *y, const float *x0, const int32_t *x1, int B) {\n    enum { K = %d };\n", name, K);
            P("    double s = 0.0;\n    for (int n = threadIdx.x; n < B; n += blockDim.x) {\n        const float *z = x0 + (size_t)n * K;\n");
            P("        float m = z[0];\n        for (int k = 1; k < K; k++) m = z[k] > m ? z[k] : m;\n");
            P("        double se = 0.0;\n        for (int k = 0; k < K; k++) se += exp((double)z[k] - m);\n");
            P("        s += log(se) + m - z[x1[n]];\n    }\n    s = mmk_block_sum(s);\n    if (threadIdx.x == 0) y[0] = (float)(s / B);\n}\n");
            signature(E, n, name);
            P(" {\n    %s_dev<<<1, MMK_THREADS, 0, e->stream>>>(y, x0, x1, B);\n    MMK_CHECK_LAUNCH();\n}\n", name);
        } else {
            P("__global__ static void %s_dev(float *y, const float *x0, const float *x1, const int32_t *x2, int B) {\n    enum { K = %d };\n", name, K);
            P("    MMK_FOR(n, B) {\n        const float g = x0[0] / B;\n        const float *z = x1 + n * K;\n        float *d = y + n * K;\n");
            P("        float m = z[0];\n        for (int k = 1; k < K; k++) m = z[k] > m ? z[k] : m;\n");
            P("        double se = 0.0;\n        for (int k = 0; k < K; k++) se += exp((double)z[k] - m);\n");
            P("        for (int k = 0; k < K; k++) d[k] = g * (float)(exp((double)z[k] - m) / se);\n        d[x2[n]] -= g;\n    }\n}\n");
            signature(E, n, name);
            P(" {\n    %s_dev<<<mmk_blocks(B), MMK_THREADS, 0, e->stream>>>(y, x0, x1, x2, B);\n    MMK_CHECK_LAUNCH();\n}\n", name);
        }
        return;
    }
    case OP_ACCUM:
        P("__global__ static void %s_dev(const float *x0, float *x1, int B, const rt_dev_hyper *h) {\n    enum { C = %d };\n", name,
          n->src[1]->shape[0]);
        P("    MMK_FOR(c, C) {\n        double s = 0.0;\n        for (int n = 0; n < B; n++) s += x0[(size_t)n * C + c];\n");
        if (n->a.mode == RT_ACC_STEPS) P("        x1[c] += (float)((s / B - x1[c]) / (double)(h->acc_n + 1));\n    }\n}\n");
        else P("        x1[c] += (float)((s - (double)B * x1[c]) / (double)(h->acc_n + B));\n    }\n}\n");
        signature(E, n, name);
        P(" {\n    %s_dev<<<1, MMK_THREADS, 0, e->stream>>>(x0, x1, B, e->hyper);\n    MMK_CHECK_LAUNCH();\n}\n", name);
        return;
    default: {
        char msg[96];
        snprintf(msg, sizeof msg, "CUDA back end: no kernel for op '%s'", ir_op_name[n->op]);
        mm_panic(__FILE__, __LINE__, msg);
    }
    }
}

/* Kernels identical across graph variants are emitted once (the code is
 * generated with a placeholder name, compared, then named). */
static const char *emit_kernel(Emit *E, CgKernels *kt, const IrNode *n) {
    /* Pooling stays a kernel of its own here (mm_compile with target_cuda). */
    if (n->pool) mm_panic(__FILE__, __LINE__, "CUDA back end: a max pooling folded into a convolution");
    for (int i = 0; i < n->nsrc; i++)
        if (n->src[i]->fused == n) mm_panic(__FILE__, __LINE__, "CUDA back end: an operand folded into its consumer");
    Buf code = {0}, *saved = E->b;
    E->b = &code;
    kernel(E, n, "KNAME");
    E->b = saved;
    const char *found = cg_kernel_find(kt, code.s);
    if (found) {
        buf_free(&code);
        return found;
    }
    const char *name = arena_printf(mm_arena, "k%d_%s", kt->n, ir_op_name[n->op]);
    P("\n/* %s\n * %s, graph %s */\n", cg_describe(n), cg_loc(n), E->g->name);
    for (const char *s = code.s; *s;) {
        const char *k = strstr(s, "KNAME");
        if (!k) {
            P("%s", s);
            break;
        }
        P("%.*s%s", (int)(k - s), s, name);
        s = k + 5;
    }
    cg_kernel_add(kt, code.s, name);
    buf_free(&code);
    return name;
}

static void output_entry(Buf *b, const IrNode *n) {
    if (!n) buf_puts(b, "-1");
    else buf_printf(b, "%d", n->buf == BUF_FIXED ? 0 : 1);
}

static void emit(const IrProgram *p, const CgOptions *o, CgOutput *out) {
    CgFile *f = cg_file(out, "model.cu");
    Buf *b = &f->text;
    size_t total = 0;
    for (int i = 0; i < p->params.n; i++) total += IR_PARAM(p, i)->numel;
    cg_header(b, p, o,
              arena_printf(mm_arena, "%zu parameters, %d graphs; back end cuda (GEMMs by %s, convolutions by %s)", total, p->graphs.n,
                           o->use_cublas ? "cuBLAS" : "a tiled kernel", o->use_cudnn ? "cuDNN" : "im2col and GEMM"));
    if (o->profile) buf_puts(b, "#define MMNET_PROFILE 1\n");
    if (o->use_cudnn) buf_puts(b, "#define MMNET_CUDNN 1\n");
    buf_puts(b, "#include \"mmrt_cuda.h\"\n#ifndef MMNET_BUILD_FLAGS\n#define MMNET_BUILD_FLAGS \"\"\n#endif\n");
    CgKernels kt = {0};
    size_t work = 1 << 20, act = 0, fixed = 0, dnn = 0;
    for (int gi = 0; gi < p->graphs.n; gi++) {
        const IrGraph *g = p->graphs.v[gi];
        Emit E = {b, p, g, ident(g->name), o, 0, 0};
        buf_printf(b, "\n/* ==== graph %s: %d nodes ==== */\n", g->name, g->nodes.n);
        const char **kn = NEWN(const char *, g->nodes.n);
        int nk = 0;
        for (int i = 0; i < g->nodes.n; i++)
            if (cg_has_kernel(IR_NODE(g, i))) {
                kn[i] = emit_kernel(&E, &kt, IR_NODE(g, i));
                nk++;
            }
        buf_printf(b, "\nstatic const rt_cuda_kernel_info %s_kernels[%d] = {\n", E.gname, nk ? nk : 1);
        for (int i = 0; i < g->nodes.n; i++) {
            const IrNode *n = IR_NODE(g, i);
            if (!cg_has_kernel(n)) continue;
            buf_printf(b, "    {\"%%%d %s%s%s\", %.6g, %.6g},\n", n->id, ir_op_name[n->op], n->name ? " " : "", n->name ? ident(n->name) : "",
                       cg_flops(n, true), cg_flops(n, false));
        }
        if (!nk) buf_puts(b, "    {\"\", 0, 0},\n");
        buf_puts(b, "};\n");
        buf_printf(b, "\nstatic void run_%s(rt_exec *e, int B) {\n    const size_t MB = (size_t)e->max_batch;\n    (void)MB;\n", E.gname);
        int k = 0;
        for (int i = 0; i < g->nodes.n; i++) {
            const IrNode *n = IR_NODE(g, i);
            if (!cg_has_kernel(n)) continue;
            const char *args = "e, B";
            if (n->op != OP_ACCUM) args = arena_printf(mm_arena, "%s, %s", args, dptr(n));
            for (int j = 0; j < n->nsrc; j++) args = arena_printf(mm_arena, "%s, %s", args, dptr(n->src[j]));
            for (int j = 0; j < n->nepi; j++)
                if (cg_epilogue_arg(n->epi[j])) args = arena_printf(mm_arena, "%s, %s", args, dptr(cg_epilogue_arg(n->epi[j])));
            if (o->profile) buf_printf(b, "    if (e->prof_on) CUDA_CHECK(cudaEventRecord(e->prof_ev[%d], e->stream));\n", k);
            buf_printf(b, "    %s(%s);  /* %%%d %s */\n", kn[i], args, n->id, ir_op_name[n->op]);
            const IrNode *t = n->op == OP_ACCUM ? n->src[1] : n; /* what the kernel wrote */
            buf_printf(b, "    if (e->trace) rt_cuda_trace(e, %d, %s, %s);\n", k, dptr(t), count(t));
            k++;
        }
        if (o->profile) buf_printf(b, "    if (e->prof_on) CUDA_CHECK(cudaEventRecord(e->prof_ev[%d], e->stream));\n", k);
        buf_puts(b, "}\n");
        if (o->use_cudnn) {
            /* The cuDNN plans of this variant's convolutions for batch size B. */
            buf_printf(b, "static void plan_%s(rt_exec *e, int B) {\n    (void)e, (void)B;\n", E.gname);
            for (int i = 0; i < g->nodes.n; i++)
                if (cg_has_kernel(IR_NODE(g, i)) && uses_cudnn(o, IR_NODE(g, i))) buf_printf(b, "    %s_plan(e, B);\n", kn[i]);
            buf_puts(b, "}\n");
        }
        if (E.dnn > dnn) dnn = E.dnn;
        if (E.work > work) work = E.work;
        if (g->act_floats > act) act = g->act_floats;
        if (g->fixed_floats > fixed) fixed = g->fixed_floats;
    }
    /* Where each variant leaves its loss, logits and prediction. */
    buf_printf(b, "\nstatic const rt_cuda_outputs outputs[%d] = {\n", p->graphs.n);
    for (int gi = 0; gi < p->graphs.n; gi++) {
        const IrGraph *g = p->graphs.v[gi];
        const IrNode *outs[RT_MAXB + 2] = {g->loss};
        for (int br = 0; br < p->branches.n; br++) outs[1 + br] = g->logits[br];
        outs[1 + p->branches.n] = g->pred;
        buf_puts(b, "    {{");
        for (int i = 0; i < RT_MAXB + 2; i++) buf_printf(b, "%s%zu", i ? ", " : "", outs[i] ? outs[i]->off : 0);
        buf_puts(b, "}, {");
        for (int i = 0; i < RT_MAXB + 2; i++) {
            buf_puts(b, i ? ", " : "");
            output_entry(b, outs[i]);
        }
        buf_puts(b, "}},\n");
    }
    buf_puts(b, "};\nstatic const rt_cuda_run_fn runs[] = {");
    for (int gi = 0; gi < p->graphs.n; gi++) buf_printf(b, "%srun_%s", gi ? ", " : "", ident(((IrGraph *)p->graphs.v[gi])->name));
    buf_puts(b, "};\nstatic const int nkernels[] = {");
    for (int gi = 0; gi < p->graphs.n; gi++) {
        const IrGraph *g = p->graphs.v[gi];
        int nk = 0;
        for (int i = 0; i < g->nodes.n; i++) nk += cg_has_kernel(IR_NODE(g, i));
        buf_printf(b, "%s%d", gi ? ", " : "", nk);
    }
    buf_puts(b, "};\nstatic const rt_cuda_kernel_info *const kernels[] = {");
    for (int gi = 0; gi < p->graphs.n; gi++) buf_printf(b, "%s%s_kernels", gi ? ", " : "", ident(((IrGraph *)p->graphs.v[gi])->name));
    buf_puts(b, "};\n");
    if (o->use_cudnn) {
        buf_puts(b, "static const rt_cuda_run_fn plans[] = {");
        for (int gi = 0; gi < p->graphs.n; gi++) buf_printf(b, "%splan_%s", gi ? ", " : "", ident(((IrGraph *)p->graphs.v[gi])->name));
        buf_puts(b, "};\n");
    }
    buf_printf(b, "static const rt_cuda_impl cuda_impl = {runs, outputs, %zu, %zu, %zu, nkernels, kernels, %d, %d, %s, %zu};\n", act,
               fixed, work, o->profile, o->use_cublas, o->use_cudnn ? "plans" : "NULL", dnn);
    buf_puts(b, "extern \"C\" {\n");
    cg_tables(b, p, "cuda_impl", "rt_cuda_backend");
    buf_puts(b, "}\n");
    CgFile *m = cg_file(out, "main.c");
    cg_main(&m->text, p, o);
}

const CgBackend cg_cuda_backend = {"cuda", emit};
