/* The ISA-independent driver of the Winograd backward-weights pass: dw = dL/dw of y = conv(x, w) from x
 * and dy, for every variant F(MH x MW, RH x RW) of common/winograd_driver.h.
 *
 * Method. A tile's forward output is y = A^T [(G g) . (B^T d)] (A^T the output transform, G the filter
 * transform, B^T the input transform, d the tile's input, . the element-wise product), linear in g, so
 * its gradient with respect to g is the transpose of that map applied to the tile's e = dy:
 *     dg = G^T [(A e) . (B^T d)],
 * exactly, with the forward's own matrices; in 2-D each of them is applied along both dimensions. Summed
 * over the tiles, the sum moves inside G^T: per transformed position, Mw[c][k] = sum over tiles of
 * V[tile][c] * E[tile][k] with V = B^T d (the forward's input transform, wg_input_tile) and E = A e (A
 * evaluates e, as a polynomial, at the transform's points; the point at infinity takes its last
 * coefficient), one long product per position; dw = G^T Mw G then once per call, in double. The work
 * is the forward's: alpha^2 products per m^2 outputs instead of r^2.
 *
 * Work split, per chunk of tiles (WG_BWW_BYTES says how many):
 *   A. every thread transforms some of the chunk's tiles into V[pos][c / 4][tile][4] (panels of 4 input
 *      channels) and E[pos][k / 16][tile][16] (output block pairs);
 *   B. every thread takes (position, output block pairs) items and adds the chunk's products to
 *      Mw[pos][c][kp], in sub-chunks of tiles whose V fits a core's L2 (WG_BWW_SUB_BYTES), with the
 *      ISA's register tile wg_bww_kernel: 4 input channels x 16 output channels, each a sum over the
 *      sub-chunk's tiles in order into one accumulator, then added to Mw. The panels make both of its
 *      operands one sequential stream (with V and E stored tile by tile, every tile of a panel took a
 *      new cache line of each: 1.6x slower on 384 channels);
 * then C. G^T Mw G into dw, per (output block, input block).
 * The chunk and sub-chunk sizes come from the shape alone, so every dw element is summed in the same
 * order for any thread count: bitwise the same results. (The ISAs' register tiles run the same fused
 * multiply-adds in the same order, but the results have not been compared bitwise across ISAs.)
 *
 * The including file defines, besides what common/winograd_driver.h needs (included before this):
 *   wg_vset1(f), wg_vadd(a, b), wg_vsub(a, b), wg_vfma(a, b, c) (a * b + c, fused)
 *   wg_bww_kernel(v, e, nt, mw, ms, nob)  mw[i][0 .. 8 nob) += sum over t < nt of
 *       v[4 t + i] * e[16 t + 0 .. 8 nob), for i < 4 (rows ms floats apart)
 */
#ifndef INCV3_WINOGRAD_BWD_WEIGHTS_DRIVER_H
#define INCV3_WINOGRAD_BWD_WEIGHTS_DRIVER_H

#include <omp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Bytes of V and E one chunk takes (all positions): what phase A writes stays in the caches for phase B
 * to read (measured on the 64 -> 96 3x3 layer at 35x35, batch 32, one Zen 4 core, with V and E then
 * stored tile by tile rather than in panels: 15.7 ms with 2 MiB chunks, 18.5 ms with 4 MiB, 22.8 ms with
 * 32 MiB, 16.2 ms with 1 MiB). Where Mw is larger than half of that, the chunk is twice Mw instead, so
 * that reading and writing Mw once per chunk never outweighs V and E (the 384-channel layers: 2 MiB
 * chunks made them 3.5x slower, same layout). */
#ifndef WG_BWW_BYTES
#define WG_BWW_BYTES (2u << 20)
#endif
/* Bytes of V (one position) per sub-chunk of phase B: stays in L2 while it serves every input block of
 * the item. */
#ifndef WG_BWW_SUB_BYTES
#define WG_BWW_SUB_BYTES (96 * 1024)
#endif

