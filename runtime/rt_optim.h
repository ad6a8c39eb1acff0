/* rt_optim.h — the optimizer's rule for one element of a parameter, the one
 * definition that the C back end's update pass (rt_cpu.c) and the CUDA
 * back end's update kernel (rt_cuda.cu) both apply. Its settings are
 * rt_optim (mmnet_shared.h).
 *
 * SGD with momentum, weight decay and L1, as torch.optim.SGD (dampening 0):
 *   g  = dL/dw + l1 * sign(w)      (the L1 penalty is part of the loss)
 *   m  = momentum * m + g + wd * w
 *   w -= lr * m
 * The gradient is a step of its own because the update pass sums |g|^2 (and
 * |w|^2, before the update) for the conditional learning speed, and does so
 * also for the parameters a re-balancing step leaves unchanged. */
#ifndef RT_OPTIM_H
#define RT_OPTIM_H

#include "mmnet_shared.h"

#ifdef __CUDACC__
#define RT_OPTIM_FN static inline __host__ __device__
#else
#define RT_OPTIM_FN static inline
#endif

/* The gradient the update follows for an element w whose loss gradient is g. */
RT_OPTIM_FN mm_real rt_optim_grad(const rt_optim *o, mm_real w, mm_real g) {
    if (o->l1 != 0.0f) g += w > 0.0f ? o->l1 : w < 0.0f ? -o->l1 : 0.0f;
    return g;
}

/* The element's new value, from w and rt_optim_grad's g; updates its state
 * (the momentum buffer's element m). */
RT_OPTIM_FN mm_real rt_optim_update(const rt_optim *o, mm_real w, mm_real g, mm_real *m) {
    mm_real mi = o->momentum * *m + g + o->weight_decay * w;
    *m = mi;
    return w - o->lr * mi;
}

#endif
