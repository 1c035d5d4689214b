/* How much CPU other processes took while a benchmark ran: the machine's busy time (/proc/stat) less this
 * process's own CPU time. On a shared host another job can take a core for tens of seconds; a timing made
 * meanwhile is not comparable with the others. Private to the library. */
#ifndef INCV3_CPU_LOAD_H
#define INCV3_CPU_LOAD_H

typedef struct incv3_cpu_sample {
    double machine_busy_s; /* all CPUs' non-idle time since boot, seconds; < 0 where unknown */
    double own_s;          /* this process's user + system time, all its threads */
    double wall_s;         /* a monotonic clock */
} incv3_cpu_sample;

/* Reads the machine's counters from stat_path (NULL: /proc/stat; tests pass a fake file). */
incv3_cpu_sample incv3_cpu_sample_now(const char *stat_path);

/* CPU cores' worth of work that other processes did between a and b (0 and above; e.g. 0.9: another job
 * held most of one core), or -1 where the machine's counters are unknown or no time passed. */
double incv3_cpu_other_cores(const incv3_cpu_sample *a, const incv3_cpu_sample *b);

#endif
