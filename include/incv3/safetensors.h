/* Safetensors files: an 8-byte little-endian header length, a JSON header (tensor name -> dtype, shape,
 * data_offsets; optional "__metadata__" string map), then the raw little-endian tensor bytes.
 * Every byte read from a file is checked: a truncated file, a header that lies about sizes or offsets,
 * an unknown dtype or a missing tensor is an error naming the file and tensor, never a crash. A file with a
 * "checksum" metadata entry (incv3's checkpoints) is also verified against it before anything is returned. */
#ifndef INCV3_SAFETENSORS_H
#define INCV3_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "incv3/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum incv3_dtype { INCV3_F32 = 0, INCV3_I64 = 1 } incv3_dtype;

#define INCV3_ST_MAX_DIMS 8

/* One tensor of an open file. `data` is 64-byte aligned, read-only, valid until incv3_st_close(); tensors
 * are loaded into separate aligned slots, so one tensor's address says nothing about another's. */
typedef struct incv3_st_tensor {
    const char *name;
    incv3_dtype dtype;
    int ndim;
    int64_t shape[INCV3_ST_MAX_DIMS];
    size_t numel;
    const void *data;
} incv3_st_tensor;

typedef struct incv3_st_file incv3_st_file;

/* Reads and validates the whole file. Returns NULL (and fills err) on any problem. */
incv3_st_file *incv3_st_open(const char *path, incv3_error *err);
void incv3_st_close(incv3_st_file *f);

size_t incv3_st_count(const incv3_st_file *f);
/* Tensors in file order (sorted by data offset). */
const incv3_st_tensor *incv3_st_at(const incv3_st_file *f, size_t i);
/* NULL when absent. */
const incv3_st_tensor *incv3_st_find(const incv3_st_file *f, const char *name);
/* Like find, but absent or of another dtype / element count is an error naming the file and tensor.
 * expect_numel 0 accepts any count. */
const incv3_st_tensor *incv3_st_require(const incv3_st_file *f, const char *name, incv3_dtype dtype,
                                        size_t expect_numel, incv3_error *err);
/* A "__metadata__" value, or NULL. */
const char *incv3_st_metadata(const incv3_st_file *f, const char *key);
const char *incv3_st_path(const incv3_st_file *f);

/* ---- writing ---- */
typedef struct incv3_st_writer incv3_st_writer;

incv3_st_writer *incv3_st_writer_new(void);
void incv3_st_writer_free(incv3_st_writer *w);
/* Adds a tensor; the data is referenced, not copied, and must stay valid until incv3_st_write().
 * Returns non-zero on a duplicate, empty, reserved ("__metadata__") or non-UTF-8 name, an unknown dtype,
 * a bad shape, or NULL data for a non-empty tensor. */
int incv3_st_writer_add(incv3_st_writer *w, const char *name, incv3_dtype dtype, int ndim, const int64_t *shape,
                        const void *data, incv3_error *err);
/* Makes incv3_st_write add a "checksum" metadata entry ("crc32:" and 8 hex digits, first in the header) over
 * every other byte of the file; incv3_st_open verifies it whenever a file has one and refuses a mismatch as
 * a damaged file. The key "checksum" is then reserved. */
void incv3_st_writer_checksum(incv3_st_writer *w);
/* Adds a "__metadata__" entry; a duplicate key is an error. */
int incv3_st_writer_meta(incv3_st_writer *w, const char *key, const char *value, incv3_error *err);
/* Writes atomically: a temporary file in the same directory, fsync, rename over `path`, fsync of the
 * directory. On failure before the rename `path` is untouched and the temporary file removed; if only the
 * final directory fsync fails, `path` already holds the new file and the error says so. */
int incv3_st_write(const incv3_st_writer *w, const char *path, incv3_error *err);

#ifdef __cplusplus
}
#endif
#endif
