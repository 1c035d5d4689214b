/* Forward and backward passes over the graph, with activation lifetimes: a node's output is freed as soon
 * as no later forward step and no backward step reads it. */
#include <omp.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util/oom.h"
#include "graph/graph_internal.h"
#include "layout/reorder.h"

static int track_alloc(incv3_graph *g, incv3_tensor *t, int n, int c, int h, int w, const char *what,
                       const char *name, incv3_error *err)
{
    char label[INCV3_NAME_MAX + 48];
    snprintf(label, sizeof label, "%s of %s", what, name[0] ? name : "layer");
    if (incv3_tensor_alloc(t, n, c, h, w, label, err))
        return -1;
    g->live_bytes += incv3_tensor_count(t) * sizeof(float);
    if (g->live_bytes > g->peak_bytes)
        g->peak_bytes = g->live_bytes;
    return 0;
}

static void track_free(incv3_graph *g, incv3_tensor *t)
{
    if (t->data) {
        g->live_bytes -= incv3_tensor_count(t) * sizeof(float);
        incv3_tensor_free(t);
    }
}

static int is_input(const incv3_node *nd)
{
    return nd->ops == &incv3_layer_input;
}

static void free_activations(incv3_graph *g)
{
    for (int s = 0; s < INCV3_MAX_OUTPUTS; s++)
        track_free(g, &g->out_plain[s]);
    for (int i = 0; i < g->n_nodes; i++) {
        incv3_node *nd = &g->nodes[i];
        if (!is_input(nd))
            track_free(g, &nd->out);
        track_free(g, &nd->grad);
    }
}

const float *incv3_node_input_data(const incv3_graph *g, const incv3_node *nd, int i)
{
    int src = nd->inputs[i];
    if (!is_input(&g->nodes[src]))
        return g->nodes[src].out.data;
    return g->layout == INCV3_LAYOUT_NCHW8C ? g->input_blk.data : g->fwd_input;
}

int incv3_node_alloc_output(incv3_graph *g, incv3_node *nd, incv3_error *err)
{
    return track_alloc(g, &nd->out, g->batch, incv3_node_stored_c(g, nd), nd->h, nd->w, "output", nd->name, err);
}

int incv3_graph_reserve_workspace(incv3_graph *g, incv3_workspace ws, size_t floats, incv3_error *err)
{
    if (floats <= g->ws_floats[ws])
        return 0;
    incv3_aligned_free(g->ws[ws]);
    g->ws_floats[ws] = 0;
    if (!(g->ws[ws] = incv3_aligned_alloc(floats * sizeof(float), 0)))
        return incv3_fail(err, "out of memory for a %.1f MiB convolution workspace", floats * sizeof(float) / 1048576.0);
    g->ws_floats[ws] = floats;
    return 0;
}

static int alloc_grad(incv3_graph *g, incv3_node *nd, incv3_error *err)
{
    if (nd->grad.data)
        return 0;
    return track_alloc(g, &nd->grad, g->batch, incv3_node_stored_c(g, nd), nd->h, nd->w, "gradient", nd->name, err);
}

int incv3_node_input_grad(incv3_graph *g, incv3_node *nd, int i, float **dx, int *accumulate, incv3_error *err)
{
    incv3_node *src = &g->nodes[nd->inputs[i]];
    *dx = NULL;
    *accumulate = 0;
    if (!src->requires_grad)
        return 0;
    if (is_input(src) && g->layout == INCV3_LAYOUT_NCHW) {
        *dx = g->bwd_d_input;
    } else {
        /* The blocked input's gradient is reordered into the caller's buffer at the end of backward. */
        if (alloc_grad(g, src, err))
            return -1;
        *dx = src->grad.data;
    }
    *accumulate = src->grad_written;
    src->grad_written = 1;
    return 0;
}

void incv3_grad_pass(float *dst, const float *src, size_t count, int accumulate)
{
    if (accumulate)
        for (size_t e = 0; e < count; e++)
            dst[e] += src[e];
    else
        memcpy(dst, src, count * sizeof(float));
}

