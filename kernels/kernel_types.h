/* Shapes passed to kernels. Kernels see plain arrays and these descriptors, nothing of graphs or files. */
#ifndef INCV3_KERNEL_TYPES_H
#define INCV3_KERNEL_TYPES_H

#include <stddef.h>
#include <stdint.h>

/* An activation tensor's dimensions, NCHW. */
typedef struct incv3_dims {
    int n, c, h, w;
} incv3_dims;

static inline size_t incv3_dims_count(incv3_dims d)
{
    return (size_t)d.n * (size_t)d.c * (size_t)d.h * (size_t)d.w;
}

/* A 2-D convolution without bias: input n x c x h x w, weights k x c x kh x kw (OIHW),
 * output n x k x oh x ow. Padding may differ on each side. */
typedef struct incv3_conv_shape {
    int n, c, h, w;
    int k, kh, kw;
    int stride_h, stride_w;
    int pad_top, pad_left, pad_bottom, pad_right;
    int oh, ow; /* derived by incv3_conv_shape_finish() */
} incv3_conv_shape;

/* Fills oh/ow; returns 0, or -1 when the kernel does not fit the padded input or a field is invalid. */
static inline int incv3_conv_shape_finish(incv3_conv_shape *s)
{
    if (s->n < 1 || s->c < 1 || s->h < 1 || s->w < 1 || s->k < 1 || s->kh < 1 || s->kw < 1 ||
        s->stride_h < 1 || s->stride_w < 1 || s->pad_top < 0 || s->pad_left < 0 || s->pad_bottom < 0 ||
        s->pad_right < 0)
        return -1;
    int hp = s->h + s->pad_top + s->pad_bottom, wp = s->w + s->pad_left + s->pad_right;
    if (hp < s->kh || wp < s->kw)
        return -1;
    s->oh = (hp - s->kh) / s->stride_h + 1;
    s->ow = (wp - s->kw) / s->stride_w + 1;
    return 0;
}

/* Multiply-accumulates of one direct convolution pass (padded taps included, as oneDNN counts). */
static inline double incv3_conv_macs(const incv3_conv_shape *s)
{
    return (double)s->n * s->k * s->oh * s->ow * (double)s->c * s->kh * s->kw;
}

/* Max or average pooling window over each channel. Average pooling counts padded cells in the
 * divisor (PyTorch's count_include_pad=True); max pooling treats them as -infinity. */
typedef struct incv3_pool_shape {
    int n, c, h, w;
    int kh, kw;
    int stride_h, stride_w;
    int pad_top, pad_left, pad_bottom, pad_right;
    int oh, ow; /* derived by incv3_pool_shape_finish() */
} incv3_pool_shape;

static inline int incv3_pool_shape_finish(incv3_pool_shape *s)
{
    if (s->n < 1 || s->c < 1 || s->h < 1 || s->w < 1 || s->kh < 1 || s->kw < 1 || s->stride_h < 1 ||
        s->stride_w < 1 || s->pad_top < 0 || s->pad_left < 0 || s->pad_bottom < 0 || s->pad_right < 0 ||
        s->pad_top >= s->kh || s->pad_bottom >= s->kh || s->pad_left >= s->kw || s->pad_right >= s->kw)
        return -1;
    int hp = s->h + s->pad_top + s->pad_bottom, wp = s->w + s->pad_left + s->pad_right;
    if (hp < s->kh || wp < s->kw)
        return -1;
    s->oh = (hp - s->kh) / s->stride_h + 1;
    s->ow = (wp - s->kw) / s->stride_w + 1;
    return 0;
}

#endif
