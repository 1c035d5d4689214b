/* The ISA-independent part of the blocked BatchNorm kernels (avx2/bn_blocked_avx2.c,
 * neon/bn_blocked_neon.c): the OpenMP loop over channel blocks, the per-channel lane arrays, and the
 * per-lane coefficients in double between the block reductions and the block sweeps. The including file
 * defines KERNEL_ISA (common/isa_name.h), BLK (8), the block kernels block_sum, block_sqdev,
 * block_grad_sums, block_normalize, block_dx and block_dx_scale, and bn_vload(p) / bn_vzero() /
 * bn_vmask(c, cb) (one channel block's 8 lanes, zeros, the lane mask of its real channels) first.
 */
#ifndef INCV3_BN_BLOCKED_DRIVER_H
#define INCV3_BN_BLOCKED_DRIVER_H

#include <math.h>
#include <stddef.h>

#include "common/isa_name.h"

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

void ISA_NAME(bn_fwd_train_f32_blocked__)(incv3_dims d, const float *x, const float *gamma, const float *beta,
                                          float eps,
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
        block_normalize(xb, y + (size_t)cb * blk_stride, hw, d.n, img_stride, bn_vload(mhi), bn_vload(mlo),
                        bn_vload(sc), bn_vload(b), bn_vmask(d.c, cb));
        store_lanes(mu, d.c, cb, mean);
        store_lanes(v, d.c, cb, var);
    }
}

void ISA_NAME(bn_fwd_infer_f32_blocked__)(incv3_dims d, const float *x, const float *gamma, const float *beta,
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
        block_normalize(x + (size_t)cb * blk_stride, y + (size_t)cb * blk_stride, hw, d.n, img_stride, bn_vload(mu),
                        bn_vzero(), bn_vload(sc), bn_vload(b), bn_vmask(d.c, cb));
    }
}

void ISA_NAME(bn_bwd_train_f32_blocked__)(incv3_dims d, const float *x, const float *dy, const float *gamma,
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
        block_dx(x + off, dy + off, dx + off, hw, d.n, img_stride, bn_vload(mu), bn_vload(a), bn_vload(b), bn_vload(c),
                 bn_vmask(d.c, cb), accumulate);
        store_lanes(dg, d.c, cb, dgamma);
        store_lanes(sdy, d.c, cb, dbeta);
    }
}

void ISA_NAME(bn_bwd_infer_f32_blocked__)(incv3_dims d, const float *x, const float *dy, const float *gamma,
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
        block_dx_scale(dy + off, dx + off, hw, d.n, img_stride, bn_vload(a), bn_vmask(d.c, cb), accumulate);
        store_lanes(dg, d.c, cb, dgamma);
        store_lanes(sdy, d.c, cb, dbeta);
    }
}

#endif
