/* Max and average pooling on NCHW8c tensors, NEON; the counterpart of avx2/pool_blocked_avx2.c.
 *
 * The 8 channels of a channel block at one pixel are two quads, so a window reduces vector-wise with no
 * shuffles. Windows are clipped to the input (padded cells never win a max and add nothing to an average).
 *
 * Max pooling keeps the reference's rule per lane: the first maximum of the window in row-major order, with
 * the first NaN winning (a NaN is never hidden). A lane takes a new cell when the cell is greater than the
 * running best, or is a NaN while the best is not; ties keep the earlier cell. (vmaxq_f32 would return a
 * NaN other than the window's first one and lose the tie rule, so the select is explicit.) The backward
 * recomputes that index per lane and adds dy to it lane by lane.
 *
 * Forward passes parallelise over (plane, output row). Backward passes scatter from overlapping windows, so
 * each (image, channel block) plane is owned by one thread and adds into dx in the reference's order
 * (output rows, output columns, window rows, window columns): results are bitwise the same for any thread
 * count, and identical to the reference kernels'.
 */
#include <arm_neon.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "neon/neon_layers.h"

#define BLK 8

/* Lane masks (lanes 0-3, 4-7) of channel block cb: all ones for the lanes holding real channels. */
static inline void lane_mask(int c, int cb, uint32x4_t *lo, uint32x4_t *hi)
{
    static const int32_t idx[BLK] = {0, 1, 2, 3, 4, 5, 6, 7};
    const int nl = c - cb * BLK;
    const int32x4_t n = vdupq_n_s32(nl < BLK ? nl : BLK);
    *lo = vcgtq_s32(n, vld1q_s32(idx));
    *hi = vcgtq_s32(n, vld1q_s32(idx + 4));
}

static inline float32x4_t and_mask(float32x4_t v, uint32x4_t m)
{
    return vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(v), m));
}

/* The window of output (oh, ow) clipped to the input: rows [*r0, *r1), columns [*c0, *c1). */
static inline void window(const incv3_pool_shape *s, int oh, int ow, int *r0, int *r1, int *c0, int *c1)
{
    const int top = oh * s->stride_h - s->pad_top, left = ow * s->stride_w - s->pad_left;
    *r0 = top < 0 ? 0 : top;
    *r1 = top + s->kh > s->h ? s->h : top + s->kh;
    *c0 = left < 0 ? 0 : left;
    *c1 = left + s->kw > s->w ? s->w : left + s->kw;
}

/* True per lane where v should replace best: !(v <= best) (v greater, or either a NaN) while best is not a
 * NaN. */
static inline uint32x4_t takes(float32x4_t v, float32x4_t best)
{
    return vbicq_u32(vceqq_f32(best, best), vcleq_f32(v, best));
}

/* Per-lane first maximum of a window of plane xp (row stride W pixels), lanes 0-3 in *lo, 4-7 in *hi. */
static inline void window_max(const float *xp, int W, int r0, int r1, int c0, int c1, float32x4_t *lo,
                              float32x4_t *hi)
{
    const float *first = xp + ((size_t)r0 * W + c0) * BLK;
    float32x4_t b0 = vld1q_f32(first), b1 = vld1q_f32(first + 4);
    for (int r = r0; r < r1; r++) {
        const float *row = xp + (size_t)r * W * BLK;
        for (int c = (r == r0 ? c0 + 1 : c0); c < c1; c++) {
            const float32x4_t v0 = vld1q_f32(row + (size_t)c * BLK), v1 = vld1q_f32(row + (size_t)c * BLK + 4);
            b0 = vbslq_f32(takes(v0, b0), v0, b0);
            b1 = vbslq_f32(takes(v1, b1), v1, b1);
        }
    }
    *lo = b0;
    *hi = b1;
}

