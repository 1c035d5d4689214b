/* BatchNorm2d: batch statistics in training (running ones updated with momentum, unbiased variance),
 * running statistics in inference. */
#include <math.h>
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

/* ---- synchronized BatchNorm (--sync-bn under MPI): statistics over the global batch ----
 * Forward sums each channel's sum and sum of squares over the ranks, so every rank normalizes with the
 * global batch's mean and variance. Backward needs the global dbeta = sum dz and dgamma = sum dz * xhat in
 * dx = gamma * invstd / M * (M * dz - dbeta - xhat * dgamma): the kernels compute dx with the local sums
 * (which are also the parameter gradients, summed over the ranks later like every other one), and
 * bn_sync_backward adds the difference. The trainer weights each rank's loss so that its dz is R times the
 * global loss's (whatever the rank's share of the batch): the global sums over the global count keep that
 * scale, so the gradient allreduce's final division by R gives exactly one process's gradient. */

static int bn_synced(const incv3_graph *g)
{
    return g->dist && g->dist->sync_bn && g->dist->ranks > 1 && g->dist->sum_f64;
}

/* Index of element (n, c, pixel s) of an activation in the graph's layout. */
static inline size_t act_index(const incv3_graph *g, incv3_dims d, int n, int c, size_t s)
{
    const size_t hw = (size_t)d.h * d.w;
    if (g->layout == INCV3_LAYOUT_NCHW8C)
        return (((size_t)n * ((d.c + 7) / 8) + c / 8) * hw + s) * 8 + c % 8;
    return ((size_t)n * d.c + c) * hw + s;
}

/* In-place sums over the ranks of a[0..c), b[0..c) and *count (this rank's values per channel: the last
 * batch of an epoch may split unevenly) in one collective. */
static int sum_pair(incv3_graph *g, double *a, double *b, int c, double *count, incv3_error *err)
{
    double *buf = malloc(sizeof(double) * (2 * (size_t)c + 1));
    if (!buf)
        return incv3_fail(err, "out of memory for synchronized batchnorm");
    for (int i = 0; i < c; i++)
        buf[i] = a[i], buf[c + i] = b[i];
    buf[2 * c] = *count;
    int rc = g->dist->sum_f64(g->dist->ctx, buf, 2 * (size_t)c + 1, err);
    for (int i = 0; rc == 0 && i < c; i++)
        a[i] = buf[i], b[i] = buf[c + i];
    *count = buf[2 * c];
    free(buf);
    return rc;
}

/* Per-channel sum and sum of squares of x over (n, h, w), in double, in a fixed order per channel. */
static void channel_sums(const incv3_graph *g, incv3_dims d, const float *x, double *sum, double *sumsq)
{
    const size_t hw = (size_t)d.h * d.w;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < d.c; c++) {
        double s1 = 0, s2 = 0;
        for (int n = 0; n < d.n; n++)
            for (size_t s = 0; s < hw; s++) {
                const double v = x[act_index(g, d, n, c, s)];
                s1 += v, s2 += v * v;
            }
        sum[c] = s1, sumsq[c] = s2;
    }
}

/* Forward statistics of the global batch: mean and biased variance into saved_mean / saved_var. */
static int bn_sync_forward_stats(incv3_graph *g, incv3_node *nd, incv3_dims d, const float *x, size_t *global_m,
                                 incv3_error *err)
{
    channel_sums(g, d, x, nd->stat_sum, nd->stat_sumsq);
    double m = (double)d.n * d.h * d.w;
    if (sum_pair(g, nd->stat_sum, nd->stat_sumsq, nd->c, &m, err))
        return -1;
    *global_m = (size_t)m;
    for (int c = 0; c < nd->c; c++) {
        const double mean = nd->stat_sum[c] / m, var = nd->stat_sumsq[c] / m - mean * mean;
        nd->saved_mean[c] = (float)mean;
        nd->saved_var[c] = (float)(var > 0 ? var : 0);
    }
    return 0;
}

/* Adds to dx the difference between BatchNorm's backward with the global sums and with the local ones the
 * kernel used (dgamma, dbeta: the local sums as the kernel wrote them). */
