/* How the C library's allocator treats the activations that the graph frees and allocates again every step. */
#ifndef INCV3_UTIL_HEAP_POLICY_H
#define INCV3_UTIL_HEAP_POLICY_H

/* Keeps freed memory mapped (glibc: no mmap for large blocks, no trimming of the heap's top), so that
 * each training step reuses the pages of the last one instead of faulting in fresh zeroed pages: by
 * default glibc maps every block over its mmap threshold (at most 32 MiB) afresh and unmaps it on free, and
 * returns the heap's free top to the system, which at 75x75, batch 32 cost 32,700 page faults (128 MiB)
 * per step, about 10% of a step on 2 cores, and serializes on the kernel's memory map lock across many.
 * The peak resident memory is unchanged (the heap reuses freed blocks as before); the memory is returned
 * when the process exits. A no-op without glibc. Call once at start-up, before large allocations. */
void incv3_heap_keep_pages(void);

#endif
