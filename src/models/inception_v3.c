/* The seed's Inception-V3, layer for layer as in its table; choices the table leaves open follow the
 * PyTorch reference (shared/reference/README.md): BN eps 1e-5 / momentum 0.1, 1x7 before 7x1, fig-7 split
 * order, concatenation in table row order, no activation between the aux head's Linears. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>

#include "incv3/model.h"

typedef struct builder {
    incv3_graph *g;
    double width;
} builder;

static int S(const builder *b, int c)
{
    int v = (int)floor(c * b->width + 0.5);
    return v < 1 ? 1 : v;
}

/* conv -> BatchNorm -> ReLU, named PREFIX.conv / PREFIX.bn like the reference's ConvBNReLU. */
static int cbr(builder *b, int in, int out_c, int kh, int kw, int stride, int pad_h, int pad_w, const char *fmt,
               ...) __attribute__((format(printf, 9, 10)));

static int cbr(builder *b, int in, int out_c, int kh, int kw, int stride, int pad_h, int pad_w, const char *fmt,
               ...)
{
    char prefix[96], conv[112], bn[112];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    snprintf(conv, sizeof conv, "%s.conv", prefix);
    snprintf(bn, sizeof bn, "%s.bn", prefix);
    int x = incv3_graph_conv(b->g, in, conv, out_c, kh, kw, stride, pad_h, pad_w);
    x = incv3_graph_batchnorm(b->g, x, bn, 1e-5f, 0.1f);
    return incv3_graph_relu(b->g, x);
}

/* 35x35 block (paper fig. 5): 5x5 factorized into two 3x3. */
static int fig5(builder *b, int x, int idx, int pool_features, const char *label)
{
    incv3_graph_block(b->g, label);
    int c64 = S(b, 64), c96 = S(b, 96);
    int d = cbr(b, x, c64, 1, 1, 1, 0, 0, "mixed35.%d.b3dbl.0", idx);
    d = cbr(b, d, c64, 3, 3, 1, 1, 1, "mixed35.%d.b3dbl.1", idx);
    d = cbr(b, d, c64, 3, 3, 1, 1, 1, "mixed35.%d.b3dbl.2", idx);
    int t = cbr(b, x, c64, 1, 1, 1, 0, 0, "mixed35.%d.b3.0", idx);
    t = cbr(b, t, c64, 3, 3, 1, 1, 1, "mixed35.%d.b3.1", idx);
    int p = incv3_graph_maxpool(b->g, x, 3, 1, 1);
    p = cbr(b, p, c96, 1, 1, 1, 0, 0, "mixed35.%d.bpool.1", idx);
    int o = cbr(b, x, S(b, pool_features), 1, 1, 1, 0, 0, "mixed35.%d.b1", idx);
    int parts[] = {d, t, p, o};
    return incv3_graph_concat(b->g, 4, parts);
}

static int grid_reduction(builder *b, int x, const char *name, int c_a, int c_b)
{
    incv3_graph_block(b->g, "grid reduction");
    c_a = S(b, c_a), c_b = S(b, c_b);
    int a = cbr(b, x, c_a, 1, 1, 1, 0, 0, "%s.ba.0", name);
    a = cbr(b, a, c_a, 3, 3, 1, 1, 1, "%s.ba.1", name);
    a = cbr(b, a, c_a, 3, 3, 2, 0, 0, "%s.ba.2", name);
    int bb = cbr(b, x, c_b, 1, 1, 1, 0, 0, "%s.bb.0", name);
    bb = cbr(b, bb, c_b, 3, 3, 2, 0, 0, "%s.bb.1", name);
    int p = incv3_graph_maxpool(b->g, x, 3, 2, 0);
    int parts[] = {a, bb, p};
    return incv3_graph_concat(b->g, 3, parts);
}

