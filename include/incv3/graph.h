/* The layer graph: a DAG of layers built through this API (branches, channel concatenation, several
 * output heads), with shape inference at build time, forward in training or inference mode, and backward
 * that produces the gradient of every parameter reached and, on request, of the input.
 *
 * Building: every add function takes the node id(s) of its input(s) and returns the new node's id, or a
 * negative value on error (a negative input propagates, so a builder can check incv3_graph_error() once at
 * the end). Nodes are created in execution order. */
#ifndef INCV3_GRAPH_H
#define INCV3_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "incv3/error.h"
#include "incv3/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct incv3_graph incv3_graph;

#define INCV3_MAX_OUTPUTS 4
#define INCV3_NAME_MAX 128

typedef enum incv3_mode {
    INCV3_INFER = 0, /* BatchNorm uses running statistics; dropout is off */
    INCV3_TRAIN = 1, /* BatchNorm uses batch statistics and updates running ones; dropout is on */
} incv3_mode;

/* ---- building ---- */
incv3_graph *incv3_graph_new(int in_c, int in_h, int in_w);
void incv3_graph_free(incv3_graph *g);
/* First build error, or NULL. */
const char *incv3_graph_error(const incv3_graph *g);

/* Label for display (summary tables) of the nodes added after this call; NULL ends the block. */
void incv3_graph_block(incv3_graph *g, const char *label);

int incv3_graph_input_node(const incv3_graph *g);
/* Convolution without bias; `name` is the parameter prefix (e.g. "stem.0.conv" -> "stem.0.conv.weight").
 * Padding pad_h rows above and below, pad_w columns left and right. */
int incv3_graph_conv(incv3_graph *g, int in, const char *name, int out_c, int kh, int kw, int stride, int pad_h,
                     int pad_w);
/* BatchNorm2d: parameters NAME.weight, NAME.bias; buffers NAME.running_mean, NAME.running_var. */
int incv3_graph_batchnorm(incv3_graph *g, int in, const char *name, float eps, float momentum);
int incv3_graph_relu(incv3_graph *g, int in);
int incv3_graph_maxpool(incv3_graph *g, int in, int k, int stride, int pad);
/* Average pooling, padded cells counted in the divisor (PyTorch's default). */
int incv3_graph_avgpool(incv3_graph *g, int in, int k, int stride, int pad);
/* Adaptive average pooling to 1x1 (the mean of each channel). */
int incv3_graph_global_avgpool(incv3_graph *g, int in);
/* Concatenation along channels, in the order given. All inputs must share h and w. */
int incv3_graph_concat(incv3_graph *g, int count, const int *ins);
int incv3_graph_flatten(incv3_graph *g, int in);
/* Linear with bias on a flattened input: parameters NAME.weight [out][in], NAME.bias [out]. */
int incv3_graph_linear(incv3_graph *g, int in, const char *name, int out);
/* Inverted dropout with probability p (0 <= p < 1); identity in inference mode. */
int incv3_graph_dropout(incv3_graph *g, int in, float p);
/* Marks node as output `slot` (0 = main head; 1 = auxiliary head, ...). */
int incv3_graph_set_output(incv3_graph *g, int slot, int node);

/* ---- shapes and display ---- */
typedef struct incv3_node_info {
    const char *kind;       /* "conv", "batchnorm", "relu", "maxpool", "avgpool", "global_avgpool",
                               "concat", "flatten", "linear", "dropout", "input" */
    const char *block;      /* display block label or NULL */
    const char *name;       /* parameter prefix or "" */
    int c, h, w;            /* output shape of one sample (flatten/linear: c features, h = w = 1) */
    int flat;               /* 1 when the output is a feature vector (flatten, linear) */
    size_t params;          /* trainable parameter count */
    double macs;            /* forward multiply-accumulates per sample (conv, linear) */
    int kh, kw, stride, pad_h, pad_w; /* conv and pooling geometry, else 0 */
    int in_c, in_h, in_w;   /* shape of the (first) input */
    /* conv: the kernels of its forward, backward-data and backward-weights passes chosen at the last
     * batch prepared (NULL before the first forward) */
    const char *kernel_fwd, *kernel_bwd_data, *kernel_bwd_weights;
} incv3_node_info;

size_t incv3_graph_node_count(const incv3_graph *g);
/* Fills info; for an id that is not a node, info->kind is "none" and the rest zero. */
void incv3_graph_node_info(const incv3_graph *g, int node, incv3_node_info *info);
int incv3_graph_output_node(const incv3_graph *g, int slot);

/* ---- parameters and buffers ---- */
typedef enum incv3_param_kind { INCV3_PARAM = 0, INCV3_BUFFER = 1 } incv3_param_kind;

typedef struct incv3_param {
    char name[INCV3_NAME_MAX]; /* PyTorch state_dict name, e.g. "stem.0.conv.weight" */
    incv3_param_kind kind;
    int ndim;
    int64_t shape[4];
    size_t numel;
    float *data;
    float *grad;  /* parameters only: written by backward */
    int has_grad; /* 1 when the last backward reached this parameter (else grad holds zeros) */
} incv3_param;

