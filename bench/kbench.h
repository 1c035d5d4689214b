/* incv3-kbench internals: the machine's FMA peak, shape suites, and the convolution runner. */
#ifndef INCV3_KBENCH_H
#define INCV3_KBENCH_H

#include <stddef.h>

#include "registry.h"

typedef struct kbench_shape {
    int c, h, w, k, kh, kw, stride, pad_h, pad_w;
} kbench_shape;

/* FMA peak in GFLOP/s of `threads` threads running independent FMA chains together (AVX2+FMA where the CPU
 * has it, else scalar multiply-adds). */
double kbench_peak_gflops(int threads);
double kbench_peak_avx2_gflops(int threads); /* bench/kbench_peak_avx2.c, compiled with -mavx2 -mfma */

/* Suites: "inception" (the 12 shapes of the AVX2 issue, with oneDNN's figures) or "model" (every distinct
 * convolution of the seed model at 299x299 with the aux head). Returns the count, 0 for an unknown name. */
size_t kbench_suite(const char *name, kbench_shape *out, size_t max);

typedef struct kbench_result {
    double median_ms, min_ms, gflops, ref_ms_per_image, check_err;
    int checked; /* the variant agreed with the reference on batch 1 */
} kbench_result;

/* Checks kernel k against the reference pass on batch 1 (norm-wise relative error <= 1e-5), then times it
 * at `batch` after one warm-up: `repeat` runs, median and min. Returns non-zero (with a message on stderr)
 * when the check fails or memory runs out. */
int kbench_conv(const incv3_conv_kernel *k, const kbench_shape *sh, int batch, int repeat, kbench_result *res);

#endif
