#include "registry.h"

#include <string.h>

#include "ref/ref_kernels.h"

static const incv3_conv_kernel conv_kernels[] = {
    {"conv_fwd_f32_ref__scalar", INCV3_CONV_FWD, "ref", INCV3_ISA_SCALAR, NULL,
     {.fwd = conv_fwd_f32_ref__scalar}},
    {"conv_bwd_data_f32_ref__scalar", INCV3_CONV_BWD_DATA, "ref", INCV3_ISA_SCALAR, NULL,
     {.bwd_data = conv_bwd_data_f32_ref__scalar}},
    {"conv_bwd_weights_f32_ref__scalar", INCV3_CONV_BWD_WEIGHTS, "ref", INCV3_ISA_SCALAR, NULL,
     {.bwd_weights = conv_bwd_weights_f32_ref__scalar}},
};

const incv3_conv_kernel *incv3_conv_kernel_table(size_t *count)
{
    *count = sizeof conv_kernels / sizeof conv_kernels[0];
    return conv_kernels;
}

const incv3_conv_kernel *incv3_conv_kernel_find(incv3_conv_pass pass, incv3_isa isa, const char *algo,
                                                const incv3_conv_shape *s)
{
    for (size_t i = 0; i < sizeof conv_kernels / sizeof conv_kernels[0]; i++) {
        const incv3_conv_kernel *k = &conv_kernels[i];
        if (k->pass != pass || k->isa != isa || (algo && strcmp(k->algo, algo) != 0))
            continue;
        if (!k->supports || k->supports(s))
            return k;
    }
    return NULL;
}
