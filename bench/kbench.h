/* incv3-kbench internals: the machine's FMA peak, shape suites, and the convolution runner. */
#ifndef INCV3_KBENCH_H
#define INCV3_KBENCH_H

#include <stddef.h>
#include <stdint.h>

#include "kernel_set.h"
#include "registry.h"

typedef struct kbench_shape {
    int c, h, w, k, kh, kw, stride, pad_h, pad_w;
} kbench_shape;

/* FMA peak in GFLOP/s of `threads` threads running independent FMA chains together (AVX2+FMA where the CPU
 * has it, else scalar multiply-adds). */
double kbench_peak_gflops(int threads);
double kbench_peak_avx2_gflops(int threads); /* bench/kbench_peak_avx2.c, compiled with -mavx2 -mfma */
double kbench_peak_neon_gflops(int threads); /* bench/kbench_peak_neon.c, AArch64 only */

/* Suites: "inception" (the 12 shapes of the AVX2 issue, with oneDNN's figures) or "model" (every distinct
 * convolution of the seed model at 299x299 with the aux head). Returns the count, 0 for an unknown name. */
size_t kbench_suite(const char *name, kbench_shape *out, size_t max);
/* Every distinct max pooling of the seed model (k = c). */
size_t kbench_pool_suite(kbench_shape *out, size_t max);

typedef struct kbench_result {
    double median_ms, min_ms, gflops, gbytes, ref_ms_per_image, check_err;
    int checked; /* the variant agreed with the reference on batch 1 */
} kbench_result;

/* Checks kernel k against the reference pass on batch 1 (norm-wise relative error <= 1e-5), then times it
 * at `batch` after one warm-up: `repeat` runs, median and min. Returns non-zero (with a message on stderr)
 * when the check fails or memory runs out. */
int kbench_conv(const incv3_conv_kernel *k, const kbench_shape *sh, int batch, int repeat, kbench_result *res);

/* Runs fn once to warm up, then `repeat` timed runs; median and min in ms. */
int kbench_time(void (*fn)(void *ctx), void *ctx, int repeat, double *median_ms, double *min_ms);
/* Seconds of one run of fn. */
double kbench_seconds(void (*fn)(void *ctx), void *ctx);
/* 64-byte aligned floats uniform in [-0.5, 0.5) from a seed; NULL when out of memory. */
float *kbench_alloc_random(size_t count, uint64_t seed);
double kbench_rel_err(const float *got, const float *want, size_t count);

/* The layer kernels below run the kernel set `vec` (kernel_set.h) of a vector ISA, or the scalar reference
 * when it is NULL. */

/* Max pooling forward + backward on n x c x h x w (sh->k is ignored), blocked layout with a set;
 * ref_ms_per_image is the reference's time at batch 1. */
int kbench_pool(const kbench_shape *sh, int batch, int repeat, const incv3_kernel_set *vec, kbench_result *res);
/* One AdamW step over `count` parameters; ref_ms_per_image holds the reference's time for the same count. */
int kbench_adamw(size_t count, int repeat, const incv3_kernel_set *vec, kbench_result *res);

/* C (m x n) = A (m x k) B, B given k x n or, with b_trans, n x k (the linear layers' weights); the set's
 * GEMM, else a double-accumulating scalar loop (its time is ref_ms_per_image). */
int kbench_gemm(int m, int n, int k, int b_trans, int repeat, const incv3_kernel_set *vec, kbench_result *res);

/* The training chain conv -> BatchNorm -> ReLU on a convolution shape: forward (conv with statistics in its
 * epilogue, then one BN+ReLU pass) or, with `backward`, the fused BN+ReLU backward (the convolution's own
 * backward passes are the conv-bwd-* ops). The set's fused kernels (with its direct convolution's statistics
 * epilogue), else the reference kernels one after the other. */
int kbench_conv_bn_relu(const kbench_shape *sh, int batch, int repeat, const incv3_kernel_set *vec, int backward,
                        kbench_result *res);

#endif
