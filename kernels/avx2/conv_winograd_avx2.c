/* Winograd convolution, AVX2+FMA, NCHW8c (see conv_winograd_avx2.h).
 *
 * One driver serves every variant: F(MH x MW, RH x RW) with the sizes as compile-time constants of
 * always-inlined functions (RH or RW 1 is an untransformed dimension, alpha 1), instantiated by the thin
 * entry points at the end of this file. AH = MH + RH - 1 and AW = MW + RW - 1 are the transformed tile's
 * sizes, NPOS = AH * AW its positions.
 *
 * Work: the output tiles of all images, flattened as (image, tile row, tile column), are cut into groups
 * of T tiles (T a multiple of the micro-kernel's 6 rows, from the shape alone). A group runs on one
 * thread, three steps over per-thread scratch that stays in cache:
 *   1. input transform of each tile and input block into V[pos][tile][c] (zeros where the tile reaches
 *      past the input: padding and the ragged last tiles);
 *   2. for each position, the batched product M[pos][tile][k] = V[pos][tile][:] . U[pos][:][k], with a
 *      6 tiles x 16 output channels register block (12 accumulators, one broadcast of V per 2 FMAs);
 *   3. output transform of each (tile, output block) into y, clipped at the right and bottom edges, with
 *      the epilogue (statistics, BatchNorm+ReLU or accumulation) applied while the tile is in registers.
 * Step 2 walks the positions, then pairs of output blocks, then the tile blocks: the current slice of U
 * (input channels x 16) stays in L1 while the group's tiles stream past it from L2, so each U value is
 * loaded from far memory once per group (the next slice is prefetched into L2 meanwhile); T trades that
 * reuse against the size of V and M (wg_group_tiles).
 *
 * Measured on this machine's Zen 4 core, batch 32, one thread: the micro-kernel runs at 93-99% of the
 * FMA peak while U is in cache and at 70-80% on the 384-channel layers, whose U streams from memory; the
 * transforms take 25-45% of the time on the 32- and 64-channel layers (a third of that waiting for the
 * input and output tensors in memory), under 15% from 192 channels on.
 */
#include <immintrin.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "avx2/bn_reduce_avx2.h"
#include "avx2/conv_winograd_avx2.h"
#include "avx2/winograd_transforms_avx2.h"

#define BLK 8
#define WG_AMAX 10 /* largest alpha */
#define WG_MR 6    /* tiles per micro-kernel block */

/* Tile-group sizing (see wg_group_tiles): bytes that the transformed tiles of one group (V and M) may
 * occupy, a part of the L2 (a quarter of this Zen 4's 1 MiB, half of a Zen 3's 512 KiB; 128 to 512 KiB
 * measured within 3% of each other, 256 KiB the best); the size of U above which it is taken to stream
 * from memory rather than L3 (which is shared with the other cores and their data); the group size used
 * then. */
#ifndef WG_L2_BYTES
#define WG_L2_BYTES (256 * 1024)
#endif
#ifndef WG_U_FAR_BYTES
#define WG_U_FAR_BYTES (16u << 20)
#endif
#ifndef WG_FAR_TILES
#define WG_FAR_TILES 48
#endif
/* Groups a call is cut into at least, where it has the tiles (6 per group): the unit of parallel work is
 * the group, and small maps (the 75x75 model's 7x7 and 3x3 grids: 32 images x 4 tiles) left two threads
 * with 2 groups against 1. A constant, not the thread count: the groups decide the summation order. */
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
    return (c + BLK - 1) / BLK;
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
 * is raised to WG_FAR_TILES, V and M moving out to L3 (measured on the 384-channel 3x3 layers: F(4x4)
 * at 35x35 is 10% faster with T = 48 than with T = 24). Then a multiple of WG_MR, evened out over the
 * groups so that the last one is not a sliver. At least WG_MIN_GROUPS groups where the tiles allow. */
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
    p.cp = p.cb * BLK;
    p.kp = p.kb * BLK;
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

