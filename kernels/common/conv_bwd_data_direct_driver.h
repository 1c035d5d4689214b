/* The ISA-independent driver of the blocked direct convolution backward-data (the method:
 * avx2/conv_bwd_data_direct_avx2.c): the weight transpose, the OpenMP loop over (image, dx block pair, dx
 * row), the stride phases, the dy-channel chunks, the clipping of kernel rows, the border columns through
 * a zero-padded copy, and the strip split. Shared so that the work split and the summation order are the
 * same on every ISA.
 *
 * The including file defines KERNEL_ISA and KERNEL_ISA_STR (common/isa_name.h) and
 * CONV_BWD_W_CHUNK_BYTES, and includes its conv_strip_<isa>.h (the reversed-tap strip kernels and the
 * widths CONV_STRIP_UR_B1 / _B2) and <isa>_kernels.h first. It defines conv_bwd_data_f32_direct__<isa>.
 */
#ifndef INCV3_CONV_BWD_DATA_DIRECT_DRIVER_H
#define INCV3_CONV_BWD_DATA_DIRECT_DRIVER_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/conv_strip.h"
#include "common/isa_name.h"
#include "alloc.h"

#define BLK CONV_STRIP_BLK


static void *xmalloc_floats(size_t count)
{
    return incv3_mem_must(count * sizeof(float), 0, "the scratch of conv_bwd_data_f32_direct__" KERNEL_ISA_STR);
}

