/* main.c — mmc, the mmnet compiler: parses the command line and runs the
 * pipeline (passes/pipeline.c) as far as each sub-command needs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "driver.h"

#ifndef MMNET_VERSION
#define MMNET_VERSION "0.1.0"
#endif

static const char usage[] =
    "usage: mmc COMMAND FILE.mmnet [options]\n"
    "\n"
    "commands:\n"
    "  check FILE            parse, resolve names and infer every shape; exit 0 or print errors\n"
    "  info FILE             inputs, branches, fusion modules, heads, training policy, parameter counts\n"
    "      --batch B         and the memory a training program needs at batch B (its memory plan)\n"
    "      --threads N       ... with N CPU threads (default: this machine's cores, as the program)\n"
    "      --params          instead: every parameter and state tensor, its name and shape, as checkpoints\n"
    "                        and train --init name them\n"
    "  dump-ir FILE          the IR graph, one node per line\n"
    "      --after PASS      stop after PASS (lower, shapes, variants, autodiff, fuse, plan); default: shapes\n"
    "      --variant NAME    one derived graph: train, rebalance-B, rubi-B, eval, cut, squeeze (implies --after plan\n"
    "                        unless --after is given); --variant list names them\n"
    "      --target c|cuda   the graphs as that back end's fusion leaves them (default c)\n"
    "      --dot             one graph (the --variant, else the model as written) for Graphviz:\n"
    "                        mmc dump-ir FILE --dot --variant cut | dot -Tsvg > cut.svg\n"
    "  emit FILE -o DIR      write the generated sources to DIR\n"
    "      --target c|cuda   the back end (default c); --gemm and --conv as for build\n"
    "  build FILE -o PROG    generate, compile and link a training program\n"
    "      --target c|cuda   the back end (default c)\n"
    "      --arch ARCH       cuda: sm_XX (default: the GPU present, else sm_90);\n"
    "                        c: the -march of the kernels (default native; x86-64-v3 for another machine)\n"
    "      --profile         the program prints time and GFLOP/s per kernel for one step\n"
    "      --gemm cublas|tiled  CUDA GEMMs by cuBLAS (default) or by a generated tiled kernel\n"
    "      --conv gemm|cudnn    CUDA convolutions as im2col and GEMM (default) or by cuDNN\n"
    "      --mpi             a program for data-parallel training under mpirun (MPI; with --target cuda\n"
    "                        NCCL for the gradients): mpirun -np N PROG train ...\n"
    "      --keep DIR        keep the generated sources in DIR\n"
    "      --cc COMPILER     C compiler (default: $MMNET_CC, else the one mmnet was built with)\n"
    "  inspect FILE          every generated kernel of a graph: its IR nodes, FLOPs, bytes, and clang's\n"
    "                        vectorizer remarks; --kernel NAME --asm its assembly, --target cuda --ptx/--sass\n"
    "                        its device code (see mmc inspect --help)\n"
    "  sweep FILE [options]  the greediness study (see mmc sweep --help)\n"
    "\n"
    "  mmc --help | --version\n"
    "\n"
    "The language is described in docs/mmnet.md.\n";

typedef struct {
    const char *cmd, *file, *out, *target, *arch, *keep, *cc, *variant;
    int after;
    long batch;   /* info --batch: the memory plan for it */
    int threads;
    bool after_given, profile, no_fuse, tiled_gemm, cudnn, dot, params, mpi;
    const char *cuda_only;  /* an option given that only the CUDA back end takes */
} Args;

static _Noreturn void bad_usage(const char *fmt, const char *arg) {
    fprintf(stderr, "mmc: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nrun 'mmc --help' for the commands and options\n");
    exit(2);
}

static const char *need_value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) bad_usage("option '%s' needs a value", argv[*i]);
    return argv[++*i];
}

/* A whole number in [1, hi] for option `flag`. */
static long count_arg(const char *flag, const char *v, long hi) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < 1 || x > hi) {
        fprintf(stderr, "mmc: %s needs a whole number from 1 to %ld, not '%s'\nrun 'mmc --help' for the commands and options\n", flag,
                hi, v);
        exit(2);
    }
    return x;
}

