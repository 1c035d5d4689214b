#include <omp.h>

#include "kbench.h"

/* Scalar multiply-add chains: the peak a CPU without AVX2 offers the scalar kernels. */
static double peak_scalar_gflops(int threads)
{
    const long iters = 4L * 1000 * 1000;
    double t0 = 0, t1 = 0;
    float sink = 0.0f;
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    {
        float a[8];
        for (int i = 0; i < 8; i++)
            a[i] = (float)(i + omp_get_thread_num());
#pragma omp barrier
#pragma omp master
        t0 = omp_get_wtime();
        for (long it = 0; it < iters; it++)
            for (int i = 0; i < 8; i++)
                a[i] = a[i] * 0.999999f + 1e-7f;
#pragma omp barrier
#pragma omp master
        t1 = omp_get_wtime();
        for (int i = 0; i < 8; i++)
            sink += a[i];
    }
    if (sink == 12345.678f)
        return 0;
    return (double)threads * iters * 8 * 2 / (t1 - t0) / 1e9;
}

/* The best of several short trials: a host that steals the core now and then only ever lowers a trial. */
double kbench_peak_gflops(int threads)
{
    double best = 0;
    for (int trial = 0; trial < 9; trial++) {
        double g;
#if defined(__x86_64__)
        if (incv3_cpu_has_avx2_fma())
            g = kbench_peak_avx2_gflops(threads);
        else
#elif defined(__aarch64__)
        if (incv3_isa_available(INCV3_ISA_NEON))
            g = kbench_peak_neon_gflops(threads);
        else
#endif
            g = peak_scalar_gflops(threads);
        if (g > best)
            best = g;
    }
    return best;
}
