/* ReLU forward and backward over a flat array, NEON. Element-wise, so any split over threads gives the same
 * bits; small arrays stay on the calling thread. Same NaN and signed-zero behaviour as the reference:
 * forward zeroes x < 0 only (a NaN and -0 pass through, which vmaxq_f32 would not keep), backward passes dy
 * where y > 0. */
#include <arm_neon.h>
#include <stddef.h>

#include "neon/neon_layers.h"

static inline float32x4_t relu4(float32x4_t a)
{
    /* bic clears the lanes where a < 0; the compare is false for a NaN. */
    return vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(a), vcltzq_f32(a)));
}

/* g where y > 0, else +0. */
static inline float32x4_t relu_grad4(float32x4_t y, float32x4_t g)
{
    return vreinterpretq_f32_u32(vandq_u32(vcgtzq_f32(y), vreinterpretq_u32_f32(g)));
}

static void relu_fwd_range(const float *x, float *y, size_t lo, size_t hi)
{
    size_t i = lo;
    for (; i + 16 <= hi; i += 16) {
        const float32x4_t a = vld1q_f32(x + i), b = vld1q_f32(x + i + 4);
        const float32x4_t c = vld1q_f32(x + i + 8), d = vld1q_f32(x + i + 12);
        vst1q_f32(y + i, relu4(a));
        vst1q_f32(y + i + 4, relu4(b));
        vst1q_f32(y + i + 8, relu4(c));
        vst1q_f32(y + i + 12, relu4(d));
    }
    for (; i + 4 <= hi; i += 4)
        vst1q_f32(y + i, relu4(vld1q_f32(x + i)));
    for (; i < hi; i++)
        y[i] = x[i] < 0.0f ? 0.0f : x[i];
}

static void relu_bwd_range(const float *y, const float *dy, float *dx, size_t lo, size_t hi, int accumulate)
{
    size_t i = lo;
    if (accumulate) {
        for (; i + 8 <= hi; i += 8) {
            const float32x4_t g0 = relu_grad4(vld1q_f32(y + i), vld1q_f32(dy + i));
            const float32x4_t g1 = relu_grad4(vld1q_f32(y + i + 4), vld1q_f32(dy + i + 4));
            vst1q_f32(dx + i, vaddq_f32(vld1q_f32(dx + i), g0));
            vst1q_f32(dx + i + 4, vaddq_f32(vld1q_f32(dx + i + 4), g1));
        }
        for (; i + 4 <= hi; i += 4)
            vst1q_f32(dx + i, vaddq_f32(vld1q_f32(dx + i), relu_grad4(vld1q_f32(y + i), vld1q_f32(dy + i))));
        for (; i < hi; i++)
            dx[i] += y[i] > 0.0f ? dy[i] : 0.0f;
    } else {
        for (; i + 8 <= hi; i += 8) {
            vst1q_f32(dx + i, relu_grad4(vld1q_f32(y + i), vld1q_f32(dy + i)));
            vst1q_f32(dx + i + 4, relu_grad4(vld1q_f32(y + i + 4), vld1q_f32(dy + i + 4)));
        }
        for (; i + 4 <= hi; i += 4)
            vst1q_f32(dx + i, relu_grad4(vld1q_f32(y + i), vld1q_f32(dy + i)));
        for (; i < hi; i++)
            dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
    }
}

#define KERNEL_ISA neon

#include "common/relu_driver.h"
