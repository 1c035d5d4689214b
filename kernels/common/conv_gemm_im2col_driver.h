/* Convolutions with many output pixels per GEMM row block, as GEMMs over all the batch's output pixels
 * (im2col): with R = N * oh * ow rows and D = Cp * kh * kw,
 *   X  (R x D)   each output pixel's input window, [input block][tap][8 lanes], zeros off the map,
 *   DY (R x Kp)  the output gradient's pixels, P (Kp x D) the weights packed by conv_gemm_pack
 *                (common/conv_gemm_driver.h, on a kh x kw map without padding: P[k][cb][tap][i]),
 *   forward          Y  = X P^T
 *   backward-data    DX = DY P, each window added back onto dx (col2im)
 *   backward-weights G  = DY^T X, dw's taps.
 * NCHW8c keeps a pixel's channels in blocks of 8 one map apart, so every operand is gathered from and
 * scattered to the blocked tensors around the GEMM (for a 1x1 kernel, stride 1, no padding, X is the
 * input's pixels as they are). The direct kernels walk strips of a row, a few pixels long on the small
 * maps of the 75x75 model (3x3 and 7x7 at its 17x17 and 35x35 stages), and their backward-weights has
 * little work to split among threads there; one GEMM with R in the hundreds keeps its register tiles
 * full. Served where X takes at most CG2_COL_BYTES (the gathered copy is scratch; on the 299x299 model
 * that is every 1x1 layer and no 3x3 one). The GEMM sums each element in a fixed order, the statistics
 * are summed per channel in row order and col2im adds each image's windows in pixel and tap order: the
 * results do not depend on the thread count.
 *
 * The including file defines KERNEL_ISA / KERNEL_ISA_STR and CONV_GEMM, and includes
 * common/conv_gemm_driver.h first.
 */
#ifndef INCV3_CONV_GEMM_IM2COL_DRIVER_H
#define INCV3_CONV_GEMM_IM2COL_DRIVER_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#ifndef CG2_COL_BYTES
#define CG2_COL_BYTES ((size_t)64 << 20)
#endif

/* The shape conv_gemm_pack sees: the kernel on a kh x kw map without padding, one output pixel, so that
 * its im2col row is [input block][tap][8 lanes]. */
static inline incv3_conv_shape cg2_tap_shape(const incv3_conv_shape *s)
{
    incv3_conv_shape t = *s;
    t.h = s->kh, t.w = s->kw, t.oh = t.ow = 1;
    t.stride_h = t.stride_w = 1;
    t.pad_top = t.pad_left = t.pad_bottom = t.pad_right = 0;
    return t;
}

static inline size_t cg2_rows(const incv3_conv_shape *s)
{
    return (size_t)s->n * s->oh * s->ow;
}

/* Floats of an im2col row (D). */
static inline size_t cg2_d(const incv3_conv_shape *s)
{
    return (size_t)incv3_blocks8(s->c) * s->kh * s->kw * INCV3_BLK;
}

/* 1 for a 1x1 kernel, stride 1, no padding: X is the input's pixels. */
static inline int cg2_pointwise(const incv3_conv_shape *s)
{
    return s->kh == 1 && s->kw == 1 && s->stride_h == 1 && s->stride_w == 1 && s->pad_top == 0 &&
           s->pad_left == 0 && s->pad_bottom == 0 && s->pad_right == 0;
}

int ISA_NAME(conv_gemm_im2col_supports__)(const incv3_conv_shape *s)
{
    return s->n >= 1 && s->c >= 1 && s->k >= 1 && s->h >= 1 && s->w >= 1 && s->kh >= 1 && s->kw >= 1 &&
           s->stride_h >= 1 && s->stride_w >= 1 && s->pad_top >= 0 && s->pad_left >= 0 && s->pad_bottom >= 0 &&
           s->pad_right >= 0 && s->oh >= 1 && s->ow >= 1 && (size_t)s->oh * s->ow > 1 &&
           cg2_rows(s) <= (size_t)1 << 30 && cg2_rows(s) * cg2_d(s) * sizeof(float) <= CG2_COL_BYTES;
}

/* 0 where P is the OIHW weights themselves (1x1 kernels, channel counts multiples of 8). */
size_t ISA_NAME(conv_gemm_im2col_weights_floats__)(const incv3_conv_shape *s)
{
    const incv3_conv_shape t = cg2_tap_shape(s);
    return ISA_NAME(conv_gemm_weights_floats__)(&t);
}

void ISA_NAME(conv_gemm_im2col_pack__)(const incv3_conv_shape *s, const float *w, float *p)
{
    const incv3_conv_shape t = cg2_tap_shape(s);
    ISA_NAME(conv_gemm_pack__)(&t, w, p);
}

/* Scratch of the passes: X and DY (or Y), and G (backward-weights, where it is not dw itself). */
size_t ISA_NAME(conv_gemm_im2col_scratch_floats__)(const incv3_conv_shape *s)
{
    const size_t d = cg2_d(s), kp = (size_t)cg_kpad(s);
    return cg2_rows(s) * (d + kp) + kp * d;
}

