/* Convolution layer (no bias): builder, kernel choice per shape, forward and backward passes. */
#include <stdio.h>
#include <string.h>

#include "util/oom.h"
#include "graph/graph_internal.h"
#include "layout/reorder.h"

incv3_conv_shape incv3_conv_node_shape(const incv3_graph *g, const incv3_node *nd, int batch)
{
    const incv3_node *src = &g->nodes[nd->inputs[0]];
    incv3_conv_shape s = {
        .n = batch, .c = src->c, .h = src->h, .w = src->w, .k = nd->c, .kh = nd->kh, .kw = nd->kw,
        .stride_h = nd->stride, .stride_w = nd->stride, .pad_top = nd->pad_h, .pad_bottom = nd->pad_h,
        .pad_left = nd->pad_w, .pad_right = nd->pad_w,
    };
    incv3_conv_shape_finish(&s);
    return s;
}

static incv3_conv_shape conv_shape(const incv3_graph *g, const incv3_node *nd)
{
    return incv3_conv_node_shape(g, nd, g->batch);
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

/* The first kernel of the table (the ISA's preferred one, direct where it has it) serving the shape. */
static const incv3_conv_kernel *default_kernel(const incv3_graph *g, incv3_conv_pass pass, const incv3_conv_shape *s)
{
    const incv3_conv_kernel *k = incv3_conv_kernel_find(pass, g->isa, g->layout, NULL, s);
    if (!k && g->layout == INCV3_LAYOUT_NCHW)
        k = incv3_conv_kernel_find(pass, INCV3_ISA_SCALAR, INCV3_LAYOUT_NCHW, NULL, s);
    return k;
}

/* The fastest of the family's kernels serving s (s->n is the batch timed at), from the graph's plan, the
 * machine's cache, or timed now. */
static const incv3_conv_kernel *plan_choice(incv3_graph *g, incv3_conv_pass pass, const incv3_conv_shape *s)
{
    const char *family = g->conv_algo;
    size_t n;
    const incv3_conv_kernel *t = incv3_conv_kernel_table(&n), *cand[16];
    int nc = 0;
    for (size_t i = 0; i < n && nc < 16; i++)
        if (t[i].pass == pass && t[i].isa == g->isa && t[i].layout == g->layout &&
            (!t[i].supports || t[i].supports(s)) && conv_plan_in_family(&t[i], family))
            cand[nc++] = &t[i];
    if (nc == 0)
        return default_kernel(g, pass, s);
    /* The table order, not a timing: timings differ between runs, machines and thread counts. */
    if (nc == 1 || g->deterministic)
        return cand[0];
    char key[160];
    conv_plan_key(key, sizeof key, family, pass, g->isa, s);
    const char *name = conv_plan_get(&g->plan, key);
    if (!name) {
        if (!g->plan_cache_read) {
            conv_plan_cache_read(&g->plan_cache);
            g->plan_cache_read = 1;
        }
        name = conv_plan_get(&g->plan_cache, key);
    }
    for (int i = 0; name && i < nc; i++)
        if (strcmp(cand[i]->name, name) == 0) {
            conv_plan_put(&g->plan, key, name);
            return cand[i];
        }
    if (!g->plan_timing_told) {
        fprintf(stderr, "incv3: timing the convolution kernels of new layer shapes once (--conv-algo %s; the "
                        "choice is cached for this CPU)\n", family);
        g->plan_timing_told = 1;
    }
    const incv3_conv_kernel *best = cand[0];
    double best_t = -1;
    for (int i = 0; i < nc; i++) {
        const double t_i = conv_plan_time_kernel(cand[i], s);
        if (t_i >= 0 && (best_t < 0 || t_i < best_t))
            best = cand[i], best_t = t_i;
    }
    conv_plan_put(&g->plan, key, best->name);
    conv_plan_put(&g->plan_cache, key, best->name);
    incv3_error err;
    if (conv_plan_cache_add(key, best->name, &err) && g->plan_timing_told == 1) {
        fprintf(stderr, "incv3: could not cache the convolution plan (%s); later runs time again\n", err.msg);
        g->plan_timing_told = 2;
    }
    return best;
}

/* --conv-algo: a family chooses per layer; one algorithm runs where it serves the shape, direct elsewhere. */
static const incv3_conv_kernel *choose(incv3_graph *g, incv3_conv_pass pass, const incv3_conv_shape *s)
{
    if (conv_plan_is_family(g->conv_algo))
        return plan_choice(g, pass, s);
    const incv3_conv_kernel *k = incv3_conv_kernel_find(pass, g->isa, g->layout, g->conv_algo, s);
    if (!k && g->layout == INCV3_LAYOUT_NCHW)
        k = incv3_conv_kernel_find(pass, INCV3_ISA_SCALAR, INCV3_LAYOUT_NCHW, g->conv_algo, s);
    return k ? k : default_kernel(g, pass, s);
}

void incv3_conv_node_kernels(incv3_graph *g, const incv3_node *nd, int batch, const incv3_conv_kernel *k[3])
{
    const incv3_conv_shape s = incv3_conv_node_shape(g, nd, batch);
    k[0] = choose(g, INCV3_CONV_FWD, &s);
    k[1] = choose(g, INCV3_CONV_BWD_DATA, &s);
    k[2] = choose(g, INCV3_CONV_BWD_WEIGHTS, &s);
}

int incv3_graph_conv_algo_in_use(incv3_graph *g, int batch, const char *algo_prefix)
{
    for (int i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].ops != &incv3_layer_conv)
            continue;
        const incv3_conv_kernel *k[3];
        incv3_conv_node_kernels(g, &g->nodes[i], batch, k);
        for (int p = 0; p < 3; p++)
            if (k[p] && strncmp(k[p]->algo, algo_prefix, strlen(algo_prefix)) == 0)
                return 1;
    }
    return 0;
}

