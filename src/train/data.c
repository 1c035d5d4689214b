#include "train/data.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "incv3/idx.h"
#include "incv3/tensor.h"
#include "util/oom.h"
#include "util/rng.h"

#include "alloc.h"

int incv3_dataset_load_mnist(const char *dir, const char *split, int classes, int limit, incv3_dataset *out,
                             incv3_error *err)
{
    memset(out, 0, sizeof *out);
    char ipath[4096], lpath[4096];
    if (incv3_mnist_find(dir, split, ipath, lpath, sizeof ipath, err))
        return -1;
    incv3_idx_images im;
    incv3_idx_labels lb;
    if (incv3_idx_read_images(ipath, &im, err))
        return -1;
    if (incv3_idx_read_labels(lpath, classes, &lb, err)) {
        incv3_idx_images_free(&im);
        return -1;
    }
    int rc = incv3_idx_check_pair(&im, ipath, &lb, lpath, err);
    if (rc == 0 && im.count > (size_t)INT32_MAX)
        rc = incv3_fail(err, "%s: %zu images is more than this trainer handles", ipath, im.count);
    if (rc == 0) {
        size_t n = limit > 0 && (size_t)limit < im.count ? (size_t)limit : im.count;
        size_t pixels = (size_t)im.rows * im.cols;
        out->images = incv3_mem_try(n * pixels, 0);
        out->labels = incv3_mem_try(n * sizeof *out->labels, 0);
        if (!out->images || !out->labels) {
            rc = incv3_fail_oom(err, n * (pixels + sizeof *out->labels), ipath);
        } else {
            memcpy(out->images, im.data, n * pixels);
            for (size_t i = 0; i < n; i++)
                out->labels[i] = lb.data[i];
            out->count = (int)n, out->rows = im.rows, out->cols = im.cols, out->classes = classes;
        }
    }
    incv3_idx_images_free(&im);
    incv3_idx_labels_free(&lb);
    if (rc)
        incv3_dataset_free(out);
    return rc;
}

void incv3_dataset_free(incv3_dataset *ds)
{
    free(ds->images);
    free(ds->labels);
    memset(ds, 0, sizeof *ds);
}

