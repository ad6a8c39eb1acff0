/* rt_schedule.c — the learning rate of every step (rt_schedule.h).
 *
 * A warm-up of W steps (warmup(steps=W), or warmup(epochs=E): E epochs of
 * steps) comes first: step s < W takes base * (s + 1) / W, PyTorch's
 * LinearLR(start_factor=1/W, total_iters=W-1). The schedule then runs on the
 * steps t = s - W that follow, as PyTorch's SequentialLR([warmup, schedule],
 * milestones=[W]) with both stepped after every step:
 *   constant, plateau  base (plateau lowers base itself, after epochs
 *                      without a lower training loss: rt_train.c)
 *   step(every, gamma) base * gamma^floor(t / (every * steps_per_epoch)),
 *                      StepLR(step_size=every epochs of steps)
 *   cosine(min_lr)     min_lr + (base - min_lr) * (1 + cos(pi * t / T)) / 2
 *                      over the T = epochs * steps_per_epoch - W steps
 *                      after the warm-up, CosineAnnealingLR(T_max=T)
 * Everything is a function of the step, so a resumed run takes the same
 * learning rates as an uninterrupted one. */
#include <math.h>
#include <stdio.h>

#include "rt_schedule.h"

long rt_warmup_steps(const rt_config *c, long steps_per_epoch) {
    return c->lr_warmup_steps > 0 ? (long)c->lr_warmup_steps : (long)c->lr_warmup_epochs * steps_per_epoch;
}

double rt_schedule_lr(const rt_config *c, double base, long step, long steps_per_epoch) {
    long w = rt_warmup_steps(c, steps_per_epoch);
    if (step < w) return base * (double)(step + 1) / (double)w;
    long t = step - w;
    switch (c->schedule) {
    case RT_SCHEDULE_STEP: return base * pow(c->step_gamma, (double)(t / ((long)c->step_every * steps_per_epoch)));
    case RT_SCHEDULE_COSINE: {
        long total = (long)c->epochs * steps_per_epoch - w;
        if (total < 1) total = 1;
        return c->min_lr + (base - c->min_lr) * (1.0 + cos(M_PI * (double)t / (double)total)) / 2.0;
    }
    default: return base;
    }
}

const char *rt_schedule_check(const rt_config *c, long steps_per_epoch, char *buf, size_t n) {
    long w = rt_warmup_steps(c, steps_per_epoch), total = (long)c->epochs * steps_per_epoch;
    if (w < total) return NULL;
    if (c->lr_warmup_steps > 0)
        snprintf(buf, n, "the learning rate's warm-up (%ld steps) is as long as the run or longer (%d epochs of %ld steps: %ld)", w,
                 c->epochs, steps_per_epoch, total);
    else
        snprintf(buf, n, "the learning rate's warm-up (%d epochs) is as long as the run or longer (%d epochs)", c->lr_warmup_epochs,
                 c->epochs);
    return buf;
}
