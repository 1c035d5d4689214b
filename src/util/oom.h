/* Out-of-memory errors for callers that can return them: the same wording as the kernels' exit message
 * (kernels/alloc.h), so every allocation failure reads alike. Private to the library. */
#ifndef INCV3_OOM_H
#define INCV3_OOM_H

#include <stddef.h>

#include "incv3/error.h"

/* Fills err with "out of memory: could not allocate N MiB for WHAT"; returns -1. */
int incv3_fail_oom(incv3_error *err, size_t bytes, const char *what);
/* 1 when err holds such a message: the failure says nothing about the file being read. */
int incv3_error_is_oom(const incv3_error *err);

#endif
