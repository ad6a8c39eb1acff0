#ifndef EMU_CUDA_RUNTIME_H
#define EMU_CUDA_RUNTIME_H
#include "cuda_runtime_api.h"
#include <math.h>
#include <functional>
#define __global__
#define __device__
#define __host__
#define __shared__ static
struct dim3 { unsigned x, y, z; dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {} };
struct emu_uint3 { unsigned x, y, z; };
extern thread_local emu_uint3 emu_tidx, emu_bidx;
#define threadIdx emu_tidx
#define blockIdx emu_bidx
extern dim3 blockDim, gridDim;
void __syncthreads(void);
struct EmuCfg { dim3 g, b; cudaStream_t s; };
static inline EmuCfg EMU_CFG(dim3 g, dim3 b, size_t shm = 0, cudaStream_t s = 0) { (void)shm; return EmuCfg{g, b, s}; }
void emu_launch(EmuCfg c, std::function<void()> body, const char *name);
#define EMU_LAUNCH(cfg, f, ...) emu_launch(cfg, [=]() { f(__VA_ARGS__); }, #f)
#endif
