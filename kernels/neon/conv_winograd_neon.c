/* Winograd convolution, AArch64 NEON, NCHW8c (see conv_winograd_neon.h).
 *
 * The structure of avx2/conv_winograd_avx2.c, whose comment explains it in full: one driver, always
 * inlined with F(MH x MW, RH x RW) as compile-time constants and instantiated by the entry points at the
 * end; the output tiles of all images cut into groups of T tiles (from the shape alone), each group run
 * by one thread as (1) input transform into V[pos][tile][c], (2) the batched products
 * M[pos][tile][k] = V[pos][tile][:] . U[pos][:][k], (3) output transform into y with the epilogue.
 *
 * What differs is the register blocking of step 2, sized for AArch64's 32 q registers: 5 tiles x 16
 * output channels (an output block pair, 4 q registers per tile) are 20 accumulators. Per 4 input
 * channels, each tile's 4 V values are one q load, consumed by lane (fmla by element), so a row of U
 * (16 floats, 4 q registers) is loaded once per input channel and serves 5 tiles: 20 + 5 + 4 = 29 live
 * registers, 20 FMAs per 4 U loads and 1.25 V loads (inline assembly: wg_kernel says why). 6 tiles
 * (AVX2's block) would need 24 + 6 + 4 = 34 with the lane form, or one broadcast load per FMA pair (ld1r)
 * as on AVX2; 4 tiles leave 16 accumulators, marginal for cores with four 128-bit FMA pipes of 4 cycles'
 * latency. The transforms work on 4-lane halves of each 8-channel block (winograd_transforms_neon.h).
 *
 * The numbers match the AVX2 kernels operation for operation: the same transforms and FMAs, products
 * summed over input channels in order into one accumulator per output, statistics per lane in tile and
 * pixel order, groups reduced in order. Only the tile count per group differs (a multiple of 5, not 6):
 * that changes no output value (each output's sums do not depend on the grouping), only the grouping of
 * the statistics' double partials. (Checked: U, y, dx and the BatchNorm+ReLU outputs came out bitwise
 * those of the AVX2 kernels on some 500 shapes of every variant.)
 *
 * The driver (planning, the pack, transform and product loops, the work split and the entry points) is
 * common/winograd_driver.h, shared with the AVX2 kernels; this file supplies the NEON pieces it is
 * written against: 4-lane vectors (two per channel block), the 5 x 16 micro-kernel, the filter
 * transform's lanes in double, and the epilogue's stores.
 */
#include <arm_neon.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "neon/conv_winograd_neon.h"
#include "neon/winograd_transforms_neon.h"

#define KERNEL_ISA neon
#define KERNEL_ISA_STR "neon"
#define WG_INLINE WGN_INLINE
#define WG_MR 5 /* tiles per micro-kernel block */
/* Tiles per group when U streams from memory (see wg_group_tiles): the AVX2 figure, rounded to WG_MR. */
#ifndef WG_FAR_TILES
#define WG_FAR_TILES 50
#endif

#include "common/winograd_plan.h"

/* The vector of the transforms: a 4-lane half of a channel block. */
typedef float32x4_t wg_vec;
#define WG_VL 4
#define WG_HALVES 2
#define wg_vload(p) vld1q_f32(p)
#define wg_vstore(p, v) vst1q_f32((p), (v))
#define wg_vzero() vdupq_n_f32(0.0f)
#define wg_vstore_groups(p, gs, v) vst1q_f32((p), (v)) /* a vector is one group of 4 lanes */
#define wg_vset1(f) vdupq_n_f32(f)
#define wg_vadd(a, b) vaddq_f32((a), (b))
#define wg_vsub(a, b) vsubq_f32((a), (b))
#define wg_vfma(a, b, c) vfmaq_f32((c), (a), (b))
#define wg_input_1d wgn_input_1d
#define wg_output_1d wgn_output_1d

/* ---------------------------------------------------------------------------------------------------- */
/* filter transform (pack)                                                                              */

