/* The blocked (NCHW8c) kernels of the non-convolution layers (batch norm, ReLU, pooling) of every vector
 * ISA's kernel set and the blocked channel concatenation, against the scalar reference kernels through the
 * layout reorders. Runs once per vector ISA this build and CPU have; skipped (exit 77, meson's skip code)
 * where there is none. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layout/concat_blocked.h"
#include "layout/reorder.h"
#include "ref_kernels.h"
#include "conv_test_util.h"

/* Padding lanes of these kernels' outputs compare equal to 0 (either sign). */
static double blocked_err(incv3_dims d, const float *b, const float *want)
{
    return conv_test_blocked_err(d, b, want, 1);
}

static void assert_blocked_exact(incv3_dims d, const float *b, const float *want)
{
    const size_t cnt = incv3_dims_count(d);
    float *got = conv_test_alloc(cnt);
    reorder_nchw8c_to_nchw_f32(d, b, got);
    for (size_t i = 0; i < cnt; i++)
        if (memcmp(&got[i], &want[i], sizeof(float)) != 0) {
            fprintf(stderr, "mismatch at %zu: got %.9g want %.9g\n", i, got[i], want[i]);
            fail();
        }
    free(got);
    conv_test_check_padding(d, b, NULL, 1, NULL);
}

/* ---- batch normalization ---- */

typedef struct bn_out {
    float *y, *mean, *var, *yi, *dx[2], *dg[2], *db[2], *dxi[2], *dgi[2], *dbi[2];
} bn_out;

static void bn_run(incv3_dims d, const float *xb, const float *g, const float *b, const float *rm, const float *rv,
                   const float *dyb, const float *dx0b, float eps, bn_out *o)
{
    const size_t bcnt = reorder_nchw8c_count(d);
    o->y = conv_test_alloc(bcnt);
    o->yi = conv_test_alloc(bcnt);
    conv_test_fill_nan(o->y, bcnt);
    conv_test_fill_nan(o->yi, bcnt);
    o->mean = conv_test_param_alloc(d.c);
    o->var = conv_test_param_alloc(d.c);
    kernel_test_kset()->bn_fwd_train(d, xb, g, b, eps, o->y, o->mean, o->var);
    kernel_test_kset()->bn_fwd_infer(d, xb, g, b, rm, rv, eps, o->yi);
    for (int acc = 0; acc < 2; acc++) {
        o->dx[acc] = acc ? conv_test_dup(dx0b, bcnt) : conv_test_alloc(bcnt);
        o->dxi[acc] = acc ? conv_test_dup(dx0b, bcnt) : conv_test_alloc(bcnt);
        if (!acc) {
            conv_test_fill_nan(o->dx[acc], bcnt);
            conv_test_fill_nan(o->dxi[acc], bcnt);
        }
        o->dg[acc] = conv_test_param_alloc(d.c);
        o->db[acc] = conv_test_param_alloc(d.c);
        o->dgi[acc] = conv_test_param_alloc(d.c);
        o->dbi[acc] = conv_test_param_alloc(d.c);
        /* backward of the train forward uses the saved batch statistics (ref's, so both see the same) */
        kernel_test_kset()->bn_bwd_train(d, xb, dyb, g, rm, rv, eps, o->dx[acc], o->dg[acc], o->db[acc], acc);
        kernel_test_kset()->bn_bwd_infer(d, xb, dyb, g, rm, rv, eps, o->dxi[acc], o->dgi[acc], o->dbi[acc], acc);
    }
}

static void bn_free(bn_out *o)
{
    free(o->y);
    free(o->yi);
    free(o->mean);
    free(o->var);
    for (int a = 0; a < 2; a++) {
        free(o->dx[a]);
        free(o->dxi[a]);
        free(o->dg[a]);
        free(o->db[a]);
        free(o->dgi[a]);
        free(o->dbi[a]);
    }
}

