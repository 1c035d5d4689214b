/* The AVX2 blocked direct convolution backward-data against the scalar reference, overwriting and
 * accumulating. Skipped (exit 77, meson's skip code) on a CPU without AVX2+FMA. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "avx2/avx2_kernels.h"
#include "layout/reorder.h"
#include "ref_kernels.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint32_t rng_u32(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32);
}

static int rng_int(int lo, int hi) /* inclusive */
{
    return lo + (int)(rng_u32() % (uint32_t)(hi - lo + 1));
}

static void fill_uniform(float *p, size_t count)
{
    for (size_t i = 0; i < count; i++)
        p[i] = (float)rng_u32() / 4294967296.0f * 2.0f - 1.0f;
}

static float *alloc_floats(size_t count)
{
    float *p = malloc((count ? count : 1) * sizeof *p);
    assert_non_null(p);
    return p;
}

typedef struct conv_case {
    int n, c, h, w, k, kh, kw, sh, sw, pt, pl, pb, pr;
} conv_case;

/* Runs reference and AVX2 kernel on random data with the given accumulate flag; returns the norm-wise
 * relative error of dx and checks that the padding channels of the blocked dx are exactly zero. */
static double run_case(const conv_case *cc, int accumulate)
{
    incv3_conv_shape s = {.n = cc->n,
                          .c = cc->c,
                          .h = cc->h,
                          .w = cc->w,
                          .k = cc->k,
                          .kh = cc->kh,
                          .kw = cc->kw,
                          .stride_h = cc->sh,
                          .stride_w = cc->sw,
                          .pad_top = cc->pt,
                          .pad_left = cc->pl,
                          .pad_bottom = cc->pb,
                          .pad_right = cc->pr};
    assert_int_equal(incv3_conv_shape_finish(&s), 0);
    const incv3_dims dxd = {s.n, s.c, s.h, s.w}, dyd = {s.n, s.k, s.oh, s.ow};
    const size_t xc = incv3_dims_count(dxd), yc = incv3_dims_count(dyd), wc = (size_t)s.k * s.c * s.kh * s.kw;
    const size_t xbc = reorder_nchw8c_count(dxd), ybc = reorder_nchw8c_count(dyd);
    const size_t wbc = reorder_oihw8i8o_count(s.k, s.c, s.kh, s.kw);
    float *dy = alloc_floats(yc), *w = alloc_floats(wc), *dxref = alloc_floats(xc), *dx = alloc_floats(xc);
    float *dyb = alloc_floats(ybc), *wb = alloc_floats(wbc), *dxb = alloc_floats(xbc);
    fill_uniform(dy, yc);
    fill_uniform(w, wc);
    if (accumulate) {
        fill_uniform(dxref, xc);
        reorder_nchw_to_nchw8c_f32(dxd, dxref, dxb); /* padding channels 0 */
    } else {
        for (size_t i = 0; i < xbc; i++)
            dxb[i] = NAN; /* the kernel must write every element, padding channels included */
    }
    float *dxb_in = NULL;
    if (accumulate) {
        dxb_in = alloc_floats(xbc);
        memcpy(dxb_in, dxb, xbc * sizeof *dxb);
    }

    conv_bwd_data_f32_ref__scalar(&s, dy, w, dxref, accumulate);
    reorder_nchw_to_nchw8c_f32(dyd, dy, dyb);
    reorder_oihw_to_oihw8i8o_f32(s.k, s.c, s.kh, s.kw, w, wb);
    conv_bwd_data_f32_direct__avx2(&s, dyb, wb, dxb, accumulate);
    reorder_nchw8c_to_nchw_f32(dxd, dxb, dx);

    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < xc; i++) {
        const double d = (double)dx[i] - dxref[i];
        num += d * d;
        den += (double)dxref[i] * dxref[i];
    }
    const double rel = den > 0 ? sqrt(num / den) : sqrt(num);

    const int CB = incv3_blocks8(s.c);
    for (int n = 0; n < s.n; n++)
        for (int ch = s.c; ch < CB * 8; ch++)
            for (size_t p = 0; p < (size_t)s.h * s.w; p++)
                assert_true(dxb[(((size_t)n * CB + CB - 1) * s.h * s.w + p) * 8 + ch % 8] == 0.0f);

