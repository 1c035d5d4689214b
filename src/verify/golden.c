/* check-golden: run the steps a make_golden.py file describes and judge each tensor by its rule. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "incv3/golden.h"
#include "incv3/model.h"
#include "incv3/safetensors.h"
#include "incv3/train.h"

/* One judged group of tensors (a row of the report). */
typedef struct group {
    const char *label;
    int tensors, failures;
    double worst_ratio, worst_err, worst_tol;
    char worst[INCV3_NAME_MAX + 32];
} group;

typedef struct judge {
    const incv3_st_file *file;
    json_t *fp32; /* tensor name -> PyTorch's own float32 relative error */
    double single_factor, group_factor;
    FILE *report;
    int verbose;
    int tensors, failures;
} judge;

static double rel_err(const float *a, const float *ref, size_t n)
{
    double d = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)a[i] - (double)ref[i];
        d += e * e;
        r += (double)ref[i] * ref[i];
    }
    return r > 0 ? sqrt(d / r) : sqrt(d);
}

static double fp32_err(const judge *j, const char *name)
{
    json_t *v = json_object_get(j->fp32, name);
    return json_is_number(v) ? json_number_value(v) : 0.0;
}

static void note(judge *j, group *gr, const char *name, double err, double tol)
{
    gr->tensors++;
    j->tensors++;
    double ratio = err / tol;
    if (!(err <= tol)) {
        gr->failures++;
        j->failures++;
        if (j->report)
            fprintf(j->report, "  FAIL %-52s rel err %.3e > tolerance %.3e\n", name, err, tol);
    } else if (j->report && j->verbose) {
        fprintf(j->report, "  ok   %-52s rel err %.3e <= tolerance %.3e (PyTorch fp32: %.3e)\n", name, err, tol,
                fp32_err(j, name));
    }
    if (!(ratio <= gr->worst_ratio) || gr->tensors == 1) {
        gr->worst_ratio = ratio;
        gr->worst_err = err;
        gr->worst_tol = tol;
        snprintf(gr->worst, sizeof gr->worst, "%s", name);
    }
}

static void print_group(const judge *j, const group *gr)
{
    if (!j->report || gr->tensors == 0)
        return;
    fprintf(j->report, "| %-34s | %7d | %-46s | %9.2e | %9.2e | %-4s |\n", gr->label, gr->tensors, gr->worst,
            gr->worst_err, gr->worst_tol, gr->failures ? "FAIL" : "ok");
}

/* Rule (1): a single tensor within max(1e-5, factor x PyTorch's float32 error on it). */
static int judge_single(judge *j, group *gr, const char *golden_name, const float *ours, size_t n,
                        incv3_error *err)
{
    const incv3_st_tensor *t = incv3_st_require(j->file, golden_name, INCV3_F32, n, err);
    if (!t)
        return -1;
    double tol = fmax(1e-5, j->single_factor * fp32_err(j, golden_name));
    note(j, gr, golden_name, rel_err(ours, t->data, n), tol);
    return 0;
}

static int load_params(incv3_graph *g, const incv3_st_file *f, incv3_error *err)
{
    char key[INCV3_NAME_MAX + 16];
    for (size_t i = 0; i < incv3_graph_param_count(g); i++) {
        incv3_param *p = incv3_graph_param(g, i);
        snprintf(key, sizeof key, "param.%s", p->name);
        const incv3_st_tensor *t = incv3_st_require(f, key, INCV3_F32, p->numel, err);
        if (!t)
            return -1;
        memcpy(p->data, t->data, p->numel * sizeof(float));
    }
    return 0;
}

static int cfg_int(json_t *cfg, const char *key, int *out, const char *path, incv3_error *err)
{
    json_t *v = json_object_get(cfg, key);
    if (!json_is_integer(v) && !json_is_boolean(v))
        return incv3_fail(err, "%s: metadata config has no integer \"%s\"", path, key);
    *out = json_is_boolean(v) ? json_is_true(v) : (int)json_integer_value(v);
    return 0;
}

