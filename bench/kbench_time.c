/* Timing and operand helpers shared by the kbench runners. */
#include <math.h>
#include <stdlib.h>
#include <time.h>

#include "kbench.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int kbench_time(void (*fn)(void *ctx), void *ctx, int repeat, double *median_ms, double *min_ms)
{
    double *times = malloc(sizeof(double) * (size_t)repeat);
    if (!times)
        return -1;
    fn(ctx); /* warm-up: page faults, caches, the OpenMP team */
    for (int r = 0; r < repeat; r++) {
        const double t0 = now_s();
        fn(ctx);
        times[r] = now_s() - t0;
    }
    qsort(times, (size_t)repeat, sizeof *times, cmp_double);
    const double median = repeat % 2 ? times[repeat / 2] : 0.5 * (times[repeat / 2 - 1] + times[repeat / 2]);
    *median_ms = 1e3 * median;
    *min_ms = 1e3 * times[0];
    free(times);
    return 0;
}

double kbench_seconds(void (*fn)(void *ctx), void *ctx)
{
    const double t0 = now_s();
    fn(ctx);
    return now_s() - t0;
}

float *kbench_alloc_random(size_t count, uint64_t seed)
{
    float *p = aligned_alloc(64, (count * sizeof(float) + 63) / 64 * 64 + 64);
    if (!p)
        return NULL;
    for (size_t i = 0; i < count; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = (float)(seed >> 40) / 16777216.0f - 0.5f;
    }
    return p;
}

double kbench_rel_err(const float *got, const float *want, size_t count)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < count; i++) {
        const double d = (double)got[i] - want[i];
        num += d * d;
        den += (double)want[i] * want[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}
