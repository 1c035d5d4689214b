/* Single-precision GEMM with AVX2+FMA, in the BLIS arrangement:
 *
 *   for jc over n in NC columns          B block (KC x NC) packed into NR-wide slivers, k-major
 *     for pc over k in KC steps
 *       for ic over m in MC rows         A block (MC x KC) packed into MR-tall slivers, k-major
 *         for jr, ir over the slivers    one MR x NR micro-tile: 12 ymm accumulators, K loop
 *
 * The micro-kernel keeps a 6x16 tile of C in 12 registers, loads 16 floats of the B sliver as two vectors
 * and broadcasts the 6 values of the A sliver at each k step. Panels are padded with zeros to whole slivers,
 * so edge tiles run the same kernel into a scratch tile and copy back the valid part. When m fits one MC
 * block (the linear layers' batch of 32), B slivers are instead packed per thread right before use
 * (gemm_few_rows), with the next sliver's source prefetched during the micro-kernels.
 *
 * Precision and determinism: each KC block of a C element is summed from zero in float (FMA chain in k
 * order) and added to C once, blocks in ascending k order (blocked summation). The block sizes do not depend
 * on the thread count, and each C tile is computed by one thread, so results are bitwise the same for any
 * number of threads. OpenMP splits the packing and the (jr, ir) tiles; the barriers between steps are the
 * implicit ones of the worksharing loops.
 *
 * The blocking loops, the work split and the linear layers are common/gemm_driver.h, shared by the ISAs;
 * this file holds the register tile: its sizes, the packing into slivers and the micro-kernel.
 */
#include <immintrin.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gemm_avx2.h"

#define KERNEL_ISA avx2
#define GEMM_ENTRY gemm_f32_6x16__avx2
#define GEMM_ENTRY_STR "gemm_f32_6x16__avx2"
#define GEMM_TILE_ALIGN 32

enum { MR = 6, NR = 16, KC = 256, MC = 120, NC = 2048 };

/* Packs rows i0..i0+mr-1, columns p0..p0+kc-1 of op(A) as ap[p*MR + r], rows mr..MR-1 zero. */
static void pack_a(int mr, int kc, const float *a, size_t lda, int trans, size_t i0, size_t p0,
                   float *restrict ap)
{
    if (trans) { /* op(A)[i][p] = a[p*lda + i]: MR contiguous values per k step */
        const float *src = a + p0 * lda + i0;
        if (mr == MR) {
            for (int p = 0; p < kc; p++, src += lda)
                for (int r = 0; r < MR; r++)
                    ap[p * MR + r] = src[r];
        } else {
            for (int p = 0; p < kc; p++, src += lda)
                for (int r = 0; r < MR; r++)
                    ap[p * MR + r] = r < mr ? src[r] : 0.0f;
        }
    } else { /* op(A)[i][p] = a[i*lda + p]: rows read contiguously, written with stride MR */
        const float *src = a + i0 * lda + p0;
        for (int r = 0; r < mr; r++, src += lda)
            for (int p = 0; p < kc; p++)
                ap[p * MR + r] = src[p];
        for (int r = mr; r < MR; r++)
            for (int p = 0; p < kc; p++)
                ap[p * MR + r] = 0.0f;
    }
}

/* Transposes the 8x8 block src[j*ld + q] (j, q < 8) into dst[q*dld + j]. */
static inline void transpose_8x8(const float *src, size_t ld, float *dst, size_t dld)
{
    const __m256 r0 = _mm256_loadu_ps(src + 0 * ld), r1 = _mm256_loadu_ps(src + 1 * ld);
    const __m256 r2 = _mm256_loadu_ps(src + 2 * ld), r3 = _mm256_loadu_ps(src + 3 * ld);
    const __m256 r4 = _mm256_loadu_ps(src + 4 * ld), r5 = _mm256_loadu_ps(src + 5 * ld);
    const __m256 r6 = _mm256_loadu_ps(src + 6 * ld), r7 = _mm256_loadu_ps(src + 7 * ld);
    const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_store_ps(dst + 0 * dld, _mm256_permute2f128_ps(s0, s4, 0x20));
    _mm256_store_ps(dst + 1 * dld, _mm256_permute2f128_ps(s1, s5, 0x20));
    _mm256_store_ps(dst + 2 * dld, _mm256_permute2f128_ps(s2, s6, 0x20));
    _mm256_store_ps(dst + 3 * dld, _mm256_permute2f128_ps(s3, s7, 0x20));
    _mm256_store_ps(dst + 4 * dld, _mm256_permute2f128_ps(s0, s4, 0x31));
    _mm256_store_ps(dst + 5 * dld, _mm256_permute2f128_ps(s1, s5, 0x31));
    _mm256_store_ps(dst + 6 * dld, _mm256_permute2f128_ps(s2, s6, 0x31));
    _mm256_store_ps(dst + 7 * dld, _mm256_permute2f128_ps(s3, s7, 0x31));
}

/* Packs rows p0..p0+kc-1, columns j0..j0+nr-1 of op(B) as bp[p*NR + j] (bp 32-byte aligned), columns
 * nr..NR-1 zero. */
