/* The single-output-pixel convolutions of common/conv_gemm_driver.h on the NEON GEMM. */
#include "neon/conv_gemm_neon.h"

#include "neon/gemm_neon.h"

#define KERNEL_ISA neon
#define KERNEL_ISA_STR "neon"
#define CONV_GEMM gemm_f32_8x12__neon
#include "common/conv_gemm_driver.h"
#include "common/conv_gemm_im2col_driver.h"
#include "common/conv_gemm_toeplitz_driver.h"
