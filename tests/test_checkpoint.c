/* Checkpoint integrity: the checksum every incv3_checkpoint_save writes, and incv3_checkpoint_load's refusal
 * of a damaged file (a flipped data byte, a truncated file, a damaged header, a damaged or misplaced
 * checksum entry) before anything reaches the graph, while files without a checksum (a PyTorch state_dict)
 * still load. The model is the smallest Inception-V3 (width 0.05, 75x75, no aux head), built in code. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#endif

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "incv3/model.h"
#include "incv3/safetensors.h"
#include "incv3/train.h"
#include "train/checkpoint.h"

typedef struct ctx {
    char dir[64], path[128];
    incv3_graph *src, *dst;
    incv3_adamw *opt;
} ctx;

static incv3_graph *tiny_model(uint64_t seed)
{
    incv3_model_config mc = incv3_model_config_default();
    mc.image_size = 75, mc.aux = 0, mc.width = 0.05;
    incv3_graph *g = incv3_inception_v3(&mc, NULL);
    if (g)
        incv3_graph_init_params(g, seed);
    return g;
}

static int setup(void **state)
{
    ctx *c = calloc(1, sizeof *c);
    snprintf(c->dir, sizeof c->dir, "/tmp/incv3_ckpt_XXXXXX");
    if (!c || !mkdtemp(c->dir))
        return -1;
    snprintf(c->path, sizeof c->path, "%s/ckpt.safetensors", c->dir);
    c->src = tiny_model(1);
    c->dst = tiny_model(2);
    incv3_adamw_hparams hp = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f};
    c->opt = incv3_adamw_new(c->src, hp, NULL);
    if (!c->src || !c->dst || !c->opt)
        return -1;
    /* Moments that are not all zero, so a round trip of them means something. */
    for (size_t i = 0; i < incv3_graph_param_count(c->src); i++) {
        incv3_param *p = incv3_graph_param(c->src, i);
        if (p->kind != INCV3_PARAM)
            continue;
        for (size_t k = 0; k < p->numel; k++) {
            incv3_adamw_exp_avg(c->opt, i)[k] = 0.001f * (float)(k % 7);
            incv3_adamw_exp_avg_sq(c->opt, i)[k] = 0.002f * (float)(k % 5);
        }
    }
    incv3_adamw_set_steps(c->opt, 42);
    incv3_error err;
    if (incv3_checkpoint_save(c->path, c->src, c->opt, "{\"lr\": 0.001}", "{\"step\": 42}", &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    ctx *c = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", c->dir);
    if (system(cmd)) {
    }
    incv3_adamw_free(c->opt);
    incv3_graph_free(c->src);
    incv3_graph_free(c->dst);
    free(c);
    return 0;
}

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*len);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}

static void write_all(const char *path, const unsigned char *b, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static size_t header_len(const unsigned char *b)
{
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | b[i];
    return (size_t)n;
}

static int graphs_equal(incv3_graph *a, incv3_graph *b)
{
    for (size_t i = 0; i < incv3_graph_param_count(a); i++) {
        const incv3_param *p = incv3_graph_param(a, i), *q = incv3_graph_param(b, i);
        if (memcmp(p->data, q->data, p->numel * sizeof(float)))
            return 0;
    }
    return 1;
}

/* Loading c->path must fail with a message naming the file and containing `want`, and leave dst as it was. */
static void expect_refused(ctx *c, const char *want)
{
    incv3_graph *before = tiny_model(2);
    assert_non_null(before);
    incv3_error err;
    err.msg[0] = '\0';
    assert_int_not_equal(incv3_checkpoint_load(c->path, c->dst, NULL, NULL, NULL, &err), 0);
    if (!strstr(err.msg, c->path) || !strstr(err.msg, want))
        fail_msg("expected \"%s\" and the path in: %s", want, err.msg);
    assert_true(graphs_equal(c->dst, before));
    incv3_graph_free(before);
}

static void test_round_trip(void **state)
{
    ctx *c = *state;
    incv3_st_file *f = incv3_st_open(c->path, NULL);
    assert_non_null(f);
    const char *ck = incv3_st_metadata(f, "checksum");
    assert_non_null(ck);
    assert_int_equal(strncmp(ck, "crc32:", 6), 0);
    assert_int_equal(strlen(ck), 14);
    incv3_st_close(f);

    incv3_adamw_hparams hp = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f};
    incv3_adamw *opt = incv3_adamw_new(c->dst, hp, NULL);
    char *config = NULL, *pos = NULL;
    incv3_error err;
    if (incv3_checkpoint_load(c->path, c->dst, opt, &config, &pos, &err))
        fail_msg("%s", err.msg);
    assert_true(graphs_equal(c->src, c->dst));
    assert_int_equal(incv3_adamw_steps(opt), 42);
    for (size_t i = 0; i < incv3_graph_param_count(c->src); i++) {
        const incv3_param *p = incv3_graph_param(c->src, i);
        if (p->kind == INCV3_PARAM)
            assert_memory_equal(incv3_adamw_exp_avg_sq(opt, i), incv3_adamw_exp_avg_sq(c->opt, i),
                                p->numel * sizeof(float));
    }
    assert_string_equal(config, "{\"lr\": 0.001}");
    assert_string_equal(pos, "{\"step\": 42}");
    free(config);
    free(pos);
    incv3_adamw_free(opt);
}

