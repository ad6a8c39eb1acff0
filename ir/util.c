/* util.c — arena, vectors, buffers and the diagnostics printer. */
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Arena *mm_arena;
jmp_buf *mm_error_jmp;
void *mm_diag_stream;
bool mm_diag_color;

void mm_panic(const char *file, int line, const char *what) {
    fprintf(stderr, "mmc: internal error at %s:%d: %s\n", file, line, what);
    abort();
}

/* ---- arena ---------------------------------------------------------- */
struct ArenaChunk {
    ArenaChunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

void *arena_alloc(Arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    ArenaChunk *c = a->head;
    if (!c || c->used + n > c->cap) {
        size_t cap = n > 65536 ? n : 65536;
        c = malloc(sizeof(ArenaChunk) + cap);
        if (!c) { fprintf(stderr, "mmc: out of memory\n"); exit(1); }
        c->used = 0;
        c->cap = cap;
        c->next = a->head;
        a->head = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    a->total += n;
    memset(p, 0, n);
    return p;
}

void *arena_realloc(Arena *a, void *p, size_t old, size_t n) {
    void *q = arena_alloc(a, n);
    if (p && old) memcpy(q, p, old < n ? old : n);
    return q;
}

char *arena_strndup(Arena *a, const char *s, size_t n) {
    char *p = arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *arena_strdup(Arena *a, const char *s) { return arena_strndup(a, s, strlen(s)); }

char *arena_printf(Arena *a, const char *fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = arena_alloc(a, (size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return p;
}

void arena_free(Arena *a) {
    for (ArenaChunk *c = a->head, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    a->head = NULL;
    a->total = 0;
}

void vec_push(PtrVec *v, void *p) {
    if (v->n == v->cap) {
        int cap = v->cap ? v->cap * 2 : 8;
        v->v = arena_realloc(mm_arena, v->v, sizeof(void *) * (size_t)v->cap, sizeof(void *) * (size_t)cap);
        v->cap = cap;
    }
    v->v[v->n++] = p;
}

/* ---- buffers -------------------------------------------------------- */
void buf_vprintf(Buf *b, const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    if (b->n + (size_t)n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (b->n + (size_t)n + 1 > cap) cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s) { fprintf(stderr, "mmc: out of memory\n"); exit(1); }
        b->s = s;
        b->cap = cap;
    }
    vsnprintf(b->s + b->n, (size_t)n + 1, fmt, ap2);
    b->n += (size_t)n;
    va_end(ap2);
}

void buf_printf(Buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void buf_puts(Buf *b, const char *s) { buf_printf(b, "%s", s); }

void buf_free(Buf *b) {
    free(b->s);
    b->s = NULL;
    b->n = b->cap = 0;
}

/* ---- diagnostics ---------------------------------------------------- */
static FILE *diag_out(void) { return mm_diag_stream ? (FILE *)mm_diag_stream : stderr; }

static void print_located(SrcLoc loc, const char *kind, const char *fmt, va_list ap) {
    FILE *f = diag_out();
    const char *bold = mm_diag_color ? "\033[1m" : "", *reset = mm_diag_color ? "\033[0m" : "";
    const char *kcol = !mm_diag_color ? "" : strcmp(kind, "error") == 0 ? "\033[1;31m" : "\033[1;36m";
    if (loc.file)
        fprintf(f, "%s%s:%d:%d:%s %s%s:%s ", bold, loc.file->path, loc.line, loc.col, reset, kcol, kind, reset);
    else
        fprintf(f, "%smmc:%s %s%s:%s ", bold, reset, kcol, kind, reset);
    vfprintf(f, fmt, ap);
    fputc('\n', f);
    if (!loc.file || loc.line < 1) return;
    /* The source line, then a caret (and tildes) under the construct. */
    const char *p = loc.file->text, *end = p + loc.file->len;
    for (int l = 1; l < loc.line && p < end; p++)
        if (*p == '\n') l++;
    const char *e = p;
    while (e < end && *e != '\n') e++;
    /* A long line is shown from a little before the caret, and cut. */
    int col = loc.col;
    if (col > 120) {
        p += col - 60;
        col = 60;
    }
    if (e - p > 160) e = p + 160;
    fprintf(f, "%5d | %.*s\n      | ", loc.line, (int)(e - p), p);
    for (int i = 1; i < col && p + i - 1 < e; i++) fputc(p[i - 1] == '\t' ? '\t' : ' ', f);
    fprintf(f, "%s^", kcol);
    for (int i = 1; i < loc.len && p + col - 1 + i < e; i++) fputc('~', f);
    fprintf(f, "%s\n", reset);
}

#define MAX_LATER 8
static struct { SrcLoc loc; char msg[512]; } later[MAX_LATER];
static int nlater;

void diag_note_later(SrcLoc loc, const char *fmt, ...) {
    if (nlater == MAX_LATER) return;
    va_list ap;
    va_start(ap, fmt);
    later[nlater].loc = loc;
    vsnprintf(later[nlater].msg, sizeof later[nlater].msg, fmt, ap);
    va_end(ap);
    nlater++;
}

static void flush_later(void) {
    for (int i = 0; i < nlater; i++) note_at(later[i].loc, "%s", later[i].msg);
    nlater = 0;
}

_Noreturn static void raise_error(void) {
    if (mm_error_jmp) longjmp(*mm_error_jmp, 1);
    exit(1);
}

void error_at(SrcLoc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    print_located(loc, "error", fmt, ap);
    va_end(ap);
    flush_later();
    raise_error();
}

void note_at(SrcLoc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    print_located(loc, "note", fmt, ap);
    va_end(ap);
}

void error_plain(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    FILE *f = diag_out();
    fprintf(f, "mmc: error: ");
    vfprintf(f, fmt, ap);
    fputc('\n', f);
    va_end(ap);
    nlater = 0;
    raise_error();
}

/* Optimal string alignment distance: edits and adjacent swaps ('rleu'). */
static int edit_distance(const char *a, const char *b) {
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la > 63 || lb > 63) return 99;
    int d[64][64];
    for (int i = 0; i <= la; i++) d[i][0] = i;
    for (int j = 0; j <= lb; j++) d[0][j] = j;
    for (int i = 1; i <= la; i++)
        for (int j = 1; j <= lb; j++) {
            int c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < c) c = d[i - 2][j - 2] + 1;
            d[i][j] = c;
        }
    return d[la][lb];
}

/* Suggest only names close enough to be typos: about one edit per four
 * characters (none for one-letter names), at most three. */
const char *nearest_name(const char *name, const char *const *cands, int n) {
    const char *best = NULL;
    int bestd = 99;
    int limit = ((int)strlen(name) + 2) / 4;
    if (limit > 3) limit = 3;
    for (int i = 0; i < n; i++) {
        int d = edit_distance(name, cands[i]);
        if (d < bestd) { bestd = d; best = cands[i]; }
    }
    return bestd <= limit && bestd > 0 ? best : NULL;
}

char *join_names(const char *const *names, int n, const char *last_sep) {
    Buf b = {0};
    for (int i = 0; i < n; i++) {
        if (i) buf_puts(&b, i == n - 1 ? last_sep : ", ");
        buf_printf(&b, "'%s'", names[i]);
    }
    char *s = arena_strdup(mm_arena, b.s ? b.s : "");
    buf_free(&b);
    return s;
}
