/* Blocked direct convolution backward-weights, NEON; the same algorithm, chunking and work split as
 * conv_bwd_weights_direct_avx2.c (after oneDNN's AVX2 backward-weights kernel), so each dw element is
 * summed in the same order of pixels and chunks.
 *
 * dw[k][c][r][q] = sum over n, oh, ow of dy[n][k][oh][ow] * x[n][c][oh*SH - PT + r][ow*SW - PL + q]. For one
 * tap (r, q), an 8 x 8 tile dw[kb][cb][r][q][8 i][8 o] is a sum of outer products x[8 i] x dy[8 o] over the
 * output pixels whose tap lands inside the input. The micro-kernel computes NK output blocks x NI input
 * channels of one tap at once in NK x NI x 2 q accumulators (up to 24 of the 32 registers):
 * acc[j][i] += dy[j] * x[i], where the NI input channels of a pixel are one or two q loads used by lane
 * (fmla by element, no broadcast) and each output block's dy is two q loads streamed through the NI
 * channels (3 blocks x 4 channels: 7 loads per 24 FMAs). The pixel loop is innermost; taps falling into
 * padding are removed by clipping the pixel range of each tap (row range [oh_lo, oh_hi), column range
 * [ow_lo, ow_hi)), so no padded copy is needed.
 *
 * Summation order and precision: for each dw element the pixels are taken in the fixed order (n, row
 * chunk, column chunk, oh, ow); each chunk (output rows and columns fixed by the shape) is summed in fresh
 * float accumulators and then added into the running float sum in dw (blocked summation).
 *
 * Work split, without atomics: an OpenMP iteration owns a block of (group of output blocks) x (input
 * blocks) x (kernel rows) tiles of dw and all of their taps, so each dw element is written by one thread.
 * The block sizes only choose which thread owns which tile, not how a tile is summed, so they may depend
 * on the thread count. When the shape has too few tiles to keep the threads busy (the first layer, k=32,
 * c=3), the reduction over n is also split into NS segments of images chosen from the shape alone: segment
 * s sums into its own partial buffer (segment 0 into dw), and the buffers are added in segment order
 * afterwards. Results are thus bitwise the same for any thread count.
 *
 * Within an iteration the loop order is image, row chunk, column chunk, output group, input block, tap,
 * channel chunk: the rows of x and dy of a chunk (about 96 KiB over the block) stay in L2 while every tile
 * of the block sweeps over them. For inputs of at most 3 channels with 4 or more output blocks (the first
 * layer) one output row is cut into chunks of 32 output pixels and the 4 x 3 kernel prefetches the next
 * row, as in the AVX2 kernel.
 */
#include <arm_neon.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "neon/neon_kernels.h"

/* As in conv_strip_neon.c: GCC's pre-allocation scheduler hoists all 8 dy loads of the 4 x 3 tile ahead of
 * the FMAs and the allocator then spills an accumulator in the pixel loop. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-schedule-insns")
#endif

#define BLK 8
#define TILE (BLK * BLK)

/* Bytes of x and dy rows that one row chunk may cover (for up to 4 groups of 3 output blocks and 4 input
 * blocks); fixes the blocked summation, so it must depend on the shape only. */
#define BWW_CHUNK_BYTES (96 * 1024)
/* Independent work items wanted before the reduction over n is split (shape-only). */
#define BWW_MIN_ITEMS 64
/* Output pixels per column chunk for inputs of at most 3 channels (see the header comment). */
#define BWW_FIRST_COLS 32

typedef struct bww_args {
    const float *x;  /* x at (first valid row, first valid column) of the tap, channel i0 */
    const float *dy; /* dy at (first output block, first valid row, first valid column) */
    float *dw;       /* dw tile of the first output block at this tap, channel i0 */
    int nrows, npix;
    ptrdiff_t x_row, x_pix, dy_row, dy_kb, dw_kb;
    int pf; /* 4 x 3 kernel only: 1 = prefetch x one tap row further, 2 = also dy one row further */
} bww_args;

typedef void (*bww_fn)(const bww_args *a);

/* The accumulators are named variables rather than an array, as in the AVX2 kernel (GCC may keep an
 * array that lives across the two nested pixel loops on the stack). acc<j><i>l / h: output block j, input
 * channel i, output lanes 0-3 / 4-7. Unused ones are removed as dead code. */