/* A permutation of 0..n-1 (Fisher-Yates) from a seed. */
static void permutation(int *perm, int n, uint64_t seed)
{
    uint64_t st = seed;
    for (int i = 0; i < n; i++)
        perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(incv3_rng_next(&st) % (uint64_t)(i + 1));
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

static int subset(const incv3_dataset *all, const int *idx, int n, incv3_dataset *out, incv3_error *err)
{
    const size_t pixels = (size_t)all->rows * all->cols;
    out->images = incv3_mem_try((n ? n : 1) * pixels, 0);
    out->labels = incv3_mem_try((n ? n : 1) * sizeof *out->labels, 0);
    if (!out->images || !out->labels) {
        incv3_dataset_free(out);
        return incv3_fail_oom(err, (size_t)n * (pixels + sizeof *out->labels), "the training/validation split");
    }
    for (int i = 0; i < n; i++) {
        memcpy(out->images + (size_t)i * pixels, all->images + (size_t)idx[i] * pixels, pixels);
        out->labels[i] = all->labels[idx[i]];
    }
    out->count = n, out->rows = all->rows, out->cols = all->cols, out->classes = all->classes;
    return 0;
}

int incv3_dataset_split(const incv3_dataset *all, double val_fraction, incv3_dataset *train, incv3_dataset *val,
                        incv3_error *err)
{
    memset(train, 0, sizeof *train);
    memset(val, 0, sizeof *val);
    if (!(val_fraction >= 0 && val_fraction < 1))
        return incv3_fail(err, "--val-fraction %g: must be in [0, 1)", val_fraction);
    int n_val = (int)floor(all->count * val_fraction + 0.5);
    if (all->count - n_val < 1)
        return incv3_fail(err, "--val-fraction %g leaves no training images out of %d", val_fraction, all->count);
    int *perm = malloc(sizeof(int) * (size_t)all->count);
    if (!perm)
        return incv3_fail(err, "out of memory");
    /* A fixed seed: the split must not move when the training seed changes. The validation items keep
     * their file order, and so do the training items. */
    permutation(perm, all->count, 0x5eedc0ffee);
    char *is_val = calloc((size_t)all->count, 1);
    int *tr = malloc(sizeof(int) * (size_t)all->count), *va = malloc(sizeof(int) * (size_t)(n_val ? n_val : 1));
    int rc = -1;
    if (is_val && tr && va) {
        for (int i = 0; i < n_val; i++)
            is_val[perm[i]] = 1;
        int nt = 0, nv = 0;
        for (int i = 0; i < all->count; i++) {
            if (is_val[i])
                va[nv++] = i;
            else
                tr[nt++] = i;
        }
        rc = subset(all, tr, nt, train, err) || subset(all, va, nv, val, err) ? -1 : 0;
    } else {
        incv3_fail(err, "out of memory");
    }
    free(perm), free(is_val), free(tr), free(va);
    if (rc) {
        incv3_dataset_free(train);
        incv3_dataset_free(val);
    }
    return rc;
}

/* Source coordinate of output index i for a resize from `in` to `out` with half-pixel centres:
 * lower index, upper index and the weight of the upper one. */
static void resize_tap(int i, int in, int out, int *lo, int *hi, float *w)
{
    double src = (i + 0.5) * (double)in / out - 0.5;
    if (src < 0)
        src = 0;
    int l = (int)src;
    if (l > in - 1)
        l = in - 1;
    *lo = l;
    *hi = l + 1 < in ? l + 1 : in - 1;
    *w = (float)(src - l);
}

void incv3_preprocess_image(const incv3_preprocess *p, const uint8_t *src, int rows, int cols, float *dst)
{
    const int S = p->size;
    const float scale = 1.0f / (255.0f * p->std), shift = -p->mean / p->std;
    for (int oy = 0; oy < S; oy++) {
        int y0, y1;
        float wy;
        resize_tap(oy, rows, S, &y0, &y1, &wy);
        const uint8_t *r0 = src + (size_t)y0 * cols, *r1 = src + (size_t)y1 * cols;
        float *d = dst + (size_t)oy * S;
        for (int ox = 0; ox < S; ox++) {
            int x0, x1;
            float wx;
            resize_tap(ox, cols, S, &x0, &x1, &wx);
            const float top = r0[x0] + wx * (r0[x1] - r0[x0]), bot = r1[x0] + wx * (r1[x1] - r1[x0]);
            d[ox] = (top + wy * (bot - top)) * scale + shift;
        }
    }
    /* MNIST is grayscale; the model takes three channels. */
    memcpy(dst + (size_t)S * S, dst, (size_t)S * S * sizeof(float));
    memcpy(dst + (size_t)2 * S * S, dst, (size_t)S * S * sizeof(float));
}

/* ---- the loader: the worker fills one buffer while the trainer reads the other ---- */

typedef struct batch_buf {
    float *x;
    int64_t *y;
    int n;
    int index; /* batch of the epoch it holds, -1 none */
    int ready;
} batch_buf;

struct incv3_loader {
    const incv3_dataset *ds;
    incv3_preprocess p;
    int batch, shuffle, nbatches;
    int shard, shards; /* this process prepares part `shard` of `shards` of each batch */
    uint64_t seed;
    int *perm;
    batch_buf buf[2];
    int current;   /* buffer handed out last, -1 none */
    int next;      /* next batch index to hand out */
    int request;   /* batch the worker should fill next (-1 none) into buffer request_buf */
    int request_buf;
    int busy; /* the worker is filling a buffer */
    int quit;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static void fill(incv3_loader *l, batch_buf *b, int index)
{
    const size_t per = (size_t)3 * l->p.size * l->p.size, pixels = (size_t)l->ds->rows * l->ds->cols;
    const int first = index * l->batch;
    const int n = l->ds->count - first < l->batch ? l->ds->count - first : l->batch;
    const int lo = (int)((long)l->shard * n / l->shards), hi = (int)((long)(l->shard + 1) * n / l->shards);
    for (int i = lo; i < hi; i++) {
        const int item = l->perm[first + i];
        incv3_preprocess_image(&l->p, l->ds->images + (size_t)item * pixels, l->ds->rows, l->ds->cols,
                               b->x + (size_t)(i - lo) * per);
        b->y[i - lo] = l->ds->labels[item];
    }
    b->n = hi - lo;
    b->index = index;
}

static void *worker(void *arg)
{
    incv3_loader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->quit && l->request < 0)
            pthread_cond_wait(&l->cv, &l->mu);
        if (l->quit)
            break;
        const int index = l->request, bi = l->request_buf;
        l->request = -1;
        l->busy = 1;
        pthread_mutex_unlock(&l->mu);
        fill(l, &l->buf[bi], index);
        pthread_mutex_lock(&l->mu);
        l->busy = 0;
        l->buf[bi].ready = 1;
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

incv3_loader *incv3_loader_new(const incv3_dataset *ds, const incv3_preprocess *p, int batch, int shuffle,
                               uint64_t seed, const cpu_set_t *worker_cpus, incv3_error *err)
{
    if (batch < 1 || ds->count < 1) {
        incv3_fail(err, "batch %d of %d images", batch, ds->count);
        return NULL;
    }
    incv3_loader *l = calloc(1, sizeof *l);
    if (!l) {
        incv3_fail(err, "out of memory");
        return NULL;
    }
    l->ds = ds, l->p = *p, l->batch = batch, l->shuffle = shuffle, l->seed = seed;
    l->shard = 0, l->shards = 1;
    l->nbatches = (ds->count + batch - 1) / batch;
    l->perm = malloc(sizeof(int) * (size_t)ds->count);
    const size_t per = (size_t)3 * p->size * p->size;
    for (int i = 0; i < 2; i++) {
        l->buf[i].x = incv3_aligned_alloc((size_t)batch * per * sizeof(float), 0);
        l->buf[i].y = incv3_mem_try(sizeof(int64_t) * (size_t)batch, 0);
        l->buf[i].index = -1;
    }
    l->current = -1, l->request = -1;
    if (!l->perm || !l->buf[0].x || !l->buf[1].x || !l->buf[0].y || !l->buf[1].y) {
        incv3_fail_oom(err, 2 * (size_t)batch * (per * sizeof(float) + sizeof(int64_t)), "the loader's two batches");
        incv3_loader_free(l);
        return NULL;
    }
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    pthread_attr_t attr;
    int started = 0;
    if (pthread_attr_init(&attr) == 0) {
        started = !worker_cpus || pthread_attr_setaffinity_np(&attr, sizeof *worker_cpus, worker_cpus) == 0;
        started = started && pthread_create(&l->thread, &attr, worker, l) == 0;
        pthread_attr_destroy(&attr);
    }
    if (!started) {
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cv);
        incv3_fail(err, "cannot start the data loader thread");
        l->thread = 0;
        incv3_loader_free(l);
        return NULL;
    }
    return l;
}

void incv3_loader_free(incv3_loader *l)
{
    if (!l)
        return;
    if (l->thread) {
        pthread_mutex_lock(&l->mu);
        l->quit = 1;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL);
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cv);
    }
    for (int i = 0; i < 2; i++) {
        incv3_aligned_free(l->buf[i].x);
        free(l->buf[i].y);
    }
    free(l->perm);
    free(l);
}

