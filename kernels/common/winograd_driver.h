/* The ISA-independent driver of the Winograd convolutions (avx2/conv_winograd_avx2.c explains the
 * method, neon/conv_winograd_neon.c its register blocking): planning of the tile groups, the filter
 * transform's loops, the tile loops of the input and output transforms with their border handling, the
 * loops around the micro-kernel, the OpenMP work split, scratch, the statistics and BatchNorm
 * arguments, and the entry points of every variant. Written once so that the ISAs cannot drift apart:
 * each one's .c file includes this header after defining its pieces, and compiles it with its own flags.
 *
 * The including file defines:
 *   KERNEL_ISA, KERNEL_ISA_STR  the suffix of the entry points (avx2, "avx2"; common/isa_name.h)
 *   WG_MR               tiles per micro-kernel block; WG_FAR_TILES the group size when U streams
 *   WG_INLINE           static inline __attribute__((always_inline))
 *   wg_vec, WG_VL, WG_HALVES  the float vector, its lanes, and vectors per 8-channel block (VL * HALVES = 8)
 *   wg_vload(p), wg_vstore(p, v), wg_vzero()
 *   wg_vstore_groups(p, gs, v)  v's groups of 4 lanes stored gs floats apart (gs 4: one plain store)
 *   wg_input_1d(alpha, d), wg_output_1d(m, alpha, s, y)  the 1-D transforms (winograd_transforms_*.h)
 *   wg_pack_lanes(AH, RH, AW, RW, g, bi, row)  the filter transform of one input channel's 8 output lanes
 *   wg_pack_copy(ub, buf, u, npos, u_pos, row), wg_pack_end()  the copy of a packed block into U
 *   wg_kernel(v, vs, u, cp, m, ms, nob, pf, upf)  the micro-kernel: WG_MR tiles x 8 * nob output channels
 *   wg_epi_blk; wg_epi_blk_init(eb, p, ea, kb, epi); wg_store_out(yp, val, epi, masked, eb, h);
 *   wg_epi_blk_stats(eb, pk)  the epilogue's per-block state, the store of one output vector (half h of
 *                             its pixel), and the block's statistics written as [sum 8, sumsq 8]
 * wg_plan, wg_epi_args and the WG_EPI_* kinds come from common/winograd_plan.h, included first.
 */
#ifndef INCV3_WINOGRAD_DRIVER_H
#define INCV3_WINOGRAD_DRIVER_H

#include <math.h>
#include <omp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/isa_name.h"
#include "common/winograd_plan.h"

/* ---------------------------------------------------------------------------------------------------- */
/* filter transform (pack)                                                                              */

/* Transforms the weights into U, run by every thread of the caller's parallel region. bwd 0: the forward
 * filter of OIHW weights w (k x c). bwd 1: the backward-data filter, i.e. the forward filter of the
 * convolution with c' = k input and k' = c output channels whose taps are w's rotated by 180 degrees.
 * One (output block pair, input block) at a time is transformed into a per-thread buffer and then
 * copied to U as one 512-byte row per position, so that U is written in whole cache lines; every entry
 * of U is written (the missing second block of an odd pair, and padding channels, as zeros). */
