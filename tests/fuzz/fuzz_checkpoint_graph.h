/* The fixed graph of fuzz_checkpoint.c, shared with make_seeds.c so the seed checkpoint matches it. */
#ifndef INCV3_FUZZ_CHECKPOINT_GRAPH_H
#define INCV3_FUZZ_CHECKPOINT_GRAPH_H

#include "incv3/graph.h"
#include "incv3/train.h"

static int fuzz_checkpoint_graph(incv3_graph **gp, incv3_adamw **optp, incv3_error *err)
{
    incv3_graph *g = incv3_graph_new(1, 8, 8);
    if (!g)
        return incv3_fail(err, "out of memory");
    int x = incv3_graph_input_node(g);
    x = incv3_graph_conv(g, x, "conv", 4, 3, 3, 1, 1, 1);
    x = incv3_graph_batchnorm(g, x, "bn", 1e-3f, 0.1f);
    x = incv3_graph_relu(g, x);
    x = incv3_graph_global_avgpool(g, x);
    x = incv3_graph_flatten(g, x);
    x = incv3_graph_linear(g, x, "fc", 3);
    if (x < 0 || incv3_graph_set_output(g, 0, x) < 0) {
        incv3_fail(err, "cannot build the graph: %s", incv3_graph_error(g));
        incv3_graph_free(g);
        return -1;
    }
    incv3_adamw_hparams hp = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f};
    incv3_adamw *opt = incv3_adamw_new(g, hp, err);
    if (!opt) {
        incv3_graph_free(g);
        return -1;
    }
    *gp = g;
    *optp = opt;
    return 0;
}

#endif
