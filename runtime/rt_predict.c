/* rt_predict.c — ./prog predict: a checkpoint's predictions, example by
 * example, as CSV or JSON Lines: the fused prediction (the model's
 * `predict`: its class and the softmax of its scores) and each branch's
 * class and probabilities (the softmax of its head's logits).
 *
 * The rows come from rt_evaluate's own pass over the split (the same
 * batches, the same eval graph, the same argmax), so the accuracy of the
 * rows is, to the example, the accuracy ./prog eval prints. A file is
 * written under a temporary name and renamed when complete: -o never
 * leaves half a file. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rt_trainer.h"

typedef struct {
    const rt_model *m;
    const rt_predict_opts *o;
    const rt_split *sp;
    FILE *f;
    double *p;        /* [classes] */
    long rows;
} Writer;

static const char *const split_name[3] = {[RT_SPLIT_TRAIN] = "train", [RT_SPLIT_VAL] = "val", [RT_SPLIT_TEST] = "test"};

/* The temporary file being written, removed if the program dies first. */
static char tmp_path[4200];
static void remove_tmp(void) {
    if (tmp_path[0]) unlink(tmp_path);
}

/* Softmax in double, from the maximum (no overflow); false when a score is
 * not finite. */
static bool softmax(const mm_real *z, int k, double *p) {
    double mx = z[0], sum = 0;
    for (int i = 0; i < k; i++) {
        if (!isfinite(z[i])) return false;
        if (z[i] > mx) mx = z[i];
    }
    for (int i = 0; i < k; i++) sum += p[i] = exp((double)z[i] - mx);
    for (int i = 0; i < k; i++) p[i] /= sum;
    return true;
}

