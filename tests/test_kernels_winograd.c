/* The Winograd convolutions of every vector ISA (avx2/conv_winograd_avx2.h and its NEON twin), taken from
 * the registry (every entry of the ISA whose algo starts with "winograd"): every variant's forward,
 * backward-data (overwrite and accumulate), statistics and inference BatchNorm+ReLU passes against the
 * scalar reference kernels through the layout reorders, on listed and random shapes; accuracy on the seed
 * model's shapes with realistic data against a double-precision convolution; bitwise independence of the
 * thread count; the shapes supports() turns down. A registry entry of a variant the table of tolerances
 * below does not list fails the test. Runs once per vector ISA this build and CPU have; skipped (exit 77,
 * meson's skip code) where there is none.
 *
 * Tolerances (norm-wise relative error). Uniform data in [-1, 1) (the listed and random shapes): each
 * variant's bound in the table below (the statistics and BatchNorm+ReLU outputs: twice it, at most
 * 1e-4), the reference's norm floored as blocked_err explains. Seed-model shapes, post-ReLU activations
 * max(0, N(0,1)) and He-initialized weights N(0, 2/fan_in), against double precision: 1e-4 for every
 * variant (the worst figures are printed). */
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

typedef struct wg_variant {
    const char *name; /* the tag: f4x4_3x3 */
    int kh, kw;
    double tol; /* uniform data, listed and random shapes */
    int (*supports)(const incv3_conv_shape *s);
    int (*bwd_supports)(const incv3_conv_shape *s);
    size_t (*fwd_floats)(const incv3_conv_shape *s);
    void (*pack_fwd)(const incv3_conv_shape *s, const float *w, float *u);
    size_t (*bwd_floats)(const incv3_conv_shape *s);
    void (*pack_bwd)(const incv3_conv_shape *s, const float *w, float *u);
    incv3_conv_fwd_fn fwd;
    incv3_conv_bwd_data_fn bwd;
    incv3_conv_fwd_stats_fn stats;
    incv3_conv_fwd_bn_relu_fn infer;
    incv3_conv_bwd_weights_fn bww;
    int (*bww_supports)(const incv3_conv_shape *s);
} wg_variant;

/* Bounds on uniform data: about 2-5x the worst error seen over 24 seeds of the listed and random
 * shapes, at most 1e-4. The worst cases are one-channel shapes with a 1x1 input, whose outputs are
 * single products: F(6x6) then reaches 8.6e-5 (each output is a sum of 64 terms much larger than the
 * product), F(4, 7) 3e-5, F(2, 7) 1.5e-5; with 4 or more channels the worst are 4e-6 (F(6x6)), 5e-6
 * (F(4, 7)), 2e-6 (F(4x4)), 1e-6 or less (the others). Every ISA's variant of a tag has its bound; a
 * registry entry whose tag is not listed fails the test. */
static const struct {
    const char *tag;
    double tol;
} variant_tols[] = {
    {"f2x2_3x3", 1e-5}, {"f4x4_3x3", 2e-5}, {"f6x6_3x3", 1e-4}, {"f2_1x3", 1e-5}, {"f4_1x3", 2e-5}, {"f2_3x1", 1e-5},
    {"f4_3x1", 2e-5},   {"f2_1x7", 5e-5},   {"f4_1x7", 1e-4},   {"f2_7x1", 5e-5}, {"f4_7x1", 1e-4},
};
#define MAX_VARIANTS (sizeof variant_tols / sizeof variant_tols[0])

static wg_variant variants[MAX_VARIANTS]; /* those of the ISA under test, in the order of variant_tols */
static size_t nvariants;
static int variants_isa = -1;

static int verbose;
static double worst_uniform[MAX_VARIANTS]; /* worst error on uniform data, per variant, for the summary */

/* The tag of a Winograd entry's name (conv_fwd_f32_winograd_f4x4_3x3__avx2 -> f4x4_3x3) into buf. */
static void entry_tag(const incv3_conv_kernel *e, char *buf, size_t len)
{
    const char *a = strstr(e->name, "_winograd_"), *b = strstr(e->name, "__");
    if (!a || !b || b < a + 10 || (size_t)(b - a - 10) >= len) {
        print_error("%s: a Winograd entry's name is not op_f32_winograd_TAG__isa\n", e->name);
        fail();
    }
    memcpy(buf, a + 10, (size_t)(b - a - 10));
    buf[b - a - 10] = '\0';
}

/* The Winograd variants of the ISA under test from the registry: each tag's forward and backward-data
 * entries. Fails on an entry whose tag has no bound in variant_tols, on a forward entry without its
 * backward-data twin (or the other way round), on missing packing or fused passes, and on a Winograd
 * entry of another pass (this test has no check for it). */
