/* Winograd convolution, AArch64 NEON, NCHW8c (see conv_winograd_neon.h).
 *
 * The structure of avx2/conv_winograd_avx2.c, whose comment explains it in full: one driver, always
 * inlined with F(MH x MW, RH x RW) as compile-time constants and instantiated by the entry points at the
 * end; the output tiles of all images cut into groups of T tiles (from the shape alone), each group run
 * by one thread as (1) input transform into V[pos][tile][c], (2) the batched products
 * M[pos][tile][k] = V[pos][tile][:] . U[pos][:][k], (3) output transform into y with the epilogue.
 *
 * What differs is the register blocking of step 2, sized for AArch64's 32 q registers: 5 tiles x 16
 * output channels (an output block pair, 4 q registers per tile) are 20 accumulators. Per 4 input
 * channels, each tile's 4 V values are one q load, consumed by lane (fmla by element), so a row of U
 * (16 floats, 4 q registers) is loaded once per input channel and serves 5 tiles: 20 + 5 + 4 = 29 live
 * registers, 20 FMAs per 4 U loads and 1.25 V loads (inline assembly: wgn_kernel says why). 6 tiles
 * (AVX2's block) would need 24 + 6 + 4 = 34 with the lane form, or one broadcast load per FMA pair (ld1r)
 * as on AVX2; 4 tiles leave 16 accumulators, marginal for cores with four 128-bit FMA pipes of 4 cycles'
 * latency. The transforms work on 4-lane halves of each 8-channel block (winograd_transforms_neon.h).
 *
 * The numbers match the AVX2 kernels operation for operation: the same transforms and FMAs, products
 * summed over input channels in order into one accumulator per output, statistics per lane in tile and
 * pixel order, groups reduced in order. Only the tile count per group differs (a multiple of 5, not 6):
 * that changes no output value (each output's sums do not depend on the grouping), only the grouping of
 * the statistics' double partials. (Checked: U, y, dx and the BatchNorm+ReLU outputs came out bitwise
 * those of the AVX2 kernels on some 500 shapes of every variant.)
 */
#include <arm_neon.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "neon/conv_winograd_neon.h"
#include "neon/winograd_transforms_neon.h"

#define BLK 8
#define WG_AMAX 10 /* largest alpha */
#define WG_MR 5    /* tiles per micro-kernel block */

/* Tile-group sizing, as in the AVX2 kernels (wgn_group_tiles): the bytes V and M of one group may take
 * (a part of the L2: 256 KiB of the 512 KiB to 1 MiB of current Neoverse and Cortex-A7x cores, the AVX2
 * figure, not measured here), the size of U past which it streams from memory, the group size then, and
 * the least number of groups a call is cut into (a constant, not the thread count: the groups decide the
 * summation order of the statistics). */
#ifndef WG_L2_BYTES
#define WG_L2_BYTES (256 * 1024)
#endif
#ifndef WG_U_FAR_BYTES
#define WG_U_FAR_BYTES (16u << 20)
#endif
#ifndef WG_FAR_TILES
#define WG_FAR_TILES 50
#endif
#ifndef WG_MIN_GROUPS
#define WG_MIN_GROUPS 8
#endif

static void *wgn_alloc(size_t bytes, const char *who)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0 || !p) {
        fprintf(stderr, "%s: out of memory for %zu bytes of scratch\n", who, bytes);
        abort();
    }
    return p;
}

static inline int wgn_blocks(int c)
{
    return (c + BLK - 1) / BLK;
}

/* ---------------------------------------------------------------------------------------------------- */
/* plan                                                                                                 */

typedef struct wgn_plan {
    int n, h, w, oh, ow, pt, pl; /* of the convolution run (dy -> dx for backward-data) */
    int c, k;
    int cb, kb, kbp; /* input blocks, output blocks, output block pairs */
    int cp, kp;      /* input channels padded to blocks (V row), output channels padded (M row) */
    int th, tw;      /* tiles per image column / row */
    int nt, t, ng;   /* tiles in all, tiles per group, groups */
    size_t v_pos, m_pos, u_pos; /* floats per position of V, M, U */
} wgn_plan;

/* Tiles per group from the shape alone, by the rule of the AVX2 kernels' wg_group_tiles, in multiples of
 * WG_MR. */
static int wgn_group_tiles(int npos, int cp, int kp, int nt)
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

WGN_INLINE wgn_plan wgn_make_plan(const int MH, const int RH, const int MW, const int RW, const incv3_conv_shape *s)
{
    const int AH = MH + RH - 1, AW = MW + RW - 1;
    wgn_plan p;
    p.n = s->n;
    p.h = s->h;
    p.w = s->w;
    p.oh = s->oh;
    p.ow = s->ow;
    p.pt = s->pad_top;
    p.pl = s->pad_left;
    p.c = s->c;
    p.k = s->k;
    p.cb = wgn_blocks(s->c);
    p.kb = wgn_blocks(s->k);
    p.kbp = (p.kb + 1) / 2;
    p.cp = p.cb * BLK;
    p.kp = p.kb * BLK;
    p.th = (s->oh + MH - 1) / MH;
    p.tw = (s->ow + MW - 1) / MW;
    p.nt = s->n * p.th * p.tw;
    p.t = wgn_group_tiles(AH * AW, p.cp, p.kp, p.nt);
    p.ng = (p.nt + p.t - 1) / p.t;
    p.v_pos = (size_t)p.t * p.cp;
    p.m_pos = (size_t)p.t * p.kp;
    p.u_pos = (size_t)p.kbp * p.cp * 16;
    return p;
}