/* ---------------------------------------------------------------------------------------------------- */
/* filter transform (pack)                                                                              */

/* U[pos][kbp][cp][16] for a convolution of c input and k output channels: the 8 input-channel lanes of
 * each (output block pair, input channel) are 16 contiguous floats, zero past k and past c. */
WG_INLINE size_t wg_u_floats(const int MH, const int RH, const int MW, const int RW, int c, int k)
{
    const int AH = MH + RH - 1, AW = MW + RW - 1;
    return (size_t)AH * AW * ((wg_blocks(k) + 1) / 2) * wg_blocks(c) * BLK * 16;
}

/* Transforms the weights into U, run by every thread of the caller's parallel region. bwd 0: the forward
 * filter of OIhw8i8o weights w (k x c). bwd 1: the backward-data filter, i.e. the forward filter of the
 * convolution with c' = k input and k' = c output channels whose taps are w's rotated by 180 degrees.
 * One (output block pair, input block) at a time is transformed into a per-thread buffer and then
 * copied to U as one 512-byte row per position, so that U is written in whole cache lines; every entry
 * of U is written (the missing second block of an odd pair, and padding channels, as zeros). */
WG_INLINE void wg_pack(const int MH, const int RH, const int MW, const int RW, const incv3_conv_shape *s,
                       const float *w8i8o, float *u, const int bwd, const char *who)
{
    const int AH = MH + RH - 1, AW = MW + RW - 1, NPOS = AH * AW, NTAP = RH * RW;
    const int cin = bwd ? s->k : s->c, cout = bwd ? s->c : s->k;
    const int CB = wg_blocks(cin), KB = wg_blocks(cout), KBP = (KB + 1) / 2, CP = CB * BLK;
    const int CBW = wg_blocks(s->c); /* input blocks of w's own layout */
    const size_t u_pos = (size_t)KBP * CP * 16, row = (size_t)BLK * 16, TAP = (size_t)BLK * BLK;
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
                        for (int i = 0; i < BLK; i++)
                            memset(buf + pos * row + i * 16 + b * BLK, 0, BLK * sizeof(float));
                    continue;
                }
                for (int i = 0; i < BLK; i++) {
                    /* g[tap][8 output lanes] of input channel cb*8 + i */
                    float g[7 * 7][BLK];
                    for (int r = 0; r < RH; r++) {
                        for (int q = 0; q < RW; q++) {
                            /* forward: w's tap (r, q), lanes [i][o]; backward: tap rotated, lanes [o][i] */
                            const int rt = bwd ? RH - 1 - r : r, qt = bwd ? RW - 1 - q : q;
                            const size_t blk = bwd ? (size_t)cb * CBW + kb : (size_t)kb * CBW + cb;
                            const float *src = w8i8o + (blk * NTAP + rt * RW + qt) * TAP + (bwd ? i : i * BLK);
                            for (int o = 0; o < BLK; o++)
                                g[r * RW + q][o] = src[bwd ? o * BLK : o];
                        }
                    }
                    float *bi = buf + i * 16 + b * BLK;
                    for (int half = 0; half < 2; half++) {
                        __m256d t[7][WG_AMAX]; /* rows transformed along w */
                        for (int r = 0; r < RH; r++) {
                            __m256d gr[7];
                            for (int q = 0; q < RW; q++)
                                gr[q] = _mm256_cvtps_pd(_mm_loadu_ps(&g[r * RW + q][half * 4]));
                            wg_filter_1d(AW, RW, gr, t[r]);
                        }
                        for (int j = 0; j < AW; j++) {
                            __m256d col[7], uc[WG_AMAX];
                            for (int r = 0; r < RH; r++)
                                col[r] = t[r][j];
                            wg_filter_1d(AH, RH, col, uc);
                            for (int a = 0; a < AH; a++)
                                _mm_storeu_ps(bi + (size_t)(a * AW + j) * row + half * 4, _mm256_cvtpd_ps(uc[a]));
                        }
                    }
                }
            }
            float *ub = u + (size_t)kbp * CP * 16 + (size_t)cb * row;
            if ((uintptr_t)u % 32 == 0) {
                /* U is written once and read by convolutions later, mostly too large to stay in cache:
                 * streaming stores skip reading its lines first (pack 40% faster on 384 channels) */
                for (int pos = 0; pos < NPOS; pos++)
                    for (size_t f = 0; f < row; f += BLK)
                        _mm256_stream_ps(ub + (size_t)pos * u_pos + f, _mm256_loadu_ps(buf + (size_t)pos * row + f));
            } else {
                for (int pos = 0; pos < NPOS; pos++)
                    memcpy(ub + (size_t)pos * u_pos, buf + (size_t)pos * row, row * sizeof(float));
            }
        }
    }
    _mm_sfence();
    free(buf);
}

