/* passes.h — the compiler's passes and the pipeline that runs them.
 *
 * The pipeline (pipeline.c, mm_compile) is one list of calls with the
 * verifier between passes, like QBE's main.c:
 *
 *   parse     text -> AST                                (frontend/)
 *   lower     AST -> forward IR graph, tables, policy    (lower.c, train.c)
 *   shapes    infer and check every shape, size params    (shapes.c)
 *   variants  derive train/rebalance/rubi/eval/cut/squeeze graphs (variants.c)
 *   autodiff  append backward graphs to training variants (autodiff.c)
 *   fuse      fold element-wise ops into their producers  (fuse.c)
 *   plan      place every tensor in an arena              (plan.c)
 */
#ifndef MM_PASSES_H
#define MM_PASSES_H

#include <stdio.h>

#include "../frontend/ast.h"
#include "../ir/ir.h"

typedef enum {
    PASS_LOWER,
    PASS_SHAPES,
    PASS_VARIANTS,
    PASS_AUTODIFF,
    PASS_FUSE,
    PASS_PLAN,
    PASS_COUNT
} PassId;

extern const char *const pass_name[PASS_COUNT];

typedef struct {
    PassId stop_after;       /* run passes up to and including this one */
    bool no_fuse;            /* skip fusion (for comparing) */
    bool target_cuda;        /* compiling for the CUDA back end (fusion differs: see fuse.c) */
    void (*on_pass)(const IrProgram *p, PassId done, void *user); /* after each pass */
    void *user;
} CompileOptions;

/* Parse and compile a source file; NULL after reporting an error. */
IrProgram *mm_compile(const SrcFile *src, const CompileOptions *opt);

IrProgram *pass_lower(const AstFile *f);
void lower_train(const AstTrain *t, IrProgram *p);
/* The train section as the configuration holds it, one line per key (mmc info). */
void train_print(FILE *out, const IrProgram *p);
void pass_shapes(IrProgram *p);
void pass_variants(IrProgram *p);
void pass_autodiff(IrProgram *p);
void pass_fuse(IrProgram *p);
void pass_plan(IrProgram *p);

/* ---- args.c: values, and calls checked against what they take -------------- */
typedef enum { V_NONE, V_INT, V_FLOAT, V_BOOL, V_STR, V_NAME, V_LIST } VKind;

typedef struct Val Val;
struct Val {
    VKind k;
    long long i;
    double f;
    const char *s;
    Val *items;
    int n;
    SrcLoc loc;
};

/* Block parameters bound to values, innermost first. */
typedef struct Env Env;
struct Env {
    const char *name;
    Val val;
    Env *next;
};

/* An expression's value (arithmetic over the parameters in env). */
Val args_eval(const AstExpr *e, Env *env);
/* A name where a value is expected: the error, with the parameters' names. */
_Noreturn void args_unknown_name(const Val *v, Env *env);
/* A value as the user wrote it, for messages. */
const char *args_val_text(const Val *v);

/* Types: 'i' integer, 'f' number, 'b' true/false, 's' string, 'n' name,
 * 'k' integer or list of integers (kernel sizes), 'l' a list (of numbers or
 * names, or of lists of numbers), 'p' a pair of numbers. */
typedef struct {
    const char *name;
    char type;
    const char *dflt;   /* NULL: required; "": none (V_NONE) */
} ArgSpec;

#define ARGS_MAX 8

typedef struct {
    const char *what;   /* "layer 'conv'", "'sgd'" */
    ArgSpec spec[ARGS_MAX];
} Signature;

/* Match a call's arguments to a signature: out[i] is the value of spec[i]
 * (its default when absent), given[i] whether the call gave it (given may be
 * NULL). Every mistake is an error at its place. A layer's or an mmtm's
 * arguments: positional in order or by name, expressions over env. */
void args_match(const Signature *sig, const AstArgs *args, Env *env, SrcLoc call_loc, Val *out, bool *given);
/* A train-section construct's options (sgd(lr=0.01)): by name, only the
 * first may be positional; literal values. */
void args_options(const Signature *sig, const AstArgs *args, SrcLoc call_loc, Val *out, bool *given);

/* Read a whole file into a SrcFile in the current arena; NULL with errno. */
SrcFile *mm_read_source(const char *path);

#endif
