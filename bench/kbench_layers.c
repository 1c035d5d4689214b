/* kbench runners for the layers around the convolutions: max pooling (forward + backward, the training
 * pair) and the AdamW step. Each checks the variant against the reference once, then times it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kbench.h"
#include "kernel_set.h"
#include "layout/reorder.h"
#include "ref/ref_kernels.h"

typedef struct pool_call {
    incv3_pool_shape s;
    const incv3_kernel_set *blocked; /* NULL: the reference */
    const float *x;
    float *y, *dy, *dx;
} pool_call;

static void pool_run(void *ctx)
{
    pool_call *c = ctx;
    if (c->blocked) {
        c->blocked->maxpool_fwd(&c->s, c->x, c->y);
        c->blocked->maxpool_bwd(&c->s, c->x, c->dy, c->dx, 0);
        return;
    }
    maxpool_fwd_f32_ref__scalar(&c->s, c->x, c->y);
    maxpool_bwd_f32_ref__scalar(&c->s, c->x, c->dy, c->dx, 0);
}

/* Allocates the operands of a pooling call at batch n; the blocked ones from plain random data. */
static int pool_setup(pool_call *c, const kbench_shape *sh, int n, const incv3_kernel_set *blocked)
{
    memset(c, 0, sizeof *c);
    c->s = (incv3_pool_shape){.n = n, .c = sh->c, .h = sh->h, .w = sh->w, .kh = sh->kh, .kw = sh->kw,
                              .stride_h = sh->stride, .stride_w = sh->stride, .pad_top = sh->pad_h,
                              .pad_bottom = sh->pad_h, .pad_left = sh->pad_w, .pad_right = sh->pad_w};
    if (incv3_pool_shape_finish(&c->s))
        return -1;
    c->blocked = blocked;
    const incv3_dims xd = {n, sh->c, sh->h, sh->w}, yd = {n, sh->c, c->s.oh, c->s.ow};
    const size_t xc = incv3_dims_count(xd), yc = incv3_dims_count(yd);
    float *x = kbench_alloc_random(xc, 31), *dy = kbench_alloc_random(yc, 32);
    if (!x || !dy) {
        free(x), free(dy);
        return -1;
    }
    if (blocked) {
        float *xb = kbench_alloc_random(reorder_nchw8c_count(xd), 1), *dyb = kbench_alloc_random(reorder_nchw8c_count(yd), 1);
        if (xb && dyb) {
            reorder_nchw_to_nchw8c_f32(xd, x, xb);
            reorder_nchw_to_nchw8c_f32(yd, dy, dyb);
        }
        free(x), free(dy);
        x = xb, dy = dyb;
    }
    c->x = x, c->dy = dy;
    c->y = kbench_alloc_random(blocked ? reorder_nchw8c_count(yd) : yc, 33);
    c->dx = kbench_alloc_random(blocked ? reorder_nchw8c_count(xd) : xc, 34);
    return c->x && c->dy && c->y && c->dx ? 0 : -1;
}

static void pool_free(pool_call *c)
{
    free((void *)c->x), free(c->y), free(c->dy), free(c->dx);
}

/* dx of a call in NCHW (reordered from the blocked layout where needed). */
static float *pool_dx_plain(const pool_call *c)
{
    const incv3_dims xd = {c->s.n, c->s.c, c->s.h, c->s.w};
    float *p = malloc(incv3_dims_count(xd) * sizeof(float));
    if (p && c->blocked)
        reorder_nchw8c_to_nchw_f32(xd, c->dx, p);
    else if (p)
        memcpy(p, c->dx, incv3_dims_count(xd) * sizeof(float));
    return p;
}

