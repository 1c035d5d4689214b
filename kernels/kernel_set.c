#include "kernel_set.h"

#include "incv3_config.h"
#include "ref/ref_kernels.h"
#if INCV3_HAVE_X86_64
#include "avx2/avx2_fused.h"
#include "avx2/avx2_kernels.h"
#include "avx2/avx2_layers.h"
#include "avx2/gemm_avx2.h"
#endif
#if INCV3_HAVE_AARCH64
#include "neon/gemm_neon.h"
#include "neon/neon_fused.h"
#include "neon/neon_kernels.h"
#include "neon/neon_layers.h"
#endif

static const incv3_kernel_set set_ref = {
    .isa = INCV3_ISA_SCALAR,
    .layout = INCV3_LAYOUT_NCHW,
    .bn_fwd_train = bn_fwd_train_f32_ref__scalar,
    .bn_fwd_infer = bn_fwd_infer_f32_ref__scalar,
    .bn_bwd_train = bn_bwd_train_f32_ref__scalar,
    .bn_bwd_infer = bn_bwd_infer_f32_ref__scalar,
    .relu_fwd = relu_fwd_f32_ref__scalar,
    .relu_bwd = relu_bwd_f32_ref__scalar,
    .maxpool_fwd = maxpool_fwd_f32_ref__scalar,
    .maxpool_bwd = maxpool_bwd_f32_ref__scalar,
    .avgpool_fwd = avgpool_fwd_f32_ref__scalar,
    .avgpool_bwd = avgpool_bwd_f32_ref__scalar,
    .linear_fwd = linear_fwd_f32_ref__scalar,
    .linear_bwd_data = linear_bwd_data_f32_ref__scalar,
    .linear_bwd_weights = linear_bwd_weights_f32_ref__scalar,
    .adamw = adamw_f32_ref__scalar,
};

/* The vector sets differ only in the suffix of every name. */
#define BLOCKED_SET(isa_, tile_, sfx)                                                                    \
    {                                                                                                         \
        .isa = isa_, .layout = INCV3_LAYOUT_NCHW8C, .gemm_tile = #tile_, .bn_fwd_train = bn_fwd_train_f32_blocked__##sfx,         \
        .bn_fwd_infer = bn_fwd_infer_f32_blocked__##sfx, .bn_bwd_train = bn_bwd_train_f32_blocked__##sfx,    \
        .bn_bwd_infer = bn_bwd_infer_f32_blocked__##sfx,                                                      \
        .bn_relu_fwd_train = bn_relu_fwd_train_f32_blocked__##sfx,                                            \
        .bn_relu_fwd_infer = bn_relu_fwd_infer_f32_blocked__##sfx,                                            \
        .bn_relu_bwd_train = bn_relu_bwd_train_f32_blocked__##sfx, .relu_fwd = relu_fwd_f32__##sfx,          \
        .relu_bwd = relu_bwd_f32__##sfx, .maxpool_fwd = maxpool_fwd_f32_blocked__##sfx,                       \
        .maxpool_bwd = maxpool_bwd_f32_blocked__##sfx, .avgpool_fwd = avgpool_fwd_f32_blocked__##sfx,        \
        .avgpool_bwd = avgpool_bwd_f32_blocked__##sfx, .gemm = gemm_f32_##tile_##__##sfx,                 \
        .linear_fwd = linear_fwd_f32_gemm__##sfx, .linear_bwd_data = linear_bwd_data_f32_gemm__##sfx,       \
        .linear_bwd_weights = linear_bwd_weights_f32_gemm__##sfx, .adamw = adamw_f32__##sfx,                 \
    }

#if INCV3_HAVE_X86_64
static const incv3_kernel_set set_avx2 = BLOCKED_SET(INCV3_ISA_AVX2, 6x16, avx2);
#endif
#if INCV3_HAVE_AARCH64
static const incv3_kernel_set set_neon = BLOCKED_SET(INCV3_ISA_NEON, 8x12, neon);
#endif

const incv3_kernel_set *incv3_kernel_set_for(incv3_isa isa)
{
    switch (isa) {
    case INCV3_ISA_SCALAR:
        return &set_ref;
#if INCV3_HAVE_X86_64
    case INCV3_ISA_AVX2:
        return &set_avx2;
#endif
#if INCV3_HAVE_AARCH64
    case INCV3_ISA_NEON:
        return &set_neon;
#endif
    default:
        return NULL;
    }
}