static int cfg_num(json_t *cfg, const char *key, double *out, const char *path, incv3_error *err)
{
    json_t *v = json_object_get(cfg, key);
    if (!json_is_number(v))
        return incv3_fail(err, "%s: metadata config has no number \"%s\"", path, key);
    *out = json_number_value(v);
    return 0;
}

typedef struct golden_cfg {
    incv3_model_config model;
    int batch;
    double smoothing, aux_weight, bn_eps, bn_momentum;
    incv3_adamw_hparams adamw;
} golden_cfg;

static int parse_config(const incv3_st_file *f, golden_cfg *c, incv3_error *err)
{
    const char *path = incv3_st_path(f);
    const char *text = incv3_st_metadata(f, "config");
    if (!text)
        return incv3_fail(err, "%s: no \"config\" in the metadata (not a make_golden.py file?)", path);
    json_error_t je;
    json_t *cfg = json_loads(text, 0, &je);
    if (!json_is_object(cfg)) {
        json_decref(cfg);
        return incv3_fail(err, "%s: metadata config is not a JSON object (%s)", path, je.text);
    }
    c->model = incv3_model_config_default();
    double width = 0, lr = 0, b1 = 0, b2 = 0, eps = 0, wd = 0;
    json_t *adamw = json_object_get(cfg, "adamw");
    int rc = cfg_num(cfg, "width", &width, path, err) || cfg_int(cfg, "image_size", &c->model.image_size, path, err) ||
             cfg_int(cfg, "aux", &c->model.aux, path, err) || cfg_int(cfg, "batch", &c->batch, path, err) ||
             cfg_int(cfg, "classes", &c->model.classes, path, err) ||
             cfg_num(cfg, "label_smoothing", &c->smoothing, path, err) ||
             cfg_num(cfg, "aux_weight", &c->aux_weight, path, err) || cfg_num(cfg, "bn_eps", &c->bn_eps, path, err) ||
             cfg_num(cfg, "bn_momentum", &c->bn_momentum, path, err) ||
             (!json_is_object(adamw) && incv3_fail(err, "%s: metadata config has no \"adamw\" object", path)) ||
             cfg_num(adamw, "lr", &lr, path, err) || cfg_num(adamw, "beta1", &b1, path, err) ||
             cfg_num(adamw, "beta2", &b2, path, err) || cfg_num(adamw, "eps", &eps, path, err) ||
             cfg_num(adamw, "weight_decay", &wd, path, err);
    json_decref(cfg);
    if (rc)
        return -1;
    c->model.width = width;
    c->adamw = (incv3_adamw_hparams){(float)lr, (float)b1, (float)b2, (float)eps, (float)wd};
    if (c->bn_eps != 1e-5 || c->bn_momentum != 0.1)
        return incv3_fail(err, "%s: BatchNorm eps %g / momentum %g; the model is built with 1e-5 / 0.1", path,
                          c->bn_eps, c->bn_momentum);
    if (c->batch < 1)
        return incv3_fail(err, "%s: batch %d in the config", path, c->batch);
    return 0;
}

/* One step: forward in `mode`, loss (with the aux head when train_aux), backward with the input gradient. */
static int run_step(incv3_graph *g, const golden_cfg *c, incv3_mode mode, int with_aux, const float *input,
                    const int64_t *labels, float *d_input, double *loss, incv3_error *err)
{
    int n = c->batch, k = c->model.classes;
    incv3_forward_opts fo = {.mode = mode, .outputs = with_aux ? 3u : 1u, .for_backward = 1};
    if (incv3_graph_forward(g, input, n, &fo, err))
        return -1;
    float *dl = malloc(sizeof(float) * (size_t)n * k * 2);
    if (!dl)
        return incv3_fail(err, "out of memory");
    double main_loss, aux_loss = 0;
    int rc = incv3_softmax_xent(incv3_graph_output(g, 0)->data, labels, n, k, (float)c->smoothing, 1.0f, dl,
                                &main_loss, err);
    if (rc == 0 && with_aux)
        rc = incv3_softmax_xent(incv3_graph_output(g, 1)->data, labels, n, k, (float)c->smoothing,
                                (float)c->aux_weight, dl + (size_t)n * k, &aux_loss, err);
    *loss = main_loss + c->aux_weight * aux_loss;
    const float *d_out[INCV3_MAX_OUTPUTS] = {dl, with_aux ? dl + (size_t)n * k : NULL, NULL, NULL};
    if (rc == 0)
        rc = incv3_graph_backward(g, d_out, d_input, err);
    free(dl);
    return rc;
}

