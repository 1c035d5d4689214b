/* The training run: data, model, AdamW, per-epoch validation, checkpoints and resume, the report. */
#include "train/trainer.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "graph/memory_estimate.h"
#include "incv3/model.h"
#include "incv3/train.h"
#include "incv3_config.h"
#include "registry.h"
#include "incv3/safetensors.h"
#include "sched/start.h"
#include "train/checkpoint.h"
#include "train/data.h"
#include "train/metrics.h"
#include "train/plots.h"
#include "train/report.h"
#include "util/atomic_file.h"
#include "util/mem_available.h"
#include "util/oom.h"
#include "util/rng.h"

/* Set by the SIGINT/SIGTERM handler, read between batches: the one piece of process-wide state a signal
 * handler can touch. */
static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

void incv3_train_config_default(incv3_train_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->dataset, sizeof c->dataset, "mnist");
    c->epochs = 10, c->batch = 32, c->image_size = 299, c->aux = 1, c->classes = 10;
    c->lr = 1e-4, c->weight_decay = 0.01, c->aux_weight = 0.3, c->label_smoothing = 1e-4, c->width = 1.0;
    c->val_fraction = 0.1, c->mean = 0.1307, c->std = 0.3081, c->seed = 1;
    snprintf(c->isa, sizeof c->isa, "auto");
    snprintf(c->conv_algo, sizeof c->conv_algo, "auto");
    snprintf(c->bind, sizeof c->bind, "core");
}

int incv3_train_start_team(incv3_train_config *c, incv3_sched_started *st, incv3_error *err)
{
    incv3_team_request req = {.threads = c->threads, .smt = c->smt, .policy = INCV3_POLICY_AUTO};
    if (incv3_bind_parse(c->bind, &req.bind))
        return incv3_fail(err, "--bind %s: expected core or none", c->bind);
    if (c->dist && incv3_dist_core_share(c->dist, &req.share, &req.shares, err))
        return -1;
    if (incv3_sched_start(req, st, err))
        return -1;
    if (st->warning[0] && (!c->dist || incv3_dist_rank(c->dist) == 0))
        fprintf(stderr, "incv3: %s\n", st->warning);
    c->threads = st->threads;
    return 0;
}

/* ---- settings as JSON (config.json and the checkpoints' "config") ---- */

static char *config_to_json(const incv3_train_config *c)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:i, s:i, s:b, s:i, s:i, s:i, s:i, s:f, s:f, s:f, s:f, s:f, s:f, "
                          "s:f, s:f, s:f, s:s, s:s, s:s}",
                          "data", c->data, "dataset", c->dataset, "out", c->out, "epochs", c->epochs, "batch",
                          c->batch, "image_size", c->image_size, "aux", c->aux, "classes", c->classes,
                          "limit_train", c->limit_train, "threads", c->threads, "checkpoint_every",
                          c->checkpoint_every, "lr", c->lr, "weight_decay", c->weight_decay, "aux_weight",
                          c->aux_weight, "label_smoothing", c->label_smoothing, "width", c->width, "val_fraction",
                          c->val_fraction, "dropout", c->dropout, "mean", c->mean, "std", c->std, "isa", c->isa,
                          "conv_algo", c->conv_algo, "version", INCV3_VERSION);
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)c->seed);
    json_object_set_new(o, "seed", json_string(seed));
    /* Where the run happened, for whoever reads config.json later (not read back). */
    char cpu[256];
    incv3_cpu_model_name(cpu, sizeof cpu);
    json_object_set_new(o, "build", json_pack("{s:s, s:s, s:s, s:s}", "version", INCV3_VERSION, "type",
                                              INCV3_BUILD_TYPE, "compiler", INCV3_COMPILER, "target",
                                              INCV3_HOST_CPU));
    json_object_set_new(o, "cpu", json_pack("{s:s, s:i, s:s}", "model", cpu, "online_cores",
                                            (int)sysconf(_SC_NPROCESSORS_ONLN), "kernels",
                                            strcmp(c->isa, "auto") ? c->isa : incv3_graph_default_isa()));
    json_object_set_new(o, "deterministic", json_boolean(c->deterministic));
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(o);
    return s;
}

static int config_from_json(const char *text, const char *where, incv3_train_config *c, incv3_error *err)
{
    json_error_t je;
    json_t *o = json_loads(text, 0, &je);
    if (!json_is_object(o)) {
        json_decref(o);
        return incv3_fail(err, "%s: settings are not valid JSON (%s)", where, je.text);
    }
    incv3_train_config_default(c);
    const char *data = NULL, *dataset = NULL, *out = NULL, *isa = NULL, *algo = NULL, *seed = NULL;
    int aux = 1, deterministic = 0;
    /* "deterministic" is optional: checkpoints written before the flag existed ran without it. */
    int rc = json_unpack_ex(o, &je, 0,
                            "{s:s, s:s, s:s, s:i, s:i, s:i, s:b, s:i, s:i, s:i, s:i, s:F, s:F, s:F, s:F, s:F, s:F, "
                            "s:F, s:F, s:F, s:s, s:s, s:s, s?b}",
                            "data", &data, "dataset", &dataset, "out", &out, "epochs", &c->epochs, "batch",
                            &c->batch, "image_size", &c->image_size, "aux", &aux, "classes", &c->classes,
                            "limit_train", &c->limit_train, "threads", &c->threads, "checkpoint_every",
                            &c->checkpoint_every, "lr", &c->lr, "weight_decay", &c->weight_decay, "aux_weight",
                            &c->aux_weight, "label_smoothing", &c->label_smoothing, "width", &c->width,
                            "val_fraction", &c->val_fraction, "dropout", &c->dropout, "mean", &c->mean, "std",
                            &c->std, "isa", &isa, "conv_algo", &algo, "seed", &seed, "deterministic",
                            &deterministic);
    if (rc == 0) {
        c->aux = aux, c->deterministic = deterministic;
        snprintf(c->data, sizeof c->data, "%s", data);
        snprintf(c->dataset, sizeof c->dataset, "%s", dataset);
        snprintf(c->out, sizeof c->out, "%s", out);
        snprintf(c->isa, sizeof c->isa, "%s", isa);
        snprintf(c->conv_algo, sizeof c->conv_algo, "%s", algo);
        c->seed = strtoull(seed, NULL, 10);
    }
    json_decref(o);
    return rc ? incv3_fail(err, "%s: settings incomplete or of the wrong type (%s)", where, je.text) : 0;
}

/* ---- the run directory ---- */

