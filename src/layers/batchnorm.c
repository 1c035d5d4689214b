/* BatchNorm2d: batch statistics in training (running ones updated with momentum, unbiased variance),
 * running statistics in inference. */
#include <stdlib.h>

#include "graph/graph_internal.h"

enum { P_WEIGHT, P_BIAS, B_MEAN, B_VAR };

int incv3_graph_batchnorm(incv3_graph *g, int in, const char *name, float eps, float momentum)
{
    if (in < 0)
        return -1;
    int id = incv3_graph_add_node(g, &incv3_layer_batchnorm, name, 1, &in);
    if (id < 0)
        return -1;
    incv3_node *nd = &g->nodes[id];
    if (nd->flat)
        return incv3_graph_build_error(g, "batchnorm %s: input is a flat feature vector", name);
    if (!(eps > 0) || !(momentum >= 0 && momentum <= 1))
        return incv3_graph_build_error(g, "batchnorm %s: eps %g / momentum %g out of range", name, eps, momentum);
    nd->eps = eps, nd->momentum = momentum;
    int64_t shape[1] = {nd->c};
    if (incv3_graph_add_param(g, id, "weight", INCV3_PARAM, 1, shape) ||
        incv3_graph_add_param(g, id, "bias", INCV3_PARAM, 1, shape) ||
        incv3_graph_add_param(g, id, "running_mean", INCV3_BUFFER, 1, shape) ||
        incv3_graph_add_param(g, id, "running_var", INCV3_BUFFER, 1, shape))
        return -1;
    nd->saved_mean = calloc((size_t)nd->c, sizeof(float));
    nd->saved_var = calloc((size_t)nd->c, sizeof(float));
    nd->stat_sum = calloc((size_t)nd->c, sizeof(double));
    nd->stat_sumsq = calloc((size_t)nd->c, sizeof(double));
    if (!nd->saved_mean || !nd->saved_var || !nd->stat_sum || !nd->stat_sumsq)
        return incv3_graph_build_error(g, "out of memory");
    for (int c = 0; c < nd->c; c++)
        g->params[nd->param_first + B_VAR].data[c] = 1.0f;
    return id;
}

/* running = (1 - momentum) running + momentum batch, with the unbiased batch variance. */
static void update_running(incv3_graph *g, incv3_node *nd, size_t m)
{
    float *rmean = incv3_node_param(g, nd, B_MEAN)->data, *rvar = incv3_node_param(g, nd, B_VAR)->data;
    const double unbias = (double)m / (double)(m - 1);
    for (int c = 0; c < nd->c; c++) {
        rmean[c] = (float)((1.0 - nd->momentum) * rmean[c] + nd->momentum * nd->saved_mean[c]);
        rvar[c] = (float)((1.0 - nd->momentum) * rvar[c] + nd->momentum * nd->saved_var[c] * unbias);
    }
}

/* The conv -> batchnorm -> relu chain: statistics from the conv's epilogue, normalization and relu in one
 * pass written straight into the relu's output. */
static int bn_forward_fused(incv3_graph *g, incv3_node *nd, const incv3_forward_opts *o, incv3_error *err)
{
    incv3_node *relu = &g->nodes[nd->fuse_next];
    if (incv3_node_alloc_output(g, relu, err))
        return -1;
    incv3_dims d = incv3_node_dims(g, nd);
    const float *x = incv3_node_input_data(g, nd, 0);
    float *gamma = incv3_node_param(g, nd, P_WEIGHT)->data, *beta = incv3_node_param(g, nd, P_BIAS)->data;
    if (o->mode == INCV3_INFER) {
        g->ks->bn_relu_fwd_infer(d, x, gamma, beta, incv3_node_param(g, nd, B_MEAN)->data,
                                            incv3_node_param(g, nd, B_VAR)->data, nd->eps, relu->out.data);
        return 0;
    }
    g->ks->bn_relu_fwd_train(d, x, nd->stat_sum, nd->stat_sumsq, gamma, beta, nd->eps, relu->out.data,
                                        nd->saved_mean, nd->saved_var);
    update_running(g, nd, (size_t)d.n * d.h * d.w);
    return 0;
}

