/* Names of the shared drivers' entry points (common/ *_driver.h): the including ISA file defines
 * KERNEL_ISA (the suffix token, e.g. avx2) and KERNEL_ISA_STR (the same as a string) first;
 * ISA_NAME(conv_fwd_f32_direct__) is then conv_fwd_f32_direct__avx2, so the registry's names stay those of
 * the ISA's own kernels. */
#ifndef INCV3_ISA_NAME_H
#define INCV3_ISA_NAME_H

#define INCV3_CAT_(a, b) a##b
#define INCV3_CAT(a, b) INCV3_CAT_(a, b)
#define ISA_NAME(x) INCV3_CAT(x, KERNEL_ISA)

#endif
