/* info.c — `mmc info`: what a model is made of, for people. */
#include <stdio.h>
#include <string.h>

#include "../codegen/codegen.h"
#include "../passes/passes.h"
#include "driver.h"

static size_t params_where(const IrProgram *p, int branch, int fusion) {
    size_t t = 0;
    for (int i = 0; i < p->params.n; i++) {
        const IrParam *pr = IR_PARAM(p, i);
        if (fusion >= 0 ? pr->fusion == fusion : pr->branch == branch && (pr->fusion < 0 || IR_FUSION(p, pr->fusion)->kind == FUSE_SE))
            t += pr->numel;
    }
    return t;
}

static const char *dims(const int *s, int n) {
    const char *r = "[";
    for (int i = 0; i < n; i++) r = arena_printf(mm_arena, "%s%s%d", r, i ? "," : "", s[i]);
    return arena_printf(mm_arena, "%s]", r);
}

void print_info(FILE *out, const IrProgram *p) {
    fprintf(out, "model %s (%s)\n", p->name, p->src->path);
    fprintf(out, "inputs:\n");
    for (int i = 0; i < p->inputs.n; i++) {
        const IrInput *in = IR_INPUT(p, i);
        fprintf(out, "  %-10s %s\n", in->name, dims(in->shape, in->ndim));
    }
    fprintf(out, "branches:\n");
    for (int b = 0; b < p->branches.n; b++) {
        const IrBranch *br = IR_BRANCH(p, b);
        int convs = 0, se = 0;
        for (int i = 0; i < p->fwd->nodes.n; i++) {
            const IrNode *n = IR_NODE(p->fwd, i);
            if (n->branch == b && n->op == OP_CONV) convs++;
        }
        for (int f = 0; f < p->fusions.n; f++) se += IR_FUSION(p, f)->kind == FUSE_SE && IR_FUSION(p, f)->branch[0] == b;
        fprintf(out, "  %-10s on %-8s %3d conv%s", br->name, IR_INPUT(p, br->input)->name, convs, convs == 1 ? " " : "s");
        if (se) fprintf(out, ", %d se", se);
        fprintf(out, "   parameters %zu\n", params_where(p, b, -1));
    }
    int nm = 0;
    for (int f = 0; f < p->fusions.n; f++) nm += IR_FUSION(p, f)->kind == FUSE_MMTM;
    fprintf(out, "fusion:%s\n", nm ? "" : " none");
    for (int f = 0; f < p->fusions.n; f++) {
        const IrFusion *fu = IR_FUSION(p, f);
        if (fu->kind != FUSE_MMTM) continue;
        fprintf(out, "  %-10s", fu->name);
        for (int i = 0; i < fu->nb; i++) fprintf(out, "%s%s (%d ch)", i ? " + " : "", fu->point[i], fu->chan[i]);
        fprintf(out, "  hidden %d%s   parameters %zu\n", fu->hidden, fu->double_sigmoid ? "  2*sigmoid gates" : "",
                params_where(p, -1, f));
    }
    fprintf(out, "heads:\n");
    for (int b = 0; b < p->branches.n; b++) {
        const IrBranch *br = IR_BRANCH(p, b);
        if (br->headless)
            fprintf(out, "  %-10s none: its features %s feed a fusion head\n", br->name, ir_shape_str(br->out));
        else if (br->head)
            fprintf(out, "  %-10s linear %d -> %d\n", br->name, br->head->src[0]->shape[1], br->head->shape[1]);
        else
            fprintf(out, "  %-10s %s -> %d logits\n", br->name, ir_op_name[br->out->op], br->out->shape[1]);
    }
    for (int h = 0; h < p->heads.n; h++) {
        const IrHead *hd = IR_HEAD(p, h);
        size_t n = 0, len = strlen(hd->name);
        for (int i = 0; i < p->params.n; i++) {
            const IrParam *pr = IR_PARAM(p, i);
            if (pr->branch < 0 && pr->fusion < 0 && strncmp(pr->name, hd->name, len) == 0 && pr->name[len] == '.') n += pr->numel;
        }
        fprintf(out, "  %-10s fuse %s -> %d logits   parameters %zu (in no group)\n", hd->name, hd->text, hd->out->shape[1], n);
    }
    fprintf(out, "prediction: %s\n", p->predict_text);
    fprintf(out, "loss: %s\n", p->loss_text);
    fprintf(out, "training:\n");
    train_print(out, p);
    fprintf(out, "groups (conditional learning speed, ALGORITHMS 4):\n");
    for (int g = 0; g < 2 * p->branches.n; g++)
        fprintf(out, "  %-16s %zu\n", ir_group_name(p, g), ir_group_params(p, 1u << g));
    size_t total = 0;
    for (int i = 0; i < p->params.n; i++) total += IR_PARAM(p, i)->numel;
    fprintf(out, "parameters: %zu\n", total);
}

