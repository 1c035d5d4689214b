/* The training step's memory plan: a dry run of the executor's activation allocations and frees (the
 * rules of lifetime.c) plus the step's persistent buffers. */
#include "graph/memory_plan.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph_internal.h"

typedef struct sim {
    incv3_graph *g;
    incv3_memory_plan *mp;
    size_t *out, *grad; /* bytes of each node's live output / gradient, 0 when none */
    size_t act, act_grad, peak;
    size_t blk, blk_bytes; /* the blocked input copy: live bytes, and its size */
    int node, in_backward;
} sim;

static size_t node_bytes(const incv3_graph *g, const incv3_node *nd)
{
    return (size_t)g->batch * incv3_node_sample_size(g, nd) * sizeof(float);
}

/* Snapshot of the activations by layer kind, taken at each new peak. */
static void snapshot(sim *s)
{
    incv3_memory_plan *mp = s->mp;
    mp->n_kinds = 0;
    for (int i = 0; i < s->g->n_nodes; i++) {
        if (!s->out[i])
            continue;
        const char *kind = s->g->nodes[i].ops->kind;
        int k = 0;
        while (k < mp->n_kinds && strcmp(mp->kind[k], kind) != 0)
            k++;
        if (k == mp->n_kinds) {
            if (k == INCV3_MEM_KINDS)
                continue; /* more kinds than rows: the total still counts them */
            mp->kind[k] = kind;
            mp->kind_bytes[k] = mp->kind_tensors[k] = 0;
            mp->n_kinds++;
        }
        mp->kind_bytes[k] += s->out[i];
        mp->kind_tensors[k]++;
    }
    mp->bytes[INCV3_MEM_ACTIVATIONS] = s->act;
    mp->bytes[INCV3_MEM_INPUT_BLK] = s->blk;
    mp->bytes[INCV3_MEM_ACT_GRADS] = s->act_grad;
    mp->peak_node = s->node;
    const incv3_node *nd = &s->g->nodes[s->node];
    snprintf(mp->peak_at, sizeof mp->peak_at, "%s%s%s", nd->ops->kind, nd->name[0] ? " " : "", nd->name);
    mp->peak_in_backward = s->in_backward;
}

static void check_peak(sim *s)
{
    if (s->act + s->act_grad > s->mp->tracked_peak)
        s->mp->tracked_peak = s->act + s->act_grad;
    if (s->act + s->act_grad + s->blk > s->peak) {
        s->peak = s->act + s->act_grad + s->blk;
        snapshot(s);
    }
}

static void alloc_out(sim *s, int i)
{
    if (!s->out[i]) {
        s->out[i] = node_bytes(s->g, &s->g->nodes[i]);
        s->act += s->out[i];
        check_peak(s);
    }
}

static void free_out(sim *s, int i)
{
    s->act -= s->out[i];
    s->out[i] = 0;
}

static void alloc_grad(sim *s, int i)
{
    if (!s->grad[i]) {
        s->grad[i] = node_bytes(s->g, &s->g->nodes[i]);
        s->act_grad += s->grad[i];
        check_peak(s);
    }
}

static void free_grad(sim *s, int i)
{
    s->act_grad -= s->grad[i];
    s->grad[i] = 0;
}

/* Inputs marked recompute come back before a reader's backward (incv3_graph_recompute_inputs). */
static void recompute_inputs(sim *s, int i)
{
    const incv3_node *nd = &s->g->nodes[i];
    for (int j = 0; j < nd->n_inputs; j++) {
        const int src = nd->inputs[j];
        if (!s->g->nodes[src].recompute)
            continue;
        if (s->g->nodes[src].ops == &incv3_layer_input) {
            s->blk = s->blk_bytes;
            check_peak(s);
        } else if (!s->out[src]) {
            recompute_inputs(s, src);
            alloc_out(s, src);
        }
    }
}

