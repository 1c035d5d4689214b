/* Classification metrics for the trainer's reports: a confusion matrix per data split, and what the
 * seed's Results tables derive from it (accuracy, per-class precision, recall and F1). Private to the
 * library. */
#ifndef INCV3_TRAIN_METRICS_H
#define INCV3_TRAIN_METRICS_H

#include <stdint.h>

#include "incv3/error.h"

/* Split names as written to metrics.csv and read back by the plotter. */
#define INCV3_SPLIT_TRAIN "train"
#define INCV3_SPLIT_VAL "val"
#define INCV3_SPLIT_TEST "test"

typedef struct incv3_confusion {
    int classes;
    int64_t *counts; /* [true * classes + predicted] */
} incv3_confusion;

/* Allocates a zeroed classes x classes matrix (classes >= 1). On failure c is left empty
 * (counts NULL), so incv3_confusion_free is still safe. */
int incv3_confusion_init(incv3_confusion *c, int classes, incv3_error *err);
void incv3_confusion_free(incv3_confusion *c);
void incv3_confusion_reset(incv3_confusion *c);

/* Adds n samples: logits [n][classes], labels [n]. The prediction is the argmax, the first maximum on
 * ties (PyTorch's argmax); NaN logits never win over a number, and an all-NaN row predicts class 0.
 * Labels outside [0, classes) are skipped: the loss (incv3_softmax_xent) has already rejected them. */
void incv3_confusion_add(incv3_confusion *c, const float *logits, const int64_t *labels, int n);

int64_t incv3_confusion_total(const incv3_confusion *c);
/* Fraction in [0, 1] (not percent); 0 for an empty matrix. */
double incv3_confusion_accuracy(const incv3_confusion *c);

/* Per-class scores in [0, 1], each 0 when its denominator is 0 (as scikit-learn's zero_division=0):
 * precision = TP / (TP + FP)  (0 when the class is never predicted),
 * recall    = TP / (TP + FN)  (0 when the class never occurs),
 * F1        = 2TP / (2TP + FP + FN), which equals 2PR / (P + R) and is 0 when TP is 0. */
double incv3_confusion_precision(const incv3_confusion *c, int cls);
double incv3_confusion_recall(const incv3_confusion *c, int cls);
double incv3_confusion_f1(const incv3_confusion *c, int cls);

/* One data split's evaluation: loss is the mean loss over the split's samples. */
typedef struct incv3_split_result {
    const char *name;
    double loss;
    incv3_confusion conf;
} incv3_split_result;

#endif
