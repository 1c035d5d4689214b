/* 1x1 convolutions (stride 1, no padding) on maps of more than one pixel as GEMMs over all the batch's
 * pixels: with R = N * oh * ow rows, X (R x Cp) the input pixels, DY (R x Kp) the output gradient's and
 * P (Kp x Cp) the weights packed by conv_gemm_pack (common/conv_gemm_driver.h: a 1x1 kernel on a 1x1 map):
 *   forward          Y  = X P^T
 *   backward-data    DX = DY P
 *   backward-weights G  = DY^T X  (dw's single tap)
 * NCHW8c keeps a pixel's channels in blocks of 8 one map apart, so X, DY, Y and DX are gathered from and
 * scattered to the blocked tensors around each GEMM (one pass over each, 32-byte rows). The direct kernel
 * walks strips of a row, a few pixels long on the small maps of the 75x75 model (3x3 and 7x7 at its 17x17
 * and 35x35 stages), and its backward-weights splits little work among threads there; one GEMM with R in
 * the hundreds or thousands keeps its register tiles full (on the 768 -> 192 layer at 3x3, batch 32, 2
 * threads: see the README's table). The GEMM sums each element in a fixed order and the statistics are
 * summed per channel in row order: the results do not depend on the thread count.
 *
 * The including file defines KERNEL_ISA / KERNEL_ISA_STR and CONV_GEMM, and includes
 * common/conv_gemm_driver.h first.
 */
#ifndef INCV3_CONV_GEMM_1X1_DRIVER_H
#define INCV3_CONV_GEMM_1X1_DRIVER_H

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* The shape conv_gemm_pack sees: the same convolution on a 1x1 map. */
static inline incv3_conv_shape cg1_pixel_shape(const incv3_conv_shape *s)
{
    incv3_conv_shape t = *s;
    t.h = t.w = t.oh = t.ow = 1;
    return t;
}

static inline size_t cg1_rows(const incv3_conv_shape *s)
{
    return (size_t)s->n * s->oh * s->ow;
}

int ISA_NAME(conv_gemm_1x1_supports__)(const incv3_conv_shape *s)
{
    return s->n >= 1 && s->c >= 1 && s->k >= 1 && s->kh == 1 && s->kw == 1 && s->stride_h == 1 &&
           s->stride_w == 1 && s->pad_top == 0 && s->pad_left == 0 && s->pad_bottom == 0 && s->pad_right == 0 &&
           s->h >= 1 && s->w >= 1 && s->oh == s->h && s->ow == s->w && (size_t)s->h * s->w > 1;
}

size_t ISA_NAME(conv_gemm_1x1_weights_floats__)(const incv3_conv_shape *s)
{
    return (size_t)cg_kpad(s) * incv3_blocks8(s->c) * INCV3_BLK;
}

void ISA_NAME(conv_gemm_1x1_pack__)(const incv3_conv_shape *s, const float *w8i8o, float *p)
{
    const incv3_conv_shape t = cg1_pixel_shape(s);
    ISA_NAME(conv_gemm_pack__)(&t, w8i8o, p);
}

/* Scratch of the passes: the gathered rows of both operands (forward, backward-data), and G
 * (backward-weights). */
size_t ISA_NAME(conv_gemm_1x1_scratch_floats__)(const incv3_conv_shape *s)
{
    const size_t cp = (size_t)incv3_blocks8(s->c) * INCV3_BLK, kp = (size_t)cg_kpad(s);
    return cg1_rows(s) * (cp + kp) + kp * cp;
}

/* rows[(i * hw + q) * nb * 8 + b * 8 + l] = t8c[((i * nb + b) * hw + q) * 8 + l]: n images of nb blocks
 * and hw pixels into row-major pixel rows. */
static void cg1_gather(int n, int nb, size_t hw, const float *t8c, float *rows)
{
    const size_t rl = (size_t)nb * INCV3_BLK;
#pragma omp parallel for collapse(2) schedule(static)
    for (int i = 0; i < n; i++)
        for (int b = 0; b < nb; b++) {
            const float *src = t8c + ((size_t)i * nb + b) * hw * INCV3_BLK;
            float *dst = rows + (size_t)i * hw * rl + (size_t)b * INCV3_BLK;
            for (size_t q = 0; q < hw; q++)
                memcpy(dst + q * rl, src + q * INCV3_BLK, INCV3_BLK * sizeof(float));
        }
}

