/* The FMA peak on AArch64: 16 independent chains of 128-bit FMAs per thread, enough to cover the FMA
 * latency (4 cycles) on the four FMA pipes of Neoverse V1/V2-class cores (two-pipe cores need only 8). */
#include <arm_neon.h>
#include <omp.h>

#include "kbench.h"

double kbench_peak_neon_gflops(int threads)
{
    const long iters = 8L * 1000 * 1000;
    double t0 = 0, t1 = 0;
    float sink = 0.0f;
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    {
        float32x4_t a[16];
        const float32x4_t m = vdupq_n_f32(0.999999f), c = vdupq_n_f32(1e-7f);
        for (int i = 0; i < 16; i++)
            a[i] = vdupq_n_f32((float)(i + omp_get_thread_num()));
#pragma omp barrier
#pragma omp master
        t0 = omp_get_wtime();
        for (long it = 0; it < iters; it++)
            for (int i = 0; i < 16; i++)
                a[i] = vfmaq_f32(c, a[i], m);
#pragma omp barrier
#pragma omp master
        t1 = omp_get_wtime();
        float32x4_t s = a[0];
        for (int i = 1; i < 16; i++)
            s = vaddq_f32(s, a[i]);
        sink += vgetq_lane_f32(s, 0);
    }
    /* The sink keeps the chains alive; it is never large. */
    if (sink == 12345.678f)
        return 0;
    return (double)threads * iters * 16 * 8 / (t1 - t0) / 1e9;
}
