/* allreduce.c — the time of MPI_Allreduce (sum, float32, in place) at the
 * message sizes of mmnet's data-parallel steps: a model's gradient arena
 * (cgmnist 158,876 floats; ResNet-18 x2 23,773,008). Median of REPS.
 *   mpicc -O2 bench/allreduce.c -o allreduce && mpirun -np 2 ./allreduce 158876 23773008 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    for (int a = 1; a < argc; a++) {
        long n = atol(argv[a]);
        int reps = n > 1000000 ? 9 : 51;
        float *buf = malloc(sizeof(float) * (size_t)n);
        for (long i = 0; i < n; i++) buf[i] = 1e-3f * (float)(i % 1000);
        double *t = malloc(sizeof(double) * (size_t)reps);
        for (int r = 0; r < reps; r++) {
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime();
            MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            t[r] = MPI_Wtime() - t0;
        }
        qsort(t, (size_t)reps, sizeof *t, cmp);
        if (rank == 0)
            printf("%d ranks, %ld floats (%.2f MB): %.3f ms median, %.3f ms best, bus %.2f GB/s\n", size, n, n * 4e-6, t[reps / 2] * 1e3,
                   t[0] * 1e3, 2.0 * (size - 1) / size * n * 4 / t[reps / 2] * 1e-9);
        free(buf);
        free(t);
    }
    MPI_Finalize();
    return 0;
}