void incv3_node_release(incv3_graph *g, incv3_node *nd)
{
    track_free(g, &nd->out);
    track_free(g, &nd->grad);
}

/* The caller's input reordered to the blocked layout (a no-op in NCHW, where layers read it directly). */
static int make_input_blk(incv3_graph *g, incv3_error *err)
{
    if (g->layout != INCV3_LAYOUT_NCHW8C)
        return 0;
    incv3_dims d = {g->batch, g->in_c, g->in_h, g->in_w};
    if (!g->input_blk.data && incv3_tensor_alloc(&g->input_blk, g->batch, (g->in_c + 7) / 8 * 8, g->in_h,
                                                 g->in_w, "the blocked input", err))
        return -1;
    reorder_nchw_to_nchw8c_f32(d, g->fwd_input, g->input_blk.data);
    return 0;
}

int incv3_graph_recompute_inputs(incv3_graph *g, incv3_node *nd, incv3_error *err)
{
    const incv3_forward_opts o = {.mode = g->fwd_mode, .for_backward = 1};
    for (int j = 0; j < nd->n_inputs; j++) {
        incv3_node *src = &g->nodes[nd->inputs[j]];
        /* The caller's input stays valid until backward ends (the NCHW layout reads it there too). */
        if (is_input(src) && src->recompute && !g->input_blk.data && make_input_blk(g, err))
            return -1;
        if (!is_input(src) && src->recompute && !src->out.data &&
            (incv3_graph_recompute_inputs(g, src, err) || incv3_node_alloc_output(g, src, err) ||
             src->ops->forward(g, src, &o, err)))
            return -1;
    }
    return 0;
}

static double prof_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int single_reader(const incv3_graph *g, int id, const incv3_layer_ops *kind)
{
    if (g->nodes[id].consumers != 1 || incv3_graph_is_output(g, id))
        return -1;
    for (int i = id + 1; i < g->n_nodes; i++)
        if (g->nodes[i].n_inputs == 1 && g->nodes[i].inputs[0] == id)
            return g->nodes[i].ops == kind ? i : -1;
    return -1;
}

void incv3_graph_plan_fusion(incv3_graph *g)
{
    for (int i = 0; i < g->n_nodes; i++)
        g->nodes[i].fuse_next = g->nodes[i].fused_into = -1;
    if (!g->ks->bn_relu_fwd_train) /* the reference set runs every layer on its own */
        return;
    for (int i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].ops != &incv3_layer_conv)
            continue;
        const int bn = single_reader(g, i, &incv3_layer_batchnorm);
        const int relu = bn >= 0 ? single_reader(g, bn, &incv3_layer_relu) : -1;
        if (relu < 0 || !g->nodes[bn].stat_sum)
            continue;
        g->nodes[i].fuse_next = bn;
        g->nodes[bn].fuse_next = relu;
        g->nodes[relu].fused_into = bn;
    }
}

int incv3_graph_prepare_batch(incv3_graph *g, int batch, incv3_error *err)
{
    free_activations(g);
    incv3_tensor_free(&g->input_blk);
    g->batch = batch;
    g->prepared_threads = omp_get_max_threads();
    incv3_graph_plan_fusion(g);
    for (int i = 0; i < g->n_nodes; i++) {
        incv3_node *nd = &g->nodes[i];
        if (nd->ops->prepare && nd->ops->prepare(g, nd, batch, err)) {
            g->batch = 0;
            return -1;
        }
    }
    return 0;
}

