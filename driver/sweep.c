/* sweep.c — `mmc sweep`: the greediness study of ALGORITHMS §8.
 *
 * Learning rates sampled log-uniformly in a range, several seeds each, runs
 * in parallel processes of the compiled training program. The axes are the
 * settings that RT_CONFIG_FIELDS marks .sweep (lr and seed): their options,
 * ranges and defaults, the program's flags for them, the run directories'
 * names and the CSV's columns come from there. Every run's
 * d_util and d_speed (and accuracies) collected into one CSV, and one
 * picture: histograms of d_util and of d_speed, and d_speed against d_util.
 * Sweeps of several models (the real modalities and the identical-modality
 * control) are drawn together with --plot. A sweep that was interrupted
 * continues where it stopped (runs with a summary.json are kept).
 *
 * Started as N processes by mpirun (or srun), the sweep spreads its runs
 * over them: process r trains runs r, r + N, ...; each finished run leaves
 * RUN.done beside its directory, and process 0 waits for all of them and
 * writes the CSV and the picture. The processes find their rank in the
 * launcher's environment, so mmc itself links no MPI; they share DIR (one
 * machine, or a shared file system). Process 0 builds the program and
 * signals the others with DIR/prog.ready, which names the job. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#include "driver.h"

static const char sweep_usage[] =
    "usage: mmc sweep FILE.mmnet --out DIR [options] [-- TRAIN-OPTIONS...]\n"
    "       mmc sweep --plot DIR1/sweep.csv [DIR2/sweep.csv ...] -o FIGURE.svg\n"
    "\n"
    "Trains the model of FILE.mmnet at learning rates sampled log-uniformly in\n"
    "[--lr-min, --lr-max], several seeds each, and collects every run's d_util,\n"
    "d_speed and accuracies into DIR/sweep.csv and DIR/sweep.svg, and draws\n"
    "DIR/report.html: the sweep, a table of its runs, and each run's own report.\n"
    "\n"
    "  --out DIR          where the program, the runs, the CSV and the picture go\n";
static const char sweep_usage_tail[] =
    "  --jobs J           runs at a time (default: the number of cores)\n"
    "  --threads T        threads per run (default 1)\n"
    "  --label NAME       the sweep's name in the CSV and the picture (default: the model's)\n"
    "  --program PROG     a program already built from FILE.mmnet (default: build one into DIR)\n"
    "  --mpi              spread the runs over the processes of `mpirun -np N mmc sweep ...` (or srun);\n"
    "                     --jobs runs at a time in each, process 0 writes the CSV (started so,\n"
    "                     the sweep spreads its runs even without --mpi)\n"
    "  --seed S           seed of the learning-rate sampling (default 1)\n"
    "  -- ...             options passed to every `PROG train` (e.g. --epochs 3 --limit-train 20000)\n";

/* An axis of the sweep: a setting that RT_CONFIG_FIELDS marks .sweep, and
 * its values: RT_SWEEP_LOG, n sampled log-uniformly in [lo, hi];
 * RT_SWEEP_COUNT, 1 .. n. The runs are every combination, the first axis
 * outermost. */
#define MAXAXES 4
typedef struct {
    const rt_field *f;
    double lo, hi;
    int n;
    const char *opt;   /* the option without "--": lr, seed */
} Axis;

static Axis axes[MAXAXES];
static int naxes;

static void find_axes(void) {
    naxes = 0;
    for (int i = 1; i < RT_CFG_COUNT && naxes < MAXAXES; i++) {
        const rt_field *f = &rt_config_fields[i];
        if (f->sweep) axes[naxes++] = (Axis){f, f->sweep_lo, f->sweep_hi, f->sweep_n, f->flag + 2};
    }
}

/* An axis value as the program, the CSV, the directories and the messages write it. */
static const char *axis_text(const Axis *a, double v, const char *float_fmt, char *buf, size_t n) {
    if (a->f->kind == RT_KIND_FLOAT) snprintf(buf, n, float_fmt, v);
    else snprintf(buf, n, "%lld", (long long)v);
    return buf;
}

static void print_usage(void) {
    fputs(sweep_usage, stdout);
    for (int i = 0; i < naxes; i++) {
        const Axis *a = &axes[i];
        char o[64];
        if (a->f->sweep == RT_SWEEP_LOG) {
            snprintf(o, sizeof o, "%s-min %s", a->f->flag, a->f->meta);
            printf("  %-18s smallest %s (default %g)\n", o, a->f->noun, a->lo);
            snprintf(o, sizeof o, "%s-max %s", a->f->flag, a->f->meta);
            printf("  %-18s largest %s (default %g)\n", o, a->f->noun, a->hi);
            snprintf(o, sizeof o, "%ss N", a->f->flag);
            printf("  %-18s number of %ss (default %d)\n", o, a->f->noun, a->n);
        } else {
            snprintf(o, sizeof o, "%ss %s", a->f->flag, a->f->meta);
            if (i) printf("  %-18s %ss per %s (default %d)\n", o, a->f->noun, axes[i - 1].f->noun, a->n);
            else printf("  %-18s number of %ss (default %d)\n", o, a->f->noun, a->n);
        }
    }
    fputs(sweep_usage_tail, stdout);
}

