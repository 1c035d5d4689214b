/* The interface between the backward-weights driver (common/conv_bwd_weights_direct_driver.h) and an
 * ISA's register tiles: one call sums, over nrows x npix output pixels of one tap, the products of NK
 * output blocks of dy with NI input channels of x into fresh accumulators, and adds them into dw. */
#ifndef INCV3_CONV_BWD_WEIGHTS_DIRECT_TILE_H
#define INCV3_CONV_BWD_WEIGHTS_DIRECT_TILE_H

#include <stddef.h>

#include "kernel_types.h"

#define BWW_BLK 8
#define BWW_TILE (BWW_BLK * BWW_BLK)

typedef struct bww_args {
    const float *x;  /* x at (first valid row, first valid column) of the tap, channel i0 */
    const float *dy; /* dy at (first output block, first valid row, first valid column) */
    float *dw;       /* dw tile of the first output block at this tap, channel i0 */
    int nrows, npix;
    ptrdiff_t x_row, x_pix, dy_row, dy_kb, dw_kb;
    int pf; /* 4 x 3 tile only: 1 = prefetch x one tap row further, 2 = also dy one row further */
} bww_args;

typedef void (*bww_fn)(const bww_args *a);

/* The tiles every ISA provides, indexed [NK - 1][NI - 1] in the driver's bww_table: NI at most 8 / 6 / 4 / 3
 * for NK 1 / 2 / 3 / 4 (the driver's channel chunks): the accumulators and the live dy vectors or
 * broadcasts within AVX2's 16 ymm registers; on NEON at most 24 accumulators + 2 x + 2 dy of the 32 q
 * registers. Each dw element is one accumulator lane whatever the
 * tile, so the tiles change the work per call, not the summation order. */
static const int bww_ni_max[4] = {8, 6, 4, 3};

#endif
