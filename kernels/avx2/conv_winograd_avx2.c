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
 *
 * The driver (planning, the pack, transform and product loops, the work split and the entry points) is
 * common/winograd_driver.h, shared with the NEON kernels; this file supplies the AVX2 pieces it is
 * written against: 8-lane vectors, the 6 x 16 micro-kernel, the filter transform's lanes in double, the
 * streaming stores of U, and the epilogue's stores.
 */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "avx2/bn_reduce_avx2.h"
#include "avx2/conv_winograd_avx2.h"
#include "avx2/winograd_transforms_avx2.h"

#define KERNEL_ISA avx2
#define KERNEL_ISA_STR "avx2"
#define WG_MR 6 /* tiles per micro-kernel block */
/* Tiles per group when U streams from memory (see wg_group_tiles). */
#ifndef WG_FAR_TILES
#define WG_FAR_TILES 48
#endif

#include "common/winograd_plan.h"

/* The vector of the transforms: all 8 lanes of a channel block. */
typedef __m256 wg_vec;
#define WG_VL 8
#define WG_HALVES 1
#define wg_vload(p) _mm256_loadu_ps(p)
#define wg_vstore(p, v) _mm256_storeu_ps((p), (v))
#define wg_vzero() _mm256_setzero_ps()
#define wg_vstore_groups(p, gs, v)                                                                                     \
    do {                                                                                                               \
        if ((gs) == 4) {                                                                                               \
            _mm256_storeu_ps((p), (v));                                                                                \
        } else {                                                                                                       \
            _mm_storeu_ps((p), _mm256_castps256_ps128(v));                                                             \
            _mm_storeu_ps((p) + (gs), _mm256_extractf128_ps((v), 1));                                                  \
        }                                                                                                              \
    } while (0)
#define wg_vset1(f) _mm256_set1_ps(f)
#define wg_vadd(a, b) _mm256_add_ps((a), (b))
#define wg_vsub(a, b) _mm256_sub_ps((a), (b))
#define wg_vfma(a, b, c) _mm256_fmadd_ps((a), (b), (c))

/* ---------------------------------------------------------------------------------------------------- */
/* filter transform (pack)                                                                              */

/* Transforms g[tap][8 output lanes] of one input channel into bi (row floats per position), 4 lanes at a
 * time in double. */
