/* Fully connected layer: y[n][o] = sum_i x[n][i] * w[o][i] + b[o], with w stored [out][in].
 *
 * Products of floats are exact in double, so all sums are kept in double: the result is then independent
 * of FMA contraction and of how a vectorizer splits the loops. Each parallel loop runs over outputs that
 * one thread computes alone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "ref_kernels.h"

/* Per-thread scratch sized by the layer; a reference kernel has no error channel to report failure on. */
static double *scratch_row(size_t count)
{
    return incv3_mem_must(count * sizeof(double), 0, "a scratch row of linear_ref");
}

void linear_fwd_f32_ref__scalar(int n, int in, int out, const float *x, const float *w, const float *b, float *y)
{
#pragma omp parallel for schedule(static)
    for (long no = 0; no < (long)n * out; no++) {
        const int s = (int)(no / out), o = (int)(no % out);
        const float *xr = x + (size_t)s * in, *wr = w + (size_t)o * in;
        double sum = b[o];
        for (int i = 0; i < in; i++)
            sum += (double)xr[i] * wr[i];
        y[no] = (float)sum;
    }
}

/* dx[n][i] = sum_o dy[n][o] * w[o][i]: accumulated row-wise over o so the inner loop is element-wise. */
void linear_bwd_data_f32_ref__scalar(int n, int in, int out, const float *dy, const float *w, float *dx,
                                     int accumulate)
{
#pragma omp parallel
    {
        double *acc = scratch_row((size_t)in);
#pragma omp for schedule(static)
        for (int s = 0; s < n; s++) {
            memset(acc, 0, (size_t)in * sizeof *acc);
            for (int o = 0; o < out; o++) {
                const double g = dy[(size_t)s * out + o];
                const float *wr = w + (size_t)o * in;
                for (int i = 0; i < in; i++)
                    acc[i] += g * wr[i];
            }
            float *dxr = dx + (size_t)s * in;
            if (accumulate) {
                for (int i = 0; i < in; i++)
                    dxr[i] += (float)acc[i];
            } else {
                for (int i = 0; i < in; i++)
                    dxr[i] = (float)acc[i];
            }
        }
        free(acc);
    }
}

/* dw[o][i] = sum_n dy[n][o] * x[n][i] and db[o] = sum_n dy[n][o]; each thread owns whole rows of dw. */
void linear_bwd_weights_f32_ref__scalar(int n, int in, int out, const float *x, const float *dy, float *dw,
                                        float *db)
{
#pragma omp parallel
    {
        double *acc = scratch_row((size_t)in);
#pragma omp for schedule(static)
        for (int o = 0; o < out; o++) {
            memset(acc, 0, (size_t)in * sizeof *acc);
            double bsum = 0.0;
            for (int s = 0; s < n; s++) {
                const double g = dy[(size_t)s * out + o];
                const float *xr = x + (size_t)s * in;
                bsum += g;
                for (int i = 0; i < in; i++)
                    acc[i] += g * xr[i];
            }
            float *dwr = dw + (size_t)o * in;
            for (int i = 0; i < in; i++)
                dwr[i] = (float)acc[i];
            db[o] = (float)bsum;
        }
        free(acc);
    }
}
