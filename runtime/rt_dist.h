/* rt_dist.h — data-parallel training across processes (mmc build --mpi).
 *
 * The runtime talks to the other processes of a run only through this
 * table of collectives, so libmmrt itself links no MPI: a program built
 * with --mpi links libmmrt_mpi (rt_mpi.c), whose rt_mpi_start, called by
 * the generated main before rt_main, starts MPI and sets rt_dist. Without
 * it rt_dist stays NULL and a run is the one process it always was.
 *
 * What a run of N ranks does (docs/training.md, "Data-parallel training"):
 * every rank holds the whole model and the same run state; each global
 * batch of B examples is cut into N consecutive shards, rank r taking
 * positions [r*Bg/N, (r+1)*Bg/N) of it (Bg: the batch's size, the last one
 * smaller); after the backward pass the gradients, the loss and the model
 * state (BatchNorm running statistics, gate means) are averaged across the
 * ranks weighted by each shard's size, which is the one-process mean over
 * the global batch. The update, the norms of the conditional learning
 * speed and the policy's decision then see the same numbers on every rank. */
#ifndef RT_DIST_H
#define RT_DIST_H

#include <stddef.h>

typedef struct {
    int rank, size;
    int local_size, local_rank;                        /* ranks on this machine, and this one's place among them */
    const char *name;                                  /* "mpi" */
    void (*sum_f)(float *buf, size_t n);               /* in place, every rank gets the sum */
    void (*sum_d)(double *buf, size_t n);
    void (*bcast)(void *buf, size_t bytes, int root);
    void (*barrier)(void);
    /* A sum in place started now and finished by finish_sums (every rank
     * starts the same sums in the same order): the gradient buckets of a
     * step, averaged while the backward pass goes on. poll lets the
     * transfers progress between kernels. */
    void (*start_sum_f)(float *buf, size_t n);
    void (*poll)(void);
    void (*finish_sums)(void);
    /* Stop every rank of the run with status `code` (the message is
     * already printed): an error on one rank must not leave the others
     * waiting in a collective. */
    void (*abort)(int code);                           /* does not return */
} rt_dist_ops;

/* NULL: one process. */
extern const rt_dist_ops *rt_dist;

/* The GPU side (mmc build --target cuda --mpi, rt_nccl.cu): the same
 * weighted average on device arenas, enqueued on a CUDA stream (and so
 * captured in the step's CUDA graph): each buffer scaled by the weight at
 * w (device memory), then summed across the ranks by NCCL. NULL: none. */
typedef struct {
    const char *name;                                  /* "nccl" */
    void (*average)(float *const *bufs, const size_t *n, int nbufs, const float *w, void *stream);
} rt_dist_dev_ops;
extern const rt_dist_dev_ops *rt_dist_dev;

/* rt_nccl.cu: with more than one rank, this rank's GPU (its place among
 * the machine's ranks), and a NCCL communicator over every rank, its id
 * sent from rank 0 over rt_dist; sets rt_dist_dev. */
void rt_nccl_start(void);

static inline int rt_rank(void) { return rt_dist ? rt_dist->rank : 0; }
static inline int rt_nranks(void) { return rt_dist ? rt_dist->size : 1; }
static inline int rt_is_root(void) { return rt_rank() == 0; }

/* The examples of a global batch of Bg that rank r of n reads: [lo, hi). */
static inline void rt_shard(int Bg, int r, int n, int *lo, int *hi) {
    *lo = (int)((long)Bg * r / n);
    *hi = (int)((long)Bg * (r + 1) / n);
}

/* After a training step on B of the global batch's examples (rt_util.c):
 * the loss (the mean over this rank's B), the gradients (likewise) and the
 * model state replaced on every rank by their means over the global batch,
 * each rank weighted by its share B / sum(B). Returns the global batch's
 * size. */
int rt_dist_average(int B, double *loss, float *grads, size_t ngrads, float *states, size_t nstates);
/* The same, after a step whose gradients [hi, ngrads) were already sent
 * in buckets, each weighted by B (rt_cpu.c): [0, hi) and the state are
 * weighted and sent likewise, every sum waited for, and the whole divided
 * by the global batch's size. */
int rt_dist_average_rest(int B, size_t hi, double *loss, float *grads, size_t ngrads, float *states, size_t nstates);
/* Seconds spent in rt_dist_average so far (waits for slower ranks included). */
extern double rt_dist_seconds;
/* The gradient buckets (--bucket-mb, in floats): the CPU back end starts
 * averaging the gradients from the end of the arena in buckets of at
 * least this size as soon as the backward pass has finished them (the
 * last layers' first, as PyTorch's DDP does), and averages the rest after
 * it; 0 (the default): all of them after it, in one blocking all-reduce,
 * which is faster on one machine's shared memory (bench/RESULTS.md). */
extern size_t rt_dist_bucket;
/* Buckets sent during backward passes so far (metrics.jsonl: allreduce_buckets). */
extern long rt_dist_buckets;

/* rt_mpi.c: MPI_Init, rt_dist set, MPI_Finalize at exit. */
void rt_mpi_start(int *argc, char ***argv);

#endif
