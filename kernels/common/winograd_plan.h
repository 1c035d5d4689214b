/* The ISA-independent part of the Winograd convolutions' state (see common/winograd_driver.h): the plan of
 * a call (tile groups sized from the shape alone), the tiles, the epilogue's arguments, the scratch, and
 * the per-channel reductions before and after the tile loops. Plain C: the per-lane double sums of the
 * statistics are added in the same order as a vector of them would be, so the results are the same on
 * every ISA's build.
 *
 * The including file defines WG_INLINE, WG_MR (tiles per micro-kernel block) and WG_FAR_TILES first.
 */
#ifndef INCV3_WINOGRAD_PLAN_H
#define INCV3_WINOGRAD_PLAN_H

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel_types.h"
#include "alloc.h"

#define WG_BLK 8
#define WG_AMAX 10 /* largest alpha */

/* Tile-group sizing (see wg_group_tiles): bytes that the transformed tiles of one group (V and M) may
 * occupy, a part of the L2 (a quarter of a Zen 4's 1 MiB, half of a Zen 3's 512 KiB; 128 to 512 KiB
 * measured within 3% of each other, 256 KiB the best; on Arm, 256 KiB of the 512 KiB to 1 MiB of
 * current Neoverse and Cortex-A7x cores, not measured); the size of U above which it is taken to stream
 * from memory rather than L3 (which is shared with the other cores and their data). The group size used
 * then, WG_FAR_TILES, is the ISA's (a multiple of its WG_MR). */
#ifndef WG_L2_BYTES
#define WG_L2_BYTES (256 * 1024)
#endif
#ifndef WG_U_FAR_BYTES
#define WG_U_FAR_BYTES (16u << 20)
#endif
/* Groups a call is cut into at least, where it has the tiles: the unit of parallel work is the group,
 * and small maps (the 75x75 model's 7x7 and 3x3 grids: 32 images x 4 tiles) left two threads with 2
 * groups against 1. A constant, not the thread count: the groups decide the summation order. */
#ifndef WG_MIN_GROUPS
#define WG_MIN_GROUPS 8
#endif

static void *wg_alloc(size_t bytes, const char *who)
{
    char what[160];
    snprintf(what, sizeof what, "the scratch of %s", who);
    return incv3_mem_must(bytes, 64, what);
}

static inline int wg_blocks(int c)
{
    return (c + WG_BLK - 1) / WG_BLK;
}

/* ---------------------------------------------------------------------------------------------------- */
/* plan                                                                                                 */

typedef struct wg_plan {
    int n, h, w, oh, ow, pt, pl; /* of the convolution run (dy -> dx for backward-data) */
    int c, k;
    int cb, kb, kbp; /* input blocks, output blocks, output block pairs */
    int cp, kp;      /* input channels padded to blocks (V row), output channels padded (M row) */
    int th, tw;      /* tiles per image column / row */
    int nt, t, ng;   /* tiles in all, tiles per group, groups */
    size_t v_pos, m_pos, u_pos; /* floats per position of V, M, U */
} wg_plan;

/* Tiles per group, from the shape alone. Each group reads all of U once and each U value it loads serves
 * T tiles, while the group's V and M take T * npos * (cp + kp) floats. T is as large as keeps V and M
 * in WG_L2_BYTES, except when U is too large for the L3: then U's traffic from memory dominates and T
 * is raised to WG_FAR_TILES, V and M moving out to L3 (measured on the 384-channel 3x3 layers with
 * AVX2: F(4x4) at 35x35 is 10% faster with T = 48 than with T = 24). Then a multiple of WG_MR, evened
 * out over the groups so that the last one is not a sliver. At least WG_MIN_GROUPS groups where the
 * tiles allow. */
static int wg_group_tiles(int npos, int cp, int kp, int nt)
{
    const size_t per_tile = (size_t)npos * (cp + kp) * sizeof(float);
    const size_t u_bytes = (size_t)npos * cp * ((kp + 15) / 16 * 16) * sizeof(float);
    int t = (int)(WG_L2_BYTES / per_tile);
    if (u_bytes > WG_U_FAR_BYTES && t < WG_FAR_TILES)
        t = WG_FAR_TILES;
    const int cap = ((nt + WG_MIN_GROUPS - 1) / WG_MIN_GROUPS + WG_MR - 1) / WG_MR * WG_MR;
    if (t > cap)
        t = cap;
    t -= t % WG_MR;
    if (t < WG_MR)
        t = WG_MR;
    const int ntr = (nt + WG_MR - 1) / WG_MR * WG_MR;
    if (t > ntr)
        t = ntr;
    const int ng = (nt + t - 1) / t;
    t = (nt + ng - 1) / ng;
    return (t + WG_MR - 1) / WG_MR * WG_MR;
}

WG_INLINE wg_plan wg_make_plan(const int MH, const int RH, const int MW, const int RW, const incv3_conv_shape *s)
{
    const int AH = MH + RH - 1, AW = MW + RW - 1;
    wg_plan p;
    p.n = s->n;
    p.h = s->h;
    p.w = s->w;
    p.oh = s->oh;
    p.ow = s->ow;
    p.pt = s->pad_top;
    p.pl = s->pad_left;
    p.c = s->c;
    p.k = s->k;
    p.cb = wg_blocks(s->c);
    p.kb = wg_blocks(s->k);
    p.kbp = (p.kb + 1) / 2;
    p.cp = p.cb * WG_BLK;
    p.kp = p.kb * WG_BLK;
    p.th = (s->oh + MH - 1) / MH;
    p.tw = (s->ow + MW - 1) / MW;
    p.nt = s->n * p.th * p.tw;
    p.t = wg_group_tiles(AH * AW, p.cp, p.kp, p.nt);
    p.ng = (p.nt + p.t - 1) / p.t;
    p.v_pos = (size_t)p.t * p.cp;
    p.m_pos = (size_t)p.t * p.kp;
    p.u_pos = (size_t)p.kbp * p.cp * 16;
    return p;
}