WG_INLINE void wg_pack(const int MH, const int RH, const int MW, const int RW, const incv3_conv_shape *s,
                       const float *w, float *u, const int bwd, const char *who)
{
    const int AH = MH + RH - 1, AW = MW + RW - 1, NPOS = AH * AW, NTAP = RH * RW;
    const int cin = bwd ? s->k : s->c, cout = bwd ? s->c : s->k;
    const int CB = wg_blocks(cin), KB = wg_blocks(cout), KBP = (KB + 1) / 2, CP = CB * WG_BLK;
    const size_t u_pos = (size_t)KBP * CP * 16, row = (size_t)WG_BLK * 16;
    float *buf = NULL; /* [pos][8 input lanes][16 output lanes] */
#pragma omp for collapse(2) schedule(static)
    for (int kbp = 0; kbp < KBP; kbp++) {
        for (int cb = 0; cb < CB; cb++) {
            if (!buf)
                buf = wg_alloc((size_t)NPOS * row * sizeof(float), who);
            for (int b = 0; b < 2; b++) {
                const int kb = 2 * kbp + b;
                if (kb >= KB) {
                    for (int pos = 0; pos < NPOS; pos++)
                        for (int i = 0; i < WG_BLK; i++)
                            memset(buf + pos * row + i * 16 + b * WG_BLK, 0, WG_BLK * sizeof(float));
                    continue;
                }
                for (int i = 0; i < WG_BLK; i++) {
                    /* g[tap][8 output lanes] of input channel cb*8 + i; zero past the real channels */
                    float g[7 * 7][WG_BLK];
                    const int ci = cb * WG_BLK + i;
                    for (int o = 0; o < WG_BLK; o++) {
                        const int co = kb * WG_BLK + o;
                        /* forward: w[co][ci] as it is; backward: w[ci][co] rotated by 180 degrees */
                        if (ci >= cin || co >= cout) {
                            for (int t = 0; t < NTAP; t++)
                                g[t][o] = 0.0f;
                            continue;
                        }
                        const float *f = w + ((size_t)(bwd ? ci : co) * s->c + (size_t)(bwd ? co : ci)) * NTAP;
                        for (int t = 0; t < NTAP; t++)
                            g[t][o] = f[bwd ? NTAP - 1 - t : t];
                    }
                    wg_pack_lanes(AH, RH, AW, RW, (const float(*)[WG_BLK])g, buf + i * 16 + b * WG_BLK, row);
                }
            }
            float *ub = u + (size_t)kbp * CP * 16 + (size_t)cb * row;
            wg_pack_copy(ub, buf, u, NPOS, u_pos, row);
        }
    }
    wg_pack_end();
    free(buf);
}

/* ---------------------------------------------------------------------------------------------------- */
/* step 1: input transform                                                                              */

/* One row of a tile (one vector of lanes): AW pixels from columns iw0 .. iw0 + AW - 1 of the input row
 * xrow; with clip, zeros outside the tile's columns [j0, j1) that lie in the input. */
WG_INLINE void wg_load_row(const int AW, const float *xrow, int iw0, int clip, int j0, int j1, wg_vec *d)
{
    for (int j = 0; j < AW; j++)
        d[j] = !clip || (j >= j0 && j < j1) ? wg_vload(xrow + (ptrdiff_t)(iw0 + j) * WG_BLK) : wg_vzero();
}

/* Transforms input block cb of one tile into V: v points at (pos 0, this tile, block cb), each group of 4
 * lanes gs floats after the previous one (4: the block's 8 lanes together, as the forward pass stores
 * them; the backward-weights pass stores each group in a panel of its own). Per vector of lanes, the tile
 * is loaded row by row and transformed along w, then along h by columns. */
WG_INLINE void wg_input_tile(const int MH, const int RH, const int MW, const int RW, const wg_plan *p,
                             const float *x8c, wg_tile tl, int cb, float *v, const size_t gs)
{
    const int AH = MH + RH - 1, AW = MW + RW - 1;
    const int ih0 = tl.oh0 - p->pt, iw0 = tl.ow0 - p->pl;
    const int H = p->h, W = p->w;
    const size_t x_row = (size_t)W * WG_BLK, x_cb = (size_t)H * x_row;
    /* Rows [i0, i1) and columns [j0, j1) of the tile lie inside the input. */
    const int i0 = ih0 < 0 ? -ih0 : 0, i1 = H - ih0 < AH ? H - ih0 : AH;
    const int j0 = iw0 < 0 ? -iw0 : 0, j1 = W - iw0 < AW ? W - iw0 : AW;
    const int inside = i0 == 0 && i1 == AH && j0 == 0 && j1 == AW;
    for (int h = 0; h < WG_HALVES; h++) {
        const float *xc = x8c + ((size_t)tl.n * p->cb + cb) * x_cb + h * WG_VL;
        wg_vec t[WG_AMAX][WG_AMAX];
        if (inside) {
            for (int i = 0; i < AH; i++) {
                wg_load_row(AW, xc + (size_t)(ih0 + i) * x_row, iw0, 0, 0, AW, t[i]);
                wg_input_1d(AW, t[i]);
            }
        } else {
            for (int i = 0; i < AH; i++) {
                if (i < i0 || i >= i1) {
                    for (int j = 0; j < AW; j++)
                        t[i][j] = wg_vzero();
                } else {
                    wg_load_row(AW, xc + (size_t)(ih0 + i) * x_row, iw0, 1, j0, j1, t[i]);
                    wg_input_1d(AW, t[i]);
                }
            }
        }
        for (int j = 0; j < AW; j++) {
            wg_vec d[WG_AMAX];
            for (int i = 0; i < AH; i++)
                d[i] = t[i][j];
            wg_input_1d(AH, d);
            for (int i = 0; i < AH; i++)
                wg_vstore_groups(v + (size_t)(i * AW + j) * p->v_pos + (size_t)h * (WG_VL / 4) * gs, gs, d[i]);
        }
    }
}

