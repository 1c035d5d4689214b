/* 1 x r and r x 1 convolutions (stride 1) over short lines, as GEMMs with the convolution's whole matrix
 * along the line: on the 75x75 model's 3x3 maps a 1x7 layer touches 3 of its 7 taps per output pixel on
 * average, so the direct and im2col kernels multiply padding for more than half their work, and Winograd
 * F(4, 7) computes a 4-wide tile for 3 outputs. Here each line (an image row for 1 x r, a column for
 * r x 1) of L input pixels and OL output pixels is one GEMM row, and the weights become the Toeplitz
 * matrix T (OL * Kp x L * Cp) with T[x][k][y][c] = w[k][c][y - x + pad] where that tap exists, else 0:
 *   X  (R x L * Cp)   the lines' input pixels, [position][channel] (R = N * lines)
 *   forward           Y  = X T^T        (R x OL * Kp)
 *   backward-data     DX = DY T
 *   backward-weights  DT = DY^T X, each tap of dw the sum of its diagonal of DT, x ascending.
 * The multiply-adds are L * OL per channel pair and line (9 for a 1x7 layer on a 3-pixel line, against
 * 21 for the direct kernel's taps), all in the GEMM's register tiles. Served for lines of at most
 * CG3_MAX_LINE pixels (the plan's timing decides where it is worth it) whose X fits CG2_COL_BYTES. Every
 * sum runs in a fixed order, so results do not depend on the thread count.
 *
 * The including file defines KERNEL_ISA / KERNEL_ISA_STR and CONV_GEMM, and includes
 * common/conv_gemm_driver.h and common/conv_gemm_im2col_driver.h first.
 */
#ifndef INCV3_CONV_GEMM_TOEPLITZ_DRIVER_H
#define INCV3_CONV_GEMM_TOEPLITZ_DRIVER_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define CG3_MAX_LINE 8

/* The geometry of a shape's lines: 1 along w (1 x r), 0 along h (r x 1). */
typedef struct cg3_lines {
    int along_w;
    int l, ol, r, pad; /* input and output pixels per line, taps, leading padding */
    size_t rows;       /* lines: N * (h or w) */
    size_t d, e;       /* row lengths of X (L * Cp) and Y (OL * Kp) */
} cg3_lines;

static inline cg3_lines cg3_geometry(const incv3_conv_shape *s)
{
    cg3_lines g;
    g.along_w = s->kh == 1;
    g.l = g.along_w ? s->w : s->h;
    g.ol = g.along_w ? s->ow : s->oh;
    g.r = g.along_w ? s->kw : s->kh;
    g.pad = g.along_w ? s->pad_left : s->pad_top;
    g.rows = (size_t)s->n * (g.along_w ? s->h : s->w);
    g.d = (size_t)g.l * incv3_blocks8(s->c) * INCV3_BLK;
    g.e = (size_t)g.ol * cg_kpad(s);
    return g;
}

int ISA_NAME(conv_gemm_toeplitz_supports__)(const incv3_conv_shape *s)
{
    if (s->n < 1 || s->c < 1 || s->k < 1 || s->h < 1 || s->w < 1 || s->stride_h != 1 || s->stride_w != 1)
        return 0;
    const int row = s->kh == 1 && s->kw > 1 && s->pad_top == 0 && s->pad_bottom == 0;
    const int col = s->kw == 1 && s->kh > 1 && s->pad_left == 0 && s->pad_right == 0;
    if (!row && !col)
        return 0;
    const cg3_lines g = cg3_geometry(s);
    return g.l <= CG3_MAX_LINE && g.ol >= 1 && g.ol <= CG3_MAX_LINE && g.rows <= (size_t)1 << 30 &&
           g.rows * (g.d > g.e ? g.d : g.e) * sizeof(float) <= CG2_COL_BYTES;
}

size_t ISA_NAME(conv_gemm_toeplitz_weights_floats__)(const incv3_conv_shape *s)
{
    const cg3_lines g = cg3_geometry(s);
    return g.e * g.d;
}

void ISA_NAME(conv_gemm_toeplitz_pack__)(const incv3_conv_shape *s, const float *w, float *t)
{
    const cg3_lines g = cg3_geometry(s);
    const int kp = cg_kpad(s), cp = incv3_blocks8(s->c) * INCV3_BLK;
    /* Row (x, k) of T: output channel k's weights (c x r, read in order) at the positions y = x + tap - pad
     * inside the line. */
#pragma omp parallel for collapse(2) schedule(static)
    for (int x = 0; x < g.ol; x++)
        for (int k = 0; k < kp; k++) {
            float *tr = t + ((size_t)x * kp + k) * g.d;
            memset(tr, 0, g.d * sizeof(float));
            if (k >= s->k)
                continue;
            for (int c = 0; c < s->c; c++) {
                const float *src = w + ((size_t)k * s->c + c) * g.r;
                for (int tap = 0; tap < g.r; tap++) {
                    const int y = x + tap - g.pad;
                    if (y >= 0 && y < g.l)
                        tr[(size_t)y * cp + c] = src[tap];
                }
            }
        }
}