static Args parse_args(int argc, char **argv) {
    Args a = {0};
    a.target = "c";
    a.after = PASS_SHAPES;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
            fputs(usage, stdout);
            exit(0);
        } else if (strcmp(s, "--version") == 0) {
            printf("mmc %s\n", MMNET_VERSION);
            exit(0);
        } else if (strcmp(s, "-o") == 0) {
            a.out = need_value(argc, argv, &i);
        } else if (strcmp(s, "--target") == 0) {
            a.target = need_value(argc, argv, &i);
            if (strcmp(a.target, "c") != 0 && strcmp(a.target, "cuda") != 0)
                bad_usage("unknown target '%s' (targets: c, cuda)", a.target);
        } else if (strcmp(s, "--arch") == 0) {
            a.arch = need_value(argc, argv, &i);
        } else if (strcmp(s, "--after") == 0) {
            const char *v = need_value(argc, argv, &i);
            int k = -1;
            for (int j = 0; j < PASS_COUNT; j++)
                if (strcmp(pass_name[j], v) == 0) k = j;
            if (k < 0) bad_usage("unknown pass '%s' (passes: lower, shapes, variants, autodiff, fuse, plan)", v);
            a.after = k;
            a.after_given = true;
        } else if (strcmp(s, "--variant") == 0) {
            a.variant = need_value(argc, argv, &i);
        } else if (strcmp(s, "--keep") == 0) {
            a.keep = need_value(argc, argv, &i);
        } else if (strcmp(s, "--cc") == 0) {
            a.cc = need_value(argc, argv, &i);
        } else if (strcmp(s, "--profile") == 0) {
            a.profile = true;
        } else if (strcmp(s, "--mpi") == 0) {
            a.mpi = true;
        } else if (strcmp(s, "--gemm") == 0) {
            const char *v = need_value(argc, argv, &i);
            if (strcmp(v, "cublas") != 0 && strcmp(v, "tiled") != 0) bad_usage("unknown GEMM '%s' (--gemm cublas or tiled)", v);
            a.tiled_gemm = strcmp(v, "tiled") == 0;
            a.cuda_only = s;
        } else if (strcmp(s, "--conv") == 0) {
            const char *v = need_value(argc, argv, &i);
            if (strcmp(v, "gemm") != 0 && strcmp(v, "cudnn") != 0) bad_usage("unknown convolution method '%s' (--conv gemm or cudnn)", v);
            a.cudnn = strcmp(v, "cudnn") == 0;
            a.cuda_only = s;
        } else if (strcmp(s, "--dot") == 0) {
            a.dot = true;
        } else if (strcmp(s, "--batch") == 0) {
            a.batch = count_arg(s, need_value(argc, argv, &i), (long)rt_config_fields[RT_CFG_batch].hi);
        } else if (strcmp(s, "--threads") == 0) {
            a.threads = (int)count_arg(s, need_value(argc, argv, &i), 4096);
        } else if (strcmp(s, "--no-fuse") == 0) {
            a.no_fuse = true;
        } else if (strcmp(s, "--params") == 0) {
            a.params = true;
        } else if (s[0] == '-' && s[1]) {
            bad_usage("unknown option '%s'", s);
        } else if (!a.cmd) {
            a.cmd = s;
        } else if (!a.file) {
            a.file = s;
        } else {
            bad_usage("unexpected argument '%s'", s);
        }
    }
    if (!a.cmd) {
        fputs(usage, stderr);
        exit(2);
    }
    if ((a.batch || a.threads) && strcmp(a.cmd, "info") != 0)
        bad_usage("%s is an option of 'mmc info' (the memory plan; the program takes its own --batch)", a.batch ? "--batch" : "--threads");
    if (a.threads && !a.batch) bad_usage("%s goes with --batch B (the memory plan at batch B)", "--threads");
    if (a.cuda_only && strcmp(a.target, "cuda") != 0) bad_usage("%s applies to the CUDA back end: add --target cuda", a.cuda_only);
    if (a.arch && strcmp(a.target, "cuda") == 0 && strncmp(a.arch, "sm_", 3) != 0)
        bad_usage("--arch with --target cuda takes a CUDA architecture like sm_90, not '%s'", a.arch);
    if (a.arch && strcmp(a.target, "c") == 0 && (strncmp(a.arch, "sm_", 3) == 0 || strspn(a.arch, "abcdefghijklmnopqrstuvwxyz0123456789-_.") != strlen(a.arch)))
        bad_usage("--arch with --target c takes a CPU architecture for -march (native, x86-64-v3, ...), not '%s'", a.arch);
    return a;
}

int mmc_emit_build(const IrProgram *p, const char *cmd, const char *out, const char *target, const char *arch,
                   const char *keep, const char *cc, bool profile, bool use_cublas, bool use_cudnn, bool mpi);
