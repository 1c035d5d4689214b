/* Confusion matrix and the scores derived from it (see metrics.h). */
#include "train/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int incv3_confusion_init(incv3_confusion *c, int classes, incv3_error *err)
{
    c->classes = 0;
    c->counts = NULL;
    if (classes < 1 || classes > 65536) /* bound keeps classes * classes far from overflow */
        return incv3_fail(err, "confusion matrix: %d classes is not in [1, 65536]", classes);
    c->counts = calloc((size_t)classes * (size_t)classes, sizeof *c->counts);
    if (!c->counts)
        return incv3_fail(err, "confusion matrix: out of memory for %d classes", classes);
    c->classes = classes;
    return 0;
}

void incv3_confusion_free(incv3_confusion *c)
{
    if (!c)
        return;
    free(c->counts);
    c->counts = NULL;
    c->classes = 0;
}

void incv3_confusion_reset(incv3_confusion *c)
{
    if (c && c->counts)
        memset(c->counts, 0, (size_t)c->classes * (size_t)c->classes * sizeof *c->counts);
}

void incv3_confusion_add(incv3_confusion *c, const float *logits, const int64_t *labels, int n)
{
    const int k = c->classes;
    for (int i = 0; i < n; i++) {
        const float *row = logits + (size_t)i * (size_t)k;
        int best = 0;
        for (int j = 1; j < k; j++) {
            /* Strict '>' keeps the first maximum; a NaN best is replaced by any number so that a
             * single NaN logit does not decide the prediction. */
            if (row[j] > row[best] || (isnan(row[best]) && !isnan(row[j])))
                best = j;
        }
        if (labels[i] < 0 || labels[i] >= k)
            continue;
        c->counts[(size_t)labels[i] * (size_t)k + (size_t)best]++;
    }
}

int64_t incv3_confusion_total(const incv3_confusion *c)
{
    int64_t t = 0;
    size_t nn = (size_t)c->classes * (size_t)c->classes;
    for (size_t i = 0; i < nn; i++)
        t += c->counts[i];
    return t;
}

double incv3_confusion_accuracy(const incv3_confusion *c)
{
    int64_t total = incv3_confusion_total(c), correct = 0;
    for (int i = 0; i < c->classes; i++)
        correct += c->counts[(size_t)i * (size_t)c->classes + (size_t)i];
    return total ? (double)correct / (double)total : 0.0;
}

/* True positives, false positives (predicted cls, other truth), false negatives (truth cls, other
 * prediction) of one class. */
static void class_counts(const incv3_confusion *c, int cls, int64_t *tp, int64_t *fp, int64_t *fn)
{
    const size_t k = (size_t)c->classes;
    *tp = *fp = *fn = 0;
    if (cls < 0 || cls >= c->classes)
        return;
    *tp = c->counts[(size_t)cls * k + (size_t)cls];
    for (size_t o = 0; o < k; o++) {
        if (o == (size_t)cls)
            continue;
        *fp += c->counts[o * k + (size_t)cls];
        *fn += c->counts[(size_t)cls * k + o];
    }
}

double incv3_confusion_precision(const incv3_confusion *c, int cls)
{
    int64_t tp, fp, fn;
    class_counts(c, cls, &tp, &fp, &fn);
    return tp + fp ? (double)tp / (double)(tp + fp) : 0.0;
}

double incv3_confusion_recall(const incv3_confusion *c, int cls)
{
    int64_t tp, fp, fn;
    class_counts(c, cls, &tp, &fp, &fn);
    return tp + fn ? (double)tp / (double)(tp + fn) : 0.0;
}

double incv3_confusion_f1(const incv3_confusion *c, int cls)
{
    int64_t tp, fp, fn;
    class_counts(c, cls, &tp, &fp, &fn);
    int64_t den = 2 * tp + fp + fn;
    return den ? (double)(2 * tp) / (double)den : 0.0;
}