/* ---------------------------------------------------------------------------------------------------- */
/* step 1: input transform                                                                              */

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

/* One row of a tile: AW pixels from columns iw0 .. iw0 + AW - 1 of the input row xrow; with clip, zeros
 * outside the tile's columns [j0, j1) that lie in the input. */
WG_INLINE void wg_load_row(const int AW, const float *xrow, int iw0, int clip, int j0, int j1, __m256 *d)
{
    for (int j = 0; j < AW; j++)
        d[j] = !clip || (j >= j0 && j < j1) ? _mm256_loadu_ps(xrow + (ptrdiff_t)(iw0 + j) * BLK) : _mm256_setzero_ps();
}

/* Transforms input block cb of one tile into V: v points at (pos 0, this tile, block cb). The tile is
 * loaded row by row and transformed along w, then along h by columns. */
WG_INLINE void wg_input_tile(const int MH, const int RH, const int MW, const int RW, const wg_plan *p,
                             const float *x8c, wg_tile tl, int cb, float *v)
{
    const int AH = MH + RH - 1, AW = MW + RW - 1;
    const int ih0 = tl.oh0 - p->pt, iw0 = tl.ow0 - p->pl;
    const int H = p->h, W = p->w;
    const size_t x_row = (size_t)W * BLK, x_cb = (size_t)H * x_row;
    /* Rows [i0, i1) and columns [j0, j1) of the tile lie inside the input. */
    const int i0 = ih0 < 0 ? -ih0 : 0, i1 = H - ih0 < AH ? H - ih0 : AH;
    const int j0 = iw0 < 0 ? -iw0 : 0, j1 = W - iw0 < AW ? W - iw0 : AW;
    const float *xc = x8c + ((size_t)tl.n * p->cb + cb) * x_cb;
    __m256 t[WG_AMAX][WG_AMAX];
    if (i0 == 0 && i1 == AH && j0 == 0 && j1 == AW) {
        for (int i = 0; i < AH; i++) {
            wg_load_row(AW, xc + (size_t)(ih0 + i) * x_row, iw0, 0, 0, AW, t[i]);
            wg_input_1d(AW, t[i]);
        }
    } else {
        for (int i = 0; i < AH; i++) {
            if (i < i0 || i >= i1) {
                for (int j = 0; j < AW; j++)
                    t[i][j] = _mm256_setzero_ps();
            } else {
                wg_load_row(AW, xc + (size_t)(ih0 + i) * x_row, iw0, 1, j0, j1, t[i]);
                wg_input_1d(AW, t[i]);
            }
        }
    }
    for (int j = 0; j < AW; j++) {
        __m256 d[WG_AMAX];
        for (int i = 0; i < AH; i++)
            d[i] = t[i][j];
        wg_input_1d(AH, d);
        for (int i = 0; i < AH; i++)
            _mm256_storeu_ps(v + (size_t)(i * AW + j) * p->v_pos, d[i]);
    }
}

/* ---------------------------------------------------------------------------------------------------- */
/* step 2: batched tile products                                                                        */

