/* AVX2+FMA kernels of the fast path. They work on the blocked layouts of layout/reorder.h (NCHW8c
 * activations, OIhw8i8o weights) and are compiled with -mavx2 -mfma into their own static library: call
 * them only when incv3_cpu_has_avx2_fma() says so. Results do not depend on the OpenMP thread count. */
#ifndef INCV3_AVX2_KERNELS_H
#define INCV3_AVX2_KERNELS_H

#include <stdint.h>

#include "kernel_types.h"

/* Direct convolution forward, no bias: y8c = conv(x8c, w8i8o) for any shape incv3_conv_shape_finish()
 * accepts. x8c is n x ceil(c/8) x h x w x 8 with zero padding channels, w8i8o is OIhw8i8o with zero
 * padding; y8c (n x ceil(k/8) x oh x ow x 8) is overwritten entirely, its padding channels with 0 (when x
 * is finite). No alignment is required of the pointers. */
void conv_fwd_f32_direct__avx2(const incv3_conv_shape *s, const float *x8c, const float *w8i8o, float *y8c);

/* Direct convolution backward-data, no bias: dx8c = transposed conv(dy8c, w8i8o) for any shape
 * incv3_conv_shape_finish() accepts (any stride and padding). dy8c is n x ceil(k/8) x oh x ow x 8, w8i8o is
 * OIhw8i8o with zero padding; dx8c (n x ceil(c/8) x h x w x 8) is overwritten entirely when accumulate is 0
 * (its padding channels with 0 when dy is finite), or added to when accumulate is 1 (its padding channels
 * keep their values). Allocates per-call scratch (transposed weights, per-thread border copies). No
 * alignment is required of the pointers. */
void conv_bwd_data_f32_direct__avx2(const incv3_conv_shape *s, const float *dy8c, const float *w8i8o, float *dx8c,
                                    int accumulate);

/* Direct convolution backward-weights, no bias: dw = sum over n, oh, ow of dy x x for any shape
 * incv3_conv_shape_finish() accepts. x8c is n x ceil(c/8) x h x w x 8, dy8c is n x ceil(k/8) x oh x ow x 8
 * (their padding channels do not affect the result); dw (OIHW, k x c x kh x kw) is overwritten. Sums in
 * float per row chunk in an order fixed by the shape, so results are bitwise the same for any thread
 * count. Allocates per-call scratch: the OIhw8i8o blocks it accumulates (and, for small shapes, per-segment
 * partial sums over n). No alignment is required of the pointers. */
void conv_bwd_weights_f32_direct__avx2(const incv3_conv_shape *s, const float *x8c, const float *dy8c, float *dw);

/* AdamW step over count parameters (torch.optim.AdamW's algorithm; see adamw_f32_ref__scalar). step is
 * the 1-based step count after this update. Float arithmetic per element. */
void adamw_f32__avx2(size_t count, float *param, const float *grad, float *exp_avg, float *exp_avg_sq, float lr,
                     float beta1, float beta2, float eps, float weight_decay, int64_t step);

#endif