static void bn_same_bits(incv3_dims d, const bn_out *a, const bn_out *b)
{
    const size_t bytes = reorder_nchw8c_count(d) * sizeof(float), pb = (size_t)d.c * sizeof(float);
    assert_memory_equal(a->y, b->y, bytes);
    assert_memory_equal(a->yi, b->yi, bytes);
    assert_memory_equal(a->mean, b->mean, pb);
    assert_memory_equal(a->var, b->var, pb);
    for (int k = 0; k < 2; k++) {
        assert_memory_equal(a->dx[k], b->dx[k], bytes);
        assert_memory_equal(a->dxi[k], b->dxi[k], bytes);
        assert_memory_equal(a->dg[k], b->dg[k], pb);
        assert_memory_equal(a->db[k], b->db[k], pb);
        assert_memory_equal(a->dgi[k], b->dgi[k], pb);
        assert_memory_equal(a->dbi[k], b->dbi[k], pb);
    }
}

static void check_bn(int n, int c, int h, int w, float shift)
{
    const incv3_dims d = {n, c, h, w};
    const size_t cnt = incv3_dims_count(d);
    const float eps = 1e-3f;
    float *x = conv_test_alloc(cnt), *dy = conv_test_alloc(cnt), *dx0 = conv_test_alloc(cnt);
    float *g = conv_test_alloc(c), *b = conv_test_alloc(c);
    conv_test_fill(x, cnt);
    conv_test_fill(dy, cnt);
    conv_test_fill(dx0, cnt);
    conv_test_fill(g, c);
    conv_test_fill(b, c);
    for (size_t i = 0; i < cnt; i++)
        x[i] = x[i] * 2.0f + shift; /* a mean far from 0 tests the two-pass variance */

    float *y = conv_test_alloc(cnt), *mean = conv_test_alloc(c), *var = conv_test_alloc(c), *yi = conv_test_alloc(cnt);
    bn_fwd_train_f32_ref__scalar(d, x, g, b, eps, y, mean, var);
    bn_fwd_infer_f32_ref__scalar(d, x, g, b, mean, var, eps, yi);

    float *xb = conv_test_to_blocked(d, x), *dyb = conv_test_to_blocked(d, dy), *dx0b = conv_test_to_blocked(d, dx0);
    bn_out o1, o2;
    conv_test_set_threads(1);
    bn_run(d, xb, g, b, mean, var, dyb, dx0b, eps, &o1);
    conv_test_set_threads(2);
    bn_run(d, xb, g, b, mean, var, dyb, dx0b, eps, &o2);
    bn_same_bits(d, &o1, &o2);

    assert_true(blocked_err(d, o1.y, y) <= 1e-5);
    assert_true(blocked_err(d, o1.yi, yi) <= 1e-5);
    assert_true(conv_test_rel_err(o1.mean, mean, c) <= 1e-6);
    assert_true(conv_test_rel_err(o1.var, var, c) <= 1e-6);
    conv_test_assert_guard(o1.mean, c);
    conv_test_assert_guard(o1.var, c);

    float *dx = conv_test_alloc(cnt), *dg = conv_test_alloc(c), *db = conv_test_alloc(c);
    for (int acc = 0; acc < 2; acc++) {
        for (int mode = 0; mode < 2; mode++) {
            if (acc)
                memcpy(dx, dx0, cnt * sizeof *dx);
            if (mode == 0)
                bn_bwd_train_f32_ref__scalar(d, x, dy, g, mean, var, eps, dx, dg, db, acc);
            else
                bn_bwd_infer_f32_ref__scalar(d, x, dy, g, mean, var, eps, dx, dg, db, acc);
            const float *gdx = mode ? o1.dxi[acc] : o1.dx[acc];
            const float *gdg = mode ? o1.dgi[acc] : o1.dg[acc], *gdb = mode ? o1.dbi[acc] : o1.db[acc];
            const double edx = blocked_err(d, gdx, dx), edg = conv_test_rel_err(gdg, dg, c),
                         edb = conv_test_rel_err(gdb, db, c);
            if (!(edx <= 1e-5 && edg <= 1e-5 && edb <= 1e-5)) {
                fprintf(stderr, "bn bwd n%d c%d %dx%d shift %g mode %d acc %d: dx %.3g dgamma %.3g dbeta %.3g\n", n, c,
                        h, w, shift, mode, acc, edx, edg, edb);
                fail();
            }
            conv_test_assert_guard(gdg, c);
            conv_test_assert_guard(gdb, c);
        }
    }

    bn_free(&o1);
    bn_free(&o2);
    free(x), free(dy), free(dx0), free(g), free(b), free(y), free(mean), free(var), free(yi);
    free(xb), free(dyb), free(dx0b), free(dx), free(dg), free(db);
}