/* Scratch of the passes: X (or DX), Y (or DY), and DT (backward-weights). */
size_t ISA_NAME(conv_gemm_toeplitz_scratch_floats__)(const incv3_conv_shape *s)
{
    const cg3_lines g = cg3_geometry(s);
    return g.rows * (g.d + g.e) + g.e * g.d;
}

/* Pixel offset in a blocked tensor of nb channel blocks and an hh x ww map of line `row`, position p
 * (block 0). */
static inline size_t cg3_pixel(const cg3_lines *g, int nb, int hh, int ww, size_t row, int p)
{
    const size_t lines = g->along_w ? (size_t)hh : (size_t)ww;
    const size_t n = row / lines, j = row % lines;
    const size_t ih = g->along_w ? j : (size_t)p, iw = g->along_w ? (size_t)p : j;
    return ((n * nb) * hh + ih) * ww * INCV3_BLK + iw * INCV3_BLK;
}

/* rows[row][p][b * 8 + l] = t8c's pixel p of line `row`, block b: a tensor of nb blocks on an hh x ww map
 * into its lines of len pixels. */
static void cg3_gather(const cg3_lines *g, int nb, int hh, int ww, int len, const float *t8c, float *rows)
{
    const size_t plane = (size_t)hh * ww * INCV3_BLK, rl = (size_t)len * nb * INCV3_BLK;
    const long n = (long)g->rows;
#pragma omp parallel for schedule(static)
    for (long row = 0; row < n; row++)
        for (int p = 0; p < len; p++) {
            const float *src = t8c + cg3_pixel(g, nb, hh, ww, (size_t)row, p);
            float *dst = rows + (size_t)row * rl + (size_t)p * nb * INCV3_BLK;
            for (int b = 0; b < nb; b++)
                memcpy(dst + (size_t)b * INCV3_BLK, src + (size_t)b * plane, INCV3_BLK * sizeof(float));
        }
}

/* The inverse of cg3_gather for a tensor of c real channels: overwrite (padding lanes +0) or accumulate
 * (padding lanes keep their values). Each pixel belongs to one line, so rows are independent. */
static void cg3_scatter(const cg3_lines *g, int nb, int c, int hh, int ww, int len, const float *rows, float *t8c,
                        int accumulate)
{
    const size_t plane = (size_t)hh * ww * INCV3_BLK, rl = (size_t)len * nb * INCV3_BLK;
    const long n = (long)g->rows;
#pragma omp parallel for schedule(static)
    for (long row = 0; row < n; row++)
        for (int p = 0; p < len; p++) {
            float *dst = t8c + cg3_pixel(g, nb, hh, ww, (size_t)row, p);
            const float *src = rows + (size_t)row * rl + (size_t)p * nb * INCV3_BLK;
            for (int b = 0; b < nb; b++) {
                const int lanes = c - b * INCV3_BLK < INCV3_BLK ? c - b * INCV3_BLK : INCV3_BLK;
                cg_put_pixel(dst + (size_t)b * plane, src + (size_t)b * INCV3_BLK, lanes, accumulate);
            }
        }
}

static float *cg3_scratch(const incv3_conv_shape *s, const char *who)
{
    return incv3_mem_must(ISA_NAME(conv_gemm_toeplitz_scratch_floats__)(s) * sizeof(float), 64, who);
}

/* Y = X T^T into y_rows (rows x e); x_rows: scratch of rows x d floats. */
static void cg3_forward_rows(const incv3_conv_shape *s, const cg3_lines *g, const float *x8c, const float *t,
                             float *x_rows, float *y_rows)
{
    cg3_gather(g, incv3_blocks8(s->c), s->h, s->w, g->l, x8c, x_rows);
    CONV_GEMM((int)g->rows, (int)g->e, (int)g->d, x_rows, (int)g->d, 0, t, (int)g->d, 1, y_rows, (int)g->e, 0);
}

void ISA_NAME(conv_fwd_f32_gemm_toeplitz__)(const incv3_conv_shape *s, const float *x8c, const float *t, float *y8c)
{
    const cg3_lines g = cg3_geometry(s);
    float *xr = cg3_scratch(s, "the scratch of conv_fwd_f32_gemm_toeplitz__" KERNEL_ISA_STR), *yr = xr + g.rows * g.d;
    cg3_forward_rows(s, &g, x8c, t, xr, yr);
    cg3_scatter(&g, incv3_blocks8(s->k), s->k, s->oh, s->ow, g.ol, yr, y8c, 0);
    free(xr);
}

