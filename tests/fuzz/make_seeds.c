/* Writes the seed corpus of the fuzz harnesses: tests/fuzz/corpus/<harness>/seed-*. Run once by hand
 * when a format changes (the files are committed; regression inputs found by fuzzing sit beside them as
 * crash-*):   meson compile -C build fuzz-make-seeds && build/tests/fuzz/fuzz-make-seeds tests/fuzz/corpus */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "incv3/safetensors.h"
#include "registry.h"
#include "train/checkpoint.h"

#include "fuzz_checkpoint_graph.h"

static const char *root;

static void die(const char *what)
{
    fprintf(stderr, "make_seeds: %s\n", what);
    exit(1);
}

static const char *at(const char *harness, const char *name)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", root, harness);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", root, harness, name);
    return path;
}

static void put(const char *harness, const char *name, const void *data, size_t len)
{
    FILE *f = fopen(at(harness, name), "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f))
        die(name);
}

static void put_gz(const char *harness, const char *name, const void *data, size_t len)
{
    gzFile f = gzopen(at(harness, name), "wb9");
    if (!f || gzwrite(f, data, (unsigned)len) != (int)len || gzclose(f) != Z_OK)
        die(name);
}

/* The file's first `keep` bytes as another seed (a truncated file). */
static void truncated_copy(const char *harness, const char *from, const char *name, long keep)
{
    FILE *f = fopen(at(harness, from), "rb");
    char *buf = malloc((size_t)keep);
    if (!f || !buf || fread(buf, 1, (size_t)keep, f) != (size_t)keep)
        die(name);
    fclose(f);
    put(harness, name, buf, (size_t)keep);
    free(buf);
}

static void idx_seeds(void)
{
    const unsigned char images[] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 3,
                                    0, 1, 2, 3, 4, 5, 6, 7, 8, 255, 254, 253, 128, 0, 9, 10, 11, 12};
    const unsigned char labels[] = {0, 0, 8, 1, 0, 0, 0, 3, 7, 0, 9};
    put("fuzz_idx", "seed-images", images, sizeof images);
    put("fuzz_idx", "seed-labels", labels, sizeof labels);
    put_gz("fuzz_idx", "seed-images.gz", images, sizeof images);
    put_gz("fuzz_idx", "seed-labels.gz", labels, sizeof labels);
    put("fuzz_idx", "seed-bad-short", images, 10);
    put("fuzz_idx", "seed-bad-trailing", images, sizeof images); /* then one byte more */
    FILE *f = fopen(at("fuzz_idx", "seed-bad-trailing"), "ab");
    if (!f || fputc(1, f) == EOF || fclose(f))
        die("trailing");
    const unsigned char label_out_of_range[] = {0, 0, 8, 1, 0, 0, 0, 1, 200};
    put("fuzz_idx", "seed-bad-label", label_out_of_range, sizeof label_out_of_range);
}

static void st_seeds(void)
{
    incv3_error err;
    incv3_st_writer *w = incv3_st_writer_new();
    const float a[6] = {1, 2, 3, 4, 5, 6};
    const int64_t b[3] = {-1, 0, 1 << 20};
    const int64_t sa[2] = {2, 3}, sb[1] = {3}, se[2] = {0, 4};
    if (!w || incv3_st_writer_add(w, "a.weight", INCV3_F32, 2, sa, a, &err) ||
        incv3_st_writer_add(w, "b", INCV3_I64, 1, sb, b, &err) ||
        incv3_st_writer_add(w, "empty", INCV3_F32, 2, se, NULL, &err) ||
        incv3_st_writer_add(w, "scalar", INCV3_F32, 0, NULL, a, &err) ||
        incv3_st_writer_meta(w, "config", "{\"x\": 1}", &err) ||
        incv3_st_write(w, at("fuzz_safetensors", "seed-small.safetensors"), &err))
        die(err.msg);
    incv3_st_writer_free(w);
    w = incv3_st_writer_new();
    if (!w || incv3_st_writer_add(w, "t", INCV3_F32, 1, sb, a, &err) ||
        incv3_st_writer_meta(w, "position", "{}", &err))
        die(err.msg);
    incv3_st_writer_checksum(w);
    if (incv3_st_write(w, at("fuzz_safetensors", "seed-checksum.safetensors"), &err))
        die(err.msg);
    incv3_st_writer_free(w);
    truncated_copy("fuzz_safetensors", "seed-small.safetensors", "seed-bad-truncated", 100);
    static const char hdr[] = "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                              "\"u\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}";
    unsigned char buf[8 + sizeof hdr - 1 + 8] = {0};
    buf[0] = (unsigned char)(sizeof hdr - 1);
    memcpy(buf + 8, hdr, sizeof hdr - 1);
    put("fuzz_safetensors", "seed-bad-overlap", buf, sizeof buf);
}

