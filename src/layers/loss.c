#include "incv3/train.h"
#include "ref/ref_kernels.h"

int incv3_softmax_xent(const float *logits, const int64_t *labels, int n, int k, float smoothing, float scale,
                       float *dlogits, double *loss, incv3_error *err)
{
    for (int i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= k)
            return incv3_fail(err, "label %lld of sample %d is outside the %d classes", (long long)labels[i], i, k);
    if (!(smoothing >= 0 && smoothing <= 1))
        return incv3_fail(err, "label smoothing %g: must be in [0, 1]", smoothing);
    *loss = softmax_xent_f32_ref__scalar(n, k, logits, labels, smoothing, scale, dlogits);
    return 0;
}
