/* Shape-only layers: the graph input and flatten (NCHW is already the flat layout, so flatten copies). */
#include <string.h>

#include "util/oom.h"
#include "graph/graph_internal.h"
#include "layout/reorder.h"

const incv3_layer_ops incv3_layer_input = {
    .kind = "input",
};

int incv3_graph_flatten(incv3_graph *g, int in)
{
    if (in < 0)
        return -1;
    int id = incv3_graph_add_node(g, &incv3_layer_flatten, "", 1, &in);
    if (id < 0)
        return -1;
    incv3_node *nd = &g->nodes[id];
    nd->c = nd->c * nd->h * nd->w;
    nd->h = nd->w = 1;
    nd->flat = 1;
    return id;
}

/* In the blocked layout flatten is the edge back to NCHW, so features keep PyTorch's c*h*w order. */
static int blocked_input(const incv3_graph *g, const incv3_node *nd)
{
    return g->layout == INCV3_LAYOUT_NCHW8C && !g->nodes[nd->inputs[0]].flat;
}

static int flatten_forward(incv3_graph *g, incv3_node *nd, const incv3_forward_opts *o, incv3_error *err)
{
    (void)o, (void)err;
    const incv3_node *src = &g->nodes[nd->inputs[0]];
    if (blocked_input(g, nd))
        reorder_nchw8c_to_nchw_f32(incv3_node_dims(g, src), incv3_node_input_data(g, nd, 0), nd->out.data);
    else
        memcpy(nd->out.data, incv3_node_input_data(g, nd, 0),
               (size_t)g->batch * incv3_node_sample_size(g, nd) * sizeof(float));
    return 0;
}

static int flatten_backward(incv3_graph *g, incv3_node *nd, incv3_error *err)
{
    float *dx;
    int acc;
    if (incv3_node_input_grad(g, nd, 0, &dx, &acc, err))
        return -1;
    if (!dx)
        return 0;
    const incv3_node *src = &g->nodes[nd->inputs[0]];
    if (!blocked_input(g, nd)) {
        incv3_grad_pass(dx, nd->grad.data, (size_t)g->batch * incv3_node_sample_size(g, nd), acc);
        return 0;
    }
    if (!acc) {
        reorder_nchw_to_nchw8c_f32(incv3_node_dims(g, src), nd->grad.data, dx);
        return 0;
    }
    const size_t count = (size_t)g->batch * incv3_node_sample_size(g, src);
    float *tmp = incv3_aligned_alloc(count * sizeof(float), 0);
    if (!tmp)
        return incv3_fail_oom(err, count * sizeof(float), "the backward of flatten");
    reorder_nchw_to_nchw8c_f32(incv3_node_dims(g, src), nd->grad.data, tmp);
    incv3_grad_pass(dx, tmp, count, 1);
    incv3_aligned_free(tmp);
    return 0;
}

const incv3_layer_ops incv3_layer_flatten = {
    .kind = "flatten",
    .display = "Flatten",
    .forward = flatten_forward,
    .backward = flatten_backward,
};
