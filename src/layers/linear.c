/* Fully connected layer with bias on a flat feature vector. */
#include "graph/graph_internal.h"

int incv3_graph_linear(incv3_graph *g, int in, const char *name, int out)
{
    if (in < 0)
        return -1;
    int id = incv3_graph_add_node(g, &incv3_layer_linear, name, 1, &in);
    if (id < 0)
        return -1;
    incv3_node *nd = &g->nodes[id];
    if (!nd->flat)
        return incv3_graph_build_error(g, "linear %s: input must be flattened first", name);
    if (out < 1)
        return incv3_graph_build_error(g, "linear %s: %d outputs", name, out);
    int64_t wshape[2] = {out, nd->c}, bshape[1] = {out};
    nd->c = out;
    if (incv3_graph_add_param(g, id, "weight", INCV3_PARAM, 2, wshape) ||
        incv3_graph_add_param(g, id, "bias", INCV3_PARAM, 1, bshape))
        return -1;
    return id;
}

static int in_features(const incv3_graph *g, const incv3_node *nd)
{
    return g->nodes[nd->inputs[0]].c;
}

static int linear_forward(incv3_graph *g, incv3_node *nd, const incv3_forward_opts *o, incv3_error *err)
{
    (void)o, (void)err;
    g->ks->linear_fwd(g->batch, in_features(g, nd), nd->c, incv3_node_input_data(g, nd, 0),
                               incv3_node_param(g, nd, 0)->data, incv3_node_param(g, nd, 1)->data, nd->out.data);
    return 0;
}

static int linear_backward(incv3_graph *g, incv3_node *nd, incv3_error *err)
{
    incv3_param *w = incv3_node_param(g, nd, 0), *b = incv3_node_param(g, nd, 1);
    g->ks->linear_bwd_weights(g->batch, in_features(g, nd), nd->c, incv3_node_input_data(g, nd, 0),
                                       nd->grad.data, w->grad, b->grad);
    float *dx;
    int acc;
    if (incv3_node_input_grad(g, nd, 0, &dx, &acc, err))
        return -1;
    if (dx)
        g->ks->linear_bwd_data(g->batch, in_features(g, nd), nd->c, nd->grad.data, w->data, dx, acc);
    return 0;
}

const incv3_layer_ops incv3_layer_linear = {
    .kind = "linear",
    .display = "Linear",
    .bwd_needs_input = 1,
    .forward = linear_forward,
    .backward = linear_backward,
};