void ISA_NAME(conv_fwd_stats_f32_gemm_toeplitz__)(const incv3_conv_shape *s, const float *x8c, const float *t,
                                                  float *y8c, double *sum, double *sumsq)
{
    const cg3_lines g = cg3_geometry(s);
    float *xr = cg3_scratch(s, "the scratch of conv_fwd_stats_f32_gemm_toeplitz__" KERNEL_ISA_STR),
          *yr = xr + g.rows * g.d;
    cg3_forward_rows(s, &g, x8c, t, xr, yr);
    /* Y's rows as rows x ol pixels of Kp channels: the statistics in pixel order. */
    cg_rows_stats(g.rows * g.ol, cg_kpad(s), s->k, yr, sum, sumsq);
    cg3_scatter(&g, incv3_blocks8(s->k), s->k, s->oh, s->ow, g.ol, yr, y8c, 0);
    free(xr);
}

void ISA_NAME(conv_bn_relu_fwd_infer_f32_gemm_toeplitz__)(const incv3_conv_shape *s, const float *x8c,
                                                          const float *t, float *y8c, const float *gamma,
                                                          const float *beta, const float *mean, const float *var,
                                                          float eps)
{
    const cg3_lines g = cg3_geometry(s);
    float *xr = cg3_scratch(s, "the scratch of conv_bn_relu_fwd_infer_f32_gemm_toeplitz__" KERNEL_ISA_STR),
          *yr = xr + g.rows * g.d;
    cg3_forward_rows(s, &g, x8c, t, xr, yr);
    cg_rows_bn_relu(g.rows * g.ol, cg_kpad(s), s->k, yr, gamma, beta, mean, var, eps);
    cg3_scatter(&g, incv3_blocks8(s->k), s->k, s->oh, s->ow, g.ol, yr, y8c, 0);
    free(xr);
}

void ISA_NAME(conv_bwd_data_f32_gemm_toeplitz__)(const incv3_conv_shape *s, const float *dy8c, const float *t,
                                                 float *dx8c, int accumulate)
{
    const cg3_lines g = cg3_geometry(s);
    float *dxr = cg3_scratch(s, "the scratch of conv_bwd_data_f32_gemm_toeplitz__" KERNEL_ISA_STR),
          *dyr = dxr + g.rows * g.d;
    cg3_gather(&g, incv3_blocks8(s->k), s->oh, s->ow, g.ol, dy8c, dyr);
    CONV_GEMM((int)g.rows, (int)g.d, (int)g.e, dyr, (int)g.e, 0, t, (int)g.d, 0, dxr, (int)g.d, 0);
    cg3_scatter(&g, incv3_blocks8(s->c), s->c, s->h, s->w, g.l, dxr, dx8c, accumulate);
    free(dxr);
}

void ISA_NAME(conv_bwd_weights_f32_gemm_toeplitz__)(const incv3_conv_shape *s, const float *x8c, const float *dy8c,
                                                    float *dw)
{
    const cg3_lines g = cg3_geometry(s);
    const int kp = cg_kpad(s), cp = incv3_blocks8(s->c) * INCV3_BLK;
    float *xr = cg3_scratch(s, "the scratch of conv_bwd_weights_f32_gemm_toeplitz__" KERNEL_ISA_STR);
    float *dyr = xr + g.rows * g.d, *dt = dyr + g.rows * g.e;
    cg3_gather(&g, incv3_blocks8(s->c), s->h, s->w, g.l, x8c, xr);
    cg3_gather(&g, incv3_blocks8(s->k), s->oh, s->ow, g.ol, dy8c, dyr);
    CONV_GEMM((int)g.e, (int)g.d, (int)g.rows, dyr, (int)g.e, 1, xr, (int)g.d, 0, dt, (int)g.d, 0);
    /* dw[k][c][tap] = the sum over x ascending of DT[x][k][x + tap - pad][c], where that position exists;
     * per (k, tap) all channels at once, along DT's rows. */
#pragma omp parallel
    {
        float *acc = incv3_mem_must((size_t)cp * sizeof(float), 64,
                                    "the scratch of conv_bwd_weights_f32_gemm_toeplitz__" KERNEL_ISA_STR);
#pragma omp for schedule(static)
        for (int k = 0; k < s->k; k++)
            for (int tap = 0; tap < g.r; tap++) {
                memset(acc, 0, (size_t)cp * sizeof(float));
                for (int x = 0; x < g.ol; x++) {
                    const int y = x + tap - g.pad;
                    if (y < 0 || y >= g.l)
                        continue;
                    const float *src = dt + ((size_t)x * kp + k) * g.d + (size_t)y * cp;
                    for (int c = 0; c < s->c; c++)
                        acc[c] += src[c];
                }
                for (int c = 0; c < s->c; c++)
                    dw[((size_t)k * s->c + c) * g.r + tap] = acc[c];
            }
        free(acc);
    }
    free(xr);
}

#endif
