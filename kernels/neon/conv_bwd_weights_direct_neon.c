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

 *
 * The driver (groups, chunks, segments, ownership blocks, the OpenMP loop and the tap clipping) is
 * common/conv_bwd_weights_direct_driver.h, shared by the ISAs; this file holds the register tiles.
 */
#include <arm_neon.h>
#include <stddef.h>

#include "neon/neon_kernels.h"
#include "common/conv_bwd_weights_direct_tile.h"

/* As in conv_strip_neon.c: GCC's pre-allocation scheduler hoists all 8 dy loads of the 4 x 3 tile ahead of
 * the FMAs and the allocator then spills an accumulator in the pixel loop. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-schedule-insns")
#endif

#define KERNEL_ISA neon
#define KERNEL_ISA_STR "neon"
#define BLK BWW_BLK

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

/* dw += the partial sums of segments 1 .. ns - 1, in segment order. */
static void bww_sum_segments(float *dw8i8o, const float *partial, size_t dw_count, int NS)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < dw_count; i += 4) {
        float32x4_t v = vld1q_f32(dw8i8o + i);
        for (int sgm = 1; sgm < NS; sgm++)
            v = vaddq_f32(v, vld1q_f32(partial + (size_t)(sgm - 1) * dw_count + i));
        vst1q_f32(dw8i8o + i, v);
    }
}

#include "common/conv_bwd_weights_direct_driver.h"
