/* Error reporting: functions that can fail take an incv3_error* (may be NULL) and return non-zero on
 * failure after writing one human-readable message that names the file, flag or tensor at fault. */
#ifndef INCV3_ERROR_H
#define INCV3_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct incv3_error {
    char msg[1024];
} incv3_error;

/* printf-style; does nothing when err is NULL. Always returns -1 so callers can `return incv3_fail(...)`. */
int incv3_fail(incv3_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif
#endif
