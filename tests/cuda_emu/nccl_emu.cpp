/* nccl_emu.cpp — NCCL as rt_nccl.cu uses it, on the CPU emulation of the
 * CUDA runtime: each rank is an MPI process and an all-reduce is an
 * MPI_Allreduce run where the stream runs it (at once, or when a captured
 * graph is launched). It checks what NCCL would refuse: an id not sent
 * from rank 0, ranks or counts that do not match, other types or
 * operations. It checks rt_nccl.cu and rt_cuda.cu's data-parallel step,
 * not NCCL's speed or its algorithms. */
#define OMPI_SKIP_MPICXX 1 /* the C interface only */
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>

#include "cuda_runtime_api.h"
#include "nccl.h"

void emu_enqueue(cudaStream_t st, std::function<void()> f);

struct ncclComm {
    int rank, size;
};

static void die(const char *msg) {
    fprintf(stderr, "nccl emulation: %s\n", msg);
    abort();
}

extern "C" {
ncclResult_t ncclGetUniqueId(ncclUniqueId *id) {
    memset(id, 0, sizeof *id);
    snprintf(id->internal, sizeof id->internal, "emu-nccl-id");
    return ncclSuccess;
}
ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId id, int rank) {
    int r, n;
    MPI_Comm_rank(MPI_COMM_WORLD, &r);
    MPI_Comm_size(MPI_COMM_WORLD, &n);
    if (strcmp(id.internal, "emu-nccl-id") != 0) die("ncclCommInitRank: the id did not come from ncclGetUniqueId on rank 0");
    if (r != rank || n != nranks) die("ncclCommInitRank: rank or size differ from the job's");
    *comm = new ncclComm{rank, nranks};
    return ncclSuccess;
}
ncclResult_t ncclAllReduce(const void *send, void *recv, size_t count, ncclDataType_t type, ncclRedOp_t op, ncclComm_t comm,
                           cudaStream_t stream) {
    if (!comm || type != ncclFloat || op != ncclSum) die("ncclAllReduce: only float sums on a communicator are emulated");
    if (count > (size_t)1 << 30) die("ncclAllReduce: count too large for the emulation");
    emu_enqueue(stream, [=]() {
        /* Every rank must reduce the same count: compare first. */
        long c = (long)count, lo, hi;
        MPI_Allreduce(&c, &lo, 1, MPI_LONG, MPI_MIN, MPI_COMM_WORLD);
        MPI_Allreduce(&c, &hi, 1, MPI_LONG, MPI_MAX, MPI_COMM_WORLD);
        if (lo != hi) die("ncclAllReduce: the ranks' counts differ");
        MPI_Allreduce(send == recv ? MPI_IN_PLACE : send, recv, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    });
    return ncclSuccess;
}
ncclResult_t ncclGroupStart(void) { return ncclSuccess; }
ncclResult_t ncclGroupEnd(void) { return ncclSuccess; }
const char *ncclGetErrorString(ncclResult_t r) { return r == ncclSuccess ? "no error" : "emulated NCCL error"; }
}
