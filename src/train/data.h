/* Training data: an in-memory labelled image set (from IDX files), the deterministic validation split,
 * preprocessing (bilinear resize, 3 channels, normalization) and a batch loader that prepares the next
 * batch on a worker thread while the model trains on the current one. */
#ifndef INCV3_TRAIN_DATA_H
#define INCV3_TRAIN_DATA_H

#include <stddef.h>
#include <sched.h>
#include <stdint.h>

#include "incv3/error.h"

typedef struct incv3_dataset {
    int count, rows, cols, classes;
    uint8_t *images; /* count x rows x cols, owned */
    int64_t *labels; /* count, owned */
} incv3_dataset;

/* Reads DIR/SPLIT-{images-idx3,labels-idx1}-ubyte[.gz] ("train" or "t10k"), validating both files in full
 * (header against length, labels below `classes`, counts equal) before keeping the first `limit` items
 * (0 = all). */
int incv3_dataset_load_mnist(const char *dir, const char *split, int classes, int limit, incv3_dataset *out,
                             incv3_error *err);
void incv3_dataset_free(incv3_dataset *ds);

/* Splits `all` into train and validation sets: round(count x val_fraction) items chosen by a fixed
 * permutation (independent of the training seed, so every run validates on the same images) go to val. */
int incv3_dataset_split(const incv3_dataset *all, double val_fraction, incv3_dataset *train, incv3_dataset *val,
                        incv3_error *err);

typedef struct incv3_preprocess {
    int size;          /* output height and width */
    float mean, std;   /* normalization of pixel / 255 */
} incv3_preprocess;

/* One image: bilinear resize (half-pixel centres, as PyTorch's Resize for upscaling) of rows x cols bytes to
 * size x size, replicated to 3 channels, normalized; dst holds 3 x size x size floats. */
void incv3_preprocess_image(const incv3_preprocess *p, const uint8_t *src, int rows, int cols, float *dst);

typedef struct incv3_loader incv3_loader;

/* Batches of `batch` items (the last batch of an epoch may be smaller). shuffle: each epoch's order is a
 * permutation drawn from (seed, epoch) alone, so any epoch and batch can be reproduced on resume.
 * worker_cpus: where the preparing thread may run (the team's cores when the kernels' threads are pinned:
 * otherwise it would inherit the creating thread's single core), NULL to inherit. */
incv3_loader *incv3_loader_new(const incv3_dataset *ds, const incv3_preprocess *p, int batch, int shuffle,
                               uint64_t seed, const cpu_set_t *worker_cpus, incv3_error *err);
void incv3_loader_free(incv3_loader *l);
/* Data-parallel training: from the next incv3_loader_start on, each batch holds only this process's part,
 * items [shard * n / shards, (shard + 1) * n / shards) of the n the batch has in one process (same order,
 * same batches), so the shards of all processes together are the single-process batch. */
void incv3_loader_set_shard(incv3_loader *l, int shard, int shards);
/* Batches in one epoch. */
int incv3_loader_batches(const incv3_loader *l);
/* Starts an epoch at batch `first` (0 normally; a resumed run skips the batches already done). */
int incv3_loader_start(incv3_loader *l, int epoch, int first, incv3_error *err);
/* The next batch of the epoch: inputs (n x 3 x size x size) and labels, valid until the next call; returns 1,
 * or 0 at the end of the epoch. */
int incv3_loader_next(incv3_loader *l, const float **x, const int64_t **y, int *n);

#endif
