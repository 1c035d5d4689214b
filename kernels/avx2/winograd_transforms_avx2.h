/* The 1-D Winograd transforms of F(m, r), alpha = m + r - 1, as straight-line AVX2 code: 8 channels per
 * vector (the lanes of the blocked layouts), one function per transform and size.
 *
 * Interpolation points (Lavin & Gray 2016; Barabasz et al. 2020 for their conditioning), each set symmetric
 * about 0 plus the point at infinity:
 *     alpha  4: 0, +-1                     F(2,3)
 *     alpha  6: 0, +-1, +-2                F(4,3)
 *     alpha  8: 0, +-1, +-2, +-1/2         F(6,3), F(2,7)
 *     alpha 10: 0, +-1, +-2, +-1/2, +-3/4  F(4,7)
 * Transform positions are ordered 0, +p1, -p1, +p2, -p2, ..., infinity. With finite points p_i and
 * N_i(x) = prod_{j != i} (x - p_j) (monic), the modified Toom-Cook construction gives
 *     input  B^T: row i = coefficients of N_i; the row at infinity = coefficients of prod_j (x - p_j),
 *     output A^T: column i = (1, p_i, p_i^2, ..., p_i^(m-1)); the column at infinity = e_(m-1),
 *     filter G:   row i = (1, p_i, ..., p_i^(r-1)) / N_i(p_i); the row at infinity = e_(r-1),
 * so every entry of B^T and A^T is exact in float and all the division sits in G, which the pack
 * functions evaluate in double once per weight change. (The matrices were derived and checked with exact
 * rationals, and each point set's error measured in float on post-ReLU data before choosing: for the
 * last pair of F(4, 7), +-3/4 gave 2.7e-6 against 3.2e-6 to 6.9e-6 for +-2/3, 3/2, 1/3, 3, 1/4, 4; for
 * F(6x6, 3x3), 0, +-1, +-2, +-1/2 gave 2.7e-6 against 4.4e-6 to 1.9e-4 for sets with -1/4, -3/2, +-3 or
 * +-1/4; for F(4x4, 3x3) the asymmetric 0, +-1, 1/2, -2 would give 0.9e-6 against 1.3e-6, at the cost of
 * the pairing below, so the symmetric set stays.)
 *
 * Symmetric points make the work halve: for a pair +-p, N_{-p}(x) = N_p(-x), so the two input rows are
 * E + O and E - O of one even part E (taps 0, 2, 4, ...) and one odd part O, and the odd part is p times
 * the even part's polynomial applied to the odd taps; the output columns pair up as sums S = m+ + m- for
 * even powers and differences D = m+ - m- for odd ones. The row at 0 and the row at infinity are the same
 * polynomial on the even and on the odd taps.
 *
 * Include only from sources compiled with -mavx2 -mfma. */
#ifndef INCV3_WINOGRAD_TRANSFORMS_AVX2_H
#define INCV3_WINOGRAD_TRANSFORMS_AVX2_H

#include <immintrin.h>

#define WG_INLINE static inline __attribute__((always_inline))

WG_INLINE __m256 wg_c(float v)
{
    return _mm256_set1_ps(v);
}

/* ---- input transforms B^T d, in place on alpha vectors ---- */

WG_INLINE void wg_bt4(__m256 *d)
{
    const __m256 d0 = d[0], d1 = d[1], d2 = d[2], d3 = d[3];
    d[0] = _mm256_sub_ps(d2, d0);
    d[1] = _mm256_add_ps(d2, d1);
    d[2] = _mm256_sub_ps(d2, d1);
    d[3] = _mm256_sub_ps(d3, d1);
}

