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
 */
#include <arm_neon.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "neon/gemm_neon.h"

/* MC: 16 A slivers, a 128 KiB A block for L2. NC: a multiple of NR, so only the last B block has a partial
 * sliver. */
enum { MR = 8, NR = 12, KC = 256, MC = 128, NC = 2040 };

/* Below this many multiply-adds the fork/join costs more than it saves (the result is the same either way). */
#define GEMM_PARALLEL_MIN_FMAS 262144.0

static float *alloc_panel(size_t count)
{
    size_t bytes = (count * sizeof(float) + 63) / 64 * 64;
    float *p = aligned_alloc(64, bytes ? bytes : 64);
    if (!p) {
        fprintf(stderr, "gemm_f32_8x12__neon: out of memory for a %zu-byte packed panel\n", bytes);
        abort();
    }
    return p;
}

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

/* Runs one MR x NR tile of C at rows i0, columns j0: full tiles straight into C, edge tiles through a
 * scratch tile (same float operations, so the same bits). */
static inline void run_tile(int mr, int nr, int kc, const float *ap, const float *bp, float *c, size_t ldc,
                            size_t i0, size_t j0, int add, float *restrict tile)
{
    float *ct = c + i0 * ldc + j0;
    if (mr == MR && nr == NR) {
        micro_8x12(kc, ap, bp, ct, ldc, add);
    } else {
        micro_8x12(kc, ap, bp, tile, NR, 0);
        for (int r = 0; r < mr; r++)
            for (int j = 0; j < nr; j++)
                ct[r * ldc + j] = add ? ct[r * ldc + j] + tile[r * NR + j] : tile[r * NR + j];
    }
}

/* Prefetches (into L2) part `part` of `parts` of the source of the B sliver at columns j0, rows p0..p0+kc-1,
 * so that reading B from memory overlaps the micro-kernels of the previous sliver. */
static inline void prefetch_b(int kc, const float *b, size_t ldb, int trans, size_t j0, size_t p0, int part,
                              int parts)
{
    if (!trans) { /* kc rows of NR floats (48 bytes: at most two cache lines) */
        const int lo = (int)((long)kc * part / parts), hi = (int)((long)kc * (part + 1) / parts);
        for (int p = lo; p < hi; p++) {
            const float *row = b + (p0 + (size_t)p) * ldb + j0;
            __builtin_prefetch(row, 0, 2);
            __builtin_prefetch(row + NR - 1, 0, 2);
        }
    } else { /* NR rows of kc floats: 16-float (64-byte) steps */
        const int steps = (kc + 15) / 16, total = NR * steps;
        const int lo = (int)((long)total * part / parts), hi = (int)((long)total * (part + 1) / parts);
        for (int q = lo; q < hi; q++)
            __builtin_prefetch(b + (j0 + (size_t)(q / steps)) * ldb + p0 + (size_t)(q % steps) * 16, 0, 2);
    }
}

/* m <= MC: the A block is one MC x KC panel shared by all threads, and each B sliver is used by only the
 * ceil(m/MR) tiles of its column, so each thread packs its B slivers into a private L1-sized buffer right
 * before using them (prefetching the next one's source meanwhile) instead of packing a whole KC x NC block. */
static void gemm_few_rows(int m, int n, int k, const float *a, int lda, int a_trans, const float *b, int ldb,
                          int b_trans, float *c, int ldc, int accumulate)
{
    const int kc_max = k < KC ? k : KC, msl = (m + MR - 1) / MR, nsl = (n + NR - 1) / NR;
    float *apack = alloc_panel((size_t)msl * MR * kc_max);
    const size_t ua = (size_t)lda, ub = (size_t)ldb, uc = (size_t)ldc;

#pragma omp parallel if ((double)m * n * k >= GEMM_PARALLEL_MIN_FMAS)
    {
        float tile[MR * NR] __attribute__((aligned(64)));
        float bpack[NR * KC] __attribute__((aligned(64)));
        for (int pc = 0; pc < k; pc += KC) {
            const int kc = k - pc < KC ? k - pc : KC, add = accumulate || pc > 0;
#pragma omp for schedule(static)
            for (int is = 0; is < msl; is++) {
                const int mr = m - is * MR < MR ? m - is * MR : MR;
                pack_a(mr, kc, a, ua, a_trans, (size_t)is * MR, (size_t)pc, apack + (size_t)is * MR * kc);
            }
#pragma omp for schedule(static)
            for (int js = 0; js < nsl; js++) {
                const int nr = n - js * NR < NR ? n - js * NR : NR;
                const int next_nr = n - (js + 1) * NR < NR ? n - (js + 1) * NR : NR;
                pack_b(nr, kc, b, ub, b_trans, (size_t)js * NR, (size_t)pc, bpack);
                for (int is = 0; is < msl; is++) {
                    if (js + 1 < nsl && next_nr == NR)
                        prefetch_b(kc, b, ub, b_trans, (size_t)(js + 1) * NR, (size_t)pc, is, msl);
                    const int mr = m - is * MR < MR ? m - is * MR : MR;
                    run_tile(mr, nr, kc, apack + (size_t)is * MR * kc, bpack, c, uc, (size_t)is * MR,
                             (size_t)js * NR, add, tile);
                }
            }
        }
    }
    free(apack);
}

