/* The ISA-independent driver of the blocked direct convolution forward (the method:
 * avx2/conv_fwd_direct_avx2.c): the OpenMP loop over (image, output block pair, output row), the
 * input-channel chunks, the clipping of kernel rows, the interior and border column ranges (the border
 * ones through a zero-padded copy), the strip split, and the per-row hook of the fused kernels. Shared so
 * that the work split and the summation order are the same on every ISA.
 *
 * The including file defines KERNEL_ISA and KERNEL_ISA_STR (common/isa_name.h) and
 * CONV_FWD_W_CHUNK_BYTES, and includes its conv_strip_<isa>.h (the strip kernels and their widths
 * CONV_STRIP_UR_B1 / _B2), its <isa>_kernels.h and <isa>_fused.h (conv_fwd_row_hook) first. It defines
 * conv_fwd_f32_direct__<isa> and conv_fwd_f32_direct_hooked__<isa>.
 */
#ifndef INCV3_CONV_FWD_DIRECT_DRIVER_H
#define INCV3_CONV_FWD_DIRECT_DRIVER_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/conv_strip.h"
#include "common/isa_name.h"
#include "alloc.h"

#define BLK CONV_STRIP_BLK


/* The driver, run by every thread of the caller's parallel region (its loop is an orphaned `omp for`).
 * `hook`, when not NULL, is called once per (image, block pair, output row) after the row's last chunk
 * has written its final values (see avx2/avx2_fused.h). Each entry point opens its own parallel region and
 * inlines this with its own hook, so the plain convolution's code carries no hook at all. */
