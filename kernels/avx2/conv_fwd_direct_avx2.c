/* Blocked direct convolution forward, AVX2+FMA, after oneDNN's jit_avx2_conv_fwd_kernel_f32.
 *
 * Work split: one OpenMP iteration is (image, pair of 8-channel output blocks, output row); every output
 * element belongs to exactly one iteration and is summed in an order fixed by the shape alone, so results
 * are bitwise the same for any thread count.
 *
 * Within a row, output columns whose taps all land inside the input ("interior") run the register-blocked
 * strip kernel: ur output pixels x up to 2 output blocks live in ymm accumulators, and each input channel
 * is broadcast once and multiplied into both blocks, so one weight load feeds ur FMAs. Taps that fall into
 * vertical padding are removed by clipping the kernel-row range of the whole row (no per-tap test).
 * Columns whose taps reach into horizontal padding run the same strip kernel on a small per-thread copy of
 * their input columns with the padding materialized as zeros, so the strip kernel carries no branch in its
 * inner loops and border pixels still run at strip speed (a per-pixel path with clipped tap ranges was
 * load- and latency-bound and cost 15% on the 1x7 layers, whose 17-wide rows have 6 border pixels).
 *
 * Input-channel blocks are processed in chunks sized so that the weights of a chunk stay in L1 while the
 * strips of the row sweep over it; between chunks the partial sums go through y.
 */
#include <immintrin.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "avx2_kernels.h"

#define BLK 8
#define MAX_UR 12

/* Bytes of weights (for both output blocks) that one input-channel chunk may occupy; about half of a
 * 32 KiB L1D, leaving room for the input rows and the output strip. */
#ifndef CONV_AVX2_W_CHUNK_BYTES
#define CONV_AVX2_W_CHUNK_BYTES (16 * 1024)
#endif

typedef struct strip_args {
    const float *x; /* input at (first chunk block, first valid kernel row, first pixel's leftmost tap) */
    const float *w; /* weights at (output block, first chunk block, first valid kernel row, tap 0) */
    float *y;       /* output at (output block, row, first pixel) */
    int ncb;        /* input-channel blocks in this chunk */
    int nr;         /* valid kernel rows */
    int kw;
    int sw;       /* stride in columns, used only by the generic-stride instances */
    size_t x_cb;  /* floats between input-channel blocks of x */
    size_t x_row; /* floats between input rows */
    size_t w_cb;  /* floats between input-channel blocks of w */
    size_t w_ob;  /* floats between output blocks of w */
    size_t y_ob;  /* floats between output blocks of y */
    int init;     /* 1: start from zero (first chunk), 0: add to y */
} strip_args;

typedef void (*strip_fn)(const strip_args *a);

/* The body is instantiated for each (ur, nob, stride) so that the accumulator array is a set of named
 * registers and every x/w offset in the unrolled loops is an immediate displacement. sw_c == 0 means the
 * stride is only known at run time (strides other than 1 and 2, none in Inception-V3). */
