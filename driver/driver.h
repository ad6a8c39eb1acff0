/* driver.h — the mmc command line: one function per sub-command. */
#ifndef MM_DRIVER_H
#define MM_DRIVER_H

#include <stdio.h>

#include "../passes/passes.h"

void print_info(FILE *out, const IrProgram *p);
/* The memory plan for a batch with `threads` CPU threads (mmc info --batch). */
void print_memory(FILE *out, const IrProgram *p, long batch, int threads);
/* mmc info --params: one line per parameter and state tensor, "NAME [shape]". */
void print_params(FILE *out, const IrProgram *p);

/* The whole file at path, NUL-terminated (free it), or NULL with errno set. */
char *mmc_read_all(const char *path);

#endif
