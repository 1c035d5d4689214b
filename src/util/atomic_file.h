/* Atomic file replacement: write to a temporary file beside the destination, fsync it, rename it over
 * the destination, fsync the directory. A reader (or a crash) sees either the old file or the complete
 * new one, never a torn mixture. Private to the library. */
#ifndef INCV3_UTIL_ATOMIC_FILE_H
#define INCV3_UTIL_ATOMIC_FILE_H

#include <stdio.h>

#include "incv3/error.h"

/* Writes the file's whole content into f. Returns 0 on success, non-zero on failure; it may describe
 * the failure in err (the helper prefixes the destination path), otherwise a generic message naming
 * the path is used. It must not close f. */
typedef int (*incv3_file_writer)(FILE *f, void *ctx, incv3_error *err);

/* Replaces path with what write_fn writes. The temporary file "<path>.tmp.XXXXXX" lives in the same
 * directory (so rename() cannot cross filesystems) and gets mode 0644 like an ordinary output file.
 * On any failure the temporary file is removed, an existing file at path is left untouched, and err
 * names path. Returns 0 or -1. */
int incv3_write_file_atomic(const char *path, incv3_file_writer write_fn, void *ctx, incv3_error *err);

#endif
