/* Completeness of the kernel tests: no kernel of any ISA goes untested.
 *
 * (a) Every entry of the convolution registry whose ISA this CPU runs (any pass, any algo, any layout)
 *     against the scalar reference on the model-like shapes its supports() accepts (1x1, 3x3 stride 1 pad 1,
 *     3x3 stride 2, 1x7 pad (0,3), 7x1 pad (3,0), 5x5 pad 2, 1x3 pad (0,1), 3x1 pad (1,0) on 9x10 maps, and
 *     single-pixel outputs from 1x1, 3x3 and 4x4 maps; channels and outputs 5, 13, 16; batch 2), with
 *     its weight packing where it has one, its fused forward passes (fwd_stats, fwd_bn_relu_infer) where it
 *     has them, accumulate 0 and 1 for backward-data, padding lanes of blocked outputs +0, and each pass
 *     bitwise the same on one thread as on the test's thread count. An available
 *     entry serving none of the shapes fails: add a shape it serves here.
 * (b) Every kernel set compiled in and available (kernel_set.h) has every function pointer set (the
 *     scalar set's gemm and fused bn_relu_* excepted; gemm_tile set exactly where gemm is). The fields are
 *     listed in a table below, which must cover sizeof(incv3_kernel_set) exactly: a field added to the
 *     struct without being listed here (and so without a test named for it) fails this test.
 * (c) Every vector ISA with blocked convolution kernels has a kernel set and the other way round, and has
 *     a direct kernel for each of the three passes (the ISA-generic tests take those). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layout/reorder.h"
#include "ref_kernels.h"
#include "conv_test_util.h"

/* ---- (a) the convolution registry ---- */

typedef struct kern_shape {
    int kh, kw, s, ph, pw, h, w;
} kern_shape;

static const kern_shape kern_shapes[] = {
    {1, 1, 1, 0, 0, 9, 10}, {3, 3, 1, 1, 1, 9, 10}, {3, 3, 2, 0, 0, 9, 10}, {1, 7, 1, 0, 3, 9, 10},
    {7, 1, 1, 3, 0, 9, 10}, {5, 5, 1, 2, 2, 9, 10}, {1, 3, 1, 0, 1, 9, 10}, {3, 1, 1, 1, 0, 9, 10},
    /* one output pixel (the 75x75 model's last blocks): 1x1 maps, padded taps off the map, a stride-2
     * window over a whole 3x3 map, and one that leaves a 4x4 map's last row and column unread */
    {1, 1, 1, 0, 0, 1, 1}, {3, 3, 1, 1, 1, 1, 1}, {1, 3, 1, 0, 1, 1, 1}, {3, 1, 1, 1, 0, 1, 1},
    {3, 3, 2, 0, 0, 3, 3}, {3, 3, 2, 0, 0, 4, 4},
    /* 1 x r and r x 1 over short lines (the 75x75 model's 17x17 stage at 3x3): taps past both ends, a line
     * longer than the kernel, a kernel longer than the line without padding on one side */
    {1, 7, 1, 0, 3, 3, 3}, {7, 1, 1, 3, 0, 3, 5}, {1, 3, 1, 0, 1, 2, 8}, {5, 1, 1, 1, 0, 6, 3},
};
static const int chan_counts[] = {5, 13, 16};

/* The tolerance of an algo's norm-wise relative error on uniform data (test_kernels_winograd.c holds the
 * tight per-variant bounds of the Winograd kernels). */
static double algo_tol(const char *algo)
{
    return strncmp(algo, "winograd", 8) == 0 ? 1e-4 : 1e-5;
}

typedef struct conv_io {
    int blocked;
    incv3_dims dx, dy;
} conv_io;

/* In the entry's layout: a copy of NCHW data (blocked or not). */
static float *to_layout(const conv_io *io, incv3_dims d, const float *nchw)
{
    return io->blocked ? conv_test_to_blocked(d, nchw) : conv_test_dup(nchw, incv3_dims_count(d));
}

static size_t layout_count(const conv_io *io, incv3_dims d)
{
    return io->blocked ? reorder_nchw8c_count(d) : incv3_dims_count(d);
}

/* Norm-wise error of a result in the entry's layout against NCHW want; padding lanes +0. */
static double layout_err(const conv_io *io, incv3_dims d, const float *got, const float *want)
{
    return io->blocked ? conv_test_blocked_err(d, got, want, 0)
                       : conv_test_rel_err(got, want, incv3_dims_count(d));
}