/* The forward convolution that computes backward-data: dy (k channels, oh x ow) correlated with the
 * rotated filter, padded by kernel - 1 - pad on each side, gives dx (c channels, h x w). */
static incv3_conv_shape wg_bwd_shape(const incv3_conv_shape *s)
{
    incv3_conv_shape b = *s;
    b.c = s->k;
    b.k = s->c;
    b.h = s->oh;
    b.w = s->ow;
    b.pad_top = s->kh - 1 - s->pad_top;
    b.pad_bottom = s->kh - 1 - s->pad_bottom;
    b.pad_left = s->kw - 1 - s->pad_left;
    b.pad_right = s->kw - 1 - s->pad_right;
    b.oh = s->h;
    b.ow = s->w;
    return b;
}

WG_INLINE int wg_supports(const incv3_conv_shape *s, const int RH, const int RW)
{
    return s->n >= 1 && s->c >= 1 && s->k >= 1 && s->stride_h == 1 && s->stride_w == 1 && s->kh == RH &&
           s->kw == RW && s->pad_top >= 0 && s->pad_top <= RH - 1 && s->pad_bottom >= 0 &&
           s->pad_bottom <= RH - 1 && s->pad_left >= 0 && s->pad_left <= RW - 1 && s->pad_right >= 0 &&
           s->pad_right <= RW - 1 && s->h >= 1 && s->w >= 1 && s->oh == s->h + s->pad_top + s->pad_bottom - RH + 1 &&
           s->ow == s->w + s->pad_left + s->pad_right - RW + 1 && s->oh >= 1 && s->ow >= 1;
}

/* U[pos][kbp][cp][16] for a convolution of c input and k output channels: the 8 input-channel lanes of
 * each (output block pair, input channel) are 16 contiguous floats, zero past k and past c. */
WG_INLINE size_t wg_u_floats(const int MH, const int RH, const int MW, const int RW, int c, int k)
{
    const int AH = MH + RH - 1, AW = MW + RW - 1;
    return (size_t)AH * AW * ((wg_blocks(k) + 1) / 2) * wg_blocks(c) * WG_BLK * 16;
}

/* Output origin of a tile: image n, first output row oh0 and column ow0. */
typedef struct wg_tile {
    int n, oh0, ow0;
} wg_tile;

WG_INLINE wg_tile wg_tile_at(const int MH, const int MW, const wg_plan *p, int tile)
{
    const int tpi = p->th * p->tw, rem = tile % tpi;
    const wg_tile t = {tile / tpi, (rem / p->tw) * MH, (rem % p->tw) * MW};
    return t;
}

/* ---------------------------------------------------------------------------------------------------- */
/* epilogues                                                                                            */

enum { WG_EPI_NONE, WG_EPI_STATS, WG_EPI_BN_RELU, WG_EPI_ADD };

typedef struct wg_epi_args {
    double *part;               /* WG_EPI_STATS: [group][kb][sum 8, sumsq 8] */
    const float *scale, *shift; /* WG_EPI_BN_RELU: [kb * 8], zero past k */
} wg_epi_args;

/* Per-group statistics partials: [group][kb][sum 8, sumsq 8]. */
static double *wg_stats_alloc(const wg_plan *p, const char *who)
{
    return wg_alloc((size_t)p->ng * p->kb * 2 * WG_BLK * sizeof(double), who);
}

/* sum[k], sumsq[k] from the group partials, each channel block reduced by one thread over the groups in
 * order (each of the 16 lanes its own sum). */
static void wg_stats_reduce(const wg_plan *p, const double *part, double *sum, double *sumsq)
{
#pragma omp parallel for schedule(static)
    for (int kb = 0; kb < p->kb; kb++) {
        double a[2 * WG_BLK] = {0};
        for (int g = 0; g < p->ng; g++) {
            const double *pk = part + ((size_t)g * p->kb + kb) * 2 * WG_BLK;
            for (int l = 0; l < 2 * WG_BLK; l++)
                a[l] += pk[l];
        }
        for (int l = 0; l < WG_BLK && kb * WG_BLK + l < p->k; l++) {
            sum[kb * WG_BLK + l] = a[l];
            sumsq[kb * WG_BLK + l] = a[WG_BLK + l];
        }
    }
}

/* BatchNorm folded per output channel, in double then rounded: scale at [0, kb*8), shift after it, zero
 * past k (the padding lanes then stay relu(0) = 0). */
static float *wg_bn_coef(const incv3_conv_shape *s, const float *gamma, const float *beta, const float *mean,
                         const float *var, float eps, const char *who)
{
    const int KB = wg_blocks(s->k);
    float *coef = wg_alloc((size_t)KB * 2 * WG_BLK * sizeof(float), who);
    memset(coef, 0, (size_t)KB * 2 * WG_BLK * sizeof(float));
    for (int k = 0; k < s->k; k++) {
        const double sc = (double)gamma[k] / sqrt((double)var[k] + (double)eps);
        coef[k] = (float)sc;
        coef[(size_t)KB * WG_BLK + k] = (float)((double)beta[k] - (double)mean[k] * sc);
    }
    return coef;
}

#endif
