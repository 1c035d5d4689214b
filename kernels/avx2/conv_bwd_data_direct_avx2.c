/* Blocked direct convolution backward-data (the transposed convolution), AVX2+FMA.
 *
 * dx[n][c][ih][iw] = sum over k, r, q of dy[n][k][oh][ow] * w[k][c][r][q], where oh*SH = ih + PT - r and
 * ow*SW = iw + PL - q. The kernel gathers: every dx element is summed by one OpenMP iteration, in an order
 * fixed by the shape alone, so results are bitwise the same for any thread count.
 *
 * Stride phases: the dx columns of one row with the same iw mod SW ("column phase") are reached by the same
 * kernel columns q = q0, q0 + SW, ... and neighbouring columns of a phase read neighbouring dy columns, so a
 * phase is a stride-1 correlation of dy with a subset of the taps; likewise a dx row is reached by the
 * kernel rows r = r0, r0 + SH, ... that keep oh inside [0, OH). With stride 1 there is one phase holding all
 * taps, i.e. the forward convolution of dy with the flipped kernel. Every multiply-add done is one of the
 * convolution's own, plus the zero-padding columns of border strips (no wasted stride-2 taps).
 *
 * One OpenMP iteration is (image, pair of 8-channel dx blocks, dx row). Within a row phase, a strip of ur
 * dx pixels x up to 2 dx blocks lives in ymm accumulators; each dy channel is broadcast once and multiplied
 * into both blocks. Weights are transposed once per call into a scratch [C/8][K/8][kh][kw][8 k][8 c], so the
 * 8 dx channels of a (k, tap) are one vector load. Kernel rows outside [0, OH) are clipped per dx row;
 * pixels whose taps reach dy columns outside [0, OW) run the same strip kernel on a small per-thread copy
 * of their dy columns with the padding as zeros (border regions widened to a full strip, as in the forward
 * kernel), so the strip kernel has no branch and border pixels run at strip speed.
 * dy channel blocks are processed in chunks whose weights stay in L1 while the strips sweep the row.
 *
 * The driver is common/conv_bwd_data_direct_driver.h, shared by the ISAs; this file sets its
 * parameters and the strip kernels it calls (conv_strip_avx2.c).
 */
#include <stddef.h>

#include "avx2_kernels.h"
#include "conv_strip_avx2.h"

#ifndef CONV_BWD_AVX2_W_CHUNK_BYTES
#define CONV_BWD_AVX2_W_CHUNK_BYTES (16 * 1024)
#endif
#define CONV_BWD_W_CHUNK_BYTES CONV_BWD_AVX2_W_CHUNK_BYTES

#define KERNEL_ISA avx2
#define KERNEL_ISA_STR "avx2"

#include "common/conv_bwd_data_direct_driver.h"
