/* Batch normalization on NCHW8c tensors, NEON; the counterpart of avx2/bn_blocked_avx2.c with the same
 * summation order.
 *
 * The 8 channels of a channel block at one pixel are two quads, so the per-channel statistics are per-lane
 * sums over (n, h, w) of that block. Sums are kept in double (each pixel widened into four float64x2_t) in
 * an order fixed by the shape alone: images in order, pixels in order with two interleaved partial sums
 * combined at the end. (AVX2 interleaves four pixels; here one pixel already feeds four independent
 * float64x2_t chains, and 16 double accumulators plus their operands make GCC's scheduler spill.) Each
 * channel block is owned by one OpenMP thread, so results are bitwise the same for any thread
 * count. Variance is two-pass (about the mean), as in the reference.
 *
 * Per-channel parameters are copied into 8-wide lane arrays (zero past c), so the kernels never read or
 * write parameter arrays past c; every output is masked with the block's lane mask so padding lanes come
 * out as exactly zero.
 *
 * The loop over channel blocks and the per-channel coefficients are common/bn_blocked_driver.h, shared by
 * the ISAs; this file holds the block reductions and sweeps.
 */
#include <arm_neon.h>
#include <math.h>
#include <stddef.h>

#include "neon/bn_reduce_neon.h"
#include "neon/neon_layers.h"

#define BLK 8

/* Per-lane sum over the block (all images) of x, in double. */
static void block_sum(const float *x, size_t hw, int N, size_t img_stride, double out[BLK])
{
    bn_d8 a0 = bn_d8_zero(), a1 = a0;
    for (int n = 0; n < N; n++) {
        const float *xp = x + (size_t)n * img_stride;
        size_t i = 0;
        for (; i + 2 <= hw; i += 2) {
            a0 = bn_d8_add(a0, bn_widen(bn_ld8(xp + i * BLK)));
            a1 = bn_d8_add(a1, bn_widen(bn_ld8(xp + (i + 1) * BLK)));
        }
        if (i < hw)
            a0 = bn_d8_add(a0, bn_widen(bn_ld8(xp + i * BLK)));
    }
    bn_d8_st(out, bn_d8_add(a0, a1));
}

/* a + (x - mu)^2 per lane, in double. */
static inline __attribute__((always_inline)) bn_d8 add_sqdev(bn_d8 a, bn_v8 x8, const bn_d8 *mu)
{
    const bn_d8 x = bn_widen(x8);
    const float64x2_t t0 = vsubq_f64(x.q0, mu->q0), t1 = vsubq_f64(x.q1, mu->q1);
    const float64x2_t t2 = vsubq_f64(x.q2, mu->q2), t3 = vsubq_f64(x.q3, mu->q3);
    const bn_d8 r = {vfmaq_f64(a.q0, t0, t0), vfmaq_f64(a.q1, t1, t1), vfmaq_f64(a.q2, t2, t2),
                     vfmaq_f64(a.q3, t3, t3)};
    return r;
}

/* Per-lane sum over the block of (x - mu)^2, in double. */
static void block_sqdev(const float *x, size_t hw, int N, size_t img_stride, const double mu_[BLK], double out[BLK])
{
    const bn_d8 mu = bn_d8_ld(mu_);
    bn_d8 a0 = bn_d8_zero(), a1 = a0;
    for (int n = 0; n < N; n++) {
        const float *xp = x + (size_t)n * img_stride;
        size_t i = 0;
        for (; i + 2 <= hw; i += 2) {
            a0 = add_sqdev(a0, bn_ld8(xp + i * BLK), &mu);
            a1 = add_sqdev(a1, bn_ld8(xp + (i + 1) * BLK), &mu);
        }
        if (i < hw)
            a0 = add_sqdev(a0, bn_ld8(xp + i * BLK), &mu);
    }
    bn_d8_st(out, bn_d8_add(a0, a1));
}

