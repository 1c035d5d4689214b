/* The seed's Inception-V3 (shared/seed/000_3cd3e6ef2d6892e0.txt), with the parameter names of the PyTorch
 * reference (stem.0.conv.weight, mixed17.4.b7dbl.3.bn.running_var, aux.fc1.bias, ...). */
#ifndef INCV3_MODEL_H
#define INCV3_MODEL_H

#include <stdio.h>

#include "incv3/error.h"
#include "incv3/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct incv3_model_config {
    int image_size; /* >= 75; 299 in the seed */
    int aux;        /* auxiliary head after the 17x17 blocks (needs image_size giving a 17x17 grid) */
    int classes;
    double width;   /* channel multiplier in (0, 4]: every channel count c of the table becomes
                       max(1, floor(c * width + 0.5)) */
    float dropout;  /* before the final Linear; 0 = none (the seed table has no dropout row) */
} incv3_model_config;

#define INCV3_AUX_OUTPUT 1
#define INCV3_MAIN_OUTPUT 0

/* The seed's settings: 299x299, aux head, 10 classes, width 1, no dropout. */
incv3_model_config incv3_model_config_default(void);
/* Checks a configuration; the message names the setting (--image-size, --width, ...). */
int incv3_model_config_check(const incv3_model_config *cfg, incv3_error *err);
/* Builds the model (parameters zero; call incv3_graph_init_params or load them). NULL on error. */
incv3_graph *incv3_inception_v3(const incv3_model_config *cfg, incv3_error *err);

/* Prints the summary table in the seed's markdown format, then the totals table and the forward
 * multiply-accumulates per image. Returns the total forward MACs. */
double incv3_print_summary(incv3_graph *g, const incv3_model_config *cfg, FILE *out);

/* Prints the kernels each layer runs at this batch with the graph's kernel choice (incv3_graph_set_kernels;
 * for --conv-algo auto/winograd the plan, timing new shapes as a forward would): for every convolution its
 * forward, backward-data and backward-weights kernels, and the kernel family of the other layers. */
void incv3_print_kernels(incv3_graph *g, int batch, FILE *out);

#ifdef __cplusplus
}
#endif
#endif
