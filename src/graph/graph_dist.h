/* What the graph needs from data-parallel training (src/dist) without depending on it: a hook after each
 * node's backward, so gradient allreduces can start while backward continues, and a sum over the ranks for
 * synchronized BatchNorm. A graph without it (the default) computes exactly as a single process. */
#ifndef INCV3_GRAPH_DIST_H
#define INCV3_GRAPH_DIST_H

#include <stddef.h>

#include "incv3/error.h"
#include "incv3/graph.h"

typedef struct incv3_graph_dist {
    void *ctx;
    int ranks;   /* processes training the model together */
    int sync_bn; /* BatchNorm statistics over the global batch (sum_f64 must be set) */
    /* In-place sum over the ranks of n doubles. */
    int (*sum_f64)(void *ctx, double *buf, size_t n, incv3_error *err);
    /* Called during backward once every parameter with index >= first_param has its final gradient
     * (backward visits nodes, hence parameters, in reverse order). May be NULL. */
    int (*grads_ready)(void *ctx, incv3_graph *g, size_t first_param, incv3_error *err);
} incv3_graph_dist;

/* Installs (or with NULL removes) the hooks; *d must outlive the graph's use of it. Fails when the graph's
 * parameters are not in node order (the bucketing relies on it). */
int incv3_graph_set_dist(incv3_graph *g, const incv3_graph_dist *d, incv3_error *err);

#endif