/* 17x17 block (paper fig. 6), n = 7, 1x7 before 7x1. */
static int fig6(builder *b, int x, int idx, int c, const char *label)
{
    incv3_graph_block(b->g, label);
    c = S(b, c);
    int c192 = S(b, 192);
    int d = cbr(b, x, c, 1, 1, 1, 0, 0, "mixed17.%d.b7dbl.0", idx);
    d = cbr(b, d, c, 1, 7, 1, 0, 3, "mixed17.%d.b7dbl.1", idx);
    d = cbr(b, d, c, 7, 1, 1, 3, 0, "mixed17.%d.b7dbl.2", idx);
    d = cbr(b, d, c, 1, 7, 1, 0, 3, "mixed17.%d.b7dbl.3", idx);
    d = cbr(b, d, c192, 7, 1, 1, 3, 0, "mixed17.%d.b7dbl.4", idx);
    int t = cbr(b, x, c, 1, 1, 1, 0, 0, "mixed17.%d.b7.0", idx);
    t = cbr(b, t, c, 1, 7, 1, 0, 3, "mixed17.%d.b7.1", idx);
    t = cbr(b, t, c192, 7, 1, 1, 3, 0, "mixed17.%d.b7.2", idx);
    int p = incv3_graph_maxpool(b->g, x, 3, 1, 1);
    p = cbr(b, p, c192, 1, 1, 1, 0, 0, "mixed17.%d.bpool.1", idx);
    int o = cbr(b, x, c192, 1, 1, 1, 0, 0, "mixed17.%d.b1", idx);
    int parts[] = {d, t, p, o};
    return incv3_graph_concat(b->g, 4, parts);
}

/* 8x8 block (paper fig. 7): expanded filter bank; split convs in the order b3dbl 1x3, 3x1, b3 1x3, 3x1. */
static int fig7(builder *b, int x, int idx, int c, const char *label)
{
    incv3_graph_block(b->g, label);
    c = S(b, c);
    int d = cbr(b, x, c, 1, 1, 1, 0, 0, "mixed8.%d.b3dbl.0", idx);
    d = cbr(b, d, c, 3, 3, 1, 1, 1, "mixed8.%d.b3dbl.1", idx);
    int s = cbr(b, x, c, 1, 1, 1, 0, 0, "mixed8.%d.b3", idx);
    int da = cbr(b, d, c, 1, 3, 1, 0, 1, "mixed8.%d.b3dbl_a", idx);
    int db = cbr(b, d, c, 3, 1, 1, 1, 0, "mixed8.%d.b3dbl_b", idx);
    int sa = cbr(b, s, c, 1, 3, 1, 0, 1, "mixed8.%d.b3_a", idx);
    int sb = cbr(b, s, c, 3, 1, 1, 1, 0, "mixed8.%d.b3_b", idx);
    int p = incv3_graph_maxpool(b->g, x, 3, 1, 1);
    p = cbr(b, p, 2 * c, 1, 1, 1, 0, 0, "mixed8.%d.bpool.1", idx);
    int o = cbr(b, x, 2 * c, 1, 1, 1, 0, 0, "mixed8.%d.b1", idx);
    int parts[] = {da, db, sa, sb, p, o};
    return incv3_graph_concat(b->g, 6, parts);
}

static int aux_head(builder *b, int x, int classes)
{
    incv3_graph_block(b->g, "aux");
    int p = incv3_graph_avgpool(b->g, x, 5, 3, 0);
    p = cbr(b, p, S(b, 128), 1, 1, 1, 0, 0, "aux.conv");
    p = incv3_graph_flatten(b->g, p);
    p = incv3_graph_linear(b->g, p, "aux.fc1", S(b, 1024));
    return incv3_graph_linear(b->g, p, "aux.fc2", classes);
}

incv3_model_config incv3_model_config_default(void)
{
    return (incv3_model_config){.image_size = 299, .aux = 1, .classes = 10, .width = 1.0, .dropout = 0.0f};
}

/* Spatial size of the 17x17 grid for an input size (stem and first grid reduction). */
static int grid17(int s)
{
    s = (s - 3) / 2 + 1; /* 3x3 s2 */
    s -= 2;              /* 3x3 */
    s = (s - 3) / 2 + 1; /* maxpool 3 s2 */
    s -= 2;              /* 3x3 */
    s = (s - 3) / 2 + 1; /* 3x3 s2 -> 35 */
    return (s - 3) / 2 + 1;
}

