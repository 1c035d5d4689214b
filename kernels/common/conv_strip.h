/* The interface of the strip micro-kernels (avx2/conv_strip_avx2.h, neon/conv_strip_neon.h): the
 * arguments of one strip call, the same on every ISA, so that the direct convolution drivers
 * (common/conv_fwd_direct_driver.h, common/conv_bwd_data_direct_driver.h) are written once. Each ISA's
 * header adds its strip widths (CONV_STRIP_UR_B1 / _B2, from its register count) and its tables. */
#ifndef INCV3_CONV_STRIP_H
#define INCV3_CONV_STRIP_H

#include <stddef.h>

#define CONV_STRIP_BLK 8

typedef struct conv_strip_args {
    const float *x; /* input at (first chunk block, first valid kernel row, pixel 0's first tap) */
    const float *w; /* weights at (output block, first chunk block, first valid kernel row, first tap) */
    float *y;       /* output at (output block, row, pixel 0) */
    int ncb;        /* input-channel blocks in this chunk */
    int nr;         /* valid kernel rows */
    int nq;         /* taps per kernel row */
    int nci;        /* input channels per block, for the few-channel kernels (1..8) */
    ptrdiff_t x_cb, x_row, x_pix; /* floats between input blocks / valid rows / pixels */
    ptrdiff_t w_cb, w_row;        /* floats between weight input blocks / valid rows */
    ptrdiff_t w_tap;              /* floats between weight taps (reversed-tap kernels only) */
    size_t w_ob;                  /* floats between the two output blocks of the weights */
    size_t y_pix, y_ob;           /* floats between output pixels (8 for forward taps) / output blocks */
    int init;                     /* 1: start from zero, 0: add to y */
} conv_strip_args;

typedef void (*conv_strip_fn)(const conv_strip_args *a);

#endif
