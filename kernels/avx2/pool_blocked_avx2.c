/* Max and average pooling on NCHW8c tensors, AVX2.
 *
 * One vector holds the 8 channels of a channel block at one pixel, so a window reduces vector-wise with no
 * shuffles. Windows are clipped to the input (padded cells never win a max and add nothing to an average).
 *
 * Max pooling keeps the reference's rule per lane: the first maximum of the window in row-major order, with
 * the first NaN winning (a NaN is never hidden). A lane takes a new cell when the cell is greater than the
 * running best, or is a NaN while the best is not; ties keep the earlier cell. The backward recomputes that
 * index per lane and adds dy to it lane by lane.
 *
 * Forward passes parallelise over (plane, output row). Backward passes scatter from overlapping windows, so
 * each (image, channel block) plane is owned by one thread and adds into dx in the reference's order
 * (output rows, output columns, window rows, window columns): results are bitwise the same for any thread
 * count, and identical to the reference kernels'.
 */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "avx2/avx2_layers.h"

#define BLK 8

static __m256 lane_mask(int c, int cb)
{
    const int nl = c - cb * BLK;
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(nl < BLK ? nl : BLK), idx));
}

/* The window of output (oh, ow) clipped to the input: rows [*r0, *r1), columns [*c0, *c1). */
static inline void window(const incv3_pool_shape *s, int oh, int ow, int *r0, int *r1, int *c0, int *c1)
{
    const int top = oh * s->stride_h - s->pad_top, left = ow * s->stride_w - s->pad_left;
    *r0 = top < 0 ? 0 : top;
    *r1 = top + s->kh > s->h ? s->h : top + s->kh;
    *c0 = left < 0 ? 0 : left;
    *c1 = left + s->kw > s->w ? s->w : left + s->kw;
}

/* True per lane where v should replace best: v > best, or v is NaN and best is not. */
static inline __m256 takes(__m256 v, __m256 best)
{
    return _mm256_and_ps(_mm256_cmp_ps(v, best, _CMP_NLE_UQ), _mm256_cmp_ps(best, best, _CMP_ORD_Q));
}

/* Per-lane first maximum of a window of plane xp (row stride W pixels). */
static inline __m256 window_max(const float *xp, int W, int r0, int r1, int c0, int c1)
{
    __m256 best = _mm256_loadu_ps(xp + ((size_t)r0 * W + c0) * BLK);
    for (int r = r0; r < r1; r++) {
        const float *row = xp + (size_t)r * W * BLK;
        for (int c = (r == r0 ? c0 + 1 : c0); c < c1; c++) {
            const __m256 v = _mm256_loadu_ps(row + (size_t)c * BLK);
            best = _mm256_blendv_ps(best, v, takes(v, best));
        }
    }
    return best;
}

void maxpool_fwd_f32_blocked__avx2(const incv3_pool_shape *s, const float *x, float *y)
{
    const int CB = (s->c + BLK - 1) / BLK, OH = s->oh, OW = s->ow, W = s->w;
    const size_t in_plane = (size_t)s->h * s->w * BLK, out_plane = (size_t)OH * OW * BLK;
    const long planes = (long)s->n * CB;

#pragma omp parallel for collapse(2) schedule(static)
    for (long p = 0; p < planes; p++) {
        for (int oh = 0; oh < OH; oh++) {
            const float *xp = x + (size_t)p * in_plane;
            float *yp = y + (size_t)p * out_plane + (size_t)oh * OW * BLK;
            const __m256 mask = lane_mask(s->c, (int)(p % CB));
            for (int ow = 0; ow < OW; ow++) {
                int r0, r1, c0, c1;
                window(s, oh, ow, &r0, &r1, &c0, &c1);
                _mm256_storeu_ps(yp + (size_t)ow * BLK, _mm256_and_ps(window_max(xp, W, r0, r1, c0, c1), mask));
            }
        }
    }
}