static void load_variants(void)
{
    if (variants_isa == (int)kernel_test_isa)
        return;
    size_t count;
    const incv3_conv_kernel *t = incv3_conv_kernel_table(&count);
    memset(variants, 0, sizeof variants);
    memset(worst_uniform, 0, sizeof worst_uniform);
    nvariants = 0;
    const incv3_conv_kernel *fwd[MAX_VARIANTS] = {0}, *bwd[MAX_VARIANTS] = {0}, *bww[MAX_VARIANTS] = {0};
    for (size_t i = 0; i < count; i++) {
        const incv3_conv_kernel *e = &t[i];
        if (e->isa != kernel_test_isa || strncmp(e->algo, "winograd", 8) != 0)
            continue;
        char tag[64];
        entry_tag(e, tag, sizeof tag);
        size_t vi = 0;
        while (vi < MAX_VARIANTS && strcmp(variant_tols[vi].tag, tag) != 0)
            vi++;
        if (vi == MAX_VARIANTS) {
            print_error("%s: Winograd variant %s has no error bound in variant_tols: add it to this test\n",
                        e->name, tag);
            fail();
        }
        if (e->pass == INCV3_CONV_FWD && !fwd[vi])
            fwd[vi] = e;
        else if (e->pass == INCV3_CONV_BWD_DATA && !bwd[vi])
            bwd[vi] = e;
        else if (e->pass == INCV3_CONV_BWD_WEIGHTS && !bww[vi])
            bww[vi] = e;
        else {
            print_error("%s: a Winograd entry of pass %d this test does not check\n", e->name, (int)e->pass);
            fail();
        }
    }
    for (size_t vi = 0; vi < MAX_VARIANTS; vi++) {
        if (!fwd[vi] && !bwd[vi] && !bww[vi])
            continue;
        if (!fwd[vi] || !bwd[vi] || !bww[vi]) {
            print_error("Winograd variant %s of %s: forward, backward-data and backward-weights entries come "
                        "together\n",
                        variant_tols[vi].tag, incv3_isa_name(kernel_test_isa));
            fail();
        }
        const incv3_conv_kernel *f = fwd[vi], *b = bwd[vi];
        assert_non_null(f->supports);
        assert_non_null(b->supports);
        assert_non_null(f->packed_floats);
        assert_non_null(f->pack);
        assert_non_null(b->packed_floats);
        assert_non_null(b->pack);
        assert_non_null(f->fwd_stats);
        assert_non_null(f->fwd_bn_relu_infer);
        wg_variant *v = &variants[nvariants++];
        v->name = variant_tols[vi].tag;
        const char *ks = strrchr(v->name, '_');
        assert_non_null(ks);
        assert_int_equal(sscanf(ks + 1, "%dx%d", &v->kh, &v->kw), 2);
        v->tol = variant_tols[vi].tol;
        v->supports = f->supports;
        v->bwd_supports = b->supports;
        v->fwd_floats = f->packed_floats;
        v->pack_fwd = f->pack;
        v->bwd_floats = b->packed_floats;
        v->pack_bwd = b->pack;
        v->fwd = f->fn.fwd;
        v->bwd = b->fn.bwd_data;
        v->stats = f->fwd_stats;
        v->infer = f->fwd_bn_relu_infer;
        v->bww = bww[vi]->fn.bwd_weights;
        v->bww_supports = bww[vi]->supports;
    }
    variants_isa = (int)kernel_test_isa;
    printf("  %zu Winograd variants of %s in the registry\n", nvariants, incv3_isa_name(kernel_test_isa));
}

/* supports() of the three passes' entries: the same answer (all take the forward shape). */
static int wg_supports(const wg_variant *v, const incv3_conv_shape *s)
{
    const int f = v->supports(s), b = v->bwd_supports(s), w = v->bww_supports(s);
    if (!f != !b || !f != !w) {
        print_error("%s: supports() of the passes differ (%d, %d, %d)\n", v->name, f, b, w);
        fail();
    }
    return f;
}

/* Norm-wise relative error of a blocked result against an NCHW reference, the reference's norm floored at
 * 1/32 of the norm of absref: the same convolution of the absolute values of the data with, at every
 * tap, the largest absolute weight of its (output, input) channel pair (plus |dx0| when accumulating).
 * That is the scale of Winograd's rounding errors: each output is formed from all taps of the filter and
 * all values of its input tile, which cancel exactly only in exact arithmetic, so an output of one
 * channel that is one small product or a short cancelling sum (a 1x1 input under a 3-tap kernel, say)
 * would otherwise be measured against almost nothing. Where outputs are sums of many terms the floor
 * lies below the reference's norm and changes nothing. floored_err is that measure over count values;
 * blocked_err takes the result in NCHW8c. */
