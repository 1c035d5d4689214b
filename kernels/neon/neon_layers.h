/* NEON (AArch64 ASIMD) kernels of the non-convolution layers in the blocked NCHW8c layout (layout/reorder.h):
 * the same semantics, arguments and guarantees as the __avx2 kernels of avx2/avx2_layers.h (dims and pool
 * shapes count real channels; padding lanes are zero in every input and written zero in every output;
 * `accumulate` 0 overwrites, 1 adds; results do not depend on the OpenMP thread count). One 8-channel block
 * of a pixel is two float32x4_t. */
#ifndef INCV3_NEON_LAYERS_H
#define INCV3_NEON_LAYERS_H

#include <stddef.h>

#include "kernel_types.h"

/* ---- batch normalization, statistics per channel over (n, h, w), accumulated in double ---- */
void bn_fwd_train_f32_blocked__neon(incv3_dims d, const float *x, const float *gamma, const float *beta, float eps,
                                    float *y, float *mean, float *var);
void bn_fwd_infer_f32_blocked__neon(incv3_dims d, const float *x, const float *gamma, const float *beta,
                                    const float *mean, const float *var, float eps, float *y);
void bn_bwd_train_f32_blocked__neon(incv3_dims d, const float *x, const float *dy, const float *gamma,
                                    const float *mean, const float *var, float eps, float *dx, float *dgamma,
                                    float *dbeta, int accumulate);
void bn_bwd_infer_f32_blocked__neon(incv3_dims d, const float *x, const float *dy, const float *gamma,
                                    const float *mean, const float *var, float eps, float *dx, float *dgamma,
                                    float *dbeta, int accumulate);

/* ---- ReLU over a whole blocked tensor of `count` floats (padding lanes included) ---- */
void relu_fwd_f32__neon(size_t count, const float *x, float *y);
void relu_bwd_f32__neon(size_t count, const float *y, const float *dy, float *dx, int accumulate);

/* ---- pooling (max: first maximum of the window in row-major order; avg: padded cells counted) ---- */
void maxpool_fwd_f32_blocked__neon(const incv3_pool_shape *s, const float *x, float *y);
void maxpool_bwd_f32_blocked__neon(const incv3_pool_shape *s, const float *x, const float *dy, float *dx,
                                   int accumulate);
void avgpool_fwd_f32_blocked__neon(const incv3_pool_shape *s, const float *x, float *y);
void avgpool_bwd_f32_blocked__neon(const incv3_pool_shape *s, const float *dy, float *dx, int accumulate);

#endif
