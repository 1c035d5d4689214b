/* Shape-only layers: the graph input and flatten (NCHW is already the flat layout, so flatten copies). */
#include <string.h>

#include "graph/graph_internal.h"

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

static int flatten_forward(incv3_graph *g, incv3_node *nd, const incv3_forward_opts *o, incv3_error *err)
{
    (void)o, (void)err;
    memcpy(nd->out.data, incv3_node_input_data(g, nd, 0),
           (size_t)g->batch * incv3_node_sample_size(nd) * sizeof(float));
    return 0;
}

static int flatten_backward(incv3_graph *g, incv3_node *nd, incv3_error *err)
{
    float *dx;
    int acc;
    if (incv3_node_input_grad(g, nd, 0, &dx, &acc, err))
        return -1;
    if (dx)
        incv3_grad_pass(dx, nd->grad.data, (size_t)g->batch * incv3_node_sample_size(nd), acc);
    return 0;
}

const incv3_layer_ops incv3_layer_flatten = {
    .kind = "flatten",
    .display = "Flatten",
    .forward = flatten_forward,
    .backward = flatten_backward,
};
