/* kbench runners for the layers around the convolutions: max pooling (forward + backward, the training
 * pair) and the AdamW step. Each checks the variant against the reference once, then times it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avx2/avx2_kernels.h"
#include "avx2/avx2_layers.h"
#include "avx2/gemm_avx2.h"
#include "incv3_config.h"
#include "kbench.h"
#include "layout/reorder.h"
#include "ref/ref_kernels.h"

typedef struct pool_call {
    incv3_pool_shape s;
    int blocked;
    const float *x;
    float *y, *dy, *dx;
} pool_call;

static void pool_run(void *ctx)
{
    pool_call *c = ctx;
#if INCV3_HAVE_X86_64
    if (c->blocked) {
        maxpool_fwd_f32_blocked__avx2(&c->s, c->x, c->y);
        maxpool_bwd_f32_blocked__avx2(&c->s, c->x, c->dy, c->dx, 0);
        return;
    }
#endif
    maxpool_fwd_f32_ref__scalar(&c->s, c->x, c->y);
    maxpool_bwd_f32_ref__scalar(&c->s, c->x, c->dy, c->dx, 0);
}

/* Allocates the operands of a pooling call at batch n; the blocked ones from plain random data. */
static int pool_setup(pool_call *c, const kbench_shape *sh, int n, int blocked)
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

int kbench_pool(const kbench_shape *sh, int batch, int repeat, int blocked, kbench_result *res)
{
    memset(res, 0, sizeof *res);
    pool_call ref, var;
    if (pool_setup(&ref, sh, 1, 0) || pool_setup(&var, sh, 1, blocked)) {
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
    int vectorized;
    float *p, *g, *m, *v;
    int64_t step;
} adamw_call;

static void adamw_run(void *ctx)
{
    adamw_call *c = ctx;
    c->step++;
#if INCV3_HAVE_X86_64
    if (c->vectorized) {
        adamw_f32__avx2(c->count, c->p, c->g, c->m, c->v, 1e-4f, 0.9f, 0.999f, 1e-8f, 0.01f, c->step);
        return;
    }
#endif
    adamw_f32_ref__scalar(c->count, c->p, c->g, c->m, c->v, 1e-4f, 0.9f, 0.999f, 1e-8f, 0.01f, c->step);
}

static int adamw_setup(adamw_call *c, size_t count, int vectorized)
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

int kbench_adamw(size_t count, int repeat, int vectorized, kbench_result *res)
{
    memset(res, 0, sizeof *res);
    adamw_call ref, var;
    const size_t check_count = count < 100003 ? count : 100003;
    if (adamw_setup(&ref, check_count, 0) || adamw_setup(&var, check_count, vectorized)) {
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
    int m, n, k, b_trans, vectorized;
    const float *a, *b;
    float *c;
} gemm_call;

static void gemm_run(void *ctx)
{
    gemm_call *g = ctx;
#if INCV3_HAVE_X86_64
    if (g->vectorized) {
        gemm_f32_6x16__avx2(g->m, g->n, g->k, g->a, g->k, 0, g->b, g->b_trans ? g->k : g->n, g->b_trans, g->c, g->n,
                            0);
        return;
    }
#endif
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

int kbench_gemm(int m, int n, int k, int b_trans, int repeat, int vectorized, kbench_result *res)
{
    memset(res, 0, sizeof *res);
    gemm_call g = {m, n, k, b_trans, vectorized, kbench_alloc_random((size_t)m * k, 51),
                   kbench_alloc_random((size_t)k * n, 52), kbench_alloc_random((size_t)m * n, 53)};
    float *want = kbench_alloc_random((size_t)m * n, 54);
    int rc = -1;
    if (!g.a || !g.b || !g.c || !want)
        goto done;
    gemm_call ref = g;
    ref.vectorized = 0, ref.c = want;
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