static int make_dir(const char *path, incv3_error *err)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) && errno != EEXIST)
            return incv3_fail(err, "--out %s: cannot create %s: %s", path, buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) && errno != EEXIST)
        return incv3_fail(err, "--out %s: cannot create it: %s", path, strerror(errno));
    return 0;
}

/* 1 when path does not exist or holds nothing. */
static int dir_is_empty(const char *path)
{
    DIR *dir = opendir(path);
    if (!dir)
        return errno == ENOENT;
    int empty = 1;
    for (struct dirent *e; (e = readdir(dir));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            empty = 0;
    closedir(dir);
    return empty;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void format_duration(double s, char *buf, size_t len)
{
    if (!(s >= 0) || s > 1e7) {
        snprintf(buf, len, "--:--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, len, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, len, "%02ld:%02ld", t / 60, t % 60);
}

/* ---- one pass of the model over a dataset in inference mode ---- */

static int evaluate(incv3_graph *g, const incv3_dataset *ds, const incv3_preprocess *pp, int batch,
                    double smoothing, const incv3_sched_started *team, incv3_split_result *res, incv3_error *err)
{
    incv3_confusion_reset(&res->conf);
    res->loss = 0;
    incv3_loader *l = incv3_loader_new(ds, pp, batch, 0, 0, team->have_team_cpus ? &team->team_cpus : NULL, err);
    if (!l || incv3_loader_start(l, 0, 0, err)) {
        incv3_loader_free(l);
        return -1;
    }
    const float *x;
    const int64_t *y;
    int n, rc = 0;
    double loss_sum = 0;
    while (rc == 0 && incv3_loader_next(l, &x, &y, &n)) {
        incv3_forward_opts fo = {.mode = INCV3_INFER, .outputs = 1u};
        double loss;
        rc = incv3_graph_forward(g, x, n, &fo, err);
        if (rc == 0) {
            const float *logits = incv3_graph_output(g, 0)->data;
            rc = incv3_softmax_xent(logits, y, n, ds->classes, (float)smoothing, 1.0f, NULL, &loss, err);
            incv3_confusion_add(&res->conf, logits, y, n);
            loss_sum += loss * n;
        }
    }
    incv3_loader_free(l);
    res->loss = loss_sum / ds->count;
    return rc;
}

/* ---- position of a run (checkpoints' "position") ---- */

typedef struct run_state {
    int epoch, batch;       /* next batch to run: epoch (0-based), batch within it */
    int64_t step;           /* optimizer steps done */
    double loss_sum;        /* running sums of the current epoch */
    int64_t seen;
    double best_val_acc;
    int best_epoch;         /* 1-based, 0 = none yet */
    incv3_confusion train_conf; /* running confusion of the current epoch */
} run_state;

static char *state_to_json(const run_state *s)
{
    json_t *conf = json_array();
    for (int i = 0; i < s->train_conf.classes * s->train_conf.classes; i++)
        json_array_append_new(conf, json_integer(s->train_conf.counts[i]));
    json_t *o = json_pack("{s:i, s:i, s:I, s:f, s:I, s:f, s:i, s:o}", "epoch", s->epoch, "batch", s->batch, "step",
                          (json_int_t)s->step, "loss_sum", s->loss_sum, "seen", (json_int_t)s->seen, "best_val_acc",
                          s->best_val_acc, "best_epoch", s->best_epoch, "train_confusion", conf);
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

static int state_from_json(const char *text, const char *where, run_state *s, incv3_error *err)
{
    json_error_t je;
    json_t *o = text ? json_loads(text, 0, &je) : NULL, *conf = NULL;
    json_int_t step = 0, seen = 0;
    int rc = !o || json_unpack_ex(o, &je, 0, "{s:i, s:i, s:I, s:F, s:I, s:F, s:i, s:o}", "epoch", &s->epoch, "batch",
                                  &s->batch, "step", &step, "loss_sum", &s->loss_sum, "seen", &seen, "best_val_acc",
                                  &s->best_val_acc, "best_epoch", &s->best_epoch, "train_confusion", &conf);
    const int cells = s->train_conf.classes * s->train_conf.classes;
    if (rc == 0 && (!json_is_array(conf) || (int)json_array_size(conf) != cells))
        rc = -1;
    for (int i = 0; rc == 0 && i < cells; i++)
        s->train_conf.counts[i] = json_integer_value(json_array_get(conf, (size_t)i));
    s->step = step, s->seen = seen;
    json_decref(o);
    return rc ? incv3_fail(err, "%s: its position metadata is missing or invalid", where) : 0;
}

/* ---- the report ---- */

/* The paragraph above the seed's tables: what was trained and how. */
static void report_header(const incv3_train_config *c, int epochs_done, double seconds, char *buf, size_t len)
{
    snprintf(buf, len,
             "# incv3: Inception-V3 on %s\n\n"
             "Trained over %d epoch%s (%.1f min) with a learning rate of %g, batch size of %d, auxiliary loss "
             "weighting of %g, label smoothing factor of %g and weight decay of %g; input %dx%d, width %g, aux head "
             "%s, seed %llu; data `%s`%s.\n\n"
             "Final weights. The Training column is the running loss and predictions of the last epoch (training "
             "mode, while the weights changed); Validation and Testing run in inference mode.\n",
             c->dataset, epochs_done, epochs_done == 1 ? "" : "s", seconds / 60, c->lr, c->batch,
             c->aux ? c->aux_weight : 0.0, c->label_smoothing, c->weight_decay, c->image_size, c->image_size,
             c->width, c->aux ? "on" : "off", (unsigned long long)c->seed, c->data,
             c->limit_train ? " (first images only: --limit-train)" : "");
}

/* ---- progress ---- */

typedef struct progress {
    int tty;
    double epoch_start, last_print;
    int64_t images;
} progress;

static void show_progress(progress *pr, const run_state *st, int nbatches, int epochs, int final)
{
    const double now = now_seconds(), el = now - pr->epoch_start;
    if (!final && !pr->tty && now - pr->last_print < 30 && st->batch % (nbatches / 10 > 0 ? nbatches / 10 : 1))
        return;
    if (!final && pr->tty && now - pr->last_print < 0.25)
        return;
    pr->last_print = now;
    const double ips = el > 0 ? pr->images / el : 0;
    const double done_frac = (double)st->batch / nbatches;
    const double epoch_eta = done_frac > 0 ? el / done_frac - el : -1;
    const double left_epochs = epochs - st->epoch - 1;
    const double run_eta = epoch_eta >= 0 && done_frac > 0 ? epoch_eta + left_epochs * el / done_frac : -1;
    char eta[32], reta[32];
    format_duration(epoch_eta, eta, sizeof eta);
    format_duration(run_eta, reta, sizeof reta);
    const double loss = st->seen ? st->loss_sum / st->seen : 0;
    const double acc = st->seen ? 100.0 * incv3_confusion_accuracy(&st->train_conf) : 0;
    char bar[32] = "";
    if (pr->tty) {
        const int width = 20, filled = (int)(done_frac * width);
        for (int i = 0; i < width; i++)
            bar[i] = i < filled ? '=' : i == filled ? '>' : ' ';
        bar[width] = '\0';
    }
    printf("%sepoch %d/%d %s%s%s batch %d/%d  loss %.4f  acc %.2f%%  %.1f img/s  ETA %s (run %s)%s",
           pr->tty ? "\r" : "", st->epoch + 1, epochs, pr->tty ? "[" : "", bar, pr->tty ? "]" : "", st->batch,
           nbatches, loss, acc, ips, eta, reta, pr->tty ? "\033[K" : "\n");
    if (final && pr->tty)
        putchar('\n');
    fflush(stdout);
}

/* ---- the run ---- */

static int write_text(FILE *f, void *text, incv3_error *err)
{
    (void)err;
    return fputs(text, f) < 0 || fputc('\n', f) == EOF ? -1 : 0;
}

typedef struct run {
    incv3_train_config cfg;
    incv3_dataset all, train, val, test;
    incv3_preprocess pp;
    incv3_graph *g;
    incv3_adamw *opt;
    incv3_loader *loader;
    run_state st;
    char *config_json;
    char ckpt_dir[2200], path[2400];
    float *dlogits;
    incv3_sched_started team;
    /* Data-parallel training (src/dist): rank 0 (root) prints, evaluates and writes every file; all ranks
     * train on their shard of each global batch. ranks is 1 without MPI. */
    incv3_dist *dist;
    int root, ranks;
    incv3_confusion step_conf; /* this rank's predictions of the current step, summed over the ranks */
    double *agree;             /* the per-step sums: loss, a non-finite loss, a stop request, step_conf */
    int64_t fail_at_step;      /* > 0: this rank fails before that step (INCV3_TEST_FAIL, for the tests) */
} run;

static void run_free(run *r)
{
    incv3_loader_free(r->loader);
    incv3_adamw_free(r->opt);
    incv3_graph_free(r->g);
    incv3_dataset_free(&r->all);
    incv3_dataset_free(&r->train);
    incv3_dataset_free(&r->val);
    incv3_dataset_free(&r->test);
    incv3_confusion_free(&r->st.train_conf);
    incv3_confusion_free(&r->step_conf);
    free(r->agree);
    free(r->config_json);
    free(r->dlogits);
}

static const char *out_path(run *r, const char *name)
{
    snprintf(r->path, sizeof r->path, "%s/%s", r->cfg.out, name);
    return r->path;
}

/* ---- the checkpoints directory ---- */

typedef struct ckpt_file {
    long long step;
    int epoch;
    char name[256];
} ckpt_file;

static int cmp_ckpt_newest_first(const void *a, const void *b)
{
    const ckpt_file *x = a, *y = b;
    if (x->step != y->step)
        return x->step > y->step ? -1 : 1;
    return (x->epoch < y->epoch) - (x->epoch > y->epoch);
}

/* The epoch-E-step-S.safetensors files of dir, newest (highest step) first; NULL with *n = 0 when there are
 * none or dir cannot be read. The caller frees. */
static ckpt_file *list_epoch_checkpoints(const char *dir, size_t *n)
{
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    ckpt_file *list = NULL;
    size_t cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        int epoch, end = 0;
        long long step;
        if (sscanf(e->d_name, "epoch-%d-step-%lld.safetensors%n", &epoch, &step, &end) != 2 || end == 0 ||
            e->d_name[end] != '\0' || strlen(e->d_name) >= sizeof list->name)
            continue;
        if (*n == cap) {
            ckpt_file *grown = realloc(list, (cap = cap ? 2 * cap : 16) * sizeof *list);
            if (!grown)
                break;
            list = grown;
        }
        list[*n].step = step, list[*n].epoch = epoch;
        snprintf(list[*n].name, sizeof list->name, "%s", e->d_name);
        (*n)++;
    }
    closedir(d);
    if (list)
        qsort(list, *n, sizeof *list, cmp_ckpt_newest_first);
    return list;
}

/* --keep K: deletes the epoch-E-step-S.safetensors beyond the newest K (never last.safetensors, model or
 * best). A file that cannot be deleted only costs a warning. */
static void prune_checkpoints(const char *dir, int keep)
{
    if (keep <= 0)
        return;
    size_t n;
    ckpt_file *list = list_epoch_checkpoints(dir, &n);
    for (size_t i = (size_t)keep; i < n; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, list[i].name);
        if (unlink(path) && errno != ENOENT)
            fprintf(stderr, "incv3 train: warning: --keep %d: cannot delete %s: %s\n", keep, path, strerror(errno));
    }
    free(list);
}

/* Deletes the "<name>.tmp.XXXXXX" files an atomic write leaves behind when the process is killed during it
 * (incv3_write_file_atomic); called on --resume, when no write of this run can be in progress. */
static void remove_stale_temporaries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d));) {
        const char *t = strstr(e->d_name, ".tmp.");
        while (t && strstr(t + 1, ".tmp."))
            t = strstr(t + 1, ".tmp.");
        if (!t || t == e->d_name || strlen(t + 5) != 6)
            continue;
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) && unlink(path) == 0)
            printf("removed %s, left by an interrupted write\n", path);
    }
    closedir(d);
}

