/* The memory limits as incv3 train reads them (src/util/mem_available.c), from fake /proc and cgroup files:
 * MemAvailable, cgroup v2 memory.max less memory.current ("max" = none), cgroup v1 limit less usage (its
 * huge "unlimited" value), missing files, and the smallest source winning. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#endif

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/mem_available.h"

static char dir[64];
static char path_meminfo[128], path_max2[128], path_cur2[128], path_lim1[128], path_use1[128];

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static incv3_mem_paths fake(void)
{
    return (incv3_mem_paths){path_meminfo, path_max2, path_cur2, path_lim1, path_use1, NULL, 0};
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/incv3-memXXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(path_meminfo, sizeof path_meminfo, "%s/meminfo", dir);
    snprintf(path_max2, sizeof path_max2, "%s/memory.max", dir);
    snprintf(path_cur2, sizeof path_cur2, "%s/memory.current", dir);
    snprintf(path_lim1, sizeof path_lim1, "%s/memory.limit_in_bytes", dir);
    snprintf(path_use1, sizeof path_use1, "%s/memory.usage_in_bytes", dir);
    put(path_meminfo, "MemTotal:       32000000 kB\nMemFree:         1000000 kB\nMemAvailable:   20000000 kB\n"
                      "Buffers:          100000 kB\n");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    const char *all[] = {path_meminfo, path_max2, path_cur2, path_lim1, path_use1};
    for (int i = 0; i < 5; i++)
        unlink(all[i]);
    rmdir(dir);
    return 0;
}

static void clear_cgroups(void)
{
    unlink(path_max2), unlink(path_cur2), unlink(path_lim1), unlink(path_use1);
}

static void test_meminfo_only(void **state)
{
    (void)state;
    clear_cgroups();
    char src[64];
    incv3_mem_paths p = fake();
    assert_int_equal(incv3_mem_available(&p, src, sizeof src), 20000000ull * 1024);
    assert_string_equal(src, "MemAvailable");
}

static void test_cgroup2(void **state)
{
    (void)state;
    clear_cgroups();
    char src[64];
    incv3_mem_paths p = fake();
    put(path_max2, "max\n");
    put(path_cur2, "123456\n");
    assert_int_equal(incv3_mem_available(&p, src, sizeof src), 20000000ull * 1024); /* "max": no limit */
    put(path_max2, "4294967296\n");
    put(path_cur2, "1073741824\n");
    assert_int_equal(incv3_mem_available(&p, src, sizeof src), 3221225472ull);
    assert_string_equal(src, "cgroup v2 memory.max");
    put(path_cur2, "5000000000\n"); /* over its limit already */
    assert_int_equal(incv3_mem_available(&p, src, sizeof src), 0);
    unlink(path_cur2); /* usage unknown: the limit alone */
    assert_int_equal(incv3_mem_available(&p, src, sizeof src), 4294967296ull);
}

static void test_cgroup1(void **state)
{
    (void)state;
    clear_cgroups();
    char src[64];
    incv3_mem_paths p = fake();
    put(path_lim1, "9223372036854771712\n"); /* v1's "unlimited" */
    put(path_use1, "1000\n");
    assert_int_equal(incv3_mem_available(&p, src, sizeof src), 20000000ull * 1024);
    put(path_lim1, "2147483648\n");
    put(path_use1, "1073741824\n");
    assert_int_equal(incv3_mem_available(&p, src, sizeof src), 1073741824ull);
    assert_string_equal(src, "cgroup v1 memory.limit_in_bytes");
}

static void test_smallest_wins_and_nothing_known(void **state)
{
    (void)state;
    clear_cgroups();
    char src[64];
    incv3_mem_paths p = fake();
    put(path_max2, "30000000000\n");
    put(path_cur2, "0\n");
    put(path_lim1, "1000000000000\n");
    assert_int_equal(incv3_mem_available(&p, src, sizeof src), 20000000ull * 1024);
    assert_string_equal(src, "MemAvailable");
    put(path_meminfo, "MemTotal: 1 kB\n"); /* an old kernel without MemAvailable */
    clear_cgroups();
    assert_int_equal(incv3_mem_available(&p, src, sizeof src), UINT64_MAX);
    assert_string_equal(src, "unknown");
    put(path_meminfo, "MemAvailable:   20000000 kB\n");
}

static void test_system_paths_read(void **state)
{
    (void)state;
    char src[64];
    incv3_mem_paths p = incv3_mem_paths_system();
    const uint64_t v = incv3_mem_available(&p, src, sizeof src);
    assert_true(v > 0);
    print_message("this machine: %.1f GiB available (%s)\n", v / 1073741824.0, src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_meminfo_only),
        cmocka_unit_test(test_cgroup2),
        cmocka_unit_test(test_cgroup1),
        cmocka_unit_test(test_smallest_wins_and_nothing_known),
        cmocka_unit_test(test_system_paths_read),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
