/* Training curves (loss.png, accuracy.png) drawn by gnuplot from metrics.csv. Private to the library. */
#ifndef INCV3_TRAIN_PLOTS_H
#define INCV3_TRAIN_PLOTS_H

#include <stdio.h>

#include "incv3/error.h"

/* Reads the metrics.csv that incv3_metrics_csv_append writes and draws, into out_dir, loss.png and
 * accuracy.png (in percent): one curve for the "train" rows and one for the "val" rows, x = epoch
 * (when an epoch/split pair appears more than once, e.g. after a resumed run, the last row wins; other
 * splits are ignored). gnuplot is found by searching PATH and run directly (no shell) on a generated
 * script whose paths are quoted for gnuplot; each PNG is written to a temporary name, checked for the
 * PNG signature and renamed into place, so a failure leaves older plots untouched.
 * Without gnuplot on PATH, one line saying so goes to note (when not NULL) and 0 is returned.
 * Returns -1 with err set when the CSV is unreadable or malformed, has no train/val rows, out_dir
 * holds control characters, or gnuplot fails (its first error line is quoted). */
int incv3_plot_curves(const char *csv_path, const char *out_dir, FILE *note, incv3_error *err);

#endif
