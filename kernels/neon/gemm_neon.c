/* Single-precision GEMM with NEON (AArch64 ASIMD), in the BLIS arrangement of avx2/gemm_avx2.c:
 *
 *   for jc over n in NC columns          B block (KC x NC) packed into NR-wide slivers, k-major
 *     for pc over k in KC steps
 *       for ic over m in MC rows         A block (MC x KC) packed into MR-tall slivers, k-major
 *         for jr, ir over the slivers    one MR x NR micro-tile, K loop
 *
 * Register blocking: the 8x12 tile of C lives in 24 of the 32 q registers (8 rows x 3 quads); each k step
 * loads the 12 floats of the B sliver as 3 quads and the 8 values of the A sliver as 2 quads, and
 * vfmaq_laneq_f32 takes the A value straight from its lane, so no broadcast instructions are needed:
 * 24 FMAs per 5 loads, 29 registers live. (The AVX2 6x16 tile needs explicit broadcasts and only has 16
 * registers.) Panels are padded with zeros to whole slivers, so edge tiles run the same kernel into a
 * scratch tile and copy back the valid part. When m fits one MC block (the linear layers' batch of 32),
 * B slivers are instead packed per thread right before use (gemm_few_rows), with the next sliver's source
 * prefetched during the micro-kernels.
 *
 * Precision and determinism: each KC block of a C element is summed from zero in float (FMA chain in k
 * order) and added to C once, blocks in ascending k order (blocked summation), with KC = 256 as in the
 * AVX2 GEMM. The block sizes do not depend on the thread count, and each C tile is computed by one thread,
 * so results are bitwise the same for any number of threads. OpenMP splits the packing and the (jr, ir)
 * tiles; the barriers between steps are the implicit ones of the worksharing loops.
 *
 * The blocking loops, the work split and the linear layers are common/gemm_driver.h, shared by the ISAs;
 * this file holds the register tile: its sizes, the packing into slivers and the micro-kernel.
 */
#include <arm_neon.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "neon/gemm_neon.h"

/* MC: 16 A slivers, a 128 KiB A block for L2. NC: a multiple of NR, so only the last B block has a partial
 * sliver. */
#define KERNEL_ISA neon
#define GEMM_ENTRY gemm_f32_8x12__neon
#define GEMM_ENTRY_STR "gemm_f32_8x12__neon"
#define GEMM_TILE_ALIGN 64

enum { MR = 8, NR = 12, KC = 256, MC = 128, NC = 2040 };

/* Transposes the 4x4 block src[j*ld + q] (j, q < 4) into dst[q*dld + j]. */
static inline void transpose_4x4(const float *src, size_t ld, float *dst, size_t dld)
{
    const float32x4_t r0 = vld1q_f32(src), r1 = vld1q_f32(src + ld);
    const float32x4_t r2 = vld1q_f32(src + 2 * ld), r3 = vld1q_f32(src + 3 * ld);
    const float64x2_t t0 = vreinterpretq_f64_f32(vtrn1q_f32(r0, r1)), t1 = vreinterpretq_f64_f32(vtrn2q_f32(r0, r1));
    const float64x2_t t2 = vreinterpretq_f64_f32(vtrn1q_f32(r2, r3)), t3 = vreinterpretq_f64_f32(vtrn2q_f32(r2, r3));
    vst1q_f32(dst, vreinterpretq_f32_f64(vtrn1q_f64(t0, t2)));
    vst1q_f32(dst + dld, vreinterpretq_f32_f64(vtrn1q_f64(t1, t3)));
    vst1q_f32(dst + 2 * dld, vreinterpretq_f32_f64(vtrn2q_f64(t0, t2)));
    vst1q_f32(dst + 3 * dld, vreinterpretq_f32_f64(vtrn2q_f64(t1, t3)));
}