/* The inverse of cg1_gather for a tensor of c real channels: overwrite (padding lanes +0) or accumulate
 * (padding lanes keep their values). */
static void cg1_scatter(int n, int nb, int c, size_t hw, const float *rows, float *t8c, int accumulate)
{
    const size_t rl = (size_t)nb * INCV3_BLK;
#pragma omp parallel for collapse(2) schedule(static)
    for (int i = 0; i < n; i++)
        for (int b = 0; b < nb; b++) {
            const int lanes = c - b * INCV3_BLK < INCV3_BLK ? c - b * INCV3_BLK : INCV3_BLK;
            const float *src = rows + (size_t)i * hw * rl + (size_t)b * INCV3_BLK;
            float *dst = t8c + ((size_t)i * nb + b) * hw * INCV3_BLK;
            for (size_t q = 0; q < hw; q++) {
                float *d = dst + q * INCV3_BLK;
                const float *r = src + q * rl;
                if (accumulate) {
                    for (int l = 0; l < lanes; l++)
                        d[l] += r[l];
                } else {
                    for (int l = 0; l < INCV3_BLK; l++)
                        d[l] = l < lanes ? r[l] : 0.0f;
                }
            }
        }
}

/* Y = X P^T into y_rows (R x Kp), from x8c; rows: scratch of R * Cp floats. */
static void cg1_forward_rows(const incv3_conv_shape *s, const float *x8c, const float *p, float *rows, float *y_rows)
{
    const int cb = incv3_blocks8(s->c), cp = cb * INCV3_BLK, kp = cg_kpad(s);
    cg1_gather(s->n, cb, (size_t)s->oh * s->ow, x8c, rows);
    CONV_GEMM((int)cg1_rows(s), kp, cp, rows, cp, 0, p, cp, 1, y_rows, kp, 0);
}

static float *cg1_scratch(const incv3_conv_shape *s, const char *who)
{
    return incv3_mem_must(ISA_NAME(conv_gemm_1x1_scratch_floats__)(s) * sizeof(float), 64, who);
}

void ISA_NAME(conv_fwd_f32_gemm_1x1__)(const incv3_conv_shape *s, const float *x8c, const float *p, float *y8c)
{
    float *xr = cg1_scratch(s, "the scratch of conv_fwd_f32_gemm_1x1__" KERNEL_ISA_STR);
    float *yr = xr + cg1_rows(s) * incv3_blocks8(s->c) * INCV3_BLK;
    cg1_forward_rows(s, x8c, p, xr, yr);
    cg1_scatter(s->n, incv3_blocks8(s->k), s->k, (size_t)s->oh * s->ow, yr, y8c, 0);
    free(xr);
}

void ISA_NAME(conv_fwd_stats_f32_gemm_1x1__)(const incv3_conv_shape *s, const float *x8c, const float *p,
                                            float *y8c, double *sum, double *sumsq)
{
    float *xr = cg1_scratch(s, "the scratch of conv_fwd_stats_f32_gemm_1x1__" KERNEL_ISA_STR);
    float *yr = xr + cg1_rows(s) * incv3_blocks8(s->c) * INCV3_BLK;
    cg1_forward_rows(s, x8c, p, xr, yr);
    const int kb = incv3_blocks8(s->k), kp = kb * INCV3_BLK;
    const size_t rows = cg1_rows(s);
    /* per output block, its 8 channels' sums over the rows in order */
#pragma omp parallel for schedule(static)
    for (int b = 0; b < kb; b++) {
        double a[INCV3_BLK] = {0}, q[INCV3_BLK] = {0};
        for (size_t r = 0; r < rows; r++) {
            const float *v = yr + r * kp + (size_t)b * INCV3_BLK;
            for (int l = 0; l < INCV3_BLK; l++) {
                a[l] += v[l];
                q[l] += (double)v[l] * v[l];
            }
        }
        for (int l = 0; l < INCV3_BLK && b * INCV3_BLK + l < s->k; l++) {
            sum[b * INCV3_BLK + l] = a[l];
            sumsq[b * INCV3_BLK + l] = q[l];
        }
    }
    cg1_scatter(s->n, kb, s->k, (size_t)s->oh * s->ow, yr, y8c, 0);
    free(xr);
}