void maxpool_fwd_f32_blocked__neon(const incv3_pool_shape *s, const float *x, float *y)
{
    const int CB = (s->c + BLK - 1) / BLK, OH = s->oh, OW = s->ow, W = s->w;
    const size_t in_plane = (size_t)s->h * s->w * BLK, out_plane = (size_t)OH * OW * BLK;
    const long planes = (long)s->n * CB;

#pragma omp parallel for collapse(2) schedule(static)
    for (long p = 0; p < planes; p++) {
        for (int oh = 0; oh < OH; oh++) {
            const float *xp = x + (size_t)p * in_plane;
            float *yp = y + (size_t)p * out_plane + (size_t)oh * OW * BLK;
            uint32x4_t mlo, mhi;
            lane_mask(s->c, (int)(p % CB), &mlo, &mhi);
            for (int ow = 0; ow < OW; ow++) {
                int r0, r1, c0, c1;
                float32x4_t lo, hi;
                window(s, oh, ow, &r0, &r1, &c0, &c1);
                window_max(xp, W, r0, r1, c0, c1, &lo, &hi);
                vst1q_f32(yp + (size_t)ow * BLK, and_mask(lo, mlo));
                vst1q_f32(yp + (size_t)ow * BLK + 4, and_mask(hi, mhi));
            }
        }
    }
}

void maxpool_bwd_f32_blocked__neon(const incv3_pool_shape *s, const float *x, const float *dy, float *dx,
                                   int accumulate)
{
    const int CB = (s->c + BLK - 1) / BLK, OH = s->oh, OW = s->ow, W = s->w;
    const size_t in_plane = (size_t)s->h * s->w * BLK, out_plane = (size_t)OH * OW * BLK;
    const long planes = (long)s->n * CB;

#pragma omp parallel for schedule(static)
    for (long p = 0; p < planes; p++) {
        const float *xp = x + (size_t)p * in_plane;
        const float *dyp = dy + (size_t)p * out_plane;
        float *dxp = dx + (size_t)p * in_plane;
        const int cb = (int)(p % CB);
        const int nl = s->c - cb * BLK < BLK ? s->c - cb * BLK : BLK;
        if (!accumulate)
            memset(dxp, 0, in_plane * sizeof *dxp);
        for (int oh = 0; oh < OH; oh++) {
            for (int ow = 0; ow < OW; ow++) {
                int r0, r1, c0, c1;
                window(s, oh, ow, &r0, &r1, &c0, &c1);
                /* Running best and, per lane, the pixel index where it was found. */
                const float *first = xp + ((size_t)r0 * W + c0) * BLK;
                float32x4_t b0 = vld1q_f32(first), b1 = vld1q_f32(first + 4);
                uint32x4_t i0 = vdupq_n_u32((uint32_t)(r0 * W + c0)), i1 = i0;
                for (int r = r0; r < r1; r++) {
                    const float *row = xp + (size_t)r * W * BLK;
                    for (int c = (r == r0 ? c0 + 1 : c0); c < c1; c++) {
                        const float32x4_t v0 = vld1q_f32(row + (size_t)c * BLK);
                        const float32x4_t v1 = vld1q_f32(row + (size_t)c * BLK + 4);
                        const uint32x4_t t0 = takes(v0, b0), t1 = takes(v1, b1);
                        const uint32x4_t here = vdupq_n_u32((uint32_t)(r * W + c));
                        b0 = vbslq_f32(t0, v0, b0);
                        b1 = vbslq_f32(t1, v1, b1);
                        i0 = vbslq_u32(t0, here, i0);
                        i1 = vbslq_u32(t1, here, i1);
                    }
                }
                uint32_t idx[BLK];
                vst1q_u32(idx, i0);
                vst1q_u32(idx + 4, i1);
                const float *g = dyp + ((size_t)oh * OW + ow) * BLK;
                for (int l = 0; l < nl; l++)
                    dxp[(size_t)idx[l] * BLK + l] += g[l];
            }
        }
    }
}

/* (float)(sum * inv_area) of four double pairs, as one quad each of lanes 0-3 and 4-7. */
static inline void scale_round(float64x2_t s0, float64x2_t s1, float64x2_t s2, float64x2_t s3, float64x2_t inv,
                               float32x4_t *lo, float32x4_t *hi)
{
    *lo = vcvt_high_f32_f64(vcvt_f32_f64(vmulq_f64(s0, inv)), vmulq_f64(s1, inv));
    *hi = vcvt_high_f32_f64(vcvt_f32_f64(vmulq_f64(s2, inv)), vmulq_f64(s3, inv));
}

