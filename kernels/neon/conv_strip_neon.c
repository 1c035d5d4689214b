#include "neon/conv_strip_neon.h"

#include <arm_neon.h>

/* GCC's pre-register-allocation scheduler hoists the x and weight loads of the unrolled strips ahead of
 * the FMAs that consume them, which with 24-28 live accumulators out of 32 registers makes the register
 * allocator spill inside the innermost loop (up to 85 stack accesses per tap in the 6 x 2-block strip,
 * GCC 12); without it the allocation fits, save one register pair stored and reloaded once per tap in
 * that strip (the out-of-order cores reorder the loads themselves). Clang ignores this pragma and does
 * spill in the 10-pixel strips; the build uses GCC. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-schedule-insns")
#endif

#define BLK CONV_STRIP_BLK
#define MAX_UR CONV_STRIP_MAX_UR

/* One input channel (lane L of the x vectors of half H) into every accumulator: the weight row of that
 * channel is 2 q registers per output block, each reused by the ur pixels. The lane must be an immediate,
 * hence a macro rather than a loop. few: channels past a->nci are skipped (they hold zeros). */
#define STRIP_LANE(H, L)                                                                                               \
    if (!few || 4 * (H) + (L) < nci) {                                                                                 \
        const float *wi = wq + (4 * (H) + (L)) * BLK;                                                                  \
        const float32x4_t w0 = vld1q_f32(wi), w1 = vld1q_f32(wi + 4);                                                  \
        _Pragma("GCC unroll 10") for (int p = 0; p < ur; p++)                                                          \
        {                                                                                                              \
            acc[p][0] = vfmaq_laneq_f32(acc[p][0], w0, xv[p], L);                                                      \
            acc[p][1] = vfmaq_laneq_f32(acc[p][1], w1, xv[p], L);                                                      \
        }                                                                                                              \
        if (nob > 1) {                                                                                                 \
            const float32x4_t w2 = vld1q_f32(wi + w_ob), w3 = vld1q_f32(wi + w_ob + 4);                                \
            _Pragma("GCC unroll 10") for (int p = 0; p < ur; p++)                                                      \
            {                                                                                                          \
                acc[p][2] = vfmaq_laneq_f32(acc[p][2], w2, xv[p], L);                                                  \
                acc[p][3] = vfmaq_laneq_f32(acc[p][3], w3, xv[p], L);                                                  \
            }                                                                                                          \
        }                                                                                                              \
    }

/* Channels 4H .. 4H+3 of every pixel: one q load per pixel, then the four lanes. */
#define STRIP_HALF(H)                                                                                                  \
    {                                                                                                                  \
        float32x4_t xv[MAX_UR];                                                                                        \
        _Pragma("GCC unroll 10") for (int p = 0; p < ur; p++) xv[p] = vld1q_f32(xq + p * xp + 4 * (H));                \
        STRIP_LANE(H, 0)                                                                                               \
        STRIP_LANE(H, 1)                                                                                               \
        STRIP_LANE(H, 2)                                                                                               \
        STRIP_LANE(H, 3)                                                                                               \
    }

/* Instantiated for each (ur, nob, x pixel stride, tap direction, few channels) so that the accumulators are
 * named registers and every x/w offset in the unrolled loops is an immediate displacement. xpb == 0: pixel
 * stride known at run time (convolution strides other than 1 and 2). Forward taps step x by +8, w by one
 * 8x8 tap and y by one pixel (constants, as in the AVX2 kernel: the 1x1 layers are dominated by this
 * loop's overhead); reversed taps (backward-data) step x by -8, w by a->w_tap and y by a->y_pix. */
static inline __attribute__((always_inline)) void strip_body(const conv_strip_args *a, const int ur,
                                                             const int nob, const int xpb, const int reversed,
                                                             const int few)
{
    /* few: the input has fewer than 8 channels (the 3-channel first layer); only those are multiplied, and
     * the second half of each pixel is not even loaded when nci <= 4. */
    const int nci = few ? a->nci : BLK;
    const ptrdiff_t xp = xpb ? xpb * BLK : a->x_pix;
    const ptrdiff_t x_tap = reversed ? -BLK : BLK, w_tap = reversed ? a->w_tap : BLK * BLK;
    const size_t yp = reversed ? a->y_pix : BLK;
    /* [pixel][block * 2 + half] */
    float32x4_t acc[MAX_UR][4];
    float *y = a->y;
    /* Each chunk sums into fresh accumulators and is added to y once at the end (as in the AVX2 kernel:
     * chunk sums meet pairwise-like, which cuts the rounding error of long reductions). */
#pragma GCC unroll 10
    for (int p = 0; p < ur; p++) {
        acc[p][0] = acc[p][1] = vdupq_n_f32(0.0f);
        if (nob > 1)
            acc[p][2] = acc[p][3] = vdupq_n_f32(0.0f);
    }
    const int nq = a->nq, nr = a->nr, ncb = a->ncb;
    const size_t w_ob = a->w_ob;
    const ptrdiff_t x_cb = a->x_cb, x_row = a->x_row, w_cb = a->w_cb, w_row = a->w_row;
    /* Pointers advance by increments rather than base + index * stride (the 1x1 layers' hot loops). */
    const float *xc = a->x, *wc = a->w;
    for (int cb = 0; cb < ncb; cb++, xc += x_cb, wc += w_cb) {
        const float *xr = xc, *wr = wc;
        for (int r = 0; r < nr; r++, xr += x_row, wr += w_row) {
            const float *xq = xr, *wq = wr;
            for (int q = 0; q < nq; q++, xq += x_tap, wq += w_tap) {
                STRIP_HALF(0)
                if (!few || nci > 4)
                    STRIP_HALF(1)
            }
        }
    }
#pragma GCC unroll 10
    for (int p = 0; p < ur; p++) {
        float *yp0 = y + p * yp, *yp1 = y + a->y_ob + p * yp;
        if (!a->init) {
            acc[p][0] = vaddq_f32(acc[p][0], vld1q_f32(yp0));
            acc[p][1] = vaddq_f32(acc[p][1], vld1q_f32(yp0 + 4));
            if (nob > 1) {
                acc[p][2] = vaddq_f32(acc[p][2], vld1q_f32(yp1));
                acc[p][3] = vaddq_f32(acc[p][3], vld1q_f32(yp1 + 4));
            }
        }
        vst1q_f32(yp0, acc[p][0]);
        vst1q_f32(yp0 + 4, acc[p][1]);
        if (nob > 1) {
            vst1q_f32(yp1, acc[p][2]);
            vst1q_f32(yp1 + 4, acc[p][3]);
        }
    }
}

