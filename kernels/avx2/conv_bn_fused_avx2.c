/* Fused conv -> BatchNorm -> ReLU kernels of the training chain, AVX2+FMA, NCHW8c (see avx2_fused.h).
 *
 * conv_fwd_stats: the forward convolution driver of conv_fwd_direct_avx2.c with a per-row hook. When a
 * row's last input-channel chunk has written its final values, the hook sums the row (still in L1/L2)
 * per lane in double, y and y^2, into a partial of its own (image, block pair, row) slot; after the
 * parallel loop the partials are reduced per channel in (image, row) order. Every partial is computed by
 * one iteration in a fixed order and the reduction order depends on the shape alone, so the sums do not
 * depend on the thread count. This replaces the two statistics sweeps of the unfused BatchNorm (sum, then
 * squared deviations) over a tensor that no longer fits in cache.
 *
 * bn_relu_fwd_train / bn_relu_fwd_infer: one elementwise sweep y = max(0, (x - mean) * scale + shift),
 * with the statistics given. The variance comes as E[y^2] - E[y]^2 from double sums of float values (each
 * square is exact in double), clamped at 0.
 *
 * bn_relu_bwd_train: the ReLU mask is applied on the fly (dz = dy where y > 0); sweep 1 takes per-lane
 * sums of dz and dz * (x - mean) in double per (image, channel block), reduced over images in order; sweep
 * 2 writes dx = a * dz + (b * (x - mean) + c), the BatchNorm training backward folded per channel.
 *
 * Both sweeps of the elementwise kernels run in parallel over (image, channel block); their results are
 * per-element, so they too do not depend on the thread count.
 */
#include <immintrin.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "avx2/avx2_fused.h"
#include "avx2/avx2_kernels.h"
#include "avx2/bn_reduce_avx2.h"

#define BLK 8
/* Doubles of one row partial: sums of the row's two blocks (16), then sums of squares (16). */
#define ROW_PART 32

static void *xmalloc(size_t bytes, const char *who)
{
    char what[160];
    snprintf(what, sizeof what, "the scratch of %s", who);
    return incv3_mem_must(bytes, 0, what);
}

/* ---------------------------------------------------------------------------------------------------- */
/* conv forward with statistics                                                                         */

typedef struct stats_ctx {
    int ow, oh, kbp;
    double *part; /* [n][kbp][oh][ROW_PART] */
} stats_ctx;

/* Per-lane sum and sum of squares of one block's row of npix pixels, in double, pixels in order with two
 * interleaved partials. */
static void row_block_stats(const float *y, int npix, double *sum, double *sumsq)
{
    __m256d s0 = _mm256_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
    __m256d q0 = s0, q1 = s0, q2 = s0, q3 = s0;
    int i = 0;
    for (; i + 2 <= npix; i += 2) {
        const __m256 v0 = _mm256_loadu_ps(y + (size_t)i * BLK), v1 = _mm256_loadu_ps(y + (size_t)(i + 1) * BLK);
        const __m256d a0 = lo_pd(v0), a1 = hi_pd(v0), b0 = lo_pd(v1), b1 = hi_pd(v1);
        s0 = _mm256_add_pd(s0, a0);
        s1 = _mm256_add_pd(s1, a1);
        s2 = _mm256_add_pd(s2, b0);
        s3 = _mm256_add_pd(s3, b1);
        q0 = _mm256_fmadd_pd(a0, a0, q0);
        q1 = _mm256_fmadd_pd(a1, a1, q1);
        q2 = _mm256_fmadd_pd(b0, b0, q2);
        q3 = _mm256_fmadd_pd(b1, b1, q3);
    }
    if (i < npix) {
        const __m256 v0 = _mm256_loadu_ps(y + (size_t)i * BLK);
        const __m256d a0 = lo_pd(v0), a1 = hi_pd(v0);
        s0 = _mm256_add_pd(s0, a0);
        s1 = _mm256_add_pd(s1, a1);
        q0 = _mm256_fmadd_pd(a0, a0, q0);
        q1 = _mm256_fmadd_pd(a1, a1, q1);
    }
    _mm256_storeu_pd(sum, _mm256_add_pd(s0, s2));
    _mm256_storeu_pd(sum + 4, _mm256_add_pd(s1, s3));
    _mm256_storeu_pd(sumsq, _mm256_add_pd(q0, q2));
    _mm256_storeu_pd(sumsq + 4, _mm256_add_pd(q1, q3));
}

