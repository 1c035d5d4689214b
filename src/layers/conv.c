/* Convolution layer (no bias): builder, kernel choice per shape, forward and backward passes. */
#include <stdio.h>
#include <string.h>

#include "avx2/avx2_fused.h"
#include "graph/graph_internal.h"
#include "incv3_config.h"
#include "layout/reorder.h"

static incv3_conv_shape conv_shape(const incv3_graph *g, const incv3_node *nd)
{
    const incv3_node *src = &g->nodes[nd->inputs[0]];
    incv3_conv_shape s = {
        .n = g->batch, .c = src->c, .h = src->h, .w = src->w, .k = nd->c, .kh = nd->kh, .kw = nd->kw,
        .stride_h = nd->stride, .stride_w = nd->stride, .pad_top = nd->pad_h, .pad_bottom = nd->pad_h,
        .pad_left = nd->pad_w, .pad_right = nd->pad_w,
    };
    incv3_conv_shape_finish(&s);
    return s;
}

int incv3_graph_conv(incv3_graph *g, int in, const char *name, int out_c, int kh, int kw, int stride, int pad_h,
                     int pad_w)
{
    if (in < 0)
        return -1;
    int id = incv3_graph_add_node(g, &incv3_layer_conv, name, 1, &in);
    if (id < 0)
        return -1;
    incv3_node *nd = &g->nodes[id];
    const incv3_node *src = &g->nodes[in];
    if (src->flat)
        return incv3_graph_build_error(g, "conv %s: input is a flat feature vector", name);
    incv3_conv_shape s = {.n = 1, .c = src->c, .h = src->h, .w = src->w, .k = out_c, .kh = kh, .kw = kw,
                          .stride_h = stride, .stride_w = stride, .pad_top = pad_h, .pad_bottom = pad_h,
                          .pad_left = pad_w, .pad_right = pad_w};
    if (incv3_conv_shape_finish(&s))
        return incv3_graph_build_error(g,
                                       "conv %s: kernel %dx%d stride %d padding (%d,%d) does not fit input "
                                       "%dx%dx%d (or a value is invalid)",
                                       name, kh, kw, stride, pad_h, pad_w, src->c, src->h, src->w);
    nd->kh = kh, nd->kw = kw, nd->stride = stride, nd->pad_h = pad_h, nd->pad_w = pad_w;
    nd->c = out_c, nd->h = s.oh, nd->w = s.ow;
    int64_t shape[4] = {out_c, src->c, kh, kw};
    if (incv3_graph_add_param(g, id, "weight", INCV3_PARAM, 4, shape))
        return -1;
    return id;
}

/* Forced algorithm where it can serve the shape, else the ISA's preferred kernel, in the graph's layout. */
static const incv3_conv_kernel *choose(const incv3_graph *g, incv3_conv_pass pass, const incv3_conv_shape *s)
{
    const char *algo = strcmp(g->conv_algo, "auto") == 0 ? NULL : g->conv_algo;
    const incv3_conv_kernel *k = NULL;
    if (algo)
        k = incv3_conv_kernel_find(pass, g->isa, g->layout, algo, s);
    if (!k)
        k = incv3_conv_kernel_find(pass, g->isa, g->layout, NULL, s);
    if (!k && g->layout == INCV3_LAYOUT_NCHW)
        k = incv3_conv_kernel_find(pass, INCV3_ISA_SCALAR, INCV3_LAYOUT_NCHW, algo, s);
    return k;
}

void incv3_conv_node_kernels(const incv3_graph *g, const incv3_node *nd, const incv3_conv_kernel *k[3])
{
    const incv3_node *src = &g->nodes[nd->inputs[0]];
    incv3_conv_shape s = {.n = 1, .c = src->c, .h = src->h, .w = src->w, .k = nd->c, .kh = nd->kh, .kw = nd->kw,
                          .stride_h = nd->stride, .stride_w = nd->stride, .pad_top = nd->pad_h,
                          .pad_bottom = nd->pad_h, .pad_left = nd->pad_w, .pad_right = nd->pad_w};
    incv3_conv_shape_finish(&s);
    k[0] = choose(g, INCV3_CONV_FWD, &s);
    k[1] = choose(g, INCV3_CONV_BWD_DATA, &s);
    k[2] = choose(g, INCV3_CONV_BWD_WEIGHTS, &s);
}

static void conv_release(incv3_node *nd)
{
    incv3_aligned_free(nd->wblk);
    incv3_aligned_free(nd->dwblk);
    nd->wblk = nd->dwblk = NULL;
}

