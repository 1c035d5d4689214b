#include <string.h>

#include "incv3/model.h"
#include "kbench.h"

/* The 12 shapes of the AVX2 kernels issue, on which oneDNN 2.6.3 was measured. */
static const kbench_shape inception_suite[] = {
    {3, 299, 299, 32, 3, 3, 2, 0, 0},   {32, 147, 147, 64, 3, 3, 1, 1, 1}, {64, 73, 73, 80, 3, 3, 1, 0, 0},
    {192, 35, 35, 64, 1, 1, 1, 0, 0},   {64, 35, 35, 64, 3, 3, 1, 1, 1},   {384, 35, 35, 384, 3, 3, 2, 0, 0},
    {768, 17, 17, 192, 1, 1, 1, 0, 0},  {128, 17, 17, 128, 1, 7, 1, 0, 3}, {128, 17, 17, 192, 7, 1, 1, 3, 0},
    {1280, 8, 8, 416, 1, 1, 1, 0, 0},   {208, 8, 8, 208, 1, 3, 1, 0, 1},   {256, 8, 8, 256, 3, 3, 1, 1, 1},
};

/* Every distinct layer of a kind ("conv", "maxpool") of the seed model, read from the model builder so it
 * cannot drift. */
static size_t model_layers(const char *kind, kbench_shape *out, size_t max)
{
    incv3_model_config cfg = incv3_model_config_default();
    incv3_error err;
    incv3_graph *g = incv3_inception_v3(&cfg, &err);
    if (!g)
        return 0;
    size_t n = 0;
    for (size_t i = 0; i < incv3_graph_node_count(g); i++) {
        incv3_node_info ni;
        incv3_graph_node_info(g, (int)i, &ni);
        if (strcmp(ni.kind, kind) != 0)
            continue;
        kbench_shape s = {ni.in_c, ni.in_h, ni.in_w, ni.c, ni.kh, ni.kw, ni.stride, ni.pad_h, ni.pad_w};
        int seen = 0;
        for (size_t j = 0; j < n && !seen; j++)
            seen = memcmp(&out[j], &s, sizeof s) == 0;
        if (!seen && n < max)
            out[n++] = s;
    }
    incv3_graph_free(g);
    return n;
}

size_t kbench_suite(const char *name, kbench_shape *out, size_t max)
{
    if (strcmp(name, "inception") == 0) {
        size_t n = sizeof inception_suite / sizeof inception_suite[0];
        if (n > max)
            n = max;
        memcpy(out, inception_suite, n * sizeof *out);
        return n;
    }
    if (strcmp(name, "model") == 0)
        return model_layers("conv", out, max);
    return 0;
}

size_t kbench_pool_suite(kbench_shape *out, size_t max)
{
    return model_layers("maxpool", out, max);
}
