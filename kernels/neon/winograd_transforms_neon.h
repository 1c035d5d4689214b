/* The 1-D Winograd transforms of F(m, r), alpha = m + r - 1, as straight-line NEON code on float32x4_t:
 * 4 channels per vector, so the callers run each transform twice per 8-channel block of the blocked
 * layouts (the transforms are lane-wise, so halves are independent; two halves also keep the alpha 10
 * tiles' working set within the 32 q registers more often than 8-lane pairs would).
 *
 * The same interpolation points, matrices, operation order and fused multiply-adds as the AVX2
 * transforms (avx2/winograd_transforms_avx2.h explains the point sets, their error measurements and the
 * pairing of symmetric points): every lane rounds exactly as the AVX2 code does, which keeps the NEON
 * kernels within the AVX2 tests' tolerances by construction. fmadd(c, x, y) there is vfmaq_n_f32(y, x, c)
 * here and fnmadd(c, x, y) is vfmsq_n_f32(y, x, c) (both single-rounding on AArch64).
 *
 * Include only from AArch64 sources. */
#ifndef INCV3_WINOGRAD_TRANSFORMS_NEON_H
#define INCV3_WINOGRAD_TRANSFORMS_NEON_H

#include <arm_neon.h>

#define WGN_INLINE static inline __attribute__((always_inline))

/* ---- input transforms B^T d, in place on alpha vectors ---- */

WGN_INLINE void wgn_bt4(float32x4_t *d)
{
    const float32x4_t d0 = d[0], d1 = d[1], d2 = d[2], d3 = d[3];
    d[0] = vsubq_f32(d2, d0);
    d[1] = vaddq_f32(d2, d1);
    d[2] = vsubq_f32(d2, d1);
    d[3] = vsubq_f32(d3, d1);
}

WGN_INLINE void wgn_bt6(float32x4_t *d)
{
    const float32x4_t d0 = d[0], d1 = d[1], d2 = d[2], d3 = d[3], d4 = d[4], d5 = d[5];
    /* pair 1: x^4 - 4x^2 on the even taps, p * (x^3 - 4x) on the odd ones */
    const float32x4_t e1 = vfmsq_n_f32(d4, d2, 4.0f), o1 = vfmsq_n_f32(d3, d1, 4.0f);
    /* pair 2: x^4 - x^2, p = 2 */
    const float32x4_t e2 = vsubq_f32(d4, d2), o2 = vsubq_f32(d3, d1);
    d[0] = vfmaq_n_f32(vfmsq_n_f32(d4, d2, 5.0f), d0, 4.0f);
    d[1] = vaddq_f32(e1, o1);
    d[2] = vsubq_f32(e1, o1);
    d[3] = vfmaq_n_f32(e2, o2, 2.0f);
    d[4] = vfmsq_n_f32(e2, o2, 2.0f);
    d[5] = vfmaq_n_f32(vfmsq_n_f32(d5, d3, 5.0f), d1, 4.0f);
}

WGN_INLINE void wgn_bt8(float32x4_t *d)
{
    const float32x4_t d0 = d[0], d1 = d[1], d2 = d[2], d3 = d[3], d4 = d[4], d5 = d[5], d6 = d[6], d7 = d[7];
    /* pair 1: x^6 - 17/4 x^4 + x^2 */
    const float32x4_t e1 = vfmsq_n_f32(vaddq_f32(d2, d6), d4, 4.25f);
    const float32x4_t o1 = vfmsq_n_f32(vaddq_f32(d1, d5), d3, 4.25f);
    /* pair 2: x^6 - 5/4 x^4 + 1/4 x^2, p = 2 */
    const float32x4_t e2 = vfmaq_n_f32(vfmsq_n_f32(d6, d4, 1.25f), d2, 0.25f);
    const float32x4_t o2 = vfmaq_n_f32(vfmsq_n_f32(d5, d3, 1.25f), d1, 0.25f);
    /* pair 1/2: x^6 - 5 x^4 + 4 x^2, p = 1/2 */
    const float32x4_t e3 = vfmaq_n_f32(vfmsq_n_f32(d6, d4, 5.0f), d2, 4.0f);
    const float32x4_t o3 = vfmaq_n_f32(vfmsq_n_f32(d5, d3, 5.0f), d1, 4.0f);
    /* 0 and infinity: x^6 - 21/4 x^4 + 21/4 x^2 - 1 */
    d[0] = vfmaq_n_f32(vsubq_f32(d6, d0), vsubq_f32(d2, d4), 5.25f);
    d[1] = vaddq_f32(e1, o1);
    d[2] = vsubq_f32(e1, o1);
    d[3] = vfmaq_n_f32(e2, o2, 2.0f);
    d[4] = vfmsq_n_f32(e2, o2, 2.0f);
    d[5] = vfmaq_n_f32(e3, o3, 0.5f);
    d[6] = vfmsq_n_f32(e3, o3, 0.5f);
    d[7] = vfmaq_n_f32(vsubq_f32(d7, d1), vsubq_f32(d3, d5), 5.25f);
}

