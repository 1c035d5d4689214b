/* The ISA-independent driver of the blocked direct convolution backward-weights (the method:
 * avx2/conv_bwd_weights_direct_avx2.c): output-block groups, row and column chunks, the segments of the
 * reduction over n, the ownership blocks and the OpenMP loop over them, the clipping of each tap's pixel
 * range, and the call of the register tile for each (group, input channel chunk, tap). Shared so that the
 * chunking, and with it the summation order of every dw element, is the same on every ISA.
 *
 * The including file defines, after common/conv_bwd_weights_direct_tile.h: KERNEL_ISA and KERNEL_ISA_STR
 * (common/isa_name.h), the always-inline register tile bww_tile(a, NK, NI, PF) and
 * bww_sum_segments(dw, partial, count, ns) (dw += the partial sums of segments 1 .. ns - 1, in order).
 * It defines conv_bwd_weights_f32_direct__<isa>, which writes dw as OIHW (the registry's contract): the
 * register tiles accumulate OIhw8i8o blocks in scratch, reordered into dw at the end.
 */
#ifndef INCV3_CONV_BWD_WEIGHTS_DIRECT_DRIVER_H
#define INCV3_CONV_BWD_WEIGHTS_DIRECT_DRIVER_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "common/conv_bwd_weights_direct_tile.h"
#include "common/isa_name.h"
#include "alloc.h"
#include "layout/reorder.h"

/* Bytes of x and dy rows that one row chunk may cover (for up to 4 groups of 3 output blocks and 4 input
 * blocks); fixes the blocked summation, so it must depend on the shape only. */
#define BWW_CHUNK_BYTES (96 * 1024)
/* Independent work items wanted before the reduction over n is split (shape-only). */
#define BWW_MIN_ITEMS 64
/* Output pixels per column chunk for inputs of at most 3 channels (see the AVX2 file's comment). */
#define BWW_FIRST_COLS 32

/* The register tiles as functions, one per (NK, NI) of the table, from the ISA's
 * bww_tile(a, NK, NI, PF) (PF: the prefetch variant of the 4 x 3 tile, see bww_args.pf). */
#define BWW_DEF(NK, NI)                                                                                                \
    static void bww_tile_##NK##_##NI(const bww_args *a)                                                                \
    {                                                                                                                  \
        bww_tile(a, NK, NI, 0);                                                                                        \
    }
BWW_DEF(1, 1)
BWW_DEF(1, 2)
BWW_DEF(1, 3)
BWW_DEF(1, 4)
BWW_DEF(1, 5)
BWW_DEF(1, 6)
BWW_DEF(1, 7)
BWW_DEF(1, 8)
BWW_DEF(2, 1)
BWW_DEF(2, 2)
BWW_DEF(2, 3)
BWW_DEF(2, 4)
BWW_DEF(2, 5)
BWW_DEF(2, 6)
BWW_DEF(3, 1)
BWW_DEF(3, 2)
BWW_DEF(3, 3)
BWW_DEF(3, 4)
BWW_DEF(4, 1)
BWW_DEF(4, 2)
static void bww_tile_4_3(const bww_args *a)
{
    if (a->pf == 2)
        bww_tile(a, 4, 3, 2);
    else if (a->pf == 1)
        bww_tile(a, 4, 3, 1);
    else
        bww_tile(a, 4, 3, 0);
}

/* Indexed [NK - 1][NI - 1]; NI at most bww_ni_max[NK - 1] (common/conv_bwd_weights_direct_tile.h). */
static const bww_fn bww_table[4][8] = {
    {bww_tile_1_1, bww_tile_1_2, bww_tile_1_3, bww_tile_1_4, bww_tile_1_5, bww_tile_1_6, bww_tile_1_7, bww_tile_1_8},
    {bww_tile_2_1, bww_tile_2_2, bww_tile_2_3, bww_tile_2_4, bww_tile_2_5, bww_tile_2_6, NULL, NULL},
    {bww_tile_3_1, bww_tile_3_2, bww_tile_3_3, bww_tile_3_4, NULL, NULL, NULL, NULL},
    {bww_tile_4_1, bww_tile_4_2, bww_tile_4_3, NULL, NULL, NULL, NULL, NULL},
};

/* Output indices o in [0, out) whose input index o*stride - pad + t lies in [0, in): [*lo, *hi). */
static void bww_valid(int t, int pad, int stride, int in, int out, int *lo, int *hi)
{
    const int off = t - pad;
    int l = off >= 0 ? 0 : (-off + stride - 1) / stride;
    int h = in - 1 - off < 0 ? 0 : (in - 1 - off) / stride + 1;
    if (h > out)
        h = out;
    if (l > h)
        l = h;
    *lo = l;
    *hi = h;
}

static void *bww_malloc(size_t bytes)
{
    return incv3_mem_must(bytes, 0, "the scratch of conv_bwd_weights_f32_direct__" KERNEL_ISA_STR);
}