static int bn_forward(incv3_graph *g, incv3_node *nd, const incv3_forward_opts *o, incv3_error *err)
{
    incv3_dims d = incv3_node_dims(g, nd);
    size_t m = (size_t)d.n * d.h * d.w;
    if (o->mode == INCV3_TRAIN && m < 2)
        return incv3_fail(err, "batchnorm %s: training needs more than one value per channel (batch %d of %dx%d)",
                          nd->name, d.n, d.h, d.w);
    if (g->fuse_active && nd->fuse_next >= 0)
        return incv3_fused_inference(g) ? 0 /* done in the conv's epilogue */ : bn_forward_fused(g, nd, o, err);
    const incv3_kernel_set *k = g->ks;
    const float *x = incv3_node_input_data(g, nd, 0);
    float *gamma = incv3_node_param(g, nd, P_WEIGHT)->data, *beta = incv3_node_param(g, nd, P_BIAS)->data;
    float *rmean = incv3_node_param(g, nd, B_MEAN)->data, *rvar = incv3_node_param(g, nd, B_VAR)->data;
    if (o->mode == INCV3_INFER) {
        k->bn_fwd_infer(d, x, gamma, beta, rmean, rvar, nd->eps, nd->out.data);
        return 0;
    }
    k->bn_fwd_train(d, x, gamma, beta, nd->eps, nd->out.data, nd->saved_mean, nd->saved_var);
    update_running(g, nd, m);
    return 0;
}

static int bn_backward(incv3_graph *g, incv3_node *nd, incv3_error *err)
{
    if (g->fuse_active && nd->fuse_next >= 0) {
        /* Training mode only (the executor fuses no inference step that is differentiated). */
        incv3_node *relu = &g->nodes[nd->fuse_next];
        float *dx;
        int acc;
        if (incv3_node_input_grad(g, nd, 0, &dx, &acc, err))
            return -1;
        incv3_param *gw = incv3_node_param(g, nd, P_WEIGHT), *gb = incv3_node_param(g, nd, P_BIAS);
        g->ks->bn_relu_bwd_train(incv3_node_dims(g, nd), incv3_node_input_data(g, nd, 0), relu->out.data,
                                            relu->grad.data, gw->data, nd->saved_mean, nd->saved_var, nd->eps, dx,
                                            gw->grad, gb->grad, acc);
        incv3_node_release(g, relu);
        return 0;
    }
    incv3_dims d = incv3_node_dims(g, nd);
    const incv3_kernel_set *k = g->ks;
    float *dx;
    int acc;
    if (incv3_node_input_grad(g, nd, 0, &dx, &acc, err))
        return -1;
    incv3_param *gw = incv3_node_param(g, nd, P_WEIGHT), *gb = incv3_node_param(g, nd, P_BIAS);
    const float *x = incv3_node_input_data(g, nd, 0);
    if (g->fwd_mode == INCV3_TRAIN)
        k->bn_bwd_train(d, x, nd->grad.data, gw->data, nd->saved_mean, nd->saved_var, nd->eps, dx,
                                     gw->grad, gb->grad, acc);
    else
        k->bn_bwd_infer(d, x, nd->grad.data, gw->data, incv3_node_param(g, nd, B_MEAN)->data,
                                     incv3_node_param(g, nd, B_VAR)->data, nd->eps, dx, gw->grad, gb->grad, acc);
    return 0;
}

static void bn_release(incv3_node *nd)
{
    free(nd->saved_mean);
    free(nd->saved_var);
    nd->saved_mean = nd->saved_var = NULL;
}

const incv3_layer_ops incv3_layer_batchnorm = {
    .kind = "batchnorm",
    .display = "2D batch norm",
    .bwd_needs_input = 1,
    .forward = bn_forward,
    .backward = bn_backward,
    .release = bn_release,
};
