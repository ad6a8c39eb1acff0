/* rt_schedule.h — the learning rate of every step (RT_SCHEDULES,
 * mmnet_shared.h), kept apart from the training loop so that a test can
 * compare it with PyTorch's schedulers step by step. */
#ifndef RT_SCHEDULE_H
#define RT_SCHEDULE_H

#include "mmrt.h"

/* The warm-up's length in steps: lr_warmup_steps, or lr_warmup_epochs
 * epochs of steps_per_epoch steps. */
long rt_warmup_steps(const rt_config *c, long steps_per_epoch);

/* The learning rate of step `step` (0-based, counted over the whole run) of
 * a run of c->epochs epochs of steps_per_epoch steps; base is the learning
 * rate the schedule starts from (c->opt.lr, lowered by plateau). */
double rt_schedule_lr(const rt_config *c, double base, long step, long steps_per_epoch);

/* NULL when the schedule fits a run of that length; otherwise why not
 * (into buf): a warm-up that takes the whole run. */
const char *rt_schedule_check(const rt_config *c, long steps_per_epoch, char *buf, size_t n);

#endif
