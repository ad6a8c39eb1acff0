/* rt_loader.h — batches from a data source, in the layout the back ends
 * take, read ahead on background threads.
 *
 * The training loop knows the order of an epoch's examples before it
 * starts; the loader reads them in that order, a batch at a time, into a
 * ring of batch buffers, with worker threads decoding the next batches
 * while the current step runs. What happens to an example on the way is
 * the same for every source: the central or a random crop (in time and
 * space, at the same place in every input, as NVGesture's static
 * cropping), a random horizontal flip (each input independently, as for
 * the views of an object, or all together), then normalisation
 * (x - mean) / std per channel, and in training, modality dropout: one
 * input of the example set to zero. Random choices
 * come from the example's position in the sequence and a seed, never from
 * which thread ran first, so a run is the same with any number of workers. */
#ifndef RT_LOADER_H
#define RT_LOADER_H

#include "rt_source.h"

#define RT_NORM_MAX 16     /* channels a normalisation lists */

/* How examples are transformed on their way into a batch. */
typedef struct {
    /* Normalisation of input i: nnorm[i] values (1: every channel; else
     * one per channel); 0: none. */
    int nnorm[RT_MAXIN];
    float mean[RT_MAXIN][RT_NORM_MAX], std[RT_MAXIN][RT_NORM_MAX];
    bool flip;             /* training: mirror inputs left-right with probability 1/2 ... */
    bool flip_same;        /* ... all of an example's inputs together (else each on its own) */
    int crop;              /* > 0: read examples at crop x crop and cut the input's H x W
                              from them, at random in training, the centre in evaluation */
    int frames;            /* > 0: read clips (4-D inputs) with this many frames and cut the
                              input's T consecutive ones likewise */
    float drop;            /* training: the probability that an example has one of its inputs,
                              chosen at random, zeroed (modality dropout, rt_modality_drop) */
} rt_augment;

typedef struct rt_loader rt_loader;

/* A loader for batches of up to max_batch examples of model m's inputs.
 * workers: background threads (0 reads in the calling thread). The
 * batches live in memory from be->host_alloc when the back end has one
 * (pinned memory, which a GPU copies from fastest and asynchronously); be
 * may be NULL. */
rt_loader *rt_loader_new(const rt_model *m, int max_batch, int workers, const rt_augment *aug, const rt_backend *be);
void rt_loader_free(rt_loader *L);

/* Start a pass over examples idx[0..n) of src (idx NULL: 0..n-1), B to a
 * batch, the last one smaller; `train` selects random crops and flips,
 * drawn from seed. Any pass still running is finished first. */
void rt_loader_start(rt_loader *L, rt_source *src, const int *idx, int n, int B, bool train, uint64_t seed);

/* The same pass cut across nranks processes: of each batch of B (the last
 * one smaller) this one reads the positions rt_shard gives rank `rank`,
 * in order, as a batch of its own (possibly empty, B 0). Each example's
 * crop and flip are drawn from its position in the whole pass, so the
 * ranks together read exactly the batches one process would. */
void rt_loader_start_shard(rt_loader *L, rt_source *src, const int *idx, int n, int B, bool train, uint64_t seed, int rank,
                           int nranks);

/* The next batch of the pass into *b, 1; 0 at the end of the pass; -1
 * when reading failed (message in err). The batch stays valid until the
 * call after next, so that a caller can hold it while it uses the one
 * before (a GPU back end copies the next batch during a step). */
int rt_loader_next(rt_loader *L, rt_batch *b, char *err, size_t errlen);

/* CPU time the loader's threads (or the caller's, without workers) have
 * spent reading, cropping, flipping and normalising examples, in seconds,
 * over every pass so far. */
double rt_loader_cpu_s(rt_loader *L);

/* The shape the source must read input i at: the input's, with crop x crop
 * in place of its height and width and `frames` in place of its length. */
rt_source_input rt_loader_read_shape(const rt_model *m, int i, const rt_augment *aug);

/* An in-memory data set (IDX digits, synthetic tensors) as a source of
 * model m's inputs, matched by name. The source borrows ds's arrays. NULL
 * with err when ds lacks an input or holds it at another size. */
rt_source *rt_memory_source(const rt_dataset *ds, const rt_model *m, const char *what, char *err, size_t errlen);

#endif
