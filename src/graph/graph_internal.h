/* Internals shared by the graph core (src/graph) and the layers (src/layers). */
#ifndef INCV3_GRAPH_INTERNAL_H
#define INCV3_GRAPH_INTERNAL_H

#include <stdint.h>

#include "graph/conv_plan.h"
#include "graph/graph_dist.h"
#include "incv3/graph.h"
#include "kernel_set.h"
#include "registry.h"

typedef struct incv3_node incv3_node;

/* The graph's shared conv workspaces (see incv3_graph.ws). */
typedef enum { INCV3_WS_PACKED, INCV3_WS_COUNT } incv3_workspace;

/* What a layer does; one constant instance per layer type (src/layers/<type>.c). */
typedef struct incv3_layer_ops {
    const char *kind;          /* short name, e.g. "conv" */
    const char *display;       /* row label in summaries (the seed's), NULL: not shown */
    int bwd_needs_input;       /* backward reads the inputs' forward values */
    int bwd_needs_output;      /* backward reads this node's forward output */
    /* forward is exact and cheap next to its readers (max pooling): where a reader's backward needs the
     * output, it is computed again from the kept inputs instead of held from forward to backward */
    int recomputable;
    /* Prepares per-batch state (kernel choice, scratch) before a forward at a new batch size. */
    int (*prepare)(incv3_graph *g, incv3_node *nd, int batch, incv3_error *err);
    int (*forward)(incv3_graph *g, incv3_node *nd, const incv3_forward_opts *o, incv3_error *err);
    /* Writes the gradients of the inputs that need one (g->nodes[in].grad, honouring accumulate flags)
     * and of the node's parameters. */
    int (*backward)(incv3_graph *g, incv3_node *nd, incv3_error *err);
    void (*release)(incv3_node *nd); /* frees layer-owned state */
} incv3_layer_ops;

#define INCV3_NODE_MAX_INPUTS 8

struct incv3_node {
    const incv3_layer_ops *ops;
    char name[INCV3_NAME_MAX];
    int block; /* index into g->blocks, -1 for none */
    int inputs[INCV3_NODE_MAX_INPUTS];
    int n_inputs;
    int c, h, w, flat; /* per-sample output shape */
    int param_first, n_params; /* range in g->params (parameters and buffers of this node) */

    /* geometry (conv, pooling) */
    int out_c, kh, kw, stride, pad_h, pad_w;
    /* batchnorm */
    float eps, momentum;
    /* dropout */
    float p;

    /* run-time state */
    incv3_tensor out, grad;
    int computed;      /* forward ran this step */
    int grad_written;  /* grad holds a value (the next contribution accumulates) */
    int requires_grad; /* a gradient must flow into this node's output */
    int consumers;     /* nodes reading this output (static) */
    int pending;       /* consumers still to run forward this step */
    int keep;          /* output kept after forward for backward */
    int last_reader;   /* the last node reading this output in forward, -1 for none */
    int restore_at;    /* the concat that copies this output back before its backward (lifetime.c), or -1 */
    int recompute;     /* output freed after forward, computed again before a reader's backward (lifetime.c) */
    const incv3_conv_kernel *kfwd, *kbwd_data, *kbwd_weights;
    /* conv kernels with weights of their own form (Winograd, GEMM; not the direct kernels' reorder), in
     * inference only: the forward's packed weights and the copy of the OIHW weights they were made from
     * (wseen_valid), so repeated inference passes skip the packing while the weights stay the same.
     * Training packs into the graph's workspace (the weights change every step). */
    float *wpack, *wseen;
    int wseen_valid;
    float *saved_mean, *saved_var; /* batchnorm batch statistics of the last training forward */
    /* Fusion of conv -> batchnorm -> relu chains in the blocked layout (planned by incv3_graph_plan_fusion):
     * conv: fuse_next = its batchnorm, which receives the per-channel sums from the conv's epilogue;
     * batchnorm: fuse_next = its relu, whose output it writes directly (its own output is never stored);
     * relu: fused_into = its batchnorm, which runs the relu's forward and backward. -1 where not fused. */
    int fuse_next, fused_into;
    double *stat_sum, *stat_sumsq; /* batchnorm: sums of the conv's output per channel */
    uint8_t *mask;                 /* dropout mask of the last training forward */
    size_t mask_count;
};