typedef struct {
    char label[64];
    double axis[MAXAXES];   /* its value on each axis */
    int ok;
    double test_acc, val_acc, acc0, acc1, u0, u1, d_util, d_speed;
} Row;

static _Noreturn void usage_error(const char *msg, const char *arg) {
    fprintf(stderr, "mmc sweep: ");
    fprintf(stderr, msg, arg);
    fprintf(stderr, "\nrun 'mmc sweep --help' for the options\n");
    exit(2);
}

static double num(const char *flag, const char *v, double lo, double hi) {
    char *end;
    double x = strtod(v, &end);
    if (*end || end == v || !(x >= lo && x <= hi)) {
        fprintf(stderr, "mmc sweep: %s needs a number in [%g, %g], not '%s'\n", flag, lo, hi, v);
        exit(2);
    }
    return x;
}

/* A value of an axis's range option: within the setting's own range. */
static double axis_num(const char *flag, const char *v, const rt_field *f) {
    char *end;
    double x = strtod(v, &end);
    if (*end || end == v || !rt_field_in_range(f, x)) {
        fprintf(stderr, "mmc sweep: %s needs a number in %s%g, %g%s, not '%s'\n", flag, f->lo_open ? "(" : "[", f->lo, f->hi,
                f->hi_open ? ")" : "]", v);
        exit(2);
    }
    return x;
}

/* The whole file, NUL-terminated (malloc), or NULL with errno. */
char *mmc_read_all(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    Buf b = {0};
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) buf_printf(&b, "%.*s", (int)n, chunk);
    fclose(f);
    return b.s ? b.s : calloc(1, 1);
}

static double jnum(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* One run's summary.json into a row; ok = 0 when it is missing or partial. */
static void read_summary(const char *dir, Row *r) {
    char path[4200];
    snprintf(path, sizeof path, "%s/summary.json", dir);
    char *text = mmc_read_all(path);
    r->ok = 0;
    if (!text) return;
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!j) return;
    r->test_acc = jnum(j, "test_acc");
    r->val_acc = jnum(j, "val_acc");
    r->d_speed = jnum(j, "d_speed");
    r->d_util = jnum(j, "d_util");
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "branch_test_acc");
    r->acc0 = cJSON_IsArray(b) && cJSON_GetArraySize(b) > 0 ? cJSON_GetArrayItem(b, 0)->valuedouble : NAN;
    r->acc1 = cJSON_IsArray(b) && cJSON_GetArraySize(b) > 1 ? cJSON_GetArrayItem(b, 1)->valuedouble : NAN;
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "util");
    r->u0 = u ? jnum(u, "u(m1|m0)") : NAN;
    r->u1 = u ? jnum(u, "u(m0|m1)") : NAN;
    r->ok = isfinite(r->test_acc);
    cJSON_Delete(j);
}

