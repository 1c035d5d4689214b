/* AVX2 kernels of the non-convolution layers in the blocked NCHW8c layout (layout/reorder.h). Same
 * semantics as the scalar reference kernels of the same name (ref/ref_kernels.h), with dims and pool shapes
 * counting real channels; channel c lives in block c / 8, lane c % 8. Padding lanes (channels past c in the
 * last block) hold zero in every input and are written as zero in every output (gradients included), so
 * later kernels may run whole blocks. `accumulate` as in the reference: 0 overwrites, 1 adds (padding lanes
 * stay zero either way). Results do not depend on the OpenMP thread count. */
#ifndef INCV3_AVX2_LAYERS_H
#define INCV3_AVX2_LAYERS_H

#include <stddef.h>

#include "kernel_types.h"

/* ---- batch normalization, statistics per channel over (n, h, w), accumulated in double ---- */
void bn_fwd_train_f32_blocked__avx2(incv3_dims d, const float *x, const float *gamma, const float *beta, float eps,
                                    float *y, float *mean, float *var);
void bn_fwd_infer_f32_blocked__avx2(incv3_dims d, const float *x, const float *gamma, const float *beta,
                                    const float *mean, const float *var, float eps, float *y);
void bn_bwd_train_f32_blocked__avx2(incv3_dims d, const float *x, const float *dy, const float *gamma,
                                    const float *mean, const float *var, float eps, float *dx, float *dgamma,
                                    float *dbeta, int accumulate);
void bn_bwd_infer_f32_blocked__avx2(incv3_dims d, const float *x, const float *dy, const float *gamma,
                                    const float *mean, const float *var, float eps, float *dx, float *dgamma,
                                    float *dbeta, int accumulate);

/* ---- ReLU over a whole blocked tensor of `count` floats (padding lanes included) ---- */
void relu_fwd_f32__avx2(size_t count, const float *x, float *y);
void relu_bwd_f32__avx2(size_t count, const float *y, const float *dy, float *dx, int accumulate);

/* ---- pooling (max: first maximum of the window in row-major order; avg: padded cells counted) ---- */
void maxpool_fwd_f32_blocked__avx2(const incv3_pool_shape *s, const float *x, float *y);
void maxpool_bwd_f32_blocked__avx2(const incv3_pool_shape *s, const float *x, const float *dy, float *dx,
                                   int accumulate);
void avgpool_fwd_f32_blocked__avx2(const incv3_pool_shape *s, const float *x, float *y);
void avgpool_bwd_f32_blocked__avx2(const incv3_pool_shape *s, const float *dy, float *dx, int accumulate);

#endif