/* Calls try_fn on the checkpoint --resume continues from: ckpt_dir/last.safetensors, or when try_fn fails on
 * it (damaged, truncated, missing), on each epoch-E-step-S.safetensors newest first until one succeeds; a
 * fallback is announced on stderr naming both files. *chosen receives the path that succeeded. */
typedef int (*ckpt_try_fn)(const char *path, void *ctx, incv3_error *err);

static int with_resume_checkpoint(const char *out, ckpt_try_fn try_fn, void *ctx, char *chosen, size_t chosen_len,
                                  incv3_error *err)
{
    char dir[2200], last[2300], path[2600];
    snprintf(dir, sizeof dir, "%s/checkpoints", out);
    snprintf(last, sizeof last, "%s/last.safetensors", dir);
    incv3_error last_err, e;
    if (try_fn(last, ctx, &last_err) == 0) {
        snprintf(chosen, chosen_len, "%s", last);
        return 0;
    }
    /* Running out of memory says nothing about the file: falling back to older checkpoints would only
     * call them damaged too. */
    if (incv3_error_is_oom(&last_err))
        return incv3_fail(err, "--resume %s: %s; the checkpoints are untouched: free memory and resume again", out,
                          last_err.msg);
    size_t n;
    ckpt_file *list = list_epoch_checkpoints(dir, &n);
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, list[i].name);
        if (try_fn(path, ctx, &e)) {
            fprintf(stderr, "incv3 train: %s (skipped)\n", e.msg);
            continue;
        }
        fprintf(stderr,
                "incv3 train: %s\nincv3 train: %s is unusable; resuming from the newest intact checkpoint %s "
                "instead\n",
                last_err.msg, last, path);
        snprintf(chosen, chosen_len, "%s", path);
        free(list);
        return 0;
    }
    free(list);
    if (n == 0 && access(last, F_OK) != 0)
        return incv3_fail(err, "--resume %s: no checkpoint to continue from (%s)", out, last_err.msg);
    return incv3_fail(err, "--resume %s: %s; no intact epoch-E-step-S.safetensors to fall back on (%zu tried): the "
                           "run cannot be continued",
                      out, last_err.msg, n);
}