static void conv_release(incv3_node *nd)
{
    incv3_aligned_free(nd->wpack);
    incv3_aligned_free(nd->wseen);
    nd->wpack = nd->wseen = NULL;
    nd->wseen_valid = 0;
}

static int conv_prepare(incv3_graph *g, incv3_node *nd, int batch, incv3_error *err)
{
    const incv3_conv_kernel *k[3];
    incv3_conv_node_kernels(g, nd, batch, k);
    if (!k[0] || !k[1] || !k[2])
        return incv3_fail(err, "conv %s: no %s kernel serves this shape", nd->name, incv3_isa_name(g->isa));
    /* An inference pack is in the form of the forward kernel it was made for. */
    if (k[0] != nd->kfwd)
        conv_release(nd);
    nd->kfwd = k[0], nd->kbwd_data = k[1], nd->kbwd_weights = k[2];
    incv3_conv_shape s = conv_shape(g, nd);
    size_t packed = 0;
    if (incv3_conv_kernel_packs(nd->kfwd, &s))
        packed = nd->kfwd->packed_floats(&s);
    if (incv3_conv_kernel_packs(nd->kbwd_data, &s) && nd->kbwd_data->packed_floats(&s) > packed)
        packed = nd->kbwd_data->packed_floats(&s);
    return incv3_graph_reserve_workspace(g, INCV3_WS_PACKED, packed, err);
}

/* The forward kernel's weights: the OIHW parameters, or their pack (for kernels with a form of their own)
 * in the graph's shared workspace. Training changes the weights every step, so they are packed at every
 * forward (one pass over the weights); inference passes (evaluation, predict) keep each layer's pack and
 * only check that the weights are unchanged. */