int incv3_loader_batches(const incv3_loader *l)
{
    return l->nbatches;
}

/* Asks the worker for batch `index` into buffer `bi` (caller holds the mutex). */
static void ask(incv3_loader *l, int index, int bi)
{
    l->buf[bi].ready = 0;
    l->buf[bi].index = -1;
    l->request = index;
    l->request_buf = bi;
    pthread_cond_broadcast(&l->cv);
}

int incv3_loader_start(incv3_loader *l, int epoch, int first, incv3_error *err)
{
    if (first < 0 || first > l->nbatches)
        return incv3_fail(err, "batch %d of an epoch of %d batches", first, l->nbatches);
    /* Wait out a batch still being prepared for the previous epoch: the permutation changes below. */
    pthread_mutex_lock(&l->mu);
    while (l->request >= 0 || l->busy)
        pthread_cond_wait(&l->cv, &l->mu);
    pthread_mutex_unlock(&l->mu);
    if (l->shuffle)
        permutation(l->perm, l->ds->count, incv3_rng_derive(l->seed, (uint64_t)epoch));
    else
        for (int i = 0; i < l->ds->count; i++)
            l->perm[i] = i;
    pthread_mutex_lock(&l->mu);
    l->current = -1;
    l->next = first;
    if (first < l->nbatches)
        ask(l, first, 0);
    pthread_mutex_unlock(&l->mu);
    return 0;
}

void incv3_loader_set_shard(incv3_loader *l, int shard, int shards)
{
    l->shard = shard, l->shards = shards > 0 ? shards : 1;
}

int incv3_loader_next(incv3_loader *l, const float **x, const int64_t **y, int *n)
{
    if (l->next >= l->nbatches)
        return 0;
    pthread_mutex_lock(&l->mu);
    const int bi = l->current < 0 ? 0 : 1 - l->current;
    while (!l->buf[bi].ready)
        pthread_cond_wait(&l->cv, &l->mu);
    l->current = bi;
    l->next++;
    /* Prepare the following batch in the other buffer while the caller trains on this one. */
    if (l->next < l->nbatches)
        ask(l, l->next, 1 - bi);
    pthread_mutex_unlock(&l->mu);
    *x = l->buf[bi].x;
    *y = l->buf[bi].y;
    *n = l->buf[bi].n;
    return 1;
}
