/* A program built against the installed library only (public headers found through pkg-config): a tiny
 * model through the graph API, an inference forward and one training step. Prints the logits; exits
 * non-zero when a call fails or a value is not finite. Built and run by tests/test_install.sh. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <incv3/graph.h>
#include <incv3/model.h>
#include <incv3/train.h>

enum { IN_C = 3, IN_H = 12, IN_W = 12, CLASSES = 5, BATCH = 2 };

static int failed(const char *what, const char *msg)
{
    fprintf(stderr, "install_consumer: %s failed: %s\n", what, msg && msg[0] ? msg : "(no message)");
    return 1;
}

static int all_finite(const float *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(p[i]))
            return 0;
    return 1;
}

static int print_logits(const incv3_graph *g, const char *label)
{
    const incv3_tensor *t = incv3_graph_output(g, INCV3_MAIN_OUTPUT);
    if (!t || !t->data)
        return failed(label, "no output after forward");
    if (t->n != BATCH || t->c != CLASSES || t->h != 1 || t->w != 1) {
        fprintf(stderr, "install_consumer: %s: output is %dx%dx%dx%d, expected %dx%dx1x1\n", label, t->n, t->c,
                t->h, t->w, BATCH, CLASSES);
        return 1;
    }
    if (!all_finite(t->data, incv3_tensor_count(t)))
        return failed(label, "logits are not finite");
    printf("%s\n", label);
    for (int n = 0; n < BATCH; n++) {
        printf("logits[%d]:", n);
        for (int k = 0; k < CLASSES; k++)
            printf(" %.6f", t->data[n * CLASSES + k]);
        printf("\n");
    }
    return 0;
}

int main(void)
{
    incv3_error err;
    memset(&err, 0, sizeof err);

    /* The model header: the default configuration is valid, a too-small image is not. */
    incv3_model_config cfg = incv3_model_config_default();
    if (incv3_model_config_check(&cfg, &err))
        return failed("incv3_model_config_check (default)", err.msg);
    cfg.image_size = 10;
    if (incv3_model_config_check(&cfg, &err) == 0 || !strstr(err.msg, "--image-size"))
        return failed("incv3_model_config_check (image size 10)", "accepted or message without --image-size");

    incv3_graph *g = incv3_graph_new(IN_C, IN_H, IN_W);
    if (!g)
        return failed("incv3_graph_new", "out of memory");
    int x = incv3_graph_input_node(g);
    x = incv3_graph_conv(g, x, "stem.conv", 8, 3, 3, 2, 1, 1);
    x = incv3_graph_batchnorm(g, x, "stem.bn", 1e-3f, 0.1f);
    x = incv3_graph_relu(g, x);
    x = incv3_graph_global_avgpool(g, x);
    x = incv3_graph_flatten(g, x);
    x = incv3_graph_linear(g, x, "fc", CLASSES);
    incv3_graph_set_output(g, INCV3_MAIN_OUTPUT, x);
    if (x < 0 || incv3_graph_error(g)) {
        int rc = failed("building the graph", incv3_graph_error(g));
        incv3_graph_free(g);
        return rc;
    }
    incv3_graph_init_params(g, 2024);
    if (!incv3_graph_find_param(g, "stem.bn.running_var") || incv3_graph_trainable_count(g) != 8 * 27 + 16 + 45) {
        incv3_graph_free(g);
        return failed("parameter table", "unexpected names or counts");
    }

    static float input[BATCH * IN_C * IN_H * IN_W];
    for (size_t i = 0; i < sizeof input / sizeof input[0]; i++)
        input[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;

    int rc = 1;
    incv3_adamw *opt = NULL;
    incv3_forward_opts fo = {.mode = INCV3_INFER, .outputs = 1u << INCV3_MAIN_OUTPUT};
    if (incv3_graph_forward(g, input, BATCH, &fo, &err)) {
        failed("inference forward", err.msg);
        goto done;
    }
    if (print_logits(g, "inference"))
        goto done;

    /* One training step: forward for backward, softmax cross-entropy, backward, AdamW. */
    fo.mode = INCV3_TRAIN;
    fo.for_backward = 1;
    fo.dropout_seed = 1;
    if (incv3_graph_forward(g, input, BATCH, &fo, &err)) {
        failed("training forward", err.msg);
        goto done;
    }
    const incv3_tensor *t = incv3_graph_output(g, INCV3_MAIN_OUTPUT);
    if (!t) {
        failed("training forward", "no output");
        goto done;
    }
    const int64_t labels[BATCH] = {1, 3};
    float dlogits[BATCH * CLASSES];
    double loss = 0;
    if (incv3_softmax_xent(t->data, labels, BATCH, CLASSES, 0.1f, 1.0f, dlogits, &loss, &err)) {
        failed("incv3_softmax_xent", err.msg);
        goto done;
    }
    if (!isfinite(loss) || !all_finite(dlogits, BATCH * CLASSES)) {
        failed("incv3_softmax_xent", "loss or its gradient not finite");
        goto done;
    }
    const float *d_out[INCV3_MAX_OUTPUTS] = {NULL};
    d_out[INCV3_MAIN_OUTPUT] = dlogits;
    static float d_input[BATCH * IN_C * IN_H * IN_W];
    if (incv3_graph_backward(g, d_out, d_input, &err)) {
        failed("backward", err.msg);
        goto done;
    }
    if (!all_finite(d_input, sizeof d_input / sizeof d_input[0])) {
        failed("backward", "input gradient not finite");
        goto done;
    }
    for (size_t i = 0; i < incv3_graph_param_count(g); i++) {
        const incv3_param *p = incv3_graph_param(g, i);
        if (p->kind != INCV3_PARAM)
            continue;
        if (!p->has_grad || !all_finite(p->grad, p->numel)) {
            fprintf(stderr, "install_consumer: gradient of %s missing or not finite\n", p->name);
            goto done;
        }
    }
    printf("loss: %.6f\n", loss);

    incv3_adamw_hparams hp = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f};
    opt = incv3_adamw_new(g, hp, &err);
    if (!opt) {
        failed("incv3_adamw_new", err.msg);
        goto done;
    }
    incv3_adamw_step(opt, g);
    if (incv3_adamw_steps(opt) != 1) {
        failed("incv3_adamw_step", "step count is not 1");
        goto done;
    }
    for (size_t i = 0; i < incv3_graph_param_count(g); i++) {
        const incv3_param *p = incv3_graph_param(g, i);
        if (!all_finite(p->data, p->numel)) {
            fprintf(stderr, "install_consumer: %s not finite after the AdamW step\n", p->name);
            goto done;
        }
    }

    fo.mode = INCV3_INFER;
    fo.for_backward = 0;
    if (incv3_graph_forward(g, input, BATCH, &fo, &err)) {
        failed("inference forward after the step", err.msg);
        goto done;
    }
    if (print_logits(g, "after one training step"))
        goto done;
    rc = 0;
done:
    incv3_adamw_free(opt);
    incv3_graph_free(g);
    return rc;
}