static const float *forward_weights(incv3_graph *g, incv3_node *nd, const incv3_conv_shape *s, const float *w,
                                    const incv3_forward_opts *o, incv3_error *err)
{
    if (!incv3_conv_kernel_packs(nd->kfwd, s))
        return w;
    const size_t count = (size_t)s->k * s->c * s->kh * s->kw;
    /* A plain reorder to OIhw8i8o costs about what checking a kept copy against the weights costs, so only
     * the other packs (transforms, GEMM matrices) are kept between inference passes. */
    const int inference = o->mode == INCV3_INFER && !o->for_backward && nd->kfwd->pack != conv_weights_pack_oihw8i8o;
    if (!inference && nd->wpack)
        conv_release(nd); /* the weights change from now on: no inference pack stays through training */
    if (inference && nd->wseen_valid && memcmp(nd->wseen, w, count * sizeof(float)) == 0)
        return nd->wpack;
    if (!inference) {
        nd->kfwd->pack(s, w, g->ws[INCV3_WS_PACKED]);
        return g->ws[INCV3_WS_PACKED];
    }
    nd->wseen_valid = 0;
    if ((!nd->wpack && !(nd->wpack = incv3_aligned_alloc(nd->kfwd->packed_floats(s) * sizeof(float), 0))) ||
        (!nd->wseen && !(nd->wseen = incv3_aligned_alloc(count * sizeof(float), 0)))) {
        incv3_fail_oom(err, (nd->kfwd->packed_floats(s) + count) * sizeof(float), "the packed weights of a convolution");
        return NULL;
    }
    nd->kfwd->pack(s, w, nd->wpack);
    memcpy(nd->wseen, w, count * sizeof(float));
    nd->wseen_valid = 1;
    return nd->wpack;
}

static int conv_forward(incv3_graph *g, incv3_node *nd, const incv3_forward_opts *o, incv3_error *err)
{
    incv3_conv_shape s = conv_shape(g, nd);
    const float *w = forward_weights(g, nd, &s, incv3_node_param(g, nd, 0)->data, o, err);
    if (!w)
        return -1;
    if (nd->fuse_next >= 0 && incv3_fused_inference(g)) {
        /* BatchNorm (running statistics) and ReLU in the epilogue, straight into the relu's output. */
        const incv3_node *bn = &g->nodes[nd->fuse_next];
        incv3_node *relu = &g->nodes[bn->fuse_next];
        if (incv3_node_alloc_output(g, relu, err))
            return -1;
        nd->kfwd->fwd_bn_relu_infer(&s, incv3_node_input_data(g, nd, 0), w, relu->out.data,
                                    incv3_node_param(g, bn, 0)->data, incv3_node_param(g, bn, 1)->data,
                                    incv3_node_param(g, bn, 2)->data, incv3_node_param(g, bn, 3)->data, bn->eps);
        return 0;
    }
    if (g->fuse_active && nd->fuse_next >= 0 && o->mode == INCV3_TRAIN) {
        /* The batchnorm's statistics come from the epilogue while each output tile is still in cache. */
        const incv3_node *bn = &g->nodes[nd->fuse_next];
        nd->kfwd->fwd_stats(&s, incv3_node_input_data(g, nd, 0), w, nd->out.data, bn->stat_sum, bn->stat_sumsq);
        return 0;
    }
    nd->kfwd->fn.fwd(&s, incv3_node_input_data(g, nd, 0), w, nd->out.data);
    return 0;
}

static int conv_backward(incv3_graph *g, incv3_node *nd, incv3_error *err)
{
    incv3_conv_shape s = conv_shape(g, nd);
    incv3_param *w = incv3_node_param(g, nd, 0);
    nd->kbwd_weights->fn.bwd_weights(&s, incv3_node_input_data(g, nd, 0), nd->grad.data, w->grad);
    float *dx;
    int acc;
    if (incv3_node_input_grad(g, nd, 0, &dx, &acc, err))
        return -1;
    if (!dx)
        return 0;
    const float *wk = w->data;
    if (incv3_conv_kernel_packs(nd->kbwd_data, &s)) {
        /* The weights are those of this step's forward (the optimizer runs after backward); packing them
         * again costs one pass over them and saves a per-layer copy. */
        nd->kbwd_data->pack(&s, w->data, g->ws[INCV3_WS_PACKED]);
        wk = g->ws[INCV3_WS_PACKED];
    }
    nd->kbwd_data->fn.bwd_data(&s, nd->grad.data, wk, dx, acc);
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