void ISA_NAME(conv_bn_relu_fwd_infer_f32_gemm_1x1__)(const incv3_conv_shape *s, const float *x8c, const float *p,
                                                    float *y8c, const float *gamma, const float *beta,
                                                    const float *mean, const float *var, float eps)
{
    float *xr = cg1_scratch(s, "the scratch of conv_bn_relu_fwd_infer_f32_gemm_1x1__" KERNEL_ISA_STR);
    float *yr = xr + cg1_rows(s) * incv3_blocks8(s->c) * INCV3_BLK;
    cg1_forward_rows(s, x8c, p, xr, yr);
    const int kp = cg_kpad(s);
    float scale[kp], shift[kp];
    for (int k = 0; k < kp; k++) {
        const double sc = k < s->k ? (double)gamma[k] / sqrt((double)var[k] + (double)eps) : 0.0;
        scale[k] = (float)sc;
        shift[k] = k < s->k ? (float)((double)beta[k] - sc * (double)mean[k]) : 0.0f;
    }
    const long rows = (long)cg1_rows(s);
#pragma omp parallel for schedule(static)
    for (long r = 0; r < rows; r++) {
        float *y = yr + (size_t)r * kp;
        for (int k = 0; k < kp; k++) {
            const float v = y[k] * scale[k] + shift[k];
            y[k] = v > 0.0f ? v : 0.0f;
        }
    }
    cg1_scatter(s->n, incv3_blocks8(s->k), s->k, (size_t)s->oh * s->ow, yr, y8c, 0);
    free(xr);
}

void ISA_NAME(conv_bwd_data_f32_gemm_1x1__)(const incv3_conv_shape *s, const float *dy8c, const float *p,
                                           float *dx8c, int accumulate)
{
    const int cb = incv3_blocks8(s->c), cp = cb * INCV3_BLK, kb = incv3_blocks8(s->k), kp = kb * INCV3_BLK;
    const size_t hw = (size_t)s->oh * s->ow;
    float *dyr = cg1_scratch(s, "the scratch of conv_bwd_data_f32_gemm_1x1__" KERNEL_ISA_STR);
    float *dxr = dyr + cg1_rows(s) * kp;
    cg1_gather(s->n, kb, hw, dy8c, dyr);
    CONV_GEMM((int)cg1_rows(s), cp, kp, dyr, kp, 0, p, cp, 0, dxr, cp, 0);
    cg1_scatter(s->n, cb, s->c, hw, dxr, dx8c, accumulate);
    free(dyr);
}

void ISA_NAME(conv_bwd_weights_f32_gemm_1x1__)(const incv3_conv_shape *s, const float *x8c, const float *dy8c,
                                              float *dw8i8o)
{
    const int cb = incv3_blocks8(s->c), cp = cb * INCV3_BLK, kb = incv3_blocks8(s->k), kp = kb * INCV3_BLK;
    const size_t hw = (size_t)s->oh * s->ow, rows = cg1_rows(s);
    float *dyr = cg1_scratch(s, "the scratch of conv_bwd_weights_f32_gemm_1x1__" KERNEL_ISA_STR);
    float *xr = dyr + rows * kp, *g = xr + rows * cp;
    cg1_gather(s->n, kb, hw, dy8c, dyr);
    cg1_gather(s->n, cb, hw, x8c, xr);
    CONV_GEMM(kp, cp, (int)rows, dyr, kp, 1, xr, cp, 0, g, cp, 0);
#pragma omp parallel for collapse(2) schedule(static)
    for (int ob = 0; ob < kb; ob++)
        for (int ib = 0; ib < cb; ib++) {
            float *dw = dw8i8o + ((size_t)ob * cb + ib) * INCV3_BLK * INCV3_BLK;
            for (int i = 0; i < INCV3_BLK; i++)
                for (int o = 0; o < INCV3_BLK; o++) {
                    const int k = ob * INCV3_BLK + o, c = ib * INCV3_BLK + i;
                    dw[i * INCV3_BLK + o] = k < s->k && c < s->c ? g[(size_t)k * cp + c] : 0.0f;
                }
        }
    free(dyr);
}

#endif
