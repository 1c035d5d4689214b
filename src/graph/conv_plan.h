/* Per-layer convolution algorithm choice for --conv-algo auto and winograd (a family of tile sizes).
 *
 * Where more than one kernel of the graph's ISA serves a layer's shape and pass, each candidate is timed
 * once on that shape (at the batch being prepared) and the fastest is chosen. Runs with the same seed must
 * give identical weights, so a choice, once made, is reused: the plan (key -> kernel name) lives in the
 * graph, can be saved to and loaded from a file (the run directory keeps the plan a run used, and --resume
 * loads it), and every timed choice is also cached per CPU model in $XDG_CACHE_HOME/incv3/conv-plan.json
 * (~/.cache when unset) so later runs on the machine choose the same without timing again.
 * Private to the library. */
#ifndef INCV3_CONV_PLAN_H
#define INCV3_CONV_PLAN_H

#include <stddef.h>

#include "incv3/error.h"
#include "registry.h"

typedef struct conv_plan_entry {
    char key[160];
    char kernel[96];
} conv_plan_entry;

typedef struct incv3_conv_plan {
    conv_plan_entry *entries;
    size_t n, cap;
} incv3_conv_plan;

void conv_plan_clear(incv3_conv_plan *p);
/* The kernel name recorded for key, or NULL. */
const char *conv_plan_get(const incv3_conv_plan *p, const char *key);
/* Records (or replaces) key -> kernel; returns 0 or -1 when out of memory. */
int conv_plan_put(incv3_conv_plan *p, const char *key, const char *kernel);

/* The plan key of a layer: family ("auto" or "winograd"), pass, ISA, the shape without its batch, the
 * OpenMP thread count (the fastest kernel of a small layer on one core may scale worst), and a hash of
 * the candidates' names (a choice made among other kernels is not reused). */
void conv_plan_key(char *buf, size_t len, const char *family, incv3_conv_pass pass, incv3_isa isa,
                   const incv3_conv_shape *s);

/* 1 when conv_algo names a family the plan chooses within ("auto", "winograd"). */
int conv_plan_is_family(const char *conv_algo);
/* 1 when kernel k belongs to the family. */
int conv_plan_in_family(const incv3_conv_kernel *k, const char *family);

/* Run-directory plan file: {"cpu": ..., "conv_algo": ..., "plan": {key: kernel name}}. Reading merges
 * into p and checks that every named kernel exists in this build. */
int conv_plan_write_file(const incv3_conv_plan *p, const char *path, const char *conv_algo, incv3_error *err);
int conv_plan_read_file(incv3_conv_plan *p, const char *path, incv3_error *err);

/* The machine-wide cache of timed choices for this CPU model: read merges into p (a missing or unreadable
 * cache is simply empty); add merges one entry into the file (atomic replace). */
void conv_plan_cache_read(incv3_conv_plan *p);
int conv_plan_cache_add(const char *key, const char *kernel, incv3_error *err);

/* Median-free single timing of kernel k on shape s (s->n is the batch): one warm-up run, then the best of
 * two, in seconds; -1 when the buffers cannot be allocated. */
double conv_plan_time_kernel(const incv3_conv_kernel *k, const incv3_conv_shape *s);

#endif