/* The transform's points in the order of winograd_transforms_*.h: 0, +-1, +-2, +-1/2, +-3/4, then
 * infinity (index alpha - 1). */
WG_INLINE double wg_point(const int a)
{
    static const double mag[] = {0.0, 1.0, 2.0, 0.5, 0.75};
    return a == 0 ? 0.0 : (a % 2 ? mag[(a + 1) / 2] : -mag[(a + 1) / 2]);
}

/* E = A e along one dimension: m values (one vector each) in, alpha out; out[a] = sum_j p_a^j e[j] at the
 * finite points, e[m - 1] at infinity. The pairs +-p share their even and odd parts. alpha and m are
 * compile-time constants, so the powers fold. */
WG_INLINE void wg_eval_1d(const int m, const int alpha, const wg_vec *e, wg_vec *out)
{
    if (alpha == 1) {
        out[0] = e[0];
        return;
    }
    out[0] = e[0];
    for (int a = 1; a + 1 < alpha; a += 2) {
        const double p = wg_point(a);
        wg_vec ev = e[0], od = wg_vzero();
        double pw = 1.0;
        for (int j = 1; j < m; j++) {
            pw *= p;
            if (j % 2)
                od = wg_vfma(wg_vset1((float)pw), e[j], od);
            else
                ev = wg_vfma(wg_vset1((float)pw), e[j], ev);
        }
        out[a] = wg_vadd(ev, od);
        out[a + 1] = wg_vsub(ev, od);
    }
    out[alpha - 1] = e[m - 1];
}

/* Transforms output block kb of dy's tile tl into E (e at position 0, this tile, block kb; positions
 * e_pos floats apart): the tile's MH x MW values, zero past the output's edges, along w, then along h. */
WG_INLINE void wg_dy_tile(const int MH, const int RH, const int MW, const int RW, const wg_plan *p,
                          const float *dy8c, wg_tile tl, int kb, float *e, size_t e_pos)
{
    const int AH = MH + RH - 1, AW = MW + RW - 1;
    const int mi = p->oh - tl.oh0 < MH ? p->oh - tl.oh0 : MH, mj = p->ow - tl.ow0 < MW ? p->ow - tl.ow0 : MW;
    const size_t y_row = (size_t)p->ow * WG_BLK;
    const float *yb = dy8c + (((size_t)tl.n * p->kb + kb) * p->oh + tl.oh0) * y_row + (size_t)tl.ow0 * WG_BLK;
    for (int h = 0; h < WG_HALVES; h++) {
        wg_vec t[WG_AMAX][WG_AMAX]; /* [tile row][position along w] */
        if (mi == MH && mj == MW) {
            for (int i = 0; i < MH; i++) {
                wg_vec row[WG_AMAX];
                for (int j = 0; j < MW; j++)
                    row[j] = wg_vload(yb + (size_t)i * y_row + (size_t)j * WG_BLK + h * WG_VL);
                wg_eval_1d(MW, AW, row, t[i]);
            }
        } else {
            for (int i = 0; i < MH; i++) {
                wg_vec row[WG_AMAX];
                for (int j = 0; j < MW; j++)
                    row[j] = i < mi && j < mj ? wg_vload(yb + (size_t)i * y_row + (size_t)j * WG_BLK + h * WG_VL)
                                              : wg_vzero();
                wg_eval_1d(MW, AW, row, t[i]);
            }
        }
        for (int b = 0; b < AW; b++) {
            wg_vec col[WG_AMAX], o[WG_AMAX];
            for (int i = 0; i < MH; i++)
                col[i] = t[i][b];
            wg_eval_1d(MH, AH, col, o);
            for (int a = 0; a < AH; a++)
                wg_vstore(e + (size_t)(a * AW + b) * e_pos + h * WG_VL, o[a]);
        }
    }
}

