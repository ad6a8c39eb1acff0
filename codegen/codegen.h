/* codegen.h — the back-end interface: one IR, one op table, an emitter per
 * target behind one struct of function pointers (the ggml backend model).
 *
 * An emitter turns the planned program into source files held in memory;
 * build.c writes them out only when generation succeeded, then compiles. */
#ifndef MM_CODEGEN_H
#define MM_CODEGEN_H

#include "../ir/ir.h"

typedef struct {
    const char *name;   /* "model.c" */
    Buf text;
} CgFile;

typedef struct {
    CgFile files[8];
    int n;
    /* The back end's workspaces, for the memory plan (mmc info --batch):
     * floats per CPU thread, and once. */
    size_t scratch_floats, work_floats;
} CgOutput;

typedef struct {
    bool profile;       /* time every kernel (mmc build --profile) */
    const char *source; /* the .mmnet path, for the header line */
    bool use_cublas;    /* CUDA: cuBLAS for GEMM-shaped kernels */
    bool use_cudnn;     /* CUDA: cuDNN for convolutions (all but pointwise ones) */
} CgOptions;

/* Every back end has a kernel for every op of ir/ops.h (tests/gpu_check.c
 * compares the CUDA kernels with the C ones), so there is no per-op query:
 * an op without a kernel is an mmc bug, and the emitter aborts naming the
 * op and the back end. */
typedef struct {
    const char *name;                 /* "c", "cuda" */
    void (*emit)(const IrProgram *p, const CgOptions *o, CgOutput *out);
} CgBackend;

extern const CgBackend cg_c_backend;
extern const CgBackend cg_cuda_backend;

/* Shared by the emitters (emit_common.c). */
CgFile *cg_file(CgOutput *out, const char *name);
void cg_header(Buf *b, const IrProgram *p, const CgOptions *o, const char *what);
/* The model's tables and the rt_model definition; impl is the back end's
 * table symbol, backend its rt_backend symbol. */
void cg_tables(Buf *b, const IrProgram *p, const char *impl, const char *backend);
void cg_main(Buf *b, const IrProgram *p, const CgOptions *o);
const char *cg_loc(const IrNode *n);      /* "cgmnist.mmnet:14:5" */
const char *cg_describe(const IrNode *n); /* "%11 conv(%8 [B,3,28,28], %9 [32,3,5,5]) -> [B,32,28,28] k=5x5 ..." */
double cg_flops(const IrNode *n, bool per_example); /* per example for batched work */
bool cg_has_kernel(const IrNode *n);      /* false for leaves, views, fused ops */
/* "%11 conv", or "%11 conv+%13 maxpool" and "%174 chscale+%193 gap_dx+%194
 * add" for kernels that also compute folded nodes: every node the kernel
 * computes, the node whose value it stores last. */
const char *cg_kernel_label(const IrNode *n);
const char *cg_float(double x);           /* a C float literal: 1.0f, 1e-05f */

/* build.c: the C compiler mmc build compiles kernels with (cc, else
 * $MMNET_CC, else the one that built the runtime, else clang or gcc), and
 * the -I flags of the runtime's headers and common/ (false when absent). */
const char *cg_c_compiler(const char *cc);
bool cg_include_flags(char *inc, char *common, size_t n);
/* The flags mmc build compiles C kernels with, after -march (NULL-terminated). */
#define CG_C_FLAGS "-O3", "-fopenmp", "-ffp-contract=fast", "-fno-math-errno"

/* Helpers both emitters write kernels with. Feature maps (batched, rank 3
 * and more) are stored channel-major, [C][B][positions]; vectors [B][F]. */
const char *cg_ident(const char *s);          /* a C identifier from a name */
bool cg_channel_major(const IrNode *n);
size_t cg_positions(const IrNode *n);         /* per channel and example; 1 for vectors */
const char *cg_count(const IrNode *n);        /* "(size_t)B * N": elements of n */
const char *cg_base(const IrNode *n);         /* where example n's channel c starts */
bool cg_pointwise(const IrAttr *a);           /* a 1x1, stride 1, unpadded window */
/* enum { CI, DI, HI, WI, CO, DO, HO, WO, KD, ..., PW }: a window from x to y. */
void cg_window_consts(Buf *b, const IrNode *x, const IrNode *y, const IrAttr *a);
void cg_spatial(const IrNode *t, int nsp, int sp[3]); /* depth (1 for 2-D), height, width of a feature map */
#define CG_WIN "CI, DI, HI, WI, KD, KH, KW, SD, SH, SW, PD, PH, PW, DO, HO, WO"

/* Kernels identical across graph variants are emitted once. */
typedef struct {
    struct CgKernel *v;
    int n, cap;
    int *idx, icap; /* a hash index of v */
} CgKernels;
const char *cg_kernel_find(const CgKernels *t, const char *code);
int cg_kernel_index(const CgKernels *t, const char *code); /* in the order added; -1 if none */
const char *cg_kernel_name(const CgKernels *t, int i);
void cg_kernel_add(CgKernels *t, const char *code, const char *name);

#endif
