/* Batch normalization on NCHW8c tensors, AVX2+FMA.
 *
 * One 8-lane vector holds the 8 channels of a channel block at one pixel, so the per-channel statistics are
 * per-lane sums over (n, h, w) of that block. Sums are kept in double (each 8-float vector is widened into
 * two 4-double halves) in an order fixed by the shape alone: images in order, pixels in order with four
 * interleaved partial sums combined at the end. Each channel block is owned by one OpenMP thread, so
 * results are bitwise the same for any thread count. Variance is two-pass (about the mean), as in the
 * reference.
 *
 * Per-channel parameters are copied into 8-wide lane arrays (zero past c), so the kernels never read or
 * write parameter arrays past c; every output vector is masked with the block's lane mask so padding lanes
 * come out as exactly zero.
 *
 * The loop over channel blocks and the per-channel coefficients are common/bn_blocked_driver.h, shared by
 * the ISAs; this file holds the block reductions and sweeps.
 */
#include <immintrin.h>
#include <math.h>
#include <stddef.h>

#include "avx2/avx2_layers.h"
#include "avx2/bn_reduce_avx2.h"

#define BLK 8

/* Per-lane sum over the block (all images) of x, in double. */
static void block_sum(const float *x, size_t hw, int N, size_t img_stride, double out[BLK])
{
    __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (int n = 0; n < N; n++) {
        const float *xp = x + (size_t)n * img_stride;
        size_t i = 0;
        for (; i + 4 <= hw; i += 4) {
            const __m256 v0 = _mm256_loadu_ps(xp + (i + 0) * BLK), v1 = _mm256_loadu_ps(xp + (i + 1) * BLK);
            const __m256 v2 = _mm256_loadu_ps(xp + (i + 2) * BLK), v3 = _mm256_loadu_ps(xp + (i + 3) * BLK);
            a0 = _mm256_add_pd(a0, lo_pd(v0));
            a1 = _mm256_add_pd(a1, hi_pd(v0));
            a2 = _mm256_add_pd(a2, lo_pd(v1));
            a3 = _mm256_add_pd(a3, hi_pd(v1));
            a4 = _mm256_add_pd(a4, lo_pd(v2));
            a5 = _mm256_add_pd(a5, hi_pd(v2));
            a6 = _mm256_add_pd(a6, lo_pd(v3));
            a7 = _mm256_add_pd(a7, hi_pd(v3));
        }
        for (; i < hw; i++) {
            const __m256 v0 = _mm256_loadu_ps(xp + i * BLK);
            a0 = _mm256_add_pd(a0, lo_pd(v0));
            a1 = _mm256_add_pd(a1, hi_pd(v0));
        }
    }
    a0 = _mm256_add_pd(_mm256_add_pd(a0, a2), _mm256_add_pd(a4, a6));
    a1 = _mm256_add_pd(_mm256_add_pd(a1, a3), _mm256_add_pd(a5, a7));
    _mm256_storeu_pd(out, a0);
    _mm256_storeu_pd(out + 4, a1);
}

/* Per-lane sum over the block of (x - mu)^2, in double. */
static void block_sqdev(const float *x, size_t hw, int N, size_t img_stride, const double mu[BLK], double out[BLK])
{
    const __m256d m0 = _mm256_loadu_pd(mu), m1 = _mm256_loadu_pd(mu + 4);
    __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (int n = 0; n < N; n++) {
        const float *xp = x + (size_t)n * img_stride;
        size_t i = 0;
        for (; i + 4 <= hw; i += 4) {
            const __m256 v0 = _mm256_loadu_ps(xp + (i + 0) * BLK), v1 = _mm256_loadu_ps(xp + (i + 1) * BLK);
            const __m256 v2 = _mm256_loadu_ps(xp + (i + 2) * BLK), v3 = _mm256_loadu_ps(xp + (i + 3) * BLK);
            __m256d t;
            t = _mm256_sub_pd(lo_pd(v0), m0);
            a0 = _mm256_fmadd_pd(t, t, a0);
            t = _mm256_sub_pd(hi_pd(v0), m1);
            a1 = _mm256_fmadd_pd(t, t, a1);
            t = _mm256_sub_pd(lo_pd(v1), m0);
            a2 = _mm256_fmadd_pd(t, t, a2);
            t = _mm256_sub_pd(hi_pd(v1), m1);
            a3 = _mm256_fmadd_pd(t, t, a3);
            t = _mm256_sub_pd(lo_pd(v2), m0);
            a4 = _mm256_fmadd_pd(t, t, a4);
            t = _mm256_sub_pd(hi_pd(v2), m1);
            a5 = _mm256_fmadd_pd(t, t, a5);
            t = _mm256_sub_pd(lo_pd(v3), m0);
            a6 = _mm256_fmadd_pd(t, t, a6);
            t = _mm256_sub_pd(hi_pd(v3), m1);
            a7 = _mm256_fmadd_pd(t, t, a7);
        }
        for (; i < hw; i++) {
            const __m256 v0 = _mm256_loadu_ps(xp + i * BLK);
            __m256d t;
            t = _mm256_sub_pd(lo_pd(v0), m0);
            a0 = _mm256_fmadd_pd(t, t, a0);
            t = _mm256_sub_pd(hi_pd(v0), m1);
            a1 = _mm256_fmadd_pd(t, t, a1);
        }
    }
    a0 = _mm256_add_pd(_mm256_add_pd(a0, a2), _mm256_add_pd(a4, a6));
    a1 = _mm256_add_pd(_mm256_add_pd(a1, a3), _mm256_add_pd(a5, a7));
    _mm256_storeu_pd(out, a0);
    _mm256_storeu_pd(out + 4, a1);
}