static double floored_err(const float *got, const float *want, const float *absref, size_t count)
{
    double num = 0.0, den = 0.0, fl = 0.0;
    for (size_t i = 0; i < count; i++) {
        const double e = (double)got[i] - want[i];
        num += e * e;
        den += (double)want[i] * want[i];
        fl += (double)absref[i] * absref[i];
    }
    den = fmax(den, fl / 1024.0);
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static double blocked_err(incv3_dims d, const float *b, const float *want, const float *absref)
{
    const size_t cnt = incv3_dims_count(d);
    float *got = conv_test_alloc(cnt);
    reorder_nchw8c_to_nchw_f32(d, b, got);
    const double e = floored_err(got, want, absref, cnt);
    free(got);
    return e;
}

/* weights_err: floored_err for a weight gradient dw (OIHW, every element written: NaN where not) against
 * want, with the floor of absref (the gradient of the absolute values of x and dy). */
static double weights_err(const incv3_conv_shape *s, const float *dw, const float *want, const float *absref,
                          const char *desc)
{
    const size_t cnt = (size_t)s->k * s->c * s->kh * s->kw;
    for (size_t i = 0; i < cnt; i++)
        if (isnan(dw[i])) {
            fprintf(stderr, "%s: weight gradient element %zu not written\n", desc, i);
            fail();
        }
    return floored_err(dw, want, absref, cnt);
}

static float *abs_copy(const float *p, size_t count)
{
    float *q = conv_test_alloc(count);
    for (size_t i = 0; i < count; i++)
        q[i] = fabsf(p[i]);
    return q;
}

/* OIHW weights whose every tap is the largest |w| of its (output, input) channel pair. */
static float *tap_max_weights(const incv3_conv_shape *s, const float *w)
{
    const size_t taps = (size_t)s->kh * s->kw, pairs = (size_t)s->k * s->c;
    float *m = conv_test_alloc(pairs * taps);
    for (size_t p = 0; p < pairs; p++) {
        float v = 0.0f;
        for (size_t t = 0; t < taps; t++)
            v = fmaxf(v, fabsf(w[p * taps + t]));
        for (size_t t = 0; t < taps; t++)
            m[p * taps + t] = v;
    }
    return m;
}

static void check_err(double e, double tol, const char *what)
{
    if (verbose)
        printf("  %-60s rel err %.3g\n", what, e);
    if (!(e <= tol)) {
        fprintf(stderr, "%s: rel err %.3g > %.3g\n", what, e, tol);
        fail();
    }
}

/* Transformed filters in a buffer of their own: 32-byte aligned for the forward pass and 16 bytes off
 * for the backward one, so that both store paths of the pack functions run. Free with packed_free. */
static float *pack(const wg_variant *v, const incv3_conv_shape *s, const float *w, int bwd)
{
    const size_t cnt = bwd ? v->bwd_floats(s) : v->fwd_floats(s);
    void *base = NULL;
    assert_int_equal(posix_memalign(&base, 64, (cnt + 4) * sizeof(float)), 0);
    float *u = (float *)base + (bwd ? 4 : 0);
    conv_test_fill_nan(u, cnt); /* every entry must be written */
    (bwd ? v->pack_bwd : v->pack_fwd)(s, w, u);
    return u;
}

static void packed_free(float *u, int bwd)
{
    free(u - (bwd ? 4 : 0));
}

/* ---- every pass of one variant on one shape, uniform data, against the scalar reference ---- */

static void check_case(size_t vi, const conv_case *cc)
{
    const wg_variant *v = &variants[vi];
    char desc[192];
    conv_case_describe(cc, desc, sizeof desc);
    const size_t len = strlen(desc);
    const incv3_conv_shape s = conv_case_shape(cc);
    assert_true(wg_supports(v, &s));
    const incv3_dims dx = {s.n, s.c, s.h, s.w}, dy = {s.n, s.k, s.oh, s.ow};
    const size_t xcnt = incv3_dims_count(dx), ycnt = incv3_dims_count(dy), wcnt = (size_t)s.k * s.c * s.kh * s.kw;
    const size_t xbcnt = reorder_nchw8c_count(dx), ybcnt = reorder_nchw8c_count(dy);
    const size_t hw = (size_t)s.oh * s.ow;
    const double tol2 = fmin(2 * v->tol, 1e-4); /* statistics and BatchNorm+ReLU */
    double worst = 0.0;

    float *x = conv_test_alloc(xcnt), *w = conv_test_alloc(wcnt), *g = conv_test_alloc(ycnt);
    conv_test_fill(x, xcnt);
    conv_test_fill(w, wcnt);
    conv_test_fill(g, ycnt);
    float *xa = abs_copy(x, xcnt), *wa = tap_max_weights(&s, w), *ga = abs_copy(g, ycnt);
    float *xb = conv_test_to_blocked(dx, x), *gb = conv_test_to_blocked(dy, g);
    float *uf = pack(v, &s, w, 0), *ub = pack(v, &s, w, 1);

    /* forward */
    float *yref = conv_test_alloc(ycnt), *yabs = conv_test_alloc(ycnt), *yb = conv_test_alloc(ybcnt);
    conv_fwd_f32_ref__scalar(&s, x, w, yref);
    conv_fwd_f32_ref__scalar(&s, xa, wa, yabs);
    conv_test_fill_nan(yb, ybcnt);
    v->fwd(&s, xb, uf, yb);
    snprintf(desc + len, sizeof desc - len, " %s fwd", v->name);
    double e = blocked_err(dy, yb, yref, yabs);
    conv_test_check_padding(dy, yb, NULL, 0, desc);
    check_err(e, v->tol, desc);
    worst = fmax(worst, e);

    /* statistics: exactly those of the kernel's own y (to double rounding), and against the double sums
     * of the reference's y, with the floor of blocked_err per element */
    float *ys = conv_test_alloc(ybcnt);
    double *sum = conv_test_dalloc(s.k), *sq = conv_test_dalloc(s.k);
    conv_test_fill_nan(ys, ybcnt);
    v->stats(&s, xb, uf, ys, sum, sq);
    snprintf(desc + len, sizeof desc - len, " %s stats", v->name);
    conv_test_same_bits(ys, yb, ybcnt * sizeof *ys, desc);
    {
        float *yown = conv_test_alloc(ycnt);
        reorder_nchw8c_to_nchw_f32(dy, ys, yown);
        double ns = 0, nsa = 0, nq = 0, nqa = 0;
        for (int k = 0; k < s.k; k++) {
            double om = 0, oa = 0, oq = 0, rm = 0, ra = 0, rq = 0, rqf = 0;
            for (int n = 0; n < s.n; n++) {
                const size_t off = ((size_t)n * s.k + k) * hw;
                const float *o = yown + off, *r = yref + off, *ab = yabs + off;
                for (size_t i = 0; i < hw; i++) {
                    const double m = fmax(fabs((double)r[i]), ab[i] / 32.0);
                    om += o[i];
                    oa += fabs((double)o[i]);
                    oq += (double)o[i] * o[i];
                    rm += r[i];
                    ra += m;
                    rq += (double)r[i] * r[i];
                    rqf += m * m;
                }
            }
            const double es = oa > 0 ? fabs(sum[k] - om) / oa : fabs(sum[k]);
            const double eq = oq > 0 ? fabs(sq[k] - oq) / oq : fabs(sq[k]);
            if (es > 1e-12 || eq > 1e-12) {
                fprintf(stderr, "%s: channel %d: sum %.17g own %.17g, sumsq %.17g own %.17g\n", desc, k, sum[k], om,
                        sq[k], oq);
                fail();
            }
            ns += (sum[k] - rm) * (sum[k] - rm);
            nsa += ra * ra;
            nq += (sq[k] - rq) * (sq[k] - rq);
            nqa += rqf * rqf;
        }
        /* norm-wise over the channels: the sums against sum |y|, the sums of squares (whose error is about
         * 2 sum y dy) against sum y^2, both with the floor */
        const double es = nsa > 0 ? sqrt(ns / nsa) : sqrt(ns), eq = nqa > 0 ? sqrt(nq / nqa) : sqrt(nq);
        check_err(fmax(es, eq / 2), tol2, desc);
        free(yown);
    }

    /* inference BatchNorm + ReLU against the reference BatchNorm and ReLU of the reference convolution;
     * the floor scaled by |gamma / sqrt(var + eps)| */
    {
        float *gm = conv_test_alloc(s.k), *bt = conv_test_alloc(s.k), *mu = conv_test_alloc(s.k);
        float *var = conv_test_alloc(s.k);
        for (int k = 0; k < s.k; k++) {
            gm[k] = 0.5f + (float)conv_test_u32() / 4294967296.0f;
            if (k % 4 == 3)
                gm[k] = -gm[k];
            bt[k] = (float)conv_test_u32() / 4294967296.0f - 0.5f;
            mu[k] = (float)conv_test_u32() / 4294967296.0f - 0.5f;
            var[k] = 0.2f + (float)conv_test_u32() / 4294967296.0f * 2.0f;
        }
        float *zr = conv_test_alloc(ycnt), *zabs = conv_test_alloc(ycnt), *zb = conv_test_alloc(ybcnt);
        bn_fwd_infer_f32_ref__scalar(dy, yref, gm, bt, mu, var, 1e-3f, zr);
        relu_fwd_f32_ref__scalar(ycnt, zr, zr);
        for (int n = 0; n < s.n; n++)
            for (int k = 0; k < s.k; k++) {
                const float sc = fabsf(gm[k]) / sqrtf(var[k] + 1e-3f);
                for (size_t i = 0; i < hw; i++)
                    zabs[((size_t)n * s.k + k) * hw + i] = sc * yabs[((size_t)n * s.k + k) * hw + i];
            }
        conv_test_fill_nan(zb, ybcnt);
        v->infer(&s, xb, uf, zb, gm, bt, mu, var, 1e-3f);
        snprintf(desc + len, sizeof desc - len, " %s infer", v->name);
        e = blocked_err(dy, zb, zr, zabs);
        conv_test_check_padding(dy, zb, NULL, 0, desc);
        check_err(e, tol2, desc);
        free(gm);
        free(bt);
        free(mu);
        free(var);
        free(zr);
        free(zabs);
        free(zb);
    }

    /* backward-data, overwrite and accumulate */
    for (int acc = 0; acc < 2; acc++) {
        float *dref = conv_test_alloc(xcnt), *dabs = conv_test_alloc(xcnt), *db = conv_test_alloc(xbcnt);
        float *d0 = NULL;
        if (acc) {
            conv_test_fill(dref, xcnt);
            for (size_t i = 0; i < xcnt; i++)
                dabs[i] = fabsf(dref[i]);
            float *d0n = conv_test_dup(dref, xcnt);
            d0 = conv_test_to_blocked(dx, d0n);
            free(d0n);
            /* padding lanes hold values of their own, which accumulation must keep */
            for (size_t i = 0; i < xbcnt; i++)
                if ((i % 8) + (i / 8 / ((size_t)s.h * s.w) % incv3_blocks8(s.c)) * 8 >= (size_t)s.c)
                    d0[i] = i % 3 ? -0.0f : NAN;
            memcpy(db, d0, xbcnt * sizeof *db);
        } else {
            conv_test_fill_nan(db, xbcnt);
        }
        conv_bwd_data_f32_ref__scalar(&s, g, w, dref, acc);
        conv_bwd_data_f32_ref__scalar(&s, ga, wa, dabs, acc);
        v->bwd(&s, gb, ub, db, acc);
        snprintf(desc + len, sizeof desc - len, " %s bwd acc%d", v->name, acc);
        e = blocked_err(dx, db, dref, dabs);
        conv_test_check_padding(dx, db, d0, 0, desc);
        check_err(e, v->tol, desc);
        worst = fmax(worst, e);
        free(dref);
        free(dabs);
        free(db);
        free(d0);
    }
    /* backward-weights */
    {
        float *dwref = conv_test_alloc(wcnt), *dwabs = conv_test_alloc(wcnt), *dwb = conv_test_alloc(wcnt);
        conv_bwd_weights_f32_ref__scalar(&s, x, g, dwref);
        conv_bwd_weights_f32_ref__scalar(&s, xa, ga, dwabs);
        conv_test_fill_nan(dwb, wcnt);
        v->bww(&s, xb, gb, dwb);
        snprintf(desc + len, sizeof desc - len, " %s bwd-weights", v->name);
        e = weights_err(&s, dwb, dwref, dwabs, desc);
        check_err(e, v->tol, desc);
        worst = fmax(worst, e);
        free(dwref);
        free(dwabs);
        free(dwb);
    }
    if (worst > worst_uniform[vi])
        worst_uniform[vi] = worst;

    free(x);
    free(w);
    free(g);
    free(xa);
    free(wa);
    free(ga);
    free(xb);
    free(gb);
    packed_free(uf, 0);
    packed_free(ub, 1);
    free(yref);
    free(yabs);
    free(yb);
    free(ys);
    free(sum);
    free(sq);
}

/* Paddings (before, after) of one dimension with kernel extent r that the listed shapes use: 0 to 3 on
 * both sides (up to r - 1), and the largest on one side or both. */
static int pads_of(int r, int (*pd)[2])
{
    int n = 0;
    for (int p = 0; p <= 3 && p <= r - 1; p++, n++)
        pd[n][0] = pd[n][1] = p;
    if (r > 1) {
        pd[n][0] = r - 1, pd[n][1] = 0, n++;
        pd[n][0] = 0, pd[n][1] = r - 1, n++;
        if (r - 1 > 3)
            pd[n][0] = pd[n][1] = r - 1, n++;
    }
    return n;
}

/* n, c, h, w, k of the listed shapes: channels not multiples of 8 (odd output block counts too), sizes
 * below, at and past a tile, odd sizes, batch 1 and 3. */
static const int listed[][5] = {
    {1, 1, 1, 1, 1},   {1, 3, 2, 2, 5},    {3, 5, 7, 9, 13},  {1, 13, 17, 17, 19}, {3, 19, 11, 6, 8},
    {1, 8, 35, 35, 16}, {2, 16, 5, 13, 24}, {1, 24, 9, 9, 40}, {1, 40, 6, 7, 17},   {3, 3, 1, 4, 9},
};
/* Emulated (conv_test_emulated()): the first three, a channel count past a block and an output block
 * count of 3, with every padding combination. */
static const int listed_emulated[][5] = {
    {1, 1, 1, 1, 1}, {1, 3, 2, 2, 5}, {3, 5, 7, 9, 13}, {1, 13, 9, 8, 19},
};

static void test_listed(void **state)
{
    (void)state;
    load_variants();
    conv_test_rng = 0x5157A11ull;
    for (size_t vi = 0; vi < nvariants; vi++) {
        const wg_variant *v = &variants[vi];
        int ph[8][2], pw[8][2];
        const int nph = pads_of(v->kh, ph), npw = pads_of(v->kw, pw);
        const int(*shapes)[5] = conv_test_emulated() ? listed_emulated : listed;
        const size_t nshapes = conv_test_emulated() ? sizeof listed_emulated / sizeof listed_emulated[0]
                                                    : sizeof listed / sizeof listed[0];
        for (size_t i = 0; i < nshapes; i++) {
            /* every vertical padding with the first horizontal one and the other way round, then both at once */
            const int combos = nph + npw;
            for (int cmb = 0; cmb < combos; cmb++) {
                const int a = cmb < nph ? cmb : (cmb - nph) % nph, b = cmb < nph ? cmb % npw : cmb - nph;
                conv_case cc = {shapes[i][0], shapes[i][1], shapes[i][2], shapes[i][3], shapes[i][4], v->kh, v->kw, 1,
                                1, ph[a][0], pw[b][0], ph[a][1], pw[b][1]};
                if (cc.h + cc.pt + cc.pb < cc.kh || cc.w + cc.pl + cc.pr < cc.kw)
                    continue;
                check_case(vi, &cc);
            }
        }
    }
}

static void test_random(void **state)
{
    (void)state;
    load_variants();
    conv_test_rng = 0xA11CE5EEDull;
    for (size_t vi = 0; vi < nvariants; vi++) {
        const wg_variant *v = &variants[vi];
        const int count = conv_test_random_count(16);
        for (int i = 0; i < count; i++) {
            conv_case cc;
            cc.n = conv_test_int(1, 3);
            cc.c = conv_test_int(1, 40);
            cc.k = conv_test_int(1, 40);
            cc.kh = v->kh;
            cc.kw = v->kw;
            cc.sh = cc.sw = 1;
            cc.pt = conv_test_int(0, v->kh - 1);
            cc.pb = conv_test_int(0, v->kh - 1);
            cc.pl = conv_test_int(0, v->kw - 1);
            cc.pr = conv_test_int(0, v->kw - 1);
            cc.h = conv_test_int(1, 20);
            cc.w = conv_test_int(1, 30);
            if (cc.h + cc.pt + cc.pb < cc.kh)
                cc.h = cc.kh;
            if (cc.w + cc.pl + cc.pr < cc.kw)
                cc.w = cc.kw;
            check_case(vi, &cc);
        }
    }
    printf("  worst error on uniform data (listed and random shapes):\n");
    for (size_t vi = 0; vi < nvariants; vi++)
        printf("    %-10s %.3g (bound %.0e)\n", variants[vi].name, worst_uniform[vi], variants[vi].tol);
}

/* ---- bitwise independence of the thread count ---- */

static void test_threads(void **state)
{
    (void)state;
    load_variants();
    conv_test_rng = 0x7EAD5ull;
    /* Enough tiles for several groups of every variant; odd channel counts. Emulated runs have one thread
     * (OMP_THREAD_LIMIT=1), where the check holds trivially: a small shape. */
    const int emu = conv_test_emulated();
    /* Case 1: a 3x3 map of one image, fewer tile groups than 3 threads: the output channels of a group are
     * cut among the threads (wg_k_parts), 37 of them in 3 block pairs. */
    for (size_t ci = 0; ci < 2 * nvariants; ci++) {
        const wg_variant *v = &variants[ci % nvariants];
        const int few = ci >= nvariants, threads[2] = {1, few ? 3 : 2};
        conv_case cc = {emu ? 1 : 3, 19, emu ? 9 : 35, emu ? 11 : 33, 21, v->kh, v->kw, 1, 1, v->kh / 2, v->kw / 2,
                        v->kh / 2, v->kw / 2};
        if (few) {
            cc.n = 1;
            cc.h = cc.w = 3;
            cc.k = 37;
        }
        const incv3_conv_shape s = conv_case_shape(&cc);
        const incv3_dims dx = {s.n, s.c, s.h, s.w}, dy = {s.n, s.k, s.oh, s.ow};
        const size_t xbcnt = reorder_nchw8c_count(dx), ybcnt = reorder_nchw8c_count(dy);
        const size_t wcnt = (size_t)s.k * s.c * s.kh * s.kw;
        float *x = conv_test_alloc(incv3_dims_count(dx)), *g = conv_test_alloc(incv3_dims_count(dy));
        float *w = conv_test_alloc(wcnt);
        conv_test_fill(x, incv3_dims_count(dx));
        conv_test_fill(g, incv3_dims_count(dy));
        conv_test_fill(w, wcnt);
        float *xb = conv_test_to_blocked(dx, x), *gb = conv_test_to_blocked(dy, g);
        float *gm = conv_test_alloc(s.k), *bt = conv_test_alloc(s.k), *mu = conv_test_alloc(s.k),
              *var = conv_test_alloc(s.k);
        for (int k = 0; k < s.k; k++) {
            gm[k] = 1.0f + 0.01f * k;
            bt[k] = 0.1f - 0.01f * k;
            mu[k] = 0.05f * (k % 5);
            var[k] = 0.5f + 0.1f * (k % 7);
        }

        float *y[2], *ys[2], *z[2], *d0[2], *d1[2], *u1[2], *u2[2], *dw[2];
        double *sum[2], *sq[2];
        for (int t = 0; t < 2; t++) {
            conv_test_set_threads(threads[t]);
            u1[t] = pack(v, &s, w, 0);
            u2[t] = pack(v, &s, w, 1);
            y[t] = conv_test_alloc(ybcnt);
            ys[t] = conv_test_alloc(ybcnt);
            z[t] = conv_test_alloc(ybcnt);
            d0[t] = conv_test_alloc(xbcnt);
            d1[t] = conv_test_dup(xb, xbcnt);
            sum[t] = conv_test_dalloc(s.k);
            sq[t] = conv_test_dalloc(s.k);
            v->fwd(&s, xb, u1[t], y[t]);
            v->stats(&s, xb, u1[t], ys[t], sum[t], sq[t]);
            v->infer(&s, xb, u1[t], z[t], gm, bt, mu, var, 1e-3f);
            v->bwd(&s, gb, u2[t], d0[t], 0);
            v->bwd(&s, gb, u2[t], d1[t], 1);
            dw[t] = conv_test_alloc(wcnt);
            v->bww(&s, xb, gb, dw[t]);
        }
        conv_test_set_threads(2);
        char what[96];
        snprintf(what, sizeof what, "%s, %d vs %d threads%s", v->name, threads[0], threads[1], few ? ", 3x3 map" : "");
        conv_test_same_bits(u1[0], u1[1], v->fwd_floats(&s) * sizeof(float), what);
        conv_test_same_bits(u2[0], u2[1], v->bwd_floats(&s) * sizeof(float), what);
        conv_test_same_bits(y[0], y[1], ybcnt * sizeof(float), what);
        conv_test_same_bits(ys[0], ys[1], ybcnt * sizeof(float), what);
        conv_test_same_bits(z[0], z[1], ybcnt * sizeof(float), what);
        conv_test_same_bits(d0[0], d0[1], xbcnt * sizeof(float), what);
        conv_test_same_bits(d1[0], d1[1], xbcnt * sizeof(float), what);
        conv_test_same_bits(dw[0], dw[1], wcnt * sizeof(float), what);
        conv_test_same_bits(sum[0], sum[1], (size_t)s.k * sizeof(double), what);
        conv_test_same_bits(sq[0], sq[1], (size_t)s.k * sizeof(double), what);
        for (int t = 0; t < 2; t++) {
            packed_free(u1[t], 0);
            packed_free(u2[t], 1);
            free(y[t]);
            free(ys[t]);
            free(z[t]);
            free(d0[t]);
            free(d1[t]);
            free(dw[t]);
            free(sum[t]);
            free(sq[t]);
        }
        free(x);
        free(g);
        free(w);
        free(xb);
        free(gb);
        free(gm);
        free(bt);
        free(mu);
        free(var);
    }
}

/* ---- backward-weights over several chunks of tiles ---- */

/* Shapes with more tiles than one chunk of the backward-weights pass holds (common/
 * winograd_bwd_weights_driver.h: a chunk's V and E take 2 MiB or twice Mw, alpha^2 (c + k) floats per
 * tile), the last chunk shorter than the others: F(6x6) on 256 -> 256 channels takes 256 tiles per chunk,
 * and 11 images of 29x29 make 275 (chunks of 138 and 137); F(4, 7) takes 256, and 7 images of 27x25 make
 * 1323 (5 of 221 and one of 218).
 * Against the ISA's direct kernel (the reference kernel is too slow for these sizes; the direct one is
 * checked against it in test_kernels_conv_bwd_weights), with the floor of weights_err from the direct
 * gradient of the absolute values. Native runs only. */
static void test_bwd_weights_chunks(void **state)
{
    (void)state;
    load_variants();
    if (conv_test_emulated()) {
        printf("  skipped under emulation (several chunks need large shapes)\n");
        return;
    }
    conv_test_rng = 0xC4A7ull;
    static const struct {
        const char *tag;
        conv_case cc;
    } cases[] = {
        {"f6x6_3x3", {11, 256, 29, 29, 256, 3, 3, 1, 1, 1, 1, 1, 1}},
        {"f4_1x7", {7, 256, 27, 25, 256, 1, 7, 1, 1, 0, 3, 0, 3}},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const wg_variant *v = NULL;
        for (size_t vi = 0; vi < nvariants; vi++)
            if (strcmp(variants[vi].name, cases[ci].tag) == 0)
                v = &variants[vi];
        assert_non_null(v);
        const incv3_conv_shape s = conv_case_shape(&cases[ci].cc);
        assert_true(wg_supports(v, &s));
        const incv3_dims dx = {s.n, s.c, s.h, s.w}, dy = {s.n, s.k, s.oh, s.ow};
        const size_t xcnt = incv3_dims_count(dx), ycnt = incv3_dims_count(dy);
        const size_t wcnt = (size_t)s.k * s.c * s.kh * s.kw;
        float *x = conv_test_alloc(xcnt), *g = conv_test_alloc(ycnt);
        conv_test_fill(x, xcnt);
        conv_test_fill(g, ycnt);
        float *xa = abs_copy(x, xcnt), *ga = abs_copy(g, ycnt);
        float *xb = conv_test_to_blocked(dx, x), *gb = conv_test_to_blocked(dy, g);
        float *xab = conv_test_to_blocked(dx, xa), *gab = conv_test_to_blocked(dy, ga);
        float *want = conv_test_alloc(wcnt), *absref = conv_test_alloc(wcnt), *dww = conv_test_alloc(wcnt);
        const incv3_conv_bwd_weights_fn direct = kernel_test_direct(INCV3_CONV_BWD_WEIGHTS, &s)->fn.bwd_weights;
        direct(&s, xb, gb, want);
        direct(&s, xab, gab, absref);
        conv_test_fill_nan(dww, wcnt);
        v->bww(&s, xb, gb, dww);
        char what[192];
        conv_case_describe(&cases[ci].cc, what, sizeof what);
        snprintf(what + strlen(what), sizeof what - strlen(what), " %s bwd-weights, chunks", v->name);
        check_err(weights_err(&s, dww, want, absref, what), v->tol, what);
        free(x);
        free(g);
        free(xa);
        free(ga);
        free(xb);
        free(gb);
        free(xab);
        free(gab);
        free(dww);
        free(want);
        free(absref);
    }
}

/* ---- supports() ---- */

static void test_supports(void **state)
{
    (void)state;
    load_variants();
    for (size_t vi = 0; vi < nvariants; vi++) {
        const wg_variant *v = &variants[vi];
        conv_case ok = {2, 16, 12, 12, 16, v->kh, v->kw, 1, 1, v->kh - 1, v->kw - 1, 0, 0};
        incv3_conv_shape s = conv_case_shape(&ok);
        assert_true(wg_supports(v, &s));
        /* stride 2 in either dimension */
        conv_case c2 = ok;
        c2.sh = 2;
        s = conv_case_shape(&c2);
        assert_false(wg_supports(v, &s));
        c2 = ok;
        c2.sw = 2;
        s = conv_case_shape(&c2);
        assert_false(wg_supports(v, &s));
        /* another kernel size */
        const int other[][2] = {{3, 3}, {1, 3}, {3, 1}, {1, 7}, {7, 1}, {5, 5}, {1, 1}};
        for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
            if (other[i][0] == v->kh && other[i][1] == v->kw)
                continue;
            conv_case ck = ok;
            ck.kh = other[i][0];
            ck.kw = other[i][1];
            ck.pt = ck.pl = 0;
            s = conv_case_shape(&ck);
            assert_false(wg_supports(v, &s));
        }
        /* padding of a whole kernel or more */
        conv_case cp = ok;
        if (v->kh > 1) {
            cp.pb = v->kh;
            s = conv_case_shape(&cp);
            assert_false(wg_supports(v, &s));
        }
        cp = ok;
        cp.pr = v->kw;
        s = conv_case_shape(&cp);
        assert_false(wg_supports(v, &s));
    }
}

