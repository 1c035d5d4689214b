/* Fused AVX2+FMA kernels of the training chain conv -> BatchNorm (batch statistics) -> ReLU, in the
 * blocked layouts of layout/reorder.h (NCHW8c activations, OIhw8i8o weights). Call them only when
 * incv3_cpu_has_avx2_fma() says so. Channel c lives in block c / 8, lane c % 8; padding lanes hold zero in
 * every input and are written as zero in every output. Every sum is taken in an order fixed by the shape,
 * so results are bitwise the same for any OpenMP thread count.
 *
 * Forward (training):
 *     conv_fwd_stats_f32_direct__avx2(s, x, w, y, sum, sumsq);               y = conv(x, w), sum/sumsq of y
 *     bn_relu_fwd_train_f32_blocked__avx2(d, y, sum, sumsq, g, b, eps, z, mean, var);  z = relu(bn(y))
 * Backward (training), given dz:
 *     bn_relu_bwd_train_f32_blocked__avx2(d, y, z, dz, g, mean, var, eps, dy, dg, db, acc);
 */
#ifndef INCV3_AVX2_FUSED_H
#define INCV3_AVX2_FUSED_H

#include <stddef.h>

#include "kernel_types.h"

/* Convolution forward as conv_fwd_f32_direct__avx2 (bitwise the same y8c) that also returns, for each
 * output channel k < s->k, sum[k] = sum of y and sumsq[k] = sum of y^2 over (n, oh, ow), in double. Each
 * output row is summed right after its last input-channel chunk (while it is in cache) into a per-row
 * partial; the partials are reduced in (n, oh) order after the parallel loop. Allocates per-call scratch
 * (32 doubles per (image, block pair, output row)). */
void conv_fwd_stats_f32_direct__avx2(const incv3_conv_shape *s, const float *x8c, const float *w8i8o, float *y8c,
                                     double *sum, double *sumsq);

/* y = relu(gamma * (x - mean) / sqrt(var + eps) + beta) with the batch statistics taken from the sums of
 * x over (n, h, w) (M = n*h*w values per channel): mean = sum / M, var = sumsq / M - mean^2 (biased, in
 * double, clamped at 0). Writes mean[c], var[c] (d.c entries each) and y in one pass over x; y may equal
 * x. */
void bn_relu_fwd_train_f32_blocked__avx2(incv3_dims d, const float *x, const double *sum, const double *sumsq,
                                         const float *gamma, const float *beta, float eps, float *y, float *mean,
                                         float *var);

/* Backward of y = relu(bn_train(x)): dz = dy where y > 0, else 0 (not materialized), then BatchNorm's
 * training backward on dz: dbeta = sum dz, dgamma = sum dz * xhat (in double),
 * dx = gamma * invstd / M * (M * dz - dbeta - xhat * dgamma). Two sweeps over the data (sums, then dx).
 * accumulate 0 overwrites dx, 1 adds to it; dgamma and dbeta are always overwritten. */
void bn_relu_bwd_train_f32_blocked__avx2(incv3_dims d, const float *x, const float *y, const float *dy,
                                         const float *gamma, const float *mean, const float *var, float eps,
                                         float *dx, float *dgamma, float *dbeta, int accumulate);

/* Inference: y = relu(x * scale + shift) with scale = gamma / sqrt(var + eps) and shift = beta - mean *
 * scale folded per channel in double, then rounded to float. y may equal x. */
void bn_relu_fwd_infer_f32_blocked__avx2(incv3_dims d, const float *x, const float *gamma, const float *beta,
                                         const float *mean, const float *var, float eps, float *y);

/* Inference of the conv -> BatchNorm -> ReLU chain in one pass: y = relu(conv(x) * scale + shift) with the
 * BatchNorm folded per channel (scale = gamma / sqrt(var + eps), shift = beta - mean * scale, in double,
 * then rounded), applied to each output row while it is in cache; padding lanes stay zero. */
void conv_bn_relu_fwd_infer_f32_direct__avx2(const incv3_conv_shape *s, const float *x8c, const float *w8i8o,
                                             float *y8c, const float *gamma, const float *beta, const float *mean,
                                             const float *var, float eps);

/* ---- internal: the forward convolution driver with a per-row hook (conv_fwd_direct_avx2.c) ---- */

/* Called once per (image n, output block pair kbp, output row oh) when the row's final values are in y:
 * yrow points at (n, block 2*kbp, row oh, pixel 0); nob (1 or 2) blocks of that row follow, y_ob floats
 * apart, each s->ow pixels of 8 floats. Called from inside the OpenMP loop, on any thread. */
typedef void (*conv_fwd_row_hook)(void *ctx, int n, int kbp, int oh, int nob, float *yrow, size_t y_ob);

/* conv_fwd_f32_direct__avx2 with `hook` (may be NULL) called for every finished output row. */
void conv_fwd_f32_direct_hooked__avx2(const incv3_conv_shape *s, const float *x8c, const float *w8i8o, float *y8c,
                                      conv_fwd_row_hook hook, void *hook_ctx);

#endif