static int judge_grads(judge *j, incv3_graph *g, const char *prefix, const float *d_input, size_t in_count,
                       int group_rule, group *each, group *all, incv3_error *err)
{
    char key[INCV3_NAME_MAX + 16];
    size_t n_params = incv3_graph_param_count(g);
    /* Rule (2) bounds each training gradient by the median of PyTorch's own errors over the group. */
    double *errs = malloc(sizeof(double) * (n_params + 1));
    if (!errs)
        return incv3_fail(err, "out of memory");
    size_t m = 0;
    double diff2 = 0, ref2 = 0;
    for (size_t i = 0; i <= n_params; i++) {
        const float *ours;
        size_t count;
        if (i < n_params) {
            const incv3_param *p = incv3_graph_param(g, i);
            snprintf(key, sizeof key, "%s.%s", prefix, p->name);
            if (p->kind != INCV3_PARAM)
                continue;
            if (!p->has_grad) {
                if (incv3_st_find(j->file, key)) {
                    free(errs);
                    return incv3_fail(err, "%s: %s exists but the model computed no gradient for %s",
                                      incv3_st_path(j->file), key, p->name);
                }
                continue;
            }
            ours = p->grad, count = p->numel;
        } else {
            snprintf(key, sizeof key, "%s.input", prefix);
            ours = d_input, count = in_count;
        }
        const incv3_st_tensor *t = incv3_st_require(j->file, key, INCV3_F32, count, err);
        if (!t) {
            free(errs);
            return -1;
        }
        errs[m++] = fp32_err(j, key);
        const float *ref = t->data;
        for (size_t e = 0; e < count; e++) {
            double d = (double)ours[e] - ref[e];
            diff2 += d * d;
            ref2 += (double)ref[e] * ref[e];
        }
    }
    double median = 0;
    if (group_rule && m) {
        for (size_t a = 1; a < m; a++) /* insertion sort: a few hundred values */
            for (size_t b = a; b > 0 && errs[b - 1] > errs[b]; b--) {
                double t = errs[b];
                errs[b] = errs[b - 1];
                errs[b - 1] = t;
            }
        median = m % 2 ? errs[m / 2] : 0.5 * (errs[m / 2 - 1] + errs[m / 2]);
    }
    free(errs);
    for (size_t i = 0; i <= n_params; i++) {
        const float *ours;
        size_t count;
        if (i < n_params) {
            const incv3_param *p = incv3_graph_param(g, i);
            if (p->kind != INCV3_PARAM || !p->has_grad)
                continue;
            snprintf(key, sizeof key, "%s.%s", prefix, p->name);
            ours = p->grad, count = p->numel;
        } else {
            snprintf(key, sizeof key, "%s.input", prefix);
            ours = d_input, count = in_count;
        }
        const incv3_st_tensor *t = incv3_st_find(j->file, key);
        double e = rel_err(ours, t->data, count);
        double tol = group_rule ? fmax(1e-3, j->single_factor * median)
                                : fmax(1e-5, j->single_factor * fp32_err(j, key));
        note(j, each, key, e, tol);
    }
    if (group_rule) {
        char gname[64];
        snprintf(gname, sizeof gname, "group:%s", prefix);
        double e = ref2 > 0 ? sqrt(diff2 / ref2) : sqrt(diff2);
        note(j, all, gname, e, j->group_factor * fp32_err(j, gname));
    }
    return 0;
}