/* A failed write during the run: the error (which names the file and the cause) plus where the run stands. */
static int write_failed(const run *r, incv3_error *err)
{
    char msg[sizeof err->msg], last[2600];
    snprintf(msg, sizeof msg, "%s", err->msg);
    snprintf(last, sizeof last, "%s/last.safetensors", r->ckpt_dir);
    if (access(last, F_OK) == 0)
        return incv3_fail(err, "%s; the run stopped; the previous checkpoint %s is intact: fix the cause (disk "
                               "space?) and continue with 'incv3 train --resume %s'",
                          msg, last, r->cfg.out);
    return incv3_fail(err, "%s; the run stopped before its first checkpoint: fix the cause (disk space?) and start it "
                           "again",
                      msg);
}

/* OUT/checkpoints/epoch-E-step-S.safetensors, then the same bytes as last.safetensors (both atomic, so a
 * failed or killed write leaves the previous files as they were), then --keep's pruning. */
static int save_checkpoint(run *r, incv3_error *err)
{
    char *pos = state_to_json(&r->st);
    char path[2600], last[2600];
    snprintf(path, sizeof path, "%s/epoch-%d-step-%lld.safetensors", r->ckpt_dir, r->st.epoch + (r->st.batch > 0),
             (long long)r->st.step);
    snprintf(last, sizeof last, "%s/last.safetensors", r->ckpt_dir);
    int rc = !pos ? incv3_fail(err, "out of memory") : 0;
    /* The kernels chosen so far, before the checkpoint that depends on them: --resume follows this plan. */
    if (rc == 0)
        rc = incv3_graph_save_conv_plan(r->g, out_path(r, "conv-plan.json"), err);
    if (rc == 0)
        rc = incv3_checkpoint_save(path, r->g, r->opt, r->config_json, pos, err);
    if (rc == 0)
        rc = incv3_checkpoint_save(last, r->g, r->opt, r->config_json, pos, err);
    free(pos);
    if (rc)
        return write_failed(r, err);
    prune_checkpoints(r->ckpt_dir, r->cfg.keep);
    return 0;
}

typedef struct resume_load {
    run *r;
    char *pos;
} resume_load;

static int try_resume_load(const char *path, void *ctx, incv3_error *err)
{
    resume_load *l = ctx;
    return incv3_checkpoint_load(path, l->r->g, l->r->opt, NULL, &l->pos, err);
}

static int setup_rest(run *r, int resume, incv3_error *err);

/* The training step's memory against what this process may use, before the first step rather than an
 * out-of-memory kill in it. The graph has its kernels (and a resumed run its plan) by now. */
static int check_memory(run *r, incv3_error *err)
{
    const incv3_train_config *c = &r->cfg;
    const incv3_dataset *sets[] = {&r->all, &r->train, &r->val, &r->test};
    size_t extra = 0;
    for (int i = 0; i < 4; i++)
        extra += (size_t)sets[i]->count * ((size_t)sets[i]->rows * sets[i]->cols + sizeof(int64_t));
    /* The training loader's two batches and the evaluation loader's two. */
    extra += 4 * (size_t)c->batch * 3 * c->image_size * c->image_size * sizeof(float);
    incv3_mem_estimate e;
    incv3_train_memory_estimate(r->g, c->batch, extra, &e);
    const incv3_mem_paths paths = incv3_mem_paths_system();
    char source[64];
    const uint64_t avail = incv3_mem_available(&paths, source, sizeof source);
    const double gib = 1024.0 * 1024.0 * 1024.0;
    if (!r->root)
        ; /* every rank checks its own share of the node; rank 0 speaks */
    else if (avail == UINT64_MAX)
        printf("memory: estimated %.1f GiB, available unknown\n", e.total / gib);
    else
        printf("memory: estimated %.1f GiB, available %.1f GiB (%s)\n", e.total / gib, avail / gib, source);
    if (avail != UINT64_MAX && e.total > avail)
        return incv3_fail(err, "memory: training at --batch %d and --image-size %d needs an estimated %.2f GiB "
                               "(activations %.2f, weights, gradients and AdamW %.2f, kernels %.2f) but only %.2f "
                               "GiB is available (limit: %s); lower --batch or --image-size",
                          c->batch, c->image_size, e.total / gib, e.activations / gib,
                          (e.params + e.optimizer + e.weight_copies) / gib, (e.backward + e.scratch) / gib,
                          avail / gib, source);
    return 0;
}

static int setup(run *r, int resume, incv3_error *err)
{
    incv3_train_config *c = &r->cfg;
    incv3_model_config mc = incv3_model_config_default();
    mc.image_size = c->image_size, mc.aux = c->aux, mc.classes = c->classes, mc.width = c->width;
    mc.dropout = (float)c->dropout;
    if (incv3_model_config_check(&mc, err) || incv3_kernels_check(c->isa, c->conv_algo, err))
        return -1;
    if (!(c->val_fraction >= 0 && c->val_fraction < 1))
        return incv3_fail(err, "--val-fraction %g: must be in [0, 1)", c->val_fraction);
    if (c->batch % r->ranks)
        return incv3_fail(err, "--batch %d cannot be split evenly among %d MPI ranks: --batch is the global batch, "
                               "each rank trains on --batch / %d of it (give a multiple of %d)",
                          c->batch, r->ranks, r->ranks, r->ranks);
    snprintf(r->ckpt_dir, sizeof r->ckpt_dir, "%s/checkpoints", c->out);
    if (!r->root) /* the run directory is rank 0's alone */
        return setup_rest(r, resume, err);
    if (!resume && !dir_is_empty(c->out))
        return incv3_fail(err, "--out %s: the directory exists and is not empty (continue it with --resume %s, "
                               "or choose another)",
                          c->out, c->out);
    if (make_dir(c->out, err))
        return -1;
    if (make_dir(r->ckpt_dir, err))
        return -1;
    return setup_rest(r, resume, err);
}

