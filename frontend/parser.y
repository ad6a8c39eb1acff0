/* parser.y — the grammar of .mmnet files (docs/mmnet.md is the reference).
 *
 *   file    := (model | train)*
 *   model   := 'model' NAME '{' (input | block | branch | fusion | fuse | predict | loss)* '}'
 *   fuse    := 'fuse' NAME '{' NAME '(' ref (',' ref)* | ref 'by' ref ')' layer* '}'
 *   ref     := NAME | NAME '.' NAME
 *   train   := 'train' '{' (NAME expr)* '}'
 *   layer   := NAME ['(' args ')'] ['@' NAME]
 *            | 'repeat' expr '{' layer* '}'
 *            | 'residual' '{' layer* '}' ['shortcut' '{' layer* '}']
 *            | 'concat' '{' ('path' '{' layer* '}')+ '}'
 *
 * A pure parser over a reentrant scanner; syntax errors name what was found
 * and what could have come instead. */
%define api.pure full
%define parse.error custom
%locations
%define api.location.type {SrcLoc}
%lex-param {void *scanner}
%parse-param {void *scanner} {AstFile *out}

%code requires {
#include "ast.h"
}

%code {
#include <stdio.h>
#include <string.h>
int yylex(YYSTYPE *lval, SrcLoc *lloc, void *scanner);
static void yyerror(SrcLoc *loc, void *scanner, AstFile *out, const char *msg);
static SrcLoc span(SrcLoc a, SrcLoc b);
#define YYLLOC_DEFAULT(Cur, Rhs, N)                                   \
    do {                                                              \
        if (N) (Cur) = span(YYRHSLOC(Rhs, 1), YYRHSLOC(Rhs, N));      \
        else { (Cur) = YYRHSLOC(Rhs, 0); (Cur).col += (Cur).len; (Cur).len = 1; } \
    } while (0)
/* Parser stacks come from the arena too (see lexer.l). */
#define YYSTACK_USE_ALLOCA 0
#define YYMALLOC(n) arena_alloc(mm_arena, n)
#define YYFREE(p) ((void)(p))
#define YYMAXDEPTH 2000
static AstLayer *layer(AstLayerKind k, SrcLoc loc) {
    AstLayer *l = NEW(AstLayer);
    l->kind = k;
    l->loc = loc;
    return l;
}
static AstExpr *binop(char op, AstExpr *l, AstExpr *r, SrcLoc loc) {
    AstExpr *e = ast_expr(AX_BINOP, loc);
    e->op = op; e->l = l; e->r = r;
    return e;
}
static AstModel *model(AstFile *out, const char *name, SrcLoc loc) {
    if (out->model) {
        diag_note_later(out->model->loc, "the first model is here");
        error_at(loc, "a file holds one model; '%s' is a second one", name);
    }
    out->model = NEW(AstModel);
    out->model->name = name;
    out->model->loc = loc;
    return out->model;
}
static AstModel *cur_model(AstFile *out) { return out->model; }
}

%union {
    long long ival;
    double fval;
    const char *str;
    AstExpr *expr;
    AstArgs args;
    AstArg arg;
    AstLayer *layer;
    AstSeq seq;
    struct { AstSeq *v; int n; } paths;
    struct { AstParam *v; int n; } params;
    AstParam param;
    PtrVec items;
}

%token KW_MODEL "'model'" KW_TRAIN "'train'" KW_INPUT "'input'" KW_BLOCK "'block'"
%token KW_BRANCH "'branch'" KW_REPEAT "'repeat'" KW_RESIDUAL "'residual'"
%token KW_SHORTCUT "'shortcut'" KW_CONCAT "'concat'" KW_PATH "'path'"
%token KW_PREDICT "'predict'" KW_LOSS "'loss'" KW_FUSE "'fuse'"
%token <ival> INT "integer" BOOL "true or false"
%token <fval> FLOAT "number"
%token <str> IDENT "name" LABEL "label" STRING "string"

%type <expr> expr primary call list
%type <args> args
%type <arg> arg
%type <seq> seq opt_shortcut
%type <layer> layer
%type <str> opt_label key
%type <paths> paths
%type <params> opt_params params
%type <param> param
%type <items> titems
%type <expr> exprs fcomb fref
%type <args> frefs
%type <str> fname

%left '+' '-'
%left '*' '/'
%right NEG

%%

file: %empty
    | file top
    ;

top: KW_MODEL IDENT '{' { model(out, $2, @2); } mitems '}'
   | KW_TRAIN '{' titems '}' {
         if (out->train) {
             diag_note_later(out->train->loc, "the first train section is here");
             error_at(@1, "a file holds one train section; this is a second one");
         }
         out->train = NEW(AstTrain);
         out->train->loc = @1;
         out->train->items = $3;
     }
   | ';'
   ;

