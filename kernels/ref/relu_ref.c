/* Rectified linear unit, element-wise. */
#include "ref_kernels.h"

void relu_fwd_f32_ref__scalar(size_t count, const float *x, float *y)
{
    /* Written as "negative -> 0" rather than "positive -> x" so a NaN passes through, as in PyTorch, instead
     * of being silently turned into 0 and hiding a divergence. */
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < count; i++)
        y[i] = x[i] < 0.0f ? 0.0f : x[i];
}

void relu_bwd_f32_ref__scalar(size_t count, const float *y, const float *dy, float *dx, int accumulate)
{
    if (accumulate) {
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < count; i++)
            dx[i] += y[i] > 0.0f ? dy[i] : 0.0f;
    } else {
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < count; i++)
            dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
    }
}
