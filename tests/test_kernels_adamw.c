/* The AdamW step of every vector ISA's kernel set against the reference (double per element) over several
 * steps. Runs once per vector ISA this build and CPU have; skipped (exit 77) where there is none. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "conv_test_util.h"
#include "ref_kernels.h"

static void run(size_t count, float lr, float wd, int steps)
{
    float *p0 = conv_test_alloc(count), *p1 = conv_test_alloc(count), *g = conv_test_alloc(count);
    float *m0 = conv_test_alloc(count), *m1 = conv_test_alloc(count), *v0 = conv_test_alloc(count);
    float *v1 = conv_test_alloc(count);
    conv_test_fill(p0, count);
    memcpy(p1, p0, count * sizeof *p0);
    memset(m0, 0, count * sizeof *m0), memset(m1, 0, count * sizeof *m1);
    memset(v0, 0, count * sizeof *v0), memset(v1, 0, count * sizeof *v1);
    for (int s = 1; s <= steps; s++) {
        conv_test_fill(g, count);
        adamw_f32_ref__scalar(count, p0, g, m0, v0, lr, 0.9f, 0.999f, 1e-8f, wd, s);
        kernel_test_kset()->adamw(count, p1, g, m1, v1, lr, 0.9f, 0.999f, 1e-8f, wd, s);
    }
    double ep = conv_test_rel_err(p1, p0, count), em = conv_test_rel_err(m1, m0, count);
    double ev = conv_test_rel_err(v1, v0, count);
    if (!(ep <= 1e-6 && em <= 1e-6 && ev <= 1e-6))
        fail_msg("count %zu, %d steps: rel err param %.2e, exp_avg %.2e, exp_avg_sq %.2e", count, steps, ep, em, ev);
    free(p0), free(p1), free(g), free(m0), free(m1), free(v0), free(v1);
}

static void test_adamw_matches_reference(void **state)
{
    (void)state;
    run(1, 1e-3f, 0.01f, 3);
    run(7, 1e-3f, 0.01f, 5);
    run(1003, 1e-4f, 0.01f, 10);
    run(65536 + 5, 1e-3f, 0.0f, 4);
}

static void test_adamw_first_step(void **state)
{
    (void)state;
    /* First AdamW step: p <- p(1 - lr wd) - lr g / (|g| + eps): each parameter moves by about lr. */
    float p[9], g[9], m[9] = {0}, v[9] = {0};
    for (int i = 0; i < 9; i++)
        p[i] = 1.0f, g[i] = (i % 2 ? 0.5f : -2.0f) * (float)(i + 1);
    kernel_test_kset()->adamw(9, p, g, m, v, 1e-2f, 0.9f, 0.999f, 1e-8f, 0.1f, 1);
    for (int i = 0; i < 9; i++)
        assert_float_equal(p[i], 1.0f * (1 - 1e-3f) - 1e-2f * (g[i] > 0 ? 1.0f : -1.0f), 1e-6f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adamw_matches_reference),
        cmocka_unit_test(test_adamw_first_step),
    };
    return KERNEL_TEST_RUN("test_kernels_adamw", tests);
}
