/* Blocked direct convolution forward, NEON; the same algorithm and work split as conv_fwd_direct_avx2.c
 * (after oneDNN's jit_avx2_conv_fwd_kernel_f32), with the strip micro-kernel of conv_strip_neon.h.
 *
 * Work split: one OpenMP iteration is (image, pair of 8-channel output blocks, output row); every output
 * element belongs to exactly one iteration and is summed in an order fixed by the shape alone (the strip
 * split of a row depends on its width and the strip width only), so results are bitwise the same for any
 * thread count.
 *
 * Within a row, output columns whose taps all land inside the input ("interior") run the strip kernel
 * directly on x. Taps that fall into vertical padding are removed by clipping the kernel-row range of the
 * whole row. Columns whose taps reach into horizontal padding run the same strip kernel on a small
 * per-thread copy of their input columns with the padding materialized as zeros, so the strip kernel
 * carries no branch in its inner loops and border pixels still run at strip speed.
 *
 * Input-channel blocks are processed in chunks sized so that the weights of a chunk stay in L1 while the
 * strips of the row sweep over it; between chunks the partial sums go through y.
 *
 * The driver is common/conv_fwd_direct_driver.h, shared by the ISAs; this file sets its
 * parameters and the strip kernels it calls (conv_strip_neon.c).
 */
#include <stddef.h>

#include "neon/neon_fused.h"
#include "neon/neon_kernels.h"
#include "neon/conv_strip_neon.h"

/* Bytes of weights (for both output blocks) that one input-channel chunk may occupy; about half of the
 * smallest common AArch64 L1D (32 KiB on Cortex-A7x and Neoverse N1; 64 KiB on Neoverse V1/V2, Apple
 * cores), leaving room for the input rows and the output strip. The chunking is part of the summation
 * order, so it is a constant, never a run-time cache query. */
#ifndef CONV_NEON_W_CHUNK_BYTES
#define CONV_NEON_W_CHUNK_BYTES (16 * 1024)
#endif
#define CONV_FWD_W_CHUNK_BYTES CONV_NEON_W_CHUNK_BYTES

#define KERNEL_ISA neon
#define KERNEL_ISA_STR "neon"

#include "common/conv_fwd_direct_driver.h"
