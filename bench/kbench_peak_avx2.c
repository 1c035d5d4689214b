/* The FMA peak: 12 independent chains of 256-bit FMAs per thread, enough to cover the FMA latency (4
 * cycles) on both FMA pipes of current x86 cores. */
#include <immintrin.h>
#include <omp.h>

#include "kbench.h"

double kbench_peak_avx2_gflops(int threads)
{
    const long iters = 8L * 1000 * 1000;
    double t0 = 0, t1 = 0;
    float sink = 0.0f;
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    {
        __m256 a[12];
        const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
        for (int i = 0; i < 12; i++)
            a[i] = _mm256_set1_ps((float)(i + omp_get_thread_num()));
#pragma omp barrier
#pragma omp master
        t0 = omp_get_wtime();
        for (long it = 0; it < iters; it++)
            for (int i = 0; i < 12; i++)
                a[i] = _mm256_fmadd_ps(a[i], m, c);
#pragma omp barrier
#pragma omp master
        t1 = omp_get_wtime();
        __m256 s = a[0];
        for (int i = 1; i < 12; i++)
            s = _mm256_add_ps(s, a[i]);
        float out[8];
        _mm256_storeu_ps(out, s);
        sink += out[0];
    }
    /* The sink keeps the chains alive; it is never large. */
    if (sink == 12345.678f)
        return 0;
    return (double)threads * iters * 12 * 16 / (t1 - t0) / 1e9;
}
