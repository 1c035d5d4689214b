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

/* Output size of a sliding window over a padded h x w plane; -1 when the window does not fit or a field
 * is invalid. Shared by convolution and pooling. */
static inline int incv3_window_out(int h, int w, int kh, int kw, int sh, int sw, int pt, int pl, int pb, int pr,
                                   int *oh, int *ow)
{
    if (h < 1 || w < 1 || kh < 1 || kw < 1 || sh < 1 || sw < 1 || pt < 0 || pl < 0 || pb < 0 || pr < 0)
        return -1;
    int hp = h + pt + pb, wp = w + pl + pr;
    if (hp < kh || wp < kw)
        return -1;
    *oh = (hp - kh) / sh + 1;
    *ow = (wp - kw) / sw + 1;
    return 0;
}

/* Fills oh/ow; returns 0, or -1 when the kernel does not fit the padded input or a field is invalid. */
static inline int incv3_conv_shape_finish(incv3_conv_shape *s)
{
    if (s->n < 1 || s->c < 1 || s->k < 1)
        return -1;
    return incv3_window_out(s->h, s->w, s->kh, s->kw, s->stride_h, s->stride_w, s->pad_top, s->pad_left,
                            s->pad_bottom, s->pad_right, &s->oh, &s->ow);
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
    /* A window made only of padding would have no input to take from. */
    if (s->n < 1 || s->c < 1 || s->pad_top >= s->kh || s->pad_bottom >= s->kh || s->pad_left >= s->kw ||
        s->pad_right >= s->kw)
        return -1;
    return incv3_window_out(s->h, s->w, s->kh, s->kw, s->stride_h, s->stride_w, s->pad_top, s->pad_left,
                            s->pad_bottom, s->pad_right, &s->oh, &s->ow);
}

#endif