struct incv3_graph {
    incv3_node *nodes;
    int n_nodes, cap_nodes;
    incv3_param *params;
    size_t n_params, cap_params;
    char **blocks;
    int n_blocks, cur_block;
    int outputs[INCV3_MAX_OUTPUTS];
    int in_c, in_h, in_w;
    int batch;          /* batch size prepared for, 0 = none */
    int prepared_threads; /* OpenMP threads the kernels were chosen for */
    incv3_isa isa;
    incv3_layout layout; /* activations' layout: NCHW (reference kernels) or NCHW8c (vector ISAs) */
    const incv3_kernel_set *ks; /* the ISA's kernels besides the convolutions */
    char conv_algo[32];
    incv3_conv_plan plan;       /* per-layer choices of --conv-algo auto/winograd, made or loaded */
    incv3_conv_plan plan_cache; /* this machine's cached choices, read at the first need */
    int plan_cache_read, plan_timing_told;
    int deterministic;          /* kernel choice by a fixed rule, see incv3_graph_set_deterministic */
    incv3_tensor input_blk;                      /* the caller's input reordered (blocked layout) */
    /* Conv weight workspace shared by all layers (one layer runs at a time), sized for the largest: the
     * weights packed for a kernel with a form of their own. */
    float *ws[INCV3_WS_COUNT];
    size_t ws_floats[INCV3_WS_COUNT];
    incv3_tensor out_plain[INCV3_MAX_OUTPUTS];   /* non-flat outputs reordered back to NCHW */
    int fwd_for_backward; /* the last forward kept state for backward */
    int fuse_active;      /* the last forward ran the fused chains */
    incv3_mode fwd_mode;
    const float *fwd_input; /* caller's input of the last forward (read by the first layer's backward) */
    float *bwd_d_input;     /* caller's buffer for the input gradient during backward, or NULL */
    size_t live_bytes, peak_bytes;
    double *prof_fwd, *prof_bwd; /* per node seconds while profiling, else NULL */
    const incv3_graph_dist *dist; /* data-parallel hooks (graph_dist.h), NULL for one process */
    char error[512];
};