/* Everything every rank sets up: its thread team, the data (each rank reads the files itself: MNIST is
 * small, and every rank needs the same batch order), the model, the optimizer; on rank 0 also the run's
 * settings and, for --resume, the checkpoint (broadcast to the others afterwards by agree_and_share). */
static int setup_rest(run *r, int resume, incv3_error *err)
{
    incv3_train_config *c = &r->cfg;
    incv3_model_config mc = incv3_model_config_default();
    mc.image_size = c->image_size, mc.aux = c->aux, mc.classes = c->classes, mc.width = c->width;
    mc.dropout = (float)c->dropout;
    if (incv3_train_start_team(c, &r->team, err))
        return -1;
    if (r->root)
        printf("threads: %s%s\n", r->team.summary, r->ranks > 1 ? " (rank 0; each rank has its own team)" : "");
    /* Every input file is validated in full before any training starts. */
    if (r->root)
        printf("data: %s\n", c->data);
    if (incv3_dataset_load_mnist(c->data, "train", c->classes, c->limit_train, &r->all, err) ||
        incv3_dataset_load_mnist(c->data, "t10k", c->classes, 0, &r->test, err) ||
        incv3_dataset_split(&r->all, c->val_fraction, &r->train, &r->val, err))
        return -1;
    if (r->root)
        printf("images: %d training, %d validation, %d test (%dx%d, resized to %dx%d)\n", r->train.count,
               r->val.count, r->test.count, r->all.rows, r->all.cols, c->image_size, c->image_size);
    const int last = r->train.count % c->batch;
    if (last > 0 && last < r->ranks)
        return incv3_fail(err, "--batch %d: the last batch of each epoch has %d image%s, fewer than the %d MPI ranks "
                               "(change --batch, --limit-train or --val-fraction)",
                          c->batch, last, last == 1 ? "" : "s", r->ranks);
    r->pp = (incv3_preprocess){c->image_size, (float)c->mean, (float)c->std};
    if (!(r->g = incv3_inception_v3(&mc, err)) || incv3_graph_set_kernels(r->g, c->isa, c->conv_algo, err))
        return -1;
    incv3_graph_set_deterministic(r->g, c->deterministic);
    incv3_graph_init_params(r->g, c->seed);
    incv3_adamw_hparams hp = {(float)c->lr, 0.9f, 0.999f, 1e-8f, (float)c->weight_decay};
    if (!(r->opt = incv3_adamw_new(r->g, hp, err)) || incv3_confusion_init(&r->st.train_conf, c->classes, err) ||
        incv3_confusion_init(&r->step_conf, c->classes, err))
        return -1;
    r->loader = incv3_loader_new(&r->train, &r->pp, c->batch, 1, c->seed,
                                 r->team.have_team_cpus ? &r->team.team_cpus : NULL, err);
    r->dlogits = malloc(sizeof(float) * (size_t)c->batch * c->classes * 2);
    r->agree = malloc(sizeof(double) * (3 + (size_t)c->classes * c->classes));
    if (!r->loader || !r->dlogits || !r->agree)
        return r->loader ? incv3_fail(err, "out of memory") : -1;
    incv3_loader_set_shard(r->loader, incv3_dist_rank(r->dist), r->ranks);
    if (!(r->config_json = config_to_json(c)))
        return incv3_fail(err, "out of memory");
    if (resume && r->root) {
        resume_load l = {r, NULL};
        char from[4200];
        if (c->resume_from[0]) { /* chosen by incv3_train_config_from_run */
            snprintf(from, sizeof from, "%s", c->resume_from);
            if (incv3_checkpoint_load(from, r->g, r->opt, NULL, &l.pos, err))
                return -1;
        } else if (with_resume_checkpoint(c->out, try_resume_load, &l, from, sizeof from, err)) {
            return -1;
        }
        char *pos = l.pos;
        /* The same kernels as before the stop, so the resumed run computes what the uninterrupted one would. */
        const char *plan = out_path(r, "conv-plan.json");
        if (access(plan, F_OK) == 0 && incv3_graph_load_conv_plan(r->g, plan, err)) {
            free(pos);
            return -1;
        }
        int rc = state_from_json(pos, from, &r->st, err);
        free(pos);
        if (rc)
            return -1;
        /* Only once the resume is certain: a refused --resume leaves the directory as it was. */
        remove_stale_temporaries(c->out);
        remove_stale_temporaries(r->ckpt_dir);
        printf("resuming %s at epoch %d, batch %d (step %lld) from %s\n", c->out, r->st.epoch + 1, r->st.batch,
               (long long)r->st.step, from);
    }
    if (check_memory(r, err))
        return -1;
    return r->root ? incv3_write_file_atomic(out_path(r, "config.json"), write_text, r->config_json, err) : 0;
}

/* After setup, on every rank: whether every rank set up (a rank that failed reports; the others end quietly,
 * with an empty message), then rank 0's weights, optimizer state and, on --resume, position to all. */
static int agree_and_share(run *r, int rc, incv3_error *err)
{
    if (r->ranks <= 1)
        return rc;
    double failed[2] = {r->root && rc, rc != 0}; /* rank 0 failed, some rank failed */
    incv3_error e;
    if (incv3_dist_sum_f64(r->dist, failed, 2, &e)) {
        *err = e;
        return -1;
    }
    if (failed[1] > 0) {
        /* Rank 0 reports. Its own failure (usually every rank's: a bad flag) goes to all, so every rank exits
         * with the same status; a failure on another rank alone is told by that rank here. */
        if (failed[0] > 0) {
            if (incv3_dist_bcast(r->dist, err->msg, sizeof err->msg, &e))
                *err = e;
        } else {
            if (rc)
                fprintf(stderr, "incv3 train (rank %d of %d): %s\n", incv3_dist_rank(r->dist), r->ranks, err->msg);
            incv3_fail(err, "setting up failed on another MPI rank (its message is above)");
        }
        return -1;
    }
    run_state *st = &r->st;
    struct {
        int epoch, batch, best_epoch;
        int64_t step, seen;
        double loss_sum, best_val_acc;
    } pos = {st->epoch, st->batch, st->best_epoch, st->step, st->seen, st->loss_sum, st->best_val_acc};
    if (incv3_dist_bcast_params(r->dist, r->g, r->opt, err) || incv3_dist_bcast(r->dist, &pos, sizeof pos, err) ||
        incv3_dist_bcast(r->dist, st->train_conf.counts,
                         sizeof(int64_t) * (size_t)st->train_conf.classes * st->train_conf.classes, err))
        return -1;
    st->epoch = pos.epoch, st->batch = pos.batch, st->best_epoch = pos.best_epoch, st->step = pos.step;
    st->seen = pos.seen, st->loss_sum = pos.loss_sum, st->best_val_acc = pos.best_val_acc;
    /* Buckets of 8 MiB: a dozen allreduces for the full model, so the first start early in backward. */
    return incv3_dist_attach(r->dist, r->g, r->cfg.sync_bn, (size_t)8 << 20, err);
}