WG_INLINE void wg_bt6(__m256 *d)
{
    const __m256 d0 = d[0], d1 = d[1], d2 = d[2], d3 = d[3], d4 = d[4], d5 = d[5];
    const __m256 four = wg_c(4.0f), five = wg_c(5.0f), two = wg_c(2.0f);
    /* pair 1: x^4 - 4x^2 on the even taps, p * (x^3 - 4x) on the odd ones */
    const __m256 e1 = _mm256_fnmadd_ps(four, d2, d4), o1 = _mm256_fnmadd_ps(four, d1, d3);
    /* pair 2: x^4 - x^2, p = 2 */
    const __m256 e2 = _mm256_sub_ps(d4, d2), o2 = _mm256_sub_ps(d3, d1);
    d[0] = _mm256_fmadd_ps(four, d0, _mm256_fnmadd_ps(five, d2, d4));
    d[1] = _mm256_add_ps(e1, o1);
    d[2] = _mm256_sub_ps(e1, o1);
    d[3] = _mm256_fmadd_ps(two, o2, e2);
    d[4] = _mm256_fnmadd_ps(two, o2, e2);
    d[5] = _mm256_fmadd_ps(four, d1, _mm256_fnmadd_ps(five, d3, d5));
}

WG_INLINE void wg_bt8(__m256 *d)
{
    const __m256 d0 = d[0], d1 = d[1], d2 = d[2], d3 = d[3], d4 = d[4], d5 = d[5], d6 = d[6], d7 = d[7];
    const __m256 c5_25 = wg_c(5.25f), c4_25 = wg_c(4.25f), c1_25 = wg_c(1.25f), c0_25 = wg_c(0.25f);
    const __m256 four = wg_c(4.0f), five = wg_c(5.0f), two = wg_c(2.0f), half = wg_c(0.5f);
    /* pair 1: x^6 - 17/4 x^4 + x^2 */
    const __m256 e1 = _mm256_fnmadd_ps(c4_25, d4, _mm256_add_ps(d2, d6));
    const __m256 o1 = _mm256_fnmadd_ps(c4_25, d3, _mm256_add_ps(d1, d5));
    /* pair 2: x^6 - 5/4 x^4 + 1/4 x^2, p = 2 */
    const __m256 e2 = _mm256_fmadd_ps(c0_25, d2, _mm256_fnmadd_ps(c1_25, d4, d6));
    const __m256 o2 = _mm256_fmadd_ps(c0_25, d1, _mm256_fnmadd_ps(c1_25, d3, d5));
    /* pair 1/2: x^6 - 5 x^4 + 4 x^2, p = 1/2 */
    const __m256 e3 = _mm256_fmadd_ps(four, d2, _mm256_fnmadd_ps(five, d4, d6));
    const __m256 o3 = _mm256_fmadd_ps(four, d1, _mm256_fnmadd_ps(five, d3, d5));
    /* 0 and infinity: x^6 - 21/4 x^4 + 21/4 x^2 - 1 */
    d[0] = _mm256_fmadd_ps(c5_25, _mm256_sub_ps(d2, d4), _mm256_sub_ps(d6, d0));
    d[1] = _mm256_add_ps(e1, o1);
    d[2] = _mm256_sub_ps(e1, o1);
    d[3] = _mm256_fmadd_ps(two, o2, e2);
    d[4] = _mm256_fnmadd_ps(two, o2, e2);
    d[5] = _mm256_fmadd_ps(half, o3, e3);
    d[6] = _mm256_fnmadd_ps(half, o3, e3);
    d[7] = _mm256_fmadd_ps(c5_25, _mm256_sub_ps(d3, d5), _mm256_sub_ps(d7, d1));
}

/* x^8 + a x^6 + b x^4 + c x^2 (+ e) on taps t8, t6, t4, t2 (, t0), Horner-free: the terms are independent
 * FMAs into the leading tap. */
WG_INLINE __m256 wg_poly4(__m256 t8, __m256 t6, __m256 t4, __m256 t2, float a, float b, float c)
{
    return _mm256_fmadd_ps(wg_c(c), t2, _mm256_fmadd_ps(wg_c(b), t4, _mm256_fmadd_ps(wg_c(a), t6, t8)));
}

