#include "incv3/error.h"
#include "util/oom.h"

#include "alloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int incv3_fail(incv3_error *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int incv3_fail_oom(incv3_error *err, size_t bytes, const char *what)
{
    if (err)
        incv3_mem_describe(err->msg, sizeof err->msg, bytes, what);
    return -1;
}

int incv3_error_is_oom(const incv3_error *err)
{
    return err && strstr(err->msg, "out of memory: could not allocate") != NULL;
}
