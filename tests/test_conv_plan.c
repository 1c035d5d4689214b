/* The convolution plan of --conv-algo auto / winograd: its table and files, the machine cache, and a graph
 * that follows a saved plan; the registry's invariants the graph relies on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "graph/conv_plan.h"
#include "graph/graph_internal.h"
#include "incv3/model.h"

static char tmpdir[256];

static int setup_tmp(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/incv3-plan-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    /* The machine cache goes to the test's own directory, never the user's. */
    setenv("XDG_CACHE_HOME", tmpdir, 1);
    return 0;
}

static int teardown_tmp(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Every kernel the graph may pick must carry what the graph calls: packed weights need their size, and
 * the blocked forward kernels the fused epilogues of conv -> BatchNorm -> ReLU. */
static void test_registry_invariants(void **state)
{
    (void)state;
    size_t n;
    const incv3_conv_kernel *t = incv3_conv_kernel_table(&n);
    for (size_t i = 0; i < n; i++) {
        assert_true((t[i].pack == NULL) == (t[i].packed_floats == NULL));
        if (t[i].pass == INCV3_CONV_FWD && t[i].layout == INCV3_LAYOUT_NCHW8C) {
            assert_non_null(t[i].fwd_stats);
            assert_non_null(t[i].fwd_bn_relu_infer);
        }
        assert_ptr_equal(incv3_conv_kernel_by_name(t[i].name), &t[i]);
    }
    assert_null(incv3_conv_kernel_by_name("conv_fwd_f32_nonesuch__avx2"));
}

static void test_table(void **state)
{
    (void)state;
    incv3_conv_plan p = {0};
    assert_null(conv_plan_get(&p, "a"));
    for (int i = 0; i < 200; i++) { /* past the first growth */
        char key[32];
        snprintf(key, sizeof key, "key %d", i);
        assert_int_equal(conv_plan_put(&p, key, i % 2 ? "odd" : "even"), 0);
    }
    assert_int_equal(p.n, 200);
    assert_string_equal(conv_plan_get(&p, "key 7"), "odd");
    assert_int_equal(conv_plan_put(&p, "key 7", "replaced"), 0);
    assert_int_equal(p.n, 200);
    assert_string_equal(conv_plan_get(&p, "key 7"), "replaced");
    conv_plan_clear(&p);
    assert_int_equal(p.n, 0);

    incv3_conv_shape s = {.n = 32, .c = 64, .h = 35, .w = 35, .k = 96, .kh = 3, .kw = 3, .stride_h = 1,
                          .stride_w = 1, .pad_top = 1, .pad_left = 1, .pad_bottom = 1, .pad_right = 1};
    incv3_conv_shape_finish(&s);
    char k1[160], k2[160];
    conv_plan_key(k1, sizeof k1, "auto", INCV3_CONV_FWD, INCV3_ISA_AVX2, &s);
    s.n = 7; /* the batch is not part of the key: a partial last batch runs the same kernels */
    conv_plan_key(k2, sizeof k2, "auto", INCV3_CONV_FWD, INCV3_ISA_AVX2, &s);
    assert_string_equal(k1, k2);
    conv_plan_key(k2, sizeof k2, "auto", INCV3_CONV_BWD_DATA, INCV3_ISA_AVX2, &s);
    assert_string_not_equal(k1, k2);
    conv_plan_key(k2, sizeof k2, "winograd", INCV3_CONV_FWD, INCV3_ISA_AVX2, &s);
    assert_string_not_equal(k1, k2);
    assert_true(conv_plan_is_family("auto") && conv_plan_is_family("winograd"));
    assert_false(conv_plan_is_family("direct") || conv_plan_is_family("winograd-f2x2"));
}

static void test_files(void **state)
{
    (void)state;
    size_t n;
    const incv3_conv_kernel *t = incv3_conv_kernel_table(&n);
    incv3_conv_plan p = {0}, q = {0};
    assert_int_equal(conv_plan_put(&p, "auto fwd x", t[0].name), 0);
    assert_int_equal(conv_plan_put(&p, "auto bwd-data y", t[n - 1].name), 0);
    char path[300];
    snprintf(path, sizeof path, "%s/plan.json", tmpdir);
    incv3_error err;
    assert_int_equal(conv_plan_write_file(&p, path, "auto", &err), 0);
    assert_int_equal(conv_plan_read_file(&q, path, &err), 0);
    assert_int_equal(q.n, 2);
    assert_string_equal(conv_plan_get(&q, "auto fwd x"), t[0].name);
    assert_string_equal(conv_plan_get(&q, "auto bwd-data y"), t[n - 1].name);

    /* A plan naming a kernel this build lacks, or not JSON, or without its object: errors naming the file. */
    write_text(path, "{\"plan\": {\"auto fwd x\": \"conv_fwd_f32_gone__avx2\"}}");
    assert_int_equal(conv_plan_read_file(&q, path, &err), -1);
    assert_non_null(strstr(err.msg, "plan.json"));
    assert_non_null(strstr(err.msg, "conv_fwd_f32_gone__avx2"));
    write_text(path, "{\"plan\": ");
    assert_int_equal(conv_plan_read_file(&q, path, &err), -1);
    assert_non_null(strstr(err.msg, "plan.json"));
    write_text(path, "{\"cpu\": \"x\"}");
    assert_int_equal(conv_plan_read_file(&q, path, &err), -1);
    assert_non_null(strstr(err.msg, "plan"));
    snprintf(path, sizeof path, "%s/missing.json", tmpdir);
    assert_int_equal(conv_plan_read_file(&q, path, &err), -1);
    assert_non_null(strstr(err.msg, "missing.json"));
    conv_plan_clear(&p);
    conv_plan_clear(&q);
}

static void test_cache(void **state)
{
    (void)state;
    size_t n;
    const incv3_conv_kernel *t = incv3_conv_kernel_table(&n);
    incv3_error err;
    assert_int_equal(conv_plan_cache_add("auto fwd a", t[0].name, &err), 0);
    assert_int_equal(conv_plan_cache_add("auto fwd b", t[1].name, &err), 0);
    incv3_conv_plan p = {0};
    conv_plan_cache_read(&p);
    assert_string_equal(conv_plan_get(&p, "auto fwd a"), t[0].name);
    assert_string_equal(conv_plan_get(&p, "auto fwd b"), t[1].name);
    conv_plan_clear(&p);
    /* A damaged cache costs the timing again and nothing else. */
    char path[300];
    snprintf(path, sizeof path, "%s/incv3/conv-plan.json", tmpdir);
    write_text(path, "garbage");
    conv_plan_cache_read(&p);
    assert_int_equal(p.n, 0);
    assert_int_equal(conv_plan_cache_add("auto fwd a", t[0].name, &err), 0);
    conv_plan_cache_read(&p);
    assert_int_equal(p.n, 1);
    conv_plan_clear(&p);
    /* An entry naming a kernel this build lacks (another build's) is skipped, the others are kept, and the
     * next write drops it. */
    char cpu[256], text[1024];
    incv3_cpu_model_name(cpu, sizeof cpu);
    snprintf(text, sizeof text,
             "{\"cpus\": {\"%s\": {\"auto fwd a\": \"%s\", \"auto fwd gone\": \"conv_fwd_f32_gone__avx2\", "
             "\"auto fwd b\": \"%s\"}}}",
             cpu, t[0].name, t[1].name);
    write_text(path, text);
    conv_plan_cache_read(&p);
    assert_int_equal(p.n, 2);
    assert_string_equal(conv_plan_get(&p, "auto fwd a"), t[0].name);
    assert_string_equal(conv_plan_get(&p, "auto fwd b"), t[1].name);
    assert_null(conv_plan_get(&p, "auto fwd gone"));
    conv_plan_clear(&p);
    assert_int_equal(conv_plan_cache_add("auto fwd c", t[0].name, &err), 0);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    const size_t got = fread(text, 1, sizeof text - 1, f);
    text[got] = '\0';
    fclose(f);
    assert_null(strstr(text, "gone"));
    assert_non_null(strstr(text, "auto fwd b"));
    assert_non_null(strstr(text, "auto fwd c"));
}

static incv3_graph *small_model(void)
{
    incv3_model_config mc = incv3_model_config_default();
    mc.image_size = 75, mc.aux = 0, mc.width = 0.25;
    incv3_error err;
    incv3_graph *g = incv3_inception_v3(&mc, &err);
    assert_non_null(g);
    return g;
}

static int winograd_kernels(void)
{
    size_t n;
    const incv3_conv_kernel *t = incv3_conv_kernel_table(&n);
    int count = 0;
    for (size_t i = 0; i < n; i++)
        count += incv3_isa_available(t[i].isa) && strncmp(t[i].algo, "winograd", 8) == 0;
    return count;
}

/* A graph with --conv-algo auto times its layers once, caches the choices, and a second graph on the same
 * machine chooses alike; a saved plan, edited, is followed by a fresh graph. */
static void test_graph_follows_plan(void **state)
{
    (void)state;
    if (!winograd_kernels()) {
        skip(); /* only one candidate per layer: nothing to plan on this build/CPU */
    }
    incv3_error err;
    incv3_graph *a = small_model();
    assert_int_equal(incv3_graph_set_kernels(a, "auto", "auto", &err), 0);
    assert_int_equal(incv3_graph_conv_algo_in_use(a, 4, "no-such-algo"), 0);
    assert_true(a->plan.n > 0); /* the 3x3 stride-1 and 1xn layers had more than one candidate */
    char path[300];
    snprintf(path, sizeof path, "%s/run-plan.json", tmpdir);
    assert_int_equal(incv3_graph_save_conv_plan(a, path, &err), 0);

    incv3_graph *b = small_model();
    assert_int_equal(incv3_graph_set_kernels(b, "auto", "auto", &err), 0);
    assert_int_equal(incv3_graph_conv_algo_in_use(b, 4, "no-such-algo"), 0); /* visits every layer */
    assert_int_equal(b->plan.n, a->plan.n);
    for (size_t i = 0; i < a->plan.n; i++)
        assert_string_equal(conv_plan_get(&b->plan, a->plan.entries[i].key), a->plan.entries[i].kernel);
    incv3_graph_free(b);

    /* Edit the saved plan: every forward entry of a 3x3 layer takes the other candidate it had. */
    incv3_conv_plan edited = {0};
    assert_int_equal(conv_plan_read_file(&edited, path, &err), 0);
    int changed = 0;
    for (size_t i = 0; i < edited.n; i++) {
        if (strncmp(edited.entries[i].key, "auto fwd ", 9) || !strstr(edited.entries[i].key, " 3x3 s1x1"))
            continue;
        const char *now = edited.entries[i].kernel;
        const char *other = strstr(now, "direct") ? "conv_fwd_f32_winograd_f2x2_3x3__avx2" : "conv_fwd_f32_direct__avx2";
        snprintf(edited.entries[i].kernel, sizeof edited.entries[i].kernel, "%s", other);
        changed++;
    }
    assert_true(changed > 0);
    assert_int_equal(conv_plan_write_file(&edited, path, "auto", &err), 0);
    incv3_graph *c = small_model();
    assert_int_equal(incv3_graph_set_kernels(c, "auto", "auto", &err), 0);
    assert_int_equal(incv3_graph_load_conv_plan(c, path, &err), 0);
    int checked = 0;
    for (int i = 0; i < c->n_nodes; i++) {
        const incv3_node *nd = &c->nodes[i];
        if (nd->ops != &incv3_layer_conv)
            continue;
        const incv3_conv_kernel *k[3];
        incv3_conv_node_kernels(c, nd, 4, k);
        incv3_conv_shape s = {.n = 4, .c = c->nodes[nd->inputs[0]].c, .h = c->nodes[nd->inputs[0]].h,
                              .w = c->nodes[nd->inputs[0]].w, .k = nd->c, .kh = nd->kh, .kw = nd->kw,
                              .stride_h = nd->stride, .stride_w = nd->stride, .pad_top = nd->pad_h,
                              .pad_bottom = nd->pad_h, .pad_left = nd->pad_w, .pad_right = nd->pad_w};
        incv3_conv_shape_finish(&s);
        char key[160];
        conv_plan_key(key, sizeof key, "auto", INCV3_CONV_FWD, c->isa, &s);
        const char *want = conv_plan_get(&edited, key);
        if (want) {
            assert_string_equal(k[0]->name, want);
            checked++;
        }
    }
    assert_true(checked >= changed);
    conv_plan_clear(&edited);
    incv3_graph_free(c);
    incv3_graph_free(a);
}

/* One forced algorithm runs in all three passes where it serves the shape, and direct elsewhere. */
static void test_forced_algorithm(void **state)
{
    (void)state;
    if (!winograd_kernels())
        skip();
    incv3_error err;
    incv3_graph *g = small_model();
    assert_int_equal(incv3_graph_set_kernels(g, "auto", "winograd-f2x2", &err), 0);
    int wino = 0, direct = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const incv3_node *nd = &g->nodes[i];
        if (nd->ops != &incv3_layer_conv)
            continue;
        const incv3_conv_kernel *k[3];
        incv3_conv_node_kernels(g, nd, 2, k);
        const int eligible = nd->kh == 3 && nd->kw == 3 && nd->stride == 1;
        assert_string_equal(k[0]->algo, eligible ? "winograd-f2x2" : "direct");
        assert_string_equal(k[1]->algo, eligible ? "winograd-f2x2" : "direct");
        assert_string_equal(k[2]->algo, eligible ? "winograd-f2x2" : "direct");
        wino += eligible, direct += !eligible;
    }
    assert_true(wino > 0 && direct > 0);
    assert_int_equal(incv3_graph_set_kernels(g, "auto", "winograd-f9x9", &err), -1);
    assert_non_null(strstr(err.msg, "--conv-algo winograd-f9x9"));
    assert_non_null(strstr(err.msg, "winograd-f4x4"));
    incv3_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry_invariants),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_cache),
        cmocka_unit_test(test_graph_follows_plan),
        cmocka_unit_test(test_forced_algorithm),
    };
    return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
