/* Direct 2-D convolution (no bias), NCHW activations and OIHW weights.
 *
 * Every reduction accumulates float*float products in double: such a product is exact in double, so the
 * result does not depend on whether the compiler contracts into FMA, and the oracle stays well inside the
 * accuracy the float64 model comparison needs. The innermost loops are element-wise over one output row
 * (no reduction, no branch), so vectorizing them reassociates nothing and changes no bit of the result;
 * `omp simd` says so to gcc, whose -O2 cost model would otherwise leave loops of unknown length scalar.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "ref_kernels.h"

/* Scratch rows are per thread and sized by the shape, so they come from the heap; a reference kernel has
 * no error channel, and running out of memory for a few kilobytes leaves nothing sensible to do. */
static double *scratch_row(size_t count)
{
    return incv3_mem_must(count * sizeof(double), 0, "a scratch row of conv_ref");
}

/* Output columns j in [*lo, *hi) whose tap reads input column j*stride + off inside [0, w); computing the
 * range once keeps the padding test out of the innermost loop. */
static void valid_cols(int off, int stride, int w, int nout, int *lo, int *hi)
{
    int first = off >= 0 ? 0 : (-off + stride - 1) / stride;
    int last = w - 1 - off < 0 ? -1 : (w - 1 - off) / stride;
    if (last > nout - 1)
        last = nout - 1;
    *lo = first;
    *hi = last + 1 > first ? last + 1 : first;
}

void conv_fwd_f32_ref__scalar(const incv3_conv_shape *s, const float *x, const float *w, float *y)
{
    const int N = s->n, C = s->c, H = s->h, W = s->w, K = s->k, KH = s->kh, KW = s->kw;
    const int OH = s->oh, OW = s->ow, SH = s->stride_h, SW = s->stride_w;
    assert(OH >= 1 && OW >= 1);

#pragma omp parallel
    {
        double *acc = scratch_row((size_t)OW);
#pragma omp for schedule(static)
        for (long nk = 0; nk < (long)N * K; nk++) {
            const int n = (int)(nk / K), k = (int)(nk % K);
            float *yplane = y + (size_t)nk * OH * OW;
            for (int oh = 0; oh < OH; oh++) {
                memset(acc, 0, (size_t)OW * sizeof *acc);
                for (int c = 0; c < C; c++) {
                    for (int r = 0; r < KH; r++) {
                        const int ih = oh * SH - s->pad_top + r;
                        if (ih < 0 || ih >= H)
                            continue;
                        const float *xrow = x + (((size_t)n * C + c) * H + ih) * W;
                        const float *wrow = w + (((size_t)k * C + c) * KH + r) * KW;
                        for (int q = 0; q < KW; q++) {
                            const int off = q - s->pad_left;
                            int lo, hi;
                            valid_cols(off, SW, W, OW, &lo, &hi);
                            const double wv = wrow[q];
#pragma omp simd
                            for (int j = lo; j < hi; j++)
                                acc[j] += wv * xrow[j * SW + off];
                        }
                    }
                }
                float *yrow = yplane + (size_t)oh * OW;
                for (int j = 0; j < OW; j++)
                    yrow[j] = (float)acc[j];
            }
        }
        free(acc);
    }
}

/* Gather form: the thread owning dx[n][c] builds each input row from every (k, kernel row) that reads it,
 * so no two threads ever write the same element and the summation order is fixed. */
void conv_bwd_data_f32_ref__scalar(const incv3_conv_shape *s, const float *dy, const float *w, float *dx,
                                   int accumulate)
{
    const int N = s->n, C = s->c, H = s->h, W = s->w, K = s->k, KH = s->kh, KW = s->kw;
    const int OH = s->oh, OW = s->ow, SH = s->stride_h, SW = s->stride_w;

#pragma omp parallel
    {
        double *acc = scratch_row((size_t)W);
#pragma omp for schedule(static)
        for (long nc = 0; nc < (long)N * C; nc++) {
            const int n = (int)(nc / C), c = (int)(nc % C);
            float *dxplane = dx + (size_t)nc * H * W;
            for (int ih = 0; ih < H; ih++) {
                memset(acc, 0, (size_t)W * sizeof *acc);
                for (int k = 0; k < K; k++) {
                    for (int r = 0; r < KH; r++) {
                        /* Output row oh reads this input row through kernel row r iff oh*SH = ih + pad_top - r. */
                        const int t = ih + s->pad_top - r;
                        if (t < 0 || t % SH != 0 || t / SH >= OH)
                            continue;
                        const int oh = t / SH;
                        const float *dyrow = dy + (((size_t)n * K + k) * OH + oh) * OW;
                        const float *wrow = w + (((size_t)k * C + c) * KH + r) * KW;
                        for (int q = 0; q < KW; q++) {
                            const int off = q - s->pad_left;
                            int lo, hi;
                            valid_cols(off, SW, W, OW, &lo, &hi);
                            const double wv = wrow[q];
#pragma omp simd
                            for (int j = lo; j < hi; j++)
                                acc[j * SW + off] += wv * dyrow[j];
                        }
                    }
                }
                float *dxrow = dxplane + (size_t)ih * W;
                if (accumulate) {
                    for (int i = 0; i < W; i++)
                        dxrow[i] += (float)acc[i];
                } else {
                    for (int i = 0; i < W; i++)
                        dxrow[i] = (float)acc[i];
                }
            }
        }
        free(acc);
    }
}

/* The thread owning dw[k] keeps one double accumulator per (kernel column, output column) and sums those
 * element-wise over (n, oh), which vectorizes; each row of partials is then folded in column order. */
void conv_bwd_weights_f32_ref__scalar(const incv3_conv_shape *s, const float *x, const float *dy, float *dw)
{
    const int N = s->n, C = s->c, H = s->h, W = s->w, K = s->k, KH = s->kh, KW = s->kw;
    const int OH = s->oh, OW = s->ow, SH = s->stride_h, SW = s->stride_w;

#pragma omp parallel
    {
        double *acc = scratch_row((size_t)KW * OW);
#pragma omp for schedule(static)
        for (int k = 0; k < K; k++) {
            for (int c = 0; c < C; c++) {
                for (int r = 0; r < KH; r++) {
                    memset(acc, 0, (size_t)KW * OW * sizeof *acc);
                    for (int n = 0; n < N; n++) {
                        for (int oh = 0; oh < OH; oh++) {
                            const int ih = oh * SH - s->pad_top + r;
                            if (ih < 0 || ih >= H)
                                continue;
                            const float *xrow = x + (((size_t)n * C + c) * H + ih) * W;
                            const float *dyrow = dy + (((size_t)n * K + k) * OH + oh) * OW;
                            for (int q = 0; q < KW; q++) {
                                const int off = q - s->pad_left;
                                int lo, hi;
                                valid_cols(off, SW, W, OW, &lo, &hi);
                                double *a = acc + (size_t)q * OW;
#pragma omp simd
                                for (int j = lo; j < hi; j++)
                                    a[j] += (double)dyrow[j] * xrow[j * SW + off];
                            }
                        }
                    }
                    float *dwrow = dw + (((size_t)k * C + c) * KH + r) * KW;
                    for (int q = 0; q < KW; q++) {
                        const double *a = acc + (size_t)q * OW;
                        double sum = 0.0;
                        for (int j = 0; j < OW; j++)
                            sum += a[j];
                        dwrow[q] = (float)sum;
                    }
                }
            }
        }
        free(acc);
    }
}
