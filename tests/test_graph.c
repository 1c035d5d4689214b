/* Tests of the layer graph's public API: whole-graph gradients against central finite differences
 * (training and inference mode, two heads, branches, concatenation, dropout, gradient accumulation),
 * output selection, build errors, batch size changes, activation memory, determinism, kernel selection
 * and the first AdamW step. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "incv3/graph.h"
#include "incv3/train.h"

#define MAXS INCV3_MAX_OUTPUTS

/* ---------------------------------------------------------------- helpers */

#define assert_contains(haystack, needle)                                                                   \
    do {                                                                                                    \
        const char *hs_ = (haystack);                                                                       \
        if (!hs_ || !strstr(hs_, (needle)))                                                                 \
            fail_msg("message \"%s\" does not contain \"%s\"", hs_ ? hs_ : "(null)", (needle));             \
    } while (0)

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static float rng_uniform(uint64_t *s, float lo, float hi)
{
    double u = (double)(rng_next(s) >> 11) * 0x1.0p-53;
    return (float)(lo + (hi - lo) * u);
}

static float *random_floats(size_t n, uint64_t seed, float lo, float hi)
{
    float *p = malloc(n * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = rng_uniform(&seed, lo, hi);
    return p;
}

static void check_built(const incv3_graph *g)
{
    assert_non_null(g);
    const char *e = incv3_graph_error(g);
    if (e)
        fail_msg("graph build error: %s", e);
}

static incv3_param *param(incv3_graph *g, const char *name)
{
    incv3_param *p = incv3_graph_find_param(g, name);
    if (!p)
        fail_msg("no parameter %s", name);
    return p;
}

/* Gives every BatchNorm of g non-trivial weight, bias and running statistics. */
static void randomize_bn(incv3_graph *g, uint64_t seed)
{
    size_t n = incv3_graph_param_count(g);
    for (size_t i = 0; i < n; i++) {
        incv3_param *p = incv3_graph_param(g, i);
        const char *dot = strrchr(p->name, '.');
        assert_non_null(dot);
        float lo, hi;
        if (strcmp(dot, ".running_mean") == 0)
            lo = -0.2f, hi = 0.2f;
        else if (strcmp(dot, ".running_var") == 0)
            lo = 0.5f, hi = 1.5f;
        else if (strstr(p->name, "bn.weight"))
            lo = 0.6f, hi = 1.4f;
        else if (strstr(p->name, "bn.bias"))
            lo = -0.3f, hi = 0.3f;
        else
            continue;
        uint64_t st = seed ^ (i * 0x632BE59BD9B4E019ull);
        for (size_t j = 0; j < p->numel; j++)
            p->data[j] = rng_uniform(&st, lo, hi);
    }
}

static size_t in_count(const incv3_graph *g, int batch)
{
    incv3_node_info info;
    incv3_graph_node_info(g, incv3_graph_input_node(g), &info);
    return (size_t)batch * info.c * info.h * info.w;
}

/* ---------------------------------------------------------------- objective and finite differences */

typedef struct problem {
    incv3_graph *g;
    float *x; /* input, perturbed in place by the input check */
    int batch;
    incv3_mode mode;
    uint64_t dropout_seed;
    unsigned outputs;   /* forward output mask */
    float weight[MAXS]; /* loss weight per slot; 0: not part of the objective (no d_out given) */
    const int64_t *labels[MAXS];
    float smoothing;
} problem;

/* Runs forward and the weighted softmax cross-entropy of the slots in the objective. With dlogits, also
 * fills dlogits[s] (allocated here) with d(objective)/d(output s). */
static double problem_eval(problem *pr, int for_backward, float *dlogits[MAXS])
{
    incv3_forward_opts o = {.mode = pr->mode, .outputs = pr->outputs, .for_backward = for_backward,
                            .dropout_seed = pr->dropout_seed};
    incv3_error err = {{0}};
    if (incv3_graph_forward(pr->g, pr->x, pr->batch, &o, &err))
        fail_msg("forward failed: %s", err.msg);
    double total = 0.0;
    for (int s = 0; s < MAXS; s++) {
        if (dlogits)
            dlogits[s] = NULL;
        if (pr->weight[s] == 0.0f)
            continue;
        const incv3_tensor *t = incv3_graph_output(pr->g, s);
        assert_non_null(t);
        assert_int_equal(t->n, pr->batch);
        int k = t->c * t->h * t->w;
        float *d = NULL;
        if (dlogits) {
            d = malloc((size_t)pr->batch * k * sizeof *d);
            assert_non_null(d);
            dlogits[s] = d;
        }
        double l = 0;
        if (incv3_softmax_xent(t->data, pr->labels[s], pr->batch, k, pr->smoothing, pr->weight[s], d, &l, &err))
            fail_msg("softmax_xent failed: %s", err.msg);
        total += (double)pr->weight[s] * l;
    }
    return total;
}

/* Forward for backward, then backward; d_input may be NULL. Returns the objective. */
static double problem_backward(problem *pr, float *d_input)
{
    float *dl[MAXS];
    double loss = problem_eval(pr, 1, dl);
    const float *dout[MAXS];
    for (int s = 0; s < MAXS; s++)
        dout[s] = dl[s];
    incv3_error err = {{0}};
    if (incv3_graph_backward(pr->g, dout, d_input, &err))
        fail_msg("backward failed: %s", err.msg);
    for (int s = 0; s < MAXS; s++)
        free(dl[s]);
    return loss;
}

typedef struct fd_stats {
    int checked;  /* values compared */
    int primary;  /* matched central differences at h = 1e-2 or 5e-3 */
    int refined;  /* matched only at a smaller central step (a ReLU / max-pool switch within h) */
    int one_sided;/* matched only a one-sided difference (a switch right next to the point) */
    int skipped;  /* not judged: switches on both sides within the smallest step */
    int failed;
} fd_stats;

#define FD_RTOL 2e-2
#define FD_ATOL 2e-4

static double eval_at(problem *pr, float *v, float value)
{
    *v = value;
    return problem_eval(pr, 0, NULL);
}

static int fd_match(double analytic, double fd)
{
    return fabs(analytic - fd) <= FD_RTOL * fmax(fabs(analytic), fabs(fd)) + FD_ATOL;
}

/* Compares one analytic derivative with central differences of the objective, first at the steps h = 1e-2
 * and 5e-3. The objective is only piecewise smooth (ReLU, max pooling): when an activation changes sides
 * within h of the point, the central difference mixes two slopes, so smaller steps follow (the float
 * objective is good to about 1e-9 here, so 1.5e-4 still resolves the tolerance), and for a switch within
 * the smallest step the one-sided differences on the side without it. Where those still disagree with each
 * other, the point sits between switches closer than the float objective can resolve: it is not judged
 * (and such points must stay rare). A wrong gradient at a point where the objective is smooth fails. */
static void fd_compare(problem *pr, float *v, double analytic, const char *what, size_t idx, fd_stats *st)
{
    static const float central[] = {1e-2f, 5e-3f, 2.5e-3f, 1e-3f, 4e-4f, 1.5e-4f};
    static const float one_sided[] = {4e-4f, 1.5e-4f};
    enum { NC = sizeof central / sizeof central[0], NO = sizeof one_sided / sizeof one_sided[0] };
    const float orig = *v;
    double fd[NC] = {0}, fwd[NO] = {0}, bwd[NO] = {0};
    int ok = 0;
    st->checked++;
    for (int i = 0; i < NC && !ok; i++) {
        float xp = orig + central[i], xm = orig - central[i];
        fd[i] = (eval_at(pr, v, xp) - eval_at(pr, v, xm)) / ((double)xp - (double)xm);
        if (fd_match(analytic, fd[i]))
            ok = i < 2 ? 1 : 2;
    }
    if (!ok) {
        double l0 = eval_at(pr, v, orig);
        for (int i = 0; i < NO && !ok; i++) {
            float xp = orig + one_sided[i], xm = orig - one_sided[i];
            fwd[i] = (eval_at(pr, v, xp) - l0) / ((double)xp - orig);
            bwd[i] = (l0 - eval_at(pr, v, xm)) / ((double)orig - xm);
            if (fd_match(analytic, fwd[i]) || fd_match(analytic, bwd[i]))
                ok = 3;
        }
    }
    *v = orig;
    if (!ok && !fd_match(fwd[NO - 1], bwd[NO - 1]))
        ok = 4;
    switch (ok) {
    case 1:
        st->primary++;
        break;
    case 2:
        st->refined++;
        break;
    case 3:
        st->one_sided++;
        break;
    case 4:
        st->skipped++;
        print_message("  %s[%zu]: not smooth within 1.5e-4 (one-sided %.7g / %.7g), not judged\n", what, idx,
                      fwd[NO - 1], bwd[NO - 1]);
        break;
    default:
        st->failed++;
        print_message("  gradient mismatch %s[%zu]: analytic %.7g; central differences", what, idx, analytic);
        for (int i = 0; i < NC; i++)
            print_message(" %.7g", fd[i]);
        print_message(" (h = 1e-2 ... 1.5e-4); one-sided");
        for (int i = 0; i < NO; i++)
            print_message(" %.7g %.7g", fwd[i], bwd[i]);
        print_message("\n");
    }
}

typedef struct fd_opts {
    int per_param;     /* elements checked per parameter tensor (all when the tensor is smaller) */
    int inputs;        /* input elements checked (0: no input gradient) */
    int all_used;      /* every parameter must be reached (has_grad 1, some non-zero gradient) */
    uint64_t seed;
} fd_opts;

/* Runs backward, then checks d(objective)/d(parameter) of every parameter (on a random subset of elements)
 * and d(objective)/d(input) against finite differences. */
static void fd_check(problem *pr, const fd_opts *fo, const char *label)
{
    incv3_graph *g = pr->g;
    size_t np = incv3_graph_param_count(g);
    size_t nin = in_count(g, pr->batch);
    /* Backward must overwrite, never add to, what the buffers held. */
    for (size_t i = 0; i < np; i++) {
        incv3_param *p = incv3_graph_param(g, i);
        if (p->kind == INCV3_PARAM)
            for (size_t j = 0; j < p->numel; j++)
                p->grad[j] = 777.0f;
    }
    float *d_in = NULL;
    if (fo->inputs) {
        d_in = malloc(nin * sizeof *d_in);
        assert_non_null(d_in);
        for (size_t j = 0; j < nin; j++)
            d_in[j] = 1e30f;
    }
    double loss = problem_backward(pr, d_in);
    assert_true(isfinite(loss));

    /* Snapshot of the analytic gradients (finite-difference forwards must not need them). */
    float **grads = calloc(np, sizeof *grads);
    assert_non_null(grads);
    for (size_t i = 0; i < np; i++) {
        incv3_param *p = incv3_graph_param(g, i);
        if (p->kind != INCV3_PARAM)
            continue;
        grads[i] = malloc(p->numel * sizeof(float));
        assert_non_null(grads[i]);
        memcpy(grads[i], p->grad, p->numel * sizeof(float));
        if (fo->all_used) {
            if (p->has_grad != 1)
                fail_msg("%s: %s has_grad %d after backward", label, p->name, p->has_grad);
            double mx = 0;
            for (size_t j = 0; j < p->numel; j++)
                mx = fmax(mx, fabs(grads[i][j]));
            if (!(mx > 0 && mx < 100))
                fail_msg("%s: gradient of %s is all zero or stale (max |g| = %g)", label, p->name, mx);
        }
    }

    fd_stats st = {0};
    uint64_t rs = fo->seed;
    for (size_t i = 0; i < np; i++) {
        incv3_param *p = incv3_graph_param(g, i);
        if (p->kind != INCV3_PARAM)
            continue;
        size_t n = p->numel <= (size_t)fo->per_param ? p->numel : (size_t)fo->per_param;
        for (size_t k = 0; k < n; k++) {
            size_t j = p->numel <= (size_t)fo->per_param ? k : (size_t)(rng_next(&rs) % p->numel);
            fd_compare(pr, &p->data[j], grads[i][j], p->name, j, &st);
        }
    }
    for (int k = 0; k < fo->inputs; k++) {
        size_t j = (size_t)(rng_next(&rs) % nin);
        fd_compare(pr, &pr->x[j], d_in[j], "input", j, &st);
    }
    print_message("  %s: loss %.6f, %d values checked: %d at h 1e-2/5e-3, %d at smaller h, %d one-sided, "
                  "%d not judged, %d mismatches\n",
                  label, loss, st.checked, st.primary, st.refined, st.one_sided, st.skipped, st.failed);
    assert_int_equal(st.failed, 0);
    assert_true(st.checked >= 10);
    /* Activation switches within the step are the exception, not the rule. */
    assert_true(st.primary * 3 >= st.checked * 2);
    assert_true(st.skipped * 10 <= st.checked);

    for (size_t i = 0; i < np; i++)
        free(grads[i]);
    free(grads);
    free(d_in);
}

/* ---------------------------------------------------------------- the two-headed branchy graph */

enum { MAIN_C = 3, MAIN_H = 9, MAIN_W = 11, MAIN_K = 6, AUX_K = 4 };

typedef struct main_graph {
    incv3_graph *g;
    int relu, out0, out1;
} main_graph;

static main_graph build_main(uint64_t seed)
{
    main_graph m;
    incv3_graph *g = incv3_graph_new(MAIN_C, MAIN_H, MAIN_W);
    assert_non_null(g);
    int x = incv3_graph_input_node(g);
    x = incv3_graph_conv(g, x, "stem.conv", 4, 3, 3, 2, 1, 1);
    x = incv3_graph_batchnorm(g, x, "stem.bn", 1e-3f, 0.1f);
    int r = incv3_graph_relu(g, x);
    int a = incv3_graph_conv(g, r, "a.conv", 5, 1, 7, 1, 0, 3);
    a = incv3_graph_batchnorm(g, a, "a.bn", 1e-3f, 0.1f);
    a = incv3_graph_relu(g, a);
    int b = incv3_graph_maxpool(g, r, 3, 1, 1);
    b = incv3_graph_conv(g, b, "b.conv", 3, 1, 1, 1, 0, 0);
    int cat[2] = {a, b};
    int y = incv3_graph_concat(g, 2, cat);
    y = incv3_graph_avgpool(g, y, 3, 2, 1);
    y = incv3_graph_flatten(g, y);
    y = incv3_graph_linear(g, y, "fc", MAIN_K);
    incv3_graph_set_output(g, 0, y);
    int h = incv3_graph_global_avgpool(g, r);
    h = incv3_graph_flatten(g, h);
    h = incv3_graph_linear(g, h, "aux.fc", AUX_K);
    incv3_graph_set_output(g, 1, h);
    check_built(g);
    incv3_graph_init_params(g, seed);
    randomize_bn(g, seed + 1);
    m.g = g, m.relu = r, m.out0 = y, m.out1 = h;
    return m;
}

static const int64_t main_labels[3] = {1, 5, 0}, aux_labels[3] = {2, 0, 3};

static problem main_problem(main_graph *m, int batch, incv3_mode mode, float *x)
{
    problem pr = {.g = m->g, .x = x, .batch = batch, .mode = mode, .outputs = 3u, .smoothing = 0.1f};
    pr.weight[0] = 1.0f, pr.weight[1] = 0.3f;
    pr.labels[0] = main_labels, pr.labels[1] = aux_labels;
    return pr;
}

static void test_shapes_and_info(void **state)
{
    (void)state;
    main_graph m = build_main(1);
    incv3_node_info info;
    incv3_graph_node_info(m.g, 1, &info);
    assert_string_equal(info.kind, "conv");
    assert_string_equal(info.name, "stem.conv");
    assert_int_equal(info.c, 4);
    assert_int_equal(info.h, 5);
    assert_int_equal(info.w, 6);
    assert_int_equal(info.params, 4 * 3 * 3 * 3);
    incv3_graph_node_info(m.g, m.out0, &info);
    assert_string_equal(info.kind, "linear");
    assert_int_equal(info.c, MAIN_K);
    assert_int_equal(info.flat, 1);
    assert_int_equal(info.in_c, 8 * 3 * 3); /* concat 5+3 channels, avgpool 5x6 -> 3x3 */
    assert_int_equal(incv3_graph_output_node(m.g, 0), m.out0);
    assert_int_equal(incv3_graph_output_node(m.g, 1), m.out1);
    assert_int_equal(incv3_graph_output_node(m.g, 2), -1);
    incv3_param *rv = param(m.g, "a.bn.running_var");
    assert_int_equal(rv->kind, INCV3_BUFFER);
    assert_int_equal(rv->numel, 5);
    size_t expect = 4 * 27 + 4 + 4 + 5 * 4 * 7 + 5 + 5 + 3 * 4 + MAIN_K * 72 + MAIN_K + AUX_K * 4 + AUX_K;
    assert_int_equal(incv3_graph_trainable_count(m.g), expect);
    incv3_graph_free(m.g);
}

/* Running statistics near those of the data, then perturbed: inference-mode BatchNorm outputs get a
 * realistic spread (with the default statistics they crowd around the bias, and ReLU switches get dense). */
static void calibrate_bn(problem *pr, uint64_t seed)
{
    incv3_forward_opts o = {.mode = INCV3_TRAIN, .outputs = pr->outputs};
    incv3_error err = {{0}};
    for (int i = 0; i < 40; i++)
        if (incv3_graph_forward(pr->g, pr->x, pr->batch, &o, &err))
            fail_msg("forward: %s", err.msg);
    size_t n = incv3_graph_param_count(pr->g);
    for (size_t i = 0; i < n; i++) {
        incv3_param *p = incv3_graph_param(pr->g, i);
        size_t len = strlen(p->name);
        if (len < 13 || strcmp(p->name + len - 13, ".running_mean") != 0)
            continue;
        char vname[INCV3_NAME_MAX];
        snprintf(vname, sizeof vname, "%.*s.running_var", (int)(len - 13), p->name);
        incv3_param *v = param(pr->g, vname);
        for (size_t j = 0; j < p->numel; j++) {
            p->data[j] += rng_uniform(&seed, -0.2f, 0.2f) * sqrtf(v->data[j]);
            v->data[j] *= rng_uniform(&seed, 0.7f, 1.3f);
        }
    }
}

static void run_main_fd(int batch, incv3_mode mode, uint64_t seed, const char *label)
{
    main_graph m = build_main(seed);
    float *x = random_floats(in_count(m.g, batch), seed * 7 + 3, -1.0f, 1.0f);
    problem pr = main_problem(&m, batch, mode, x);
    if (mode == INCV3_INFER)
        calibrate_bn(&pr, seed + 2);
    fd_opts fo = {.per_param = 8, .inputs = 16, .all_used = 1, .seed = seed};
    fd_check(&pr, &fo, label);
    free(x);
    incv3_graph_free(m.g);
}

static void test_fd_main_train_batch1(void **state)
{
    (void)state;
    run_main_fd(1, INCV3_TRAIN, 11, "train, batch 1");
}

static void test_fd_main_train_batch3(void **state)
{
    (void)state;
    run_main_fd(3, INCV3_TRAIN, 12, "train, batch 3");
}

static void test_fd_main_infer_batch1(void **state)
{
    (void)state;
    run_main_fd(1, INCV3_INFER, 13, "infer, batch 1");
}

static void test_fd_main_infer_batch3(void **state)
{
    (void)state;
    run_main_fd(3, INCV3_INFER, 14, "infer, batch 3");
}

/* Training-mode BatchNorm: batch statistics, running ones updated with momentum and unbiased variance. */
static void test_batchnorm_modes(void **state)
{
    (void)state;
    incv3_graph *g = incv3_graph_new(2, 3, 3);
    int y = incv3_graph_batchnorm(g, incv3_graph_input_node(g), "bn", 1e-5f, 0.25f);
    incv3_graph_set_output(g, 0, y);
    check_built(g);
    incv3_graph_init_params(g, 3);
    float *x = random_floats(2 * 2 * 9, 99, -2.0f, 3.0f);
    incv3_forward_opts o = {.mode = INCV3_TRAIN};
    incv3_error err = {{0}};
    assert_int_equal(incv3_graph_forward(g, x, 2, &o, &err), 0);
    const incv3_tensor *t = incv3_graph_output(g, 0);
    assert_non_null(t);
    for (int c = 0; c < 2; c++) {
        double mean = 0, var = 0, ym = 0, yv = 0;
        for (int n = 0; n < 2; n++)
            for (int i = 0; i < 9; i++)
                mean += x[(n * 2 + c) * 9 + i], ym += t->data[(n * 2 + c) * 9 + i];
        mean /= 18, ym /= 18;
        for (int n = 0; n < 2; n++)
            for (int i = 0; i < 9; i++) {
                double d = x[(n * 2 + c) * 9 + i] - mean, e = t->data[(n * 2 + c) * 9 + i] - ym;
                var += d * d, yv += e * e;
            }
        assert_true(fabs(ym) < 1e-5);
        assert_true(fabs(yv / 18 - var / 18 / (var / 18 + 1e-5)) < 1e-4);
        assert_float_equal(param(g, "bn.running_mean")->data[c], 0.25 * mean, 1e-5);
        assert_float_equal(param(g, "bn.running_var")->data[c], 0.75 + 0.25 * var / 17, 1e-5);
    }
    /* Inference uses the running statistics: y = (x - rm) / sqrt(rv + eps) (weight 1, bias 0). */
    o.mode = INCV3_INFER;
    assert_int_equal(incv3_graph_forward(g, x, 2, &o, &err), 0);
    t = incv3_graph_output(g, 0);
    for (int n = 0; n < 2; n++)
        for (int c = 0; c < 2; c++)
            for (int i = 0; i < 9; i++) {
                size_t j = (size_t)(n * 2 + c) * 9 + i;
                double rm = param(g, "bn.running_mean")->data[c], rv = param(g, "bn.running_var")->data[c];
                assert_float_equal(t->data[j], (x[j] - rm) / sqrt(rv + 1e-5), 1e-5);
            }
    /* One value per channel cannot be normalized with batch statistics. */
    incv3_graph *g1 = incv3_graph_new(2, 1, 1);
    y = incv3_graph_batchnorm(g1, 0, "bn", 1e-5f, 0.1f);
    incv3_graph_set_output(g1, 0, y);
    check_built(g1);
    o.mode = INCV3_TRAIN;
    err.msg[0] = 0;
    assert_int_not_equal(incv3_graph_forward(g1, x, 1, &o, &err), 0);
    assert_contains(err.msg, "batchnorm");
    assert_int_equal(incv3_graph_forward(g1, x, 2, &o, &err), 0);
    incv3_graph_free(g1);
    free(x);
    incv3_graph_free(g);
}

/* ---------------------------------------------------------------- dropout */

static void test_dropout(void **state)
{
    (void)state;
    /* Forward behaviour on the raw input: identity in inference, x * 2 or 0 in training. */
    incv3_graph *g = incv3_graph_new(4, 8, 8);
    int d = incv3_graph_dropout(g, incv3_graph_flatten(g, incv3_graph_input_node(g)), 0.5f);
    incv3_graph_set_output(g, 0, d);
    check_built(g);
    const int batch = 2;
    size_t n = in_count(g, batch);
    float *x = random_floats(n, 5, 0.5f, 1.5f); /* never zero */
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    assert_non_null(a);
    assert_non_null(b);
    incv3_error err = {{0}};
    incv3_forward_opts o = {.mode = INCV3_TRAIN, .dropout_seed = 1234};
    assert_int_equal(incv3_graph_forward(g, x, batch, &o, &err), 0);
    memcpy(a, incv3_graph_output(g, 0)->data, n * sizeof *a);
    size_t dropped = 0;
    for (size_t i = 0; i < n; i++) {
        if (a[i] == 0.0f)
            dropped++;
        else
            assert_float_equal(a[i], 2.0f * x[i], 1e-6);
    }
    assert_true(dropped > n / 2 - n / 8 && dropped < n / 2 + n / 8); /* n = 512: p = 0.5 */
    assert_int_equal(incv3_graph_forward(g, x, batch, &o, &err), 0);
    assert_memory_equal(a, incv3_graph_output(g, 0)->data, n * sizeof *a);
    o.dropout_seed = 1235;
    assert_int_equal(incv3_graph_forward(g, x, batch, &o, &err), 0);
    memcpy(b, incv3_graph_output(g, 0)->data, n * sizeof *b);
    size_t differ = 0;
    for (size_t i = 0; i < n; i++)
        differ += (a[i] == 0.0f) != (b[i] == 0.0f);
    assert_true(differ > n / 4);
    o.mode = INCV3_INFER;
    assert_int_equal(incv3_graph_forward(g, x, batch, &o, &err), 0);
    assert_memory_equal(x, incv3_graph_output(g, 0)->data, n * sizeof *x);
    free(a);
    free(b);
    free(x);
    incv3_graph_free(g);

    /* Gradient through a dropout layer with a fixed mask (fixed seed). */
    g = incv3_graph_new(2, 6, 6);
    int y = incv3_graph_conv(g, incv3_graph_input_node(g), "conv", 4, 3, 3, 1, 1, 1);
    y = incv3_graph_relu(g, y);
    y = incv3_graph_avgpool(g, y, 2, 2, 0);
    y = incv3_graph_flatten(g, y);
    y = incv3_graph_dropout(g, y, 0.5f);
    y = incv3_graph_linear(g, y, "fc", 5);
    incv3_graph_set_output(g, 0, y);
    check_built(g);
    incv3_graph_init_params(g, 21);
    x = random_floats(in_count(g, 3), 22, -1.0f, 1.0f);
    problem pr = {.g = g, .x = x, .batch = 3, .mode = INCV3_TRAIN, .dropout_seed = 77, .outputs = 1,
                  .smoothing = 0.1f};
    pr.weight[0] = 1.0f;
    pr.labels[0] = aux_labels;
    fd_opts fo = {.per_param = 10, .inputs = 16, .all_used = 1, .seed = 23};
    fd_check(&pr, &fo, "dropout, train");
    /* The dropout really was on in that check: inference gives other logits. */
    incv3_forward_opts ot = {.mode = INCV3_TRAIN, .dropout_seed = 77};
    assert_int_equal(incv3_graph_forward(g, x, 3, &ot, &err), 0);
    float tr[15];
    memcpy(tr, incv3_graph_output(g, 0)->data, sizeof tr);
    ot.mode = INCV3_INFER;
    assert_int_equal(incv3_graph_forward(g, x, 3, &ot, &err), 0);
    assert_memory_not_equal(tr, incv3_graph_output(g, 0)->data, sizeof tr);
    pr.mode = INCV3_INFER;
    fd_check(&pr, &fo, "dropout, infer");
    free(x);
    incv3_graph_free(g);

    g = incv3_graph_new(1, 2, 2);
    assert_true(incv3_graph_dropout(g, 0, 1.0f) < 0);
    assert_contains(incv3_graph_error(g), "dropout");
    incv3_graph_free(g);
}

/* ---------------------------------------------------------------- gradient accumulation */

static void test_fan_out_accumulates(void **state)
{
    (void)state;
    /* The input and node c1 are each read by three layers; the ReLU twice by the concatenation (so
     * gradients passed through unchanged also add up). */
    incv3_graph *g = incv3_graph_new(2, 6, 6);
    int in = incv3_graph_input_node(g);
    int c1 = incv3_graph_conv(g, in, "c1", 3, 3, 3, 1, 1, 1);
    int r = incv3_graph_relu(g, c1);
    int ap = incv3_graph_avgpool(g, c1, 3, 1, 1);
    int c2 = incv3_graph_conv(g, c1, "c2", 2, 1, 1, 1, 0, 0);
    int c3 = incv3_graph_conv(g, in, "c3", 2, 1, 1, 1, 0, 0);
    int mp = incv3_graph_maxpool(g, in, 3, 1, 1);
    int cat[6] = {r, ap, c2, c3, mp, r};
    int y = incv3_graph_concat(g, 6, cat);
    y = incv3_graph_avgpool(g, y, 2, 2, 0);
    y = incv3_graph_flatten(g, y);
    y = incv3_graph_linear(g, y, "fc", 5);
    incv3_graph_set_output(g, 0, y);
    check_built(g);
    incv3_node_info info;
    incv3_graph_node_info(g, y, &info);
    assert_int_equal(info.in_c, 15 * 3 * 3);
    incv3_graph_init_params(g, 31);
    float *x = random_floats(in_count(g, 2), 32, -1.0f, 1.0f);
    problem pr = {.g = g, .x = x, .batch = 2, .mode = INCV3_TRAIN, .outputs = 1, .smoothing = 0.1f};
    pr.weight[0] = 1.0f;
    pr.labels[0] = aux_labels;
    fd_opts fo = {.per_param = 12, .inputs = 30, .all_used = 1, .seed = 33};
    fd_check(&pr, &fo, "fan-out of three");
    free(x);
    incv3_graph_free(g);
}

/* A trunk with two heads; head 1 has its own convolution and linear layer. */
static incv3_graph *build_two_heads(uint64_t seed)
{
    incv3_graph *g = incv3_graph_new(2, 5, 5);
    int t = incv3_graph_conv(g, incv3_graph_input_node(g), "trunk", 4, 3, 3, 1, 1, 1);
    t = incv3_graph_relu(g, t);
    int h0 = incv3_graph_linear(g, incv3_graph_flatten(g, incv3_graph_global_avgpool(g, t)), "head0.fc", 3);
    int h1 = incv3_graph_conv(g, t, "head1.conv", 2, 1, 1, 1, 0, 0);
    h1 = incv3_graph_linear(g, incv3_graph_flatten(g, incv3_graph_global_avgpool(g, h1)), "head1.fc", 3);
    incv3_graph_set_output(g, 0, h0);
    incv3_graph_set_output(g, 1, h1);
    check_built(g);
    incv3_graph_init_params(g, seed);
    return g;
}

static float **snapshot_grads(incv3_graph *g)
{
    size_t np = incv3_graph_param_count(g);
    float **s = calloc(np, sizeof *s);
    assert_non_null(s);
    for (size_t i = 0; i < np; i++) {
        incv3_param *p = incv3_graph_param(g, i);
        if (p->kind != INCV3_PARAM)
            continue;
        s[i] = malloc(p->numel * sizeof(float));
        assert_non_null(s[i]);
        memcpy(s[i], p->grad, p->numel * sizeof(float));
    }
    return s;
}

static void free_snapshot(incv3_graph *g, float **s)
{
    for (size_t i = 0; i < incv3_graph_param_count(g); i++)
        free(s[i]);
    free(s);
}

static int all_zero(const float *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0.0f)
            return 0;
    return 1;
}