size_t incv3_graph_param_count(const incv3_graph *g);
incv3_param *incv3_graph_param(incv3_graph *g, size_t i);
incv3_param *incv3_graph_find_param(incv3_graph *g, const char *name);
/* Trainable parameter count (buffers excluded). */
size_t incv3_graph_trainable_count(const incv3_graph *g);
/* PyTorch's default initialization, from a seed: conv and linear weights and linear biases uniform in
 * +-1/sqrt(fan_in); BatchNorm weight 1, bias 0, running mean 0, running variance 1. */
void incv3_graph_init_params(incv3_graph *g, uint64_t seed);

/* ---- kernels ---- */
/* Chooses the ISA ("auto", "scalar", ...) and convolution algorithm of later passes: "auto" (per layer and
 * pass, the fastest kernel serving its shape), "winograd" (the fastest Winograd tile where one serves the
 * shape, else direct), or one algorithm ("direct", "winograd-f4x4", "ref", ...; layers it cannot serve run
 * direct). Errors name the value and list the ones this build and CPU offer.
 *
 * "auto" and "winograd" decide by timing each candidate once on the layer's shape at the first forward;
 * the choices form the graph's plan, are cached per CPU model in $XDG_CACHE_HOME/incv3/conv-plan.json
 * (~/.cache/incv3 when unset) and reused from there, so runs on one machine choose alike. */
int incv3_graph_set_kernels(incv3_graph *g, const char *isa, const char *conv_algo, incv3_error *err);
/* With on != 0, "auto" and "winograd" choose without timing, by a fixed rule: per layer and pass the first
 * kernel of the family that serves the shape in the kernel table's order (for "auto" the direct kernel,
 * for "winograd" the largest tile listed), ignoring the plan, the cache and the thread count. Every kernel
 * sums in an order fixed by the shape, so the results are then bitwise the same for any thread count and
 * any machine with the same ISA. One algorithm named by conv_algo is used as it is. */
void incv3_graph_set_deterministic(incv3_graph *g, int on);
/* 1 when some convolution of the graph runs, at this batch, a kernel whose algorithm name starts with
 * `algo_prefix` (e.g. "winograd"); makes the per-layer choices a forward at that batch would make. */
int incv3_graph_conv_algo_in_use(incv3_graph *g, int batch, const char *algo_prefix);
/* Writes the plan the graph has used so far (JSON) to path, atomically. */
int incv3_graph_save_conv_plan(const incv3_graph *g, const char *path, incv3_error *err);
/* Makes the graph follow the plan in path (as written by incv3_graph_save_conv_plan) wherever it has an
 * entry; errors name the file. */
int incv3_graph_load_conv_plan(incv3_graph *g, const char *path, incv3_error *err);
/* The ISA "auto" gives the graph on this CPU and build, e.g. "scalar". */
const char *incv3_graph_default_isa(void);
/* Checks --isa/--conv-algo values without a graph (same errors as incv3_graph_set_kernels). */
int incv3_kernels_check(const char *isa, const char *conv_algo, incv3_error *err);

/* ---- running ---- */
typedef struct incv3_forward_opts {
    incv3_mode mode;
    unsigned outputs;     /* bit i set: compute output slot i (0 means slot 0 only) */
    int for_backward;     /* keep what backward needs */
    uint64_t dropout_seed;/* stream for dropout masks of this step */
} incv3_forward_opts;

/* Runs forward on `batch` samples of the input shape (NCHW, batch x in_c x in_h x in_w floats). With
 * for_backward set, the input must stay valid and unchanged until incv3_graph_backward returns (the first
 * layer's backward reads it). */
int incv3_graph_forward(incv3_graph *g, const float *input, int batch, const incv3_forward_opts *opts,
                        incv3_error *err);
/* Output of slot after forward: batch x c x h x w (h = w = 1 for linear heads). NULL if not computed. */
const incv3_tensor *incv3_graph_output(const incv3_graph *g, int slot);

/* Backward from the gradients of the outputs (d_out[slot], shaped like the output; NULL where that output
 * does not contribute). Writes every reached parameter's grad; when d_input is not NULL also the
 * gradient of the input. Needs a forward with for_backward set. */
int incv3_graph_backward(incv3_graph *g, const float *const d_out[INCV3_MAX_OUTPUTS], float *d_input,
                         incv3_error *err);

/* Per-node timing of later passes, for profiles (off by default: it costs two clock reads per node and
 * pass). Turning it on (again) zeroes the accumulated times; returns -1 when out of memory. */
int incv3_graph_set_profiling(incv3_graph *g, int on);
/* Seconds node spent in forward and in backward since profiling was turned on (0 when off). A fused
 * conv -> batchnorm -> relu chain is timed where it runs: the conv's forward, the batchnorm's backward. */
void incv3_graph_node_time(const incv3_graph *g, int node, double *fwd_s, double *bwd_s);

/* Bytes held now by activations and gradients (for memory reports). Peak since the last reset. */
size_t incv3_graph_peak_activation_bytes(const incv3_graph *g);
void incv3_graph_reset_peak(incv3_graph *g);

#ifdef __cplusplus
}
#endif
#endif
