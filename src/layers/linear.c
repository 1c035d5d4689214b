/* Fully connected layer with bias on a flat feature vector. */
#include "avx2/gemm_avx2.h"
#include "graph/graph_internal.h"
#include "incv3_config.h"
#include "ref/ref_kernels.h"

typedef struct linear_kernels {
    void (*fwd)(int, int, int, const float *, const float *, const float *, float *);
    void (*bwd_data)(int, int, int, const float *, const float *, float *, int);
    void (*bwd_weights)(int, int, int, const float *, const float *, float *, float *);
} linear_kernels;

static const linear_kernels linear_ref = {linear_fwd_f32_ref__scalar, linear_bwd_data_f32_ref__scalar,
                                          linear_bwd_weights_f32_ref__scalar};
#if INCV3_HAVE_X86_64
static const linear_kernels linear_avx2 = {linear_fwd_f32_gemm__avx2, linear_bwd_data_f32_gemm__avx2,
                                           linear_bwd_weights_f32_gemm__avx2};
#endif

/* The GEMM micro-kernel where the graph runs AVX2, else the reference. */
static const linear_kernels *kernels_for(const incv3_graph *g)
{
#if INCV3_HAVE_X86_64
    if (g->isa == INCV3_ISA_AVX2)
        return &linear_avx2;
#endif
    (void)g;
    return &linear_ref;
}

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
    kernels_for(g)->fwd(g->batch, in_features(g, nd), nd->c, incv3_node_input_data(g, nd, 0),
                               incv3_node_param(g, nd, 0)->data, incv3_node_param(g, nd, 1)->data, nd->out.data);
    return 0;
}

static int linear_backward(incv3_graph *g, incv3_node *nd, incv3_error *err)
{
    incv3_param *w = incv3_node_param(g, nd, 0), *b = incv3_node_param(g, nd, 1);
    kernels_for(g)->bwd_weights(g->batch, in_features(g, nd), nd->c, incv3_node_input_data(g, nd, 0),
                                       nd->grad.data, w->grad, b->grad);
    float *dx;
    int acc;
    if (incv3_node_input_grad(g, nd, 0, &dx, &acc, err))
        return -1;
    if (dx)
        kernels_for(g)->bwd_data(g->batch, in_features(g, nd), nd->c, nd->grad.data, w->data, dx, acc);
    return 0;
}

const incv3_layer_ops incv3_layer_linear = {
    .kind = "linear",
    .display = "Linear",
    .bwd_needs_input = 1,
    .forward = linear_forward,
    .backward = linear_backward,
};