static void test_unused_head(void **state)
{
    (void)state;
    static const int64_t l0[2] = {0, 2}, l1[2] = {1, 1};
    incv3_graph *g = build_two_heads(41);
    float *x = random_floats(in_count(g, 2), 42, -1.0f, 1.0f);
    problem pr = {.g = g, .x = x, .batch = 2, .mode = INCV3_TRAIN, .outputs = 3, .smoothing = 0.1f};
    pr.weight[0] = 1.0f, pr.weight[1] = 0.5f;
    pr.labels[0] = l0, pr.labels[1] = l1;

    /* Both heads in the objective: every parameter is reached. */
    problem_backward(&pr, NULL);
    size_t np = incv3_graph_param_count(g);
    for (size_t i = 0; i < np; i++) {
        incv3_param *p = incv3_graph_param(g, i);
        assert_int_equal(p->has_grad, 1);
        assert_false(all_zero(p->grad, p->numel));
    }
    float **both = snapshot_grads(g);

    /* Head 1 computed but given no d_out: its parameters get nothing, the trunk only head 0's share. */
    pr.weight[1] = 0.0f;
    problem_backward(&pr, NULL);
    for (size_t i = 0; i < np; i++) {
        incv3_param *p = incv3_graph_param(g, i);
        int head1 = strncmp(p->name, "head1.", 6) == 0;
        if (head1) {
            if (p->has_grad != 0 || !all_zero(p->grad, p->numel))
                fail_msg("%s: has_grad %d, gradient not zero after a backward without its head", p->name,
                         p->has_grad);
        } else {
            assert_int_equal(p->has_grad, 1);
        }
    }
    assert_memory_not_equal(both[0], param(g, "trunk.weight")->grad, param(g, "trunk.weight")->numel * 4);
    float **only0 = snapshot_grads(g);

    /* The same as a forward that never computed head 1. */
    pr.outputs = 1;
    problem_backward(&pr, NULL);
    assert_null(incv3_graph_output(g, 1));
    for (size_t i = 0; i < np; i++) {
        incv3_param *p = incv3_graph_param(g, i);
        assert_memory_equal(only0[i], p->grad, p->numel * sizeof(float));
        assert_int_equal(p->has_grad, strncmp(p->name, "head1.", 6) != 0);
    }
    /* No output gradient at all: nothing reached, the input gradient is zero. */
    {
        float dl0[6] = {0};
        assert_int_equal(incv3_graph_forward(g, x, 2, &(incv3_forward_opts){.mode = INCV3_TRAIN, .outputs = 3,
                                                                            .for_backward = 1},
                                             NULL),
                         0);
        size_t nin = in_count(g, 2);
        float *dx = malloc(nin * sizeof *dx);
        assert_non_null(dx);
        for (size_t j = 0; j < nin; j++)
            dx[j] = 1e30f;
        const float *none[MAXS] = {NULL, NULL, NULL, NULL};
        incv3_error err = {{0}};
        assert_int_equal(incv3_graph_backward(g, none, dx, &err), 0);
        assert_true(all_zero(dx, nin));
        for (size_t i = 0; i < np; i++) {
            incv3_param *p = incv3_graph_param(g, i);
            assert_int_equal(p->has_grad, 0);
            assert_true(all_zero(p->grad, p->numel));
        }
        /* A zero output gradient still reaches every parameter of its head (with zero gradients). */
        const float *zero0[MAXS] = {dl0, NULL, NULL, NULL};
        assert_int_equal(incv3_graph_forward(g, x, 2, &(incv3_forward_opts){.mode = INCV3_TRAIN, .outputs = 1,
                                                                            .for_backward = 1},
                                             NULL),
                         0);
        assert_int_equal(incv3_graph_backward(g, zero0, dx, &err), 0);
        assert_int_equal(param(g, "trunk.weight")->has_grad, 1);
        assert_int_equal(param(g, "head0.fc.bias")->has_grad, 1);
        assert_int_equal(param(g, "head1.fc.bias")->has_grad, 0);
        assert_true(all_zero(dx, nin));
        free(dx);
    }
    /* And it matches finite differences of the head-0 loss alone. */
    fd_opts fo = {.per_param = 10, .inputs = 10, .all_used = 0, .seed = 43};
    pr.outputs = 3; /* head 1 computed but not in the objective */
    fd_check(&pr, &fo, "head 0 only");
    free_snapshot(g, both);
    free_snapshot(g, only0);
    free(x);
    incv3_graph_free(g);
}