/* Entry (a, j) of G of F(m, r), alpha = m + r - 1, in double: p_a^j / N_a(p_a) at the finite points (N_a
 * the product of p_a - p_b over the other finite points), e_(r-1) at infinity; alpha 1 is [1]. The same
 * matrix the ISAs' wg_filter_1d applies. With constant arguments (always, after inlining and unrolling)
 * it folds to a constant. */
WG_INLINE double wg_g_entry(const int alpha, const int r, const int a, const int j)
{
    if (alpha == 1)
        return 1.0;
    if (a == alpha - 1)
        return j == r - 1 ? 1.0 : 0.0;
    const double p = wg_point(a);
    double den = 1.0, pw = 1.0;
    for (int b = 0; b + 1 < alpha; b++)
        if (b != a)
            den *= p - wg_point(b);
    for (int i = 0; i < j; i++)
        pw *= p;
    return pw / den;
}

/* The plan of a backward-weights call: the forward's tiling (wg_make_plan), chunks of ct tiles, sub-chunks
 * of st tiles. V holds cp / 4 panels of ct x 4 floats per position, E kbp pairs of ct x 16, Mw cp rows of
 * kp. */
typedef struct wg_bww_plan {
    wg_plan f;
    int ct, nchunks, st;
    size_t v_pos, e_pos, mw_pos; /* floats per position of V, E (one chunk) and Mw */
} wg_bww_plan;

WG_INLINE wg_bww_plan wg_bww_make_plan(const int MH, const int RH, const int MW, const int RW,
                                       const incv3_conv_shape *s)
{
    const int NPOS = (MH + RH - 1) * (MW + RW - 1);
    wg_bww_plan b;
    b.f = wg_make_plan(MH, RH, MW, RW, s);
    const size_t per_tile = (size_t)NPOS * (b.f.cp + b.f.kp) * sizeof(float);
    const size_t mw_bytes = (size_t)NPOS * b.f.cp * b.f.kp * sizeof(float);
    const size_t chunk_bytes = WG_BWW_BYTES > 2 * mw_bytes ? WG_BWW_BYTES : 2 * mw_bytes;
    int ct = (int)(chunk_bytes / per_tile);
    if (ct < 8)
        ct = 8;
    if (ct > b.f.nt)
        ct = b.f.nt;
    b.nchunks = (b.f.nt + ct - 1) / ct;
    b.ct = (b.f.nt + b.nchunks - 1) / b.nchunks;
    b.st = (int)(WG_BWW_SUB_BYTES / ((size_t)b.f.cp * sizeof(float)));
    if (b.st < 16)
        b.st = 16;
    if (b.st > 256)
        b.st = 256;
    b.v_pos = (size_t)b.ct * b.f.cp;
    b.e_pos = (size_t)b.ct * b.f.kbp * 16;
    b.mw_pos = (size_t)b.f.cp * b.f.kp;
    /* the transforms address V through the plan's v_pos */
    b.f.v_pos = b.v_pos;
    return b;
}

/* Phase B for one position and output block pairs [kbp0, kbp1): the chunk's nt tiles added into Mw. Per
 * sub-chunk of tiles, its V panels (in L2) serve every block pair of the item. */
WG_INLINE void wg_bww_item(const wg_bww_plan *b, int nt, const float *vp, const float *ep, float *mwp, int kbp0,
                           int kbp1)
{
    const wg_plan *p = &b->f;
    const size_t panel = (size_t)b->ct * 4, pair = (size_t)b->ct * 16;
    for (int t0 = 0; t0 < nt; t0 += b->st) {
        const int n = nt - t0 < b->st ? nt - t0 : b->st;
        for (int kbp = kbp0; kbp < kbp1; kbp++) {
            const float *et = ep + (size_t)kbp * pair + (size_t)t0 * 16;
            float *mk = mwp + (size_t)kbp * 16;
            if (p->kb - 2 * kbp >= 2)
                for (int c0 = 0; c0 < p->cp; c0 += 4)
                    wg_bww_kernel(vp + (size_t)(c0 / 4) * panel + (size_t)t0 * 4, et, n, mk + (size_t)c0 * p->kp,
                                  p->kp, 2);
            else
                for (int c0 = 0; c0 < p->cp; c0 += 4)
                    wg_bww_kernel(vp + (size_t)(c0 / 4) * panel + (size_t)t0 * 4, et, n, mk + (size_t)c0 * p->kp,
                                  p->kp, 1);
        }
    }
}