static const int test_channels[] = {1, 3, 5, 8, 13, 16, 52, 96};

static void test_bn(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof test_channels / sizeof *test_channels; i++) {
        const int c = test_channels[i];
        check_bn(1, c, 7, 5, 0.0f);
        check_bn(3, c, 5, 9, 0.0f);
        check_bn(3, c, 1, 1, 0.0f);
        check_bn(1, c, 17, 17, 50.0f);
        check_bn(3, c, 8, 8, 0.0f);
    }
    check_bn(2, 20, 35, 35, 0.0f);
    check_bn(3, 3, 37, 31, 3.0f);
}

/* ---- ReLU ---- */

static void check_relu(size_t count)
{
    float *x = conv_test_alloc(count), *y = conv_test_alloc(count), *yr = conv_test_alloc(count);
    float *dy = conv_test_alloc(count), *dx = conv_test_alloc(count), *dxr = conv_test_alloc(count);
    conv_test_fill(x, count);
    conv_test_fill(dy, count);
    for (size_t i = 0; i < count; i += 7)
        x[i] = 0.0f;
    for (size_t i = 3; i < count; i += 11)
        x[i] = -0.0f;
    for (size_t i = 5; i < count; i += 101)
        x[i] = NAN;
    for (int t = 1; t <= 2; t++) {
        conv_test_set_threads(t);
        conv_test_fill_nan(y, count);
        kernel_test_kset()->relu_fwd(count, x, y);
        relu_fwd_f32_ref__scalar(count, x, yr);
        assert_memory_equal(y, yr, count * sizeof *y);
        for (int acc = 0; acc < 2; acc++) {
            if (acc) {
                conv_test_fill(dx, count);
                memcpy(dxr, dx, count * sizeof *dx);
            } else {
                conv_test_fill_nan(dx, count);
            }
            kernel_test_kset()->relu_bwd(count, yr, dy, dx, acc);
            relu_bwd_f32_ref__scalar(count, yr, dy, dxr, acc);
            assert_memory_equal(dx, dxr, count * sizeof *dx);
        }
    }
    free(x), free(y), free(yr), free(dy), free(dx), free(dxr);
}

static void test_relu(void **state)
{
    (void)state;
    const size_t counts[] = {1, 7, 8, 9, 15, 16, 17, 31, 100, 4095, 4097, 32768, 40000 + 3, 300001};
    for (size_t i = 0; i < sizeof counts / sizeof *counts; i++)
        check_relu(counts[i]);
}

/* ---- pooling ---- */

typedef struct pool_case {
    int kh, kw, s, pt, pl, pb, pr; /* kh == 0: global */
} pool_case;

static void pool_run(const incv3_pool_shape *s, const float *xb, const float *dyb, const float *dx0b, float **out)
{
    incv3_dims di = {s->n, s->c, s->h, s->w}, dout = {s->n, s->c, s->oh, s->ow};
    const size_t bi = reorder_nchw8c_count(di), bo = reorder_nchw8c_count(dout);
    out[0] = conv_test_alloc(bo);
    out[1] = conv_test_alloc(bo);
    conv_test_fill_nan(out[0], bo);
    conv_test_fill_nan(out[1], bo);
    kernel_test_kset()->maxpool_fwd(s, xb, out[0]);
    kernel_test_kset()->avgpool_fwd(s, xb, out[1]);
    for (int acc = 0; acc < 2; acc++) {
        float *m = acc ? conv_test_dup(dx0b, bi) : conv_test_alloc(bi), *a = acc ? conv_test_dup(dx0b, bi) : conv_test_alloc(bi);
        if (!acc) {
            conv_test_fill_nan(m, bi);
            conv_test_fill_nan(a, bi);
        }
        kernel_test_kset()->maxpool_bwd(s, xb, dyb, m, acc);
        kernel_test_kset()->avgpool_bwd(s, dyb, a, acc);
        out[2 + 2 * acc] = m;
        out[3 + 2 * acc] = a;
    }
}

