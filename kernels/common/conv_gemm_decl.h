/* The declarations of one family of GEMM convolutions for one ISA (the entry points that
 * common/conv_gemm_driver.h and common/conv_gemm_im2col_driver.h define): FAM is gemm or gemm_im2col,
 * SFX the ISA suffix. Used by the ISAs' headers, so the two families and ISAs cannot drift apart. */
#ifndef INCV3_CONV_GEMM_DECL_H
#define INCV3_CONV_GEMM_DECL_H

#include <stddef.h>

#include "kernel_types.h"

#define INCV3_CONV_GEMM_DECLARE(FAM, SFX)                                                                              \
    int conv_##FAM##_supports__##SFX(const incv3_conv_shape *s);                                                      \
    size_t conv_##FAM##_weights_floats__##SFX(const incv3_conv_shape *s);                                             \
    void conv_##FAM##_pack__##SFX(const incv3_conv_shape *s, const float *w, float *p);                                \
    void conv_fwd_f32_##FAM##__##SFX(const incv3_conv_shape *s, const float *x8c, const float *p, float *y8c);        \
    void conv_fwd_stats_f32_##FAM##__##SFX(const incv3_conv_shape *s, const float *x8c, const float *p, float *y8c,   \
                                           double *sum, double *sumsq);                                              \
    void conv_bn_relu_fwd_infer_f32_##FAM##__##SFX(const incv3_conv_shape *s, const float *x8c, const float *p,      \
                                                   float *y8c, const float *gamma, const float *beta,                \
                                                   const float *mean, const float *var, float eps);                  \
    void conv_bwd_data_f32_##FAM##__##SFX(const incv3_conv_shape *s, const float *dy8c, const float *p, float *dx8c, \
                                          int accumulate);                                                           \
    void conv_bwd_weights_f32_##FAM##__##SFX(const incv3_conv_shape *s, const float *x8c, const float *dy8c,          \
                                             float *dw);

#endif