int kbench_pool(const kbench_shape *sh, int batch, int repeat, const incv3_kernel_set *blocked, kbench_result *res)
{
    memset(res, 0, sizeof *res);
    pool_call ref, var;
    if (pool_setup(&ref, sh, 1, NULL) || pool_setup(&var, sh, 1, blocked)) {
        fprintf(stderr, "incv3-kbench: pool: the window does not fit %dx%dx%d, or out of memory\n", sh->c, sh->h,
                sh->w);
        pool_free(&ref), pool_free(&var);
        return -1;
    }
    res->ref_ms_per_image = 1e3 * kbench_seconds(pool_run, &ref);
    pool_run(&var);
    float *want = pool_dx_plain(&ref), *got = pool_dx_plain(&var);
    res->check_err = want && got ? kbench_rel_err(got, want, (size_t)sh->c * sh->h * sh->w) : 1.0;
    free(want), free(got);
    pool_free(&ref), pool_free(&var);
    /* Routing must match exactly: a maximum sent elsewhere is a wrong gradient, not rounding. */
    if (res->check_err != 0.0) {
        fprintf(stderr, "incv3-kbench: max pooling disagrees with the reference (relative error %.2e): not timed\n",
                res->check_err);
        return -1;
    }
    res->checked = 1;
    pool_call c;
    if (pool_setup(&c, sh, batch, blocked) || kbench_time(pool_run, &c, repeat, &res->median_ms, &res->min_ms)) {
        pool_free(&c);
        return -1;
    }
    /* One compare per window cell, forward and again in backward (which recomputes the argmax). */
    res->gflops = 2.0 * c.s.n * c.s.c * c.s.oh * c.s.ow * c.s.kh * c.s.kw / res->median_ms / 1e6;
    res->gbytes = 4.0 * (2.0 * c.s.n * c.s.c * c.s.h * c.s.w + 2.0 * c.s.n * c.s.c * c.s.oh * c.s.ow) /
                  res->median_ms / 1e6;
    pool_free(&c);
    return 0;
}

typedef struct adamw_call {
    size_t count;
    const incv3_kernel_set *vectorized; /* NULL: the reference */
    float *p, *g, *m, *v;
    int64_t step;
} adamw_call;

static void adamw_run(void *ctx)
{
    adamw_call *c = ctx;
    c->step++;
    if (c->vectorized) {
        c->vectorized->adamw(c->count, c->p, c->g, c->m, c->v, 1e-4f, 0.9f, 0.999f, 1e-8f, 0.01f, c->step);
        return;
    }
    adamw_f32_ref__scalar(c->count, c->p, c->g, c->m, c->v, 1e-4f, 0.9f, 0.999f, 1e-8f, 0.01f, c->step);
}

static int adamw_setup(adamw_call *c, size_t count, const incv3_kernel_set *vectorized)
{
    c->count = count, c->vectorized = vectorized, c->step = 0;
    c->p = kbench_alloc_random(count, 41), c->g = kbench_alloc_random(count, 42);
    c->m = kbench_alloc_random(count, 43), c->v = kbench_alloc_random(count, 44);
    if (c->v)
        for (size_t i = 0; i < count; i++)
            c->v[i] = c->v[i] * c->v[i]; /* second moments are not negative */
    return c->p && c->g && c->m && c->v ? 0 : -1;
}

static void adamw_free(adamw_call *c)
{
    free(c->p), free(c->g), free(c->m), free(c->v);
}

int kbench_adamw(size_t count, int repeat, const incv3_kernel_set *vectorized, kbench_result *res)
{
    memset(res, 0, sizeof *res);
    adamw_call ref, var;
    const size_t check_count = count < 100003 ? count : 100003;
    if (adamw_setup(&ref, check_count, NULL) || adamw_setup(&var, check_count, vectorized)) {
        adamw_free(&ref), adamw_free(&var);
        return -1;
    }
    adamw_run(&ref);
    adamw_run(&var);
    res->check_err = kbench_rel_err(var.p, ref.p, check_count);
    adamw_free(&ref), adamw_free(&var);
    if (!(res->check_err <= 1e-6)) {
        fprintf(stderr, "incv3-kbench: AdamW disagrees with the reference (relative error %.2e): not timed\n",
                res->check_err);
        return -1;
    }
    res->checked = 1;
    adamw_call c;
    if (adamw_setup(&c, count, 0) || kbench_seconds(adamw_run, &c) < 0) {
        adamw_free(&c);
        return -1;
    }
    res->ref_ms_per_image = 1e3 * kbench_seconds(adamw_run, &c); /* the reference over the same count */
    c.vectorized = vectorized;
    if (kbench_time(adamw_run, &c, repeat, &res->median_ms, &res->min_ms)) {
        adamw_free(&c);
        return -1;
    }
    res->gflops = 12.0 * (double)count / res->median_ms / 1e6; /* ~12 flops per parameter */
    res->gbytes = 28.0 * (double)count / res->median_ms / 1e6; /* p, m, v read and written, g read */
    adamw_free(&c);
    return 0;
}