static int check_adamw(judge *j, incv3_graph *g, const golden_cfg *c, group *gr, incv3_error *err)
{
    /* The step uses the file's own float64 gradients, so it tests the optimizer alone. */
    char key[INCV3_NAME_MAX + 24];
    for (size_t i = 0; i < incv3_graph_param_count(g); i++) {
        incv3_param *p = incv3_graph_param(g, i);
        if (p->kind != INCV3_PARAM)
            continue;
        snprintf(key, sizeof key, "grad.%s", p->name);
        const incv3_st_tensor *t = incv3_st_require(j->file, key, INCV3_F32, p->numel, err);
        if (!t)
            return -1;
        memcpy(p->grad, t->data, p->numel * sizeof(float));
        p->has_grad = 1;
    }
    incv3_adamw *opt = incv3_adamw_new(g, c->adamw, err);
    if (!opt)
        return -1;
    incv3_adamw_step(opt, g);
    incv3_adamw_free(opt);
    for (size_t i = 0; i < incv3_graph_param_count(g); i++) {
        incv3_param *p = incv3_graph_param(g, i);
        if (p->kind != INCV3_PARAM)
            continue;
        snprintf(key, sizeof key, "param_after_step.%s", p->name);
        const incv3_st_tensor *t = incv3_st_require(j->file, key, INCV3_F32, p->numel, err);
        if (!t)
            return -1;
        note(j, gr, key, rel_err(p->data, t->data, p->numel), 1e-5);
    }
    return 0;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

int incv3_check_golden(const char *path, const incv3_golden_opts *opts, FILE *report, incv3_golden_result *res,
                       incv3_error *err)
{
    memset(res, 0, sizeof *res);
    incv3_st_file *f = incv3_st_open(path, err);
    if (!f)
        return -1;
    judge j = {.file = f, .report = report, .verbose = opts && opts->verbose};
    j.single_factor = opts && opts->single_factor > 0 ? opts->single_factor : 10.0;
    j.group_factor = opts && opts->group_factor > 0 ? opts->group_factor : 3.0;
    golden_cfg c;
    incv3_graph *g = NULL;
    float *d_input = NULL;
    int rc = -1;
    const char *fp32_text = incv3_st_metadata(f, "fp32_rel_err");
    json_error_t je;
    /* json_is_object() is a macro that evaluates its argument twice: load first. */
    j.fp32 = fp32_text ? json_loads(fp32_text, 0, &je) : NULL;
    if (!json_is_object(j.fp32)) {
        incv3_fail(err, "%s: metadata has no valid \"fp32_rel_err\" object", path);
        goto done;
    }
    if (parse_config(f, &c, err))
        goto done;
    if (!(g = incv3_inception_v3(&c.model, err)))
        goto done;
    if (incv3_graph_set_kernels(g, opts ? opts->isa : NULL, opts ? opts->conv_algo : NULL, err))
        goto done;
    int n = c.batch, s = c.model.image_size;
    size_t in_count = (size_t)n * 3 * s * s;
    const incv3_st_tensor *input = incv3_st_require(f, "input", INCV3_F32, in_count, err);
    const incv3_st_tensor *labels = incv3_st_require(f, "labels", INCV3_I64, (size_t)n, err);
    if (!input || !labels || load_params(g, f, err))
        goto done;
    if (!(d_input = malloc(in_count * sizeof(float)))) {
        incv3_fail(err, "out of memory");
        goto done;
    }
    /* Winograd trades float32 exactness for fewer multiplications; the rule's factors are raised for it
     * (10 -> 100 for single tensors, 3 -> 10 for the gradient group), as the Winograd issue set them. */
    const int winograd = incv3_graph_conv_algo_in_use(g, n, "winograd");
    if (winograd) {
        if (!(opts && opts->single_factor > 0))
            j.single_factor = 100.0;
        if (!(opts && opts->group_factor > 0))
            j.group_factor = 10.0;
    }
    if (report) {
        fprintf(report, "%s: width %g, %dx%d, batch %d, aux %s, %d classes\n", path, c.model.width, s, s, n,
                c.model.aux ? "on" : "off", c.model.classes);
        if (winograd)
            fprintf(report, "Winograd kernels in use: tolerance factors %g (single tensors) and %g (gradient "
                            "group)\n", j.single_factor, j.group_factor);
        fprintf(report, "| %-34s | %7s | %-46s | %9s | %9s | %-4s |\n", "group", "tensors", "worst tensor",
                "rel err", "tolerance", "");
        fprintf(report, "|%.36s|%.9s|%.48s|%.11s|%.11s|%.6s|\n", "------------------------------------",
                "---------", "------------------------------------------------", "-----------", "-----------",
                "------");
    }
    double t0 = now_seconds(), loss;
    float loss_f;

    /* Step A: inference-mode BatchNorm, main head only. */
    group ga = {.label = "inference logits and loss"}, gag = {.label = "inference gradients"};
    if (run_step(g, &c, INCV3_INFER, 0, input->data, labels->data, d_input, &loss, err))
        goto done;
    loss_f = (float)loss;
    if (judge_single(&j, &ga, "eval_logits", incv3_graph_output(g, 0)->data, (size_t)n * c.model.classes, err) ||
        judge_single(&j, &ga, "eval_loss", &loss_f, 1, err) ||
        judge_grads(&j, g, "eval_grad", d_input, in_count, 0, &gag, NULL, err))
        goto done;
    /* The same logits from a pure inference forward, which runs the fused kernels where the ISA has them. */
    group gi = {.label = "inference-only forward logits"};
    incv3_forward_opts fo = {.mode = INCV3_INFER, .outputs = 1u, .for_backward = 0};
    if (incv3_graph_forward(g, input->data, n, &fo, err) ||
        judge_single(&j, &gi, "eval_logits", incv3_graph_output(g, 0)->data, (size_t)n * c.model.classes, err))
        goto done;
    print_group(&j, &ga);
    print_group(&j, &gi);
    print_group(&j, &gag);

    /* Step B: training-mode BatchNorm (batch statistics), with the aux head when present. */
    group gl = {.label = "training logits"}, gx = {.label = "training aux logits"},
          gloss = {.label = "training loss"}, gg = {.label = "training gradients (each)"},
          gall = {.label = "training gradients (all together)"}, gb = {.label = "BN running statistics"};
    if (run_step(g, &c, INCV3_TRAIN, c.model.aux, input->data, labels->data, d_input, &loss, err))
        goto done;
    res->seconds = now_seconds() - t0;
    loss_f = (float)loss;
    if (judge_single(&j, &gl, "logits", incv3_graph_output(g, 0)->data, (size_t)n * c.model.classes, err) ||
        (c.model.aux &&
         judge_single(&j, &gx, "aux_logits", incv3_graph_output(g, 1)->data, (size_t)n * c.model.classes, err)) ||
        judge_single(&j, &gloss, "loss", &loss_f, 1, err) ||
        judge_grads(&j, g, "grad", d_input, in_count, 1, &gg, &gall, err))
        goto done;
    char key[INCV3_NAME_MAX + 16];
    for (size_t i = 0; i < incv3_graph_param_count(g); i++) {
        incv3_param *p = incv3_graph_param(g, i);
        if (p->kind != INCV3_BUFFER)
            continue;
        snprintf(key, sizeof key, "buffer_after.%s", p->name);
        if (judge_single(&j, &gb, key, p->data, p->numel, err))
            goto done;
    }
    print_group(&j, &gl);
    print_group(&j, &gx);
    print_group(&j, &gloss);
    print_group(&j, &gg);
    print_group(&j, &gall);
    print_group(&j, &gb);

    /* Step C: one AdamW step from the starting parameters and the file's gradients. */
    group gw = {.label = "AdamW step (file's gradients)"};
    if (load_params(g, f, err) || check_adamw(&j, g, &c, &gw, err))
        goto done;
    print_group(&j, &gw);

    res->tensors = j.tensors;
    res->failures = j.failures;
    res->passed = j.failures == 0 && j.tensors > 0;
    if (report)
        fprintf(report, "%s: %d tensors, %d outside tolerance: %s (steps A+B took %.1f s)\n", path, j.tensors,
                j.failures, res->passed ? "PASS" : "FAIL", res->seconds);
    rc = 0;
done:
    free(d_input);
    incv3_graph_free(g);
    json_decref(j.fp32);
    incv3_st_close(f);
    return rc;
}