/* ---- accuracy on the seed model's shapes, realistic data, against double precision ---- */

static double normal(void)
{
    double u = ((double)conv_test_u32() + 0.5) / 4294967296.0, w = (double)conv_test_u32() / 4294967296.0;
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * w);
}

/* y = conv(x, w) in double, NCHW, stride 1. */
static void conv_fwd_double(const incv3_conv_shape *s, const float *x, const float *w, double *y)
{
    const int OH = s->oh, OW = s->ow;
    memset(y, 0, (size_t)s->n * s->k * OH * OW * sizeof *y);
    for (int n = 0; n < s->n; n++)
        for (int k = 0; k < s->k; k++) {
            double *yk = y + ((size_t)n * s->k + k) * OH * OW;
            for (int c = 0; c < s->c; c++) {
                const float *xc = x + ((size_t)n * s->c + c) * s->h * s->w;
                for (int r = 0; r < s->kh; r++)
                    for (int q = 0; q < s->kw; q++) {
                        const double wv = w[(((size_t)k * s->c + c) * s->kh + r) * s->kw + q];
                        const int ow0 = s->pad_left - q > 0 ? s->pad_left - q : 0;
                        const int ow1 = s->w + s->pad_left - q < OW ? s->w + s->pad_left - q : OW;
                        for (int oh = 0; oh < OH; oh++) {
                            const int ih = oh + r - s->pad_top;
                            if (ih < 0 || ih >= s->h)
                                continue;
                            const float *xr = xc + (size_t)ih * s->w + q - s->pad_left;
                            double *yr = yk + (size_t)oh * OW;
                            for (int ow = ow0; ow < ow1; ow++)
                                yr[ow] += wv * xr[ow];
                        }
                    }
            }
        }
}

