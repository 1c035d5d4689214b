/* The fused conv -> BatchNorm -> ReLU kernels of every vector ISA (avx2/avx2_fused.h and its NEON twin):
 * the statistics convolution (the registry's direct forward entry's fwd_stats) against the plain direct
 * convolution (bitwise) and the double sums of the reference convolution's output; the inference
 * convolution with BatchNorm+ReLU folded (fwd_bn_relu_infer) against the reference convolution, BatchNorm
 * and ReLU; the kernel set's fused BatchNorm+ReLU forward (training, inference) and backward against the
 * composition of the scalar reference kernels through the layout reorders; padding lanes, in-place use,
 * and bitwise independence of the thread count. Runs once per vector ISA this build and CPU have; skipped
 * (exit 77, meson's skip code) where there is none. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layout/reorder.h"
#include "ref_kernels.h"
#include "conv_test_util.h"

/* Norm-wise relative error of a blocked result against an NCHW reference; padding lanes must be +0. */
static double blocked_err(incv3_dims d, const float *b, const float *want)
{
    return conv_test_blocked_err(d, b, want, 0);
}

/* ---- convolution with statistics ---- */

static int conv_stats_verbose = 0; /* INCV3_TEST_VERBOSE set: print each case's errors */

/* The direct entry's inference convolution with BatchNorm+ReLU folded against the reference BatchNorm
 * (running statistics) and ReLU of the reference convolution's output yref (NCHW): norm-wise 1e-5, padding
 * lanes +0, bitwise the same for 1 and 2 threads. */
static void check_conv_bn_relu_infer(const incv3_conv_shape *s, const incv3_conv_kernel *kd, const float *xb,
                                     const float *wb, const float *yref, const char *desc)
{
    assert_non_null(kd->fwd_bn_relu_infer);
    const uint64_t rng = conv_test_rng; /* the random cases that follow stay those of the statistics tests */
    const incv3_dims dy = {s->n, s->k, s->oh, s->ow};
    const size_t ycnt = incv3_dims_count(dy), ybcnt = reorder_nchw8c_count(dy);
    float *gm = conv_test_alloc(s->k), *bt = conv_test_alloc(s->k), *mu = conv_test_alloc(s->k);
    float *var = conv_test_alloc(s->k);
    for (int k = 0; k < s->k; k++) {
        gm[k] = 0.5f + (float)conv_test_u32() / 4294967296.0f;
        if (k % 4 == 3)
            gm[k] = -gm[k];
        bt[k] = (float)conv_test_u32() / 4294967296.0f - 0.5f;
        mu[k] = (float)conv_test_u32() / 4294967296.0f - 0.5f;
        var[k] = 0.2f + (float)conv_test_u32() / 4294967296.0f * 2.0f;
    }
    float *zr = conv_test_alloc(ycnt), *z1 = conv_test_alloc(ybcnt), *z2 = conv_test_alloc(ybcnt);
    bn_fwd_infer_f32_ref__scalar(dy, yref, gm, bt, mu, var, 1e-3f, zr);
    relu_fwd_f32_ref__scalar(ycnt, zr, zr);
    conv_test_fill_nan(z1, ybcnt);
    conv_test_fill_nan(z2, ybcnt);
    conv_test_set_threads(1);
    kd->fwd_bn_relu_infer(s, xb, wb, z1, gm, bt, mu, var, 1e-3f);
    conv_test_set_threads(2);
    kd->fwd_bn_relu_infer(s, xb, wb, z2, gm, bt, mu, var, 1e-3f);
    const double e = blocked_err(dy, z1, zr);
    if (!(e <= 1e-5)) {
        fprintf(stderr, "%s: conv+bn+relu inference error %.3g\n", desc, e);
        fail();
    }
    if (conv_stats_verbose)
        printf("  %-44s conv+bn+relu infer err %.2e\n", desc, e);
    conv_test_same_bits(z1, z2, ybcnt * sizeof *z1, desc);
    conv_test_rng = rng;
    free(gm);
    free(bt);
    free(mu);
    free(var);
    free(zr);
    free(z1);
    free(z2);
}

