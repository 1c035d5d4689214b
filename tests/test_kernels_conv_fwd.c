/* The blocked direct convolution forward of every vector ISA (the registry's "direct" NCHW8c forward
 * entry) and the layout reorders, against the scalar reference. Runs once per vector ISA this build and
 * CPU have; skipped (exit 77, meson's skip code) where there is none. */
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


/* ---- reorders ---- */

static void check_act_roundtrip(incv3_dims d)
{
    const size_t cnt = incv3_dims_count(d), bcnt = reorder_nchw8c_count(d);
    float *a = conv_test_alloc(cnt), *b = conv_test_alloc(bcnt), *c = conv_test_alloc(cnt);
    conv_test_fill(a, cnt);
    for (size_t i = 0; i < bcnt; i++)
        b[i] = NAN; /* every element, padding included, must be written */
    reorder_nchw_to_nchw8c_f32(d, a, b);
    const int CB = incv3_blocks8(d.c);
    for (int n = 0; n < d.n; n++)
        for (int ch = 0; ch < CB * 8; ch++)
            for (int y = 0; y < d.h; y++)
                for (int x = 0; x < d.w; x++) {
                    const float v = b[((((size_t)n * CB + ch / 8) * d.h + y) * d.w + x) * 8 + ch % 8];
                    const float want = ch < d.c ? a[(((size_t)n * d.c + ch) * d.h + y) * d.w + x] : 0.0f;
                    assert_true(memcmp(&v, &want, sizeof v) == 0);
                }
    reorder_nchw8c_to_nchw_f32(d, b, c);
    assert_memory_equal(a, c, cnt * sizeof *a);
    free(a);
    free(b);
    free(c);
}

static void check_weight_roundtrip(int k, int c, int kh, int kw)
{
    const size_t cnt = (size_t)k * c * kh * kw, bcnt = reorder_oihw8i8o_count(k, c, kh, kw);
    float *a = conv_test_alloc(cnt), *b = conv_test_alloc(bcnt), *r = conv_test_alloc(cnt);
    conv_test_fill(a, cnt);
    for (size_t i = 0; i < bcnt; i++)
        b[i] = NAN;
    reorder_oihw_to_oihw8i8o_f32(k, c, kh, kw, a, b);
    const int KB = incv3_blocks8(k), CB = incv3_blocks8(c);
    for (int o = 0; o < KB * 8; o++)
        for (int i = 0; i < CB * 8; i++)
            for (int t = 0; t < kh * kw; t++) {
                const float v = b[((((size_t)(o / 8) * CB + i / 8) * kh * kw + t) * 8 + i % 8) * 8 + o % 8];
                const float want = o < k && i < c ? a[((size_t)o * c + i) * kh * kw + t] : 0.0f;
                assert_true(memcmp(&v, &want, sizeof v) == 0);
            }
    reorder_oihw8i8o_to_oihw_f32(k, c, kh, kw, b, r);
    assert_memory_equal(a, r, cnt * sizeof *a);
    free(a);
    free(b);
    free(r);
}

static void test_reorder_roundtrip(void **state)
{
    (void)state;
    const incv3_dims acts[] = {{1, 1, 1, 1}, {1, 3, 5, 7}, {2, 8, 4, 4}, {3, 13, 6, 5}, {1, 16, 3, 3}, {2, 33, 2, 9}};
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++)
        check_act_roundtrip(acts[i]);
    const int wts[][4] = {{1, 1, 1, 1}, {8, 8, 3, 3}, {5, 3, 1, 7}, {17, 13, 7, 1}, {32, 3, 3, 3}, {24, 40, 1, 1}};
    for (size_t i = 0; i < sizeof wts / sizeof wts[0]; i++)
        check_weight_roundtrip(wts[i][0], wts[i][1], wts[i][2], wts[i][3]);
}

/* ---- convolution ---- */

/* Runs reference and the ISA's kernel on random data; returns the norm-wise relative error and checks the
 * padding channels of the blocked output are exactly zero. */
