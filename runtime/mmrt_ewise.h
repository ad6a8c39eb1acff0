/* mmrt_ewise.h — what the element-wise expressions of codegen/ewise.h call,
 * defined once for both back ends: mmrt_cpu.h and mmrt_cuda.h include it,
 * so one expression is valid C and valid CUDA and computes the same value
 * in both (the CPU path is the oracle the CUDA kernels are checked against).
 *
 * Generated C code compiled in double precision (MMNET_F64, the gradient
 * checks) takes the double functions; CUDA code is always float. */
#ifndef MMRT_EWISE_H
#define MMRT_EWISE_H

#include <math.h>
#include <stdint.h>

#ifdef MMNET_F64
#define MMK_EXP exp
#define MMK_SQRT sqrt
#else
#define MMK_EXP expf
#define MMK_SQRT sqrtf
#endif

#ifdef __CUDACC__
#define MMK_DEVICE __device__
#else
#define MMK_DEVICE
#endif

/* Dropout's keep mask: a counter-based hash, so the backward pass recomputes
 * exactly the forward pass's mask without storing it, on either back end. */
MMK_DEVICE static inline int mmk_keep(uint64_t seed, uint64_t step, uint32_t stream, uint64_t i, float p) {
    uint64_t z = seed * 0x9e3779b97f4a7c15ULL ^ (step + 1) * 0xbf58476d1ce4e5b9ULL ^ ((uint64_t)stream << 48) ^ i;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (float)(z >> 40) * (1.0f / 16777216.0f) >= p;
}

#endif
