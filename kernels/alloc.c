/* The allocation helper and its fault-injection hook (see alloc.h). */
#include "alloc.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* -2: the environment not read yet; -1: no injection; else the number of allocations that succeed. */
static atomic_llong fail_after = -2;
static atomic_llong allocations;

static long long injection_limit(void)
{
    long long v = atomic_load_explicit(&fail_after, memory_order_relaxed);
    if (v != -2)
        return v;
    /* Racing first readers compute the same value, so a plain store is enough. */
    const char *s = getenv("INCV3_TEST_FAIL_ALLOC_AFTER");
    char *end = NULL;
    v = s && *s ? strtoll(s, &end, 10) : -1;
    if (!s || !*s || *end || v < 0)
        v = -1;
    atomic_store_explicit(&fail_after, v, memory_order_relaxed);
    return v;
}

void *incv3_mem_try(size_t bytes, size_t align)
{
    const long long limit = injection_limit();
    if (limit >= 0 && atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed) >= limit)
        return NULL;
    if (bytes == 0)
        bytes = 1;
    if (align == 0)
        return malloc(bytes);
    /* aligned_alloc wants a multiple of the alignment; the rounding never shrinks the request. */
    if (bytes > (size_t)-1 - align)
        return NULL;
    return aligned_alloc(align, (bytes + align - 1) / align * align);
}

void incv3_mem_describe(char *buf, size_t len, size_t bytes, const char *what)
{
    const double mib = bytes / 1048576.0;
    snprintf(buf, len, "out of memory: could not allocate %.*f MiB for %s", mib < 0.1 ? 3 : 1, mib, what);
}

void *incv3_mem_must(size_t bytes, size_t align, const char *what)
{
    void *p = incv3_mem_try(bytes, align);
    if (p)
        return p;
    /* Several threads of a parallel kernel may fail at once: one reports and exits, the others wait for
     * the exit (calling exit twice is undefined). */
    static atomic_flag reporting = ATOMIC_FLAG_INIT;
    if (atomic_flag_test_and_set(&reporting))
        for (;;)
            pause();
    char msg[512];
    incv3_mem_describe(msg, sizeof msg, bytes, what);
    fprintf(stderr, "incv3: %s\n", msg);
    exit(1);
}
