/* rt_safetensors.h — reading the header of a safetensors file
 * (https://huggingface.co/docs/safetensors): the one parser behind
 * checkpoints and --init files (rt_ckpt.c) and the user's arrays
 * (rt_arrays.c). Everything in the header is checked against the file
 * before a caller gets a pointer into its data. */
#ifndef RT_SAFETENSORS_H
#define RT_SAFETENSORS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define RT_ST_MAX_DIM 8               /* dimensions a tensor may have */
#define RT_ST_MAX_HEADER (100u << 20) /* bytes; a larger header is corruption */

/* A dtype the caller reads: its name in the file and its element size. */
typedef struct {
    const char *name;
    int size;
} rt_st_dtype;

typedef struct {
    const char *name;    /* into the JSON tree */
    const char *dtype_s; /* as the file spells it */
    int dtype;           /* index into the caller's dtypes, or -1 (a dtype it allowed without reading) */
    int ndim;
    int64_t shape[RT_ST_MAX_DIM];
    uint64_t begin, end; /* data_offsets, within the data section */
    const uint8_t *data; /* the tensor's first byte in the caller's buffer */
} rt_st_tensor;

typedef struct {
    cJSON *root;
    const cJSON *meta; /* "__metadata__" (an object of strings), or NULL */
    int n;
    rt_st_tensor *t;
} rt_st_header;

/* rt_st_parse's flags. */
enum {
    RT_ST_OTHER_DTYPES = 1, /* dtypes outside the caller's table are allowed (dtype -1, their size unchecked) */
    RT_ST_ANY_METADATA = 2, /* "__metadata__" is skipped, not checked to be an object of strings */
};

/* Parses the header of the file whose bytes are buf[0..size) into h: the
 * length, the JSON, "__metadata__" (an object of strings, as the format
 * says), and every entry: its dtype one of types[0..ntypes), a shape of
 * at most RT_ST_MAX_DIM non-negative integers, data_offsets inside the
 * data section that hold exactly the shape's bytes; no name twice, no two
 * tensors sharing bytes. flags: RT_ST_*. 0, or -1 with err naming path;
 * rt_st_free(h) either way. */
int rt_st_parse(const char *path, const uint8_t *buf, uint64_t size, const rt_st_dtype *types, int ntypes, int flags,
                rt_st_header *h, char *err, size_t errlen);
void rt_st_free(rt_st_header *h);
/* "[4, 1, 2, 2]" */
void rt_st_fmt_shape(char *s, size_t n, int ndim, const int64_t *shape);

#endif
