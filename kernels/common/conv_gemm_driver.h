/* Convolutions whose output is a single pixel (the 75x75 model's last blocks: 1x1, 1x3, 3x1 and 3x3 layers
 * on 1x1 maps, and the stride-2 reduction from 3x3 to 1x1) as one GEMM per pass. With one output pixel
 * per image the direct kernel's strips are one pixel long, so each weight it loads serves one FMA and the
 * pass runs at the speed of streaming the weights (about 20 GFLOP/s per core measured, against 70 to 100
 * for the GEMM). In NCHW8c an image of such a layer is one contiguous row [cb][h][w][8] of
 * D = CB * h * w * 8 floats, which is already the im2col row of the output pixel: tap (r, q) of input
 * pixel (ih, iw) is (ih + pad_top, iw + pad_left), and taps that fall on padding never meet data. So with
 * P the weights packed from OIHW as Kp x D (Kp = output channels padded to 8, P[k][cb][ih][iw][i] =
 * w[k][8 cb + i] at that tap, zero elsewhere):
 *   forward          y  (N x Kp) = x (N x D) P^T
 *   backward-data    dx (N x D)  = dy (N x Kp) P
 *   backward-weights G  (Kp x D) = dy^T x, scattered back into w's OIHW taps (the others are 0).
 * Where P is w itself (a 1x1 kernel on a 1x1 map, channel counts multiples of 8: the 75x75 model's last
 * 1x1 layers) there is no pack (weights_floats is 0) and G is written straight into dw.
 * The padding lanes stay zero by construction (zero rows and columns of P, zero lanes of x and dy). The
 * GEMM's summation order does not depend on the thread count, nor do the statistics (one thread per
 * channel block, images in order).
 *
 * The including file defines KERNEL_ISA / KERNEL_ISA_STR (common/isa_name.h) and CONV_GEMM, the ISA's
 * GEMM (the contract of gemm_f32_6x16__avx2).
 */
#ifndef INCV3_CONV_GEMM_DRIVER_H
#define INCV3_CONV_GEMM_DRIVER_H

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "common/isa_name.h"
#include "kernel_types.h"
#include "layout/reorder.h"

/* Floats per image row of x (D). */
static inline size_t cg_row(const incv3_conv_shape *s)
{
    return (size_t)incv3_blocks8(s->c) * s->h * s->w * INCV3_BLK;
}

/* Output channels padded to whole blocks (Kp): the rows of P, the row length of y and dy. */
static inline int cg_kpad(const incv3_conv_shape *s)
{
    return incv3_blocks8(s->k) * INCV3_BLK;
}

int ISA_NAME(conv_gemm_supports__)(const incv3_conv_shape *s)
{
    return s->n >= 1 && s->c >= 1 && s->k >= 1 && s->oh == 1 && s->ow == 1 && s->h >= 1 && s->w >= 1 &&
           s->kh >= 1 && s->kw >= 1 && s->pad_top >= 0 && s->pad_left >= 0;
}

/* 1 when P is the OIHW weights as they are: one input pixel, one tap that meets it, channel counts whole
 * blocks. */
static inline int cg_pack_is_oihw(const incv3_conv_shape *s)
{
    return s->h == 1 && s->w == 1 && s->kh == 1 && s->kw == 1 && s->pad_top == 0 && s->pad_left == 0 &&
           s->c % INCV3_BLK == 0 && s->k % INCV3_BLK == 0;
}

size_t ISA_NAME(conv_gemm_weights_floats__)(const incv3_conv_shape *s)
{
    return cg_pack_is_oihw(s) ? 0 : (size_t)cg_kpad(s) * cg_row(s);
}

/* One pixel's 8 lanes v into a blocked tensor's pixel d holding `lanes` real channels: overwritten (padding
 * lanes +0) or accumulated (padding lanes keep their values). */
static inline void cg_put_pixel(float *d, const float *v, int lanes, int accumulate)
{
    if (accumulate) {
        for (int l = 0; l < lanes; l++)
            d[l] += v[l];
    } else {
        for (int l = 0; l < INCV3_BLK; l++)
            d[l] = l < lanes ? v[l] : 0.0f;
    }
}