static void write_csv(const char *path, const Row *rows, int n) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "mmc sweep: cannot write %s: %s\n", tmp, strerror(errno));
        exit(1);
    }
    fprintf(f, "label");
    for (int a = 0; a < naxes; a++) fprintf(f, ",%s", axes[a].f->name);
    fprintf(f, ",status,test_acc,val_acc,branch0_test_acc,branch1_test_acc,u_m1_given_m0,u_m0_given_m1,d_util,d_speed\n");
    for (int i = 0; i < n; i++) {
        const Row *r = &rows[i];
        char t[64];
        fprintf(f, "%s", r->label);
        for (int a = 0; a < naxes; a++) fprintf(f, ",%s", axis_text(&axes[a], r->axis[a], "%.6g", t, sizeof t));
        fprintf(f, ",%s", r->ok ? "ok" : "failed");
        const double v[] = {r->test_acc, r->val_acc, r->acc0, r->acc1, r->u0, r->u1, r->d_util, r->d_speed};
        for (int k = 0; k < 8; k++) {
            if (r->ok && isfinite(v[k])) fprintf(f, ",%.6g", v[k]);
            else fprintf(f, ",");
        }
        fputc('\n', f);
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "mmc sweep: cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

static int read_csv(const char *path, Row **rows, int *n, int *cap) {
    char *text = mmc_read_all(path);
    if (!text) {
        fprintf(stderr, "mmc sweep: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    char head[256] = "label";
    for (int a = 0; a < naxes; a++) snprintf(head + strlen(head), sizeof head - strlen(head), ",%s", axes[a].f->name);
    strcat(head, ",status");
    const int nf = naxes + 10;   /* label, the axes, status, 8 results */
    int line = 0;
    for (char *s = strtok(text, "\n"); s; s = strtok(NULL, "\n"), line++) {
        if (line == 0) {
            if (strncmp(s, head, strlen(head)) != 0) {
                fprintf(stderr, "mmc sweep: %s is not a sweep CSV (its header is '%.40s')\n", path, s);
                free(text);
                return -1;
            }
            continue;
        }
        if (*n == *cap) {
            *cap = *cap ? 2 * *cap : 64;
            *rows = realloc(*rows, sizeof(Row) * (size_t)*cap);
        }
        Row *r = &(*rows)[*n];
        memset(r, 0, sizeof *r);
        char *f[MAXAXES + 10] = {0};
        int k = 0;
        for (char *p = s; k < nf; k++) {
            f[k] = p;
            char *c = strchr(p, ',');
            if (!c) { k++; break; }
            *c = 0;
            p = c + 1;
        }
        if (k < nf) {
            fprintf(stderr, "mmc sweep: %s:%d: expected %d fields\n", path, line + 1, nf);
            free(text);
            return -1;
        }
        snprintf(r->label, sizeof r->label, "%s", f[0]);
        for (int a = 0; a < naxes; a++) r->axis[a] = atof(f[1 + a]);
        r->ok = strcmp(f[1 + naxes], "ok") == 0;
        double *dst[] = {&r->test_acc, &r->val_acc, &r->acc0, &r->acc1, &r->u0, &r->u1, &r->d_util, &r->d_speed};
        for (int j = 0; j < 8; j++) *dst[j] = f[2 + naxes + j][0] ? atof(f[2 + naxes + j]) : NAN;
        (*n)++;
    }
    free(text);
    return 0;
}

/* ---- the picture: SVG, three panels ------------------------------------------- */
static const char *const colors[] = {"#d6604d", "#4393c3", "#5aae61", "#9970ab", "#bf812d"};

static void svg_hist(FILE *f, double x0, double y0, double w, double h, const char *title, const Row *rows, int n, int which,
                     const char *const *labels, int nl) {
    const double lo = -1.5, hi = 1.5;
    enum { BINS = 24 };
    int count[8][BINS] = {{0}}, maxc = 1;
    for (int i = 0; i < n; i++) {
        if (!rows[i].ok) continue;
        double v = which ? rows[i].d_speed : rows[i].d_util;
        if (!isfinite(v)) continue;
        int b = (int)floor((v - lo) / (hi - lo) * BINS);
        b = b < 0 ? 0 : b >= BINS ? BINS - 1 : b;
        for (int l = 0; l < nl && l < 8; l++)
            if (strcmp(rows[i].label, labels[l]) == 0 && ++count[l][b] > maxc) maxc = count[l][b];
    }
    fprintf(f, "<g transform='translate(%g,%g)'>\n<rect width='%g' height='%g' fill='none' stroke='#999'/>\n", x0, y0, w, h);
    fprintf(f, "<text x='%g' y='-8' text-anchor='middle' font-size='14'>%s</text>\n", w / 2, title);
    double bw = w / BINS;
    for (int l = 0; l < nl && l < 8; l++)
        for (int b = 0; b < BINS; b++)
            if (count[l][b])
                fprintf(f, "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='%s' fill-opacity='0.55'/>\n", b * bw,
                        h - h * count[l][b] / maxc, bw, h * count[l][b] / maxc, colors[l % 5]);
    for (int t = 0; t <= 6; t++) {
        double v = lo + (hi - lo) * t / 6;
        fprintf(f, "<text x='%.1f' y='%g' text-anchor='middle' font-size='11'>%.1f</text>\n", w * t / 6, h + 14, v);
    }
    fprintf(f, "<line x1='%g' y1='0' x2='%g' y2='%g' stroke='#333' stroke-dasharray='3,3'/>\n", w / 2, w / 2, h);
    fprintf(f, "<text x='-6' y='10' text-anchor='end' font-size='11'>%d</text>\n</g>\n", maxc);
}

static void svg_scatter(FILE *f, double x0, double y0, double w, double h, const Row *rows, int n, const char *const *labels, int nl) {
    const double lo = -1.5, hi = 1.5;
    fprintf(f, "<g transform='translate(%g,%g)'>\n<rect width='%g' height='%g' fill='none' stroke='#999'/>\n", x0, y0, w, h);
    fprintf(f, "<text x='%g' y='-8' text-anchor='middle' font-size='14'>d_speed against d_util</text>\n", w / 2);
    fprintf(f, "<line x1='%g' y1='0' x2='%g' y2='%g' stroke='#ccc'/><line x1='0' y1='%g' x2='%g' y2='%g' stroke='#ccc'/>\n", w / 2,
            w / 2, h, h / 2, w, h / 2);
    for (int i = 0; i < n; i++) {
        const Row *r = &rows[i];
        if (!r->ok || !isfinite(r->d_util) || !isfinite(r->d_speed)) continue;
        int l = 0;
        while (l < nl && strcmp(labels[l], r->label) != 0) l++;
        double px = (r->d_util - lo) / (hi - lo) * w, py = h - (r->d_speed - lo) / (hi - lo) * h;
        px = px < 0 ? 0 : px > w ? w : px;
        py = py < 0 ? 0 : py > h ? h : py;
        fprintf(f, "<circle cx='%.1f' cy='%.1f' r='3.5' fill='%s' fill-opacity='0.7'/>\n", px, py, colors[l % 5]);
    }
    for (int t = 0; t <= 6; t++) {
        double v = lo + (hi - lo) * t / 6;
        fprintf(f, "<text x='%.1f' y='%g' text-anchor='middle' font-size='11'>%.1f</text>\n", w * t / 6, h + 14, v);
        fprintf(f, "<text x='-4' y='%.1f' text-anchor='end' font-size='11'>%.1f</text>\n", h - h * t / 6 + 4, v);
    }
    fprintf(f, "<text x='%g' y='%g' text-anchor='middle' font-size='12'>d_util</text>\n", w / 2, h + 30);
    fprintf(f, "<text x='-30' y='%g' text-anchor='middle' font-size='12' transform='rotate(-90 -30 %g)'>d_speed</text>\n</g>\n",
            h / 2, h / 2);
}

/* Text for XML and HTML: labels and paths are the user's. */
static void xml_text(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else if (*s == '\'') fputs("&#39;", f);
        else if (*s == '"') fputs("&quot;", f);
        else fputc(*s, f);
    }
}

/* The three panels as one <svg> element, a file of its own or inline in the report. */
static void plot_svg(FILE *f, const Row *rows, int n) {
    const char *labels[8];
    int nl = 0;
    for (int i = 0; i < n && nl < 8; i++) {
        int seen = 0;
        for (int l = 0; l < nl; l++) seen |= strcmp(labels[l], rows[i].label) == 0;
        if (!seen) labels[nl++] = rows[i].label;
    }
    fprintf(f, "<svg xmlns='http://www.w3.org/2000/svg' width='1080' height='340' font-family='sans-serif'>\n");
    fprintf(f, "<rect width='100%%' height='100%%' fill='white'/>\n");
    svg_hist(f, 50, 40, 300, 240, "d_util", rows, n, 0, labels, nl);
    svg_hist(f, 410, 40, 300, 240, "d_speed", rows, n, 1, labels, nl);
    svg_scatter(f, 770, 40, 280, 240, rows, n, labels, nl);
    int ok[8] = {0}, all[8] = {0};
    double mu[8] = {0}, ms[8] = {0};
    for (int i = 0; i < n; i++)
        for (int l = 0; l < nl; l++)
            if (strcmp(labels[l], rows[i].label) == 0) {
                all[l]++;
                if (rows[i].ok && isfinite(rows[i].d_util) && isfinite(rows[i].d_speed)) {
                    ok[l]++;
                    mu[l] += rows[i].d_util;
                    ms[l] += rows[i].d_speed;
                }
            }
    for (int l = 0; l < nl; l++) {
        fprintf(f, "<text x='%d' y='330' font-size='12' fill='%s'>&#9632; ", 50 + 360 * l, colors[l % 5]);
        xml_text(f, labels[l]);
        fprintf(f, ": %d of %d runs, mean d_util %.2f, mean d_speed %.2f</text>\n", ok[l], all[l], ok[l] ? mu[l] / ok[l] : NAN,
                ok[l] ? ms[l] / ok[l] : NAN);
    }
    fprintf(f, "</svg>\n");
}

static int plot(const char *out, const Row *rows, int n) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "mmc sweep: cannot write %s: %s\n", tmp, strerror(errno));
        return 1;
    }
    plot_svg(f, rows, n);
    if (fclose(f) != 0 || rename(tmp, out) != 0) {
        fprintf(stderr, "mmc sweep: cannot write %s: %s\n", out, strerror(errno));
        return 1;
    }
    printf("%s\n", out);
    return 0;
}

