/* pipeline.c — the whole compilation, one pass after another, with the
 * verifier between passes. Errors in the user's file longjmp back here. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passes.h"

const char *const pass_name[PASS_COUNT] = {"lower", "shapes", "variants", "autodiff", "fuse", "plan"};

static void verify_all(const IrProgram *p, PassId done) {
    if (p->graphs.n == 0) ir_verify(p, p->fwd, pass_name[done]);
    for (int i = 0; i < p->graphs.n; i++) ir_verify(p, p->graphs.v[i], pass_name[done]);
}

IrProgram *mm_compile(const SrcFile *src, const CompileOptions *opt) {
    jmp_buf env, *saved = mm_error_jmp;
    IrProgram *volatile p = NULL;
    mm_error_jmp = &env;
    if (setjmp(env)) {
        mm_error_jmp = saved;
        return NULL;
    }
    AstFile *ast = parse_file(src);
    void (*const passes[PASS_COUNT])(IrProgram *) = {
        NULL,            /* lower: builds the program */
        pass_shapes,
        pass_variants,
        pass_autodiff,
        pass_fuse,
        pass_plan,
    };
    for (int i = 0; i < PASS_COUNT; i++) {
        if (i == PASS_LOWER) {
            p = pass_lower(ast);
            p->c_fusions = !opt->target_cuda;
        }
        else if (i == PASS_FUSE && opt->no_fuse) continue;
        else passes[i](p);
        if (i != PASS_LOWER) verify_all(p, (PassId)i);
        if (opt->on_pass) opt->on_pass(p, (PassId)i, opt->user);
        if ((PassId)i == opt->stop_after) break;
    }
    mm_error_jmp = saved;
    return p;
}

SrcFile *mm_read_source(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    Buf b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        buf_printf(&b, "%.*s", (int)n, chunk);
        /* A NUL byte in the middle would silently end the text. */
        if (memchr(chunk, 0, n)) {
            fclose(f);
            buf_free(&b);
            errno = EILSEQ;
            return NULL;
        }
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        buf_free(&b);
        errno = EIO;
        return NULL;
    }
    SrcFile *s = NEW(SrcFile);
    s->path = arena_strdup(mm_arena, path);
    s->text = arena_strndup(mm_arena, b.s ? b.s : "", b.n);
    s->len = b.n;
    buf_free(&b);
    return s;
}
