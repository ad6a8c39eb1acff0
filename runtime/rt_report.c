/* rt_report.c — `prog report RUNDIR`: one self-contained HTML page that
 * shows a run, drawn from its files (metrics.jsonl, steps.csv, and
 * summary.json once the run has finished) as inline SVG, so that it opens
 * offline in any browser and can be mailed or archived with the run:
 *
 *   - loss per epoch (training and validation);
 *   - accuracy per epoch: the prediction's (training, validation, test) and
 *     each branch's on validation and test;
 *   - the conditional learning speed d_speed per step (ALGORITHMS §4), with
 *     each re-balancing step marked under the curve in its branch's colour;
 *   - the learning rate (per step when steps.csv has it, else per epoch);
 *   - throughput per epoch (samples/s in the steps, and by the clock);
 *   - the conditional utilization rates and every setting of the run.
 *
 * A malformed line names its file and line; a run that is still going (no
 * summary.json yet) is drawn as far as it has got. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "rt_train.h"

#define MAXS 16 /* series in one chart */

typedef struct {
    double *v;
    int n, cap;
} Vec;

static void push(Vec *a, double x) {
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 64;
        a->v = realloc(a->v, sizeof(double) * (size_t)a->cap);
        if (!a->v) rt_die("out of memory drawing the report");
    }
    a->v[a->n++] = x;
}

typedef struct {
    const char *name;
    const Vec *x, *y;
    const char *color;
    bool dashed;
} Series;

static const char *const palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"};

static void html_text(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else if (*s == '"') fputs("&quot;", f);
        else fputc(*s, f);
    }
}

/* Tick spacing: 1, 2 or 5 times a power of ten, about n ticks over the span. */
static double tick_step(double span, int n) {
    if (!(span > 0)) return 1;
    double raw = span / n, p = pow(10, floor(log10(raw))), r = raw / p;
    return (r < 1.5 ? 1 : r < 3.5 ? 2 : r < 7.5 ? 5 : 10) * p;
}

enum { W = 760, H = 300, ML = 64, MR = 150, MT = 16, MB = 40 };

/* A line chart with axes, ticks and a legend. marks (may be NULL): x
 * positions drawn as short strokes under the plot, mark_kind[i] indexing
 * mark_names / the palette (from 1; 0 is not drawn). */
static void chart(FILE *f, const char *id, const char *title, const char *xlabel, const Series *s, int ns, const Vec *marks,
                  const Vec *mark_kind, const char *const *mark_names, int nkinds) {
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int k = 0; k < ns; k++)
        for (int i = 0; i < s[k].y->n && i < s[k].x->n; i++) {
            double x = s[k].x->v[i], y = s[k].y->v[i];
            if (!isfinite(x) || !isfinite(y)) continue;
            x0 = fmin(x0, x), x1 = fmax(x1, x), y0 = fmin(y0, y), y1 = fmax(y1, y);
        }
    fprintf(f, "<section id=\"%s\"><h2>", id);
    html_text(f, title);
    fputs("</h2>\n", f);
    if (!(x0 <= x1)) {
        fputs("<p class=\"none\">nothing recorded yet</p></section>\n", f);
        return;
    }
    if (x0 == x1) x0 -= 1, x1 += 1;
    if (y0 == y1) y0 -= fabs(y0) > 0 ? 0.1 * fabs(y0) : 1, y1 += fabs(y1) > 0 ? 0.1 * fabs(y1) : 1;
    double pad = 0.05 * (y1 - y0);
    y0 -= pad, y1 += pad;
    const double pw = W - ML - MR, ph = H - MT - MB;
