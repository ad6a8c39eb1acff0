/* fuzz_mmc.c — libFuzzer target: the whole front end and every pass, on
 * arbitrary bytes.
 *
 * Each input is compiled as mmc does (driver/main.c): a fresh arena, the
 * text as a NUL-terminated SrcFile, mm_compile up to the memory planner.
 * User errors longjmp back into mm_compile and come back as NULL; only
 * crashes, sanitizer reports, leaks, hangs and internal errors (abort) are
 * findings. Diagnostics go to /dev/null so that the fuzzer's output stays
 * readable.
 *
 * Built by tests/fuzz/CMakeLists.txt (-DMMNET_FUZZ=ON, clang), or by hand:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I$BUILD -Ifrontend \
 *         tests/fuzz/fuzz_mmc.c ir/[a-z]*.c frontend/ast.c $BUILD/parser.c $BUILD/lexer.c passes/[a-z]*.c -lm
 * where $BUILD holds parser.c, parser.h and lexer.c made by bison and flex.
 *   ./fuzz_mmc -dict=tests/fuzz/mmnet.dict -timeout=5 CORPUS_DIR */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../passes/passes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static FILE *devnull;
    if (!devnull) {
        devnull = fopen("/dev/null", "w");
        if (!devnull) abort();
    }
    mm_diag_stream = devnull;
    mm_diag_color = false;

    /* mmc refuses files with a NUL byte before parsing (mm_read_source); the
     * scanner would stop at it, so such inputs test nothing. */
    if (memchr(data, 0, size)) return -1; /* -1: do not add to the corpus */

    Arena arena = {0};
    mm_arena = &arena;
    SrcFile *src = NEW(SrcFile);
    char *text = arena_alloc(&arena, size + 1); /* zeroed: NUL-terminated */
    if (size) memcpy(text, data, size);
    src->path = "fuzz.mmnet";
    src->text = text;
    src->len = size;

    CompileOptions opt = {0};
    opt.stop_after = PASS_PLAN;
    IrProgram *p = mm_compile(src, &opt);
    (void)p;

    arena_free(&arena);
    mm_arena = NULL;
    return 0;
}