static void check_err(const incv3_conv_kernel *e, const char *desc, const char *what, double err, double tol)
{
    if (getenv("INCV3_TEST_VERBOSE"))
        printf("  %s %s %s: rel err %.3g\n", e->name, desc, what, err);
    if (!(err <= tol)) {
        print_error("%s on %s, %s: rel err %.3g > %.3g\n", e->name, desc, what, err, tol);
        fail();
    }
}

/* Weights as the entry reads them: the OIHW weights, packed where the entry packs for this shape. Free
 * with free(). */
static float *entry_weights(const incv3_conv_kernel *e, const incv3_conv_shape *s, const float *w)
{
    if (!incv3_conv_kernel_packs(e, s))
        return conv_test_dup(w, (size_t)s->k * s->c * s->kh * s->kw);
    const size_t cnt = e->packed_floats(s);
    void *p = NULL;
    assert_int_equal(posix_memalign(&p, 64, cnt * sizeof(float)), 0);
    conv_test_fill_nan(p, cnt); /* every entry must be written */
    e->pack(s, w, p);
    return p;
}

/* The thread count must not change a kernel's result: the pass run again on one thread, bit for bit. */
static int saved_threads;
static void one_thread(void)
{
    saved_threads = omp_get_max_threads();
    conv_test_set_threads(1);
}
static void threads_back(void)
{
    conv_test_set_threads(saved_threads);
}

