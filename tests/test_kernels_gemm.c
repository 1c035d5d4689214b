/* The GEMM of every vector ISA's kernel set (gemm_f32_6x16__avx2, gemm_f32_8x12__neon) against a naive
 * double triple loop for all transpose combinations, with and without accumulate and with padded leading
 * dimensions, and the set's linear-layer passes against the reference kernels; results must be bitwise the
 * same with 1 and 2 threads. Runs once per vector ISA this build and CPU have; skipped (exit 77, meson's
 * skip code) where there is none. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "conv_test_util.h"
#include "ref_kernels.h"

#define TOL 1e-5

/* want = (accumulate ? c0 : 0) + op(A) op(B) in double, m x n dense (leading dimension n). */
static void naive_gemm(int m, int n, int k, const float *a, int lda, int at, const float *b, int ldb, int bt,
                       const float *c0, int ldc, int accumulate, float *want)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double sum = accumulate ? c0[(size_t)i * ldc + j] : 0.0;
            for (int p = 0; p < k; p++) {
                const double av = at ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
                const double bv = bt ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j];
                sum += av * bv;
            }
            want[(size_t)i * n + j] = (float)sum;
        }
}

/* One GEMM case: the four transpose combinations, accumulate 0 and 1, leading dimensions padded by pad
 * (the padding of C must be left untouched); 1 and 2 threads must agree bitwise. */
static void check_gemm(int m, int n, int k, int pad)
{
    for (int at = 0; at <= 1; at++)
        for (int bt = 0; bt <= 1; bt++)
            for (int acc = 0; acc <= 1; acc++) {
                const int lda = (at ? m : k) + pad, ldb = (bt ? k : n) + pad, ldc = n + pad;
                const size_t asz = (size_t)(at ? k : m) * lda, bsz = (size_t)(bt ? n : k) * ldb;
                const size_t csz = (size_t)m * ldc;
                float *a = conv_test_alloc(asz), *b = conv_test_alloc(bsz), *c0 = conv_test_alloc(csz);
                float *c1 = conv_test_alloc(csz), *c2 = conv_test_alloc(csz);
                float *want = conv_test_alloc((size_t)m * n), *got = conv_test_alloc((size_t)m * n);
                conv_test_fill(a, asz), conv_test_fill(b, bsz), conv_test_fill(c0, csz);
                memcpy(c1, c0, csz * sizeof *c0), memcpy(c2, c0, csz * sizeof *c0);
                naive_gemm(m, n, k, a, lda, at, b, ldb, bt, c0, ldc, acc, want);
                conv_test_set_threads(1);
                kernel_test_kset()->gemm(m, n, k, a, lda, at, b, ldb, bt, c1, ldc, acc);
                conv_test_set_threads(2);
                kernel_test_kset()->gemm(m, n, k, a, lda, at, b, ldb, bt, c2, ldc, acc);
                for (int i = 0; i < m; i++) {
                    memcpy(got + (size_t)i * n, c1 + (size_t)i * ldc, (size_t)n * sizeof *got);
                    for (int j = n; j < ldc; j++)
                        if (c1[(size_t)i * ldc + j] != c0[(size_t)i * ldc + j])
                            fail_msg("gemm %dx%dx%d at%d bt%d acc%d pad%d: padding of C written at (%d, %d)", m, n,
                                     k, at, bt, acc, pad, i, j);
                }
                const double err = conv_test_rel_err(got, want, (size_t)m * n);
                if (!(err <= TOL))
                    fail_msg("gemm %dx%dx%d at%d bt%d acc%d pad%d: rel err %.3e", m, n, k, at, bt, acc, pad, err);
                if (memcmp(c1, c2, csz * sizeof *c1) != 0)
                    fail_msg("gemm %dx%dx%d at%d bt%d acc%d pad%d: 1 and 2 threads differ", m, n, k, at, bt, acc,
                             pad);
                free(a), free(b), free(c0), free(c1), free(c2), free(want), free(got);
            }
}