/* Transforms g[tap][8 output lanes] of one input channel into bi (row floats per position), two output
 * lanes at a time in double. */
WG_INLINE void wg_pack_lanes(const int AH, const int RH, const int AW, const int RW, const float (*g)[WG_BLK],
                             float *bi, size_t row)
{
    for (int qd = 0; qd < WG_BLK / 2; qd++) {
        float64x2_t t[7][WG_AMAX]; /* rows transformed along w */
        for (int r = 0; r < RH; r++) {
            float64x2_t gr[7];
            for (int q = 0; q < RW; q++)
                gr[q] = vcvt_f64_f32(vld1_f32(&g[r * RW + q][qd * 2]));
            wgn_filter_1d(AW, RW, gr, t[r]);
        }
        for (int j = 0; j < AW; j++) {
            float64x2_t col[7], uc[WG_AMAX];
            for (int r = 0; r < RH; r++)
                col[r] = t[r][j];
            wgn_filter_1d(AH, RH, col, uc);
            for (int a = 0; a < AH; a++)
                vst1_f32(bi + (size_t)(a * AW + j) * row + qd * 2, vcvt_f32_f64(uc[a]));
        }
    }
}

/* Copies one packed (output block pair, input block), npos rows of row floats in buf, to ub in U. */
WG_INLINE void wg_pack_copy(float *ub, const float *buf, const float *u, int npos, size_t u_pos, size_t row)
{
    (void)u;
    for (int pos = 0; pos < npos; pos++)
        memcpy(ub + (size_t)pos * u_pos, buf + (size_t)pos * row, row * sizeof(float));
}

WG_INLINE void wg_pack_end(void)
{
}

/* ---------------------------------------------------------------------------------------------------- */
/* step 2: the micro-kernel                                                                             */

/* m[i][0..8*nob) = sum over c of v[i][c] * u[c][0..8*nob) for the WG_MR tiles i of a block: v rows vs
 * floats apart, u rows 16 floats apart, m rows ms apart; each sum in channel order into one accumulator
 * (cp a multiple of 8). With pf (a compile-time choice), also prefetches the cp rows of 16 floats at upf
 * into L2: the next slice of U, which the next (position, block pair) streams from L3 or memory.
 *
 * The loop is inline assembly with the registers fixed: accumulators v8-v27 (tile t, quarter j in
 * v(8 + 4t + j)), the 5 tiles' 4 channels in v0-v4, a row of U in v28-v31. From the same code in
 * intrinsics (kept below under WGN_NO_ASM, the same arithmetic) GCC 12 -O2 either hoists all 16 U
 * vectors of a 4-channel step and spills accumulators inside the loop, or, with the loads pinned in
 * place, still rotates accumulators between registers across the back edge: 8 extra vector moves per
 * 80 FMAs, on the same pipes. */
#ifndef WGN_NO_ASM