static double run_case(const conv_case *cc, int variant)
{
    (void)variant;
    const incv3_conv_shape s = conv_case_shape(cc);
    const incv3_dims dx = {s.n, s.c, s.h, s.w}, dy = {s.n, s.k, s.oh, s.ow};
    const size_t xc = incv3_dims_count(dx), yc = incv3_dims_count(dy), wc = (size_t)s.k * s.c * s.kh * s.kw;
    const size_t xbc = reorder_nchw8c_count(dx), ybc = reorder_nchw8c_count(dy);
    const size_t wbc = reorder_oihw8i8o_count(s.k, s.c, s.kh, s.kw);
    float *x = conv_test_alloc(xc), *w = conv_test_alloc(wc), *yref = conv_test_alloc(yc), *y = conv_test_alloc(yc);
    float *xb = conv_test_alloc(xbc), *wb = conv_test_alloc(wbc), *yb = conv_test_alloc(ybc);
    conv_test_fill(x, xc);
    conv_test_fill(w, wc);
    conv_test_fill_nan(yb, ybc); /* the kernel must write every output element */
    const incv3_conv_fwd_fn fwd = kernel_test_direct(INCV3_CONV_FWD, &s)->fn.fwd;

    conv_fwd_f32_ref__scalar(&s, x, w, yref);
    reorder_nchw_to_nchw8c_f32(dx, x, xb);
    reorder_oihw_to_oihw8i8o_f32(s.k, s.c, s.kh, s.kw, w, wb);
    fwd(&s, xb, wb, yb);
    reorder_nchw8c_to_nchw_f32(dy, yb, y);

    const double rel = conv_test_rel_err(y, yref, yc);

    const int KB = incv3_blocks8(s.k);
    for (int n = 0; n < s.n; n++)
        for (int ch = s.k; ch < KB * 8; ch++)
            for (size_t p = 0; p < (size_t)s.oh * s.ow; p++)
                assert_true(yb[(((size_t)n * KB + KB - 1) * s.oh * s.ow + p) * 8 + ch % 8] == 0.0f);

    /* Bitwise the same result for another thread count. */
    if (xc * (size_t)s.k * s.kh * s.kw < ((size_t)1 << 26)) {
        float *yb1 = conv_test_alloc(ybc);
        const int nt = conv_test_max_threads();
        conv_test_set_threads(conv_test_other_threads());
        fwd(&s, xb, wb, yb1);
        conv_test_set_threads(nt);
        assert_memory_equal(yb, yb1, ybc * sizeof *yb);
        free(yb1);
    }

    free(x);
    free(w);
    free(yref);
    free(y);
    free(xb);
    free(wb);
    free(yb);
    return rel;
}

static void check_cases(const conv_case *cases, size_t count)
{
    conv_check_cases(cases, count, run_case, 1, NULL, 1e-5);
}

static void test_conv_listed_shapes(void **state)
{
    (void)state;
    if (conv_test_emulated()) {
        check_cases(conv_cases_emulated, CONV_CASES_COUNT(conv_cases_emulated));
        return;
    }
    check_cases(conv_cases_listed, CONV_CASES_COUNT(conv_cases_listed));
    check_cases(conv_cases_one_block, CONV_CASES_COUNT(conv_cases_one_block));
}

/* Every distinct convolution of the seed model at batch 1 (emulated: the 3 smallest). */
static void test_conv_model_shapes(void **state)
{
    (void)state;
    conv_case cases[128];
    const size_t n = conv_cases_seed_model_for_run(cases, 128, 3);
    check_cases(cases, n);
}

static void test_conv_random_shapes(void **state)
{
    (void)state;
    conv_test_rng = 0x1234567887654321ull;
    const int count = conv_test_random_count(60);
    for (int t = 0; t < count; t++) {
        const conv_case c = conv_case_random(3);
        check_cases(&c, 1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reorder_roundtrip),
        cmocka_unit_test(test_conv_listed_shapes),
        cmocka_unit_test(test_conv_model_shapes),
        cmocka_unit_test(test_conv_random_shapes),
    };
    return KERNEL_TEST_RUN("test_kernels_conv_fwd", tests);
}