/* x^8 + a x^6 + b x^4 + c x^2 on taps t8, t6, t4, t2: independent FMAs into the leading tap, in the AVX2
 * order. */
WGN_INLINE float32x4_t wgn_poly4(float32x4_t t8, float32x4_t t6, float32x4_t t4, float32x4_t t2, float a, float b,
                                 float c)
{
    return vfmaq_n_f32(vfmaq_n_f32(vfmaq_n_f32(t8, t6, a), t4, b), t2, c);
}

WGN_INLINE void wgn_bt10(float32x4_t *d)
{
    const float32x4_t d0 = d[0], d1 = d[1], d2 = d[2], d3 = d[3], d4 = d[4], d5 = d[5], d6 = d[6], d7 = d[7];
    const float32x4_t d8 = d[8], d9 = d[9];
    /* pair 1: x^8 - 77/16 x^6 + 217/64 x^4 - 9/16 x^2 */
    const float32x4_t e1 = wgn_poly4(d8, d6, d4, d2, -77.0f / 16, 217.0f / 64, -9.0f / 16);
    const float32x4_t o1 = wgn_poly4(d7, d5, d3, d1, -77.0f / 16, 217.0f / 64, -9.0f / 16);
    /* pair 2: x^8 - 29/16 x^6 + 61/64 x^4 - 9/64 x^2, p = 2 */
    const float32x4_t e2 = wgn_poly4(d8, d6, d4, d2, -29.0f / 16, 61.0f / 64, -9.0f / 64);
    const float32x4_t o2 = wgn_poly4(d7, d5, d3, d1, -29.0f / 16, 61.0f / 64, -9.0f / 64);
    /* pair 1/2: x^8 - 89/16 x^6 + 109/16 x^4 - 9/4 x^2, p = 1/2 */
    const float32x4_t e3 = wgn_poly4(d8, d6, d4, d2, -89.0f / 16, 109.0f / 16, -9.0f / 4);
    const float32x4_t o3 = wgn_poly4(d7, d5, d3, d1, -89.0f / 16, 109.0f / 16, -9.0f / 4);
    /* pair 3/4: x^8 - 21/4 x^6 + 21/4 x^4 - x^2, p = 3/4 */
    const float32x4_t e4 = vfmaq_n_f32(vsubq_f32(d8, d2), vsubq_f32(d4, d6), 5.25f);
    const float32x4_t o4 = vfmaq_n_f32(vsubq_f32(d7, d1), vsubq_f32(d3, d5), 5.25f);
    /* 0 and infinity: x^8 - 93/16 x^6 + 525/64 x^4 - 253/64 x^2 + 9/16 */
    d[0] = vfmaq_n_f32(wgn_poly4(d8, d6, d4, d2, -93.0f / 16, 525.0f / 64, -253.0f / 64), d0, 9.0f / 16);
    d[1] = vaddq_f32(e1, o1);
    d[2] = vsubq_f32(e1, o1);
    d[3] = vfmaq_n_f32(e2, o2, 2.0f);
    d[4] = vfmsq_n_f32(e2, o2, 2.0f);
    d[5] = vfmaq_n_f32(e3, o3, 0.5f);
    d[6] = vfmsq_n_f32(e3, o3, 0.5f);
    d[7] = vfmaq_n_f32(e4, o4, 0.75f);
    d[8] = vfmsq_n_f32(e4, o4, 0.75f);
    d[9] = vfmaq_n_f32(wgn_poly4(d9, d7, d5, d3, -93.0f / 16, 525.0f / 64, -253.0f / 64), d1, 9.0f / 16);
}