/* incv3_graph_forward's loop, allocations only. */
static void simulate_forward(sim *s, const unsigned char *needed)
{
    incv3_graph *g = s->g;
    for (int i = 1; i < g->n_nodes; i++) {
        if (!needed[i])
            continue;
        incv3_node *nd = &g->nodes[i];
        s->node = i;
        if (incv3_node_stores_output(g, nd))
            alloc_out(s, i);
        else if (nd->ops == &incv3_layer_batchnorm && nd->fuse_next >= 0)
            alloc_out(s, nd->fuse_next); /* the fused batchnorm writes its relu's output */
        nd->computed = 1;
        for (int j = 0; j < nd->n_inputs; j++) {
            incv3_node *src = &g->nodes[nd->inputs[j]];
            if (--src->pending == 0 && !src->keep && src->ops != &incv3_layer_input)
                free_out(s, nd->inputs[j]);
            else if (src->pending == 0 && src->ops == &incv3_layer_input && src->recompute)
                s->blk = 0;
        }
    }
    for (int o = 0; o < INCV3_MAX_OUTPUTS && g->layout == INCV3_LAYOUT_NCHW8C; o++)
        if (g->outputs[o] >= 0 && !g->nodes[g->outputs[o]].flat) {
            /* the NCHW copy for the caller: counted with the activations */
            s->act += node_bytes(g, &g->nodes[g->outputs[o]]);
            check_peak(s);
        }
    s->mp->act_fwd_end = s->act;
}

/* incv3_graph_backward's loop: every layer asks incv3_node_input_grad for each input's gradient. */
static void simulate_backward(sim *s)
{
    incv3_graph *g = s->g;
    s->in_backward = 1;
    incv3_graph_mark_requires_grad(g, 0);
    for (int o = 0; o < INCV3_MAX_OUTPUTS; o++)
        if (g->outputs[o] >= 0 && g->nodes[g->outputs[o]].requires_grad) {
            s->node = g->outputs[o];
            alloc_grad(s, g->outputs[o]);
            g->nodes[g->outputs[o]].grad_written = 1;
        }
    for (int i = g->n_nodes - 1; i >= 1; i--) {
        incv3_node *nd = &g->nodes[i];
        if (!nd->computed || !nd->grad_written)
            continue;
        s->node = i;
        recompute_inputs(s, i);
        if (nd->ops == &incv3_layer_concat)
            for (int j = 0; j < nd->n_inputs; j++) {
                const incv3_node *src = &g->nodes[nd->inputs[j]];
                if (src->restore_at == i && src->requires_grad)
                    alloc_out(s, nd->inputs[j]);
            }
        if (!incv3_node_freed_after_backward(g, nd)) {
            /* a fused relu: its batchnorm's backward applies the mask */
            g->nodes[nd->fused_into].grad_written = 1;
            continue;
        }
        for (int j = 0; j < nd->n_inputs; j++) {
            incv3_node *src = &g->nodes[nd->inputs[j]];
            if (!src->requires_grad)
                continue;
            if (!(src->ops == &incv3_layer_input && g->layout == INCV3_LAYOUT_NCHW))
                alloc_grad(s, nd->inputs[j]);
            src->grad_written = 1;
        }
        if (g->fuse_active && nd->ops == &incv3_layer_batchnorm && nd->fuse_next >= 0) {
            free_out(s, nd->fuse_next);
            free_grad(s, nd->fuse_next);
        }
        if (!incv3_graph_is_output(g, i))
            free_out(s, i);
        free_grad(s, i);
    }
}

