/* The kernel registry: every convolution kernel variant of this build, named op_dtype_algo__isa
 * (XNNPACK's scheme: "conv_fwd_f32_ref__scalar"), with a predicate for the shapes it serves.
 * The table is constant; which entries may run is decided by the CPU features detected at start-up. */
#ifndef INCV3_REGISTRY_H
#define INCV3_REGISTRY_H

#include <stddef.h>

#include "kernel_types.h"

typedef enum incv3_isa { INCV3_ISA_SCALAR = 0, INCV3_ISA_AVX2 = 1, INCV3_ISA_NEON = 2, INCV3_ISA_COUNT } incv3_isa;

/* Memory layout of a kernel's activations (see layout/reorder.h). Weights, in every layout, come to the
 * table's kernels as OIHW (PyTorch's layout, the one the parameters are kept in): a kernel that reads
 * another form declares a pack made from OIHW, and backward-weights kernels write dw as OIHW. */
typedef enum incv3_layout {
    INCV3_LAYOUT_NCHW = 0,   /* activations NCHW */
    INCV3_LAYOUT_NCHW8C = 1, /* activations NCHW8c */
} incv3_layout;

typedef enum incv3_conv_pass {
    INCV3_CONV_FWD = 0,
    INCV3_CONV_BWD_DATA = 1,
    INCV3_CONV_BWD_WEIGHTS = 2,
} incv3_conv_pass;

typedef void (*incv3_conv_fwd_fn)(const incv3_conv_shape *s, const float *x, const float *w, float *y);
typedef void (*incv3_conv_bwd_data_fn)(const incv3_conv_shape *s, const float *dy, const float *w, float *dx,
                                       int accumulate);
typedef void (*incv3_conv_bwd_weights_fn)(const incv3_conv_shape *s, const float *x, const float *dy,
                                          float *dw);
/* Forward with the batch statistics of y for a following BatchNorm: sum[k], sumsq[k] over (n, oh, ow). */
typedef void (*incv3_conv_fwd_stats_fn)(const incv3_conv_shape *s, const float *x, const float *w, float *y,
                                        double *sum, double *sumsq);
/* Inference forward with BatchNorm (running statistics, folded) and ReLU applied in the epilogue. */
typedef void (*incv3_conv_fwd_bn_relu_fn)(const incv3_conv_shape *s, const float *x, const float *w, float *y,
                                          const float *gamma, const float *beta, const float *mean,
                                          const float *var, float eps);

typedef struct incv3_conv_kernel {
    const char *name;
    incv3_conv_pass pass;
    const char *algo; /* "ref", "direct", ... */
    incv3_isa isa;
    incv3_layout layout;
    int (*supports)(const incv3_conv_shape *s); /* NULL: every shape */
    union {
        incv3_conv_fwd_fn fwd;
        incv3_conv_bwd_data_fn bwd_data;
        incv3_conv_bwd_weights_fn bwd_weights;
    } fn;
    /* Kernels that read the weights in a form of their own (OIhw8i8o blocks, Winograd's transformed
     * filters, a GEMM's matrix): its size in floats and the packing from the OIHW weights, done once per
     * change of the weights. NULL, or a size of 0 for a shape (incv3_conv_kernel_packs): the kernel reads
     * the OIHW weights as they are. */
    size_t (*packed_floats)(const incv3_conv_shape *s);
    void (*pack)(const incv3_conv_shape *s, const float *w, float *packed);
    /* Floats of scratch one call allocates and frees, where that can exceed a layer's weights per thread
     * (Winograd backward-weights); NULL where it does not. */
    size_t (*scratch_floats)(const incv3_conv_shape *s);
    /* Forward kernels only, NULL where absent: the fused epilogues of conv -> BatchNorm -> ReLU. */
    incv3_conv_fwd_stats_fn fwd_stats;
    incv3_conv_fwd_bn_relu_fn fwd_bn_relu_infer;
} incv3_conv_kernel;

/* 1 when kernel k reads its weights for shape s through its pack (else as the OIHW weights are). */
static inline int incv3_conv_kernel_packs(const incv3_conv_kernel *k, const incv3_conv_shape *s)
{
    return k->pack && k->packed_floats(s) > 0;
}

/* CPU features, detected once. */
int incv3_cpu_has_avx2_fma(void);
/* The CPU's model name ("AMD EPYC 7B13"; /proc/cpuinfo where it has one, else the architecture). */
void incv3_cpu_model_name(char *buf, size_t len);
/* Best ISA this CPU runs among those compiled in. */
incv3_isa incv3_isa_best(void);
const char *incv3_isa_name(incv3_isa isa);
/* "scalar", "avx2", "neon"; -1 when unknown. */
int incv3_isa_from_name(const char *name);
/* 1 when compiled in and supported by this CPU. */
int incv3_isa_available(incv3_isa isa);

/* The whole table. */
const incv3_conv_kernel *incv3_conv_kernel_table(size_t *count);

/* The kernel for (pass, isa, layout, algo) serving shape s, or NULL. algo NULL means any (table order is
 * the order of preference). */
const incv3_conv_kernel *incv3_conv_kernel_find(incv3_conv_pass pass, incv3_isa isa, incv3_layout layout,
                                                const char *algo, const incv3_conv_shape *s);
/* The kernel of that name, or NULL. */
const incv3_conv_kernel *incv3_conv_kernel_by_name(const char *name);
/* 1 when the table has kernels of this ISA in this layout. */
int incv3_isa_has_layout(incv3_isa isa, incv3_layout layout);

#endif
