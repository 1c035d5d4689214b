/* Blocked direct convolution forward, AVX2+FMA, after oneDNN's jit_avx2_conv_fwd_kernel_f32.
 *
 * Work split: one OpenMP iteration is (image, pair of 8-channel output blocks, output row); every output
 * element belongs to exactly one iteration and is summed in an order fixed by the shape alone, so results
 * are bitwise the same for any thread count.
 *
 * Within a row, output columns whose taps all land inside the input ("interior") run the register-blocked
 * strip kernel of conv_strip_avx2.h. Taps that fall into
 * vertical padding are removed by clipping the kernel-row range of the whole row (no per-tap test).
 * Columns whose taps reach into horizontal padding run the same strip kernel on a small per-thread copy of
 * their input columns with the padding materialized as zeros, so the strip kernel carries no branch in its
 * inner loops and border pixels still run at strip speed (a per-pixel path with clipped tap ranges was
 * load- and latency-bound and cost 15% on the 1x7 layers, whose 17-wide rows have 6 border pixels).
 *
 * Input-channel blocks are processed in chunks sized so that the weights of a chunk stay in L1 while the
 * strips of the row sweep over it; between chunks the partial sums go through y.
 *
 * The driver is common/conv_fwd_direct_driver.h, shared by the ISAs; this file sets its
 * parameters and the strip kernels it calls (conv_strip_avx2.c).
 */
#include <stddef.h>

#include "avx2_fused.h"
#include "avx2_kernels.h"
#include "conv_strip_avx2.h"

/* Bytes of weights (for both output blocks) that one input-channel chunk may occupy; about half of a
 * 32 KiB L1D, leaving room for the input rows and the output strip. */
#ifndef CONV_AVX2_W_CHUNK_BYTES
#define CONV_AVX2_W_CHUNK_BYTES (16 * 1024)
#endif
#define CONV_FWD_W_CHUNK_BYTES CONV_AVX2_W_CHUNK_BYTES

#define KERNEL_ISA avx2
#define KERNEL_ISA_STR "avx2"

#include "common/conv_fwd_direct_driver.h"
