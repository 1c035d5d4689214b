/* Internal NEON pieces shared by the blocked BatchNorm kernels (bn_blocked_neon.c) and the fused
 * BatchNorm+ReLU kernels (bn_relu_neon.c), NCHW8c; the counterpart of avx2/bn_reduce_avx2.h. One channel
 * block of a pixel is a bn_v8 (two quads), its per-lane double sums a bn_d8 (four float64x2_t).
 *
 * Every helper is always inlined, and its `masked` argument must be a compile-time constant at each call:
 * masked != 0 reads dz = dy where y > 0 (the ReLU mask of the fused backward); masked == 0 reads dy as is,
 * never touches y (which may be NULL), and compiles to exactly the unmasked arithmetic.
 */
#ifndef INCV3_BN_REDUCE_NEON_H
#define INCV3_BN_REDUCE_NEON_H

#include <arm_neon.h>
#include <stddef.h>

#define BN_NEON_INLINE static inline __attribute__((always_inline))
#define BN_NEON_BLK 8

/* The 8 lanes of a channel block (lanes 0-3, 4-7), a lane mask, and 8 per-lane doubles (lanes 2q, 2q+1). */
typedef struct bn_v8 {
    float32x4_t lo, hi;
} bn_v8;
typedef struct bn_m8 {
    uint32x4_t lo, hi;
} bn_m8;
typedef struct bn_d8 {
    float64x2_t q0, q1, q2, q3;
} bn_d8;

BN_NEON_INLINE bn_v8 bn_ld8(const float *p)
{
    const bn_v8 v = {vld1q_f32(p), vld1q_f32(p + 4)};
    return v;
}

BN_NEON_INLINE void bn_st8(float *p, bn_v8 v)
{
    vst1q_f32(p, v.lo);
    vst1q_f32(p + 4, v.hi);
}

BN_NEON_INLINE bn_v8 bn_and8(bn_v8 v, bn_m8 m)
{
    const bn_v8 r = {vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(v.lo), m.lo)),
                     vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(v.hi), m.hi))};
    return r;
}

BN_NEON_INLINE bn_d8 bn_d8_zero(void)
{
    const float64x2_t z = vdupq_n_f64(0.0);
    const bn_d8 r = {z, z, z, z};
    return r;
}

BN_NEON_INLINE bn_d8 bn_d8_ld(const double *p)
{
    const bn_d8 r = {vld1q_f64(p), vld1q_f64(p + 2), vld1q_f64(p + 4), vld1q_f64(p + 6)};
    return r;
}

BN_NEON_INLINE void bn_d8_st(double *p, bn_d8 v)
{
    vst1q_f64(p, v.q0);
    vst1q_f64(p + 2, v.q1);
    vst1q_f64(p + 4, v.q2);
    vst1q_f64(p + 6, v.q3);
}

BN_NEON_INLINE bn_d8 bn_d8_add(bn_d8 a, bn_d8 b)
{
    const bn_d8 r = {vaddq_f64(a.q0, b.q0), vaddq_f64(a.q1, b.q1), vaddq_f64(a.q2, b.q2), vaddq_f64(a.q3, b.q3)};
    return r;
}

/* The 8 lanes widened to double (exact). */
BN_NEON_INLINE bn_d8 bn_widen(bn_v8 v)
{
    const bn_d8 r = {vcvt_f64_f32(vget_low_f32(v.lo)), vcvt_high_f64_f32(v.lo), vcvt_f64_f32(vget_low_f32(v.hi)),
                     vcvt_high_f64_f32(v.hi)};
    return r;
}

/* Lane mask of channel block cb: all ones for the lanes holding real channels. */
BN_NEON_INLINE bn_m8 bn_lane_mask(int c, int cb)
{
    const int nl = c - cb * BN_NEON_BLK;
    const int32x4_t n = vdupq_n_s32(nl < BN_NEON_BLK ? nl : BN_NEON_BLK);
    static const int32_t idx[BN_NEON_BLK] = {0, 1, 2, 3, 4, 5, 6, 7};
    const bn_m8 m = {vcgtq_s32(n, vld1q_s32(idx)), vcgtq_s32(n, vld1q_s32(idx + 4))};
    return m;
}

/* The gradient quad at float offset o: dy, or with masked dz = dy where y > 0, else 0. */
BN_NEON_INLINE float32x4_t bn_load_grad4(const float *y, const float *dy, size_t o, int masked)
{
    const float32x4_t d = vld1q_f32(dy + o);
    if (!masked)
        return d;
    return vreinterpretq_f32_u32(vandq_u32(vcgtzq_f32(vld1q_f32(y + o)), vreinterpretq_u32_f32(d)));
}

/* The gradient at pixel i of a block (both quads). */
BN_NEON_INLINE bn_v8 bn_load_grad(const float *y, const float *dy, size_t i, int masked)
{
    const bn_v8 g = {bn_load_grad4(y, dy, i * BN_NEON_BLK, masked), bn_load_grad4(y, dy, i * BN_NEON_BLK + 4, masked)};
    return g;
}

/* Per-lane double accumulators of sum(g) (s) and of sum(g * (x - mu)) (p, even and odd pixels apart: the
 * FMA chain is the longer one). 12 accumulators and the mean leave registers for the operands; the 16 of
 * AVX2's split make GCC spill. */
typedef struct bn_grad_acc {
    bn_d8 s, p_even, p_odd;
} bn_grad_acc;