static const char *mib(double bytes) {
    if (bytes >= 1024.0 * 1024 * 1024) return arena_printf(mm_arena, "%.2f GiB", bytes / (1024.0 * 1024 * 1024));
    return arena_printf(mm_arena, "%.1f MiB", bytes / (1024.0 * 1024));
}

/* The memory plan for a batch (mmnet_shared.h), as the program built for
 * the CPU counts it before it allocates (runtime/rt_memory.c): the
 * planned arenas, the C back end's workspaces, the loader's batches. */
void print_memory(FILE *out, const IrProgram *p, long batch, int threads) {
    CgOptions o = {false, p->src->path, false, false};
    CgOutput gen = {0};
    cg_c_backend.emit(p, &o, &gen);
    rt_mem_plan m = {0};
    for (int i = 0; i < p->graphs.n; i++) {
        const IrGraph *g = p->graphs.v[i];
        if (g->act_floats > m.act) m.act = g->act_floats;
        if (g->fixed_floats > m.fixed) m.fixed = g->fixed_floats;
    }
    for (int i = 0; i < p->inputs.n; i++) {
        const IrInput *in = IR_INPUT(p, i);
        size_t n = 1;
        for (int d = 0; d < in->ndim; d++) n *= (size_t)in->shape[d];
        m.inputs += n;
    }
    m.params = p->params_floats;
    m.optim_buffers = p->cfg.opt.optimizer == RT_OPTIMIZER_ADAM || p->cfg.opt.optimizer == RT_OPTIMIZER_ADAMW ? 2 : 1;
    m.states = p->states_floats + 1;
    m.scratch = gen.scratch_floats;
    m.work = gen.work_floats;
    for (int i = 0; i < gen.n; i++) buf_free(&gen.files[i].text);
    rt_mem_sizes s = rt_mem_bytes(&m, batch, threads);
    fprintf(out, "memory at batch %ld, %d thread%s (C back end): %s (%.0f bytes)\n", batch, threads, threads == 1 ? "" : "s",
            mib(s.total), s.total);
    fprintf(out, "  activations           %12s  (%zu floats an example)\n", mib(s.activations), m.act);
    fprintf(out, "  batches in flight     %12s  (%d of the loader's, %zu input floats an example)\n", mib(s.batches), RT_LOADER_SLOTS,
            m.inputs);
    fprintf(out, "  parameters and state  %12s  (with gradients, the optimizer's buffers and the host's copies)\n", mib(s.parameters));
    fprintf(out, "  workspace             %12s  (%s a thread)\n", mib(s.workspace), mib(4.0 * (double)m.scratch));
    fprintf(out, "  the data set comes on top; a training program refuses a batch whose plan exceeds the memory it may use\n");
}

/* The names are the checkpoints' (and a PyTorch state dict's, once renamed
 * to them): a user maps another framework's weights onto these. */
void print_params(FILE *out, const IrProgram *p) {
    for (int i = 0; i < p->params.n; i++) {
        const IrParam *pr = IR_PARAM(p, i);
        fprintf(out, "%s %s\n", pr->name, dims(pr->shape, pr->ndim));
    }
    for (int i = 0; i < p->states.n; i++) {
        const IrState *st = IR_STATE(p, i);
        fprintf(out, "%s %s state\n", st->name, dims(st->shape, st->ndim));
    }
}
