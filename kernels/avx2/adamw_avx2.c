/* AdamW (torch.optim.AdamW's algorithm, as adamw_f32_ref__scalar) over 8 floats per vector. The scalar
 * factors (bias corrections) are computed once in double, as in the reference; the per-element arithmetic
 * is float, so results differ from the reference by a few units in the last place. The step is bound by
 * memory (4 streams in, 3 out), not by arithmetic. */
#include <immintrin.h>
#include <math.h>

#include "avx2_kernels.h"

void adamw_f32__avx2(size_t count, float *param, const float *grad, float *exp_avg, float *exp_avg_sq, float lr,
                     float beta1, float beta2, float eps, float weight_decay, int64_t step)
{
    const double bc1 = 1.0 - pow((double)beta1, (double)step), bc2 = 1.0 - pow((double)beta2, (double)step);
    const float decay = (float)(1.0 - (double)lr * weight_decay), step_size = (float)((double)lr / bc1);
    const float inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2));
    const __m256 vb1 = _mm256_set1_ps(beta1), vb2 = _mm256_set1_ps(beta2);
    const __m256 v1b1 = _mm256_set1_ps(1.0f - beta1), v1b2 = _mm256_set1_ps(1.0f - beta2);
    const __m256 vdecay = _mm256_set1_ps(decay), vstep = _mm256_set1_ps(step_size);
    const __m256 vibc2 = _mm256_set1_ps(inv_sqrt_bc2), veps = _mm256_set1_ps(eps);
    const size_t vec_end = count / 8 * 8;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < vec_end; i += 8) {
        const __m256 g = _mm256_loadu_ps(grad + i);
        const __m256 m = _mm256_fmadd_ps(vb1, _mm256_loadu_ps(exp_avg + i), _mm256_mul_ps(v1b1, g));
        const __m256 v = _mm256_fmadd_ps(vb2, _mm256_loadu_ps(exp_avg_sq + i), _mm256_mul_ps(v1b2, _mm256_mul_ps(g, g)));
        const __m256 denom = _mm256_fmadd_ps(_mm256_sqrt_ps(v), vibc2, veps);
        const __m256 p = _mm256_mul_ps(_mm256_loadu_ps(param + i), vdecay);
        _mm256_storeu_ps(exp_avg + i, m);
        _mm256_storeu_ps(exp_avg_sq + i, v);
        _mm256_storeu_ps(param + i, _mm256_fnmadd_ps(vstep, _mm256_div_ps(m, denom), p));
    }
    for (size_t i = vec_end; i < count; i++) {
        const float g = grad[i];
        const float m = beta1 * exp_avg[i] + (1.0f - beta1) * g;
        const float v = beta2 * exp_avg_sq[i] + (1.0f - beta2) * g * g;
        exp_avg[i] = m;
        exp_avg_sq[i] = v;
        param[i] = param[i] * decay - step_size * m / (sqrtf(v) * inv_sqrt_bc2 + eps);
    }
}