/* ---------------------------------------------------------------------------------------------------- */
/* step 2: batched tile products                                                                        */

/* One (position, output block pair) over the group's ntb tile blocks; the first tile block prefetches
 * the next slice of U (unext, NULL after the last). */
WG_INLINE void wg_gemm_slice(const wg_plan *p, int ntb, const float *vp, const float *uk, float *mk, const float *unext,
                             const int nob)
{
    int tb = 0;
    if (unext) {
        wg_kernel(vp, p->cp, uk, p->cp, mk, p->kp, nob, 1, unext);
        tb = 1;
    }
    for (; tb < ntb; tb++)
        wg_kernel(vp + (size_t)tb * WG_MR * p->cp, p->cp, uk, p->cp, mk + (size_t)tb * WG_MR * p->kp, p->kp, nob, 0,
                  NULL);
}

/* All products of one group of ntb tile blocks with output block pairs [kbp0, kbp1): positions, then
 * output block pairs (the slice of U, cp x 16 floats, stays in L1 while the group's tiles stream past it),
 * then tile blocks. The prefetch of the next slice of U follows the same order. */
static void wg_gemm(const wg_plan *p, int npos, int ntb, int kbp0, int kbp1, const float *v, const float *u, float *m)
{
    const size_t u_slice = (size_t)p->cp * 16;
    for (int pos = 0; pos < npos; pos++) {
        const float *vp = v + (size_t)pos * p->v_pos;
        float *mp = m + (size_t)pos * p->m_pos;
        for (int kbp = kbp0; kbp < kbp1; kbp++) {
            const float *uk = u + (size_t)pos * p->u_pos + (size_t)kbp * u_slice;
            const float *unext = kbp + 1 < kbp1 ? uk + u_slice
                                 : pos + 1 < npos ? u + (size_t)(pos + 1) * p->u_pos + (size_t)kbp0 * u_slice
                                                  : NULL;
            if (p->kb - 2 * kbp >= 2)
                wg_gemm_slice(p, ntb, vp, uk, mp + (size_t)kbp * 16, unext, 2);
            else
                wg_gemm_slice(p, ntb, vp, uk, mp + (size_t)kbp * 16, unext, 1);
        }
    }
}

/* ---------------------------------------------------------------------------------------------------- */
/* step 3: output transform                                                                             */

/* Transforms (tile, output block kb) back from M (m at pos 0, this tile, block kb) into y, clipped to the
 * output (tiles at the right and bottom edges), with the epilogue of wg_store_out. Per vector of lanes,
 * along h first: MH rows of AW values, then each row along w. */