#define PX(x) (ML + ((x) - x0) / (x1 - x0) * pw)
#define PY(y) (MT + (1 - ((y) - y0) / (y1 - y0)) * ph)
    fprintf(f, "<svg id=\"chart-%s\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">\n", id, W, H, W, H);
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%g\" height=\"%g\" fill=\"#fff\" stroke=\"#999\"/>\n", ML, MT, pw, ph);
    double st = tick_step(y1 - y0, 5);
    for (double t = ceil(y0 / st) * st; t <= y1 + 1e-12; t += st) {
        fprintf(f, "<line x1=\"%d\" x2=\"%g\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>", ML, ML + pw, PY(t), PY(t));
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" class=\"tick\">%g</text>\n", ML - 4, PY(t) + 4, fabs(t) < st * 1e-6 ? 0 : t);
    }
    st = tick_step(x1 - x0, 8);
    if (st < 1 && x1 - x0 >= 1) st = 1;
    for (double t = ceil(x0 / st) * st; t <= x1 + 1e-12; t += st)
        fprintf(f, "<text x=\"%.1f\" y=\"%g\" text-anchor=\"middle\" class=\"tick\">%g</text>\n", PX(t), MT + ph + 16, t);
    fprintf(f, "<text x=\"%g\" y=\"%d\" text-anchor=\"middle\" class=\"axis\">", ML + pw / 2, H - 4);
    html_text(f, xlabel);
    fputs("</text>\n", f);
    if (marks)
        for (int i = 0; i < marks->n; i++) {
            int k = (int)mark_kind->v[i];
            if (k < 1 || k >= nkinds) continue;
            fprintf(f, "<line class=\"mark\" data-kind=\"%s\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%g\" y2=\"%g\" stroke=\"%s\" stroke-width=\"1.5\"/>\n",
                    mark_names[k], PX(marks->v[i]), PX(marks->v[i]), MT + ph - 10, MT + ph, palette[(k + 3) % 8]);
        }
    for (int k = 0; k < ns; k++) {
        fprintf(f, "<polyline class=\"series\" data-name=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.6\"%s points=\"", s[k].name,
                s[k].color, s[k].dashed ? " stroke-dasharray=\"5,3\"" : "");
        int n = 0;
        for (int i = 0; i < s[k].y->n && i < s[k].x->n; i++)
            if (isfinite(s[k].x->v[i]) && isfinite(s[k].y->v[i]))
                fprintf(f, "%s%.1f,%.1f", n++ ? " " : "", PX(s[k].x->v[i]), PY(s[k].y->v[i]));
        fputs("\"/>\n", f);
        double ly = MT + 12 + 18 * k;
        fprintf(f, "<line x1=\"%g\" x2=\"%g\" y1=\"%g\" y2=\"%g\" stroke=\"%s\" stroke-width=\"2\"%s/>", ML + pw + 10, ML + pw + 30, ly - 4, ly - 4,
                s[k].color, s[k].dashed ? " stroke-dasharray=\"5,3\"" : "");
        fprintf(f, "<text x=\"%g\" y=\"%g\" class=\"legend\">", ML + pw + 34, ly);
        html_text(f, s[k].name);
        fputs("</text>\n", f);
    }
    if (marks)
        for (int k = 1; k < nkinds; k++) {
            double ly = MT + 12 + 18 * (ns + k - 1);
            fprintf(f, "<line x1=\"%g\" x2=\"%g\" y1=\"%g\" y2=\"%g\" stroke=\"%s\" stroke-width=\"2\"/>", ML + pw + 19, ML + pw + 19, ly - 10, ly,
                    palette[(k + 3) % 8]);
            fprintf(f, "<text x=\"%g\" y=\"%g\" class=\"legend\">", ML + pw + 34, ly);
            html_text(f, mark_names[k]);
            fputs(" step</text>\n", f);
        }
    fputs("</svg></section>\n", f);
#undef PX
#undef PY
}

/* ---- reading the run -------------------------------------------------------- */
typedef struct {
    Vec epoch, train_loss, val_loss, train_acc, val_acc, test_acc, lr, sps, wall_sps, d_speed;
    Vec val_br[RT_MAXB], test_br[RT_MAXB];
    int nbr;
    /* steps.csv */
    Vec step, kind, step_dspeed, step_lr, step_loss;
    char kinds[16][32];
    int nkinds;
    cJSON *summary;
} Run;

