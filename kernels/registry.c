#include "registry.h"

#include <string.h>

#include "incv3_config.h"
#include "layout/reorder.h"
#include "ref/ref_kernels.h"
#if INCV3_HAVE_X86_64
#include "avx2/avx2_fused.h"
#include "avx2/avx2_kernels.h"
#include "avx2/conv_gemm_avx2.h"
#include "avx2/conv_winograd_avx2.h"
#endif
#if INCV3_HAVE_AARCH64
#include "neon/conv_gemm_neon.h"
#include "neon/conv_winograd_neon.h"
#include "neon/neon_fused.h"
#include "neon/neon_kernels.h"
#endif

#define FWD(name_, algo_, isa_, layout_, supports_, ...)                                                      \
    {.name = #name_, .pass = INCV3_CONV_FWD, .algo = algo_, .isa = isa_, .layout = layout_, .supports = supports_, \
     .fn = {.fwd = name_}, __VA_ARGS__}
#define BWD_DATA(name_, algo_, isa_, layout_, supports_, ...)                                                 \
    {.name = #name_, .pass = INCV3_CONV_BWD_DATA, .algo = algo_, .isa = isa_, .layout = layout_,            \
     .supports = supports_, .fn = {.bwd_data = name_}, __VA_ARGS__}
#define BWD_WEIGHTS(name_, algo_, isa_, layout_, supports_, ...)                                              \
    {.name = #name_, .pass = INCV3_CONV_BWD_WEIGHTS, .algo = algo_, .isa = isa_, .layout = layout_,         \
     .supports = supports_, .fn = {.bwd_weights = name_}, __VA_ARGS__}

/* The three passes of one Winograd variant (V: the tag of conv_winograd_<isa>.h; sfx:
 * the ISA suffix of the names). */