/* ---- running ---------------------------------------------------------------------- */
/* A run's directory: RUNS/lr0.0123_seed1. */
static void run_dir(char *buf, size_t n, const char *runs, const Row *r) {
    char t[64];
    snprintf(buf, n, "%s/", runs);
    for (int j = 0; j < naxes; j++)
        snprintf(buf + strlen(buf), n - strlen(buf), "%s%s%s", j ? "_" : "", axes[j].f->name, axis_text(&axes[j], r->axis[j], "%.6g", t, sizeof t));
}
/* This process's rank among the sweep's processes and their number, from
 * the launcher's environment (Open MPI, MPICH/PMI, Slurm); the job's name,
 * the same in every process. 0 and 1 when started alone. */
static int sweep_rank(int *size, char *job, size_t n) {
    static const char *const env[][4] = {{"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_NAMESPACE", "OMPI_MCA_orte_ess_jobid"},
                                         {"PMI_RANK", "PMI_SIZE", "PMI_KVSNAME", "PMIX_NAMESPACE"},
                                         {"SLURM_PROCID", "SLURM_NTASKS", "SLURM_JOB_ID", "SLURM_STEP_ID"}};
    for (size_t i = 0; i < sizeof env / sizeof env[0]; i++) {
        const char *r = getenv(env[i][0]), *s = getenv(env[i][1]);
        if (!r || !s || atoi(s) < 1) continue;
        const char *j1 = getenv(env[i][2]), *j2 = getenv(env[i][3]);
        snprintf(job, n, "%s.%s", j1 ? j1 : "", j2 ? j2 : "");
        *size = atoi(s);
        return atoi(r);
    }
    *size = 1;
    snprintf(job, n, "%ld", (long)getpid());
    return 0;
}