#define BWW_I8(M, j) M(j, 0) M(j, 1) M(j, 2) M(j, 3) M(j, 4) M(j, 5) M(j, 6) M(j, 7)
#define BWW_ALL(M) BWW_I8(M, 0) BWW_I8(M, 1) BWW_I8(M, 2) BWW_I8(M, 3)
#define BWW_DECL(j, i) float32x4_t acc##j##i##l = vdupq_n_f32(0.0f), acc##j##i##h = acc##j##i##l;
/* Input channel i is lane i % 4 of the first (i < 4) or second x vector; the lane is an immediate. */
#define BWW_FMA(j, i)                                                                                                  \
    if (j < NK && i < NI) {                                                                                            \
        acc##j##i##l = vfmaq_laneq_f32(acc##j##i##l, dl, (i) < 4 ? xa : xb, (i) & 3);                                  \
        acc##j##i##h = vfmaq_laneq_f32(acc##j##i##h, dh, (i) < 4 ? xa : xb, (i) & 3);                                  \
    }
/* dy of output block j (two q loads), then its products with every input channel. */
#define BWW_BLOCK(j)                                                                                                   \
    if (j < NK) {                                                                                                      \
        const float32x4_t dl = vld1q_f32(dd + (j) * dkb), dh = vld1q_f32(dd + (j) * dkb + 4);                          \
        BWW_FMA(j, 0) BWW_FMA(j, 1) BWW_FMA(j, 2) BWW_FMA(j, 3) BWW_FMA(j, 4) BWW_FMA(j, 5) BWW_FMA(j, 6)              \
        BWW_FMA(j, 7)                                                                                                  \
    }