/* XPB 0, 1, 2: forward taps with that pixel stride; 3: reversed taps, pixel stride 1; 4, 5, 6: forward
 * taps with pixel stride 0 (run-time), 1, 2 and fewer than 8 input channels. */
#define STRIP(UR, NOB, XPB)                                                                                            \
    static void strip_u##UR##_b##NOB##_x##XPB(const conv_strip_args *a)                                         \
    {                                                                                                                  \
        strip_body(a, UR, NOB, XPB == 3 ? 1 : XPB % 4, XPB == 3, XPB >= 4);                                           \
    }
#define STRIPS_B2(XPB)                                                                                                 \
    STRIP(1, 2, XPB)                                                                                                   \
    STRIP(2, 2, XPB)                                                                                                   \
    STRIP(3, 2, XPB)                                                                                                   \
    STRIP(4, 2, XPB)                                                                                                   \
    STRIP(5, 2, XPB)                                                                                                   \
    STRIP(6, 2, XPB)
#define STRIPS_B1(XPB)                                                                                                 \
    STRIP(1, 1, XPB)                                                                                                   \
    STRIP(2, 1, XPB)                                                                                                   \
    STRIP(3, 1, XPB)                                                                                                   \
    STRIP(4, 1, XPB)                                                                                                   \
    STRIP(5, 1, XPB)                                                                                                   \
    STRIP(6, 1, XPB)                                                                                                   \
    STRIP(7, 1, XPB)                                                                                                   \
    STRIP(8, 1, XPB)                                                                                                   \
    STRIP(9, 1, XPB)                                                                                                   \
    STRIP(10, 1, XPB)
#define TABLE_B1(XPB)                                                                                                  \
    {                                                                                                                  \
        strip_u1_b1_x##XPB, strip_u2_b1_x##XPB, strip_u3_b1_x##XPB, strip_u4_b1_x##XPB, strip_u5_b1_x##XPB,            \
            strip_u6_b1_x##XPB, strip_u7_b1_x##XPB, strip_u8_b1_x##XPB, strip_u9_b1_x##XPB, strip_u10_b1_x##XPB        \
    }
#define TABLE_B2(XPB)                                                                                                  \
    {                                                                                                                  \
        strip_u1_b2_x##XPB, strip_u2_b2_x##XPB, strip_u3_b2_x##XPB, strip_u4_b2_x##XPB, strip_u5_b2_x##XPB,            \
            strip_u6_b2_x##XPB                                                                                         \
    }

STRIPS_B1(0)
STRIPS_B1(1)
STRIPS_B1(2)
STRIPS_B1(3)
STRIPS_B1(4)
STRIPS_B1(5)
STRIPS_B1(6)
STRIPS_B2(0)
STRIPS_B2(1)
STRIPS_B2(2)
STRIPS_B2(3)
STRIPS_B2(4)
STRIPS_B2(5)
STRIPS_B2(6)

/* [variant: see STRIP][nob - 1][ur - 1] */
static const conv_strip_fn strip_table[7][2][MAX_UR] = {
    {TABLE_B1(0), TABLE_B2(0)}, {TABLE_B1(1), TABLE_B2(1)}, {TABLE_B1(2), TABLE_B2(2)}, {TABLE_B1(3), TABLE_B2(3)},
    {TABLE_B1(4), TABLE_B2(4)}, {TABLE_B1(5), TABLE_B2(5)}, {TABLE_B1(6), TABLE_B2(6)},
};

/* One pixel of 8 floats: zeros, or a copy of s. */
static inline void strip_pix_zero(float *d)
{
    const float32x4_t z = vdupq_n_f32(0.0f);
    vst1q_f32(d, z);
    vst1q_f32(d + 4, z);
}

static inline void strip_pix_copy(float *d, const float *s)
{
    vst1q_f32(d, vld1q_f32(s));
    vst1q_f32(d + 4, vld1q_f32(s + 4));
}

#define KERNEL_ISA neon

#include "common/conv_strip_driver.h"
