/* ir.h — the IR: a graph whose nodes are tensors (the ggml model).
 *
 * A node is the result of one operation: op, sources, attributes, shape,
 * flags (INPUT/PARAM/STATE/OUTPUT/LOSS), the branch (modality group) and
 * fusion module it belongs to, and the source location of the .mmnet
 * construct it came from. Graphs keep nodes in a topological order: the
 * builders append, so an order of construction is an order of execution.
 *
 * A program (IrProgram) is one model: the tables of parameters, state,
 * inputs, branches and fusion modules, the training policy, the forward
 * graph as written, and the graph variants derived from it (passes/). */
#ifndef MM_IR_H
#define MM_IR_H

#include "ops.h"
#include "util.h"
#include "../common/mmnet_shared.h"

#define IR_MAXDIM 5 /* B, C, D, H, W */
#define IR_MAXSRC 8

typedef enum { DT_F32, DT_I32 } IrDtype;

enum {
    IRF_INPUT = 1 << 0,
    IRF_PARAM = 1 << 1,
    IRF_STATE = 1 << 2,
    IRF_OUTPUT = 1 << 3, /* read by the runtime after the step */
    IRF_LOSS = 1 << 4,
    IRF_GRAD = 1 << 5,   /* the gradient of a parameter: lives in the gradient arena */
};

/* Where a node's result lives (decided by the memory planner). */
typedef enum {
    BUF_NONE,    /* not yet planned, or a view */
    BUF_ACT,     /* activations that scale with the batch: offset in floats per sample */
    BUF_FIXED,   /* activations that do not (BatchNorm statistics, the loss) */
    BUF_PARAM,
    BUF_GRAD,
    BUF_STATE,
    BUF_INPUT,
    BUF_LABELS,
} IrBuf;

typedef struct {
    int nsp;             /* spatial dimensions of a conv or pool: 2 or 3 */
    int k[3], s[3], p[3];/* kernel, stride, padding (depth, height, width; 2-D uses [1], [2]) */
    int cout;            /* output channels / features */
    bool bias;
    float f;             /* SCALE factor, SIGMOID scale, DROPOUT rate, BN epsilon */
    float f2;            /* BN momentum */
    int off, n;          /* SLICE_CH: channel range */
    int mode;            /* ACCUM: RT_ACC_*; MAXPOOL: 1 to record each window's argmax for the backward */
} IrAttr;

typedef struct IrNode IrNode;
struct IrNode {
    int id;
    IrOp op;
    int nsrc;
    IrNode *src[IR_MAXSRC];
    IrDtype dt;
    int ndim;
    int shape[IR_MAXDIM]; /* shape[0] is the batch when `batched` (and is 0 then) */
    bool batched;
    IrAttr a;
    unsigned flags;
    int branch;           /* modality group: branch index, -1 when shared */
    int fusion;           /* fusion module index, -1 outside */
    int param;            /* PARAM nodes and parameter gradients: index in the parameter table */
    int state;            /* STATE nodes: index in the state table */
    int input;            /* INPUT nodes: index in the input table */
    const char *name;     /* parameters, outputs: a readable name */
    const char *role;     /* inside fusion modules: "squeeze", "gate", ... */
    SrcLoc loc;

    /* pass scratch */
    IrNode *grad;         /* autodiff: accumulated gradient */
    IrNode *clone;        /* variants: the copy in the graph being built */
    bool needs_grad;
    int uses;             /* consumers in the graph */
    int last_use;         /* index of the last consumer (planner) */

    /* memory plan */
    IrBuf buf;
    size_t off;           /* floats (per sample for BUF_ACT) */
    IrNode *fused;        /* this node's kernel is part of `fused`'s kernel */
    IrNode *epi[4];       /* element-wise ops folded into this node's kernel */
    int nepi;
    IrNode *pool;         /* a max pooling folded into this convolution's kernel: its result is the pool's */
};