/* The forward convolution that computes backward-data: dy (k channels, oh x ow) correlated with the
 * rotated filter, padded by kernel - 1 - pad on each side, gives dx (c channels, h x w). */
static incv3_conv_shape wgn_bwd_shape(const incv3_conv_shape *s)
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

WGN_INLINE int wgn_supports(const incv3_conv_shape *s, const int RH, const int RW)
{
    return s->n >= 1 && s->c >= 1 && s->k >= 1 && s->stride_h == 1 && s->stride_w == 1 && s->kh == RH &&
           s->kw == RW && s->pad_top >= 0 && s->pad_top <= RH - 1 && s->pad_bottom >= 0 &&
           s->pad_bottom <= RH - 1 && s->pad_left >= 0 && s->pad_left <= RW - 1 && s->pad_right >= 0 &&
           s->pad_right <= RW - 1 && s->h >= 1 && s->w >= 1 && s->oh == s->h + s->pad_top + s->pad_bottom - RH + 1 &&
           s->ow == s->w + s->pad_left + s->pad_right - RW + 1 && s->oh >= 1 && s->ow >= 1;
}

/* ---------------------------------------------------------------------------------------------------- */
/* filter transform (pack)                                                                              */

/* U[pos][kbp][cp][16], as for AVX2: the 16 output lanes of each (output block pair, input channel)
 * contiguous, zero past k and past c. */
WGN_INLINE size_t wgn_u_floats(const int MH, const int RH, const int MW, const int RW, int c, int k)
{
    const int AH = MH + RH - 1, AW = MW + RW - 1;
    return (size_t)AH * AW * ((wgn_blocks(k) + 1) / 2) * wgn_blocks(c) * BLK * 16;
}

/* Transforms the weights into U, run by every thread of the caller's parallel region; bwd 0 the forward
 * filter, 1 the backward-data one (taps rotated by 180 degrees, channels swapped), as wg_pack of the AVX2
 * kernels. One (output block pair, input block) at a time goes through a per-thread buffer and is
 * copied out as one 512-byte row per position; every entry of U is written. */
WGN_INLINE void wgn_pack(const int MH, const int RH, const int MW, const int RW, const incv3_conv_shape *s,
                         const float *w8i8o, float *u, const int bwd, const char *who)
{
    const int AH = MH + RH - 1, AW = MW + RW - 1, NPOS = AH * AW, NTAP = RH * RW;
    const int cin = bwd ? s->k : s->c, cout = bwd ? s->c : s->k;
    const int CB = wgn_blocks(cin), KB = wgn_blocks(cout), KBP = (KB + 1) / 2, CP = CB * BLK;
    const int CBW = wgn_blocks(s->c); /* input blocks of w's own layout */
    const size_t u_pos = (size_t)KBP * CP * 16, row = (size_t)BLK * 16, TAP = (size_t)BLK * BLK;
    float *buf = NULL; /* [pos][8 input lanes][16 output lanes] */
#pragma omp for collapse(2) schedule(static)
    for (int kbp = 0; kbp < KBP; kbp++) {
        for (int cb = 0; cb < CB; cb++) {
            if (!buf)
                buf = wgn_alloc((size_t)NPOS * row * sizeof(float), who);
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
                    /* two output lanes at a time in double */
                    for (int qd = 0; qd < BLK / 2; qd++) {
                        float64x2_t t[7][WG_AMAX]; /* rows transformed along w */
                        for (int r = 0; r < RH; r++) {
                            float64x2_t gr[7];
                            for (int q = 0; q < RW; q++)
                                gr[q] = vcvt_f64_f32(vld1_f32(&g[r * RW + q][qd * 2]));
                            wgn_filter_1d(AW, RW, gr, t[r]);
                        }
                        for (int j = 0; j < AW; j++) {
                            float64x2_t col[7], uc[WG_AMAX];
                            for (int r = 0; r < RH; r++)
                                col[r] = t[r][j];
                            wgn_filter_1d(AH, RH, col, uc);
                            for (int a = 0; a < AH; a++)
                                vst1_f32(bi + (size_t)(a * AW + j) * row + qd * 2, vcvt_f32_f64(uc[a]));
                        }
                    }
                }
            }
            float *ub = u + (size_t)kbp * CP * 16 + (size_t)cb * row;
            for (int pos = 0; pos < NPOS; pos++)
                memcpy(ub + (size_t)pos * u_pos, buf + (size_t)pos * row, row * sizeof(float));
        }
    }
    free(buf);
}

/* ---------------------------------------------------------------------------------------------------- */
/* step 1: input transform                                                                              */

/* Output origin of a tile: image n, first output row oh0 and column ow0. */
typedef struct wgn_tile {
    int n, oh0, ow0;
} wgn_tile;

WGN_INLINE wgn_tile wgn_tile_at(const int MH, const int MW, const wgn_plan *p, int tile)
{
    const int tpi = p->th * p->tw, rem = tile % tpi;
    const wgn_tile t = {tile / tpi, (rem / p->tw) * MH, (rem % p->tw) * MW};
    return t;
}

/* One row of a tile, 4 lanes: AW pixels from columns iw0 .. iw0 + AW - 1 of the input row xrow (already
 * offset to the half's lanes); with clip, zeros outside the tile's columns [j0, j1) that lie in the
 * input. */
WGN_INLINE void wgn_load_row(const int AW, const float *xrow, int iw0, int clip, int j0, int j1, float32x4_t *d)
{
    for (int j = 0; j < AW; j++)
        d[j] = !clip || (j >= j0 && j < j1) ? vld1q_f32(xrow + (ptrdiff_t)(iw0 + j) * BLK) : vdupq_n_f32(0.0f);
}