/* rows[(i * hw + q) * nb * 8 + b * 8 + l] = t8c[((i * nb + b) * hw + q) * 8 + l]: n images of nb blocks
 * and hw pixels into row-major pixel rows. */
static void cg2_gather(int n, int nb, size_t hw, const float *t8c, float *rows)
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

/* The inverse of cg2_gather for a tensor of c real channels: overwrite (padding lanes +0) or accumulate
 * (padding lanes keep their values). */
static void cg2_scatter(int n, int nb, int c, size_t hw, const float *rows, float *t8c, int accumulate)
{
    const size_t rl = (size_t)nb * INCV3_BLK;
#pragma omp parallel for collapse(2) schedule(static)
    for (int i = 0; i < n; i++)
        for (int b = 0; b < nb; b++) {
            const int lanes = c - b * INCV3_BLK < INCV3_BLK ? c - b * INCV3_BLK : INCV3_BLK;
            const float *src = rows + (size_t)i * hw * rl + (size_t)b * INCV3_BLK;
            float *dst = t8c + ((size_t)i * nb + b) * hw * INCV3_BLK;
            for (size_t q = 0; q < hw; q++)
                cg_put_pixel(dst + q * INCV3_BLK, src + q * rl, lanes, accumulate);
        }
}

/* X from x8c: each output pixel's window, zeros where it reaches past the map. */
static void cg2_im2col(const incv3_conv_shape *s, const float *x8c, float *col)
{
    if (cg2_pointwise(s)) {
        cg2_gather(s->n, incv3_blocks8(s->c), (size_t)s->h * s->w, x8c, col);
        return;
    }
    const int CB = incv3_blocks8(s->c), taps = s->kh * s->kw;
    const size_t d = cg2_d(s), plane = (size_t)s->h * s->w * INCV3_BLK;
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < s->n; n++)
        for (int oy = 0; oy < s->oh; oy++)
            for (int ox = 0; ox < s->ow; ox++) {
                float *row = col + (((size_t)n * s->oh + oy) * s->ow + ox) * d;
                for (int cb = 0; cb < CB; cb++) {
                    const float *xb = x8c + ((size_t)n * CB + cb) * plane;
                    for (int r = 0; r < s->kh; r++) {
                        const int iy = oy * s->stride_h + r - s->pad_top;
                        for (int q = 0; q < s->kw; q++) {
                            const int ix = ox * s->stride_w + q - s->pad_left;
                            float *dst = row + ((size_t)cb * taps + r * s->kw + q) * INCV3_BLK;
                            if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w)
                                memset(dst, 0, INCV3_BLK * sizeof(float));
                            else
                                memcpy(dst, xb + ((size_t)iy * s->w + ix) * INCV3_BLK, INCV3_BLK * sizeof(float));
                        }
                    }
                }
            }
}

/* dx8c (+)= the windows of col added back, per image and input block in pixel and tap order; padding
 * lanes +0 when overwriting, kept when accumulating. */
static void cg2_col2im(const incv3_conv_shape *s, const float *col, float *dx8c, int accumulate)
{
    if (cg2_pointwise(s)) {
        cg2_scatter(s->n, incv3_blocks8(s->c), s->c, (size_t)s->h * s->w, col, dx8c, accumulate);
        return;
    }
    const int CB = incv3_blocks8(s->c), taps = s->kh * s->kw;
    const size_t d = cg2_d(s), plane = (size_t)s->h * s->w * INCV3_BLK;
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < s->n; n++)
        for (int cb = 0; cb < CB; cb++) {
            const int lanes = s->c - cb * INCV3_BLK < INCV3_BLK ? s->c - cb * INCV3_BLK : INCV3_BLK;
            float *xb = dx8c + ((size_t)n * CB + cb) * plane;
            if (!accumulate)
                memset(xb, 0, plane * sizeof(float));
            for (int oy = 0; oy < s->oh; oy++)
                for (int ox = 0; ox < s->ow; ox++) {
                    const float *row = col + (((size_t)n * s->oh + oy) * s->ow + ox) * d + (size_t)cb * taps * INCV3_BLK;
                    for (int r = 0; r < s->kh; r++) {
                        const int iy = oy * s->stride_h + r - s->pad_top;
                        if (iy < 0 || iy >= s->h)
                            continue;
                        for (int q = 0; q < s->kw; q++) {
                            const int ix = ox * s->stride_w + q - s->pad_left;
                            if (ix < 0 || ix >= s->w)
                                continue;
                            float *dst = xb + ((size_t)iy * s->w + ix) * INCV3_BLK;
                            const float *v = row + (size_t)(r * s->kw + q) * INCV3_BLK;
                            for (int l = 0; l < lanes; l++)
                                dst[l] += v[l];
                        }
                    }
                }
        }
}

static float *cg2_scratch(const incv3_conv_shape *s, const char *who)
{
    return incv3_mem_must(ISA_NAME(conv_gemm_im2col_scratch_floats__)(s) * sizeof(float), 64, who);
}

