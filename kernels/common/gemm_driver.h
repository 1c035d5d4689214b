/* The ISA-independent driver of the BLIS-style GEMM (the method: avx2/gemm_avx2.c): the KC / MC / NC
 * blocking loops, the OpenMP split of the packing and of the (jr, ir) tiles, the edge tiles through a
 * scratch tile, the few-rows path that packs B slivers per thread, the prefetch of the next B sliver, and
 * the linear layers on top of it. Shared so that the blocking, and with it the summation order, is one
 * piece of code; what differs per ISA is the register tile (MR x NR), its packing and the micro-kernel.
 *
 * The including file defines, before including this: the enum MR, NR, KC, MC, NC; GEMM_ENTRY (the GEMM's
 * name, e.g. gemm_f32_6x16__avx2) and GEMM_ENTRY_STR; KERNEL_ISA (common/isa_name.h); GEMM_TILE_ALIGN
 * (the scratch tile's alignment); pack_a, pack_b, gemm_micro(kc, ap, bp, c, ldc, add) and
 * gemm_bias_grad(n, out, dy, db) (db[o] = the sum over s ascending of dy[s][o], in double).
 */
#ifndef INCV3_GEMM_DRIVER_H
#define INCV3_GEMM_DRIVER_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/isa_name.h"
#include "alloc.h"

/* Below this many multiply-adds the fork/join costs more than it saves (the result is the same either way). */
#define GEMM_PARALLEL_MIN_FMAS 262144.0

static float *alloc_panel(size_t count)
{
    return incv3_mem_must(count * sizeof(float), 64, "a packed panel of " GEMM_ENTRY_STR);
}

/* Runs one MR x NR tile of C at rows i0, columns j0: full tiles straight into C, edge tiles through a
 * scratch tile (same float operations, so the same bits). */
static inline void run_tile(int mr, int nr, int kc, const float *ap, const float *bp, float *c, size_t ldc,
                            size_t i0, size_t j0, int add, float *restrict tile)
{
    float *ct = c + i0 * ldc + j0;
    if (mr == MR && nr == NR) {
        gemm_micro(kc, ap, bp, ct, ldc, add);
    } else {
        gemm_micro(kc, ap, bp, tile, NR, 0);
        for (int r = 0; r < mr; r++)
            for (int j = 0; j < nr; j++)
                ct[r * ldc + j] = add ? ct[r * ldc + j] + tile[r * NR + j] : tile[r * NR + j];
    }
}

/* Prefetches (into L2) part `part` of `parts` of the source of the B sliver at columns j0, rows p0..p0+kc-1,
 * so that reading B from memory overlaps the micro-kernels of the previous sliver. Locality 2 is
 * prefetcht1 on x86 and prfm pldl2keep on AArch64. */
static inline void prefetch_b(int kc, const float *b, size_t ldb, int trans, size_t j0, size_t p0, int part,
                              int parts)
{
    if (!trans) { /* kc rows of NR floats */
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

#ifndef GEMM_WHOLE_M_BYTES
#define GEMM_WHOLE_M_BYTES (512 * 1024)
#endif

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
        float tile[MR * NR] __attribute__((aligned(GEMM_TILE_ALIGN)));
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

void GEMM_ENTRY(int m, int n, int k, const float *a, int lda, int a_trans, const float *b, int ldb,
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
    /* Rows per A block: MC, or all of m where its panel fits half an L2 of 1 MiB (a 2 MiB L2 on the
     * Zen 4 machine measured here; 512 KiB to 2 MiB on current x86 and Arm server cores): one block
     * means one packing and two barriers per KC step instead of per MC rows, which on a few hundred rows
     * (the 75x75 model's 1x1 convolutions at batch 32) cost more than the panel's size in cache. The
     * summation order of every element is that of the KC steps alone, so results do not change. */
    const int kc_max = k < KC ? k : KC, nc_max = n < NC ? n : NC;
    const int mc_blk = (size_t)m * kc_max * sizeof(float) <= GEMM_WHOLE_M_BYTES ? m : MC;
    const int mc_max = m < mc_blk ? m : mc_blk;
    float *bpack = alloc_panel((size_t)(nc_max + NR - 1) / NR * NR * kc_max);
    float *apack = alloc_panel((size_t)(mc_max + MR - 1) / MR * MR * kc_max);
    const size_t ua = (size_t)lda, ub = (size_t)ldb, uc = (size_t)ldc;

#pragma omp parallel if ((double)m * n * k >= GEMM_PARALLEL_MIN_FMAS)
    {
        float tile[MR * NR] __attribute__((aligned(GEMM_TILE_ALIGN)));
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
                for (int ic = 0; ic < m; ic += mc_blk) {
                    const int mc = m - ic < mc_blk ? m - ic : mc_blk, msl = (mc + MR - 1) / MR;
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

void ISA_NAME(linear_fwd_f32_gemm__)(int n, int in, int out, const float *x, const float *w, const float *b, float *y)
{
    /* y = b (broadcast over rows), then y += x w^T. */
    for (int s = 0; s < n; s++)
        memcpy(y + (size_t)s * out, b, (size_t)out * sizeof *y);
    GEMM_ENTRY(n, out, in, x, in, 0, w, in, 1, y, out, 1);
}

void ISA_NAME(linear_bwd_data_f32_gemm__)(int n, int in, int out, const float *dy, const float *w, float *dx,
                                    int accumulate)
{
    GEMM_ENTRY(n, in, out, dy, out, 0, w, in, 0, dx, in, accumulate);
}

void ISA_NAME(linear_bwd_weights_f32_gemm__)(int n, int in, int out, const float *x, const float *dy, float *dw,
                                       float *db)
{
    /* dw (out x in) = dy^T (out x n) x (n x in). */
    GEMM_ENTRY(out, in, n, dy, out, 1, x, in, 0, dw, in, 0);
    gemm_bias_grad(n, out, dy, db);
}

#endif