static void run_entry(const incv3_conv_kernel *e, const incv3_conv_shape *s, const char *desc)
{
    conv_io io = {e->layout == INCV3_LAYOUT_NCHW8C, {s->n, s->c, s->h, s->w}, {s->n, s->k, s->oh, s->ow}};
    if (e->layout != INCV3_LAYOUT_NCHW && e->layout != INCV3_LAYOUT_NCHW8C) {
        print_error("%s: layout %d unknown to this test\n", e->name, (int)e->layout);
        fail();
    }
    const double tol = algo_tol(e->algo);
    const size_t xc = incv3_dims_count(io.dx), yc = incv3_dims_count(io.dy), wc = (size_t)s->k * s->c * s->kh * s->kw;
    const size_t xl = layout_count(&io, io.dx), yl = layout_count(&io, io.dy);
    float *x = conv_test_alloc(xc), *w = conv_test_alloc(wc), *g = conv_test_alloc(yc);
    conv_test_fill(x, xc);
    conv_test_fill(w, wc);
    conv_test_fill(g, yc);
    float *xL = to_layout(&io, io.dx, x), *gL = to_layout(&io, io.dy, g);

    if (e->pass == INCV3_CONV_FWD) {
        float *wL = entry_weights(e, s, w);
        float *yref = conv_test_alloc(yc), *y = conv_test_alloc(yl);
        conv_fwd_f32_ref__scalar(s, x, w, yref);
        conv_test_fill_nan(y, yl);
        e->fn.fwd(s, xL, wL, y);
        check_err(e, desc, "fwd", layout_err(&io, io.dy, y, yref), tol);
        {
            float *y1 = conv_test_alloc(yl);
            conv_test_fill_nan(y1, yl);
            one_thread();
            e->fn.fwd(s, xL, wL, y1);
            threads_back();
            conv_test_same_bits(y1, y, yl * sizeof *y, e->name);
            free(y1);
        }
        if (e->fwd_stats) {
            /* bitwise the plain forward's y; the sums those of that y */
            float *ys = conv_test_alloc(yl), *yown = conv_test_alloc(yc);
            double *sum = conv_test_dparam_alloc(s->k), *sq = conv_test_dparam_alloc(s->k);
            conv_test_fill_nan(ys, yl);
            e->fwd_stats(s, xL, wL, ys, sum, sq);
            conv_test_same_bits(ys, y, yl * sizeof *y, e->name);
            conv_test_assert_dguard(sum, s->k);
            conv_test_assert_dguard(sq, s->k);
            if (io.blocked)
                reorder_nchw8c_to_nchw_f32(io.dy, ys, yown);
            else
                memcpy(yown, ys, yc * sizeof *ys);
            const size_t hw = (size_t)s->oh * s->ow;
            for (int k = 0; k < s->k; k++) {
                double om = 0, oa = 0, oq = 0;
                for (int n = 0; n < s->n; n++)
                    for (size_t i = 0; i < hw; i++) {
                        const double v = yown[((size_t)n * s->k + k) * hw + i];
                        om += v;
                        oa += fabs(v);
                        oq += v * v;
                    }
                const double es = oa > 0 ? fabs(sum[k] - om) / oa : fabs(sum[k]);
                const double eq = oq > 0 ? fabs(sq[k] - oq) / oq : fabs(sq[k]);
                if (es > 1e-12 || eq > 1e-12) {
                    print_error("%s on %s: channel %d: sum %.17g own %.17g, sumsq %.17g own %.17g\n", e->name, desc,
                                k, sum[k], om, sq[k], oq);
                    fail();
                }
            }
            free(ys);
            free(yown);
            free(sum);
            free(sq);
        }
        if (e->fwd_bn_relu_infer) {
            float *gm = conv_test_alloc(s->k), *bt = conv_test_alloc(s->k), *mu = conv_test_alloc(s->k);
            float *var = conv_test_alloc(s->k), *zr = conv_test_alloc(yc), *z = conv_test_alloc(yl);
            for (int k = 0; k < s->k; k++) {
                gm[k] = 0.5f + (float)conv_test_u32() / 4294967296.0f;
                if (k % 4 == 3)
                    gm[k] = -gm[k];
                bt[k] = (float)conv_test_u32() / 4294967296.0f - 0.5f;
                mu[k] = (float)conv_test_u32() / 4294967296.0f - 0.5f;
                var[k] = 0.2f + (float)conv_test_u32() / 4294967296.0f * 2.0f;
            }
            bn_fwd_infer_f32_ref__scalar(io.dy, yref, gm, bt, mu, var, 1e-3f, zr);
            relu_fwd_f32_ref__scalar(yc, zr, zr);
            conv_test_fill_nan(z, yl);
            e->fwd_bn_relu_infer(s, xL, wL, z, gm, bt, mu, var, 1e-3f);
            check_err(e, desc, "fwd_bn_relu_infer", layout_err(&io, io.dy, z, zr), tol);
            free(gm), free(bt), free(mu), free(var), free(zr), free(z);
        }
        free(wL), free(yref), free(y);
    } else if (e->pass == INCV3_CONV_BWD_DATA) {
        assert_null(e->fwd_stats);
        assert_null(e->fwd_bn_relu_infer);
        float *wL = entry_weights(e, s, w);
        for (int acc = 0; acc < 2; acc++) {
            float *dref = conv_test_alloc(xc), *d;
            if (acc) {
                conv_test_fill(dref, xc);
                d = to_layout(&io, io.dx, dref);
            } else {
                d = conv_test_alloc(xl);
                conv_test_fill_nan(d, xl);
            }
            conv_bwd_data_f32_ref__scalar(s, g, w, dref, acc);
            float *d1 = conv_test_dup(d, xl);
            e->fn.bwd_data(s, gL, wL, d, acc);
            check_err(e, desc, acc ? "bwd_data acc1" : "bwd_data acc0", layout_err(&io, io.dx, d, dref), tol);
            one_thread();
            e->fn.bwd_data(s, gL, wL, d1, acc);
            threads_back();
            conv_test_same_bits(d1, d, xl * sizeof *d, e->name);
            free(d1);
            free(dref), free(d);
        }
        free(wL);
    } else if (e->pass == INCV3_CONV_BWD_WEIGHTS) {
        assert_null(e->pack);
        assert_null(e->fwd_stats);
        assert_null(e->fwd_bn_relu_infer);
        float *dwref = conv_test_alloc(wc), *dw = conv_test_alloc(wc);
        conv_bwd_weights_f32_ref__scalar(s, x, g, dwref);
        conv_test_fill_nan(dw, wc); /* every element must be written */
        e->fn.bwd_weights(s, xL, gL, dw);
        float *dw1 = conv_test_alloc(wc);
        conv_test_fill_nan(dw1, wc);
        one_thread();
        e->fn.bwd_weights(s, xL, gL, dw1);
        threads_back();
        conv_test_same_bits(dw1, dw, wc * sizeof *dw, e->name);
        free(dw1);
        check_err(e, desc, "bwd_weights", conv_test_rel_err(dw, dwref, wc), tol);
        free(dwref), free(dw);
    } else {
        print_error("%s: pass %d unknown to this test\n", e->name, (int)e->pass);
        fail();
    }
    free(x), free(w), free(g), free(xL), free(gL);
}