static int conv_prepare(incv3_graph *g, incv3_node *nd, int batch, incv3_error *err)
{
    (void)batch;
    incv3_conv_shape s = conv_shape(g, nd);
    nd->kfwd = choose(g, INCV3_CONV_FWD, &s);
    nd->kbwd_data = choose(g, INCV3_CONV_BWD_DATA, &s);
    nd->kbwd_weights = choose(g, INCV3_CONV_BWD_WEIGHTS, &s);
    if (!nd->kfwd || !nd->kbwd_data || !nd->kbwd_weights)
        return incv3_fail(err, "conv %s: no %s kernel serves this shape", nd->name, incv3_isa_name(g->isa));
    conv_release(nd);
    if (g->layout == INCV3_LAYOUT_NCHW8C) {
        const size_t count = reorder_oihw8i8o_count(s.k, s.c, s.kh, s.kw);
        nd->wblk = incv3_aligned_alloc(count * sizeof(float), 0);
        nd->dwblk = incv3_aligned_alloc(count * sizeof(float), 0);
        if (!nd->wblk || !nd->dwblk)
            return incv3_fail(err, "conv %s: out of memory for the blocked weights", nd->name);
    }
    return 0;
}

static int conv_forward(incv3_graph *g, incv3_node *nd, const incv3_forward_opts *o, incv3_error *err)
{
    incv3_conv_shape s = conv_shape(g, nd);
    const float *w = incv3_node_param(g, nd, 0)->data;
    if (nd->wblk) {
        /* The optimizer updates the OIHW parameters (PyTorch's layout, as checkpoints store them); the
         * blocked copy costs one pass over the weights per step. */
        reorder_oihw_to_oihw8i8o_f32(s.k, s.c, s.kh, s.kw, w, nd->wblk);
        w = nd->wblk;
    }
#if INCV3_HAVE_X86_64
    if (nd->fuse_next >= 0 && incv3_fused_inference(g)) {
        /* BatchNorm (running statistics) and ReLU in the epilogue, straight into the relu's output. */
        const incv3_node *bn = &g->nodes[nd->fuse_next];
        incv3_node *relu = &g->nodes[bn->fuse_next];
        if (incv3_node_alloc_output(g, relu, err))
            return -1;
        conv_bn_relu_fwd_infer_f32_direct__avx2(
            &s, incv3_node_input_data(g, nd, 0), w, relu->out.data, incv3_node_param(g, bn, 0)->data,
            incv3_node_param(g, bn, 1)->data, incv3_node_param(g, bn, 2)->data, incv3_node_param(g, bn, 3)->data,
            bn->eps);
        return 0;
    }
    if (g->fuse_active && nd->fuse_next >= 0 && o->mode == INCV3_TRAIN) {
        /* The batchnorm's statistics come from the epilogue while each output row is still in cache. */
        const incv3_node *bn = &g->nodes[nd->fuse_next];
        conv_fwd_stats_f32_direct__avx2(&s, incv3_node_input_data(g, nd, 0), w, nd->out.data, bn->stat_sum,
                                        bn->stat_sumsq);
        return 0;
    }
#endif
    nd->kfwd->fn.fwd(&s, incv3_node_input_data(g, nd, 0), w, nd->out.data);
    return 0;
}

static int conv_backward(incv3_graph *g, incv3_node *nd, incv3_error *err)
{
    incv3_conv_shape s = conv_shape(g, nd);
    incv3_param *w = incv3_node_param(g, nd, 0);
    nd->kbwd_weights->fn.bwd_weights(&s, incv3_node_input_data(g, nd, 0), nd->grad.data,
                                     nd->dwblk ? nd->dwblk : w->grad);
    if (nd->dwblk)
        reorder_oihw8i8o_to_oihw_f32(s.k, s.c, s.kh, s.kw, nd->dwblk, w->grad);
    float *dx;
    int acc;
    if (incv3_node_input_grad(g, nd, 0, &dx, &acc, err))
        return -1;
    if (dx)
        nd->kbwd_data->fn.bwd_data(&s, nd->grad.data, nd->wblk ? nd->wblk : w->data, dx, acc);
    return 0;
}

const incv3_layer_ops incv3_layer_conv = {
    .kind = "conv",
    .display = "2D convolution",
    .bwd_needs_input = 1,
    .prepare = conv_prepare,
    .forward = conv_forward,
    .backward = conv_backward,
    .release = conv_release,
};