/* m[i][0..8*nob) = sum over c of v[i][c] * u[c][0..8*nob) for the WG_MR tiles i of a block: v rows vs
 * floats apart, u rows 16 floats apart, m rows ms apart. With pf (a compile-time choice), also
 * prefetches the cp rows of 16 floats at upf into L2: the next slice of U, which comes from L3 or memory
 * (5-8% on the 384-channel layers, whose U does not fit the L3). */
WG_INLINE void wg_kernel(const float *v, size_t vs, const float *u, int cp, float *m, size_t ms, const int nob,
                         const int pf, const float *upf)
{
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00;
    __m256 a30 = a00, a31 = a00, a40 = a00, a41 = a00, a50 = a00, a51 = a00;
    const float *v0 = v, *v1 = v + vs, *v2 = v + 2 * vs, *v3 = v + 3 * vs, *v4 = v + 4 * vs, *v5 = v + 5 * vs;
    for (int c = 0; c < cp; c += BLK) {
#pragma GCC unroll 8
        for (int l = 0; l < BLK; l++) {
            const float *ul = u + (size_t)(c + l) * 16;
            if (pf)
                _mm_prefetch((const char *)(upf + (size_t)(c + l) * 16), _MM_HINT_T1);
            const __m256 u0 = _mm256_loadu_ps(ul);
            const __m256 u1 = nob == 2 ? _mm256_loadu_ps(ul + BLK) : u0;
            __m256 b;
#define WG_ROW(r)                                                                                                      \
    b = _mm256_broadcast_ss(v##r + c + l);                                                                             \
    a##r##0 = _mm256_fmadd_ps(b, u0, a##r##0);                                                                         \
    if (nob == 2)                                                                                                      \
        a##r##1 = _mm256_fmadd_ps(b, u1, a##r##1);
            WG_ROW(0)
            WG_ROW(1)
            WG_ROW(2)
            WG_ROW(3)
            WG_ROW(4)
            WG_ROW(5)
#undef WG_ROW
        }
    }
    _mm256_storeu_ps(m, a00);
    _mm256_storeu_ps(m + ms, a10);
    _mm256_storeu_ps(m + 2 * ms, a20);
    _mm256_storeu_ps(m + 3 * ms, a30);
    _mm256_storeu_ps(m + 4 * ms, a40);
    _mm256_storeu_ps(m + 5 * ms, a50);
    if (nob == 2) {
        _mm256_storeu_ps(m + BLK, a01);
        _mm256_storeu_ps(m + ms + BLK, a11);
        _mm256_storeu_ps(m + 2 * ms + BLK, a21);
        _mm256_storeu_ps(m + 3 * ms + BLK, a31);
        _mm256_storeu_ps(m + 4 * ms + BLK, a41);
        _mm256_storeu_ps(m + 5 * ms + BLK, a51);
    }
}

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

/* All products of one group of ntb tile blocks: positions, then output block pairs, then tile blocks. */
static void wg_gemm(const wg_plan *p, int npos, int ntb, const float *v, const float *u, float *m)
{
    const size_t u_slice = (size_t)p->cp * 16;
    for (int pos = 0; pos < npos; pos++) {
        const float *vp = v + (size_t)pos * p->v_pos;
        float *mp = m + (size_t)pos * p->m_pos;
        for (int kbp = 0; kbp < p->kbp; kbp++) {
            const float *uk = u + (size_t)pos * p->u_pos + (size_t)kbp * u_slice;
            const float *unext = pos == npos - 1 && kbp == p->kbp - 1 ? NULL : uk + u_slice;
            if (p->kb - 2 * kbp >= 2)
                wg_gemm_slice(p, ntb, vp, uk, mp + (size_t)kbp * 16, unext, 2);
            else
                wg_gemm_slice(p, ntb, vp, uk, mp + (size_t)kbp * 16, unext, 1);
        }
    }
}

/* ---------------------------------------------------------------------------------------------------- */
/* step 3: output transform and epilogues                                                               */

enum { WG_EPI_NONE, WG_EPI_STATS, WG_EPI_BN_RELU, WG_EPI_ADD };

typedef struct wg_epi_args {
    double *part;               /* WG_EPI_STATS: [group][kb][sum 8, sumsq 8] */
    const float *scale, *shift; /* WG_EPI_BN_RELU: [kb * 8], zero past k */
} wg_epi_args;

/* Stores one output vector at yp with the epilogue: mask clears the padding lanes of the last block
 * (masked set; WG_EPI_ADD keeps their old values instead); scale and shift are the block's folded
 * BatchNorm; st the block's statistics (sum lo/hi, sumsq lo/hi). */
WG_INLINE void wg_store_out(float *yp, __m256 val, const int epi, __m256 mask, int masked, __m256 scale, __m256 shift,
                            __m256d *st)
{
    if (epi == WG_EPI_ADD) {
        const __m256 old = _mm256_loadu_ps(yp);
        const __m256 sum = _mm256_add_ps(old, val);
        val = masked ? _mm256_blendv_ps(old, sum, mask) : sum;
    } else if (epi == WG_EPI_BN_RELU) {
        val = _mm256_max_ps(_mm256_fmadd_ps(val, scale, shift), _mm256_setzero_ps());
    } else if (masked) {
        val = _mm256_and_ps(val, mask);
    }
    _mm256_storeu_ps(yp, val);
    if (epi == WG_EPI_STATS) {
        const __m256d lo = lo_pd(val), hi = hi_pd(val);
        st[0] = _mm256_add_pd(st[0], lo);
        st[1] = _mm256_add_pd(st[1], hi);
        st[2] = _mm256_fmadd_pd(lo, lo, st[2]);
        st[3] = _mm256_fmadd_pd(hi, hi, st[3]);
    }
}

/* Transforms (tile, output block kb) back from M (m at pos 0, this tile, block kb) into y, clipped to the
 * output (tiles at the right and bottom edges), with the epilogue of wg_store_out. Along h first: MH
 * rows of AW values, then each row along w. */
WG_INLINE void wg_output_tile(const int MH, const int RH, const int MW, const int RW, const wg_plan *p,
                              const float *m, float *y8c, wg_tile tl, int kb, const int epi, __m256 mask,
                              int masked, __m256 scale, __m256 shift, __m256d *st)
{
    const int AH = MH + RH - 1, AW = MW + RW - 1;
    const int mi = p->oh - tl.oh0 < MH ? p->oh - tl.oh0 : MH, mj = p->ow - tl.ow0 < MW ? p->ow - tl.ow0 : MW;
    const size_t y_row = (size_t)p->ow * BLK;
    float *yb = y8c + (((size_t)tl.n * p->kb + kb) * p->oh + tl.oh0) * y_row + (size_t)tl.ow0 * BLK;
    __m256 t[WG_AMAX][WG_AMAX]; /* [output row][position along w] */
    for (int j = 0; j < AW; j++) {
        __m256 s[WG_AMAX], o[WG_AMAX];
        for (int i = 0; i < AH; i++)
            s[i] = _mm256_loadu_ps(m + (size_t)(i * AW + j) * p->m_pos);
        wg_output_1d(MH, AH, s, o);
        for (int i = 0; i < MH; i++)
            t[i][j] = o[i];
    }
    if (mi == MH && mj == MW) {
        for (int i = 0; i < MH; i++) {
            __m256 o[WG_AMAX];
            wg_output_1d(MW, AW, t[i], o);
            for (int j = 0; j < MW; j++)
                wg_store_out(yb + (size_t)i * y_row + (size_t)j * BLK, o[j], epi, mask, masked, scale, shift, st);
        }
    } else {
        for (int i = 0; i < mi; i++) {
            __m256 o[WG_AMAX];
            wg_output_1d(MW, AW, t[i], o);
            for (int j = 0; j < mj; j++)
                wg_store_out(yb + (size_t)i * y_row + (size_t)j * BLK, o[j], epi, mask, masked, scale, shift, st);
        }
    }
}

/* ---------------------------------------------------------------------------------------------------- */
/* driver                                                                                               */

/* Run by every thread of the caller's parallel region (its loop over groups is an orphaned `omp for`):
 * each entry point opens its own region around this, so that the region's outlined body is compiled
 * with the variant's sizes and the epilogue as constants. The transforms sweep one channel block over
 * all the group's tiles at a time: the tiles of a group are neighbours along rows, so the input rows
 * (and output rows) are read (written) as a few sequential streams. */
WG_INLINE void wg_run(const int MH, const int RH, const int MW, const int RW, const wg_plan *p, const float *x8c,
                      const float *u, float *y8c, const int epi, const wg_epi_args *ea, const char *who)
{
    const int NPOS = (MH + RH - 1) * (MW + RW - 1);
    const size_t v_floats = (size_t)NPOS * p->v_pos, m_floats = (size_t)NPOS * p->m_pos;
    const int last_masked = p->k % BLK != 0;
    const __m256 last_mask = lane_mask(p->k, p->kb - 1);
    float *v = NULL, *m = NULL;
    wg_tile *tiles = NULL;
#pragma omp for schedule(static)
    for (int g = 0; g < p->ng; g++) {
        if (!v) {
            v = wg_alloc((v_floats + m_floats) * sizeof(float) + (size_t)p->t * sizeof(wg_tile), who);
            m = v + v_floats;
            tiles = (wg_tile *)(m + m_floats);
        }
        const int t0 = g * p->t, nt = p->nt - t0 < p->t ? p->nt - t0 : p->t;
        const int ntb = (nt + WG_MR - 1) / WG_MR;
        for (int i = 0; i < nt; i++)
            tiles[i] = wg_tile_at(MH, MW, p, t0 + i);
        for (int cb = 0; cb < p->cb; cb++)
            for (int i = 0; i < nt; i++)
                wg_input_tile(MH, RH, MW, RW, p, x8c, tiles[i], cb, v + (size_t)i * p->cp + (size_t)cb * BLK);
        /* Rows of the last tile block past the group's tiles: zeros, so that the products stay finite. */
        if (nt < ntb * WG_MR)
            for (int pos = 0; pos < NPOS; pos++)
                memset(v + (size_t)pos * p->v_pos + (size_t)nt * p->cp, 0,
                       (size_t)(ntb * WG_MR - nt) * p->cp * sizeof(float));
        wg_gemm(p, NPOS, ntb, v, u, m);
        for (int kb = 0; kb < p->kb; kb++) {
            const int masked = last_masked && kb == p->kb - 1;
            __m256 scale = _mm256_setzero_ps(), shift = scale;
            if (epi == WG_EPI_BN_RELU) {
                scale = _mm256_loadu_ps(ea->scale + (size_t)kb * BLK);
                shift = _mm256_loadu_ps(ea->shift + (size_t)kb * BLK);
            }
            __m256d st[4] = {_mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd()};
            for (int i = 0; i < nt; i++)
                wg_output_tile(MH, RH, MW, RW, p, m + (size_t)i * p->kp + (size_t)kb * BLK, y8c, tiles[i], kb, epi,
                               last_mask, masked, scale, shift, st);
            if (epi == WG_EPI_STATS) {
                double *pk = ea->part + ((size_t)g * p->kb + kb) * 2 * BLK;
                for (int h = 0; h < 4; h++)
                    _mm256_storeu_pd(pk + 4 * h, st[h]);
            }
        }
    }
    free(v);
}

/* ---------------------------------------------------------------------------------------------------- */
/* entry points                                                                                         */

/* Per-group statistics partials: [group][kb][sum 8, sumsq 8]. */
static double *wg_stats_alloc(const wg_plan *p, const char *who)
{
    return wg_alloc((size_t)p->ng * p->kb * 2 * BLK * sizeof(double), who);
}

/* sum[k], sumsq[k] from the group partials, each channel block reduced by one thread over the groups in
 * order. */
static void wg_stats_reduce(const wg_plan *p, const double *part, double *sum, double *sumsq)
{
#pragma omp parallel for schedule(static)
    for (int kb = 0; kb < p->kb; kb++) {
        __m256d s0 = _mm256_setzero_pd(), s1 = s0, q0 = s0, q1 = s0;
        for (int g = 0; g < p->ng; g++) {
            const double *pk = part + ((size_t)g * p->kb + kb) * 2 * BLK;
            s0 = _mm256_add_pd(s0, _mm256_loadu_pd(pk));
            s1 = _mm256_add_pd(s1, _mm256_loadu_pd(pk + 4));
            q0 = _mm256_add_pd(q0, _mm256_loadu_pd(pk + 8));
            q1 = _mm256_add_pd(q1, _mm256_loadu_pd(pk + 12));
        }
        double ls[BLK], lq[BLK];
        _mm256_storeu_pd(ls, s0);
        _mm256_storeu_pd(ls + 4, s1);
        _mm256_storeu_pd(lq, q0);
        _mm256_storeu_pd(lq + 4, q1);
        for (int l = 0; l < BLK && kb * BLK + l < p->k; l++) {
            sum[kb * BLK + l] = ls[l];
            sumsq[kb * BLK + l] = lq[l];
        }
    }
}

/* BatchNorm folded per output channel, in double then rounded: scale at [0, kb*8), shift after it, zero
 * past k (the padding lanes then stay relu(0) = 0). */
static float *wg_bn_coef(const incv3_conv_shape *s, const float *gamma, const float *beta, const float *mean,
                         const float *var, float eps, const char *who)
{
    const int KB = wg_blocks(s->k);
    float *coef = wg_alloc((size_t)KB * 2 * BLK * sizeof(float), who);
    memset(coef, 0, (size_t)KB * 2 * BLK * sizeof(float));
    for (int k = 0; k < s->k; k++) {
        const double sc = (double)gamma[k] / sqrt((double)var[k] + (double)eps);
        coef[k] = (float)sc;
        coef[(size_t)KB * BLK + k] = (float)((double)beta[k] - (double)mean[k] * sc);
    }
    return coef;
}

/* The entry points of variant V = F(MH x MW, RH x RW). Every OpenMP region is opened here, in the
 * instantiated function itself, not in an inlined helper: a region is outlined before inlining, so one
 * opened inside wg_run would be compiled once with the sizes as run-time values. */
#define WG_DEFINE(V, MH, RH, MW, RW)                                                                                  \
    int conv_winograd_##V##_supports__avx2(const incv3_conv_shape *s)                                                 \
    {                                                                                                                 \
        return wg_supports(s, RH, RW);                                                                                \
    }                                                                                                                 \
    size_t conv_winograd_##V##_fwd_weights_floats__avx2(const incv3_conv_shape *s)                                    \
    {                                                                                                                 \
        return wg_u_floats(MH, RH, MW, RW, s->c, s->k);                                                               \
    }                                                                                                                 \
    void conv_winograd_##V##_pack_fwd__avx2(const incv3_conv_shape *s, const float *w8i8o, float *u)                  \
    {                                                                                                                 \
        _Pragma("omp parallel") wg_pack(MH, RH, MW, RW, s, w8i8o, u, 0, "conv_winograd_" #V "_pack_fwd__avx2");       \
    }                                                                                                                 \
    size_t conv_winograd_##V##_bwd_data_weights_floats__avx2(const incv3_conv_shape *s)                               \
    {                                                                                                                 \
        return wg_u_floats(MH, RH, MW, RW, s->k, s->c);                                                               \
    }                                                                                                                 \
    void conv_winograd_##V##_pack_bwd_data__avx2(const incv3_conv_shape *s, const float *w8i8o, float *u)             \
    {                                                                                                                 \
        _Pragma("omp parallel") wg_pack(MH, RH, MW, RW, s, w8i8o, u, 1, "conv_winograd_" #V "_pack_bwd_data__avx2");  \
    }                                                                                                                 \
    void conv_fwd_f32_winograd_##V##__avx2(const incv3_conv_shape *s, const float *x8c, const float *u, float *y8c)   \
    {                                                                                                                 \
        const wg_plan p = wg_make_plan(MH, RH, MW, RW, s);                                                            \
        _Pragma("omp parallel")                                                                                       \
            wg_run(MH, RH, MW, RW, &p, x8c, u, y8c, WG_EPI_NONE, NULL, "conv_fwd_f32_winograd_" #V "__avx2");         \
    }                                                                                                                 \
    void conv_bwd_data_f32_winograd_##V##__avx2(const incv3_conv_shape *s, const float *dy8c, const float *u,         \
                                                float *dx8c, int accumulate)                                         \
    {                                                                                                                 \
        const incv3_conv_shape b = wg_bwd_shape(s);                                                                   \
        const wg_plan p = wg_make_plan(MH, RH, MW, RW, &b);                                                           \
        const char *who = "conv_bwd_data_f32_winograd_" #V "__avx2";                                                  \
        if (accumulate) {                                                                                             \
            _Pragma("omp parallel") wg_run(MH, RH, MW, RW, &p, dy8c, u, dx8c, WG_EPI_ADD, NULL, who);                 \
        } else {                                                                                                      \
            _Pragma("omp parallel") wg_run(MH, RH, MW, RW, &p, dy8c, u, dx8c, WG_EPI_NONE, NULL, who);                \
        }                                                                                                             \
    }                                                                                                                 \
    void conv_fwd_stats_f32_winograd_##V##__avx2(const incv3_conv_shape *s, const float *x8c, const float *u,        \
                                                 float *y8c, double *sum, double *sumsq)                             \
    {                                                                                                                 \
        const char *who = "conv_fwd_stats_f32_winograd_" #V "__avx2";                                                 \
        const wg_plan p = wg_make_plan(MH, RH, MW, RW, s);                                                            \
        const wg_epi_args ea = {wg_stats_alloc(&p, who), NULL, NULL};                                                 \
        _Pragma("omp parallel") wg_run(MH, RH, MW, RW, &p, x8c, u, y8c, WG_EPI_STATS, &ea, who);                      \
        wg_stats_reduce(&p, ea.part, sum, sumsq);                                                                     \
        free(ea.part);                                                                                                \
    }                                                                                                                 \
    void conv_bn_relu_fwd_infer_f32_winograd_##V##__avx2(const incv3_conv_shape *s, const float *x8c, const float *u, \
                                                         float *y8c, const float *gamma, const float *beta,          \
                                                         const float *mean, const float *var, float eps)             \
    {                                                                                                                 \
        const char *who = "conv_bn_relu_fwd_infer_f32_winograd_" #V "__avx2";                                         \
        const wg_plan p = wg_make_plan(MH, RH, MW, RW, s);                                                            \
        float *coef = wg_bn_coef(s, gamma, beta, mean, var, eps, who);                                                \
        const wg_epi_args ea = {NULL, coef, coef + (size_t)p.kb * BLK};                                               \
        _Pragma("omp parallel") wg_run(MH, RH, MW, RW, &p, x8c, u, y8c, WG_EPI_BN_RELU, &ea, who);                    \
        free(coef);                                                                                                   \
    }

/*        tag       MH RH MW RW */
WG_DEFINE(f2x2_3x3, 2, 3, 2, 3)
WG_DEFINE(f4x4_3x3, 4, 3, 4, 3)
WG_DEFINE(f6x6_3x3, 6, 3, 6, 3)
WG_DEFINE(f2_1x3, 1, 1, 2, 3)
WG_DEFINE(f4_1x3, 1, 1, 4, 3)
WG_DEFINE(f2_3x1, 2, 3, 1, 1)
WG_DEFINE(f4_3x1, 4, 3, 1, 1)
WG_DEFINE(f2_1x7, 1, 1, 2, 7)
WG_DEFINE(f4_1x7, 1, 1, 4, 7)
WG_DEFINE(f2_7x1, 2, 7, 1, 1)
WG_DEFINE(f4_7x1, 4, 7, 1, 1)