mitems: %empty
      | mitems mitem
      ;

mitem: KW_INPUT IDENT list {
           AstInput *in = NEW(AstInput);
           in->name = $2; in->loc = @2; in->shape = $3;
           vec_push(&cur_model(out)->inputs, in);
       }
     | KW_BLOCK IDENT opt_params '{' seq '}' {
           AstBlock *b = NEW(AstBlock);
           b->name = $2; b->loc = @2; b->params = $3.v; b->nparams = $3.n; b->body = $5;
           vec_push(&cur_model(out)->blocks, b);
       }
     | KW_BRANCH IDENT '(' IDENT ')' '{' seq '}' {
           AstBranch *b = NEW(AstBranch);
           b->name = $2; b->loc = @2; b->input = $4; b->input_loc = @4; b->body = $7;
           vec_push(&cur_model(out)->branches, b);
       }
     | KW_PREDICT expr {
           AstModel *m = cur_model(out);
           if (m->predict) {
               diag_note_later(m->predict->loc, "the first 'predict' is here");
               error_at(@1, "'predict' is given twice");
           }
           m->predict = NEW(AstItem);
           m->predict->key = "predict"; m->predict->loc = @1; m->predict->val = $2;
       }
     | KW_LOSS expr {
           AstModel *m = cur_model(out);
           if (m->loss) {
               diag_note_later(m->loss->loc, "the first 'loss' is here");
               error_at(@1, "'loss' is given twice");
           }
           m->loss = NEW(AstItem);
           m->loss->key = "loss"; m->loss->loc = @1; m->loss->val = $2;
       }
     | KW_FUSE IDENT '{' fcomb seq '}' {
           AstFuse *f = NEW(AstFuse);
           f->name = $2; f->loc = @2; f->comb = $4; f->by = $4->ival; f->body = $5;
           vec_push(&cur_model(out)->fuses, f);
       }
     | call { vec_push(&cur_model(out)->fusions, $1); }
     | ';'
     ;

/* A fusion head's combiner: concat(a, b), sum(a.f, b.f), film(a by b). The
 * combiner 'concat' is the keyword of parallel paths, so it is named here. */
fcomb: fname '(' frefs ')' {
           $$ = ast_expr(AX_CALL, @1); $$->s = $1; $$->parens = true; $$->args = $3;
       }
     | fname '(' fref IDENT fref ')' {
           if (strcmp($4, "by") != 0)
               error_at(@4, "unexpected name '%s'; expected ',' or 'by' between the fused branches", $4);
           $$ = ast_expr(AX_CALL, @1); $$->s = $1; $$->parens = true; $$->ival = 1;
           AstArg a = {NULL, @3, $3}, b = {NULL, @5, $5};
           ast_args_push(&$$->args, a);
           ast_args_push(&$$->args, b);
       }
     ;

fname: IDENT
     | KW_CONCAT { $$ = "concat"; }
     ;

frefs: fref             { memset(&$$, 0, sizeof $$); AstArg a = {NULL, @1, $1}; ast_args_push(&$$, a); }
     | frefs ',' fref   { $$ = $1; AstArg a = {NULL, @3, $3}; ast_args_push(&$$, a); }
     ;

fref: IDENT             { $$ = ast_expr(AX_CALL, @1); $$->s = $1; }
    | IDENT '.' IDENT   { $$ = ast_expr(AX_REF, @$); $$->s = $1; $$->s2 = $3; $$->loc2 = @3; }
    ;

opt_params: %empty          { $$.v = NULL; $$.n = 0; }
          | '(' ')'         { $$.v = NULL; $$.n = 0; }
          | '(' params ')'  { $$ = $2; }
          ;

params: param {
            $$.v = NEWN(AstParam, 1); $$.v[0] = $1; $$.n = 1;
        }
      | params ',' param {
            $$.v = ast_grow($1.v, $1.n, sizeof(AstParam));
            $$.v[$1.n] = $3; $$.n = $1.n + 1;
        }
      ;

param: IDENT          { $$.name = $1; $$.loc = @1; $$.dflt = NULL; }
     | IDENT '=' expr { $$.name = $1; $$.loc = @1; $$.dflt = $3; }
     ;

seq: %empty     { $$.v = NULL; $$.n = 0; }
   | seq layer  { $$ = $1; if ($2) ast_seq_push(&$$, $2); }
   ;

