/* inspect.c — mmc inspect: what the back end made of a graph's kernels.
 *
 *   mmc inspect FILE.mmnet [--variant V] [--kernel NAME] [--asm]
 *               [--target cuda [--ptx | --sass] [--arch sm_XX]] [--batch B] [--cc COMPILER]
 *
 * Every kernel the graph runs, in the order of its run function: the
 * function, the IR nodes it computes (with their shapes and .mmnet lines),
 * its FLOPs (as --profile counts them) and the bytes of the tensors it
 * reads and writes. For the C back end, clang compiles the emitted kernel
 * files with the flags mmc build uses plus -Rpass=loop-vectorize
 * -Rpass-missed=loop-vectorize -Rpass-analysis=loop-vectorize, and each
 * remark goes to the kernel whose lines hold it (a remark on a runtime
 * header's loop inlined into a kernel, through clang's optimization record,
 * which names the function it is in); --asm prints a kernel's
 * assembly (clang -S), its OpenMP regions included. For CUDA, --ptx and
 * --sass print a kernel's device functions through nvcc and cuobjdump.
 *
 * The kernels are found in the generated text, not in the emitters'
 * internals: a run function calls each kernel on a line of its own, ending
 * in the node's comment (`NAME(...);  /+ %11 conv +/`), and a kernel's
 * definition starts at column 0. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../codegen/codegen.h"
#include "driver.h"

typedef struct {
    const char *file, *variant, *kernel, *target, *arch, *cc, *keep;
    long batch;
    bool asm_, ptx, sass;
} InspectArgs;

typedef struct {
    const char *file;        /* NULL: the kernel's own file; else a runtime header inlined into it */
    int line, col;
    const char *text;        /* "vectorized loop (vectorization width: 16, ...) [-Rpass=loop-vectorize]" */
} Remark;

/* One kernel function and the calls of it the graph makes. */
typedef struct {
    const char *fn;          /* cgmnist_k2_conv */
    PtrVec nodes;            /* the IrNode each call computes (stores) */
    const char *src;         /* the generated file that defines it */
    int first, last;         /* its lines there, its comment included */
    double flops, bytes;     /* over its calls, at the batch */
    PtrVec remarks;          /* Remark * */
} Kernel;

static _Noreturn void usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "mmc: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nrun 'mmc inspect --help' for the options\n");
    exit(2);
}

static const char inspect_usage[] =
    "usage: mmc inspect FILE.mmnet [options]\n"
    "\n"
    "Every kernel of one graph: its function, the IR nodes it computes, FLOPs and bytes moved at the batch,\n"
    "and for the C back end clang's loop-vectorizer remarks on it (vectorized or not, and why).\n"
    "\n"
    "  --variant NAME     the graph (default train; mmc dump-ir FILE --variant list names them)\n"
    "  --kernel NAME      only this kernel: its function (cgmnist_k2_conv) or an IR node it computes (%11)\n"
    "  --asm              with --kernel, C: its assembly (clang -S), the OpenMP regions it runs included\n"
    "  --target c|cuda    the back end (default c)\n"
    "  --ptx, --sass      with --kernel and --target cuda: its device code as PTX (nvcc -ptx) or SASS (cuobjdump)\n"
    "  --arch ARCH        -march for C (default native), sm_XX for CUDA (default sm_90)\n"
    "  --batch B          the batch FLOPs and bytes are counted at (default the train section's)\n"
    "  --cc COMPILER      the clang to ask (default: the one mmc build uses)\n"
    "  --keep DIR         write the generated sources to DIR and keep them, to read the remarks' lines there\n";

