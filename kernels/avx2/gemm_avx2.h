/* AVX2+FMA single-precision GEMM (packed panels, 6x16 register micro-tile) and the fully connected layer
 * passes built on it. Compiled with -mavx2 -mfma: call only when incv3_cpu_has_avx2_fma() says so.
 * Results do not depend on the OpenMP thread count. No alignment is required of the pointers. */
#ifndef INCV3_GEMM_AVX2_H
#define INCV3_GEMM_AVX2_H

/* C (m x n, row-major, leading dimension ldc) = (accumulate ? C : 0) + op(A) op(B), where op(A) is m x k
 * and op(B) is k x n. A is read as a[i*lda + p] (a_trans == 0) or a[p*lda + i] (a_trans != 0); B as
 * b[p*ldb + j] (b_trans == 0) or b[j*ldb + p] (b_trans != 0). m, n >= 0, k >= 0 (k == 0 gives C or 0).
 * Each block of up to 256 k-steps is summed in fresh float accumulators and added to C once (blocked
 * summation). Each element of C is computed by one thread in a fixed order. C must not overlap A or B.
 * Allocates per-call scratch for the packed panels (out of memory: incv3_mem_must reports and exits). */
void gemm_f32_6x16__avx2(int m, int n, int k, const float *a, int lda, int a_trans, const float *b, int ldb,
                         int b_trans, float *c, int ldc, int accumulate);

/* The linear layer, same semantics as the *_ref__scalar kernels of ref_kernels.h (w stored [out][in]):
 * y[n][o] = sum_i x[n][i] w[o][i] + b[o]. */
void linear_fwd_f32_gemm__avx2(int n, int in, int out, const float *x, const float *w, const float *b, float *y);
/* dx[n][i] (+)= sum_o dy[n][o] w[o][i]: overwritten when accumulate is 0, added to when it is 1. */
void linear_bwd_data_f32_gemm__avx2(int n, int in, int out, const float *dy, const float *w, float *dx,
                                    int accumulate);
/* dw[o][i] = sum_n dy[n][o] x[n][i], db[o] = sum_n dy[n][o] (in double, n ascending); both overwritten. */
void linear_bwd_weights_f32_gemm__avx2(int n, int in, int out, const float *x, const float *dy, float *dw,
                                       float *db);

#endif
