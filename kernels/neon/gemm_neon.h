/* NEON (AArch64 ASIMD) single-precision GEMM (packed panels, 8x12 register micro-tile) and the fully
 * connected layer passes built on it. Same contracts as gemm_f32_6x16__avx2 and the linear_*_gemm__avx2
 * passes of avx2/gemm_avx2.h: in particular each block of up to 256 k-steps is summed in fresh float
 * accumulators and added to C once, so results do not depend on the OpenMP thread count. No alignment is
 * required of the pointers. */
#ifndef INCV3_GEMM_NEON_H
#define INCV3_GEMM_NEON_H

/* C (m x n, leading dimension ldc) = (accumulate ? C : 0) + op(A) op(B); A read as a[i*lda + p]
 * (a_trans == 0) or a[p*lda + i]; B as b[p*ldb + j] (b_trans == 0) or b[j*ldb + p]. As
 * gemm_f32_6x16__avx2. Allocates per-call scratch for the packed panels (aborts when out of memory). */
void gemm_f32_8x12__neon(int m, int n, int k, const float *a, int lda, int a_trans, const float *b, int ldb,
                         int b_trans, float *c, int ldc, int accumulate);

/* The linear layer (w stored [out][in]) as linear_fwd_f32_gemm__avx2: y[n][o] = sum_i x[n][i] w[o][i] + b[o]. */
void linear_fwd_f32_gemm__neon(int n, int in, int out, const float *x, const float *w, const float *b, float *y);
/* dx[n][i] (+)= sum_o dy[n][o] w[o][i]: overwritten when accumulate is 0, added to when it is 1. */
void linear_bwd_data_f32_gemm__neon(int n, int in, int out, const float *dy, const float *w, float *dx,
                                    int accumulate);
/* dw[o][i] = sum_n dy[n][o] x[n][i], db[o] = sum_n dy[n][o] (in double, n ascending); both overwritten. */
void linear_bwd_weights_f32_gemm__neon(int n, int in, int out, const float *x, const float *dy, float *dw,
                                       float *db);

#endif