void avgpool_fwd_f32_blocked__neon(const incv3_pool_shape *s, const float *x, float *y)
{
    const int CB = (s->c + BLK - 1) / BLK, OH = s->oh, OW = s->ow, W = s->w;
    const size_t in_plane = (size_t)s->h * s->w * BLK, out_plane = (size_t)OH * OW * BLK;
    const long planes = (long)s->n * CB;
    const float64x2_t inv_area = vdupq_n_f64(1.0 / ((double)s->kh * s->kw));

#pragma omp parallel for collapse(2) schedule(static)
    for (long p = 0; p < planes; p++) {
        for (int oh = 0; oh < OH; oh++) {
            const float *xp = x + (size_t)p * in_plane;
            float *yp = y + (size_t)p * out_plane + (size_t)oh * OW * BLK;
            uint32x4_t mlo, mhi;
            lane_mask(s->c, (int)(p % CB), &mlo, &mhi);
            for (int ow = 0; ow < OW; ow++) {
                int r0, r1, c0, c1;
                window(s, oh, ow, &r0, &r1, &c0, &c1);
                /* Summed in double in the reference's order (windows reach 8x8 = 64 cells). */
                float64x2_t s0 = vdupq_n_f64(0.0), s1 = s0, s2 = s0, s3 = s0;
                for (int r = r0; r < r1; r++) {
                    const float *row = xp + (size_t)r * W * BLK;
                    for (int c = c0; c < c1; c++) {
                        const float32x4_t v0 = vld1q_f32(row + (size_t)c * BLK);
                        const float32x4_t v1 = vld1q_f32(row + (size_t)c * BLK + 4);
                        s0 = vaddq_f64(s0, vcvt_f64_f32(vget_low_f32(v0)));
                        s1 = vaddq_f64(s1, vcvt_high_f64_f32(v0));
                        s2 = vaddq_f64(s2, vcvt_f64_f32(vget_low_f32(v1)));
                        s3 = vaddq_f64(s3, vcvt_high_f64_f32(v1));
                    }
                }
                float32x4_t lo, hi;
                scale_round(s0, s1, s2, s3, inv_area, &lo, &hi);
                vst1q_f32(yp + (size_t)ow * BLK, and_mask(lo, mlo));
                vst1q_f32(yp + (size_t)ow * BLK + 4, and_mask(hi, mhi));
            }
        }
    }
}

void avgpool_bwd_f32_blocked__neon(const incv3_pool_shape *s, const float *dy, float *dx, int accumulate)
{
    const int CB = (s->c + BLK - 1) / BLK, OH = s->oh, OW = s->ow, W = s->w;
    const size_t in_plane = (size_t)s->h * s->w * BLK, out_plane = (size_t)OH * OW * BLK;
    const long planes = (long)s->n * CB;
    const float64x2_t inv_area = vdupq_n_f64(1.0 / ((double)s->kh * s->kw));

#pragma omp parallel for schedule(static)
    for (long p = 0; p < planes; p++) {
        const float *dyp = dy + (size_t)p * out_plane;
        float *dxp = dx + (size_t)p * in_plane;
        uint32x4_t mlo, mhi;
        lane_mask(s->c, (int)(p % CB), &mlo, &mhi);
        if (!accumulate)
            memset(dxp, 0, in_plane * sizeof *dxp);
        for (int oh = 0; oh < OH; oh++) {
            for (int ow = 0; ow < OW; ow++) {
                int r0, r1, c0, c1;
                window(s, oh, ow, &r0, &r1, &c0, &c1);
                /* g = (float)(dy * inv_area) rounded once from double, as the reference. */
                const float *d = dyp + ((size_t)oh * OW + ow) * BLK;
                const float32x4_t d0 = vld1q_f32(d), d1 = vld1q_f32(d + 4);
                float32x4_t g0, g1;
                scale_round(vcvt_f64_f32(vget_low_f32(d0)), vcvt_high_f64_f32(d0), vcvt_f64_f32(vget_low_f32(d1)),
                            vcvt_high_f64_f32(d1), inv_area, &g0, &g1);
                g0 = and_mask(g0, mlo);
                g1 = and_mask(g1, mhi);
                for (int r = r0; r < r1; r++) {
                    float *row = dxp + (size_t)r * W * BLK;
                    for (int c = c0; c < c1; c++) {
                        float *q = row + (size_t)c * BLK;
                        vst1q_f32(q, vaddq_f32(vld1q_f32(q), g0));
                        vst1q_f32(q + 4, vaddq_f32(vld1q_f32(q + 4), g1));
                    }
                }
            }
        }
    }
}
