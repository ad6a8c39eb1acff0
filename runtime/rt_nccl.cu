/* rt_nccl.cu — the GPU side of data-parallel training (libmmrt_nccl,
 * linked by mmc build --target cuda --mpi): NCCL all-reduces on the
 * device's gradient and state arenas, MPI (rt_dist) only to start the
 * ranks and to send NCCL's id from rank 0 to the others.
 *
 * Each rank drives one GPU: the i-th rank on a machine takes its i-th
 * device. NCCL does not run two ranks on one device, so a machine with
 * fewer GPUs than ranks is refused at start. The average is enqueued on
 * the step's stream between the backward pass and the update, so it is
 * captured in the step's CUDA graph with the rest (NCCL 2.9 and later). */
#include <cuda_runtime.h>
#include <nccl.h>

extern "C" {
#include "mmrt.h"
#include "rt_dist.h"
}

static ncclComm_t comm;

static void nccl_check(ncclResult_t r, const char *what) {
    if (r != ncclSuccess) rt_die("%s failed: %s", what, ncclGetErrorString(r));
}

static void cuda_check(cudaError_t r, const char *what) {
    if (r != cudaSuccess) rt_die("%s failed: %s", what, cudaGetErrorString(r));
}

/* x[i] *= *w: a rank's mean over its examples, weighted by its share. */
__global__ static void scale_kernel(float *x, size_t n, const float *w) {
    const float s = *w;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) x[i] *= s;
}

static void average(float *const *bufs, const size_t *n, int nbufs, const float *w, void *stream) {
    cudaStream_t s = (cudaStream_t)stream;
    for (int i = 0; i < nbufs; i++) {
        float *x = bufs[i];
        const size_t cnt = n[i];
        if (!cnt) continue;
        size_t blocks = (cnt + 255) / 256;
        scale_kernel<<<(unsigned)(blocks < 4096 ? blocks : 4096), 256, 0, s>>>(x, cnt, w);
        cuda_check(cudaGetLastError(), "the gradients' scaling kernel");
    }
    nccl_check(ncclGroupStart(), "ncclGroupStart");
    for (int i = 0; i < nbufs; i++)
        if (n[i]) nccl_check(ncclAllReduce(bufs[i], bufs[i], n[i], ncclFloat, ncclSum, comm, s), "ncclAllReduce");
    nccl_check(ncclGroupEnd(), "ncclGroupEnd");
}

static const rt_dist_dev_ops ops = {"nccl", average};

extern "C" void rt_nccl_start(void) {
    if (!rt_dist || rt_dist->size < 2) return; /* one process: nothing to share */
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0)
        rt_die("no CUDA device found (this program was built with mmc build --target cuda --mpi)");
    if (rt_dist->local_size > ndev)
        rt_die("%d ranks on this machine but %d GPU%s: NCCL needs a GPU of its own for each rank (mpirun -np at most %d per machine)",
               rt_dist->local_size, ndev, ndev == 1 ? "" : "s", ndev);
    cuda_check(cudaSetDevice(rt_dist->local_rank), "cudaSetDevice");
    ncclUniqueId id;
    if (rt_dist->rank == 0) nccl_check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    rt_dist->bcast(&id, sizeof id, 0);
    nccl_check(ncclCommInitRank(&comm, rt_dist->size, id, rt_dist->rank), "ncclCommInitRank");
    rt_dist_dev = &ops;
}