layer: call opt_label {
           $$ = layer(AL_CALL, @1); $$->call = $1; $$->label = $2; $$->label_loc = @2;
       }
     | KW_REPEAT expr '{' seq '}' opt_label {
           $$ = layer(AL_REPEAT, @1); $$->count = $2; $$->body = $4; $$->label = $6; $$->label_loc = @6;
       }
     | KW_RESIDUAL '{' seq '}' opt_shortcut opt_label {
           $$ = layer(AL_RESIDUAL, @1); $$->body = $3;
           $$->has_shortcut = $5.v != NULL || $5.n < 0;
           $$->shortcut = $5; if ($$->shortcut.n < 0) $$->shortcut.n = 0;
           $$->label = $6; $$->label_loc = @6;
       }
     | KW_CONCAT '{' paths '}' opt_label {
           $$ = layer(AL_CONCAT, @1); $$->paths = $3.v; $$->npaths = $3.n; $$->label = $5; $$->label_loc = @5;
       }
     | ';' { $$ = NULL; }
     ;

/* An empty shortcut block is marked with n = -1 so that 'shortcut {}'
 * (explicit identity) and no shortcut at all are told apart. */
opt_shortcut: %empty                      { $$.v = NULL; $$.n = 0; }
            | KW_SHORTCUT '{' seq '}'     { $$ = $3; if (!$$.v) $$.n = -1; }
            ;

paths: KW_PATH '{' seq '}' {
           $$.v = NEWN(AstSeq, 1); $$.v[0] = $3; $$.n = 1;
       }
     | paths KW_PATH '{' seq '}' {
           $$.v = ast_grow($1.v, $1.n, sizeof(AstSeq));
           $$.v[$1.n] = $4; $$.n = $1.n + 1;
       }
     ;

opt_label: %empty  { $$ = NULL; }
         | LABEL   { $$ = $1; }
         ;

titems: %empty          { memset(&$$, 0, sizeof $$); }
      | titems IDENT expr {
            $$ = $1;
            AstItem *it = NEW(AstItem);
            it->key = $2; it->loc = @2; it->val = $3;
            vec_push(&$$, it);
        }
      | titems ';'      { $$ = $1; }
      ;

expr: expr '+' expr          { $$ = binop('+', $1, $3, @2); }
    | expr '-' expr          { $$ = binop('-', $1, $3, @2); }
    | expr '*' expr          { $$ = binop('*', $1, $3, @2); }
    | expr '/' expr          { $$ = binop('/', $1, $3, @2); }
    | '-' expr %prec NEG     { $$ = ast_expr(AX_NEG, @$); $$->l = $2; }
    | primary
    ;

primary: INT     { $$ = ast_expr(AX_INT, @1); $$->ival = $1; }
       | FLOAT   { $$ = ast_expr(AX_FLOAT, @1); $$->fval = $1; }
       | STRING  { $$ = ast_expr(AX_STR, @1); $$->s = $1; }
       | BOOL    { $$ = ast_expr(AX_BOOL, @1); $$->ival = $1; }
       | IDENT '.' IDENT {
             $$ = ast_expr(AX_REF, @$); $$->s = $1; $$->s2 = $3; $$->loc2 = @3;
         }
       | call
       | list
       | '(' expr ')' { $$ = $2; }
       ;

call: IDENT              { $$ = ast_expr(AX_CALL, @1); $$->s = $1; }
    | IDENT '(' ')'      { $$ = ast_expr(AX_CALL, @1); $$->s = $1; $$->parens = true; }
    | IDENT '(' args ')' { $$ = ast_expr(AX_CALL, @1); $$->s = $1; $$->parens = true; $$->args = $3; }
    ;

list: '[' ']'            { $$ = ast_expr(AX_LIST, @$); }
    | '[' exprs ']'      { $$ = $2; $$->loc = @$; }
    | '[' exprs ',' ']'  { $$ = $2; $$->loc = @$; }
    ;

exprs: expr {
           $$ = ast_expr(AX_LIST, @1);
           $$->items = NEWN(AstExpr *, 1); $$->items[0] = $1; $$->nitems = 1;
       }
     | exprs ',' expr {
           $$ = $1;
           $$->items = ast_grow($$->items, $$->nitems, sizeof(AstExpr *));
           $$->items[$$->nitems++] = $3;
       }
     ;

args: arg              { memset(&$$, 0, sizeof $$); ast_args_push(&$$, $1); }
    | args ',' arg     { $$ = $1; ast_args_push(&$$, $3); }
    ;

arg: expr              { $$.key = NULL; $$.loc = @1; $$.val = $1; }
   | key '=' expr      { $$.key = $1; $$.loc = @1; $$.val = $3; }
   ;