static void stats_row_hook(void *vctx, int n, int kbp, int oh, int nob, float *yrow, size_t y_ob)
{
    const stats_ctx *c = vctx;
    double *p = c->part + (((size_t)n * c->kbp + kbp) * c->oh + oh) * ROW_PART;
    for (int b = 0; b < 2; b++) {
        if (b < nob) {
            row_block_stats(yrow + (size_t)b * y_ob, c->ow, p + b * BLK, p + 2 * BLK + b * BLK);
        } else {
            memset(p + b * BLK, 0, BLK * sizeof *p);
            memset(p + 2 * BLK + b * BLK, 0, BLK * sizeof *p);
        }
    }
}

void conv_fwd_stats_f32_direct__avx2(const incv3_conv_shape *s, const float *x8c, const float *w8i8o, float *y8c,
                                     double *sum, double *sumsq)
{
    const int N = s->n, OH = s->oh, K = s->k;
    const int KB = (K + BLK - 1) / BLK, KBP = (KB + 1) / 2;
    stats_ctx ctx = {.ow = s->ow, .oh = OH, .kbp = KBP, .part = NULL};
    ctx.part = xmalloc((size_t)N * KBP * OH * ROW_PART * sizeof(double), "conv_fwd_stats_f32_direct__avx2");

    conv_fwd_f32_direct_hooked__avx2(s, x8c, w8i8o, y8c, stats_row_hook, &ctx);

    /* Each channel block is reduced by one thread, over (image, row) in order. */
#pragma omp parallel for schedule(static)
    for (int kb = 0; kb < KB; kb++) {
        const int kbp = kb / 2, b = kb % 2;
        __m256d s0 = _mm256_setzero_pd(), s1 = s0, q0 = s0, q1 = s0;
        for (int n = 0; n < N; n++) {
            const double *p = ctx.part + ((size_t)n * KBP + kbp) * OH * ROW_PART + b * BLK;
            for (int oh = 0; oh < OH; oh++, p += ROW_PART) {
                s0 = _mm256_add_pd(s0, _mm256_loadu_pd(p));
                s1 = _mm256_add_pd(s1, _mm256_loadu_pd(p + 4));
                q0 = _mm256_add_pd(q0, _mm256_loadu_pd(p + 2 * BLK));
                q1 = _mm256_add_pd(q1, _mm256_loadu_pd(p + 2 * BLK + 4));
            }
        }
        double ls[BLK], lq[BLK];
        _mm256_storeu_pd(ls, s0);
        _mm256_storeu_pd(ls + 4, s1);
        _mm256_storeu_pd(lq, q0);
        _mm256_storeu_pd(lq + 4, q1);
        for (int l = 0; l < BLK && kb * BLK + l < K; l++) {
            sum[kb * BLK + l] = ls[l];
            sumsq[kb * BLK + l] = lq[l];
        }
    }
    free(ctx.part);
}

/* ---------------------------------------------------------------------------------------------------- */
/* BatchNorm + ReLU forward                                                                             */

/* y = max(0, ((x - mhi) - mlo) * scale + shift) over the hw pixels of one (image, block), masked. The
 * zero is the first operand of max so that a NaN passes through, as in the reference ReLU. */
static void block_bn_relu(const float *x, float *y, size_t hw, __m256 mhi, __m256 mlo, __m256 scale, __m256 shift,
                          __m256 mask)
{
    const __m256 zero = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 2 <= hw; i += 2) {
        const __m256 t0 = _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i * BLK), mhi), mlo);
        const __m256 t1 = _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(x + (i + 1) * BLK), mhi), mlo);
        const __m256 r0 = _mm256_max_ps(zero, _mm256_fmadd_ps(t0, scale, shift));
        const __m256 r1 = _mm256_max_ps(zero, _mm256_fmadd_ps(t1, scale, shift));
        _mm256_storeu_ps(y + i * BLK, _mm256_and_ps(r0, mask));
        _mm256_storeu_ps(y + (i + 1) * BLK, _mm256_and_ps(r1, mask));
    }
    if (i < hw) {
        const __m256 t0 = _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i * BLK), mhi), mlo);
        _mm256_storeu_ps(y + i * BLK, _mm256_and_ps(_mm256_max_ps(zero, _mm256_fmadd_ps(t0, scale, shift)), mask));
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
            const float *cf = coef + (size_t)cb * 4 * BLK;
            block_bn_relu(x + off, y + off, hw, _mm256_loadu_ps(cf), _mm256_loadu_ps(cf + BLK),
                          _mm256_loadu_ps(cf + 2 * BLK), _mm256_loadu_ps(cf + 3 * BLK), lane_mask(d.c, cb));
        }
    }
}

