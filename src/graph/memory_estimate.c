/* The training step's memory, summed from the graph's own sizes (see memory_estimate.h). */
#include "graph/memory_estimate.h"

#include <stdlib.h>
#include <string.h>

#include "graph/graph_internal.h"

/* Code, shared libraries, OpenMP and loader thread stacks, jansson and stdio: measured as the peak RSS of
 * a tiny model's step (about 40 MiB), rounded up. */
#define PROCESS_BASE_BYTES ((size_t)64 << 20)

static size_t out_bytes(const incv3_graph *g, const incv3_node *nd, int batch)
{
    return (size_t)batch * incv3_node_sample_size(g, nd) * sizeof(float);
}

/* The peak of live activations in a training forward: the executor's rules (graph_exec.c) replayed
 * without computing. A node's output lives from its forward until its last reader ran, or to the backward
 * when the backward reads it (its own layer needs its output, or a reader needs its input); a fused
 * BatchNorm allocates its ReLU's output, which the ReLU then owns. */
static size_t forward_peak(const incv3_graph *g, int batch, size_t *largest)
{
    const int n = g->n_nodes;
    int *pending = calloc((size_t)n, sizeof *pending);
    unsigned char *keep = calloc((size_t)n, 1);
    size_t live = g->layout == INCV3_LAYOUT_NCHW8C ? out_bytes(g, &g->nodes[0], batch) : 0, peak = live;
    *largest = 0;
    if (!pending || !keep) { /* only an estimate: without its scratch, count everything as kept */
        for (int i = 0; i < n; i++)
            peak += out_bytes(g, &g->nodes[i], batch);
        free(pending);
        free(keep);
        return peak;
    }
    for (int i = 0; i < n; i++) {
        const incv3_node *nd = &g->nodes[i];
        keep[i] |= nd->ops->bwd_needs_output;
        for (int s = 0; s < INCV3_MAX_OUTPUTS; s++)
            keep[i] |= g->outputs[s] == i;
        for (int j = 0; j < nd->n_inputs; j++) {
            pending[nd->inputs[j]]++;
            keep[nd->inputs[j]] |= nd->ops->bwd_needs_input;
        }
    }
    for (int i = 1; i < n; i++) {
        const incv3_node *nd = &g->nodes[i];
        const size_t b = out_bytes(g, nd, batch);
        if (b > *largest)
            *largest = b;
        if (nd->fused_into < 0) /* a fused ReLU's output was allocated by its BatchNorm, same size */
            live += b;
        if (live > peak)
            peak = live;
        for (int j = 0; j < nd->n_inputs; j++) {
            const int s = nd->inputs[j];
            const incv3_node *src = &g->nodes[s];
            const int owns_nothing = src->ops == &incv3_layer_batchnorm && src->fuse_next >= 0;
            if (--pending[s] == 0 && !keep[s] && s != 0 && !owns_nothing)
                live -= out_bytes(g, src, batch);
        }
    }
    free(pending);
    free(keep);
    return peak;
}

static size_t conv_weight_copies(incv3_graph *g, const incv3_node *nd, int batch)
{
    if (g->layout != INCV3_LAYOUT_NCHW8C)
        return 0;
    const incv3_conv_shape s = incv3_conv_node_shape(g, nd, batch);
    size_t floats = 0;
    if (conv_plan_is_family(g->conv_algo) && !g->deterministic) {
        /* The plan may not be made yet, and making it means timing: the largest packed form of the
         * family's candidates for each pass instead. */
        size_t n, most[2] = {0, 0};
        const incv3_conv_kernel *t = incv3_conv_kernel_table(&n);
        for (size_t i = 0; i < n; i++) {
            const int pass = t[i].pass == INCV3_CONV_FWD ? 0 : t[i].pass == INCV3_CONV_BWD_DATA ? 1 : -1;
            if (pass < 0 || t[i].isa != g->isa || t[i].layout != g->layout || !incv3_conv_kernel_packs(&t[i], &s) ||
                (t[i].supports && !t[i].supports(&s)) || !conv_plan_in_family(&t[i], g->conv_algo))
                continue;
            const size_t f = t[i].packed_floats(&s);
            most[pass] = f > most[pass] ? f : most[pass];
        }
        return (floats + most[0] + most[1]) * sizeof(float);
    }
    const incv3_conv_kernel *k[3];
    incv3_conv_node_kernels(g, nd, batch, k);
    if (k[0] && incv3_conv_kernel_packs(k[0], &s))
        floats += k[0]->packed_floats(&s);
    if (k[1] && incv3_conv_kernel_packs(k[1], &s))
        floats += k[1]->packed_floats(&s);
    return floats * sizeof(float);
}

void incv3_train_memory_estimate(incv3_graph *g, int batch, size_t extra, incv3_mem_estimate *e)
{
    memset(e, 0, sizeof *e);
    incv3_graph_plan_fusion(g);
    for (size_t i = 0; i < incv3_graph_param_count(g); i++) {
        const incv3_param *p = incv3_graph_param(g, i);
        const size_t b = p->numel * sizeof(float);
        e->params += p->kind == INCV3_PARAM ? 2 * b : b;
        e->optimizer += p->kind == INCV3_PARAM ? 2 * b : 0;
    }
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].ops == &incv3_layer_conv)
            e->weight_copies += conv_weight_copies(g, &g->nodes[i], batch);
    size_t largest;
    e->activations = forward_peak(g, batch, &largest);
    e->backward = 3 * largest;
    e->scratch = largest;
    e->extra = extra;
    e->base = PROCESS_BASE_BYTES;
    e->total = e->params + e->optimizer + e->weight_copies + e->activations + e->backward + e->scratch + e->extra +
               e->base;
}