/* B^T of size alpha (a compile-time constant at every call); alpha 1 is the untransformed dimension. */
WGN_INLINE void wgn_input_1d(const int alpha, float32x4_t *d)
{
    switch (alpha) {
    case 4:
        wgn_bt4(d);
        break;
    case 6:
        wgn_bt6(d);
        break;
    case 8:
        wgn_bt8(d);
        break;
    case 10:
        wgn_bt10(d);
        break;
    default:
        break;
    }
}

/* ---- output transforms A^T m: alpha vectors in, m vectors out ---- */

WGN_INLINE void wgn_at_2_4(const float32x4_t *s, float32x4_t *y)
{
    y[0] = vaddq_f32(s[0], vaddq_f32(s[1], s[2]));
    y[1] = vaddq_f32(vsubq_f32(s[1], s[2]), s[3]);
}

WGN_INLINE void wgn_at_4_6(const float32x4_t *s, float32x4_t *y)
{
    const float32x4_t s1 = vaddq_f32(s[1], s[2]), d1 = vsubq_f32(s[1], s[2]);
    const float32x4_t s2 = vaddq_f32(s[3], s[4]), d2 = vsubq_f32(s[3], s[4]);
    y[0] = vaddq_f32(vaddq_f32(s[0], s1), s2);
    y[1] = vfmaq_n_f32(d1, d2, 2.0f);
    y[2] = vfmaq_n_f32(s1, s2, 4.0f);
    y[3] = vaddq_f32(vfmaq_n_f32(d1, d2, 8.0f), s[5]);
}

WGN_INLINE void wgn_at_6_8(const float32x4_t *s, float32x4_t *y)
{
    const float32x4_t s1 = vaddq_f32(s[1], s[2]), d1 = vsubq_f32(s[1], s[2]);
    const float32x4_t s2 = vaddq_f32(s[3], s[4]), d2 = vsubq_f32(s[3], s[4]);
    const float32x4_t s3 = vaddq_f32(s[5], s[6]), d3 = vsubq_f32(s[5], s[6]);
    y[0] = vaddq_f32(vaddq_f32(s[0], s1), vaddq_f32(s2, s3));
    y[1] = vfmaq_n_f32(vfmaq_n_f32(d1, d2, 2.0f), d3, 0.5f);
    y[2] = vfmaq_n_f32(vfmaq_n_f32(s1, s2, 4.0f), s3, 0.25f);
    y[3] = vfmaq_n_f32(vfmaq_n_f32(d1, d2, 8.0f), d3, 0.125f);
    y[4] = vfmaq_n_f32(vfmaq_n_f32(s1, s2, 16.0f), s3, 0.0625f);
    y[5] = vaddq_f32(vfmaq_n_f32(vfmaq_n_f32(d1, d2, 32.0f), d3, 0.03125f), s[7]);
}

WGN_INLINE void wgn_at_2_8(const float32x4_t *s, float32x4_t *y)
{
    const float32x4_t s1 = vaddq_f32(s[1], s[2]), d1 = vsubq_f32(s[1], s[2]);
    const float32x4_t s2 = vaddq_f32(s[3], s[4]), d2 = vsubq_f32(s[3], s[4]);
    const float32x4_t s3 = vaddq_f32(s[5], s[6]), d3 = vsubq_f32(s[5], s[6]);
    y[0] = vaddq_f32(vaddq_f32(s[0], s1), vaddq_f32(s2, s3));
    y[1] = vaddq_f32(vfmaq_n_f32(vfmaq_n_f32(d1, d2, 2.0f), d3, 0.5f), s[7]);
}