#define WGN_S(x) #x
#define WGN_F(acc, uq, x, l) "fmla v" WGN_S(acc) ".4s, v" WGN_S(uq) ".4s, v" WGN_S(x) ".s[" WGN_S(l) "]\n\t"
/* accumulator of tile t, quarter j */
#define WGN_ACC0_0 8
#define WGN_ACC0_1 9
#define WGN_ACC0_2 10
#define WGN_ACC0_3 11
#define WGN_ACC1_0 12
#define WGN_ACC1_1 13
#define WGN_ACC1_2 14
#define WGN_ACC1_3 15
#define WGN_ACC2_0 16
#define WGN_ACC2_1 17
#define WGN_ACC2_2 18
#define WGN_ACC2_3 19
#define WGN_ACC3_0 20
#define WGN_ACC3_1 21
#define WGN_ACC3_2 22
#define WGN_ACC3_3 23
#define WGN_ACC4_0 24
#define WGN_ACC4_1 25
#define WGN_ACC4_2 26
#define WGN_ACC4_3 27
/* tile t's FMAs for input channel lane l: 4 quarters (nob 2) or 2 */
#define WGN_TILE2(t, l)                                                                                                \
    WGN_F(WGN_ACC##t##_0, 28, t, l)                                                                                   \
    WGN_F(WGN_ACC##t##_1, 29, t, l) WGN_F(WGN_ACC##t##_2, 30, t, l) WGN_F(WGN_ACC##t##_3, 31, t, l)
#define WGN_TILE1(t, l) WGN_F(WGN_ACC##t##_0, 28, t, l) WGN_F(WGN_ACC##t##_1, 29, t, l)
/* input channel l of the 4: its U row (16 or 8 floats at byte offset o, o2 = o + 32), the 5 tiles' FMAs */
#define WGN_LANE2(l, o, o2)                                                                                            \
    "ldp q28, q29, [%[u], #" WGN_S(o) "]\n\t"                                                                         \
    "ldp q30, q31, [%[u], #" WGN_S(o2) "]\n\t" WGN_TILE2(0, l) WGN_TILE2(1, l) WGN_TILE2(2, l) WGN_TILE2(3, l)       \
        WGN_TILE2(4, l)
#define WGN_LANE1(l, o, o2)                                                                                            \
    "ldp q28, q29, [%[u], #" WGN_S(o) "]\n\t" WGN_TILE1(0, l) WGN_TILE1(1, l) WGN_TILE1(2, l) WGN_TILE1(3, l)        \
        WGN_TILE1(4, l)
#define WGN_PF(o) "prfm pldl2keep, [%[pf], #" WGN_S(o) "]\n\t"
#define WGN_NOPF(o) ""
#define WGN_LDV                                                                                                        \
    "ldr q0, [%[v0]], #16\n\t"                                                                                         \
    "ldr q1, [%[v1]], #16\n\t"                                                                                         \
    "ldr q2, [%[v2]], #16\n\t"                                                                                         \
    "ldr q3, [%[v3]], #16\n\t"                                                                                         \
    "ldr q4, [%[v4]], #16\n\t"
#define WGN_ZERO                                                                                                       \
    "movi v8.4s, #0\n\t movi v9.4s, #0\n\t movi v10.4s, #0\n\t movi v11.4s, #0\n\t"                                    \
    "movi v12.4s, #0\n\t movi v13.4s, #0\n\t movi v14.4s, #0\n\t movi v15.4s, #0\n\t"                                  \
    "movi v16.4s, #0\n\t movi v17.4s, #0\n\t movi v18.4s, #0\n\t movi v19.4s, #0\n\t"                                  \
    "movi v20.4s, #0\n\t movi v21.4s, #0\n\t movi v22.4s, #0\n\t movi v23.4s, #0\n\t"                                  \
    "movi v24.4s, #0\n\t movi v25.4s, #0\n\t movi v26.4s, #0\n\t movi v27.4s, #0\n\t"
#define WGN_ST2                                                                                                        \
    "stp q8, q9, [%[m]]\n\t stp q10, q11, [%[m], #32]\n\t add %[m], %[m], %[ms]\n\t"                                   \
    "stp q12, q13, [%[m]]\n\t stp q14, q15, [%[m], #32]\n\t add %[m], %[m], %[ms]\n\t"                                 \
    "stp q16, q17, [%[m]]\n\t stp q18, q19, [%[m], #32]\n\t add %[m], %[m], %[ms]\n\t"                                 \
    "stp q20, q21, [%[m]]\n\t stp q22, q23, [%[m], #32]\n\t add %[m], %[m], %[ms]\n\t"                                 \
    "stp q24, q25, [%[m]]\n\t stp q26, q27, [%[m], #32]\n\t"
#define WGN_ST1                                                                                                        \
    "stp q8, q9, [%[m]]\n\t add %[m], %[m], %[ms]\n\t"                                                                 \
    "stp q12, q13, [%[m]]\n\t add %[m], %[m], %[ms]\n\t"                                                               \
    "stp q16, q17, [%[m]]\n\t add %[m], %[m], %[ms]\n\t"                                                               \
    "stp q20, q21, [%[m]]\n\t add %[m], %[m], %[ms]\n\t"                                                               \
    "stp q24, q25, [%[m]]\n\t"
/* the whole kernel: zero, loop over groups of 4 input channels (n of them, at least 2), store */
#define WGN_ASM(LANE, PF, ST)                                                                                          \
    __asm__ volatile(WGN_ZERO "1:\n\t" WGN_LDV PF(0) LANE(0, 0, 32) PF(64) LANE(1, 64, 96) PF(128)                    \
                         LANE(2, 128, 160) PF(192) LANE(3, 192, 224)                                                   \
                         "add %[u], %[u], #256\n\t"                                                                    \
                         "add %[pf], %[pf], #256\n\t"                                                                  \
                         "subs %[n], %[n], #1\n\t"                                                                     \
                         "b.ne 1b\n\t" ST                                                                              \
                     : [v0] "+r"(v0), [v1] "+r"(v1), [v2] "+r"(v2), [v3] "+r"(v3), [v4] "+r"(v4), [u] "+r"(u),      \
                       [n] "+r"(n), [m] "+r"(m), [pf] "+r"(upf)                                                        \
                     : [ms] "r"(msb)                                                                                   \
                     : "cc", "memory", "v0", "v1", "v2", "v3", "v4", "v8", "v9", "v10", "v11", "v12", "v13", "v14",   \
                       "v15", "v16", "v17", "v18", "v19", "v20", "v21", "v22", "v23", "v24", "v25", "v26", "v27",     \
                       "v28", "v29", "v30", "v31")

WG_INLINE void wg_kernel(const float *v, size_t vs, const float *u, int cp, float *m, size_t ms, const int nob,
                           const int pf, const float *upf)
{
    const float *v0 = v, *v1 = v + vs, *v2 = v + 2 * vs, *v3 = v + 3 * vs, *v4 = v + 4 * vs;
    uint64_t n = (uint64_t)cp / 4;
    const uint64_t msb = (uint64_t)ms * sizeof(float);
    if (nob == 2) {
        if (pf)
            WGN_ASM(WGN_LANE2, WGN_PF, WGN_ST2);
        else
            WGN_ASM(WGN_LANE2, WGN_NOPF, WGN_ST2);
    } else {
        if (pf)
            WGN_ASM(WGN_LANE1, WGN_PF, WGN_ST1);
        else
            WGN_ASM(WGN_LANE1, WGN_NOPF, WGN_ST1);
    }
}

#else /* WGN_NO_ASM: the same kernel in intrinsics */

/* An empty asm with a memory clobber: it emits nothing but keeps GCC from hoisting the next input
 * channel's U loads above this one's FMAs. Without it GCC 12 loads all 16 U vectors of a 4-channel step
 * up front, runs out of registers and spills accumulators inside the loop (seen at -O2); with it the loop
 * has no stack traffic, but 8 register moves per 80 FMAs remain. */
#define WGN_SCHED_FENCE() __asm__ volatile("" ::: "memory")

WG_INLINE void wg_kernel(const float *v, size_t vs, const float *u, int cp, float *m, size_t ms, const int nob,
                           const int pf, const float *upf)
{
    const float32x4_t z = vdupq_n_f32(0.0f);
    float32x4_t a00 = z, a01 = z, a02 = z, a03 = z, a10 = z, a11 = z, a12 = z, a13 = z;
    float32x4_t a20 = z, a21 = z, a22 = z, a23 = z, a30 = z, a31 = z, a32 = z, a33 = z;
    float32x4_t a40 = z, a41 = z, a42 = z, a43 = z;
    const float *v0 = v, *v1 = v + vs, *v2 = v + 2 * vs, *v3 = v + 3 * vs, *v4 = v + 4 * vs;
    for (int c = 0; c < cp; c += 4) {
        const float32x4_t x0 = vld1q_f32(v0 + c), x1 = vld1q_f32(v1 + c), x2 = vld1q_f32(v2 + c);
        const float32x4_t x3 = vld1q_f32(v3 + c), x4 = vld1q_f32(v4 + c);
#define WGN_ROW(r, l)                                                                                                  \
    a##r##0 = vfmaq_laneq_f32(a##r##0, u0, x##r, l);                                                                   \
    a##r##1 = vfmaq_laneq_f32(a##r##1, u1, x##r, l);                                                                   \
    if (nob == 2) {                                                                                                    \
        a##r##2 = vfmaq_laneq_f32(a##r##2, u2, x##r, l);                                                               \
        a##r##3 = vfmaq_laneq_f32(a##r##3, u3, x##r, l);                                                               \
    }
#define WGN_LANE(l)                                                                                                    \
    {                                                                                                                  \
        const float *ul = u + (size_t)(c + l) * 16;                                                                    \
        if (pf)                                                                                                        \
            __builtin_prefetch(upf + (size_t)(c + l) * 16, 0, 2);                                                      \
        const float32x4_t u0 = vld1q_f32(ul), u1 = vld1q_f32(ul + 4);                                                  \
        const float32x4_t u2 = nob == 2 ? vld1q_f32(ul + 8) : u0, u3 = nob == 2 ? vld1q_f32(ul + 12) : u1;           \
        WGN_ROW(0, l)                                                                                                  \
        WGN_ROW(1, l)                                                                                                  \
        WGN_ROW(2, l)                                                                                                  \
        WGN_ROW(3, l)                                                                                                  \
        WGN_ROW(4, l)                                                                                                  \
        WGN_SCHED_FENCE();                                                                                             \
    }
        WGN_LANE(0)
        WGN_LANE(1)
        WGN_LANE(2)
        WGN_LANE(3)
#undef WGN_LANE
#undef WGN_ROW
    }
#define WGN_STORE(r)                                                                                                   \
    vst1q_f32(m + r * ms, a##r##0);                                                                                    \
    vst1q_f32(m + r * ms + 4, a##r##1);                                                                                \
    if (nob == 2) {                                                                                                    \
        vst1q_f32(m + r * ms + 8, a##r##2);                                                                            \
        vst1q_f32(m + r * ms + 12, a##r##3);                                                                           \
    }
    WGN_STORE(0)
    WGN_STORE(1)
    WGN_STORE(2)
    WGN_STORE(3)
    WGN_STORE(4)
#undef WGN_STORE
}

#endif

/* ---------------------------------------------------------------------------------------------------- */
/* step 3: epilogues                                                                                    */

/* The per-block state of the epilogue, per 4-lane half: lane masks of the last block's real channels,
 * folded BatchNorm, and the statistics (sum of lanes 0-1, 2-3, 4-5, 6-7, then the same for sumsq). */
typedef struct wg_epi_blk {
    uint32x4_t mask[2];
    float32x4_t scale[2], shift[2];
    float64x2_t st[8];
} wg_epi_blk;

/* Lanes 4*half .. 4*half + 3 of channel block kb that hold real channels (of k): all ones. */
static inline uint32x4_t wg_lane_mask(int k, int kb, int half)
{
    static const int32_t idx[4] = {0, 1, 2, 3};
    const int nl = k - kb * WG_BLK - half * 4;
    return vcgtq_s32(vdupq_n_s32(nl), vld1q_s32(idx));
}

/* Stores one 4-lane output vector at yp (half h of its pixel) with the epilogue: masked clears the padding
 * lanes of the last block (WG_EPI_ADD keeps their old bits instead), WG_EPI_BN_RELU applies the folded
 * BatchNorm and ReLU, WG_EPI_STATS adds val and val^2 in double. */
WG_INLINE void wg_store_out(float *yp, float32x4_t val, const int epi, int masked, wg_epi_blk *eb, const int h)
{
    if (epi == WG_EPI_ADD) {
        const float32x4_t old = vld1q_f32(yp);
        const float32x4_t sum = vaddq_f32(old, val);
        val = masked ? vbslq_f32(eb->mask[h], sum, old) : sum;
    } else if (epi == WG_EPI_BN_RELU) {
        val = vmaxq_f32(vfmaq_f32(eb->shift[h], val, eb->scale[h]), vdupq_n_f32(0.0f));
    } else if (masked) {
        val = vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(val), eb->mask[h]));
    }
    vst1q_f32(yp, val);
    if (epi == WG_EPI_STATS) {
        const float64x2_t lo = vcvt_f64_f32(vget_low_f32(val)), hi = vcvt_high_f64_f32(val);
        eb->st[2 * h] = vaddq_f64(eb->st[2 * h], lo);
        eb->st[2 * h + 1] = vaddq_f64(eb->st[2 * h + 1], hi);
        eb->st[4 + 2 * h] = vfmaq_f64(eb->st[4 + 2 * h], lo, lo);
        eb->st[4 + 2 * h + 1] = vfmaq_f64(eb->st[4 + 2 * h + 1], hi, hi);
    }
}

WG_INLINE void wg_epi_blk_init(wg_epi_blk *eb, const wg_plan *p, const wg_epi_args *ea, int kb, const int epi)
{
    for (int h = 0; h < 2; h++) {
        eb->mask[h] = wg_lane_mask(p->k, kb, h);
        eb->scale[h] = eb->shift[h] = vdupq_n_f32(0.0f);
        if (epi == WG_EPI_BN_RELU) {
            eb->scale[h] = vld1q_f32(ea->scale + (size_t)kb * WG_BLK + h * 4);
            eb->shift[h] = vld1q_f32(ea->shift + (size_t)kb * WG_BLK + h * 4);
        }
    }
    for (int i = 0; i < 8; i++)
        eb->st[i] = vdupq_n_f64(0.0);
}

/* The block's statistics as [sum 8, sumsq 8] at pk. */
WG_INLINE void wg_epi_blk_stats(const wg_epi_blk *eb, double *pk)
{
    for (int i = 0; i < 8; i++)
        vst1q_f64(pk + 2 * i, eb->st[i]);
}

/* The register tile of the backward-weights products (common/winograd_bwd_weights_driver.h):
 * mw[i][0..8*nob) += sum over t < nt of v[4 t + i] * e[16 t + 0..8*nob) for the 4 input channels i of a
 * panel, each sum in tile order into one accumulator (as on AVX2, the same FMAs in the same order). Per
 * tile, one q load of the V panel serves 16 FMAs by lane into 16 accumulators with a row of E (4 q
 * registers). Intrinsics: unlike the forward tile, this loop is not the bulk of a training step. */
WG_INLINE void wg_bww_kernel(const float *v, const float *e, int nt, float *mw, size_t ms, const int nob)
{
    float32x4_t acc[4][4];
    for (int i = 0; i < 4; i++)
        for (int q = 0; q < 4; q++)
            acc[i][q] = vdupq_n_f32(0.0f);
    const int nq = 2 * nob;
    for (int t = 0; t < nt; t++) {
        const float32x4_t vq = vld1q_f32(v + (size_t)t * 4);
        const float *et = e + (size_t)t * 16;
        float32x4_t eq[4];
        for (int q = 0; q < nq; q++)
            eq[q] = vld1q_f32(et + 4 * q);
        for (int q = 0; q < nq; q++) {
            acc[0][q] = vfmaq_laneq_f32(acc[0][q], eq[q], vq, 0);
            acc[1][q] = vfmaq_laneq_f32(acc[1][q], eq[q], vq, 1);
            acc[2][q] = vfmaq_laneq_f32(acc[2][q], eq[q], vq, 2);
            acc[3][q] = vfmaq_laneq_f32(acc[3][q], eq[q], vq, 3);
        }
    }
    for (int i = 0; i < 4; i++)
        for (int q = 0; q < nq; q++)
            vst1q_f32(mw + i * ms + 4 * q, vaddq_f32(vld1q_f32(mw + i * ms + 4 * q), acc[i][q]));
}

#include "common/winograd_driver.h"
#include "common/winograd_bwd_weights_driver.h"

WG_DEFINE_ALL()
WG_DEFINE_BWD_WEIGHTS_ALL()
