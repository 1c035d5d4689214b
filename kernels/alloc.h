/* The one allocation path of the library and its kernels.
 *
 * incv3_mem_try returns NULL on failure, for callers that can return an error (graph tensors, data,
 * checkpoints: they say so with incv3_mem_describe's wording). incv3_mem_must is for the kernels, whose
 * void API has no error channel: on failure it prints "incv3: out of memory: could not allocate N MiB for
 * WHAT" and exits with status 1 rather than abort()ing, which is safe because checkpoints are written
 * atomically (nothing good on disk is lost) and a kernel's scratch is only ever a few activations' worth.
 *
 * Fault injection for tests: with INCV3_TEST_FAIL_ALLOC_AFTER=N in the environment, every allocation
 * through here after the first N fails (the hook is always compiled and inert unless the variable is set).
 * Memory from either function is released with free() (or incv3_aligned_free). */
#ifndef INCV3_ALLOC_H
#define INCV3_ALLOC_H

#include <stddef.h>

/* bytes (0 is taken as 1) aligned to align (0: malloc's alignment; else a power of two). */
void *incv3_mem_try(size_t bytes, size_t align);
void *incv3_mem_must(size_t bytes, size_t align, const char *what);
/* "out of memory: could not allocate N MiB for WHAT" into buf: the wording every caller reports. */
void incv3_mem_describe(char *buf, size_t len, size_t bytes, const char *what);

#endif