/* Write text to path (a marker between the sweep's processes). */
static void put_marker(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static bool marker_is(const char *path, const char *text) {
    char *t = mmc_read_all(path);
    bool same = t && strcmp(t, text) == 0;
    free(t);
    return same;
}

static pid_t launch(char *const argv[], const char *log) {
    fflush(stdout); /* or the child's freopen writes our buffered lines again */
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        /* A run is a process of its own, not one of the launcher's ranks
         * (an mmc build --mpi program would otherwise join the sweep's job). */
        for (int again = 1; again;) {
            again = 0;
            for (char **e = environ; *e; e++)
                if (strncmp(*e, "OMPI_", 5) == 0 || strncmp(*e, "PMIX_", 5) == 0 || strncmp(*e, "PMI_", 4) == 0) {
                    char name[256];
                    snprintf(name, sizeof name, "%.*s", (int)strcspn(*e, "="), *e);
                    unsetenv(name);
                    again = 1;
                    break;
                }
        }
        FILE *l = freopen(log, "w", stderr);
        (void)l;
        if (!freopen("/dev/null", "w", stdout)) _exit(127);
        execv(argv[0], argv);
        fprintf(stderr, "mmc sweep: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

/* ---- the report: DIR/report.html ------------------------------------------------ */
/* Every finished run's own report (`PROG report RUNDIR`), then one page for
 * the sweep: its settings, the three panels inline, and a table of the runs
 * that links to theirs. Self-contained apart from those links, so the
 * directory can be archived or served as it is. Returns the number of runs
 * whose report could not be drawn (their logs say why). */
static int run_reports(const char *program, const char *runs, const Row *rows, int n, int *has) {
    int failed = 0;
    for (int i = 0; i < n; i++) {
        has[i] = 0;
        if (!rows[i].ok) continue;
        char dir[4400], html[4500], log[4500];
        run_dir(dir, sizeof dir, runs, &rows[i]);
        snprintf(html, sizeof html, "%s/report.html", dir);
        snprintf(log, sizeof log, "%s.report.log", dir);
        char *av[] = {(char *)program, "report", dir, "-o", html, NULL};
        pid_t pid = launch(av, log);
        int st = 0;
        if (pid > 0) waitpid(pid, &st, 0);
        if (pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0) {
            has[i] = 1;
            unlink(log);
        } else {
            fprintf(stderr, "mmc sweep: no report for %s (see %s)\n", dir, log);
            failed++;
        }
    }
    return failed;
}

static int write_report(const char *out, const char *file, const char *label, const Row *rows, int n, const int *has,
                        char **train_args, int ntrain) {
    char path[4200], tmp[4300];
    snprintf(path, sizeof path, "%s/report.html", out);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "mmc sweep: cannot write %s: %s\n", tmp, strerror(errno));
        return 1;
    }
    int ok = 0, best = -1;
    for (int i = 0; i < n; i++)
        if (rows[i].ok) {
            ok++;
            if (best < 0 || rows[i].val_acc > rows[best].val_acc) best = i;
        }
    fputs("<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>sweep ", f);
    xml_text(f, label);
    fputs("</title>\n<style>body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse;font-size:13px}"
          "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}td.l{text-align:left}"
          "tr.best td{font-weight:bold}tr.failed td{color:#b00}</style></head><body>\n<h1>sweep ",
          f);
    xml_text(f, label);
    fputs("</h1>\n<p>Model <code>", f);
    xml_text(f, file);
    fprintf(f, "</code>: %d runs, %d finished", n, ok);
    for (int j = 0; j < naxes; j++) {
        fprintf(f, "%s%d %ss", j ? " &times; " : "; ", axes[j].n, axes[j].f->noun);
        if (axes[j].f->sweep == RT_SWEEP_LOG) fprintf(f, " log-uniform in [%g, %g]", axes[j].lo, axes[j].hi);
    }
    fputs(".", f);
    if (ntrain) {
        fputs(" Every run: <code>train", f);
        for (int i = 0; i < ntrain; i++) {
            fputc(' ', f);
            xml_text(f, train_args[i]);
        }
        fputs("</code>.", f);
    }
    fputs("</p>\n<h2>The greediness of the runs (ALGORITHMS &sect;8)</h2>\n", f);
    plot_svg(f, rows, n);
    fputs("<h2>Runs</h2>\n<p>In bold, the run with the best validation accuracy; each run's name links to its own report.</p>\n"
          "<table>\n<tr><th>run</th>",
          f);
    for (int j = 0; j < naxes; j++) fprintf(f, "<th>%s</th>", axes[j].f->name);
    fputs("<th>test acc</th><th>val acc</th><th>branch 0 test</th><th>branch 1 test</th><th>u(m1|m0)</th><th>u(m0|m1)</th>"
          "<th>d_util</th><th>d_speed</th></tr>\n",
          f);
    for (int i = 0; i < n; i++) {
        const Row *r = &rows[i];
        char dir[4400], t[64];
        run_dir(dir, sizeof dir, "runs", r);
        fprintf(f, "<tr%s><td class='l'>", i == best ? " class='best'" : r->ok ? "" : " class='failed'");
        if (has[i]) {
            fputs("<a href='", f);
            xml_text(f, dir);
            fputs("/report.html'>", f);
        }
        xml_text(f, dir + 5);
        fputs(has[i] ? "</a>" : "", f);
        if (!r->ok) fputs(" (failed: see its .log)", f);
        fputs("</td>", f);
        for (int j = 0; j < naxes; j++) fprintf(f, "<td>%s</td>", axis_text(&axes[j], r->axis[j], "%.4g", t, sizeof t));
        const double v[] = {r->test_acc, r->val_acc, r->acc0, r->acc1, r->u0, r->u1, r->d_util, r->d_speed};
        for (int k = 0; k < 8; k++) {
            if (r->ok && isfinite(v[k])) fprintf(f, "<td>%.4f</td>", v[k]);
            else fputs("<td></td>", f);
        }
        fputs("</tr>\n", f);
    }
    fputs("</table>\n</body></html>\n", f);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "mmc sweep: cannot write %s: %s\n", path, strerror(errno));
        return 1;
    }
    printf("%s\n", path);
    return 0;
}

