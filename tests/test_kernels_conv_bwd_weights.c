/* The blocked direct convolution backward-weights of every vector ISA (the registry's "direct" NCHW8c
 * backward-weights entry) against the scalar reference. Runs once per vector ISA this build and CPU have;
 * skipped (exit 77, meson's skip code) where there is none. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layout/reorder.h"
#include "ref_kernels.h"
#include "conv_test_util.h"

/* Runs reference and the ISA's kernel on random data; returns the norm-wise relative error of dw (OIHW,
 * every element written: it starts as NaN) and checks that another thread count gives the same bits. */
static double run_case(const conv_case *cc, int variant)
{
    (void)variant;
    const incv3_conv_shape s = conv_case_shape(cc);
    const incv3_dims xd = {s.n, s.c, s.h, s.w}, dyd = {s.n, s.k, s.oh, s.ow};
    const size_t xc = incv3_dims_count(xd), yc = incv3_dims_count(dyd), wc = (size_t)s.k * s.c * s.kh * s.kw;
    const size_t xbc = reorder_nchw8c_count(xd), ybc = reorder_nchw8c_count(dyd);
    float *x = conv_test_alloc(xc), *dy = conv_test_alloc(yc), *dwref = conv_test_alloc(wc), *dw = conv_test_alloc(wc);
    float *xb = conv_test_alloc(xbc), *dyb = conv_test_alloc(ybc);
    conv_test_fill(x, xc);
    conv_test_fill(dy, yc);
    conv_test_fill_nan(dw, wc); /* the kernel must write every element */
    const incv3_conv_bwd_weights_fn bwd = kernel_test_direct(INCV3_CONV_BWD_WEIGHTS, &s)->fn.bwd_weights;

    conv_bwd_weights_f32_ref__scalar(&s, x, dy, dwref);
    reorder_nchw_to_nchw8c_f32(xd, x, xb);
    reorder_nchw_to_nchw8c_f32(dyd, dy, dyb);
    bwd(&s, xb, dyb, dw);
    for (size_t i = 0; i < wc; i++)
        assert_false(isnan(dw[i]));

    const double rel = conv_test_rel_err(dw, dwref, wc);

    /* Bitwise the same result for another thread count. */
    if (xc * (size_t)s.k * s.kh * s.kw < ((size_t)1 << 27)) {
        float *dw1 = conv_test_alloc(wc);
        conv_test_fill_nan(dw1, wc);
        const int nt = conv_test_max_threads();
        conv_test_set_threads(conv_test_other_threads());
        bwd(&s, xb, dyb, dw1);
        conv_test_set_threads(nt);
        assert_memory_equal(dw, dw1, wc * sizeof *dw);
        free(dw1);
    }

    free(x);
    free(dy);
    free(dwref);
    free(dw);
    free(xb);
    free(dyb);
    return rel;
}

static void check_cases(const conv_case *cases, size_t count)
{
    conv_check_cases(cases, count, run_case, 1, NULL, 1e-5);
}

static void test_bwd_weights_listed_shapes(void **state)
{
    (void)state;
    /* shapes only this test lists */
    static const conv_case extra[] = {
        /* n  c   h   w   k kh kw sh sw pt pl pb pr */
        {5, 3, 31, 31, 32, 3, 3, 2, 2, 0, 0, 0, 0}, /* first layer, enough tiles split over n */
        /* output block counts 1..7 (groups of 1, 2, 3 and remainders), input channels 1..8 in a block */
        {2, 7, 6, 6, 56, 3, 3, 1, 1, 1, 1, 1, 1},
        {2, 12, 6, 6, 40, 3, 3, 1, 1, 1, 1, 1, 1},
        {2, 33, 6, 6, 30, 2, 2, 1, 1, 0, 0, 1, 1},
        {1, 1, 9, 9, 1, 3, 3, 1, 1, 1, 1, 1, 1},
    };
    if (conv_test_emulated()) {
        check_cases(conv_cases_emulated, CONV_CASES_COUNT(conv_cases_emulated));
        check_cases(&extra[1], 2); /* output block counts 7 and 5, 7 and 12 input channels */
        return;
    }
    check_cases(conv_cases_listed, CONV_CASES_COUNT(conv_cases_listed));
    check_cases(extra, CONV_CASES_COUNT(extra));
    check_cases(conv_cases_strided, CONV_CASES_COUNT(conv_cases_strided));
}

/* Every distinct convolution of the seed model at batch 1 (emulated: the 3 smallest). */
static void test_bwd_weights_model_shapes(void **state)
{
    (void)state;
    conv_case cases[128];
    const size_t n = conv_cases_seed_model_for_run(cases, 128, 3);
    check_cases(cases, n);
}

static void test_bwd_weights_random_shapes(void **state)
{
    (void)state;
    conv_test_rng = 0x1234567887654321ull;
    const int count = conv_test_random_count(60);
    for (int t = 0; t < count; t++) {
        const conv_case c = conv_case_random(5);
        check_cases(&c, 1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bwd_weights_listed_shapes),
        cmocka_unit_test(test_bwd_weights_model_shapes),
        cmocka_unit_test(test_bwd_weights_random_shapes),
    };
    return KERNEL_TEST_RUN("test_kernels_conv_bwd_weights", tests);
}