/* A CSV field: quoted (RFC 4180) when it holds a comma, a quote or a line break. */
static void csv_field(FILE *f, const char *s) {
    if (!s[strcspn(s, ",\"\r\n")]) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

/* One head's class and probabilities (and logits): CSV columns or a JSON object's members. */
static void head(Writer *w, const mm_real *z, int pos, const char *what) {
    const int C = w->m->classes;
    if (!z) { /* a branch without a head of its own (its features feed a fuse head): empty fields, or null */
        if (w->o->format == RT_PREDICT_CSV)
            for (int c = 0; c < 1 + C * (w->o->logits ? 2 : 1); c++) fputc(',', w->f);
        else fputs(w->o->logits ? "\"pred\":null,\"probs\":null,\"logits\":null" : "\"pred\":null,\"probs\":null", w->f);
        return;
    }
    if (!softmax(z, C, w->p))
        rt_die("example %d of the %s split: %s's scores are not finite numbers (%g, ...)", pos, split_name[w->o->split], what,
               (double)z[0]);
    FILE *f = w->f;
    if (w->o->format == RT_PREDICT_CSV) {
        fprintf(f, ",%d", rt_argmax(z, C));
        for (int c = 0; c < C; c++) fprintf(f, ",%.6g", w->p[c]);
        if (w->o->logits)
            for (int c = 0; c < C; c++) fprintf(f, ",%.9g", (double)z[c]);
        return;
    }
    fprintf(f, "\"pred\":%d,\"probs\":[", rt_argmax(z, C));
    for (int c = 0; c < C; c++) fprintf(f, "%s%.6g", c ? "," : "", w->p[c]);
    fputc(']', f);
    if (w->o->logits) {
        fputs(",\"logits\":[", f);
        for (int c = 0; c < C; c++) fprintf(f, "%s%.9g", c ? "," : "", (double)z[c]);
        fputc(']', f);
    }
}

static void header(Writer *w) {
    const rt_model *m = w->m;
    if (w->o->format != RT_PREDICT_CSV) return;
    FILE *f = w->f;
    fputs("index,id,label,pred", f);
    for (int c = 0; c < m->classes; c++) fprintf(f, ",p%d", c);
    if (w->o->logits)
        for (int c = 0; c < m->classes; c++) fprintf(f, ",logit%d", c);
    for (int b = 0; b < m->nbranches; b++) {
        fprintf(f, ",%s_pred", m->branches[b]);
        for (int c = 0; c < m->classes; c++) fprintf(f, ",%s_p%d", m->branches[b], c);
        if (w->o->logits)
            for (int c = 0; c < m->classes; c++) fprintf(f, ",%s_logit%d", m->branches[b], c);
    }
    fputc('\n', f);
}

static void rows(void *user, const rt_batch *b, const rt_result *r, int first) {
    Writer *w = user;
    if (!r->pred) rt_die("internal: the eval graph of model '%s' gives no prediction", w->m->name);
    const rt_model *m = w->m;
    const size_t C = (size_t)m->classes;
    FILE *f = w->f;
    for (int k = 0; k < b->B; k++) {
        int pos = first + k, ex = w->sp->idx ? w->sp->idx[pos] : pos;
        char id[1024];
        if (w->sp->src->name) w->sp->src->name(w->sp->src, ex, id, sizeof id);
        else snprintf(id, sizeof id, "%d", ex);
        if (w->o->format == RT_PREDICT_CSV) {
            fprintf(f, "%d,", pos);
            csv_field(f, id);
            fprintf(f, ",%d", b->y[k]);
            head(w, r->pred + (size_t)k * C, pos, "the prediction");
            for (int br = 0; br < m->nbranches; br++) head(w, r->logits[br] ? r->logits[br] + (size_t)k * C : NULL, pos, m->branches[br]);
        } else {
            fprintf(f, "{\"index\":%d,\"id\":", pos);
            if (w->sp->src->name) json_string(f, id);
            else fputs(id, f);
            fprintf(f, ",\"label\":%d,", b->y[k]);
            head(w, r->pred + (size_t)k * C, pos, "the prediction");
            fputs(",\"branches\":{", f);
            for (int br = 0; br < m->nbranches; br++) {
                fputs(br ? "," : "", f);
                json_string(f, m->branches[br]);
                fputs(":{", f);
                head(w, r->logits[br] ? r->logits[br] + (size_t)k * C : NULL, pos, m->branches[br]);
                fputc('}', f);
            }
            fputs("}}", f);
        }
        fputc('\n', f);
        w->rows++;
    }
}

int rt_predict(const rt_model *m, const rt_predict_opts *o) {
    Trainer T;
    Writer w = {.m = m, .o = o, .f = stdout};
    /* Evaluation is sharded across ranks; the rows are one process's to write. */
    if (rt_nranks() > 1) rt_die("predict runs in one process: run it without mpirun (it has %d ranks)", rt_nranks());
    /* An output that cannot be written is told before the data is read. */
    if (o->out) {
        int n = snprintf(tmp_path, sizeof tmp_path, "%s.tmp.%ld", o->out, (long)getpid());
        if (n < 0 || (size_t)n >= sizeof tmp_path) rt_die("%s: the file name is too long", o->out);
        atexit(remove_tmp);
        w.f = fopen(tmp_path, "w");
        if (!w.f) {
            int e = errno;
            tmp_path[0] = '\0';
            rt_die("cannot write %s: %s", o->out, strerror(e));
        }
    }
    rt_checkpoint_open(&T, m, o->ckpt, o->data_dir, o->batch, o->workers);
    int v = rt_find_variant(m, RT_VAR_EVAL, -1);
    if (v < 0) rt_die("internal: model '%s' has no eval graph", m->name);
    w.sp = &T.split[o->split];
    w.p = rt_alloc(sizeof(double) * (size_t)m->classes);
    header(&w);
    Score s = rt_evaluate_each(&T, o->split, v, rows, &w);
    bool failed = fflush(w.f) != 0 || ferror(w.f);
    int e = errno;
    if (o->out) {
        failed |= fclose(w.f) != 0;
        if (!failed && rename(tmp_path, o->out) != 0) failed = true;
        e = errno;
    }
    if (failed) rt_die("cannot write %s: %s", o->out ? o->out : "the standard output", strerror(e));
    tmp_path[0] = '\0';

    fprintf(stderr, "%s: %ld predictions of the %s split (%s) to %s: accuracy %.4f", rt_prog, w.rows, split_name[o->split],
            T.split[o->split].src->what, o->out ? o->out : "stdout", s.acc);
    for (int k = 0; k < m->nbranches; k++) fprintf(stderr, "%s %s %.4f", k ? "," : "; branches", m->branches[k], s.branch[k]);
    fputc('\n', stderr);
    free(w.p);
    rt_checkpoint_close(&T);
    return 0;
}