static void check_conv_stats(const conv_case *cc)
{
    char desc[128];
    conv_case_describe(cc, desc, sizeof desc);
    const incv3_conv_shape s = conv_case_shape(cc);
    const incv3_dims dx = {s.n, s.c, s.h, s.w}, dy = {s.n, s.k, s.oh, s.ow};
    const size_t xcnt = incv3_dims_count(dx), ycnt = incv3_dims_count(dy), wcnt = (size_t)s.k * s.c * s.kh * s.kw;
    const size_t ybcnt = reorder_nchw8c_count(dy);

    float *x = conv_test_alloc(xcnt), *w = conv_test_alloc(wcnt), *yref = conv_test_alloc(ycnt);
    conv_test_fill(x, xcnt);
    conv_test_fill(w, wcnt);
    /* A bias-like offset on a few weights makes the channel means clearly non-zero. */
    for (size_t i = 0; i < wcnt; i += 7)
        w[i] = fabsf(w[i]);
    float *xb = conv_test_to_blocked(dx, x);
    float *wb = conv_test_alloc(reorder_oihw8i8o_count(s.k, s.c, s.kh, s.kw));
    reorder_oihw_to_oihw8i8o_f32(s.k, s.c, s.kh, s.kw, w, wb);

    conv_fwd_f32_ref__scalar(&s, x, w, yref);

    float *yplain = conv_test_alloc(ybcnt), *y1 = conv_test_alloc(ybcnt), *y2 = conv_test_alloc(ybcnt);
    conv_test_fill_nan(yplain, ybcnt);
    conv_test_fill_nan(y1, ybcnt);
    conv_test_fill_nan(y2, ybcnt);
    double *sum1 = conv_test_dparam_alloc(s.k), *sq1 = conv_test_dparam_alloc(s.k);
    double *sum2 = conv_test_dparam_alloc(s.k), *sq2 = conv_test_dparam_alloc(s.k);

    const incv3_conv_kernel *kd = kernel_test_direct(INCV3_CONV_FWD, &s);
    assert_non_null(kd->fwd_stats);
    conv_test_set_threads(2);
    kd->fn.fwd(&s, xb, wb, yplain);
    kd->fwd_stats(&s, xb, wb, y2, sum2, sq2);
    conv_test_set_threads(1);
    kd->fwd_stats(&s, xb, wb, y1, sum1, sq1);
    conv_test_set_threads(2);

    if (memcmp(yplain, y1, ybcnt * sizeof *y1) != 0) {
        fprintf(stderr, "%s: output differs from %s\n", desc, kd->name);
        fail();
    }
    conv_test_same_bits(y1, y2, ybcnt * sizeof *y1, desc);
    conv_test_same_bits(sum1, sum2, (size_t)s.k * sizeof *sum1, desc);
    conv_test_same_bits(sq1, sq2, (size_t)s.k * sizeof *sq1, desc);
    conv_test_assert_dguard(sum1, s.k);
    conv_test_assert_dguard(sq1, s.k);

    /* (a) The statistics are those of the kernel's own output: double sums of y1 in NCHW order agree to
     * double rounding (measured against the sum of |y| for the sum, which may cancel to near zero).
     * (b) Against double sums of the reference convolution's output, norm-wise over the channels: there
     * the difference is the convolution's own float rounding (a 1-pixel output of a channel with
     * cancellation alone may reach 1e-6 per channel, while the conv tests bound y norm-wise). */
    const size_t hw = (size_t)s.oh * s.ow;
    float *yown = conv_test_alloc(ycnt);
    reorder_nchw8c_to_nchw_f32(dy, y1, yown);
    double worst = 0.0, ns = 0.0, nsa = 0.0, nq = 0.0, nqa = 0.0;
    for (int k = 0; k < s.k; k++) {
        double sm = 0.0, sa = 0.0, sq = 0.0, om = 0.0, oa = 0.0, oq = 0.0;
        for (int n = 0; n < s.n; n++) {
            const float *p = yref + ((size_t)n * s.k + k) * hw, *o = yown + ((size_t)n * s.k + k) * hw;
            for (size_t i = 0; i < hw; i++) {
                sm += p[i];
                sa += fabs((double)p[i]);
                sq += (double)p[i] * p[i];
                om += o[i];
                oa += fabs((double)o[i]);
                oq += (double)o[i] * o[i];
            }
        }
        const double es = oa > 0 ? fabs(sum1[k] - om) / oa : fabs(sum1[k]);
        const double eq = oq > 0 ? fabs(sq1[k] - oq) / oq : fabs(sq1[k]);
        if (es > 1e-12 || eq > 1e-12) {
            fprintf(stderr, "%s: channel %d: sum %.17g own %.17g (err %.3g), sumsq %.17g own %.17g (err %.3g)\n",
                    desc, k, sum1[k], om, es, sq1[k], oq, eq);
            fail();
        }
        ns += (sum1[k] - sm) * (sum1[k] - sm);
        nsa += sa * sa;
        nq += (sq1[k] - sq) * (sq1[k] - sq);
        nqa += sq * sq;
    }
    const double es = nsa > 0 ? sqrt(ns / nsa) : sqrt(ns), eq = nqa > 0 ? sqrt(nq / nqa) : sqrt(nq);
    worst = es > eq ? es : eq;
    if (!(es <= 1e-6) || !(eq <= 1e-6)) {
        fprintf(stderr, "%s: against the reference: sum error %.3g, sumsq error %.3g\n", desc, es, eq);
        fail();
    }
    free(yown);
    if (conv_stats_verbose)
        printf("  %-44s worst stats err %.2e\n", desc, worst);

    check_conv_bn_relu_infer(&s, kd, xb, wb, yref, desc);

    free(x);
    free(w);
    free(yref);
    free(xb);
    free(wb);
    free(yplain);
    free(y1);
    free(y2);
    free(sum1);
    free(sq1);
    free(sum2);
    free(sq2);
}