static InspectArgs parse(int argc, char **argv) {
    InspectArgs a = {0};
    a.target = "c";
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            fputs(inspect_usage, stdout);
            exit(0);
        }
        bool takes = !strcmp(s, "--variant") || !strcmp(s, "--kernel") || !strcmp(s, "--target") || !strcmp(s, "--arch") ||
                     !strcmp(s, "--cc") || !strcmp(s, "--batch") || !strcmp(s, "--keep");
        if (takes && !v) usage_error("option '%s' needs a value", s);
        if (!strcmp(s, "--variant")) a.variant = v;
        else if (!strcmp(s, "--kernel")) a.kernel = v;
        else if (!strcmp(s, "--target")) a.target = v;
        else if (!strcmp(s, "--arch")) a.arch = v;
        else if (!strcmp(s, "--cc")) a.cc = v;
        else if (!strcmp(s, "--keep")) a.keep = v;
        else if (!strcmp(s, "--batch")) {
            char *end;
            errno = 0;
            a.batch = strtol(v, &end, 10);
            if (errno || *end || end == v || a.batch < 1 || a.batch > (long)rt_config_fields[RT_CFG_batch].hi)
                usage_error("--batch needs a whole number from 1 to 65536, not '%s'", v);
        } else if (!strcmp(s, "--asm")) a.asm_ = true;
        else if (!strcmp(s, "--ptx")) a.ptx = true;
        else if (!strcmp(s, "--sass")) a.sass = true;
        else if (s[0] == '-' && s[1]) usage_error("unknown option '%s' of inspect", s);
        else if (!a.file) a.file = s;
        else usage_error("unexpected argument '%s'", s);
        if (takes) i++;
    }
    if (!a.file) usage_error("'inspect' needs a .mmnet file%s", "");
    bool cuda = !strcmp(a.target, "cuda");
    if (!cuda && strcmp(a.target, "c")) usage_error("unknown target '%s' (targets: c, cuda)", a.target);
    if (a.asm_ && cuda) usage_error("%s is for the C back end; for CUDA use --ptx or --sass", "--asm");
    if ((a.ptx || a.sass) && !cuda) usage_error("%s is for the CUDA back end: add --target cuda", a.ptx ? "--ptx" : "--sass");
    if ((a.asm_ || a.ptx || a.sass) && !a.kernel)
        usage_error("%s prints one kernel's code: add --kernel NAME", a.asm_ ? "--asm" : a.ptx ? "--ptx" : "--sass");
    if (a.ptx && a.sass) usage_error("give one of --ptx and --sass%s", "");
    if (a.arch && cuda && strncmp(a.arch, "sm_", 3)) usage_error("--arch with --target cuda takes sm_XX, not '%s'", a.arch);
    if (a.arch && !cuda && (!strncmp(a.arch, "sm_", 3) || strspn(a.arch, "abcdefghijklmnopqrstuvwxyz0123456789-_.") != strlen(a.arch)))
        usage_error("--arch with --target c takes a CPU architecture for -march (native, x86-64-v3, ...), not '%s'", a.arch);
    return a;
}

/* ---- running the tools ------------------------------------------------------ */
/* The temporary directory of the generated sources and what the tools
 * wrote there, removed at exit, also when an error ends the command. */
static char tmp_dir[] = "/tmp/mmc-inspect-XXXXXX";
static bool tmp_made;
static void remove_tmp(void) {
    if (!tmp_made) return;
    char cmd[64];
    DIR *d = opendir(tmp_dir);
    if (d) {
        for (struct dirent *e; (e = readdir(d)) != NULL;)
            if (e->d_name[0] != '.' && snprintf(cmd, sizeof cmd, "%s/%s", tmp_dir, e->d_name) < (int)sizeof cmd) unlink(cmd);
        closedir(d);
    }
    rmdir(tmp_dir);
}

/* argv with stdout to out_path and stderr to err_path (NULL: inherited);
 * its exit status, or -1 when it could not start. */
