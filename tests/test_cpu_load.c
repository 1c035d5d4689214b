/* Other processes' CPU during a benchmark (src/util/cpu_load.c): the busy time read from a fake /proc/stat
 * (user + nice + system + irq + softirq + steal; idle and iowait are not busy), a missing file, and the
 * arithmetic: the machine's busy time less this process's, per second of wall time. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "util/cpu_load.h"

static void test_reads_busy_time(void **state)
{
    (void)state;
    char path[] = "/tmp/incv3_cpu_load_XXXXXX";
    const int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    /* user nice system idle iowait irq softirq steal guest guest_nice */
    fputs("cpu  1000 20 300 90000 400 5 6 7 50 0\ncpu0 500 10 150 45000 200 2 3 3 25 0\n", f);
    fclose(f);
    const incv3_cpu_sample s = incv3_cpu_sample_now(path);
    const double hz = (double)sysconf(_SC_CLK_TCK);
    assert_true(fabs(s.machine_busy_s - (1000 + 20 + 300 + 5 + 6 + 7) / hz) < 1e-9);
    assert_true(s.own_s >= 0 && s.wall_s > 0);
    unlink(path);
    const incv3_cpu_sample m = incv3_cpu_sample_now("/nonexistent/stat");
    assert_true(m.machine_busy_s < 0);
}

static void test_other_cores(void **state)
{
    (void)state;
    const incv3_cpu_sample a = {100.0, 1.0, 10.0}, b = {104.0, 2.0, 12.0};
    /* 4 s busy, 1 s of it ours, over 2 s: another 1.5 cores */
    assert_true(fabs(incv3_cpu_other_cores(&a, &b) - 1.5) < 1e-12);
    /* all the busy time ours (or the counters' rounding below it): 0, never negative */
    const incv3_cpu_sample c = {104.0, 5.5, 12.0};
    assert_true(incv3_cpu_other_cores(&a, &c) == 0.0);
    /* unknown counters or no time: -1 */
    const incv3_cpu_sample u = {-1.0, 2.0, 12.0}, z = {104.0, 2.0, 10.0};
    assert_true(incv3_cpu_other_cores(&a, &u) == -1.0);
    assert_true(incv3_cpu_other_cores(&a, &z) == -1.0);
}

/* On Linux the real counters are there, and while this process spins alone they add up. */
static void test_real_counters(void **state)
{
    (void)state;
    const incv3_cpu_sample a = incv3_cpu_sample_now(NULL);
    if (a.machine_busy_s < 0)
        skip();
    volatile double x = 0;
    incv3_cpu_sample b;
    do {
        for (int i = 0; i < 100000; i++)
            x += i * 1e-9;
        b = incv3_cpu_sample_now(NULL);
    } while (b.wall_s - a.wall_s < 0.2);
    assert_true(b.machine_busy_s >= a.machine_busy_s);
    assert_true(b.own_s > a.own_s);
    assert_true(incv3_cpu_other_cores(&a, &b) >= 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_busy_time),
        cmocka_unit_test(test_other_cores),
        cmocka_unit_test(test_real_counters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
