/* Fused NEON kernels of the training chain conv -> BatchNorm (batch statistics) -> ReLU, the counterparts
 * of avx2/avx2_fused.h with the same contracts, in NCHW8c / OIhw8i8o. Padding lanes hold zero in every
 * input and are written as zero in every output. Every sum is taken in an order fixed by the shape, so
 * results are bitwise the same for any OpenMP thread count.
 *
 * Forward (training):
 *     conv_fwd_stats_f32_direct__neon(s, x, w, y, sum, sumsq);               y = conv(x, w), sum/sumsq of y
 *     bn_relu_fwd_train_f32_blocked__neon(d, y, sum, sumsq, g, b, eps, z, mean, var);  z = relu(bn(y))
 * Backward (training), given dz:
 *     bn_relu_bwd_train_f32_blocked__neon(d, y, z, dz, g, mean, var, eps, dy, dg, db, acc);
 */
#ifndef INCV3_NEON_FUSED_H
#define INCV3_NEON_FUSED_H

#include <stddef.h>

#include "kernel_types.h"

/* Convolution forward as conv_fwd_f32_direct__neon (bitwise the same y8c) that also returns, for each
 * output channel k < s->k, sum[k] and sumsq[k] of y over (n, oh, ow) in double: per-row partials taken
 * while the row is in cache, reduced in (n, oh) order. As conv_fwd_stats_f32_direct__avx2. */
void conv_fwd_stats_f32_direct__neon(const incv3_conv_shape *s, const float *x8c, const float *w8i8o, float *y8c,
                                     double *sum, double *sumsq);

/* y = relu(bn(x)) with the batch statistics from the sums of x; writes mean[c], var[c] (biased) and y; y
 * may equal x. As bn_relu_fwd_train_f32_blocked__avx2. */
void bn_relu_fwd_train_f32_blocked__neon(incv3_dims d, const float *x, const double *sum, const double *sumsq,
                                         const float *gamma, const float *beta, float eps, float *y, float *mean,
                                         float *var);

/* Backward of y = relu(bn_train(x)); dgamma and dbeta overwritten, dx overwritten (accumulate 0) or added
 * to (1). As bn_relu_bwd_train_f32_blocked__avx2. */
void bn_relu_bwd_train_f32_blocked__neon(incv3_dims d, const float *x, const float *y, const float *dy,
                                         const float *gamma, const float *mean, const float *var, float eps,
                                         float *dx, float *dgamma, float *dbeta, int accumulate);

/* Inference: y = relu(x * scale + shift), scale and shift folded per channel in double, then rounded; y
 * may equal x. As bn_relu_fwd_infer_f32_blocked__avx2. */
void bn_relu_fwd_infer_f32_blocked__neon(incv3_dims d, const float *x, const float *gamma, const float *beta,
                                         const float *mean, const float *var, float eps, float *y);

/* Inference of conv -> BatchNorm -> ReLU in one pass: y = relu(conv(x) * scale + shift), the BatchNorm
 * folded per channel in double then rounded, applied to each output row while it is in cache; the conv
 * part is bitwise that of conv_fwd_f32_direct__neon. As conv_bn_relu_fwd_infer_f32_direct__avx2. */
void conv_bn_relu_fwd_infer_f32_direct__neon(const incv3_conv_shape *s, const float *x8c, const float *w8i8o,
                                             float *y8c, const float *gamma, const float *beta, const float *mean,
                                             const float *var, float eps);

/* ---- internal: the forward convolution driver with a per-row hook (conv_fwd_direct_neon.c) ---- */

/* Called once per (image n, output block pair kbp, output row oh) when the row's final values are in y:
 * yrow points at (n, block 2*kbp, row oh, pixel 0); nob (1 or 2) blocks of that row follow, y_ob floats
 * apart, each s->ow pixels of 8 floats. Called from inside the OpenMP loop, on any thread. */
typedef void (*conv_fwd_row_hook)(void *ctx, int n, int kbp, int oh, int nob, float *yrow, size_t y_ob);

/* conv_fwd_f32_direct__neon with `hook` (may be NULL) called for every finished output row. */
void conv_fwd_f32_direct_hooked__neon(const incv3_conv_shape *s, const float *x8c, const float *w8i8o, float *y8c,
                                      conv_fwd_row_hook hook, void *hook_ctx);

#endif