/* Y = X P^T into y_rows (R x Kp); col: scratch of R x D floats. */
static void cg2_forward_rows(const incv3_conv_shape *s, const float *x8c, const float *p, float *col, float *y_rows)
{
    const int d = (int)cg2_d(s), kp = cg_kpad(s);
    cg2_im2col(s, x8c, col);
    CONV_GEMM((int)cg2_rows(s), kp, d, col, d, 0, p, d, 1, y_rows, kp, 0);
}

void ISA_NAME(conv_fwd_f32_gemm_im2col__)(const incv3_conv_shape *s, const float *x8c, const float *p, float *y8c)
{
    float *col = cg2_scratch(s, "the scratch of conv_fwd_f32_gemm_im2col__" KERNEL_ISA_STR);
    float *yr = col + cg2_rows(s) * cg2_d(s);
    cg2_forward_rows(s, x8c, p, col, yr);
    cg2_scatter(s->n, incv3_blocks8(s->k), s->k, (size_t)s->oh * s->ow, yr, y8c, 0);
    free(col);
}

void ISA_NAME(conv_fwd_stats_f32_gemm_im2col__)(const incv3_conv_shape *s, const float *x8c, const float *p,
                                               float *y8c, double *sum, double *sumsq)
{
    float *col = cg2_scratch(s, "the scratch of conv_fwd_stats_f32_gemm_im2col__" KERNEL_ISA_STR);
    float *yr = col + cg2_rows(s) * cg2_d(s);
    cg2_forward_rows(s, x8c, p, col, yr);
    const int kb = incv3_blocks8(s->k);
    cg_rows_stats(cg2_rows(s), kb * INCV3_BLK, s->k, yr, sum, sumsq);
    cg2_scatter(s->n, kb, s->k, (size_t)s->oh * s->ow, yr, y8c, 0);
    free(col);
}

void ISA_NAME(conv_bn_relu_fwd_infer_f32_gemm_im2col__)(const incv3_conv_shape *s, const float *x8c,
                                                       const float *p, float *y8c, const float *gamma,
                                                       const float *beta, const float *mean, const float *var,
                                                       float eps)
{
    float *col = cg2_scratch(s, "the scratch of conv_bn_relu_fwd_infer_f32_gemm_im2col__" KERNEL_ISA_STR);
    float *yr = col + cg2_rows(s) * cg2_d(s);
    cg2_forward_rows(s, x8c, p, col, yr);
    cg_rows_bn_relu(cg2_rows(s), cg_kpad(s), s->k, yr, gamma, beta, mean, var, eps);
    cg2_scatter(s->n, incv3_blocks8(s->k), s->k, (size_t)s->oh * s->ow, yr, y8c, 0);
    free(col);
}

void ISA_NAME(conv_bwd_data_f32_gemm_im2col__)(const incv3_conv_shape *s, const float *dy8c, const float *p,
                                              float *dx8c, int accumulate)
{
    const int d = (int)cg2_d(s), kb = incv3_blocks8(s->k), kp = kb * INCV3_BLK;
    float *col = cg2_scratch(s, "the scratch of conv_bwd_data_f32_gemm_im2col__" KERNEL_ISA_STR);
    float *dyr = col + cg2_rows(s) * cg2_d(s);
    cg2_gather(s->n, kb, (size_t)s->oh * s->ow, dy8c, dyr);
    CONV_GEMM((int)cg2_rows(s), d, kp, dyr, kp, 0, p, d, 0, col, d, 0);
    cg2_col2im(s, col, dx8c, accumulate);
    free(col);
}

void ISA_NAME(conv_bwd_weights_f32_gemm_im2col__)(const incv3_conv_shape *s, const float *x8c, const float *dy8c,
                                                 float *dw)
{
    const int kb = incv3_blocks8(s->k), kp = kb * INCV3_BLK, taps = s->kh * s->kw;
    const size_t d = cg2_d(s), rows = cg2_rows(s);
    const incv3_conv_shape ts = cg2_tap_shape(s);
    const int direct = cg_pack_is_oihw(&ts);
    float *col = cg2_scratch(s, "the scratch of conv_bwd_weights_f32_gemm_im2col__" KERNEL_ISA_STR);
    float *dyr = col + rows * d, *g = direct ? dw : dyr + rows * kp;
    cg2_im2col(s, x8c, col);
    cg2_gather(s->n, kb, (size_t)s->oh * s->ow, dy8c, dyr);
    CONV_GEMM(kp, (int)d, (int)rows, dyr, kp, 1, col, (int)d, 0, g, (int)d, 0);
    if (!direct) {
        /* G's columns are [input block][tap][lane], dw's [channel][tap] */
#pragma omp parallel for schedule(static)
        for (int k = 0; k < s->k; k++)
            for (int c = 0; c < s->c; c++)
                for (int t = 0; t < taps; t++)
                    dw[((size_t)k * s->c + c) * taps + t] =
                        g[(size_t)k * d + ((size_t)(c / INCV3_BLK) * taps + t) * INCV3_BLK + c % INCV3_BLK];
    }
    free(col);
}

#endif