void gemm_f32_8x12__neon(int m, int n, int k, const float *a, int lda, int a_trans, const float *b, int ldb,
                         int b_trans, float *c, int ldc, int accumulate)
{
    if (m <= 0 || n <= 0)
        return;
    if (k <= 0) {
        if (!accumulate)
            for (int i = 0; i < m; i++)
                memset(c + (size_t)i * ldc, 0, (size_t)n * sizeof *c);
        return;
    }
    if (m <= MC) {
        gemm_few_rows(m, n, k, a, lda, a_trans, b, ldb, b_trans, c, ldc, accumulate);
        return;
    }
    const int kc_max = k < KC ? k : KC, nc_max = n < NC ? n : NC, mc_max = m < MC ? m : MC;
    float *bpack = alloc_panel((size_t)(nc_max + NR - 1) / NR * NR * kc_max);
    float *apack = alloc_panel((size_t)(mc_max + MR - 1) / MR * MR * kc_max);
    const size_t ua = (size_t)lda, ub = (size_t)ldb, uc = (size_t)ldc;

#pragma omp parallel if ((double)m * n * k >= GEMM_PARALLEL_MIN_FMAS)
    {
        float tile[MR * NR] __attribute__((aligned(64)));
        for (int jc = 0; jc < n; jc += NC) {
            const int nc = n - jc < NC ? n - jc : NC, nsl = (nc + NR - 1) / NR;
            for (int pc = 0; pc < k; pc += KC) {
                const int kc = k - pc < KC ? k - pc : KC, add = accumulate || pc > 0;
#pragma omp for schedule(static)
                for (int js = 0; js < nsl; js++) {
                    const int nr = nc - js * NR < NR ? nc - js * NR : NR;
                    pack_b(nr, kc, b, ub, b_trans, (size_t)jc + (size_t)js * NR, (size_t)pc,
                           bpack + (size_t)js * NR * kc);
                }
                for (int ic = 0; ic < m; ic += MC) {
                    const int mc = m - ic < MC ? m - ic : MC, msl = (mc + MR - 1) / MR;
#pragma omp for schedule(static)
                    for (int is = 0; is < msl; is++) {
                        const int mr = mc - is * MR < MR ? mc - is * MR : MR;
                        pack_a(mr, kc, a, ua, a_trans, (size_t)ic + (size_t)is * MR, (size_t)pc,
                               apack + (size_t)is * MR * kc);
                    }
#pragma omp for collapse(2) schedule(static)
                    for (int js = 0; js < nsl; js++) {
                        for (int is = 0; is < msl; is++) {
                            const int nr = nc - js * NR < NR ? nc - js * NR : NR;
                            const int mr = mc - is * MR < MR ? mc - is * MR : MR;
                            run_tile(mr, nr, kc, apack + (size_t)is * MR * kc, bpack + (size_t)js * NR * kc, c, uc,
                                     (size_t)ic + (size_t)is * MR, (size_t)jc + (size_t)js * NR, add, tile);
                        }
                    }
                }
            }
        }
    }
    free(apack);
    free(bpack);
}

void linear_fwd_f32_gemm__neon(int n, int in, int out, const float *x, const float *w, const float *b, float *y)
{
    /* y = b (broadcast over rows), then y += x w^T. */
    for (int s = 0; s < n; s++)
        memcpy(y + (size_t)s * out, b, (size_t)out * sizeof *y);
    gemm_f32_8x12__neon(n, out, in, x, in, 0, w, in, 1, y, out, 1);
}

void linear_bwd_data_f32_gemm__neon(int n, int in, int out, const float *dy, const float *w, float *dx,
                                    int accumulate)
{
    gemm_f32_8x12__neon(n, in, out, dy, out, 0, w, in, 0, dx, in, accumulate);
}

void linear_bwd_weights_f32_gemm__neon(int n, int in, int out, const float *x, const float *dy, float *dw,
                                       float *db)
{
    /* dw (out x in) = dy^T (out x n) x (n x in). */
    gemm_f32_8x12__neon(out, in, n, dy, out, 1, x, in, 0, dw, in, 0);
    /* db[o] = sum over s ascending of dy[s][o], in double (as the reference: the same bits). */
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