int incv3_memory_plan_make(incv3_graph *g, int batch, incv3_memory_plan *mp, incv3_error *err)
{
    memset(mp, 0, sizeof *mp);
    if (incv3_graph_prepare_batch(g, batch, err))
        return -1;
    mp->batch = batch;
    mp->threads = omp_get_max_threads();
    size_t *buf = calloc(2 * (size_t)g->n_nodes, sizeof *buf);
    unsigned char *needed = malloc((size_t)g->n_nodes);
    if (!buf || !needed) {
        free(buf);
        free(needed);
        return incv3_fail(err, "out of memory for the memory plan");
    }
    const size_t in_plane = (size_t)batch * g->in_h * g->in_w * sizeof(float);
    sim s = {.g = g, .mp = mp, .out = buf, .grad = buf + g->n_nodes};
    if (g->layout == INCV3_LAYOUT_NCHW8C)
        s.blk = s.blk_bytes = in_plane * (size_t)((g->in_c + 7) / 8 * 8);
    incv3_graph_mark_needed(g, ~0u, needed);
    incv3_graph_begin_step(g, INCV3_TRAIN, 1);
    for (int i = 0; i < g->n_nodes; i++)
        g->nodes[i].computed = i == 0;
    incv3_graph_mark_lifetimes(g, needed, 1);
    simulate_forward(&s, needed);
    simulate_backward(&s);
    /* The dry run leaves no step behind that a backward could follow. */
    g->fwd_for_backward = 0;
    for (int i = 0; i < g->n_nodes; i++)
        g->nodes[i].computed = 0;
    free(buf);
    free(needed);

    size_t largest_weights = 0;
    for (size_t i = 0; i < g->n_params; i++) {
        const incv3_param *p = &g->params[i];
        mp->bytes[INCV3_MEM_PARAMS] += p->numel * sizeof(float);
        if (p->kind == INCV3_PARAM) {
            mp->bytes[INCV3_MEM_GRADS] += p->numel * sizeof(float);
            mp->bytes[INCV3_MEM_MOMENTS] += 2 * p->numel * sizeof(float);
            if (p->numel > largest_weights)
                largest_weights = p->numel;
        }
    }
    for (int w = 0; w < INCV3_WS_COUNT; w++)
        mp->bytes[INCV3_MEM_WORKSPACE] += g->ws_floats[w] * sizeof(float);
    mp->bytes[INCV3_MEM_INPUT] = in_plane * (size_t)g->in_c;
    /* Per-call scratch (transposed weights, per-thread partial weight gradients, Winograd tiles) is freed
     * after each call; the largest layer's weights per thread bounds it for the model's layers, except the
     * kernels that say their own (Winograd backward-weights: the transformed tiles of a chunk and the
     * transformed gradient). */
    size_t scratch = largest_weights * sizeof(float) * (size_t)mp->threads;
    for (int i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].ops != &incv3_layer_conv)
            continue;
        const incv3_conv_kernel *k[3];
        incv3_conv_node_kernels(g, &g->nodes[i], batch, k);
        for (int pass = 0; pass < 3; pass++)
            if (k[pass] && k[pass]->scratch_floats) {
                const incv3_conv_shape s = incv3_conv_node_shape(g, &g->nodes[i], batch);
                const size_t b = k[pass]->scratch_floats(&s) * sizeof(float);
                scratch = b > scratch ? b : scratch;
            }
    }
    mp->bytes[INCV3_MEM_SCRATCH] = scratch;
    for (int c = 0; c < INCV3_MEM_COUNT; c++)
        mp->total += mp->bytes[c];
    return 0;
}

static double mib(size_t b)
{
    return (double)b / 1048576.0;
}

void incv3_memory_plan_print(const incv3_memory_plan *mp, FILE *out)
{
    static const char *const names[INCV3_MEM_COUNT] = {
        "parameters and buffers",
        "parameter gradients",
        "AdamW moments",
        "conv weight workspaces",
        "input batch (NCHW)",
        "input batch, blocked copy at the peak",
        "activations at the peak",
        "activation gradients at the peak",
        "kernel scratch (estimate)",
    };
    fprintf(out, "Memory plan of one training step, batch %d, %d threads (peak in %s at node %d, %s)\n",
            mp->batch, mp->threads, mp->peak_in_backward ? "backward" : "forward", mp->peak_node, mp->peak_at);
    fprintf(out, "%-40s %12s %7s\n", "category", "MiB", "share");
    for (int c = 0; c < INCV3_MEM_COUNT; c++)
        fprintf(out, "%-40s %12.1f %6.1f%%\n", names[c], mib(mp->bytes[c]),
                mp->total ? 100.0 * (double)mp->bytes[c] / (double)mp->total : 0.0);
    fprintf(out, "%-40s %12.1f\n", "total at the peak", mib(mp->total));
    fprintf(out, "\nActivations at the peak by layer kind (forward ends with %.1f MiB live)\n", mib(mp->act_fwd_end));
    fprintf(out, "%-40s %12s %7s\n", "kind", "MiB", "tensors");
    for (int k = 0; k < mp->n_kinds; k++)
        fprintf(out, "%-40s %12.1f %7zu\n", mp->kind[k], mib(mp->kind_bytes[k]), mp->kind_tensors[k]);
}
