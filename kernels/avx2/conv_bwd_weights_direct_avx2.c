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
 * into its own partial buffer (segment 0 into the blocked gradient), and the buffers are added in segment order afterwards.
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

 *
 * The driver (groups, chunks, segments, ownership blocks, the OpenMP loop and the tap clipping) is
 * common/conv_bwd_weights_direct_driver.h, shared by the ISAs; this file holds the register tiles.
 */
#include <immintrin.h>
#include <stddef.h>

#include "avx2_kernels.h"
#include "common/conv_bwd_weights_direct_tile.h"

#define KERNEL_ISA avx2
#define KERNEL_ISA_STR "avx2"
#define BLK BWW_BLK

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

static inline __attribute__((always_inline)) void bww_tile_k(const bww_args *a, const int NK, const int NI)
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

/* The tile the driver's table instantiates: NK <= 3 in bww_tile_k, NK 4 (inputs of at most 3 channels)
 * in bww_tile4; resolved at compile time. */
static inline __attribute__((always_inline)) void bww_tile(const bww_args *a, const int NK, const int NI, const int PF)
{
    if (NK == 4)
        bww_tile4(a, NI, PF);
    else
        bww_tile_k(a, NK, NI);
}

/* dw += the partial sums of segments 1 .. ns - 1, in segment order. */
static void bww_sum_segments(float *dw8i8o, const float *partial, size_t dw_count, int NS)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < dw_count; i += BLK) {
        __m256 v = _mm256_loadu_ps(dw8i8o + i);
        for (int sgm = 1; sgm < NS; sgm++)
            v = _mm256_add_ps(v, _mm256_loadu_ps(partial + (size_t)(sgm - 1) * dw_count + i));
        _mm256_storeu_ps(dw8i8o + i, v);
    }
}

#include "common/conv_bwd_weights_direct_driver.h"
