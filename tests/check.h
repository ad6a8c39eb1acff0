/* check.h — the checks of the C test programs (header only; include it
 * once, in the program's only test source).
 *
 *   CHECK(cond)                  counts a check; when cond is false, prints
 *   CHECK(cond, "fmt", ...)      file:line, the expression and the message
 *                                (a string literal and its arguments),
 *                                counts a failure, and goes on;
 *   REQUIRE(cond[, "fmt", ...])  the same, then exits 1: for what the rest
 *                                of the program cannot do without (a file
 *                                written, a pointer used next);
 *   CHECK_ERR(err, a, b)         the error message err mentions a and b (a
 *                                file name and a key phrase);
 *   CHECK_CLOSE(got, want, atol, rtol[, "fmt", ...])
 *                                |got - want| <= atol + rtol |want| (false
 *                                for NaN), printing both values when not;
 *   check_rel(got, want, floor)  |got - want| / max(|want|, floor);
 *   check_rel_l2(got, want, n, floor_rms, max_abs)
 *                                relative L2 error of two float arrays;
 *   return check_summary("name") ends main: a summary line, and the exit
 *                                status (0 when every check passed, else 1).
 *
 * Failures go to stderr, the summary to stdout. A check's message is
 * optional: CHECK(cond) leaves the variadic part empty, which C23 allows and
 * gcc and clang allow in C11 (a warning only under -pedantic). */
#ifndef MMNET_TESTS_CHECK_H
#define MMNET_TESTS_CHECK_H

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long check_total_, check_failed_;

/* fmt is " " followed by the caller's message (maybe empty), so that it is
 * never an empty format string. */
__attribute__((format(printf, 5, 6))) static inline void check_fail_(const char *file, int line, const char *kind, const char *expr,
                                                                    const char *fmt, ...) {
    check_failed_++;
    fflush(stdout); /* after what the program printed before it */
    fprintf(stderr, "%s:%d: %s failed: %s", file, line, kind, expr);
    if (fmt[1]) {
        va_list ap;
        va_start(ap, fmt);
        fputs(": ", stderr);
        vfprintf(stderr, fmt + 1, ap);
        va_end(ap);
    }
    fputc('\n', stderr);
}

static inline void check_stop_(void) {
    fprintf(stderr, "stopped at a failed REQUIRE (%ld of %ld checks failed)\n", check_failed_, check_total_);
    exit(1);
}

#define CHECK(cond, ...)                                                                  \
    do {                                                                                  \
        check_total_++;                                                                   \
        if (!(cond)) check_fail_(__FILE__, __LINE__, "CHECK", #cond, " " __VA_ARGS__);    \
    } while (0)

#define REQUIRE(cond, ...)                                                                \
    do {                                                                                  \
        check_total_++;                                                                   \
        if (!(cond)) {                                                                    \
            check_fail_(__FILE__, __LINE__, "REQUIRE", #cond, " " __VA_ARGS__);           \
            check_stop_();                                                                \
        }                                                                                 \
    } while (0)

#define CHECK_ERR(err, a, b)                                                              \
    do {                                                                                  \
        const char *err_ = (err), *a_ = (a), *b_ = (b);                                   \
        check_total_++;                                                                   \
        if (!strstr(err_, a_) || !strstr(err_, b_))                                       \
            check_fail_(__FILE__, __LINE__, "CHECK_ERR", #err " mentions " #a " and " #b, \
                        " \"%s\" lacks \"%s\" or \"%s\"", err_, a_, b_);                     \
    } while (0)

#define CHECK_CLOSE(got, want, atol, rtol, ...)                                           \
    do {                                                                                  \
        const double got_ = (got), want_ = (want), tol_ = (atol) + (rtol) * fabs(want_);  \
        check_total_++;                                                                   \
        if (!(fabs(got_ - want_) <= tol_)) {                                              \
            check_fail_(__FILE__, __LINE__, "CHECK_CLOSE", #got " ~ " #want, " " __VA_ARGS__); \
            fprintf(stderr, "    %.9g, expected %.9g: off by %.3g, tolerance %.3g\n", got_, want_, fabs(got_ - want_), tol_); \
        }                                                                                 \
    } while (0)

static inline double check_rel(double got, double want, double floor) { return fabs(got - want) / fmax(fabs(want), floor); }

/* |got - want|_2 / max(|want|_2, floor_rms sqrt(n), 1e-30), infinite when
 * the difference is not finite; the largest |got[i] - want[i]| goes to
 * *max_abs unless it is NULL. A floor_rms > 0 compares a tensor whose RMS
 * is below it at that scale instead (rounding noise against noise). */
static inline double check_rel_l2(const float *got, const float *want, size_t n, double floor_rms, double *max_abs) {
    double d = 0, r = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        const double e = (double)got[i] - want[i];
        d += e * e;
        r += (double)want[i] * want[i];
        if (fabs(e) > m) m = fabs(e);
    }
    if (max_abs) *max_abs = m;
    if (!isfinite(d)) return INFINITY;
    return sqrt(d) / fmax(fmax(sqrt(r), floor_rms * sqrt((double)n)), 1e-30);
}

static inline int check_summary(const char *name) {
    fflush(stderr);
    if (check_failed_) printf("%s: FAIL: %ld of %ld checks failed\n", name, check_failed_, check_total_);
    else printf("%s: ok: all %ld checks passed\n", name, check_total_);
    return check_failed_ ? 1 : 0;
}

#endif
