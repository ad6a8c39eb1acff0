/* ast.h — the syntax tree of a .mmnet file, as the parser builds it.
 *
 * The tree stays close to the text: names are unresolved strings and every
 * node keeps its location. Lowering (passes/lower.c) resolves names, expands
 * blocks and repetition, and builds the IR. */
#ifndef MM_AST_H
#define MM_AST_H

#include "../ir/util.h"

typedef struct AstExpr AstExpr;
typedef struct AstLayer AstLayer;

typedef enum {
    AX_INT,    /* 32 */
    AX_FLOAT,  /* 0.01 */
    AX_STR,    /* "fashion-mnist" */
    AX_BOOL,   /* true, false */
    AX_NAME,   /* ch, vanilla */
    AX_REF,    /* c.s1 */
    AX_LIST,   /* [3, 28, 28] */
    AX_CALL,   /* mean(c, g), guided(alpha=0.1) */
    AX_BINOP,  /* ch * 2, ce(c) + ce(g) */
    AX_NEG,    /* -x */
} AstExprKind;

typedef struct {
    const char *key; /* NULL for a positional argument */
    SrcLoc loc;      /* of the key, or of the value when positional */
    AstExpr *val;
} AstArg;

typedef struct {
    AstArg *v;
    int n;
} AstArgs;

struct AstExpr {
    AstExprKind kind;
    SrcLoc loc;
    long long ival;      /* AX_INT, AX_BOOL */
    double fval;         /* AX_FLOAT */
    const char *s;       /* AX_STR, AX_NAME, AX_REF (first part), AX_CALL (callee) */
    const char *s2;      /* AX_REF (second part) */
    SrcLoc loc2;         /* AX_REF: location of the second part */
    char op;             /* AX_BINOP: + - * / */
    AstExpr *l, *r;      /* AX_BINOP, AX_NEG (l) */
    AstExpr **items;     /* AX_LIST */
    int nitems;
    AstArgs args;        /* AX_CALL */
    bool parens;         /* AX_CALL written with parentheses */
};

typedef struct {
    AstLayer **v;
    int n;
} AstSeq;

typedef enum {
    AL_CALL,     /* conv(32, k=5) or relu or a block call: basic(64) */
    AL_REPEAT,   /* repeat 3 { ... } */
    AL_RESIDUAL, /* residual { ... } [shortcut { ... }] */
    AL_CONCAT,   /* concat { path { ... } path { ... } } */
} AstLayerKind;

struct AstLayer {
    AstLayerKind kind;
    SrcLoc loc;
    AstExpr *call;       /* AL_CALL: an AX_CALL expression */
    AstExpr *count;      /* AL_REPEAT */
    AstSeq body;         /* AL_REPEAT, AL_RESIDUAL */
    AstSeq shortcut;     /* AL_RESIDUAL; n == 0 and !has_shortcut: identity */
    bool has_shortcut;
    AstSeq *paths;       /* AL_CONCAT */
    int npaths;
    const char *label;   /* @name after the layer, or NULL */
    SrcLoc label_loc;
};

typedef struct {
    const char *name;
    SrcLoc loc;
    AstExpr *shape;      /* AX_LIST */
} AstInput;

typedef struct {
    const char *name;
    SrcLoc loc;
    AstExpr *dflt;       /* NULL: required */
} AstParam;

typedef struct {
    const char *name;
    SrcLoc loc;
    AstParam *params;
    int nparams;
    AstSeq body;
} AstBlock;

typedef struct {
    const char *name;
    SrcLoc loc;
    const char *input;
    SrcLoc input_loc;
    AstSeq body;
} AstBranch;

typedef struct {
    const char *key;
    SrcLoc loc;
    AstExpr *val;
} AstItem;

/* fuse NAME { concat(c.feat, g.feat) linear(10) }: a late-fusion head. The
 * combiner is an AX_CALL whose arguments are branch names or branch.label
 * references; `film(a by b)` sets `by` (two arguments). */
typedef struct {
    const char *name;
    SrcLoc loc;
    AstExpr *comb;
    bool by;
    AstSeq body;
} AstFuse;

typedef struct {
    const char *name;
    SrcLoc loc;
    PtrVec inputs;    /* AstInput* */
    PtrVec blocks;    /* AstBlock* */
    PtrVec branches;  /* AstBranch* */
    PtrVec fusions;   /* AstExpr* (AX_CALL: mmtm(...)) */
    PtrVec fuses;     /* AstFuse*: fuse f { concat(a, b) linear(10) } */
    AstItem *predict; /* predict mean(c, g) */
    AstItem *loss;    /* loss ce(c) + ce(g) */
} AstModel;

typedef struct {
    SrcLoc loc;
    PtrVec items;     /* AstItem*: batch 128, policy guided(...) */
} AstTrain;

typedef struct {
    const SrcFile *src;
    AstModel *model;
    AstTrain *train;
} AstFile;

/* Parse a whole file; on error reports and longjmps (see util.h). */
AstFile *parse_file(const SrcFile *src);

/* Helpers for the parser actions. */
AstExpr *ast_expr(AstExprKind k, SrcLoc loc);
void ast_args_push(AstArgs *a, AstArg arg);
void ast_seq_push(AstSeq *s, AstLayer *l);
void *ast_grow(void *v, int n, size_t elem);

#endif
