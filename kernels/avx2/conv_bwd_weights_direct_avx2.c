/* Blocked direct convolution backward-weights, AVX2+FMA, after oneDNN's AVX2 backward-weights kernel.
 *
 * dw[k][c][r][q] = sum over n, oh, ow of dy[n][k][oh][ow] * x[n][c][oh*SH - PT + r][ow*SW - PL + q]. For one
 * tap (r, q), an 8 x 8 tile dw[kb][cb][r][q][8 i][8 o] is a sum of outer products x[8 i] x dy[8 o] over the
 * output pixels whose tap lands inside the input. The micro-kernel computes NK output blocks x NI input
 * channels of one tap at once: NK x NI ymm accumulators (up to 12), acc[j][i] += broadcast(x[i]) * dy[j],
 * so one dy vector load feeds NI FMAs and one broadcast feeds NK FMAs (3 blocks x 4 channels: 7 loads per
 * 12 FMAs). The pixel loop is innermost; taps falling into padding are removed by clipping the pixel range
 * of each tap (row range [oh_lo, oh_hi), column range [ow_lo, ow_hi)), so no padded copy is needed.
 *
 * Summation order and precision: for each dw element the pixels are taken in the fixed order (n, row
 * chunk, column chunk, oh, ow); each chunk (output rows and columns fixed by the shape) is summed in fresh float
 * accumulators and then added into the running float sum in dw (blocked summation, so the float error
 * grows with the chunk size and the number of chunks rather than with N*OH*OW).
 *
 * Work split, without atomics: an OpenMP iteration owns a block of (group of output blocks) x (input
 * blocks) x (kernel rows) tiles of dw and all of their taps, so each dw element is written by one thread.
 * The block sizes only choose which thread owns which tile, not how a tile is summed, so they may depend
 * on the thread count. When the shape has too few tiles to keep the threads busy (the first layer, k=32,
 * c=3: 1 group of 4 output blocks x 1 input block x 3 kernel rows), the reduction over n is also split
 * into NS segments of images, chosen from the shape alone (never from the thread count): segment s sums
 * into its own partial buffer (segment 0 into dw), and the buffers are added in segment order afterwards.
 * Results are thus bitwise the same for any thread count.
 *
 * Within an iteration the loop order is image, row chunk, column chunk, output group, input block, tap,
 * channel chunk: the rows of x and dy of a chunk (sized from the shape to about 96 KiB over the block) stay
 * in L2 while every tile of the block sweeps over them. Column chunks are the whole row except for inputs
 * of at most 3 channels with 4 or more output blocks (the first layer: 3x299x299, 3x3 stride 2), whose x and
 * dy stream from memory with little reuse: there one output row is cut into chunks of 32 output pixels (so
 * the 9 taps over a chunk hit L1) and, on its tap-column-0 passes, the 4 x 3 kernel prefetches the x row and
 * (on the first tap row) the dy rows that the next output row needs. A column chunk is summed like a row
 * chunk: in fresh accumulators, then added into dw in the order (n, row chunk, column chunk).
 */
#include <immintrin.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "alloc.h"
#include "avx2_kernels.h"

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

/* The accumulators are named variables rather than an array: GCC keeps an array that lives across the
 * two nested pixel loops on the stack, storing it back every pixel. Unused ones are removed as dead code. */
#define BWW_I8(M, j) M(j, 0) M(j, 1) M(j, 2) M(j, 3) M(j, 4) M(j, 5) M(j, 6) M(j, 7)
#define BWW_ALL(M) BWW_I8(M, 0) BWW_I8(M, 1) BWW_I8(M, 2) BWW_I8(M, 3)
#define BWW_DECL(j, i) __m256 acc##j##i = _mm256_setzero_ps();
#define BWW_FMA(j, i)                                                                                                  \
    if (j < NK && i < NI)                                                                                              \
        acc##j##i = _mm256_fmadd_ps(b##i, d##j, acc##j##i);
#define BWW_BCAST(i) const __m256 b##i = i < NI ? _mm256_broadcast_ss(xx + i) : _mm256_setzero_ps();
#define BWW_STORE(j, i)                                                                                                \
    if (j < NK && i < NI) {                                                                                            \
        float *o = a->dw + j * a->dw_kb + i * BLK;                                                                     \
        _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), acc##j##i));                                             \
    }

