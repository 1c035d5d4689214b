/* ReLU forward and backward over a flat array, AVX2. Element-wise, so any split over threads gives the same
 * bits; small arrays stay on the calling thread. Same NaN and signed-zero behaviour as the reference:
 * forward zeroes x < 0 only (a NaN passes through), backward passes dy where y > 0. */
#include <immintrin.h>
#include <stddef.h>

#include "avx2/avx2_layers.h"

static void relu_fwd_range(const float *x, float *y, size_t lo, size_t hi)
{
    const __m256 z = _mm256_setzero_ps();
    size_t i = lo;
    for (; i + 16 <= hi; i += 16) {
        const __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
        _mm256_storeu_ps(y + i, _mm256_andnot_ps(_mm256_cmp_ps(a, z, _CMP_LT_OQ), a));
        _mm256_storeu_ps(y + i + 8, _mm256_andnot_ps(_mm256_cmp_ps(b, z, _CMP_LT_OQ), b));
    }
    for (; i + 8 <= hi; i += 8) {
        const __m256 a = _mm256_loadu_ps(x + i);
        _mm256_storeu_ps(y + i, _mm256_andnot_ps(_mm256_cmp_ps(a, z, _CMP_LT_OQ), a));
    }
    for (; i < hi; i++)
        y[i] = x[i] < 0.0f ? 0.0f : x[i];
}

static void relu_bwd_range(const float *y, const float *dy, float *dx, size_t lo, size_t hi, int accumulate)
{
    const __m256 z = _mm256_setzero_ps();
    size_t i = lo;
    if (accumulate) {
        for (; i + 8 <= hi; i += 8) {
            const __m256 g = _mm256_and_ps(_mm256_cmp_ps(_mm256_loadu_ps(y + i), z, _CMP_GT_OQ), _mm256_loadu_ps(dy + i));
            _mm256_storeu_ps(dx + i, _mm256_add_ps(_mm256_loadu_ps(dx + i), g));
        }
        for (; i < hi; i++)
            dx[i] += y[i] > 0.0f ? dy[i] : 0.0f;
    } else {
        for (; i + 8 <= hi; i += 8)
            _mm256_storeu_ps(dx + i,
                             _mm256_and_ps(_mm256_cmp_ps(_mm256_loadu_ps(y + i), z, _CMP_GT_OQ), _mm256_loadu_ps(dy + i)));
        for (; i < hi; i++)
            dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
    }
}

#define KERNEL_ISA avx2

#include "common/relu_driver.h"
