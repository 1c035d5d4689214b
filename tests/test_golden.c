/* Parity with PyTorch: every golden file in shared/reference/golden passes check-golden's rule. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "incv3/golden.h"
#include "test_common.h"

static char shared_dir[4096];
static int have_shared;

static void check_file(const char *name, const char *isa, const char *algo)
{
    if (!have_shared) {
        print_message("../shared absent next to the source root: golden parity skipped\n");
        skip();
    }
    char path[4400];
    snprintf(path, sizeof path, "%s/reference/golden/%s", shared_dir, name);
    FILE *probe = fopen(path, "rb");
    if (!probe) {
        print_message("%s absent: skipped\n", path);
        skip();
    }
    fclose(probe);
    incv3_golden_opts opts = {.isa = isa, .conv_algo = algo};
    incv3_golden_result res;
    incv3_error err;
    int rc = incv3_check_golden(path, &opts, stdout, &res, &err);
    if (rc)
        fail_msg("%s", err.msg);
    assert_true(res.tensors > 100);
    if (!res.passed)
        fail_msg("%s: %d of %d tensors outside tolerance", path, res.failures, res.tensors);
}

static void test_w025_s75_noaux_ref(void **state)
{
    (void)state;
    check_file("w025_s75_noaux_b4.safetensors", "scalar", "ref");
}

static void test_w025_s299_aux_ref(void **state)
{
    (void)state;
    check_file("w025_s299_aux_b2.safetensors", "scalar", "ref");
}

/* The fastest kernels this CPU runs (AVX2 and the blocked layout on x86 with AVX2). */
static void test_w025_s75_noaux_auto(void **state)
{
    (void)state;
    check_file("w025_s75_noaux_b4.safetensors", "auto", "auto");
}

static void test_w025_s299_aux_auto(void **state)
{
    (void)state;
    check_file("w025_s299_aux_b2.safetensors", "auto", "auto");
}

int main(int argc, char **argv)
{
    have_shared = test_shared_dir(argc, argv, shared_dir, sizeof shared_dir) == 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_w025_s75_noaux_ref),
        cmocka_unit_test(test_w025_s299_aux_ref),
        cmocka_unit_test(test_w025_s75_noaux_auto),
        cmocka_unit_test(test_w025_s299_aux_auto),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