int incv3_graph_forward(incv3_graph *g, const float *input, int batch, const incv3_forward_opts *opts,
                        incv3_error *err)
{
    if (g->error[0])
        return incv3_fail(err, "graph was not built: %s", g->error);
    if (batch < 1)
        return incv3_fail(err, "batch size %d: must be at least 1", batch);
    if (!input)
        return incv3_fail(err, "no input given");
    unsigned outputs = opts->outputs ? opts->outputs : 1u;
    for (int s = 0; s < INCV3_MAX_OUTPUTS; s++)
        if ((outputs >> s) & 1u && g->outputs[s] < 0)
            return incv3_fail(err, "output %d requested but the graph has none", s);
    /* Kernels are chosen per batch and thread count (the fastest of a layer can change with either); a new
     * thread count alone only chooses the convolutions' kernels again. */
    if (batch != g->batch) {
        if (incv3_graph_prepare_batch(g, batch, err))
            return -1;
    } else if (omp_get_max_threads() != g->prepared_threads) {
        free_activations(g);
        g->prepared_threads = omp_get_max_threads();
        for (int i = 0; i < g->n_nodes; i++)
            if (g->nodes[i].ops == &incv3_layer_conv && g->nodes[i].ops->prepare(g, &g->nodes[i], batch, err)) {
                g->batch = 0;
                return -1;
            }
    } else {
        free_activations(g);
    }
    unsigned char needed[g->n_nodes];
    incv3_graph_mark_needed(g, outputs, needed);

    g->fwd_input = input;
    if (make_input_blk(g, err))
        return -1;
    incv3_graph_begin_step(g, opts->mode, opts->for_backward);
    for (int i = 0; i < g->n_nodes; i++) {
        g->nodes[i].computed = 0;
        g->nodes[i].grad_written = 0;
    }
    incv3_graph_mark_lifetimes(g, needed, opts->for_backward);
    g->nodes[0].computed = 1;
    for (int i = 1; i < g->n_nodes; i++) {
        if (!needed[i])
            continue;
        incv3_node *nd = &g->nodes[i];
        const double t0 = g->prof_fwd ? prof_now() : 0;
        if ((incv3_node_stores_output(g, nd) && incv3_node_alloc_output(g, nd, err)) || nd->ops->forward(g, nd, opts, err)) {
            free_activations(g);
            g->fwd_for_backward = 0;
            return -1;
        }
        if (g->prof_fwd)
            g->prof_fwd[i] += prof_now() - t0;
        nd->computed = 1;
        for (int j = 0; j < nd->n_inputs; j++) {
            incv3_node *src = &g->nodes[nd->inputs[j]];
            if (--src->pending == 0 && !src->keep && !is_input(src))
                track_free(g, &src->out);
            else if (src->pending == 0 && is_input(src) && src->recompute)
                incv3_tensor_free(&g->input_blk);
        }
    }
    /* Outputs are NCHW for the caller whatever the layout inside. */
    for (int s = 0; s < INCV3_MAX_OUTPUTS && g->layout == INCV3_LAYOUT_NCHW8C; s++) {
        if (!((outputs >> s) & 1u) || g->outputs[s] < 0)
            continue;
        const incv3_node *nd = &g->nodes[g->outputs[s]];
        if (nd->flat)
            continue;
        if (track_alloc(g, &g->out_plain[s], batch, nd->c, nd->h, nd->w, "output", nd->name, err)) {
            free_activations(g);
            return -1;
        }
        reorder_nchw8c_to_nchw_f32(incv3_node_dims(g, nd), nd->out.data, g->out_plain[s].data);
    }
    return 0;
}

const incv3_tensor *incv3_graph_output(const incv3_graph *g, int slot)
{
    if (slot < 0 || slot >= INCV3_MAX_OUTPUTS || g->outputs[slot] < 0)
        return NULL;
    const incv3_node *nd = &g->nodes[g->outputs[slot]];
    if (g->out_plain[slot].data)
        return &g->out_plain[slot];
    return nd->computed && nd->out.data ? &nd->out : NULL;
}

static void zero_param_grads(incv3_graph *g, const incv3_node *nd)
{
    for (int k = 0; k < nd->n_params; k++) {
        incv3_param *p = &g->params[nd->param_first + k];
        if (p->kind == INCV3_PARAM) {
            memset(p->grad, 0, p->numel * sizeof(float));
            p->has_grad = 0;
        }
    }
}