/* Transforms input block cb of one tile into V (v at pos 0, this tile, block cb), one 4-lane half at a
 * time: rows along w, then columns along h. */
WGN_INLINE void wgn_input_tile(const int MH, const int RH, const int MW, const int RW, const wgn_plan *p,
                               const float *x8c, wgn_tile tl, int cb, float *v)
{
    const int AH = MH + RH - 1, AW = MW + RW - 1;
    const int ih0 = tl.oh0 - p->pt, iw0 = tl.ow0 - p->pl;
    const int H = p->h, W = p->w;
    const size_t x_row = (size_t)W * BLK, x_cb = (size_t)H * x_row;
    /* Rows [i0, i1) and columns [j0, j1) of the tile lie inside the input. */
    const int i0 = ih0 < 0 ? -ih0 : 0, i1 = H - ih0 < AH ? H - ih0 : AH;
    const int j0 = iw0 < 0 ? -iw0 : 0, j1 = W - iw0 < AW ? W - iw0 : AW;
    const int inside = i0 == 0 && i1 == AH && j0 == 0 && j1 == AW;
    for (int h = 0; h < 2; h++) {
        const float *xc = x8c + ((size_t)tl.n * p->cb + cb) * x_cb + h * 4;
        float32x4_t t[WG_AMAX][WG_AMAX];
        if (inside) {
            for (int i = 0; i < AH; i++) {
                wgn_load_row(AW, xc + (size_t)(ih0 + i) * x_row, iw0, 0, 0, AW, t[i]);
                wgn_input_1d(AW, t[i]);
            }
        } else {
            for (int i = 0; i < AH; i++) {
                if (i < i0 || i >= i1) {
                    for (int j = 0; j < AW; j++)
                        t[i][j] = vdupq_n_f32(0.0f);
                } else {
                    wgn_load_row(AW, xc + (ptrdiff_t)(ih0 + i) * (ptrdiff_t)x_row, iw0, 1, j0, j1, t[i]);
                    wgn_input_1d(AW, t[i]);
                }
            }
        }
        for (int j = 0; j < AW; j++) {
            float32x4_t d[WG_AMAX];
            for (int i = 0; i < AH; i++)
                d[i] = t[i][j];
            wgn_input_1d(AH, d);
            for (int i = 0; i < AH; i++)
                vst1q_f32(v + (size_t)(i * AW + j) * p->v_pos + h * 4, d[i]);
        }
    }
}

/* ---------------------------------------------------------------------------------------------------- */
/* step 2: batched tile products                                                                        */

/* m[i][0..8*nob) = sum over c of v[i][c] * u[c][0..8*nob) for the WG_MR tiles i of a block: v rows vs
 * floats apart, u rows 16 floats apart, m rows ms apart; each sum in channel order into one accumulator
 * (cp a multiple of 8). With pf (a compile-time choice), also prefetches the cp rows of 16 floats at upf
 * into L2: the next slice of U, which the next (position, block pair) streams from L3 or memory.
 *
 * The loop is inline assembly with the registers fixed: accumulators v8-v27 (tile t, quarter j in
 * v(8 + 4t + j)), the 5 tiles' 4 channels in v0-v4, a row of U in v28-v31. From the same code in
 * intrinsics (kept below under WGN_NO_ASM, the same arithmetic) GCC 12 -O2 either hoists all 16 U
 * vectors of a 4-channel step and spills accumulators inside the loop, or, with the loads pinned in
 * place, still rotates accumulators between registers across the back edge: 8 extra vector moves per
 * 80 FMAs, on the same pipes. */
#ifndef WGN_NO_ASM