BN_NEON_INLINE void bn_grad_acc_zero(bn_grad_acc *a)
{
    a->s = a->p_even = a->p_odd = bn_d8_zero();
}

/* Adds quads g4, x4 (lanes 4h..4h+3, mean m0 | m1 in double) to the sums s0 | s1 and p0 | p1. */
BN_NEON_INLINE void bn_grad_acc_quad(float32x4_t g4, float32x4_t x4, float64x2_t m0, float64x2_t m1,
                                     float64x2_t *s0, float64x2_t *s1, float64x2_t *p0, float64x2_t *p1)
{
    const float64x2_t g0 = vcvt_f64_f32(vget_low_f32(g4)), g1 = vcvt_high_f64_f32(g4);
    *s0 = vaddq_f64(*s0, g0);
    *p0 = vfmaq_f64(*p0, g0, vsubq_f64(vcvt_f64_f32(vget_low_f32(x4)), m0));
    *s1 = vaddq_f64(*s1, g1);
    *p1 = vfmaq_f64(*p1, g1, vsubq_f64(vcvt_high_f64_f32(x4), m1));
}

/* Adds pixel i's gradient and input (mean mu in double) to the accumulators s, p of one parity, one quad
 * at a time so that few operands are live next to the 12 accumulators. */
BN_NEON_INLINE void bn_grad_acc_pixel(const float *x, const float *y, const float *dy, size_t i, const bn_d8 *mu,
                                      bn_d8 *s, bn_d8 *p, int masked)
{
    const size_t o = i * BN_NEON_BLK;
    bn_grad_acc_quad(bn_load_grad4(y, dy, o, masked), vld1q_f32(x + o), mu->q0, mu->q1, &s->q0, &s->q1, &p->q0,
                     &p->q1);
    bn_grad_acc_quad(bn_load_grad4(y, dy, o + 4, masked), vld1q_f32(x + o + 4), mu->q2, mu->q3, &s->q2, &s->q3,
                     &p->q2, &p->q3);
}

/* Adds the hw pixels of one (image, block) to a, pixels in order. */
BN_NEON_INLINE void bn_grad_accum(const float *x, const float *y, const float *dy, size_t hw, const bn_d8 *mu,
                                  bn_grad_acc *a, int masked)
{
    size_t i = 0;
    for (; i + 2 <= hw; i += 2) {
        bn_grad_acc_pixel(x, y, dy, i, mu, &a->s, &a->p_even, masked);
        bn_grad_acc_pixel(x, y, dy, i + 1, mu, &a->s, &a->p_odd, masked);
    }
    if (i < hw)
        bn_grad_acc_pixel(x, y, dy, i, mu, &a->s, &a->p_even, masked);
}

/* sg[l] = per-lane sum of g, sgx[l] = per-lane sum of g * (x - mu) (even partials plus odd partials). */
BN_NEON_INLINE void bn_grad_acc_store(const bn_grad_acc *a, double *sg, double *sgx)
{
    bn_d8_st(sg, a->s);
    bn_d8_st(sgx, bn_d8_add(a->p_even, a->p_odd));
}

/* a * g + (b * t + c), per half, in the FMA order of the AVX2 kernels. */
BN_NEON_INLINE bn_v8 bn_affine2(bn_v8 a, bn_v8 g, bn_v8 b, bn_v8 t, bn_v8 c)
{
    const bn_v8 r = {vfmaq_f32(vfmaq_f32(c.lo, b.lo, t.lo), a.lo, g.lo),
                     vfmaq_f32(vfmaq_f32(c.hi, b.hi, t.hi), a.hi, g.hi)};
    return r;
}

/* The dx term a * g + (b * (x - mu) + c) of pixel i. */
BN_NEON_INLINE bn_v8 bn_dx_term(const float *x, const float *y, const float *dy, size_t i, bn_v8 mu, bn_v8 a,
                                bn_v8 b, bn_v8 c, int masked)
{
    const bn_v8 xv = bn_ld8(x + i * BN_NEON_BLK);
    const bn_v8 t = {vsubq_f32(xv.lo, mu.lo), vsubq_f32(xv.hi, mu.hi)};
    return bn_affine2(a, bn_load_grad(y, dy, i, masked), b, t, c);
}

/* dx (+)= a * g + (b * (x - mu) + c) over the hw pixels of one (image, block), masked with the lane mask. */
BN_NEON_INLINE void bn_dx_pixels(const float *x, const float *y, const float *dy, float *dx, size_t hw, bn_v8 mu,
                                 bn_v8 a, bn_v8 b, bn_v8 c, bn_m8 mask, int accumulate, int masked)
{
    if (accumulate) {
        for (size_t i = 0; i < hw; i++) {
            bn_v8 g = bn_dx_term(x, y, dy, i, mu, a, b, c, masked);
            const bn_v8 o = bn_ld8(dx + i * BN_NEON_BLK);
            g.lo = vaddq_f32(o.lo, g.lo);
            g.hi = vaddq_f32(o.hi, g.hi);
            bn_st8(dx + i * BN_NEON_BLK, bn_and8(g, mask));
        }
    } else {
        for (size_t i = 0; i < hw; i++)
            bn_st8(dx + i * BN_NEON_BLK, bn_and8(bn_dx_term(x, y, dy, i, mu, a, b, c, masked), mask));
    }
}

#endif
