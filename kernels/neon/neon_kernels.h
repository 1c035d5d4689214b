/* NEON (AArch64 ASIMD) kernels of the fast path, the counterparts of avx2/avx2_kernels.h with the same
 * contracts and argument lists. They work on the blocked layouts of layout/reorder.h (NCHW8c activations,
 * OIhw8i8o weights); 8 channels are two float32x4_t. Results do not depend on the OpenMP thread count. */
#ifndef INCV3_NEON_KERNELS_H
#define INCV3_NEON_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "kernel_types.h"

/* Direct convolution forward, no bias: y8c = conv(x8c, w8i8o) for any shape incv3_conv_shape_finish()
 * accepts; y8c is overwritten entirely, its padding channels with 0 (when x is finite). As
 * conv_fwd_f32_direct__avx2. No alignment is required of the pointers. */
void conv_fwd_f32_direct__neon(const incv3_conv_shape *s, const float *x8c, const float *w8i8o, float *y8c);

/* Direct convolution backward-data, no bias: dx8c = transposed conv(dy8c, w8i8o), any stride and padding.
 * accumulate 0 overwrites dx8c entirely (padding channels with 0 when dy is finite), 1 adds to it (padding
 * channels keep their values). As conv_bwd_data_f32_direct__avx2; allocates per-call scratch. */
void conv_bwd_data_f32_direct__neon(const incv3_conv_shape *s, const float *dy8c, const float *w8i8o, float *dx8c,
                                    int accumulate);

/* Direct convolution backward-weights, no bias: dw (OIHW) = sum over n, oh, ow of dy x x, overwritten;
 * padding channels of x8c and dy8c do not affect it. Sums in float per row
 * chunk in an order fixed by the shape, as conv_bwd_weights_f32_direct__avx2 (same chunking and work
 * split), so results are bitwise the same for any thread count. */
void conv_bwd_weights_f32_direct__neon(const incv3_conv_shape *s, const float *x8c, const float *dy8c, float *dw);

/* AdamW step over count parameters, as adamw_f32__avx2 (torch.optim.AdamW; step is 1-based, after this
 * update). Float arithmetic per element. */
void adamw_f32__neon(size_t count, float *param, const float *grad, float *exp_avg, float *exp_avg_sq, float lr,
                     float beta1, float beta2, float eps, float weight_decay, int64_t step);

#endif