void ISA_NAME(conv_bwd_weights_f32_direct__)(const incv3_conv_shape *s, const float *x8c, const float *dy8c,
                                              float *dw)
{
    const int N = s->n, C = s->c, H = s->h, W = s->w, K = s->k, KH = s->kh, KW = s->kw;
    const int SH = s->stride_h, SW = s->stride_w, PT = s->pad_top, PL = s->pad_left;
    const int OH = s->oh, OW = s->ow;
    const int CB = (C + BWW_BLK - 1) / BWW_BLK, KB = (K + BWW_BLK - 1) / BWW_BLK;

    const size_t x_row = (size_t)W * BWW_BLK, x_cb = (size_t)H * x_row, x_img = (size_t)CB * x_cb;
    const size_t dy_row = (size_t)OW * BWW_BLK, dy_kb = (size_t)OH * dy_row, dy_img = (size_t)KB * dy_kb;
    const size_t dw_cb = (size_t)KH * KW * BWW_TILE, dw_kb = (size_t)CB * dw_cb, dw_count = (size_t)KB * dw_kb;

    /* Output blocks in groups of 3 (12 accumulators with 4 input channels); a remainder of 1 or 2 blocks
     * becomes one or two groups of 2 (8 accumulators), a single block a group of 1 (8 channels at once).
     * With at most 3 input channels, groups of 4 (12 accumulators with 3 channels) come first. */
    int NG = 0;
    int *g_kb0 = bww_malloc((size_t)KB * 2 * sizeof(int)), *g_nk = g_kb0 + KB;
    for (int kb = 0; kb < KB; NG++) {
        const int left = KB - kb;
        const int nk = C <= 3 && left >= 4 ? 4 : left == 1 ? 1 : (left == 2 || left == 4) ? 2 : 3;
        g_kb0[NG] = kb;
        g_nk[NG] = nk;
        kb += nk;
    }

    /* Row chunk (shape only). */
    const size_t row_bytes = (size_t)OW * BWW_BLK * sizeof(float) * 12 + (size_t)SH * W * BWW_BLK * sizeof(float) * 4;
    int chunk_rows = (int)(BWW_CHUNK_BYTES / row_bytes);
    if (chunk_rows < 1)
        chunk_rows = 1;
    if (chunk_rows > OH)
        chunk_rows = OH;
    /* Inputs of at most 3 channels (the first layer, wide rows): the x and dy of a whole output row do not
     * stay in L1 over the 9 taps, so the row is also cut into column chunks of BWW_FIRST_COLS output pixels,
     * one row at a time, and the kernel prefetches the next row (shape only). */
    int chunk_cols = OW;
    const int first = C <= 3 && KB >= 4;
    if (first) {
        chunk_cols = OW < BWW_FIRST_COLS ? OW : BWW_FIRST_COLS;
        chunk_rows = 1;
    }

    /* Segments of the reduction over n (shape only). */
    const long tiles = (long)NG * CB * KH;
    int NS = 1;
    if (tiles < BWW_MIN_ITEMS) {
        NS = (int)((BWW_MIN_ITEMS + tiles - 1) / tiles);
        if (NS > N)
            NS = N;
    }
    /* The blocked gradient, then the partial sums of segments 1 .. NS - 1. */
    float *dw8i8o = bww_malloc((size_t)NS * dw_count * sizeof(float)), *partial = dw8i8o + dw_count;

    /* Ownership blocks (may depend on the thread count): GG groups x GC input blocks x GR kernel rows. */
#ifdef _OPENMP
    const int nthr = omp_get_max_threads();
#else
    const int nthr = 1;
#endif
    int GG = NG < 4 ? NG : 4, GC = CB < 4 ? CB : 4, GR = KH;
    const long want = 4L * nthr;
    while ((long)NS * ((NG + GG - 1) / GG) * ((CB + GC - 1) / GC) * ((KH + GR - 1) / GR) < want) {
        if (GC > 1)
            GC = (GC + 1) / 2;
        else if (GG > 1)
            GG = (GG + 1) / 2;
        else if (GR > 1)
            GR = 1;
        else
            break;
    }
    const int nbg = (NG + GG - 1) / GG, nbc = (CB + GC - 1) / GC, nbr = (KH + GR - 1) / GR;
    const long items = (long)NS * nbg * nbc * nbr;

#pragma omp parallel for schedule(dynamic, 1)
    for (long it = 0; it < items; it++) {
        long rem = it;
        const int br = (int)(rem % nbr);
        rem /= nbr;
        const int bc = (int)(rem % nbc);
        rem /= nbc;
        const int bg = (int)(rem % nbg);
        const int seg = (int)(rem / nbg);
        const int g0 = bg * GG, g1 = g0 + GG < NG ? g0 + GG : NG;
        const int c0 = bc * GC, c1 = c0 + GC < CB ? c0 + GC : CB;
        const int r0 = br * GR, r1 = r0 + GR < KH ? r0 + GR : KH;
        const int n0 = (int)((long)N * seg / NS), n1 = (int)((long)N * (seg + 1) / NS);
        float *dwb = seg == 0 ? dw8i8o : partial + (size_t)(seg - 1) * dw_count;

        /* Zero the owned tiles (padding channels included). */
        for (int g = g0; g < g1; g++)
            for (int kb = g_kb0[g]; kb < g_kb0[g] + g_nk[g]; kb++)
                for (int cb = c0; cb < c1; cb++)
                    memset(dwb + kb * dw_kb + cb * dw_cb + (size_t)r0 * KW * BWW_TILE, 0,
                           (size_t)(r1 - r0) * KW * BWW_TILE * sizeof(float));

        bww_args a;
        a.x_pix = (ptrdiff_t)SW * BWW_BLK;
        a.x_row = (ptrdiff_t)SH * (ptrdiff_t)x_row;
        a.dy_row = (ptrdiff_t)dy_row;
        a.dy_kb = (ptrdiff_t)dy_kb;
        a.dw_kb = (ptrdiff_t)dw_kb;
        for (int n = n0; n < n1; n++) {
            for (int oc0 = 0; oc0 < OH; oc0 += chunk_rows) {
                const int oc1 = oc0 + chunk_rows < OH ? oc0 + chunk_rows : OH;
                for (int sc0 = 0; sc0 < OW; sc0 += chunk_cols) {
                    const int sc1 = sc0 + chunk_cols < OW ? sc0 + chunk_cols : OW;
                    for (int g = g0; g < g1; g++) {
                        const int kb0 = g_kb0[g], nk = g_nk[g];
                        const int nimax = bww_ni_max[nk - 1];
                        for (int cb = c0; cb < c1; cb++) {
                            const int ci = C - cb * BWW_BLK < BWW_BLK ? C - cb * BWW_BLK : BWW_BLK;
                            const int nchunks = (ci + nimax - 1) / nimax;
                            for (int r = r0; r < r1; r++) {
                                int oh_lo, oh_hi;
                                bww_valid(r, PT, SH, H, OH, &oh_lo, &oh_hi);
                                if (oh_lo < oc0)
                                    oh_lo = oc0;
                                if (oh_hi > oc1)
                                    oh_hi = oc1;
                                if (oh_lo >= oh_hi)
                                    continue;
                                a.nrows = oh_hi - oh_lo;
                                const int ih = oh_lo * SH - PT + r;
                                for (int q = 0; q < KW; q++) {
                                    int ow_lo, ow_hi;
                                    bww_valid(q, PL, SW, W, OW, &ow_lo, &ow_hi);
                                    if (ow_lo < sc0)
                                        ow_lo = sc0;
                                    if (ow_hi > sc1)
                                        ow_hi = sc1;
                                    if (ow_lo >= ow_hi)
                                        continue;
                                    a.npix = ow_hi - ow_lo;
                                    const int iw = ow_lo * SW - PL + q;
                                    const float *xb = x8c + (size_t)n * x_img + (size_t)cb * x_cb + (size_t)ih * x_row +
                                                      (size_t)iw * BWW_BLK;
                                    a.dy = dy8c + (size_t)n * dy_img + (size_t)kb0 * dy_kb + (size_t)oh_lo * dy_row +
                                           (size_t)ow_lo * BWW_BLK;
                                    float *dwt = dwb + kb0 * dw_kb + cb * dw_cb + ((size_t)r * KW + q) * BWW_TILE;
                                    int i0 = 0;
                                    for (int t = 0; t < nchunks; t++) {
                                        const int i1 = ci * (t + 1) / nchunks;
                                        a.x = xb + i0;
                                        a.dw = dwt + (size_t)i0 * BWW_BLK;
                                        a.pf = first && q == 0 && oh_hi < OH ? (r == r0 ? 2 : 1) : 0;
                                        bww_table[nk - 1][i1 - i0 - 1](&a);
                                        i0 = i1;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        /* Output channels past k: zero whatever dy's padding channels contributed. */
        if (K % BWW_BLK && g_kb0[g1 - 1] + g_nk[g1 - 1] == KB)
            for (int cb = c0; cb < c1; cb++)
                for (int t = r0 * KW * BWW_BLK; t < r1 * KW * BWW_BLK; t++)
                    for (int o = K % BWW_BLK; o < BWW_BLK; o++)
                        dwb[(size_t)(KB - 1) * dw_kb + cb * dw_cb + (size_t)t * BWW_BLK + o] = 0.0f;
    }

    if (NS > 1)
        bww_sum_segments(dw8i8o, partial, dw_count, NS);
    reorder_oihw8i8o_to_oihw_f32(K, C, KH, KW, dw8i8o, dw);
    free(dw8i8o);
    free(g_kb0);
}

#endif
