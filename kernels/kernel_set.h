/* The kernels of one ISA's fast path besides the convolution table (registry.h): BatchNorm, the fused
 * BatchNorm+ReLU of the conv -> BN -> ReLU chain, ReLU, pooling, the GEMM of the linear layer and AdamW.
 * Layers call these pointers instead of naming an ISA, so adding an ISA is adding a set; the kernel tests
 * run every set compiled in against the scalar reference, so no ISA's kernel goes untested.
 *
 * Every entry has the semantics of the scalar reference kernel of the same role (ref/ref_kernels.h) and of
 * the AVX2 kernel documented in avx2/avx2_layers.h, avx2/avx2_fused.h, avx2/gemm_avx2.h and
 * avx2/avx2_kernels.h. The reference set works on NCHW, the vector sets on NCHW8c (padding lanes zero in,
 * zero out). */
#ifndef INCV3_KERNEL_SET_H
#define INCV3_KERNEL_SET_H

#include <stddef.h>
#include <stdint.h>

#include "kernel_types.h"
#include "registry.h"

typedef struct incv3_kernel_set {
    incv3_isa isa;
    incv3_layout layout;
    const char *gemm_tile; /* the GEMM's register tile in its name ("6x16"); NULL where gemm is */

    void (*bn_fwd_train)(incv3_dims d, const float *x, const float *gamma, const float *beta, float eps, float *y,
                         float *mean, float *var);
    void (*bn_fwd_infer)(incv3_dims d, const float *x, const float *gamma, const float *beta, const float *mean,
                         const float *var, float eps, float *y);
    void (*bn_bwd_train)(incv3_dims d, const float *x, const float *dy, const float *gamma, const float *mean,
                         const float *var, float eps, float *dx, float *dgamma, float *dbeta, int accumulate);
    void (*bn_bwd_infer)(incv3_dims d, const float *x, const float *dy, const float *gamma, const float *mean,
                         const float *var, float eps, float *dx, float *dgamma, float *dbeta, int accumulate);

    /* The fused chain; NULL in a set whose graph does not fuse (the reference). The convolution's half
     * (forward with statistics, forward with BN+ReLU folded) is in the convolution table. */
    void (*bn_relu_fwd_train)(incv3_dims d, const float *x, const double *sum, const double *sumsq,
                              const float *gamma, const float *beta, float eps, float *y, float *mean, float *var);
    void (*bn_relu_fwd_infer)(incv3_dims d, const float *x, const float *gamma, const float *beta,
                              const float *mean, const float *var, float eps, float *y);
    void (*bn_relu_bwd_train)(incv3_dims d, const float *x, const float *y, const float *dy, const float *gamma,
                              const float *mean, const float *var, float eps, float *dx, float *dgamma,
                              float *dbeta, int accumulate);

    void (*relu_fwd)(size_t count, const float *x, float *y);
    void (*relu_bwd)(size_t count, const float *y, const float *dy, float *dx, int accumulate);

    void (*maxpool_fwd)(const incv3_pool_shape *s, const float *x, float *y);
    void (*maxpool_bwd)(const incv3_pool_shape *s, const float *x, const float *dy, float *dx, int accumulate);
    void (*avgpool_fwd)(const incv3_pool_shape *s, const float *x, float *y);
    void (*avgpool_bwd)(const incv3_pool_shape *s, const float *dy, float *dx, int accumulate);

    /* C (m x n) = (accumulate ? C : 0) + op(A) op(B), as gemm_f32_6x16__avx2. */
    void (*gemm)(int m, int n, int k, const float *a, int lda, int a_trans, const float *b, int ldb, int b_trans,
                 float *c, int ldc, int accumulate);
    void (*linear_fwd)(int n, int in, int out, const float *x, const float *w, const float *b, float *y);
    void (*linear_bwd_data)(int n, int in, int out, const float *dy, const float *w, float *dx, int accumulate);
    void (*linear_bwd_weights)(int n, int in, int out, const float *x, const float *dy, float *dw, float *db);

    void (*adamw)(size_t count, float *param, const float *grad, float *exp_avg, float *exp_avg_sq, float lr,
                  float beta1, float beta2, float eps, float weight_decay, int64_t step);
} incv3_kernel_set;

/* The set of an ISA, or NULL when it is not compiled into this build. Whether the CPU runs it is
 * incv3_isa_available()'s answer. */
const incv3_kernel_set *incv3_kernel_set_for(incv3_isa isa);

#endif
