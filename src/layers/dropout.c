/* Inverted dropout; the mask of a training forward is kept for backward. */
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "util/oom.h"
#include "graph/graph_internal.h"
#include "ref/ref_kernels.h"

int incv3_graph_dropout(incv3_graph *g, int in, float p)
{
    if (in < 0)
        return -1;
    int id = incv3_graph_add_node(g, &incv3_layer_dropout, "", 1, &in);
    if (id < 0)
        return -1;
    if (!(p >= 0 && p < 1))
        return incv3_graph_build_error(g, "dropout probability %g: must be in [0, 1)", p);
    g->nodes[id].p = p;
    return id;
}

static int dropout_forward(incv3_graph *g, incv3_node *nd, const incv3_forward_opts *o, incv3_error *err)
{
    size_t count = (size_t)g->batch * incv3_node_sample_size(g, nd);
    const float *x = incv3_node_input_data(g, nd, 0);
    if (o->mode == INCV3_INFER || nd->p == 0) {
        memcpy(nd->out.data, x, count * sizeof(float));
        free(nd->mask);
        nd->mask = NULL;
        return 0;
    }
    if (nd->mask_count != count || !nd->mask) {
        free(nd->mask);
        nd->mask = incv3_mem_try(count, 0);
        nd->mask_count = nd->mask ? count : 0;
        if (!nd->mask)
            return incv3_fail_oom(err, count, "the dropout mask");
    }
    /* The node index enters the seed so two dropout layers never share a mask. */
    uint64_t seed = o->dropout_seed ^ ((uint64_t)(nd - g->nodes) * 0x9e3779b97f4a7c15ull);
    dropout_fwd_f32_ref__scalar(count, x, nd->p, seed, nd->mask, nd->out.data);
    return 0;
}

static int dropout_backward(incv3_graph *g, incv3_node *nd, incv3_error *err)
{
    float *dx;
    int acc;
    if (incv3_node_input_grad(g, nd, 0, &dx, &acc, err))
        return -1;
    if (!dx)
        return 0;
    size_t count = (size_t)g->batch * incv3_node_sample_size(g, nd);
    if (nd->mask)
        dropout_bwd_f32_ref__scalar(count, nd->grad.data, nd->mask, nd->p, dx, acc);
    else
        incv3_grad_pass(dx, nd->grad.data, count, acc);
    return 0;
}

static void dropout_release(incv3_node *nd)
{
    free(nd->mask);
    nd->mask = NULL;
}

const incv3_layer_ops incv3_layer_dropout = {
    .kind = "dropout",
    .display = "Dropout",
    .forward = dropout_forward,
    .backward = dropout_backward,
    .release = dropout_release,
};
