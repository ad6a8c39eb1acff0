/* rt_memory.c — the memory a run needs and the memory it may have.
 *
 * The plan (mmnet_shared.h: the compiler's arenas, the back end's
 * workspaces, the loader's batches, the parameters and their copies) is
 * compared with what the process may still allocate before any of it is
 * allocated, so that a batch too large for the machine is refused with a
 * message instead of ending in the kernel's OOM killer. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "mmrt.h"
#include "rt_optim.h"

void rt_memory_plan(const rt_model *m, int optimizer, rt_mem_plan *p) {
    memset(p, 0, sizeof *p);
    p->optim_buffers = rt_optim_is_adam(optimizer) ? 2 : 1;
    for (int i = 0; i < m->ninputs; i++) p->inputs += m->inputs[i].numel;
    p->params = m->params_floats;
    p->states = m->states_floats + 1;
    if (m->backend->memory) m->backend->memory(m, p);
}

static const char *human(char *buf, size_t n, double bytes) {
    if (bytes >= 1024.0 * 1024 * 1024) snprintf(buf, n, "%.2f GiB", bytes / (1024.0 * 1024 * 1024));
    else snprintf(buf, n, "%.1f MiB", bytes / (1024.0 * 1024));
    return buf;
}

/* A number of bytes: digits, optionally followed by K, M, G or T (powers of
 * 1024, as 512M or 2GiB); -1 if not. */
static double parse_size(const char *s) {
    if (!isdigit((unsigned char)s[0])) return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno) return -1;
    const char *u = *end ? strchr("KMGT", toupper((unsigned char)*end)) : NULL;
    if (u) {
        for (const char *k = "KMGT"; k <= u; k++) v *= 1024;
        end++;
        if (strcmp(end, "B") == 0 || strcmp(end, "iB") == 0) end += strlen(end);
    }
    return *end ? -1 : v;
}

/* A "Key:   123 kB" line of /proc/self/status or /proc/meminfo, in bytes; -1 if absent. */
static double proc_kb(const char *path, const char *key) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[256];
    double v = -1;
    size_t n = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, n) == 0 && line[n] == ':') {
            v = strtod(line + n + 1, NULL) * 1024;
            break;
        }
    fclose(f);
    return v;
}

/* The first number in a file (cgroup's memory.max, ...); -1 if none ("max"). */
static double file_number(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char buf[64] = "";
    char *ok = fgets(buf, sizeof buf, f);
    fclose(f);
    if (!ok || !isdigit((unsigned char)buf[0])) return -1;
    return strtod(buf, NULL);
}

/* "key value" in a cgroup's memory.stat; 0 if absent. */
static double stat_value(const char *dir, const char *key) {
    char path[4200], line[256];
    snprintf(path, sizeof path, "%s/memory.stat", dir);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    double v = 0;
    size_t n = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, n) == 0 && line[n] == ' ') {
            v = strtod(line + n + 1, NULL);
            break;
        }
    fclose(f);
    return v;
}

/* What the cgroup the process is in, and each of its ancestors, leaves of its
 * limit: the limit less its use, the page cache it could drop (inactive
 * files) not counted as use. v2: memory.max and memory.current; v1:
 * memory.limit_in_bytes and memory.usage_in_bytes. The least, or -1 when no
 * cgroup has a limit. */
