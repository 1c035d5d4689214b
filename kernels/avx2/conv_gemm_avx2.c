/* The single-output-pixel convolutions of common/conv_gemm_driver.h on the AVX2 GEMM. */
#include "avx2/conv_gemm_avx2.h"

#include "avx2/gemm_avx2.h"

#define KERNEL_ISA avx2
#define KERNEL_ISA_STR "avx2"
#define CONV_GEMM gemm_f32_6x16__avx2
#include "common/conv_gemm_driver.h"
#include "common/conv_gemm_im2col_driver.h"
#include "common/conv_gemm_toeplitz_driver.h"