static inline __attribute__((always_inline)) void strip_body(const strip_args *a, const int ur, const int nob,
                                                             const int sw_c)
{
    const int sw8 = (sw_c ? sw_c : a->sw) * BLK;
    __m256 acc[MAX_UR][2];
    float *y = a->y;
    if (a->init) {
#pragma GCC unroll 12
        for (int p = 0; p < ur; p++) {
            acc[p][0] = _mm256_setzero_ps();
            acc[p][1] = _mm256_setzero_ps();
        }
    } else {
#pragma GCC unroll 12
        for (int p = 0; p < ur; p++) {
            acc[p][0] = _mm256_loadu_ps(y + p * BLK);
            acc[p][1] = nob > 1 ? _mm256_loadu_ps(y + a->y_ob + p * BLK) : _mm256_setzero_ps();
        }
    }
    const int kw = a->kw, nr = a->nr, ncb = a->ncb;
    const size_t w_ob = a->w_ob;
    for (int cb = 0; cb < ncb; cb++) {
        const float *xc = a->x + (size_t)cb * a->x_cb;
        const float *wc = a->w + (size_t)cb * a->w_cb;
        for (int r = 0; r < nr; r++) {
            const float *xq = xc + (size_t)r * a->x_row;
            const float *wq = wc + (size_t)r * kw * BLK * BLK;
            for (int q = 0; q < kw; q++, xq += BLK, wq += BLK * BLK) {
#pragma GCC unroll 8
                for (int i = 0; i < BLK; i++) {
                    const __m256 w0 = _mm256_loadu_ps(wq + i * BLK);
                    const __m256 w1 = nob > 1 ? _mm256_loadu_ps(wq + w_ob + i * BLK) : w0;
#pragma GCC unroll 12
                    for (int p = 0; p < ur; p++) {
                        const __m256 xb = _mm256_broadcast_ss(xq + p * sw8 + i);
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
        _mm256_storeu_ps(y + p * BLK, acc[p][0]);
        if (nob > 1)
            _mm256_storeu_ps(y + a->y_ob + p * BLK, acc[p][1]);
    }
}

#define STRIP_INSTANCE(UR, NOB, SW)                                                                                    \
    static void strip_u##UR##_b##NOB##_s##SW(const strip_args *a)                                                      \
    {                                                                                                                  \
        strip_body(a, UR, NOB, SW);                                                                                    \
    }
#define STRIP_INSTANCES_UR(NOB, SW)                                                                                    \
    STRIP_INSTANCE(1, NOB, SW)                                                                                         \
    STRIP_INSTANCE(2, NOB, SW)                                                                                         \
    STRIP_INSTANCE(3, NOB, SW)                                                                                         \
    STRIP_INSTANCE(4, NOB, SW)                                                                                         \
    STRIP_INSTANCE(5, NOB, SW)                                                                                         \
    STRIP_INSTANCE(6, NOB, SW)                                                                                         \
    STRIP_INSTANCE(7, NOB, SW)                                                                                         \
    STRIP_INSTANCE(8, NOB, SW)                                                                                         \
    STRIP_INSTANCE(9, NOB, SW)                                                                                         \
    STRIP_INSTANCE(10, NOB, SW)                                                                                        \
    STRIP_INSTANCE(11, NOB, SW)                                                                                        \
    STRIP_INSTANCE(12, NOB, SW)
#define STRIP_TABLE_UR(NOB, SW)                                                                                        \
    {                                                                                                                  \
        strip_u1_b##NOB##_s##SW, strip_u2_b##NOB##_s##SW, strip_u3_b##NOB##_s##SW, strip_u4_b##NOB##_s##SW,            \
            strip_u5_b##NOB##_s##SW, strip_u6_b##NOB##_s##SW, strip_u7_b##NOB##_s##SW, strip_u8_b##NOB##_s##SW,        \
            strip_u9_b##NOB##_s##SW, strip_u10_b##NOB##_s##SW, strip_u11_b##NOB##_s##SW, strip_u12_b##NOB##_s##SW      \
    }

/* Two output blocks use at most 6 pixels (12 accumulators + 2 weights + 1 broadcast = 15 ymm); one block
 * allows 12 pixels. Larger-ur entries of the 2-block table are never called but keep the table square. */
STRIP_INSTANCES_UR(1, 0)
STRIP_INSTANCES_UR(1, 1)
STRIP_INSTANCES_UR(1, 2)
STRIP_INSTANCE(1, 2, 0)
STRIP_INSTANCE(2, 2, 0)
STRIP_INSTANCE(3, 2, 0)
STRIP_INSTANCE(4, 2, 0)
STRIP_INSTANCE(5, 2, 0)
STRIP_INSTANCE(6, 2, 0)
STRIP_INSTANCE(1, 2, 1)
STRIP_INSTANCE(2, 2, 1)
STRIP_INSTANCE(3, 2, 1)
STRIP_INSTANCE(4, 2, 1)
STRIP_INSTANCE(5, 2, 1)
STRIP_INSTANCE(6, 2, 1)
STRIP_INSTANCE(1, 2, 2)
STRIP_INSTANCE(2, 2, 2)
STRIP_INSTANCE(3, 2, 2)
STRIP_INSTANCE(4, 2, 2)
STRIP_INSTANCE(5, 2, 2)
STRIP_INSTANCE(6, 2, 2)

#define UR_B2 6
#define UR_B1 12

/* [stride class: 0 generic, 1, 2][nob - 1][ur - 1] */
static const strip_fn strip_table[3][2][MAX_UR] = {
    {STRIP_TABLE_UR(1, 0),
     {strip_u1_b2_s0, strip_u2_b2_s0, strip_u3_b2_s0, strip_u4_b2_s0, strip_u5_b2_s0, strip_u6_b2_s0}},
    {STRIP_TABLE_UR(1, 1),
     {strip_u1_b2_s1, strip_u2_b2_s1, strip_u3_b2_s1, strip_u4_b2_s1, strip_u5_b2_s1, strip_u6_b2_s1}},
    {STRIP_TABLE_UR(1, 2),
     {strip_u1_b2_s2, strip_u2_b2_s2, strip_u3_b2_s2, strip_u4_b2_s2, strip_u5_b2_s2, strip_u6_b2_s2}},
};

/* Copies input columns [col0, col0 + ncols) of nr rows and ncb channel blocks into dst, laid out
 * [cb][row][col][8]; columns outside [0, W) are horizontal padding and become zeros. Border pixels then run
 * the same strip kernel as interior ones, on this small copy, instead of a slower per-tap-clipped path:
 * the copy costs one load and store per input float, against kw * 16 FMAs that read it. */
static void fill_border_scratch(float *dst, const float *x, int ncb, int nr, int col0, int ncols, int W, size_t x_cb,
                                size_t x_row)
{
    /* [lo, hi): the columns inside the input; whole-padding copies (huge pads) give lo == hi. */
    int lo = col0 < 0 ? -col0 : 0, hi = W - col0;
    if (lo > ncols)
        lo = ncols;
    if (hi > ncols)
        hi = ncols;
    if (hi < lo)
        hi = lo;
    for (int cb = 0; cb < ncb; cb++) {
        for (int r = 0; r < nr; r++) {
            float *d = dst + ((size_t)cb * nr + r) * ncols * BLK;
            const float *src = x + (size_t)cb * x_cb + (size_t)r * x_row;
            for (int j = 0; j < lo; j++)
                _mm256_storeu_ps(d + (size_t)j * BLK, _mm256_setzero_ps());
            for (int j = lo; j < hi; j++)
                _mm256_storeu_ps(d + (size_t)j * BLK, _mm256_loadu_ps(src + (size_t)(col0 + j) * BLK));
            for (int j = hi; j < ncols; j++)
                _mm256_storeu_ps(d + (size_t)j * BLK, _mm256_setzero_ps());
        }
    }
}

/* Output pixels [ow0, ow0 + npix) of one row; a->x points at the input column read by pixel ow0's first
 * tap, a->y at pixel ow0. The pixels are split into the fewest strips of at most ur_max, of near-equal
 * width (8 -> 4+4 rather than 6+2), because a narrow strip has too few accumulators to hide FMA latency. */
static void run_strips(strip_args *a, int npix, int ur_max, int sw, const strip_fn *fns)
{
    const float *x = a->x;
    float *y = a->y;
    const int nstrips = (npix + ur_max - 1) / ur_max;
    const int base = npix / nstrips, wider = npix % nstrips;
    for (int t = 0, p = 0; t < nstrips; t++) {
        const int ur = base + (t < wider);
        a->x = x + (size_t)p * sw * BLK;
        a->y = y + (size_t)p * BLK;
        fns[ur - 1](a);
        p += ur;
    }
}

void conv_fwd_f32_direct__avx2(const incv3_conv_shape *s, const float *x8c, const float *w8i8o, float *y8c)
{
    const int N = s->n, H = s->h, W = s->w, KH = s->kh, KW = s->kw;
    const int SH = s->stride_h, SW = s->stride_w, PT = s->pad_top, PL = s->pad_left;
    const int OH = s->oh, OW = s->ow;
    const int CB = (s->c + BLK - 1) / BLK, KB = (s->k + BLK - 1) / BLK;
    const int KBP = (KB + 1) / 2;

    const size_t x_row = (size_t)W * BLK, x_cb = (size_t)H * x_row, x_img = (size_t)CB * x_cb;
    const size_t w_cb = (size_t)KH * KW * BLK * BLK, w_ob = (size_t)CB * w_cb;
    const size_t y_row = (size_t)OW * BLK, y_ob = (size_t)OH * y_row, y_img = (size_t)KB * y_ob;

    /* Interior columns [ow_lo, ow_hi): every kernel column reads inside [0, W). */
    int ow_lo = (PL + SW - 1) / SW;
    int ow_hi = W - KW + PL < 0 ? 0 : (W - KW + PL) / SW + 1;
    if (ow_lo > OW)
        ow_lo = OW;
    if (ow_hi > OW)
        ow_hi = OW;
    if (ow_hi < ow_lo)
        ow_hi = ow_lo;

    const int sw_class = SW == 1 ? 1 : SW == 2 ? 2 : 0;
    const size_t w_bytes_per_cb = 2 * w_cb * sizeof(float);
    int cb_chunk = (int)(CONV_AVX2_W_CHUNK_BYTES / w_bytes_per_cb);
    if (cb_chunk < 1)
        cb_chunk = 1;
    if (cb_chunk > CB)
        cb_chunk = CB;

    /* A border region may grow to the whole row (see below), so the scratch is sized for OW pixels. */
    const size_t scratch_floats =
        ow_lo > 0 || ow_hi < OW ? (size_t)cb_chunk * KH * ((size_t)(OW - 1) * SW + KW) * BLK : 0;

#pragma omp parallel
    {
        float *scratch = NULL;
        if (scratch_floats) {
            scratch = malloc(scratch_floats * sizeof *scratch);
            if (!scratch) {
                fprintf(stderr, "conv_fwd_f32_direct__avx2: out of memory for %zu floats of scratch\n", scratch_floats);
                abort();
            }
        }
#pragma omp for collapse(3) schedule(static)
        for (int n = 0; n < N; n++) {
            for (int kbp = 0; kbp < KBP; kbp++) {
                for (int oh = 0; oh < OH; oh++) {
                    const int kb = 2 * kbp;
                    const int nob = KB - kb >= 2 ? 2 : 1;
                    const int ur_max = nob == 2 ? UR_B2 : UR_B1;
                    float *yrow = y8c + (size_t)n * y_img + (size_t)kb * y_ob + (size_t)oh * y_row;

                    const int ih0 = oh * SH - PT;
                    const int r0 = ih0 < 0 ? -ih0 : 0;
                    const int r1 = H - ih0 < KH ? H - ih0 : KH;
                    const int nr = r1 - r0;
                    if (nr <= 0) { /* the whole window lies in vertical padding */
                        for (int b = 0; b < nob; b++)
                            for (size_t e = 0; e < y_row; e++)
                                yrow[(size_t)b * y_ob + e] = 0.0f;
                        continue;
                    }
                    const float *xrow = x8c + (size_t)n * x_img + (size_t)(ih0 + r0) * x_row;
                    const float *wblk = w8i8o + (size_t)kb * w_ob + (size_t)r0 * KW * BLK * BLK;

                    const strip_fn *fns = strip_table[sw_class][nob - 1];
                    /* Row regions: [0, lb) left border, [lb, rb) interior, [rb, OW) right border. A border
                     * region is widened to a full strip taken from the interior, so that its one or two
                     * padded pixels do not run as a latency-bound strip of their own; when the widened
                     * borders meet, the whole row runs from the scratch copy. */
                    int lb = ow_lo > 0 ? (ow_lo > ur_max ? ow_lo : ur_max) : 0;
                    int rb = ow_hi < OW ? (OW - ow_hi > ur_max ? ow_hi : OW - ur_max) : OW;
                    if (lb > OW || rb < 0 || lb > rb)
                        lb = rb = OW;
                    strip_args a;
                    a.nr = nr;
                    a.kw = KW;
                    a.sw = SW;
                    a.w_cb = w_cb;
                    a.w_ob = w_ob;
                    a.y_ob = y_ob;
                    for (int cb0 = 0; cb0 < CB; cb0 += cb_chunk) {
                        a.ncb = CB - cb0 < cb_chunk ? CB - cb0 : cb_chunk;
                        a.init = cb0 == 0;
                        a.w = wblk + (size_t)cb0 * w_cb;
                        const float *xchunk = xrow + (size_t)cb0 * x_cb;
                        /* Regions of the row: left border, interior, right border. */
                        const int reg_lo[4] = {0, lb, rb, OW};
                        for (int reg = 0; reg < 3; reg++) {
                            const int npix = reg_lo[reg + 1] - reg_lo[reg];
                            if (npix <= 0)
                                continue;
                            const int col0 = reg_lo[reg] * SW - PL;
                            a.y = yrow + (size_t)reg_lo[reg] * BLK;
                            if (reg == 1) {
                                a.x = xchunk + (size_t)col0 * BLK;
                                a.x_cb = x_cb;
                                a.x_row = x_row;
                            } else {
                                const int ncols = (npix - 1) * SW + KW;
                                fill_border_scratch(scratch, xchunk, a.ncb, nr, col0, ncols, W, x_cb, x_row);
                                a.x = scratch;
                                a.x_cb = (size_t)nr * ncols * BLK;
                                a.x_row = (size_t)ncols * BLK;
                            }
                            run_strips(&a, npix, ur_max, SW, fns);
                        }
                    }
                }
            }
        }
        free(scratch);
    }
}
