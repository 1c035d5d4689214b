/* How much memory a training step of a graph needs, worked out before the step runs, so that `incv3 train`
 * can refuse a run that cannot fit instead of being killed in its first step (and `incv3 summary` can
 * print it). Private to the library. */
#ifndef INCV3_MEMORY_ESTIMATE_H
#define INCV3_MEMORY_ESTIMATE_H

#include <stddef.h>

#include "incv3/graph.h"

typedef struct incv3_mem_estimate {
    size_t params;        /* parameters and buffers, and the parameters' gradients */
    size_t optimizer;     /* AdamW's two moments per parameter */
    size_t weight_copies; /* the convolutions' blocked and packed weights of the kernels chosen */
    size_t activations;   /* peak of the forward's live outputs, replayed with the executor's lifetimes */
    size_t backward;      /* gradients in flight during the backward (three of the largest output) */
    size_t scratch;       /* kernels' per-call scratch (one of the largest output) */
    size_t extra;         /* the caller's: data set and loader batches */
    size_t base;          /* the process itself: code, libraries, thread stacks */
    size_t total;
} incv3_mem_estimate;

/* Fills e for a training step (forward keeping what backward needs, backward, AdamW) of g at `batch`,
 * with `extra` bytes of the caller's added. Never times kernels: where --conv-algo auto/winograd has not
 * chosen yet, each convolution counts the largest packed weights among its candidates. */
void incv3_train_memory_estimate(incv3_graph *g, int batch, size_t extra, incv3_mem_estimate *e);

#endif