void maxpool_bwd_f32_blocked__avx2(const incv3_pool_shape *s, const float *x, const float *dy, float *dx,
                                   int accumulate)
{
    const int CB = (s->c + BLK - 1) / BLK, OH = s->oh, OW = s->ow, W = s->w;
    const size_t in_plane = (size_t)s->h * s->w * BLK, out_plane = (size_t)OH * OW * BLK;
    const long planes = (long)s->n * CB;

#pragma omp parallel for schedule(static)
    for (long p = 0; p < planes; p++) {
        const float *xp = x + (size_t)p * in_plane;
        const float *dyp = dy + (size_t)p * out_plane;
        float *dxp = dx + (size_t)p * in_plane;
        const int cb = (int)(p % CB);
        const int nl = s->c - cb * BLK < BLK ? s->c - cb * BLK : BLK;
        if (!accumulate)
            memset(dxp, 0, in_plane * sizeof *dxp);
        for (int oh = 0; oh < OH; oh++) {
            for (int ow = 0; ow < OW; ow++) {
                int r0, r1, c0, c1;
                window(s, oh, ow, &r0, &r1, &c0, &c1);
                /* Running best and, per lane, the pixel index (as int bits) where it was found. */
                __m256 best = _mm256_loadu_ps(xp + ((size_t)r0 * W + c0) * BLK);
                __m256 bidx = _mm256_castsi256_ps(_mm256_set1_epi32(r0 * W + c0));
                for (int r = r0; r < r1; r++) {
                    const float *row = xp + (size_t)r * W * BLK;
                    for (int c = (r == r0 ? c0 + 1 : c0); c < c1; c++) {
                        const __m256 v = _mm256_loadu_ps(row + (size_t)c * BLK);
                        const __m256 t = takes(v, best);
                        best = _mm256_blendv_ps(best, v, t);
                        bidx = _mm256_blendv_ps(bidx, _mm256_castsi256_ps(_mm256_set1_epi32(r * W + c)), t);
                    }
                }
                int32_t idx[BLK];
                _mm256_storeu_si256((__m256i *)idx, _mm256_castps_si256(bidx));
                const float *g = dyp + ((size_t)oh * OW + ow) * BLK;
                for (int l = 0; l < nl; l++)
                    dxp[(size_t)idx[l] * BLK + l] += g[l];
            }
        }
    }
}

void avgpool_fwd_f32_blocked__avx2(const incv3_pool_shape *s, const float *x, float *y)
{
    const int CB = (s->c + BLK - 1) / BLK, OH = s->oh, OW = s->ow, W = s->w;
    const size_t in_plane = (size_t)s->h * s->w * BLK, out_plane = (size_t)OH * OW * BLK;
    const long planes = (long)s->n * CB;
    const __m256d inv_area = _mm256_set1_pd(1.0 / ((double)s->kh * s->kw));

#pragma omp parallel for collapse(2) schedule(static)
    for (long p = 0; p < planes; p++) {
        for (int oh = 0; oh < OH; oh++) {
            const float *xp = x + (size_t)p * in_plane;
            float *yp = y + (size_t)p * out_plane + (size_t)oh * OW * BLK;
            const __m256 mask = lane_mask(s->c, (int)(p % CB));
            for (int ow = 0; ow < OW; ow++) {
                int r0, r1, c0, c1;
                window(s, oh, ow, &r0, &r1, &c0, &c1);
                /* Summed in double as the reference does (windows reach 8x8 = 64 cells). */
                __m256d lo = _mm256_setzero_pd(), hi = lo;
                for (int r = r0; r < r1; r++) {
                    const float *row = xp + (size_t)r * W * BLK;
                    for (int c = c0; c < c1; c++) {
                        const __m256 v = _mm256_loadu_ps(row + (size_t)c * BLK);
                        lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
                        hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
                    }
                }
                const __m128 flo = _mm256_cvtpd_ps(_mm256_mul_pd(lo, inv_area));
                const __m128 fhi = _mm256_cvtpd_ps(_mm256_mul_pd(hi, inv_area));
                const __m256 out = _mm256_insertf128_ps(_mm256_castps128_ps256(flo), fhi, 1);
                _mm256_storeu_ps(yp + (size_t)ow * BLK, _mm256_and_ps(out, mask));
            }
        }
    }
}

void avgpool_bwd_f32_blocked__avx2(const incv3_pool_shape *s, const float *dy, float *dx, int accumulate)
{
    const int CB = (s->c + BLK - 1) / BLK, OH = s->oh, OW = s->ow, W = s->w;
    const size_t in_plane = (size_t)s->h * s->w * BLK, out_plane = (size_t)OH * OW * BLK;
    const long planes = (long)s->n * CB;
    const __m256d inv_area = _mm256_set1_pd(1.0 / ((double)s->kh * s->kw));

#pragma omp parallel for schedule(static)
    for (long p = 0; p < planes; p++) {
        const float *dyp = dy + (size_t)p * out_plane;
        float *dxp = dx + (size_t)p * in_plane;
        const __m256 mask = lane_mask(s->c, (int)(p % CB));
        if (!accumulate)
            memset(dxp, 0, in_plane * sizeof *dxp);
        for (int oh = 0; oh < OH; oh++) {
            for (int ow = 0; ow < OW; ow++) {
                int r0, r1, c0, c1;
                window(s, oh, ow, &r0, &r1, &c0, &c1);
                /* g = (float)(dy * inv_area) rounded once from double, as the reference. */
                const __m256 d = _mm256_loadu_ps(dyp + ((size_t)oh * OW + ow) * BLK);
                const __m128 glo = _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(d)), inv_area));
                const __m128 ghi = _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(d, 1)), inv_area));
                const __m256 g = _mm256_and_ps(_mm256_insertf128_ps(_mm256_castps128_ps256(glo), ghi, 1), mask);
                for (int r = r0; r < r1; r++) {
                    float *row = dxp + (size_t)r * W * BLK;
                    for (int c = c0; c < c1; c++)
                        _mm256_storeu_ps(row + (size_t)c * BLK, _mm256_add_ps(_mm256_loadu_ps(row + (size_t)c * BLK), g));
                }
            }
        }
    }
}