static inline __attribute__((always_inline)) void bww_tile(const bww_args *a, const int NK, const int NI)
{
    BWW_ALL(BWW_DECL)
    const float *xr = a->x, *dr = a->dy;
    const ptrdiff_t xp = a->x_pix, dkb = a->dy_kb;
    for (int row = 0; row < a->nrows; row++, xr += a->x_row, dr += a->dy_row) {
        const float *xx = xr, *dd = dr;
        for (int p = 0; p < a->npix; p++, xx += xp, dd += BLK) {
            const __m256 d0 = _mm256_loadu_ps(dd);
            const __m256 d1 = NK > 1 ? _mm256_loadu_ps(dd + dkb) : _mm256_setzero_ps();
            const __m256 d2 = NK > 2 ? _mm256_loadu_ps(dd + 2 * dkb) : _mm256_setzero_ps();
            BWW_BCAST(0)
            BWW_FMA(0, 0) BWW_FMA(1, 0) BWW_FMA(2, 0)
            BWW_BCAST(1)
            BWW_FMA(0, 1) BWW_FMA(1, 1) BWW_FMA(2, 1)
            BWW_BCAST(2)
            BWW_FMA(0, 2) BWW_FMA(1, 2) BWW_FMA(2, 2)
            BWW_BCAST(3)
            BWW_FMA(0, 3) BWW_FMA(1, 3) BWW_FMA(2, 3)
            BWW_BCAST(4)
            BWW_FMA(0, 4) BWW_FMA(1, 4) BWW_FMA(2, 4)
            BWW_BCAST(5)
            BWW_FMA(0, 5) BWW_FMA(1, 5) BWW_FMA(2, 5)
            BWW_BCAST(6)
            BWW_FMA(0, 6) BWW_FMA(1, 6) BWW_FMA(2, 6)
            BWW_BCAST(7)
            BWW_FMA(0, 7) BWW_FMA(1, 7) BWW_FMA(2, 7)
        }
    }
    BWW_ALL(BWW_STORE)
}

/* Four output blocks by at most 3 input channels (inputs of 3 channels, the first layer): the NI
 * broadcasts stay live and the dy vectors are loaded one at a time, 12 accumulators + 3 + 1 = 16 ymm. */
static inline __attribute__((always_inline)) void bww_tile4(const bww_args *a, const int NI, const int PF)
{
    enum { NK = 4 };
    BWW_ALL(BWW_DECL)
    const float *xr = a->x, *dr = a->dy;
    const ptrdiff_t xp = a->x_pix, dkb = a->dy_kb;
    for (int row = 0; row < a->nrows; row++, xr += a->x_row, dr += a->dy_row) {
        const float *xx = xr, *dd = dr;
        for (int p = 0; p < a->npix; p++, xx += xp, dd += BLK) {
            if (PF) {
                _mm_prefetch((const char *)(xx + a->x_row), _MM_HINT_T0);
                if (PF > 1) {
                    _mm_prefetch((const char *)(dd + a->dy_row), _MM_HINT_T0);
                    _mm_prefetch((const char *)(dd + a->dy_row + dkb), _MM_HINT_T0);
                    _mm_prefetch((const char *)(dd + a->dy_row + 2 * dkb), _MM_HINT_T0);
                    _mm_prefetch((const char *)(dd + a->dy_row + 3 * dkb), _MM_HINT_T0);
                }
            }
            BWW_BCAST(0)
            BWW_BCAST(1)
            BWW_BCAST(2)
            const __m256 d0 = _mm256_loadu_ps(dd);
            BWW_FMA(0, 0) BWW_FMA(0, 1) BWW_FMA(0, 2)
            const __m256 d1 = _mm256_loadu_ps(dd + dkb);
            BWW_FMA(1, 0) BWW_FMA(1, 1) BWW_FMA(1, 2)
            const __m256 d2 = _mm256_loadu_ps(dd + 2 * dkb);
            BWW_FMA(2, 0) BWW_FMA(2, 1) BWW_FMA(2, 2)
            const __m256 d3 = _mm256_loadu_ps(dd + 3 * dkb);
            BWW_FMA(3, 0) BWW_FMA(3, 1) BWW_FMA(3, 2)
        }
    }
    BWW_ALL(BWW_STORE)
}

#define BWW_DEF(NK, NI)                                                                                                \
    static void bww_tile_##NK##_##NI(const bww_args *a)                                                                \
    {                                                                                                                  \
        bww_tile(a, NK, NI);                                                                                           \
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
static void bww_tile_4_1(const bww_args *a)
{
    bww_tile4(a, 1, 0);
}
static void bww_tile_4_2(const bww_args *a)
{
    bww_tile4(a, 2, 0);
}
static void bww_tile_4_3(const bww_args *a)
{
    if (a->pf == 2)
        bww_tile4(a, 3, 2);
    else if (a->pf == 1)
        bww_tile4(a, 3, 1);
    else
        bww_tile4(a, 3, 0);
}

/* Indexed [NK - 1][NI - 1]; NI at most 8 / 6 / 4 / 3 for NK 1 / 2 / 3 / 4 (accumulators + live dy vectors
 * or broadcasts within 16 ymm registers). */
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
    return incv3_mem_must(bytes, 0, "the scratch of conv_bwd_weights_f32_direct__avx2");
}

void conv_bwd_weights_f32_direct__avx2(const incv3_conv_shape *s, const float *x8c, const float *dy8c, float *dw8i8o)
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
        for (size_t i = 0; i < dw_count; i += BLK) {
            __m256 v = _mm256_loadu_ps(dw8i8o + i);
            for (int sgm = 1; sgm < NS; sgm++)
                v = _mm256_add_ps(v, _mm256_loadu_ps(partial + (size_t)(sgm - 1) * dw_count + i));
            _mm256_storeu_ps(dw8i8o + i, v);
        }
    }
    free(partial);
    free(g_kb0);
}
