/* test_wait.c — rt_wait_policy (rt_util.c): with the passive policy the
 * program sets by default, the OpenMP threads left idle after a parallel
 * region use no CPU while the main thread does something else (LLVM's
 * libomp spins them for 200 ms by default, which on a shared machine takes
 * the cores the other threads and processes need).
 *
 *   test_wait            the default of ./prog train: passive
 *   test_wait active     --wait active: prints the CPU time, checks nothing
 *                        about it (how long a runtime spins is its own)
 *
 * It measures the process's CPU time over 300 ms in which the main thread
 * sleeps after a parallel region on 2 threads. */
#include <stdbool.h>
#include <sys/resource.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "../check.h"
#include "mmrt.h"

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

int main(int argc, char **argv) {
    bool active = argc > 1 && strcmp(argv[1], "active") == 0;
    rt_wait_policy(active ? RT_WAIT_ACTIVE : RT_WAIT_PASSIVE, true);
#ifdef _OPENMP
    omp_set_num_threads(2);
    volatile double sink = 0;
    for (int rep = 0; rep < 3; rep++) {
        #pragma omp parallel
        {
            double s = 0;
            for (int i = 0; i < 2000000; i++) s += i * 1e-9;
            #pragma omp atomic
            sink += s;
        }
    }
    double c0 = cpu_s();
    struct timespec ts = {0, 300000000};
    nanosleep(&ts, NULL);
    double idle = cpu_s() - c0;
    printf("wait %s: %.0f ms of CPU while idle for 300 ms after a parallel region\n", active ? "active" : "passive", idle * 1e3);
    if (!active) CHECK(idle < 0.05, "idle threads used %.0f ms of CPU in 300 ms: they spin", idle * 1e3);
#else
    printf("built without OpenMP: nothing to wait\n");
#endif
    return check_summary("wait policy");
}
