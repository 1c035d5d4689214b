/* Inverted dropout with a counter-based mask.
 *
 * mask[i] depends only on (seed, i): u_i = top 53 bits of splitmix64(seed ^ (i * 0x9E3779B97F4A7C15)) as a
 * uniform in [0, 1), and mask[i] = (u_i >= p). No generator state is carried between elements, so any
 * split of the loop (threads, SIMD lanes) yields the same mask, and optimized kernels can reproduce it
 * exactly from this definition.
 */
#include <assert.h>

#include "ref_kernels.h"

#define GOLDEN_GAMMA 0x9E3779B97F4A7C15ull

/* One step of SplitMix64 (Steele, Lea and Flood): a bijective mix with good avalanche. */
static uint64_t splitmix64(uint64_t z)
{
    z += GOLDEN_GAMMA;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double uniform01(uint64_t seed, uint64_t i)
{
    return (double)(splitmix64(seed ^ (i * GOLDEN_GAMMA)) >> 11) * 0x1.0p-53;
}

/* p == 1 drops everything; 1/(1-p) would be infinite and 0*inf a NaN, so the scale is 0 there instead.
 * Dropped elements are multiplied by 0 rather than set to 0 so a non-finite input still shows, as in
 * PyTorch's x * mask * scale. */
static float keep_scale(float p)
{
    return p < 1.0f ? (float)(1.0 / (1.0 - (double)p)) : 0.0f;
}

void dropout_fwd_f32_ref__scalar(size_t count, const float *x, float p, uint64_t seed, uint8_t *mask, float *y)
{
    assert(p >= 0.0f && p <= 1.0f);
    const float scale = keep_scale(p);
    const double pd = p;

#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < count; i++) {
        /* With p == 0 every u >= 0 holds, so the mask is all ones and y = x * 1 exactly. */
        const uint8_t keep = uniform01(seed, i) >= pd;
        mask[i] = keep;
        y[i] = x[i] * (keep ? scale : 0.0f);
    }
}

void dropout_bwd_f32_ref__scalar(size_t count, const float *dy, const uint8_t *mask, float p, float *dx,
                                 int accumulate)
{
    const float scale = keep_scale(p);

    if (accumulate) {
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < count; i++)
            dx[i] += dy[i] * (mask[i] ? scale : 0.0f);
    } else {
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < count; i++)
            dx[i] = dy[i] * (mask[i] ? scale : 0.0f);
    }
}
