/* The training step's memory plan: the bytes a step (forward for backward, backward, AdamW) holds at its
 * peak, by category, from a simulation of the executor's allocations and frees over the graph's nodes
 * (the lifetime rules of lifetime.c, so plan and executor cannot disagree). */
#ifndef INCV3_MEMORY_PLAN_H
#define INCV3_MEMORY_PLAN_H

#include <stddef.h>
#include <stdio.h>

#include "incv3/graph.h"

typedef enum {
    INCV3_MEM_PARAMS,      /* parameters and buffers */
    INCV3_MEM_GRADS,       /* parameter gradients */
    INCV3_MEM_MOMENTS,     /* AdamW's two moments */
    INCV3_MEM_WORKSPACE,   /* shared conv workspaces: blocked weights / weight gradient, packed weights */
    INCV3_MEM_INPUT,       /* the caller's input batch (NCHW) */
    INCV3_MEM_INPUT_BLK,   /* its blocked copy, where live at the peak */
    INCV3_MEM_ACTIVATIONS, /* layer outputs live at the peak */
    INCV3_MEM_ACT_GRADS,   /* activation gradients live at the peak */
    INCV3_MEM_SCRATCH,     /* kernels' per-call scratch (estimate: the largest layer's weights per thread) */
    INCV3_MEM_COUNT
} incv3_mem_category;

#define INCV3_MEM_KINDS 12

typedef struct incv3_memory_plan {
    int batch, threads;
    size_t bytes[INCV3_MEM_COUNT]; /* at the peak */
    size_t total;                  /* sum of bytes[] */
    /* Where activations + activation gradients peak: node index, and whether in backward. */
    int peak_node, peak_in_backward;
    char peak_at[INCV3_NAME_MAX + 32]; /* that node's kind and name */
    size_t act_fwd_end; /* activations live when forward ends */
    /* The highest activations + activation gradients (what incv3_graph_peak_activation_bytes reports). */
    size_t tracked_peak;
    /* Activations live at the peak by the kind of layer that wrote them. */
    const char *kind[INCV3_MEM_KINDS];
    size_t kind_bytes[INCV3_MEM_KINDS], kind_tensors[INCV3_MEM_KINDS];
    int n_kinds;
} incv3_memory_plan;

/* Plans a training step at `batch` with the graph's kernels (incv3_graph_set_kernels first) for the
 * current OpenMP thread count. Prepares the graph for that batch (it must not be mid-step). */
int incv3_memory_plan_make(incv3_graph *g, int batch, incv3_memory_plan *mp, incv3_error *err);
void incv3_memory_plan_print(const incv3_memory_plan *mp, FILE *out);

#endif
