/* Tests of the scalar reference kernels: forwards against naive double-precision formulas, every backward
 * against central finite differences of its forward, the `accumulate` contract, dropout's mask, AdamW
 * against a double transcription of PyTorch's algorithm, and independence from the thread count.
 *
 * Finite differences use L = sum(R * forward(...)) with a fixed random R, so dL/dy = R is what each
 * backward receives; L is summed in double from two float forwards.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "ref_kernels.h"

/* Step and tolerances for float data of magnitude ~1: the float rounding of L divided by 2h stays far
 * below FD_ATOL, and the O(h^2) truncation of the smooth ops far below FD_RTOL. */
#define FD_H 1e-2
#define FD_RTOL 2e-2
#define FD_ATOL 1e-3
/* Tensors up to this size are probed at every element, larger ones at FD_PROBES random elements. */
#define FD_FULL 80
#define FD_PROBES 60

/* ---- test data ---- */

typedef struct rng {
    uint64_t state;
} rng;

static uint64_t rng_next(rng *r)
{
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rng_uniform(rng *r, double lo, double hi)
{
    return lo + (hi - lo) * ((double)(rng_next(r) >> 11) * 0x1.0p-53);
}

static float *new_floats(size_t count)
{
    float *p = malloc((count ? count : 1) * sizeof *p);
    assert_non_null(p);
    return p;
}

static void fill_uniform(float *a, size_t count, double lo, double hi, rng *r)
{
    for (size_t i = 0; i < count; i++)
        a[i] = (float)rng_uniform(r, lo, hi);
}

/* Values exactly `spacing` apart, shuffled: with spacing > 2*FD_H no probe can reorder two of them, so a
 * perturbation never changes which element of a window is the maximum. */
static void fill_distinct(float *a, size_t count, double spacing, rng *r)
{
    for (size_t i = 0; i < count; i++)
        a[i] = (float)(((double)i - 0.5 * (double)count) * spacing);
    for (size_t i = count; i > 1; i--) {
        size_t j = (size_t)(rng_next(r) % i);
        float t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

/* Magnitudes in [margin, 1] with random signs: keeps ReLU's inputs away from the kink at 0. */
static void fill_away_from_zero(float *a, size_t count, double margin, rng *r)
{
    for (size_t i = 0; i < count; i++) {
        double m = rng_uniform(r, margin, 1.0);
        a[i] = (float)((rng_next(r) & 1) ? m : -m);
    }
}

/* A destination an overwriting kernel must not read: any value it left in place would show as NaN. */
static void fill_nan(float *a, size_t count)
{
    for (size_t i = 0; i < count; i++)
        a[i] = NAN;
}

static double dot(const float *a, const float *b, size_t count)
{
    double s = 0.0;
    for (size_t i = 0; i < count; i++)
        s += (double)a[i] * b[i];
    return s;
}

/* ---- comparisons ---- */

static void expect_close(const char *what, size_t index, double got, double want, double rtol, double atol)
{
    const double err = fabs(got - want), limit = atol + rtol * fmax(fabs(got), fabs(want));
    if (!(err <= limit))
        fail_msg("%s[%zu]: got %.9g, want %.9g (|diff| %.3g > %.3g)", what, index, got, want, err, limit);
}

static void expect_all_close(const char *what, const float *got, const double *want, size_t count, double rtol,
                             double atol)
{
    for (size_t i = 0; i < count; i++)
        expect_close(what, i, got[i], want[i], rtol, atol);
}

/* ---- finite differences ---- */

typedef double (*objective_fn)(void *ctx);

/* Compares analytic[i] with the central difference of f in param[i]. The divisor is the difference of the
 * two float arguments actually used, not 2h, so the rounding of param +- h does not bias the estimate.
 * Fails too when every probe's gradient is ~0, since such a check could not catch anything. */
static void check_fd(const char *what, float *param, size_t count, const float *analytic, objective_fn f,
                     void *ctx, uint64_t seed)
{
    rng r = { seed };
    const int all = count <= FD_FULL;
    const size_t probes = all ? count : FD_PROBES;
    double largest = 0.0;
    for (size_t t = 0; t < probes; t++) {
        const size_t i = all ? t : (size_t)(rng_next(&r) % count);
        const float saved = param[i];
        const float up = (float)(saved + FD_H), down = (float)(saved - FD_H);
        param[i] = up;
        const double lup = f(ctx);
        param[i] = down;
        const double ldown = f(ctx);
        param[i] = saved;
        const double fd = (lup - ldown) / ((double)up - (double)down);
        expect_close(what, i, analytic[i], fd, FD_RTOL, FD_ATOL);
        largest = fmax(largest, fabs(fd));
    }
    if (!(largest > 10 * FD_ATOL))
        fail_msg("%s: all %zu probed gradients are ~0 (max %.3g); the check is vacuous", what, probes, largest);
}

/* ---- the accumulate flag ---- */

/* Runs a kernel writing an input gradient into dst with the given accumulate flag. */
typedef void (*grad_fn)(void *ctx, float *dst, int accumulate);

/* accumulate=0 must ignore the destination's contents and accumulate=1 must add onto them. */
static void check_accumulate(const char *what, size_t count, grad_fn run, void *ctx)
{
    rng r = { 0xACC0 + count };
    float *fresh = new_floats(count), *dst = new_floats(count), *base = new_floats(count);

    fill_nan(fresh, count);
    run(ctx, fresh, 0);
    size_t nonzero = 0;
    for (size_t i = 0; i < count; i++) {
        if (!isfinite(fresh[i]))
            fail_msg("%s: accumulate=0 left element %zu non-finite", what, i);
        nonzero += fresh[i] != 0.0f;
    }
    assert_true(nonzero > 0);

    fill_uniform(dst, count, 50.0, 60.0, &r);
    run(ctx, dst, 0);
    assert_memory_equal(dst, fresh, count * sizeof *dst);

    fill_uniform(base, count, -3.0, 3.0, &r);
    memcpy(dst, base, count * sizeof *dst);
    run(ctx, dst, 1);
    for (size_t i = 0; i < count; i++)
        expect_close(what, i, dst[i], (double)base[i] + fresh[i], 1e-6, 1e-6);

    free(fresh);
    free(dst);
    free(base);
}

/* ---- convolution ---- */

typedef struct conv_case {
    int n, c, h, w, k, kh, kw, sh, sw, pt, pl, pb, pr;
} conv_case;

static const conv_case conv_cases[] = {
    { 1, 3, 7, 9, 4, 3, 3, 1, 1, 1, 1, 1, 1 }, /* 3x3, stride 1, pad 1 */
    { 3, 5, 7, 9, 2, 3, 3, 2, 2, 1, 2, 0, 1 }, /* stride 2, asymmetric padding */
    { 1, 3, 7, 9, 3, 1, 7, 1, 1, 0, 3, 0, 3 }, /* 1x7, pad (0, 3) */
    { 3, 5, 9, 7, 2, 7, 1, 1, 1, 3, 0, 3, 0 }, /* 7x1, pad (3, 0) */
    { 3, 3, 7, 9, 2, 1, 3, 1, 1, 0, 1, 0, 1 }, /* 1x3 */
    { 1, 5, 7, 9, 3, 3, 1, 1, 1, 1, 0, 1, 0 }, /* 3x1 */
    { 1, 3, 9, 7, 2, 3, 3, 2, 2, 0, 0, 0, 0 }, /* 3x3 stride 2 valid, as Inception's reductions */
    { 3, 5, 7, 9, 4, 1, 1, 1, 1, 0, 0, 0, 0 }, /* 1x1 */
    { 1, 3, 8, 8, 2, 5, 5, 2, 1, 2, 0, 1, 2 }, /* 5x5, unequal strides, asymmetric padding */
};
#define N_CONV_CASES (sizeof conv_cases / sizeof conv_cases[0])

static incv3_conv_shape conv_shape(const conv_case *cc)
{
    incv3_conv_shape s = { .n = cc->n, .c = cc->c, .h = cc->h, .w = cc->w, .k = cc->k, .kh = cc->kh,
                           .kw = cc->kw, .stride_h = cc->sh, .stride_w = cc->sw, .pad_top = cc->pt,
                           .pad_left = cc->pl, .pad_bottom = cc->pb, .pad_right = cc->pr };
    assert_int_equal(incv3_conv_shape_finish(&s), 0);
    return s;
}

typedef struct conv_ctx {
    incv3_conv_shape s;
    size_t nx, nw, ny;
    float *x, *w, *y, *r;
} conv_ctx;

static conv_ctx conv_setup(const conv_case *cc, uint64_t seed)
{
    rng r = { seed };
    conv_ctx c = { .s = conv_shape(cc) };
    c.nx = (size_t)c.s.n * c.s.c * c.s.h * c.s.w;
    c.nw = (size_t)c.s.k * c.s.c * c.s.kh * c.s.kw;
    c.ny = (size_t)c.s.n * c.s.k * c.s.oh * c.s.ow;
    c.x = new_floats(c.nx);
    c.w = new_floats(c.nw);
    c.y = new_floats(c.ny);
    c.r = new_floats(c.ny);
    fill_uniform(c.x, c.nx, -1, 1, &r);
    fill_uniform(c.w, c.nw, -1, 1, &r);
    fill_uniform(c.r, c.ny, -1, 1, &r);
    return c;
}

static void conv_teardown(conv_ctx *c)
{
    free(c->x);
    free(c->w);
    free(c->y);
    free(c->r);
}

static double conv_objective(void *p)
{
    conv_ctx *c = p;
    conv_fwd_f32_ref__scalar(&c->s, c->x, c->w, c->y);
    return dot(c->r, c->y, c->ny);
}

static void test_conv_fwd_matches_naive(void **state)
{
    (void)state;
    for (size_t t = 0; t < N_CONV_CASES; t++) {
        conv_ctx c = conv_setup(&conv_cases[t], 100 + t);
        const incv3_conv_shape *s = &c.s;
        double *want = calloc(c.ny, sizeof *want);
        assert_non_null(want);
        for (int n = 0; n < s->n; n++)
            for (int k = 0; k < s->k; k++)
                for (int oh = 0; oh < s->oh; oh++)
                    for (int ow = 0; ow < s->ow; ow++) {
                        double sum = 0.0;
                        for (int ch = 0; ch < s->c; ch++)
                            for (int i = 0; i < s->kh; i++)
                                for (int j = 0; j < s->kw; j++) {
                                    int ih = oh * s->stride_h - s->pad_top + i;
                                    int iw = ow * s->stride_w - s->pad_left + j;
                                    if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w)
                                        continue;
                                    sum += (double)c.w[((k * s->c + ch) * s->kh + i) * s->kw + j] *
                                           c.x[((n * s->c + ch) * s->h + ih) * s->w + iw];
                                }
                        want[((n * s->k + k) * s->oh + oh) * s->ow + ow] = sum;
                    }
        fill_nan(c.y, c.ny);
        conv_fwd_f32_ref__scalar(s, c.x, c.w, c.y);
        expect_all_close("conv y", c.y, want, c.ny, 1e-6, 1e-6);
        free(want);
        conv_teardown(&c);
    }
}

static void test_conv_bwd_data_fd(void **state)
{
    (void)state;
    for (size_t t = 0; t < N_CONV_CASES; t++) {
        conv_ctx c = conv_setup(&conv_cases[t], 200 + t);
        float *dx = new_floats(c.nx);
        fill_nan(dx, c.nx);
        conv_bwd_data_f32_ref__scalar(&c.s, c.r, c.w, dx, 0);
        check_fd("conv dx", c.x, c.nx, dx, conv_objective, &c, 300 + t);
        free(dx);
        conv_teardown(&c);
    }
}

static void test_conv_bwd_weights_fd(void **state)
{
    (void)state;
    for (size_t t = 0; t < N_CONV_CASES; t++) {
        conv_ctx c = conv_setup(&conv_cases[t], 400 + t);
        float *dw = new_floats(c.nw);
        fill_nan(dw, c.nw);
        conv_bwd_weights_f32_ref__scalar(&c.s, c.x, c.r, dw);
        check_fd("conv dw", c.w, c.nw, dw, conv_objective, &c, 500 + t);
        free(dw);
        conv_teardown(&c);
    }
}

static void conv_bwd_data_run(void *p, float *dst, int accumulate)
{
    conv_ctx *c = p;
    conv_bwd_data_f32_ref__scalar(&c->s, c->r, c->w, dst, accumulate);
}

/* ---- batch normalization ---- */

static const incv3_dims bn_cases[] = { { 3, 5, 3, 5 }, { 1, 3, 7, 9 }, { 3, 2, 2, 3 } };
#define N_BN_CASES (sizeof bn_cases / sizeof bn_cases[0])

typedef struct bn_ctx {
    incv3_dims d;
    size_t count;
    int train;
    float eps;
    float *x, *gamma, *beta, *mean, *var, *y, *r;
    float *scratch_mean, *scratch_var; /* the training forward's statistics while probing */
} bn_ctx;

static bn_ctx bn_setup(incv3_dims d, int train, uint64_t seed)
{
    rng r = { seed };
    bn_ctx b = { .d = d, .count = incv3_dims_count(d), .train = train, .eps = 1e-3f };
    const size_t c = (size_t)d.c;
    b.x = new_floats(b.count);
    b.y = new_floats(b.count);
    b.r = new_floats(b.count);
    b.gamma = new_floats(c);
    b.beta = new_floats(c);
    b.mean = new_floats(c);
    b.var = new_floats(c);
    b.scratch_mean = new_floats(c);
    b.scratch_var = new_floats(c);
    /* Offset and scaled per channel so mean and variance differ from 0 and 1. */
    for (int n = 0; n < d.n; n++)
        for (int ch = 0; ch < d.c; ch++)
            for (int i = 0; i < d.h * d.w; i++)
                b.x[((size_t)n * d.c + ch) * d.h * d.w + i] = (float)(0.5 * ch - 0.7 + (1.0 + 0.3 * ch) *
                                                                                          rng_uniform(&r, -1, 1));
    fill_uniform(b.r, b.count, -1, 1, &r);
    fill_uniform(b.gamma, c, 0.5, 1.5, &r);
    fill_uniform(b.beta, c, -0.5, 0.5, &r);
    fill_uniform(b.mean, c, -0.5, 0.5, &r);
    fill_uniform(b.var, c, 0.3, 2.0, &r);
    return b;
}

static void bn_teardown(bn_ctx *b)
{
    free(b->x);
    free(b->y);
    free(b->r);
    free(b->gamma);
    free(b->beta);
    free(b->mean);
    free(b->var);
    free(b->scratch_mean);
    free(b->scratch_var);
}

static double bn_objective(void *p)
{
    bn_ctx *b = p;
    if (b->train)
        bn_fwd_train_f32_ref__scalar(b->d, b->x, b->gamma, b->beta, b->eps, b->y, b->scratch_mean,
                                     b->scratch_var);
    else
        bn_fwd_infer_f32_ref__scalar(b->d, b->x, b->gamma, b->beta, b->mean, b->var, b->eps, b->y);
    return dot(b->r, b->y, b->count);
}

static size_t bn_index(incv3_dims d, int n, int c, int i)
{
    return ((size_t)n * d.c + c) * d.h * d.w + i;
}

static void test_bn_fwd_train_statistics(void **state)
{
    (void)state;
    for (size_t t = 0; t < N_BN_CASES; t++) {
        bn_ctx b = bn_setup(bn_cases[t], 1, 600 + t);
        const incv3_dims d = b.d;
        const double m = (double)d.n * d.h * d.w;
        fill_nan(b.y, b.count);
        bn_fwd_train_f32_ref__scalar(d, b.x, b.gamma, b.beta, b.eps, b.y, b.mean, b.var);
        for (int c = 0; c < d.c; c++) {
            double mu = 0.0, v = 0.0, ymu = 0.0, yv = 0.0;
            for (int n = 0; n < d.n; n++)
                for (int i = 0; i < d.h * d.w; i++)
                    mu += b.x[bn_index(d, n, c, i)] / m;
            for (int n = 0; n < d.n; n++)
                for (int i = 0; i < d.h * d.w; i++)
                    v += pow(b.x[bn_index(d, n, c, i)] - mu, 2) / m;
            expect_close("bn mean", (size_t)c, b.mean[c], mu, 1e-6, 1e-7);
            expect_close("bn var (biased)", (size_t)c, b.var[c], v, 1e-6, 1e-7);

            const double invstd = 1.0 / sqrt(v + b.eps);
            for (int n = 0; n < d.n; n++)
                for (int i = 0; i < d.h * d.w; i++) {
                    const size_t at = bn_index(d, n, c, i);
                    expect_close("bn y", at, b.y[at], b.gamma[c] * (b.x[at] - mu) * invstd + b.beta[c], 1e-6,
                                 1e-6);
                    ymu += b.y[at] / m;
                }
            for (int n = 0; n < d.n; n++)
                for (int i = 0; i < d.h * d.w; i++)
                    yv += pow(b.y[bn_index(d, n, c, i)] - ymu, 2) / m;
            /* The output has mean beta and variance gamma^2 * var / (var + eps). */
            expect_close("bn mean(y)", (size_t)c, ymu, b.beta[c], 1e-5, 1e-6);
            expect_close("bn var(y)", (size_t)c, yv, pow(b.gamma[c], 2) * v / (v + b.eps), 1e-5, 1e-7);
        }
        bn_teardown(&b);
    }
}

static void test_bn_fwd_infer_matches_naive(void **state)
{
    (void)state;
    bn_ctx b = bn_setup(bn_cases[0], 0, 650);
    const incv3_dims d = b.d;
    fill_nan(b.y, b.count);
    bn_fwd_infer_f32_ref__scalar(d, b.x, b.gamma, b.beta, b.mean, b.var, b.eps, b.y);
    for (int n = 0; n < d.n; n++)
        for (int c = 0; c < d.c; c++)
            for (int i = 0; i < d.h * d.w; i++) {
                const size_t at = bn_index(d, n, c, i);
                const double want = b.gamma[c] * ((double)b.x[at] - b.mean[c]) / sqrt((double)b.var[c] + b.eps) +
                                    b.beta[c];
                expect_close("bn infer y", at, b.y[at], want, 1e-6, 1e-6);
            }
    bn_teardown(&b);
}

/* Both modes: the training forward re-derives the batch statistics from the perturbed x on every probe. */
static void bn_fd(int train)
{
    for (size_t t = 0; t < N_BN_CASES; t++) {
        bn_ctx b = bn_setup(bn_cases[t], train, 700 + t);
        const size_t c = (size_t)b.d.c;
        float *dx = new_floats(b.count), *dgamma = new_floats(c), *dbeta = new_floats(c);
        fill_nan(dx, b.count);
        fill_nan(dgamma, c);
        fill_nan(dbeta, c);
        if (train) {
            bn_fwd_train_f32_ref__scalar(b.d, b.x, b.gamma, b.beta, b.eps, b.y, b.mean, b.var);
            bn_bwd_train_f32_ref__scalar(b.d, b.x, b.r, b.gamma, b.mean, b.var, b.eps, dx, dgamma, dbeta, 0);
        } else {
            bn_bwd_infer_f32_ref__scalar(b.d, b.x, b.r, b.gamma, b.mean, b.var, b.eps, dx, dgamma, dbeta, 0);
        }
        check_fd(train ? "bn train dx" : "bn infer dx", b.x, b.count, dx, bn_objective, &b, 800 + t);
        check_fd(train ? "bn train dgamma" : "bn infer dgamma", b.gamma, c, dgamma, bn_objective, &b, 0);
        check_fd(train ? "bn train dbeta" : "bn infer dbeta", b.beta, c, dbeta, bn_objective, &b, 0);
        free(dx);
        free(dgamma);
        free(dbeta);
        bn_teardown(&b);
    }
}

static void test_bn_bwd_train_fd(void **state)
{
    (void)state;
    bn_fd(1);
}

static void test_bn_bwd_infer_fd(void **state)
{
    (void)state;
    bn_fd(0);
}

typedef struct bn_grad_ctx {
    bn_ctx *b;
    float *dgamma, *dbeta;
} bn_grad_ctx;

static void bn_bwd_train_run(void *p, float *dst, int accumulate)
{
    bn_grad_ctx *g = p;
    bn_bwd_train_f32_ref__scalar(g->b->d, g->b->x, g->b->r, g->b->gamma, g->b->mean, g->b->var, g->b->eps, dst,
                                 g->dgamma, g->dbeta, accumulate);
}

static void bn_bwd_infer_run(void *p, float *dst, int accumulate)
{
    bn_grad_ctx *g = p;
    bn_bwd_infer_f32_ref__scalar(g->b->d, g->b->x, g->b->r, g->b->gamma, g->b->mean, g->b->var, g->b->eps, dst,
                                 g->dgamma, g->dbeta, accumulate);
}

/* ---- ReLU ---- */

typedef struct relu_ctx {
    size_t count;
    float *x, *y, *r;
} relu_ctx;

static double relu_objective(void *p)
{
    relu_ctx *c = p;
    relu_fwd_f32_ref__scalar(c->count, c->x, c->y);
    return dot(c->r, c->y, c->count);
}

static void relu_run(void *p, float *dst, int accumulate)
{
    relu_ctx *c = p;
    relu_fwd_f32_ref__scalar(c->count, c->x, c->y);
    relu_bwd_f32_ref__scalar(c->count, c->y, c->r, dst, accumulate);
}

static relu_ctx relu_setup(size_t count, uint64_t seed)
{
    rng r = { seed };
    relu_ctx c = { .count = count, .x = new_floats(count), .y = new_floats(count), .r = new_floats(count) };
    fill_away_from_zero(c.x, count, 5 * FD_H, &r);
    fill_uniform(c.r, count, -1, 1, &r);
    return c;
}

static void relu_teardown(relu_ctx *c)
{
    free(c->x);
    free(c->y);
    free(c->r);
}

static void test_relu(void **state)
{
    (void)state;
    relu_ctx c = relu_setup(3 * 5 * 7 * 9, 900);
    fill_nan(c.y, c.count);
    relu_fwd_f32_ref__scalar(c.count, c.x, c.y);
    for (size_t i = 0; i < c.count; i++)
        expect_close("relu y", i, c.y[i], c.x[i] > 0 ? c.x[i] : 0.0, 0, 0);

    float *dx = new_floats(c.count);
    fill_nan(dx, c.count);
    relu_bwd_f32_ref__scalar(c.count, c.y, c.r, dx, 0);
    check_fd("relu dx", c.x, c.count, dx, relu_objective, &c, 901);
    free(dx);
    relu_teardown(&c);
}

/* ---- pooling ---- */

typedef struct pool_case {
    int n, c, h, w, kh, kw, sh, sw, pt, pl, pb, pr;
} pool_case;

static const pool_case pool_cases[] = {
    { 1, 3, 9, 7, 3, 3, 2, 2, 0, 0, 0, 0 }, /* 3x3 stride 2, as Inception's max pools */
    { 3, 5, 7, 9, 3, 3, 1, 1, 1, 1, 1, 1 }, /* 3x3 stride 1 pad 1, as Inception's average pools */
    { 1, 3, 7, 9, 2, 3, 2, 1, 1, 2, 0, 1 }, /* asymmetric padding, unequal strides */
    { 3, 3, 7, 9, 3, 3, 2, 2, 1, 1, 1, 1 }, /* stride 2 with padding */
};
#define N_POOL_CASES (sizeof pool_cases / sizeof pool_cases[0])

static incv3_pool_shape pool_shape(const pool_case *pc)
{
    incv3_pool_shape s = { .n = pc->n, .c = pc->c, .h = pc->h, .w = pc->w, .kh = pc->kh, .kw = pc->kw,
                           .stride_h = pc->sh, .stride_w = pc->sw, .pad_top = pc->pt, .pad_left = pc->pl,
                           .pad_bottom = pc->pb, .pad_right = pc->pr };
    assert_int_equal(incv3_pool_shape_finish(&s), 0);
    return s;
}

typedef struct pool_ctx {
    incv3_pool_shape s;
    int max;
    size_t nx, ny;
    float *x, *y, *r;
} pool_ctx;

static pool_ctx pool_setup(const pool_case *pc, int max, uint64_t seed)
{
    rng r = { seed };
    pool_ctx c = { .s = pool_shape(pc), .max = max };
    c.nx = (size_t)c.s.n * c.s.c * c.s.h * c.s.w;
    c.ny = (size_t)c.s.n * c.s.c * c.s.oh * c.s.ow;
    c.x = new_floats(c.nx);
    c.y = new_floats(c.ny);
    c.r = new_floats(c.ny);
    fill_distinct(c.x, c.nx, 5 * FD_H, &r);
    fill_uniform(c.r, c.ny, -1, 1, &r);
    return c;
}

static void pool_teardown(pool_ctx *c)
{
    free(c->x);
    free(c->y);
    free(c->r);
}

static void pool_forward(pool_ctx *c)
{
    if (c->max)
        maxpool_fwd_f32_ref__scalar(&c->s, c->x, c->y);
    else
        avgpool_fwd_f32_ref__scalar(&c->s, c->x, c->y);
}

static double pool_objective(void *p)
{
    pool_ctx *c = p;
    pool_forward(c);
    return dot(c->r, c->y, c->ny);
}

static void pool_run(void *p, float *dst, int accumulate)
{
    pool_ctx *c = p;
    if (c->max)
        maxpool_bwd_f32_ref__scalar(&c->s, c->x, c->r, dst, accumulate);
    else
        avgpool_bwd_f32_ref__scalar(&c->s, c->r, dst, accumulate);
}

/* Max with padded cells as -infinity, or sum over the padded window divided by kh*kw. */
static double naive_pool_at(const pool_ctx *c, int plane, int oh, int ow)
{
    const incv3_pool_shape *s = &c->s;
    double acc = c->max ? -INFINITY : 0.0;
    for (int i = 0; i < s->kh; i++)
        for (int j = 0; j < s->kw; j++) {
            int ih = oh * s->stride_h - s->pad_top + i, iw = ow * s->stride_w - s->pad_left + j;
            double v = (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w)
                           ? (c->max ? -INFINITY : 0.0)
                           : c->x[((size_t)plane * s->h + ih) * s->w + iw];
            acc = c->max ? fmax(acc, v) : acc + v;
        }
    return c->max ? acc : acc / (s->kh * s->kw);
}

static void pool_fwd_check(int max)
{
    for (size_t t = 0; t < N_POOL_CASES; t++) {
        pool_ctx c = pool_setup(&pool_cases[t], max, 1000 + t);
        fill_nan(c.y, c.ny);
        pool_forward(&c);
        for (int p = 0; p < c.s.n * c.s.c; p++)
            for (int oh = 0; oh < c.s.oh; oh++)
                for (int ow = 0; ow < c.s.ow; ow++) {
                    const size_t at = ((size_t)p * c.s.oh + oh) * c.s.ow + ow;
                    expect_close(max ? "maxpool y" : "avgpool y", at, c.y[at], naive_pool_at(&c, p, oh, ow),
                                 max ? 0 : 1e-6, max ? 0 : 1e-6);
                }
        pool_teardown(&c);
    }
}

static void pool_bwd_fd(int max)
{
    for (size_t t = 0; t < N_POOL_CASES; t++) {
        pool_ctx c = pool_setup(&pool_cases[t], max, 1100 + t);
        float *dx = new_floats(c.nx);
        fill_nan(dx, c.nx);
        pool_run(&c, dx, 0);
        check_fd(max ? "maxpool dx" : "avgpool dx", c.x, c.nx, dx, pool_objective, &c, 1200 + t);
        free(dx);
        pool_teardown(&c);
    }
}

static void test_maxpool_fwd_matches_naive(void **state)
{
    (void)state;
    pool_fwd_check(1);
}

static void test_avgpool_fwd_matches_naive(void **state)
{
    (void)state;
    pool_fwd_check(0);
}

static void test_maxpool_bwd_fd(void **state)
{
    (void)state;
    pool_bwd_fd(1);
}

static void test_avgpool_bwd_fd(void **state)
{
    (void)state;
    pool_bwd_fd(0);
}

/* Ties go to the first maximum in row-major order; padding never wins over real (even negative) cells. */
static void test_maxpool_ties_and_padding(void **state)
{
    (void)state;
    /* One 3x3 window with equal maxima at (0,2) and (2,0): (0,2) comes first in row-major order. */
    incv3_pool_shape s = { .n = 1, .c = 1, .h = 3, .w = 3, .kh = 3, .kw = 3, .stride_h = 1, .stride_w = 1 };
    assert_int_equal(incv3_pool_shape_finish(&s), 0);
    const float x[9] = { 0, 1, 5, 2, -1, 3, 5, 4, 0 };
    float y, dy = 2.5f, dx[9];
    maxpool_fwd_f32_ref__scalar(&s, x, &y);
    assert_true(y == 5.0f);
    maxpool_bwd_f32_ref__scalar(&s, x, &dy, dx, 0);
    for (int i = 0; i < 9; i++)
        assert_true(dx[i] == (i == 2 ? 2.5f : 0.0f));

    /* All-negative input with padding 1: every output must be a real cell, and a flat input routes each
     * window's gradient to its first real cell. */
    incv3_pool_shape p = { .n = 1, .c = 1, .h = 2, .w = 2, .kh = 3, .kw = 3, .stride_h = 1, .stride_w = 1,
                           .pad_top = 1, .pad_left = 1, .pad_bottom = 1, .pad_right = 1 };
    assert_int_equal(incv3_pool_shape_finish(&p), 0);
    const float flat[4] = { -7, -7, -7, -7 };
    float py[4], pdy[4] = { 1, 10, 100, 1000 }, pdx[4];
    maxpool_fwd_f32_ref__scalar(&p, flat, py);
    for (int i = 0; i < 4; i++)
        assert_true(py[i] == -7.0f);
    maxpool_bwd_f32_ref__scalar(&p, flat, pdy, pdx, 0);
    /* Every window covers the whole 2x2 input, so all four gradients land on cell (0,0). */
    assert_true(pdx[0] == 1111.0f && pdx[1] == 0.0f && pdx[2] == 0.0f && pdx[3] == 0.0f);
}

/* count_include_pad=True: a corner window of a 3x3/pad 1 pool over ones sees 4 real cells of 9. */
static void test_avgpool_counts_padding(void **state)
{
    (void)state;
    incv3_pool_shape s = { .n = 1, .c = 1, .h = 4, .w = 5, .kh = 3, .kw = 3, .stride_h = 1, .stride_w = 1,
                           .pad_top = 1, .pad_left = 1, .pad_bottom = 1, .pad_right = 1 };
    assert_int_equal(incv3_pool_shape_finish(&s), 0);
    float x[20], y[20];
    for (int i = 0; i < 20; i++)
        x[i] = 1.0f;
    avgpool_fwd_f32_ref__scalar(&s, x, y);
    expect_close("corner", 0, y[0], 4.0 / 9.0, 1e-7, 0);
    expect_close("edge", 1, y[1], 6.0 / 9.0, 1e-7, 0);
    expect_close("interior", 6, y[6], 1.0, 1e-7, 0);
}

/* ---- linear ---- */

typedef struct linear_ctx {
    int n, in, out;
    float *x, *w, *b, *y, *r;
} linear_ctx;

static linear_ctx linear_setup(int n, int in, int out, uint64_t seed)
{
    rng r = { seed };
    linear_ctx c = { .n = n, .in = in, .out = out };
    c.x = new_floats((size_t)n * in);
    c.w = new_floats((size_t)out * in);
    c.b = new_floats((size_t)out);
    c.y = new_floats((size_t)n * out);
    c.r = new_floats((size_t)n * out);
    fill_uniform(c.x, (size_t)n * in, -1, 1, &r);
    fill_uniform(c.w, (size_t)out * in, -1, 1, &r);
    fill_uniform(c.b, (size_t)out, -1, 1, &r);
    fill_uniform(c.r, (size_t)n * out, -1, 1, &r);
    return c;
}

static void linear_teardown(linear_ctx *c)
{
    free(c->x);
    free(c->w);
    free(c->b);
    free(c->y);
    free(c->r);
}

static double linear_objective(void *p)
{
    linear_ctx *c = p;
    linear_fwd_f32_ref__scalar(c->n, c->in, c->out, c->x, c->w, c->b, c->y);
    return dot(c->r, c->y, (size_t)c->n * c->out);
}

static void linear_run(void *p, float *dst, int accumulate)
{
    linear_ctx *c = p;
    linear_bwd_data_f32_ref__scalar(c->n, c->in, c->out, c->r, c->w, dst, accumulate);
}

static const int linear_cases[][3] = { { 3, 7, 5 }, { 1, 13, 4 }, { 3, 40, 9 } };

static void test_linear(void **state)
{
    (void)state;
    for (size_t t = 0; t < sizeof linear_cases / sizeof linear_cases[0]; t++) {
        linear_ctx c = linear_setup(linear_cases[t][0], linear_cases[t][1], linear_cases[t][2], 1300 + t);
        const size_t nx = (size_t)c.n * c.in, nw = (size_t)c.out * c.in;

        fill_nan(c.y, (size_t)c.n * c.out);
        linear_fwd_f32_ref__scalar(c.n, c.in, c.out, c.x, c.w, c.b, c.y);
        for (int s = 0; s < c.n; s++)
            for (int o = 0; o < c.out; o++) {
                double want = c.b[o];
                for (int i = 0; i < c.in; i++)
                    want += (double)c.x[s * c.in + i] * c.w[o * c.in + i];
                expect_close("linear y", (size_t)(s * c.out + o), c.y[s * c.out + o], want, 1e-6, 1e-6);
            }

        float *dx = new_floats(nx), *dw = new_floats(nw), *db = new_floats((size_t)c.out);
        fill_nan(dx, nx);
        fill_nan(dw, nw);
        fill_nan(db, (size_t)c.out);
        linear_bwd_data_f32_ref__scalar(c.n, c.in, c.out, c.r, c.w, dx, 0);
        linear_bwd_weights_f32_ref__scalar(c.n, c.in, c.out, c.x, c.r, dw, db);
        check_fd("linear dx", c.x, nx, dx, linear_objective, &c, 1400 + t);
        check_fd("linear dw", c.w, nw, dw, linear_objective, &c, 1500 + t);
        check_fd("linear db", c.b, (size_t)c.out, db, linear_objective, &c, 0);
        free(dx);
        free(dw);
        free(db);
        linear_teardown(&c);
    }
}

/* ---- dropout ---- */

typedef struct dropout_ctx {
    size_t count;
    float p;
    uint64_t seed;
    float *x, *y, *r;
    uint8_t *mask;
} dropout_ctx;

static dropout_ctx dropout_setup(size_t count, float p, uint64_t seed)
{
    rng r = { seed + 1 };
    dropout_ctx c = { .count = count, .p = p, .seed = seed };
    c.x = new_floats(count);
    c.y = new_floats(count);
    c.r = new_floats(count);
    c.mask = malloc(count);
    assert_non_null(c.mask);
    fill_uniform(c.x, count, -1, 1, &r);
    fill_uniform(c.r, count, -1, 1, &r);
    return c;
}

static void dropout_teardown(dropout_ctx *c)
{
    free(c->x);
    free(c->y);
    free(c->r);
    free(c->mask);
}

static double dropout_objective(void *p)
{
    dropout_ctx *c = p;
    dropout_fwd_f32_ref__scalar(c->count, c->x, c->p, c->seed, c->mask, c->y);
    return dot(c->r, c->y, c->count);
}

static void dropout_run(void *p, float *dst, int accumulate)
{
    dropout_ctx *c = p;
    dropout_fwd_f32_ref__scalar(c->count, c->x, c->p, c->seed, c->mask, c->y);
    dropout_bwd_f32_ref__scalar(c->count, c->r, c->mask, c->p, dst, accumulate);
}

static void test_dropout_bwd_fd(void **state)
{
    (void)state;
    dropout_ctx c = dropout_setup(3 * 5 * 7, 0.3f, 77);
    float *dx = new_floats(c.count);
    dropout_fwd_f32_ref__scalar(c.count, c.x, c.p, c.seed, c.mask, c.y);
    fill_nan(dx, c.count);
    dropout_bwd_f32_ref__scalar(c.count, c.r, c.mask, c.p, dx, 0);
    check_fd("dropout dx", c.x, c.count, dx, dropout_objective, &c, 1600);
    free(dx);
    dropout_teardown(&c);
}

static void test_dropout_mask(void **state)
{
    (void)state;
    const size_t count = 100000;
    const float p = 0.3f;
    dropout_ctx a = dropout_setup(count, p, 1234), b = dropout_setup(count, p, 1234);

    dropout_fwd_f32_ref__scalar(count, a.x, p, 1234, a.mask, a.y);
    dropout_fwd_f32_ref__scalar(count, a.x, p, 1234, b.mask, b.y);
    assert_memory_equal(a.mask, b.mask, count);
    assert_memory_equal(a.y, b.y, count * sizeof *a.y);

    size_t dropped = 0;
    for (size_t i = 0; i < count; i++) {
        assert_true(a.mask[i] == 0 || a.mask[i] == 1);
        dropped += a.mask[i] == 0;
        expect_close("dropout y", i, a.y[i], a.mask[i] ? a.x[i] / (1.0 - p) : 0.0, 1e-6, 0);
    }
    /* The rate's standard deviation is sqrt(p(1-p)/count) ~ 0.0015; 0.01 is about 3% of p. */
    const double rate = (double)dropped / count;
    if (fabs(rate - p) > 0.01)
        fail_msg("dropout rate %.4f, expected %.2f", rate, p);

    /* Another seed gives another mask with the same rate. */
    dropout_fwd_f32_ref__scalar(count, a.x, p, 1235, b.mask, b.y);
    size_t differ = 0, dropped2 = 0;
    for (size_t i = 0; i < count; i++) {
        differ += a.mask[i] != b.mask[i];
        dropped2 += b.mask[i] == 0;
    }
    assert_true(differ > count / 4);
    assert_true(fabs((double)dropped2 / count - p) <= 0.01);

    /* Neighbouring elements must not be correlated (a counter hash that ignored low index bits would be). */
    size_t both = 0;
    for (size_t i = 0; i + 1 < count; i++)
        both += a.mask[i] == 0 && a.mask[i + 1] == 0;
    assert_true(fabs((double)both / (count - 1) - (double)p * p) <= 0.01);

    /* p = 0 keeps everything and is the identity. */
    dropout_fwd_f32_ref__scalar(count, a.x, 0.0f, 99, b.mask, b.y);
    for (size_t i = 0; i < count; i++)
        assert_true(b.mask[i] == 1);
    assert_memory_equal(b.y, a.x, count * sizeof *a.x);

    dropout_teardown(&a);
    dropout_teardown(&b);
}

/* ---- softmax cross-entropy ---- */

typedef struct xent_ctx {
    int n, k;
    float smoothing, scale;
    float *logits;
    const int64_t *labels;
} xent_ctx;

static double xent_objective(void *p)
{
    xent_ctx *c = p;
    return c->scale * softmax_xent_f32_ref__scalar(c->n, c->k, c->logits, c->labels, c->smoothing, c->scale, NULL);
}

/* Direct transcription without the max shift (safe for logits of magnitude ~3). */
static double naive_xent(int n, int k, const float *z, const int64_t *labels, double smoothing)
{
    double total = 0.0;
    for (int s = 0; s < n; s++) {
        double se = 0.0;
        for (int c = 0; c < k; c++)
            se += exp(z[s * k + c]);
        for (int c = 0; c < k; c++) {
            const double q = (1.0 - smoothing) * (c == labels[s]) + smoothing / k;
            total -= q * log(exp(z[s * k + c]) / se);
        }
    }
    return total / n;
}

static void test_softmax_xent(void **state)
{
    (void)state;
    enum { N = 3, K = 7 };
    const int64_t labels[N] = { 2, 0, 6 };
    rng r = { 1700 };
    float logits[N * K], dlogits[N * K], shifted[N * K];
    fill_uniform(logits, N * K, -3, 3, &r);
    xent_ctx c = { .n = N, .k = K, .smoothing = 0.1f, .scale = 0.3f, .logits = logits, .labels = labels };

    fill_nan(dlogits, N * K);
    const double loss = softmax_xent_f32_ref__scalar(N, K, logits, labels, c.smoothing, c.scale, dlogits);
    expect_close("xent loss", 0, loss, naive_xent(N, K, logits, labels, c.smoothing), 1e-12, 0);
    assert_true(loss == softmax_xent_f32_ref__scalar(N, K, logits, labels, c.smoothing, c.scale, NULL));
    check_fd("xent dlogits", logits, N * K, dlogits, xent_objective, &c, 0);

    /* Each row of dlogits sums to 0 (softmax and q both sum to 1). */
    for (int s = 0; s < N; s++) {
        double row = 0.0;
        for (int k = 0; k < K; k++)
            row += dlogits[s * K + k];
        expect_close("xent dlogits row sum", (size_t)s, row, 0.0, 0, 1e-7);
    }

    /* Without smoothing the loss is the mean negative log-probability of the label. */
    expect_close("xent loss s=0", 0, softmax_xent_f32_ref__scalar(N, K, logits, labels, 0.0f, 1.0f, NULL),
                 naive_xent(N, K, logits, labels, 0.0), 1e-12, 0);

    /* Shift invariance with logits large enough to overflow exp() without the max subtraction. */
    for (int i = 0; i < N * K; i++)
        shifted[i] = logits[i] + 1000.0f;
    const double big = softmax_xent_f32_ref__scalar(N, K, shifted, labels, c.smoothing, c.scale, dlogits);
    assert_true(isfinite(big));
    for (int i = 0; i < N * K; i++)
        assert_true(isfinite(dlogits[i]));
    /* logits + 1000 rounds each logit to ~6e-5 in float, so the comparison is that loose. */
    expect_close("xent loss shifted", 0, big, loss, 0, 2e-4);
}

/* ---- AdamW ---- */

static void test_adamw_matches_double_transcription(void **state)
{
    (void)state;
    enum { COUNT = 64, STEPS = 6 };
    const float lr = 0.01f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, wd = 0.1f;
    rng r = { 1800 };
    float p[COUNT], g[COUNT], m[COUNT], v[COUNT], p0[COUNT];
    double pd[COUNT], md[COUNT], vd[COUNT];
    fill_away_from_zero(p, COUNT, 0.5, &r);
    for (int i = 0; i < COUNT; i++) {
        p0[i] = pd[i] = p[i];
        m[i] = v[i] = 0.0f;
        md[i] = vd[i] = 0.0;
    }
    for (int64_t step = 1; step <= STEPS; step++) {
        fill_uniform(g, COUNT, -1, 1, &r);
        g[0] = 0.0f; /* a zero gradient still decays the parameter */
        adamw_f32_ref__scalar(COUNT, p, g, m, v, lr, beta1, beta2, eps, wd, step);
        const double bc1 = 1.0 - pow(beta1, (double)step), bc2 = 1.0 - pow(beta2, (double)step);
        double m_scale = 0.0, v_scale = 0.0;
        for (int i = 0; i < COUNT; i++) {
            pd[i] *= 1.0 - (double)lr * wd;
            md[i] = beta1 * md[i] + (1.0 - beta1) * g[i];
            vd[i] = beta2 * vd[i] + (1.0 - beta2) * (double)g[i] * g[i];
            pd[i] -= (lr / bc1) * md[i] / (sqrt(vd[i]) / sqrt(bc2) + eps);
            expect_close("adamw param", (size_t)i, p[i], pd[i], 1e-6, 0);
            m_scale = fmax(m_scale, fabs(md[i]));
            v_scale = fmax(v_scale, vd[i]);
        }
        /* A moment that cancels to near 0 inherits the float rounding of its larger previous value, so the
         * moments are held to 1e-6 of the tensor's magnitude rather than of each element. */
        for (int i = 0; i < COUNT; i++) {
            expect_close("adamw exp_avg", (size_t)i, m[i], md[i], 1e-6, 1e-6 * m_scale);
            expect_close("adamw exp_avg_sq", (size_t)i, v[i], vd[i], 1e-6, 1e-6 * v_scale);
        }
    }
    /* The steps were large enough for a wrong update to show: some parameter moved by several lr. */
    double moved = 0.0;
    for (int i = 0; i < COUNT; i++)
        moved = fmax(moved, fabs(p[i] - p0[i]));
    assert_true(moved > 2 * lr);

    /* Late in training the bias corrections are nearly 1 and beta2^step must still be exact enough. */
    const int64_t late = 20000;
    fill_uniform(g, COUNT, -1, 1, &r);
    for (int i = 0; i < COUNT; i++) {
        m[i] = (float)rng_uniform(&r, -0.1, 0.1);
        v[i] = (float)rng_uniform(&r, 1e-4, 1e-2);
        pd[i] = p[i];
        md[i] = m[i];
        vd[i] = v[i];
    }
    adamw_f32_ref__scalar(COUNT, p, g, m, v, lr, beta1, beta2, eps, wd, late);
    const double bc1 = 1.0 - pow(beta1, (double)late), bc2 = 1.0 - pow(beta2, (double)late);
    for (int i = 0; i < COUNT; i++) {
        pd[i] *= 1.0 - (double)lr * wd;
        md[i] = beta1 * md[i] + (1.0 - beta1) * g[i];
        vd[i] = beta2 * vd[i] + (1.0 - beta2) * (double)g[i] * g[i];
        pd[i] -= (lr / bc1) * md[i] / (sqrt(vd[i]) / sqrt(bc2) + eps);
        expect_close("adamw late param", (size_t)i, p[i], pd[i], 1e-6, 0);
    }
}

/* ---- accumulate flag, all input gradients ---- */

static void test_accumulate_flag(void **state)
{
    (void)state;
    conv_ctx cc = conv_setup(&conv_cases[1], 1900);
    check_accumulate("conv dx", cc.nx, conv_bwd_data_run, &cc);
    conv_teardown(&cc);

    for (int train = 0; train <= 1; train++) {
        bn_ctx b = bn_setup(bn_cases[0], train, 1901);
        if (train)
            bn_fwd_train_f32_ref__scalar(b.d, b.x, b.gamma, b.beta, b.eps, b.y, b.mean, b.var);
        bn_grad_ctx g = { &b, new_floats((size_t)b.d.c), new_floats((size_t)b.d.c) };
        check_accumulate(train ? "bn train dx" : "bn infer dx", b.count, train ? bn_bwd_train_run : bn_bwd_infer_run,
                         &g);
        free(g.dgamma);
        free(g.dbeta);
        bn_teardown(&b);
    }

    relu_ctx rc = relu_setup(300, 1902);
    check_accumulate("relu dx", rc.count, relu_run, &rc);
    relu_teardown(&rc);

    for (int max = 0; max <= 1; max++) {
        pool_ctx pc = pool_setup(&pool_cases[3], max, 1903);
        check_accumulate(max ? "maxpool dx" : "avgpool dx", pc.nx, pool_run, &pc);
        pool_teardown(&pc);
    }

    linear_ctx lc = linear_setup(3, 7, 5, 1904);
    check_accumulate("linear dx", (size_t)lc.n * lc.in, linear_run, &lc);
    linear_teardown(&lc);

    dropout_ctx dc = dropout_setup(500, 0.3f, 1905);
    check_accumulate("dropout dx", dc.count, dropout_run, &dc);
    dropout_teardown(&dc);
}

/* ---- thread count ---- */

#ifdef _OPENMP
/* Runs every kernel that splits work across threads, on a shape large enough to be split. */
static void run_all(const conv_ctx *c, const bn_ctx *b, const pool_ctx *pc, const linear_ctx *lc, float *out)
{
    float *o = out;
    conv_fwd_f32_ref__scalar(&c->s, c->x, c->w, o);
    o += c->ny;
    conv_bwd_data_f32_ref__scalar(&c->s, c->r, c->w, o, 0);
    o += c->nx;
    conv_bwd_weights_f32_ref__scalar(&c->s, c->x, c->r, o);
    o += c->nw;
    const size_t bc = (size_t)b->d.c;
    bn_fwd_train_f32_ref__scalar(b->d, b->x, b->gamma, b->beta, b->eps, o, o + b->count, o + b->count + bc);
    bn_bwd_train_f32_ref__scalar(b->d, b->x, b->r, b->gamma, o + b->count, o + b->count + bc, b->eps,
                                 o + b->count + 2 * bc, o + 2 * b->count + 2 * bc, o + 2 * b->count + 3 * bc, 0);
    o += 2 * b->count + 4 * bc;
    maxpool_bwd_f32_ref__scalar(&pc->s, pc->x, pc->r, o, 0);
    o += pc->nx;
    avgpool_bwd_f32_ref__scalar(&pc->s, pc->r, o, 0);
    o += pc->nx;
    linear_bwd_data_f32_ref__scalar(lc->n, lc->in, lc->out, lc->r, lc->w, o, 0);
    o += (size_t)lc->n * lc->in;
    linear_bwd_weights_f32_ref__scalar(lc->n, lc->in, lc->out, lc->x, lc->r, o, o + (size_t)lc->out * lc->in);
}

static void test_thread_count_independence(void **state)
{
    (void)state;
    const conv_case big = { 4, 6, 17, 19, 8, 3, 3, 2, 2, 1, 2, 0, 1 };
    const pool_case pool = { 4, 6, 17, 19, 3, 3, 2, 2, 1, 1, 1, 1 };
    conv_ctx c = conv_setup(&big, 2000);
    bn_ctx b = bn_setup((incv3_dims){ 4, 6, 17, 19 }, 1, 2001);
    pool_ctx pc = pool_setup(&pool, 1, 2002);
    linear_ctx lc = linear_setup(8, 64, 10, 2003);
    const size_t total = c.ny + c.nx + c.nw + 2 * b.count + 4 * (size_t)b.d.c + 2 * pc.nx +
                         (size_t)lc.n * lc.in + (size_t)lc.out * lc.in + (size_t)lc.out;
    float *one = new_floats(total), *many = new_floats(total);

    const int saved = omp_get_max_threads(), saved_dynamic = omp_get_dynamic();
    omp_set_dynamic(0);
    omp_set_num_threads(1);
    run_all(&c, &b, &pc, &lc, one);
    omp_set_num_threads(5);
    run_all(&c, &b, &pc, &lc, many);
    omp_set_num_threads(saved);
    omp_set_dynamic(saved_dynamic);
    assert_memory_equal(one, many, total * sizeof *one);

    free(one);
    free(many);
    conv_teardown(&c);
    bn_teardown(&b);
    pool_teardown(&pc);
    linear_teardown(&lc);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_fwd_matches_naive),
        cmocka_unit_test(test_conv_bwd_data_fd),
        cmocka_unit_test(test_conv_bwd_weights_fd),
        cmocka_unit_test(test_bn_fwd_train_statistics),
        cmocka_unit_test(test_bn_fwd_infer_matches_naive),
        cmocka_unit_test(test_bn_bwd_train_fd),
        cmocka_unit_test(test_bn_bwd_infer_fd),
        cmocka_unit_test(test_relu),
        cmocka_unit_test(test_maxpool_fwd_matches_naive),
        cmocka_unit_test(test_avgpool_fwd_matches_naive),
        cmocka_unit_test(test_maxpool_bwd_fd),
        cmocka_unit_test(test_avgpool_bwd_fd),
        cmocka_unit_test(test_maxpool_ties_and_padding),
        cmocka_unit_test(test_avgpool_counts_padding),
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_dropout_bwd_fd),
        cmocka_unit_test(test_dropout_mask),
        cmocka_unit_test(test_softmax_xent),
        cmocka_unit_test(test_adamw_matches_double_transcription),
        cmocka_unit_test(test_accumulate_flag),
#ifdef _OPENMP
        cmocka_unit_test(test_thread_count_independence),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
