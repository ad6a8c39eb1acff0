/* rt_eval.c — a run's data and batches, the accuracy of the prediction and
 * of each branch on a split, the conditional utilization rate (ALGORITHMS
 * §3), and the evaluations of a checkpoint (./prog eval, ./prog util). */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rt_trainer.h"

/* ---- data and batches -------------------------------------------------------- */
/* "0,6" -> {0, 6}; the compiler checked the list, the command line's is
 * checked here. */
static int parse_ints(const char *s, int *v, int max, const char *what) {
    int n = 0;
    for (const char *p = s; *p;) {
        char *end;
        long x = strtol(p, &end, 10);
        if (end == p || x < 0 || x > 1000000 || n == max) rt_die("%s: '%s' is not a list of up to %d numbers >= 0", what, s, max);
        v[n++] = (int)x;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') rt_die("%s: '%s' is not a list of numbers", what, s);
    }
    return n;
}

/* "color,depth" -> {"color", "depth"}, in buf. */
static int parse_names(const char *s, char buf[][64], int max, const char *what) {
    int n = 0;
    for (const char *p = s; *p;) {
        size_t k = strcspn(p, ",");
        if (k == 0 || k >= 64 || n == max) rt_die("%s: '%s' is not a list of up to %d names", what, s, max);
        memcpy(buf[n], p, k);
        buf[n++][k] = '\0';
        p += k + (p[k] == ',');
    }
    return n;
}

/* mean/std "a,b,c" (every input with that many channels, or one value for
 * all channels) or "a;b,c,d" (input by input) into aug. */
static void parse_norm(const rt_model *m, const char *mean, const char *stdv, rt_augment *aug) {
    if (!mean[0] && !stdv[0]) return;
    const char *lists[2] = {mean, stdv};
    float vals[2][RT_MAXIN][RT_NORM_MAX];
    int nv[2][RT_MAXIN] = {{0}}, nl[2] = {0, 0};
    for (int w = 0; w < 2; w++) {
        const char *p = lists[w];
        if (!*p) rt_die("normalisation needs both mean and std (std=\"%s\", mean=\"%s\")", stdv, mean);
        while (*p) {
            if (nl[w] == RT_MAXIN) rt_die("%s: more lists than inputs in '%s'", w ? "std" : "mean", lists[w]);
            int k = nl[w]++;
            while (*p && *p != ';') {
                char *end;
                double x = strtod(p, &end);
                if (end == p || !isfinite(x) || nv[w][k] == RT_NORM_MAX || (w == 1 && !(x > 0)))
                    rt_die("%s: '%s' is not a list of up to %d numbers%s", w ? "std" : "mean", lists[w], RT_NORM_MAX, w ? " above 0" : "");
                vals[w][k][nv[w][k]++] = (float)x;
                p = *end == ',' ? end + 1 : end;
                if (*end && *end != ',' && *end != ';') rt_die("%s: '%s' is not a list of numbers", w ? "std" : "mean", lists[w]);
            }
            if (*p == ';') p++;
        }
    }
    for (int i = 0; i < m->ninputs; i++) {
        const int C = m->inputs[i].shape[0];
        for (int w = 0; w < 2; w++) {
            int k = nl[w] == 1 ? 0 : i;
            if (nl[w] != 1 && nl[w] != m->ninputs)
                rt_die("%s lists %d inputs' values; the model has %d inputs", w ? "std" : "mean", nl[w], m->ninputs);
            int n = nv[w][k];
            if (nl[w] == 1 && n != 1 && n != C) n = 0; /* a shared list skips inputs of other channel counts */
            else if (n != 1 && n != C)
                rt_die("%s gives %d values for input '%s', which has %d channels", w ? "std" : "mean", n, m->inputs[i].name, C);
            if (w == 0) aug->nnorm[i] = n;
            else if (n != aug->nnorm[i]) {
                if (n == 0 || aug->nnorm[i] == 0)
                    rt_die("mean and std must give values for the same inputs (input '%s')", m->inputs[i].name);
                if (n > aug->nnorm[i]) aug->nnorm[i] = n; /* one mean, per-channel std: broadcast below */
            }
            for (int c = 0; c < n; c++) (w ? aug->std : aug->mean)[i][c] = vals[w][k][c];
        }
        /* A single value given for one side and per-channel values for the other. */
        if (aug->nnorm[i] > 1)
            for (int w = 0; w < 2; w++) {
                int k = nl[w] == 1 ? 0 : i;
                if (nv[w][k] == 1)
                    for (int c = 1; c < aug->nnorm[i]; c++) (w ? aug->std : aug->mean)[i][c] = vals[w][k][0];
            }
    }
}