int mmc_sweep(int argc, char **argv);
int mmc_inspect(int argc, char **argv);

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "sweep") == 0) return mmc_sweep(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "inspect") == 0) return mmc_inspect(argc - 1, argv + 1);
    Args a = parse_args(argc, argv);
    static const char *const cmds[] = {"check", "info", "dump-ir", "emit", "build", "inspect", "sweep"};
    int cmd = -1;
    for (int i = 0; i < ARRAY_LEN(cmds); i++)
        if (strcmp(cmds[i], a.cmd) == 0) cmd = i;
    if (cmd < 0) {
        const char *near = nearest_name(a.cmd, cmds, ARRAY_LEN(cmds));
        if (near) fprintf(stderr, "mmc: unknown command '%s'; did you mean '%s'?\n", a.cmd, near);
        else fprintf(stderr, "mmc: unknown command '%s' (commands: check, info, dump-ir, emit, build, inspect, sweep)\n", a.cmd);
        return 2;
    }
    if (cmd >= 5) bad_usage("'%s' comes first: mmc %s FILE [options]", a.cmd);
    if (!a.file) bad_usage("'%s' needs a .mmnet file", a.cmd);
    if ((cmd == 3 || cmd == 4) && !a.out) bad_usage("'%s' needs -o (the output)", a.cmd);
    if (a.dot && cmd != 2) bad_usage("--dot is an option of dump-ir, not of '%s'", a.cmd);
    if (a.params && cmd != 1) bad_usage("--params is an option of 'info', not of '%s'", a.cmd);

    Arena arena = {0};
    mm_arena = &arena;
    mm_diag_color = isatty(2) && !getenv("NO_COLOR");
    SrcFile *src = mm_read_source(a.file);
    if (!src) {
        fprintf(stderr, "mmc: error: cannot read '%s': %s\n", a.file, errno == EILSEQ ? "it contains a NUL byte (not a text file)" : strerror(errno));
        return 1;
    }
    CompileOptions opt = {0};
    opt.no_fuse = a.no_fuse;
    opt.target_cuda = strcmp(a.target, "cuda") == 0;
    if (cmd == 1 && a.batch) opt.stop_after = PASS_PLAN;
    else if (cmd <= 1) opt.stop_after = PASS_SHAPES;
    else if (cmd == 2) opt.stop_after = a.variant && !a.after_given ? PASS_PLAN : (PassId)a.after;
    else opt.stop_after = PASS_PLAN;
    if (cmd == 2 && a.variant && opt.stop_after < PASS_VARIANTS)
        bad_usage("--variant needs --after variants or a later pass (graphs are derived by the variants pass)%s", "");
    IrProgram *p = mm_compile(src, &opt);
    if (!p) {
        arena_free(&arena);
        return 1;
    }
    int rc = 0;
    switch (cmd) {
    case 0: break;
    case 1:
        if (a.params) {
            print_params(stdout, p);
            break;
        }
        print_info(stdout, p);
        if (a.batch) {
            long cores = sysconf(_SC_NPROCESSORS_ONLN);
            print_memory(stdout, p, a.batch, a.threads ? a.threads : cores > 0 ? (int)cores : 1);
        }
        break;
    case 2: {
        Buf b = {0};
        if (a.variant && strcmp(a.variant, "list") == 0) {
            for (int i = 0; i < p->graphs.n; i++) printf("%s\n", ((IrGraph *)p->graphs.v[i])->name);
            break;
        }
        if (a.variant) {
            IrGraph *g = ir_find_graph(p, a.variant);
            if (!g) {
                const char *names[64];
                int n = 0;
                for (int i = 0; i < p->graphs.n && n < 64; i++) names[n++] = ((IrGraph *)p->graphs.v[i])->name;
                fprintf(stderr, "mmc: no variant '%s' (variants: %s)\n", a.variant, join_names(names, n, " and "));
                rc = 2;
                break;
            }
            if (a.dot) ir_dump_dot(&b, p, g);
            else ir_dump_graph(&b, p, g);
        } else if (a.dot) {
            ir_dump_dot(&b, p, p->fwd);
        } else if (opt.stop_after >= PASS_VARIANTS) {
            for (int i = 0; i < p->graphs.n; i++) ir_dump_graph(&b, p, p->graphs.v[i]);
        } else {
            ir_dump_graph(&b, p, p->fwd);
        }
        fputs(b.s ? b.s : "", stdout);
        buf_free(&b);
        break;
    }
    default:
        rc = mmc_emit_build(p, a.cmd, a.out, a.target, a.arch, a.keep, a.cc, a.profile, !a.tiled_gemm, a.cudnn, a.mpi);
    }
    arena_free(&arena);
    return rc;
}