/* Packs rows i0..i0+mr-1, columns p0..p0+kc-1 of op(A) as ap[p*MR + r], rows mr..MR-1 zero. */
static void pack_a(int mr, int kc, const float *a, size_t lda, int trans, size_t i0, size_t p0,
                   float *restrict ap)
{
    if (trans) { /* op(A)[i][p] = a[p*lda + i]: MR contiguous values per k step */
        const float *src = a + p0 * lda + i0;
        if (mr == MR) {
            for (int p = 0; p < kc; p++, src += lda) {
                vst1q_f32(ap + p * MR, vld1q_f32(src));
                vst1q_f32(ap + p * MR + 4, vld1q_f32(src + 4));
            }
        } else {
            for (int p = 0; p < kc; p++, src += lda)
                for (int r = 0; r < MR; r++)
                    ap[p * MR + r] = r < mr ? src[r] : 0.0f;
        }
    } else { /* op(A)[i][p] = a[i*lda + p]: 4x4 transposes of whole blocks, scalar for the rest */
        const float *src = a + i0 * lda + p0;
        int p = 0;
        if (mr == MR) {
            for (; p + 4 <= kc; p += 4) {
                transpose_4x4(src + p, lda, ap + (size_t)p * MR, MR);
                transpose_4x4(src + 4 * lda + p, lda, ap + (size_t)p * MR + 4, MR);
            }
        }
        for (int r = 0; r < MR; r++) {
            const float *s = src + (size_t)r * lda;
            for (int q = p; q < kc; q++)
                ap[q * MR + r] = r < mr ? s[q] : 0.0f;
        }
    }
}

/* Packs rows p0..p0+kc-1, columns j0..j0+nr-1 of op(B) as bp[p*NR + j], columns nr..NR-1 zero. */
static void pack_b(int nr, int kc, const float *b, size_t ldb, int trans, size_t j0, size_t p0,
                   float *restrict bp)
{
    if (!trans) { /* op(B)[p][j] = b[p*ldb + j] */
        const float *src = b + p0 * ldb + j0;
        if (nr == NR) {
            for (int p = 0; p < kc; p++, src += ldb) {
                vst1q_f32(bp + p * NR, vld1q_f32(src));
                vst1q_f32(bp + p * NR + 4, vld1q_f32(src + 4));
                vst1q_f32(bp + p * NR + 8, vld1q_f32(src + 8));
            }
        } else {
            for (int p = 0; p < kc; p++, src += ldb)
                for (int j = 0; j < NR; j++)
                    bp[p * NR + j] = j < nr ? src[j] : 0.0f;
        }
    } else { /* op(B)[p][j] = b[j*ldb + p]: 4x4 transposes of whole blocks, scalar for the rest */
        const float *src = b + j0 * ldb + p0;
        int p = 0;
        if (nr == NR) {
            for (; p + 4 <= kc; p += 4) {
                transpose_4x4(src + p, ldb, bp + (size_t)p * NR, NR);
                transpose_4x4(src + 4 * ldb + p, ldb, bp + (size_t)p * NR + 4, NR);
                transpose_4x4(src + 8 * ldb + p, ldb, bp + (size_t)p * NR + 8, NR);
            }
        }
        for (int j = 0; j < NR; j++) {
            const float *s = src + (size_t)j * ldb;
            for (int q = p; q < kc; q++)
                bp[q * NR + j] = j < nr ? s[q] : 0.0f;
        }
    }
}

/* c[r][0..11] += b0 b1 b2 * the A value in lane l of quad a. */
#define GEMM_ROW_FMA(r, a, l)                                                                                       \
    do {                                                                                                           \
        c##r##0 = vfmaq_laneq_f32(c##r##0, b0, a, l);                                                              \
        c##r##1 = vfmaq_laneq_f32(c##r##1, b1, a, l);                                                              \
        c##r##2 = vfmaq_laneq_f32(c##r##2, b2, a, l);                                                              \
    } while (0)

