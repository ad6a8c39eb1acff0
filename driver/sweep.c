/* sweep.c — placeholder until the sweep driver lands (issue 4). */
#include <stdio.h>
int mmc_sweep(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "mmc: sweep is not built yet\n"); return 1; }
