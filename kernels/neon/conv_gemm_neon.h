/* Convolutions with a single output pixel as GEMMs, NEON (common/conv_gemm_driver.h explains the
 * method), in the blocked layouts of layout/reorder.h. Call them only when the CPU has Advanced SIMD (every AArch64 CPU). They serve any kernel
 * size, stride and padding whose output is 1x1; the OIHW weights are packed once per change (pack) into a
 * Kp x D matrix, D = ceil(c/8) * 8 * h * w, except where that matrix is the weights as they are (1x1
 * kernels on 1x1 maps, channels multiples of 8; weights_floats 0). Same contracts as the direct kernels of neon_kernels.h and
 * neon_fused.h; results do not depend on the thread count.
 *
 *   int conv_gemm_supports__neon(s)                          1 when s->oh == s->ow == 1
 *   size_t conv_gemm_weights_floats__neon(s)                 the packed weights' size, both passes (0: none)
 *   void conv_gemm_pack__neon(s, w, p)                       OIHW weights -> p
 */
#ifndef INCV3_CONV_GEMM_NEON_H
#define INCV3_CONV_GEMM_NEON_H

#include <stddef.h>

#include "common/conv_gemm_decl.h"
#include "kernel_types.h"

INCV3_CONV_GEMM_DECLARE(gemm, neon)

/* Convolutions with more than one output pixel as im2col GEMMs (common/conv_gemm_im2col_driver.h), where
 * the gathered windows take at most 64 MiB: weights packed into Kp x (Cp * kh * kw); the same contracts;
 * scratch_floats is what one call allocates. */
INCV3_CONV_GEMM_DECLARE(gemm_im2col, neon)
size_t conv_gemm_im2col_scratch_floats__neon(const incv3_conv_shape *s);

/* 1 x r and r x 1 convolutions over lines of at most 8 pixels as GEMMs with the Toeplitz matrix of the
 * weights along the line (common/conv_gemm_toeplitz_driver.h); the same contracts. */
INCV3_CONV_GEMM_DECLARE(gemm_toeplitz, neon)
size_t conv_gemm_toeplitz_scratch_floats__neon(const incv3_conv_shape *s);

#endif
