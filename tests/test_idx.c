/* IDX reader tests: round trips of plain and gzip files, one test per way a file can be wrong (each checks
 * that the message names the file and says what is wrong), MNIST file discovery, and, when the source
 * tree has ../shared/data/mnist, the real data. Files are generated into a fresh mkdtemp directory per
 * test, so no binary fixtures live in the tree. argv[1] is the source root. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#endif

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "incv3/idx.h"

typedef struct test_ctx {
    const char *src_root; /* NULL when not given */
    char dir[64];         /* per-test scratch directory */
} test_ctx;

/* ------------------------------------------------------------------------------------ fixtures */

static int setup_dir(void **state)
{
    test_ctx *c = *state;
    snprintf(c->dir, sizeof c->dir, "/tmp/incv3_idx_XXXXXX");
    return mkdtemp(c->dir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
    test_ctx *c = *state;
    DIR *d = opendir(c->dir);
    if (d) {
        struct dirent *de;
        char p[512];
        while ((de = readdir(d))) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            snprintf(p, sizeof p, "%s/%s", c->dir, de->d_name);
            unlink(p);
        }
        closedir(d);
    }
    return rmdir(c->dir);
}

static void path_in(const test_ctx *c, const char *name, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%s", c->dir, name);
    assert_true(n > 0 && (size_t)n < cap);
}

/* ------------------------------------------------------------------------------------ file builders */