WG_INLINE void wg_output_tile(const int MH, const int RH, const int MW, const int RW, const wg_plan *p,
                              const float *m, float *y8c, wg_tile tl, int kb, const int epi, int masked,
                              wg_epi_blk *eb)
{
    const int AH = MH + RH - 1, AW = MW + RW - 1;
    const int mi = p->oh - tl.oh0 < MH ? p->oh - tl.oh0 : MH, mj = p->ow - tl.ow0 < MW ? p->ow - tl.ow0 : MW;
    const size_t y_row = (size_t)p->ow * WG_BLK;
    float *yb = y8c + (((size_t)tl.n * p->kb + kb) * p->oh + tl.oh0) * y_row + (size_t)tl.ow0 * WG_BLK;
    for (int h = 0; h < WG_HALVES; h++) {
        wg_vec t[WG_AMAX][WG_AMAX]; /* [output row][position along w] */
        for (int j = 0; j < AW; j++) {
            wg_vec s[WG_AMAX], o[WG_AMAX];
            for (int i = 0; i < AH; i++)
                s[i] = wg_vload(m + (size_t)(i * AW + j) * p->m_pos + h * WG_VL);
            wg_output_1d(MH, AH, s, o);
            for (int i = 0; i < MH; i++)
                t[i][j] = o[i];
        }
        float *yh = yb + h * WG_VL;
        if (mi == MH && mj == MW) {
            for (int i = 0; i < MH; i++) {
                wg_vec o[WG_AMAX];
                wg_output_1d(MW, AW, t[i], o);
                for (int j = 0; j < MW; j++)
                    wg_store_out(yh + (size_t)i * y_row + (size_t)j * WG_BLK, o[j], epi, masked, eb, h);
            }
        } else {
            for (int i = 0; i < mi; i++) {
                wg_vec o[WG_AMAX];
                wg_output_1d(MW, AW, t[i], o);
                for (int j = 0; j < mj; j++)
                    wg_store_out(yh + (size_t)i * y_row + (size_t)j * WG_BLK, o[j], epi, masked, eb, h);
            }
        }
    }
}

/* ---------------------------------------------------------------------------------------------------- */
/* driver                                                                                               */

/* How many parts the output block pairs of each group are cut into, so that a call with fewer tile groups
 * than threads (the small maps of the 75x75 model: at 3x3, 32 images make 32 F(6x6) tiles, 7 groups)
 * still keeps every thread busy. Each part transforms its group's input again (a few percent of the
 * products' work per part) and then computes only its own output channels, so the results are the
 * same bits for any thread count: the split never reorders a sum. */
static int wg_k_parts(const wg_plan *p, int threads)
{
    if (p->ng >= threads)
        return 1;
    const int parts = (threads + p->ng - 1) / p->ng;
    return parts < p->kbp ? parts : p->kbp;
}

/* Run by every thread of the caller's parallel region (its loop over work items is an orphaned `omp for`):
 * each entry point opens its own region around this, so that the region's outlined body is compiled
 * with the variant's sizes and the epilogue as constants. A work item is one tile group and one part of
 * its output block pairs (wg_k_parts). The transforms sweep one channel block over all the group's tiles
 * at a time: the tiles of a group are neighbours along rows, so the input rows (and output rows) are read
 * (written) as a few sequential streams. */
