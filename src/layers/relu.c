#include "graph/graph_internal.h"

int incv3_graph_relu(incv3_graph *g, int in)
{
    if (in < 0)
        return -1;
    return incv3_graph_add_node(g, &incv3_layer_relu, "", 1, &in);
}

static int relu_forward(incv3_graph *g, incv3_node *nd, const incv3_forward_opts *o, incv3_error *err)
{
    (void)o, (void)err;
    if (g->fuse_active && nd->fused_into >= 0)
        return 0; /* its batchnorm wrote the output */
    const size_t count = (size_t)g->batch * incv3_node_sample_size(g, nd);
    g->ks->relu_fwd(count, incv3_node_input_data(g, nd, 0), nd->out.data);
    return 0;
}

static int relu_backward(incv3_graph *g, incv3_node *nd, incv3_error *err)
{
    if (g->fuse_active && nd->fused_into >= 0) {
        /* The batchnorm's fused backward applies the mask; it reads this node's output and gradient. */
        g->nodes[nd->fused_into].grad_written = 1;
        return 0;
    }
    float *dx;
    int acc;
    if (incv3_node_input_grad(g, nd, 0, &dx, &acc, err))
        return -1;
    if (!dx)
        return 0;
    const size_t count = (size_t)g->batch * incv3_node_sample_size(g, nd);
    g->ks->relu_bwd(count, nd->out.data, nd->grad.data, dx, acc);
    return 0;
}

/* Backward reads the output (its sign is the mask), so the input can be freed after forward. */
const incv3_layer_ops incv3_layer_relu = {
    .kind = "relu",
    .display = "ReLU",
    .bwd_needs_output = 1,
    .forward = relu_forward,
    .backward = relu_backward,
};
