/* test_memory.c — the memory plan's arithmetic (mmnet_shared.c) and the
 * memory available (rt_memory.c): the largest batch said to fit is the
 * largest whose plan is within the memory given; MMNET_MEMORY_LIMIT,
 * with its units, bounds what the process is told it may allocate. */
#include <stdlib.h>

#include "../check.h"
#include "mmrt.h"

int main(void) {
    /* cgmnist's plan (mmc info examples/cgmnist.mmnet --batch 128). */
    rt_mem_plan p = {.act = 91760, .inputs = 3136, .fixed = 4096, .params = 158876, .states = 1000, .scratch = 30000, .work = 400000};
    rt_mem_sizes s = rt_mem_bytes(&p, 128, 2);
    CHECK_CLOSE(s.activations, 4.0 * 91760 * 128, 0, 0);
    CHECK_CLOSE(s.batches, 4.0 * RT_LOADER_SLOTS * 3137 * 128, 0, 0);
    CHECK_CLOSE(s.parameters, 4.0 * (6 * 158876 + 3 * 1000), 0, 0);
    CHECK_CLOSE(s.workspace, 4.0 * (4096 + 400000 + 2 * 30000), 0, 0);
    CHECK_CLOSE(s.total, s.activations + s.batches + s.parameters + s.workspace, 0, 0);
    CHECK_CLOSE(s.per_example, 4.0 * (91760 + RT_LOADER_SLOTS * 3137), 0, 0);
    /* The largest batch that fits, for budgets around each batch's plan. */
    for (long b = 1; b <= 70000; b = b * 3 + 1)
        for (int d = -1; d <= 1; d++) {
            double avail = rt_mem_bytes(&p, b, 2).total + d;
            long most = rt_mem_max_batch(&p, avail, 2);
            CHECK(rt_mem_bytes(&p, most, 2).total <= avail || most == 0, "batch %ld: %ld does not fit", b, most);
            CHECK(rt_mem_bytes(&p, most + 1, 2).total > avail, "batch %ld: %ld + 1 fits too", b, most);
            CHECK(most == (d < 0 ? b - 1 : b), "budget of batch %ld %+d bytes: %ld", b, d, most);
        }
    CHECK(rt_mem_max_batch(&p, 1000, 2) == 0, "a budget below the fixed part fits no batch");

    /* MMNET_MEMORY_LIMIT: the limit less what the process holds. */
    char what[700];
    const char *sizes[] = {"64M", "64MiB", "65536K", "67108864", "0.0625G"};
    for (int i = 0; i < 5; i++) {
        setenv("MMNET_MEMORY_LIMIT", sizes[i], 1);
        double a = rt_memory_available(what, sizeof what);
        CHECK(a <= 64.0 * 1024 * 1024 && a >= 0, "MMNET_MEMORY_LIMIT=%s: %.0f bytes available", sizes[i], a);
        /* (any machine that runs the tests has more than 64 MiB otherwise) */
        char want[64];
        snprintf(want, sizeof want, "MMNET_MEMORY_LIMIT=%s,", sizes[i]);
        CHECK(strstr(what, want) != NULL, "the bound is not the variable's: %s", what);
    }
    unsetenv("MMNET_MEMORY_LIMIT");
    double all = rt_memory_available(what, sizeof what);
    CHECK(all > 0, "nothing available without a limit (%s)", what);
    return check_summary("memory plan");
}