/* The augmentation and normalisation of the run's configuration. */
static rt_augment run_augment(const rt_model *m, const rt_config *cfg) {
    rt_augment a = {0};
    a.flip = cfg->flip != RT_FLIP_OFF;
    a.flip_same = cfg->flip == RT_FLIP_SAME;
    a.crop = cfg->crop;
    a.frames = cfg->frames;
    a.drop = cfg->policy == RT_POLICY_MODALITY_DROPOUT ? cfg->drop_p : 0;
    parse_norm(m, cfg->mean, cfg->std, &a);
    return a;
}

static bool is_dir(const char *dir) {
    struct stat st;
    return stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Whether some class directory of the multiview root dir has a `split`
 * directory: the MVCNN renders have train and test only, so a val split
 * is optional and, when absent, held out of train. */
static bool has_split_dir(const char *dir, const char *split) {
    DIR *d = opendir(dir);
    if (!d) return false;
    bool found = false;
    for (struct dirent *e; !found && (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.') continue;
        char p[4096];
        int n = snprintf(p, sizeof p, "%s/%s/%s", dir, e->d_name, split);
        found = n > 0 && (size_t)n < sizeof p && is_dir(p);
    }
    closedir(d);
    return found;
}

/* Source `split` ("train", "test", "val") of the run's data set in dir;
 * NULL with *missing for an absent optional val split. */
static rt_source *open_source(const rt_model *m, const rt_config *cfg, const rt_augment *aug, const char *dir, const char *split,
                              bool *missing) {
    char err[2048] = "";
    rt_source_input in[RT_MAXIN];
    for (int i = 0; i < m->ninputs; i++) in[i] = rt_loader_read_shape(m, i, aug);
    rt_source *s = NULL;
    *missing = false;
    if (strcmp(split, "val") == 0 && strcmp(cfg->data, "clips") == 0) {
        *missing = true;   /* NVGesture's lists are train and test: validation is held out of train */
        return NULL;
    }
    if (strcmp(cfg->data, "multiview") == 0) {
        int views[RT_MAXIN];
        int n = parse_ints(cfg->views, views, RT_MAXIN, "views");
        if (n != m->ninputs) rt_die("views: %d views for %d inputs", n, m->ninputs);
        if (strcmp(split, "val") == 0 && !has_split_dir(dir, split)) {
            *missing = true;
            return NULL;
        }
        s = rt_multiview_open(dir, split, views, n, in, cfg->resize, err, sizeof err);
    } else if (strcmp(cfg->data, "clips") == 0) {
        char names[RT_MAXIN][64];
        const char *mods[RT_MAXIN];
        int n = parse_names(cfg->modalities, names, RT_MAXIN, "modalities");
        if (n != m->ninputs) rt_die("modalities: %d modalities for %d inputs", n, m->ninputs);
        for (int i = 0; i < n; i++) mods[i] = names[i];
        /* The list's name, {split} replaced by the split's. */
        char list[4096], name[1024];
        const char *pattern = cfg->list[0] ? cfg->list : "nvgesture_{split}_correct_cvpr2016_v2.lst";
        const char *at = strstr(pattern, "{split}");
        if (at) snprintf(name, sizeof name, "%.*s%s%s", (int)(at - pattern), pattern, split, at + 7);
        else snprintf(name, sizeof name, "%s", pattern);
        if (name[0] == '/') snprintf(list, sizeof list, "%s", name);
        else snprintf(list, sizeof list, "%s/%s", dir, name);
        s = rt_clips_open(list, dir, mods, n, in, err, sizeof err);
    } else if (strcmp(cfg->data, "arrays") == 0) {
        s = rt_arrays_open(dir, split, in, m->ninputs, missing, err, sizeof err);
        if (!s && *missing && strcmp(split, "val") == 0) return NULL;
    } else {
        rt_die("unknown data source '%s'", cfg->data);
    }
    if (!s) rt_die("%s", err);
    return s;
}

/* Examples 0..n-1 cut into a validation part of nval drawn at random (from
 * seed) and the rest, both in increasing order (the reading order of the
 * files). */
static void carve(int n, int nval, uint64_t seed, int **val, int **train) {
    int *perm = rt_alloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
    unsigned char *in_val = rt_alloc((size_t)(n > 0 ? n : 1));
    for (int i = 0; i < n; i++) perm[i] = i;
    rt_rng r;
    rt_rng_seed(&r, seed ^ 0x76616c73706c6974ULL);
    for (int i = 0; i < nval; i++) {
        int j = i + (int)rt_rng_below(&r, (uint32_t)(n - i));
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
        in_val[perm[i]] = 1;
    }
    *val = rt_alloc(sizeof(int) * (size_t)(nval > 0 ? nval : 1));
    *train = rt_alloc(sizeof(int) * (size_t)(n - nval > 0 ? n - nval : 1));
    for (int i = 0, a = 0, b = 0; i < n; i++)
        if (in_val[i]) (*val)[a++] = i;
        else (*train)[b++] = i;
    free(perm);
    free(in_val);
}

/* In-memory data sets: colored_gray over IDX files, synthetic tensors. */
static void open_memory(Trainer *T, const char *dir) {
    const rt_model *m = T->m;
    const rt_config *cfg = &T->cfg;
    char err[1024];
    if (strcmp(cfg->data, "synthetic") == 0) {
        rt_make_synthetic(m, cfg->synth_train, cfg->synth_test, cfg->seed, &T->mem);
    } else {
        if (!is_dir(dir)) {
            if (strcmp(dir, RT_DEFAULT_DATA) == 0)
                rt_die("the data directory %s does not exist: install Debian's Fashion-MNIST (apt-get install dataset-fashion-mnist) "
                       "or give another directory of IDX files with --data DIR", dir);
            rt_die("the data directory '%s' %s", dir, errno == ENOENT ? "does not exist" : "is not a directory");
        }
        if (rt_load_colored_gray(dir, cfg->variance, cfg->val, cfg->limit_train, cfg->seed, &T->mem, err, sizeof err) != 0)
            rt_die("%s", err);
    }
    const rt_dataset *ds[3] = {&T->mem.train, &T->mem.val, &T->mem.test};
    static const char *const names[3] = {"train", "val", "test"};
    for (int s = 0; s < 3; s++) {
        char what[600];
        snprintf(what, sizeof what, "%s (%s)", strcmp(cfg->data, "synthetic") == 0 ? "synthetic data" : dir, names[s]);
        T->src[s] = rt_memory_source(ds[s], m, what, err, sizeof err);
        if (!T->src[s]) rt_die("%s", err);
        T->split[s] = (rt_split){T->src[s], NULL, ds[s]->n};
    }
}

/* Sources read from files: multiview, clips, arrays. */
static void open_files(Trainer *T, const char *dir, const rt_augment *aug) {
    const rt_model *m = T->m;
    const rt_config *cfg = &T->cfg;
    if (!is_dir(dir))
        rt_die("the data directory '%s' %s (give it with --data DIR or the data's root=\"...\")", dir,
               errno == ENOENT ? "does not exist" : "is not a directory");
    bool missing;
    T->src[RT_SPLIT_TRAIN] = open_source(m, cfg, aug, dir, "train", &missing);
    T->src[RT_SPLIT_TEST] = open_source(m, cfg, aug, dir, "test", &missing);
    T->src[RT_SPLIT_VAL] = open_source(m, cfg, aug, dir, "val", &missing);
    rt_source *tr = T->src[RT_SPLIT_TRAIN];
    T->split[RT_SPLIT_TEST] = (rt_split){T->src[RT_SPLIT_TEST], NULL, T->src[RT_SPLIT_TEST]->n};
    if (T->src[RT_SPLIT_VAL]) {
        T->split[RT_SPLIT_VAL] = (rt_split){T->src[RT_SPLIT_VAL], NULL, T->src[RT_SPLIT_VAL]->n};
        T->split[RT_SPLIT_TRAIN] = (rt_split){tr, NULL, tr->n};
    } else {
        /* Held out of the training split: a fraction, or a count. */
        double v = cfg->val;
        long nval = v < 1 ? (long)(v * tr->n + 0.5) : (long)v;
        if (nval >= tr->n)
            rt_die("%s: the validation split would take %ld of the %d training examples (val=%g)", tr->what, nval, tr->n, v);
        int *vi, *ti;
        carve(tr->n, (int)nval, cfg->seed, &vi, &ti);
        T->split[RT_SPLIT_VAL] = (rt_split){tr, vi, (int)nval};
        T->split[RT_SPLIT_TRAIN] = (rt_split){tr, ti, tr->n - (int)nval};
    }
    /* Classes: a layout that declares them (class directories) must match
     * the heads; labels must fit them. */
    for (int s = 0; s < 3; s++) {
        rt_source *src = T->src[s];
        if (!src) continue;
        if (src->classes > m->classes || (strcmp(cfg->data, "multiview") == 0 && src->classes != m->classes))
            rt_die("%s: the data has %d classes but the model's heads predict %d", src->what, src->classes, m->classes);
    }
}

void rt_open_data(Trainer *T, const char *dir, int limit_test) {
    const rt_model *m = T->m;
    const rt_config *cfg = &T->cfg;
    rt_augment aug = run_augment(m, cfg);
    bool files = strcmp(cfg->data, "synthetic") != 0 && strcmp(cfg->data, "colored_gray") != 0;
    if (files) open_files(T, dir, &aug);
    else open_memory(T, dir);
    if (cfg->limit_train > 0 && T->split[RT_SPLIT_TRAIN].n > cfg->limit_train) T->split[RT_SPLIT_TRAIN].n = cfg->limit_train;
    if (limit_test > 0)
        for (int s = RT_SPLIT_VAL; s <= RT_SPLIT_TEST; s++)
            if (T->split[s].n > limit_test) T->split[s].n = limit_test;
    if (T->split[RT_SPLIT_TRAIN].n == 0) rt_die("the training set is empty");
    if (!files && T->mem.train.classes != m->classes && strcmp(cfg->data, "synthetic") != 0)
        rt_die("the data has %d classes but the model predicts %d", T->mem.train.classes, m->classes);
    /* A batch larger than the data is the whole of it (training: one step
     * an epoch; evaluation: one pass), without the memory of the rest. */
    int most = T->split[RT_SPLIT_TRAIN].n;
    if (!T->o)
        for (int s = RT_SPLIT_VAL; s <= RT_SPLIT_TEST; s++)
            if (T->split[s].n > most) most = T->split[s].n;
    if (T->batch > most) {
        fprintf(stderr, "%s: batch %d is larger than the %s (%d examples): using batch %d%s\n", rt_prog, T->batch,
                T->o ? "training set" : "data", most, most, T->o ? ", one step an epoch" : "");
        T->batch = most;
    }
    rt_memory_check(m, T->cfg.opt.optimizer, T->batch);
    /* Decoding files runs ahead of the steps on worker threads; copying
     * from memory does not need them. */
    int workers = cfg->workers >= 0 ? cfg->workers : files ? rt_cpu_count() / (rt_dist ? rt_dist->local_size : 1) : 0;
    if (cfg->workers < 0 && files && workers < 1) workers = 1;
    T->loader = rt_loader_new(m, T->batch, workers, &aug, T->be);
}

void rt_close_data(Trainer *T) {
    rt_loader_free(T->loader);
    T->loader = NULL;
    for (int s = 0; s < 3; s++) {
        free(T->split[s].idx);
        T->split[s] = (rt_split){0};
    }
    for (int s = 0; s < 3; s++) rt_source_close(T->src[s]), T->src[s] = NULL;
    rt_data_free(&T->mem);
}

static void pass(Trainer *T, int s, const int *order, int n, bool train, uint64_t seed, bool shard) {
    const rt_split *sp = &T->split[s];
    int *idx = rt_alloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
    for (int k = 0; k < n; k++) {
        int q = order ? order[k] : k;
        idx[k] = sp->idx ? sp->idx[q] : q;
    }
    /* A batch copied ahead belongs to the pass that ends here. */
    if (T->e && T->be->stage) T->be->stage(T->e, NULL);
    T->ahead_ok = false;
    rt_loader_start_shard(T->loader, sp->src, idx, n, T->batch, train, seed, shard ? rt_rank() : 0, shard ? rt_nranks() : 1);
    free(idx);
}

void rt_pass(Trainer *T, int s, const int *order, int n, bool train, uint64_t seed) { pass(T, s, order, n, train, seed, false); }

void rt_pass_shard(Trainer *T, int s, const int *order, int n, bool train, uint64_t seed) { pass(T, s, order, n, train, seed, true); }

static bool fetch(Trainer *T, rt_batch *b) {
    char err[2048];
    int rc = rt_loader_next(T->loader, b, err, sizeof err);
    if (rc < 0) rt_die("%s", err);
    return rc == 1;
}

/* The pass's next batch. With a back end that copies batches ahead (CUDA),
 * the batch after it is fetched now and its copy to the device started,
 * to run while the step on this one computes. */
bool rt_next(Trainer *T, rt_batch *b) {
    if (!T->e || !T->be->stage) return fetch(T, b);
    if (T->ahead_ok) *b = T->ahead;
    else if (!fetch(T, b)) return false;
    T->ahead_ok = fetch(T, &T->ahead);
    if (T->ahead_ok) T->be->stage(T->e, &T->ahead);
    return true;
}

/* ---- evaluation ---------------------------------------------------------------- */
/* The first maximum wins, as in the kernels and PyTorch's argmax. */
int rt_argmax(const mm_real *z, int k) {
    int a = 0;
    for (int i = 1; i < k; i++)
        if (z[i] > z[a]) a = i;
    return a;
}

Score rt_evaluate_each(Trainer *T, int split, int v, rt_eval_fn fn, void *user) {
    const rt_model *m = T->m;
    Score s = {0};
    long right = 0, rb[RT_MAXB] = {0};
    bool seen[RT_MAXB] = {0};
    double loss = 0;
    rt_hyper h = {0};
    const int n = T->split[split].n;
    /* Each rank evaluates its shard; the counts are summed. */
    rt_pass_shard(T, split, NULL, n, false, 0);
    rt_batch b;
    for (int first = 0; rt_next(T, &b); first += b.B) {
        if (b.B == 0) continue; /* a rank whose shard of the batch is empty */
        rt_result r;
        T->be->eval(T->e, v, &b, &h, &r);
        loss += r.loss * b.B;
        for (int k = 0; k < b.B; k++) {
            if (r.pred && rt_argmax(r.pred + (size_t)k * m->classes, m->classes) == b.y[k]) right++;
            for (int br = 0; br < m->nbranches; br++) {
                seen[br] |= r.logits[br] != NULL;
                if (r.logits[br] && rt_argmax(r.logits[br] + (size_t)k * m->classes, m->classes) == b.y[k]) rb[br]++;
            }
        }
        if (fn) fn(user, &b, &r, first);
    }
    if (rt_nranks() > 1) {
        double t[2 + 2 * RT_MAXB] = {(double)right, loss};
        for (int br = 0; br < m->nbranches; br++) t[2 + br] = (double)rb[br], t[2 + m->nbranches + br] = seen[br];
        rt_dist->sum_d(t, 2 + 2 * (size_t)m->nbranches);
        right = (long)t[0], loss = t[1];
        for (int br = 0; br < m->nbranches; br++) rb[br] = (long)t[2 + br], seen[br] = t[2 + m->nbranches + br] > 0;
    }
    if (n > 0) {
        s.acc = (double)right / n;
        s.loss = loss / n;
        /* A branch without a head of its own (its features feed a fusion
         * head) has no accuracy: NaN, written null in JSON and '-' in text. */
        for (int br = 0; br < m->nbranches; br++) s.branch[br] = seen[br] ? (double)rb[br] / n : NAN;
    }
    return s;
}

Score rt_evaluate(Trainer *T, int split, int v) { return rt_evaluate_each(T, split, v, NULL, NULL); }

/* The conditional utilization rate (§3) of the network now in the back end:
 * the squeeze means over the training set (evaluation mode), then each
 * branch's test accuracy with and without the cross-modal flow. */
Util rt_utilization(Trainer *T) {
    const rt_model *m = T->m;
    Util u = {0};
    int vs = rt_find_variant(m, RT_VAR_SQUEEZE, -1), vc = rt_find_variant(m, RT_VAR_CUT, -1), ve = rt_find_variant(m, RT_VAR_EVAL, -1);
    if (vs < 0 || vc < 0 || m->nbranches < 2) return u;
    /* Zero the squeeze means, then accumulate them over the training set. */
    T->be->read(T->e, RT_ARENA_STATES, T->states);
    for (int i = 0; i < m->nstates; i++)
        if (m->states[i].kind == RT_STATE_SQUEEZE_MEAN) memset(T->states + m->states[i].off, 0, sizeof(float) * m->states[i].numel);
    T->be->write(T->e, RT_ARENA_STATES, T->states);
    rt_hyper h = {0};
    rt_pass(T, RT_SPLIT_TRAIN, NULL, T->split[RT_SPLIT_TRAIN].n, false, 0);
    rt_batch b;
    for (long seen = 0; rt_next(T, &b); seen += b.B) {
        rt_result r;
        h.acc_n = seen;
        T->be->eval(T->e, vs, &b, &h, &r);
    }
    Score full = rt_evaluate(T, RT_SPLIT_TEST, ve), cut = rt_evaluate(T, RT_SPLIT_TEST, vc);
    u.ok = true;
    double lo = INFINITY, hi = -INFINITY;
    for (int k = 0; k < m->nbranches; k++) {
        u.a[k] = full.branch[k];
        u.a_cut[k] = cut.branch[k];
        u.u[k] = u.a[k] > 0 ? (u.a[k] - u.a_cut[k]) / u.a[k] : NAN;
        if (u.u[k] < lo) lo = u.u[k];
        if (u.u[k] > hi) hi = u.u[k];
    }
    u.d_util = m->nbranches == 2 ? u.u[0] - u.u[1] : hi - lo;
    return u;
}

cJSON *rt_utilization_json(const rt_model *m, const Util *u) {
    cJSON *o = cJSON_CreateObject();
    char key[64];
    for (int k = 0; k < m->nbranches; k++) {
        snprintf(key, sizeof key, "A(f%d)", k);
        cJSON_AddNumberToObject(o, key, u->a[k]);
    }
    for (int k = 0; k < m->nbranches; k++) {
        snprintf(key, sizeof key, "A(f%d')", k);
        cJSON_AddNumberToObject(o, key, u->a_cut[k]);
    }
    for (int k = 0; k < m->nbranches; k++) {
        /* u(m_other | m_k): how much branch k needs the other modalities. */
        if (m->nbranches == 2) snprintf(key, sizeof key, "u(m%d|m%d)", 1 - k, k);
        else snprintf(key, sizeof key, "u(others|m%d)", k);
        cJSON_AddNumberToObject(o, key, u->u[k]);
    }
    return o;
}

static void print_util(const rt_model *m, const Util *u) {
    for (int k = 0; k < m->nbranches; k++) printf("A(f%d)  %.4f   branch %s\n", k, u->a[k], m->branches[k]);
    for (int k = 0; k < m->nbranches; k++) printf("A(f%d') %.4f   branch %s, cross-modal flow cut\n", k, u->a_cut[k], m->branches[k]);
    for (int k = 0; k < m->nbranches; k++) {
        if (m->nbranches == 2) printf("u(m%d|m%d) %.4f\n", 1 - k, k, u->u[k]);
        else printf("u(others|m%d) %.4f\n", k, u->u[k]);
    }
    printf("d_util %.4f\n", u->d_util);
}

int rt_split_index(const char *name) {
    static const char *const names[3] = {[RT_SPLIT_TRAIN] = "train", [RT_SPLIT_VAL] = "val", [RT_SPLIT_TEST] = "test"};
    for (int s = 0; s < 3; s++)
        if (strcmp(name, names[s]) == 0) return s;
    return -1;
}

void rt_checkpoint_open(Trainer *T, const rt_model *m, const char *ckpt, const char *data_dir, int batch, int workers) {
    memset(T, 0, sizeof *T);
    T->m = m;
    T->be = m->backend;
    T->cfg = m->cfg;
    T->batch = batch;
    size_t np = m->params_floats, ns = m->states_floats + 1;
    T->params = rt_alloc(sizeof(float) * np);
    T->states = rt_alloc(sizeof(float) * ns);
    rt_ckpt *c = rt_run_load_tensors(m, ckpt, T->params, T->states);
    /* The data as the run made it: its source, seed, colours and split
     * (the checkpoint's configuration); the machine's settings are this
     * program's. */
    rt_run_read_config(m, c, ckpt, &T->cfg);
    T->cfg.workers = workers;
    if (!data_dir) data_dir = T->cfg.data_dir[0] ? T->cfg.data_dir : RT_DEFAULT_DATA;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", data_dir);
    rt_ckpt_free(c);
    rt_open_data(T, dir, 0);
    T->e = T->be->create(m, T->batch);
    T->be->write(T->e, RT_ARENA_PARAMS, T->params);
    T->be->write(T->e, RT_ARENA_STATES, T->states);
}

void rt_checkpoint_close(Trainer *T) {
    T->be->destroy(T->e);
    rt_close_data(T);
    free(T->params);
    free(T->states);
}

/* ./prog eval / ./prog util */
int rt_eval_checkpoint(const rt_model *m, const char *ckpt, const char *data_dir, int batch, int workers, int split, bool util) {
    Trainer T;
    rt_checkpoint_open(&T, m, ckpt, data_dir, batch, workers);
    if (!util) {
        static const char *const names[3] = {"train", "val", "test"};
        Score s = rt_evaluate(&T, split, rt_find_variant(m, RT_VAR_EVAL, -1));
        printf("%s accuracy %.4f  (%d examples)\n", names[split], s.acc, T.split[split].n);
        for (int k = 0; k < m->nbranches; k++)
            if (isnan(s.branch[k])) printf("  branch %-10s -  (no head of its own)\n", m->branches[k]);
            else printf("  branch %-10s %.4f\n", m->branches[k], s.branch[k]);
    } else {
        Util u = rt_utilization(&T);
        if (!u.ok) rt_die("the conditional utilization rate needs a model with MMTMs between two or more branches");
        print_util(m, &u);
    }
    rt_checkpoint_close(&T);
    return 0;
}