WGN_INLINE void wgn_at_4_10(const float32x4_t *s, float32x4_t *y)
{
    const float32x4_t s1 = vaddq_f32(s[1], s[2]), d1 = vsubq_f32(s[1], s[2]);
    const float32x4_t s2 = vaddq_f32(s[3], s[4]), d2 = vsubq_f32(s[3], s[4]);
    const float32x4_t s3 = vaddq_f32(s[5], s[6]), d3 = vsubq_f32(s[5], s[6]);
    const float32x4_t s4 = vaddq_f32(s[7], s[8]), d4 = vsubq_f32(s[7], s[8]);
    y[0] = vaddq_f32(vaddq_f32(s[0], s1), vaddq_f32(s2, vaddq_f32(s3, s4)));
    y[1] = vfmaq_n_f32(vfmaq_n_f32(vfmaq_n_f32(d1, d2, 2.0f), d3, 0.5f), d4, 0.75f);
    y[2] = vfmaq_n_f32(vfmaq_n_f32(vfmaq_n_f32(s1, s2, 4.0f), s3, 0.25f), s4, 0.5625f);
    y[3] = vaddq_f32(vfmaq_n_f32(vfmaq_n_f32(vfmaq_n_f32(d1, d2, 8.0f), d3, 0.125f), d4, 0.421875f), s[9]);
}

/* A^T of F(m, r) with alpha = m + r - 1 (compile-time constants); alpha 1 copies. */
WGN_INLINE void wgn_output_1d(const int m, const int alpha, const float32x4_t *s, float32x4_t *y)
{
    if (alpha == 1)
        y[0] = s[0];
    else if (m == 2 && alpha == 4)
        wgn_at_2_4(s, y);
    else if (m == 4 && alpha == 6)
        wgn_at_4_6(s, y);
    else if (m == 6 && alpha == 8)
        wgn_at_6_8(s, y);
    else if (m == 2 && alpha == 8)
        wgn_at_2_8(s, y);
    else if (m == 4 && alpha == 10)
        wgn_at_4_10(s, y);
}

/* ---- filter transforms G g, in double (2 lanes), for the pack functions ---- */

/* The pair +-p of G: u+ = (E + O) / den, u- = (E - O) / den with E, O the even and odd powers of p times
 * the taps (r and p compile-time constants: straight-line code with folded powers). Times 1/den as the
 * AVX2 code does, so that U is the same to the bit. */
WGN_INLINE void wgn_g_pair(const float64x2_t *g, const int r, const double p, const double den, float64x2_t *up,
                           float64x2_t *um)
{
    float64x2_t e = g[0], o = vdupq_n_f64(0.0);
    double pw = 1.0;
    for (int j = 1; j < r; j++) {
        pw *= p;
        if (j % 2)
            o = vfmaq_n_f64(o, g[j], pw);
        else
            e = vfmaq_n_f64(e, g[j], pw);
    }
    const double inv = 1.0 / den;
    *up = vmulq_n_f64(vaddq_f64(e, o), inv);
    *um = vmulq_n_f64(vsubq_f64(e, o), inv);
}

/* G of F(alpha - r + 1, r): r taps in, alpha values out; the denominators N_i(p_i) of the point sets. */
WGN_INLINE void wgn_filter_1d(const int alpha, const int r, const float64x2_t *g, float64x2_t *u)
{
    if (alpha == 1) {
        u[0] = g[0];
        return;
    }
    double den0 = 1.0;
    switch (alpha) {
    case 4:
        den0 = -1.0;
        wgn_g_pair(g, r, 1.0, 2.0, &u[1], &u[2]);
        break;
    case 6:
        den0 = 4.0;
        wgn_g_pair(g, r, 1.0, -6.0, &u[1], &u[2]);
        wgn_g_pair(g, r, 2.0, 24.0, &u[3], &u[4]);
        break;
    case 8:
        den0 = -1.0;
        wgn_g_pair(g, r, 1.0, -4.5, &u[1], &u[2]);
        wgn_g_pair(g, r, 2.0, 90.0, &u[3], &u[4]);
        wgn_g_pair(g, r, 0.5, 45.0 / 32, &u[5], &u[6]);
        break;
    case 10:
        den0 = 9.0 / 16;
        wgn_g_pair(g, r, 1.0, -63.0 / 32, &u[1], &u[2]);
        wgn_g_pair(g, r, 2.0, 2475.0 / 8, &u[3], &u[4]);
        wgn_g_pair(g, r, 0.5, -225.0 / 512, &u[5], &u[6]);
        wgn_g_pair(g, r, 0.75, 17325.0 / 32768, &u[7], &u[8]);
        break;
    default:
        break;
    }
    u[0] = vmulq_n_f64(g[0], 1.0 / den0);
    u[alpha - 1] = g[r - 1];
}

#endif
