/* rt_mpi.c — rt_dist over MPI (libmmrt_mpi, linked by mmc build --mpi).
 *
 * Started by the generated main before anything else, so a rank that
 * fails later (a bad flag, an unreadable file, a NaN loss) goes through
 * rt_die, which prints its message and calls MPI_Abort: mpirun then stops
 * every rank instead of leaving them in the next collective. Sums go
 * through MPI_Allreduce in chunks of at most 2^30 elements (its count is
 * an int). */
#include <mpi.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#include "mmrt.h"
#include "rt_dist.h"

#define CHUNK ((size_t)1 << 30)

static void check(int rc, const char *what) {
    if (rc == MPI_SUCCESS) return;
    char msg[MPI_MAX_ERROR_STRING];
    int n = 0;
    MPI_Error_string(rc, msg, &n);
    fprintf(stderr, "%s: error: %s failed: %s\n", rt_prog, what, msg);
    MPI_Abort(MPI_COMM_WORLD, 1);
    exit(1);
}

static void sum_f(float *buf, size_t n) {
    for (size_t o = 0; o < n; o += CHUNK)
        check(MPI_Allreduce(MPI_IN_PLACE, buf + o, (int)(n - o < CHUNK ? n - o : CHUNK), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD),
              "MPI_Allreduce");
}

static void sum_d(double *buf, size_t n) {
    for (size_t o = 0; o < n; o += CHUNK)
        check(MPI_Allreduce(MPI_IN_PLACE, buf + o, (int)(n - o < CHUNK ? n - o : CHUNK), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD),
              "MPI_Allreduce");
}

static void bcast(void *buf, size_t bytes, int root) {
    for (size_t o = 0; o < bytes; o += CHUNK)
        check(MPI_Bcast((char *)buf + o, (int)(bytes - o < CHUNK ? bytes - o : CHUNK), MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
}

static void barrier(void) { check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }

/* The sums started and not yet finished. */
#define MAX_PENDING 256
static MPI_Request pending[MAX_PENDING];
static int npending;

static void finish_sums(void) {
    if (npending) check(MPI_Waitall(npending, pending, MPI_STATUSES_IGNORE), "MPI_Waitall");
    npending = 0;
}

static void start_sum_f(float *buf, size_t n) {
    for (size_t o = 0; o < n; o += CHUNK) {
        if (npending == MAX_PENDING) finish_sums();
        check(MPI_Iallreduce(MPI_IN_PLACE, buf + o, (int)(n - o < CHUNK ? n - o : CHUNK), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                             &pending[npending++]),
              "MPI_Iallreduce");
    }
}

/* Open MPI moves a non-blocking collective on only inside MPI calls. */
static void poll(void) {
    int done = 0;
    if (npending) check(MPI_Testall(npending, pending, &done, MPI_STATUSES_IGNORE), "MPI_Testall");
    if (done) npending = 0;
}

static _Noreturn void stop_all(int code) {
    fflush(stdout);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}

static rt_dist_ops ops = {0, 1, 1, 0, "mpi", sum_f, sum_d, bcast, barrier, start_sum_f, poll, finish_sums, stop_all};

static void finish(void) {
    int done = 0;
    MPI_Finalized(&done);
    if (!done) MPI_Finalize();
}

void rt_mpi_start(int *argc, char ***argv) {
    int provided = 0;
    /* Only the main thread calls MPI; OpenMP and the loader's threads never do. */
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "error: MPI_Init failed\n");
        exit(1);
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &ops.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &ops.size);
    MPI_Comm local;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local) == MPI_SUCCESS) {
        MPI_Comm_size(local, &ops.local_size);
        MPI_Comm_rank(local, &ops.local_rank);
        MPI_Comm_free(&local);
    }
    rt_dist = &ops;
    atexit(finish);
    /* Rank 0 speaks for the run; the others keep stderr for their errors only. */
    if (ops.rank != 0 && !freopen("/dev/null", "w", stdout)) {
        fprintf(stderr, "error: cannot silence rank %d's output\n", ops.rank);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
}