static void test_flipped_data_byte(void **state)
{
    ctx *c = *state;
    size_t len;
    unsigned char *b = read_all(c->path, &len);
    const size_t data = 8 + header_len(b);
    b[data + (len - data) / 2] ^= 0x01; /* one bit, in the middle of the tensor data */
    write_all(c->path, b, len);
    free(b);
    expect_refused(c, "checksum mismatch: the file is damaged");
}

static void test_last_byte_flipped(void **state)
{
    ctx *c = *state;
    size_t len;
    unsigned char *b = read_all(c->path, &len);
    b[len - 1] ^= 0x80;
    write_all(c->path, b, len);
    free(b);
    expect_refused(c, "checksum mismatch");
}

static void test_truncated(void **state)
{
    ctx *c = *state;
    size_t len;
    unsigned char *b = read_all(c->path, &len);
    write_all(c->path, b, len - 1000);
    expect_refused(c, "truncated");
    write_all(c->path, b, 8 + header_len(b) / 2); /* inside the header */
    expect_refused(c, "truncated");
    free(b);
}

static void test_header_damaged(void **state)
{
    ctx *c = *state;
    size_t len;
    unsigned char *b = read_all(c->path, &len);
    const size_t hlen = header_len(b);
    /* Still valid JSON with valid offsets: a changed setting ("lr": 0.001 -> 0.002) only the checksum sees. */
    unsigned char *at = memmem(b + 8, hlen, "0.001", 5);
    assert_non_null(at);
    at[4] = '2';
    write_all(c->path, b, len);
    expect_refused(c, "checksum mismatch");
    at[4] = '1';
    /* A renamed tensor: structurally fine, caught by the checksum before the missing name is noticed. */
    unsigned char *name = memmem(b + 8, hlen, "\"fc.weight\"", 11);
    assert_non_null(name);
    name[1] = 'F';
    write_all(c->path, b, len);
    expect_refused(c, "checksum mismatch");
    name[1] = 'f';
    /* Broken JSON. */
    b[8] = '[';
    write_all(c->path, b, len);
    expect_refused(c, "header is not valid JSON");
    b[8] = '{';
    /* The checksum's own digits. */
    unsigned char *ck = memmem(b + 8, hlen, "crc32:", 6);
    assert_non_null(ck);
    ck[6] = ck[6] == '0' ? '1' : '0';
    write_all(c->path, b, len);
    expect_refused(c, "checksum mismatch");
    free(b);
}

/* A checksum entry that is not first in the header (no incv3 writer puts it elsewhere) is damage. */
static void test_checksum_out_of_place(void **state)
{
    ctx *c = *state;
    const float v[2] = {1, 2};
    const char header[] = "{\"__metadata__\":{\"a\":\"b\",\"checksum\":\"crc32:00000000\"},"
                          "\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    size_t hlen = (sizeof header - 1 + 7) / 8 * 8;
    unsigned char buf[256];
    memset(buf, ' ', sizeof buf);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(hlen >> (8 * i));
    memcpy(buf + 8, header, sizeof header - 1);
    memcpy(buf + 8 + hlen, v, sizeof v);
    write_all(c->path, buf, 8 + hlen + sizeof v);
    incv3_error err;
    assert_null(incv3_st_open(c->path, &err));
    assert_non_null(strstr(err.msg, "malformed or out of place"));
}

/* The interchange path: the same tensors without a checksum (as PyTorch writes them) load. */
static void test_no_checksum_loads(void **state)
{
    ctx *c = *state;
    incv3_st_writer *w = incv3_st_writer_new();
    for (size_t i = 0; i < incv3_graph_param_count(c->src); i++) {
        const incv3_param *p = incv3_graph_param(c->src, i);
        assert_int_equal(incv3_st_writer_add(w, p->name, INCV3_F32, p->ndim, p->shape, p->data, NULL), 0);
    }
    assert_int_equal(incv3_st_write(w, c->path, NULL), 0);
    incv3_st_writer_free(w);
    incv3_error err;
    if (incv3_checkpoint_load(c->path, c->dst, NULL, NULL, NULL, &err))
        fail_msg("%s", err.msg);
    assert_true(graphs_equal(c->src, c->dst));
}

/* With the checksum on, the key is reserved. */
static void test_checksum_key_reserved(void **state)
{
    ctx *c = *state;
    incv3_st_writer *w = incv3_st_writer_new();
    incv3_st_writer_checksum(w);
    assert_int_equal(incv3_st_writer_meta(w, "checksum", "crc32:12345678", NULL), 0);
    incv3_error err;
    assert_int_not_equal(incv3_st_write(w, c->path, &err), 0);
    assert_non_null(strstr(err.msg, "reserved"));
    incv3_st_writer_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flipped_data_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_last_byte_flipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_damaged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checksum_out_of_place, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_checksum_loads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checksum_key_reserved, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
