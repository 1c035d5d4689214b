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
#include "conv_test_util.h"


/* Runs reference and AVX2 kernel on random data with the given accumulate flag; returns the norm-wise
 * relative error of dx and checks that the padding channels of the blocked dx are exactly zero. */
static double run_case(const conv_case *cc, int accumulate)
{
    const incv3_conv_shape s = conv_case_shape(cc);
    const incv3_dims dxd = {s.n, s.c, s.h, s.w}, dyd = {s.n, s.k, s.oh, s.ow};
    const size_t xc = incv3_dims_count(dxd), yc = incv3_dims_count(dyd), wc = (size_t)s.k * s.c * s.kh * s.kw;
    const size_t xbc = reorder_nchw8c_count(dxd), ybc = reorder_nchw8c_count(dyd);
    const size_t wbc = reorder_oihw8i8o_count(s.k, s.c, s.kh, s.kw);
    float *dy = conv_test_alloc(yc), *w = conv_test_alloc(wc), *dxref = conv_test_alloc(xc), *dx = conv_test_alloc(xc);
    float *dyb = conv_test_alloc(ybc), *wb = conv_test_alloc(wbc), *dxb = conv_test_alloc(xbc);
    conv_test_fill(dy, yc);
    conv_test_fill(w, wc);
    if (accumulate) {
        conv_test_fill(dxref, xc);
        reorder_nchw_to_nchw8c_f32(dxd, dxref, dxb); /* padding channels 0 */
    } else {
        for (size_t i = 0; i < xbc; i++)
            dxb[i] = NAN; /* the kernel must write every element, padding channels included */
    }
    float *dxb_in = NULL;
    if (accumulate) {
        dxb_in = conv_test_alloc(xbc);
        memcpy(dxb_in, dxb, xbc * sizeof *dxb);
    }

    conv_bwd_data_f32_ref__scalar(&s, dy, w, dxref, accumulate);
    reorder_nchw_to_nchw8c_f32(dyd, dy, dyb);
    reorder_oihw_to_oihw8i8o_f32(s.k, s.c, s.kh, s.kw, w, wb);
    conv_bwd_data_f32_direct__avx2(&s, dyb, wb, dxb, accumulate);
    reorder_nchw8c_to_nchw_f32(dxd, dxb, dx);

    const double rel = conv_test_rel_err(dx, dxref, xc);

    const int CB = incv3_blocks8(s.c);
    for (int n = 0; n < s.n; n++)
        for (int ch = s.c; ch < CB * 8; ch++)
            for (size_t p = 0; p < (size_t)s.h * s.w; p++)
                assert_true(dxb[(((size_t)n * CB + CB - 1) * s.h * s.w + p) * 8 + ch % 8] == 0.0f);

#ifdef _OPENMP
    /* Bitwise the same result for another thread count. */
    if (xc * (size_t)s.k * s.kh * s.kw < ((size_t)1 << 26)) {
        float *dxb1 = conv_test_alloc(xbc);
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
            char what[128];
            conv_case_describe(c, what, sizeof what);
            if (getenv("INCV3_TEST_VERBOSE"))
                printf("  %s acc%d: rel err %.3g\n", what, acc, rel);
            if (!(rel <= 1e-5)) {
                print_error("case %s acc%d: rel err %.3g\n", what, acc, rel);
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

/* Every distinct convolution of the seed model at batch 1 (training never needs the first layer's
 * backward-data, but the kernel serves that shape too). */
static void test_bwd_data_model_shapes(void **state)
{
    (void)state;
    conv_case cases[128];
    const size_t n = conv_cases_seed_model(cases, 128);
    assert_true(n > 30);
    check_cases(cases, n);
}

static void test_bwd_data_random_shapes(void **state)
{
    (void)state;
    conv_test_rng = 0x1234567887654321ull;
    for (int t = 0; t < 60; t++) {
        const conv_case c = conv_case_random(5);
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