int mmc_sweep(int argc, char **argv) {
    const char *file = NULL, *out = NULL, *program = NULL, *label = NULL, *plot_out = NULL;
    find_axes();
    int jobs = (int)sysconf(_SC_NPROCESSORS_ONLN), threads = 1, plot_mode = 0, want_mpi = 0;
    unsigned long long sample_seed = 1;
    int extra = argc;
    const char *csvs[64];
    int ncsv = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
#define VAL() (i + 1 < argc ? argv[++i] : (usage_error("option '%s' needs a value", a), ""))
        if (strcmp(a, "--") == 0) {
            extra = i + 1;
            break;
        }
        /* An axis's options: --lr-min, --lr-max, --lrs; --seeds. */
        int ax = -1;
        char which = 0;
        for (int j = 0; j < naxes; j++) {
            const char *o = axes[j].opt;
            size_t n = strlen(o);
            if (strncmp(a, "--", 2) != 0 || strncmp(a + 2, o, n) != 0) continue;
            const char *rest = a + 2 + n;
            if (strcmp(rest, "s") == 0) ax = j, which = 'n';
            else if (axes[j].f->sweep == RT_SWEEP_LOG && strcmp(rest, "-min") == 0) ax = j, which = 'l';
            else if (axes[j].f->sweep == RT_SWEEP_LOG && strcmp(rest, "-max") == 0) ax = j, which = 'h';
        }
        if (ax >= 0) {
            if (which == 'n') axes[ax].n = (int)num(a, VAL(), 1, 10000);
            else if (which == 'l') axes[ax].lo = axis_num(a, VAL(), axes[ax].f);
            else axes[ax].hi = axis_num(a, VAL(), axes[ax].f);
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            print_usage();
            return 0;
        } else if (strcmp(a, "--out") == 0) out = VAL();
        else if (strcmp(a, "-o") == 0) plot_out = VAL();
        else if (strcmp(a, "--plot") == 0) plot_mode = 1;
        else if (strcmp(a, "--jobs") == 0) jobs = (int)num(a, VAL(), 1, 1024);
        else if (strcmp(a, "--threads") == 0) threads = (int)num(a, VAL(), 1, 1024);
        else if (strcmp(a, "--seed") == 0) sample_seed = (unsigned long long)num(a, VAL(), 0, 1e15);
        else if (strcmp(a, "--label") == 0) label = VAL();
        else if (strcmp(a, "--program") == 0) program = VAL();
        else if (strcmp(a, "--mpi") == 0) want_mpi = 1;
        else if (a[0] == '-') usage_error("unknown option '%s'", a);
        else if (plot_mode) {
            if (ncsv == 64) usage_error("too many CSV files (the limit is 64)%s", "");
            csvs[ncsv++] = a;
        } else if (!file) file = a;
        else usage_error("unexpected argument '%s'", a);
#undef VAL
    }
    if (plot_mode) {
        if (!ncsv || !plot_out) usage_error("--plot needs CSV files and -o FIGURE.svg%s", "");
        Row *rows = NULL;
        int n = 0, cap = 0;
        for (int i = 0; i < ncsv; i++)
            if (read_csv(csvs[i], &rows, &n, &cap) != 0) return 1;
        int rc = plot(plot_out, rows, n);
        free(rows);
        return rc;
    }
    if (!file) usage_error("needs a .mmnet file%s", "");
    if (!out) usage_error("needs --out DIR%s", "");
    for (int j = 0; j < naxes; j++)
        if (axes[j].lo > axes[j].hi) {
            fprintf(stderr, "mmc sweep: %s-min is above %s-max\nrun 'mmc sweep --help' for the options\n", axes[j].f->flag, axes[j].f->flag);
            exit(2);
        }
    int nproc;
    char job[256], ready[4300], failed[4300];
    const int rank = sweep_rank(&nproc, job, sizeof job);
    if (want_mpi && nproc < 2) {
        fprintf(stderr, "mmc sweep: --mpi, but this process was not started by mpirun or srun with several processes "
                        "(no OMPI_COMM_WORLD_SIZE, PMI_SIZE or SLURM_NTASKS above 1): run mpirun -np N mmc sweep ... --mpi\n");
        return 2;
    }
    snprintf(ready, sizeof ready, "%s/prog.ready", out);
    snprintf(failed, sizeof failed, "%s/prog.failed", out);
    if (rank > 0) {
        /* Process 0 prepares DIR (markers of earlier sweeps cleared, the
         * program built); wait for its word for this job. */
        for (;;) {
            if (marker_is(failed, job)) return 1;
            if (marker_is(ready, job)) break;
            usleep(200000);
        }
        if (!program) {
            static char p[4200];
            snprintf(p, sizeof p, "%s/prog", out);
            program = p;
        }
        goto prepared;
    }
    if (mkdir(out, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "mmc sweep: cannot create %s: %s\n", out, strerror(errno));
        return 1;
    }
    char prog[4200], runs[4200];
    snprintf(runs, sizeof runs, "%s/runs", out);
    mkdir(runs, 0777);
    if (!program) {
        /* Build the program with this mmc. */
        snprintf(prog, sizeof prog, "%s/prog", out);
        char self[4096];
        ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
        if (len <= 0) {
            fprintf(stderr, "mmc sweep: cannot find mmc itself\n");
            return 1;
        }
        self[len] = 0;
        char *bargv[] = {self, "build", (char *)file, "-o", prog, NULL};
        pid_t pid = fork();
        if (pid == 0) {
            execv(self, bargv);
            _exit(127);
        }
        int st;
        waitpid(pid, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            if (nproc > 1) put_marker(failed, job);
            return 1;
        }
        program = prog;
    }
    if (nproc > 1) {
        /* The .done markers of an earlier sweep's runs go before any run starts. */
        char cmd[4400];
        snprintf(cmd, sizeof cmd, "%s/runs", out);
        DIR *d = opendir(cmd);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            size_t l = strlen(e->d_name);
            if (l > 5 && strcmp(e->d_name + l - 5, ".done") == 0) {
                snprintf(cmd, sizeof cmd, "%s/runs/%s", out, e->d_name);
                unlink(cmd);
            }
        }
        if (d) closedir(d);
        put_marker(ready, job);
    }