typedef struct gemm_call {
    int m, n, k, b_trans;
    const incv3_kernel_set *vectorized; /* NULL: the reference */
    const float *a, *b;
    float *c;
} gemm_call;

static void gemm_run(void *ctx)
{
    gemm_call *g = ctx;
    if (g->vectorized) {
        g->vectorized->gemm(g->m, g->n, g->k, g->a, g->k, 0, g->b, g->b_trans ? g->k : g->n, g->b_trans, g->c, g->n, 0);
        return;
    }
    /* The reference's linear layer is the scalar GEMM of the engine: y = x w^T (no bias). */
    for (int i = 0; i < g->m; i++)
        for (int j = 0; j < g->n; j++) {
            double acc = 0;
            for (int p = 0; p < g->k; p++)
                acc += (double)g->a[(size_t)i * g->k + p] *
                       (g->b_trans ? g->b[(size_t)j * g->k + p] : g->b[(size_t)p * g->n + j]);
            g->c[(size_t)i * g->n + j] = (float)acc;
        }
}

int kbench_gemm(int m, int n, int k, int b_trans, int repeat, const incv3_kernel_set *vectorized, kbench_result *res)
{
    memset(res, 0, sizeof *res);
    gemm_call g = {m, n, k, b_trans, vectorized, kbench_alloc_random((size_t)m * k, 51),
                   kbench_alloc_random((size_t)k * n, 52), kbench_alloc_random((size_t)m * n, 53)};
    float *want = kbench_alloc_random((size_t)m * n, 54);
    int rc = -1;
    if (!g.a || !g.b || !g.c || !want)
        goto done;
    gemm_call ref = g;
    ref.vectorized = NULL, ref.c = want;
    res->ref_ms_per_image = 1e3 * kbench_seconds(gemm_run, &ref);
    gemm_run(&g);
    res->check_err = kbench_rel_err(g.c, want, (size_t)m * n);
    if (!(res->check_err <= 1e-5)) {
        fprintf(stderr, "incv3-kbench: GEMM disagrees with the reference (relative error %.2e): not timed\n",
                res->check_err);
        goto done;
    }
    res->checked = 1;
    if (kbench_time(gemm_run, &g, repeat, &res->median_ms, &res->min_ms))
        goto done;
    res->gflops = 2.0 * m * n * k / res->median_ms / 1e6;
    res->gbytes = 4.0 * ((double)m * k + (double)k * n + (double)m * n) / res->median_ms / 1e6;
    rc = 0;
done:
    free((void *)g.a), free((void *)g.b), free(g.c), free(want);
    return rc;
}

/* ---- the fused training chain: conv -> BatchNorm (batch statistics) -> ReLU ---- */

typedef struct cbr_call {
    incv3_conv_shape s;
    const incv3_kernel_set *vectorized; /* NULL: the reference */
    const incv3_conv_kernel *conv;      /* the direct forward of the vectorized ISA */
    const float *x, *w, *gamma, *beta;
    float *y, *z, *mean, *var, *dy, *dx, *dgamma, *dbeta;
    double *sum, *sumsq;
} cbr_call;

static void cbr_fwd_run(void *ctx)
{
    cbr_call *c = ctx;
    const incv3_dims d = {c->s.n, c->s.k, c->s.oh, c->s.ow};
    if (c->vectorized) {
        c->conv->fwd_stats(&c->s, c->x, c->w, c->y, c->sum, c->sumsq);
        c->vectorized->bn_relu_fwd_train(d, c->y, c->sum, c->sumsq, c->gamma, c->beta, 1e-5f, c->z, c->mean, c->var);
        return;
    }
    conv_fwd_f32_ref__scalar(&c->s, c->x, c->w, c->y);
    bn_fwd_train_f32_ref__scalar(d, c->y, c->gamma, c->beta, 1e-5f, c->z, c->mean, c->var);
    relu_fwd_f32_ref__scalar(incv3_dims_count(d), c->z, c->z);
}