/* The tap of kernel row r, column q that input pixel (ih, iw) meets, or -1. */
static inline int cg_tap(const incv3_conv_shape *s, int ih, int iw)
{
    const int r = ih + s->pad_top, q = iw + s->pad_left;
    return r < s->kh && q < s->kw ? r * s->kw + q : -1;
}

void ISA_NAME(conv_gemm_pack__)(const incv3_conv_shape *s, const float *w, float *p)
{
    const int CB = incv3_blocks8(s->c), KP = cg_kpad(s), taps = s->kh * s->kw;
    const size_t d = cg_row(s);
    /* Per output channel and input block: the block's taps transposed to [tap][8 lanes] in a small buffer
     * (w read in order), then each input pixel's 8 lanes copied from its tap, or zeroed. */
#pragma omp parallel for schedule(static)
    for (int k = 0; k < KP; k++) {
        float *pk = p + (size_t)k * d;
        float on_stack[64 * INCV3_BLK];
        float *lanes = taps <= 64 ? on_stack
                                  : incv3_mem_must((size_t)taps * INCV3_BLK * sizeof(float), 64,
                                                   "the scratch of conv_gemm_pack__" KERNEL_ISA_STR);
        for (int cb = 0; cb < CB; cb++) {
            for (int i = 0; i < INCV3_BLK; i++) {
                const int c = cb * INCV3_BLK + i;
                const float *src = w + ((size_t)k * s->c + c) * taps;
                for (int t = 0; t < taps; t++)
                    lanes[t * INCV3_BLK + i] = k < s->k && c < s->c ? src[t] : 0.0f;
            }
            for (int ih = 0; ih < s->h; ih++)
                for (int iw = 0; iw < s->w; iw++) {
                    float *dst = pk + (((size_t)cb * s->h + ih) * s->w + iw) * INCV3_BLK;
                    const int t = cg_tap(s, ih, iw);
                    if (t < 0)
                        memset(dst, 0, INCV3_BLK * sizeof(float));
                    else
                        memcpy(dst, lanes + (size_t)t * INCV3_BLK, INCV3_BLK * sizeof(float));
                }
        }
        if (lanes != on_stack)
            free(lanes);
    }
}

void ISA_NAME(conv_fwd_f32_gemm__)(const incv3_conv_shape *s, const float *x8c, const float *p, float *y8c)
{
    const int d = (int)cg_row(s), kp = cg_kpad(s);
    CONV_GEMM(s->n, kp, d, x8c, d, 0, p, d, 1, y8c, kp, 0);
}

/* The statistics of y, rows x kp row-major (k real channels), for a following BatchNorm: per output block,
 * its 8 channels' sums over the rows in order, in double. */
static void cg_rows_stats(size_t rows, int kp, int k, const float *y, double *sum, double *sumsq)
{
    const int kb = kp / INCV3_BLK;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < kb; b++) {
        double a[INCV3_BLK] = {0}, q[INCV3_BLK] = {0};
        for (size_t r = 0; r < rows; r++) {
            const float *v = y + r * kp + (size_t)b * INCV3_BLK;
            for (int l = 0; l < INCV3_BLK; l++) {
                a[l] += v[l];
                q[l] += (double)v[l] * v[l];
            }
        }
        for (int l = 0; l < INCV3_BLK && b * INCV3_BLK + l < k; l++) {
            sum[b * INCV3_BLK + l] = a[l];
            sumsq[b * INCV3_BLK + l] = q[l];
        }
    }
}

/* y = relu(y * scale + shift) in place, rows x kp row-major, BatchNorm folded per channel in double (zero
 * past k, so the padding columns stay 0). */