WG_INLINE void wg_run(const int MH, const int RH, const int MW, const int RW, const wg_plan *p, const float *x8c,
                      const float *u, float *y8c, const int epi, const wg_epi_args *ea, const char *who)
{
    const int NPOS = (MH + RH - 1) * (MW + RW - 1);
    const size_t v_floats = (size_t)NPOS * p->v_pos, m_floats = (size_t)NPOS * p->m_pos;
    const int last_masked = p->k % WG_BLK != 0;
    const int parts = wg_k_parts(p, omp_get_num_threads());
    float *v = NULL, *m = NULL;
    wg_tile *tiles = NULL;
#pragma omp for schedule(static)
    for (int item = 0; item < p->ng * parts; item++) {
        if (!v) {
            v = wg_alloc((v_floats + m_floats) * sizeof(float) + (size_t)p->t * sizeof(wg_tile), who);
            m = v + v_floats;
            tiles = (wg_tile *)(m + m_floats);
        }
        const int g = item / parts, part = item % parts;
        const int kbp0 = p->kbp * part / parts, kbp1 = p->kbp * (part + 1) / parts;
        const int kb0 = 2 * kbp0, kb1 = 2 * kbp1 < p->kb ? 2 * kbp1 : p->kb;
        const int t0 = g * p->t, nt = p->nt - t0 < p->t ? p->nt - t0 : p->t;
        const int ntb = (nt + WG_MR - 1) / WG_MR;
        for (int i = 0; i < nt; i++)
            tiles[i] = wg_tile_at(MH, MW, p, t0 + i);
        for (int cb = 0; cb < p->cb; cb++)
            for (int i = 0; i < nt; i++)
                wg_input_tile(MH, RH, MW, RW, p, x8c, tiles[i], cb, v + (size_t)i * p->cp + (size_t)cb * WG_BLK, 4);
        /* Rows of the last tile block past the group's tiles: zeros, so that the products stay finite. */
        if (nt < ntb * WG_MR)
            for (int pos = 0; pos < NPOS; pos++)
                memset(v + (size_t)pos * p->v_pos + (size_t)nt * p->cp, 0,
                       (size_t)(ntb * WG_MR - nt) * p->cp * sizeof(float));
        wg_gemm(p, NPOS, ntb, kbp0, kbp1, v, u, m);
        for (int kb = kb0; kb < kb1; kb++) {
            const int masked = last_masked && kb == p->kb - 1;
            wg_epi_blk eb;
            wg_epi_blk_init(&eb, p, ea, kb, epi);
            for (int i = 0; i < nt; i++)
                wg_output_tile(MH, RH, MW, RW, p, m + (size_t)i * p->kp + (size_t)kb * WG_BLK, y8c, tiles[i], kb, epi,
                               masked, &eb);
            if (epi == WG_EPI_STATS)
                wg_epi_blk_stats(&eb, ea->part + ((size_t)g * p->kb + kb) * 2 * WG_BLK);
        }
    }
    free(v);
}

/* ---------------------------------------------------------------------------------------------------- */
/* entry points                                                                                         */

/* The entry points of variant V = F(MH x MW, RH x RW). Every OpenMP region is opened here, in the
 * instantiated function itself, not in an inlined helper: a region is outlined before inlining, so one
 * opened inside wg_run would be compiled once with the sizes as run-time values. */
