/* The ISA-independent part of the strip micro-kernels' module (avx2/conv_strip_avx2.c,
 * neon/conv_strip_neon.c): the table lookups, the split of a pixel range into strips, and the zero-padded
 * column copies and zeroed pixels the drivers' borders use. The including file defines KERNEL_ISA
 * (common/isa_name.h), MAX_UR, strip_table[7][2][MAX_UR] (the strips: see the AVX2 file),
 * strip_pix_zero(d) and strip_pix_copy(d, s) (one pixel of 8 floats) first; the functions are those
 * declared in its conv_strip_<isa>.h.
 */
#ifndef INCV3_CONV_STRIP_DRIVER_H
#define INCV3_CONV_STRIP_DRIVER_H

#include <stddef.h>

#include "common/conv_strip.h"
#include "common/isa_name.h"

const conv_strip_fn *ISA_NAME(conv_strip_table_)(int x_pix_blocks, int nob, int few_channels)
{
    const int v = x_pix_blocks >= 0 && x_pix_blocks <= 2 ? x_pix_blocks : 0;
    return strip_table[few_channels ? 4 + v : v][nob - 1];
}

const conv_strip_fn *ISA_NAME(conv_strip_table_reversed_)(int nob)
{
    return strip_table[3][nob - 1];
}

void ISA_NAME(conv_strip_run_)(conv_strip_args *a, int npix, int ur_max, const conv_strip_fn *fns)
{
    const float *x = a->x;
    float *y = a->y;
    const int nstrips = (npix + ur_max - 1) / ur_max;
    const int base = npix / nstrips, wider = npix % nstrips;
    for (int t = 0, p = 0; t < nstrips; t++) {
        const int ur = base + (t < wider);
        a->x = x + p * a->x_pix;
        a->y = y + (size_t)p * a->y_pix;
        fns[ur - 1](a);
        p += ur;
    }
    a->x = x;
    a->y = y;
}

void ISA_NAME(conv_strip_copy_cols_)(float *dst, const float *src, int ncb, int nr, int col0, int ncols, int width,
                               ptrdiff_t src_cb, ptrdiff_t src_row)
{
    /* [lo, hi): the columns inside the source; all-padding copies (huge pads) give lo == hi. */
    int lo = col0 < 0 ? -col0 : 0, hi = width - col0;
    if (lo > ncols)
        lo = ncols;
    if (hi > ncols)
        hi = ncols;
    if (hi < lo)
        hi = lo;
    for (int cb = 0; cb < ncb; cb++) {
        for (int r = 0; r < nr; r++) {
            float *d = dst + ((size_t)cb * nr + r) * ncols * BLK;
            const float *s = src + cb * src_cb + r * src_row;
            for (int j = 0; j < lo; j++)
                strip_pix_zero(d + (size_t)j * BLK);
            for (int j = lo; j < hi; j++)
                strip_pix_copy(d + (size_t)j * BLK, s + (ptrdiff_t)(col0 + j) * BLK);
            for (int j = hi; j < ncols; j++)
                strip_pix_zero(d + (size_t)j * BLK);
        }
    }
}

void ISA_NAME(conv_strip_zero_pixels_)(float *y, int count, size_t step)
{
    for (int p = 0; p < count; p++)
        strip_pix_zero(y + (size_t)p * step);
}

#endif