/* dx = transposed conv(dy, w) in double, NCHW, stride 1. */
static void conv_bwd_data_double(const incv3_conv_shape *s, const float *dy, const float *w, double *dx)
{
    const int OH = s->oh, OW = s->ow, H = s->h, W = s->w;
    memset(dx, 0, (size_t)s->n * s->c * H * W * sizeof *dx);
    for (int n = 0; n < s->n; n++)
        for (int c = 0; c < s->c; c++) {
            double *xc = dx + ((size_t)n * s->c + c) * H * W;
            for (int k = 0; k < s->k; k++) {
                const float *yk = dy + ((size_t)n * s->k + k) * OH * OW;
                for (int r = 0; r < s->kh; r++)
                    for (int q = 0; q < s->kw; q++) {
                        const double wv = w[(((size_t)k * s->c + c) * s->kh + r) * s->kw + q];
                        /* dx[oh + r - pt][ow + q - pl] += w * dy[oh][ow] */
                        const int ow0 = s->pad_left - q > 0 ? s->pad_left - q : 0;
                        const int ow1 = W + s->pad_left - q < OW ? W + s->pad_left - q : OW;
                        for (int oh = 0; oh < OH; oh++) {
                            const int ih = oh + r - s->pad_top;
                            if (ih < 0 || ih >= H)
                                continue;
                            double *xr = xc + (size_t)ih * W + q - s->pad_left;
                            const float *yr = yk + (size_t)oh * OW;
                            for (int ow = ow0; ow < ow1; ow++)
                                xr[ow] += wv * yr[ow];
                        }
                    }
            }
        }
}

