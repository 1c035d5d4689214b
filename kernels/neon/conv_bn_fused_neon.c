/* The convolution parts of the fused conv -> BatchNorm -> ReLU chain, NEON, NCHW8c (see neon_fused.h); the
 * counterpart of those parts of avx2/conv_bn_fused_avx2.c (the BatchNorm+ReLU sweeps are in bn_relu_neon.c).
 *
 * conv_fwd_stats: the forward convolution driver of conv_fwd_direct_neon.c with a per-row hook. When a
 * row's last input-channel chunk has written its final values, the hook sums the row (still in L1/L2)
 * per lane in double, y and y^2, into a partial of its own (image, block pair, row) slot; after the
 * parallel loop the partials are reduced per channel in (image, row) order. Every partial is computed by
 * one iteration in a fixed order and the reduction order depends on the shape alone, so the sums do not
 * depend on the thread count. The convolution itself is the plain driver's, so y is bitwise the same.
 *
 * conv_bn_relu_fwd_infer: the same driver with a hook that applies the folded BatchNorm and the ReLU to each
 * finished row while it is in cache.
 */
#include <arm_neon.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "neon/neon_fused.h"
#include "alloc.h"

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

/* 8 per-lane doubles: lanes 0-1, 2-3, 4-5, 6-7. */
typedef struct d8 {
    float64x2_t a, b, c, d;
} d8;

static inline __attribute__((always_inline)) void d8_acc(d8 *s, d8 *q, const float *y)
{
    const float32x4_t lo = vld1q_f32(y), hi = vld1q_f32(y + 4);
    const float64x2_t a = vcvt_f64_f32(vget_low_f32(lo)), b = vcvt_high_f64_f32(lo);
    const float64x2_t c = vcvt_f64_f32(vget_low_f32(hi)), d = vcvt_high_f64_f32(hi);
    s->a = vaddq_f64(s->a, a);
    s->b = vaddq_f64(s->b, b);
    s->c = vaddq_f64(s->c, c);
    s->d = vaddq_f64(s->d, d);
    /* Each square of a float is exact in double, so fusing changes nothing but the instruction count. */
    q->a = vfmaq_f64(q->a, a, a);
    q->b = vfmaq_f64(q->b, b, b);
    q->c = vfmaq_f64(q->c, c, c);
    q->d = vfmaq_f64(q->d, d, d);
}

static inline void d8_store_sum(double *p, d8 u, d8 v)
{
    vst1q_f64(p, vaddq_f64(u.a, v.a));
    vst1q_f64(p + 2, vaddq_f64(u.b, v.b));
    vst1q_f64(p + 4, vaddq_f64(u.c, v.c));
    vst1q_f64(p + 6, vaddq_f64(u.d, v.d));
}

/* Per-lane sum and sum of squares of one block's row of npix pixels, in double, pixels in order with even
 * and odd pixels in two interleaved partials (two dependency chains per lane). */
static void row_block_stats(const float *y, int npix, double *sum, double *sumsq)
{
    const float64x2_t z = vdupq_n_f64(0.0);
    d8 s0 = {z, z, z, z}, s1 = s0, q0 = s0, q1 = s0;
    int i = 0;
    for (; i + 2 <= npix; i += 2) {
        d8_acc(&s0, &q0, y + (size_t)i * BLK);
        d8_acc(&s1, &q1, y + (size_t)(i + 1) * BLK);
    }
    if (i < npix)
        d8_acc(&s0, &q0, y + (size_t)i * BLK);
    d8_store_sum(sum, s0, s1);
    d8_store_sum(sumsq, q0, q1);
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

void conv_fwd_stats_f32_direct__neon(const incv3_conv_shape *s, const float *x8c, const float *w8i8o, float *y8c,
                                     double *sum, double *sumsq)
{
    const int N = s->n, OH = s->oh, K = s->k;
    const int KB = (K + BLK - 1) / BLK, KBP = (KB + 1) / 2;
    stats_ctx ctx = {.ow = s->ow, .oh = OH, .kbp = KBP, .part = NULL};
    ctx.part = xmalloc((size_t)N * KBP * OH * ROW_PART * sizeof(double), "conv_fwd_stats_f32_direct__neon");

    conv_fwd_f32_direct_hooked__neon(s, x8c, w8i8o, y8c, stats_row_hook, &ctx);

    /* Each channel block is reduced by one thread, over (image, row) in order. */
#pragma omp parallel for schedule(static)
    for (int kb = 0; kb < KB; kb++) {
        const int kbp = kb / 2, b = kb % 2;
        double ls[BLK] = {0}, lq[BLK] = {0};
        for (int n = 0; n < N; n++) {
            const double *p = ctx.part + ((size_t)n * KBP + kbp) * OH * ROW_PART + b * BLK;
            for (int oh = 0; oh < OH; oh++, p += ROW_PART)
                for (int l = 0; l < BLK; l++) {
                    ls[l] += p[l];
                    lq[l] += p[2 * BLK + l];
                }
        }
        for (int l = 0; l < BLK && kb * BLK + l < K; l++) {
            sum[kb * BLK + l] = ls[l];
            sumsq[kb * BLK + l] = lq[l];
        }
    }
    free(ctx.part);
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
    const float32x4_t zero = vdupq_n_f32(0.0f);
    for (int b = 0; b < nob; b++) {
        const int kb = 2 * kbp + b;
        const float *cs = c->scale + (size_t)kb * BLK, *ch = c->shift + (size_t)kb * BLK;
        const float32x4_t sc0 = vld1q_f32(cs), sc1 = vld1q_f32(cs + 4);
        const float32x4_t sh0 = vld1q_f32(ch), sh1 = vld1q_f32(ch + 4);
        float *y = yrow + (size_t)b * y_ob;
        /* vmaxq_f32 returns NaN when either input is NaN: a NaN passes through, as in the reference ReLU. */
        for (int i = 0; i < c->ow; i++) {
            float *yi = y + (size_t)i * BLK;
            vst1q_f32(yi, vmaxq_f32(vfmaq_f32(sh0, vld1q_f32(yi), sc0), zero));
            vst1q_f32(yi + 4, vmaxq_f32(vfmaq_f32(sh1, vld1q_f32(yi + 4), sc1), zero));
        }
    }
}

void conv_bn_relu_fwd_infer_f32_direct__neon(const incv3_conv_shape *s, const float *x8c, const float *w8i8o,
                                             float *y8c, const float *gamma, const float *beta, const float *mean,
                                             const float *var, float eps)
{
    const int KB = (s->k + BLK - 1) / BLK;
    float *coef = xmalloc((size_t)KB * 2 * BLK * sizeof *coef, "conv_bn_relu_fwd_infer_f32_direct__neon");
    memset(coef, 0, (size_t)KB * 2 * BLK * sizeof *coef);
    float *scale = coef, *shift = coef + (size_t)KB * BLK;
    for (int k = 0; k < s->k; k++) {
        const double sc = (double)gamma[k] / sqrt((double)var[k] + (double)eps);
        scale[k] = (float)sc;
        shift[k] = (float)((double)beta[k] - (double)mean[k] * sc);
    }
    affine_ctx ctx = {s->ow, scale, shift};
    conv_fwd_f32_direct_hooked__neon(s, x8c, w8i8o, y8c, affine_relu_row_hook, &ctx);
    free(coef);
}