#ifdef _OPENMP
    /* Bitwise the same result for another thread count. */
    if (xc * (size_t)s.k * s.kh * s.kw < ((size_t)1 << 26)) {
        float *dxb1 = alloc_floats(xbc);
        if (accumulate)
            memcpy(dxb1, dxb_in, xbc * sizeof *dxb1);
        else
            for (size_t i = 0; i < xbc; i++)
                dxb1[i] = NAN;
        const int nt = omp_get_max_threads();
        omp_set_num_threads(nt > 1 ? 1 : 3);
        conv_bwd_data_f32_direct__avx2(&s, dyb, wb, dxb1, accumulate);
        omp_set_num_threads(nt);
        assert_memory_equal(dxb, dxb1, xbc * sizeof *dxb);
        free(dxb1);
    }
#endif

    free(dxb_in);
    free(dy);
    free(w);
    free(dxref);
    free(dx);
    free(dyb);
    free(wb);
    free(dxb);
    return rel;
}

static void check_cases(const conv_case *cases, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        const conv_case *c = &cases[i];
        for (int acc = 0; acc <= 1; acc++) {
            const double rel = run_case(c, acc);
            if (getenv("INCV3_TEST_VERBOSE"))
                printf("  n%d c%d %dx%d k%d %dx%d s%d,%d p%d,%d,%d,%d acc%d: rel err %.3g\n", c->n, c->c, c->h, c->w,
                       c->k, c->kh, c->kw, c->sh, c->sw, c->pt, c->pl, c->pb, c->pr, acc, rel);
            if (!(rel <= 1e-5)) {
                print_error("case n%d c%d %dx%d k%d %dx%d s%d,%d p%d,%d,%d,%d acc%d: rel err %.3g\n", c->n, c->c, c->h,
                            c->w, c->k, c->kh, c->kw, c->sh, c->sw, c->pt, c->pl, c->pb, c->pr, acc, rel);
                fail();
            }
        }
    }
}

static void test_bwd_data_listed_shapes(void **state)
{
    (void)state;
    static const conv_case cases[] = {
        /* n  c   h   w   k kh kw sh sw pt pl pb pr */
        {1, 8, 9, 9, 16, 3, 3, 1, 1, 0, 0, 0, 0},
        {1, 8, 9, 9, 16, 3, 3, 1, 1, 1, 1, 1, 1},
        {5, 16, 11, 13, 24, 3, 3, 2, 2, 0, 0, 0, 0},
        {5, 16, 11, 13, 24, 3, 3, 2, 2, 1, 1, 1, 1},
        {1, 5, 10, 10, 8, 3, 3, 2, 2, 0, 0, 1, 1},
        {2, 13, 9, 7, 19, 3, 3, 1, 1, 2, 0, 1, 2},
        {1, 3, 15, 15, 32, 3, 3, 2, 2, 0, 0, 0, 0},
        {5, 16, 17, 17, 24, 1, 7, 1, 1, 0, 3, 0, 3},
        {5, 16, 17, 17, 24, 7, 1, 1, 1, 3, 0, 3, 0},
        {1, 13, 8, 8, 20, 1, 3, 1, 1, 0, 1, 0, 1},
        {1, 13, 8, 8, 20, 3, 1, 1, 1, 1, 0, 1, 0},
        {5, 13, 7, 9, 21, 1, 1, 1, 1, 0, 0, 0, 0},
        {1, 3, 1, 1, 5, 1, 1, 1, 1, 0, 0, 0, 0},
        {1, 5, 3, 3, 8, 3, 3, 1, 1, 0, 0, 0, 0},
        {1, 8, 5, 5, 8, 5, 5, 1, 1, 2, 2, 2, 2},
        {2, 9, 6, 6, 10, 3, 3, 3, 3, 1, 1, 1, 1},
        {1, 8, 7, 7, 8, 3, 3, 1, 1, 4, 4, 4, 4}, /* padding wider than the kernel */
        {1, 16, 4, 40, 40, 3, 3, 1, 1, 1, 1, 1, 1},
        {1, 8, 2, 2, 16, 3, 3, 1, 1, 2, 2, 2, 2},
        {3, 24, 9, 31, 8, 3, 5, 1, 2, 1, 2, 1, 2},
        {1, 8, 5, 30, 8, 3, 3, 1, 1, 1, 1, 1, 1},
        {1, 8, 5, 13, 8, 3, 3, 1, 1, 1, 1, 1, 1},
        {2, 16, 9, 40, 16, 3, 3, 2, 2, 1, 1, 1, 1},
        {1, 16, 4, 12, 24, 1, 7, 1, 1, 0, 3, 0, 3},
        {1, 8, 3, 25, 8, 1, 5, 1, 1, 0, 0, 0, 4},
        {1, 8, 3, 25, 16, 1, 5, 1, 1, 0, 4, 0, 0},
        /* strides larger than the kernel: some dx rows/columns get no tap at all */
        {2, 11, 9, 10, 7, 1, 1, 2, 2, 0, 0, 0, 0},
        {1, 9, 11, 8, 12, 1, 1, 3, 2, 0, 0, 0, 0},
        {1, 17, 10, 11, 9, 2, 2, 3, 3, 1, 0, 0, 1},
        /* asymmetric stride and padding, batch 5 */
        {5, 12, 13, 11, 17, 3, 3, 2, 1, 0, 1, 2, 0},
        {5, 20, 12, 14, 10, 3, 5, 1, 2, 2, 0, 0, 3},
        {5, 24, 15, 15, 16, 3, 3, 2, 2, 1, 0, 0, 1},
    };
    check_cases(cases, sizeof cases / sizeof cases[0]);
}

