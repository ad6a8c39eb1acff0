/* rt_optim.h — the optimizers' rules for one element of a parameter, the one
 * definition that the C back end's update pass (rt_cpu.c) and the CUDA
 * back end's update kernel (rt_cuda.cu) both apply. Their settings are
 * rt_optim (mmnet_shared.h); o->optimizer picks the rule (RT_OPTIMIZERS).
 *
 * Every rule first takes the gradient with the L1 penalty (part of the loss):
 *   g  = dL/dw + l1 * sign(w)
 * sgd, as torch.optim.SGD (dampening 0, no Nesterov); m: the momentum buffer
 *   m  = momentum * m + g + wd * w
 *   w -= lr * m
 * adam, as torch.optim.Adam (weight decay coupled: added to the gradient),
 * and adamw, as torch.optim.AdamW (decoupled: the weight shrinks first);
 * m and v: the first and second moments, t: the parameter's own count of
 * updates, this one included (PyTorch's state['step']):
 *   adam:  g  = g + wd * w                 adamw:  w = w * (1 - lr * wd)
 *   m  = m + (1 - beta1) * (g - m)
 *   v  = beta2 * v + (1 - beta2) * g * g
 *   w -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 * The bias corrections depend on t only, so they are computed once per
 * parameter and step (rt_optim_bias), in double as PyTorch does, and the
 * update reads them.
 *
 * The gradient is a step of its own because the update pass sums |g|^2 (and
 * |w|^2, before the update) for the conditional learning speed, and does so
 * also for the parameters a re-balancing step leaves unchanged. A parameter
 * that a step updates but whose gradient it does not compute (a re-balanced
 * gate) is updated with g = 0, as PyTorch updates a parameter whose gradient
 * was zeroed; one that a step does not update keeps its value, its moments
 * and its count, as PyTorch skips a parameter without a gradient. */
#ifndef RT_OPTIM_H
#define RT_OPTIM_H

#include <math.h>

#include "mmnet_shared.h"

#ifdef __CUDACC__
#define RT_OPTIM_FN static inline __host__ __device__
#else
#define RT_OPTIM_FN static inline
#endif

/* Whether the optimizer keeps a second buffer (Adam's second moment) and
 * counts each parameter's updates. */
RT_OPTIM_FN int rt_optim_is_adam(int optimizer) { return optimizer == RT_OPTIMIZER_ADAM || optimizer == RT_OPTIMIZER_ADAMW; }

/* The names of the optimizer's buffers in a checkpoint (PyTorch's state
 * keys): "optimizer.<name>.<parameter>"; the second is NULL for sgd. */
static inline const char *rt_optim_buffer_name(int optimizer, int i) {
    if (rt_optim_is_adam(optimizer)) return i == 0 ? "exp_avg" : "exp_avg_sq";
    return i == 0 ? "momentum" : NULL;
}

/* A parameter's bias corrections for its t-th update (t >= 1), as the
 * update reads them: lr / (1 - beta1^t) and sqrt(1 - beta2^t). lr is the
 * step's (o->lr). sgd ignores them. */
static inline void rt_optim_bias(const rt_optim *o, long long t, float out[2]) {
    double bc1 = 1.0 - pow((double)o->beta1, (double)t), bc2 = 1.0 - pow((double)o->beta2, (double)t);
    out[0] = (float)((double)o->lr / bc1);
    out[1] = (float)sqrt(bc2);
}

/* Before a step: count its update of every parameter it updates (update:
 * per parameter, NULL for all) in steps[], and each parameter's bias
 * corrections for it into bias[] (rt_hyper.bias). */
static inline void rt_optim_count(const rt_optim *o, int nparams, const unsigned char *update, long long *steps, float (*bias)[2]) {
    for (int p = 0; p < nparams; p++) {
        if (!update || update[p]) steps[p]++;
        rt_optim_bias(o, steps[p] > 0 ? steps[p] : 1, bias[p]);
    }
}

/* The gradient the update follows for an element w whose loss gradient is g. */
RT_OPTIM_FN mm_real rt_optim_grad(const rt_optim *o, mm_real w, mm_real g) {
    if (o->l1 != 0.0f) g += w > 0.0f ? o->l1 : w < 0.0f ? -o->l1 : 0.0f;
    return g;
}

/* The element's new value, from w and rt_optim_grad's g; updates its state
 * (the buffers' elements m and v). bias: rt_optim_bias's values for this
 * parameter (NULL: none, as after infinitely many steps). rt_optim_update
 * picks the rule; a loop over many elements may pick it once and call
 * rt_optim_sgd or rt_optim_adam (branch-free within, so it vectorises). */
RT_OPTIM_FN mm_real rt_optim_sgd(const rt_optim *o, mm_real w, mm_real g, mm_real *m) {
    mm_real mi = o->momentum * *m + g + o->weight_decay * w;
    *m = mi;
    return w - o->lr * mi;
}
RT_OPTIM_FN mm_real rt_optim_adam(const rt_optim *o, const float *bias, mm_real w, mm_real g, mm_real *m, mm_real *v) {
    if (o->optimizer == RT_OPTIMIZER_ADAM) g += o->weight_decay * w;
    else w *= (mm_real)1 - o->lr * o->weight_decay;
    mm_real mi = *m + ((mm_real)1 - o->beta1) * (g - *m);
    mm_real vi = *v * o->beta2 + ((mm_real)1 - o->beta2) * g * g;
    *m = mi;
    *v = vi;
    mm_real step = bias ? bias[0] : o->lr, bc2 = bias ? bias[1] : 1.0f;
#if defined(__CUDA_ARCH__) || !defined(MMNET_F64)
    mm_real denom = sqrtf(vi) / bc2 + o->eps;
#else
    mm_real denom = sqrt(vi) / bc2 + o->eps;
#endif
    return w - step * mi / denom;
}
RT_OPTIM_FN mm_real rt_optim_update(const rt_optim *o, const float *bias, mm_real w, mm_real g, mm_real *m, mm_real *v) {
    return rt_optim_is_adam(o->optimizer) ? rt_optim_adam(o, bias, w, g, m, v) : rt_optim_sgd(o, w, g, m);
}

#endif
