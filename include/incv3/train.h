/* Loss and optimizer. */
#ifndef INCV3_TRAIN_H
#define INCV3_TRAIN_H

#include <stdint.h>

#include "incv3/error.h"
#include "incv3/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Softmax cross-entropy with label smoothing (PyTorch's cross_entropy(label_smoothing=s)), mean over the
 * n samples of logits [n][k]. Writes the loss to *loss and, when dlogits is not NULL,
 * dlogits = scale * d(loss)/d(logits). A label outside [0, k) is an error naming it. */
int incv3_softmax_xent(const float *logits, const int64_t *labels, int n, int k, float smoothing, float scale,
                       float *dlogits, double *loss, incv3_error *err);

/* AdamW with decoupled weight decay applied to every parameter (PyTorch's torch.optim.AdamW). */
typedef struct incv3_adamw_hparams {
    float lr, beta1, beta2, eps, weight_decay;
} incv3_adamw_hparams;

typedef struct incv3_adamw incv3_adamw;

/* Optimizer state (first and second moments, zero) for every parameter of g. */
incv3_adamw *incv3_adamw_new(incv3_graph *g, incv3_adamw_hparams hp, incv3_error *err);
void incv3_adamw_free(incv3_adamw *opt);
/* One step over every parameter that has a gradient from the last backward. */
void incv3_adamw_step(incv3_adamw *opt, incv3_graph *g);
int64_t incv3_adamw_steps(const incv3_adamw *opt);
/* Moment buffers of parameter i (graph parameter order; NULL for buffers), for checkpoints. */
float *incv3_adamw_exp_avg(incv3_adamw *opt, size_t i);
float *incv3_adamw_exp_avg_sq(incv3_adamw *opt, size_t i);
void incv3_adamw_set_steps(incv3_adamw *opt, int64_t steps);

#ifdef __cplusplus
}
#endif
#endif
