#include "registry.h"

#include <string.h>

#include "incv3_config.h"
#include "ref/ref_kernels.h"
#if INCV3_HAVE_X86_64
#include "avx2/avx2_kernels.h"
#endif

static const incv3_conv_kernel conv_kernels[] = {
    {"conv_fwd_f32_ref__scalar", INCV3_CONV_FWD, "ref", INCV3_ISA_SCALAR, INCV3_LAYOUT_NCHW, NULL,
     {.fwd = conv_fwd_f32_ref__scalar}},
    {"conv_bwd_data_f32_ref__scalar", INCV3_CONV_BWD_DATA, "ref", INCV3_ISA_SCALAR, INCV3_LAYOUT_NCHW, NULL,
     {.bwd_data = conv_bwd_data_f32_ref__scalar}},
    {"conv_bwd_weights_f32_ref__scalar", INCV3_CONV_BWD_WEIGHTS, "ref", INCV3_ISA_SCALAR, INCV3_LAYOUT_NCHW, NULL,
     {.bwd_weights = conv_bwd_weights_f32_ref__scalar}},
#if INCV3_HAVE_X86_64
    {"conv_fwd_f32_direct__avx2", INCV3_CONV_FWD, "direct", INCV3_ISA_AVX2, INCV3_LAYOUT_NCHW8C, NULL,
     {.fwd = conv_fwd_f32_direct__avx2}},
    {"conv_bwd_data_f32_direct__avx2", INCV3_CONV_BWD_DATA, "direct", INCV3_ISA_AVX2, INCV3_LAYOUT_NCHW8C, NULL,
     {.bwd_data = conv_bwd_data_f32_direct__avx2}},
    {"conv_bwd_weights_f32_direct__avx2", INCV3_CONV_BWD_WEIGHTS, "direct", INCV3_ISA_AVX2, INCV3_LAYOUT_NCHW8C,
     NULL, {.bwd_weights = conv_bwd_weights_f32_direct__avx2}},
#endif
};

const incv3_conv_kernel *incv3_conv_kernel_table(size_t *count)
{
    *count = sizeof conv_kernels / sizeof conv_kernels[0];
    return conv_kernels;
}

const incv3_conv_kernel *incv3_conv_kernel_find(incv3_conv_pass pass, incv3_isa isa, incv3_layout layout,
                                                const char *algo, const incv3_conv_shape *s)
{
    for (size_t i = 0; i < sizeof conv_kernels / sizeof conv_kernels[0]; i++) {
        const incv3_conv_kernel *k = &conv_kernels[i];
        if (k->pass != pass || k->isa != isa || k->layout != layout || (algo && strcmp(k->algo, algo) != 0))
            continue;
        if (!k->supports || k->supports(s))
            return k;
    }
    return NULL;
}

int incv3_isa_has_layout(incv3_isa isa, incv3_layout layout)
{
    for (size_t i = 0; i < sizeof conv_kernels / sizeof conv_kernels[0]; i++)
        if (conv_kernels[i].isa == isa && conv_kernels[i].layout == layout)
            return 1;
    return 0;
}
