/* The MPI layer (src/dist) on a small conv -> BatchNorm -> ReLU network, run under mpirun by
 * tests/test_mpi.sh (built only with -Dmpi=enabled):
 *   1. the gradient allreduce: with tiny buckets (many Iallreduces started from inside backward), every
 *      gradient after incv3_dist_grads_finish is the mean of the ranks' own gradients;
 *   2. synchronized BatchNorm: R ranks on their slices of a global batch give the logits and the gradients of
 *      one graph run on the whole batch (blocked AVX2 kernels where available, with one fused conv -> BN ->
 *      ReLU chain and one plain BatchNorm, and the scalar reference kernels);
 *   3. incv3_dist_bcast_params makes every rank hold rank 0's parameters.
 * Prints one line per check from rank 0; exits non-zero (on every rank) when a check fails. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/dist.h"
#include "incv3/graph.h"
#include "incv3/train.h"
#include "util/rng.h"

enum { C_IN = 3, HW = 10, CLASSES = 5, LOCAL = 4 };

static incv3_graph *build(const char *isa)
{
    incv3_graph *g = incv3_graph_new(C_IN, HW, HW);
    int x = incv3_graph_input_node(g);
    x = incv3_graph_conv(g, x, "c1", 16, 3, 3, 1, 1, 1);
    x = incv3_graph_batchnorm(g, x, "b1", 1e-3f, 0.1f);
    x = incv3_graph_relu(g, x);
    x = incv3_graph_conv(g, x, "c2", 12, 3, 3, 2, 1, 1);
    x = incv3_graph_batchnorm(g, x, "b2", 1e-3f, 0.1f);
    x = incv3_graph_avgpool(g, x, 3, 1, 1); /* b2 stays unfused: the blocked layout's plain BatchNorm path */
    x = incv3_graph_relu(g, x);
    x = incv3_graph_global_avgpool(g, x);
    x = incv3_graph_flatten(g, x);
    x = incv3_graph_linear(g, x, "fc", CLASSES);
    incv3_graph_set_output(g, 0, x);
    incv3_error err;
    if (incv3_graph_error(g)) {
        fprintf(stderr, "test_dist: cannot build the graph (%s)\n", incv3_graph_error(g));
        exit(1);
    }
    if (incv3_graph_set_kernels(g, isa, strcmp(isa, "scalar") ? "direct" : "auto", &err)) {
        fprintf(stderr, "test_dist: %s\n", err.msg);
        exit(1);
    }
    incv3_graph_init_params(g, 5);
    return g;
}

/* Forward + loss (mean over the n samples) + backward; logits copied to out when not NULL. */
static void step(incv3_graph *g, const float *x, const int64_t *y, int n, float *out)
{
    incv3_error err;
    incv3_forward_opts fo = {.mode = INCV3_TRAIN, .outputs = 1u, .for_backward = 1};
    float dl[CLASSES * LOCAL * 16];
    double loss;
    if (incv3_graph_forward(g, x, n, &fo, &err) ||
        incv3_softmax_xent(incv3_graph_output(g, 0)->data, y, n, CLASSES, 0.0f, 1.0f, dl, &loss, &err)) {
        fprintf(stderr, "test_dist: %s\n", err.msg);
        exit(1);
    }
    if (out)
        memcpy(out, incv3_graph_output(g, 0)->data, sizeof(float) * (size_t)n * CLASSES);
    const float *d_out[INCV3_MAX_OUTPUTS] = {dl, NULL, NULL, NULL};
    if (incv3_graph_backward(g, d_out, NULL, &err)) {
        fprintf(stderr, "test_dist: %s\n", err.msg);
        exit(1);
    }
}

/* Largest |a - b| / (max |b| of the tensor) over the trainable parameters' gradients. */
static double grad_diff(incv3_graph *a, float **b)
{
    double worst = 0;
    for (size_t i = 0, k = 0; i < incv3_graph_param_count(a); i++) {
        const incv3_param *p = incv3_graph_param(a, i);
        if (p->kind != INCV3_PARAM)
            continue;
        double scale = 1e-30, d = 0;
        for (size_t j = 0; j < p->numel; j++) {
            scale = fmax(scale, fabs(b[k][j]));
            d = fmax(d, fabs(p->grad[j] - b[k][j]));
        }
        worst = fmax(worst, d / scale);
        k++;
    }
    return worst;
}

