/* Checking and timing one convolution kernel on one shape. The operands are random, in the kernel's layout
 * (reorders are outside the timed region). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kbench.h"
#include "layout/reorder.h"
#include "ref/ref_kernels.h"

static incv3_conv_shape make_shape(const kbench_shape *sh, int batch)
{
    incv3_conv_shape s = {.n = batch, .c = sh->c, .h = sh->h, .w = sh->w, .k = sh->k, .kh = sh->kh, .kw = sh->kw,
                          .stride_h = sh->stride, .stride_w = sh->stride, .pad_top = sh->pad_h,
                          .pad_bottom = sh->pad_h, .pad_left = sh->pad_w, .pad_right = sh->pad_w};
    incv3_conv_shape_finish(&s);
    return s;
}

/* Operands of one pass in NCHW: the pass reads a and b and writes out. */
typedef struct operands {
    incv3_dims x, y;
    size_t w_count;
    float *a, *b, *out;
} operands;

/* Weights in the kernel's own form where it has one (blocked, Winograd's transformed filters, a GEMM's
 * matrix), made from the OIHW weights outside any timed region: the kernel's time alone (a training step
 * also packs once per pass). NULL: use b as is; *failed is set when memory runs out. */
static float *packed_weights(const incv3_conv_kernel *k, const incv3_conv_shape *s, const float *b, int *failed)
{
    *failed = 0;
    if (!incv3_conv_kernel_packs(k, s))
        return NULL;
    float *p = kbench_alloc_random(k->packed_floats(s), 31);
    if (!p) {
        *failed = 1;
        return NULL;
    }
    k->pack(s, b, p);
    return p;
}

/* Kernels that trade exactness for fewer multiplications (Winograd) are held to the accuracy bound of the
 * Winograd issue instead of the direct kernels' 1e-5. */
static double check_tolerance(const incv3_conv_kernel *k)
{
    return strncmp(k->algo, "winograd", 8) == 0 ? 1e-4 : 1e-5;
}

static void run_kernel(const incv3_conv_kernel *k, const incv3_conv_shape *s, const float *a, const float *b,
                       float *out)
{
    switch (k->pass) {
    case INCV3_CONV_FWD: /* a = x, b = w */
        k->fn.fwd(s, a, b, out);
        break;
    case INCV3_CONV_BWD_DATA: /* a = dy, b = w */
        k->fn.bwd_data(s, a, b, out, 0);
        break;
    case INCV3_CONV_BWD_WEIGHTS: /* a = x, b = dy */
        k->fn.bwd_weights(s, a, b, out);
        break;
    }
}

typedef struct conv_call {
    const incv3_conv_kernel *k;
    const incv3_conv_shape *s;
    const float *a, *b;
    float *out;
} conv_call;

static void call_kernel(void *ctx)
{
    const conv_call *c = ctx;
    run_kernel(c->k, c->s, c->a, c->b, c->out);
}

/* Element counts of (a, b, out) of a pass, in NCHW or blocked layout. */
static void counts(const incv3_conv_kernel *k, const incv3_conv_shape *s, size_t c[3])
{
    const incv3_dims x = {s->n, s->c, s->h, s->w}, y = {s->n, s->k, s->oh, s->ow};
    const int blocked = k->layout == INCV3_LAYOUT_NCHW8C;
    const size_t xc = blocked ? reorder_nchw8c_count(x) : incv3_dims_count(x);
    const size_t yc = blocked ? reorder_nchw8c_count(y) : incv3_dims_count(y);
    const size_t wc = (size_t)s->k * s->c * s->kh * s->kw; /* OIHW in every layout */
    c[0] = c[1] = c[2] = 0;
    switch (k->pass) {
    case INCV3_CONV_FWD:
        c[0] = xc, c[1] = wc, c[2] = yc;
        break;
    case INCV3_CONV_BWD_DATA:
        c[0] = yc, c[1] = wc, c[2] = xc;
        break;
    case INCV3_CONV_BWD_WEIGHTS:
        c[0] = xc, c[1] = yc, c[2] = wc;
        break;
    }
}

/* Reorders operand `which` (0 = x, 1 = y, 2 = w) of shape s between plain and blocked layouts (weights
 * are OIHW in both: copied). */
static void to_layout(const incv3_conv_shape *s, int which, const float *src, float *dst, int inverse)
{
    const incv3_dims x = {s->n, s->c, s->h, s->w}, y = {s->n, s->k, s->oh, s->ow};
    if (which == 2) {
        memcpy(dst, src, (size_t)s->k * s->c * s->kh * s->kw * sizeof(float));
    } else if (inverse) {
        reorder_nchw8c_to_nchw_f32(which ? y : x, src, dst);
    } else {
        reorder_nchw_to_nchw8c_f32(which ? y : x, src, dst);
    }
}

static const int operand_kind[3][3] = {
    [INCV3_CONV_FWD] = {0, 2, 1},         /* x, w -> y */
    [INCV3_CONV_BWD_DATA] = {1, 2, 0},    /* dy, w -> dx */
    [INCV3_CONV_BWD_WEIGHTS] = {0, 1, 2}, /* x, dy -> dw */
};

