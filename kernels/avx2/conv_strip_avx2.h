/* The register-blocked strip micro-kernel shared by the AVX2 direct convolution passes (forward and
 * backward-data), and the helpers that feed it.
 *
 * A strip computes ur output pixels x up to 2 blocks of 8 output channels in ymm accumulators: for every
 * input-channel block of the chunk, every valid kernel row and every tap, each of the 8 input channels is
 * broadcast once and multiplied into both output blocks, so one weight load feeds ur FMAs. Both passes are
 * this loop with different strides: forward reads x with the convolution's stride and walks taps forward;
 * backward-data reads dy with stride 1 within a stride phase and walks taps backward. */
#ifndef INCV3_CONV_STRIP_AVX2_H
#define INCV3_CONV_STRIP_AVX2_H

#include <stddef.h>

#include "common/conv_strip.h"

#define CONV_STRIP_MAX_UR 12
/* Two output blocks use at most 6 pixels (12 accumulators + 2 weights + 1 broadcast = 15 ymm); one block
 * allows 12 pixels. */
#define CONV_STRIP_UR_B2 6
#define CONV_STRIP_UR_B1 12

/* Forward-tap strip kernels (tap q reads x + 8q, weights + 64q) for pixels x_pix floats apart:
 * x_pix_blocks 1 or 2 (x_pix = 8 or 16, compiled with the offsets as immediates) or 0 (any a->x_pix).
 * few_channels: only the first a->nci channels of each input block are read (inputs of fewer than 8
 * channels). Indexed [ur - 1], ur up to CONV_STRIP_UR_B1 (nob 1) or CONV_STRIP_UR_B2 (nob 2). */
const conv_strip_fn *conv_strip_table_avx2(int x_pix_blocks, int nob, int few_channels);
/* Reversed-tap strip kernels (tap q reads x - 8q, weights + q * a->w_tap), pixels 8 floats apart. */
const conv_strip_fn *conv_strip_table_reversed_avx2(int nob);

/* npix pixels from a->x / a->y, split into the fewest strips of at most ur_max, of near-equal width
 * (8 -> 4+4 rather than 6+2: a narrow strip has too few accumulators to hide the FMA latency). */
void conv_strip_run_avx2(conv_strip_args *a, int npix, int ur_max, const conv_strip_fn *fns);

/* Copies columns [col0, col0 + ncols) of nr rows and ncb channel blocks from src (block stride src_cb, row
 * stride src_row, both may be negative) into dst laid out [cb][row][col][8]; columns outside [0, width)
 * are padding and become zeros. Border pixels then run the same strip kernel on this small copy instead of
 * a slower per-tap-clipped path: one load and store per input float, against nq x 16 FMAs that read it. */
void conv_strip_copy_cols_avx2(float *dst, const float *src, int ncb, int nr, int col0, int ncols, int width,
                               ptrdiff_t src_cb, ptrdiff_t src_row);

/* Sets `count` pixels of 8 floats, `step` floats apart, to zero. */
void conv_strip_zero_pixels_avx2(float *y, int count, size_t step);

#endif