/* Keywords are fine as option names: synthetic(train=512). */
key: IDENT
   | KW_MODEL { $$ = "model"; } | KW_TRAIN { $$ = "train"; } | KW_INPUT { $$ = "input"; }
   | KW_BLOCK { $$ = "block"; } | KW_BRANCH { $$ = "branch"; } | KW_REPEAT { $$ = "repeat"; }
   | KW_RESIDUAL { $$ = "residual"; } | KW_SHORTCUT { $$ = "shortcut"; } | KW_CONCAT { $$ = "concat"; }
   | KW_PATH { $$ = "path"; } | KW_PREDICT { $$ = "predict"; } | KW_LOSS { $$ = "loss"; } | KW_FUSE { $$ = "fuse"; }
   ;

%%

static SrcLoc span(SrcLoc a, SrcLoc b) {
    SrcLoc r = a;
    if (b.line == a.line && b.col + b.len > a.col) r.len = b.col + b.len - a.col;
    return r;
}

static void yyerror(SrcLoc *loc, void *scanner, AstFile *out, const char *msg) {
    (void)scanner; (void)out;
    if (strcmp(msg, "memory exhausted") == 0)
        error_at(*loc, "the file nests too deeply here (the limit is about %d levels of braces, brackets and parentheses)", YYMAXDEPTH / 3);
    error_at(*loc, "%s", msg);
}

const SrcLoc *mm_lexer_open_brace(void);
int mm_lexer_prev_token(SrcLoc *loc);

/* "found 'x', expected '{' or name" — the found token is quoted from the
 * source text so that the message shows exactly what the user wrote. */
static int yyreport_syntax_error(const yypcontext_t *ctx, void *scanner, AstFile *out) {
    (void)scanner;
    (void)out;
    SrcLoc loc = *yypcontext_location(ctx);
    yysymbol_kind_t expected[40];
    int n = yypcontext_expected_tokens(ctx, expected, 40);
    Buf b = {0};
    yysymbol_kind_t tok = yypcontext_token(ctx);
    const char *hint = "";
    if (tok == YYSYMBOL_YYEOF) {
        const SrcLoc *open = mm_lexer_open_brace();
        if (open) {
            diag_note_later(*open, "this '{' is not closed");
            buf_puts(&b, "unexpected end of file; expected '}'");
        } else {
            buf_puts(&b, "unexpected end of file");
        }
    } else {
        const char *p = loc.file->text;
        int line = 1;
        while (line < loc.line && *p) if (*p++ == '\n') line++;
        p += loc.col - 1;
        const char *name = yysymbol_name(tok);
        if (name[0] == '\'')
            buf_printf(&b, "unexpected %s", name); /* a keyword or punctuation: its name is its text */
        else
            buf_printf(&b, "unexpected %s '%.*s'", name, loc.len > 40 ? 40 : loc.len, p);
        /* `conv 32 k5`: arguments written without parentheses. */
        SrcLoc ploc;
        if ((tok == YYSYMBOL_INT || tok == YYSYMBOL_FLOAT) && mm_lexer_prev_token(&ploc) == IDENT) {
            /* A name then a number: `conv 32` (old layer syntax), or a train
             * key whose value is missing, so that the next key became it. */
            static const char *const keys[] = {"data", "optimizer", "batch", "epochs", "seed", "schedule", "early_stop", "policy"};
            const char *q = loc.file->text;
            int l = 1;
            while (l < ploc.line && *q) if (*q++ == '\n') l++;
            q += ploc.col - 1;
            bool key = false;
            for (int i = 0; i < 8; i++) key |= (int)strlen(keys[i]) == ploc.len && strncmp(q, keys[i], (size_t)ploc.len) == 0;
            hint = key ? arena_printf(mm_arena, "; '%.*s' was read as the value of the item before it: does that item miss its value?",
                                      ploc.len, q)
                       : "; layer arguments go in parentheses, e.g. conv(32, k=5, p=2)";
        }
    }
    bool value = false;
    for (int i = 0; i < n; i++) value |= expected[i] == YYSYMBOL_INT;
    if (n > 0 && n <= 6 && !hint[0] && tok != YYSYMBOL_YYEOF) {
        buf_puts(&b, "; expected ");
        for (int i = 0; i < n; i++) {
            if (i) buf_puts(&b, i == n - 1 ? " or " : ", ");
            buf_printf(&b, "%s", yysymbol_name(expected[i]));
        }
    } else if (value && !hint[0] && tok != YYSYMBOL_YYEOF) {
        buf_puts(&b, "; expected a value (a number, a name, a string, a list or a call)");
    }
    buf_puts(&b, hint);
    char *msg = arena_strdup(mm_arena, b.s);
    buf_free(&b);
    error_at(loc, "%s", msg);
    return 0;
}
