/* AdamW (torch.optim.AdamW's algorithm, as adamw_f32_ref__scalar) over 4 floats per quad, with the
 * arithmetic of adamw_f32__avx2: the scalar factors (bias corrections) are computed once in double, as in
 * the reference; the per-element arithmetic is float with the same FMAs, so results differ from the
 * reference by a few units in the last place. The last count % 4 elements go through the same vector code
 * on a padded copy, so every element gets the same arithmetic wherever it sits. The step is bound by
 * memory (4 streams in, 3 out), not by arithmetic. */
#include <arm_neon.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "neon/neon_kernels.h"

/* Below this many floats the fork/join of a parallel region costs more than the update. */
#define ADAMW_PAR_MIN ((size_t)1 << 14)

typedef struct adamw_consts {
    float32x4_t b1, b2, one_m_b1, one_m_b2, decay, step_size, inv_sqrt_bc2, eps;
} adamw_consts;

/* One quad of the update at p, g, m, v (each 4 floats). */
static inline void adamw4(const adamw_consts *k, float *p, const float *g_, float *m_, float *v_)
{
    const float32x4_t g = vld1q_f32(g_);
    const float32x4_t m = vfmaq_f32(vmulq_f32(k->one_m_b1, g), k->b1, vld1q_f32(m_));
    const float32x4_t v = vfmaq_f32(vmulq_f32(k->one_m_b2, vmulq_f32(g, g)), k->b2, vld1q_f32(v_));
    const float32x4_t denom = vfmaq_f32(k->eps, vsqrtq_f32(v), k->inv_sqrt_bc2);
    const float32x4_t pd = vmulq_f32(vld1q_f32(p), k->decay);
    vst1q_f32(m_, m);
    vst1q_f32(v_, v);
    vst1q_f32(p, vfmsq_f32(pd, k->step_size, vdivq_f32(m, denom)));
}

void adamw_f32__neon(size_t count, float *param, const float *grad, float *exp_avg, float *exp_avg_sq, float lr,
                     float beta1, float beta2, float eps, float weight_decay, int64_t step)
{
    const double bc1 = 1.0 - pow((double)beta1, (double)step), bc2 = 1.0 - pow((double)beta2, (double)step);
    const adamw_consts k = {
        .b1 = vdupq_n_f32(beta1),
        .b2 = vdupq_n_f32(beta2),
        .one_m_b1 = vdupq_n_f32(1.0f - beta1),
        .one_m_b2 = vdupq_n_f32(1.0f - beta2),
        .decay = vdupq_n_f32((float)(1.0 - (double)lr * weight_decay)),
        .step_size = vdupq_n_f32((float)((double)lr / bc1)),
        .inv_sqrt_bc2 = vdupq_n_f32((float)(1.0 / sqrt(bc2))),
        .eps = vdupq_n_f32(eps),
    };
    const long quads = (long)(count / 4);
#pragma omp parallel for schedule(static) if (count >= ADAMW_PAR_MIN)
    for (long q = 0; q < quads; q++) {
        const size_t i = (size_t)q * 4;
        adamw4(&k, param + i, grad + i, exp_avg + i, exp_avg_sq + i);
    }
    const size_t done = (size_t)quads * 4, rest = count - done;
    if (rest) {
        float p[4] = {0}, g[4] = {0}, m[4] = {0}, v[4] = {0};
        memcpy(p, param + done, rest * sizeof *p);
        memcpy(g, grad + done, rest * sizeof *g);
        memcpy(m, exp_avg + done, rest * sizeof *m);
        memcpy(v, exp_avg_sq + done, rest * sizeof *v);
        adamw4(&k, p, g, m, v);
        memcpy(param + done, p, rest * sizeof *p);
        memcpy(exp_avg + done, m, rest * sizeof *m);
        memcpy(exp_avg_sq + done, v, rest * sizeof *v);
    }
}