static void cg_rows_bn_relu(size_t rows, int kp, int k, float *y, const float *gamma, const float *beta,
                            const float *mean, const float *var, float eps)
{
    float scale[kp], shift[kp];
    for (int c = 0; c < kp; c++) {
        const double sc = c < k ? (double)gamma[c] / sqrt((double)var[c] + (double)eps) : 0.0;
        scale[c] = (float)sc;
        shift[c] = c < k ? (float)((double)beta[c] - sc * (double)mean[c]) : 0.0f;
    }
    const long n = (long)rows;
#pragma omp parallel for schedule(static)
    for (long r = 0; r < n; r++) {
        float *v = y + (size_t)r * kp;
        for (int c = 0; c < kp; c++) {
            const float t = v[c] * scale[c] + shift[c];
            v[c] = t > 0.0f ? t : 0.0f;
        }
    }
}

void ISA_NAME(conv_fwd_stats_f32_gemm__)(const incv3_conv_shape *s, const float *x8c, const float *p, float *y8c,
                                        double *sum, double *sumsq)
{
    ISA_NAME(conv_fwd_f32_gemm__)(s, x8c, p, y8c);
    cg_rows_stats((size_t)s->n, cg_kpad(s), s->k, y8c, sum, sumsq);
}

void ISA_NAME(conv_bn_relu_fwd_infer_f32_gemm__)(const incv3_conv_shape *s, const float *x8c, const float *p,
                                                float *y8c, const float *gamma, const float *beta, const float *mean,
                                                const float *var, float eps)
{
    ISA_NAME(conv_fwd_f32_gemm__)(s, x8c, p, y8c);
    cg_rows_bn_relu((size_t)s->n, cg_kpad(s), s->k, y8c, gamma, beta, mean, var, eps);
}

void ISA_NAME(conv_bwd_data_f32_gemm__)(const incv3_conv_shape *s, const float *dy8c, const float *p, float *dx8c,
                                       int accumulate)
{
    const int d = (int)cg_row(s), kp = cg_kpad(s);
    CONV_GEMM(s->n, d, kp, dy8c, kp, 0, p, d, 0, dx8c, d, accumulate);
}

void ISA_NAME(conv_bwd_weights_f32_gemm__)(const incv3_conv_shape *s, const float *x8c, const float *dy8c,
                                          float *dw)
{
    const int kp = cg_kpad(s), taps = s->kh * s->kw;
    const size_t d = cg_row(s);
    if (cg_pack_is_oihw(s)) {
        CONV_GEMM(kp, (int)d, s->n, dy8c, kp, 1, x8c, (int)d, 0, dw, (int)d, 0);
        return;
    }
    float *gk = incv3_mem_must((size_t)kp * d * sizeof(float), 64, "the scratch of conv_bwd_weights_f32_gemm__" KERNEL_ISA_STR);
    CONV_GEMM(kp, (int)d, s->n, dy8c, kp, 1, x8c, (int)d, 0, gk, (int)d, 0);
    /* Each tap meets at most one input pixel (one output pixel): its entry of G, or 0. Per output channel
     * and input block, each tap's 8 lanes (contiguous in G) go to the block's 8 rows of dw. */
#pragma omp parallel for schedule(static)
    for (int k = 0; k < s->k; k++)
        for (int cb = 0; cb < incv3_blocks8(s->c); cb++) {
            const float *g = gk + (size_t)k * d + (size_t)cb * s->h * s->w * INCV3_BLK;
            const int lanes = s->c - cb * INCV3_BLK < INCV3_BLK ? s->c - cb * INCV3_BLK : INCV3_BLK;
            float *dst = dw + ((size_t)k * s->c + (size_t)cb * INCV3_BLK) * taps;
            for (int r = 0; r < s->kh; r++)
                for (int q = 0; q < s->kw; q++) {
                    const int ih = r - s->pad_top, iw = q - s->pad_left, t = r * s->kw + q;
                    if (ih >= 0 && ih < s->h && iw >= 0 && iw < s->w) {
                        const float *v = g + ((size_t)ih * s->w + iw) * INCV3_BLK;
                        for (int i = 0; i < lanes; i++)
                            dst[(size_t)i * taps + t] = v[i];
                    } else {
                        for (int i = 0; i < lanes; i++)
                            dst[(size_t)i * taps + t] = 0.0f;
                    }
                }
        }
    free(gk);
}

#endif