static double cgroup_left(char *what, size_t n) {
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f) return -1;
    char line[4096], v2[4096] = "", v1[4096] = "";
    bool has_v2 = false, has_v1 = false;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (strncmp(line, "0::", 3) == 0) snprintf(v2, sizeof v2, "%s", line + 3), has_v2 = true;
        char *c = strstr(line, ":memory:");
        if (c) snprintf(v1, sizeof v1, "%s", c + 8), has_v1 = true;
    }
    fclose(f);
    double best = -1;
    for (int pass = 0; pass < 2; pass++) {
        bool two = pass == 0;
        if (two ? !has_v2 : !has_v1) continue;
        char rel[4096];
        snprintf(rel, sizeof rel, "%s", two ? v2 : v1);
        for (;;) {
            char dir[4200], path[4300];
            snprintf(dir, sizeof dir, "%s%s", two ? "/sys/fs/cgroup" : "/sys/fs/cgroup/memory", strcmp(rel, "/") == 0 ? "" : rel);
            snprintf(path, sizeof path, "%s/%s", dir, two ? "memory.max" : "memory.limit_in_bytes");
            double lim = file_number(path);
            snprintf(path, sizeof path, "%s/%s", dir, two ? "memory.current" : "memory.usage_in_bytes");
            double use = file_number(path);
            /* v1 reports "no limit" as a page-rounded 2^63 */
            if (lim > 0 && lim < 4e18 && use >= 0) {
                double cache = stat_value(dir, two ? "inactive_file" : "total_inactive_file");
                double left = lim - (use - cache < 0 ? 0 : use - cache);
                if (left < 0) left = 0;
                if (best < 0 || left < best) {
                    best = left;
                    char l[32];
                    snprintf(what, n, "the limit of cgroup %s, %s in %s/%s, less its use", rel, human(l, sizeof l, lim), dir,
                             two ? "memory.max" : "memory.limit_in_bytes");
                }
            }
            char *slash = strrchr(rel, '/');
            if (!slash || strcmp(rel, "/") == 0) break;
            if (slash == rel) snprintf(rel, sizeof rel, "/");
            else *slash = 0;
        }
    }
    return best;
}

double rt_memory_available(char *what, size_t n) {
    char buf[600], h[32];
    double best = -1; /* none yet */
    /* Each bound, the least kept: MMNET_MEMORY_LIMIT, cgroups, ulimit -v, MemAvailable. */
    const char *env = getenv("MMNET_MEMORY_LIMIT");
    if (env && *env) {
        double lim = parse_size(env);
        if (lim <= 0)
            rt_die("MMNET_MEMORY_LIMIT is '%s': give the memory this process may use in bytes, or with K, M, G or T (e.g. 512M, 2G)",
                   env);
        double rss = proc_kb("/proc/self/status", "VmRSS");
        best = lim - (rss > 0 ? rss : 0);
        if (best < 0) best = 0;
        snprintf(what, n, "MMNET_MEMORY_LIMIT=%s, of which the process uses %s", env, human(h, sizeof h, rss > 0 ? rss : 0));
    }
    double cg = cgroup_left(buf, sizeof buf);
    if (cg >= 0 && (best < 0 || cg < best)) best = cg, snprintf(what, n, "%s", buf);
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        double vm = proc_kb("/proc/self/status", "VmSize");
        double left = (double)rl.rlim_cur - (vm > 0 ? vm : 0);
        if (left < 0) left = 0;
        if (best < 0 || left < best) best = left, snprintf(what, n, "the address-space limit (ulimit -v) of %s less the process's %s",
                                                           human(buf, sizeof buf, (double)rl.rlim_cur), human(h, sizeof h, vm > 0 ? vm : 0));
    }
    double avail = proc_kb("/proc/meminfo", "MemAvailable");
    if (avail < 0) avail = (double)sysconf(_SC_AVPHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    if (avail > 0 && (best < 0 || avail < best)) best = avail, snprintf(what, n, "MemAvailable in /proc/meminfo");
    return best < 0 ? 0 : best;
}

void rt_memory_check(const rt_model *m, int optimizer, int batch) {
#ifdef _OPENMP
    int threads = omp_get_max_threads();
#else
    int threads = 1;
#endif
    rt_mem_plan p;
    rt_memory_plan(m, optimizer, &p);
    rt_mem_sizes need = rt_mem_bytes(&p, batch, threads);
    char what[700];
    double avail = rt_memory_available(what, sizeof what);
    if (need.total <= avail) return;
    long most = rt_mem_max_batch(&p, avail, threads);
    char a[32], b[32], c[32], d[32], e[32], f[32];
    char fit[128];
    if (most > 0) snprintf(fit, sizeof fit, "the largest batch that fits is %ld (--batch %ld)", most, most);
    else snprintf(fit, sizeof fit, "not even batch 1 fits");
    rt_die("batch %d needs %s of memory (%.0f bytes: activations %s, batches in flight %s, parameters with their gradients, "
           "optimizer state and copies %s, workspace for %d thread%s %s), but %s is available (%.0f bytes: %s): %s",
           batch, human(a, sizeof a, need.total), need.total, human(b, sizeof b, need.activations), human(c, sizeof c, need.batches),
           human(d, sizeof d, need.parameters), threads, threads == 1 ? "" : "s", human(e, sizeof e, need.workspace),
           human(f, sizeof f, avail), avail, what, fit);
}