static void test_output_mask(void **state)
{
    (void)state;
    incv3_graph *g = build_two_heads(51);
    float *x = random_floats(in_count(g, 2), 52, -1.0f, 1.0f);
    incv3_error err = {{0}};
    incv3_forward_opts o = {.mode = INCV3_INFER, .outputs = 3};
    assert_int_equal(incv3_graph_forward(g, x, 2, &o, &err), 0);
    assert_non_null(incv3_graph_output(g, 0));
    assert_non_null(incv3_graph_output(g, 1));
    float both0[6];
    memcpy(both0, incv3_graph_output(g, 0)->data, sizeof both0);

    o.outputs = 1;
    assert_int_equal(incv3_graph_forward(g, x, 2, &o, &err), 0);
    assert_non_null(incv3_graph_output(g, 0));
    assert_null(incv3_graph_output(g, 1));
    assert_memory_equal(both0, incv3_graph_output(g, 0)->data, sizeof both0);

    o.outputs = 0; /* slot 0 only */
    assert_int_equal(incv3_graph_forward(g, x, 2, &o, &err), 0);
    assert_non_null(incv3_graph_output(g, 0));
    assert_null(incv3_graph_output(g, 1));

    o.outputs = 2;
    assert_int_equal(incv3_graph_forward(g, x, 2, &o, &err), 0);
    assert_null(incv3_graph_output(g, 0));
    assert_non_null(incv3_graph_output(g, 1));
    assert_null(incv3_graph_output(g, 2));
    assert_null(incv3_graph_output(g, -1));
    assert_null(incv3_graph_output(g, MAXS));

    /* Asking for a slot without output node fails and names the slot. */
    o.outputs = 4;
    assert_int_not_equal(incv3_graph_forward(g, x, 2, &o, &err), 0);
    assert_contains(err.msg, "output 2");

    /* A gradient for an output the forward pass skipped is an error. */
    o.outputs = 1;
    o.for_backward = 1;
    assert_int_equal(incv3_graph_forward(g, x, 2, &o, &err), 0);
    float d[6] = {0.1f, -0.1f, 0.2f, 0.0f, 0.3f, -0.3f};
    const float *dout[MAXS] = {NULL, d, NULL, NULL};
    err.msg[0] = 0;
    assert_int_not_equal(incv3_graph_backward(g, dout, NULL, &err), 0);
    assert_contains(err.msg, "output 1");
    free(x);
    incv3_graph_free(g);
}