static void checkpoint_seeds(void)
{
    incv3_graph *g = NULL;
    incv3_adamw *opt = NULL;
    incv3_error err;
    if (fuzz_checkpoint_graph(&g, &opt, &err))
        die(err.msg);
    incv3_graph_init_params(g, 1);
    incv3_adamw_set_steps(opt, 7);
    if (incv3_checkpoint_save(at("fuzz_checkpoint", "seed-checkpoint.safetensors"), g, opt,
                              "{\"epochs\": 1, \"batch\": 2}", "{\"epoch\": 0, \"step\": 7}", &err) ||
        incv3_checkpoint_save(at("fuzz_checkpoint", "seed-weights.safetensors"), g, NULL, NULL, NULL, &err))
        die(err.msg);
    /* The same without the checksum entry (as a PyTorch state_dict has none): mutations of it are not all
     * refused as damaged files, so the fuzzer gets past the checksum to the loader itself. */
    incv3_st_writer *w = incv3_st_writer_new();
    static char names[64][INCV3_NAME_MAX + 24];
    size_t k = 0;
    for (size_t i = 0; w && i < incv3_graph_param_count(g); i++) {
        const incv3_param *p = incv3_graph_param(g, i);
        if (incv3_st_writer_add(w, p->name, INCV3_F32, p->ndim, p->shape, p->data, &err))
            die(err.msg);
        if (p->kind != INCV3_PARAM)
            continue;
        snprintf(names[k], sizeof names[k], "optim.exp_avg.%s", p->name);
        snprintf(names[k + 1], sizeof names[k + 1], "optim.exp_avg_sq.%s", p->name);
        if (incv3_st_writer_add(w, names[k], INCV3_F32, p->ndim, p->shape, incv3_adamw_exp_avg(opt, i), &err) ||
            incv3_st_writer_add(w, names[k + 1], INCV3_F32, p->ndim, p->shape, incv3_adamw_exp_avg_sq(opt, i),
                                &err))
            die(err.msg);
        k += 2;
    }
    if (!w || incv3_st_writer_meta(w, "config", "{}", &err) || incv3_st_writer_meta(w, "optim.steps", "3", &err) ||
        incv3_st_write(w, at("fuzz_checkpoint", "seed-nocrc-checkpoint.safetensors"), &err))
        die(err.msg);
    incv3_st_writer_free(w);
    incv3_adamw_free(opt);
    incv3_graph_free(g);
    truncated_copy("fuzz_checkpoint", "seed-checkpoint.safetensors", "seed-bad-truncated", 600);
}

static void conv_plan_seeds(void)
{
    size_t n;
    const incv3_conv_kernel *t = incv3_conv_kernel_table(&n);
    char text[2048];
    int len = snprintf(text, sizeof text,
                       "{\n  \"conv_algo\": \"auto\",\n  \"cpu\": \"fuzz\",\n  \"plan\": {\n"
                       "    \"auto fwd scalar c1 h8 w8 k4 3x3 s1x1 p1,1,1,1 t1\": \"%s\",\n"
                       "    \"auto fwd scalar c3 h9 w9 k2 1x1 s2x2 p0,0,0,0 t2\": \"%s\"\n  }\n}\n",
                       t[0].name, t[n - 1].name);
    put("fuzz_conv_plan", "seed-plan.json", text, (size_t)len);
    static const char unknown[] = "{\"plan\": {\"auto fwd scalar c1 h8 w8 k4 3x3 s1x1 p1,1,1,1 t1\": \"nope\"}}";
    put("fuzz_conv_plan", "seed-bad-kernel.json", unknown, sizeof unknown - 1);
    static const char noplan[] = "{\"cpu\": \"x\", \"plan\": [1, 2]}";
    put("fuzz_conv_plan", "seed-bad-plan.json", noplan, sizeof noplan - 1);
}

static void cli_seeds(void)
{
    static const char *const lines[][2] = {
        {"seed-train", "--data data/mnist --epochs 2 --batch 8 --lr 3e-4 --width 0.25 --image-size 75 --no-aux\n"},
        {"seed-train-more", "--seed 9007199254740992 --val-fraction 0.5 --dropout 0.2 --mean -1 --std 0.5 "
                            "--limit-train=100 --checkpoint-every 5 --isa avx2 --conv-algo winograd --smt --bind none\n"},
        {"seed-eval", "--checkpoint x.safetensors --image-size 299 --width 0.5 --isa scalar --conv-algo direct "
                      "--threads 2 --bind core\n"},
        {"seed-threads", "1,2,4,8 16 1,,2 0 4097 -h\n"},
        {"seed-bad", "--epochs --batch=nan --lr 1e999 --width -inf --bogus x -- tail\n"},
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        put("fuzz_cli", lines[i][0], lines[i][1], strlen(lines[i][1]));
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    root = argv[1];
    mkdir(root, 0755);
    idx_seeds();
    st_seeds();
    checkpoint_seeds();
    conv_plan_seeds();
    cli_seeds();
    return 0;
}