static double num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void read_metrics(Run *r, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) rt_die("cannot read %s: %s (is this a run directory? train writes it after each epoch)", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    int ln = 0;
    while (getline(&line, &cap, f) > 0) {
        ln++;
        if (strspn(line, " \t\r\n") == strlen(line)) continue;
        cJSON *o = cJSON_Parse(line);
        if (!o || !cJSON_IsObject(o) || !isfinite(num(o, "epoch"))) rt_die("%s:%d: not a metrics line (a JSON object with an epoch)", path, ln);
        push(&r->epoch, num(o, "epoch"));
        push(&r->train_loss, num(o, "train_loss"));
        push(&r->val_loss, num(o, "val_loss"));
        push(&r->train_acc, num(o, "train_acc"));
        push(&r->val_acc, num(o, "val_acc"));
        push(&r->test_acc, num(o, "test_acc"));
        push(&r->lr, num(o, "lr"));
        push(&r->sps, num(o, "samples_per_s"));
        push(&r->wall_sps, num(o, "wall_samples_per_s"));
        push(&r->d_speed, num(o, "d_speed"));
        const cJSON *vb = cJSON_GetObjectItemCaseSensitive(o, "val_branch_acc"), *tb = cJSON_GetObjectItemCaseSensitive(o, "test_branch_acc");
        int nb = cJSON_GetArraySize(tb);
        if (nb > RT_MAXB) nb = RT_MAXB;
        if (nb > r->nbr) r->nbr = nb;
        for (int k = 0; k < r->nbr; k++) {
            const cJSON *a = cJSON_GetArrayItem(vb, k), *b = cJSON_GetArrayItem(tb, k);
            push(&r->val_br[k], cJSON_IsNumber(a) ? a->valuedouble : NAN);
            push(&r->test_br[k], cJSON_IsNumber(b) ? b->valuedouble : NAN);
        }
        cJSON_Delete(o);
    }
    free(line);
    fclose(f);
}

static int kind_index(Run *r, const char *name) {
    for (int k = 0; k < r->nkinds; k++)
        if (strcmp(r->kinds[k], name) == 0) return k;
    if (r->nkinds == 16) return 15;
    snprintf(r->kinds[r->nkinds], sizeof r->kinds[0], "%s", name);
    return r->nkinds++;
}

static void read_steps(Run *r, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return; /* drawn without the per-step charts */
    char *line = NULL;
    size_t cap = 0;
    int ln = 0, col_step = -1, col_kind = -1, col_ds = -1, col_lr = -1, col_loss = -1, ncol = 0;
    kind_index(r, "regular");
    while (getline(&line, &cap, f) > 0) {
        ln++;
        line[strcspn(line, "\r\n")] = 0;
        char *cols[64];
        int n = 0;
        for (char *p = line, *c; n < 64 && (c = strsep(&p, ",")) != NULL;) cols[n++] = c;
        if (ln == 1) {
            for (int i = 0; i < n; i++) {
                if (strcmp(cols[i], "step") == 0) col_step = i;
                else if (strcmp(cols[i], "kind") == 0) col_kind = i;
                else if (strcmp(cols[i], "d_speed") == 0) col_ds = i;
                else if (strcmp(cols[i], "lr") == 0) col_lr = i;
                else if (strcmp(cols[i], "loss") == 0) col_loss = i;
            }
            if (col_step < 0 || col_kind < 0 || col_ds < 0) rt_die("%s:1: the header lacks step, kind or d_speed", path);
            ncol = n;
            continue;
        }
        if (!line[0]) continue;
        if (n != ncol) rt_die("%s:%d: %d fields where the header has %d", path, ln, n, ncol);
        char *end;
        double st = strtod(cols[col_step], &end);
        if (end == cols[col_step] || *end) rt_die("%s:%d: step '%s' is not a number", path, ln, cols[col_step]);
        push(&r->step, st);
        push(&r->kind, kind_index(r, cols[col_kind]));
        push(&r->step_dspeed, strtod(cols[col_ds], NULL));
        push(&r->step_loss, col_loss >= 0 ? strtod(cols[col_loss], NULL) : NAN);
        if (col_lr >= 0) push(&r->step_lr, strtod(cols[col_lr], NULL));
    }
    free(line);
    fclose(f);
}

static cJSON *read_json(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0, got;
    do {
        if (n + 4096 > cap) {
            cap = cap ? 2 * cap : 65536;
            buf = realloc(buf, cap + 1);
            if (!buf) rt_die("out of memory reading %s", path);
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
    } while (got > 0);
    fclose(f);
    buf[n] = 0;
    cJSON *o = cJSON_Parse(buf);
    free(buf);
    if (!o || !cJSON_IsObject(o)) rt_die("%s: not a JSON object (a summary written by train)", path);
    return o;
}

static const char *branch_name(const Run *r, int k, char *buf, size_t n) {
    const cJSON *b = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r->summary, "branches"), k);
    if (cJSON_IsString(b)) snprintf(buf, n, "%s", b->valuestring);
    else snprintf(buf, n, "branch %d", k);
    return buf;
}