/* One optimizer step on this rank's part (n images) of the global batch; adds the step of every rank to the
 * running metrics; *stop: some rank was asked to stop (SIGINT/SIGTERM). */
static int train_step(run *r, const float *x, const int64_t *y, int n, int *stop, incv3_error *err)
{
    const incv3_train_config *c = &r->cfg;
    const int aux = c->aux;
    /* Each rank's loss is the mean over its n images; weighting its gradient by n x ranks / (global batch)
     * makes the mean over the ranks (the gradient allreduce) the gradient of the mean over the global batch.
     * The weight is exactly 1 for one process and for equal shards. */
    if (r->fail_at_step > 0 && r->st.step + 1 == r->fail_at_step)
        return incv3_fail(err, "injected failure at step %lld (INCV3_TEST_FAIL)", (long long)r->fail_at_step);
    const int first = r->st.batch * c->batch;
    const int n_global = r->train.count - first < c->batch ? r->train.count - first : c->batch;
    const float share = (float)((double)n * r->ranks / n_global);
    /* Dropout masks differ per step and repeat on resume. */
    incv3_forward_opts fo = {.mode = INCV3_TRAIN, .outputs = aux ? 3u : 1u, .for_backward = 1,
                             .dropout_seed = incv3_rng_derive(c->seed ^ 0xd0d0, (uint64_t)r->st.step)};
    if (incv3_graph_forward(r->g, x, n, &fo, err))
        return -1;
    const float *logits = incv3_graph_output(r->g, 0)->data;
    float *dmain = r->dlogits, *daux = r->dlogits + (size_t)n * c->classes;
    double loss, aux_loss = 0;
    if (incv3_softmax_xent(logits, y, n, c->classes, (float)c->label_smoothing, share, dmain, &loss, err) ||
        (aux && incv3_softmax_xent(incv3_graph_output(r->g, 1)->data, y, n, c->classes, (float)c->label_smoothing,
                                   (float)c->aux_weight * share, daux, &aux_loss, err)))
        return -1;
    /* One small sum over the ranks per step: the loss, a non-finite loss anywhere, a stop request anywhere and
     * the step's predictions, so every rank (and rank 0's metrics and checkpoints) sees the global batch. */
    const int cells = c->classes * c->classes;
    incv3_confusion_reset(&r->step_conf);
    incv3_confusion_add(&r->step_conf, logits, y, n);
    double *a = r->agree;
    a[0] = loss * n, a[1] = !isfinite(loss + c->aux_weight * aux_loss), a[2] = stop_requested != 0;
    for (int i = 0; i < cells; i++)
        a[3 + i] = (double)r->step_conf.counts[i];
    if (incv3_dist_sum_f64(r->dist, a, 3 + (size_t)cells, err))
        return -1;
    *stop = a[2] > 0;
    const double total = r->ranks > 1 ? (a[1] > 0 ? NAN : a[0]) : loss + c->aux_weight * aux_loss;
    if (!isfinite(total))
        return incv3_fail(err, "the loss became %s at epoch %d, batch %d (step %lld): stopping; the last good "
                               "checkpoint is in %s",
                          isnan(total) ? "NaN" : "infinite", r->st.epoch + 1, r->st.batch + 1,
                          (long long)r->st.step + 1, r->ckpt_dir);
    for (int i = 0; i < cells; i++)
        r->st.train_conf.counts[i] += (int64_t)a[3 + i];
    const float *d_out[INCV3_MAX_OUTPUTS] = {dmain, aux ? daux : NULL, NULL, NULL};
    if (incv3_graph_backward(r->g, d_out, NULL, err) || incv3_dist_grads_finish(r->dist, r->g, err))
        return -1;
    incv3_adamw_step(r->opt, r->g);
    r->st.loss_sum += a[0]; /* the main head's loss, as the report's tables show */
    r->st.seen += n_global;
    r->st.step++;
    r->st.batch++;
    return 0;
}

static int end_of_epoch(run *r, double epoch_seconds, incv3_split_result *val, incv3_error *err)
{
    const int epoch = r->st.epoch + 1;
    if (evaluate(r->g, &r->val, &r->pp, r->cfg.batch, r->cfg.label_smoothing, &r->team, val, err))
        return -1;
    const double train_loss = r->st.seen ? r->st.loss_sum / r->st.seen : 0;
    const double train_acc = incv3_confusion_accuracy(&r->st.train_conf), val_acc = incv3_confusion_accuracy(&val->conf);
    printf("epoch %d: train loss %.4f acc %.2f%% | validation loss %.4f acc %.2f%% (%.0f s)\n", epoch, train_loss,
           100 * train_acc, val->loss, 100 * val_acc, epoch_seconds);
    const char *csv = out_path(r, "metrics.csv");
    if (incv3_metrics_csv_append(csv, epoch, INCV3_SPLIT_TRAIN, train_loss, train_acc, epoch_seconds, err) ||
        incv3_metrics_csv_append(csv, epoch, INCV3_SPLIT_VAL, val->loss, val_acc, epoch_seconds, err))
        return -1;
    if (r->val.count && (r->st.best_epoch == 0 || val_acc > r->st.best_val_acc)) {
        r->st.best_val_acc = val_acc;
        r->st.best_epoch = epoch;
        if (incv3_checkpoint_save(out_path(r, "best.safetensors"), r->g, NULL, r->config_json, NULL, err))
            return write_failed(r, err);
    }
    return 0;
}