/* dw = dL/dw of y = conv(x, w) for the output gradient dy, in double, OIHW, stride 1. */
static void conv_bwd_weights_double(const incv3_conv_shape *s, const float *x, const float *dy, double *dw)
{
    const int OH = s->oh, OW = s->ow;
    for (int k = 0; k < s->k; k++)
        for (int c = 0; c < s->c; c++)
            for (int r = 0; r < s->kh; r++)
                for (int q = 0; q < s->kw; q++) {
                    const int ow0 = s->pad_left - q > 0 ? s->pad_left - q : 0;
                    const int ow1 = s->w + s->pad_left - q < OW ? s->w + s->pad_left - q : OW;
                    double acc = 0.0;
                    for (int n = 0; n < s->n; n++) {
                        const float *xc = x + ((size_t)n * s->c + c) * s->h * s->w;
                        const float *yk = dy + ((size_t)n * s->k + k) * OH * OW;
                        for (int oh = 0; oh < OH; oh++) {
                            const int ih = oh + r - s->pad_top;
                            if (ih < 0 || ih >= s->h)
                                continue;
                            const float *xr = xc + (size_t)ih * s->w + q - s->pad_left;
                            const float *yr = yk + (size_t)oh * OW;
                            for (int ow = ow0; ow < ow1; ow++)
                                acc += (double)xr[ow] * yr[ow];
                        }
                    }
                    dw[(((size_t)k * s->c + c) * s->kh + r) * s->kw + q] = acc;
                }
}

