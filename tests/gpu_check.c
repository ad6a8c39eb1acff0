/* gpu_check.c — the CUDA back end against the C back end (the oracle).
 *
 * Linked with two builds of one model: its C code (symbol mm_model_c) and
 * its CUDA code (mm_model_cuda). From the same random weights, state and
 * batch:
 *   1. every kernel of every graph variant (forward and backward): each
 *      kernel's output compared with the GPU kernel's that computes the
 *      same IR node, relative error = |gpu - cpu| / |cpu| (the C back end
 *      folds some nodes into their producer's kernel, max pooling into its
 *      convolution: the GPU's separate kernel for the unpooled map then has
 *      no CPU counterpart and is reported as such);
 *   2. one full training step: loss, logits, updated weights and momentum;
 *      Adam and AdamW steps (their moments and per-parameter bias
 *      corrections), one of them updating half the parameters;
 *   3. ten training steps on ten random batches: the weights after them.
 * float32 on both sides with different summation orders, so the bounds are
 * float32 ones: 1e-3 per kernel and step, 1e-3 after ten steps.
 * Without a CUDA device it prints why and exits 77 (ctest: skipped). */
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "mmrt.h"
#include "rt_optim.h"

extern const rt_model mm_model_c, mm_model_cuda;

typedef struct {
    float **out;
    size_t *n;
    int count, cap;
} Trace;

static void collect(void *user, int k, const float *out, size_t n) {
    Trace *t = user;
    if (k >= t->cap) {
        int cap = k + 64;
        t->out = realloc(t->out, sizeof(float *) * (size_t)cap);
        t->n = realloc(t->n, sizeof(size_t) * (size_t)cap);
        for (int i = t->cap; i < cap; i++) t->out[i] = NULL, t->n[i] = 0;
        t->cap = cap;
    }
    free(t->out[k]);
    t->out[k] = malloc(sizeof(float) * (n ? n : 1));
    memcpy(t->out[k], out, sizeof(float) * n);
    t->n[k] = n;
    if (k + 1 > t->count) t->count = k + 1;
}

static void trace_reset(Trace *t) {
    for (int i = 0; i < t->cap; i++) {
        free(t->out[i]);
        t->out[i] = NULL;
        t->n[i] = 0;
    }
    t->count = 0;
}

/* Relative L2 error; a tensor whose RMS is below 1e-4 is compared at that
 * scale instead: a gradient that is zero in exact arithmetic (the bias of a
 * convolution followed by BatchNorm) is rounding noise of about 1e-8 on
 * both sides, and the relative error between two noises means nothing. */
static double rel_err(const float *a, const float *ref, size_t n) { return check_rel_l2(a, ref, n, 1e-4, NULL); }

/* The IR node whose value a kernel stores: the last %N of its name
 * ("%11 conv+%13 maxpool" stores node 13). */
static int out_node(const char *name) {
    const char *p = strrchr(name, '%');
    return p ? atoi(p + 1) : -1;
}

/* Does a kernel compute node id (any %N of its name)? */
static int computes(const char *name, int id) {
    for (const char *p = strchr(name, '%'); p; p = strchr(p + 1, '%'))
        if (atoi(p + 1) == id) return 1;
    return 0;
}

/* One comparison: a row under VERBOSE, a failed CHECK when over tol. */
#define EXPECT(what, err, tol)                                                                   \
    do {                                                                                         \
        const double e_ = (err), tol_ = (tol);                                                   \
        if (getenv("VERBOSE")) printf("  %-52s rel.err %.2e\n", (what), e_);                     \
        CHECK(e_ <= tol_, "%s: rel.err %.2e, tolerance %.0e", (what), e_, tol_);                 \
    } while (0)