void bn_relu_fwd_train_f32_blocked__avx2(incv3_dims d, const float *x, const double *sum, const double *sumsq,
                                         const float *gamma, const float *beta, float eps, float *y, float *mean,
                                         float *var)
{
    const int CB = (d.c + BLK - 1) / BLK;
    const double m = (double)d.n * (double)d.h * (double)d.w;
    float *coef = xmalloc((size_t)CB * 4 * BLK * sizeof *coef, "bn_relu_fwd_train_f32_blocked__avx2");
    memset(coef, 0, (size_t)CB * 4 * BLK * sizeof *coef);
    for (int c = 0; c < d.c; c++) {
        const double mu = sum[c] / m;
        double v = sumsq[c] / m - mu * mu;
        if (!(v > 0.0))
            v = v != v ? v : 0.0; /* clamp at 0, let a NaN through */
        const double invstd = 1.0 / sqrt(v + (double)eps);
        float *cf = coef + (size_t)(c / BLK) * 4 * BLK + c % BLK;
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

void bn_relu_fwd_infer_f32_blocked__avx2(incv3_dims d, const float *x, const float *gamma, const float *beta,
                                         const float *mean, const float *var, float eps, float *y)
{
    const int CB = (d.c + BLK - 1) / BLK;
    float *coef = xmalloc((size_t)CB * 4 * BLK * sizeof *coef, "bn_relu_fwd_infer_f32_blocked__avx2");
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

void bn_relu_bwd_train_f32_blocked__avx2(incv3_dims d, const float *x, const float *y, const float *dy,
                                         const float *gamma, const float *mean, const float *var, float eps,
                                         float *dx, float *dgamma, float *dbeta, int accumulate)
{
    const int N = d.n, CB = (d.c + BLK - 1) / BLK;
    const size_t hw = (size_t)d.h * d.w, blk_stride = hw * BLK;
    const double m = (double)N * (double)hw;
    const char *who = "bn_relu_bwd_train_f32_blocked__avx2";

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
            const __m256d m0 = _mm256_cvtps_pd(_mm_loadu_ps(mu + cb * BLK));
            const __m256d m1 = _mm256_cvtps_pd(_mm_loadu_ps(mu + cb * BLK + 4));
            double *p = part + ((size_t)n * CB + cb) * 2 * BLK;
            bn_grad_acc acc;
            bn_grad_acc_zero(&acc);
            bn_grad_accum(x + off, y + off, dy + off, hw, m0, m1, &acc, 1);
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
            bn_dx_pixels(x + off, y + off, dy + off, dx + off, hw, _mm256_loadu_ps(mu + cb * BLK),
                         _mm256_loadu_ps(ca + cb * BLK), _mm256_loadu_ps(cb_ + cb * BLK),
                         _mm256_loadu_ps(cc + cb * BLK), lane_mask(d.c, cb), accumulate, 1);
        }
    }
    free(mu);
}

/* ---------------------------------------------------------------------------------------------------- */
/* conv -> BatchNorm -> ReLU inference in the convolution's epilogue                                     */

typedef struct affine_ctx {
    int ow;
    const float *scale, *shift; /* [KB][8], zero past k */
} affine_ctx;

static void affine_relu_row_hook(void *vctx, int n, int kbp, int oh, int nob, float *yrow, size_t y_ob)
{
    const affine_ctx *c = vctx;
    (void)n, (void)oh;
    for (int b = 0; b < nob; b++) {
        const int kb = 2 * kbp + b;
        const __m256 sc = _mm256_loadu_ps(c->scale + (size_t)kb * BLK), sh = _mm256_loadu_ps(c->shift + (size_t)kb * BLK);
        float *y = yrow + (size_t)b * y_ob;
        for (int i = 0; i < c->ow; i++) {
            const __m256 v = _mm256_fmadd_ps(_mm256_loadu_ps(y + (size_t)i * BLK), sc, sh);
            _mm256_storeu_ps(y + (size_t)i * BLK, _mm256_max_ps(v, _mm256_setzero_ps()));
        }
    }
}

void conv_bn_relu_fwd_infer_f32_direct__avx2(const incv3_conv_shape *s, const float *x8c, const float *w8i8o,
                                             float *y8c, const float *gamma, const float *beta, const float *mean,
                                             const float *var, float eps)
{
    const int KB = (s->k + BLK - 1) / BLK;
    float *coef = xmalloc((size_t)KB * 2 * BLK * sizeof *coef, "conv_bn_relu_fwd_infer_f32_direct__avx2");
    memset(coef, 0, (size_t)KB * 2 * BLK * sizeof *coef);
    float *scale = coef, *shift = coef + (size_t)KB * BLK;
    for (int k = 0; k < s->k; k++) {
        const double sc = (double)gamma[k] / sqrt((double)var[k] + (double)eps);
        scale[k] = (float)sc;
        shift[k] = (float)((double)beta[k] - (double)mean[k] * sc);
    }
    affine_ctx ctx = {s->ow, scale, shift};
    conv_fwd_f32_direct_hooked__avx2(s, x8c, w8i8o, y8c, affine_relu_row_hook, &ctx);
    free(coef);
}
