/* 4-D float tensors (NCHW) with 64-byte-aligned storage. */
#ifndef INCV3_TENSOR_H
#define INCV3_TENSOR_H

#include <stddef.h>

#include "incv3/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define INCV3_ALIGN 64

typedef struct incv3_tensor {
    int n, c, h, w;
    float *data; /* INCV3_ALIGN-aligned, n*c*h*w floats; NULL when not allocated */
} incv3_tensor;

static inline size_t incv3_tensor_count(const incv3_tensor *t)
{
    return (size_t)t->n * (size_t)t->c * (size_t)t->h * (size_t)t->w;
}

/* Allocates (uninitialized) storage for an n x c x h x w tensor. Returns non-zero on allocation failure
 * with a message giving the size. `what` names the tensor in that message. */
int incv3_tensor_alloc(incv3_tensor *t, int n, int c, int h, int w, const char *what, incv3_error *err);
void incv3_tensor_free(incv3_tensor *t);

/* Aligned allocation used for every large buffer of the engine (zero-filled when `zero`). */
void *incv3_aligned_alloc(size_t bytes, int zero);
void incv3_aligned_free(void *p);

#ifdef __cplusplus
}
#endif
#endif