/* ties: x drawn from a small integer set so that windows hold several maxima. */
static void check_pool(int n, int c, int h, int w, const pool_case *pc, int ties)
{
    incv3_pool_shape s = {.n = n, .c = c, .h = h, .w = w, .kh = pc->kh ? pc->kh : h, .kw = pc->kw ? pc->kw : w,
                          .stride_h = pc->s, .stride_w = pc->s, .pad_top = pc->pt, .pad_left = pc->pl,
                          .pad_bottom = pc->pb, .pad_right = pc->pr};
    if (incv3_pool_shape_finish(&s) != 0)
        return; /* window does not fit this size */
    incv3_dims di = {n, c, h, w}, dout = {n, c, s.oh, s.ow};
    const size_t ci = incv3_dims_count(di), co = incv3_dims_count(dout), bi = reorder_nchw8c_count(di),
                 bo = reorder_nchw8c_count(dout);
    float *x = conv_test_alloc(ci), *dy = conv_test_alloc(co), *dx0 = conv_test_alloc(ci);
    conv_test_fill(x, ci);
    conv_test_fill(dy, co);
    conv_test_fill(dx0, ci);
    if (ties)
        for (size_t i = 0; i < ci; i++)
            x[i] = (float)conv_test_int(-2, 1);
    float *xb = conv_test_to_blocked(di, x), *dyb = conv_test_to_blocked(dout, dy), *dx0b = conv_test_to_blocked(di, dx0);

    float *r1[6], *r2[6];
    conv_test_set_threads(1);
    pool_run(&s, xb, dyb, dx0b, r1);
    conv_test_set_threads(2);
    pool_run(&s, xb, dyb, dx0b, r2);
    for (int k = 0; k < 6; k++)
        assert_memory_equal(r1[k], r2[k], (k < 2 ? bo : bi) * sizeof(float));

    float *ym = conv_test_alloc(co), *ya = conv_test_alloc(co);
    maxpool_fwd_f32_ref__scalar(&s, x, ym);
    avgpool_fwd_f32_ref__scalar(&s, x, ya);
    assert_blocked_exact(dout, r1[0], ym);
    assert_true(blocked_err(dout, r1[1], ya) <= 1e-6);
    float *dm = conv_test_alloc(ci), *da = conv_test_alloc(ci);
    for (int acc = 0; acc < 2; acc++) {
        if (acc) {
            memcpy(dm, dx0, ci * sizeof *dm);
            memcpy(da, dx0, ci * sizeof *da);
        }
        maxpool_bwd_f32_ref__scalar(&s, x, dy, dm, acc);
        avgpool_bwd_f32_ref__scalar(&s, dy, da, acc);
        /* max routing must match the reference exactly (same cells, same order of additions) */
        assert_blocked_exact(di, r1[2 + 2 * acc], dm);
        assert_true(blocked_err(di, r1[3 + 2 * acc], da) <= 1e-6);
    }
    for (int k = 0; k < 6; k++) {
        free(r1[k]);
        free(r2[k]);
    }
    free(x), free(dy), free(dx0), free(xb), free(dyb), free(dx0b), free(ym), free(ya), free(dm), free(da);
}