#define WGN_S(x) #x
#define WGN_F(acc, uq, x, l) "fmla v" WGN_S(acc) ".4s, v" WGN_S(uq) ".4s, v" WGN_S(x) ".s[" WGN_S(l) "]\n\t"
/* accumulator of tile t, quarter j */
#define WGN_ACC0_0 8
#define WGN_ACC0_1 9
#define WGN_ACC0_2 10
#define WGN_ACC0_3 11
#define WGN_ACC1_0 12
#define WGN_ACC1_1 13
#define WGN_ACC1_2 14
#define WGN_ACC1_3 15
#define WGN_ACC2_0 16
#define WGN_ACC2_1 17
#define WGN_ACC2_2 18
#define WGN_ACC2_3 19
#define WGN_ACC3_0 20
#define WGN_ACC3_1 21
#define WGN_ACC3_2 22
#define WGN_ACC3_3 23
#define WGN_ACC4_0 24
#define WGN_ACC4_1 25
#define WGN_ACC4_2 26
#define WGN_ACC4_3 27
/* tile t's FMAs for input channel lane l: 4 quarters (nob 2) or 2 */
#define WGN_TILE2(t, l)                                                                                                \
    WGN_F(WGN_ACC##t##_0, 28, t, l)                                                                                   \
    WGN_F(WGN_ACC##t##_1, 29, t, l) WGN_F(WGN_ACC##t##_2, 30, t, l) WGN_F(WGN_ACC##t##_3, 31, t, l)
#define WGN_TILE1(t, l) WGN_F(WGN_ACC##t##_0, 28, t, l) WGN_F(WGN_ACC##t##_1, 29, t, l)
/* input channel l of the 4: its U row (16 or 8 floats at byte offset o, o2 = o + 32), the 5 tiles' FMAs */
#define WGN_LANE2(l, o, o2)                                                                                            \
    "ldp q28, q29, [%[u], #" WGN_S(o) "]\n\t"                                                                         \
    "ldp q30, q31, [%[u], #" WGN_S(o2) "]\n\t" WGN_TILE2(0, l) WGN_TILE2(1, l) WGN_TILE2(2, l) WGN_TILE2(3, l)       \
        WGN_TILE2(4, l)
#define WGN_LANE1(l, o, o2)                                                                                            \
    "ldp q28, q29, [%[u], #" WGN_S(o) "]\n\t" WGN_TILE1(0, l) WGN_TILE1(1, l) WGN_TILE1(2, l) WGN_TILE1(3, l)        \
        WGN_TILE1(4, l)
#define WGN_PF(o) "prfm pldl2keep, [%[pf], #" WGN_S(o) "]\n\t"
#define WGN_NOPF(o) ""
#define WGN_LDV                                                                                                        \
    "ldr q0, [%[v0]], #16\n\t"                                                                                         \
    "ldr q1, [%[v1]], #16\n\t"                                                                                         \
    "ldr q2, [%[v2]], #16\n\t"                                                                                         \
    "ldr q3, [%[v3]], #16\n\t"                                                                                         \
    "ldr q4, [%[v4]], #16\n\t"
#define WGN_ZERO                                                                                                       \
    "movi v8.4s, #0\n\t movi v9.4s, #0\n\t movi v10.4s, #0\n\t movi v11.4s, #0\n\t"                                    \
    "movi v12.4s, #0\n\t movi v13.4s, #0\n\t movi v14.4s, #0\n\t movi v15.4s, #0\n\t"                                  \
    "movi v16.4s, #0\n\t movi v17.4s, #0\n\t movi v18.4s, #0\n\t movi v19.4s, #0\n\t"                                  \
    "movi v20.4s, #0\n\t movi v21.4s, #0\n\t movi v22.4s, #0\n\t movi v23.4s, #0\n\t"                                  \
    "movi v24.4s, #0\n\t movi v25.4s, #0\n\t movi v26.4s, #0\n\t movi v27.4s, #0\n\t"
#define WGN_ST2                                                                                                        \
    "stp q8, q9, [%[m]]\n\t stp q10, q11, [%[m], #32]\n\t add %[m], %[m], %[ms]\n\t"                                   \
    "stp q12, q13, [%[m]]\n\t stp q14, q15, [%[m], #32]\n\t add %[m], %[m], %[ms]\n\t"                                 \
    "stp q16, q17, [%[m]]\n\t stp q18, q19, [%[m], #32]\n\t add %[m], %[m], %[ms]\n\t"                                 \
    "stp q20, q21, [%[m]]\n\t stp q22, q23, [%[m], #32]\n\t add %[m], %[m], %[ms]\n\t"                                 \
    "stp q24, q25, [%[m]]\n\t stp q26, q27, [%[m], #32]\n\t"
#define WGN_ST1                                                                                                        \
    "stp q8, q9, [%[m]]\n\t add %[m], %[m], %[ms]\n\t"                                                                 \
    "stp q12, q13, [%[m]]\n\t add %[m], %[m], %[ms]\n\t"                                                               \
    "stp q16, q17, [%[m]]\n\t add %[m], %[m], %[ms]\n\t"                                                               \
    "stp q20, q21, [%[m]]\n\t add %[m], %[m], %[ms]\n\t"                                                               \
    "stp q24, q25, [%[m]]\n\t"
/* the whole kernel: zero, loop over groups of 4 input channels (n of them, at least 2), store */
#define WGN_ASM(LANE, PF, ST)                                                                                          \
    __asm__ volatile(WGN_ZERO "1:\n\t" WGN_LDV PF(0) LANE(0, 0, 32) PF(64) LANE(1, 64, 96) PF(128)                    \
                         LANE(2, 128, 160) PF(192) LANE(3, 192, 224)                                                   \
                         "add %[u], %[u], #256\n\t"                                                                    \
                         "add %[pf], %[pf], #256\n\t"                                                                  \
                         "subs %[n], %[n], #1\n\t"                                                                     \
                         "b.ne 1b\n\t" ST                                                                              \
                     : [v0] "+r"(v0), [v1] "+r"(v1), [v2] "+r"(v2), [v3] "+r"(v3), [v4] "+r"(v4), [u] "+r"(u),      \
                       [n] "+r"(n), [m] "+r"(m), [pf] "+r"(upf)                                                        \
                     : [ms] "r"(msb)                                                                                   \
                     : "cc", "memory", "v0", "v1", "v2", "v3", "v4", "v8", "v9", "v10", "v11", "v12", "v13", "v14",   \
                       "v15", "v16", "v17", "v18", "v19", "v20", "v21", "v22", "v23", "v24", "v25", "v26", "v27",     \
                       "v28", "v29", "v30", "v31")

WGN_INLINE void wgn_kernel(const float *v, size_t vs, const float *u, int cp, float *m, size_t ms, const int nob,
                           const int pf, const float *upf)
{
    const float *v0 = v, *v1 = v + vs, *v2 = v + 2 * vs, *v3 = v + 3 * vs, *v4 = v + 4 * vs;
    uint64_t n = (uint64_t)cp / 4;
    const uint64_t msb = (uint64_t)ms * sizeof(float);
    if (nob == 2) {
        if (pf)
            WGN_ASM(WGN_LANE2, WGN_PF, WGN_ST2);
        else
            WGN_ASM(WGN_LANE2, WGN_NOPF, WGN_ST2);
    } else {
        if (pf)
            WGN_ASM(WGN_LANE1, WGN_PF, WGN_ST1);
        else
            WGN_ASM(WGN_LANE1, WGN_NOPF, WGN_ST1);
    }
}

#else /* WGN_NO_ASM: the same kernel in intrinsics */

/* An empty asm with a memory clobber: it emits nothing but keeps GCC from hoisting the next input
 * channel's U loads above this one's FMAs. Without it GCC 12 loads all 16 U vectors of a 4-channel step
 * up front, runs out of registers and spills accumulators inside the loop (seen at -O2); with it the loop
 * has no stack traffic, but 8 register moves per 80 FMAs remain. */
#define WGN_SCHED_FENCE() __asm__ volatile("" ::: "memory")

WGN_INLINE void wgn_kernel(const float *v, size_t vs, const float *u, int cp, float *m, size_t ms, const int nob,
                           const int pf, const float *upf)
{
    const float32x4_t z = vdupq_n_f32(0.0f);
    float32x4_t a00 = z, a01 = z, a02 = z, a03 = z, a10 = z, a11 = z, a12 = z, a13 = z;
    float32x4_t a20 = z, a21 = z, a22 = z, a23 = z, a30 = z, a31 = z, a32 = z, a33 = z;
    float32x4_t a40 = z, a41 = z, a42 = z, a43 = z;
    const float *v0 = v, *v1 = v + vs, *v2 = v + 2 * vs, *v3 = v + 3 * vs, *v4 = v + 4 * vs;
    for (int c = 0; c < cp; c += 4) {
        const float32x4_t x0 = vld1q_f32(v0 + c), x1 = vld1q_f32(v1 + c), x2 = vld1q_f32(v2 + c);
        const float32x4_t x3 = vld1q_f32(v3 + c), x4 = vld1q_f32(v4 + c);
#define WGN_ROW(r, l)                                                                                                  \
    a##r##0 = vfmaq_laneq_f32(a##r##0, u0, x##r, l);                                                                   \
    a##r##1 = vfmaq_laneq_f32(a##r##1, u1, x##r, l);                                                                   \
    if (nob == 2) {                                                                                                    \
        a##r##2 = vfmaq_laneq_f32(a##r##2, u2, x##r, l);                                                               \
        a##r##3 = vfmaq_laneq_f32(a##r##3, u3, x##r, l);                                                               \
    }
#define WGN_LANE(l)                                                                                                    \
    {                                                                                                                  \
        const float *ul = u + (size_t)(c + l) * 16;                                                                    \
        if (pf)                                                                                                        \
            __builtin_prefetch(upf + (size_t)(c + l) * 16, 0, 2);                                                      \
        const float32x4_t u0 = vld1q_f32(ul), u1 = vld1q_f32(ul + 4);                                                  \
        const float32x4_t u2 = nob == 2 ? vld1q_f32(ul + 8) : u0, u3 = nob == 2 ? vld1q_f32(ul + 12) : u1;           \
        WGN_ROW(0, l)                                                                                                  \
        WGN_ROW(1, l)                                                                                                  \
        WGN_ROW(2, l)                                                                                                  \
        WGN_ROW(3, l)                                                                                                  \
        WGN_ROW(4, l)                                                                                                  \
        WGN_SCHED_FENCE();                                                                                             \
    }
        WGN_LANE(0)
        WGN_LANE(1)
        WGN_LANE(2)
        WGN_LANE(3)
#undef WGN_LANE
#undef WGN_ROW
    }
#define WGN_STORE(r)                                                                                                   \
    vst1q_f32(m + r * ms, a##r##0);                                                                                    \
    vst1q_f32(m + r * ms + 4, a##r##1);                                                                                \
    if (nob == 2) {                                                                                                    \
        vst1q_f32(m + r * ms + 8, a##r##2);                                                                            \
        vst1q_f32(m + r * ms + 12, a##r##3);                                                                           \
    }
    WGN_STORE(0)
    WGN_STORE(1)
    WGN_STORE(2)
    WGN_STORE(3)
    WGN_STORE(4)
#undef WGN_STORE
}

#endif

/* One (position, output block pair) over the group's ntb tile blocks; the first tile block prefetches
 * the next slice of U (unext, NULL after the last). */
WGN_INLINE void wgn_gemm_slice(const wgn_plan *p, int ntb, const float *vp, const float *uk, float *mk,
                               const float *unext, const int nob)
{
    int tb = 0;
    if (unext) {
        wgn_kernel(vp, p->cp, uk, p->cp, mk, p->kp, nob, 1, unext);
        tb = 1;
    }
    for (; tb < ntb; tb++)
        wgn_kernel(vp + (size_t)tb * WG_MR * p->cp, p->cp, uk, p->cp, mk + (size_t)tb * WG_MR * p->kp, p->kp, nob, 0,
                   NULL);
}

/* All products of one group of ntb tile blocks: positions, then output block pairs (the slice of U,
 * cp x 16 floats, stays in L1 while the group's tiles stream past it), then tile blocks. */
static void wgn_gemm(const wgn_plan *p, int npos, int ntb, const float *v, const float *u, float *m)
{
    const size_t u_slice = (size_t)p->cp * 16;
    for (int pos = 0; pos < npos; pos++) {
        const float *vp = v + (size_t)pos * p->v_pos;
        float *mp = m + (size_t)pos * p->m_pos;
        for (int kbp = 0; kbp < p->kbp; kbp++) {
            const float *uk = u + (size_t)pos * p->u_pos + (size_t)kbp * u_slice;
            const float *unext = pos == npos - 1 && kbp == p->kbp - 1 ? NULL : uk + u_slice;
            if (p->kb - 2 * kbp >= 2)
                wgn_gemm_slice(p, ntb, vp, uk, mp + (size_t)kbp * 16, unext, 2);
            else
                wgn_gemm_slice(p, ntb, vp, uk, mp + (size_t)kbp * 16, unext, 1);
        }
    }
}

/* ---------------------------------------------------------------------------------------------------- */
/* step 3: output transform and epilogues                                                               */

enum { WG_EPI_NONE, WG_EPI_STATS, WG_EPI_BN_RELU, WG_EPI_ADD };

typedef struct wgn_epi_args {
    double *part;               /* WG_EPI_STATS: [group][kb][sum 8, sumsq 8] */
    const float *scale, *shift; /* WG_EPI_BN_RELU: [kb * 8], zero past k */
} wgn_epi_args;

/* The per-block state of the epilogue, per 4-lane half: lane masks of the last block's real channels,
 * folded BatchNorm, and the statistics (sum of lanes 0-1, 2-3, 4-5, 6-7, then the same for sumsq). */
typedef struct wgn_epi_blk {
    uint32x4_t mask[2];
    float32x4_t scale[2], shift[2];
    float64x2_t st[8];
} wgn_epi_blk;

/* Lanes 4*half .. 4*half + 3 of channel block kb that hold real channels (of k): all ones. */
static inline uint32x4_t wgn_lane_mask(int k, int kb, int half)
{
    static const int32_t idx[4] = {0, 1, 2, 3};
    const int nl = k - kb * BLK - half * 4;
    return vcgtq_s32(vdupq_n_s32(nl), vld1q_s32(idx));
}

/* Stores one 4-lane output vector at yp (half h of its pixel) with the epilogue: masked clears the padding
 * lanes of the last block (WG_EPI_ADD keeps their old bits instead), WG_EPI_BN_RELU applies the folded
 * BatchNorm and ReLU, WG_EPI_STATS adds val and val^2 in double. */
WGN_INLINE void wgn_store_out(float *yp, float32x4_t val, const int epi, int masked, wgn_epi_blk *eb, const int h)
{
    if (epi == WG_EPI_ADD) {
        const float32x4_t old = vld1q_f32(yp);
        const float32x4_t sum = vaddq_f32(old, val);
        val = masked ? vbslq_f32(eb->mask[h], sum, old) : sum;
    } else if (epi == WG_EPI_BN_RELU) {
        val = vmaxq_f32(vfmaq_f32(eb->shift[h], val, eb->scale[h]), vdupq_n_f32(0.0f));
    } else if (masked) {
        val = vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(val), eb->mask[h]));
    }
    vst1q_f32(yp, val);
    if (epi == WG_EPI_STATS) {
        const float64x2_t lo = vcvt_f64_f32(vget_low_f32(val)), hi = vcvt_high_f64_f32(val);
        eb->st[2 * h] = vaddq_f64(eb->st[2 * h], lo);
        eb->st[2 * h + 1] = vaddq_f64(eb->st[2 * h + 1], hi);
        eb->st[4 + 2 * h] = vfmaq_f64(eb->st[4 + 2 * h], lo, lo);
        eb->st[4 + 2 * h + 1] = vfmaq_f64(eb->st[4 + 2 * h + 1], hi, hi);
    }
}

/* Transforms (tile, output block kb) back from M (m at pos 0, this tile, block kb) into y, clipped to the
 * output (tiles at the right and bottom edges), with the epilogue of wgn_store_out; one 4-lane half at a
 * time, along h first (MH rows of AW values), then each row along w. */
WGN_INLINE void wgn_output_tile(const int MH, const int RH, const int MW, const int RW, const wgn_plan *p,
                                const float *m, float *y8c, wgn_tile tl, int kb, const int epi, int masked,
                                wgn_epi_blk *eb)
{
    const int AH = MH + RH - 1, AW = MW + RW - 1;
    const int mi = p->oh - tl.oh0 < MH ? p->oh - tl.oh0 : MH, mj = p->ow - tl.ow0 < MW ? p->ow - tl.ow0 : MW;
    const size_t y_row = (size_t)p->ow * BLK;
    float *yb = y8c + (((size_t)tl.n * p->kb + kb) * p->oh + tl.oh0) * y_row + (size_t)tl.ow0 * BLK;
    for (int h = 0; h < 2; h++) {
        float32x4_t t[WG_AMAX][WG_AMAX]; /* [output row][position along w] */
        for (int j = 0; j < AW; j++) {
            float32x4_t s[WG_AMAX], o[WG_AMAX];
            for (int i = 0; i < AH; i++)
                s[i] = vld1q_f32(m + (size_t)(i * AW + j) * p->m_pos + h * 4);
            wgn_output_1d(MH, AH, s, o);
            for (int i = 0; i < MH; i++)
                t[i][j] = o[i];
        }
        float *yh = yb + h * 4;
        if (mi == MH && mj == MW) {
            for (int i = 0; i < MH; i++) {
                float32x4_t o[WG_AMAX];
                wgn_output_1d(MW, AW, t[i], o);
                for (int j = 0; j < MW; j++)
                    wgn_store_out(yh + (size_t)i * y_row + (size_t)j * BLK, o[j], epi, masked, eb, h);
            }
        } else {
            for (int i = 0; i < mi; i++) {
                float32x4_t o[WG_AMAX];
                wgn_output_1d(MW, AW, t[i], o);
                for (int j = 0; j < mj; j++)
                    wgn_store_out(yh + (size_t)i * y_row + (size_t)j * BLK, o[j], epi, masked, eb, h);
            }
        }
    }
}

/* ---------------------------------------------------------------------------------------------------- */
/* driver                                                                                               */

/* Run by every thread of the caller's parallel region (an orphaned `omp for` over the groups): each
 * entry point opens its own region, so that the outlined body is compiled with the variant's sizes and
 * the epilogue as constants. */
WGN_INLINE void wgn_run(const int MH, const int RH, const int MW, const int RW, const wgn_plan *p, const float *x8c,
                        const float *u, float *y8c, const int epi, const wgn_epi_args *ea, const char *who)
{
    const int NPOS = (MH + RH - 1) * (MW + RW - 1);
    const size_t v_floats = (size_t)NPOS * p->v_pos, m_floats = (size_t)NPOS * p->m_pos;
    const int last_masked = p->k % BLK != 0;
    float *v = NULL, *m = NULL;
    wgn_tile *tiles = NULL;
#pragma omp for schedule(static)
    for (int g = 0; g < p->ng; g++) {
        if (!v) {
            v = wgn_alloc((v_floats + m_floats) * sizeof(float) + (size_t)p->t * sizeof(wgn_tile), who);
            m = v + v_floats;
            tiles = (wgn_tile *)(m + m_floats);
        }
        const int t0 = g * p->t, nt = p->nt - t0 < p->t ? p->nt - t0 : p->t;
        const int ntb = (nt + WG_MR - 1) / WG_MR;
        for (int i = 0; i < nt; i++)
            tiles[i] = wgn_tile_at(MH, MW, p, t0 + i);
        for (int cb = 0; cb < p->cb; cb++)
            for (int i = 0; i < nt; i++)
                wgn_input_tile(MH, RH, MW, RW, p, x8c, tiles[i], cb, v + (size_t)i * p->cp + (size_t)cb * BLK);
        /* Rows of the last tile block past the group's tiles: zeros, so that the products stay finite. */
        if (nt < ntb * WG_MR)
            for (int pos = 0; pos < NPOS; pos++)
                memset(v + (size_t)pos * p->v_pos + (size_t)nt * p->cp, 0,
                       (size_t)(ntb * WG_MR - nt) * p->cp * sizeof(float));
        wgn_gemm(p, NPOS, ntb, v, u, m);
        for (int kb = 0; kb < p->kb; kb++) {
            const int masked = last_masked && kb == p->kb - 1;
            wgn_epi_blk eb;
            for (int h = 0; h < 2; h++) {
                eb.mask[h] = wgn_lane_mask(p->k, kb, h);
                eb.scale[h] = eb.shift[h] = vdupq_n_f32(0.0f);
                if (epi == WG_EPI_BN_RELU) {
                    eb.scale[h] = vld1q_f32(ea->scale + (size_t)kb * BLK + h * 4);
                    eb.shift[h] = vld1q_f32(ea->shift + (size_t)kb * BLK + h * 4);
                }
            }
            for (int i = 0; i < 8; i++)
                eb.st[i] = vdupq_n_f64(0.0);
            for (int i = 0; i < nt; i++)
                wgn_output_tile(MH, RH, MW, RW, p, m + (size_t)i * p->kp + (size_t)kb * BLK, y8c, tiles[i], kb, epi,
                                masked, &eb);
            if (epi == WG_EPI_STATS) {
                double *pk = ea->part + ((size_t)g * p->kb + kb) * 2 * BLK;
                for (int i = 0; i < 8; i++)
                    vst1q_f64(pk + 2 * i, eb.st[i]);
            }
        }
    }
    free(v);
}

/* ---------------------------------------------------------------------------------------------------- */
/* entry points                                                                                         */

/* Per-group statistics partials: [group][kb][sum 8, sumsq 8]. */
static double *wgn_stats_alloc(const wgn_plan *p, const char *who)
{
    return wgn_alloc((size_t)p->ng * p->kb * 2 * BLK * sizeof(double), who);
}

/* sum[k], sumsq[k] from the group partials, each channel block reduced by one thread over the groups in
 * order. */
static void wgn_stats_reduce(const wgn_plan *p, const double *part, double *sum, double *sumsq)
{
#pragma omp parallel for schedule(static)
    for (int kb = 0; kb < p->kb; kb++) {
        float64x2_t a[8];
        for (int i = 0; i < 8; i++)
            a[i] = vdupq_n_f64(0.0);
        for (int g = 0; g < p->ng; g++) {
            const double *pk = part + ((size_t)g * p->kb + kb) * 2 * BLK;
            for (int i = 0; i < 8; i++)
                a[i] = vaddq_f64(a[i], vld1q_f64(pk + 2 * i));
        }
        double l[2 * BLK];
        for (int i = 0; i < 8; i++)
            vst1q_f64(l + 2 * i, a[i]);
        for (int i = 0; i < BLK && kb * BLK + i < p->k; i++) {
            sum[kb * BLK + i] = l[i];
            sumsq[kb * BLK + i] = l[BLK + i];
        }
    }
}

/* BatchNorm folded per output channel, in double then rounded: scale at [0, kb*8), shift after it, zero
 * past k (the padding lanes then stay relu(0) = 0). */
static float *wgn_bn_coef(const incv3_conv_shape *s, const float *gamma, const float *beta, const float *mean,
                          const float *var, float eps, const char *who)
{
    const int KB = wgn_blocks(s->k);
    float *coef = wgn_alloc((size_t)KB * 2 * BLK * sizeof(float), who);
    memset(coef, 0, (size_t)KB * 2 * BLK * sizeof(float));
    for (int k = 0; k < s->k; k++) {
        const double sc = (double)gamma[k] / sqrt((double)var[k] + (double)eps);
        coef[k] = (float)sc;
        coef[(size_t)KB * BLK + k] = (float)((double)beta[k] - (double)mean[k] * sc);
    }
    return coef;
}

/* The entry points of variant V = F(MH x MW, RH x RW). Every OpenMP region is opened here, in the
 * instantiated function itself: a region is outlined before inlining, so one opened inside wgn_run would
 * be compiled once with the sizes as run-time values. */
#define WGN_DEFINE(V, MH, RH, MW, RW)                                                                                 \
    int conv_winograd_##V##_supports__neon(const incv3_conv_shape *s)                                                 \
    {                                                                                                                 \
        return wgn_supports(s, RH, RW);                                                                               \
    }                                                                                                                 \
    size_t conv_winograd_##V##_fwd_weights_floats__neon(const incv3_conv_shape *s)                                    \
    {                                                                                                                 \
        return wgn_u_floats(MH, RH, MW, RW, s->c, s->k);                                                              \
    }                                                                                                                 \
    void conv_winograd_##V##_pack_fwd__neon(const incv3_conv_shape *s, const float *w8i8o, float *u)                  \
    {                                                                                                                 \
        _Pragma("omp parallel") wgn_pack(MH, RH, MW, RW, s, w8i8o, u, 0, "conv_winograd_" #V "_pack_fwd__neon");      \
    }                                                                                                                 \
    size_t conv_winograd_##V##_bwd_data_weights_floats__neon(const incv3_conv_shape *s)                               \
    {                                                                                                                 \
        return wgn_u_floats(MH, RH, MW, RW, s->k, s->c);                                                              \
    }                                                                                                                 \
    void conv_winograd_##V##_pack_bwd_data__neon(const incv3_conv_shape *s, const float *w8i8o, float *u)             \
    {                                                                                                                 \
        _Pragma("omp parallel")                                                                                       \
            wgn_pack(MH, RH, MW, RW, s, w8i8o, u, 1, "conv_winograd_" #V "_pack_bwd_data__neon");                     \
    }                                                                                                                 \
    void conv_fwd_f32_winograd_##V##__neon(const incv3_conv_shape *s, const float *x8c, const float *u, float *y8c)   \
    {                                                                                                                 \
        const wgn_plan p = wgn_make_plan(MH, RH, MW, RW, s);                                                          \
        _Pragma("omp parallel")                                                                                       \
            wgn_run(MH, RH, MW, RW, &p, x8c, u, y8c, WG_EPI_NONE, NULL, "conv_fwd_f32_winograd_" #V "__neon");        \
    }                                                                                                                 \
    void conv_bwd_data_f32_winograd_##V##__neon(const incv3_conv_shape *s, const float *dy8c, const float *u,         \
                                                float *dx8c, int accumulate)                                         \
    {                                                                                                                 \
        const incv3_conv_shape b = wgn_bwd_shape(s);                                                                  \
        const wgn_plan p = wgn_make_plan(MH, RH, MW, RW, &b);                                                         \
        const char *who = "conv_bwd_data_f32_winograd_" #V "__neon";                                                  \
        if (accumulate) {                                                                                             \
            _Pragma("omp parallel") wgn_run(MH, RH, MW, RW, &p, dy8c, u, dx8c, WG_EPI_ADD, NULL, who);                \
        } else {                                                                                                      \
            _Pragma("omp parallel") wgn_run(MH, RH, MW, RW, &p, dy8c, u, dx8c, WG_EPI_NONE, NULL, who);               \
        }                                                                                                             \
    }                                                                                                                 \
    void conv_fwd_stats_f32_winograd_##V##__neon(const incv3_conv_shape *s, const float *x8c, const float *u,        \
                                                 float *y8c, double *sum, double *sumsq)                             \
    {                                                                                                                 \
        const char *who = "conv_fwd_stats_f32_winograd_" #V "__neon";                                                 \
        const wgn_plan p = wgn_make_plan(MH, RH, MW, RW, s);                                                          \
        const wgn_epi_args ea = {wgn_stats_alloc(&p, who), NULL, NULL};                                               \
        _Pragma("omp parallel") wgn_run(MH, RH, MW, RW, &p, x8c, u, y8c, WG_EPI_STATS, &ea, who);                     \
        wgn_stats_reduce(&p, ea.part, sum, sumsq);                                                                    \
        free(ea.part);                                                                                                \
    }                                                                                                                 \
    void conv_bn_relu_fwd_infer_f32_winograd_##V##__neon(const incv3_conv_shape *s, const float *x8c, const float *u, \
                                                         float *y8c, const float *gamma, const float *beta,          \
                                                         const float *mean, const float *var, float eps)             \
    {                                                                                                                 \
        const char *who = "conv_bn_relu_fwd_infer_f32_winograd_" #V "__neon";                                         \
        const wgn_plan p = wgn_make_plan(MH, RH, MW, RW, s);                                                          \
        float *coef = wgn_bn_coef(s, gamma, beta, mean, var, eps, who);                                               \
        const wgn_epi_args ea = {NULL, coef, coef + (size_t)p.kb * BLK};                                              \
        _Pragma("omp parallel") wgn_run(MH, RH, MW, RW, &p, x8c, u, y8c, WG_EPI_BN_RELU, &ea, who);                   \
        free(coef);                                                                                                   \
    }

/*         tag       MH RH MW RW */
WGN_DEFINE(f2x2_3x3, 2, 3, 2, 3)
WGN_DEFINE(f4x4_3x3, 4, 3, 4, 3)
WGN_DEFINE(f6x6_3x3, 6, 3, 6, 3)
WGN_DEFINE(f2_1x3, 1, 1, 2, 3)
WGN_DEFINE(f4_1x3, 1, 1, 4, 3)
WGN_DEFINE(f2_3x1, 2, 3, 1, 1)
WGN_DEFINE(f4_3x1, 4, 3, 1, 1)
WGN_DEFINE(f2_1x7, 1, 1, 2, 7)
WGN_DEFINE(f4_1x7, 1, 1, 4, 7)
WGN_DEFINE(f2_7x1, 2, 7, 1, 1)
WGN_DEFINE(f4_7x1, 4, 7, 1, 1)
