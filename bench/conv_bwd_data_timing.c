/* Timing of conv_bwd_data_f32_direct__avx2 on Inception-V3 shapes (not a test).
 *   OMP_NUM_THREADS=1 ./conv_bwd_data_timing [batch=32] [runs=3]
 * Prints GFLOP/s = 2*n*k*oh*ow*c*kh*kw / time (the forward convolution's flops, which backward-data
 * repeats), the median of `runs` timed calls (accumulate = 0) after one warm-up. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "avx2/avx2_kernels.h"
#include "layout/reorder.h"

typedef struct bench_shape {
    int c, h, w, k, kh, kw, sh, sw, pt, pl, pb, pr;
} bench_shape;

static const bench_shape shapes[] = {
    {32, 147, 147, 64, 3, 3, 1, 1, 1, 1, 1, 1}, {64, 73, 73, 80, 3, 3, 1, 1, 0, 0, 0, 0},
    {192, 35, 35, 64, 1, 1, 1, 1, 0, 0, 0, 0},  {64, 35, 35, 64, 3, 3, 1, 1, 1, 1, 1, 1},
    {768, 17, 17, 192, 1, 1, 1, 1, 0, 0, 0, 0}, {128, 17, 17, 128, 1, 7, 1, 1, 0, 3, 0, 3},
    {128, 17, 17, 192, 7, 1, 1, 1, 3, 0, 3, 0}, {256, 8, 8, 256, 3, 3, 1, 1, 1, 1, 1, 1},
    {384, 35, 35, 384, 3, 3, 2, 2, 0, 0, 0, 0},
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *random_floats(size_t count)
{
    float *p = aligned_alloc(64, ((count * sizeof(float) + 63) / 64) * 64);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    uint32_t st = 12345u;
    for (size_t i = 0; i < count; i++) {
        st = st * 1664525u + 1013904223u;
        p[i] = (float)(st >> 8) / 16777216.0f - 0.5f;
    }
    return p;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const int batch = argc > 1 ? atoi(argv[1]) : 32;
    int runs = argc > 2 ? atoi(argv[2]) : 3;
    if (runs < 1 || runs > 99)
        runs = 3;
    printf("batch %d\n%-34s %10s %9s %8s\n", batch, "shape", "ms", "GFLOP/s", "%peak100");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const bench_shape *b = &shapes[i];
        incv3_conv_shape s = {.n = batch,
                              .c = b->c,
                              .h = b->h,
                              .w = b->w,
                              .k = b->k,
                              .kh = b->kh,
                              .kw = b->kw,
                              .stride_h = b->sh,
                              .stride_w = b->sw,
                              .pad_top = b->pt,
                              .pad_left = b->pl,
                              .pad_bottom = b->pb,
                              .pad_right = b->pr};
        if (incv3_conv_shape_finish(&s) != 0)
            return 1;
        const incv3_dims dx = {s.n, s.c, s.h, s.w}, dy = {s.n, s.k, s.oh, s.ow};
        /* Data only needs to be finite; zero padding channels are irrelevant to timing. */
        float *x = random_floats(reorder_nchw8c_count(dx));
        float *w = random_floats(reorder_oihw8i8o_count(s.k, s.c, s.kh, s.kw));
        float *y = random_floats(reorder_nchw8c_count(dy));
        conv_bwd_data_f32_direct__avx2(&s, y, w, x, 0);
        double t[99];
        for (int r = 0; r < runs; r++) {
            const double t0 = now_s();
            conv_bwd_data_f32_direct__avx2(&s, y, w, x, 0);
            t[r] = now_s() - t0;
        }
        qsort(t, (size_t)runs, sizeof t[0], cmp_double);
        const double med = t[runs / 2];
        const double gflop = 2.0 * incv3_conv_macs(&s) * 1e-9;
        char name[64];
        snprintf(name, sizeof name, "%dx%dx%d->%d %dx%d s%d p%d,%d,%d,%d", s.c, s.h, s.w, s.k, s.kh, s.kw, s.stride_h,
                 s.pad_top, s.pad_left, s.pad_bottom, s.pad_right);
        printf("%-34s %10.2f %9.1f %7.1f%%\n", name, med * 1e3, gflop / med, gflop / med);
        free(x);
        free(w);
        free(y);
    }
    return 0;
}