static void test_pool(void **state)
{
    (void)state;
    static const pool_case cases[] = {
        {3, 3, 1, 1, 1, 1, 1}, /* branch pool */
        {3, 3, 2, 0, 0, 0, 0}, /* grid reduction */
        {5, 5, 3, 0, 0, 0, 0}, /* aux head */
        {0, 0, 1, 0, 0, 0, 0}, /* global */
        {2, 3, 2, 1, 0, 0, 2}, /* asymmetric, uneven padding */
    };
    static const int sizes[][2] = {{7, 7}, {8, 8}, {5, 9}, {17, 13}, {3, 3}, {1, 1}};
    for (size_t ci = 0; ci < sizeof test_channels / sizeof *test_channels; ci++)
        for (size_t k = 0; k < sizeof cases / sizeof *cases; k++)
            for (size_t z = 0; z < sizeof sizes / sizeof *sizes; z++)
                for (int ties = 0; ties < 2; ties++) {
                    const int n = (z + ties) % 2 ? 3 : 1;
                    check_pool(n, test_channels[ci], sizes[z][0], sizes[z][1], &cases[k], ties);
                }
    check_pool(2, 20, 35, 35, &cases[0], 1);
    check_pool(2, 20, 35, 35, &cases[1], 1);
    check_pool(1, 13, 17, 17, &cases[2], 1);
    check_pool(3, 52, 8, 8, &cases[3], 1);
}

static void test_pool_nan(void **state)
{
    (void)state;
    /* The first NaN of a window wins, as in the reference. */
    incv3_pool_shape s = {.n = 1, .c = 5, .h = 6, .w = 6, .kh = 3, .kw = 3, .stride_h = 1, .stride_w = 1,
                          .pad_top = 1, .pad_left = 1, .pad_bottom = 1, .pad_right = 1};
    assert_int_equal(incv3_pool_shape_finish(&s), 0);
    incv3_dims di = {1, 5, 6, 6}, dout = {1, 5, s.oh, s.ow};
    const size_t ci = incv3_dims_count(di), co = incv3_dims_count(dout);
    float *x = conv_test_alloc(ci), *dy = conv_test_alloc(co);
    for (size_t i = 0; i < ci; i++)
        x[i] = (float)conv_test_int(-2, 1);
    x[7] = NAN;
    x[40] = NAN;
    x[41] = -NAN;
    x[100] = INFINITY;
    x[140] = -INFINITY;
    conv_test_fill(dy, co);
    float *xb = conv_test_to_blocked(di, x), *dyb = conv_test_to_blocked(dout, dy);
    float *y = conv_test_alloc(reorder_nchw8c_count(dout)), *dx = conv_test_alloc(reorder_nchw8c_count(di));
    float *yr = conv_test_alloc(co), *dxr = conv_test_alloc(ci);
    kernel_test_kset()->maxpool_fwd(&s, xb, y);
    kernel_test_kset()->maxpool_bwd(&s, xb, dyb, dx, 0);
    maxpool_fwd_f32_ref__scalar(&s, x, yr);
    maxpool_bwd_f32_ref__scalar(&s, x, dy, dxr, 0);
    assert_blocked_exact(dout, y, yr);
    assert_blocked_exact(di, dx, dxr);
    free(x), free(dy), free(xb), free(dyb), free(y), free(dx), free(yr), free(dxr);
}

/* ---- concatenation ---- */