#define WINOGRAD(V, algo_, isa_, sfx)                                                                         \
    FWD(conv_fwd_f32_winograd_##V##__##sfx, algo_, isa_, INCV3_LAYOUT_NCHW8C, conv_winograd_##V##_supports__##sfx, \
        .packed_floats = conv_winograd_##V##_fwd_weights_floats__##sfx,                                      \
        .pack = conv_winograd_##V##_pack_fwd__##sfx, .fwd_stats = conv_fwd_stats_f32_winograd_##V##__##sfx,  \
        .fwd_bn_relu_infer = conv_bn_relu_fwd_infer_f32_winograd_##V##__##sfx),                             \
    BWD_DATA(conv_bwd_data_f32_winograd_##V##__##sfx, algo_, isa_, INCV3_LAYOUT_NCHW8C,                      \
             conv_winograd_##V##_supports__##sfx, .packed_floats = conv_winograd_##V##_bwd_data_weights_floats__##sfx, \
             .pack = conv_winograd_##V##_pack_bwd_data__##sfx),                                             \
    BWD_WEIGHTS(conv_bwd_weights_f32_winograd_##V##__##sfx, algo_, isa_, INCV3_LAYOUT_NCHW8C,                \
                conv_winograd_##V##_supports__##sfx,                                                         \
                .scratch_floats = conv_bwd_weights_f32_winograd_##V##_scratch_floats__##sfx)

/* Direct convolution in all three passes, with the fused epilogues of the forward; the forward and
 * backward-data read OIhw8i8o weights (their pack), backward-weights accumulates them in scratch. */
#define DIRECT(isa_, sfx)                                                                                    \
    FWD(conv_fwd_f32_direct__##sfx, "direct", isa_, INCV3_LAYOUT_NCHW8C, NULL,                               \
        .packed_floats = conv_weights_oihw8i8o_floats, .pack = conv_weights_pack_oihw8i8o,                   \
        .fwd_stats = conv_fwd_stats_f32_direct__##sfx, .fwd_bn_relu_infer = conv_bn_relu_fwd_infer_f32_direct__##sfx), \
    BWD_DATA(conv_bwd_data_f32_direct__##sfx, "direct", isa_, INCV3_LAYOUT_NCHW8C, NULL,                     \
             .packed_floats = conv_weights_oihw8i8o_floats, .pack = conv_weights_pack_oihw8i8o),             \
    BWD_WEIGHTS(conv_bwd_weights_f32_direct__##sfx, "direct", isa_, INCV3_LAYOUT_NCHW8C, NULL,               \
                .scratch_floats = conv_weights_oihw8i8o_floats)

/* The three passes of a convolution with a 1x1 output as GEMMs (common/conv_gemm_driver.h), of one with
 * more output pixels by im2col (common/conv_gemm_im2col_driver.h), and of a 1 x r or r x 1 one over short
 * lines with the weights' Toeplitz matrix (common/conv_gemm_toeplitz_driver.h: fewer multiply-adds than
 * im2col where both serve, so it comes first for --conv-algo gemm). */
#define GEMM(isa_, sfx)                                                                                      \
    FWD(conv_fwd_f32_gemm__##sfx, "gemm", isa_, INCV3_LAYOUT_NCHW8C, conv_gemm_supports__##sfx,              \
        .packed_floats = conv_gemm_weights_floats__##sfx, .pack = conv_gemm_pack__##sfx,                     \
        .fwd_stats = conv_fwd_stats_f32_gemm__##sfx, .fwd_bn_relu_infer = conv_bn_relu_fwd_infer_f32_gemm__##sfx), \
    BWD_DATA(conv_bwd_data_f32_gemm__##sfx, "gemm", isa_, INCV3_LAYOUT_NCHW8C, conv_gemm_supports__##sfx,     \
             .packed_floats = conv_gemm_weights_floats__##sfx, .pack = conv_gemm_pack__##sfx),              \
    BWD_WEIGHTS(conv_bwd_weights_f32_gemm__##sfx, "gemm", isa_, INCV3_LAYOUT_NCHW8C, conv_gemm_supports__##sfx,  \
                .scratch_floats = NULL),                                                                 \
    FWD(conv_fwd_f32_gemm_toeplitz__##sfx, "gemm", isa_, INCV3_LAYOUT_NCHW8C, conv_gemm_toeplitz_supports__##sfx,  \
        .packed_floats = conv_gemm_toeplitz_weights_floats__##sfx, .pack = conv_gemm_toeplitz_pack__##sfx,         \
        .fwd_stats = conv_fwd_stats_f32_gemm_toeplitz__##sfx,                                                   \
        .fwd_bn_relu_infer = conv_bn_relu_fwd_infer_f32_gemm_toeplitz__##sfx,                                   \
        .scratch_floats = conv_gemm_toeplitz_scratch_floats__##sfx),                                            \
    BWD_DATA(conv_bwd_data_f32_gemm_toeplitz__##sfx, "gemm", isa_, INCV3_LAYOUT_NCHW8C,                           \
             conv_gemm_toeplitz_supports__##sfx, .packed_floats = conv_gemm_toeplitz_weights_floats__##sfx,       \
             .pack = conv_gemm_toeplitz_pack__##sfx, .scratch_floats = conv_gemm_toeplitz_scratch_floats__##sfx), \
    BWD_WEIGHTS(conv_bwd_weights_f32_gemm_toeplitz__##sfx, "gemm", isa_, INCV3_LAYOUT_NCHW8C,                     \
                conv_gemm_toeplitz_supports__##sfx, .scratch_floats = conv_gemm_toeplitz_scratch_floats__##sfx), \
    FWD(conv_fwd_f32_gemm_im2col__##sfx, "gemm", isa_, INCV3_LAYOUT_NCHW8C, conv_gemm_im2col_supports__##sfx,      \
        .packed_floats = conv_gemm_im2col_weights_floats__##sfx, .pack = conv_gemm_im2col_pack__##sfx,             \
        .fwd_stats = conv_fwd_stats_f32_gemm_im2col__##sfx,                                                     \
        .fwd_bn_relu_infer = conv_bn_relu_fwd_infer_f32_gemm_im2col__##sfx,                                     \
        .scratch_floats = conv_gemm_im2col_scratch_floats__##sfx),                                              \
    BWD_DATA(conv_bwd_data_f32_gemm_im2col__##sfx, "gemm", isa_, INCV3_LAYOUT_NCHW8C, conv_gemm_im2col_supports__##sfx, \
             .packed_floats = conv_gemm_im2col_weights_floats__##sfx, .pack = conv_gemm_im2col_pack__##sfx,        \
             .scratch_floats = conv_gemm_im2col_scratch_floats__##sfx),                                         \
    BWD_WEIGHTS(conv_bwd_weights_f32_gemm_im2col__##sfx, "gemm", isa_, INCV3_LAYOUT_NCHW8C,                     \
                conv_gemm_im2col_supports__##sfx, .scratch_floats = conv_gemm_im2col_scratch_floats__##sfx)

/* Within a pass, ISA and layout, the first entry serving a shape is the default (direct, where the ISA
 * has it); --conv-algo auto times the others against it. */
static const incv3_conv_kernel conv_kernels[] = {
    FWD(conv_fwd_f32_ref__scalar, "ref", INCV3_ISA_SCALAR, INCV3_LAYOUT_NCHW, NULL, .pack = NULL),
    BWD_DATA(conv_bwd_data_f32_ref__scalar, "ref", INCV3_ISA_SCALAR, INCV3_LAYOUT_NCHW, NULL, .pack = NULL),
    BWD_WEIGHTS(conv_bwd_weights_f32_ref__scalar, "ref", INCV3_ISA_SCALAR, INCV3_LAYOUT_NCHW, NULL, .scratch_floats = NULL),
#if INCV3_HAVE_X86_64
    DIRECT(INCV3_ISA_AVX2, avx2),
    GEMM(INCV3_ISA_AVX2, avx2),
    /* Winograd: only the variants whose float32 error stays within 1e-4 on the model's shapes (see
     * conv_winograd_avx2.h and the README); backward-weights stays direct. */
    WINOGRAD(f6x6_3x3, "winograd-f6x6", INCV3_ISA_AVX2, avx2),
    WINOGRAD(f4x4_3x3, "winograd-f4x4", INCV3_ISA_AVX2, avx2),
    WINOGRAD(f2x2_3x3, "winograd-f2x2", INCV3_ISA_AVX2, avx2),
    WINOGRAD(f4_1x3, "winograd-f4", INCV3_ISA_AVX2, avx2),
    WINOGRAD(f4_3x1, "winograd-f4", INCV3_ISA_AVX2, avx2),
    WINOGRAD(f4_1x7, "winograd-f4", INCV3_ISA_AVX2, avx2),
    WINOGRAD(f4_7x1, "winograd-f4", INCV3_ISA_AVX2, avx2),
    WINOGRAD(f2_1x3, "winograd-f2", INCV3_ISA_AVX2, avx2),
    WINOGRAD(f2_3x1, "winograd-f2", INCV3_ISA_AVX2, avx2),
    WINOGRAD(f2_1x7, "winograd-f2", INCV3_ISA_AVX2, avx2),
    WINOGRAD(f2_7x1, "winograd-f2", INCV3_ISA_AVX2, avx2),
#endif
#if INCV3_HAVE_AARCH64
    DIRECT(INCV3_ISA_NEON, neon),
    GEMM(INCV3_ISA_NEON, neon),
    WINOGRAD(f6x6_3x3, "winograd-f6x6", INCV3_ISA_NEON, neon),
    WINOGRAD(f4x4_3x3, "winograd-f4x4", INCV3_ISA_NEON, neon),
    WINOGRAD(f2x2_3x3, "winograd-f2x2", INCV3_ISA_NEON, neon),
    WINOGRAD(f4_1x3, "winograd-f4", INCV3_ISA_NEON, neon),
    WINOGRAD(f4_3x1, "winograd-f4", INCV3_ISA_NEON, neon),
    WINOGRAD(f4_1x7, "winograd-f4", INCV3_ISA_NEON, neon),
    WINOGRAD(f4_7x1, "winograd-f4", INCV3_ISA_NEON, neon),
    WINOGRAD(f2_1x3, "winograd-f2", INCV3_ISA_NEON, neon),
    WINOGRAD(f2_3x1, "winograd-f2", INCV3_ISA_NEON, neon),
    WINOGRAD(f2_1x7, "winograd-f2", INCV3_ISA_NEON, neon),
    WINOGRAD(f2_7x1, "winograd-f2", INCV3_ISA_NEON, neon),
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

const incv3_conv_kernel *incv3_conv_kernel_by_name(const char *name)
{
    for (size_t i = 0; i < sizeof conv_kernels / sizeof conv_kernels[0]; i++)
        if (strcmp(conv_kernels[i].name, name) == 0)
            return &conv_kernels[i];
    return NULL;
}

int incv3_isa_has_layout(incv3_isa isa, incv3_layout layout)
{
    for (size_t i = 0; i < sizeof conv_kernels / sizeof conv_kernels[0]; i++)
        if (conv_kernels[i].isa == isa && conv_kernels[i].layout == layout)
            return 1;
    return 0;
}
