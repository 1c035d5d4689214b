#include "incv3/tensor.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "util/oom.h"

void *incv3_aligned_alloc(size_t bytes, int zero)
{
    /* Round up so aligned_alloc's size-multiple rule holds and vector loops may read a whole last line. */
    size_t rounded = (bytes + INCV3_ALIGN - 1) / INCV3_ALIGN * INCV3_ALIGN;
    if (rounded == 0)
        rounded = INCV3_ALIGN;
    if (rounded < bytes)
        return NULL;
    void *p = incv3_mem_try(rounded, INCV3_ALIGN);
    if (p && zero)
        memset(p, 0, rounded);
    return p;
}

void incv3_aligned_free(void *p)
{
    free(p);
}

int incv3_tensor_alloc(incv3_tensor *t, int n, int c, int h, int w, const char *what, incv3_error *err)
{
    t->n = n, t->c = c, t->h = h, t->w = w;
    t->data = NULL;
    size_t count = incv3_tensor_count(t);
    if (n < 0 || c < 0 || h < 0 || w < 0 || (count && SIZE_MAX / sizeof(float) < count))
        return incv3_fail(err, "%s: invalid tensor size %dx%dx%dx%d", what, n, c, h, w);
    t->data = incv3_aligned_alloc(count * sizeof(float), 0);
    if (!t->data) {
        char name[300];
        snprintf(name, sizeof name, "%s (%dx%dx%dx%d)", what, n, c, h, w);
        return incv3_fail_oom(err, count * sizeof(float), name);
    }
    return 0;
}

void incv3_tensor_free(incv3_tensor *t)
{
    incv3_aligned_free(t->data);
    t->data = NULL;
}