static void cbr_bwd_run(void *ctx)
{
    cbr_call *c = ctx;
    const incv3_dims d = {c->s.n, c->s.k, c->s.oh, c->s.ow};
    if (c->vectorized) {
        c->vectorized->bn_relu_bwd_train(d, c->y, c->z, c->dy, c->gamma, c->mean, c->var, 1e-5f, c->dx, c->dgamma,
                                         c->dbeta, 0);
        return;
    }
    /* The reference path materializes the ReLU's gradient, then runs BatchNorm's backward. */
    relu_bwd_f32_ref__scalar(incv3_dims_count(d), c->z, c->dy, c->dx, 0);
    bn_bwd_train_f32_ref__scalar(d, c->y, c->dx, c->gamma, c->mean, c->var, 1e-5f, c->dx, c->dgamma, c->dbeta, 0);
}

static void cbr_free(cbr_call *c)
{
    free((void *)c->x), free((void *)c->w), free((void *)c->gamma), free((void *)c->beta);
    free(c->y), free(c->z), free(c->mean), free(c->var), free(c->dy), free(c->dx), free(c->dgamma), free(c->dbeta);
    free(c->sum), free(c->sumsq);
}

/* Operands at batch n in the variant's layout, from the same plain random data for both layouts. */
static int cbr_setup(cbr_call *c, const kbench_shape *sh, int n, const incv3_kernel_set *vectorized)
{
    memset(c, 0, sizeof *c);
    c->s = (incv3_conv_shape){.n = n, .c = sh->c, .h = sh->h, .w = sh->w, .k = sh->k, .kh = sh->kh, .kw = sh->kw,
                              .stride_h = sh->stride, .stride_w = sh->stride, .pad_top = sh->pad_h,
                              .pad_bottom = sh->pad_h, .pad_left = sh->pad_w, .pad_right = sh->pad_w};
    if (incv3_conv_shape_finish(&c->s))
        return -1;
    c->vectorized = vectorized;
    if (vectorized) {
        c->conv = incv3_conv_kernel_find(INCV3_CONV_FWD, vectorized->isa, vectorized->layout, "direct", &c->s);
        if (!c->conv || !c->conv->fwd_stats)
            return -1;
    }
    const incv3_dims xd = {n, sh->c, sh->h, sh->w}, yd = {n, sh->k, c->s.oh, c->s.ow};
    const size_t xc = vectorized ? reorder_nchw8c_count(xd) : incv3_dims_count(xd);
    const size_t yc = vectorized ? reorder_nchw8c_count(yd) : incv3_dims_count(yd);
    const size_t wc = vectorized ? reorder_oihw8i8o_count(sh->k, sh->c, sh->kh, sh->kw)
                                 : (size_t)sh->k * sh->c * sh->kh * sh->kw;
    float *x = kbench_alloc_random(incv3_dims_count(xd), 61), *w = kbench_alloc_random((size_t)sh->k * sh->c * sh->kh * sh->kw, 62);
    float *dy = kbench_alloc_random(incv3_dims_count(yd), 63);
    c->x = kbench_alloc_random(xc, 1), c->w = kbench_alloc_random(wc, 1), c->dy = kbench_alloc_random(yc, 1);
    c->y = kbench_alloc_random(yc, 64), c->z = kbench_alloc_random(yc, 65), c->dx = kbench_alloc_random(yc, 66);
    c->gamma = kbench_alloc_random((size_t)sh->k, 67), c->beta = kbench_alloc_random((size_t)sh->k, 68);
    c->mean = kbench_alloc_random((size_t)sh->k, 1), c->var = kbench_alloc_random((size_t)sh->k, 1);
    c->dgamma = kbench_alloc_random((size_t)sh->k, 1), c->dbeta = kbench_alloc_random((size_t)sh->k, 1);
    c->sum = malloc(sizeof(double) * (size_t)sh->k), c->sumsq = malloc(sizeof(double) * (size_t)sh->k);
    int ok = x && w && dy && c->x && c->w && c->dy && c->y && c->z && c->dx && c->gamma && c->beta && c->mean &&
             c->var && c->dgamma && c->dbeta && c->sum && c->sumsq;
    if (ok && vectorized) {
        reorder_nchw_to_nchw8c_f32(xd, x, (float *)c->x);
        reorder_oihw_to_oihw8i8o_f32(sh->k, sh->c, sh->kh, sh->kw, w, (float *)c->w);
        reorder_nchw_to_nchw8c_f32(yd, dy, c->dy);
    } else if (ok) {
        memcpy((void *)c->x, x, xc * sizeof(float)), memcpy((void *)c->w, w, wc * sizeof(float));
        memcpy(c->dy, dy, yc * sizeof(float));
    }
    free(x), free(w), free(dy);
    return ok ? 0 : -1;
}