static void test_gemm_small_shapes(void **state)
{
    (void)state;
    conv_test_rng = 0x0123456789ABCDEFull;
    static const int cases[][3] = {
        {1, 1, 1},   {5, 7, 3},    {6, 16, 1},   {6, 16, 8},   {6, 16, 255}, {6, 16, 256}, {6, 16, 257},
        {12, 32, 9}, {7, 17, 257}, {1, 33, 40},  {40, 1, 17},  {13, 15, 513}, {121, 19, 7}, {2, 2049, 3},
        {241, 50, 300}, {3, 16, 1},  {6, 5, 600},
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        check_gemm(cases[t][0], cases[t][1], cases[t][2], 0);
        check_gemm(cases[t][0], cases[t][1], cases[t][2], 3);
    }
}

static void test_gemm_random_shapes(void **state)
{
    (void)state;
    conv_test_rng = 0x5555AAAA1234FEDCull;
    const int count = conv_test_random_count(25);
    for (int t = 0; t < count; t++)
        check_gemm(conv_test_int(1, 70), conv_test_int(1, 70), conv_test_int(1, 600), conv_test_int(0, 9));
}

static void test_gemm_large_shapes(void **state)
{
    (void)state;
    conv_test_rng = 0xDEADBEEF0BADF00Dull;
    check_gemm(33, 100, 1000, 5);
    if (!conv_test_emulated())
        check_gemm(32, 1024, 3200, 0);
    check_gemm(130, 2100, 40, 1); /* several MC row blocks and NC column blocks */
}

static void test_gemm_k_zero(void **state)
{
    (void)state;
    float c[6] = {1, 2, 3, 4, 5, 6}, a[1] = {0}, b[1] = {0};
    kernel_test_kset()->gemm(2, 3, 0, a, 1, 0, b, 3, 0, c, 3, 1);
    for (int i = 0; i < 6; i++)
        assert_true(c[i] == (float)(i + 1));
    kernel_test_kset()->gemm(2, 3, 0, a, 1, 0, b, 3, 0, c, 3, 0);
    for (int i = 0; i < 6; i++)
        assert_true(c[i] == 0.0f);
}