static float **copy_grads(incv3_graph *g)
{
    float **v = calloc(incv3_graph_param_count(g), sizeof *v);
    for (size_t i = 0, k = 0; i < incv3_graph_param_count(g); i++) {
        const incv3_param *p = incv3_graph_param(g, i);
        if (p->kind != INCV3_PARAM)
            continue;
        v[k] = malloc(sizeof(float) * p->numel);
        memcpy(v[k++], p->grad, sizeof(float) * p->numel);
    }
    return v;
}

static void free_grads(incv3_graph *g, float **v)
{
    for (size_t i = 0; i < incv3_graph_param_count(g); i++)
        free(v[i]);
    free(v);
}

static int check(incv3_dist *d, int ok, const char *what, double value)
{
    int bad = !ok;
    MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (incv3_dist_rank(d) == 0)
        printf("%s: %s (relative difference %.3g)\n", bad ? "FAIL" : "ok", what, value);
    return bad;
}

/* 1: every gradient is the mean of the ranks' gradients, with 64-byte buckets. */
static int test_allreduce(incv3_dist *d)
{
    const int rank = incv3_dist_rank(d), ranks = incv3_dist_size(d);
    incv3_graph *g = build("auto");
    incv3_error err;
    if (incv3_dist_attach(d, g, 0, 64, &err)) {
        fprintf(stderr, "test_dist: %s\n", err.msg);
        exit(1);
    }
    float x[LOCAL * C_IN * HW * HW];
    int64_t y[LOCAL];
    uint64_t s = 100 + (uint64_t)rank; /* each rank its own data */
    for (size_t i = 0; i < sizeof x / sizeof *x; i++)
        x[i] = (float)(2 * incv3_rng_uniform(&s) - 1);
    for (int i = 0; i < LOCAL; i++)
        y[i] = (int64_t)(incv3_rng_next(&s) % CLASSES);
    step(g, x, y, LOCAL, NULL);
    /* The ranks' own gradients, summed here with a plain MPI_Allreduce, against the bucketed path. */
    float **mine = copy_grads(g);
    size_t k = 0;
    for (size_t i = 0; i < incv3_graph_param_count(g); i++) {
        const incv3_param *p = incv3_graph_param(g, i);
        if (p->kind != INCV3_PARAM)
            continue;
        MPI_Allreduce(MPI_IN_PLACE, mine[k], (int)p->numel, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        for (size_t j = 0; j < p->numel; j++)
            mine[k][j] /= (float)ranks;
        k++;
    }
    if (incv3_dist_grads_finish(d, g, &err)) {
        fprintf(stderr, "test_dist: %s\n", err.msg);
        exit(1);
    }
    const double diff = grad_diff(g, mine);
    free_grads(g, mine);
    incv3_graph_free(g);
    return check(d, diff <= 1e-6, "bucketed gradient allreduce = mean of the ranks' gradients", diff);
}

/* 2: synchronized BatchNorm across the ranks' slices = one graph on the global batch. */
static int test_sync_bn(incv3_dist *d, const char *isa)
{
    const int rank = incv3_dist_rank(d), ranks = incv3_dist_size(d), n = LOCAL * ranks;
    const size_t per = (size_t)C_IN * HW * HW;
    float *x = malloc(sizeof(float) * per * (size_t)n), *whole = malloc(sizeof(float) * CLASSES * (size_t)n);
    float part[LOCAL * CLASSES];
    int64_t *y = malloc(sizeof(int64_t) * (size_t)n);
    uint64_t s = 7; /* the same global batch on every rank */
    for (size_t i = 0; i < per * (size_t)n; i++)
        x[i] = (float)(3 * incv3_rng_uniform(&s) - 1); /* a mean away from 0: the statistics matter */
    for (int i = 0; i < n; i++)
        y[i] = (int64_t)(incv3_rng_next(&s) % CLASSES);
    incv3_graph *one = build(isa), *g = build(isa);
    step(one, x, y, n, whole);
    float **ref = copy_grads(one);
    incv3_error err;
    if (incv3_dist_attach(d, g, 1, 1 << 20, &err)) {
        fprintf(stderr, "test_dist: %s\n", err.msg);
        exit(1);
    }
    step(g, x + per * (size_t)rank * LOCAL, y + rank * LOCAL, LOCAL, part);
    if (incv3_dist_grads_finish(d, g, &err)) {
        fprintf(stderr, "test_dist: %s\n", err.msg);
        exit(1);
    }
    double out_diff = 0, scale = 1e-30;
    for (int i = 0; i < LOCAL * CLASSES; i++) {
        out_diff = fmax(out_diff, fabs(part[i] - whole[rank * LOCAL * CLASSES + i]));
        scale = fmax(scale, fabs(whole[rank * LOCAL * CLASSES + i]));
    }
    out_diff /= scale;
    /* The running statistics follow the global batch too. */
    double run_diff = 0;
    for (size_t i = 0; i < incv3_graph_param_count(g); i++) {
        const incv3_param *p = incv3_graph_param(g, i), *q = incv3_graph_param(one, i);
        if (p->kind == INCV3_BUFFER)
            for (size_t j = 0; j < p->numel; j++)
                run_diff = fmax(run_diff, fabs(p->data[j] - q->data[j]) / fmax(1e-6, fabs(q->data[j])));
    }
    const double diff = grad_diff(g, ref);
    char what[160];
    snprintf(what, sizeof what, "--sync-bn logits on a slice = one process's on the global batch (%s kernels)", isa);
    int bad = check(d, out_diff <= 1e-5, what, out_diff);
    snprintf(what, sizeof what, "--sync-bn running statistics = one process's (%s kernels)", isa);
    bad |= check(d, run_diff <= 1e-5, what, run_diff);
    snprintf(what, sizeof what, "--sync-bn gradients = one process's on the global batch (%s kernels)", isa);
    bad |= check(d, diff <= 1e-5, what, diff);
    free_grads(one, ref);
    incv3_graph_free(one);
    incv3_graph_free(g);
    free(x), free(y), free(whole);
    return bad;
}

/* 3: every rank ends with rank 0's parameters. */
static int test_bcast(incv3_dist *d)
{
    incv3_graph *g = build("auto");
    incv3_graph_init_params(g, 1000 + (uint64_t)incv3_dist_rank(d));
    incv3_error err;
    if (incv3_dist_bcast_params(d, g, NULL, &err)) {
        fprintf(stderr, "test_dist: %s\n", err.msg);
        exit(1);
    }
    incv3_graph *want = build("auto");
    incv3_graph_init_params(want, 1000);
    double diff = 0;
    for (size_t i = 0; i < incv3_graph_param_count(g); i++) {
        const incv3_param *p = incv3_graph_param(g, i), *q = incv3_graph_param(want, i);
        for (size_t j = 0; j < p->numel; j++)
            diff = fmax(diff, fabs(p->data[j] - q->data[j]));
    }
    incv3_graph_free(g);
    incv3_graph_free(want);
    return check(d, diff == 0, "parameters broadcast from rank 0", diff);
}

int main(void)
{
    incv3_dist *d;
    incv3_error err;
    if (incv3_dist_init(&d, &err)) {
        fprintf(stderr, "test_dist: %s\n", err.msg);
        return 1;
    }
    if (incv3_dist_size(d) < 2) {
        fprintf(stderr, "test_dist: run it under mpirun with 2 or more ranks\n");
        incv3_dist_finalize(d);
        return 77;
    }
    int bad = test_allreduce(d);
    bad |= test_sync_bn(d, "auto");
    bad |= test_sync_bn(d, "scalar");
    bad |= test_bcast(d);
    incv3_dist_finalize(d);
    return bad;
}