int incv3_graph_backward(incv3_graph *g, const float *const d_out[INCV3_MAX_OUTPUTS], float *d_input,
                         incv3_error *err)
{
    if (!g->fwd_for_backward)
        return incv3_fail(err, "backward needs a forward pass run with for_backward set");
    g->fwd_for_backward = 0;
    g->bwd_d_input = d_input;
    incv3_graph_mark_requires_grad(g, d_input != NULL);
    int rc = 0;
    for (int s = 0; s < INCV3_MAX_OUTPUTS && rc == 0; s++) {
        if (!d_out || !d_out[s] || g->outputs[s] < 0)
            continue;
        incv3_node *nd = &g->nodes[g->outputs[s]];
        if (!nd->computed) {
            rc = incv3_fail(err, "gradient given for output %d, which the forward pass did not compute", s);
            break;
        }
        if (!nd->requires_grad)
            continue;
        size_t count = (size_t)g->batch * incv3_node_sample_size(g, nd);
        if (alloc_grad(g, nd, err)) {
            rc = -1;
            break;
        }
        if (g->layout == INCV3_LAYOUT_NCHW8C && !nd->flat) {
            float *tmp = incv3_aligned_alloc(count * sizeof(float), 0);
            if (!tmp) {
                rc = incv3_fail_oom(err, count * sizeof(float), "the gradient of an output");
                break;
            }
            reorder_nchw_to_nchw8c_f32(incv3_node_dims(g, nd), d_out[s], tmp);
            incv3_grad_pass(nd->grad.data, tmp, count, nd->grad_written);
            incv3_aligned_free(tmp);
        } else {
            incv3_grad_pass(nd->grad.data, d_out[s], count, nd->grad_written);
        }
        nd->grad_written = 1;
    }
    for (int i = g->n_nodes - 1; i >= 1 && rc == 0; i--) {
        incv3_node *nd = &g->nodes[i];
        if (!nd->computed || !nd->grad_written) {
            zero_param_grads(g, nd);
            if (g->dist && g->dist->grads_ready && nd->n_params > 0)
                rc = g->dist->grads_ready(g->dist->ctx, g, (size_t)nd->param_first, err);
            continue;
        }
        const double t0 = g->prof_bwd ? prof_now() : 0;
        if (incv3_graph_recompute_inputs(g, nd, err) || nd->ops->backward(g, nd, err)) {
            rc = -1;
            break;
        }
        if (g->prof_bwd)
            g->prof_bwd[i] += prof_now() - t0;
        for (int k = 0; k < nd->n_params; k++)
            g->params[nd->param_first + k].has_grad = g->params[nd->param_first + k].kind == INCV3_PARAM;
        if (g->dist && g->dist->grads_ready && nd->n_params > 0 &&
            g->dist->grads_ready(g->dist->ctx, g, (size_t)nd->param_first, err)) {
            rc = -1;
            break;
        }
        if (!incv3_node_freed_after_backward(g, nd))
            continue;
        /* Every reader of this node ran its backward already (readers come later in node order). */
        if (!incv3_graph_is_output(g, i))
            track_free(g, &nd->out);
        track_free(g, &nd->grad);
    }
    if (rc == 0 && d_input && !g->nodes[0].grad_written)
        memset(d_input, 0, (size_t)g->batch * g->in_c * g->in_h * g->in_w * sizeof(float));
    else if (rc == 0 && d_input && g->layout == INCV3_LAYOUT_NCHW8C)
        reorder_nchw8c_to_nchw_f32(incv3_node_dims(g, &g->nodes[0]), g->nodes[0].grad.data, d_input);
    track_free(g, &g->nodes[0].grad);
    for (int i = 1; i < g->n_nodes; i++) {
        if (!incv3_graph_is_output(g, i))
            track_free(g, &g->nodes[i].out);
        track_free(g, &g->nodes[i].grad);
    }
    g->bwd_d_input = NULL;
    return rc;
}

size_t incv3_graph_peak_activation_bytes(const incv3_graph *g)
{
    return g->peak_bytes;
}

void incv3_graph_reset_peak(incv3_graph *g)
{
    g->peak_bytes = g->live_bytes;
}

int incv3_graph_set_dist(incv3_graph *g, const incv3_graph_dist *d, incv3_error *err)
{
    int next = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].n_params == 0)
            continue;
        if (g->nodes[i].param_first != next)
            return incv3_fail(err, "graph: parameters of node %s are not in node order", g->nodes[i].name);
        next += g->nodes[i].n_params;
    }
    g->dist = d;
    return 0;
}