#define BWW_STORE(j, i)                                                                                                \
    if (j < NK && i < NI) {                                                                                            \
        float *o = a->dw + j * a->dw_kb + i * BLK;                                                                     \
        vst1q_f32(o, vaddq_f32(vld1q_f32(o), acc##j##i##l));                                                           \
        vst1q_f32(o + 4, vaddq_f32(vld1q_f32(o + 4), acc##j##i##h));                                                   \
    }

/* NK output blocks x NI input channels; PF (4 x 3 only, the first layer): 1 = prefetch x one tap row
 * further, 2 = also dy one row further. The x loads read 4 (NI <= 4) or 8 floats from channel i0 of the
 * pixel: the driver's channel chunks start at i0 <= 4 when NI <= 4 and at 0 otherwise, so they stay inside
 * the pixel's 8 floats. */
static inline __attribute__((always_inline)) void bww_tile(const bww_args *a, const int NK, const int NI, const int PF)
{
    BWW_ALL(BWW_DECL)
    const float *xr = a->x, *dr = a->dy;
    const ptrdiff_t xp = a->x_pix, dkb = a->dy_kb;
    for (int row = 0; row < a->nrows; row++, xr += a->x_row, dr += a->dy_row) {
        const float *xx = xr, *dd = dr;
        for (int p = 0; p < a->npix; p++, xx += xp, dd += BLK) {
            if (PF) {
                __builtin_prefetch(xx + a->x_row);
                if (PF > 1) {
                    __builtin_prefetch(dd + a->dy_row);
                    __builtin_prefetch(dd + a->dy_row + dkb);
                    __builtin_prefetch(dd + a->dy_row + 2 * dkb);
                    __builtin_prefetch(dd + a->dy_row + 3 * dkb);
                }
            }
            const float32x4_t xa = vld1q_f32(xx);
            const float32x4_t xb = NI > 4 ? vld1q_f32(xx + 4) : xa;
            BWW_BLOCK(0)
            BWW_BLOCK(1)
            BWW_BLOCK(2)
            BWW_BLOCK(3)
        }
    }
    BWW_ALL(BWW_STORE)
}

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

/* Indexed [NK - 1][NI - 1]; NI at most 8 / 6 / 4 / 3 for NK 1 / 2 / 3 / 4, the AVX2 kernel's table: at most
 * 24 accumulators + 2 x + 2 dy of the 32 q registers. (Each dw element is one accumulator lane whatever the
 * tile, so the tiles change the work per call, not the summation order.) */
static const bww_fn bww_table[4][8] = {
    {bww_tile_1_1, bww_tile_1_2, bww_tile_1_3, bww_tile_1_4, bww_tile_1_5, bww_tile_1_6, bww_tile_1_7, bww_tile_1_8},
    {bww_tile_2_1, bww_tile_2_2, bww_tile_2_3, bww_tile_2_4, bww_tile_2_5, bww_tile_2_6, NULL, NULL},
    {bww_tile_3_1, bww_tile_3_2, bww_tile_3_3, bww_tile_3_4, NULL, NULL, NULL, NULL},
    {bww_tile_4_1, bww_tile_4_2, bww_tile_4_3, NULL, NULL, NULL, NULL, NULL},
};
static const int bww_ni_max[4] = {8, 6, 4, 3};

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
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "conv_bwd_weights_f32_direct__neon: out of memory for %zu bytes\n", bytes);
        abort();
    }
    return p;
}

void conv_bwd_weights_f32_direct__neon(const incv3_conv_shape *s, const float *x8c, const float *dy8c, float *dw8i8o)
{
    const int N = s->n, C = s->c, H = s->h, W = s->w, K = s->k, KH = s->kh, KW = s->kw;
    const int SH = s->stride_h, SW = s->stride_w, PT = s->pad_top, PL = s->pad_left;
    const int OH = s->oh, OW = s->ow;
    const int CB = (C + BLK - 1) / BLK, KB = (K + BLK - 1) / BLK;

    const size_t x_row = (size_t)W * BLK, x_cb = (size_t)H * x_row, x_img = (size_t)CB * x_cb;
    const size_t dy_row = (size_t)OW * BLK, dy_kb = (size_t)OH * dy_row, dy_img = (size_t)KB * dy_kb;
    const size_t dw_cb = (size_t)KH * KW * TILE, dw_kb = (size_t)CB * dw_cb, dw_count = (size_t)KB * dw_kb;

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
    const size_t row_bytes = (size_t)OW * BLK * sizeof(float) * 12 + (size_t)SH * W * BLK * sizeof(float) * 4;
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
    float *partial = NS > 1 ? bww_malloc((size_t)(NS - 1) * dw_count * sizeof(float)) : NULL;

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
        float *dw = seg == 0 ? dw8i8o : partial + (size_t)(seg - 1) * dw_count;

        /* Zero the owned tiles (padding channels included). */
        for (int g = g0; g < g1; g++)
            for (int kb = g_kb0[g]; kb < g_kb0[g] + g_nk[g]; kb++)
                for (int cb = c0; cb < c1; cb++)
                    memset(dw + kb * dw_kb + cb * dw_cb + (size_t)r0 * KW * TILE, 0,
                           (size_t)(r1 - r0) * KW * TILE * sizeof(float));

        bww_args a;
        a.x_pix = (ptrdiff_t)SW * BLK;
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
                            const int ci = C - cb * BLK < BLK ? C - cb * BLK : BLK;
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
                                                      (size_t)iw * BLK;
                                    a.dy = dy8c + (size_t)n * dy_img + (size_t)kb0 * dy_kb + (size_t)oh_lo * dy_row +
                                           (size_t)ow_lo * BLK;
                                    float *dwt = dw + kb0 * dw_kb + cb * dw_cb + ((size_t)r * KW + q) * TILE;
                                    int i0 = 0;
                                    for (int t = 0; t < nchunks; t++) {
                                        const int i1 = ci * (t + 1) / nchunks;
                                        a.x = xb + i0;
                                        a.dw = dwt + (size_t)i0 * BLK;
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
        if (K % BLK && g_kb0[g1 - 1] + g_nk[g1 - 1] == KB)
            for (int cb = c0; cb < c1; cb++)
                for (int t = r0 * KW * BLK; t < r1 * KW * BLK; t++)
                    for (int o = K % BLK; o < BLK; o++)
                        dw[(size_t)(KB - 1) * dw_kb + cb * dw_cb + (size_t)t * BLK + o] = 0.0f;
    }

    if (NS > 1) {
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < dw_count; i += 4) {
            float32x4_t v = vld1q_f32(dw8i8o + i);
            for (int sgm = 1; sgm < NS; sgm++)
                v = vaddq_f32(v, vld1q_f32(partial + (size_t)(sgm - 1) * dw_count + i));
            vst1q_f32(dw8i8o + i, v);
        }
    }
    free(partial);
    free(g_kb0);
}