/* The values are the runtime's (RT_VAR_*): the emitter writes them as they are. */
typedef enum {
    VAR_FORWARD = RT_VAR_FORWARD,     /* the model as written, training mode, no backward */
    VAR_TRAIN = RT_VAR_TRAIN,         /* regular step */
    VAR_REBALANCE = RT_VAR_REBALANCE, /* re-balancing step for branch k (ALGORITHMS §5) */
    VAR_RUBI = RT_VAR_RUBI,           /* RUBi step with bias branch k (§7) */
    VAR_EVAL = RT_VAR_EVAL,           /* evaluation mode */
    VAR_CUT = RT_VAR_CUT,             /* evaluation with the cross-modal flow cut (§3) */
    VAR_SQUEEZE = RT_VAR_SQUEEZE,     /* evaluation that accumulates the training-set squeeze means (§3) */
    VAR_COUNT
} IrVariant;

extern const char *const ir_variant_name[VAR_COUNT];

typedef struct {
    const char *name;     /* "train", "rebalance-c", ... */
    IrVariant kind;
    int k;                /* branch of REBALANCE/RUBI */
    PtrVec nodes;         /* topological order */
    IrNode *loss;
    IrNode *logits[RT_MAXB]; /* per-branch logits (OUTPUT) */
    IrNode *pred;         /* the prediction (OUTPUT) */
    size_t act_floats;    /* planned: floats per sample of batched activations */
    size_t fixed_floats;  /* planned: floats of fixed-size activations */
} IrGraph;

/* ---- program tables ---------------------------------------------------- */
typedef struct {
    const char *name;     /* c.conv1.weight */
    int ndim, shape[IR_MAXDIM];
    size_t numel, off;
    unsigned groups;      /* RT_GROUP_MAIN(k) | RT_GROUP_BYPASS(k) bits */
    int branch, fusion;
    int init;             /* RT_INIT_* */
    float bound;          /* uniform bound for RT_INIT_UNIFORM */
    unsigned loss_terms;  /* bit i: the loss's i-th term reads it (through any path) */
    SrcLoc loc;
} IrParam;

typedef struct {
    const char *name;
    int ndim, shape[IR_MAXDIM];
    size_t numel, off;
    int kind;             /* RT_STATE_* */
    float init;
    int branch, fusion;
} IrState;

typedef struct {
    const char *name;
    int ndim, shape[IR_MAXDIM]; /* per sample */
    size_t numel;
    SrcLoc loc;
} IrInput;

typedef struct {
    const char *name;
    int input;            /* index in the input table */
    SrcLoc loc;
    IrNode *out;          /* logits in the forward graph */
    IrNode *head;         /* the final linear layer */
    bool headless;        /* no head: its output is features for a fusion head, and it has no logits */
    int nlayers;
} IrBranch;

/* A late-fusion head (`fuse NAME { concat(a, b) linear(10) }`): the
 * features it reads and the logits it ends in. Its nodes carry the role
 * "fuse" and, in attr.n, the head's index. */
typedef struct {
    const char *name;
    const char *comb;     /* concat, sum, film, gated */
    const char *text;     /* concat(c.feat, g.feat) */
    int nin;
    IrNode *in[RT_MAXB];
    int in_branch[RT_MAXB];
    const char *in_text[RT_MAXB];
    IrNode *out;          /* logits in the forward graph */
    bool checked;         /* shapes: its inputs were checked */
    SrcLoc loc, comb_loc;
} IrHead;

typedef enum { FUSE_MMTM, FUSE_SE } IrFusionKind;

typedef struct {
    IrFusionKind kind;
    const char *name;     /* mmtm1, c.se1 */
    int nb;               /* branches joined (1 for SE) */
    int branch[RT_MAXB];
    const char *point[RT_MAXB]; /* labels: c.s1 */
    int chan[RT_MAXB];
    int hidden;
    int ratio;
    bool double_sigmoid;  /* 2*sigmoid gates (the MMTM paper) */
    int gate_state[RT_MAXB];    /* running gate means (§5) */
    int squeeze_state[RT_MAXB]; /* training-set squeeze means (§3) */
    SrcLoc loc;
} IrFusion;

