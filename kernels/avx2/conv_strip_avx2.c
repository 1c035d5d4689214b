#include "conv_strip_avx2.h"

#include <immintrin.h>

#define BLK CONV_STRIP_BLK
#define MAX_UR CONV_STRIP_MAX_UR

/* Instantiated for each (ur, nob, x pixel stride, tap direction) so that the accumulators are named
 * registers and every x/w offset in the unrolled loops is an immediate displacement. xpb == 0: pixel stride
 * known at run time (convolution strides other than 1 and 2, none in Inception-V3). Forward taps step x by
 * +8, w by one 8x8 tap and y by one pixel (constants: the 1x1 layers, with one tap, lose 6-8% when these
 * are run-time values); reversed taps (backward-data) step x by -8, w by a->w_tap and y by a->y_pix. */
static inline __attribute__((always_inline)) void strip_body(const conv_strip_args *a, const int ur, const int nob,
                                                             const int xpb, const int reversed, const int few)
{
    /* few: the input has fewer than 8 channels (the 3-channel first layer); loop over those alone instead
     * of multiplying the zero padding channels (5 of 8 broadcasts wasted with RGB). */
    const int nci = few ? a->nci : BLK;
    const ptrdiff_t xp = xpb ? xpb * BLK : a->x_pix;
    const ptrdiff_t x_tap = reversed ? -BLK : BLK, w_tap = reversed ? a->w_tap : BLK * BLK;
    const size_t yp = reversed ? a->y_pix : BLK;
    __m256 acc[MAX_UR][2];
    float *y = a->y;
    /* Every chunk sums into fresh accumulators and is added to y once at the end, rather than continuing
     * from y: the chunk sums then meet pairwise-like, which cuts the float rounding of long reductions
     * (thousands of terms) several times at no cost, and fewer rounding errors upstream means fewer max
     * pooling routes flipped by them downstream. */
#pragma GCC unroll 12
    for (int p = 0; p < ur; p++) {
        acc[p][0] = _mm256_setzero_ps();
        acc[p][1] = _mm256_setzero_ps();
    }
    const int nq = a->nq, nr = a->nr, ncb = a->ncb;
    const size_t w_ob = a->w_ob;
    const ptrdiff_t x_cb = a->x_cb, x_row = a->x_row, w_cb = a->w_cb, w_row = a->w_row;
    /* Pointers advance by increments: with one tap (1x1 layers) these loops are the hot ones, and
     * recomputing base + index * stride there cost 6-8%. */
    const float *xc = a->x, *wc = a->w;
    for (int cb = 0; cb < ncb; cb++, xc += x_cb, wc += w_cb) {
        const float *xr = xc, *wr = wc;
        for (int r = 0; r < nr; r++, xr += x_row, wr += w_row) {
            const float *xq = xr, *wq = wr;
            for (int q = 0; q < nq; q++, xq += x_tap, wq += w_tap) {
#pragma GCC unroll 8
                for (int i = 0; i < nci; i++) {
                    const __m256 w0 = _mm256_loadu_ps(wq + i * BLK);
                    const __m256 w1 = nob > 1 ? _mm256_loadu_ps(wq + w_ob + i * BLK) : w0;
#pragma GCC unroll 12
                    for (int p = 0; p < ur; p++) {
                        const __m256 xb = _mm256_broadcast_ss(xq + p * xp + i);
                        acc[p][0] = _mm256_fmadd_ps(xb, w0, acc[p][0]);
                        if (nob > 1)
                            acc[p][1] = _mm256_fmadd_ps(xb, w1, acc[p][1]);
                    }
                }
            }
        }
    }
#pragma GCC unroll 12
    for (int p = 0; p < ur; p++) {
        if (!a->init) {
            acc[p][0] = _mm256_add_ps(acc[p][0], _mm256_loadu_ps(y + p * yp));
            if (nob > 1)
                acc[p][1] = _mm256_add_ps(acc[p][1], _mm256_loadu_ps(y + a->y_ob + p * yp));
        }
        _mm256_storeu_ps(y + p * yp, acc[p][0]);
        if (nob > 1)
            _mm256_storeu_ps(y + a->y_ob + p * yp, acc[p][1]);
    }
}

/* XPB 0, 1, 2: forward taps with that pixel stride; 3: reversed taps, pixel stride 1; 4, 5, 6: forward
 * taps with pixel stride 0 (run-time), 1, 2 and fewer than 8 input channels. */
#define STRIP(UR, NOB, XPB)                                                                                            \
    static void strip_u##UR##_b##NOB##_x##XPB(const conv_strip_args *a)                                              \
    {                                                                                                                  \
        strip_body(a, UR, NOB, XPB == 3 ? 1 : XPB % 4, XPB == 3, XPB >= 4);                                         \
    }
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
    STRIP(10, 1, XPB)                                                                                                  \
    STRIP(11, 1, XPB)                                                                                                  \
    STRIP(12, 1, XPB)
#define STRIPS_B2(XPB)                                                                                                 \
    STRIP(1, 2, XPB)                                                                                                   \
    STRIP(2, 2, XPB)                                                                                                   \
    STRIP(3, 2, XPB)                                                                                                   \
    STRIP(4, 2, XPB)                                                                                                   \
    STRIP(5, 2, XPB)                                                                                                   \
    STRIP(6, 2, XPB)
#define TABLE_B1(XPB)                                                                                                  \
    {                                                                                                                  \
        strip_u1_b1_x##XPB, strip_u2_b1_x##XPB, strip_u3_b1_x##XPB, strip_u4_b1_x##XPB, strip_u5_b1_x##XPB,            \
            strip_u6_b1_x##XPB, strip_u7_b1_x##XPB, strip_u8_b1_x##XPB, strip_u9_b1_x##XPB, strip_u10_b1_x##XPB,       \
            strip_u11_b1_x##XPB, strip_u12_b1_x##XPB                                                                   \
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
    _mm256_storeu_ps(d, _mm256_setzero_ps());
}

static inline void strip_pix_copy(float *d, const float *s)
{
    _mm256_storeu_ps(d, _mm256_loadu_ps(s));
}

#define KERNEL_ISA avx2

#include "common/conv_strip_driver.h"