/* ---------------------------------------------------------------- build and usage errors */

static void expect_build_error(incv3_graph *g, int id, const char *word)
{
    assert_true(id < 0);
    const char *e = incv3_graph_error(g);
    assert_non_null(e);
    assert_contains(e, word);
    /* Later builder calls fail, even on valid inputs. */
    assert_true(incv3_graph_relu(g, incv3_graph_input_node(g)) < 0);
    assert_true(incv3_graph_conv(g, incv3_graph_input_node(g), "later", 2, 1, 1, 1, 0, 0) < 0);
    assert_true(incv3_graph_flatten(g, incv3_graph_input_node(g)) < 0);
    /* The first error is kept. */
    assert_string_equal(incv3_graph_error(g), e);
    incv3_error err = {{0}};
    incv3_forward_opts o = {.mode = INCV3_INFER};
    float x[3 * 5 * 5] = {0};
    assert_int_not_equal(incv3_graph_forward(g, x, 1, &o, &err), 0);
    assert_true(err.msg[0] != 0);
    assert_contains(err.msg, word);
}

static void test_build_errors(void **state)
{
    (void)state;
    incv3_graph *g = incv3_graph_new(3, 5, 5);
    assert_null(incv3_graph_error(g));
    int c = incv3_graph_conv(g, 0, "big", 4, 7, 7, 1, 0, 0);
    expect_build_error(g, c, "fit");
    assert_contains(incv3_graph_error(g), "big");
    incv3_graph_free(g);

    g = incv3_graph_new(3, 5, 5);
    int p = incv3_graph_maxpool(g, 0, 7, 1, 0);
    expect_build_error(g, p, "fit");
    incv3_graph_free(g);

    g = incv3_graph_new(3, 5, 5);
    int a = incv3_graph_conv(g, 0, "a", 2, 3, 3, 1, 0, 0); /* 3x3 */
    int b = incv3_graph_conv(g, 0, "b", 2, 3, 3, 1, 1, 1); /* 5x5 */
    assert_true(a > 0 && b > 0);
    assert_null(incv3_graph_error(g));
    int ab[2] = {a, b};
    expect_build_error(g, incv3_graph_concat(g, 2, ab), "spatial");
    assert_contains(incv3_graph_error(g), "concat");
    incv3_graph_free(g);

    g = incv3_graph_new(3, 5, 5);
    int gp = incv3_graph_global_avgpool(g, 0);
    assert_true(gp > 0);
    expect_build_error(g, incv3_graph_linear(g, gp, "fc", 3), "flatten");
    assert_contains(incv3_graph_error(g), "fc");
    incv3_graph_free(g);

    g = incv3_graph_new(3, 5, 5);
    expect_build_error(g, incv3_graph_relu(g, 42), "does not exist");
    assert_contains(incv3_graph_error(g), "42");
    incv3_graph_free(g);

    g = incv3_graph_new(3, 5, 5);
    expect_build_error(g, incv3_graph_conv(g, 1, "self", 2, 1, 1, 1, 0, 0), "does not exist");
    incv3_graph_free(g);

    g = incv3_graph_new(3, 5, 5);
    expect_build_error(g, incv3_graph_global_avgpool(g, 100), "does not exist");
    incv3_node_info info;
    incv3_graph_node_info(g, 100, &info);
    assert_string_equal(info.kind, "none");
    incv3_graph_free(g);

    g = incv3_graph_new(3, 5, 5);
    int r = incv3_graph_relu(g, 0);
    int bad[2] = {r, 9};
    expect_build_error(g, incv3_graph_concat(g, 2, bad), "does not exist");
    incv3_graph_free(g);

    g = incv3_graph_new(3, 5, 5);
    assert_true(incv3_graph_set_output(g, 0, 17) < 0);
    expect_build_error(g, -1, "does not exist");
    incv3_graph_free(g);

    /* A negative id propagates without a new message: the first error stays. */
    g = incv3_graph_new(3, 5, 5);
    c = incv3_graph_conv(g, 0, "big", 4, 9, 9, 1, 0, 0);
    int chain = incv3_graph_linear(g, incv3_graph_flatten(g, incv3_graph_relu(g, c)), "fc", 2);
    expect_build_error(g, chain, "big");
    incv3_graph_free(g);

    g = incv3_graph_new(0, 5, 5);
    assert_non_null(incv3_graph_error(g));
    incv3_graph_free(g);
}