WG_INLINE void wg_bt10(__m256 *d)
{
    const __m256 d0 = d[0], d1 = d[1], d2 = d[2], d3 = d[3], d4 = d[4], d5 = d[5], d6 = d[6], d7 = d[7];
    const __m256 d8 = d[8], d9 = d[9];
    /* pair 1: x^8 - 77/16 x^6 + 217/64 x^4 - 9/16 x^2 */
    const __m256 e1 = wg_poly4(d8, d6, d4, d2, -77.0f / 16, 217.0f / 64, -9.0f / 16);
    const __m256 o1 = wg_poly4(d7, d5, d3, d1, -77.0f / 16, 217.0f / 64, -9.0f / 16);
    /* pair 2: x^8 - 29/16 x^6 + 61/64 x^4 - 9/64 x^2, p = 2 */
    const __m256 e2 = wg_poly4(d8, d6, d4, d2, -29.0f / 16, 61.0f / 64, -9.0f / 64);
    const __m256 o2 = wg_poly4(d7, d5, d3, d1, -29.0f / 16, 61.0f / 64, -9.0f / 64);
    /* pair 1/2: x^8 - 89/16 x^6 + 109/16 x^4 - 9/4 x^2, p = 1/2 */
    const __m256 e3 = wg_poly4(d8, d6, d4, d2, -89.0f / 16, 109.0f / 16, -9.0f / 4);
    const __m256 o3 = wg_poly4(d7, d5, d3, d1, -89.0f / 16, 109.0f / 16, -9.0f / 4);
    /* pair 3/4: x^8 - 21/4 x^6 + 21/4 x^4 - x^2, p = 3/4 */
    const __m256 c5_25 = wg_c(5.25f);
    const __m256 e4 = _mm256_fmadd_ps(c5_25, _mm256_sub_ps(d4, d6), _mm256_sub_ps(d8, d2));
    const __m256 o4 = _mm256_fmadd_ps(c5_25, _mm256_sub_ps(d3, d5), _mm256_sub_ps(d7, d1));
    /* 0 and infinity: x^8 - 93/16 x^6 + 525/64 x^4 - 253/64 x^2 + 9/16 */
    const __m256 c0 = wg_c(9.0f / 16);
    d[0] = _mm256_fmadd_ps(c0, d0, wg_poly4(d8, d6, d4, d2, -93.0f / 16, 525.0f / 64, -253.0f / 64));
    d[1] = _mm256_add_ps(e1, o1);
    d[2] = _mm256_sub_ps(e1, o1);
    d[3] = _mm256_fmadd_ps(wg_c(2.0f), o2, e2);
    d[4] = _mm256_fnmadd_ps(wg_c(2.0f), o2, e2);
    d[5] = _mm256_fmadd_ps(wg_c(0.5f), o3, e3);
    d[6] = _mm256_fnmadd_ps(wg_c(0.5f), o3, e3);
    d[7] = _mm256_fmadd_ps(wg_c(0.75f), o4, e4);
    d[8] = _mm256_fnmadd_ps(wg_c(0.75f), o4, e4);
    d[9] = _mm256_fmadd_ps(c0, d1, wg_poly4(d9, d7, d5, d3, -93.0f / 16, 525.0f / 64, -253.0f / 64));
}

/* B^T of size alpha (a compile-time constant at every call); alpha 1 is the untransformed dimension. */
WG_INLINE void wg_input_1d(const int alpha, __m256 *d)
{
    switch (alpha) {
    case 4:
        wg_bt4(d);
        break;
    case 6:
        wg_bt6(d);
        break;
    case 8:
        wg_bt8(d);
        break;
    case 10:
        wg_bt10(d);
        break;
    default:
        break;
    }
}

/* ---- output transforms A^T m: alpha vectors in, m vectors out ---- */

WG_INLINE void wg_at_2_4(const __m256 *s, __m256 *y)
{
    y[0] = _mm256_add_ps(s[0], _mm256_add_ps(s[1], s[2]));
    y[1] = _mm256_add_ps(_mm256_sub_ps(s[1], s[2]), s[3]);
}

