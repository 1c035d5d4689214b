/* incv3 train / eval: the seed's MNIST experiment in one call. */
#ifndef INCV3_TRAINER_H
#define INCV3_TRAINER_H

#include <stdint.h>

#include "dist/dist.h"
#include "incv3/error.h"
#include "incv3/graph.h"
#include "sched/start.h"

typedef struct incv3_train_config {
    char data[2048];    /* directory with the four MNIST-format files */
    char dataset[32];   /* "mnist" or "fashion-mnist" (same format; names the run) */
    char out[2048];     /* run directory */
    int epochs, batch, image_size, aux, classes, limit_train, threads, checkpoint_every;
    double lr, weight_decay, aux_weight, label_smoothing, width, val_fraction, dropout, mean, std;
    uint64_t seed;
    char isa[16], conv_algo[16];
    /* --deterministic: kernels chosen by a fixed rule (incv3_graph_set_deterministic), so the weights are
     * bitwise the same for any thread count; a setting of the run, kept by --resume. */
    int deterministic;
    /* How the run uses this machine, not part of its settings (a resumed run may change them): threads 0
     * means one per core (or OMP_NUM_THREADS); smt lets SMT siblings count; bind "core" pins the threads. */
    int smt;
    char bind[8];
    /* Also run-time only: keep the newest `keep` epoch-E-step-S.safetensors and delete older ones after each
     * checkpoint (0 keeps all); resume_from is the checkpoint --resume continues from (empty: the newest
     * intact one, see incv3_train_config_from_run). */
    int keep;
    char resume_from[4200];
    /* Data-parallel training (src/dist; run-time only, like threads): the process group, NULL for one
     * process; sync_bn: BatchNorm statistics over the global batch (--sync-bn) rather than per rank. */
    incv3_dist *dist;
    int sync_bn;
} incv3_train_config;

/* The seed's recipe: 10 epochs, batch 32, AdamW lr 1e-4, weight decay 0.01, aux weight 0.3, label
 * smoothing 1e-4, 299x299, aux head on, validation 10%, MNIST normalization. */
void incv3_train_config_default(incv3_train_config *c);

/* The thread team for c's threads/smt/bind (src/sched), applied to OpenMP once; c->threads becomes the
 * team's size. Warnings (a clamped count) go to stderr. Returns 0 or -1 with err filled. */
int incv3_train_start_team(incv3_train_config *c, incv3_sched_started *st, incv3_error *err);

/* Runs (or with `resume`, continues) a training run; returns 0, or -1 with err filled. SIGINT and SIGTERM
 * end it after the current batch with a checkpoint (return 0, *interrupted = 1). */
int incv3_train(const incv3_train_config *cfg, int resume, int *interrupted, incv3_error *err);

/* incv3 eval: the test tables of a weights file (an incv3 checkpoint or model file, whose metadata gives
 * the architecture, or a PyTorch state_dict saved as safetensors: architecture from `given` (image size,
 * classes; width <= 0 and !aux_given mean "read them off the tensors"), num_batches_tracked ignored) on
 * the t10k files of given->data. */
int incv3_evaluate_file(const char *path, const incv3_train_config *given, int aux_given, incv3_error *err);

/* The model of a weights file, built as incv3 eval builds it (architecture from the file's "config"
 * metadata, else from `given` as above; kernels from given->isa / given->conv_algo) with the file's weights
 * loaded. *used receives the settings it was built with (image size, mean/std for preprocessing, classes).
 * Returns the graph (the caller frees it with incv3_graph_free), or NULL with err filled. */
incv3_graph *incv3_load_model_file(const char *path, const incv3_train_config *given, int aux_given,
                                   incv3_train_config *used, incv3_error *err);

/* Reads the settings of the run in `out` into cfg from its newest intact checkpoint: checkpoints/last.safetensors,
 * or when that is damaged or unreadable the newest epoch-E-step-S.safetensors that loads (a message on stderr
 * names both); cfg->resume_from receives the file chosen. */
int incv3_train_config_from_run(const char *out, incv3_train_config *cfg, incv3_error *err);

#endif
