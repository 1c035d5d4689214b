/* Shared by the kernel tests: random data, shape cases (listed, random, and every distinct convolution of
 * the seed model), the norm-wise relative error and the loop checking it over cases, blocked-layout checks,
 * the thread count, the emulated mode (INCV3_TEST_EMULATED=1: reduced shape lists) and the loop running a
 * test group once for every vector ISA this build and CPU have (kernel_test_run). Include after <cmocka.h>. */
#ifndef INCV3_CONV_TEST_UTIL_H
#define INCV3_CONV_TEST_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "incv3/model.h"
#include "kernel_set.h"
#include "kernel_types.h"
#include "layout/reorder.h"
#include "registry.h"
#ifdef _OPENMP
#include <omp.h>
#endif

static uint64_t conv_test_rng = 0x9E3779B97F4A7C15ull;

static inline uint32_t conv_test_u32(void)
{
    conv_test_rng ^= conv_test_rng << 13;
    conv_test_rng ^= conv_test_rng >> 7;
    conv_test_rng ^= conv_test_rng << 17;
    return (uint32_t)(conv_test_rng >> 32);
}

/* Uniform integer in [lo, hi]. */
static inline int conv_test_int(int lo, int hi)
{
    return lo + (int)(conv_test_u32() % (uint32_t)(hi - lo + 1));
}

/* Uniform in [-1, 1). */
static inline void conv_test_fill(float *p, size_t count)
{
    for (size_t i = 0; i < count; i++)
        p[i] = (float)conv_test_u32() / 4294967296.0f * 2.0f - 1.0f;
}

static inline float *conv_test_alloc(size_t count)
{
    float *p = malloc((count ? count : 1) * sizeof *p);
    assert_non_null(p);
    return p;
}

/* OpenMP threads of the kernels under test (bitwise-determinism checks run 1 and 2). Under
 * OMP_THREAD_LIMIT=1 (the emulated cross runs) every count runs one thread, and those checks hold
 * trivially. */
static inline void conv_test_set_threads(int t)
{
#ifdef _OPENMP
    omp_set_num_threads(t);
#else
    (void)t;
#endif
}

/* The thread count parallel regions ask for now (1 without OpenMP). */
static inline int conv_test_max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* A thread count other than the current one: 1, or 3 where the current one is 1. */
static inline int conv_test_other_threads(void)
{
    return conv_test_max_threads() > 1 ? 1 : 3;
}

/* 1 under INCV3_TEST_EMULATED=1 (the AArch64 cross build runs the tests under qemu-user, ~50x slower than
 * hardware): the kernel tests take their reduced shape lists, which still cover odd sizes, channels not
 * multiples of 8, stride 2, padding, batch 1 and accumulate 0/1. */
static inline int conv_test_emulated(void)
{
    const char *e = getenv("INCV3_TEST_EMULATED");
    return e && strcmp(e, "1") == 0;
}

/* NaN everywhere, so an output element a kernel forgets to write shows up in the error. */
static inline void conv_test_fill_nan(float *p, size_t count)
{
    for (size_t i = 0; i < count; i++)
        p[i] = NAN;
}

static inline double *conv_test_dalloc(size_t count)
{
    double *p = malloc((count ? count : 1) * sizeof *p);
    assert_non_null(p);
    return p;
}

/* A fresh NCHW8c copy of an NCHW tensor. */
static inline float *conv_test_to_blocked(incv3_dims d, const float *nchw)
{
    float *b = conv_test_alloc(reorder_nchw8c_count(d));
    reorder_nchw_to_nchw8c_f32(d, nchw, b);
    return b;
}

static inline float *conv_test_dup(const float *p, size_t count)
{
    float *q = conv_test_alloc(count);
    memcpy(q, p, count * sizeof *q);
    return q;
}

