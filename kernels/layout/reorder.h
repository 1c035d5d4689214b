/* Layout reorders between the reference kernels' plain layouts and the blocked layouts of the fast path
 * (oneDNN's AVX2 formats):
 *   activations NCHW8c:  float [n][ceil(c/8)][h][w][8]
 *   weights   OIhw8i8o:  float [ceil(k/8)][ceil(c/8)][kh][kw][8 input ch][8 output ch]
 * Channels past c (or k) in the last block are written as zero by the forward reorders, so blocked kernels
 * can run every block at full width; the inverse reorders ignore them. Portable C, no intrinsics. */
#ifndef INCV3_LAYOUT_REORDER_H
#define INCV3_LAYOUT_REORDER_H

#include <stddef.h>

#include "kernel_types.h"

#define INCV3_BLK 8

/* Number of 8-channel blocks covering c channels. */
static inline int incv3_blocks8(int c)
{
    return (c + INCV3_BLK - 1) / INCV3_BLK;
}

/* Floats in an NCHW8c tensor of dims d (padding channels included). */
static inline size_t reorder_nchw8c_count(incv3_dims d)
{
    return (size_t)d.n * (size_t)incv3_blocks8(d.c) * (size_t)d.h * (size_t)d.w * INCV3_BLK;
}

/* Floats in an OIhw8i8o weight tensor of k output channels, c input channels, kh x kw taps. */
static inline size_t reorder_oihw8i8o_count(int k, int c, int kh, int kw)
{
    return (size_t)incv3_blocks8(k) * (size_t)incv3_blocks8(c) * (size_t)kh * (size_t)kw * INCV3_BLK * INCV3_BLK;
}

/* dst (reorder_nchw8c_count(d) floats) <- src (NCHW); padding channels set to 0. */
void reorder_nchw_to_nchw8c_f32(incv3_dims d, const float *src, float *dst);
/* dst (NCHW) <- src (NCHW8c); padding channels of src are not read. */
void reorder_nchw8c_to_nchw_f32(incv3_dims d, const float *src, float *dst);
/* dst (reorder_oihw8i8o_count floats) <- src (OIHW, k x c x kh x kw); padding set to 0. */
void reorder_oihw_to_oihw8i8o_f32(int k, int c, int kh, int kw, const float *src, float *dst);
/* dst (OIHW) <- src (OIhw8i8o); padding of src is not read. */
void reorder_oihw8i8o_to_oihw_f32(int k, int c, int kh, int kw, const float *src, float *dst);

/* The registry's pack for kernels that read OIhw8i8o weights (the direct kernels): its size in floats and
 * the reorder from the layer's OIHW weights, in the signature of incv3_conv_kernel.pack. */
size_t conv_weights_oihw8i8o_floats(const incv3_conv_shape *s);
void conv_weights_pack_oihw8i8o(const incv3_conv_shape *s, const float *oihw, float *w8i8o);

#endif