WG_INLINE void wg_pack_lanes(const int AH, const int RH, const int AW, const int RW, const float (*g)[WG_BLK],
                             float *bi, size_t row)
{
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

/* Copies one packed (output block pair, input block), npos rows of row floats in buf, to ub in U. U is
 * written once and read by convolutions later, mostly too large to stay in cache: streaming stores skip
 * reading its lines first (pack 40% faster on 384 channels). */
WG_INLINE void wg_pack_copy(float *ub, const float *buf, const float *u, int npos, size_t u_pos, size_t row)
{
    if ((uintptr_t)u % 32 == 0) {
        for (int pos = 0; pos < npos; pos++)
            for (size_t f = 0; f < row; f += WG_BLK)
                _mm256_stream_ps(ub + (size_t)pos * u_pos + f, _mm256_loadu_ps(buf + (size_t)pos * row + f));
    } else {
        for (int pos = 0; pos < npos; pos++)
            memcpy(ub + (size_t)pos * u_pos, buf + (size_t)pos * row, row * sizeof(float));
    }
}

WG_INLINE void wg_pack_end(void)
{
    _mm_sfence();
}

/* ---------------------------------------------------------------------------------------------------- */
/* step 2: the micro-kernel                                                                             */

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
    for (int c = 0; c < cp; c += WG_BLK) {
#pragma GCC unroll 8
        for (int l = 0; l < WG_BLK; l++) {
            const float *ul = u + (size_t)(c + l) * 16;
            if (pf)
                _mm_prefetch((const char *)(upf + (size_t)(c + l) * 16), _MM_HINT_T1);
            const __m256 u0 = _mm256_loadu_ps(ul);
            const __m256 u1 = nob == 2 ? _mm256_loadu_ps(ul + WG_BLK) : u0;
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
        _mm256_storeu_ps(m + WG_BLK, a01);
        _mm256_storeu_ps(m + ms + WG_BLK, a11);
        _mm256_storeu_ps(m + 2 * ms + WG_BLK, a21);
        _mm256_storeu_ps(m + 3 * ms + WG_BLK, a31);
        _mm256_storeu_ps(m + 4 * ms + WG_BLK, a41);
        _mm256_storeu_ps(m + 5 * ms + WG_BLK, a51);
    }
}

/* The register tile of the backward-weights products (common/winograd_bwd_weights_driver.h):
 * mw[i][0..8*nob) += sum over t < nt of v[4 t + i] * e[16 t + 0..8*nob) for the 4 input channels i of a
 * panel, each sum in tile order into one accumulator. Both operands stream: per tile, 4 values of the V
 * panel (broadcast) and a row of E (16 output channels, 2 loads), 8 FMAs into 8 accumulators (as many as
 * the FMA pipes' latency needs; a 6-channel tile would need V in 6-channel panels, which the 8-lane
 * transforms cannot store whole). */
WG_INLINE void wg_bww_kernel(const float *v, const float *e, int nt, float *mw, size_t ms, const int nob)
{
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
    for (int t = 0; t < nt; t++) {
        const float *vt = v + (size_t)t * 4, *et = e + (size_t)t * 16;
        const __m256 e0 = _mm256_loadu_ps(et);
        const __m256 e1 = nob == 2 ? _mm256_loadu_ps(et + WG_BLK) : e0;
        __m256 b;
#define WG_ROW(r)                                                                                                      \
    b = _mm256_broadcast_ss(vt + r);                                                                                   \
    a##r##0 = _mm256_fmadd_ps(b, e0, a##r##0);                                                                         \
    if (nob == 2)                                                                                                      \
        a##r##1 = _mm256_fmadd_ps(b, e1, a##r##1);
        WG_ROW(0)
        WG_ROW(1)
        WG_ROW(2)
        WG_ROW(3)
#undef WG_ROW
    }
#define WG_ADD(r)                                                                                                      \
    _mm256_storeu_ps(mw + r * ms, _mm256_add_ps(_mm256_loadu_ps(mw + r * ms), a##r##0));                              \
    if (nob == 2)                                                                                                      \
        _mm256_storeu_ps(mw + r * ms + WG_BLK, _mm256_add_ps(_mm256_loadu_ps(mw + r * ms + WG_BLK), a##r##1));
    WG_ADD(0)
    WG_ADD(1)
    WG_ADD(2)
    WG_ADD(3)
#undef WG_ADD
}

/* ---------------------------------------------------------------------------------------------------- */
/* step 3: epilogues                                                                                    */

/* The per-block state of the epilogue: the lane mask of the last block's real channels, the block's
 * folded BatchNorm, and its statistics (sum lo/hi, sumsq lo/hi). */
typedef struct wg_epi_blk {
    __m256 mask, scale, shift;
    __m256d st[4];
} wg_epi_blk;

WG_INLINE void wg_epi_blk_init(wg_epi_blk *eb, const wg_plan *p, const wg_epi_args *ea, int kb, const int epi)
{
    eb->mask = lane_mask(p->k, p->kb - 1);
    eb->scale = eb->shift = _mm256_setzero_ps();
    if (epi == WG_EPI_BN_RELU) {
        eb->scale = _mm256_loadu_ps(ea->scale + (size_t)kb * WG_BLK);
        eb->shift = _mm256_loadu_ps(ea->shift + (size_t)kb * WG_BLK);
    }
    for (int h = 0; h < 4; h++)
        eb->st[h] = _mm256_setzero_pd();
}

/* The block's statistics as [sum 8, sumsq 8] at pk. */
WG_INLINE void wg_epi_blk_stats(const wg_epi_blk *eb, double *pk)
{
    for (int h = 0; h < 4; h++)
        _mm256_storeu_pd(pk + 4 * h, eb->st[h]);
}

/* Stores one output vector at yp with the epilogue: masked clears the padding lanes of the last block
 * (WG_EPI_ADD keeps their old values instead); WG_EPI_BN_RELU applies the folded BatchNorm and ReLU;
 * WG_EPI_STATS adds val and val^2 in double. h (the half of a pixel) is always 0 here. */
WG_INLINE void wg_store_out(float *yp, __m256 val, const int epi, int masked, wg_epi_blk *eb, const int h)
{
    (void)h;
    if (epi == WG_EPI_ADD) {
        const __m256 old = _mm256_loadu_ps(yp);
        const __m256 sum = _mm256_add_ps(old, val);
        val = masked ? _mm256_blendv_ps(old, sum, eb->mask) : sum;
    } else if (epi == WG_EPI_BN_RELU) {
        val = _mm256_max_ps(_mm256_fmadd_ps(val, eb->scale, eb->shift), _mm256_setzero_ps());
    } else if (masked) {
        val = _mm256_and_ps(val, eb->mask);
    }
    _mm256_storeu_ps(yp, val);
    if (epi == WG_EPI_STATS) {
        const __m256d lo = lo_pd(val), hi = hi_pd(val);
        eb->st[0] = _mm256_add_pd(eb->st[0], lo);
        eb->st[1] = _mm256_add_pd(eb->st[1], hi);
        eb->st[2] = _mm256_fmadd_pd(lo, lo, eb->st[2]);
        eb->st[3] = _mm256_fmadd_pd(hi, hi, eb->st[3]);
    }
}

#include "common/winograd_driver.h"
#include "common/winograd_bwd_weights_driver.h"

WG_DEFINE_ALL()
WG_DEFINE_BWD_WEIGHTS_ALL()