static void test_conv_stats_listed(void **state)
{
    (void)state;
    static const conv_case cases[] = {
        /* n   c   h   w   k kh kw sh sw pt pl pb pr */
        {1, 3, 9, 11, 5, 3, 3, 1, 1, 0, 0, 0, 0},      /* few input channels, k < 8 */
        {3, 13, 10, 9, 21, 3, 3, 1, 1, 1, 1, 1, 1},    /* c, k not multiples of 8, batch 3, padding */
        {1, 16, 15, 15, 24, 3, 3, 2, 2, 0, 0, 0, 0},   /* stride 2, odd number of blocks */
        {3, 20, 17, 17, 40, 1, 7, 1, 1, 0, 3, 0, 3},   /* 1x7 */
        {1, 24, 17, 17, 36, 7, 1, 1, 1, 3, 0, 3, 0},   /* 7x1 */
        {3, 32, 8, 8, 19, 1, 1, 1, 1, 0, 0, 0, 0},     /* 1x1 */
        {1, 9, 13, 12, 17, 5, 5, 2, 2, 2, 2, 2, 2},    /* 5x5 stride 2 padded */
        {3, 8, 3, 3, 8, 3, 3, 1, 1, 2, 2, 2, 2},       /* rows entirely in vertical padding */
        {1, 40, 7, 7, 48, 3, 3, 2, 2, 1, 1, 1, 1},     /* stride 2 padded */
        {3, 300, 6, 6, 30, 1, 1, 1, 1, 0, 0, 0, 0},    /* several input-channel chunks */
        {1, 130, 9, 9, 9, 3, 3, 1, 1, 1, 1, 1, 1},     /* chunks, one output block pair of 2 blocks */
        {1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0},       /* single pixel */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_conv_stats(&cases[i]);
}

static void test_conv_stats_random(void **state)
{
    (void)state;
    conv_test_rng = 0x5EED5EEDF00Dull;
    const int count = conv_test_random_count(40);
    for (int i = 0; i < count; i++) {
        const conv_case cc = conv_case_random(3);
        check_conv_stats(&cc);
    }
}

static void test_conv_stats_seed_model(void **state)
{
    (void)state;
    conv_case cases[128];
    const size_t n = conv_cases_seed_model_for_run(cases, 128, 4);
    /* The smaller layers only (the scalar reference convolution is slow): at most 12 of them. */
    size_t ran = 0;
    for (size_t i = 0; i < n && ran < 12; i++) {
        const incv3_conv_shape s = conv_case_shape(&cases[i]);
        if (incv3_conv_macs(&s) > 25e6)
            continue;
        check_conv_stats(&cases[i]);
        ran++;
    }
    assert_true(ran >= 4);
}

/* ---- fused BatchNorm + ReLU ---- */

static const incv3_dims bn_dims[] = {
    {1, 5, 1, 1},  {1, 8, 3, 3},  {3, 13, 5, 7},   {2, 16, 4, 4},  {3, 21, 9, 9},
    {1, 35, 7, 5}, {3, 64, 6, 6}, {2, 100, 3, 11}, {1, 3, 17, 17}, {3, 192, 5, 5},
};

/* x of dims d with per-channel offsets and scales, so mean and variance are far from 0 and 1 and a
 * part of every channel falls below zero after normalization. */
static void fill_bn_input(incv3_dims d, float *x)
{
    const size_t hw = (size_t)d.h * d.w;
    conv_test_fill(x, incv3_dims_count(d));
    for (int c = 0; c < d.c; c++) {
        const float off = 3.0f * ((float)(c % 7) - 3.0f), sc = 0.25f + (float)(c % 5);
        for (int n = 0; n < d.n; n++) {
            float *p = x + ((size_t)n * d.c + c) * hw;
            for (size_t i = 0; i < hw; i++)
                p[i] = p[i] * sc + off;
        }
    }
}

static void fill_params(int c, float *g, float *b)
{
    for (int i = 0; i < c; i++) {
        g[i] = 0.5f + (float)conv_test_u32() / 4294967296.0f;
        if (i % 4 == 3)
            g[i] = -g[i];
        b[i] = (float)conv_test_u32() / 4294967296.0f - 0.5f;
    }
}

/* Double sums over (n, h, w) per channel of an NCHW tensor. */
static void channel_sums(incv3_dims d, const float *x, double *sum, double *sumsq)
{
    const size_t hw = (size_t)d.h * d.w;
    for (int c = 0; c < d.c; c++) {
        double s = 0.0, q = 0.0;
        for (int n = 0; n < d.n; n++) {
            const float *p = x + ((size_t)n * d.c + c) * hw;
            for (size_t i = 0; i < hw; i++) {
                s += p[i];
                q += (double)p[i] * p[i];
            }
        }
        sum[c] = s;
        sumsq[c] = q;
    }
}

static void assert_stat_close(const float *got, const float *want, const float *scale, int c, const char *what)
{
    for (int i = 0; i < c; i++) {
        const double tol = 1e-6 * (fabs((double)want[i]) + (scale ? sqrt(fabs((double)scale[i])) : 0.0)) + 1e-30;
        if (!(fabs((double)got[i] - want[i]) <= tol)) {
            fprintf(stderr, "%s[%d]: got %.9g want %.9g\n", what, i, got[i], want[i]);
            fail();
        }
    }
}

static void test_bn_relu_fwd(void **state)
{
    (void)state;
    conv_test_rng = 0xB0B0CAFE1234ull;
    const float eps = 1e-3f;
    for (size_t t = 0; t < sizeof bn_dims / sizeof bn_dims[0]; t++) {
        const incv3_dims d = bn_dims[t];
        const size_t cnt = incv3_dims_count(d), bcnt = reorder_nchw8c_count(d);
        float *x = conv_test_alloc(cnt), *g = conv_test_alloc(d.c), *b = conv_test_alloc(d.c);
        fill_bn_input(d, x);
        fill_params(d.c, g, b);
        float *xb = conv_test_to_blocked(d, x);
        double *sum = conv_test_dalloc(d.c), *sumsq = conv_test_dalloc(d.c);
        channel_sums(d, x, sum, sumsq);

        /* Reference: bn_fwd_train then relu. */
        float *yr = conv_test_alloc(cnt), *mr = conv_test_alloc(d.c), *vr = conv_test_alloc(d.c);
        bn_fwd_train_f32_ref__scalar(d, x, g, b, eps, yr, mr, vr);
        relu_fwd_f32_ref__scalar(cnt, yr, yr);

        float *y1 = conv_test_alloc(bcnt), *y2 = conv_test_alloc(bcnt);
        float *m1 = conv_test_param_alloc(d.c), *v1 = conv_test_param_alloc(d.c);
        float *m2 = conv_test_param_alloc(d.c), *v2 = conv_test_param_alloc(d.c);
        conv_test_fill_nan(y1, bcnt);
        conv_test_set_threads(1);
        kernel_test_kset()->bn_relu_fwd_train(d, xb, sum, sumsq, g, b, eps, y1, m1, v1);
        conv_test_set_threads(2);
        /* In place, 2 threads: bitwise the same. */
        float *y2src = conv_test_dup(xb, bcnt);
        kernel_test_kset()->bn_relu_fwd_train(d, y2src, sum, sumsq, g, b, eps, y2src, m2, v2);
        memcpy(y2, y2src, bcnt * sizeof *y2);
        free(y2src);

        char what[96];
        snprintf(what, sizeof what, "bn_relu_fwd_train n%d c%d %dx%d", d.n, d.c, d.h, d.w);
        const double e = blocked_err(d, y1, yr);
        if (!(e <= 1e-5)) {
            fprintf(stderr, "%s: y error %.3g\n", what, e);
            fail();
        }
        if (conv_stats_verbose)
            printf("  %-44s y err %.2e\n", what, e);
        conv_test_same_bits(y1, y2, bcnt * sizeof *y1, what);
        conv_test_same_bits(m1, m2, (size_t)d.c * sizeof *m1, what);
        conv_test_same_bits(v1, v2, (size_t)d.c * sizeof *v1, what);
        assert_stat_close(m1, mr, vr, d.c, "mean");
        assert_stat_close(v1, vr, NULL, d.c, "var");
        conv_test_assert_guard(m1, d.c);
        conv_test_assert_guard(v1, d.c);

        /* Inference with the reference's running statistics perturbed: bn_fwd_infer then relu. */
        float *rm = conv_test_alloc(d.c), *rv = conv_test_alloc(d.c);
        for (int c = 0; c < d.c; c++) {
            rm[c] = mr[c] + 0.1f * ((float)(c % 3) - 1.0f);
            rv[c] = vr[c] * (0.8f + 0.1f * (float)(c % 4));
        }
        float *yir = conv_test_alloc(cnt);
        bn_fwd_infer_f32_ref__scalar(d, x, g, b, rm, rv, eps, yir);
        relu_fwd_f32_ref__scalar(cnt, yir, yir);
        float *yi1 = conv_test_alloc(bcnt), *yi2 = conv_test_dup(xb, bcnt);
        conv_test_fill_nan(yi1, bcnt);
        conv_test_set_threads(1);
        kernel_test_kset()->bn_relu_fwd_infer(d, xb, g, b, rm, rv, eps, yi1);
        conv_test_set_threads(2);
        kernel_test_kset()->bn_relu_fwd_infer(d, yi2, g, b, rm, rv, eps, yi2); /* in place */
        snprintf(what, sizeof what, "bn_relu_fwd_infer n%d c%d %dx%d", d.n, d.c, d.h, d.w);
        const double ei = blocked_err(d, yi1, yir);
        if (!(ei <= 1e-5)) {
            fprintf(stderr, "%s: y error %.3g\n", what, ei);
            fail();
        }
        if (conv_stats_verbose)
            printf("  %-44s y err %.2e\n", what, ei);
        conv_test_same_bits(yi1, yi2, bcnt * sizeof *yi1, what);

        free(x);
        free(g);
        free(b);
        free(xb);
        free(sum);
        free(sumsq);
        free(yr);
        free(mr);
        free(vr);
        free(y1);
        free(y2);
        free(m1);
        free(v1);
        free(m2);
        free(v2);
        free(rm);
        free(rv);
        free(yir);
        free(yi1);
        free(yi2);
    }
}

/* Statistics straight from a conv_fwd_stats output feed the fused forward: the same result as the
 * reference BatchNorm + ReLU of the reference convolution's output (through the chain's tolerances). */
static void test_chain(void **state)
{
    (void)state;
    conv_test_rng = 0xC4A1D00Dull;
    const conv_case cc = {3, 19, 11, 10, 29, 3, 3, 1, 1, 1, 1, 1, 1};
    const incv3_conv_shape s = conv_case_shape(&cc);
    const incv3_dims dx = {s.n, s.c, s.h, s.w}, d = {s.n, s.k, s.oh, s.ow};
    const size_t xcnt = incv3_dims_count(dx), cnt = incv3_dims_count(d), wcnt = (size_t)s.k * s.c * s.kh * s.kw;
    float *x = conv_test_alloc(xcnt), *w = conv_test_alloc(wcnt), *yc = conv_test_alloc(cnt);
    conv_test_fill(x, xcnt);
    conv_test_fill(w, wcnt);
    float *xb = conv_test_to_blocked(dx, x);
    float *wb = conv_test_alloc(reorder_oihw8i8o_count(s.k, s.c, s.kh, s.kw));
    reorder_oihw_to_oihw8i8o_f32(s.k, s.c, s.kh, s.kw, w, wb);
    conv_fwd_f32_ref__scalar(&s, x, w, yc);

    float *g = conv_test_alloc(s.k), *b = conv_test_alloc(s.k);
    fill_params(s.k, g, b);
    float *zr = conv_test_alloc(cnt), *mr = conv_test_alloc(s.k), *vr = conv_test_alloc(s.k);
    bn_fwd_train_f32_ref__scalar(d, yc, g, b, 1e-3f, zr, mr, vr);
    relu_fwd_f32_ref__scalar(cnt, zr, zr);

    const size_t bcnt = reorder_nchw8c_count(d);
    float *yb = conv_test_alloc(bcnt);
    double *sum = conv_test_dalloc(s.k), *sumsq = conv_test_dalloc(s.k);
    float *m = conv_test_alloc(s.k), *v = conv_test_alloc(s.k);
    const incv3_conv_kernel *kd = kernel_test_direct(INCV3_CONV_FWD, &s);
    assert_non_null(kd->fwd_stats);
    kd->fwd_stats(&s, xb, wb, yb, sum, sumsq);
    kernel_test_kset()->bn_relu_fwd_train(d, yb, sum, sumsq, g, b, 1e-3f, yb, m, v);
    const double e = blocked_err(d, yb, zr);
    if (!(e <= 1e-5)) {
        fprintf(stderr, "chain: error %.3g\n", e);
        fail();
    }
    for (int k = 0; k < s.k; k++) {
        assert_true(fabs((double)m[k] - mr[k]) <= 1e-5 * (fabs((double)mr[k]) + sqrt(vr[k])));
        assert_true(fabs((double)v[k] - vr[k]) <= 1e-5 * vr[k]);
    }
    free(x);
    free(w);
    free(yc);
    free(xb);
    free(wb);
    free(g);
    free(b);
    free(zr);
    free(mr);
    free(vr);
    free(yb);
    free(sum);
    free(sumsq);
    free(m);
    free(v);
}

static double vec_err(const float *got, const float *want, int c)
{
    return conv_test_rel_err(got, want, (size_t)c);
}

static void test_bn_relu_bwd(void **state)
{
    (void)state;
    conv_test_rng = 0xD1CEBEEF77ull;
    const float eps = 1e-3f;
    for (size_t t = 0; t < sizeof bn_dims / sizeof bn_dims[0]; t++) {
        const incv3_dims d = bn_dims[t];
        const size_t cnt = incv3_dims_count(d), bcnt = reorder_nchw8c_count(d);
        float *x = conv_test_alloc(cnt), *g = conv_test_alloc(d.c), *b = conv_test_alloc(d.c);
        fill_bn_input(d, x);
        fill_params(d.c, g, b);
        /* Forward by the reference: y = relu(bn(x)), batch statistics. */
        float *y = conv_test_alloc(cnt), *mean = conv_test_alloc(d.c), *var = conv_test_alloc(d.c);
        bn_fwd_train_f32_ref__scalar(d, x, g, b, eps, y, mean, var);
        relu_fwd_f32_ref__scalar(cnt, y, y);
        float *dy = conv_test_alloc(cnt), *dx0 = conv_test_alloc(cnt), *dz = conv_test_alloc(cnt);
        conv_test_fill(dy, cnt);
        conv_test_fill(dx0, cnt);
        float *xb = conv_test_to_blocked(d, x), *yb = conv_test_to_blocked(d, y), *dyb = conv_test_to_blocked(d, dy), *dx0b = conv_test_to_blocked(d, dx0);

        for (int acc = 0; acc < 2; acc++) {
            /* Reference: relu_bwd into dz, then bn_bwd_train. */
            float *dxr = acc ? conv_test_dup(dx0, cnt) : conv_test_alloc(cnt);
            float *dgr = conv_test_alloc(d.c), *dbr = conv_test_alloc(d.c);
            relu_bwd_f32_ref__scalar(cnt, y, dy, dz, 0);
            bn_bwd_train_f32_ref__scalar(d, x, dz, g, mean, var, eps, dxr, dgr, dbr, acc);

            float *dx1 = acc ? conv_test_dup(dx0b, bcnt) : conv_test_alloc(bcnt);
            float *dx2 = acc ? conv_test_dup(dx0b, bcnt) : conv_test_alloc(bcnt);
            if (!acc) {
                conv_test_fill_nan(dx1, bcnt);
                conv_test_fill_nan(dx2, bcnt);
            }
            float *dg1 = conv_test_param_alloc(d.c), *db1 = conv_test_param_alloc(d.c);
            float *dg2 = conv_test_param_alloc(d.c), *db2 = conv_test_param_alloc(d.c);
            conv_test_set_threads(1);
            kernel_test_kset()->bn_relu_bwd_train(d, xb, yb, dyb, g, mean, var, eps, dx1, dg1, db1, acc);
            conv_test_set_threads(2);
            kernel_test_kset()->bn_relu_bwd_train(d, xb, yb, dyb, g, mean, var, eps, dx2, dg2, db2, acc);

            char what[96];
            snprintf(what, sizeof what, "bn_relu_bwd_train n%d c%d %dx%d acc%d", d.n, d.c, d.h, d.w, acc);
            const double e = blocked_err(d, dx1, dxr);
            const double eg = vec_err(dg1, dgr, d.c), eb = vec_err(db1, dbr, d.c);
            if (!(e <= 1e-5) || !(eg <= 1e-5) || !(eb <= 1e-5)) {
                fprintf(stderr, "%s: dx error %.3g, dgamma %.3g, dbeta %.3g\n", what, e, eg, eb);
                fail();
            }
            if (conv_stats_verbose)
                printf("  %-44s dx err %.2e dgamma %.2e dbeta %.2e\n", what, e, eg, eb);
            conv_test_same_bits(dx1, dx2, bcnt * sizeof *dx1, what);
            conv_test_same_bits(dg1, dg2, (size_t)d.c * sizeof *dg1, what);
            conv_test_same_bits(db1, db2, (size_t)d.c * sizeof *db1, what);
            conv_test_assert_guard(dg1, d.c);
            conv_test_assert_guard(db1, d.c);

            free(dxr);
            free(dgr);
            free(dbr);
            free(dx1);
            free(dx2);
            free(dg1);
            free(db1);
            free(dg2);
            free(db2);
        }
        free(x);
        free(g);
        free(b);
        free(y);
        free(mean);
        free(var);
        free(dy);
        free(dx0);
        free(dz);
        free(xb);
        free(yb);
        free(dyb);
        free(dx0b);
    }
}

int main(void)
{
    conv_stats_verbose = getenv("INCV3_TEST_VERBOSE") != NULL;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_stats_listed), cmocka_unit_test(test_conv_stats_random),
        cmocka_unit_test(test_conv_stats_seed_model), cmocka_unit_test(test_bn_relu_fwd),
        cmocka_unit_test(test_chain),             cmocka_unit_test(test_bn_relu_bwd),
    };
    return KERNEL_TEST_RUN("test_kernels_fused", tests);
}
