/* Winograd convolutions F(m x m, r x r) and F(m, r), AArch64 NEON (ASIMD), NCHW8c activations and
 * OIHW weights, transformed once by a pack function. The NEON counterparts of
 * avx2/conv_winograd_avx2.h: the same variants (tags), the same contracts, argument lists, supports()
 * predicates and transformed-filter sizes, and the same arithmetic (point sets, transforms, fused
 * multiply-adds and summation orders), so the errors are those that header lists. Stride 1 only; each
 * padding at most kernel - 1 in its dimension.
 *
 * For each tag V (f2x2_3x3, f4x4_3x3, f6x6_3x3, f2_1x3, f4_1x3, f2_3x1, f4_3x1, f2_1x7, f4_1x7, f2_7x1,
 * f4_7x1) these functions exist, as conv_winograd_V_*__avx2 and conv_*_winograd_V__avx2 in
 * avx2/conv_winograd_avx2.h describe them:
 *
 *   int    conv_winograd_V_supports__neon(s)
 *   size_t conv_winograd_V_fwd_weights_floats__neon(s)        void conv_winograd_V_pack_fwd__neon(s, w, u)
 *   size_t conv_winograd_V_bwd_data_weights_floats__neon(s)   void conv_winograd_V_pack_bwd_data__neon(s, w, u)
 *   void   conv_fwd_f32_winograd_V__neon(s, x8c, u, y8c)
 *   void   conv_bwd_data_f32_winograd_V__neon(s, dy8c, u, dx8c, accumulate)
 *   void   conv_fwd_stats_f32_winograd_V__neon(s, x8c, u, y8c, sum, sumsq)
 *   void   conv_bn_relu_fwd_infer_f32_winograd_V__neon(s, x8c, u, y8c, gamma, beta, mean, var, eps)
 *
 * u must come from the __neon pack functions (its layout is that of the AVX2 ones, but nothing promises
 * that). Results are bitwise the same for any OpenMP thread count. Per-call scratch is allocated; on
 * allocation failure the functions print a message and exit (alloc.h). No alignment is required of the
 * pointers.
 */
#ifndef INCV3_CONV_WINOGRAD_NEON_H
#define INCV3_CONV_WINOGRAD_NEON_H

#include <stddef.h>

#include "kernel_types.h"

#define INCV3_WINOGRAD_NEON_DECLARE(V)                                                                                \
    int conv_winograd_##V##_supports__neon(const incv3_conv_shape *s);                                                \
    size_t conv_winograd_##V##_fwd_weights_floats__neon(const incv3_conv_shape *s);                                   \
    void conv_winograd_##V##_pack_fwd__neon(const incv3_conv_shape *s, const float *w, float *u);                 \
    size_t conv_winograd_##V##_bwd_data_weights_floats__neon(const incv3_conv_shape *s);                              \
    void conv_winograd_##V##_pack_bwd_data__neon(const incv3_conv_shape *s, const float *w, float *u);            \
    void conv_fwd_f32_winograd_##V##__neon(const incv3_conv_shape *s, const float *x8c, const float *u, float *y8c);  \
    void conv_bwd_data_f32_winograd_##V##__neon(const incv3_conv_shape *s, const float *dy8c, const float *u,         \
                                                float *dx8c, int accumulate);                                        \
    void conv_fwd_stats_f32_winograd_##V##__neon(const incv3_conv_shape *s, const float *x8c, const float *u,        \
                                                 float *y8c, double *sum, double *sumsq);                            \
    void conv_bn_relu_fwd_infer_f32_winograd_##V##__neon(const incv3_conv_shape *s, const float *x8c, const float *u, \
                                                         float *y8c, const float *gamma, const float *beta,          \
                                                         const float *mean, const float *var, float eps); \
    void conv_bwd_weights_f32_winograd_##V##__neon(const incv3_conv_shape *s, const float *x8c, const float *dy8c,   \
                                                   float *dw);                                                    \
    size_t conv_bwd_weights_f32_winograd_##V##_scratch_floats__neon(const incv3_conv_shape *s);

INCV3_WINOGRAD_NEON_DECLARE(f2x2_3x3)
INCV3_WINOGRAD_NEON_DECLARE(f4x4_3x3)
INCV3_WINOGRAD_NEON_DECLARE(f6x6_3x3)
INCV3_WINOGRAD_NEON_DECLARE(f2_1x3)
INCV3_WINOGRAD_NEON_DECLARE(f4_1x3)
INCV3_WINOGRAD_NEON_DECLARE(f2_3x1)
INCV3_WINOGRAD_NEON_DECLARE(f4_3x1)
INCV3_WINOGRAD_NEON_DECLARE(f2_1x7)
INCV3_WINOGRAD_NEON_DECLARE(f4_1x7)
INCV3_WINOGRAD_NEON_DECLARE(f2_7x1)
INCV3_WINOGRAD_NEON_DECLARE(f4_7x1)

#endif