/* Runs the reference and kernel k on batch 1; returns the norm-wise relative error, the reference's time in
 * *ref_ms, or -1 when out of memory. */
static double check(const incv3_conv_kernel *k, const kbench_shape *sh, double *ref_ms)
{
    const incv3_conv_shape s = make_shape(sh, 1);
    size_t plain[3], kc[3];
    incv3_conv_kernel ref = *k;
    ref.layout = INCV3_LAYOUT_NCHW;
    counts(&ref, &s, plain);
    counts(k, &s, kc);
    float *a = kbench_alloc_random(plain[0], 1), *b = kbench_alloc_random(plain[1], 2), *want = kbench_alloc_random(plain[2], 3);
    float *ka = kbench_alloc_random(kc[0], 4), *kb = kbench_alloc_random(kc[1], 5), *kout = kbench_alloc_random(kc[2], 6);
    float *got = kbench_alloc_random(plain[2], 7);
    double err = -1;
    if (a && b && want && ka && kb && kout && got) {
        const incv3_conv_kernel *rk =
            incv3_conv_kernel_find(k->pass, INCV3_ISA_SCALAR, INCV3_LAYOUT_NCHW, "ref", &s);
        conv_call ref_call = {rk, &s, a, b, want};
        *ref_ms = 1e3 * kbench_seconds(call_kernel, &ref_call);
        const int *kind = operand_kind[k->pass];
        if (k->layout == INCV3_LAYOUT_NCHW8C) {
            to_layout(&s, kind[0], a, ka, 0);
            to_layout(&s, kind[1], b, kb, 0);
            int failed;
            float *packed = packed_weights(k, &s, kb, &failed);
            if (!failed) {
                run_kernel(k, &s, ka, packed ? packed : kb, kout);
                to_layout(&s, kind[2], kout, got, 1);
            }
            free(packed);
            if (failed) {
                free(a), free(b), free(want), free(ka), free(kb), free(kout), free(got);
                return -1;
            }
        } else {
            run_kernel(k, &s, a, b, got);
        }
        err = kbench_rel_err(got, want, plain[2]);
    }
    free(a), free(b), free(want), free(ka), free(kb), free(kout), free(got);
    return err;
}

int kbench_conv(const incv3_conv_kernel *k, const kbench_shape *sh, int batch, int repeat, kbench_result *res)
{
    res->checked = 0;
    double ref_ms = 0;
    res->check_err = check(k, sh, &ref_ms);
    if (res->check_err < 0) {
        fprintf(stderr, "incv3-kbench: out of memory checking %s\n", k->name);
        return -1;
    }
    if (!(res->check_err <= check_tolerance(k))) {
        fprintf(stderr,
                "incv3-kbench: %s disagrees with the reference on %dx%dx%d -> %d %dx%d s%d p(%d,%d) "
                "(relative error %.2e > %.0e): not timed\n",
                k->name, sh->c, sh->h, sh->w, sh->k, sh->kh, sh->kw, sh->stride, sh->pad_h, sh->pad_w,
                res->check_err, check_tolerance(k));
        return -1;
    }
    res->checked = 1;
    res->ref_ms_per_image = ref_ms;

    const incv3_conv_shape s = make_shape(sh, batch);
    size_t c[3];
    counts(k, &s, c);
    float *a = kbench_alloc_random(c[0], 11), *b = kbench_alloc_random(c[1], 12), *out = kbench_alloc_random(c[2], 13);
    float *packed = NULL;
    int rc = 0;
    if (!a || !b || !out) {
        fprintf(stderr, "incv3-kbench: out of memory for batch %d of %dx%dx%d -> %d\n", batch, sh->c, sh->h, sh->w,
                sh->k);
        rc = -1;
        goto done;
    }
    if (k->layout == INCV3_LAYOUT_NCHW8C) {
        /* Blocked operands must hold zeros in their padding channels, as the reorders write them. */
        const int *kind = operand_kind[k->pass];
        for (int i = 0; i < 2; i++) {
            size_t pc[3];
            incv3_conv_kernel ref = *k;
            ref.layout = INCV3_LAYOUT_NCHW;
            counts(&ref, &s, pc);
            float *plain = kbench_alloc_random(pc[i], 21 + (uint64_t)i);
            if (!plain) {
                rc = -1;
                goto done;
            }
            to_layout(&s, kind[i], plain, i ? b : a, 0);
            free(plain);
        }
    }
    int failed;
    packed = packed_weights(k, &s, b, &failed);
    if (failed) {
        rc = -1;
        goto done;
    }
    conv_call call = {k, &s, a, packed ? packed : b, out};
    if (kbench_time(call_kernel, &call, repeat, &res->median_ms, &res->min_ms)) {
        rc = -1;
        goto done;
    }
    res->gflops = 2.0 * incv3_conv_macs(&s) / res->median_ms / 1e6;
done:
    free(a), free(b), free(out), free(packed);
    return rc;
}