static void test_backward_needs_forward(void **state)
{
    (void)state;
    incv3_graph *g = build_two_heads(61);
    float *x = random_floats(in_count(g, 2), 62, -1.0f, 1.0f);
    float d[6] = {0.1f, -0.1f, 0.2f, 0.0f, 0.3f, -0.3f};
    const float *dout[MAXS] = {d, NULL, NULL, NULL};
    incv3_error err = {{0}};
    /* No forward at all. */
    assert_int_not_equal(incv3_graph_backward(g, dout, NULL, &err), 0);
    assert_contains(err.msg, "for_backward");
    /* A forward that kept nothing for backward. */
    incv3_forward_opts o = {.mode = INCV3_TRAIN};
    assert_int_equal(incv3_graph_forward(g, x, 2, &o, &err), 0);
    err.msg[0] = 0;
    assert_int_not_equal(incv3_graph_backward(g, dout, NULL, &err), 0);
    assert_contains(err.msg, "for_backward");
    /* A proper pair works, once. */
    o.for_backward = 1;
    assert_int_equal(incv3_graph_forward(g, x, 2, &o, &err), 0);
    assert_int_equal(incv3_graph_backward(g, dout, NULL, &err), 0);
    err.msg[0] = 0;
    assert_int_not_equal(incv3_graph_backward(g, dout, NULL, &err), 0);
    assert_contains(err.msg, "for_backward");
    /* Invalid batch or input. */
    err.msg[0] = 0;
    assert_int_not_equal(incv3_graph_forward(g, x, 0, &o, &err), 0);
    assert_contains(err.msg, "batch");
    err.msg[0] = 0;
    assert_int_not_equal(incv3_graph_forward(g, NULL, 2, &o, &err), 0);
    assert_true(err.msg[0] != 0);
    free(x);
    incv3_graph_free(g);
}