/* Per-lane sums over the block of dy and of dy * (x - mu), in double. */
static void block_grad_sums(const float *x, const float *dy, size_t hw, int N, size_t img_stride,
                            const float mu[BLK], double sdy[BLK], double sdyx[BLK])
{
    const __m256d m0 = _mm256_cvtps_pd(_mm_loadu_ps(mu)), m1 = _mm256_cvtps_pd(_mm_loadu_ps(mu + 4));
    bn_grad_acc acc;
    bn_grad_acc_zero(&acc);
    for (int n = 0; n < N; n++)
        bn_grad_accum(x + (size_t)n * img_stride, NULL, dy + (size_t)n * img_stride, hw, m0, m1, &acc, 0);
    bn_grad_acc_store(&acc, sdy, sdyx);
}

/* y = ((x - mhi) - mlo) * scale + shift over the block, masked. */
static void block_normalize(const float *x, float *y, size_t hw, int N, size_t img_stride, __m256 mhi, __m256 mlo,
                            __m256 scale, __m256 shift, __m256 mask)
{
    for (int n = 0; n < N; n++) {
        const float *xp = x + (size_t)n * img_stride;
        float *yp = y + (size_t)n * img_stride;
        for (size_t i = 0; i < hw; i++) {
            const __m256 t = _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(xp + i * BLK), mhi), mlo);
            _mm256_storeu_ps(yp + i * BLK, _mm256_and_ps(_mm256_fmadd_ps(t, scale, shift), mask));
        }
    }
}

/* dx (+)= a * dy + (b * (x - mu) + c), masked. */
static void block_dx(const float *x, const float *dy, float *dx, size_t hw, int N, size_t img_stride, __m256 mu,
                     __m256 a, __m256 b, __m256 c, __m256 mask, int accumulate)
{
    for (int n = 0; n < N; n++) {
        const size_t off = (size_t)n * img_stride;
        bn_dx_pixels(x + off, NULL, dy + off, dx + off, hw, mu, a, b, c, mask, accumulate, 0);
    }
}

/* dx (+)= a * dy, masked (inference backward: x is not read). */
static void block_dx_scale(const float *dy, float *dx, size_t hw, int N, size_t img_stride, __m256 a, __m256 mask,
                           int accumulate)
{
    for (int n = 0; n < N; n++) {
        const float *dp = dy + (size_t)n * img_stride;
        float *op = dx + (size_t)n * img_stride;
        if (accumulate) {
            for (size_t i = 0; i < hw; i++) {
                const __m256 g = _mm256_mul_ps(a, _mm256_loadu_ps(dp + i * BLK));
                _mm256_storeu_ps(op + i * BLK, _mm256_and_ps(_mm256_add_ps(_mm256_loadu_ps(op + i * BLK), g), mask));
            }
        } else {
            for (size_t i = 0; i < hw; i++)
                _mm256_storeu_ps(op + i * BLK, _mm256_and_ps(_mm256_mul_ps(a, _mm256_loadu_ps(dp + i * BLK)), mask));
        }
    }
}

#define bn_vload(p) _mm256_loadu_ps(p)
#define bn_vzero() _mm256_setzero_ps()
#define bn_vmask(c, cb) lane_mask(c, cb)
#define KERNEL_ISA avx2

#include "common/bn_blocked_driver.h"