static int run_to(char *const argv[], const char *out_path, const char *err_path) {
    if (getenv("MMNET_VERBOSE")) {
        for (int i = 0; argv[i]; i++) fprintf(stderr, "%s%s", i ? " " : "", argv[i]);
        fputc('\n', stderr);
    }
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        if (out_path && !freopen(out_path, "w", stdout)) _exit(126);
        if (err_path && !freopen(err_path, "w", stderr)) _exit(126);
        execvp(argv[0], argv);
        fprintf(stderr, "mmc: error: cannot run '%s': %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static char *slurp(const char *path) {
    char *t = mmc_read_all(path);
    if (!t) return NULL;
    char *s = arena_strdup(mm_arena, t);
    free(t);
    return s;
}

/* The lines of text, NUL-terminated in place; their count in *n. */
static char **split_lines(char *text, int *n) {
    int cap = 1;
    for (const char *p = text; *p; p++) cap += *p == '\n';
    char **v = NEWN(char *, cap + 1);
    int k = 0;
    for (char *p = text; *p;) {
        v[k++] = p;
        char *nl = strchr(p, '\n');
        if (!nl) break;
        *nl = 0;
        p = nl + 1;
    }
    *n = k;
    return v;
}

/* ---- the kernels of a graph ------------------------------------------------ */
static IrNode *node_by_id(const IrGraph *g, int id) {
    for (int i = 0; i < g->nodes.n; i++)
        if (IR_NODE(g, i)->id == id) return IR_NODE(g, i);
    return NULL;
}

/* The bytes of the tensors a kernel reads and writes, each once: its
 * operands (a folded operand's own operands in its place), its result, a
 * folded pooling's result. Batched tensors at batch B. */
static double kernel_bytes(const IrNode *n, long B) {
    const IrNode *seen[32];
    int ns = 0;
    double el = 0;
#define TOUCH(t)                                                                                  \
    do {                                                                                          \
        const IrNode *t_ = (t);                                                                   \
        bool dup_ = false;                                                                        \
        for (int j = 0; j < ns; j++) dup_ |= seen[j] == t_;                                       \
        if (!dup_ && ns < 32) seen[ns++] = t_, el += (double)ir_numel(t_) * (t_->batched ? B : 1); \
    } while (0)
    for (int i = 0; i < n->nsrc; i++) {
        const IrNode *s = n->src[i];
        if (s->fused == n)
            for (int j = 0; j < s->nsrc; j++) TOUCH(s->src[j]);
        else TOUCH(s);
    }
    if (n->op != OP_ACCUM) TOUCH(n);
    if (n->pool) TOUCH(n->pool);
#undef TOUCH
    return el * sizeof(float);
}

static Kernel *find_kernel(PtrVec *ks, const char *fn) {
    for (int i = 0; i < ks->n; i++)
        if (!strcmp(((Kernel *)ks->v[i])->fn, fn)) return ks->v[i];
    return NULL;
}

/* The kernels run_<variant> calls, in order, each with its calls' nodes. */
static void list_kernels(const IrGraph *g, char **lines, int nlines, PtrVec *ks) {
    const char *head = arena_printf(mm_arena, "static void run_%s(", cg_ident(g->name));
    int i = 0;
    while (i < nlines && strncmp(lines[i], head, strlen(head))) i++;
    for (i++; i < nlines && lines[i][0] != '}'; i++) {
        const char *l = lines[i], *c = strstr(l, ");  /* %");
        if (!c || l[0] != ' ') continue;
        while (*l == ' ') l++;
        size_t len = strspn(l, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
        if (!len || l[len] != '(') continue;
        IrNode *n = node_by_id(g, atoi(c + 8));
        if (!n) continue;
        const char *fn = arena_printf(mm_arena, "%.*s", (int)len, l);
        Kernel *k = find_kernel(ks, fn);
        if (!k) {
            k = NEW(Kernel);
            k->fn = fn;
            vec_push(ks, k);
        }
        vec_push(&k->nodes, n);
    }
}

/* Where fn is defined in the generated file: from the comment above it to
 * its closing brace (for CUDA, its device functions above it included). */
static bool locate(Kernel *k, const char *file, char **lines, int nlines, bool cuda) {
    const char *def = arena_printf(mm_arena, "%s%s(", cuda ? "static void " : "void ", k->fn);
    (void)cuda; /* CUDA's device functions come between the comment and the host function */
    for (int i = 0; i < nlines; i++) {
        if (strncmp(lines[i], def, strlen(def)) || strchr(lines[i], ';')) continue;
        int first = i;
        while (first > 0 && i - first < 1000 && strncmp(lines[first], "/* %", 4)) first--;
        if (strncmp(lines[first], "/* %", 4)) first = i;
        int last = i;
        while (last + 1 < nlines && strcmp(lines[last], "}")) last++;
        k->src = file;
        k->first = first + 1;
        k->last = last + 1;
        return true;
    }
    return false;
}

/* Up to 6 kernel names nearest to name (by edit distance), for the error. */
static int edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    int *d = NEWN(int, lb + 1);
    for (size_t j = 0; j <= lb; j++) d[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int prev = d[0];
        d[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int t = d[j], sub = prev + (a[i - 1] != b[j - 1]);
            d[j] = d[j] + 1 < d[j - 1] + 1 ? d[j] + 1 : d[j - 1] + 1;
            if (sub < d[j]) d[j] = sub;
            prev = t;
        }
    }
    return d[lb];
}

static _Noreturn void no_kernel(const char *name, const IrGraph *g, PtrVec *ks) {
    int n = ks->n;
    const char **names = NEWN(const char *, n + 1);
    int *dist = NEWN(int, n + 1);
    for (int i = 0; i < n; i++) {
        names[i] = ((Kernel *)ks->v[i])->fn;
        dist[i] = strstr(names[i], name) ? 0 : edit_distance(name, names[i]);
    }
    for (int i = 1; i < n; i++) /* insertion sort by distance, stable */
        for (int j = i; j > 0 && dist[j] < dist[j - 1]; j--) {
            int t = dist[j];
            dist[j] = dist[j - 1], dist[j - 1] = t;
            const char *s = names[j];
            names[j] = names[j - 1], names[j - 1] = s;
        }
    fprintf(stderr, "mmc: no kernel '%s' in graph %s; the nearest names: %s\n", name, g->name,
            join_names(names, n < 6 ? n : 6, " and "));
    fprintf(stderr, "(mmc inspect FILE --variant %s lists its %d kernels; --kernel also takes an IR node, %%11)\n", g->name, n);
    exit(2);
}

/* ---- C: the vectorizer's remarks and the assembly ---------------------------- */
static const char *march_flag(const InspectArgs *a) { return arena_printf(mm_arena, "-march=%s", a->arch ? a->arch : "native"); }

static bool is_clang(const char *cc) {
    const char *base = strrchr(cc, '/') ? strrchr(cc, '/') + 1 : cc;
    return strstr(base, "clang") != NULL;
}

static const char *c_compiler(const InspectArgs *a) {
    const char *cc = cg_c_compiler(a->cc);
    if (!is_clang(cc)) {
        fprintf(stderr, "mmc: error: the vectorizer's remarks and --asm need clang, and the C compiler is '%s' "
                        "(give --cc clang, or set MMNET_CC)\n", cc);
        exit(1);
    }
    return cc;
}

/* r to kernel K, unless K has it already: a loop in an OpenMP region with
 * an if() clause is compiled twice, and remarked on twice. */
static void add_remark(Kernel *K, Remark *m) {
    for (int j = 0; j < K->remarks.n; j++) {
        const Remark *o = K->remarks.v[j];
        if (o->line == m->line && o->col == m->col && !strcmp(o->text, m->text) &&
            (o->file == m->file || (o->file && m->file && !strcmp(o->file, m->file))))
            return;
    }
    vec_push(&K->remarks, m);
}

static Kernel *kernel_at(PtrVec *ks, const char *file, int line) {
    for (int k = 0; k < ks->n; k++) {
        Kernel *K = ks->v[k];
        if (K->src == file && line >= K->first && line <= K->last) return K;
    }
    return NULL;
}

/* A YAML scalar as clang's optimization record writes it: 'quoted', with '' for '. */
static const char *yaml_scalar(const char *v) {
    while (*v == ' ') v++;
    if (*v != '\'') return arena_strdup(mm_arena, v);
    Buf b = {0};
    for (v++; *v; v++) {
        if (*v == '\'' && v[1] == '\'') v++;
        else if (*v == '\'') break;
        buf_printf(&b, "%c", *v);
    }
    char *r = arena_strdup(mm_arena, b.s ? b.s : "");
    buf_free(&b);
    return r;
}

/* Remarks about loops of the runtime's headers (mmk_sum, the GEMMs)
 * inlined into a kernel carry the header's line, not the kernel's: clang's
 * optimization record (YAML) names the function each remark is in. The
 * kernel function's or its OpenMP regions' (.omp_outlined..N), whose
 * kernel is the one whose lines hold the record's other remarks about that
 * function. Returns the header remarks it could not attribute. */
static int header_remarks(const char *yaml_path, const char *file, PtrVec *ks) {
    char *text = slurp(yaml_path);
    if (!text) return 0;
    int n;
    char **lines = split_lines(text, &n);
    typedef struct { const char *kind, *pass, *file, *fn, *msg; int line, col; } Doc;
    PtrVec docs = {0};
    Doc *d = NULL;
    Buf msg = {0};
    for (int i = 0; i <= n; i++) {
        const char *l = i < n ? lines[i] : "--- ";
        if (!strncmp(l, "--- ", 4) || !strcmp(l, "...")) {
            if (d) {
                d->msg = arena_strdup(mm_arena, msg.s ? msg.s : "");
                vec_push(&docs, d);
                d = NULL;
            }
            buf_free(&msg);
            msg = (Buf){0};
            if (!strncmp(l, "--- !", 5) && i < n) {
                d = NEW(Doc);
                d->kind = arena_strdup(mm_arena, l + 5);
            }
            continue;
        }
        if (!d) continue;
        if (!strncmp(l, "Pass:", 5)) d->pass = yaml_scalar(l + 5);
        else if (!strncmp(l, "Function:", 9)) d->fn = yaml_scalar(l + 9);
        else if (!strncmp(l, "DebugLoc:", 9)) {
            const char *loc = l;
            if (!strchr(l, '}') && i + 1 < n) loc = arena_printf(mm_arena, "%s %s", l, lines[i + 1]);
            const char *f = strstr(loc, "File: "), *ln = strstr(loc, "Line: "), *c = strstr(loc, "Column: ");
            if (f) {
                const char *v = yaml_scalar(f + 6);
                d->file = arena_printf(mm_arena, "%.*s", (int)strcspn(v, ","), v);
            }
            d->line = ln ? atoi(ln + 6) : 0;
            d->col = c ? atoi(c + 8) : 0;
        } else if (!strncmp(l, "  - ", 4)) {
            const char *colon = strchr(l + 4, ':');
            if (colon && strncmp(l + 4, "Caller", 6) && strncmp(l + 4, "Callee", 6)) buf_puts(&msg, yaml_scalar(colon + 1));
        }
    }
    buf_free(&msg);
    /* Which kernel each function is part of. */
    const char *base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
    PtrVec fns = {0}, owners = {0};
    for (int i = 0; i < docs.n; i++) {
        const Doc *e = docs.v[i];
        if (!e->fn || !e->file) continue;
        const char *fb = strrchr(e->file, '/') ? strrchr(e->file, '/') + 1 : e->file;
        Kernel *K = strcmp(fb, base) ? NULL : kernel_at(ks, file, e->line);
        if (!K) continue;
        bool known = false;
        for (int j = 0; j < fns.n && !known; j++) known = !strcmp(fns.v[j], e->fn);
        if (!known) vec_push(&fns, (void *)e->fn), vec_push(&owners, K);
    }
    int lost = 0;
    for (int i = 0; i < docs.n; i++) {
        const Doc *e = docs.v[i];
        if (!e->pass || strcmp(e->pass, "loop-vectorize") || !e->file) continue;
        const char *fb = strrchr(e->file, '/') ? strrchr(e->file, '/') + 1 : e->file;
        if (!strcmp(fb, base)) continue; /* the kernel's own lines: the -R remarks have it */
        Kernel *K = NULL;
        for (int j = 0; j < fns.n && !K; j++)
            if (e->fn && !strcmp(fns.v[j], e->fn)) K = owners.v[j];
        if (!K) {
            lost++;
            continue;
        }
        Remark *m = NEW(Remark);
        m->file = fb;
        m->line = e->line;
        m->col = e->col;
        const char *flag = !strcmp(e->kind, "Passed") ? "-Rpass" : !strcmp(e->kind, "Missed") ? "-Rpass-missed" : "-Rpass-analysis";
        m->text = arena_printf(mm_arena, "%s [%s=loop-vectorize]", e->msg, flag);
        add_remark(K, m);
    }
    return lost;
}

/* Compile the kernel files that hold the kernels ks with the remark flags;
 * each remark to the kernel whose lines hold it, and those about the
 * runtime's headers inlined into a kernel to that kernel (header_remarks).
 * The header remarks that could not be attributed are counted in *inlined. */
static void c_remarks(const InspectArgs *a, const char *dir, const char *const *files, int nfiles, PtrVec *ks, int *inlined) {
    if (!is_clang(cg_c_compiler(a->cc))) {
        fprintf(stderr, "mmc: note: no vectorizer remarks: they come from clang, and the C compiler is '%s' "
                        "(give --cc clang, or set MMNET_CC)\n", cg_c_compiler(a->cc));
        *inlined = -1;
        return;
    }
    const char *cc = c_compiler(a);
    char inc[PATH_MAX + 2], com[PATH_MAX + 2];
    if (!cg_include_flags(inc, com, sizeof inc)) {
        fprintf(stderr, "mmc: error: cannot find the mmnet runtime's headers (%s); set MMNET_HOME to the install prefix\n", inc + 2);
        exit(1);
    }
    for (int f = 0; f < nfiles; f++) {
        bool used = false;
        for (int i = 0; i < ks->n; i++) used |= ((Kernel *)ks->v[i])->src == files[f];
        if (!used) continue;
        const char *src = arena_printf(mm_arena, "%s/%s", dir, files[f]), *err = arena_printf(mm_arena, "%s/%s.remarks", dir, files[f]);
        const char *yaml = arena_printf(mm_arena, "%s/%s.opt.yaml", dir, files[f]);
        char *argv[] = {(char *)cc, (char *)march_flag(a), CG_C_FLAGS, "-w", inc, com, "-c", (char *)src, "-o", "/dev/null",
                        "-Rpass=loop-vectorize", "-Rpass-missed=loop-vectorize", "-Rpass-analysis=loop-vectorize",
                        "-fsave-optimization-record", (char *)arena_printf(mm_arena, "-foptimization-record-file=%s", yaml), NULL};
        if (run_to(argv, NULL, err) != 0) {
            fprintf(stderr, "mmc: error: %s failed on the generated %s:\n%s", cc, files[f], slurp(err) ? slurp(err) : "");
            exit(1);
        }
        int n;
        char **lines = split_lines(slurp(err), &n);
        size_t sl = strlen(src);
        for (int i = 0; i < n; i++) {
            const char *r = strstr(lines[i], ": remark: ");
            if (!r) continue;
            if (strncmp(lines[i], src, sl) || lines[i][sl] != ':') continue; /* a header's: below */
            Remark *m = NEW(Remark);
            m->line = atoi(lines[i] + sl + 1);
            const char *c = strchr(lines[i] + sl + 1, ':');
            m->col = c ? atoi(c + 1) : 0;
            m->text = r + 10;
            Kernel *K = kernel_at(ks, files[f], m->line);
            if (K) add_remark(K, m);
        }
        *inlined += header_remarks(yaml, files[f], ks);
    }
}

/* A function's lines of an assembly listing, from its label to its end
 * (.Lfunc_endN), without the unwinding and line-table directives. */
static bool print_function(char **lines, int n, const char *name, FILE *out, PtrVec *callees) {
    size_t ln = strlen(name);
    for (int i = 0; i < n; i++) {
        if (strncmp(lines[i], name, ln) || lines[i][ln] != ':' || (lines[i][ln + 1] && lines[i][ln + 1] != ' ')) continue;
        for (int j = i; j < n; j++) {
            const char *l = lines[j];
            if (!strncmp(l, "\t.cfi_", 6) || !strncmp(l, "\t.loc\t", 6) || !strncmp(l, ".Ltmp", 5)) continue;
            fprintf(out, "%s\n", l);
            /* OpenMP's outlined regions, which hold the kernel's loops, and
             * the runtime's helpers compiled into the file (the GEMMs) */
            const char *o = strstr(l, ".omp_outlined.");
            if (!o && !strncmp(l, "\tcall", 5)) {
                o = strchr(l + 1, '\t');
                o = o && !strchr(o, '@') && !strchr(o, '*') && !strchr(o, '%') ? o + 1 : NULL;
            }
            if (o && callees && l[0] == '\t') {
                size_t k = strcspn(o, "(, \t@");
                vec_push(callees, arena_printf(mm_arena, "%.*s", (int)k, o));
            }
            if (!strncmp(l, ".Lfunc_end", 10)) return true;
        }
        return true;
    }
    return false;
}

static void c_asm(const InspectArgs *a, const char *dir, const Kernel *k) {
    const char *cc = c_compiler(a);
    char inc[PATH_MAX + 2], com[PATH_MAX + 2];
    cg_include_flags(inc, com, sizeof inc);
    const char *src = arena_printf(mm_arena, "%s/%s", dir, k->src), *out = arena_printf(mm_arena, "%s/kernel.s", dir);
    char *argv[] = {(char *)cc, (char *)march_flag(a), CG_C_FLAGS, "-w", inc, com, "-S", (char *)src, "-o", (char *)out, NULL};
    if (run_to(argv, NULL, NULL) != 0) {
        fprintf(stderr, "mmc: error: %s -S failed on the generated %s\n", cc, k->src);
        exit(1);
    }
    int n;
    char **lines = split_lines(slurp(out), &n);
    PtrVec callees = {0};
    printf("# %s, from %s:%d-%d (%s %s -O3 -fopenmp -S)\n", k->fn, k->src, k->first, k->last, cc, march_flag(a));
    if (!print_function(lines, n, k->fn, stdout, &callees)) {
        fprintf(stderr, "mmc: error: no function %s in clang's assembly of %s\n", k->fn, k->src);
        exit(1);
    }
    for (int i = 0; i < callees.n; i++) { /* grows as the callees' callees are found */
        bool dup = !strcmp(callees.v[i], k->fn);
        for (int j = 0; j < i; j++) dup |= !strcmp(callees.v[i], callees.v[j]);
        if (dup) continue;
        const char *c = callees.v[i];
        printf("\n# %s, %s %s\n", k->fn, strstr(c, ".omp_outlined.") ? "the OpenMP region" : "the function it calls", c);
        print_function(lines, n, c, stdout, &callees);
    }
}

/* ---- CUDA: PTX and SASS ----------------------------------------------------- */
/* Whether a (mangled) device function's name is one of kernel fn's: fn
 * itself or fn_SUFFIX ("_ZL11k2_conv_epiPfPKfi" for k2_conv). */
static bool device_fn_of(const char *mangled, const char *fn) {
    const char *p = mangled;
    if (!strncmp(p, "_Z", 2)) {
        p += 2;
        if (*p == 'L') p++;
        char *end;
        long len = strtol(p, &end, 10);
        if (end == p) return false;
        size_t lf = strlen(fn);
        return (size_t)len >= lf && !strncmp(end, fn, lf) && ((size_t)len == lf || end[lf] == '_');
    }
    size_t lf = strlen(fn);
    return !strncmp(p, fn, lf) && (!p[lf] || p[lf] == '_');
}

static void cuda_code(const InspectArgs *a, const char *dir, const Kernel *k) {
    char inc[PATH_MAX + 2], com[PATH_MAX + 2];
    if (!cg_include_flags(inc, com, sizeof inc)) {
        fprintf(stderr, "mmc: error: cannot find the mmnet runtime's headers; set MMNET_HOME to the install prefix\n");
        exit(1);
    }
    const char *arch = a->arch ? a->arch : "sm_90";
    const char *src = arena_printf(mm_arena, "%s/model.cu", dir), *obj = arena_printf(mm_arena, "%s/model.%s", dir, a->ptx ? "ptx" : "cubin");
    const char *archflag = arena_printf(mm_arena, "-arch=%s", arch), *err = arena_printf(mm_arena, "%s/nvcc.err", dir);
    char *argv[] = {"nvcc", a->ptx ? "-ptx" : "-cubin", "-O3", (char *)archflag, "-std=c++20", "-w", inc, com, (char *)src, "-o",
                    (char *)obj, NULL};
    int rc = run_to(argv, NULL, err);
    if (rc != 0) {
        fprintf(stderr, "mmc: error: nvcc %s failed (exit %d) on the generated model.cu%s\n%s", a->ptx ? "-ptx" : "-cubin", rc,
                rc == 127 ? " (is the CUDA toolkit installed and nvcc on PATH?)" : "", slurp(err) ? slurp(err) : "");
        exit(1);
    }
    const char *text_path = obj;
    if (a->sass) {
        text_path = arena_printf(mm_arena, "%s/model.sass", dir);
        char *cu[] = {"cuobjdump", "-sass", (char *)obj, NULL};
        if ((rc = run_to(cu, text_path, err)) != 0) {
            if (rc == 127)
                fprintf(stderr, "mmc: error: --sass needs cuobjdump (the CUDA toolkit's cuda-cuobjdump), which is not on PATH; "
                                "--ptx needs only nvcc\n");
            else fprintf(stderr, "mmc: error: cuobjdump -sass failed (exit %d)\n%s", rc, slurp(err) ? slurp(err) : "");
            exit(1);
        }
    }
    int n;
    char **lines = split_lines(slurp(text_path), &n);
    printf("// %s: its device functions, nvcc %s %s\n", k->fn, a->ptx ? "-ptx" : "-cubin + cuobjdump -sass", archflag);
    int shown = 0;
    for (int i = 0; i < n; i++) {
        const char *name = NULL;
        if (a->ptx) {
            const char *e = strstr(lines[i], ".entry ");
            if (e) name = arena_printf(mm_arena, "%.*s", (int)strcspn(e + 7, "( \t"), e + 7);
        } else {
            const char *f = strstr(lines[i], "Function : ");
            if (f) name = f + 11;
        }
        if (!name || !device_fn_of(name, k->fn)) continue;
        shown++;
        int j = i;
        for (; j < n; j++) {
            if (j > i && a->ptx && !strcmp(lines[j], "}")) {
                printf("%s\n", lines[j]);
                break;
            }
            if (j > i && a->sass && strstr(lines[j], "Function : ")) break;
            printf("%s\n", lines[j]);
        }
        i = j;
    }
    if (!shown)
        printf("// %s launches no kernel of its own: its work is a library call (cuBLAS, cuDNN) or a runtime template\n", k->fn);
}

/* ---- the listing ------------------------------------------------------------ */
static const char *human(double x, const char *unit) {
    static const char *const pre[] = {"", "k", "M", "G", "T"};
    int i = 0;
    while (x >= 1000 && i < 4) x /= 1000, i++;
    return arena_printf(mm_arena, "%.4g %s%s", x, pre[i], unit);
}

int mmc_inspect(int argc, char **argv) {
    InspectArgs a = parse(argc, argv);
    bool cuda = !strcmp(a.target, "cuda");
    Arena arena = {0};
    mm_arena = &arena;
    CgOutput gen = {0};
    int rc = 0; /* every exit below frees the arena and the sources: goto out */
    mm_diag_color = isatty(2) && !getenv("NO_COLOR");
    SrcFile *srcf = mm_read_source(a.file);
    if (!srcf) {
        fprintf(stderr, "mmc: error: cannot read '%s': %s\n", a.file, strerror(errno));
        rc = 1;
        goto out;
    }
    CompileOptions opt = {0};
    opt.target_cuda = cuda;
    opt.stop_after = PASS_PLAN;
    IrProgram *p = mm_compile(srcf, &opt);
    if (!p) { rc = 1; goto out; }
    const char *vname = a.variant ? a.variant : "train";
    IrGraph *g = ir_find_graph(p, vname);
    if (!g) {
        const char *names[64];
        int n = 0;
        for (int i = 0; i < p->graphs.n && n < 64; i++) names[n++] = ((IrGraph *)p->graphs.v[i])->name;
        fprintf(stderr, "mmc: no variant '%s' (variants: %s)\n", vname, join_names(names, n, " and "));
        rc = 2;
        goto out;
    }
    long B = a.batch ? a.batch : p->cfg.batch > 0 ? p->cfg.batch : 1;

    /* The sources, written to a temporary directory for the compilers. */
    const CgBackend *be = cuda ? &cg_cuda_backend : &cg_c_backend;
    CgOptions o = {false, p->src->path, true, false};
    be->emit(p, &o, &gen);
    const char *dir = a.keep;
    if (a.keep) {
        if (mkdir(a.keep, 0777) != 0 && errno != EEXIST) {
            fprintf(stderr, "mmc: error: cannot create '%s': %s\n", a.keep, strerror(errno));
            rc = 1;
            goto out;
        }
    } else {
        if (!mkdtemp(tmp_dir)) {
            fprintf(stderr, "mmc: error: cannot create a temporary directory: %s\n", strerror(errno));
            rc = 1;
            goto out;
        }
        tmp_made = true;
        atexit(remove_tmp);
        dir = tmp_dir;
    }
    const char *names[8];
    char **lines[8];
    int nlines[8];
    for (int i = 0; i < gen.n; i++) {
        names[i] = gen.files[i].name;
        const char *path = arena_printf(mm_arena, "%s/%s", dir, names[i]);
        FILE *f = fopen(path, "w");
        if (!f || fwrite(gen.files[i].text.s, 1, gen.files[i].text.n, f) != gen.files[i].text.n || fclose(f) != 0) {
            fprintf(stderr, "mmc: error: cannot write '%s': %s\n", path, strerror(errno));
            rc = 1;
            goto out;
        }
        lines[i] = split_lines(arena_strdup(mm_arena, gen.files[i].text.s), &nlines[i]);
    }

    PtrVec ks = {0};
    list_kernels(g, lines[0], nlines[0], &ks);
    for (int i = 0; i < ks.n; i++) {
        Kernel *k = ks.v[i];
        for (int f = 0; f < gen.n && !k->src; f++) locate(k, names[f], lines[f], nlines[f], cuda);
        for (int j = 0; j < k->nodes.n; j++) {
            const IrNode *n = k->nodes.v[j];
            k->flops += cg_flops(n, true) * B + cg_flops(n, false);
            k->bytes += kernel_bytes(n, B);
        }
    }
    int nk = 0;
    for (int i = 0; i < g->nodes.n; i++) nk += cg_has_kernel(IR_NODE(g, i));
    if (!ks.n && nk)
        fprintf(stderr, "mmc: note: graph %s runs its %d kernels from tables (more than MMNET_RUN_TABLE kernels); "
                        "they are not listed one by one\n", g->name, nk);

    /* --kernel: a function name or a node it computes. */
    if (a.kernel) {
        Kernel *k = find_kernel(&ks, a.kernel);
        if (!k && a.kernel[0] == '%')
            for (int i = 0; i < ks.n && !k; i++)
                for (int j = 0; j < ((Kernel *)ks.v[i])->nodes.n; j++) {
                    const IrNode *n = ((Kernel *)ks.v[i])->nodes.v[j];
                    if (atoi(a.kernel + 1) == n->id) k = ks.v[i];
                    for (int s = 0; s < n->nsrc && !k; s++)
                        if (n->src[s]->fused == n && n->src[s]->id == atoi(a.kernel + 1)) k = ks.v[i];
                    if (n->pool && n->pool->id == atoi(a.kernel + 1)) k = ks.v[i];
                }
        if (!k) no_kernel(a.kernel, g, &ks);
        ks.n = 0;
        vec_push(&ks, k);
    }

    if (a.asm_) c_asm(&a, dir, ks.v[0]);
    else if (a.ptx || a.sass) cuda_code(&a, dir, ks.v[0]);
    else {
        int inlined = 0;
        if (!cuda) c_remarks(&a, dir, names, gen.n, &ks, &inlined);
        double flops = 0, bytes = 0;
        for (int i = 0; i < ks.n; i++) flops += ((Kernel *)ks.v[i])->flops, bytes += ((Kernel *)ks.v[i])->bytes;
        bool remarks = !cuda && inlined >= 0;
        printf("graph %s of model %s: %d kernel%s%s, batch %ld, back end %s%s%s\n", g->name, p->name, ks.n, ks.n == 1 ? "" : "s",
               a.kernel ? " (--kernel)" : "", B, be->name, remarks ? ", remarks from " : "",
               remarks ? arena_printf(mm_arena, "%s %s -O3 -fopenmp", cg_c_compiler(a.cc), march_flag(&a)) : "");
        printf("  %s, %s moved\n", human(flops, "FLOP"), human(bytes, "B"));
        for (int i = 0; i < ks.n; i++) {
            Kernel *k = ks.v[i];
            /* Sorted by line, then column; a loop counts once. */
            for (int r = 1; r < k->remarks.n; r++)
                for (int j = r; j > 0; j--) {
                    Remark *x = k->remarks.v[j - 1], *y = k->remarks.v[j];
                    int fc = !x->file != !y->file ? (x->file ? 1 : -1) : x->file ? strcmp(x->file, y->file) : 0;
                    if (fc < 0 || (fc == 0 && (x->line < y->line || (x->line == y->line && x->col <= y->col)))) break;
                    k->remarks.v[j - 1] = y, k->remarks.v[j] = x;
                }
            int vec = 0, miss = 0;
            for (int r = 0; r < k->remarks.n; r++) {
                const char *t = ((Remark *)k->remarks.v[r])->text;
                vec += !strncmp(t, "vectorized loop", 15);
                miss += strstr(t, "[-Rpass-missed=") != NULL;
            }
            printf("\n%s  (%s%s%s:%d-%d)\n", k->fn, a.keep ? a.keep : "", a.keep ? "/" : "", k->src ? k->src : "?", k->first, k->last);
            for (int j = 0; j < k->nodes.n; j++) {
                const IrNode *n = k->nodes.v[j];
                printf("  %s\n      %s%s%s\n", cg_kernel_label(n), cg_describe(n), n->loc.line ? "  at " : "",
                       n->loc.line ? cg_loc(n) : "");
            }
            printf("  FLOPs %.0f (%s), bytes %.0f (%s)", k->flops, human(k->flops, "FLOP"), k->bytes, human(k->bytes, "B"));
            if (k->bytes > 0 && k->flops > 0) printf(", %.2f FLOP/byte", k->flops / k->bytes);
            printf("\n");
            if (!remarks) continue;
            printf("  loops: %d vectorized, %d not\n", vec, miss);
            for (int r = 0; r < k->remarks.n; r++) {
                const Remark *m = k->remarks.v[r];
                printf("    %s%s%d:%d: %s\n", m->file ? m->file : "", m->file ? ":" : "", m->line, m->col, m->text);
            }
        }
        if (inlined > 0)
            printf("\n(%d remarks about loops of the runtime's headers are in functions of their own, not inlined into one "
                   "kernel, e.g. the GEMMs of mmrt_cpu_gemm.h: --asm shows them with a kernel that calls them)\n", inlined);
    }
out:
    for (int i = 0; i < gen.n; i++) buf_free(&gen.files[i].text);
    arena_free(&arena);
    return rc;
}
