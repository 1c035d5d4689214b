/* Scalar reference kernels: plain NCHW, written for clarity. They are the oracle every optimized kernel
 * is tested against, and the path a CPU without AVX2/NEON runs.
 *
 * Conventions shared by every kernel here:
 * - Tensors are dense row-major arrays: activations NCHW, conv weights OIHW, linear weights [out][in].
 * - A gradient written for an *input* of the op honours `accumulate`: 0 overwrites the destination, 1 adds
 *   to it (the graph sums gradients of a tensor read by several layers).
 * - Gradients of *parameters* are always overwritten (one backward pass per optimizer step).
 * - Results do not depend on the OpenMP thread count: work is split so that each output element is
 *   computed by one thread in a fixed order.
 */
#ifndef INCV3_REF_KERNELS_H
#define INCV3_REF_KERNELS_H

#include <stdint.h>

#include "kernel_types.h"

/* ---- convolution (no bias) ---- */
void conv_fwd_f32_ref__scalar(const incv3_conv_shape *s, const float *x, const float *w, float *y);
void conv_bwd_data_f32_ref__scalar(const incv3_conv_shape *s, const float *dy, const float *w, float *dx,
                                   int accumulate);
void conv_bwd_weights_f32_ref__scalar(const incv3_conv_shape *s, const float *x, const float *dy, float *dw);

/* ---- batch normalization over (n, h, w) per channel ---- */
/* Training: batch mean and biased variance; writes y = gamma * (x - mean) / sqrt(var + eps) + beta and
 * returns the statistics in mean[c], var[c] (biased) so the caller can save them and update running ones. */
void bn_fwd_train_f32_ref__scalar(incv3_dims d, const float *x, const float *gamma, const float *beta,
                                  float eps, float *y, float *mean, float *var);
/* Inference: normalizes with the given (running) statistics. */
void bn_fwd_infer_f32_ref__scalar(incv3_dims d, const float *x, const float *gamma, const float *beta,
                                  const float *mean, const float *var, float eps, float *y);
/* Backward of the training-mode forward (batch statistics depend on x). */
void bn_bwd_train_f32_ref__scalar(incv3_dims d, const float *x, const float *dy, const float *gamma,
                                  const float *mean, const float *var, float eps, float *dx, float *dgamma,
                                  float *dbeta, int accumulate);
/* Backward of the inference-mode forward (statistics are constants). */
void bn_bwd_infer_f32_ref__scalar(incv3_dims d, const float *x, const float *dy, const float *gamma,
                                  const float *mean, const float *var, float eps, float *dx, float *dgamma,
                                  float *dbeta, int accumulate);

/* ---- ReLU ---- */
void relu_fwd_f32_ref__scalar(size_t count, const float *x, float *y);
/* dx = dy where y > 0, else 0 (y is the forward output). */
void relu_bwd_f32_ref__scalar(size_t count, const float *y, const float *dy, float *dx, int accumulate);

/* ---- pooling ---- */
void maxpool_fwd_f32_ref__scalar(const incv3_pool_shape *s, const float *x, float *y);
/* Routes each dy to the first maximum of its window in row-major scan order (recomputed from x). */
void maxpool_bwd_f32_ref__scalar(const incv3_pool_shape *s, const float *x, const float *dy, float *dx,
                                 int accumulate);
void avgpool_fwd_f32_ref__scalar(const incv3_pool_shape *s, const float *x, float *y);
void avgpool_bwd_f32_ref__scalar(const incv3_pool_shape *s, const float *dy, float *dx, int accumulate);

/* ---- linear layer: y[n][o] = sum_i x[n][i] * w[o][i] + b[o] ---- */
void linear_fwd_f32_ref__scalar(int n, int in, int out, const float *x, const float *w, const float *b, float *y);
void linear_bwd_data_f32_ref__scalar(int n, int in, int out, const float *dy, const float *w, float *dx,
                                     int accumulate);
void linear_bwd_weights_f32_ref__scalar(int n, int in, int out, const float *x, const float *dy, float *dw,
                                        float *db);

/* ---- dropout (inverted): y = x * mask / (1 - p) ---- */
/* mask[i] is 1 with probability 1-p, drawn from a counter-based hash of (seed, i): the same seed gives the
 * same mask whatever the thread count. */
void dropout_fwd_f32_ref__scalar(size_t count, const float *x, float p, uint64_t seed, uint8_t *mask, float *y);
void dropout_bwd_f32_ref__scalar(size_t count, const float *dy, const uint8_t *mask, float p, float *dx,
                                 int accumulate);

/* ---- softmax cross-entropy with label smoothing, mean over the batch ----
 * Target q = (1 - smoothing) * onehot(label) + smoothing / k, as PyTorch's cross_entropy(label_smoothing).
 * Returns the loss; when dlogits is not NULL writes dlogits = scale * (softmax - q) / n
 * (scale is the loss weight, e.g. 0.3 for the aux head). Numerically stable (max subtracted). */
double softmax_xent_f32_ref__scalar(int n, int k, const float *logits, const int64_t *labels, float smoothing,
                                    float scale, float *dlogits);

/* ---- AdamW (decoupled weight decay, PyTorch's algorithm) ----
 * step is the 1-based step count after this update (bias corrections use it). */
void adamw_f32_ref__scalar(size_t count, float *param, const float *grad, float *exp_avg, float *exp_avg_sq,
                           float lr, float beta1, float beta2, float eps, float weight_decay, int64_t step);

#endif