typedef struct {
    const char *name;
    const SrcFile *src;
    PtrVec params, states, inputs, branches, fusions;
    PtrVec heads;             /* IrHead*: late-fusion heads */
    int nclasses;
    size_t params_floats, states_floats;
    rt_config cfg;            /* the train section */
    const char *predict_text, *loss_text;
    int nloss_terms;          /* the loss's cross-entropies, in the order written */
    float loss_weight[IR_MAXSRC]; /* their weights (1 when not written) */
    int rubi_branch;          /* from the .mmnet policy, or -1 */
    bool c_fusions;           /* the C back end's further fusions (passes/fuse.c): pooling into convolutions, MMTM gradient sums */
    IrGraph *fwd;             /* the model as written */
    PtrVec graphs;            /* IrGraph*: the variants (passes/variants.c) */
} IrProgram;

#define IR_PARAM(p, i) ((IrParam *)(p)->params.v[i])
#define IR_STATE(p, i) ((IrState *)(p)->states.v[i])
#define IR_INPUT(p, i) ((IrInput *)(p)->inputs.v[i])
#define IR_BRANCH(p, i) ((IrBranch *)(p)->branches.v[i])
#define IR_FUSION(p, i) ((IrFusion *)(p)->fusions.v[i])
#define IR_HEAD(p, i) ((IrHead *)(p)->heads.v[i])
#define IR_NODE(g, i) ((IrNode *)(g)->nodes.v[i])

/* ---- graph construction ------------------------------------------------ */
/* Builders append to the current graph, copying branch/fusion/loc from the
 * builder context so that every node knows where it came from. */
typedef struct {
    IrGraph *g;
    int branch, fusion;
    SrcLoc loc;
    const char *role;
} IrBuilder;

IrGraph *ir_graph_new(const char *name, IrVariant kind, int k);
IrNode *ir_node(IrBuilder *b, IrOp op, int nsrc, IrNode **src);
IrNode *ir_node1(IrBuilder *b, IrOp op, IrNode *a);
IrNode *ir_node2(IrBuilder *b, IrOp op, IrNode *a, IrNode *c);
IrNode *ir_node3(IrBuilder *b, IrOp op, IrNode *a, IrNode *c, IrNode *d);
IrNode *ir_node4(IrBuilder *b, IrOp op, IrNode *a, IrNode *c, IrNode *d, IrNode *e);
IrNode *ir_leaf(IrBuilder *b, IrOp op);
/* Copy a node's op, attributes, identity and shape into graph b, with new sources. */
IrNode *ir_clone(IrBuilder *b, const IrNode *n, IrNode **src);

size_t ir_numel(const IrNode *n);          /* per sample when batched */
void ir_set_shape(IrNode *n, bool batched, int ndim, const int *dims);
void ir_copy_shape(IrNode *dst, const IrNode *src);
char *ir_shape_str(const IrNode *n);       /* [B,32,14,14] */
int ir_channels(const IrNode *n);          /* shape[1] of a batched tensor */
size_t ir_positions(const IrNode *n);      /* product of spatial dims */
/* Floats of one example's zero-padded planes of a 2-D convolution's input
 * `in` (padding pah, paw; split in sh x sw phase planes) plus its output
 * `out` on their width, out's channels rounded up to 32 when `packed`: the
 * scratch of the C back end's convolutions (codegen/emit_c.c), which the
 * fusion pass also sizes. */
size_t ir_conv_plane_floats(const IrNode *in, const IrNode *out, const IrAttr *a, int pah, int paw, int sh, int sw, bool packed);

/* ---- whole-program services --------------------------------------------- */
void ir_dump_graph(Buf *b, const IrProgram *p, const IrGraph *g);
void ir_dump_dot(Buf *b, const IrProgram *p, const IrGraph *g);  /* Graphviz, for `dot -Tsvg` */
void ir_verify(const IrProgram *p, const IrGraph *g, const char *after);
void ir_count_uses(IrGraph *g);
size_t ir_group_params(const IrProgram *p, unsigned group_bit);
const char *ir_group_name(const IrProgram *p, int group); /* main_c, bypass_g */
IrGraph *ir_find_graph(const IrProgram *p, const char *name);

#endif