static void test_conv_registry(void **state)
{
    (void)state;
    conv_test_rng = 0xC0FE4A6Eull;
    const int emu = conv_test_emulated();
    size_t count;
    const incv3_conv_kernel *t = incv3_conv_kernel_table(&count);
    size_t tested = 0;
    for (size_t i = 0; i < count; i++) {
        const incv3_conv_kernel *e = &t[i];
        if (!incv3_isa_available(e->isa)) {
            printf("  %-48s not run: this CPU lacks %s\n", e->name, incv3_isa_name(e->isa));
            continue;
        }
        int served = 0, offered = 0;
        for (size_t ks = 0; ks < sizeof kern_shapes / sizeof kern_shapes[0]; ks++)
            for (size_t ci = 0; ci < sizeof chan_counts / sizeof chan_counts[0]; ci++)
                for (size_t ki = 0; ki < sizeof chan_counts / sizeof chan_counts[0]; ki++) {
                    /* emulated: the pairs (5, 13), (13, 16), (16, 5) only */
                    if (emu && ki != (ci + 1) % 3)
                        continue;
                    const kern_shape *k = &kern_shapes[ks];
                    const conv_case cc = {2, chan_counts[ci], k->h, k->w, chan_counts[ki], k->kh, k->kw, k->s, k->s,
                                          k->ph, k->pw, k->ph, k->pw};
                    const incv3_conv_shape s = conv_case_shape(&cc);
                    offered++;
                    if (e->supports && !e->supports(&s))
                        continue;
                    char desc[128];
                    conv_case_describe(&cc, desc, sizeof desc);
                    run_entry(e, &s, desc);
                    served++;
                }
        printf("  %-48s %-14s %2d of %d shapes\n", e->name, e->algo, served, offered);
        if (!served) {
            print_error("%s serves none of this test's shapes: add one it serves to kern_shapes\n", e->name);
            fail();
        }
        tested++;
    }
    assert_true(tested >= 3); /* the reference entries at least */
}

/* ---- (b) the kernel sets ---- */

typedef void (*any_fn)(void);

/* Every pointer field of incv3_kernel_set after isa and layout: the kernels (function pointers) with the
 * test that checks each vector ISA's kernel against the reference, and whether the scalar set may leave it
 * NULL; data fields (is_data 1) are non-NULL exactly where the kernel they describe (describes) is. */
#define FIELD(f, scalar_null, test) {offsetof(incv3_kernel_set, f), #f, scalar_null, test, 0, 0}
#define DATA_FIELD(f, describes) {offsetof(incv3_kernel_set, f), #f, 1, "-", 1, offsetof(incv3_kernel_set, describes)}
static const struct {
    size_t offset;
    const char *name;
    int scalar_null;
    const char *tested_by;
    int is_data;
    size_t describes;
} set_fields[] = {
    DATA_FIELD(gemm_tile, gemm),
    FIELD(bn_fwd_train, 0, "kernels_layers"),
    FIELD(bn_fwd_infer, 0, "kernels_layers"),
    FIELD(bn_bwd_train, 0, "kernels_layers"),
    FIELD(bn_bwd_infer, 0, "kernels_layers"),
    FIELD(bn_relu_fwd_train, 1, "kernels_fused"),
    FIELD(bn_relu_fwd_infer, 1, "kernels_fused"),
    FIELD(bn_relu_bwd_train, 1, "kernels_fused"),
    FIELD(relu_fwd, 0, "kernels_layers"),
    FIELD(relu_bwd, 0, "kernels_layers"),
    FIELD(maxpool_fwd, 0, "kernels_layers"),
    FIELD(maxpool_bwd, 0, "kernels_layers"),
    FIELD(avgpool_fwd, 0, "kernels_layers"),
    FIELD(avgpool_bwd, 0, "kernels_layers"),
    FIELD(gemm, 1, "kernels_gemm"),
    FIELD(linear_fwd, 0, "kernels_gemm"),
    FIELD(linear_bwd_data, 0, "kernels_gemm"),
    FIELD(linear_bwd_weights, 0, "kernels_gemm"),
    FIELD(adamw, 0, "kernels_adamw"),
};
#define NFIELDS (sizeof set_fields / sizeof set_fields[0])

/* The table covers the struct: after isa and layout, every pointer-sized slot up to sizeof is listed once. */
static void test_set_fields_listed(void **state)
{
    (void)state;
    const size_t ptr = sizeof(any_fn);
    const size_t start = (offsetof(incv3_kernel_set, layout) + sizeof(incv3_layout) + ptr - 1) / ptr * ptr;
    assert_true(offsetof(incv3_kernel_set, isa) < offsetof(incv3_kernel_set, layout));
    if (sizeof(incv3_kernel_set) != start + NFIELDS * ptr) {
        print_error("incv3_kernel_set is %zu bytes, the %zu fields listed in test_kernels_coverage.c cover %zu: "
                    "list the new field (and test its kernels)\n",
                    sizeof(incv3_kernel_set), (size_t)NFIELDS, start + NFIELDS * ptr);
        fail();
    }
    for (size_t slot = 0; slot < NFIELDS; slot++) {
        int found = 0;
        for (size_t f = 0; f < NFIELDS; f++)
            found += set_fields[f].offset == start + slot * ptr;
        if (found != 1) {
            print_error("incv3_kernel_set slot at offset %zu is listed %d times\n", start + slot * ptr, found);
            fail();
        }
    }
}

