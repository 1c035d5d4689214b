/* Which activations live when: the rules the executor follows and the memory plan (memory_plan.c)
 * simulates, kept in one place so the plan cannot drift from what runs. */
#include <string.h>

#include "graph/graph_internal.h"

int incv3_graph_is_output(const incv3_graph *g, int id)
{
    for (int s = 0; s < INCV3_MAX_OUTPUTS; s++)
        if (g->outputs[s] == id)
            return 1;
    return 0;
}

void incv3_graph_mark_needed(const incv3_graph *g, unsigned outputs, unsigned char *needed)
{
    memset(needed, 0, (size_t)g->n_nodes);
    for (int s = 0; s < INCV3_MAX_OUTPUTS; s++)
        if ((outputs >> s) & 1u && g->outputs[s] >= 0)
            needed[g->outputs[s]] = 1;
    for (int i = g->n_nodes - 1; i >= 0; i--)
        if (needed[i])
            for (int j = 0; j < g->nodes[i].n_inputs; j++)
                needed[g->nodes[i].inputs[j]] = 1;
}

/* A node whose output is read in backward only by its own backward (a ReLU: its sign is the mask) and in
 * forward only by a concatenation that keeps its output anyway holds the same values twice; the concat
 * copies the slice back just before that backward (incv3_concat_restore_inputs), so the node's output is
 * freed after the concat's forward. */
static int restorable_from_concat(const incv3_graph *g, int id)
{
    const incv3_node *nd = &g->nodes[id];
    if (!nd->ops->bwd_needs_output || nd->pending != 1 || nd->last_reader < 0 || incv3_graph_is_output(g, id) ||
        nd->ops == &incv3_layer_input)
        return 0;
    const incv3_node *cat = &g->nodes[nd->last_reader];
    return cat->ops == &incv3_layer_concat && cat->keep;
}

/* A recomputable node (max pooling) kept only for its readers' backward whose inputs all stay until its
 * own backward (which comes after its readers') gives its output up after forward: the readers' backward
 * gets it back from a forward run again (incv3_graph_recompute_inputs), with the same bits. */
static int recomputable(const incv3_graph *g, int id)
{
    const incv3_node *nd = &g->nodes[id];
    if (!nd->ops->recomputable || !nd->keep || nd->ops->bwd_needs_output || incv3_graph_is_output(g, id))
        return 0;
    for (int j = 0; j < nd->n_inputs; j++) {
        const incv3_node *src = &g->nodes[nd->inputs[j]];
        if (src->ops != &incv3_layer_input && (!src->keep || src->restore_at >= 0 || src->recompute))
            return 0;
    }
    return 1;
}

void incv3_graph_mark_lifetimes(incv3_graph *g, const unsigned char *needed, int for_backward)
{
    for (int i = 0; i < g->n_nodes; i++) {
        incv3_node *nd = &g->nodes[i];
        nd->pending = 0;
        nd->last_reader = nd->restore_at = -1;
        nd->recompute = 0;
        nd->keep = incv3_graph_is_output(g, i) || (for_backward && nd->ops->bwd_needs_output);
    }
    for (int i = 0; i < g->n_nodes; i++) {
        if (!needed[i])
            continue;
        const incv3_node *nd = &g->nodes[i];
        for (int j = 0; j < nd->n_inputs; j++) {
            incv3_node *src = &g->nodes[nd->inputs[j]];
            src->pending++;
            src->last_reader = i;
            if (for_backward && nd->ops->bwd_needs_input)
                src->keep = 1;
        }
    }
    if (!for_backward)
        return;
    /* A concat's keep flag is final here: its readers all come after it and were marked above. */
    for (int i = 0; i < g->n_nodes; i++)
        if (needed[i] && restorable_from_concat(g, i)) {
            g->nodes[i].keep = 0;
            g->nodes[i].restore_at = g->nodes[i].last_reader;
        }
    /* The blocked copy of the caller's input is made again from the caller's input, which stays valid
     * through backward, instead of being held from the first layer's forward to its backward. */
    if (g->layout == INCV3_LAYOUT_NCHW8C && g->nodes[0].keep) {
        g->nodes[0].keep = 0;
        g->nodes[0].recompute = 1;
    }
    /* In node order, so an input's flags are final when its reader is looked at. */
    for (int i = 0; i < g->n_nodes; i++)
        if (needed[i] && recomputable(g, i)) {
            g->nodes[i].keep = 0;
            g->nodes[i].recompute = 1;
        }
}

int incv3_node_stores_output(const incv3_graph *g, const incv3_node *nd)
{
    /* A fused batchnorm stores nothing of its own; it writes its relu's output, allocated then. In pure
     * inference the conv writes that output itself, BN and ReLU applied in its epilogue. */
    const int fused = g->fuse_active && (nd->fused_into >= 0 || (nd->ops == &incv3_layer_batchnorm &&
                                                                  nd->fuse_next >= 0) ||
                                         (nd->ops == &incv3_layer_conv && nd->fuse_next >= 0 &&
                                          incv3_fused_inference(g)));
    return !fused;
}

int incv3_node_freed_after_backward(const incv3_graph *g, const incv3_node *nd)
{
    /* A fused relu's output and gradient are read by its batchnorm's backward, which frees them. */
    return !(g->fuse_active && nd->fused_into >= 0);
}

void incv3_graph_begin_step(incv3_graph *g, incv3_mode mode, int for_backward)
{
    g->fwd_mode = mode;
    g->fwd_for_backward = for_backward;
    /* The fused chains have a training backward only: an inference-mode step that will be differentiated
     * (as check-golden runs) takes the unfused path. */
    g->fuse_active = g->ks->bn_relu_fwd_train && (mode == INCV3_TRAIN || !for_backward);
}

void incv3_graph_mark_requires_grad(incv3_graph *g, int input_grad)
{
    for (int i = 0; i < g->n_nodes; i++) {
        incv3_node *nd = &g->nodes[i];
        nd->grad_written = 0;
        if (nd->ops == &incv3_layer_input) {
            nd->requires_grad = input_grad;
            continue;
        }
        int rg = 0;
        for (int k = 0; k < nd->n_params; k++)
            rg |= g->params[nd->param_first + k].kind == INCV3_PARAM;
        for (int j = 0; j < nd->n_inputs; j++)
            rg |= g->nodes[nd->inputs[j]].requires_grad;
        nd->requires_grad = nd->computed && rg;
    }
}
