/* Reading the user's own images for incv3 predict: PGM (binary P5 and ASCII P2, maxval 1..65535) and PNG
 * (any bit depth and colour type, through libpng), converted to 8-bit grayscale. */
#ifndef INCV3_IO_IMAGE_H
#define INCV3_IO_IMAGE_H

#include <stdint.h>

#include "incv3/error.h"

/* Largest width or height accepted. */
#define INCV3_IMAGE_MAX_DIM 16384

typedef struct incv3_gray_image {
    int rows, cols;
    uint8_t *data; /* rows x cols bytes, row-major, owned */
} incv3_gray_image;

/* Reads `path` (format chosen by its signature, not its name) into *out. Colour becomes luma
 * (0.299 R + 0.587 G + 0.114 B); alpha is composited on black (MNIST digits are white on black, so a
 * transparent background reads as background); samples wider than 8 bits are scaled to 0..255 with
 * rounding. Returns 0, or -1 with err naming the file (out is then left empty). */
int incv3_image_read(const char *path, incv3_gray_image *out, incv3_error *err);

void incv3_gray_image_free(incv3_gray_image *img);

#endif