int main(int argc, char **argv) {
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("SKIP: no CUDA device here; the CUDA back end was compiled but cannot run (tools/gpu-check.sh runs this on a GPU)\n");
        return 77;
    }
    const rt_model *mc = &mm_model_c, *mg = &mm_model_cuda;
    const int B = 16;
    rt_exec *ec = mc->backend->create(mc, B), *eg = mg->backend->create(mg, B);
    size_t np = mc->params_floats, ns = mc->states_floats + 1;
    float *w0 = calloc(np, sizeof(float)), *s0 = calloc(ns, sizeof(float)), *zero = calloc(np, sizeof(float));
    float *wc = calloc(np, sizeof(float)), *wg = calloc(np, sizeof(float));
    rt_rng r;
    rt_rng_seed(&r, 42);
    for (int i = 0; i < mc->nparams; i++) {
        const rt_param_info *p = &mc->params[i];
        for (size_t j = 0; j < p->numel; j++)
            w0[p->off + j] = p->init == RT_INIT_UNIFORM ? (float)((2 * rt_rng_uniform(&r) - 1) * p->bound)
                                                        : (float)(p->init == RT_INIT_ONE) + 0.1f * (float)rt_rng_normal(&r);
    }
    for (int i = 0; i < mc->nstates; i++)
        for (size_t j = 0; j < mc->states[i].numel; j++)
            s0[mc->states[i].off + j] = mc->states[i].kind == RT_STATE_BN_VAR ? 1.0f + 0.2f * (float)rt_rng_uniform(&r)
                                                                              : 0.2f * (float)rt_rng_normal(&r);
    float *x[RT_MAXIN];
    rt_batch b = {B, {0}, NULL};
    for (int i = 0; i < mc->ninputs; i++) {
        x[i] = malloc(sizeof(float) * mc->inputs[i].numel * B);
        b.x[i] = x[i];
    }
    int32_t *y = malloc(sizeof(int32_t) * B);
    b.y = y;
#define NEW_BATCH()                                                                                        \
    do {                                                                                                   \
        for (int i = 0; i < mc->ninputs; i++)                                                              \
            for (size_t j = 0; j < mc->inputs[i].numel * B; j++) x[i][j] = (float)rt_rng_uniform(&r);       \
        for (int k = 0; k < B; k++) y[k] = (int32_t)rt_rng_below(&r, (uint32_t)mc->classes);              \
    } while (0)
