/* The ISA-independent part of the ReLU kernels (avx2/relu_avx2.c, neon/relu_neon.c): the split of a flat
 * array into chunks over the threads, small arrays on the calling thread. The including file defines
 * KERNEL_ISA (common/isa_name.h) and the element-wise relu_fwd_range(x, y, lo, hi) and
 * relu_bwd_range(y, dy, dx, lo, hi, accumulate) first.
 */
#ifndef INCV3_RELU_DRIVER_H
#define INCV3_RELU_DRIVER_H

#include <stddef.h>

#include "common/isa_name.h"

/* Below this many floats the fork/join of a parallel region costs more than the work. */
#define RELU_PAR_MIN ((size_t)1 << 15)
/* Floats per chunk handed to a thread (a multiple of 32). */
#define RELU_CHUNK ((size_t)4096)

void ISA_NAME(relu_fwd_f32__)(size_t count, const float *x, float *y)
{
    if (count < RELU_PAR_MIN) {
        relu_fwd_range(x, y, 0, count);
        return;
    }
    const long chunks = (long)((count + RELU_CHUNK - 1) / RELU_CHUNK);
#pragma omp parallel for schedule(static)
    for (long k = 0; k < chunks; k++) {
        const size_t lo = (size_t)k * RELU_CHUNK, hi = lo + RELU_CHUNK < count ? lo + RELU_CHUNK : count;
        relu_fwd_range(x, y, lo, hi);
    }
}

void ISA_NAME(relu_bwd_f32__)(size_t count, const float *y, const float *dy, float *dx, int accumulate)
{
    if (count < RELU_PAR_MIN) {
        relu_bwd_range(y, dy, dx, 0, count, accumulate);
        return;
    }
    const long chunks = (long)((count + RELU_CHUNK - 1) / RELU_CHUNK);
#pragma omp parallel for schedule(static)
    for (long k = 0; k < chunks; k++) {
        const size_t lo = (size_t)k * RELU_CHUNK, hi = lo + RELU_CHUNK < count ? lo + RELU_CHUNK : count;
        relu_bwd_range(y, dy, dx, lo, hi, accumulate);
    }
}

#endif
