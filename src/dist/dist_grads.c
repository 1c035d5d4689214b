/* The gradient allreduce of data-parallel training: gradients are packed into buckets in reverse parameter
 * order (the order backward finishes them) and each bucket's MPI_Iallreduce starts as soon as its last
 * parameter is done, so communication overlaps the rest of backward; grads_finish waits for all and
 * divides by the rank count. Also rank 0's parameters and optimizer state to every rank. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dist/dist_mpi.h"

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

int incv3_dist_bcast_params(incv3_dist *d, incv3_graph *g, incv3_adamw *opt, incv3_error *err)
{
    if (!d || d->size <= 1)
        return 0;
    for (size_t i = 0; i < incv3_graph_param_count(g); i++) {
        incv3_param *p = incv3_graph_param(g, i);
        if (incv3_dist_bcast(d, p->data, p->numel * sizeof(float), err))
            return -1;
        float *m = opt && p->kind == INCV3_PARAM ? incv3_adamw_exp_avg(opt, i) : NULL;
        float *v = opt && p->kind == INCV3_PARAM ? incv3_adamw_exp_avg_sq(opt, i) : NULL;
        if ((m && incv3_dist_bcast(d, m, p->numel * sizeof(float), err)) ||
            (v && incv3_dist_bcast(d, v, p->numel * sizeof(float), err)))
            return -1;
    }
    if (opt) {
        int64_t steps = incv3_adamw_steps(opt);
        if (incv3_dist_bcast(d, &steps, sizeof steps, err))
            return -1;
        incv3_adamw_set_steps(opt, steps);
    }
    return 0;
}

/* Drives the started allreduces forward: MPI libraries progress non-blocking collectives mostly inside MPI
 * calls, so backward pokes them between layers. */
static int poke(incv3_dist *d, incv3_error *err)
{
    int done;
    return d->n_reqs ? incv3_mpi_check(MPI_Testall(d->n_reqs, d->reqs, &done, MPI_STATUSES_IGNORE), "MPI_Testall",
                                       err)
                     : 0;
}

/* Packs the gradients of parameters [first, pending_from) and starts their allreduce. */
static int start_bucket(incv3_dist *d, incv3_graph *g, size_t first, incv3_error *err)
{
    for (size_t i = first; i < d->pending_from; i++) {
        const incv3_param *p = incv3_graph_param(g, i);
        if (p->kind == INCV3_PARAM)
            memcpy(d->flat + d->offset[i], p->grad, p->numel * sizeof(float));
    }
    for (size_t off = d->offset[first], end = d->offset[d->pending_from]; off < end;) {
        const size_t n = end - off < (size_t)INT_MAX / 2 ? end - off : (size_t)INT_MAX / 2;
        if (d->n_reqs == d->cap_reqs) {
            const int cap = d->cap_reqs ? 2 * d->cap_reqs : 64;
            MPI_Request *grown = realloc(d->reqs, sizeof *grown * (size_t)cap);
            if (!grown)
                return incv3_fail(err, "out of memory");
            d->reqs = grown, d->cap_reqs = cap;
        }
        if (incv3_mpi_check(MPI_Iallreduce(MPI_IN_PLACE, d->flat + off, (int)n, MPI_FLOAT, MPI_SUM, d->comm,
                                           &d->reqs[d->n_reqs]),
                            "MPI_Iallreduce", err))
            return -1;
        d->n_reqs++;
        off += n;
    }
    d->pending_from = first;
    return 0;
}

static int grads_ready(void *ctx, incv3_graph *g, size_t first_param, incv3_error *err)
{
    incv3_dist *d = ctx;
    if (first_param >= d->pending_from)
        return 0;
    const size_t bytes = (d->offset[d->pending_from] - d->offset[first_param]) * sizeof(float);
    if (bytes >= d->bucket_bytes && start_bucket(d, g, first_param, err))
        return -1;
    return poke(d, err);
}

static int sum_f64(void *ctx, double *buf, size_t n, incv3_error *err)
{
    return incv3_dist_sum_f64(ctx, buf, n, err);
}

int incv3_dist_attach(incv3_dist *d, incv3_graph *g, int sync_bn, size_t bucket_bytes, incv3_error *err)
{
    if (!d || d->size <= 1)
        return 0;
    d->n_params = incv3_graph_param_count(g);
    free(d->offset), free(d->flat);
    d->offset = malloc(sizeof *d->offset * (d->n_params + 1));
    if (!d->offset)
        return incv3_fail(err, "out of memory");
    size_t total = 0;
    for (size_t i = 0; i < d->n_params; i++) {
        d->offset[i] = total;
        const incv3_param *p = incv3_graph_param(g, i);
        total += p->kind == INCV3_PARAM ? p->numel : 0;
    }
    d->offset[d->n_params] = total;
    if (!(d->flat = malloc(sizeof(float) * (total ? total : 1))))
        return incv3_fail(err, "out of memory for the gradient buckets (%zu floats)", total);
    d->bucket_bytes = bucket_bytes;
    d->pending_from = d->n_params;
    d->n_reqs = 0;
    d->hooks = (incv3_graph_dist){.ctx = d, .ranks = d->size, .sync_bn = sync_bn, .sum_f64 = sum_f64,
                                  .grads_ready = grads_ready};
    return incv3_graph_set_dist(g, &d->hooks, err);
}

int incv3_dist_grads_finish(incv3_dist *d, incv3_graph *g, incv3_error *err)
{
    if (!d || d->size <= 1)
        return 0;
    if (d->pending_from > 0 && start_bucket(d, g, 0, err))
        return -1;
    const double t0 = now_seconds();
    int rc = d->n_reqs ? incv3_mpi_check(MPI_Waitall(d->n_reqs, d->reqs, MPI_STATUSES_IGNORE), "MPI_Waitall", err)
                       : 0;
    d->wait_s += now_seconds() - t0;
    d->n_reqs = 0;
    d->pending_from = d->n_params;
    if (rc)
        return -1;
    const float scale = 1.0f / (float)d->size;
    for (size_t i = 0; i < d->n_params; i++) {
        incv3_param *p = incv3_graph_param(g, i);
        if (p->kind != INCV3_PARAM)
            continue;
        const float *src = d->flat + d->offset[i];
        for (size_t k = 0; k < p->numel; k++)
            p->grad[k] = src[k] * scale;
    }
    return 0;
}

double incv3_dist_take_wait_seconds(incv3_dist *d)
{
    if (!d)
        return 0;
    const double s = d->wait_s;
    d->wait_s = 0;
    return s;
}
