/* optim_test.c — the optimizers and the learning-rate schedules against
 * PyTorch (tests/optim/optim_ref.safetensors, made by make_reference.py).
 *
 * Optimizers: a tiny net's parameters (Linear(4, 3), Linear(3, 2)) are
 * trained for a few steps by the CPU back end's own training step (its
 * fused norms and update, rt_cpu.c, with rt_optim.h's rules), where the
 * forward and backward pass is replaced by PyTorch's gradients of each step;
 * after every step the parameters must equal PyTorch's. One step leaves the
 * second layer out, as a re-balancing step that updates only one branch
 * does: its parameters, moments and Adam step counts must stay as PyTorch's
 * do for a parameter without a gradient. The case with a schedule takes each
 * step's learning rate from rt_schedule_lr.
 *
 * Schedules: rt_schedule_lr step by step against PyTorch's schedulers.
 *
 * Also: the optimizer and schedule fields' names are the tables' rows
 * (mmnet_shared.h), in order. */
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "mmrt_cpu.h"
#include "rt_optim.h"
#include "rt_schedule.h"

#define NP 4
#define STEPS 6
#define MASKED 2

static const char *const pname[NP] = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"};
static const unsigned char first_layer[NP] = {1, 1, 0, 0};

static const rt_ckpt *ref;

static const void *get(const char *name, int dtype, size_t want) {
    int nd;
    int64_t sh[RT_CKPT_MAXDIM];
    const void *p = rt_ckpt_get(ref, name, dtype, &nd, sh);
    REQUIRE(p, "the reference has no tensor '%s'", name);
    size_t n = 1;
    for (int d = 0; d < nd; d++) n *= (size_t)sh[d];
    REQUIRE(n == want, "'%s' has %zu elements in the reference, %zu here", name, n, want);
    return p;
}

/* The model: four parameters, one training variant whose "kernels" copy the
 * step's gradients from the reference. */
static rt_param_info params[NP] = {
    {"fc1.weight", 2, {3, 4}, 12, 0, 0, -1, RT_INIT_ZERO, 0, 0},
    {"fc1.bias", 1, {3}, 3, 12, 0, -1, RT_INIT_ZERO, 0, 0},
    {"fc2.weight", 2, {2, 3}, 6, 15, 0, -1, RT_INIT_ZERO, 0, 0},
    {"fc2.bias", 1, {2}, 2, 21, 0, -1, RT_INIT_ZERO, 0, 0},
};
static const char *grad_prefix; /* "adam.grad.3" */

static void replay(rt_exec *e, const rt_batch *b, const rt_hyper *h, rt_result *r) {
    (void)b, (void)h;
    for (int p = 0; p < NP; p++) {
        char name[128];
        snprintf(name, sizeof name, "%s.%s", grad_prefix, pname[p]);
        memcpy(e->grads + params[p].off, get(name, RT_F32, params[p].numel), sizeof(float) * params[p].numel);
    }
    r->loss = 0;
}

static const rt_cpu_run_fn run[1] = {replay};
static const int nkernels[1] = {0};
static const rt_cpu_impl impl = {.run = run, .act_floats = 1, .fixed_floats = 1, .nkernels = nkernels, .simd = "none"};
static const unsigned char all[NP] = {1, 1, 1, 1};
static const rt_variant_info variants[1] = {{"train", RT_VAR_TRAIN, -1, all, 0, NULL}};
static const char *const branches[1] = {"net"};
static rt_model model = {.name = "tiny", .source = "optim_test.c", .nparams = NP, .params = params, .params_floats = 23,
                         .ninputs = 0, .nbranches = 1, .branches = branches, .classes = 2, .nvariants = 1,
                         .variants = variants, .backend = &rt_cpu_backend, .impl = &impl};

/* The schedule case `name` of make_reference.py's SCHEDULES, as a configuration. */
typedef struct {
    const char *name;
    float lr;
    int epochs, steps_per_epoch, warmup, schedule, every;
    float gamma, min_lr;
} Sched;

static const Sched scheds[] = {
    {"warmup_constant", 0.1f, 4, 3, 4, RT_SCHEDULE_CONSTANT, 0, 0, 0},
    {"step", 0.1f, 4, 3, 0, RT_SCHEDULE_STEP, 1, 0.5f, 0},
    {"warmup_step", 0.1f, 4, 3, 3, RT_SCHEDULE_STEP, 1, 0.5f, 0},
    {"cosine", 0.1f, 4, 3, 0, RT_SCHEDULE_COSINE, 0, 0, 0.001f},
    {"warmup_cosine", 0.1f, 4, 3, 5, RT_SCHEDULE_COSINE, 0, 0, 0.001f},
    {"adamw_cosine", 0.01f, 3, 2, 2, RT_SCHEDULE_COSINE, 0, 0, 0.001f},
};

static rt_config sched_config(const Sched *s) {
    rt_config c;
    rt_config_defaults(&c);
    c.opt.lr = s->lr;
    c.epochs = s->epochs;
    c.lr_warmup_steps = s->warmup;
    c.schedule = s->schedule;
    c.step_every = s->every;
    c.step_gamma = s->gamma;
    c.min_lr = s->min_lr;
    return c;
}

static const Sched *find_sched(const char *name) {
    for (size_t i = 0; i < sizeof scheds / sizeof scheds[0]; i++)
        if (strcmp(scheds[i].name, name) == 0) return &scheds[i];
    return NULL;
}