static void pack_b(int nr, int kc, const float *b, size_t ldb, int trans, size_t j0, size_t p0,
                   float *restrict bp)
{
    if (!trans) { /* op(B)[p][j] = b[p*ldb + j] */
        const float *src = b + p0 * ldb + j0;
        if (nr == NR) {
            for (int p = 0; p < kc; p++, src += ldb) {
                _mm256_store_ps(bp + p * NR, _mm256_loadu_ps(src));
                _mm256_store_ps(bp + p * NR + 8, _mm256_loadu_ps(src + 8));
            }
        } else {
            for (int p = 0; p < kc; p++, src += ldb)
                for (int j = 0; j < NR; j++)
                    bp[p * NR + j] = j < nr ? src[j] : 0.0f;
        }
    } else { /* op(B)[p][j] = b[j*ldb + p]: 8x8 transposes of whole blocks, scalar for the rest */
        const float *src = b + j0 * ldb + p0;
        int p = 0;
        if (nr == NR) {
            for (; p + 8 <= kc; p += 8) {
                transpose_8x8(src + p, ldb, bp + (size_t)p * NR, NR);
                transpose_8x8(src + 8 * ldb + p, ldb, bp + (size_t)p * NR + 8, NR);
            }
        }
        for (int j = 0; j < NR; j++) {
            const float *s = src + (size_t)j * ldb;
            for (int q = p; q < kc; q++)
                bp[q * NR + j] = j < nr ? s[q] : 0.0f;
        }
    }
}

/* The 6x16 micro-kernel: t = sum over kc steps of ap[p*6 + r] * bp[p*16 + j] from zero, then
 * c[r*ldc + j] = add ? c + t : t. */
static inline void micro_6x16(int kc, const float *restrict ap, const float *restrict bp, float *restrict c,
                              size_t ldc, int add)
{
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps();
    __m256 c11 = _mm256_setzero_ps(), c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps(), c40 = _mm256_setzero_ps();
    __m256 c41 = _mm256_setzero_ps(), c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
#pragma GCC unroll 4
    for (int p = 0; p < kc; p++) {
        const __m256 b0 = _mm256_load_ps(bp), b1 = _mm256_load_ps(bp + 8);
        __m256 a;
        a = _mm256_broadcast_ss(ap + 0);
        c00 = _mm256_fmadd_ps(a, b0, c00), c01 = _mm256_fmadd_ps(a, b1, c01);
        a = _mm256_broadcast_ss(ap + 1);
        c10 = _mm256_fmadd_ps(a, b0, c10), c11 = _mm256_fmadd_ps(a, b1, c11);
        a = _mm256_broadcast_ss(ap + 2);
        c20 = _mm256_fmadd_ps(a, b0, c20), c21 = _mm256_fmadd_ps(a, b1, c21);
        a = _mm256_broadcast_ss(ap + 3);
        c30 = _mm256_fmadd_ps(a, b0, c30), c31 = _mm256_fmadd_ps(a, b1, c31);
        a = _mm256_broadcast_ss(ap + 4);
        c40 = _mm256_fmadd_ps(a, b0, c40), c41 = _mm256_fmadd_ps(a, b1, c41);
        a = _mm256_broadcast_ss(ap + 5);
        c50 = _mm256_fmadd_ps(a, b0, c50), c51 = _mm256_fmadd_ps(a, b1, c51);
        ap += MR, bp += NR;
    }
#define GEMM_STORE_ROW(r, v0, v1)                                                                                  \
    do {                                                                                                           \
        float *cr = c + (size_t)(r) * ldc;                                                                         \
        if (add) {                                                                                                 \
            _mm256_storeu_ps(cr, _mm256_add_ps(_mm256_loadu_ps(cr), v0));                                          \
            _mm256_storeu_ps(cr + 8, _mm256_add_ps(_mm256_loadu_ps(cr + 8), v1));                                  \
        } else {                                                                                                   \
            _mm256_storeu_ps(cr, v0);                                                                              \
            _mm256_storeu_ps(cr + 8, v1);                                                                          \
        }                                                                                                          \
    } while (0)
    GEMM_STORE_ROW(0, c00, c01);
    GEMM_STORE_ROW(1, c10, c11);
    GEMM_STORE_ROW(2, c20, c21);
    GEMM_STORE_ROW(3, c30, c31);
    GEMM_STORE_ROW(4, c40, c41);
    GEMM_STORE_ROW(5, c50, c51);
#undef GEMM_STORE_ROW
}

#define gemm_micro micro_6x16

/* db[o] = sum over s ascending of dy[s][o], in double (as the reference: the same bits). */
static void gemm_bias_grad(int n, int out, const float *dy, float *db)
{
    int o = 0;
    for (; o + 8 <= out; o += 8) {
        __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
        for (int s = 0; s < n; s++) {
            const __m256 g = _mm256_loadu_ps(dy + (size_t)s * out + o);
            lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(g)));
            hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(g, 1)));
        }
        _mm256_storeu_ps(db + o, _mm256_set_m128(_mm256_cvtpd_ps(hi), _mm256_cvtpd_ps(lo)));
    }
    for (; o < out; o++) {
        double sum = 0.0;
        for (int s = 0; s < n; s++)
            sum += dy[(size_t)s * out + o];
        db[o] = (float)sum;
    }
}

#include "common/gemm_driver.h"
