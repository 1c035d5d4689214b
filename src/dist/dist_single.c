/* src/dist/dist.h without MPI: one rank of one; collectives leave their buffers as they are. */
#include <stdio.h>
#include <stdlib.h>

#include "dist/dist.h"
#include "incv3/train.h"

struct incv3_dist {
    int unused;
};

int incv3_dist_init(incv3_dist **out, incv3_error *err)
{
    *out = calloc(1, sizeof **out);
    return *out ? 0 : incv3_fail(err, "out of memory");
}

void incv3_dist_finalize(incv3_dist *d)
{
    free(d);
}

int incv3_dist_rank(const incv3_dist *d) { (void)d; return 0; }
int incv3_dist_size(const incv3_dist *d) { (void)d; return 1; }
int incv3_dist_local_rank(const incv3_dist *d) { (void)d; return 0; }
int incv3_dist_local_size(const incv3_dist *d) { (void)d; return 1; }

void incv3_dist_abort(incv3_dist *d, int code, const char *msg)
{
    (void)d, (void)code, (void)msg;
}

int incv3_dist_bcast(incv3_dist *d, void *buf, size_t bytes, incv3_error *err)
{
    (void)d, (void)buf, (void)bytes, (void)err;
    return 0;
}

int incv3_dist_sum_f64(incv3_dist *d, double *buf, size_t n, incv3_error *err)
{
    (void)d, (void)buf, (void)n, (void)err;
    return 0;
}

int incv3_dist_max_int(incv3_dist *d, int *v, incv3_error *err)
{
    (void)d, (void)v, (void)err;
    return 0;
}

int incv3_dist_core_share(incv3_dist *d, int *share, int *shares, incv3_error *err)
{
    (void)d, (void)err;
    *share = 0, *shares = 1;
    return 0;
}

int incv3_dist_bcast_params(incv3_dist *d, incv3_graph *g, incv3_adamw *opt, incv3_error *err)
{
    (void)d, (void)g, (void)opt, (void)err;
    return 0;
}

int incv3_dist_attach(incv3_dist *d, incv3_graph *g, int sync_bn, size_t bucket_bytes, incv3_error *err)
{
    (void)d, (void)g, (void)sync_bn, (void)bucket_bytes, (void)err;
    return 0;
}

int incv3_dist_grads_finish(incv3_dist *d, incv3_graph *g, incv3_error *err)
{
    (void)d, (void)g, (void)err;
    return 0;
}

double incv3_dist_take_wait_seconds(incv3_dist *d)
{
    (void)d;
    return 0;
}