/* Inception-V3 layers at batch 1; the first (3x299x299) never needs backward-data. */
static void test_bwd_data_model_shapes(void **state)
{
    (void)state;
    static const conv_case cases[] = {
        {1, 32, 147, 147, 64, 3, 3, 1, 1, 1, 1, 1, 1}, {1, 32, 149, 149, 32, 3, 3, 1, 1, 0, 0, 0, 0},
        {1, 64, 73, 73, 80, 3, 3, 1, 1, 0, 0, 0, 0},   {1, 64, 73, 73, 80, 1, 1, 1, 1, 0, 0, 0, 0},
        {1, 80, 71, 71, 192, 3, 3, 2, 2, 0, 0, 0, 0},  {1, 192, 35, 35, 64, 1, 1, 1, 1, 0, 0, 0, 0},
        {1, 48, 35, 35, 64, 5, 5, 1, 1, 2, 2, 2, 2},   {1, 64, 35, 35, 96, 3, 3, 1, 1, 1, 1, 1, 1},
        {1, 96, 35, 35, 96, 3, 3, 1, 1, 1, 1, 1, 1},   {1, 288, 35, 35, 384, 3, 3, 2, 2, 0, 0, 0, 0},
        {1, 96, 35, 35, 96, 3, 3, 2, 2, 0, 0, 0, 0},   {1, 768, 17, 17, 192, 1, 1, 1, 1, 0, 0, 0, 0},
        {1, 128, 17, 17, 128, 1, 7, 1, 1, 0, 3, 0, 3}, {1, 128, 17, 17, 192, 7, 1, 1, 1, 3, 0, 3, 0},
        {1, 192, 17, 17, 320, 3, 3, 2, 2, 0, 0, 0, 0}, {1, 1280, 8, 8, 208, 1, 1, 1, 1, 0, 0, 0, 0},
        {1, 384, 8, 8, 384, 1, 3, 1, 1, 0, 1, 0, 1},   {1, 384, 8, 8, 384, 3, 1, 1, 1, 1, 0, 1, 0},
        {1, 448, 8, 8, 384, 3, 3, 1, 1, 1, 1, 1, 1},   {1, 768, 5, 5, 128, 1, 1, 1, 1, 0, 0, 0, 0},
        {1, 128, 5, 5, 768, 5, 5, 1, 1, 0, 0, 0, 0},
    };
    check_cases(cases, sizeof cases / sizeof cases[0]);
}

static void test_bwd_data_random_shapes(void **state)
{
    (void)state;
    rng_state = 0x1234567887654321ull;
    for (int t = 0; t < 60; t++) {
        conv_case c;
        c.n = rng_int(1, 5);
        c.c = rng_int(1, 40);
        c.k = rng_int(1, 40);
        c.kh = rng_int(1, 5);
        c.kw = rng_int(1, 7);
        c.sh = rng_int(1, 3);
        c.sw = rng_int(1, 3);
        c.pt = rng_int(0, 3);
        c.pb = rng_int(0, 3);
        c.pl = rng_int(0, 3);
        c.pr = rng_int(0, 3);
        c.h = rng_int(1, 20);
        c.w = rng_int(1, 30);
        if (c.h + c.pt + c.pb < c.kh)
            c.h = c.kh;
        if (c.w + c.pl + c.pr < c.kw)
            c.w = c.kw;
        check_cases(&c, 1);
    }
}

int main(void)
{
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) {
        printf("test_avx2_conv_bwd_data: SKIP: this CPU lacks AVX2+FMA\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bwd_data_listed_shapes),
        cmocka_unit_test(test_bwd_data_model_shapes),
        cmocka_unit_test(test_bwd_data_random_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