static void settings_table(FILE *f, const cJSON *o) {
    fputs("<section id=\"settings\"><h2>Run</h2><table>\n", f);
    for (const cJSON *it = o ? o->child : NULL; it; it = it->next) {
        if (cJSON_IsObject(it)) continue;
        char *txt = cJSON_PrintUnformatted(it);
        fputs("<tr><th>", f);
        html_text(f, it->string ? it->string : "");
        fputs("</th><td>", f);
        html_text(f, cJSON_IsString(it) ? it->valuestring : txt ? txt : "");
        fputs("</td></tr>\n", f);
        free(txt);
    }
    fputs("</table></section>\n", f);
}

int rt_report(const char *run_dir, const char *out_path) {
    char path[4096], outp[4096];
    Run r = {0};
    snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir);
    read_metrics(&r, path);
    snprintf(path, sizeof path, "%s/steps.csv", run_dir);
    read_steps(&r, path);
    snprintf(path, sizeof path, "%s/summary.json", run_dir);
    r.summary = read_json(path);
    if (!out_path) snprintf(outp, sizeof outp, "%s/report.html", run_dir), out_path = outp;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", out_path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) rt_die("cannot write %s: %s", tmp, strerror(errno));

    const cJSON *model = cJSON_GetObjectItemCaseSensitive(r.summary, "model"), *pol = cJSON_GetObjectItemCaseSensitive(r.summary, "policy");
    fputs("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>", f);
    html_text(f, cJSON_IsString(model) ? model->valuestring : "mmnet run");
    fputs(" — ", f);
    html_text(f, run_dir);
    fputs("</title>\n<style>body{font:14px/1.4 sans-serif;margin:24px;color:#222;max-width:960px}"
          "h1{font-size:20px}h2{font-size:16px;margin:20px 0 4px}table{border-collapse:collapse}"
          "th,td{border:1px solid #ccc;padding:2px 8px;text-align:left;font-weight:normal}th{background:#f4f4f4}"
          "text{font:11px sans-serif;fill:#333}text.axis{font-size:12px}.none{color:#888}</style></head><body>\n",
          f);
    fputs("<h1>", f);
    html_text(f, cJSON_IsString(model) ? model->valuestring : "run");
    fputs(" <small>(", f);
    html_text(f, run_dir);
    fputs(")</small></h1>\n<p>", f);
    if (r.summary) {
        fprintf(f, "Test accuracy <b>%.4f</b> (the epoch of the best validation accuracy, %g of %g), policy ", num(r.summary, "test_acc"),
                num(r.summary, "best_epoch"), num(r.summary, "epochs"));
        html_text(f, cJSON_IsString(pol) ? pol->valuestring : "?");
        if (isfinite(num(r.summary, "d_util"))) fprintf(f, ", d_util %.4f", num(r.summary, "d_util"));
        fputs(".", f);
    } else {
        fprintf(f, "The run has not finished (no summary.json): %d epochs so far.", r.epoch.n);
    }
    fputs("</p>\n", f);

    char bn[64];
    Series s[MAXS];
    int ns = 0;
    s[ns++] = (Series){"training", &r.epoch, &r.train_loss, palette[0], false};
    s[ns++] = (Series){"validation", &r.epoch, &r.val_loss, palette[1], false};
    chart(f, "loss", "Loss per epoch", "epoch", s, ns, NULL, NULL, NULL, 0);

    char names[2 * RT_MAXB][80];
    ns = 0;
    s[ns++] = (Series){"training", &r.epoch, &r.train_acc, palette[0], false};
    s[ns++] = (Series){"validation", &r.epoch, &r.val_acc, palette[1], false};
    s[ns++] = (Series){"test", &r.epoch, &r.test_acc, palette[2], false};
    for (int k = 0; k < r.nbr && ns + 2 <= MAXS; k++) {
        snprintf(names[2 * k], sizeof names[0], "%s, validation", branch_name(&r, k, bn, sizeof bn));
        snprintf(names[2 * k + 1], sizeof names[0], "%s, test", bn);
        s[ns++] = (Series){names[2 * k], &r.epoch, &r.val_br[k], palette[(3 + k) % 8], true};
        s[ns++] = (Series){names[2 * k + 1], &r.epoch, &r.test_br[k], palette[(3 + k) % 8], false};
    }
    chart(f, "accuracy", "Accuracy per epoch: the prediction and each branch", "epoch", s, ns, NULL, NULL, NULL, 0);

    const char *kn[16];
    for (int k = 0; k < r.nkinds; k++) kn[k] = r.kinds[k];
    if (r.step.n) {
        ns = 0;
        s[ns++] = (Series){"d_speed", &r.step, &r.step_dspeed, palette[0], false};
        chart(f, "d_speed", "Conditional learning speed d_speed per step (re-balancing steps marked below)", "step", s, ns, &r.step, &r.kind, kn,
              r.nkinds);
    } else {
        ns = 0;
        s[ns++] = (Series){"d_speed", &r.epoch, &r.d_speed, palette[0], false};
        chart(f, "d_speed", "Conditional learning speed d_speed at the end of each epoch", "epoch", s, ns, NULL, NULL, NULL, 0);
    }

    ns = 0;
    if (r.step_lr.n) s[ns++] = (Series){"learning rate", &r.step, &r.step_lr, palette[0], false};
    else s[ns++] = (Series){"learning rate", &r.epoch, &r.lr, palette[0], false};
    chart(f, "lr", "Learning rate", r.step_lr.n ? "step" : "epoch", s, ns, NULL, NULL, NULL, 0);

    ns = 0;
    s[ns++] = (Series){"in the steps", &r.epoch, &r.sps, palette[0], false};
    s[ns++] = (Series){"by the clock", &r.epoch, &r.wall_sps, palette[1], true};
    chart(f, "throughput", "Training samples/s per epoch", "epoch", s, ns, NULL, NULL, NULL, 0);

    fputs("<section id=\"util\"><h2>Conditional utilization rates</h2>\n", f);
    const cJSON *util = cJSON_GetObjectItemCaseSensitive(r.summary, "util");
    if (cJSON_IsObject(util) && util->child) {
        fputs("<table>\n", f);
        for (const cJSON *it = util->child; it; it = it->next) {
            fputs("<tr><th>", f);
            html_text(f, it->string ? it->string : "");
            fprintf(f, "</th><td>%.4f</td></tr>\n", cJSON_IsNumber(it) ? it->valuedouble : NAN);
        }
        if (isfinite(num(r.summary, "d_util"))) fprintf(f, "<tr><th>d_util</th><td>%.4f</td></tr>\n", num(r.summary, "d_util"));
        fputs("</table>\n", f);
    } else {
        fputs("<p class=\"none\">not computed (the run has not finished, or the model has no MMTM)</p>\n", f);
    }
    fputs("</section>\n", f);
    settings_table(f, r.summary);
    fputs("<p class=\"none\">written by ", f);
    html_text(f, rt_prog ? rt_prog : "mmnet");
    fputs(" report</p>\n</body></html>\n", f);
    if (fflush(f) != 0 || ferror(f) || fclose(f) != 0) {
        int e = errno;
        remove(tmp);
        rt_die("cannot write %s: %s", out_path, strerror(e));
    }
    if (rename(tmp, out_path) != 0) {
        int e = errno;
        remove(tmp);
        rt_die("cannot write %s: %s", out_path, strerror(e));
    }
    cJSON_Delete(r.summary);
    Vec *all[] = {&r.epoch, &r.train_loss, &r.val_loss, &r.train_acc, &r.val_acc, &r.test_acc, &r.lr, &r.sps, &r.wall_sps,
                  &r.d_speed, &r.step, &r.kind, &r.step_dspeed, &r.step_lr, &r.step_loss};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]->v);
    for (int k = 0; k < RT_MAXB; k++) free(r.val_br[k].v), free(r.test_br[k].v);
    fprintf(stderr, "%s: wrote %s\n", rt_prog, out_path);
    return 0;
}
