/* AdamW as torch.optim.AdamW computes it (amsgrad=False, maximize=False): decoupled weight decay applied to
 * the parameter first, then the bias-corrected Adam step
 *   p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps),  bc1 = 1 - beta1^step, bc2 = 1 - beta2^step.
 *
 * The bias corrections are scalars computed once in double: beta2^step sits close to 1 for thousands of
 * steps, and float would lose most of the digits of 1 - beta2^step. Each element's update is also carried
 * in double and rounded once on store, so the only float error is the storage of p, m and v.
 */
#include <assert.h>
#include <math.h>

#include "ref_kernels.h"

void adamw_f32_ref__scalar(size_t count, float *param, const float *grad, float *exp_avg, float *exp_avg_sq,
                           float lr, float beta1, float beta2, float eps, float weight_decay, int64_t step)
{
    assert(step >= 1);
    const double b1 = beta1, b2 = beta2;
    const double decay = 1.0 - (double)lr * weight_decay;
    const double bc1 = 1.0 - pow(b1, (double)step), bc2 = 1.0 - pow(b2, (double)step);
    const double step_size = (double)lr / bc1, sqrt_bc2 = sqrt(bc2);

#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < count; i++) {
        const double g = grad[i];
        const double m = b1 * exp_avg[i] + (1.0 - b1) * g;
        const double v = b2 * exp_avg_sq[i] + (1.0 - b2) * g * g;
        const double p = param[i] * decay - step_size * m / (sqrt(v) / sqrt_bc2 + eps);
        exp_avg[i] = (float)m;
        exp_avg_sq[i] = (float)v;
        param[i] = (float)p;
    }
}
