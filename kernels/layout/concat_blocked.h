/* Channel concatenation in the blocked NCHW8c layout: a tensor of src_c channels fills channels
 * [offset, offset + src_c) of a tensor of dst_c channels (both n x h x w). Offsets and counts need not be
 * multiples of 8 (the scaled models concatenate 52-channel branches): whole blocks are copied as vectors
 * where the slice is block-aligned, single lanes elsewhere. Portable C. */
#ifndef INCV3_CONCAT_BLOCKED_H
#define INCV3_CONCAT_BLOCKED_H

#include "kernel_types.h"

/* dst slice <- src. Padding lanes of dst past dst_c are left as they are (zero when dst was zeroed or
 * fully written by earlier slices). */
void concat_slice_fwd_f32_nchw8c(int n, int h, int w, const float *src, int src_c, float *dst, int dst_c,
                                 int offset);
/* dsrc (src_c channels) <- (accumulate ? dsrc + : ) the slice of ddst. Padding lanes of dsrc are zero. */
void concat_slice_bwd_f32_nchw8c(int n, int h, int w, const float *ddst, int dst_c, int offset, float *dsrc,
                                 int src_c, int accumulate);

#endif