/* ---- used by layers ---- */
/* Appends a node reading `ins`; returns its index or -1 (error recorded in g). */
int incv3_graph_add_node(incv3_graph *g, const incv3_layer_ops *ops, const char *name, int n_in, const int *ins);
/* Records a build error (first one wins) and returns -1. */
int incv3_graph_build_error(incv3_graph *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Adds a parameter/buffer of node nd (name = node name + "." + suffix); returns 0 or -1. */
int incv3_graph_add_param(incv3_graph *g, int node, const char *suffix, incv3_param_kind kind, int ndim,
                          const int64_t *shape);
static inline incv3_param *incv3_node_param(incv3_graph *g, const incv3_node *nd, int i)
{
    return &g->params[nd->param_first + i];
}
/* Forward value of input i (the caller's input for the input node). */
const float *incv3_node_input_data(const incv3_graph *g, const incv3_node *nd, int i);
/* Gradient buffer of input i, allocated on first use, in *dx (NULL when that input needs no gradient);
 * *accumulate tells whether to add (1) or overwrite (0). Returns non-zero on allocation failure. */
int incv3_node_input_grad(incv3_graph *g, incv3_node *nd, int i, float **dx, int *accumulate, incv3_error *err);
/* Allocates the node's output for the current batch. */
int incv3_node_alloc_output(incv3_graph *g, incv3_node *nd, incv3_error *err);
/* The last forward runs fused chains as pure inference: conv, batchnorm and relu in the conv's epilogue. */
static inline int incv3_fused_inference(const incv3_graph *g)
{
    return g->fuse_active && g->fwd_mode == INCV3_INFER && !g->fwd_for_backward;
}

/* Grows workspace ws to at least `floats` (contents not kept); returns non-zero when out of memory. */
int incv3_graph_reserve_workspace(incv3_graph *g, incv3_workspace ws, size_t floats, incv3_error *err);

/* Chooses kernels and sizes the workspaces for a batch (frees the activations). */
int incv3_graph_prepare_batch(incv3_graph *g, int batch, incv3_error *err);

/* ---- activation lifetimes (lifetime.c), shared by the executor and the memory plan ---- */
/* Marks (non-zero) the nodes the requested outputs (bit s: slot s) depend on. */
void incv3_graph_mark_needed(const incv3_graph *g, unsigned outputs, unsigned char *needed);
/* Records a step's mode and whether the fused chains run. */
void incv3_graph_begin_step(incv3_graph *g, incv3_mode mode, int for_backward);
/* Before backward: which nodes a gradient flows into (those computed with a parameter or such an input;
 * the input node when its gradient is asked for); clears grad_written. */
void incv3_graph_mark_requires_grad(incv3_graph *g, int input_grad);
int incv3_graph_is_output(const incv3_graph *g, int id);
/* For a forward computing the `needed` nodes, sets each node's pending (readers to run), keep (output
 * kept after its last reader: graph outputs and, for backward, outputs a backward reads) and restore_at. */
void incv3_graph_mark_lifetimes(incv3_graph *g, const unsigned char *needed, int for_backward);
/* Whether the executor allocates nd's output before its forward (fused chains store fewer tensors). */
int incv3_node_stores_output(const incv3_graph *g, const incv3_node *nd);
/* Whether the executor frees nd's output (unless a graph output) and gradient right after its backward. */
int incv3_node_freed_after_backward(const incv3_graph *g, const incv3_node *nd);
/* Before nd's backward: the inputs marked recompute whose outputs are gone run their forward again. */
int incv3_graph_recompute_inputs(incv3_graph *g, incv3_node *nd, incv3_error *err);
/* Concat nd's backward: the inputs whose outputs were freed after the forward (restore_at) get them back
 * from nd's output slices. */
int incv3_concat_restore_inputs(incv3_graph *g, incv3_node *nd, incv3_error *err);

/* Marks conv -> batchnorm -> relu chains that can run fused (blocked layout). */
void incv3_graph_plan_fusion(incv3_graph *g);
/* Frees a node's output and gradient now (tracked). */
void incv3_node_release(incv3_graph *g, incv3_node *nd);

/* dst = src (accumulate 0) or dst += src (accumulate 1): gradients passed through unchanged. */
void incv3_grad_pass(float *dst, const float *src, size_t count, int accumulate);
/* Channels of a node's output as stored: padded to whole 8-channel blocks in the blocked layout (feature
 * vectors stay plain). */
static inline int incv3_node_stored_c(const incv3_graph *g, const incv3_node *nd)
{
    return g->layout == INCV3_LAYOUT_NCHW8C && !nd->flat ? (nd->c + 7) / 8 * 8 : nd->c;
}
/* Per-sample element count of a node's output as stored. */
static inline size_t incv3_node_sample_size(const incv3_graph *g, const incv3_node *nd)
{
    return (size_t)incv3_node_stored_c(g, nd) * nd->h * nd->w;
}
/* The node's output shape with real channels, for kernels (incv3_dims counts real channels). */
static inline incv3_dims incv3_node_dims(const incv3_graph *g, const incv3_node *nd)
{
    return (incv3_dims){g->batch, nd->c, nd->h, nd->w};
}

/* The shape of conv node nd at batch. */
incv3_conv_shape incv3_conv_node_shape(const incv3_graph *g, const incv3_node *nd, int batch);
/* The convolution kernels (forward, backward-data, backward-weights) node nd runs at this batch with the
 * graph's kernel choice (for --conv-algo auto/winograd: its plan, the machine's cache, or timed now). */
void incv3_conv_node_kernels(incv3_graph *g, const incv3_node *nd, int batch, const incv3_conv_kernel *k[3]);

/* Layer types. */
extern const incv3_layer_ops incv3_layer_input, incv3_layer_conv, incv3_layer_batchnorm, incv3_layer_relu,
    incv3_layer_maxpool, incv3_layer_avgpool, incv3_layer_global_avgpool, incv3_layer_concat,
    incv3_layer_flatten, incv3_layer_linear, incv3_layer_dropout;

#endif