/* The three linear passes against the reference kernels, with 1 and 2 threads (bitwise equal). */
static void check_linear(int n, int in, int out)
{
    const size_t xs = (size_t)n * in, ws = (size_t)out * in, ys = (size_t)n * out;
    float *x = conv_test_alloc(xs), *w = conv_test_alloc(ws), *b = conv_test_alloc((size_t)out);
    float *dy = conv_test_alloc(ys), *dx0 = conv_test_alloc(xs);
    float *y_ref = conv_test_alloc(ys), *y1 = conv_test_alloc(ys), *y2 = conv_test_alloc(ys);
    float *dx_ref = conv_test_alloc(xs), *dx1 = conv_test_alloc(xs), *dx2 = conv_test_alloc(xs);
    float *dw_ref = conv_test_alloc(ws), *dw1 = conv_test_alloc(ws), *dw2 = conv_test_alloc(ws);
    float *db_ref = conv_test_alloc((size_t)out), *db1 = conv_test_alloc((size_t)out);
    float *db2 = conv_test_alloc((size_t)out);
    conv_test_fill(x, xs), conv_test_fill(w, ws), conv_test_fill(b, (size_t)out), conv_test_fill(dy, ys);
    conv_test_fill(dx0, xs);
    char what[64];
    snprintf(what, sizeof what, "linear n%d in%d out%d", n, in, out);

    linear_fwd_f32_ref__scalar(n, in, out, x, w, b, y_ref);
    conv_test_set_threads(1);
    kernel_test_kset()->linear_fwd(n, in, out, x, w, b, y1);
    conv_test_set_threads(2);
    kernel_test_kset()->linear_fwd(n, in, out, x, w, b, y2);
    double e = conv_test_rel_err(y1, y_ref, ys);
    if (!(e <= TOL))
        fail_msg("%s fwd: rel err %.3e", what, e);
    if (memcmp(y1, y2, ys * sizeof *y1))
        fail_msg("%s fwd: 1 and 2 threads differ", what);

    for (int acc = 0; acc <= 1; acc++) {
        memcpy(dx_ref, dx0, xs * sizeof *dx0), memcpy(dx1, dx0, xs * sizeof *dx0);
        memcpy(dx2, dx0, xs * sizeof *dx0);
        linear_bwd_data_f32_ref__scalar(n, in, out, dy, w, dx_ref, acc);
        conv_test_set_threads(1);
        kernel_test_kset()->linear_bwd_data(n, in, out, dy, w, dx1, acc);
        conv_test_set_threads(2);
        kernel_test_kset()->linear_bwd_data(n, in, out, dy, w, dx2, acc);
        e = conv_test_rel_err(dx1, dx_ref, xs);
        if (!(e <= TOL))
            fail_msg("%s bwd data acc%d: rel err %.3e", what, acc, e);
        if (memcmp(dx1, dx2, xs * sizeof *dx1))
            fail_msg("%s bwd data acc%d: 1 and 2 threads differ", what, acc);
    }

    /* dw and db are overwritten: start from garbage. */
    conv_test_fill(dw1, ws), conv_test_fill(dw2, ws), conv_test_fill(db1, (size_t)out);
    conv_test_fill(db2, (size_t)out);
    linear_bwd_weights_f32_ref__scalar(n, in, out, x, dy, dw_ref, db_ref);
    conv_test_set_threads(1);
    kernel_test_kset()->linear_bwd_weights(n, in, out, x, dy, dw1, db1);
    conv_test_set_threads(2);
    kernel_test_kset()->linear_bwd_weights(n, in, out, x, dy, dw2, db2);
    e = conv_test_rel_err(dw1, dw_ref, ws);
    const double eb = conv_test_rel_err(db1, db_ref, (size_t)out);
    if (!(e <= TOL && eb <= TOL))
        fail_msg("%s bwd weights: rel err dw %.3e, db %.3e", what, e, eb);
    if (memcmp(dw1, dw2, ws * sizeof *dw1) || memcmp(db1, db2, (size_t)out * sizeof *db1))
        fail_msg("%s bwd weights: 1 and 2 threads differ", what);

    free(x), free(w), free(b), free(dy), free(dx0), free(y_ref), free(y1), free(y2), free(dx_ref), free(dx1);
    free(dx2), free(dw_ref), free(dw1), free(dw2), free(db_ref), free(db1), free(db2);
}

static void test_linear_model_shapes(void **state)
{
    (void)state;
    conv_test_rng = 0x0F1E2D3C4B5A6978ull;
    check_linear(32, 2048, 10);   /* final fc */
    if (!conv_test_emulated())
        check_linear(32, 3200, 1024); /* aux fc1 */
    check_linear(32, 1024, 10);   /* aux fc2 */
}

static void test_linear_random_shapes(void **state)
{
    (void)state;
    conv_test_rng = 0x13579BDF2468ACE0ull;
    check_linear(1, 1, 1);
    const int count = conv_test_random_count(40);
    for (int t = 0; t < count; t++)
        check_linear(conv_test_int(1, 40), conv_test_int(1, 300), conv_test_int(1, 50));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm_small_shapes),  cmocka_unit_test(test_gemm_random_shapes),
        cmocka_unit_test(test_gemm_large_shapes),  cmocka_unit_test(test_gemm_k_zero),
        cmocka_unit_test(test_linear_model_shapes), cmocka_unit_test(test_linear_random_shapes),
    };
    return KERNEL_TEST_RUN("test_kernels_gemm", tests);
}
