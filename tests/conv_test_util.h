/* Shared by the convolution kernel tests: random data, shape cases (listed, random, and every distinct
 * convolution of the seed model), and the norm-wise relative error. Include after <cmocka.h>. */
#ifndef INCV3_CONV_TEST_UTIL_H
#define INCV3_CONV_TEST_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "incv3/model.h"
#include "kernel_types.h"

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

#endif
