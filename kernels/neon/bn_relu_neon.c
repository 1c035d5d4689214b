/* Fused BatchNorm + ReLU kernels of the training chain, NEON, NCHW8c; the counterpart of the BatchNorm+ReLU
 * parts of avx2/conv_bn_fused_avx2.c (contracts in avx2/avx2_fused.h).
 *
 * bn_relu_fwd_train / bn_relu_fwd_infer: one elementwise sweep y = relu((x - mean) * scale + shift), with
 * the statistics given. The variance comes as E[x^2] - E[x]^2 from double sums of float values (each
 * square is exact in double), clamped at 0.
 *
 * bn_relu_bwd_train: the ReLU mask is applied on the fly (dz = dy where y > 0); sweep 1 takes per-lane
 * sums of dz and dz * (x - mean) in double per (image, channel block), reduced over images in order; sweep
 * 2 writes dx = a * dz + (b * (x - mean) + c), the BatchNorm training backward folded per channel.
 *
 * Both sweeps run in parallel over (image, channel block); the partial sums are reduced in an order fixed
 * by the shape and the sweeps' other results are per element, so nothing depends on the thread count.
 */
#include <arm_neon.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "neon/bn_reduce_neon.h"
#include "neon/neon_fused.h"
#include "alloc.h"

#define BLK 8

static void *xmalloc(size_t bytes, const char *who)
{
    char what[160];
    snprintf(what, sizeof what, "the scratch of %s", who);
    return incv3_mem_must(bytes, 0, what);
}

/* ---------------------------------------------------------------------------------------------------- */
/* BatchNorm + ReLU forward                                                                             */

/* relu(((x - mhi) - mlo) * scale + shift) of one quad. ReLU as the reference's x < 0 ? 0 : x (a NaN and
 * -0 pass through; vmaxq_f32 would turn -0 into +0). */
static inline float32x4_t bn_relu4(float32x4_t x, float32x4_t mhi, float32x4_t mlo, float32x4_t scale,
                                   float32x4_t shift)
{
    const float32x4_t v = vfmaq_f32(shift, vsubq_f32(vsubq_f32(x, mhi), mlo), scale);
    return vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(v), vcltzq_f32(v)));
}

/* y = relu(((x - mhi) - mlo) * scale + shift) over the hw pixels of one (image, block), masked. cf holds the
 * block's coefficients: mhi, mlo, scale, shift, 8 floats each. */
static void block_bn_relu(const float *x, float *y, size_t hw, const float *cf, bn_m8 mask)
{
    const bn_v8 mhi = bn_ld8(cf), mlo = bn_ld8(cf + BLK), sc = bn_ld8(cf + 2 * BLK), sh = bn_ld8(cf + 3 * BLK);
    size_t i = 0;
    /* Two pixels per step: four independent FMA chains of two-op latency each keep the pipes busy. */
    for (; i + 2 <= hw; i += 2) {
        const float *xp = x + i * BLK;
        const bn_v8 r0 = {bn_relu4(vld1q_f32(xp), mhi.lo, mlo.lo, sc.lo, sh.lo),
                          bn_relu4(vld1q_f32(xp + 4), mhi.hi, mlo.hi, sc.hi, sh.hi)};
        const bn_v8 r1 = {bn_relu4(vld1q_f32(xp + 8), mhi.lo, mlo.lo, sc.lo, sh.lo),
                          bn_relu4(vld1q_f32(xp + 12), mhi.hi, mlo.hi, sc.hi, sh.hi)};
        bn_st8(y + i * BLK, bn_and8(r0, mask));
        bn_st8(y + (i + 1) * BLK, bn_and8(r1, mask));
    }
    if (i < hw) {
        const float *xp = x + i * BLK;
        const bn_v8 r0 = {bn_relu4(vld1q_f32(xp), mhi.lo, mlo.lo, sc.lo, sh.lo),
                          bn_relu4(vld1q_f32(xp + 4), mhi.hi, mlo.hi, sc.hi, sh.hi)};
        bn_st8(y + i * BLK, bn_and8(r0, mask));
    }
}

/* Per-block coefficients: 4 vectors of 8 floats per channel block (mhi, mlo, scale, shift). */
static void run_bn_relu(incv3_dims d, const float *x, float *y, const float *coef)
{
    const int CB = (d.c + BLK - 1) / BLK;
    const size_t hw = (size_t)d.h * d.w, blk_stride = hw * BLK;
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < d.n; n++) {
        for (int cb = 0; cb < CB; cb++) {
            const size_t off = ((size_t)n * CB + cb) * blk_stride;
            block_bn_relu(x + off, y + off, hw, coef + (size_t)cb * 4 * BLK, bn_lane_mask(d.c, cb));
        }
    }
}

