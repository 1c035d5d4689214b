/* The blocked direct convolution backward-data of every vector ISA (the registry's "direct" NCHW8c
 * backward-data entry) against the scalar reference, overwriting and accumulating. Runs once per vector ISA
 * this build and CPU have; skipped (exit 77, meson's skip code) where there is none. */
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


/* Runs reference and the ISA's kernel on random data with the given accumulate flag; returns the norm-wise
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
        conv_test_fill_nan(dxb, xbc); /* the kernel must write every element, padding channels included */
    }
    const incv3_conv_bwd_data_fn bwd = kernel_test_direct(INCV3_CONV_BWD_DATA, &s)->fn.bwd_data;
    float *dxb_in = NULL;
    if (accumulate) {
        dxb_in = conv_test_alloc(xbc);
        memcpy(dxb_in, dxb, xbc * sizeof *dxb);
    }

    conv_bwd_data_f32_ref__scalar(&s, dy, w, dxref, accumulate);
    reorder_nchw_to_nchw8c_f32(dyd, dy, dyb);
    reorder_oihw_to_oihw8i8o_f32(s.k, s.c, s.kh, s.kw, w, wb);
    bwd(&s, dyb, wb, dxb, accumulate);
    reorder_nchw8c_to_nchw_f32(dxd, dxb, dx);

    const double rel = conv_test_rel_err(dx, dxref, xc);

    const int CB = incv3_blocks8(s.c);
    for (int n = 0; n < s.n; n++)
        for (int ch = s.c; ch < CB * 8; ch++)
            for (size_t p = 0; p < (size_t)s.h * s.w; p++)
                assert_true(dxb[(((size_t)n * CB + CB - 1) * s.h * s.w + p) * 8 + ch % 8] == 0.0f);

    /* Bitwise the same result for another thread count. */
    if (xc * (size_t)s.k * s.kh * s.kw < ((size_t)1 << 26)) {
        float *dxb1 = conv_test_alloc(xbc);
        if (accumulate)
            memcpy(dxb1, dxb_in, xbc * sizeof *dxb1);
        else
            conv_test_fill_nan(dxb1, xbc);
        const int nt = conv_test_max_threads();
        conv_test_set_threads(conv_test_other_threads());
        bwd(&s, dyb, wb, dxb1, accumulate);
        conv_test_set_threads(nt);
        assert_memory_equal(dxb, dxb1, xbc * sizeof *dxb);
        free(dxb1);
    }

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

/* Each case overwriting (acc0), then accumulating (acc1). */
static void check_cases(const conv_case *cases, size_t count)
{
    conv_check_cases(cases, count, run_case, 2, "acc", 1e-5);
}

static void test_bwd_data_listed_shapes(void **state)
{
    (void)state;
    if (conv_test_emulated()) {
        check_cases(conv_cases_emulated, CONV_CASES_COUNT(conv_cases_emulated));
        return;
    }
    check_cases(conv_cases_listed, CONV_CASES_COUNT(conv_cases_listed));
    check_cases(conv_cases_one_block, CONV_CASES_COUNT(conv_cases_one_block));
    check_cases(conv_cases_strided, CONV_CASES_COUNT(conv_cases_strided));
}

/* Every distinct convolution of the seed model at batch 1 (training never needs the first layer's
 * backward-data, but the kernel serves that shape too); emulated, the 3 smallest. */
static void test_bwd_data_model_shapes(void **state)
{
    (void)state;
    conv_case cases[128];
    const size_t n = conv_cases_seed_model_for_run(cases, 128, 3);
    check_cases(cases, n);
}

static void test_bwd_data_random_shapes(void **state)
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
        cmocka_unit_test(test_bwd_data_listed_shapes),
        cmocka_unit_test(test_bwd_data_model_shapes),
        cmocka_unit_test(test_bwd_data_random_shapes),
    };
    return KERNEL_TEST_RUN("test_kernels_conv_bwd_data", tests);
}
