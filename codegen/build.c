/* build.c — `mmc emit` and `mmc build`: run a back end, write its sources
 * (only once generation succeeded), and for `build` compile and link them
 * with the runtime into one program. */
#include <errno.h>
#include <limits.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "codegen.h"

#ifndef MMNET_BUILD_RUNTIME_INCLUDE
#define MMNET_BUILD_RUNTIME_INCLUDE ""
#endif
#ifndef MMNET_BUILD_COMMON_INCLUDE
#define MMNET_BUILD_COMMON_INCLUDE ""
#define MMNET_BUILD_RUNTIME_LIB ""
#define MMNET_BUILD_RUNTIME_CUDA_LIB ""
#endif
/* The libraries the runtime links besides OpenMP's (zlib, cJSON, the
 * image and video decoders, threads), as CMake found them, blank-separated. */
#ifndef MMNET_BUILD_RUNTIME_LIBS
#define MMNET_BUILD_RUNTIME_LIBS "-lz -lcjson -lspng -lturbojpeg -lavformat -lavcodec -lswscale -lavutil -lpthread"
#endif
/* What `mmc build --mpi` links besides libmmrt_mpi.a (next to libmmrt.a):
 * the MPI library CMake's find_package(MPI) found, blank-separated; empty
 * when mmnet was built without MPI. */
#ifndef MMNET_BUILD_MPI_LIBS
#define MMNET_BUILD_MPI_LIBS ""
#endif
#ifndef MMNET_BUILD_OMP_LIB
#define MMNET_BUILD_OMP_LIB "-lgomp"
#endif
#ifndef MMNET_BUILD_CC
#define MMNET_BUILD_CC ""
#endif

static int mkdir_p(const char *path) {
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0777) && errno != EEXIST) return -1;
            *p = '/';
        }
    if (mkdir(tmp, 0777) && errno != EEXIST) return -1;
    return 0;
}

