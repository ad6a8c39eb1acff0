/* ast.c — small constructors for the parser, and the entry point that runs
 * the scanner and parser over one file. */
#include "ast.h"

#include "parser.h"

typedef void *yyscan_t;
int yylex_init_extra(const SrcFile *extra, yyscan_t *scanner);
int yylex_destroy(yyscan_t scanner);
void *yy_scan_bytes(const char *bytes, int len, yyscan_t scanner);
void mm_lexer_reset_position(void);

AstExpr *ast_expr(AstExprKind k, SrcLoc loc) {
    AstExpr *e = NEW(AstExpr);
    e->kind = k;
    e->loc = loc;
    return e;
}

/* Arrays without a capacity field grow by doubling whenever their length
 * reaches a power of two (amortised constant time). */
void *ast_grow(void *v, int n, size_t elem) {
    if (n >= 4 && (n & (n - 1))) return v;
    size_t cap = n < 4 ? 4 : (size_t)n * 2;
    return arena_realloc(mm_arena, v, elem * (size_t)n, elem * cap);
}

void ast_args_push(AstArgs *a, AstArg arg) {
    a->v = ast_grow(a->v, a->n, sizeof(AstArg));
    a->v[a->n++] = arg;
}

void ast_seq_push(AstSeq *s, AstLayer *l) {
    s->v = ast_grow(s->v, s->n, sizeof(AstLayer *));
    s->v[s->n++] = l;
}

AstFile *parse_file(const SrcFile *src) {
    AstFile *f = NEW(AstFile);
    f->src = src;
    yyscan_t sc;
    mm_lexer_reset_position();
    yylex_init_extra(src, &sc);
    yy_scan_bytes(src->text, (int)src->len, sc);
    /* On a syntax error the parser longjmps out; the scanner's memory is
     * arena memory, so nothing is lost. */
    yyparse(sc, f);
    yylex_destroy(sc);
    if (!f->model) {
        SrcLoc l = {src, 1, 1, 1};
        error_at(l, "no 'model' section in this file; a .mmnet file describes one model: model NAME { ... }");
    }
    if (!f->train) {
        SrcLoc l = f->model->loc;
        error_at(l, "model '%s' has no 'train' section; add one after the model: train { data ...; optimizer sgd(lr=0.01); batch 128; epochs 20 }",
                 f->model->name);
    }
    return f;
}