/* ---------------------------------------------------------------- batch size changes */

static incv3_graph *build_small_cnn(uint64_t seed, float momentum)
{
    incv3_graph *g = incv3_graph_new(3, 8, 8);
    int y = incv3_graph_conv(g, incv3_graph_input_node(g), "conv1", 6, 3, 3, 2, 1, 1);
    y = incv3_graph_batchnorm(g, y, "bn1", 1e-3f, momentum);
    y = incv3_graph_relu(g, y);
    y = incv3_graph_conv(g, y, "conv2", 5, 3, 3, 1, 1, 1);
    y = incv3_graph_maxpool(g, y, 2, 2, 0);
    y = incv3_graph_flatten(g, incv3_graph_global_avgpool(g, y));
    y = incv3_graph_linear(g, y, "fc", 4);
    incv3_graph_set_output(g, 0, y);
    check_built(g);
    incv3_graph_init_params(g, seed);
    randomize_bn(g, seed + 5);
    return g;
}

static void infer_logits(incv3_graph *g, const float *x, int batch, float *out)
{
    incv3_forward_opts o = {.mode = INCV3_INFER};
    incv3_error err = {{0}};
    if (incv3_graph_forward(g, x, batch, &o, &err))
        fail_msg("forward: %s", err.msg);
    const incv3_tensor *t = incv3_graph_output(g, 0);
    assert_non_null(t);
    assert_int_equal(t->n, batch);
    assert_int_equal(t->c * t->h * t->w, 4);
    memcpy(out, t->data, (size_t)batch * 4 * sizeof *out);
}

static void gather(const float *all, const int *idx, int n, size_t sample, float *dst)
{
    for (int i = 0; i < n; i++)
        memcpy(dst + (size_t)i * sample, all + (size_t)idx[i] * sample, sample * sizeof *dst);
}

static void train_step_grads(incv3_graph *g, float *x, int batch, float *d_input)
{
    static const int64_t labels[5] = {0, 3, 1, 2, 3};
    problem pr = {.g = g, .x = x, .batch = batch, .mode = INCV3_TRAIN, .outputs = 1, .smoothing = 0.0f};
    pr.weight[0] = 1.0f;
    pr.labels[0] = labels;
    problem_backward(&pr, d_input);
}