#define RESET()                                                                                            \
    do {                                                                                                   \
        mc->backend->write(ec, RT_ARENA_PARAMS, w0);                                                       \
        mg->backend->write(eg, RT_ARENA_PARAMS, w0);                                                       \
        mc->backend->write(ec, RT_ARENA_MOMENTUM, zero);                                                   \
        mg->backend->write(eg, RT_ARENA_MOMENTUM, zero);                                                   \
        mc->backend->write(ec, RT_ARENA_MOMENT2, zero);                                                    \
        mg->backend->write(eg, RT_ARENA_MOMENT2, zero);                                                    \
        mc->backend->write(ec, RT_ARENA_STATES, s0);                                                       \
        mg->backend->write(eg, RT_ARENA_STATES, s0);                                                       \
    } while (0)
    NEW_BATCH();
    rt_hyper h = {{.lr = 0.01f, .momentum = 0.9f, .weight_decay = 1e-4f}, 3, 11, 5, NULL, NULL, NULL, NULL};

    /* 1. Kernel by kernel, every variant. */
    Trace tc = {0}, tg = {0};
    int kernels = 0;
    for (int v = 0; v < mc->nvariants; v++) {
        const rt_variant_info *vi = &mc->variants[v];
        RESET();
        trace_reset(&tc);
        trace_reset(&tg);
        mc->backend->trace(ec, collect, &tc);
        mg->backend->trace(eg, collect, &tg);
        rt_result rc, rg;
        if (vi->has_grad) {
            mc->backend->train(ec, v, &b, &h, &rc);
            mg->backend->train(eg, v, &b, &h, &rg);
        } else {
            mc->backend->eval(ec, v, &b, &h, &rc);
            mg->backend->eval(eg, v, &b, &h, &rg);
        }
        mc->backend->trace(ec, NULL, NULL);
        mg->backend->trace(eg, NULL, NULL);
        const rt_variant_info *vg = &mg->variants[v];
        double worst = 0;
        int at = -1;
        unsigned char *seen = calloc((size_t)tg.count + 1, 1);
        for (int k = 0; k < tc.count; k++) {
            char what[256];
            snprintf(what, sizeof what, "%s kernel %d (%s)", vi->name, k, vi->kernel_names[k]);
            int j = -1;
            for (int q = 0; q < tg.count && j < 0; q++)
                if (out_node(vg->kernel_names[q]) == out_node(vi->kernel_names[k])) j = q;
            CHECK(j >= 0, "%s: no GPU kernel computes this node", what);
            if (j < 0) continue;
            seen[j] = 1;
            CHECK(tc.n[k] == tg.n[j], "%s: sizes differ (%zu on the CPU, %zu on the GPU)", what, tc.n[k], tg.n[j]);
            if (tc.n[k] != tg.n[j]) continue;
            double e = rel_err(tg.out[j], tc.out[k], tc.n[k]);
            EXPECT(what, e, 1e-3);
            if (e > worst) worst = e, at = k;
            kernels++;
        }
        /* A GPU kernel without a CPU counterpart must be of a node some CPU
         * kernel computes inside another (its name lists it). */
        int folded = 0;
        for (int q = 0; q < tg.count; q++) {
            if (seen[q]) continue;
            int in = 0;
            for (int k = 0; k < tc.count && !in; k++) in = computes(vi->kernel_names[k], out_node(vg->kernel_names[q]));
            CHECK(in, "%s: GPU kernel %d (%s) has no CPU kernel computing its node", vi->name, q, vg->kernel_names[q]);
            folded++;
        }
        free(seen);
        printf("%-14s %3d kernels compared, worst rel.err %.2e%s%s", vi->name, tc.count, worst, at >= 0 ? " at " : "",
               at >= 0 ? vi->kernel_names[at] : "");
        if (folded) printf(" (%d GPU kernel%s of nodes the CPU folds into others)", folded, folded == 1 ? "" : "s");
        printf("\n");
    }

    /* 2. One full training step. */
    int vt = rt_find_variant(mc, RT_VAR_TRAIN, -1);
    RESET();
    rt_result rc, rg;
    mc->backend->train(ec, vt, &b, &h, &rc);
    mg->backend->train(eg, vt, &b, &h, &rg);
    float lc = (float)rc.loss, lg = (float)rg.loss;
    EXPECT("one step: loss", rel_err(&lg, &lc, 1), 1e-4);
    for (int k = 0; k < mc->nbranches; k++) {
        char what[64];
        snprintf(what, sizeof what, "one step: logits of branch %s", mc->branches[k]);
        /* A branch without a head of its own has none, on either back end. */
        CHECK((rg.logits[k] == NULL) == (rc.logits[k] == NULL));
        if (rc.logits[k] && rg.logits[k]) EXPECT(what, rel_err(rg.logits[k], rc.logits[k], (size_t)B * mc->classes), 1e-3);
    }
    CHECK((rg.pred == NULL) == (rc.pred == NULL));
    if (rc.pred && rg.pred) EXPECT("one step: prediction", rel_err(rg.pred, rc.pred, (size_t)B * mc->classes), 1e-3);
    mc->backend->read(ec, RT_ARENA_PARAMS, wc);
    mg->backend->read(eg, RT_ARENA_PARAMS, wg);
    EXPECT("one step: updated weights", rel_err(wg, wc, np), 1e-5);
    mc->backend->read(ec, RT_ARENA_MOMENTUM, wc);
    mg->backend->read(eg, RT_ARENA_MOMENTUM, wg);
    EXPECT("one step: momentum", rel_err(wg, wc, np), 1e-3);
    double nc = 0, ng = 0;
    for (int p = 0; p < mc->nparams; p++) nc += rc.norms[p][0], ng += rg.norms[p][0];
    EXPECT("one step: sum of |grad|^2 (learning-speed norms)", check_rel(ng, nc, 1e-30), 1e-3);
    float *sc = calloc(ns, sizeof(float)), *sg = calloc(ns, sizeof(float));
    mc->backend->read(ec, RT_ARENA_STATES, sc);
    mg->backend->read(eg, RT_ARENA_STATES, sg);
    EXPECT("one step: states (BatchNorm statistics, gate means)", rel_err(sg, sc, ns), 1e-4);

    /* 2b. A re-balancing step that updates only some parameters (--rebalance-update own). */
    int vr = rt_find_variant(mc, RT_VAR_REBALANCE, 0);
    if (vr >= 0) {
        unsigned char *mask = calloc((size_t)mc->nparams, 1);
        for (int p = 0; p < mc->nparams; p++) mask[p] = p % 2;
        rt_hyper hm = h;
        hm.update = mask;
        RESET();
        mc->backend->train(ec, vr, &b, &hm, &rc);
        mg->backend->train(eg, vr, &b, &hm, &rg);
        mc->backend->read(ec, RT_ARENA_PARAMS, wc);
        mg->backend->read(eg, RT_ARENA_PARAMS, wg);
        EXPECT("re-balancing step, half the parameters updated: weights", rel_err(wg, wc, np), 1e-5);
        int kept = 1, moved = 0;
        for (int p = 0; p < mc->nparams; p++)
            for (size_t j = 0; j < mc->params[p].numel; j++) {
                const size_t i = mc->params[p].off + j;
                if (mask[p]) moved |= wg[i] != w0[i];
                else kept &= wg[i] == w0[i];
            }
        CHECK(kept, "re-balancing step: masked parameters changed on the GPU");
        CHECK(moved, "re-balancing step: the other parameters not updated on the GPU");
        free(mask);
    }
    free(sc);
    free(sg);

    /* 2d. Adam and AdamW: three steps each, the second a re-balancing step
     * that updates half the parameters, so that their step counts and bias
     * corrections differ from the others'. */
    for (int opt = RT_OPTIMIZER_ADAM; opt <= RT_OPTIMIZER_ADAMW; opt++) {
        rt_hyper ha = {{.optimizer = opt, .lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 1e-2f}, 3, 11, 5,
                       NULL, NULL, NULL, NULL};
        unsigned char *mask = calloc((size_t)mc->nparams, 1);
        long long *count = calloc((size_t)mc->nparams, sizeof(long long));
        float(*bias)[2] = calloc((size_t)mc->nparams, sizeof(float[2]));
        for (int p = 0; p < mc->nparams; p++) mask[p] = p % 2;
        RESET();
        for (int s = 0; s < 3; s++) {
            int v = s == 1 && vr >= 0 ? vr : vt;
            ha.update = s == 1 ? mask : NULL;
            rt_optim_count(&ha.opt, mc->nparams, ha.update, count, bias);
            ha.bias = (const float(*)[2])bias;
            mc->backend->train(ec, v, &b, &ha, &rc);
            mg->backend->train(eg, v, &b, &ha, &rg);
        }
        const char *name = opt == RT_OPTIMIZER_ADAM ? "adam" : "adamw";
        char w2[96];
        mc->backend->read(ec, RT_ARENA_PARAMS, wc);
        mg->backend->read(eg, RT_ARENA_PARAMS, wg);
        snprintf(w2, sizeof w2, "three %s steps: weights", name);
        EXPECT(w2, rel_err(wg, wc, np), 1e-5);
        mc->backend->read(ec, RT_ARENA_MOMENTUM, wc);
        mg->backend->read(eg, RT_ARENA_MOMENTUM, wg);
        snprintf(w2, sizeof w2, "three %s steps: first moment", name);
        EXPECT(w2, rel_err(wg, wc, np), 1e-3);
        mc->backend->read(ec, RT_ARENA_MOMENT2, wc);
        mg->backend->read(eg, RT_ARENA_MOMENT2, wg);
        snprintf(w2, sizeof w2, "three %s steps: second moment", name);
        EXPECT(w2, rel_err(wg, wc, np), 1e-3);
        free(mask);
        free(count);
        free(bias);
    }

    /* 2c. A smaller batch, as an epoch's last: other launch shapes, another
     * captured graph, other cuDNN plans. */
    b.B = B - 5;
    RESET();
    mc->backend->train(ec, vt, &b, &h, &rc);
    mg->backend->train(eg, vt, &b, &h, &rg);
    lc = (float)rc.loss, lg = (float)rg.loss;
    char what[64];
    snprintf(what, sizeof what, "one step at batch %d: loss", b.B);
    EXPECT(what, rel_err(&lg, &lc, 1), 1e-4);
    mc->backend->read(ec, RT_ARENA_PARAMS, wc);
    mg->backend->read(eg, RT_ARENA_PARAMS, wg);
    snprintf(what, sizeof what, "one step at batch %d: updated weights", b.B);
    EXPECT(what, rel_err(wg, wc, np), 1e-5);
    b.B = B;

    /* 3. Ten steps. */
    RESET();
    for (int s = 0; s < 10; s++) {
        NEW_BATCH();
        h.step = (unsigned long long)s;
        mc->backend->train(ec, vt, &b, &h, &rc);
        mg->backend->train(eg, vt, &b, &h, &rg);
    }
    mc->backend->read(ec, RT_ARENA_PARAMS, wc);
    mg->backend->read(eg, RT_ARENA_PARAMS, wg);
    EXPECT("ten steps: weights", rel_err(wg, wc, np), 1e-3);
    printf("ten steps: loss %.6f (CPU) %.6f (GPU)\n", rc.loss, rg.loss);

    mc->backend->destroy(ec);
    mg->backend->destroy(eg);
    printf("%d kernel outputs compared\n", kernels);
    return check_summary(strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0]);
}