static void write_plain(const char *path, const void *bytes, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    if (n)
        assert_int_equal(fwrite(bytes, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
}

static void write_gz(const char *path, const void *bytes, size_t n)
{
    gzFile g = gzopen(path, "wb6");
    assert_non_null(g);
    if (n)
        assert_int_equal(gzwrite(g, bytes, (unsigned)n), (int)n);
    assert_int_equal(gzclose(g), Z_OK);
}

static unsigned char *read_all(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    long len = ftell(fp);
    assert_true(len >= 0);
    rewind(fp);
    unsigned char *buf = malloc((size_t)len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)len, fp), (size_t)len);
    fclose(fp);
    *n = (size_t)len;
    return buf;
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* An images file in memory: header with the given magic/dims, then data_len bytes of a known pattern
 * (data_len may differ from what the header declares, to build truncated / padded files). */
/* A file image in memory; built and written in separate steps (argument evaluation order is unspecified). */
typedef struct buf {
    unsigned char *b;
    size_t n;
} buf;

static buf make_images(uint32_t magic, uint32_t count, uint32_t rows, uint32_t cols, size_t data_len)
{
    unsigned char *b = malloc(16 + data_len);
    assert_non_null(b);
    put_be32(b, magic);
    put_be32(b + 4, count);
    put_be32(b + 8, rows);
    put_be32(b + 12, cols);
    for (size_t i = 0; i < data_len; i++)
        b[16 + i] = (unsigned char)(i * 7 + 3);
    return (buf){b, 16 + data_len};
}

/* A labels file: labels cycle 0..classes-1 so the content is checkable. */
static buf make_labels(uint32_t magic, uint32_t count, size_t data_len, int classes)
{
    unsigned char *b = malloc(8 + data_len);
    assert_non_null(b);
    put_be32(b, magic);
    put_be32(b + 4, count);
    for (size_t i = 0; i < data_len; i++)
        b[8 + i] = (unsigned char)(i % (size_t)classes);
    return (buf){b, 8 + data_len};
}

/* Writes the first n bytes of b (SIZE_MAX: all of it) and frees it. */
static void write_prefix(const char *path, int gz, buf b, size_t n)
{
    n = n < b.n ? n : b.n;
    if (gz)
        write_gz(path, b.b, n);
    else
        write_plain(path, b.b, n);
    free(b.b);
}

static void write_file(const char *path, int gz, buf b) { write_prefix(path, gz, b, SIZE_MAX); }

/* ------------------------------------------------------------------------------------ expectations */

static void expect_contains(const char *msg, const char *word)
{
    if (!strstr(msg, word)) {
        print_error("error message \"%s\"\n  does not contain \"%s\"\n", msg, word);
        fail();
    }
}

static void expect_words(const char *msg, const char *path, va_list ap)
{
    if (getenv("INCV3_TEST_VERBOSE"))
        print_message("expected error: %s\n", msg);
    expect_contains(msg, path);
    for (const char *w = va_arg(ap, const char *); w; w = va_arg(ap, const char *))
        expect_contains(msg, w);
}

/* Reading must fail, leave the struct zeroed, and name the path and every word of the NULL-terminated list. */
static void expect_images_fail(const char *path, ...)
{
    incv3_error err = {.msg = ""};
    incv3_idx_images im;
    memset(&im, 0xab, sizeof im);
    if (incv3_idx_read_images(path, &im, &err) == 0) {
        print_error("%s read as images although it is malformed\n", path);
        fail();
    }
    assert_null(im.data);
    assert_int_equal(im.count, 0);
    incv3_idx_images_free(&im);
    va_list ap;
    va_start(ap, path);
    expect_words(err.msg, path, ap);
    va_end(ap);
}

static void expect_labels_fail(const char *path, int classes, ...)
{
    incv3_error err = {.msg = ""};
    incv3_idx_labels lb;
    memset(&lb, 0xab, sizeof lb);
    if (incv3_idx_read_labels(path, classes, &lb, &err) == 0) {
        print_error("%s read as labels although it is malformed\n", path);
        fail();
    }
    assert_null(lb.data);
    assert_int_equal(lb.count, 0);
    incv3_idx_labels_free(&lb);
    va_list ap;
    va_start(ap, classes);
    expect_words(err.msg, path, ap);
    va_end(ap);
}

static void read_images_ok(const char *path, incv3_idx_images *im)
{
    incv3_error err = {.msg = ""};
    if (incv3_idx_read_images(path, im, &err)) {
        print_error("reading images %s failed: %s\n", path, err.msg);
        fail();
    }
}

static void read_labels_ok(const char *path, int classes, incv3_idx_labels *lb)
{
    incv3_error err = {.msg = ""};
    if (incv3_idx_read_labels(path, classes, lb, &err)) {
        print_error("reading labels %s failed: %s\n", path, err.msg);
        fail();
    }
}

#define END ((const char *)NULL)

/* ------------------------------------------------------------------------------------ round trips */

static void roundtrip(test_ctx *c, int gz)
{
    char ip[256], lp[256];
    path_in(c, gz ? "im.gz" : "im", ip, sizeof ip);
    path_in(c, gz ? "lb.gz" : "lb", lp, sizeof lp);
    const uint32_t count = 37, rows = 5, cols = 3; /* non-square so rows/cols cannot be swapped silently */
    write_file(ip, gz, make_images(0x803, count, rows, cols, count * rows * cols));
    write_file(lp, gz, make_labels(0x801, count, count, 10));

    incv3_idx_images im;
    incv3_idx_labels lb;
    read_images_ok(ip, &im);
    read_labels_ok(lp, 10, &lb);
    assert_int_equal(im.count, count);
    assert_int_equal(im.rows, rows);
    assert_int_equal(im.cols, cols);
    for (size_t i = 0; i < count * rows * cols; i++)
        assert_int_equal(im.data[i], (unsigned char)(i * 7 + 3));
    assert_int_equal(lb.count, count);
    assert_int_equal(lb.num_classes, 10);
    for (size_t i = 0; i < count; i++)
        assert_int_equal(lb.data[i], i % 10);

    incv3_error err = {.msg = ""};
    assert_int_equal(incv3_idx_check_pair(&im, ip, &lb, lp, &err), 0);
    incv3_idx_images_free(&im);
    incv3_idx_labels_free(&lb);
    assert_null(im.data);
    incv3_idx_images_free(&im); /* twice is fine */
    incv3_idx_images_free(NULL);
    incv3_idx_labels_free(NULL);
}

static void test_roundtrip_plain(void **state) { roundtrip(*state, 0); }
static void test_roundtrip_gzip(void **state) { roundtrip(*state, 1); }

/* Extremes of the accepted range: one 1x1 image, a 4096-wide row, label 255 with 256 classes. */
static void test_roundtrip_limits(void **state)
{
    test_ctx *c = *state;
    char p[256];
    incv3_idx_images im;
    path_in(c, "one", p, sizeof p);
    write_file(p, 0, make_images(0x803, 1, 1, 1, 1));
    read_images_ok(p, &im);
    assert_int_equal(im.count, 1);
    assert_int_equal(im.rows, 1);
    assert_int_equal(im.cols, 1);
    incv3_idx_images_free(&im);

    write_file(p, 1, make_images(0x803, 2, 1, 4096, 2 * 4096));
    read_images_ok(p, &im);
    assert_int_equal(im.cols, 4096);
    incv3_idx_images_free(&im);

    buf b = make_labels(0x801, 1, 1, 1);
    b.b[8] = 255;
    write_file(p, 0, b);
    incv3_idx_labels lb;
    read_labels_ok(p, 256, &lb);
    assert_int_equal(lb.data[0], 255);
    incv3_idx_labels_free(&lb);
}

/* gzip allows several members back to back (cat a.gz b.gz); the result is their concatenation. */
static void test_gzip_multi_member(void **state)
{
    test_ctx *c = *state;
    char a[256], b[256], p[256];
    path_in(c, "a.gz", a, sizeof a);
    path_in(c, "b.gz", b, sizeof b);
    path_in(c, "ab.gz", p, sizeof p);
    size_t na, nb;
    buf full = make_labels(0x801, 20, 20, 10);
    write_gz(a, full.b, 11);
    write_gz(b, full.b + 11, full.n - 11);
    free(full.b);
    unsigned char *ba = read_all(a, &na), *bb = read_all(b, &nb);
    unsigned char *cat = malloc(na + nb);
    assert_non_null(cat);
    memcpy(cat, ba, na);
    memcpy(cat + na, bb, nb);
    write_plain(p, cat, na + nb);
    free(ba);
    free(bb);
    free(cat);
    incv3_idx_labels lb;
    read_labels_ok(p, 10, &lb);
    assert_int_equal(lb.count, 20);
    for (size_t i = 0; i < 20; i++)
        assert_int_equal(lb.data[i], i % 10);
    incv3_idx_labels_free(&lb);
}

/* ------------------------------------------------------------------------------------ malformed files */

static void test_bad_missing_file(void **state)
{
    test_ctx *c = *state;
    char p[256];
    path_in(c, "nope-idx3-ubyte", p, sizeof p);
    expect_images_fail(p, "cannot open", "No such file or directory", END);
    expect_labels_fail(p, 10, "cannot open", "No such file or directory", END);
    expect_images_fail(c->dir, "directory", END);
}

static void test_bad_magic(void **state)
{
    test_ctx *c = *state;
    char p[256];
    path_in(c, "bad", p, sizeof p);
    for (int gz = 0; gz < 2; gz++) {
        write_file(p, gz, make_images(0x12345678, 1, 2, 2, 4));
        expect_images_fail(p, "bad magic", "0x12345678", "expected 0x00000803", END);
        expect_labels_fail(p, 10, "bad magic", "0x12345678", "expected 0x00000801", END);
    }
    /* Little-endian header: the classic mistake of a hand-written converter. */
    write_file(p, 0, make_images(0x03080000, 1, 2, 2, 4));
    expect_images_fail(p, "bad magic", "0x03080000", END);
    /* Float elements (type 0x0d) are valid IDX but not what we read. */
    write_file(p, 0, make_images(0x00000d03, 1, 2, 2, 4));
    expect_images_fail(p, "bad magic", "0x00000d03", "unsigned byte", END);
}

static void test_bad_swapped(void **state)
{
    test_ctx *c = *state;
    char ip[256], lp[256];
    path_in(c, "images", ip, sizeof ip);
    path_in(c, "labels", lp, sizeof lp);
    write_file(ip, 1, make_images(0x803, 3, 2, 2, 12));
    write_file(lp, 0, make_labels(0x801, 3, 3, 10));
    expect_images_fail(lp, "bad magic 0x00000801", "labels file", "images file was expected", END);
    expect_labels_fail(ip, 10, "bad magic 0x00000803", "images file", "labels file was expected", END);
}

static void test_bad_dimension_count(void **state)
{
    test_ctx *c = *state;
    char p[256];
    path_in(c, "dims", p, sizeof p);
    write_file(p, 0, make_images(0x802, 3, 2, 2, 12));
    expect_images_fail(p, "bad magic 0x00000802", "dimension count 2", END);
    expect_labels_fail(p, 10, "bad magic 0x00000802", "dimension count 2", END);
}

static void test_bad_zero_count(void **state)
{
    test_ctx *c = *state;
    char p[256];
    path_in(c, "empty", p, sizeof p);
    write_file(p, 0, make_images(0x803, 0, 28, 28, 0));
    expect_images_fail(p, "contains no images", END);
    write_file(p, 1, make_labels(0x801, 0, 0, 10));
    expect_labels_fail(p, 10, "contains no labels", END);
}

static void test_bad_rows_cols(void **state)
{
    test_ctx *c = *state;
    char p[256];
    path_in(c, "rc", p, sizeof p);
    write_file(p, 0, make_images(0x803, 1, 0, 28, 0));
    expect_images_fail(p, "rows 0", "1..4096", END);
    write_file(p, 0, make_images(0x803, 1, 28, 4097, 0));
    expect_images_fail(p, "cols 4097", "1..4096", END);
    write_file(p, 0, make_images(0x803, 1, 0xffffffffu, 28, 0));
    expect_images_fail(p, "rows 4294967295", END);
}

static void test_bad_truncated(void **state)
{
    test_ctx *c = *state;
    char p[256];
    path_in(c, "trunc", p, sizeof p);
    for (int gz = 0; gz < 2; gz++) {
        /* 3 images of 2x2 = 12 data bytes declared, 10 present: 28 expected, 26 found. */
        write_file(p, gz, make_images(0x803, 3, 2, 2, 10));
        expect_images_fail(p, "truncated: expected 28 bytes, found 26", END);
        write_file(p, gz, make_labels(0x801, 5, 4, 10));
        expect_labels_fail(p, 10, "truncated: expected 13 bytes, found 12", END);
        /* Cut inside the header. */
        write_prefix(p, gz, make_images(0x803, 3, 2, 2, 0), 10);
        expect_images_fail(p, "truncated", "expected 16 bytes of header, found 10", END);
        write_prefix(p, gz, make_images(0x803, 3, 2, 2, 0), 2);
        expect_images_fail(p, "truncated", "found 2", END);
        write_plain(p, "", 0);
        expect_images_fail(p, "truncated", "empty", END);
    }
}

static void test_bad_trailing(void **state)
{
    test_ctx *c = *state;
    char p[256];
    path_in(c, "trail", p, sizeof p);
    for (int gz = 0; gz < 2; gz++) {
        write_file(p, gz, make_images(0x803, 3, 2, 2, 12 + 5));
        expect_images_fail(p, "has 5 trailing bytes", END);
        write_file(p, gz, make_labels(0x801, 5, 6, 10));
        expect_labels_fail(p, 10, "has 1 trailing byte", "expected 13 bytes for 5 labels, found 14", END);
    }
}

static void test_bad_label_value(void **state)
{
    test_ctx *c = *state;
    char p[256];
    path_in(c, "lbl", p, sizeof p);
    buf b = make_labels(0x801, 200, 200, 10);
    b.b[8 + 123] = 10;
    b.b[8 + 150] = 200;
    write_file(p, 1, b);
    expect_labels_fail(p, 10, "label 10 of item 123 is outside 0..9", END);
    /* The same file is fine with enough classes. */
    incv3_idx_labels lb;
    read_labels_ok(p, 201, &lb);
    incv3_idx_labels_free(&lb);
    expect_labels_fail(p, 0, "num_classes 0", END);
    expect_labels_fail(p, 257, "num_classes 257", END);
}

static void test_bad_corrupt_gzip(void **state)
{
    test_ctx *c = *state;
    char p[256];
    path_in(c, "corrupt.gz", p, sizeof p);
    /* A valid gzip header (deflate, no flags, OS unix) followed by garbage. */
    unsigned char b[64] = {0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0x03};
    for (size_t i = 10; i < sizeof b; i++)
        b[i] = (unsigned char)(0xff - i * 13);
    write_plain(p, b, sizeof b);
    expect_images_fail(p, "corrupt gzip stream", END);

    /* A good stream cut short. */
    size_t gn;
    write_file(p, 1, make_images(0x803, 50, 28, 28, 50 * 784));
    unsigned char *g = read_all(p, &gn);
    write_plain(p, g, gn / 2);
    expect_images_fail(p, "corrupt gzip stream", "ends early", END);

    /* A flipped byte in the CRC trailer: the data decode, the checksum does not. */
    g[gn - 6] ^= 0x40;
    write_plain(p, g, gn);
    expect_images_fail(p, "corrupt gzip stream", END);
    g[gn - 6] ^= 0x40;

    /* Garbage after a complete member. */
    unsigned char *gg = malloc(gn + 3);
    assert_non_null(gg);
    memcpy(gg, g, gn);
    memcpy(gg + gn, "xyz", 3);
    write_plain(p, gg, gn + 3);
    expect_images_fail(p, "corrupt gzip stream", "after the end", END);
    free(gg);
    free(g);
}

/* A header that declares more than the limit is refused before anything is allocated. */
static void test_bad_too_large_header(void **state)
{
    test_ctx *c = *state;
    char p[256];
    path_in(c, "huge", p, sizeof p);
    write_file(p, 1, make_images(0x803, 70000, 4096, 4096, 64));
    expect_images_fail(p, "more than the 1 GiB limit", END);
}

/* A gzip bomb: one valid image, then over 1 GiB of zeros as many small gzip members (about 1 MB on disk).
 * The reader must stop at the limit with a clear message rather than count or allocate it all. */
static void test_bad_gzip_bomb(void **state)
{
    test_ctx *c = *state;
    char head[256], zeros[256], p[256];
    path_in(c, "head.gz", head, sizeof head);
    path_in(c, "zeros.gz", zeros, sizeof zeros);
    path_in(c, "bomb.gz", p, sizeof p);
    size_t nh, nz;
    write_file(head, 1, make_images(0x803, 1, 28, 28, 784));
    const size_t mib = (size_t)1 << 20;
    unsigned char *z = calloc(1, mib);
    assert_non_null(z);
    write_gz(zeros, z, mib);
    free(z);
    unsigned char *bh = read_all(head, &nh), *bz = read_all(zeros, &nz);
    FILE *fp = fopen(p, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(bh, 1, nh, fp), nh);
    for (int i = 0; i < 1025; i++) /* 1025 MiB > 1 GiB */
        assert_int_equal(fwrite(bz, 1, nz, fp), nz);
    assert_int_equal(fclose(fp), 0);
    free(bh);
    free(bz);
    expect_images_fail(p, "decompresses to more than the 1 GiB limit", END);
}

static void test_check_pair_mismatch(void **state)
{
    test_ctx *c = *state;
    char ip[256], lp[256];
    path_in(c, "pair-images", ip, sizeof ip);
    path_in(c, "pair-labels.gz", lp, sizeof lp);
    write_file(ip, 0, make_images(0x803, 4, 2, 2, 16));
    write_file(lp, 1, make_labels(0x801, 3, 3, 10));
    incv3_idx_images im;
    incv3_idx_labels lb;
    read_images_ok(ip, &im);
    read_labels_ok(lp, 10, &lb);
    incv3_error err = {.msg = ""};
    assert_int_equal(incv3_idx_check_pair(&im, ip, &lb, lp, &err), -1);
    expect_contains(err.msg, ip);
    expect_contains(err.msg, lp);
    expect_contains(err.msg, "4 images");
    expect_contains(err.msg, "3 labels");
    assert_int_equal(incv3_idx_check_pair(&im, ip, &lb, lp, NULL), -1); /* NULL err is allowed */
    incv3_idx_images_free(&im);
    incv3_idx_labels_free(&lb);
}

/* ------------------------------------------------------------------------------------ mnist_find */

static void touch(const test_ctx *c, const char *name)
{
    char p[256];
    path_in(c, name, p, sizeof p);
    write_plain(p, "x", 1);
}

static void test_mnist_find(void **state)
{
    test_ctx *c = *state;
    char ip[512], lp[512], want[512];
    incv3_error err = {.msg = ""};

    /* Nothing there: the message lists both names looked for. */
    assert_int_equal(incv3_mnist_find(c->dir, "train", ip, lp, sizeof ip, &err), -1);
    expect_contains(err.msg, c->dir);
    expect_contains(err.msg, "train-images-idx3-ubyte");
    expect_contains(err.msg, "train-images-idx3-ubyte.gz");

    /* Only .gz files. */
    touch(c, "train-images-idx3-ubyte.gz");
    touch(c, "train-labels-idx1-ubyte.gz");
    assert_int_equal(incv3_mnist_find(c->dir, "train", ip, lp, sizeof ip, &err), 0);
    path_in(c, "train-images-idx3-ubyte.gz", want, sizeof want);
    assert_string_equal(ip, want);
    path_in(c, "train-labels-idx1-ubyte.gz", want, sizeof want);
    assert_string_equal(lp, want);

    /* Plain beside .gz: plain wins (images), labels stay .gz; a trailing slash in dir is not doubled. */
    touch(c, "train-images-idx3-ubyte");
    char slash[128];
    snprintf(slash, sizeof slash, "%s/", c->dir);
    assert_int_equal(incv3_mnist_find(slash, "train", ip, lp, sizeof ip, &err), 0);
    path_in(c, "train-images-idx3-ubyte", want, sizeof want);
    assert_string_equal(ip, want);
    path_in(c, "train-labels-idx1-ubyte.gz", want, sizeof want);
    assert_string_equal(lp, want);

    /* Images present but labels missing: the labels names are listed. */
    assert_int_equal(incv3_mnist_find(c->dir, "t10k", ip, lp, sizeof ip, &err), -1);
    touch(c, "t10k-images-idx3-ubyte");
    assert_int_equal(incv3_mnist_find(c->dir, "t10k", ip, lp, sizeof ip, &err), -1);
    expect_contains(err.msg, "t10k-labels-idx1-ubyte");
    expect_contains(err.msg, "t10k-labels-idx1-ubyte.gz");

    /* Buffers too small, missing directory, bad split. */
    char tiny[8];
    assert_int_equal(incv3_mnist_find(c->dir, "train", tiny, tiny, sizeof tiny, &err), -1);
    expect_contains(err.msg, "does not fit");
    char missing[256];
    path_in(c, "no-such-dir", missing, sizeof missing);
    assert_int_equal(incv3_mnist_find(missing, "train", ip, lp, sizeof ip, &err), -1);
    expect_contains(err.msg, missing);
    assert_int_equal(incv3_mnist_find(c->dir, "", ip, lp, sizeof ip, &err), -1);
    expect_contains(err.msg, "split");
}

/* ------------------------------------------------------------------------------------ real MNIST */

static void check_real_split(const char *mdir, const char *split, size_t want_count)
{
    char ip[1024], lp[1024];
    incv3_error err = {.msg = ""};
    if (incv3_mnist_find(mdir, split, ip, lp, sizeof ip, &err)) {
        print_error("%s\n", err.msg);
        fail();
    }
    incv3_idx_images im;
    incv3_idx_labels lb;
    read_images_ok(ip, &im);
    read_labels_ok(lp, 10, &lb);
    assert_int_equal(incv3_idx_check_pair(&im, ip, &lb, lp, &err), 0);
    assert_int_equal(im.count, want_count);
    assert_int_equal(im.rows, 28);
    assert_int_equal(im.cols, 28);
    size_t hist[10] = {0}, total = 0;
    for (size_t i = 0; i < lb.count; i++) {
        assert_true(lb.data[i] < 10);
        hist[lb.data[i]]++;
    }
    for (int k = 0; k < 10; k++) {
        /* Every digit appears, and none is wildly over-represented (MNIST classes are 9%..11% each). */
        assert_true(hist[k] > want_count / 20);
        assert_true(hist[k] < want_count / 5);
        total += hist[k];
    }
    assert_int_equal(total, want_count);
    /* MNIST digits are white on black: the border pixels are background, the mean ink is ~13% (33/255). */
    uint64_t sum = 0, border = 0;
    for (size_t i = 0; i < im.count; i++) {
        const uint8_t *img = im.data + i * 784;
        for (int p = 0; p < 784; p++)
            sum += img[p];
        border += img[0] + img[27] + img[27 * 28] + img[783];
    }
    double mean = (double)sum / ((double)im.count * 784);
    assert_true(mean > 25 && mean < 40);
    assert_int_equal(border, 0);
    print_message("%s: %zu images 28x28, mean pixel %.2f, labels 0..9 histogram:", split, im.count, mean);
    for (int k = 0; k < 10; k++)
        print_message(" %zu", hist[k]);
    print_message("\n");
    incv3_idx_images_free(&im);
    incv3_idx_labels_free(&lb);
}

static void test_real_mnist(void **state)
{
    test_ctx *c = *state;
    char mdir[512];
    struct stat st;
    if (!c->src_root) {
        print_message("no source root given (argv[1]); skipping the real-MNIST checks\n");
        skip();
    }
    snprintf(mdir, sizeof mdir, "%s/../shared/data/mnist", c->src_root);
    if (stat(mdir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        print_message("%s not found; skipping the real-MNIST checks\n", mdir);
        skip();
    }
    /* The shared train split is a 10,000-image subset (see its README); the test split is the original. */
    check_real_split(mdir, "train", 10000);
    check_real_split(mdir, "t10k", 10000);

    /* The first t10k label of the original MNIST test set is a 7, the second a 2. */
    char ip[1024], lp[1024];
    incv3_error err = {.msg = ""};
    assert_int_equal(incv3_mnist_find(mdir, "t10k", ip, lp, sizeof ip, &err), 0);
    incv3_idx_labels lb;
    read_labels_ok(lp, 10, &lb);
    assert_int_equal(lb.data[0], 7);
    assert_int_equal(lb.data[1], 2);
    incv3_idx_labels_free(&lb);
    /* And a real labels file given as images says so. */
    expect_images_fail(lp, "labels file", END);
}

/* ------------------------------------------------------------------------------------ main */

#define T(f) cmocka_unit_test_setup_teardown(f, setup_dir, teardown_dir)

int main(int argc, char **argv)
{
    test_ctx ctx = {.src_root = argc > 1 ? argv[1] : NULL, .dir = ""};
    struct CMUnitTest tests[] = {
        T(test_roundtrip_plain),
        T(test_roundtrip_gzip),
        T(test_roundtrip_limits),
        T(test_gzip_multi_member),
        T(test_bad_missing_file),
        T(test_bad_magic),
        T(test_bad_swapped),
        T(test_bad_dimension_count),
        T(test_bad_zero_count),
        T(test_bad_rows_cols),
        T(test_bad_truncated),
        T(test_bad_trailing),
        T(test_bad_label_value),
        T(test_bad_corrupt_gzip),
        T(test_bad_too_large_header),
        T(test_bad_gzip_bomb),
        T(test_check_pair_mismatch),
        T(test_mnist_find),
        T(test_real_mnist),
    };
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
        tests[i].initial_state = &ctx;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
