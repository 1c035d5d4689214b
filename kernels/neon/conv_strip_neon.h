/* The register-blocked strip micro-kernel shared by the NEON direct convolution passes (forward and
 * backward-data), and the helpers that feed it; the NEON counterpart of avx2/conv_strip_avx2.h.
 *
 * A strip computes ur output pixels x up to 2 blocks of 8 output channels (2 q registers per block) in
 * accumulators. For every input-channel block of the chunk, every valid kernel row and every tap, the strip
 * loads 4 input channels of each of its ur pixels into one q register, then for each of those 4 channels
 * loads the weight row (8 output channels per block) and multiplies it into every pixel with a by-lane FMA
 * (fmla v.4s, v.4s, v.s[lane]): one x load feeds 4 x nob x 2 FMAs and one weight load feeds ur FMAs, and no
 * broadcast is needed. Forward reads x with the convolution's stride and walks taps forward; backward-data
 * reads dy with stride 1 within a stride phase and walks taps backward. */
#ifndef INCV3_CONV_STRIP_NEON_H
#define INCV3_CONV_STRIP_NEON_H

#include <stddef.h>

#include "common/conv_strip.h"

#define CONV_STRIP_MAX_UR 10
/* AArch64 has 32 q registers. Two output blocks: 6 pixels x 2 blocks x 2 q = 24 accumulators + 6 x
 * vectors (4 channels of each pixel) + 2 weight halves in flight = 32. One block: 10 pixels x 2 q = 20
 * accumulators + 10 x vectors + 2 weights = 32. Both keep at least 20 independent FMA chains, enough to
 * cover a 4-cycle FMA latency on 4 FMA pipes. */
#define CONV_STRIP_UR_B2 6
#define CONV_STRIP_UR_B1 10

/* Forward-tap strip kernels (tap q reads x + 8q, weights + 64q) for pixels x_pix floats apart:
 * x_pix_blocks 1 or 2 (x_pix = 8 or 16, compiled as immediate offsets) or 0 (any a->x_pix).
 * few_channels: only the first a->nci channels of each input block are used (inputs of fewer than 8
 * channels). Indexed [ur - 1], ur up to CONV_STRIP_UR_B1 (nob 1) or CONV_STRIP_UR_B2 (nob 2). */
const conv_strip_fn *conv_strip_table_neon(int x_pix_blocks, int nob, int few_channels);
/* Reversed-tap strip kernels (tap q reads x - 8q, weights + q * a->w_tap), pixels 8 floats apart. */
const conv_strip_fn *conv_strip_table_reversed_neon(int nob);

/* npix pixels from a->x / a->y, split into the fewest strips of at most ur_max, of near-equal width (as
 * conv_strip_run_avx2). The split depends on npix and ur_max only, so on the shape only. */
void conv_strip_run_neon(conv_strip_args *a, int npix, int ur_max, const conv_strip_fn *fns);

/* Copies columns [col0, col0 + ncols) of nr rows and ncb channel blocks from src (block stride src_cb, row
 * stride src_row, both may be negative) into dst laid out [cb][row][col][8]; columns outside [0, width)
 * are padding and become zeros (as conv_strip_copy_cols_avx2: border pixels run the strip kernel on it). */
void conv_strip_copy_cols_neon(float *dst, const float *src, int ncb, int nr, int col0, int ncols, int width,
                               ptrdiff_t src_cb, ptrdiff_t src_row);

/* Sets `count` pixels of 8 floats, `step` floats apart, to zero. */
void conv_strip_zero_pixels_neon(float *y, int count, size_t step);

#endif
