/* Reading the memory limits (see mem_available.h). */
#include "util/mem_available.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

incv3_mem_paths incv3_mem_paths_system(void)
{
    return (incv3_mem_paths){
        .meminfo = "/proc/meminfo",
        .cg2_max = "/sys/fs/cgroup/memory.max",
        .cg2_current = "/sys/fs/cgroup/memory.current",
        .cg1_limit = "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        .cg1_usage = "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        .self_status = "/proc/self/status",
        .use_rlimit = 1,
    };
}

/* The first number in the file; 0 and *ok = 0 when it is missing, unreadable or "max". */
static uint64_t read_number(const char *path, int *ok)
{
    *ok = 0;
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f)
        return 0;
    unsigned long long v = 0;
    *ok = fscanf(f, "%llu", &v) == 1;
    fclose(f);
    return v;
}

/* The value of "Key:   N kB" in a /proc file, in bytes. */
static uint64_t read_kb_field(const char *path, const char *key, int *ok)
{
    *ok = 0;
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f)
        return 0;
    char line[256];
    unsigned long long v = 0;
    const size_t klen = strlen(key);
    while (!*ok && fgets(line, sizeof line, f))
        if (strncmp(line, key, klen) == 0 && line[klen] == ':')
            *ok = sscanf(line + klen + 1, "%llu", &v) == 1;
    fclose(f);
    return (uint64_t)v * 1024;
}

static void consider(uint64_t v, const char *what, uint64_t *best, char *source, size_t len)
{
    if (v < *best) {
        *best = v;
        snprintf(source, len, "%s", what);
    }
}

uint64_t incv3_mem_available(const incv3_mem_paths *p, char *source, size_t len)
{
    uint64_t best = UINT64_MAX;
    snprintf(source, len, "unknown");
    int ok, ok2;
    const uint64_t avail = read_kb_field(p->meminfo, "MemAvailable", &ok);
    if (ok)
        consider(avail, "MemAvailable", &best, source, len);
    /* "max" reads as no number: no limit. */
    const uint64_t max2 = read_number(p->cg2_max, &ok), cur2 = read_number(p->cg2_current, &ok2);
    if (ok)
        consider(ok2 && cur2 < max2 ? max2 - cur2 : ok2 ? 0 : max2, "cgroup v2 memory.max", &best, source, len);
    /* v1 says "no limit" with a huge number (PAGE_COUNTER_MAX pages), which never wins the minimum. */
    const uint64_t max1 = read_number(p->cg1_limit, &ok), cur1 = read_number(p->cg1_usage, &ok2);
    if (ok)
        consider(ok2 && cur1 < max1 ? max1 - cur1 : ok2 ? 0 : max1, "cgroup v1 memory.limit_in_bytes", &best,
                 source, len);
    struct rlimit rl;
    if (p->use_rlimit && getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        const uint64_t vm = read_kb_field(p->self_status, "VmSize", &ok);
        consider(ok && vm < rl.rlim_cur ? rl.rlim_cur - vm : ok ? 0 : rl.rlim_cur, "ulimit -v (RLIMIT_AS)", &best,
                 source, len);
    }
    return best;
}