void bn_relu_fwd_train_f32_blocked__neon(incv3_dims d, const float *x, const double *sum, const double *sumsq,
                                         const float *gamma, const float *beta, float eps, float *y, float *mean,
                                         float *var)
{
    const int CB = (d.c + BLK - 1) / BLK;
    const double m = (double)d.n * (double)d.h * (double)d.w;
    float *coef = xmalloc((size_t)CB * 4 * BLK * sizeof *coef, "bn_relu_fwd_train_f32_blocked__neon");
    memset(coef, 0, (size_t)CB * 4 * BLK * sizeof *coef);
    for (int c = 0; c < d.c; c++) {
        const double mu = sum[c] / m;
        double v = sumsq[c] / m - mu * mu;
        if (!(v > 0.0))
            v = v != v ? v : 0.0; /* clamp at 0, let a NaN through */
        const double invstd = 1.0 / sqrt(v + (double)eps);
        float *cf = coef + (size_t)(c / BLK) * 4 * BLK + c % BLK;
        /* The mean as a float and its float remainder: x - mean stays accurate when the mean is large. */
        const float mhi = (float)mu;
        cf[0] = mhi;
        cf[BLK] = (float)(mu - (double)mhi);
        cf[2 * BLK] = (float)((double)gamma[c] * invstd);
        cf[3 * BLK] = beta[c];
        mean[c] = (float)mu;
        var[c] = (float)v;
    }
    run_bn_relu(d, x, y, coef);
    free(coef);
}

void bn_relu_fwd_infer_f32_blocked__neon(incv3_dims d, const float *x, const float *gamma, const float *beta,
                                         const float *mean, const float *var, float eps, float *y)
{
    const int CB = (d.c + BLK - 1) / BLK;
    float *coef = xmalloc((size_t)CB * 4 * BLK * sizeof *coef, "bn_relu_fwd_infer_f32_blocked__neon");
    memset(coef, 0, (size_t)CB * 4 * BLK * sizeof *coef);
    for (int c = 0; c < d.c; c++) {
        const double scale = (double)gamma[c] / sqrt((double)var[c] + (double)eps);
        float *cf = coef + (size_t)(c / BLK) * 4 * BLK + c % BLK;
        /* mhi = mlo = 0: y = x * scale + shift. */
        cf[2 * BLK] = (float)scale;
        cf[3 * BLK] = (float)((double)beta[c] - (double)mean[c] * scale);
    }
    run_bn_relu(d, x, y, coef);
    free(coef);
}

/* ---------------------------------------------------------------------------------------------------- */
/* BatchNorm + ReLU backward                                                                            */

void bn_relu_bwd_train_f32_blocked__neon(incv3_dims d, const float *x, const float *y, const float *dy,
                                         const float *gamma, const float *mean, const float *var, float eps,
                                         float *dx, float *dgamma, float *dbeta, int accumulate)
{
    const int N = d.n, CB = (d.c + BLK - 1) / BLK;
    const size_t hw = (size_t)d.h * d.w, blk_stride = hw * BLK;
    const double m = (double)N * (double)hw;
    const char *who = "bn_relu_bwd_train_f32_blocked__neon";

    /* Per-lane parameters, zero past c: mu (float), a, b, c of the dx formula. */
    float *mu = xmalloc((size_t)CB * 4 * BLK * sizeof *mu, who);
    memset(mu, 0, (size_t)CB * 4 * BLK * sizeof *mu);
    float *ca = mu + (size_t)CB * BLK, *cb_ = ca + (size_t)CB * BLK, *cc = cb_ + (size_t)CB * BLK;
    for (int c = 0; c < d.c; c++)
        mu[c] = mean[c];

    /* Sweep 1: per (image, block) partial sums [n][cb][sum dz (8), sum dz*(x-mu) (8)]. */
    double *part = xmalloc((size_t)N * CB * 2 * BLK * sizeof *part, who);
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < N; n++) {
        for (int cb = 0; cb < CB; cb++) {
            const size_t off = ((size_t)n * CB + cb) * blk_stride;
            const bn_d8 m8 = bn_widen(bn_ld8(mu + cb * BLK));
            double *p = part + ((size_t)n * CB + cb) * 2 * BLK;
            bn_grad_acc acc;
            bn_grad_acc_zero(&acc);
            bn_grad_accum(x + off, y + off, dy + off, hw, &m8, &acc, 1);
            bn_grad_acc_store(&acc, p, p + BLK);
        }
    }

    /* Reduction over images in order, and the per-channel coefficients. */
    for (int c = 0; c < d.c; c++) {
        const int cb = c / BLK, l = c % BLK;
        double sdz = 0.0, sdzx = 0.0;
        for (int n = 0; n < N; n++) {
            const double *p = part + ((size_t)n * CB + cb) * 2 * BLK;
            sdz += p[l];
            sdzx += p[BLK + l];
        }
        const double invstd = 1.0 / sqrt((double)var[c] + (double)eps);
        const double dg = sdzx * invstd; /* sum dz * xhat */
        /* dx = gamma*invstd/M * (M*dz - dbeta - xhat*dgamma) = a*dz + b*(x - mu) + c */
        const double k = (double)gamma[c] * invstd;
        ca[c] = (float)k;
        cb_[c] = (float)(-k * invstd * dg / m);
        cc[c] = (float)(-k * sdz / m);
        dgamma[c] = (float)dg;
        dbeta[c] = (float)sdz;
    }
    free(part);

    /* Sweep 2: dx. */
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < N; n++) {
        for (int cb = 0; cb < CB; cb++) {
            const size_t off = ((size_t)n * CB + cb) * blk_stride;
            bn_dx_pixels(x + off, y + off, dy + off, dx + off, hw, bn_ld8(mu + cb * BLK), bn_ld8(ca + cb * BLK),
                         bn_ld8(cb_ + cb * BLK), bn_ld8(cc + cb * BLK), bn_lane_mask(d.c, cb), accumulate, 1);
        }
    }
    free(mu);
}