/* The chain's output (fwd) or input gradient (bwd) in NCHW. */
static float *cbr_result(const cbr_call *c, int backward)
{
    const incv3_dims yd = {c->s.n, c->s.k, c->s.oh, c->s.ow};
    float *p = malloc(incv3_dims_count(yd) * sizeof(float));
    const float *src = backward ? c->dx : c->z;
    if (p && c->vectorized)
        reorder_nchw8c_to_nchw_f32(yd, src, p);
    else if (p)
        memcpy(p, src, incv3_dims_count(yd) * sizeof(float));
    return p;
}

int kbench_conv_bn_relu(const kbench_shape *sh, int batch, int repeat, const incv3_kernel_set *vectorized, int backward,
                        kbench_result *res)
{
    memset(res, 0, sizeof *res);
    cbr_call ref, var, c;
    int rc = -1;
    memset(&c, 0, sizeof c);
    if (cbr_setup(&ref, sh, 1, NULL) || cbr_setup(&var, sh, 1, vectorized)) {
        fprintf(stderr, "incv3-kbench: conv-bn-relu: the kernel does not fit, or out of memory\n");
        goto check_done;
    }
    cbr_fwd_run(&ref);
    cbr_fwd_run(&var);
    res->ref_ms_per_image = 1e3 * kbench_seconds(backward ? cbr_bwd_run : cbr_fwd_run, &ref);
    if (backward)
        cbr_bwd_run(&var);
    float *want = cbr_result(&ref, backward), *got = cbr_result(&var, backward);
    res->check_err = want && got ? kbench_rel_err(got, want, (size_t)sh->k * ref.s.oh * ref.s.ow) : 1.0;
    free(want), free(got);
    rc = 0;
check_done:
    cbr_free(&ref), cbr_free(&var);
    if (rc)
        return -1;
    if (!(res->check_err <= 1e-5)) {
        fprintf(stderr, "incv3-kbench: the conv-BN-ReLU chain disagrees with the reference (relative error %.2e): "
                        "not timed\n", res->check_err);
        return -1;
    }
    res->checked = 1;
    rc = -1;
    if (cbr_setup(&c, sh, batch, vectorized))
        goto done;
    cbr_fwd_run(&c); /* the backward reads the forward's statistics and outputs */
    if (kbench_time(backward ? cbr_bwd_run : cbr_fwd_run, &c, repeat, &res->median_ms, &res->min_ms))
        goto done;
    const double out = (double)c.s.n * c.s.k * c.s.oh * c.s.ow;
    /* Forward: the convolution's FLOPs (BN and ReLU add ~6 per output); backward: ~10 per output. */
    res->gflops = (backward ? 10.0 * out : 2.0 * incv3_conv_macs(&c.s)) / res->median_ms / 1e6;
    res->gbytes = 4.0 * (backward ? 4.0 * out : 2.0 * out) / res->median_ms / 1e6;
    rc = 0;
done:
    cbr_free(&c);
    return rc;
}