/* Per-lane sums over the block of dy and of dy * (x - mu), in double. */
static void block_grad_sums(const float *x, const float *dy, size_t hw, int N, size_t img_stride,
                            const float mu[BLK], double sdy[BLK], double sdyx[BLK])
{
    const bn_d8 m = bn_widen(bn_ld8(mu));
    bn_grad_acc acc;
    bn_grad_acc_zero(&acc);
    for (int n = 0; n < N; n++)
        bn_grad_accum(x + (size_t)n * img_stride, NULL, dy + (size_t)n * img_stride, hw, &m, &acc, 0);
    bn_grad_acc_store(&acc, sdy, sdyx);
}

/* y = ((x - mhi) - mlo) * scale + shift over the block, masked. */
static void block_normalize(const float *x, float *y, size_t hw, int N, size_t img_stride, bn_v8 mhi, bn_v8 mlo,
                            bn_v8 scale, bn_v8 shift, bn_m8 mask)
{
    for (int n = 0; n < N; n++) {
        const float *xp = x + (size_t)n * img_stride;
        float *yp = y + (size_t)n * img_stride;
        for (size_t i = 0; i < hw; i++) {
            const bn_v8 v = bn_ld8(xp + i * BLK);
            const float32x4_t t0 = vsubq_f32(vsubq_f32(v.lo, mhi.lo), mlo.lo);
            const float32x4_t t1 = vsubq_f32(vsubq_f32(v.hi, mhi.hi), mlo.hi);
            const bn_v8 r = {vfmaq_f32(shift.lo, t0, scale.lo), vfmaq_f32(shift.hi, t1, scale.hi)};
            bn_st8(yp + i * BLK, bn_and8(r, mask));
        }
    }
}

/* dx (+)= a * dy + (b * (x - mu) + c), masked. */
static void block_dx(const float *x, const float *dy, float *dx, size_t hw, int N, size_t img_stride, bn_v8 mu,
                     bn_v8 a, bn_v8 b, bn_v8 c, bn_m8 mask, int accumulate)
{
    for (int n = 0; n < N; n++) {
        const size_t off = (size_t)n * img_stride;
        bn_dx_pixels(x + off, NULL, dy + off, dx + off, hw, mu, a, b, c, mask, accumulate, 0);
    }
}

/* dx (+)= a * dy, masked (inference backward: x is not read). */
static void block_dx_scale(const float *dy, float *dx, size_t hw, int N, size_t img_stride, bn_v8 a, bn_m8 mask,
                           int accumulate)
{
    for (int n = 0; n < N; n++) {
        const float *dp = dy + (size_t)n * img_stride;
        float *op = dx + (size_t)n * img_stride;
        if (accumulate) {
            for (size_t i = 0; i < hw; i++) {
                const bn_v8 g = bn_ld8(dp + i * BLK), o = bn_ld8(op + i * BLK);
                const bn_v8 r = {vaddq_f32(o.lo, vmulq_f32(a.lo, g.lo)), vaddq_f32(o.hi, vmulq_f32(a.hi, g.hi))};
                bn_st8(op + i * BLK, bn_and8(r, mask));
            }
        } else {
            for (size_t i = 0; i < hw; i++) {
                const bn_v8 g = bn_ld8(dp + i * BLK);
                const bn_v8 r = {vmulq_f32(a.lo, g.lo), vmulq_f32(a.hi, g.hi)};
                bn_st8(op + i * BLK, bn_and8(r, mask));
            }
        }
    }
}

static inline bn_v8 bn_zero8(void)
{
    const float32x4_t z = vdupq_n_f32(0.0f);
    const bn_v8 zero = {z, z};
    return zero;
}

#define bn_vload(p) bn_ld8(p)
#define bn_vzero() bn_zero8()
#define bn_vmask(c, cb) bn_lane_mask(c, cb)
#define KERNEL_ISA neon

#include "common/bn_blocked_driver.h"
