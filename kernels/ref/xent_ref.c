/* Softmax cross-entropy with label smoothing, averaged over the batch (PyTorch's cross_entropy with
 * label_smoothing and reduction='mean').
 *
 * Everything is computed in double: the loss is compared against a float64 oracle and its gradient is the
 * seed of the whole backward pass. The maximum logit is subtracted before exponentiating so large logits
 * cannot overflow.
 */
#include <assert.h>
#include <math.h>

#include "ref_kernels.h"

double softmax_xent_f32_ref__scalar(int n, int k, const float *logits, const int64_t *labels, float smoothing,
                                    float scale, float *dlogits)
{
    assert(n >= 1 && k >= 1);
    const double off_target = (double)smoothing / k, on_target = 1.0 - (double)smoothing + off_target;
    double total = 0.0;

    for (int s = 0; s < n; s++) {
        const float *z = logits + (size_t)s * k;
        const int64_t label = labels[s];
        assert(label >= 0 && label < k);

        double zmax = z[0];
        for (int c = 1; c < k; c++)
            if (z[c] > zmax)
                zmax = z[c];
        double sum_exp = 0.0;
        for (int c = 0; c < k; c++)
            sum_exp += exp(z[c] - zmax);
        const double log_sum = log(sum_exp);

        /* -sum_c q_c * log_softmax_c, with log_softmax_c = z_c - zmax - log_sum. */
        double loss = 0.0;
        for (int c = 0; c < k; c++) {
            const double q = c == label ? on_target : off_target;
            loss -= q * (z[c] - zmax - log_sum);
        }
        total += loss;

        if (dlogits) {
            const double g = (double)scale / n;
            float *dz = dlogits + (size_t)s * k;
            for (int c = 0; c < k; c++) {
                const double q = c == label ? on_target : off_target;
                dz[c] = (float)(g * (exp(z[c] - zmax - log_sum) - q));
            }
        }
    }
    return total / n;
}