static void test_sets_complete(void **state)
{
    (void)state;
    int checked = 0;
    for (int i = 0; i < INCV3_ISA_COUNT; i++) {
        const incv3_isa isa = (incv3_isa)i;
        const incv3_kernel_set *set = incv3_kernel_set_for(isa);
        if (!set)
            continue;
        if (!incv3_isa_available(isa)) {
            printf("  kernel set %s: not checked, this CPU lacks it\n", incv3_isa_name(isa));
            continue;
        }
        assert_int_equal(set->isa, isa);
        assert_int_equal(set->layout, isa == INCV3_ISA_SCALAR ? INCV3_LAYOUT_NCHW : INCV3_LAYOUT_NCHW8C);
        for (size_t f = 0; f < NFIELDS; f++) {
            any_fn fn;
            memcpy(&fn, (const char *)set + set_fields[f].offset, sizeof fn);
            if (set_fields[f].is_data) {
                const void *data;
                memcpy(&data, (const char *)set + set_fields[f].offset, sizeof data);
                memcpy(&fn, (const char *)set + set_fields[f].describes, sizeof fn);
                if (!data != !fn) {
                    print_error("kernel set %s: %s is %s but the kernel it describes is %s\n", incv3_isa_name(isa),
                                set_fields[f].name, data ? "set" : "NULL", fn ? "set" : "NULL");
                    fail();
                }
                continue;
            }
            if (!fn && !(isa == INCV3_ISA_SCALAR && set_fields[f].scalar_null)) {
                print_error("kernel set %s: %s is NULL\n", incv3_isa_name(isa), set_fields[f].name);
                fail();
            }
            if (getenv("INCV3_TEST_VERBOSE"))
                printf("  %s.%s %s (tested by %s)\n", incv3_isa_name(isa), set_fields[f].name, fn ? "set" : "NULL",
                       set_fields[f].tested_by);
        }
        printf("  kernel set %s: %zu fields checked\n", incv3_isa_name(isa), (size_t)NFIELDS);
        checked++;
    }
    assert_true(checked >= 1); /* the scalar set at least */
}

/* ---- (c) vector ISAs: conv kernels and kernel set together, the direct passes present ---- */

static void test_vector_isas_whole(void **state)
{
    (void)state;
    static const incv3_conv_pass passes[] = {INCV3_CONV_FWD, INCV3_CONV_BWD_DATA, INCV3_CONV_BWD_WEIGHTS};
    const conv_case cc = {1, 5, 9, 9, 7, 3, 3, 1, 1, 1, 1, 1, 1};
    const incv3_conv_shape s = conv_case_shape(&cc);
    for (int i = 0; i < INCV3_ISA_COUNT; i++) {
        const incv3_isa isa = (incv3_isa)i;
        if (isa == INCV3_ISA_SCALAR)
            continue;
        const int has_set = incv3_kernel_set_for(isa) != NULL;
        const int has_conv = incv3_isa_has_layout(isa, INCV3_LAYOUT_NCHW8C);
        printf("  %s: kernel set %s, blocked conv kernels %s, available %s\n", incv3_isa_name(isa),
               has_set ? "yes" : "no", has_conv ? "yes" : "no", incv3_isa_available(isa) ? "yes" : "no");
        if (has_set != has_conv) {
            print_error("ISA %s: a kernel set and the registry's blocked convolutions come together\n",
                        incv3_isa_name(isa));
            fail();
        }
        for (size_t p = 0; has_conv && p < sizeof passes / sizeof passes[0]; p++)
            if (!incv3_conv_kernel_find(passes[p], isa, INCV3_LAYOUT_NCHW8C, "direct", &s)) {
                print_error("ISA %s: no direct blocked kernel of pass %d\n", incv3_isa_name(isa), (int)passes[p]);
                fail();
            }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_fields_listed),
        cmocka_unit_test(test_sets_complete),
        cmocka_unit_test(test_vector_isas_whole),
        cmocka_unit_test(test_conv_registry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