static int finish(run *r, double seconds, const incv3_split_result *val, incv3_error *err)
{
    const incv3_train_config *c = &r->cfg;
    incv3_split_result train = {"Training", r->st.seen ? r->st.loss_sum / r->st.seen : 0, r->st.train_conf};
    incv3_split_result test = {"Testing", 0, {0}}, best = {"Testing", 0, {0}};
    int rc = incv3_confusion_init(&test.conf, c->classes, err) || incv3_confusion_init(&best.conf, c->classes, err);
    if (rc == 0)
        rc = incv3_checkpoint_save(out_path(r, "model.safetensors"), r->g, NULL, r->config_json, NULL, err)
                 ? write_failed(r, err)
                 : 0;
    if (rc == 0)
        rc = evaluate(r->g, &r->test, &r->pp, c->batch, c->label_smoothing, &r->team, &test, err);
    int have_best = 0;
    if (rc == 0 && r->st.best_epoch > 0) {
        rc = incv3_checkpoint_load(out_path(r, "best.safetensors"), r->g, NULL, NULL, NULL, err) ||
             evaluate(r->g, &r->test, &r->pp, c->batch, c->label_smoothing, &r->team, &best, err);
        have_best = rc == 0;
    }
    if (rc == 0) {
        char csv[2400];
        snprintf(csv, sizeof csv, "%s/metrics.csv", c->out);
        rc = incv3_plot_curves(csv, c->out, stdout, err);
    }
    if (rc == 0) {
        char header[4096];
        report_header(c, r->st.epoch, seconds, header, sizeof header);
        incv3_report_md md = {header, 1, &train, val, &test, 1, have_best ? &best : NULL, r->st.best_epoch};
        rc = incv3_report_write_md(out_path(r, "report.md"), &md, err);
        if (rc == 0) {
            putchar('\n');
            md.include_plots = 0;
            rc = incv3_report_print(stdout, &md, err);
        }
    }
    if (rc == 0)
        printf("\nrun directory: %s (report.md, metrics.csv, config.json, model.safetensors, best.safetensors, "
               "checkpoints/, loss.png, accuracy.png)\n",
               c->out);
    incv3_confusion_free(&test.conf);
    incv3_confusion_free(&best.conf);
    return rc;
}

int incv3_train(const incv3_train_config *cfg, int resume, int *interrupted, incv3_error *err)
{
    run r;
    memset(&r, 0, sizeof r);
    r.cfg = *cfg;
    r.dist = cfg->dist;
    r.ranks = incv3_dist_size(r.dist);
    r.root = incv3_dist_rank(r.dist) == 0;
    /* INCV3_TEST_FAIL=RANK:STEP makes that rank fail before that step: how the tests check that one failing
     * rank ends the whole job instead of leaving the others waiting. */
    const char *inject = getenv("INCV3_TEST_FAIL");
    int fail_rank;
    long long fail_step;
    if (inject && sscanf(inject, "%d:%lld", &fail_rank, &fail_step) == 2 && fail_rank == incv3_dist_rank(r.dist))
        r.fail_at_step = fail_step;
    *interrupted = 0;
    incv3_split_result val = {"Validation", 0, {0}};
    /* Over a file-size limit (ulimit -f) write() must fail with EFBIG, reported like a full disk, instead of
     * SIGXFSZ killing the process in the middle of a checkpoint. */
    struct sigaction ign, old_xfsz;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGXFSZ, &ign, &old_xfsz);
    int rc = setup(&r, resume, err) || incv3_confusion_init(&val.conf, cfg->classes, err) ? -1 : 0;
    rc = agree_and_share(&r, rc, err);
    if (rc) {
        sigaction(SIGXFSZ, &old_xfsz, NULL);
        run_free(&r);
        return -1;
    }
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    stop_requested = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);

    const int nb = incv3_loader_batches(r.loader);
    progress pr = {.tty = isatty(STDOUT_FILENO)};
    const double t0 = now_seconds();
    if (r.root)
        printf("training: %d epochs of %d batches of %d, %dx%d, %s kernels%s\n", cfg->epochs, nb, cfg->batch,
               cfg->image_size, cfg->image_size, incv3_graph_default_isa(),
               cfg->deterministic ? " (deterministic: kernels by a fixed rule)" : "");
    if (r.root && r.ranks > 1)
        printf("data-parallel: %d MPI ranks, %d images per rank per step, BatchNorm statistics %s\n", r.ranks,
               cfg->batch / r.ranks, cfg->sync_bn ? "over the global batch (--sync-bn)" : "per rank");
    while (rc == 0 && r.st.epoch < cfg->epochs) {
        if (r.st.batch == 0) {
            r.st.loss_sum = 0, r.st.seen = 0;
            incv3_confusion_reset(&r.st.train_conf);
        }
        if ((rc = incv3_loader_start(r.loader, r.st.epoch, r.st.batch, err)))
            break;
        pr.epoch_start = now_seconds(), pr.last_print = 0, pr.images = 0;
        const float *x;
        const int64_t *y;
        int n;
        int stop = 0;
        while (rc == 0 && incv3_loader_next(r.loader, &x, &y, &n)) {
            if ((rc = train_step(&r, x, y, n, &stop, err)))
                break;
            pr.images += n * r.ranks;
            if (r.root)
                show_progress(&pr, &r.st, nb, cfg->epochs, r.st.batch == nb);
            if (r.root && cfg->checkpoint_every > 0 && r.st.step % cfg->checkpoint_every == 0 && r.st.batch < nb)
                rc = save_checkpoint(&r, err);
            if (rc == 0 && stop && r.st.batch < nb) {
                rc = r.root ? save_checkpoint(&r, err) : 0;
                if (rc == 0) {
                    if (r.root)
                        printf("\nstopped by a signal after epoch %d, batch %d; checkpoint written: resume with "
                               "'incv3 train --resume %s'\n",
                               r.st.epoch + 1, r.st.batch, cfg->out);
                    *interrupted = 1;
                }
                goto done;
            }
        }
        if (rc)
            break;
        /* Rank 0 validates and writes; the others wait for it at the next step's collectives. */
        if (r.root && (rc = end_of_epoch(&r, now_seconds() - pr.epoch_start, &val, err)))
            break;
        r.st.epoch++;
        r.st.batch = 0;
        if (r.root && (rc = save_checkpoint(&r, err)))
            break;
        stop = stop_requested != 0;
        if ((rc = incv3_dist_max_int(r.dist, &stop, err)))
            break;
        if (stop) {
            if (r.root)
                printf("stopped by a signal after epoch %d; resume with 'incv3 train --resume %s'\n", r.st.epoch,
                       cfg->out);
            *interrupted = 1;
            goto done;
        }
    }
    if (rc == 0 && r.root) {
        /* A resumed finished run re-reports from its last validation. */
        if (val.conf.counts && incv3_confusion_total(&val.conf) == 0)
            rc = evaluate(r.g, &r.val, &r.pp, cfg->batch, cfg->label_smoothing, &r.team, &val, err);
        if (rc == 0)
            rc = finish(&r, now_seconds() - t0, &val, err);
    }