static void test_batch_size_change(void **state)
{
    (void)state;
    /* Momentum 0: training forwards leave the running statistics, so inference results stay comparable. */
    incv3_graph *g = build_small_cnn(71, 0.0f);
    const size_t sample = 3 * 8 * 8;
    float *all = random_floats(5 * sample, 72, -1.0f, 1.0f);
    float *x2 = malloc(2 * sample * sizeof *x2), *x2b = malloc(2 * sample * sizeof *x2b);
    assert_non_null(x2);
    assert_non_null(x2b);
    const int i01[2] = {0, 1}, i31[2] = {3, 1};
    gather(all, i01, 2, sample, x2);
    gather(all, i31, 2, sample, x2b);
    float a[2 * 4], b[5 * 4], c[2 * 4];
    infer_logits(g, x2, 2, a);
    /* A training step at batch 5 in between. */
    float *dx5 = malloc(5 * sample * sizeof *dx5);
    assert_non_null(dx5);
    train_step_grads(g, all, 5, dx5);
    infer_logits(g, all, 5, b);
    infer_logits(g, x2b, 2, c);
    for (int k = 0; k < 4; k++) {
        assert_float_equal(a[k], b[k], 1e-5);
        assert_float_equal(a[4 + k], b[4 + k], 1e-5);
        assert_float_equal(c[k], b[3 * 4 + k], 1e-5);
        assert_float_equal(c[4 + k], b[4 + k], 1e-5);
    }
    /* Training at batch 2 after batch 5 gives what a fresh graph gives at batch 2. */
    float *dx2 = malloc(2 * sample * sizeof *dx2), *dx2f = malloc(2 * sample * sizeof *dx2f);
    assert_non_null(dx2);
    assert_non_null(dx2f);
    train_step_grads(g, x2, 2, dx2);
    float **gs = snapshot_grads(g);
    incv3_graph *f = build_small_cnn(71, 0.0f);
    train_step_grads(f, x2, 2, dx2f);
    for (size_t i = 0; i < incv3_graph_param_count(g); i++) {
        incv3_param *p = incv3_graph_param(f, i);
        if (p->kind == INCV3_PARAM)
            assert_memory_equal(gs[i], p->grad, p->numel * sizeof(float));
    }
    assert_memory_equal(dx2, dx2f, 2 * sample * sizeof *dx2);
    free_snapshot(g, gs);
    incv3_graph_free(f);
    free(dx2);
    free(dx2f);
    free(dx5);
    free(x2);
    free(x2b);
    free(all);
    incv3_graph_free(g);
}

/* ---------------------------------------------------------------- activation memory */

static void test_memory_lifetimes(void **state)
{
    (void)state;
    enum { L = 12, C = 8, S = 24, B = 2 };
    incv3_graph *g = incv3_graph_new(C, S, S);
    int y = incv3_graph_input_node(g);
    for (int i = 0; i < L; i++) {
        char name[32];
        snprintf(name, sizeof name, "layer%d.conv", i);
        y = incv3_graph_conv(g, y, name, C, 3, 3, 1, 1, 1);
        y = incv3_graph_relu(g, y);
    }
    y = incv3_graph_linear(g, incv3_graph_flatten(g, incv3_graph_global_avgpool(g, y)), "fc", 3);
    incv3_graph_set_output(g, 0, y);
    check_built(g);
    incv3_graph_init_params(g, 81);
    const size_t layer = (size_t)B * C * S * S * sizeof(float);
    const size_t all_outputs = 2 * L * layer;
    float *x = random_floats(in_count(g, B), 82, -1.0f, 1.0f);
    incv3_error err = {{0}};

    incv3_forward_opts o = {.mode = INCV3_INFER};
    assert_int_equal(incv3_graph_forward(g, x, B, &o, &err), 0);
    size_t peak_infer = incv3_graph_peak_activation_bytes(g);
    float first[B * 3];
    memcpy(first, incv3_graph_output(g, 0)->data, sizeof first);
    print_message("  layer output %zu bytes, all outputs %zu, peak inference %zu\n", layer, all_outputs,
                  peak_infer);
    assert_true(peak_infer >= layer);
    assert_true(peak_infer <= 4 * layer);
    assert_true(peak_infer * 6 < all_outputs);

    incv3_graph_reset_peak(g);
    o.mode = INCV3_TRAIN;
    o.for_backward = 1;
    assert_int_equal(incv3_graph_forward(g, x, B, &o, &err), 0);
    size_t peak_train = incv3_graph_peak_activation_bytes(g);
    print_message("  peak with for_backward %zu\n", peak_train);
    assert_true(peak_train >= (size_t)L * layer); /* ReLU outputs are kept for backward */
    assert_true(peak_train > 3 * peak_infer);

    float d[B * 3] = {0.1f, -0.2f, 0.1f, 0.05f, 0.05f, -0.1f};
    const float *dout[MAXS] = {d, NULL, NULL, NULL};
    float *dx = malloc(in_count(g, B) * sizeof *dx);
    assert_non_null(dx);
    assert_int_equal(incv3_graph_backward(g, dout, dx, &err), 0);
    assert_false(all_zero(dx, in_count(g, B)));

    /* After backward a forward works again, gives the same result and frees as it goes. */
    incv3_graph_reset_peak(g);
    o.mode = INCV3_INFER;
    o.for_backward = 0;
    assert_int_equal(incv3_graph_forward(g, x, B, &o, &err), 0);
    assert_memory_equal(first, incv3_graph_output(g, 0)->data, sizeof first);
    assert_true(incv3_graph_peak_activation_bytes(g) <= 4 * layer);
    free(dx);
    free(x);
    incv3_graph_free(g);
}

/* ---------------------------------------------------------------- determinism */

static void run_main_grads(main_graph *m, float *x, float *dx, float ***snap)
{
    problem pr = main_problem(m, 3, INCV3_TRAIN, x);
    problem_backward(&pr, dx);
    *snap = snapshot_grads(m->g);
}

static void test_determinism(void **state)
{
    (void)state;
    main_graph a = build_main(91), b = build_main(91);
    size_t n = in_count(a.g, 3);
    float *x = random_floats(n, 92, -1.0f, 1.0f);
    float *dxa = malloc(n * sizeof *dxa), *dxa2 = malloc(n * sizeof *dxa2), *dxb = malloc(n * sizeof *dxb);
    assert_non_null(dxa);
    assert_non_null(dxa2);
    assert_non_null(dxb);
    float **ga, **ga2, **gb;
    run_main_grads(&a, x, dxa, &ga);
    run_main_grads(&a, x, dxa2, &ga2); /* same graph again (training output ignores running stats) */
    run_main_grads(&b, x, dxb, &gb);
    size_t np = incv3_graph_param_count(a.g);
    for (size_t i = 0; i < np; i++) {
        incv3_param *p = incv3_graph_param(a.g, i);
        if (p->kind != INCV3_PARAM)
            continue;
        assert_memory_equal(ga[i], ga2[i], p->numel * sizeof(float));
        assert_memory_equal(ga[i], gb[i], p->numel * sizeof(float));
    }
    assert_memory_equal(dxa, dxa2, n * sizeof *dxa);
    assert_memory_equal(dxa, dxb, n * sizeof *dxa);
    /* Same seed, same parameters; another seed, others. */
    main_graph c = build_main(92);
    assert_memory_equal(param(a.g, "stem.conv.weight")->data, param(b.g, "stem.conv.weight")->data, 108 * 4);
    assert_memory_not_equal(param(a.g, "stem.conv.weight")->data, param(c.g, "stem.conv.weight")->data, 108 * 4);
    free_snapshot(a.g, ga);
    free_snapshot(a.g, ga2);
    free_snapshot(b.g, gb);
    free(dxa);
    free(dxa2);
    free(dxb);
    free(x);
    incv3_graph_free(a.g);
    incv3_graph_free(b.g);
    incv3_graph_free(c.g);
}

static void test_init_params(void **state)
{
    (void)state;
    main_graph m = build_main(101);
    incv3_graph_init_params(m.g, 101); /* plain initialization, BatchNorm randomization undone */
    incv3_param *w = param(m.g, "a.conv.weight");
    double bound = 1.0 / sqrt(4.0 * 7.0), mx = 0;
    for (size_t j = 0; j < w->numel; j++) {
        assert_true(fabs(w->data[j]) <= bound + 1e-7);
        mx = fmax(mx, fabs(w->data[j]));
    }
    assert_true(mx > 0.5 * bound);
    incv3_param *fb = param(m.g, "fc.bias");
    bound = 1.0 / sqrt(72.0);
    for (size_t j = 0; j < fb->numel; j++)
        assert_true(fabs(fb->data[j]) <= bound + 1e-7);
    assert_false(all_zero(fb->data, fb->numel));
    for (int c = 0; c < 5; c++) {
        assert_true(param(m.g, "a.bn.weight")->data[c] == 1.0f);
        assert_true(param(m.g, "a.bn.bias")->data[c] == 0.0f);
        assert_true(param(m.g, "a.bn.running_mean")->data[c] == 0.0f);
        assert_true(param(m.g, "a.bn.running_var")->data[c] == 1.0f);
    }
    incv3_graph_free(m.g);
}