static int bn_sync_backward(incv3_graph *g, incv3_node *nd, incv3_dims d, const float *x, const float *gamma,
                            const float *dgamma, const float *dbeta, float *dx, incv3_error *err)
{
    const int C = nd->c;
    double *db = malloc(sizeof(double) * 4 * (size_t)C);
    if (!db)
        return incv3_fail(err, "out of memory for synchronized batchnorm");
    double *dg = db + C, *a = db + 2 * C, *b = db + 3 * C;
    for (int c = 0; c < C; c++)
        db[c] = dbeta[c], dg[c] = dgamma[c];
    const double ml = (double)d.n * d.h * d.w;
    double mg = ml;
    if (sum_pair(g, db, dg, C, &mg, err)) {
        free(db);
        return -1;
    }
    /* dx += gamma * invstd * (cb + cg * xhat) with cb = dbeta / M - (sum dbeta) / (sum M), cg alike;
     * xhat = (x - mean) * invstd, so dx += a + b * x. */
    for (int c = 0; c < C; c++) {
        const double invstd = 1.0 / sqrt((double)nd->saved_var[c] + nd->eps), k = gamma[c] * invstd;
        const double cb = dbeta[c] / ml - db[c] / mg, cg = dgamma[c] / ml - dg[c] / mg;
        a[c] = k * (cb - cg * nd->saved_mean[c] * invstd);
        b[c] = k * cg * invstd;
    }
    if (dx) {
        const size_t hw = (size_t)d.h * d.w;
#pragma omp parallel for schedule(static) collapse(2)
        for (int n = 0; n < d.n; n++)
            for (int c = 0; c < C; c++)
                for (size_t s = 0; s < hw; s++) {
                    const size_t i = act_index(g, d, n, c, s);
                    dx[i] = (float)(dx[i] + a[c] + b[c] * x[i]);
                }
    }
    free(db);
    return 0;
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
    size_t m = (size_t)d.n * d.h * d.w;
    if (bn_synced(g)) {
        /* The kernel divides by the local count: the global sums scaled by local / global count give the
         * global mean and variance. */
        double mg = (double)m;
        if (sum_pair(g, nd->stat_sum, nd->stat_sumsq, nd->c, &mg, err))
            return -1;
        const double scale = (double)m / mg;
        for (int c = 0; c < nd->c; c++)
            nd->stat_sum[c] *= scale, nd->stat_sumsq[c] *= scale;
        m = (size_t)mg;
    }
    g->ks->bn_relu_fwd_train(d, x, nd->stat_sum, nd->stat_sumsq, gamma, beta, nd->eps, relu->out.data,
                                        nd->saved_mean, nd->saved_var);
    update_running(g, nd, m);
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
    if (bn_synced(g)) {
        size_t mg;
        if (bn_sync_forward_stats(g, nd, d, x, &mg, err))
            return -1;
        k->bn_fwd_infer(d, x, gamma, beta, nd->saved_mean, nd->saved_var, nd->eps, nd->out.data);
        update_running(g, nd, mg);
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
        return bn_synced(g) ? bn_sync_backward(g, nd, incv3_node_dims(g, nd), incv3_node_input_data(g, nd, 0),
                                               gw->data, gw->grad, gb->grad, dx, err)
                            : 0;
    }
    incv3_dims d = incv3_node_dims(g, nd);
    const incv3_kernel_set *k = g->ks;
    float *dx;
    int acc;
    if (incv3_node_input_grad(g, nd, 0, &dx, &acc, err))
        return -1;
    incv3_param *gw = incv3_node_param(g, nd, P_WEIGHT), *gb = incv3_node_param(g, nd, P_BIAS);
    const float *x = incv3_node_input_data(g, nd, 0);
    if (g->fwd_mode == INCV3_TRAIN) {
        k->bn_bwd_train(d, x, nd->grad.data, gw->data, nd->saved_mean, nd->saved_var, nd->eps, dx, gw->grad,
                        gb->grad, acc);
        if (bn_synced(g))
            return bn_sync_backward(g, nd, d, x, gw->data, gw->grad, gb->grad, dx, err);
    } else {
        k->bn_bwd_infer(d, x, nd->grad.data, gw->data, incv3_node_param(g, nd, B_MEAN)->data,
                        incv3_node_param(g, nd, B_VAR)->data, nd->eps, dx, gw->grad, gb->grad, acc);
    }
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
