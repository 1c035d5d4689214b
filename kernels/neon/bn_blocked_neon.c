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
 */
#include <arm_neon.h>
#include <math.h>
#include <stddef.h>

#include "neon/bn_reduce_neon.h"
#include "neon/neon_layers.h"

#define BLK 8

/* dst[l] = src[cb*8 + l] for real lanes, 0 otherwise. */
static void load_lanes(const float *src, int c, int cb, float *dst)
{
    for (int l = 0; l < BLK; l++)
        dst[l] = cb * BLK + l < c ? src[cb * BLK + l] : 0.0f;
}

/* dst[cb*8 + l] = src[l] for real lanes only. */
static void store_lanes(const double *src, int c, int cb, float *dst)
{
    for (int l = 0; l < BLK && cb * BLK + l < c; l++)
        dst[cb * BLK + l] = (float)src[l];
}

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

void bn_fwd_train_f32_blocked__neon(incv3_dims d, const float *x, const float *gamma, const float *beta, float eps,
                                    float *y, float *mean, float *var)
{
    const int CB = (d.c + BLK - 1) / BLK;
    const size_t hw = (size_t)d.h * d.w, blk_stride = hw * BLK, img_stride = (size_t)CB * blk_stride;
    const double m = (double)d.n * (double)hw;

#pragma omp parallel for schedule(static)
    for (int cb = 0; cb < CB; cb++) {
        const float *xb = x + (size_t)cb * blk_stride;
        float g[BLK], b[BLK], mhi[BLK], mlo[BLK], sc[BLK];
        double sum[BLK], mu[BLK], ss[BLK], v[BLK];
        load_lanes(gamma, d.c, cb, g);
        load_lanes(beta, d.c, cb, b);
        block_sum(xb, hw, d.n, img_stride, sum);
        for (int l = 0; l < BLK; l++)
            mu[l] = sum[l] / m;
        block_sqdev(xb, hw, d.n, img_stride, mu, ss);
        for (int l = 0; l < BLK; l++) {
            v[l] = ss[l] / m;
            const double invstd = 1.0 / sqrt(v[l] + (double)eps);
            /* The mean split into a float and its float remainder keeps x - mean accurate to about
             * double's digits when the mean is large against the spread. */
            mhi[l] = (float)mu[l];
            mlo[l] = (float)(mu[l] - (double)mhi[l]);
            sc[l] = (float)((double)g[l] * invstd);
        }
        block_normalize(xb, y + (size_t)cb * blk_stride, hw, d.n, img_stride, bn_ld8(mhi), bn_ld8(mlo), bn_ld8(sc),
                        bn_ld8(b), bn_lane_mask(d.c, cb));
        store_lanes(mu, d.c, cb, mean);
        store_lanes(v, d.c, cb, var);
    }
}

void bn_fwd_infer_f32_blocked__neon(incv3_dims d, const float *x, const float *gamma, const float *beta,
                                    const float *mean, const float *var, float eps, float *y)
{
    const int CB = (d.c + BLK - 1) / BLK;
    const size_t hw = (size_t)d.h * d.w, blk_stride = hw * BLK, img_stride = (size_t)CB * blk_stride;

#pragma omp parallel for schedule(static)
    for (int cb = 0; cb < CB; cb++) {
        float g[BLK], b[BLK], mu[BLK], v[BLK], sc[BLK];
        load_lanes(gamma, d.c, cb, g);
        load_lanes(beta, d.c, cb, b);
        load_lanes(mean, d.c, cb, mu);
        load_lanes(var, d.c, cb, v);
        for (int l = 0; l < BLK; l++)
            sc[l] = (float)((double)g[l] / sqrt((double)v[l] + (double)eps));
        const float32x4_t z = vdupq_n_f32(0.0f);
        const bn_v8 zero = {z, z};
        block_normalize(x + (size_t)cb * blk_stride, y + (size_t)cb * blk_stride, hw, d.n, img_stride, bn_ld8(mu),
                        zero, bn_ld8(sc), bn_ld8(b), bn_lane_mask(d.c, cb));
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

void bn_bwd_train_f32_blocked__neon(incv3_dims d, const float *x, const float *dy, const float *gamma,
                                    const float *mean, const float *var, float eps, float *dx, float *dgamma,
                                    float *dbeta, int accumulate)
{
    const int CB = (d.c + BLK - 1) / BLK;
    const size_t hw = (size_t)d.h * d.w, blk_stride = hw * BLK, img_stride = (size_t)CB * blk_stride;
    const double m = (double)d.n * (double)hw;

#pragma omp parallel for schedule(static)
    for (int cb = 0; cb < CB; cb++) {
        const size_t off = (size_t)cb * blk_stride;
        float g[BLK], mu[BLK], v[BLK], a[BLK], b[BLK], c[BLK];
        double sdy[BLK], sdyx[BLK], dg[BLK];
        load_lanes(gamma, d.c, cb, g);
        load_lanes(mean, d.c, cb, mu);
        load_lanes(var, d.c, cb, v);
        block_grad_sums(x + off, dy + off, hw, d.n, img_stride, mu, sdy, sdyx);
        for (int l = 0; l < BLK; l++) {
            const double invstd = 1.0 / sqrt((double)v[l] + (double)eps);
            dg[l] = sdyx[l] * invstd; /* sum dy * xhat */
            /* dx = gamma*invstd/M * (M*dy - dbeta - xhat*dgamma) = a*dy + b*(x - mu) + c */
            const double k = (double)g[l] * invstd;
            a[l] = (float)k;
            b[l] = (float)(-k * invstd * dg[l] / m);
            c[l] = (float)(-k * sdy[l] / m);
        }
        block_dx(x + off, dy + off, dx + off, hw, d.n, img_stride, bn_ld8(mu), bn_ld8(a), bn_ld8(b), bn_ld8(c),
                 bn_lane_mask(d.c, cb), accumulate);
        store_lanes(dg, d.c, cb, dgamma);
        store_lanes(sdy, d.c, cb, dbeta);
    }
}

void bn_bwd_infer_f32_blocked__neon(incv3_dims d, const float *x, const float *dy, const float *gamma,
                                    const float *mean, const float *var, float eps, float *dx, float *dgamma,
                                    float *dbeta, int accumulate)
{
    const int CB = (d.c + BLK - 1) / BLK;
    const size_t hw = (size_t)d.h * d.w, blk_stride = hw * BLK, img_stride = (size_t)CB * blk_stride;

#pragma omp parallel for schedule(static)
    for (int cb = 0; cb < CB; cb++) {
        const size_t off = (size_t)cb * blk_stride;
        float g[BLK], mu[BLK], v[BLK], a[BLK];
        double sdy[BLK], sdyx[BLK], dg[BLK];
        load_lanes(gamma, d.c, cb, g);
        load_lanes(mean, d.c, cb, mu);
        load_lanes(var, d.c, cb, v);
        block_grad_sums(x + off, dy + off, hw, d.n, img_stride, mu, sdy, sdyx);
        for (int l = 0; l < BLK; l++) {
            const double invstd = 1.0 / sqrt((double)v[l] + (double)eps);
            dg[l] = sdyx[l] * invstd;
            a[l] = (float)((double)g[l] * invstd);
        }
        block_dx_scale(dy + off, dx + off, hw, d.n, img_stride, bn_ld8(a), bn_lane_mask(d.c, cb), accumulate);
        store_lanes(dg, d.c, cb, dgamma);
        store_lanes(sdy, d.c, cb, dbeta);
    }
}
