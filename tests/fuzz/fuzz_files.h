/* fuzz_files.h — what the reader fuzz targets share: a scratch directory
 * of their own (one per process, removed at exit) and writing the input
 * there as a file, since the readers take paths. */
#ifndef FUZZ_FILES_H
#define FUZZ_FILES_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char fuzz_dir[64];
/* Where the targets store what they read, so that the reads stay. */
static volatile unsigned fuzz_sink;

static void fuzz_cleanup(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_dir);
    if (system(cmd) != 0) fprintf(stderr, "fuzz: cannot remove %s\n", fuzz_dir);
}

/* The scratch directory, made on first use. */
static const char *fuzz_scratch(void) {
    if (!fuzz_dir[0]) {
        snprintf(fuzz_dir, sizeof fuzz_dir, "/tmp/mmnet-fuzz-XXXXXX");
        if (!mkdtemp(fuzz_dir)) abort();
        atexit(fuzz_cleanup);
    }
    return fuzz_dir;
}

/* dir/name := data[0, size); the path in path[n]. */
static void fuzz_write(char *path, size_t n, const char *name, const uint8_t *data, size_t size) {
    snprintf(path, n, "%s/%s", fuzz_scratch(), name);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    if (fclose(f) != 0) abort();
}

#endif