/* Parts the output block pairs of each position are cut into in phase B, so that every thread has work
 * when the positions are few (the 1-D variants have 4 to 10): as wg_k_parts, a split that never reorders
 * a sum. */
static int wg_bww_k_parts(const wg_plan *p, int npos, int threads)
{
    int parts = (2 * threads + npos - 1) / npos;
    return parts < 1 ? 1 : parts < p->kbp ? parts : p->kbp;
}

/* Phase C for output block kb and input block cb: the real channel pairs' taps of dw (OIHW) from Mw
 * (G^T Mw G per channel pair, in double). */
WG_INLINE void wg_bww_finish(const int MH, const int RH, const int MW, const int RW, const wg_bww_plan *b,
                             const float *mw, int kb, int cb, float *dw)
{
    const int AH = MH + RH - 1, AW = MW + RW - 1;
    const wg_plan *p = &b->f;
    for (int i = 0; i < WG_BLK; i++) {
        const int c = cb * WG_BLK + i;
        if (c >= p->c)
            break;
        const float *src = mw + (size_t)c * p->kp + (size_t)kb * WG_BLK;
        /* t[a][q][o]: the positions' values transformed along w */
        double t[WG_AMAX][7][WG_BLK];
#pragma GCC unroll 10
        for (int a = 0; a < AH; a++) {
#pragma GCC unroll 7
            for (int q = 0; q < RW; q++) {
                double acc[WG_BLK] = {0};
#pragma GCC unroll 10
                for (int bb = 0; bb < AW; bb++) {
                    const double g = wg_g_entry(AW, RW, bb, q);
                    if (g == 0.0)
                        continue;
                    const float *m = src + (size_t)(a * AW + bb) * b->mw_pos;
                    for (int o = 0; o < WG_BLK; o++)
                        acc[o] += g * (double)m[o];
                }
                memcpy(t[a][q], acc, sizeof acc);
            }
        }
#pragma GCC unroll 7
        for (int r = 0; r < RH; r++)
#pragma GCC unroll 7
            for (int q = 0; q < RW; q++) {
                double acc[WG_BLK] = {0};
#pragma GCC unroll 10
                for (int a = 0; a < AH; a++) {
                    const double g = wg_g_entry(AH, RH, a, r);
                    if (g == 0.0)
                        continue;
                    for (int o = 0; o < WG_BLK; o++)
                        acc[o] += g * t[a][q][o];
                }
                for (int o = 0; o < WG_BLK && kb * WG_BLK + o < p->k; o++)
                    dw[(((size_t)kb * WG_BLK + o) * p->c + c) * RH * RW + r * RW + q] = (float)acc[o];
            }
    }
}

/* The whole pass, run by every thread of the caller's parallel region; scratch from the caller: V and E
 * of one chunk, Mw. */