int incv3_model_config_check(const incv3_model_config *cfg, incv3_error *err)
{
    if (cfg->image_size < 75)
        return incv3_fail(err, "--image-size %d: must be at least 75 (smaller inputs vanish in the 8x8 blocks)",
                          cfg->image_size);
    if (cfg->image_size > 4096)
        return incv3_fail(err, "--image-size %d: at most 4096", cfg->image_size);
    if (!(cfg->width > 0 && cfg->width <= 4))
        return incv3_fail(err, "--width %g: must be in (0, 4]", cfg->width);
    if (cfg->classes < 2 || cfg->classes > 100000)
        return incv3_fail(err, "--classes %d: must be between 2 and 100000", cfg->classes);
    if (!(cfg->dropout >= 0 && cfg->dropout < 1))
        return incv3_fail(err, "--dropout %g: must be in [0, 1)", cfg->dropout);
    if (cfg->aux && grid17(cfg->image_size) != 17) {
        int lo = 75, hi;
        while (grid17(lo) < 17)
            lo++;
        for (hi = lo; grid17(hi + 1) == 17; hi++)
            ;
        return incv3_fail(err,
                          "--image-size %d: the aux head needs the 17x17 grid (its 5x5 pool output feeds a "
                          "Linear of 128*5*5 inputs), but this size gives %dx%d; use --no-aux, or an image "
                          "size from %d to %d",
                          cfg->image_size, grid17(cfg->image_size), grid17(cfg->image_size), lo, hi);
    }
    return 0;
}

incv3_graph *incv3_inception_v3(const incv3_model_config *cfg, incv3_error *err)
{
    if (incv3_model_config_check(cfg, err))
        return NULL;
    builder b = {incv3_graph_new(3, cfg->image_size, cfg->image_size), cfg->width};
    if (!b.g) {
        incv3_fail(err, "out of memory building the model");
        return NULL;
    }
    int x = incv3_graph_input_node(b.g);
    x = cbr(&b, x, S(&b, 32), 3, 3, 2, 0, 0, "stem.0");
    x = cbr(&b, x, S(&b, 32), 3, 3, 1, 0, 0, "stem.1");
    x = cbr(&b, x, S(&b, 64), 3, 3, 1, 1, 1, "stem.2");
    x = incv3_graph_maxpool(b.g, x, 3, 2, 0);
    x = cbr(&b, x, S(&b, 80), 3, 3, 1, 0, 0, "stem.4");
    x = cbr(&b, x, S(&b, 192), 3, 3, 2, 0, 0, "stem.5");
    x = fig5(&b, x, 0, 32, "inception fig 5a");
    x = fig5(&b, x, 1, 64, "inception fig 5b");
    x = fig5(&b, x, 2, 64, "inception fig 5c");
    x = grid_reduction(&b, x, "red1", 384, 96);
    static const int c17[] = {128, 144, 160, 176, 192};
    static const char *const l17[] = {"inception fig 6a", "inception fig 6b", "inception fig 6c",
                                      "inception fig 6d", "inception fig 6e"};
    for (int i = 0; i < 5; i++)
        x = fig6(&b, x, i, c17[i], l17[i]);
    if (cfg->aux)
        incv3_graph_set_output(b.g, INCV3_AUX_OUTPUT, aux_head(&b, x, cfg->classes));
    x = grid_reduction(&b, x, "red2", 384, 128);
    x = fig7(&b, x, 0, 208, "inception fig 7a");
    x = fig7(&b, x, 1, 256, "inception fig 7b");
    incv3_graph_block(b.g, NULL);
    x = incv3_graph_global_avgpool(b.g, x);
    x = incv3_graph_flatten(b.g, x);
    if (cfg->dropout > 0)
        x = incv3_graph_dropout(b.g, x, cfg->dropout);
    x = incv3_graph_linear(b.g, x, "fc", cfg->classes);
    incv3_graph_set_output(b.g, INCV3_MAIN_OUTPUT, x);
    if (incv3_graph_error(b.g)) {
        incv3_fail(err, "building Inception-V3: %s", incv3_graph_error(b.g));
        incv3_graph_free(b.g);
        return NULL;
    }
    return b.g;
}
