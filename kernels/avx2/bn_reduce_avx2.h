/* Internal AVX2+FMA pieces shared by the blocked BatchNorm kernels (bn_blocked_avx2.c) and the fused
 * BatchNorm+ReLU kernels (conv_bn_fused_avx2.c), NCHW8c: float-to-double halves, the lane mask of a
 * channel block, the per-lane double sums of the backward pass and the dx sweep.
 *
 * Include only from sources compiled with -mavx2 -mfma. Every helper is always inlined, and its `masked`
 * argument must be a compile-time constant at each call: masked != 0 reads dz = dy where y > 0 (the ReLU
 * mask of the fused backward); masked == 0 reads dy as is, never touches y (which may be NULL), and
 * compiles to exactly the unmasked arithmetic.
 */
#ifndef INCV3_BN_REDUCE_AVX2_H
#define INCV3_BN_REDUCE_AVX2_H

#include <immintrin.h>
#include <stddef.h>

#define BN_AVX2_INLINE static inline __attribute__((always_inline))
#define BN_AVX2_BLK 8

BN_AVX2_INLINE __m256d lo_pd(__m256 v)
{
    return _mm256_cvtps_pd(_mm256_castps256_ps128(v));
}

BN_AVX2_INLINE __m256d hi_pd(__m256 v)
{
    return _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
}

/* Lane mask of channel block cb: all ones for the lanes holding real channels. */
BN_AVX2_INLINE __m256 lane_mask(int c, int cb)
{
    const int nl = c - cb * BN_AVX2_BLK;
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_castsi256_ps(
        _mm256_cmpgt_epi32(_mm256_set1_epi32(nl < BN_AVX2_BLK ? nl : BN_AVX2_BLK), idx));
}

/* The gradient at pixel i of a block: dy, or with masked dz = dy where y > 0, else 0. */
BN_AVX2_INLINE __m256 bn_load_grad(const float *y, const float *dy, size_t i, int masked)
{
    const __m256 d = _mm256_loadu_ps(dy + i * BN_AVX2_BLK);
    if (!masked)
        return d;
    const __m256 pos = _mm256_cmp_ps(_mm256_loadu_ps(y + i * BN_AVX2_BLK), _mm256_setzero_ps(), _CMP_GT_OQ);
    return _mm256_and_ps(d, pos);
}

/* Per-lane double accumulators of sum(g) (s) and sum(g * (x - mu)) (p): 0/1 the low/high lanes of even
 * pixels, 2/3 those of odd pixels. */
typedef struct bn_grad_acc {
    __m256d s0, s1, s2, s3, p0, p1, p2, p3;
} bn_grad_acc;

BN_AVX2_INLINE void bn_grad_acc_zero(bn_grad_acc *a)
{
    a->s0 = a->s1 = a->s2 = a->s3 = _mm256_setzero_pd();
    a->p0 = a->p1 = a->p2 = a->p3 = _mm256_setzero_pd();
}

/* Adds one pixel's gradient g and input xv (mean m0 | m1 in double) to the accumulators of one parity. */
BN_AVX2_INLINE void bn_grad_acc_pixel(__m256 g8, __m256 xv, __m256d m0, __m256d m1, __m256d *slo, __m256d *shi,
                                      __m256d *plo, __m256d *phi)
{
    __m256d g, t;
    g = lo_pd(g8);
    t = _mm256_sub_pd(lo_pd(xv), m0);
    *slo = _mm256_add_pd(*slo, g);
    *plo = _mm256_fmadd_pd(g, t, *plo);
    g = hi_pd(g8);
    t = _mm256_sub_pd(hi_pd(xv), m1);
    *shi = _mm256_add_pd(*shi, g);
    *phi = _mm256_fmadd_pd(g, t, *phi);
}

/* Adds the hw pixels of one (image, block) to a, pixels in order, even and odd pixels in their own
 * partials. */
BN_AVX2_INLINE void bn_grad_accum(const float *x, const float *y, const float *dy, size_t hw, __m256d m0, __m256d m1,
                                  bn_grad_acc *a, int masked)
{
    size_t i = 0;
    for (; i + 2 <= hw; i += 2) {
        const __m256 x0 = _mm256_loadu_ps(x + i * BN_AVX2_BLK), x1 = _mm256_loadu_ps(x + (i + 1) * BN_AVX2_BLK);
        const __m256 d0 = bn_load_grad(y, dy, i, masked), d1 = bn_load_grad(y, dy, i + 1, masked);
        bn_grad_acc_pixel(d0, x0, m0, m1, &a->s0, &a->s1, &a->p0, &a->p1);
        bn_grad_acc_pixel(d1, x1, m0, m1, &a->s2, &a->s3, &a->p2, &a->p3);
    }
    if (i < hw)
        bn_grad_acc_pixel(bn_load_grad(y, dy, i, masked), _mm256_loadu_ps(x + i * BN_AVX2_BLK), m0, m1, &a->s0,
                          &a->s1, &a->p0, &a->p1);
}

/* sg[l] = per-lane sum of g, sgx[l] = per-lane sum of g * (x - mu): even partials plus odd partials. */
BN_AVX2_INLINE void bn_grad_acc_store(const bn_grad_acc *a, double *sg, double *sgx)
{
    _mm256_storeu_pd(sg, _mm256_add_pd(a->s0, a->s2));
    _mm256_storeu_pd(sg + 4, _mm256_add_pd(a->s1, a->s3));
    _mm256_storeu_pd(sgx, _mm256_add_pd(a->p0, a->p2));
    _mm256_storeu_pd(sgx + 4, _mm256_add_pd(a->p1, a->p3));
}

/* dx (+)= a * g + (b * (x - mu) + c) over the hw pixels of one (image, block), masked with the lane mask. */
BN_AVX2_INLINE void bn_dx_pixels(const float *x, const float *y, const float *dy, float *dx, size_t hw, __m256 mu,
                                 __m256 a, __m256 b, __m256 c, __m256 mask, int accumulate, int masked)
{
    if (accumulate) {
        for (size_t i = 0; i < hw; i++) {
            const __m256 t = _mm256_sub_ps(_mm256_loadu_ps(x + i * BN_AVX2_BLK), mu);
            __m256 g = _mm256_fmadd_ps(a, bn_load_grad(y, dy, i, masked), _mm256_fmadd_ps(b, t, c));
            g = _mm256_add_ps(_mm256_loadu_ps(dx + i * BN_AVX2_BLK), g);
            _mm256_storeu_ps(dx + i * BN_AVX2_BLK, _mm256_and_ps(g, mask));
        }
    } else {
        for (size_t i = 0; i < hw; i++) {
            const __m256 t = _mm256_sub_ps(_mm256_loadu_ps(x + i * BN_AVX2_BLK), mu);
            const __m256 g = _mm256_fmadd_ps(a, bn_load_grad(y, dy, i, masked), _mm256_fmadd_ps(b, t, c));
            _mm256_storeu_ps(dx + i * BN_AVX2_BLK, _mm256_and_ps(g, mask));
        }
    }
}

#endif
