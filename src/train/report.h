/* Markdown results in the seed's layout (its README "Results" section), the report.md writer and the
 * per-epoch metrics.csv log. Private to the library. */
#ifndef INCV3_TRAIN_REPORT_H
#define INCV3_TRAIN_REPORT_H

#include <stdio.h>

#include "incv3/error.h"
#include "train/metrics.h"

/* The seed's two tables, separated by a blank line:
 *   |              | Training | Validation | Testing |     rows "Loss" (%.4f), "Accuracy (%)" (%.2f)
 *   | Class | Training Precision | ... | Testing F1 Score |   one row per class 0..k-1 (%.4f)
 * Cells are centred in columns as wide as their widest cell, with a ":---:" alignment row, exactly as
 * the seed's tables are laid out. Any split may be NULL, and a split whose conf.counts is NULL has no
 * accuracy or class scores: those cells read "n/a". k is the largest class count among the splits.
 * Returns 0, or -1 when writing to out fails or memory runs out. */
int incv3_report_tables(FILE *out, const incv3_split_result *train, const incv3_split_result *val,
                        const incv3_split_result *test);

/* "#### <title>" (default "Confusion matrix"), a blank line, then a centred markdown table: one row per
 * true class, one column per predicted class, raw counts. Returns 0 or -1 as above. */
int incv3_report_confusion(FILE *out, const incv3_confusion *c, const char *title);

/* What report.md holds, in this order. */
typedef struct incv3_report_md {
    const char *header_markdown; /* copied verbatim first (title, hyper-parameters...); may be NULL */
    int include_plots;           /* non-zero: a two-column table embedding loss.png and accuracy.png,
                                  * which must sit beside report.md (as incv3_plot_curves writes them) */
    const incv3_split_result *train, *val, *test; /* the Results tables; any may be NULL */
    int include_confusion;       /* non-zero: a confusion matrix for each split that has one */
    /* Optional second section: the test set with the best validation weights (NULL: none). */
    const incv3_split_result *best_test;
    int best_epoch;
} incv3_report_md;

/* Writes the report's content (as incv3_report_write_md) to an open stream, e.g. stdout. */
int incv3_report_print(FILE *out, const incv3_report_md *r, incv3_error *err);

/* Writes report.md atomically (util/atomic_file.h): on failure an existing file is left untouched and
 * err names path. Returns 0 or -1. */
int incv3_report_write_md(const char *path, const incv3_report_md *r, incv3_error *err);

/* Appends "epoch,split,loss,accuracy,seconds" (accuracy as a fraction in [0, 1], as
 * incv3_confusion_accuracy returns it) to the CSV at path, writing that header line first when the
 * file is new or empty. Each row goes out in one write() and is fsync'ed, so a run killed later keeps
 * every row appended so far. An existing file must start with the header; a torn last line (no
 * newline) is terminated before the new row. split must be non-empty without ',', '"' or line
 * breaks. Returns 0, or -1 with err naming path. */
int incv3_metrics_csv_append(const char *path, int epoch, const char *split, double loss, double accuracy,
                             double seconds, incv3_error *err);

#endif
