/* Max, average and global average pooling. */
#include "graph/graph_internal.h"

static incv3_pool_shape pool_shape(const incv3_graph *g, const incv3_node *nd)
{
    const incv3_node *src = &g->nodes[nd->inputs[0]];
    incv3_pool_shape s = {.n = g->batch, .c = src->c, .h = src->h, .w = src->w, .kh = nd->kh, .kw = nd->kw,
                          .stride_h = nd->stride, .stride_w = nd->stride, .pad_top = nd->pad_h,
                          .pad_bottom = nd->pad_h, .pad_left = nd->pad_w, .pad_right = nd->pad_w};
    incv3_pool_shape_finish(&s);
    return s;
}

static int add_pool(incv3_graph *g, const incv3_layer_ops *ops, int in, int kh, int kw, int stride, int pad)
{
    if (in < 0)
        return -1;
    int id = incv3_graph_add_node(g, ops, "", 1, &in);
    if (id < 0)
        return -1;
    incv3_node *nd = &g->nodes[id];
    if (nd->flat)
        return incv3_graph_build_error(g, "%s: input is a flat feature vector", ops->kind);
    nd->kh = kh, nd->kw = kw, nd->stride = stride, nd->pad_h = pad, nd->pad_w = pad;
    incv3_pool_shape s = pool_shape(g, nd);
    s.n = 1;
    if (incv3_pool_shape_finish(&s))
        return incv3_graph_build_error(g, "%s %dx%d stride %d pad %d does not fit input %dx%dx%d", ops->kind, kh,
                                       kw, stride, pad, nd->c, nd->h, nd->w);
    nd->h = s.oh, nd->w = s.ow;
    return id;
}

int incv3_graph_maxpool(incv3_graph *g, int in, int k, int stride, int pad)
{
    return add_pool(g, &incv3_layer_maxpool, in, k, k, stride, pad);
}

int incv3_graph_avgpool(incv3_graph *g, int in, int k, int stride, int pad)
{
    return add_pool(g, &incv3_layer_avgpool, in, k, k, stride, pad);
}

int incv3_graph_global_avgpool(incv3_graph *g, int in)
{
    if (in < 0)
        return -1;
    if (in >= g->n_nodes)
        return incv3_graph_build_error(g, "global_avgpool: input node %d does not exist", in);
    const incv3_node *src = &g->nodes[in];
    return add_pool(g, &incv3_layer_global_avgpool, in, src->h, src->w, 1, 0);
}

static int maxpool_forward(incv3_graph *g, incv3_node *nd, const incv3_forward_opts *o, incv3_error *err)
{
    (void)o, (void)err;
    incv3_pool_shape s = pool_shape(g, nd);
    g->ks->maxpool_fwd(&s, incv3_node_input_data(g, nd, 0), nd->out.data);
    return 0;
}

static int maxpool_backward(incv3_graph *g, incv3_node *nd, incv3_error *err)
{
    float *dx;
    int acc;
    if (incv3_node_input_grad(g, nd, 0, &dx, &acc, err))
        return -1;
    incv3_pool_shape s = pool_shape(g, nd);
    if (dx)
        g->ks->maxpool_bwd(&s, incv3_node_input_data(g, nd, 0), nd->grad.data, dx, acc);
    return 0;
}

static int avgpool_forward(incv3_graph *g, incv3_node *nd, const incv3_forward_opts *o, incv3_error *err)
{
    (void)o, (void)err;
    incv3_pool_shape s = pool_shape(g, nd);
    g->ks->avgpool_fwd(&s, incv3_node_input_data(g, nd, 0), nd->out.data);
    return 0;
}

static int avgpool_backward(incv3_graph *g, incv3_node *nd, incv3_error *err)
{
    float *dx;
    int acc;
    if (incv3_node_input_grad(g, nd, 0, &dx, &acc, err))
        return -1;
    incv3_pool_shape s = pool_shape(g, nd);
    if (dx)
        g->ks->avgpool_bwd(&s, nd->grad.data, dx, acc);
    return 0;
}

const incv3_layer_ops incv3_layer_maxpool = {
    .kind = "maxpool",
    .display = "2D max pooling",
    .bwd_needs_input = 1,
    .recomputable = 1,
    .forward = maxpool_forward,
    .backward = maxpool_backward,
};

const incv3_layer_ops incv3_layer_avgpool = {
    .kind = "avgpool",
    .display = "2D avg pooling",
    .forward = avgpool_forward,
    .backward = avgpool_backward,
};

const incv3_layer_ops incv3_layer_global_avgpool = {
    .kind = "global_avgpool",
    .display = "2D avg pooling",
    .forward = avgpool_forward,
    .backward = avgpool_backward,
};
