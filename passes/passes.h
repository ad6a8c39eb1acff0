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
void pass_shapes(IrProgram *p);
void pass_variants(IrProgram *p);
void pass_autodiff(IrProgram *p);
void pass_fuse(IrProgram *p);
void pass_plan(IrProgram *p);

/* Read a whole file into a SrcFile in the current arena; NULL with errno. */
SrcFile *mm_read_source(const char *path);

#endif