WG_INLINE void wg_at_4_6(const __m256 *s, __m256 *y)
{
    const __m256 s1 = _mm256_add_ps(s[1], s[2]), d1 = _mm256_sub_ps(s[1], s[2]);
    const __m256 s2 = _mm256_add_ps(s[3], s[4]), d2 = _mm256_sub_ps(s[3], s[4]);
    y[0] = _mm256_add_ps(_mm256_add_ps(s[0], s1), s2);
    y[1] = _mm256_fmadd_ps(wg_c(2.0f), d2, d1);
    y[2] = _mm256_fmadd_ps(wg_c(4.0f), s2, s1);
    y[3] = _mm256_add_ps(_mm256_fmadd_ps(wg_c(8.0f), d2, d1), s[5]);
}

WG_INLINE void wg_at_6_8(const __m256 *s, __m256 *y)
{
    const __m256 s1 = _mm256_add_ps(s[1], s[2]), d1 = _mm256_sub_ps(s[1], s[2]);
    const __m256 s2 = _mm256_add_ps(s[3], s[4]), d2 = _mm256_sub_ps(s[3], s[4]);
    const __m256 s3 = _mm256_add_ps(s[5], s[6]), d3 = _mm256_sub_ps(s[5], s[6]);
    y[0] = _mm256_add_ps(_mm256_add_ps(s[0], s1), _mm256_add_ps(s2, s3));
    y[1] = _mm256_fmadd_ps(wg_c(0.5f), d3, _mm256_fmadd_ps(wg_c(2.0f), d2, d1));
    y[2] = _mm256_fmadd_ps(wg_c(0.25f), s3, _mm256_fmadd_ps(wg_c(4.0f), s2, s1));
    y[3] = _mm256_fmadd_ps(wg_c(0.125f), d3, _mm256_fmadd_ps(wg_c(8.0f), d2, d1));
    y[4] = _mm256_fmadd_ps(wg_c(0.0625f), s3, _mm256_fmadd_ps(wg_c(16.0f), s2, s1));
    y[5] = _mm256_add_ps(_mm256_fmadd_ps(wg_c(0.03125f), d3, _mm256_fmadd_ps(wg_c(32.0f), d2, d1)), s[7]);
}

WG_INLINE void wg_at_2_8(const __m256 *s, __m256 *y)
{
    const __m256 s1 = _mm256_add_ps(s[1], s[2]), d1 = _mm256_sub_ps(s[1], s[2]);
    const __m256 s2 = _mm256_add_ps(s[3], s[4]), d2 = _mm256_sub_ps(s[3], s[4]);
    const __m256 s3 = _mm256_add_ps(s[5], s[6]), d3 = _mm256_sub_ps(s[5], s[6]);
    y[0] = _mm256_add_ps(_mm256_add_ps(s[0], s1), _mm256_add_ps(s2, s3));
    y[1] = _mm256_add_ps(_mm256_fmadd_ps(wg_c(0.5f), d3, _mm256_fmadd_ps(wg_c(2.0f), d2, d1)), s[7]);
}

WG_INLINE void wg_at_4_10(const __m256 *s, __m256 *y)
{
    const __m256 s1 = _mm256_add_ps(s[1], s[2]), d1 = _mm256_sub_ps(s[1], s[2]);
    const __m256 s2 = _mm256_add_ps(s[3], s[4]), d2 = _mm256_sub_ps(s[3], s[4]);
    const __m256 s3 = _mm256_add_ps(s[5], s[6]), d3 = _mm256_sub_ps(s[5], s[6]);
    const __m256 s4 = _mm256_add_ps(s[7], s[8]), d4 = _mm256_sub_ps(s[7], s[8]);
    y[0] = _mm256_add_ps(_mm256_add_ps(s[0], s1), _mm256_add_ps(s2, _mm256_add_ps(s3, s4)));
    y[1] = _mm256_fmadd_ps(wg_c(0.75f), d4, _mm256_fmadd_ps(wg_c(0.5f), d3, _mm256_fmadd_ps(wg_c(2.0f), d2, d1)));
    y[2] = _mm256_fmadd_ps(wg_c(0.5625f), s4,
                           _mm256_fmadd_ps(wg_c(0.25f), s3, _mm256_fmadd_ps(wg_c(4.0f), s2, s1)));
    y[3] = _mm256_add_ps(
        _mm256_fmadd_ps(wg_c(0.421875f), d4, _mm256_fmadd_ps(wg_c(0.125f), d3, _mm256_fmadd_ps(wg_c(8.0f), d2, d1))),
        s[9]);
}