WG_INLINE void wg_bww_run(const int MH, const int RH, const int MW, const int RW, const wg_bww_plan *b,
                          const float *x8c, const float *dy8c, float *v, float *e, float *mw, float *dw)
{
    const int AH = MH + RH - 1, AW = MW + RW - 1, NPOS = AH * AW;
    const wg_plan *p = &b->f;
    const int parts = wg_bww_k_parts(p, NPOS, omp_get_num_threads());
#pragma omp for schedule(static)
    for (int pos = 0; pos < NPOS; pos++)
        memset(mw + (size_t)pos * b->mw_pos, 0, b->mw_pos * sizeof(float));
    for (int chunk = 0; chunk < b->nchunks; chunk++) {
        const int t0 = chunk * b->ct, nt = p->nt - t0 < b->ct ? p->nt - t0 : b->ct;
        {
            /* This thread's tiles, one channel block at a time over all of them, as the forward's groups
             * do. Which thread transforms a tile changes no value. */
            const int nth = omp_get_num_threads(), me = omp_get_thread_num();
            const int i0 = (int)((long)nt * me / nth), i1 = (int)((long)nt * (me + 1) / nth);
            const size_t panel = (size_t)b->ct * 4, pair = (size_t)b->ct * 16;
            for (int cb = 0; cb < p->cb; cb++)
                for (int i = i0; i < i1; i++)
                    wg_input_tile(MH, RH, MW, RW, p, x8c, wg_tile_at(MH, MW, p, t0 + i), cb,
                                  v + (size_t)(2 * cb) * panel + (size_t)i * 4, panel);
            for (int kb = 0; kb < p->kb; kb++)
                for (int i = i0; i < i1; i++)
                    wg_dy_tile(MH, RH, MW, RW, p, dy8c, wg_tile_at(MH, MW, p, t0 + i), kb,
                               e + (size_t)(kb / 2) * pair + (size_t)i * 16 + (size_t)(kb % 2) * WG_BLK, b->e_pos);
        }
#pragma omp barrier
#pragma omp for schedule(static)
        for (int item = 0; item < NPOS * parts; item++) {
            const int pos = item / parts, part = item % parts;
            wg_bww_item(b, nt, v + (size_t)pos * b->v_pos, e + (size_t)pos * b->e_pos, mw + (size_t)pos * b->mw_pos,
                        p->kbp * part / parts, p->kbp * (part + 1) / parts);
        }
    }
    /* input blocks outer: the two output blocks of a 64-byte line of Mw are read one after the other */
#pragma omp for collapse(2) schedule(static)
    for (int cb = 0; cb < p->cb; cb++)
        for (int kb = 0; kb < p->kb; kb++)
            wg_bww_finish(MH, RH, MW, RW, b, mw, kb, cb, dw);
}

/* The backward-weights entry point of variant V = F(MH x MW, RH x RW) (its region opened here, as in
 * WG_DEFINE). dw (OIHW, k x c) is overwritten. */
#define WG_DEFINE_BWD_WEIGHTS(V, MH, RH, MW, RW)                                                                       \
    size_t ISA_NAME(conv_bwd_weights_f32_winograd_##V##_scratch_floats__)(const incv3_conv_shape *s)                   \
    {                                                                                                                  \
        const int NPOS_ = (MH + RH - 1) * (MW + RW - 1);                                                               \
        const wg_bww_plan b = wg_bww_make_plan(MH, RH, MW, RW, s);                                                     \
        return (size_t)NPOS_ * (b.v_pos + b.e_pos + b.mw_pos);                                                         \
    }                                                                                                                  \
    void ISA_NAME(conv_bwd_weights_f32_winograd_##V##__)(const incv3_conv_shape *s, const float *x8c,                  \
                                                        const float *dy8c, float *dw)                                  \
    {                                                                                                                  \
        const int NPOS_ = (MH + RH - 1) * (MW + RW - 1);                                                               \
        const wg_bww_plan b = wg_bww_make_plan(MH, RH, MW, RW, s);                                                     \
        const size_t v_floats = (size_t)NPOS_ * b.v_pos, e_floats = (size_t)NPOS_ * b.e_pos;                          \
        float *v = wg_alloc(ISA_NAME(conv_bwd_weights_f32_winograd_##V##_scratch_floats__)(s) * sizeof(float),        \
                            "conv_bwd_weights_f32_winograd_" #V "__" KERNEL_ISA_STR);                                  \
        float *e = v + v_floats, *mw = e + e_floats;                                                                   \
        _Pragma("omp parallel") wg_bww_run(MH, RH, MW, RW, &b, x8c, dy8c, v, e, mw, dw);                               \
        free(v);                                                                                                       \
    }

#define WG_DEFINE_BWD_WEIGHTS_ALL() WG_VARIANTS(WG_DEFINE_BWD_WEIGHTS)

#endif