#define GEMM_STORE_ROW(r)                                                                                          \
    do {                                                                                                           \
        float *cr = c + (size_t)(r) * ldc;                                                                         \
        if (add) {                                                                                                 \
            vst1q_f32(cr, vaddq_f32(vld1q_f32(cr), c##r##0));                                                      \
            vst1q_f32(cr + 4, vaddq_f32(vld1q_f32(cr + 4), c##r##1));                                              \
            vst1q_f32(cr + 8, vaddq_f32(vld1q_f32(cr + 8), c##r##2));                                              \
        } else {                                                                                                   \
            vst1q_f32(cr, c##r##0);                                                                                \
            vst1q_f32(cr + 4, c##r##1);                                                                            \
            vst1q_f32(cr + 8, c##r##2);                                                                            \
        }                                                                                                          \
    } while (0)

/* The 8x12 micro-kernel: t = sum over kc steps of ap[p*8 + r] * bp[p*12 + j] from zero, then
 * c[r*ldc + j] = add ? c + t : t. */
static inline void micro_8x12(int kc, const float *restrict ap, const float *restrict bp, float *restrict c,
                              size_t ldc, int add)
{
    const float32x4_t z = vdupq_n_f32(0.0f);
    float32x4_t c00 = z, c01 = z, c02 = z, c10 = z, c11 = z, c12 = z, c20 = z, c21 = z, c22 = z;
    float32x4_t c30 = z, c31 = z, c32 = z, c40 = z, c41 = z, c42 = z, c50 = z, c51 = z, c52 = z;
    float32x4_t c60 = z, c61 = z, c62 = z, c70 = z, c71 = z, c72 = z;
#pragma GCC unroll 4
    for (int p = 0; p < kc; p++) {
        const float32x4_t b0 = vld1q_f32(bp), b1 = vld1q_f32(bp + 4), b2 = vld1q_f32(bp + 8);
        const float32x4_t a0 = vld1q_f32(ap), a1 = vld1q_f32(ap + 4);
        GEMM_ROW_FMA(0, a0, 0);
        GEMM_ROW_FMA(1, a0, 1);
        GEMM_ROW_FMA(2, a0, 2);
        GEMM_ROW_FMA(3, a0, 3);
        GEMM_ROW_FMA(4, a1, 0);
        GEMM_ROW_FMA(5, a1, 1);
        GEMM_ROW_FMA(6, a1, 2);
        GEMM_ROW_FMA(7, a1, 3);
        ap += MR, bp += NR;
    }
    GEMM_STORE_ROW(0);
    GEMM_STORE_ROW(1);
    GEMM_STORE_ROW(2);
    GEMM_STORE_ROW(3);
    GEMM_STORE_ROW(4);
    GEMM_STORE_ROW(5);
    GEMM_STORE_ROW(6);
    GEMM_STORE_ROW(7);
}

#undef GEMM_ROW_FMA
#undef GEMM_STORE_ROW

#define gemm_micro micro_8x12

/* db[o] = sum over s ascending of dy[s][o], in double (as the reference: the same bits). */
static void gemm_bias_grad(int n, int out, const float *dy, float *db)
{
    int o = 0;
    for (; o + 4 <= out; o += 4) {
        float64x2_t lo = vdupq_n_f64(0.0), hi = vdupq_n_f64(0.0);
        for (int s = 0; s < n; s++) {
            const float32x4_t g = vld1q_f32(dy + (size_t)s * out + o);
            lo = vaddq_f64(lo, vcvt_f64_f32(vget_low_f32(g)));
            hi = vaddq_f64(hi, vcvt_high_f64_f32(g));
        }
        vst1q_f32(db + o, vcvt_high_f32_f64(vcvt_f32_f64(lo), hi));
    }
    for (; o < out; o++) {
        double sum = 0.0;
        for (int s = 0; s < n; s++)
            sum += dy[(size_t)s * out + o];
        db[o] = (float)sum;
    }
}

#include "common/gemm_driver.h"