prepared:;
    snprintf(runs, sizeof runs, "%s/runs", out);
    if (!label) {
        const char *b = strrchr(file, '/');
        b = b ? b + 1 : file;
        static char lb[64];
        snprintf(lb, sizeof lb, "%.*s", (int)(strcspn(b, ".")), b);
        label = lb;
    }
    /* Each axis's values: log axes sampled log-uniformly from the sweep's
     * own seeded stream (axis after axis), count axes 1 .. n. */
    int total = 1;
    double *values[MAXAXES];
    unsigned long long st = sample_seed * 0x9e3779b97f4a7c15ULL + 1;
    for (int j = 0; j < naxes; j++) {
        const Axis *x = &axes[j];
        total *= x->n;
        values[j] = calloc((size_t)x->n, sizeof(double));
        for (int i = 0; i < x->n; i++) {
            if (x->f->sweep == RT_SWEEP_COUNT) {
                values[j][i] = i + 1;
                continue;
            }
            st ^= st << 13;
            st ^= st >> 7;
            st ^= st << 17;
            double u = (double)(st >> 11) * 0x1.0p-53;
            values[j][i] = exp(log(x->lo) + u * (log(x->hi) - log(x->lo)));
        }
    }
    Row *rows = calloc((size_t)total, sizeof(Row));
    for (int r = 0; r < total; r++) {
        snprintf(rows[r].label, sizeof rows[r].label, "%s", label);
        for (int j = naxes - 1, q = r; j >= 0; q /= axes[j].n, j--) rows[r].axis[j] = values[j][q % axes[j].n];
    }
    for (int j = 0; j < naxes; j++) free(values[j]);
    pid_t *pids = calloc((size_t)total, sizeof(pid_t));
    int next = 0, running = 0, done = 0;
    char what[512] = "";
    for (int j = 0; j < naxes; j++) {
        snprintf(what + strlen(what), sizeof what - strlen(what), "%s%d %ss", j ? " x " : "", axes[j].n, axes[j].f->noun);
        if (axes[j].f->sweep == RT_SWEEP_LOG)
            snprintf(what + strlen(what), sizeof what - strlen(what), " in [%g, %g]", axes[j].lo, axes[j].hi);
    }
    if (nproc > 1)
        fprintf(stderr, "mmc sweep: process %d of %d: %d runs (%s) over %d processes, %d at a time in each, %d thread%s each\n", rank,
                nproc, total, what, nproc, jobs, threads, threads == 1 ? "" : "s");
    else
        fprintf(stderr, "mmc sweep: %d runs (%s), %d at a time, %d thread%s each\n", total, what, jobs, threads, threads == 1 ? "" : "s");
    while (done < total) {
        while (running < jobs && next < total) {
            Row *r = &rows[next];
            if (next % nproc != rank) { /* another process's run */
                next++;
                done++;
                continue;
            }
            char dir[4400], val[MAXAXES][32], thr_s[32], log[4500];
            run_dir(dir, sizeof dir, runs, r);
            read_summary(dir, r);
            if (r->ok) { /* finished in an earlier, interrupted sweep */
                next++;
                done++;
                continue;
            }
            snprintf(thr_s, sizeof thr_s, "%d", threads);
            snprintf(log, sizeof log, "%s.log", dir);
            char **av = calloc((size_t)(argc - extra + 16), sizeof(char *));
            int k = 0;
            av[k++] = (char *)program;
            av[k++] = "train";
            for (int j = 0; j < naxes; j++) {
                av[k++] = (char *)axes[j].f->flag;
                av[k++] = (char *)axis_text(&axes[j], r->axis[j], "%.9g", val[j], sizeof val[j]);
            }
            av[k++] = "--threads";
            av[k++] = thr_s;
            av[k++] = "--out";
            av[k++] = dir;
            av[k++] = "--quiet";
            for (int i = extra; i < argc; i++) av[k++] = argv[i];
            av[k] = NULL;
            pids[next] = launch(av, log);
            free(av);
            if (pids[next] < 0) {
                fprintf(stderr, "mmc sweep: cannot start a run: %s\n", strerror(errno));
                return 1;
            }
            running++;
            next++;
        }
        int status;
        pid_t pid = wait(&status);
        if (pid < 0) break;
        for (int i = 0; i < total; i++)
            if (pids[i] == pid) {
                char dir[4400], t[64];
                run_dir(dir, sizeof dir, runs, &rows[i]);
                read_summary(dir, &rows[i]);
                if (nproc > 1) {
                    char mark[4500];
                    snprintf(mark, sizeof mark, "%s.done", dir);
                    put_marker(mark, rows[i].ok ? "ok\n" : "failed\n");
                }
                running--;
                done++;
                fprintf(stderr, "mmc sweep: [%d/%d] ", done, total);
                for (int j = 0; j < naxes; j++)
                    fprintf(stderr, "%s%s %s", j ? " " : "", axes[j].f->name, axis_text(&axes[j], rows[i].axis[j], "%.4g", t, sizeof t));
                fprintf(stderr, ": %s", rows[i].ok ? "" : "failed (see the .log next to its run directory)");
                if (rows[i].ok) fprintf(stderr, "test %.4f  d_util %.3f  d_speed %.3f", rows[i].test_acc, rows[i].d_util, rows[i].d_speed);
                fputc('\n', stderr);
            }
    }
    if (nproc > 1) {
        if (rank > 0) {
            free(rows);
            free(pids);
            return 0;
        }
        /* Process 0 gathers: every run finished now, or marked done by its process. */
        for (int i = 0; i < total; i++) {
            char dir[4400], mark[4500];
            run_dir(dir, sizeof dir, runs, &rows[i]);
            snprintf(mark, sizeof mark, "%s.done", dir);
            for (;;) {
                read_summary(dir, &rows[i]);
                if (rows[i].ok || access(mark, F_OK) == 0) break;
                usleep(200000);
            }
        }
    }
    char csv[4200], svg[4200];
    snprintf(csv, sizeof csv, "%s/sweep.csv", out);
    snprintf(svg, sizeof svg, "%s/sweep.svg", out);
    write_csv(csv, rows, total);
    printf("%s\n", csv);
    int rc = plot(svg, rows, total);
    int *has = calloc((size_t)total, sizeof(int));
    run_reports(program, runs, rows, total, has);
    rc |= write_report(out, file, label, rows, total, has, argv + extra, argc - extra);
    int nfailed = 0;
    for (int i = 0; i < total; i++) nfailed += !rows[i].ok;
    if (nfailed) {
        fprintf(stderr, "mmc sweep: %d of %d runs failed (their .log files in %s say why)\n", nfailed, total, runs);
        rc = 1;
    }
    free(has);
    free(rows);
    free(pids);
    return rc;
}
