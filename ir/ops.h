/* ops.h — every IR operation, defined once.
 *
 * X(ENUM, "name", nsrc, flags)
 *   nsrc   number of sources, or -1 for "one or more"
 *   flags  OPF_* below
 *
 * The enum, the name table and the per-op property tables are generated
 * from this list (ir.c); a static_assert keeps them in step. The gradient
 * rules live in passes/autodiff.c (one switch over these ops), kernels in
 * codegen/: the maths of the OPF_ELEM ops in one table for both back ends
 * (codegen/ewise.h), the rest in one switch per back end. Sources are
 * listed in the order the builders in ir.h take them. */

#define OPF_LEAF     0x01  /* no sources: data, parameters, state */
#define OPF_VIEW     0x02  /* result aliases source 0 (no kernel) */
#define OPF_DIFF     0x04  /* autodiff knows its gradient */
#define OPF_BWD      0x08  /* created by autodiff */
#define OPF_SIDE     0x10  /* writes state: never dead, never reordered across its state */
#define OPF_INPLACE  0x20  /* may write its result over source 0 when that dies here */
#define OPF_ELEM     0x40  /* element-wise over its output (fusible as an epilogue) */

#define MM_OPS(X)                                                               \
    /* leaves */                                                                \
    X(INPUT,          "input",          0,  OPF_LEAF)                           \
    X(LABELS,         "labels",         0,  OPF_LEAF)                           \
    X(PARAM,          "param",          0,  OPF_LEAF)                           \
    X(STATE,          "state",          0,  OPF_LEAF)                           \
    /* forward: layers */                                                       \
    X(CONV,           "conv",           -1, OPF_DIFF)          /* x, w[, b] */  \
    X(MAXPOOL,        "maxpool",        1,  OPF_DIFF)                           \
    X(AVGPOOL,        "avgpool",        1,  OPF_DIFF)                           \
    X(GAP,            "gap",            1,  OPF_DIFF)          /* global average pool -> (B, C) */ \
    X(FLATTEN,        "flatten",        1,  OPF_DIFF)          /* a copy: feature maps are channel-major */ \
    X(LINEAR,         "linear",         -1, OPF_DIFF)          /* x, w[, b] */  \
    X(RELU,           "relu",           1,  OPF_DIFF | OPF_ELEM | OPF_INPLACE)  \
    X(SIGMOID,        "sigmoid",        1,  OPF_DIFF | OPF_ELEM | OPF_INPLACE)  /* scale * sigmoid(x) */ \
    X(BN_STATS,       "bn_stats",       3,  OPF_DIFF | OPF_SIDE) /* x, running mean, running var -> (2, C) mean, 1/std */ \
    X(BN_RUNSTATS,    "bn_runstats",    2,  0)                 /* running mean, running var -> (2, C) */ \
    X(BN_APPLY,       "bn_apply",       4,  OPF_DIFF | OPF_INPLACE) /* x, stats, gamma, beta */ \
    X(DROPOUT,        "dropout",        1,  OPF_DIFF | OPF_ELEM | OPF_INPLACE)  \
    X(ADD,            "add",            -1, OPF_DIFF | OPF_ELEM | OPF_INPLACE)  \
    X(MUL,            "mul",            2,  OPF_DIFF | OPF_ELEM | OPF_INPLACE)  \
    X(MEAN,           "mean",           -1, OPF_DIFF | OPF_ELEM | OPF_INPLACE)  /* element-wise mean of its sources */ \
    X(SCALE,          "scale",          1,  OPF_DIFF | OPF_ELEM | OPF_INPLACE)  /* x * attr.f */ \
    X(CONCAT,         "concat",         -1, OPF_DIFF)          /* along channels */ \
    X(CHSCALE,        "chscale",        2,  OPF_DIFF | OPF_INPLACE) /* x (B,C,...) * g (B,C) */ \
    X(BCAST,          "bcast",          1,  0)                 /* (C) -> (B, C) */ \
    X(CE,             "ce",             2,  OPF_DIFF)          /* logits, labels -> mean cross-entropy */ \
    X(ACCUM,          "accum",          2,  OPF_SIDE)          /* x (B,C), state (C): running mean */ \
    /* backward */                                                              \
    X(CONV_DX,        "conv_dx",        2,  OPF_BWD)           /* dy, w */      \
    X(CONV_DW,        "conv_dw",        2,  OPF_BWD)           /* dy, x */      \
    X(REDUCE_CH,      "reduce_ch",      1,  OPF_BWD)           /* sum over batch and positions -> (C) */ \
    X(MAXPOOL_DX,     "maxpool_dx",     2,  OPF_BWD)           /* dy, y: the max-pool, which recorded its argmaxes */ \
    X(AVGPOOL_DX,     "avgpool_dx",     1,  OPF_BWD)                            \
    X(GAP_DX,         "gap_dx",         1,  OPF_BWD)                            \
    X(RESHAPE,        "reshape",        1,  OPF_BWD)                            \
    X(LINEAR_DX,      "linear_dx",      2,  OPF_BWD)           /* dy, w */      \
    X(LINEAR_DW,      "linear_dw",      2,  OPF_BWD)           /* dy, x */      \
    X(RELU_DX,        "relu_dx",        2,  OPF_BWD | OPF_ELEM | OPF_INPLACE) /* dy, y */ \
    X(SIGMOID_DX,     "sigmoid_dx",     2,  OPF_BWD | OPF_ELEM | OPF_INPLACE) /* dy, y */ \
    X(BN_DSUMS,       "bn_dsums",       3,  OPF_BWD)           /* dy, x, stats -> (2, C): sum dy, sum dy (x - mean) */ \
    X(BN_DX,          "bn_dx",          5,  OPF_BWD | OPF_INPLACE) /* dy, x, stats, gamma, dsums: through batch statistics */ \
    X(BN_DPARAM,      "bn_dparam",      2,  OPF_BWD)           /* dsums, stats -> (C): attr.mode 0 beta, 1 gamma */ \
    X(DROPOUT_DX,     "dropout_dx",     1,  OPF_BWD | OPF_ELEM | OPF_INPLACE)   \
    X(SLICE_CH,       "slice_ch",       1,  OPF_BWD)           /* channels [off, off+n) */ \
    X(CHSCALE_DG,     "chscale_dg",     2,  OPF_BWD)           /* dy, x -> (B, C) */ \
    X(CE_DX,          "ce_dx",          3,  OPF_BWD)           /* dloss, logits, labels */ \
    X(ONE,            "one",            0,  OPF_BWD | OPF_LEAF) /* d loss / d loss */

typedef enum {
#define X(e, name, nsrc, flags) OP_##e,
    MM_OPS(X)
#undef X
    OP_COUNT
} IrOp;

extern const char *const ir_op_name[OP_COUNT];
extern const int ir_op_nsrc[OP_COUNT];
extern const unsigned ir_op_flags[OP_COUNT];
