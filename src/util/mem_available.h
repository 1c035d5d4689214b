/* The memory this process may still use: the smallest of the kernel's MemAvailable, the cgroup's limit
 * less its usage (v2 memory.max / memory.current, v1 memory.limit_in_bytes / memory.usage_in_bytes) and
 * RLIMIT_AS less the address space already mapped (VmSize). The file paths are parameters so tests can
 * point them at fake files. Private to the library. */
#ifndef INCV3_MEM_AVAILABLE_H
#define INCV3_MEM_AVAILABLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct incv3_mem_paths {
    const char *meminfo;                 /* /proc/meminfo */
    const char *cg2_max, *cg2_current;   /* /sys/fs/cgroup/memory.max, memory.current */
    const char *cg1_limit, *cg1_usage;   /* /sys/fs/cgroup/memory/memory.limit_in_bytes, usage_in_bytes */
    const char *self_status;             /* /proc/self/status (VmSize, against RLIMIT_AS) */
    int use_rlimit;                      /* 0: ignore RLIMIT_AS (tests) */
} incv3_mem_paths;

/* The real system's paths. */
incv3_mem_paths incv3_mem_paths_system(void);

/* The available bytes, and in `source` (len bytes) what limits them ("MemAvailable", "cgroup v2
 * memory.max", "cgroup v1 memory.limit_in_bytes", "ulimit -v"). Sources that are missing, unreadable or
 * unlimited are skipped; UINT64_MAX with source "unknown" when none says anything. */
uint64_t incv3_mem_available(const incv3_mem_paths *p, char *source, size_t len);

#endif