static int write_file(const char *dir, const CgFile *f) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, f->name);
    FILE *out = fopen(path, "w");
    if (!out) {
        fprintf(stderr, "mmc: error: cannot write '%s': %s\n", path, strerror(errno));
        return -1;
    }
    size_t n = fwrite(f->text.s, 1, f->text.n, out);
    if (fclose(out) != 0 || n != f->text.n) {
        fprintf(stderr, "mmc: error: cannot write '%s': %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

static bool exists(const char *p) { return access(p, F_OK) == 0; }

static bool on_path(const char *prog) {
    const char *path = getenv("PATH");
    if (!path) return false;
    char buf[PATH_MAX];
    for (const char *p = path; *p;) {
        const char *e = strchr(p, ':');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        snprintf(buf, sizeof buf, "%.*s/%s", (int)n, p, prog);
        if (access(buf, X_OK) == 0) return true;
        if (!e) break;
        p = e + 1;
    }
    return false;
}

/* Appends MMNET_BUILD_RUNTIME_LIBS's words to argv at k; returns the new k. */
/* The words of `text` (a copy) at argv[k..], at most up to max. */
static int add_words(char **argv, int k, int max, const char *text) {
    char *t = arena_printf(mm_arena, "%s", text);
    for (char *w = strtok(t, " "); w && k < max; w = strtok(NULL, " ")) argv[k++] = w;
    return k;
}

static int add_runtime_libs(char **argv, int k, int max) {
    static char libs[] = MMNET_BUILD_RUNTIME_LIBS;
    static char *words[64];
    static int nwords = -1;
    if (nwords < 0) {
        nwords = 0;
        for (char *w = strtok(libs, " "); w && nwords < 64; w = strtok(NULL, " ")) words[nwords++] = w;
    }
    for (int i = 0; i < nwords && k < max; i++) argv[k++] = words[i];
    return k;
}

/* Where the runtime's headers and library are: $MMNET_HOME, else next to
 * this mmc (an installed tree: ../include/mmnet, ../lib/mmnet), else the
 * build tree mmc was built in. The headers the runtime shares with the
 * compiler (common/) are installed with the runtime's; in the build tree
 * they are a folder of their own, `common`. */
static void find_runtime(char *inc, char *common, char *lib, char *culib, size_t n) {
    const char *home = getenv("MMNET_HOME");
    if (home) {
        snprintf(inc, n, "%s/include/mmnet", home);
        snprintf(common, n, "%s", inc);
        snprintf(lib, n, "%s/lib/mmnet/libmmrt.a", home);
        snprintf(culib, n, "%s/lib/mmnet/libmmrt_cuda.a", home);
        return;
    }
    char self[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len > 0) {
        self[len] = 0;
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = 0;
            snprintf(inc, n, "%s/../include/mmnet", self);
            snprintf(lib, n, "%s/../lib/mmnet/libmmrt.a", self);
            snprintf(culib, n, "%s/../lib/mmnet/libmmrt_cuda.a", self);
            snprintf(common, n, "%s", inc);
            if (exists(lib) && exists(inc)) return;
        }
    }
    snprintf(inc, n, "%s", MMNET_BUILD_RUNTIME_INCLUDE);
    snprintf(common, n, "%s", MMNET_BUILD_COMMON_INCLUDE);
    snprintf(lib, n, "%s", MMNET_BUILD_RUNTIME_LIB);
    snprintf(culib, n, "%s", MMNET_BUILD_RUNTIME_CUDA_LIB);
}

const char *cg_c_compiler(const char *cc) {
    const char *env = getenv("MMNET_CC");
    /* By default the compiler that built the runtime: its OpenMP is the
     * one the runtime links, and kernels compiled against another
     * (clang's libomp with gcc's libgomp) run two thread pools on the
     * same cores: cgmnist's bench, measured by hand on the 2-core VM,
     * gave 1190-1290 samples/s against 1720-1780 with one runtime. */
    const char *built = MMNET_BUILD_CC;
    return cc                                   ? cc
           : env                                ? env
           : built[0] && access(built, X_OK) == 0 ? built
           : on_path("clang")                   ? "clang"
           : on_path("gcc")                     ? "gcc"
                                                : "cc";
}

bool cg_include_flags(char *inc, char *common, size_t n) {
    char i[PATH_MAX], c[PATH_MAX], lib[PATH_MAX], culib[PATH_MAX];
    find_runtime(i, c, lib, culib, sizeof i);
    snprintf(inc, n, "-I%s", i);
    snprintf(common, n, "-I%s", c);
    return exists(i) && exists(c);
}

/* Start argv; its pid, or -1. */
static pid_t spawn(char *const argv[], bool show) {
    if (show) {
        for (int i = 0; argv[i]; i++) fprintf(stderr, "%s%s", i ? " " : "", argv[i]);
        fputc('\n', stderr);
    }
    pid_t pid = fork();
    if (pid == 0) {
        execvp(argv[0], argv);
        fprintf(stderr, "mmc: error: cannot run '%s': %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

static int run(char *const argv[], bool show) {
    if (show) {
        for (int i = 0; argv[i]; i++) fprintf(stderr, "%s%s", i ? " " : "", argv[i]);
        fputc('\n', stderr);
    }
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        execvp(argv[0], argv);
        fprintf(stderr, "mmc: error: cannot run '%s': %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* The GPU's architecture from nvidia-smi, e.g. "sm_90"; NULL when none. */
static const char *detect_arch(void) {
    FILE *f = popen("nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null", "r");
    if (!f) return NULL;
    char line[64] = "";
    const char *r = NULL;
    if (fgets(line, sizeof line, f)) {
        int maj = 0, min = 0;
        if (sscanf(line, "%d.%d", &maj, &min) == 2) r = arena_printf(mm_arena, "sm_%d%d", maj, min);
    }
    pclose(f);
    return r;
}

/* For `build`, frees the compilation's arena (p with it) once the sources
 * are written. */
int mmc_emit_build(const IrProgram *p, const char *cmd, const char *out, const char *target, const char *arch,
                   const char *keep, const char *cc, bool profile, bool use_cublas, bool use_cudnn, bool mpi) {
    const CgBackend *be = strcmp(target, "cuda") == 0 ? &cg_cuda_backend : &cg_c_backend;
    bool cuda = be == &cg_cuda_backend;
    CgOptions o = {profile, p->src->path, use_cublas, use_cudnn};
    CgOutput gen = {0};
    be->emit(p, &o, &gen);
    char names[8][64];
    int rc = 0;
    const char *dir = strcmp(cmd, "emit") == 0 ? out : keep;
    char tmpdir[] = "/tmp/mmc-build-XXXXXX";
    if (!dir) {
        if (!mkdtemp(tmpdir)) {
            fprintf(stderr, "mmc: error: cannot create a temporary directory: %s\n", strerror(errno));
            rc = 1;
            goto done;
        }
        dir = tmpdir;
    } else if (mkdir_p(dir) != 0) {
        fprintf(stderr, "mmc: error: cannot create '%s': %s\n", dir, strerror(errno));
        rc = 1;
        goto done;
    }
    for (int i = 0; i < gen.n; i++)
        if (write_file(dir, &gen.files[i]) != 0) { rc = 1; goto done; }
    if (strcmp(cmd, "emit") == 0) {
        for (int i = 0; i < gen.n; i++) printf("%s/%s\n", dir, gen.files[i].name);
        goto done;
    }
    /* What the compilers need is on disk: give the memory of the IR and of
     * the sources back before they run (for a large model, hundreds of
     * megabytes that would otherwise sit beside the compilers'). Only
     * the file names are still needed. */
    for (int i = 0; i < gen.n; i++) {
        buf_free(&gen.files[i].text);
        snprintf(names[i], sizeof names[i], "%s", gen.files[i].name);
        gen.files[i].name = names[i];
    }
    p = NULL;
    arena_free(mm_arena);
#ifdef __GLIBC__
    malloc_trim(0);
#endif
    {
        char inc[PATH_MAX], common[PATH_MAX], lib[PATH_MAX], culib[PATH_MAX];
        find_runtime(inc, common, lib, culib, sizeof inc);
        if (!exists(lib) || !exists(inc)) {
            fprintf(stderr, "mmc: error: cannot find the mmnet runtime (looked for %s); set MMNET_HOME to the install prefix\n", lib);
            rc = 1;
            goto done;
        }
        /* --mpi: libmmrt_mpi.a beside libmmrt.a, and MPI's own library. */
        char mpilib[PATH_MAX];
        snprintf(mpilib, sizeof mpilib, "%s", lib);
        char *slash = strrchr(mpilib, '/');
        snprintf(slash ? slash + 1 : mpilib, sizeof mpilib - (size_t)(slash ? slash + 1 - mpilib : 0), "libmmrt_mpi.a");
        /* --target cuda --mpi: libmmrt_nccl.a beside libmmrt_cuda.a. */
        char nccllib[PATH_MAX];
        snprintf(nccllib, sizeof nccllib, "%s", culib);
        slash = strrchr(nccllib, '/');
        snprintf(slash ? slash + 1 : nccllib, sizeof nccllib - (size_t)(slash ? slash + 1 - nccllib : 0), "libmmrt_nccl.a");
        if (mpi && cuda && !exists(nccllib)) {
            fprintf(stderr, "mmc: error: this mmc was built without NCCL (no %s): --target cuda --mpi needs the CUDA toolkit's NCCL "
                            "and MPI when mmnet is built\n", nccllib);
            rc = 1;
            goto done;
        }
        if (mpi && (!exists(mpilib) || !MMNET_BUILD_MPI_LIBS[0])) {
            fprintf(stderr, "mmc: error: this mmc was built without MPI (no %s); install openmpi-bin and libopenmpi-dev "
                            "(tools/install-deps.sh) and build mmnet again\n", mpilib);
            rc = 1;
            goto done;
        }
        char incflag[PATH_MAX + 2], comflag[PATH_MAX + 2], src0[PATH_MAX], src1[PATH_MAX], flags[PATH_MAX + 64];
        snprintf(incflag, sizeof incflag, "-I%s", inc);
        snprintf(comflag, sizeof comflag, "-I%s", common);
        snprintf(src0, sizeof src0, "%s/%s", dir, gen.files[0].name);
        snprintf(src1, sizeof src1, "%s/%s", dir, gen.files[gen.n - 1].name);
        bool show = getenv("MMNET_VERBOSE") != NULL;
        if (!cuda) {
            const char *compiler = cg_c_compiler(cc);
            char march[96];
            snprintf(march, sizeof march, "-march=%s", arch ? arch : "native");
            snprintf(flags, sizeof flags, "-DMMNET_BUILD_FLAGS=\"%s -O3 %s -fopenmp%s\"", compiler, march, mpi ? " -DMMNET_MPI" : "");
            /* Each source to an object, as many compilers at a time as cores. */
            long cores = sysconf(_SC_NPROCESSORS_ONLN);
            int running = 0, failed = 0;
            char objs[8][PATH_MAX];
            for (int i = 0; i <= gen.n; i++) {
                if (i < gen.n) {
                    char src[PATH_MAX];
                    snprintf(src, sizeof src, "%s/%s", dir, gen.files[i].name);
                    snprintf(objs[i], sizeof objs[i], "%s/%.*s.o", dir, (int)(strlen(gen.files[i].name) - 2), gen.files[i].name);
                    char *argv[] = {(char *)compiler, march, CG_C_FLAGS, "-w", flags, incflag, comflag, "-c", src, "-o", objs[i],
                                    mpi ? "-DMMNET_MPI" : NULL, NULL};
                    if (spawn(argv, show) < 0) failed = 1;
                    else running++;
                }
                while (running > 0 && (running >= cores || i == gen.n)) {
                    int st;
                    if (wait(&st) < 0) break;
                    running--;
                    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) failed = 1;
                }
            }
            if (!failed) {
                char *argv[96] = {(char *)compiler, "-fopenmp"};
                int k = 2;
                for (int i = 0; i < gen.n; i++) argv[k++] = objs[i];
                if (mpi) argv[k++] = mpilib;
                argv[k++] = lib;
                k = add_runtime_libs(argv, k, 88);
                if (mpi) k = add_words(argv, k, 88, MMNET_BUILD_MPI_LIBS);
                argv[k++] = MMNET_BUILD_OMP_LIB;
                argv[k++] = "-lm";
                argv[k++] = "-o";
                argv[k++] = (char *)out;
                argv[k] = NULL;
                failed = run(argv, show) != 0;
            }
            for (int i = 0; i < gen.n; i++) unlink(objs[i]);
            if (failed) {
                fprintf(stderr, "mmc: error: %s failed compiling the generated code in %s%s\n", compiler, dir,
                        keep ? "" : " (kept for inspection)");
                if (!keep) keep = dir; /* keep the sources so the failure can be looked at */
                rc = 1;
            }
        } else {
            if (!exists(culib)) {
                fprintf(stderr, "mmc: error: this mmc was built without the CUDA runtime (no %s)\n", culib);
                rc = 1;
                goto done;
            }
            const char *a = arch ? arch : detect_arch();
            if (!a) a = "sm_90";
            char archflag[64];
            snprintf(archflag, sizeof archflag, "-arch=%s", a);
            snprintf(flags, sizeof flags, "-DMMNET_BUILD_FLAGS=\"nvcc -O3 %s\"", archflag);
            char *argv[96] = {"nvcc", "-O3", archflag, "-std=c++20", "-w", flags, incflag, comflag, src0, src1};
            int k = 10;
            if (mpi) {
                argv[k++] = "-DMMNET_MPI";
                argv[k++] = "-DMMNET_NCCL";
                argv[k++] = nccllib;
                argv[k++] = mpilib;
            }
            argv[k++] = culib;
            argv[k++] = lib;
            argv[k++] = "-lcublas";
            if (use_cudnn) argv[k++] = "-lcudnn";
            if (mpi) argv[k++] = "-lnccl";
            k = add_runtime_libs(argv, k, 88);
            if (mpi) k = add_words(argv, k, 88, MMNET_BUILD_MPI_LIBS);
            const char *tail[] = {MMNET_BUILD_OMP_LIB, "-lm", "-o", out};
            for (size_t i = 0; i < sizeof tail / sizeof *tail; i++) argv[k++] = (char *)tail[i];
            argv[k] = NULL;
            int r = run(argv, show);
            if (r != 0) {
                fprintf(stderr, "mmc: error: nvcc failed (exit %d) compiling the generated code in %s\n", r, dir);
                if (!keep) keep = dir;
                rc = 1;
            }
        }
    }
done:
    if (dir == tmpdir && !keep) {
        for (int i = 0; i < gen.n; i++) {
            char path[PATH_MAX];
            snprintf(path, sizeof path, "%s/%s", dir, gen.files[i].name);
            unlink(path);
        }
        rmdir(dir);
    }
    for (int i = 0; i < gen.n; i++) buf_free(&gen.files[i].text);
    return rc;
}