static inline __attribute__((always_inline)) void conv_fwd_driver(const incv3_conv_shape *s, const float *x8c,
                                                                  const float *w8i8o, float *y8c,
                                                                  conv_fwd_row_hook hook, void *hook_ctx)
{
    const int N = s->n, H = s->h, W = s->w, KH = s->kh, KW = s->kw;
    const int SH = s->stride_h, SW = s->stride_w, PT = s->pad_top, PL = s->pad_left;
    const int OH = s->oh, OW = s->ow;
    const int CB = (s->c + BLK - 1) / BLK, KB = (s->k + BLK - 1) / BLK;
    const int KBP = (KB + 1) / 2;

    const size_t x_row = (size_t)W * BLK, x_cb = (size_t)H * x_row, x_img = (size_t)CB * x_cb;
    const size_t w_cb = (size_t)KH * KW * BLK * BLK, w_ob = (size_t)CB * w_cb;
    const size_t y_row = (size_t)OW * BLK, y_ob = (size_t)OH * y_row, y_img = (size_t)KB * y_ob;

    /* Interior columns [ow_lo, ow_hi): every kernel column reads inside [0, W). */
    int ow_lo = (PL + SW - 1) / SW;
    int ow_hi = W - KW + PL < 0 ? 0 : (W - KW + PL) / SW + 1;
    if (ow_lo > OW)
        ow_lo = OW;
    if (ow_hi > OW)
        ow_hi = OW;
    if (ow_hi < ow_lo)
        ow_hi = ow_lo;

    const int x_pix_blocks = SW <= 2 ? SW : 0;
    const size_t w_bytes_per_cb = 2 * w_cb * sizeof(float);
    int cb_chunk = (int)(CONV_FWD_W_CHUNK_BYTES / w_bytes_per_cb);
    if (cb_chunk < 1)
        cb_chunk = 1;
    if (cb_chunk > CB)
        cb_chunk = CB;

    /* A border region may grow to the whole row (see below), so the scratch is sized for OW pixels. */
    const size_t scratch_floats =
        ow_lo > 0 || ow_hi < OW ? (size_t)cb_chunk * KH * ((size_t)(OW - 1) * SW + KW) * BLK : 0;

    {
        float *scratch = NULL;
        if (scratch_floats)
            scratch = incv3_mem_must(scratch_floats * sizeof *scratch, 0,
                                     "the scratch of conv_fwd_f32_direct__" KERNEL_ISA_STR);
#pragma omp for collapse(3) schedule(static)
        for (int n = 0; n < N; n++) {
            for (int kbp = 0; kbp < KBP; kbp++) {
                for (int oh = 0; oh < OH; oh++) {
                    const int kb = 2 * kbp;
                    const int nob = KB - kb >= 2 ? 2 : 1;
                    const int ur_max = nob == 2 ? CONV_STRIP_UR_B2 : CONV_STRIP_UR_B1;
                    float *yrow = y8c + (size_t)n * y_img + (size_t)kb * y_ob + (size_t)oh * y_row;

                    const int ih0 = oh * SH - PT;
                    const int r0 = ih0 < 0 ? -ih0 : 0;
                    const int r1 = H - ih0 < KH ? H - ih0 : KH;
                    const int nr = r1 - r0;
                    if (nr <= 0) { /* the whole window lies in vertical padding */
                        for (int b = 0; b < nob; b++)
                            ISA_NAME(conv_strip_zero_pixels_)(yrow + (size_t)b * y_ob, OW, BLK);
                        if (hook)
                            hook(hook_ctx, n, kbp, oh, nob, yrow, y_ob);
                        continue;
                    }
                    const float *xrow = x8c + (size_t)n * x_img + (size_t)(ih0 + r0) * x_row;
                    const float *wblk = w8i8o + (size_t)kb * w_ob + (size_t)r0 * KW * BLK * BLK;

                    const conv_strip_fn *fns = ISA_NAME(conv_strip_table_)(x_pix_blocks, nob, s->c < BLK);
                    /* Row regions: [0, lb) left border, [lb, rb) interior, [rb, OW) right border. A border
                     * region is widened to a full strip taken from the interior, so that its one or two
                     * padded pixels do not run as a latency-bound strip of their own; when the widened
                     * borders meet, the whole row runs from the scratch copy. */
                    int lb = ow_lo > 0 ? (ow_lo > ur_max ? ow_lo : ur_max) : 0;
                    int rb = ow_hi < OW ? (OW - ow_hi > ur_max ? ow_hi : OW - ur_max) : OW;
                    if (lb > OW || rb < 0 || lb > rb)
                        lb = rb = OW;
                    conv_strip_args a;
                    a.nr = nr;
                    a.nq = KW;
                    a.nci = s->c < BLK ? s->c : BLK;
                    a.x_pix = (ptrdiff_t)SW * BLK;
                    a.w_cb = (ptrdiff_t)w_cb;
                    a.w_row = (ptrdiff_t)KW * BLK * BLK;
                    a.w_ob = w_ob;
                    a.y_pix = BLK;
                    a.y_ob = y_ob;
                    for (int cb0 = 0; cb0 < CB; cb0 += cb_chunk) {
                        a.ncb = CB - cb0 < cb_chunk ? CB - cb0 : cb_chunk;
                        a.init = cb0 == 0;
                        a.w = wblk + (size_t)cb0 * w_cb;
                        const float *xchunk = xrow + (size_t)cb0 * x_cb;
                        /* Regions of the row: left border, interior, right border. */
                        const int reg_lo[4] = {0, lb, rb, OW};
                        for (int reg = 0; reg < 3; reg++) {
                            const int npix = reg_lo[reg + 1] - reg_lo[reg];
                            if (npix <= 0)
                                continue;
                            const int col0 = reg_lo[reg] * SW - PL;
                            a.y = yrow + (size_t)reg_lo[reg] * BLK;
                            if (reg == 1) {
                                a.x = xchunk + (size_t)col0 * BLK;
                                a.x_cb = (ptrdiff_t)x_cb;
                                a.x_row = (ptrdiff_t)x_row;
                            } else {
                                const int ncols = (npix - 1) * SW + KW;
                                ISA_NAME(conv_strip_copy_cols_)(scratch, xchunk, a.ncb, nr, col0, ncols, W,
                                                                (ptrdiff_t)x_cb, (ptrdiff_t)x_row);
                                a.x = scratch;
                                a.x_cb = (ptrdiff_t)nr * ncols * BLK;
                                a.x_row = (ptrdiff_t)ncols * BLK;
                            }
                            ISA_NAME(conv_strip_run_)(&a, npix, ur_max, fns);
                        }
                    }
                    if (hook)
                        hook(hook_ctx, n, kbp, oh, nob, yrow, y_ob);
                }
            }
        }
        free(scratch);
    }
}

void ISA_NAME(conv_fwd_f32_direct__)(const incv3_conv_shape *s, const float *x8c, const float *w8i8o, float *y8c)
{
#pragma omp parallel
    conv_fwd_driver(s, x8c, w8i8o, y8c, NULL, NULL);
}

void ISA_NAME(conv_fwd_f32_direct_hooked__)(const incv3_conv_shape *s, const float *x8c, const float *w8i8o, float *y8c,
                                      conv_fwd_row_hook hook, void *hook_ctx)
{
#pragma omp parallel
    conv_fwd_driver(s, x8c, w8i8o, y8c, hook, hook_ctx);
}

#endif