static void check_concat(int n, int h, int w, const int *sizes, int count)
{
    int dst_c = 0;
    for (int i = 0; i < count; i++)
        dst_c += sizes[i];
    const incv3_dims dd = {n, dst_c, h, w};
    const size_t hw = (size_t)h * w, dcnt = incv3_dims_count(dd), dbc = reorder_nchw8c_count(dd);

    /* NCHW concat of random slices as the oracle. */
    float *cat = conv_test_alloc(dcnt);
    conv_test_fill(cat, dcnt);
    float *catb = conv_test_to_blocked(dd, cat);
    float *dst = conv_test_alloc(dbc), *dst_nan = conv_test_alloc(dbc);
    memset(dst, 0, dbc * sizeof *dst);
    conv_test_fill_nan(dst_nan, dbc);

    float *ddst = conv_test_alloc(dcnt);
    conv_test_fill(ddst, dcnt);
    float *ddstb = conv_test_to_blocked(dd, ddst);

    float *srcbs[16];
    int offs[16];
    assert_true(count <= 16);
    int off = 0;
    for (int k = 0; k < count; k++) {
        const int sc = sizes[k];
        const incv3_dims ds = {n, sc, h, w};
        const size_t scnt = incv3_dims_count(ds), sbc = reorder_nchw8c_count(ds);
        float *src = conv_test_alloc(scnt), *dslice = conv_test_alloc(scnt), *prev = conv_test_alloc(scnt);
        for (int i = 0; i < n; i++) {
            memcpy(src + (size_t)i * sc * hw, cat + ((size_t)i * dst_c + off) * hw, (size_t)sc * hw * sizeof *src);
            memcpy(dslice + (size_t)i * sc * hw, ddst + ((size_t)i * dst_c + off) * hw, (size_t)sc * hw * sizeof *src);
        }
        float *srcb = conv_test_to_blocked(ds, src);
        concat_slice_fwd_f32_nchw8c(n, h, w, srcb, sc, dst, dst_c, off);
        srcbs[k] = srcb;
        offs[k] = off;

        for (int acc = 0; acc < 2; acc++) {
            float *dsrc = conv_test_alloc(sbc);
            if (acc) {
                conv_test_fill(prev, scnt);
                float *pb = conv_test_to_blocked(ds, prev);
                memcpy(dsrc, pb, sbc * sizeof *dsrc);
                free(pb);
                for (size_t i = 0; i < scnt; i++)
                    prev[i] += dslice[i];
            } else {
                conv_test_fill_nan(dsrc, sbc);
                memcpy(prev, dslice, scnt * sizeof *prev);
            }
            concat_slice_bwd_f32_nchw8c(n, h, w, ddstb, dst_c, off, dsrc, sc, acc);
            assert_blocked_exact(ds, dsrc, prev);
            free(dsrc);
        }
        free(src), free(dslice), free(prev);
        off += sizes[k];
    }
    /* slices written in reverse order: a partial block must not clobber the lanes of the next slice */
    for (int k = count - 1; k >= 0; k--) {
        concat_slice_fwd_f32_nchw8c(n, h, w, srcbs[k], sizes[k], dst_nan, dst_c, offs[k]);
        free(srcbs[k]);
    }
    /* zeroed destination: the whole blocked tensor, padding lanes included, equals the reordered concat */
    assert_memory_equal(dst, catb, dbc * sizeof *dst);
    /* destination of NaN, slices in reverse order: every real channel written, padding lanes left as they were */
    const int CB = incv3_blocks8(dst_c);
    for (size_t i = 0; i < dbc; i++) {
        const int lane = (int)(i % 8), cb = (int)((i / 8 / hw) % (size_t)CB);
        if (cb * 8 + lane < dst_c)
            assert_memory_equal(&dst_nan[i], &catb[i], sizeof(float));
        else
            assert_true(isnan(dst_nan[i]));
    }
    free(cat), free(catb), free(dst), free(dst_nan), free(ddst), free(ddstb);
}

static void test_concat(void **state)
{
    (void)state;
    static const int a[] = {16, 16, 24, 8};
    static const int b[] = {52, 52, 52, 52, 104, 104};
    static const int c[] = {3, 5, 13, 1, 8, 7};
    static const int d[] = {64, 64, 96, 64};
    static const int e[] = {13, 16, 5, 3};
    static const int f[] = {8, 5, 8, 11, 16};
    for (int t = 1; t <= 2; t++) {
        conv_test_set_threads(t);
        check_concat(1, 5, 7, a, 4);
        check_concat(3, 3, 3, b, 6);
        check_concat(3, 4, 5, c, 6);
        check_concat(2, 6, 6, d, 4);
        check_concat(1, 9, 1, e, 4);
        check_concat(3, 2, 3, f, 5);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bn),       cmocka_unit_test(test_relu),   cmocka_unit_test(test_pool),
        cmocka_unit_test(test_pool_nan), cmocka_unit_test(test_concat),
    };
    return KERNEL_TEST_RUN("test_kernels_layers", tests);
}
