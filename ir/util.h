/* util.h — what every stage of mmc shares: an arena allocator, growable
 * arrays, a string buffer, source locations and diagnostics.
 *
 * A compilation allocates from one arena and frees it at once, so error paths
 * (which longjmp back to the driver) leak nothing; that is what lets the
 * fuzzer run the whole front end millions of times under ASan. */
#ifndef MM_UTIL_H
#define MM_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_LEN(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Internal bugs (never user errors): abort with the place. */
#define mm_assert(c) ((c) ? (void)0 : mm_panic(__FILE__, __LINE__, #c))
_Noreturn void mm_panic(const char *file, int line, const char *what);

/* ---- arena ---------------------------------------------------------- */
typedef struct ArenaChunk ArenaChunk;
typedef struct { ArenaChunk *head; size_t total; } Arena;

void *arena_alloc(Arena *a, size_t n);        /* zeroed */
void *arena_realloc(Arena *a, void *p, size_t old, size_t n);
char *arena_strdup(Arena *a, const char *s);
char *arena_strndup(Arena *a, const char *s, size_t n);
char *arena_printf(Arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void arena_free(Arena *a);

/* The arena of the compilation in progress (set by the driver). */
extern Arena *mm_arena;
#define NEW(T) ((T *)arena_alloc(mm_arena, sizeof(T)))
#define NEWN(T, n) ((T *)arena_alloc(mm_arena, sizeof(T) * (size_t)(n)))

/* Growable array of pointers, arena-backed. */
typedef struct { void **v; int n, cap; } PtrVec;
void vec_push(PtrVec *v, void *p);

/* ---- string buffer (malloc-backed; used for emitted code) ----------- */
typedef struct { char *s; size_t n, cap; } Buf;
void buf_printf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(Buf *b, const char *fmt, va_list ap);
void buf_puts(Buf *b, const char *s);
void buf_free(Buf *b);

/* ---- source and diagnostics ----------------------------------------- */
typedef struct {
    const char *path;     /* as given on the command line */
    const char *text;     /* whole file, NUL-terminated */
    size_t len;
} SrcFile;

typedef struct {
    const SrcFile *file;  /* NULL for synthesized nodes */
    int line, col;        /* 1-based */
    int len;              /* characters to underline (>= 1) */
} SrcLoc;

/* An error in the user's input: prints `file:line:col: error: msg`, the
 * source line and a caret, then longjmps to the driver's recovery point.
 * `note` prints an extra located note (e.g. the earlier definition)
 * before the error is raised with error_at. */
_Noreturn void error_at(SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void note_at(SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
_Noreturn void error_plain(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Notes are buffered and printed after the error they explain. */
void diag_note_later(SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The recovery point: error_at longjmps here with 1. */
extern jmp_buf *mm_error_jmp;
/* Where diagnostics go (stderr by default; the fuzzer silences them). */
extern void *mm_diag_stream;
extern bool mm_diag_color;

/* Nearest name by edit distance, or NULL when nothing is close. */
const char *nearest_name(const char *name, const char *const *cands, int n);
/* "a, b or c" */
char *join_names(const char *const *names, int n, const char *last_sep);

#endif