/* A^T of F(m, r) with alpha = m + r - 1 (compile-time constants); alpha 1 copies. */
WG_INLINE void wg_output_1d(const int m, const int alpha, const __m256 *s, __m256 *y)
{
    if (alpha == 1)
        y[0] = s[0];
    else if (m == 2 && alpha == 4)
        wg_at_2_4(s, y);
    else if (m == 4 && alpha == 6)
        wg_at_4_6(s, y);
    else if (m == 6 && alpha == 8)
        wg_at_6_8(s, y);
    else if (m == 2 && alpha == 8)
        wg_at_2_8(s, y);
    else if (m == 4 && alpha == 10)
        wg_at_4_10(s, y);
}

/* ---- filter transforms G g, in double (4 lanes), for the pack functions ---- */

/* The pair +-p of G: u+ = (E + O) / den, u- = (E - O) / den with E, O the even and odd powers of p times
 * the taps. r and p are compile-time constants, so the unrolled loop is straight-line with folded
 * powers. */
WG_INLINE void wg_g_pair(const __m256d *g, const int r, const double p, const double den, __m256d *up, __m256d *um)
{
    __m256d e = g[0], o = _mm256_setzero_pd();
    double pw = 1.0;
    for (int j = 1; j < r; j++) {
        pw *= p;
        if (j % 2)
            o = _mm256_fmadd_pd(_mm256_set1_pd(pw), g[j], o);
        else
            e = _mm256_fmadd_pd(_mm256_set1_pd(pw), g[j], e);
    }
    /* times 1/den (a constant): divisions made the pack functions 3x slower, and the double rounding of
     * the reciprocal is far below the float rounding of U */
    const __m256d inv = _mm256_set1_pd(1.0 / den);
    *up = _mm256_mul_pd(_mm256_add_pd(e, o), inv);
    *um = _mm256_mul_pd(_mm256_sub_pd(e, o), inv);
}

/* G of F(alpha - r + 1, r): r taps in, alpha values out. The denominators are N_i(p_i) of the point
 * sets above (den at 0, then per pair). */
WG_INLINE void wg_filter_1d(const int alpha, const int r, const __m256d *g, __m256d *u)
{
    if (alpha == 1) {
        u[0] = g[0];
        return;
    }
    double den0 = 1.0;
    switch (alpha) {
    case 4:
        den0 = -1.0;
        wg_g_pair(g, r, 1.0, 2.0, &u[1], &u[2]);
        break;
    case 6:
        den0 = 4.0;
        wg_g_pair(g, r, 1.0, -6.0, &u[1], &u[2]);
        wg_g_pair(g, r, 2.0, 24.0, &u[3], &u[4]);
        break;
    case 8:
        den0 = -1.0;
        wg_g_pair(g, r, 1.0, -4.5, &u[1], &u[2]);
        wg_g_pair(g, r, 2.0, 90.0, &u[3], &u[4]);
        wg_g_pair(g, r, 0.5, 45.0 / 32, &u[5], &u[6]);
        break;
    case 10:
        den0 = 9.0 / 16;
        wg_g_pair(g, r, 1.0, -63.0 / 32, &u[1], &u[2]);
        wg_g_pair(g, r, 2.0, 2475.0 / 8, &u[3], &u[4]);
        wg_g_pair(g, r, 0.5, -225.0 / 512, &u[5], &u[6]);
        wg_g_pair(g, r, 0.75, 17325.0 / 32768, &u[7], &u[8]);
        break;
    default:
        break;
    }
    u[0] = _mm256_mul_pd(g[0], _mm256_set1_pd(1.0 / den0));
    u[alpha - 1] = g[r - 1];
}

#endif
