/* emit_cuda.c — placeholder until the CUDA back end lands (issue 5). */
#include <stdio.h>
#include <stdlib.h>
#include "codegen.h"
static bool supports(IrOp op) { (void)op; return false; }
static void emit(const IrProgram *p, const CgOptions *o, CgOutput *out) { (void)p; (void)o; (void)out; fprintf(stderr, "mmc: error: the CUDA back end is not built yet\n"); exit(1); }
const CgBackend cg_cuda_backend = {"cuda", supports, emit};