/* make_reference.py's OPTIMIZERS. */
static void optimizer_case(const char *name, rt_optim o) {
    const Sched *s = find_sched(name);
    rt_config sc = s ? sched_config(s) : (rt_config){0};
    const rt_backend *be = &rt_cpu_backend;
    rt_exec *e = be->create(&model, 1);
    float w[23], zero[23] = {0};
    for (int p = 0; p < NP; p++) {
        char key[128];
        snprintf(key, sizeof key, "init.%s", pname[p]);
        memcpy(w + params[p].off, get(key, RT_F32, params[p].numel), sizeof(float) * params[p].numel);
    }
    be->write(e, RT_ARENA_PARAMS, w);
    be->write(e, RT_ARENA_MOMENTUM, zero);
    be->write(e, RT_ARENA_MOMENT2, zero);
    long long steps[NP] = {0};
    float bias[NP][2];
    double worst = 0;
    for (int t = 0; t < STEPS; t++) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "%s.grad.%d", name, t);
        grad_prefix = prefix;
        rt_hyper h = {o, 0, 1, (unsigned long long)t, t == MASKED ? first_layer : NULL, NULL, NULL, NULL};
        if (s) {
            h.opt.lr = (float)rt_schedule_lr(&sc, o.lr, t, s->steps_per_epoch);
            snprintf(prefix, sizeof prefix, "%s.lr", name);
            double want = ((const double *)get(prefix, RT_F64, STEPS))[t];
            CHECK_CLOSE(h.opt.lr, want, 0, 1e-6, "%s: the learning rate of step %d", name, t);
            snprintf(prefix, sizeof prefix, "%s.grad.%d", name, t);
        }
        rt_optim_count(&h.opt, NP, h.update, steps, bias);
        h.bias = (const float(*)[2])bias;
        rt_result r;
        be->train(e, 0, NULL, &h, &r);
        be->read(e, RT_ARENA_PARAMS, w);
        for (int p = 0; p < NP; p++) {
            char key[128];
            snprintf(key, sizeof key, "%s.param.%d.%s", name, t, pname[p]);
            const float *want = get(key, RT_F32, params[p].numel);
            double mx, err = check_rel_l2(w + params[p].off, want, params[p].numel, 1e-6, &mx);
            CHECK(err < 2e-6, "%s, step %d: %s differs from PyTorch's by %.2e (relative; largest %.2e)", name, t, pname[p], err, mx);
            if (err > worst) worst = err;
        }
    }
    printf("%-14s %d steps against PyTorch: largest relative L2 difference of a parameter %.1e\n", name, STEPS, worst);
    be->destroy(e);
}

static void schedules(void) {
    for (size_t i = 0; i < sizeof scheds / sizeof scheds[0]; i++) {
        const Sched *s = &scheds[i];
        rt_config c = sched_config(s);
        int n = s->epochs * s->steps_per_epoch;
        char key[64];
        snprintf(key, sizeof key, "sched.%s", s->name);
        const double *want = get(key, RT_F64, (size_t)n);
        double worst = 0;
        for (int t = 0; t < n; t++) {
            double lr = rt_schedule_lr(&c, s->lr, t, s->steps_per_epoch);
            /* lr is a float setting (0.1 is 0.100000001): float tolerance */
            CHECK_CLOSE(lr, want[t], 0, 1e-7, "schedule %s, step %d", s->name, t);
            if (fabs(lr - want[t]) / want[t] > worst) worst = fabs(lr - want[t]) / want[t];
        }
        printf("schedule %-16s %2d steps, largest relative difference %.1e\n", s->name, n, worst);
    }
}

/* The ENUM fields that pick a row of a table list its rows' names. */
static void names_match_tables(void) {
    char buf[64];
    const rt_field *fo = &rt_config_fields[RT_CFG_optimizer], *fs = &rt_config_fields[RT_CFG_schedule];
    for (int i = 0; i < RT_OPTIMIZER_COUNT; i++) CHECK(rt_name_at(fo->names, i, buf, sizeof buf) && strcmp(buf, rt_optimizers[i].name) == 0);
    CHECK(!rt_name_at(fo->names, RT_OPTIMIZER_COUNT, buf, sizeof buf), "optimizer names more than RT_OPTIMIZERS");
    for (int i = 0; i < RT_SCHEDULE_COUNT; i++) CHECK(rt_name_at(fs->names, i, buf, sizeof buf) && strcmp(buf, rt_schedules[i].name) == 0);
    CHECK(!rt_name_at(fs->names, RT_SCHEDULE_COUNT, buf, sizeof buf), "schedule names more than RT_SCHEDULES");
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "optim_ref.safetensors";
    char err[512];
    if (access(path, R_OK) != 0) { /* made by make_reference.py where PyTorch is */
        printf("SKIP: no reference values %s (run tests/optim/make_reference.py with PyTorch)\n", path);
        return 77;
    }
    rt_ckpt *c = rt_ckpt_load(path, err, sizeof err);
    REQUIRE(c, "%s", err);
    ref = c;
    names_match_tables();
    optimizer_case("sgd", (rt_optim){.optimizer = RT_OPTIMIZER_SGD, .lr = 0.1f, .momentum = 0.9f, .weight_decay = 0.01f});
    optimizer_case("adam", (rt_optim){.optimizer = RT_OPTIMIZER_ADAM, .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f,
                                      .weight_decay = 0.01f});
    optimizer_case("adamw", (rt_optim){.optimizer = RT_OPTIMIZER_ADAMW, .lr = 0.01f, .beta1 = 0.8f, .beta2 = 0.999f, .eps = 1e-6f,
                                       .weight_decay = 0.1f});
    optimizer_case("adamw_cosine", (rt_optim){.optimizer = RT_OPTIMIZER_ADAMW, .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f,
                                              .eps = 1e-8f, .weight_decay = (float)RT_ADAMW_WEIGHT_DECAY});
    schedules();
    rt_ckpt_free(c);
    return check_summary("optim");
}