done:
    /* A rank that fails mid-run ends the job: the others would wait for it in their next collective. */
    if (rc && r.ranks > 1) {
        fprintf(stderr, "incv3 train (rank %d of %d): %s\n", incv3_dist_rank(r.dist), r.ranks, err->msg);
        incv3_dist_abort(r.dist, 1, "training failed");
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGXFSZ, &old_xfsz, NULL);
    incv3_confusion_free(&val.conf);
    run_free(&r);
    return rc;
}

/* A checkpoint --resume can use: it opens (checksum included) and its settings parse. */
static int try_resume_config(const char *path, void *ctx, incv3_error *err)
{
    incv3_st_file *f = incv3_st_open(path, err);
    if (!f)
        return -1;
    const char *meta = incv3_st_metadata(f, "config");
    int rc = meta ? config_from_json(meta, path, ctx, err) : incv3_fail(err, "%s: no \"config\" metadata", path);
    incv3_st_close(f);
    return rc;
}

int incv3_train_config_from_run(const char *out, incv3_train_config *cfg, incv3_error *err)
{
    char from[sizeof cfg->resume_from];
    if (with_resume_checkpoint(out, try_resume_config, cfg, from, sizeof from, err))
        return -1;
    snprintf(cfg->resume_from, sizeof cfg->resume_from, "%s", from);
    return 0;
}

/* ---- incv3 eval ---- */

/* The model a weights file needs: its "config" metadata where it has one (incv3's files), else the
 * caller's settings with the width read off the first convolution and the aux head present only when
 * its tensors are (a PyTorch state_dict). */
static int model_for_file(const incv3_st_file *f, const incv3_train_config *given, int aux_given,
                          incv3_train_config *c, incv3_error *err)
{
    const char *meta = incv3_st_metadata(f, "config");
    if (meta)
        return config_from_json(meta, incv3_st_path(f), c, err);
    *c = *given;
    const incv3_st_tensor *stem = incv3_st_find(f, "stem.0.conv.weight");
    if (!stem || stem->ndim != 4)
        return incv3_fail(err, "%s: no stem.0.conv.weight: not a checkpoint of this model", incv3_st_path(f));
    if (!aux_given)
        c->aux = incv3_st_find(f, "aux.fc1.weight") != NULL;
    const incv3_st_tensor *fc = incv3_st_find(f, "fc.weight");
    if (fc && fc->ndim == 2)
        c->classes = (int)fc->shape[0];
    if (c->width > 0)
        return 0;
    /* The stem's 32 channels bound the width to [(k - 0.5) / 32, (k + 0.5) / 32); the rounding of the other
     * channel counts decides within that interval, so try widths there (k / 32 first) until every tensor of
     * the file has the model's shape. */
    const double k0 = (double)stem->shape[0], lo = (k0 - 0.5) / 32, hi = (k0 + 0.5) / 32;
    for (int i = -1; i < 512; i++) {
        const double w = i < 0 ? k0 / 32 : lo + (hi - lo) * (i + 0.5) / 512;
        incv3_model_config mc = incv3_model_config_default();
        mc.image_size = c->image_size, mc.aux = c->aux, mc.classes = c->classes, mc.width = w;
        incv3_graph *g = incv3_model_config_check(&mc, NULL) ? NULL : incv3_inception_v3(&mc, NULL);
        int match = g != NULL;
        for (size_t p = 0; g && match && p < incv3_graph_param_count(g); p++) {
            const incv3_param *q = incv3_graph_param(g, p);
            const incv3_st_tensor *t = incv3_st_find(f, q->name);
            match = t && t->numel == q->numel;
        }
        incv3_graph_free(g);
        if (match) {
            c->width = w;
            return 0;
        }
    }
    return incv3_fail(err, "%s: no width of this model matches its tensors' shapes (give --width)", incv3_st_path(f));
}

incv3_graph *incv3_load_model_file(const char *path, const incv3_train_config *given, int aux_given,
                                   incv3_train_config *used, incv3_error *err)
{
    incv3_st_file *f = incv3_st_open(path, err);
    if (!f)
        return NULL;
    int rc = model_for_file(f, given, aux_given, used, err);
    incv3_st_close(f);
    if (rc)
        return NULL;
    incv3_model_config mc = incv3_model_config_default();
    mc.image_size = used->image_size, mc.aux = used->aux, mc.classes = used->classes, mc.width = used->width;
    incv3_graph *g = NULL;
    if (incv3_model_config_check(&mc, err) || !(g = incv3_inception_v3(&mc, err)) ||
        incv3_graph_set_kernels(g, given->isa, given->conv_algo, err) ||
        incv3_checkpoint_load(path, g, NULL, NULL, NULL, err)) {
        incv3_graph_free(g);
        return NULL;
    }
    return g;
}

int incv3_evaluate_file(const char *path, const incv3_train_config *given, int aux_given, incv3_error *err)
{
    incv3_train_config c;
    incv3_graph *g = incv3_load_model_file(path, given, aux_given, &c, err);
    if (!g)
        return -1;
    if (given->data[0])
        snprintf(c.data, sizeof c.data, "%s", given->data);
    else if (!c.data[0])
        snprintf(c.data, sizeof c.data, "data/mnist");
    incv3_dataset test;
    incv3_split_result res = {INCV3_SPLIT_TEST, 0, {0}};
    memset(&test, 0, sizeof test);
    int rc = incv3_dataset_load_mnist(c.data, "t10k", c.classes, 0, &test, err) ||
                     incv3_confusion_init(&res.conf, c.classes, err)
                 ? -1
                 : 0;
    if (rc == 0) {
        printf("%s: Inception-V3 width %g, %dx%d, aux head %s, %d classes; test set of %s (%d images)\n", path,
               c.width, c.image_size, c.image_size, c.aux ? "on" : "off", c.classes, c.data, test.count);
        incv3_preprocess pp = {c.image_size, (float)c.mean, (float)c.std};
        incv3_train_config tc = *given;
        incv3_sched_started team;
        rc = incv3_train_start_team(&tc, &team, err);
        if (rc == 0)
            rc = evaluate(g, &test, &pp, c.batch > 0 ? c.batch : 32, c.label_smoothing, &team, &res, err);
    }
    if (rc == 0) {
        incv3_report_md md = {NULL, 0, NULL, NULL, &res, 1, NULL, 0};
        rc = incv3_report_print(stdout, &md, err);
    }
    incv3_confusion_free(&res.conf);
    incv3_dataset_free(&test);
    incv3_graph_free(g);
    return rc;
}
