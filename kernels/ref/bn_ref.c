/* Batch normalization over (n, h, w) for each channel of an NCHW tensor.
 *
 * A channel's statistics reduce over n*h*w elements (up to millions at 299x299), so every sum is kept in
 * double, and the variance is taken two-pass about the mean rather than as E[x^2] - E[x]^2, which cancels
 * badly when the mean is large. Channels are independent, so each thread owns whole channels and the
 * result does not depend on the thread count.
 */
#include <assert.h>
#include <math.h>

#include "ref_kernels.h"

/* Plane (n, c) of a tensor with dimensions d: h*w contiguous elements. */
static size_t plane_offset(incv3_dims d, int n, int c)
{
    return ((size_t)n * d.c + c) * (size_t)d.h * d.w;
}

static double inv_std(float var, float eps)
{
    return 1.0 / sqrt((double)var + (double)eps);
}

/* Writes y = gamma * (x - mean) * invstd + beta for one channel. */
static void normalize_channel(incv3_dims d, int c, const float *x, double mean, double invstd, double gamma,
                              double beta, float *y)
{
    const size_t hw = (size_t)d.h * d.w;
    const double scale = gamma * invstd;
    for (int n = 0; n < d.n; n++) {
        const float *xp = x + plane_offset(d, n, c);
        float *yp = y + plane_offset(d, n, c);
        for (size_t i = 0; i < hw; i++)
            yp[i] = (float)((xp[i] - mean) * scale + beta);
    }
}

/* Sums of dy and dy*xhat over one channel: the gradients of beta and gamma. */
static void channel_grad_sums(incv3_dims d, int c, const float *x, const float *dy, double mean, double invstd,
                              double *sum_dy, double *sum_dy_xhat)
{
    const size_t hw = (size_t)d.h * d.w;
    double s0 = 0.0, s1 = 0.0;
    for (int n = 0; n < d.n; n++) {
        const float *xp = x + plane_offset(d, n, c);
        const float *dyp = dy + plane_offset(d, n, c);
        for (size_t i = 0; i < hw; i++) {
            s0 += dyp[i];
            s1 += dyp[i] * ((xp[i] - mean) * invstd);
        }
    }
    *sum_dy = s0;
    *sum_dy_xhat = s1;
}

void bn_fwd_train_f32_ref__scalar(incv3_dims d, const float *x, const float *gamma, const float *beta,
                                  float eps, float *y, float *mean, float *var)
{
    const size_t hw = (size_t)d.h * d.w;
    const double m = (double)d.n * (double)hw;
    assert(m > 0);

#pragma omp parallel for schedule(static)
    for (int c = 0; c < d.c; c++) {
        double sum = 0.0;
        for (int n = 0; n < d.n; n++) {
            const float *xp = x + plane_offset(d, n, c);
            for (size_t i = 0; i < hw; i++)
                sum += xp[i];
        }
        const double mu = sum / m;

        double ss = 0.0;
        for (int n = 0; n < d.n; n++) {
            const float *xp = x + plane_offset(d, n, c);
            for (size_t i = 0; i < hw; i++) {
                const double t = xp[i] - mu;
                ss += t * t;
            }
        }
        const double v = ss / m;

        normalize_channel(d, c, x, mu, 1.0 / sqrt(v + (double)eps), gamma[c], beta[c], y);
        mean[c] = (float)mu;
        var[c] = (float)v;
    }
}

void bn_fwd_infer_f32_ref__scalar(incv3_dims d, const float *x, const float *gamma, const float *beta,
                                  const float *mean, const float *var, float eps, float *y)
{
#pragma omp parallel for schedule(static)
    for (int c = 0; c < d.c; c++)
        normalize_channel(d, c, x, mean[c], inv_std(var[c], eps), gamma[c], beta[c], y);
}

void bn_bwd_train_f32_ref__scalar(incv3_dims d, const float *x, const float *dy, const float *gamma,
                                  const float *mean, const float *var, float eps, float *dx, float *dgamma,
                                  float *dbeta, int accumulate)
{
    const size_t hw = (size_t)d.h * d.w;
    const double m = (double)d.n * (double)hw;
    assert(m > 0);

#pragma omp parallel for schedule(static)
    for (int c = 0; c < d.c; c++) {
        const double mu = mean[c], invstd = inv_std(var[c], eps);
        double sum_dy, sum_dy_xhat;
        channel_grad_sums(d, c, x, dy, mu, invstd, &sum_dy, &sum_dy_xhat);
        dbeta[c] = (float)sum_dy;
        dgamma[c] = (float)sum_dy_xhat;

        /* Batch statistics make every x feed every output of the channel: the mean removes the dy average
         * and the variance removes the component along xhat. */
        const double k = (double)gamma[c] * invstd / m;
        for (int n = 0; n < d.n; n++) {
            const float *xp = x + plane_offset(d, n, c);
            const float *dyp = dy + plane_offset(d, n, c);
            float *dxp = dx + plane_offset(d, n, c);
            for (size_t i = 0; i < hw; i++) {
                const double xhat = (xp[i] - mu) * invstd;
                const float g = (float)(k * (m * dyp[i] - sum_dy - xhat * sum_dy_xhat));
                dxp[i] = accumulate ? dxp[i] + g : g;
            }
        }
    }
}

void bn_bwd_infer_f32_ref__scalar(incv3_dims d, const float *x, const float *dy, const float *gamma,
                                  const float *mean, const float *var, float eps, float *dx, float *dgamma,
                                  float *dbeta, int accumulate)
{
    const size_t hw = (size_t)d.h * d.w;

#pragma omp parallel for schedule(static)
    for (int c = 0; c < d.c; c++) {
        const double invstd = inv_std(var[c], eps);
        double sum_dy, sum_dy_xhat;
        channel_grad_sums(d, c, x, dy, mean[c], invstd, &sum_dy, &sum_dy_xhat);
        dbeta[c] = (float)sum_dy;
        dgamma[c] = (float)sum_dy_xhat;

        const double k = (double)gamma[c] * invstd;
        for (int n = 0; n < d.n; n++) {
            const float *dyp = dy + plane_offset(d, n, c);
            float *dxp = dx + plane_offset(d, n, c);
            for (size_t i = 0; i < hw; i++) {
                const float g = (float)(k * dyp[i]);
                dxp[i] = accumulate ? dxp[i] + g : g;
            }
        }
    }
}