/* Norm-wise relative error of an OIhw8i8o weight gradient against a double OIHW one. */
static double rel_err_double(const float *got, const double *want, size_t count)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < count; i++) {
        const double e = (double)got[i] - want[i];
        num += e * e;
        den += want[i] * want[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static double weights_err_vs_double(const incv3_conv_shape *s, const float *dw, const double *want)
{
    return rel_err_double(dw, want, (size_t)s->k * s->c * s->kh * s->kw);
}

static double err_vs_double(incv3_dims d, const float *b, const double *want)
{
    const size_t cnt = incv3_dims_count(d);
    float *got = conv_test_alloc(cnt);
    reorder_nchw8c_to_nchw_f32(d, b, got);
    const double e = rel_err_double(got, want, cnt);
    free(got);
    return e;
}

static void test_seed_model_accuracy(void **state)
{
    (void)state;
    load_variants();
    conv_test_rng = 0x5EEDACC0ull;
    conv_case cases[128];
    const size_t ncases = conv_cases_seed_model(cases, 128);
    double worst_f[MAX_VARIANTS] = {0}, worst_b[MAX_VARIANTS] = {0}, worst_w[MAX_VARIANTS] = {0};
    int ran[MAX_VARIANTS] = {0};
    const int emu = conv_test_emulated();
    for (size_t i = 0; i < ncases; i++) {
        conv_case cc = cases[i];
        cc.n = 2;
        if (emu) {
            /* emulated: the model's kernels, paddings and strides on at most 16 channels and 17x17, and only
             * shapes that give a variant its first run */
            cc.n = 1;
            cc.c = cc.c < 16 ? cc.c : 16;
            cc.k = cc.k < 16 ? cc.k : 16;
            cc.h = cc.h < 17 ? cc.h : 17;
            cc.w = cc.w < 17 ? cc.w : 17;
        }
        incv3_conv_shape s = conv_case_shape(&cc);
        int any = 0;
        for (size_t vi = 0; vi < nvariants; vi++)
            any |= variants[vi].supports(&s) && (!emu || ran[vi] == 0);
        if (!any)
            continue;
        /* batch 2 for the smaller layers, 1 for the largest (the double reference is the slow part) */
        if (incv3_conv_macs(&s) > 400e6) {
            cc.n = 1;
            s = conv_case_shape(&cc);
        }
        const incv3_dims dx = {s.n, s.c, s.h, s.w}, dy = {s.n, s.k, s.oh, s.ow};
        const size_t xcnt = incv3_dims_count(dx), ycnt = incv3_dims_count(dy), wcnt = (size_t)s.k * s.c * s.kh * s.kw;
        float *x = conv_test_alloc(xcnt), *w = conv_test_alloc(wcnt), *g = conv_test_alloc(ycnt);
        const double he = sqrt(2.0 / ((double)s.c * s.kh * s.kw));
        for (size_t j = 0; j < xcnt; j++)
            x[j] = (float)fmax(0.0, normal());
        for (size_t j = 0; j < wcnt; j++)
            w[j] = (float)(normal() * he);
        for (size_t j = 0; j < ycnt; j++)
            g[j] = (float)normal();
        double *yd = conv_test_dalloc(ycnt), *xd = conv_test_dalloc(xcnt), *wd = conv_test_dalloc(wcnt);
        conv_fwd_double(&s, x, w, yd);
        conv_bwd_data_double(&s, g, w, xd);
        conv_bwd_weights_double(&s, x, g, wd);
        float *xb = conv_test_to_blocked(dx, x), *gb = conv_test_to_blocked(dy, g);
        float *yb = conv_test_alloc(reorder_nchw8c_count(dy)), *db = conv_test_alloc(reorder_nchw8c_count(dx));
        float *dwb = conv_test_alloc(wcnt);
        for (size_t vi = 0; vi < nvariants; vi++) {
            const wg_variant *v = &variants[vi];
            if (!v->supports(&s))
                continue;
            float *uf = pack(v, &s, w, 0), *ub = pack(v, &s, w, 1);
            v->fwd(&s, xb, uf, yb);
            v->bwd(&s, gb, ub, db, 0);
            v->bww(&s, xb, gb, dwb);
            const double ef = err_vs_double(dy, yb, yd), eb = err_vs_double(dx, db, xd);
            const double ew = weights_err_vs_double(&s, dwb, wd);
            char what[192];
            conv_case_describe(&cc, what, sizeof what);
            if (verbose)
                printf("  %-44s %-9s fwd %.3g bwd %.3g bwd-weights %.3g\n", what, v->name, ef, eb, ew);
            if (!(ef <= 1e-4) || !(eb <= 1e-4) || !(ew <= 1e-4)) {
                fprintf(stderr, "%s %s: fwd err %.3g, bwd-data err %.3g, bwd-weights err %.3g > 1e-4\n", what,
                        v->name, ef, eb, ew);
                fail();
            }
            worst_f[vi] = fmax(worst_f[vi], ef);
            worst_b[vi] = fmax(worst_b[vi], eb);
            worst_w[vi] = fmax(worst_w[vi], ew);
            ran[vi]++;
            packed_free(uf, 0);
            packed_free(ub, 1);
        }
        free(x);
        free(w);
        free(g);
        free(yd);
        free(xd);
        free(wd);
        free(dwb);
        free(xb);
        free(gb);
        free(yb);
        free(db);
    }
    printf("  seed model shapes, post-ReLU x, He weights, vs double: worst norm-wise rel err\n");
    for (size_t vi = 0; vi < nvariants; vi++) {
        printf("    %-10s fwd %.3g  bwd-data %.3g  bwd-weights %.3g  (%d shapes)\n", variants[vi].name, worst_f[vi],
               worst_b[vi], worst_w[vi], ran[vi]);
        assert_true(ran[vi] > 0);
    }
}

int main(void)
{
    verbose = getenv("INCV3_TEST_VERBOSE") != NULL;
    conv_test_set_threads(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_supports),
        cmocka_unit_test(test_listed),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_bwd_weights_chunks),
        cmocka_unit_test(test_seed_model_accuracy),
    };
    return KERNEL_TEST_RUN("test_kernels_winograd", tests);
}
