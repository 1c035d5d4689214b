/* Winograd convolutions F(m x m, r x r) and F(m, r), AVX2+FMA, in the blocked layouts of layout/reorder.h
 * (NCHW8c activations; the weights come in OIHW and are transformed once by a pack function). Call them
 * only when incv3_cpu_has_avx2_fma() says so. Stride 1 only; each padding at most kernel - 1 in its
 * dimension (the backward-data pass runs as a forward convolution of dy with padding kernel - 1 - pad).
 *
 * Variants and the worst norm-wise relative error measured against a double-precision convolution on
 * the seed model's shapes with post-ReLU activations and He-initialized weights, forward / backward-data /
 * backward-weights (tests/test_kernels_winograd.c prints the current figures):
 *     f2x2_3x3  F(2x2, 3x3)  6e-7 / 6e-7 / 5e-7          f2_1x3, f2_3x1  F(2, 3) along w, h  3e-7 / 4e-7 / 2e-7
 *     f4x4_3x3  F(4x4, 3x3)  3.1e-6 / 3.8e-6 / 2.6e-6    f4_1x3, f4_3x1  F(4, 3)      8e-7 / 1.0e-6 / 3e-7
 *     f6x6_3x3  F(6x6, 3x3)  5.8e-6 / 7.2e-6 / 4.9e-6    f2_1x7, f2_7x1  F(2, 7)      1.1e-6 / 1.3e-6 / 1.0e-6
 *                                                        f4_1x7, f4_7x1  F(4, 7)      3.4e-6 / 4.1e-6 / 3.2e-6
 * On one-channel inputs whose outputs are single products the error grows (up to 9e-5 for F(6x6), 3e-5
 * for F(4, 7)): each output is then a sum of alpha^2 transformed terms much larger than the product.
 *
 * For each tag V these functions exist, V in their names (conv_fwd_f32_winograd_f4x4_3x3__avx2, ...):
 *
 *   int conv_winograd_V_supports__avx2(s)
 *       1 when s (the forward convolution's shape, finished) has stride 1, V's kernel size, pads <= kernel-1.
 *   size_t conv_winograd_V_fwd_weights_floats__avx2(s)
 *   void conv_winograd_V_pack_fwd__avx2(s, w, u)
 *       The transformed filters of the forward pass: their size in floats and the transform of OIHW
 *       weights (k x c) into u, computed in double. Cache u while the weights do not change.
 *   size_t conv_winograd_V_bwd_data_weights_floats__avx2(s)
 *   void conv_winograd_V_pack_bwd_data__avx2(s, w, u)
 *       The same for the backward-data pass (the filter rotated by 180 degrees, channels swapped).
 *   void conv_fwd_f32_winograd_V__avx2(s, x8c, u, y8c)
 *       y8c = conv(x8c, w); u from pack_fwd. y8c is overwritten entirely, its padding channels with 0.
 *   void conv_bwd_data_f32_winograd_V__avx2(s, dy8c, u, dx8c, accumulate)
 *       dx8c = transposed conv(dy8c, w); u from pack_bwd_data. accumulate 0 overwrites dx8c (padding
 *       channels with 0), 1 adds to it (padding channels keep their values).
 *   void conv_fwd_stats_f32_winograd_V__avx2(s, x8c, u, y8c, sum, sumsq)
 *       The forward pass that also returns sum[k] and sumsq[k] of y over (n, oh, ow) in double, as
 *       conv_fwd_stats_f32_direct__avx2 (avx2_fused.h) does.
 *   void conv_bn_relu_fwd_infer_f32_winograd_V__avx2(s, x8c, u, y8c, gamma, beta, mean, var, eps)
 *       y = relu(conv * scale + shift), BatchNorm folded per channel as in
 *       conv_bn_relu_fwd_infer_f32_direct__avx2.
 *   void conv_bwd_weights_f32_winograd_V__avx2(s, x8c, dy8c, dw)
 *   size_t conv_bwd_weights_f32_winograd_V_scratch_floats__avx2(s)
 *       dw = dL/dw (OIHW, overwritten) from x and dy, through the transposed
 *       forward transforms (common/winograd_bwd_weights_driver.h); the floats of scratch a call takes.
 *
 * Every output element is computed by one tile group, whose size depends on the shape alone, in a fixed
 * order, and the statistics are reduced over groups in order (backward-weights: chunks and sub-chunks of
 * tiles fixed by the shape): results are bitwise the same for any OpenMP thread count. They are not
 * bitwise those of the direct kernels (Winograd rounds differently).
 * Per-call scratch is allocated (the transformed tiles of one group per thread); on allocation failure
 * the functions exit through incv3_mem_must (alloc.h). No alignment is required of the pointers.
 */
#ifndef INCV3_CONV_WINOGRAD_AVX2_H
#define INCV3_CONV_WINOGRAD_AVX2_H

#include <stddef.h>

#include "kernel_types.h"

#define INCV3_WINOGRAD_AVX2_DECLARE(V)                                                                                \
    int conv_winograd_##V##_supports__avx2(const incv3_conv_shape *s);                                                \
    size_t conv_winograd_##V##_fwd_weights_floats__avx2(const incv3_conv_shape *s);                                   \
    void conv_winograd_##V##_pack_fwd__avx2(const incv3_conv_shape *s, const float *w, float *u);                 \
    size_t conv_winograd_##V##_bwd_data_weights_floats__avx2(const incv3_conv_shape *s);                              \
    void conv_winograd_##V##_pack_bwd_data__avx2(const incv3_conv_shape *s, const float *w, float *u);            \
    void conv_fwd_f32_winograd_##V##__avx2(const incv3_conv_shape *s, const float *x8c, const float *u, float *y8c);  \
    void conv_bwd_data_f32_winograd_##V##__avx2(const incv3_conv_shape *s, const float *dy8c, const float *u,         \
                                                float *dx8c, int accumulate);                                        \
    void conv_fwd_stats_f32_winograd_##V##__avx2(const incv3_conv_shape *s, const float *x8c, const float *u,        \
                                                 float *y8c, double *sum, double *sumsq);                            \
    void conv_bn_relu_fwd_infer_f32_winograd_##V##__avx2(const incv3_conv_shape *s, const float *x8c, const float *u, \
                                                         float *y8c, const float *gamma, const float *beta,          \
                                                         const float *mean, const float *var, float eps); \
    void conv_bwd_weights_f32_winograd_##V##__avx2(const incv3_conv_shape *s, const float *x8c, const float *dy8c,   \
                                                   float *dw);                                                    \
    size_t conv_bwd_weights_f32_winograd_##V##_scratch_floats__avx2(const incv3_conv_shape *s);

INCV3_WINOGRAD_AVX2_DECLARE(f2x2_3x3)
INCV3_WINOGRAD_AVX2_DECLARE(f4x4_3x3)
INCV3_WINOGRAD_AVX2_DECLARE(f6x6_3x3)
INCV3_WINOGRAD_AVX2_DECLARE(f2_1x3)
INCV3_WINOGRAD_AVX2_DECLARE(f4_1x3)
INCV3_WINOGRAD_AVX2_DECLARE(f2_3x1)
INCV3_WINOGRAD_AVX2_DECLARE(f4_3x1)
INCV3_WINOGRAD_AVX2_DECLARE(f2_1x7)
INCV3_WINOGRAD_AVX2_DECLARE(f4_1x7)
INCV3_WINOGRAD_AVX2_DECLARE(f2_7x1)
INCV3_WINOGRAD_AVX2_DECLARE(f4_7x1)

#endif
