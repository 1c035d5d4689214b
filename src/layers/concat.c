/* Channel concatenation: each input fills its channel slice of every sample. */
#include <string.h>

#include "graph/graph_internal.h"
#include "layout/concat_blocked.h"

int incv3_graph_concat(incv3_graph *g, int count, const int *ins)
{
    for (int i = 0; i < count; i++)
        if (ins[i] < 0)
            return -1;
    if (count < 1)
        return incv3_graph_build_error(g, "concat of no inputs");
    int id = incv3_graph_add_node(g, &incv3_layer_concat, "", count, ins);
    if (id < 0)
        return -1;
    incv3_node *nd = &g->nodes[id];
    int c = 0;
    for (int i = 0; i < count; i++) {
        const incv3_node *src = &g->nodes[ins[i]];
        if (src->flat || src->h != nd->h || src->w != nd->w)
            return incv3_graph_build_error(g, "concat: input %d is %dx%dx%d, expected spatial size %dx%d", i,
                                           src->c, src->h, src->w, nd->h, nd->w);
        c += src->c;
    }
    nd->c = c;
    return id;
}

static int concat_forward(incv3_graph *g, incv3_node *nd, const incv3_forward_opts *o, incv3_error *err)
{
    (void)o, (void)err;
    if (g->layout == INCV3_LAYOUT_NCHW8C) {
        /* Padding lanes of the last block belong to no slice; they must read as zero downstream. */
        if (nd->c % 8)
            memset(nd->out.data, 0, (size_t)g->batch * incv3_node_sample_size(g, nd) * sizeof(float));
        for (int i = 0, offset = 0; i < nd->n_inputs; i++) {
            const int src_c = g->nodes[nd->inputs[i]].c;
            concat_slice_fwd_f32_nchw8c(g->batch, nd->h, nd->w, incv3_node_input_data(g, nd, i), src_c,
                                        nd->out.data, nd->c, offset);
            offset += src_c;
        }
        return 0;
    }
    size_t plane = (size_t)nd->h * nd->w, out_sample = incv3_node_sample_size(g, nd);
    size_t offset = 0;
    for (int i = 0; i < nd->n_inputs; i++) {
        const incv3_node *src = &g->nodes[nd->inputs[i]];
        const float *x = incv3_node_input_data(g, nd, i);
        size_t in_sample = (size_t)src->c * plane;
        for (int n = 0; n < g->batch; n++)
            memcpy(nd->out.data + n * out_sample + offset, x + n * in_sample, in_sample * sizeof(float));
        offset += in_sample;
    }
    return 0;
}

int incv3_concat_restore_inputs(incv3_graph *g, incv3_node *nd, incv3_error *err)
{
    const int id = (int)(nd - g->nodes);
    size_t plane = (size_t)nd->h * nd->w, out_sample = incv3_node_sample_size(g, nd);
    for (int i = 0, offset = 0; i < nd->n_inputs; i++) {
        incv3_node *src = &g->nodes[nd->inputs[i]];
        const int src_c = src->c;
        offset += src_c;
        /* Only an input whose backward will run reads its output again. */
        if (src->restore_at != id || !src->requires_grad)
            continue;
        if (incv3_node_alloc_output(g, src, err))
            return -1;
        if (g->layout == INCV3_LAYOUT_NCHW8C) {
            /* The slice copy a gradient takes, here of the values: padding lanes come back zero. */
            concat_slice_bwd_f32_nchw8c(g->batch, nd->h, nd->w, nd->out.data, nd->c, offset - src_c,
                                        src->out.data, src_c, 0);
        } else {
            const size_t in_sample = (size_t)src_c * plane;
            for (int n = 0; n < g->batch; n++)
                memcpy(src->out.data + n * in_sample, nd->out.data + n * out_sample + (offset - src_c) * plane,
                       in_sample * sizeof(float));
        }
    }
    return 0;
}

static int concat_backward(incv3_graph *g, incv3_node *nd, incv3_error *err)
{
    if (incv3_concat_restore_inputs(g, nd, err))
        return -1;
    if (g->layout == INCV3_LAYOUT_NCHW8C) {
        for (int i = 0, offset = 0; i < nd->n_inputs; i++) {
            const int src_c = g->nodes[nd->inputs[i]].c;
            float *dx;
            int acc;
            if (incv3_node_input_grad(g, nd, i, &dx, &acc, err))
                return -1;
            if (dx)
                concat_slice_bwd_f32_nchw8c(g->batch, nd->h, nd->w, nd->grad.data, nd->c, offset, dx, src_c, acc);
            offset += src_c;
        }
        return 0;
    }
    size_t plane = (size_t)nd->h * nd->w, out_sample = incv3_node_sample_size(g, nd);
    size_t offset = 0;
    for (int i = 0; i < nd->n_inputs; i++) {
        const incv3_node *src = &g->nodes[nd->inputs[i]];
        size_t in_sample = (size_t)src->c * plane;
        float *dx;
        int acc;
        if (incv3_node_input_grad(g, nd, i, &dx, &acc, err))
            return -1;
        for (int n = 0; dx && n < g->batch; n++)
            incv3_grad_pass(dx + n * in_sample, nd->grad.data + n * out_sample + offset, in_sample, acc);
        offset += in_sample;
    }
    return 0;
}

const incv3_layer_ops incv3_layer_concat = {
    .kind = "concat",
    .forward = concat_forward,
    .backward = concat_backward,
};
