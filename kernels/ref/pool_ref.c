/* Max and average pooling over each (n, c) plane of an NCHW tensor.
 *
 * Each thread owns whole planes: the backward passes scatter into dx from overlapping windows, and keeping
 * a plane on one thread fixes the order of those additions, so results do not depend on the thread count.
 * incv3_pool_shape_finish() guarantees that every window holds at least one real input cell.
 */
#include <math.h>
#include <string.h>

#include "ref_kernels.h"

/* The window of output (oh, ow) clipped to the input: rows [*r0, *r1), columns [*c0, *c1). */
static void window(const incv3_pool_shape *s, int oh, int ow, int *r0, int *r1, int *c0, int *c1)
{
    const int top = oh * s->stride_h - s->pad_top, left = ow * s->stride_w - s->pad_left;
    *r0 = top < 0 ? 0 : top;
    *r1 = top + s->kh > s->h ? s->h : top + s->kh;
    *c0 = left < 0 ? 0 : left;
    *c1 = left + s->kw > s->w ? s->w : left + s->kw;
}

/* Index in the plane of the window's first maximum in row-major order. Padded cells are -infinity, so they
 * never win over a real cell and need not be visited; starting from the first real cell also makes an
 * all -infinity window route to that cell. The first NaN wins, as in PyTorch, so a NaN is not hidden. */
static size_t window_argmax(const incv3_pool_shape *s, const float *plane, int oh, int ow)
{
    int r0, r1, c0, c1;
    window(s, oh, ow, &r0, &r1, &c0, &c1);
    size_t best_i = (size_t)r0 * s->w + c0;
    float best = plane[best_i];
    if (isnan(best))
        return best_i;
    for (int r = r0; r < r1; r++) {
        for (int c = c0; c < c1; c++) {
            const size_t i = (size_t)r * s->w + c;
            const float v = plane[i];
            if (isnan(v))
                return i;
            if (v > best) {
                best = v;
                best_i = i;
            }
        }
    }
    return best_i;
}

void maxpool_fwd_f32_ref__scalar(const incv3_pool_shape *s, const float *x, float *y)
{
    const size_t in_plane = (size_t)s->h * s->w, out_plane = (size_t)s->oh * s->ow;

#pragma omp parallel for schedule(static)
    for (long p = 0; p < (long)s->n * s->c; p++) {
        const float *xp = x + (size_t)p * in_plane;
        float *yp = y + (size_t)p * out_plane;
        for (int oh = 0; oh < s->oh; oh++)
            for (int ow = 0; ow < s->ow; ow++)
                yp[(size_t)oh * s->ow + ow] = xp[window_argmax(s, xp, oh, ow)];
    }
}

void maxpool_bwd_f32_ref__scalar(const incv3_pool_shape *s, const float *x, const float *dy, float *dx,
                                 int accumulate)
{
    const size_t in_plane = (size_t)s->h * s->w, out_plane = (size_t)s->oh * s->ow;

#pragma omp parallel for schedule(static)
    for (long p = 0; p < (long)s->n * s->c; p++) {
        const float *xp = x + (size_t)p * in_plane;
        const float *dyp = dy + (size_t)p * out_plane;
        float *dxp = dx + (size_t)p * in_plane;
        if (!accumulate)
            memset(dxp, 0, in_plane * sizeof *dxp);
        for (int oh = 0; oh < s->oh; oh++)
            for (int ow = 0; ow < s->ow; ow++)
                dxp[window_argmax(s, xp, oh, ow)] += dyp[(size_t)oh * s->ow + ow];
    }
}

/* The divisor is the full window, padding included (count_include_pad=True); since the output size is
 * floored, every window lies inside the padded input and that is always kh*kw. */
void avgpool_fwd_f32_ref__scalar(const incv3_pool_shape *s, const float *x, float *y)
{
    const size_t in_plane = (size_t)s->h * s->w, out_plane = (size_t)s->oh * s->ow;
    const double inv_area = 1.0 / ((double)s->kh * s->kw);

#pragma omp parallel for schedule(static)
    for (long p = 0; p < (long)s->n * s->c; p++) {
        const float *xp = x + (size_t)p * in_plane;
        float *yp = y + (size_t)p * out_plane;
        for (int oh = 0; oh < s->oh; oh++) {
            for (int ow = 0; ow < s->ow; ow++) {
                int r0, r1, c0, c1;
                window(s, oh, ow, &r0, &r1, &c0, &c1);
                double sum = 0.0;
                for (int r = r0; r < r1; r++)
                    for (int c = c0; c < c1; c++)
                        sum += xp[(size_t)r * s->w + c];
                yp[(size_t)oh * s->ow + ow] = (float)(sum * inv_area);
            }
        }
    }
}

void avgpool_bwd_f32_ref__scalar(const incv3_pool_shape *s, const float *dy, float *dx, int accumulate)
{
    const size_t in_plane = (size_t)s->h * s->w, out_plane = (size_t)s->oh * s->ow;
    const double inv_area = 1.0 / ((double)s->kh * s->kw);

#pragma omp parallel for schedule(static)
    for (long p = 0; p < (long)s->n * s->c; p++) {
        const float *dyp = dy + (size_t)p * out_plane;
        float *dxp = dx + (size_t)p * in_plane;
        if (!accumulate)
            memset(dxp, 0, in_plane * sizeof *dxp);
        for (int oh = 0; oh < s->oh; oh++) {
            for (int ow = 0; ow < s->ow; ow++) {
                int r0, r1, c0, c1;
                window(s, oh, ow, &r0, &r1, &c0, &c1);
                const float g = (float)(dyp[(size_t)oh * s->ow + ow] * inv_area);
                for (int r = r0; r < r1; r++)
                    for (int c = c0; c < c1; c++)
                        dxp[(size_t)r * s->w + c] += g;
            }
        }
    }
}