/* ---------------------------------------------------------------- kernel selection */

static void test_set_kernels(void **state)
{
    (void)state;
    incv3_graph *g = build_small_cnn(111, 0.1f);
    float *x = random_floats(in_count(g, 2), 112, -1.0f, 1.0f);
    float a[8], b[8], d[8];
    /* The default is the fastest ISA here (auto); the reference kernels agree with it to rounding. */
    infer_logits(g, x, 2, d);
    incv3_error err = {{0}};
    assert_int_equal(incv3_graph_set_kernels(g, "scalar", "ref", &err), 0);
    infer_logits(g, x, 2, a);
    for (int i = 0; i < 8; i++)
        assert_float_equal(a[i], d[i], 1e-5f * (1.0f + fabsf(a[i])));
    assert_int_equal(incv3_graph_set_kernels(g, "scalar", "ref", &err), 0);
    infer_logits(g, x, 2, b);
    assert_memory_equal(a, b, sizeof a);

    err.msg[0] = 0;
    assert_int_not_equal(incv3_graph_set_kernels(g, "foo", "ref", &err), 0);
    assert_int_equal(strncmp(err.msg, "--isa", 5), 0);
    assert_contains(err.msg, "foo");
    assert_contains(err.msg, "scalar"); /* lists what is available */

    err.msg[0] = 0;
    assert_int_not_equal(incv3_graph_set_kernels(g, "scalar", "bar", &err), 0);
    assert_int_equal(strncmp(err.msg, "--conv-algo", 11), 0);
    assert_contains(err.msg, "bar");
    assert_contains(err.msg, "ref");

    /* A refused choice leaves the graph usable with its previous kernels. */
    infer_logits(g, x, 2, b);
    assert_memory_equal(a, b, sizeof a);
    assert_int_equal(incv3_graph_set_kernels(g, "auto", "auto", &err), 0);
    assert_int_equal(incv3_graph_set_kernels(g, NULL, NULL, &err), 0);
    free(x);
    incv3_graph_free(g);
}

/* ---------------------------------------------------------------- AdamW */

static void test_adamw_first_step(void **state)
{
    (void)state;
    static const int64_t l0[2] = {2, 0};
    incv3_graph *g = build_two_heads(121);
    incv3_error err = {{0}};
    incv3_adamw_hparams hp = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.1f};
    incv3_adamw *opt = incv3_adamw_new(g, hp, &err);
    assert_non_null(opt);
    assert_int_equal(incv3_adamw_steps(opt), 0);
    float *x = random_floats(in_count(g, 2), 122, -1.0f, 1.0f);
    problem pr = {.g = g, .x = x, .batch = 2, .mode = INCV3_TRAIN, .outputs = 3, .smoothing = 0.1f};
    pr.weight[0] = 1.0f; /* head 1 gets no gradient */
    pr.labels[0] = l0;
    problem_backward(&pr, NULL);

    size_t np = incv3_graph_param_count(g);
    float **before = calloc(np, sizeof *before);
    assert_non_null(before);
    for (size_t i = 0; i < np; i++) {
        incv3_param *p = incv3_graph_param(g, i);
        before[i] = malloc(p->numel * sizeof(float));
        assert_non_null(before[i]);
        memcpy(before[i], p->data, p->numel * sizeof(float));
    }
    incv3_adamw_step(opt, g);
    assert_int_equal(incv3_adamw_steps(opt), 1);
    int moved = 0;
    for (size_t i = 0; i < np; i++) {
        incv3_param *p = incv3_graph_param(g, i);
        if (!p->has_grad) {
            assert_true(strncmp(p->name, "head1.", 6) == 0);
            assert_memory_equal(before[i], p->data, p->numel * sizeof(float));
            continue;
        }
        const float *m = incv3_adamw_exp_avg(opt, i), *v = incv3_adamw_exp_avg_sq(opt, i);
        assert_non_null(m);
        assert_non_null(v);
        for (size_t j = 0; j < p->numel; j++) {
            double p0 = before[i][j], gr = p->grad[j];
            double decayed = p0 * (1.0 - 1e-2 * 0.1);
            /* First step: m / sqrt(v) with bias corrections is g / |g|, so the step is lr * sign(g). */
            double expect = decayed - 1e-2 * gr / (fabs(gr) + 1e-8);
            if (fabs(p->data[j] - expect) > 1e-6 + 1e-6 * fabs(p0))
                fail_msg("%s[%zu]: %.9g -> %.9g with grad %.6g, expected %.9g", p->name, j, p0, p->data[j], gr,
                         expect);
            if (fabs(gr) > 1e-5) {
                double step = p->data[j] - decayed;
                assert_true(fabs(fabs(step) - 1e-2) < 1e-5);
                assert_true((step < 0) == (gr > 0));
                moved++;
            }
            assert_float_equal(m[j], 0.1 * gr, 1e-7 + 1e-6 * fabs(gr));
            assert_float_equal(v[j], 0.001 * gr * gr, 1e-12 + 1e-6 * gr * gr);
        }
    }
    assert_true(moved > 20);
    for (size_t i = 0; i < np; i++)
        free(before[i]);
    free(before);
    free(x);
    incv3_adamw_free(opt);
    incv3_graph_free(g);
}

static void test_softmax_xent_errors(void **state)
{
    (void)state;
    const float logits[4] = {0.5f, -1.0f, 2.0f, 0.0f};
    const int64_t bad[2] = {1, 2};
    double loss = 0;
    incv3_error err = {{0}};
    assert_int_not_equal(incv3_softmax_xent(logits, bad, 2, 2, 0.0f, 1.0f, NULL, &loss, &err), 0);
    assert_contains(err.msg, "label 2");
    const int64_t ok[2] = {1, 0};
    float d[4];
    assert_int_equal(incv3_softmax_xent(logits, ok, 2, 2, 0.0f, 2.0f, d, &loss, &err), 0);
    /* -log softmax[label]: sample 0 (label 1) log(e^0.5 + e^-1) + 1, sample 1 (label 0) log(1 + e^-2). */
    double s0 = log(exp(0.5) + exp(-1.0)) + 1.0, l1 = log(1 + exp(-2.0));
    assert_float_equal(loss, (s0 + l1) / 2, 1e-6);
    /* d = scale * (softmax - onehot) / n */
    double p01 = exp(-1.0) / (exp(0.5) + exp(-1.0));
    assert_float_equal(d[1], 2.0 * (p01 - 1.0) / 2, 1e-6);
    assert_float_equal(d[0] + d[1], 0.0, 1e-6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes_and_info),
        cmocka_unit_test(test_fd_main_train_batch1),
        cmocka_unit_test(test_fd_main_train_batch3),
        cmocka_unit_test(test_fd_main_infer_batch1),
        cmocka_unit_test(test_fd_main_infer_batch3),
        cmocka_unit_test(test_batchnorm_modes),
        cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_fan_out_accumulates),
        cmocka_unit_test(test_unused_head),
        cmocka_unit_test(test_output_mask),
        cmocka_unit_test(test_build_errors),
        cmocka_unit_test(test_backward_needs_forward),
        cmocka_unit_test(test_batch_size_change),
        cmocka_unit_test(test_memory_lifetimes),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_init_params),
        cmocka_unit_test(test_set_kernels),
        cmocka_unit_test(test_adamw_first_step),
        cmocka_unit_test(test_softmax_xent_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