static inline double conv_test_rel_err(const float *got, const float *want, size_t count)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < count; i++) {
        const double d = (double)got[i] - want[i];
        num += d * d;
        den += (double)want[i] * want[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* ---- blocked (NCHW8c) results ---- */

/* Every padding lane of a blocked tensor (channel >= d.c of the last block): bitwise that of want_bits
 * where want_bits is non-NULL (a kernel that accumulates keeps them), else zero: +0 only (any_sign 0) or
 * either sign (any_sign 1). what names the result in the message. */
static inline void conv_test_check_padding(incv3_dims d, const float *b, const float *want_bits, int any_sign,
                                           const char *what)
{
    const int CB = incv3_blocks8(d.c);
    const size_t hw = (size_t)d.h * d.w;
    for (int n = 0; n < d.n; n++)
        for (int cb = 0; cb < CB; cb++)
            for (int l = 0; l < 8; l++) {
                if (cb * 8 + l < d.c)
                    continue;
                for (size_t p = 0; p < hw; p++) {
                    const size_t i = (((size_t)n * CB + cb) * hw + p) * 8 + l;
                    const int ok = want_bits ? memcmp(&b[i], &want_bits[i], sizeof *b) == 0
                                             : b[i] == 0.0f && (any_sign || !signbit(b[i]));
                    if (!ok) {
                        print_error("%s: padding lane not zero: n%d cb%d l%d p%zu = %g\n", what ? what : "blocked",
                                    n, cb, l, p, b[i]);
                        fail();
                    }
                }
            }
}

/* Norm-wise relative error of a blocked result against an NCHW reference; the padding lanes must be zero
 * (+0 only unless any_sign). */
static inline double conv_test_blocked_err(incv3_dims d, const float *b, const float *want, int any_sign)
{
    const size_t cnt = incv3_dims_count(d);
    float *got = conv_test_alloc(cnt);
    reorder_nchw8c_to_nchw_f32(d, b, got);
    const double e = conv_test_rel_err(got, want, cnt);
    free(got);
    conv_test_check_padding(d, b, NULL, any_sign, NULL);
    return e;
}

static inline void conv_test_same_bits(const void *a, const void *b, size_t bytes, const char *what)
{
    if (memcmp(a, b, bytes) != 0) {
        print_error("%s: results differ bitwise\n", what);
        fail();
    }
}

/* Per-channel parameter arrays of c entries followed by sentinels that must stay untouched. */
#define CONV_TEST_GUARD 8
static inline float *conv_test_param_alloc(int c)
{
    float *p = conv_test_alloc((size_t)c + CONV_TEST_GUARD);
    for (int i = 0; i < c + CONV_TEST_GUARD; i++)
        p[i] = 12345.0f;
    return p;
}

static inline void conv_test_assert_guard(const float *p, int c)
{
    for (int i = c; i < c + CONV_TEST_GUARD; i++)
        assert_true(p[i] == 12345.0f);
}

static inline double *conv_test_dparam_alloc(int c)
{
    double *p = conv_test_dalloc((size_t)c + CONV_TEST_GUARD);
    for (int i = 0; i < c + CONV_TEST_GUARD; i++)
        p[i] = 12345.0;
    return p;
}

static inline void conv_test_assert_dguard(const double *p, int c)
{
    for (int i = c; i < c + CONV_TEST_GUARD; i++)
        assert_true(p[i] == 12345.0);
}

typedef struct conv_case {
    int n, c, h, w, k, kh, kw, sh, sw, pt, pl, pb, pr;
} conv_case;

static inline incv3_conv_shape conv_case_shape(const conv_case *cc)
{
    incv3_conv_shape s = {.n = cc->n, .c = cc->c, .h = cc->h, .w = cc->w, .k = cc->k, .kh = cc->kh, .kw = cc->kw,
                          .stride_h = cc->sh, .stride_w = cc->sw, .pad_top = cc->pt, .pad_left = cc->pl,
                          .pad_bottom = cc->pb, .pad_right = cc->pr};
    assert_int_equal(incv3_conv_shape_finish(&s), 0);
    return s;
}

static inline void conv_case_describe(const conv_case *c, char *buf, size_t len)
{
    snprintf(buf, len, "n%d c%d %dx%d k%d %dx%d s%d,%d p%d,%d,%d,%d", c->n, c->c, c->h, c->w, c->k, c->kh, c->kw,
             c->sh, c->sw, c->pt, c->pl, c->pb, c->pr);
}

/* Listed shapes every convolution kernel test checks; the tables after it are shared by some of the tests,
 * and each test lists the shapes only it checks in a table of its own. */
static const conv_case conv_cases_listed[] = {
    /* n  c   h   w   k kh kw sh sw pt pl pb pr */
    {1, 8, 9, 9, 16, 3, 3, 1, 1, 0, 0, 0, 0},
    {1, 8, 9, 9, 16, 3, 3, 1, 1, 1, 1, 1, 1},
    {5, 16, 11, 13, 24, 3, 3, 2, 2, 0, 0, 0, 0},
    {5, 16, 11, 13, 24, 3, 3, 2, 2, 1, 1, 1, 1},
    {1, 5, 10, 10, 8, 3, 3, 2, 2, 0, 0, 1, 1},
    {2, 13, 9, 7, 19, 3, 3, 1, 1, 2, 0, 1, 2},
    {1, 3, 15, 15, 32, 3, 3, 2, 2, 0, 0, 0, 0},
    {5, 16, 17, 17, 24, 1, 7, 1, 1, 0, 3, 0, 3},
    {5, 16, 17, 17, 24, 7, 1, 1, 1, 3, 0, 3, 0},
    {1, 13, 8, 8, 20, 1, 3, 1, 1, 0, 1, 0, 1},
    {1, 13, 8, 8, 20, 3, 1, 1, 1, 1, 0, 1, 0},
    {5, 13, 7, 9, 21, 1, 1, 1, 1, 0, 0, 0, 0},
    {1, 3, 1, 1, 5, 1, 1, 1, 1, 0, 0, 0, 0},
    {1, 5, 3, 3, 8, 3, 3, 1, 1, 0, 0, 0, 0},
    {1, 8, 5, 5, 8, 5, 5, 1, 1, 2, 2, 2, 2},
    {2, 9, 6, 6, 10, 3, 3, 3, 3, 1, 1, 1, 1},
    {1, 8, 7, 7, 8, 3, 3, 1, 1, 4, 4, 4, 4}, /* padding wider than the kernel */
    {1, 16, 4, 40, 40, 3, 3, 1, 1, 1, 1, 1, 1},
    {1, 8, 2, 2, 16, 3, 3, 1, 1, 2, 2, 2, 2}, /* some taps see no input at all */
    {3, 24, 9, 31, 8, 3, 5, 1, 2, 1, 2, 1, 2},
    {2, 16, 9, 40, 16, 3, 3, 2, 2, 1, 1, 1, 1},
    {1, 16, 4, 12, 24, 1, 7, 1, 1, 0, 3, 0, 3},
    {1, 8, 3, 25, 8, 1, 5, 1, 1, 0, 0, 0, 4},
    {1, 8, 3, 25, 16, 1, 5, 1, 1, 0, 4, 0, 0},
};

/* Listed shapes of the forward and backward-data tests: one output block (12-pixel strips), widened border
 * regions, whole-row scratch. */
static const conv_case conv_cases_one_block[] = {
    {1, 8, 5, 30, 8, 3, 3, 1, 1, 1, 1, 1, 1},
    {1, 8, 5, 13, 8, 3, 3, 1, 1, 1, 1, 1, 1},
};

/* Listed shapes of the backward tests. */
static const conv_case conv_cases_strided[] = {
    /* strides larger than the kernel: some dx rows/columns get no tap at all */
    {2, 11, 9, 10, 7, 1, 1, 2, 2, 0, 0, 0, 0},
    {1, 9, 11, 8, 12, 1, 1, 3, 2, 0, 0, 0, 0},
    {1, 17, 10, 11, 9, 2, 2, 3, 3, 1, 0, 0, 1},
    /* asymmetric stride and padding, batch 5 */
    {5, 12, 13, 11, 17, 3, 3, 2, 1, 0, 1, 2, 0},
    {5, 20, 12, 14, 10, 3, 5, 1, 2, 2, 0, 0, 3},
    {5, 24, 15, 15, 16, 3, 3, 2, 2, 1, 0, 0, 1},
};
#define CONV_CASES_COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Runs one case with variant v (e.g. the accumulate flag) on fresh random data; returns the norm-wise
 * relative error against the reference. */
typedef double (*conv_case_run_fn)(const conv_case *c, int v);

/* For each case in order, runs variants 0 .. variants-1 in order and fails when a relative error is not
 * at most tol. vtag names the variant in the messages (" acc1" for "acc"); NULL when variants is 1. */
static inline void conv_check_cases(const conv_case *cases, size_t count, conv_case_run_fn run, int variants,
                                    const char *vtag, double tol)
{
    for (size_t i = 0; i < count; i++) {
        const conv_case *c = &cases[i];
        for (int v = 0; v < variants; v++) {
            const double rel = run(c, v);
            char what[160];
            conv_case_describe(c, what, sizeof what);
            if (vtag) {
                const size_t len = strlen(what);
                snprintf(what + len, sizeof what - len, " %s%d", vtag, v);
            }
            if (getenv("INCV3_TEST_VERBOSE"))
                printf("  %s: rel err %.3g\n", what, rel);
            if (!(rel <= tol)) {
                print_error("case %s: rel err %.3g\n", what, rel);
                fail();
            }
        }
    }
}

/* A random case: batch 1..max_n, channels 1..40 (mostly not multiples of 8), kernels up to 5x7, strides up
 * to 3, paddings up to 3 on each side, sizes that keep the kernel inside the padded input. */
static inline conv_case conv_case_random(int max_n)
{
    conv_case c;
    c.n = conv_test_int(1, max_n);
    c.c = conv_test_int(1, 40);
    c.k = conv_test_int(1, 40);
    c.kh = conv_test_int(1, 5);
    c.kw = conv_test_int(1, 7);
    c.sh = conv_test_int(1, 3);
    c.sw = conv_test_int(1, 3);
    c.pt = conv_test_int(0, 3);
    c.pb = conv_test_int(0, 3);
    c.pl = conv_test_int(0, 3);
    c.pr = conv_test_int(0, 3);
    c.h = conv_test_int(1, 20);
    c.w = conv_test_int(1, 30);
    if (c.h + c.pt + c.pb < c.kh)
        c.h = c.kh;
    if (c.w + c.pl + c.pr < c.kw)
        c.w = c.kw;
    return c;
}

/* Every distinct convolution of the seed model at 299x299 with the aux head, batch 1, read from the model
 * builder itself so the list cannot drift from the model. Returns the count (cases has room for max). */
static inline size_t conv_cases_seed_model(conv_case *cases, size_t max)
{
    incv3_model_config cfg = incv3_model_config_default();
    incv3_error err;
    incv3_graph *g = incv3_inception_v3(&cfg, &err);
    assert_non_null(g);
    size_t n = 0;
    for (size_t i = 0; i < incv3_graph_node_count(g); i++) {
        incv3_node_info ni;
        incv3_graph_node_info(g, (int)i, &ni);
        if (strcmp(ni.kind, "conv") != 0)
            continue;
        conv_case c = {1, ni.in_c, ni.in_h, ni.in_w, ni.c, ni.kh, ni.kw, ni.stride, ni.stride, ni.pad_h, ni.pad_w,
                       ni.pad_h, ni.pad_w};
        int seen = 0;
        for (size_t j = 0; j < n && !seen; j++)
            seen = memcmp(&cases[j], &c, sizeof c) == 0;
        if (!seen) {
            assert_true(n < max);
            cases[n++] = c;
        }
    }
    incv3_graph_free(g);
    return n;
}

/* Listed shapes of the emulated runs (conv_test_emulated()), in place of the tables above: odd sizes,
 * channels not multiples of 8, stride 2, padding (asymmetric, wider than the kernel), batch 1 and more,
 * 1x1, 1xn and nx1 kernels, one output block. */
static const conv_case conv_cases_emulated[] = {
    /* n  c   h   w   k kh kw sh sw pt pl pb pr */
    {1, 5, 10, 10, 8, 3, 3, 2, 2, 0, 0, 1, 1},
    {2, 13, 9, 7, 19, 3, 3, 1, 1, 2, 0, 1, 2},
    {2, 9, 6, 6, 10, 3, 3, 3, 3, 1, 1, 1, 1},
    {1, 16, 4, 12, 24, 1, 7, 1, 1, 0, 3, 0, 3},
    {1, 13, 8, 8, 20, 3, 1, 1, 1, 1, 0, 1, 0},
    {2, 13, 7, 9, 21, 1, 1, 1, 1, 0, 0, 0, 0},
    {1, 8, 7, 7, 8, 3, 3, 1, 1, 4, 4, 4, 4},
    {1, 8, 5, 13, 8, 3, 3, 1, 1, 1, 1, 1, 1},
    {1, 17, 10, 11, 9, 2, 2, 3, 3, 1, 0, 0, 1},
};

/* Random cases of a test: count natively, count / 10 (at least 3) emulated. */
static inline int conv_test_random_count(int count)
{
    if (!conv_test_emulated())
        return count;
    return count / 10 > 3 ? count / 10 : 3;
}

/* The seed model's distinct convolutions a test checks: natively all of them (conv_cases_seed_model);
 * emulated, the max of them with the fewest multiply-accumulates (the model's largest layers take minutes
 * under qemu). Returns the count. */
static inline size_t conv_cases_seed_model_for_run(conv_case *cases, size_t room, size_t max_emulated)
{
    const size_t n = conv_cases_seed_model(cases, room);
    assert_true(n > 30);
    if (!conv_test_emulated() || n <= max_emulated)
        return n;
    /* selection sort by MACs, first max_emulated */
    for (size_t i = 0; i < max_emulated; i++) {
        size_t best = i;
        for (size_t j = i + 1; j < n; j++) {
            const incv3_conv_shape a = conv_case_shape(&cases[j]), b = conv_case_shape(&cases[best]);
            if (incv3_conv_macs(&a) < incv3_conv_macs(&b))
                best = j;
        }
        const conv_case t = cases[i];
        cases[i] = cases[best];
        cases[best] = t;
    }
    return max_emulated;
}

/* ---- the ISA under test ---- */

/* Set by kernel_test_run for the group it runs: the vector ISA, its kernel set (NULL where the ISA has
 * convolution kernels but no set yet: the tests of the set fail then). */
static incv3_isa kernel_test_isa = INCV3_ISA_SCALAR;
static const incv3_kernel_set *kernel_test_set = NULL;

/* 1 when the kernels of a vector ISA are in this build (a kernel set, or blocked convolution kernels)
 * and this CPU runs them. */
static inline int kernel_test_isa_testable(incv3_isa isa)
{
    if (isa == INCV3_ISA_SCALAR || !incv3_isa_available(isa))
        return 0;
    return incv3_kernel_set_for(isa) != NULL || incv3_isa_has_layout(isa, INCV3_LAYOUT_NCHW8C);
}

/* The kernel set under test; fails when the ISA has none. */
static inline const incv3_kernel_set *kernel_test_kset(void)
{
    if (!kernel_test_set) {
        print_error("ISA %s has convolution kernels but no kernel set (kernel_set.h)\n",
                    incv3_isa_name(kernel_test_isa));
        fail();
    }
    return kernel_test_set;
}

/* The registry's direct blocked kernel of the ISA under test for pass and shape s; fails when there is
 * none (the direct kernels serve every shape). */
static inline const incv3_conv_kernel *kernel_test_direct(incv3_conv_pass pass, const incv3_conv_shape *s)
{
    const incv3_conv_kernel *k =
        incv3_conv_kernel_find(pass, kernel_test_isa, INCV3_LAYOUT_NCHW8C, "direct", s);
    if (!k) {
        print_error("no direct NCHW8c kernel of pass %d for ISA %s (n%d c%d %dx%d k%d %dx%d)\n", (int)pass,
                    incv3_isa_name(kernel_test_isa), s->n, s->c, s->h, s->w, s->k, s->kh, s->kw);
        fail();
    }
    return k;
}

/* Runs the group once for every vector ISA kernel_test_isa_testable() accepts, printing which; without
 * one, prints a SKIP line and returns 77 (meson's skip code). prog names the test in the messages. */
static inline int kernel_test_run(const char *prog, const struct CMUnitTest *tests, size_t count)
{
    int ran = 0, rc = 0;
    for (int i = 0; i < INCV3_ISA_COUNT; i++) {
        const incv3_isa isa = (incv3_isa)i;
        if (!kernel_test_isa_testable(isa))
            continue;
        kernel_test_isa = isa;
        kernel_test_set = incv3_kernel_set_for(isa);
        printf("%s: ISA %s%s\n", prog, incv3_isa_name(isa),
               conv_test_emulated() ? " (INCV3_TEST_EMULATED=1: reduced shape lists)" : "");
        fflush(stdout);
        char group[96];
        snprintf(group, sizeof group, "%s__%s", prog, incv3_isa_name(isa));
        rc |= _cmocka_run_group_tests(group, tests, count, NULL, NULL);
        ran++;
    }
    if (!ran) {
        printf("%s: SKIP: no vector ISA (avx2, neon) of this build runs on this CPU\n", prog);
        return 77;
    }
    return rc;
}
#define KERNEL_TEST_RUN(prog, tests) kernel_test_run(prog, tests, sizeof(tests) / sizeof((tests)[0]))

#endif
