/* IDX files, the format MNIST (and Fashion-MNIST, EMNIST, ...) ships in: a big-endian 4-byte magic
 * 0x0000TTNN (TT = element type, 0x08 = unsigned byte; NN = number of dimensions), NN big-endian uint32
 * dimension sizes, then the elements in row-major order. Images are 0x00000803 (count, rows, cols),
 * labels 0x00000801 (count).
 *
 * Files may be plain or gzip-compressed (detected by the 1f 8b magic, not by the name). Every byte is
 * checked: a wrong magic, bad dimensions, a file shorter or longer than its header says, a corrupt gzip
 * stream or an out-of-range label is an error whose message names the file and what is wrong. Nothing
 * larger than INCV3_IDX_MAX_BYTES (uncompressed) is read, so a hostile .gz cannot exhaust memory. */
#ifndef INCV3_IDX_H
#define INCV3_IDX_H

#include <stddef.h>
#include <stdint.h>

#include "incv3/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest uncompressed file (header included) the readers accept: 1 GiB. */
#define INCV3_IDX_MAX_BYTES ((uint64_t)1 << 30)

/* Largest rows / cols an images file may declare. */
#define INCV3_IDX_MAX_DIM 4096

/* `count` images of rows x cols bytes each, image after image, each row-major. Owns `data`. */
typedef struct incv3_idx_images {
    size_t count;
    int rows;
    int cols;
    uint8_t *data; /* count * rows * cols bytes */
} incv3_idx_images;

/* `count` labels, each in 0 .. num_classes-1. Owns `data`. */
typedef struct incv3_idx_labels {
    size_t count;
    int num_classes; /* as passed to incv3_idx_read_labels */
    uint8_t *data;   /* count bytes */
} incv3_idx_labels;

/* Read an images file (magic 0x00000803), plain or gzip. On failure returns -1, fills err and leaves
 * *out zeroed (freeing it is still allowed). Returns 0 on success. */
int incv3_idx_read_images(const char *path, incv3_idx_images *out, incv3_error *err);

/* Read a labels file (magic 0x00000801), plain or gzip; every label must be < num_classes (1..256).
 * Item numbers in messages count from 0. Same failure contract as incv3_idx_read_images. */
int incv3_idx_read_labels(const char *path, int num_classes, incv3_idx_labels *out, incv3_error *err);

/* Release the data and zero the struct; NULL and already-freed structs are fine. */
void incv3_idx_images_free(incv3_idx_images *im);
void incv3_idx_labels_free(incv3_idx_labels *lb);

/* The images and labels files of one split must describe the same number of items; the paths are only
 * used for the message. Returns 0 or -1. */
int incv3_idx_check_pair(const incv3_idx_images *im, const char *im_path, const incv3_idx_labels *lb,
                         const char *lb_path, incv3_error *err);

/* Locate an MNIST split ("train" or "t10k") in dir: DIR/SPLIT-images-idx3-ubyte, else the same name with
 * ".gz"; likewise SPLIT-labels-idx1-ubyte[.gz]. The plain file wins when both exist. Writes both paths
 * (each buffer `len` bytes). When either is missing the error lists every name looked for. */
int incv3_mnist_find(const char *dir, const char *split, char *images_path, char *labels_path, size_t len,
                     incv3_error *err);

#ifdef __cplusplus
}
#endif
#endif
