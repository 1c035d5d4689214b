/* Parity with the PyTorch reference: checks a golden file made by shared/reference/make_golden.py.
 * The pass rule is the one stated in make_golden.py's docstring: tolerances derive from the float32 error
 * PyTorch itself makes on each tensor (stored in the file's "fp32_rel_err" metadata). */
#ifndef INCV3_GOLDEN_H
#define INCV3_GOLDEN_H

#include <stdio.h>

#include "incv3/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct incv3_golden_opts {
    const char *isa;       /* "auto", "scalar", ...; NULL = auto */
    const char *conv_algo; /* "auto", "ref", ...; NULL = auto */
    /* Factors of the rule: single tensors within max(1e-5, single x fp32 error) (10), training gradients
     * together within group x the group's fp32 error (3). 0 picks the rule's values. */
    double single_factor, group_factor;
    int verbose; /* report every tensor, not only the failing ones */
} incv3_golden_opts;

typedef struct incv3_golden_result {
    int passed;        /* every tensor within its tolerance */
    int tensors;       /* tensors judged */
    int failures;      /* tensors outside their tolerance */
    double seconds;    /* time of both steps */
} incv3_golden_result;

/* Builds the model the file describes, runs its inference-mode and training-mode steps and one AdamW
 * step, and judges every tensor. Writes one row per tensor group (and each failing tensor) to `report`
 * (may be NULL). Returns non-zero only when the check could not run (unreadable file, missing tensor,
 * unsupported configuration); a failed comparison is reported in res->passed. */
int incv3_check_golden(const char *path, const incv3_golden_opts *opts, FILE *report, incv3_golden_result *res,
                       incv3_error *err);

#ifdef __cplusplus
}
#endif
#endif