void ISA_NAME(conv_bwd_data_f32_direct__)(const incv3_conv_shape *s, const float *dy8c, const float *w8i8o, float *dx8c,
                                    int accumulate)
{
    const int N = s->n, H = s->h, W = s->w, KH = s->kh, KW = s->kw;
    const int SH = s->stride_h, SW = s->stride_w, PT = s->pad_top, PL = s->pad_left;
    const int OH = s->oh, OW = s->ow;
    const int CB = (s->c + BLK - 1) / BLK, KB = (s->k + BLK - 1) / BLK;
    const int CBP = (CB + 1) / 2;
    const size_t tap = (size_t)BLK * BLK;

    /* Transposed weights wt[cb][kb][r][q][8 k][8 c] = w[kb][cb][r][q][8 c][8 k]. */
    const size_t wt_cb = (size_t)KH * KW * tap, wt_ob = (size_t)KB * wt_cb;
    float *wt = xmalloc_floats((size_t)CB * wt_ob);

    const size_t y_row = (size_t)OW * BLK, y_cb = (size_t)OH * y_row, y_img = (size_t)KB * y_cb;
    const size_t x_row = (size_t)W * BLK, x_cb = (size_t)H * x_row, x_img = (size_t)CB * x_cb;

    size_t w_bytes_per_kb = 2 * wt_cb * sizeof(float);
    int kb_chunk = (int)(CONV_BWD_W_CHUNK_BYTES / w_bytes_per_kb);
    if (kb_chunk < 1)
        kb_chunk = 1;
    if (kb_chunk > KB)
        kb_chunk = KB;
    /* Border strips read a per-thread copy of their dy columns with the padding as zeros. */
    const size_t scratch_floats = (size_t)kb_chunk * KH * ((size_t)W + KW) * BLK;

#pragma omp parallel
    {
        float *scratch = xmalloc_floats(scratch_floats);
#pragma omp for collapse(2) schedule(static)
        for (int cb = 0; cb < CB; cb++) {
            for (int kb = 0; kb < KB; kb++) {
                const float *src = w8i8o + ((size_t)kb * CB + cb) * wt_cb;
                float *dst = wt + (size_t)cb * wt_ob + (size_t)kb * wt_cb;
                for (int t = 0; t < KH * KW; t++)
                    for (int i = 0; i < BLK; i++)
                        for (int o = 0; o < BLK; o++)
                            dst[t * tap + o * BLK + i] = src[t * tap + i * BLK + o];
            }
        }
#pragma omp for collapse(3) schedule(static)
        for (int n = 0; n < N; n++) {
            for (int cbp = 0; cbp < CBP; cbp++) {
                for (int ih = 0; ih < H; ih++) {
                    const int cb = 2 * cbp;
                    const int nob = CB - cb >= 2 ? 2 : 1;
                    const int ur_max = nob == 2 ? CONV_STRIP_UR_B2 : CONV_STRIP_UR_B1;
                    float *dxrow = dx8c + (size_t)n * x_img + (size_t)cb * x_cb + (size_t)ih * x_row;

                    /* Valid kernel rows r = rf + t*SH, t in [t0, t1]; row r reads dy row ohf - t. */
                    const int rf = (ih + PT) % SH, ohf = (ih + PT - rf) / SH;
                    int t0 = ohf - (OH - 1) > 0 ? ohf - (OH - 1) : 0;
                    int t1 = rf < KH ? (KH - 1 - rf) / SH : -1;
                    if (t1 > ohf)
                        t1 = ohf;
                    const int nr = t1 - t0 + 1;
                    if (nr <= 0) {
                        if (!accumulate)
                            for (int b = 0; b < nob; b++)
                                ISA_NAME(conv_strip_zero_pixels_)(dxrow + (size_t)b * x_cb, W, BLK);
                        continue;
                    }
                    const int r_start = rf + t0 * SH, oh_start = ohf - t0;

                    conv_strip_args a;
                    a.nr = nr;
                    a.x_pix = BLK;
                    a.w_cb = (ptrdiff_t)wt_cb;
                    a.w_row = (ptrdiff_t)SH * KW * (ptrdiff_t)tap;
                    a.w_tap = (ptrdiff_t)SW * (ptrdiff_t)tap;
                    a.w_ob = wt_ob;
                    a.y_pix = (size_t)SW * BLK;
                    a.y_ob = x_cb;
                    const conv_strip_fn *fns = ISA_NAME(conv_strip_table_reversed_)(nob);

                    for (int ph = 0; ph < SW && ph < W; ph++) {
                        const int npix = (W - 1 - ph) / SW + 1;
                        const int q0 = (ph + PL) % SW;
                        float *dxph = dxrow + (size_t)ph * BLK;
                        if (q0 >= KW) { /* no kernel column reaches this phase */
                            if (!accumulate)
                                for (int b = 0; b < nob; b++)
                                    ISA_NAME(conv_strip_zero_pixels_)(dxph + (size_t)b * x_cb, npix, a.y_pix);
                            continue;
                        }
                        a.nq = (KW - 1 - q0) / SW + 1;
                        const int nq = a.nq;
                        const int base = (ph + PL - q0) / SW; /* dy column of pixel 0's first tap */
                        /* Interior pixels [j_lo, j_hi): all taps read dy columns inside [0, OW). Border
                         * regions are widened to a full strip as in the forward kernel. */
                        int j_lo = nq - 1 - base > 0 ? nq - 1 - base : 0;
                        int j_hi = OW - base < npix ? OW - base : npix;
                        int lb, rb;
                        if (j_hi <= j_lo) {
                            lb = rb = npix;
                        } else {
                            lb = j_lo > 0 ? (j_lo > ur_max ? j_lo : ur_max) : 0;
                            rb = j_hi < npix ? (npix - j_hi > ur_max ? j_hi : npix - ur_max) : npix;
                            if (lb > npix || rb < 0 || lb > rb)
                                lb = rb = npix;
                        }
                        const float *xph = dy8c + (size_t)n * y_img + (size_t)oh_start * y_row;
                        const float *wph = wt + (size_t)cb * wt_ob + ((size_t)r_start * KW + q0) * tap;
                        for (int kb0 = 0; kb0 < KB; kb0 += kb_chunk) {
                            a.ncb = KB - kb0 < kb_chunk ? KB - kb0 : kb_chunk;
                            a.init = kb0 == 0 && !accumulate;
                            a.w = wph + (size_t)kb0 * wt_cb;
                            const float *xchunk = xph + (size_t)kb0 * y_cb;
                            const int reg_lo[4] = {0, lb, rb, npix};
                            for (int reg = 0; reg < 3; reg++) {
                                const int np = reg_lo[reg + 1] - reg_lo[reg];
                                if (np <= 0)
                                    continue;
                                const int c0 = base + reg_lo[reg]; /* dy column of the first pixel's first tap */
                                a.y = dxph + (size_t)reg_lo[reg] * a.y_pix;
                                if (reg == 1) {
                                    a.x = xchunk + (ptrdiff_t)c0 * BLK;
                                    a.x_cb = (ptrdiff_t)y_cb;
                                    a.x_row = -(ptrdiff_t)y_row;
                                } else {
                                    /* scratch [cb][valid row t][col], col j = dy column c0 - (nq-1) + j */
                                    const int ncols = np + nq - 1;
                                    ISA_NAME(conv_strip_copy_cols_)(scratch, xchunk, a.ncb, nr, c0 - (nq - 1), ncols,
                                                                    OW, (ptrdiff_t)y_cb, -(ptrdiff_t)y_row);
                                    a.x = scratch + (size_t)(nq - 1) * BLK;
                                    a.x_cb = (ptrdiff_t)nr * ncols * BLK;
                                    a.x_row = (ptrdiff_t)ncols * BLK;
                                }
                                ISA_NAME(conv_strip_run_)(&a, np, ur_max, fns);
                            }
                        }
                    }
                }
            }
        }
        free(scratch);
    }
    free(wt);
}

#endif