#define WG_DEFINE(V, MH, RH, MW, RW)                                                                                   \
    int ISA_NAME(conv_winograd_##V##_supports__)(const incv3_conv_shape *s)                                            \
    {                                                                                                                  \
        return wg_supports(s, RH, RW);                                                                                 \
    }                                                                                                                  \
    size_t ISA_NAME(conv_winograd_##V##_fwd_weights_floats__)(const incv3_conv_shape *s)                               \
    {                                                                                                                  \
        return wg_u_floats(MH, RH, MW, RW, s->c, s->k);                                                                \
    }                                                                                                                  \
    void ISA_NAME(conv_winograd_##V##_pack_fwd__)(const incv3_conv_shape *s, const float *w, float *u)             \
    {                                                                                                                  \
        _Pragma("omp parallel")                                                                                        \
            wg_pack(MH, RH, MW, RW, s, w, u, 0, "conv_winograd_" #V "_pack_fwd__" KERNEL_ISA_STR);                 \
    }                                                                                                                  \
    size_t ISA_NAME(conv_winograd_##V##_bwd_data_weights_floats__)(const incv3_conv_shape *s)                          \
    {                                                                                                                  \
        return wg_u_floats(MH, RH, MW, RW, s->k, s->c);                                                                \
    }                                                                                                                  \
    void ISA_NAME(conv_winograd_##V##_pack_bwd_data__)(const incv3_conv_shape *s, const float *w, float *u)        \
    {                                                                                                                  \
        _Pragma("omp parallel")                                                                                        \
            wg_pack(MH, RH, MW, RW, s, w, u, 1, "conv_winograd_" #V "_pack_bwd_data__" KERNEL_ISA_STR);            \
    }                                                                                                                  \
    void ISA_NAME(conv_fwd_f32_winograd_##V##__)(const incv3_conv_shape *s, const float *x8c, const float *u,          \
                                                float *y8c)                                                            \
    {                                                                                                                  \
        const wg_plan p = wg_make_plan(MH, RH, MW, RW, s);                                                             \
        _Pragma("omp parallel")                                                                                        \
            wg_run(MH, RH, MW, RW, &p, x8c, u, y8c, WG_EPI_NONE, NULL,                                                 \
                   "conv_fwd_f32_winograd_" #V "__" KERNEL_ISA_STR);                                                   \
    }                                                                                                                  \
    void ISA_NAME(conv_bwd_data_f32_winograd_##V##__)(const incv3_conv_shape *s, const float *dy8c, const float *u,    \
                                                     float *dx8c, int accumulate)                                      \
    {                                                                                                                  \
        const incv3_conv_shape b = wg_bwd_shape(s);                                                                    \
        const wg_plan p = wg_make_plan(MH, RH, MW, RW, &b);                                                            \
        const char *who = "conv_bwd_data_f32_winograd_" #V "__" KERNEL_ISA_STR;                                        \
        if (accumulate) {                                                                                              \
            _Pragma("omp parallel") wg_run(MH, RH, MW, RW, &p, dy8c, u, dx8c, WG_EPI_ADD, NULL, who);                  \
        } else {                                                                                                       \
            _Pragma("omp parallel") wg_run(MH, RH, MW, RW, &p, dy8c, u, dx8c, WG_EPI_NONE, NULL, who);                 \
        }                                                                                                              \
    }                                                                                                                  \
    void ISA_NAME(conv_fwd_stats_f32_winograd_##V##__)(const incv3_conv_shape *s, const float *x8c, const float *u,    \
                                                      float *y8c, double *sum, double *sumsq)                          \
    {                                                                                                                  \
        const char *who = "conv_fwd_stats_f32_winograd_" #V "__" KERNEL_ISA_STR;                                       \
        const wg_plan p = wg_make_plan(MH, RH, MW, RW, s);                                                             \
        const wg_epi_args ea = {wg_stats_alloc(&p, who), NULL, NULL};                                                  \
        _Pragma("omp parallel") wg_run(MH, RH, MW, RW, &p, x8c, u, y8c, WG_EPI_STATS, &ea, who);                       \
        wg_stats_reduce(&p, ea.part, sum, sumsq);                                                                      \
        free(ea.part);                                                                                                 \
    }                                                                                                                  \
    void ISA_NAME(conv_bn_relu_fwd_infer_f32_winograd_##V##__)(const incv3_conv_shape *s, const float *x8c,            \
                                                              const float *u, float *y8c, const float *gamma,          \
                                                              const float *beta, const float *mean,                    \
                                                              const float *var, float eps)                             \
    {                                                                                                                  \
        const char *who = "conv_bn_relu_fwd_infer_f32_winograd_" #V "__" KERNEL_ISA_STR;                               \
        const wg_plan p = wg_make_plan(MH, RH, MW, RW, s);                                                             \
        float *coef = wg_bn_coef(s, gamma, beta, mean, var, eps, who);                                                 \
        const wg_epi_args ea = {NULL, coef, coef + (size_t)p.kb * WG_BLK};                                             \
        _Pragma("omp parallel") wg_run(MH, RH, MW, RW, &p, x8c, u, y8c, WG_EPI_BN_RELU, &ea, who);                     \
        free(coef);                                                                                                    \
    }

/* Every variant, the same set on every ISA: X(tag, MH, RH, MW, RW) for each (the backward-weights entry
 * points of common/winograd_bwd_weights_driver.h take the same list). */
#define WG_VARIANTS(X)                                                                                                 \
    X(f2x2_3x3, 2, 3, 2, 3)                                                                                            \
    X(f4x4_3x3, 4, 3, 4, 3)                                                                                            \
    X(f6x6_3x3, 6, 3, 6, 3)                                                                                            \
    X(f2_1x3, 1, 1, 2, 3)                                                                                              \
    X(f4_1x3, 1, 1, 4, 3)                                                                                              \
    X(f2_3x1, 2, 3, 1, 1)                                                                                              \
    X(f4_3x1, 4, 3, 1, 1)                                                                                              \
    X(f2_1x7, 1, 1, 2, 7)                                                                                              \
    X(f4_1x7, 1, 1, 4, 7)                                                                                              \
    X(f2_7x1, 2, 7, 1, 1)                                                                                              \
    X(f4_7x1, 4, 7, 1, 1)

#define WG_DEFINE_ALL() WG_VARIANTS(WG_DEFINE)

#endif
