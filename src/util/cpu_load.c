#include "util/cpu_load.h"

#include <stdio.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* The first line of /proc/stat: "cpu  user nice system idle iowait irq softirq steal guest guest_nice" in
 * clock ticks. Busy is everything but idle and iowait (guest time is already inside user). */
static double machine_busy_seconds(const char *path)
{
    FILE *f = fopen(path ? path : "/proc/stat", "r");
    if (!f)
        return -1;
    unsigned long long v[8] = {0};
    const int got = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
                           &v[5], &v[6], &v[7]);
    fclose(f);
    const long hz = sysconf(_SC_CLK_TCK);
    if (got < 4 || hz <= 0)
        return -1;
    const unsigned long long busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    return (double)busy / (double)hz;
}

incv3_cpu_sample incv3_cpu_sample_now(const char *stat_path)
{
    incv3_cpu_sample s;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    s.own_s = (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
              1e-6 * (double)ru.ru_stime.tv_usec;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    s.wall_s = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
    s.machine_busy_s = machine_busy_seconds(stat_path);
    return s;
}

double incv3_cpu_other_cores(const incv3_cpu_sample *a, const incv3_cpu_sample *b)
{
    const double wall = b->wall_s - a->wall_s;
    if (a->machine_busy_s < 0 || b->machine_busy_s < 0 || wall <= 0)
        return -1;
    const double other = (b->machine_busy_s - a->machine_busy_s) - (b->own_s - a->own_s);
    return other > 0 ? other / wall : 0;
}
