/* incv3_image_read: PGM (P5, P2, comments, maxval 255 and 65535) and PNG (gray, RGB, RGBA, palette, 16-bit,
 * written here with libpng) read back to the expected gray values; malformed files give errors naming
 * the path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <png.h>

#include "io/image.h"

static char tmpdir[256];

static const char *tmp_path(const char *name)
{
    static char buf[8][512];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    return p;
}

static const char *write_bytes(const char *name, const void *data, size_t len)
{
    const char *path = tmp_path(name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
    return path;
}

/* A PNG of w x h pixels whose sample data (already in libpng's layout) is `rows_data`. */
static const char *write_png(const char *name, int w, int h, int bit_depth, int color_type, const uint8_t *rows_data,
                             size_t rowbytes, const png_color *palette, int npal, const uint8_t *trns, int ntrns)
{
    const char *path = tmp_path(name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_non_null(info);
    if (setjmp(png_jmpbuf(png)))
        fail_msg("libpng failed writing %s", path);
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, bit_depth, color_type, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (palette)
        png_set_PLTE(png, info, palette, npal);
    if (trns)
        png_set_tRNS(png, info, trns, ntrns, NULL);
    png_write_info(png, info);
    for (int y = 0; y < h; y++)
        png_write_row(png, rows_data + (size_t)y * rowbytes);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    fclose(f);
    return path;
}

static void expect_image(const char *path, int rows, int cols, const uint8_t *want)
{
    incv3_gray_image img;
    incv3_error err = {{0}};
    int rc = incv3_image_read(path, &img, &err);
    if (rc)
        fail_msg("%s: %s", path, err.msg);
    assert_int_equal(img.rows, rows);
    assert_int_equal(img.cols, cols);
    for (int i = 0; i < rows * cols; i++)
        if (img.data[i] != want[i])
            fail_msg("%s: pixel %d is %d, want %d", path, i, img.data[i], want[i]);
    incv3_gray_image_free(&img);
    assert_null(img.data);
}

static void expect_error(const char *path, const char *fragment)
{
    incv3_gray_image img;
    incv3_error err = {{0}};
    assert_int_equal(incv3_image_read(path, &img, &err), -1);
    assert_null(img.data);
    if (!strstr(err.msg, path))
        fail_msg("error does not name %s: %s", path, err.msg);
    if (!strstr(err.msg, fragment))
        fail_msg("error for %s lacks '%s': %s", path, fragment, err.msg);
}

/* ---- PGM ---- */

static void test_pgm_p5_comments(void **state)
{
    (void)state;
    const char text[] = "P5\n# made by hand\n3 # width\n2\n# maxval next\n255\n";
    uint8_t buf[sizeof text - 1 + 6];
    memcpy(buf, text, sizeof text - 1);
    const uint8_t px[6] = {0, 1, 127, 128, 254, 255};
    memcpy(buf + sizeof text - 1, px, 6);
    expect_image(write_bytes("a.pgm", buf, sizeof buf), 2, 3, px);
}

static void test_pgm_p5_16bit(void **state)
{
    (void)state;
    const char text[] = "P5 2 2 65535\n";
    uint8_t buf[sizeof text - 1 + 8];
    memcpy(buf, text, sizeof text - 1);
    const uint16_t v[4] = {0, 257, 32896, 65535}; /* big-endian on disk */
    for (int i = 0; i < 4; i++)
        buf[sizeof text - 1 + 2 * i] = (uint8_t)(v[i] >> 8), buf[sizeof text - 1 + 2 * i + 1] = (uint8_t)v[i];
    const uint8_t want[4] = {0, 1, 128, 255};
    expect_image(write_bytes("b.pgm", buf, sizeof buf), 2, 2, want);
}

static void test_pgm_p2(void **state)
{
    (void)state;
    const char text[] = "P2\n# ascii\n2 3\n15\n0 15\n# inside\n5 10\n 7\t8\n";
    const uint8_t want[6] = {0, 255, 85, 170, 119, 136};
    expect_image(write_bytes("c.pgm", text, sizeof text - 1), 3, 2, want);
    const char text16[] = "P2 2 1 65535 65535 0\n";
    const uint8_t want16[2] = {255, 0};
    expect_image(write_bytes("c16.pgm", text16, sizeof text16 - 1), 1, 2, want16);
}

static void test_pgm_malformed(void **state)
{
    (void)state;
    const char trunc[] = "P5 4 4 255\n0123456789";
    expect_error(write_bytes("trunc.pgm", trunc, sizeof trunc - 1), "truncated PGM data");
    const char trunc2[] = "P2 2 2 255 1 2 3";
    expect_error(write_bytes("trunc2.pgm", trunc2, sizeof trunc2 - 1), "truncated PGM data");
    const char magic[] = "P7 2 2 255\n1234";
    expect_error(write_bytes("magic.pgm", magic, sizeof magic - 1), "not a PGM or PNG");
    const char magic2[] = "GIF89a....";
    expect_error(write_bytes("magic2.pgm", magic2, sizeof magic2 - 1), "not a PGM or PNG");
    expect_error(write_bytes("empty.pgm", "", 0), "not a PGM or PNG");
    const char zero[] = "P5 0 2 255\n";
    expect_error(write_bytes("zero.pgm", zero, sizeof zero - 1), "dimensions");
    const char big[] = "P5 16385 2 255\n";
    expect_error(write_bytes("big.pgm", big, sizeof big - 1), "dimensions");
    const char huge[] = "P5 99999999999999999999 2 255\n";
    expect_error(write_bytes("huge.pgm", huge, sizeof huge - 1), "dimensions");
    const char maxval[] = "P5 1 1 70000\n\x01";
    expect_error(write_bytes("maxval.pgm", maxval, sizeof maxval - 1), "maxval");
    const char maxval0[] = "P5 1 1 0\n\x01";
    expect_error(write_bytes("maxval0.pgm", maxval0, sizeof maxval0 - 1), "maxval");
    const char above[] = "P2 1 1 10 11\n";
    expect_error(write_bytes("above.pgm", above, sizeof above - 1), "above maxval");
    const char nohdr[] = "P5 3";
    expect_error(write_bytes("nohdr.pgm", nohdr, sizeof nohdr - 1), "truncated PGM header");
    const char junk[] = "P5 3x 3 255\n";
    expect_error(write_bytes("junk.pgm", junk, sizeof junk - 1), "bad PGM header");
    expect_error(tmp_path("does-not-exist.pgm"), "cannot open");
}

/* ---- PNG ---- */

static void test_png_gray(void **state)
{
    (void)state;
    const uint8_t px[6] = {0, 10, 100, 200, 250, 255};
    expect_image(write_png("g.png", 3, 2, 8, PNG_COLOR_TYPE_GRAY, px, 3, NULL, 0, NULL, 0), 2, 3, px);
    /* 1-bit gray: 0 and 1 become 0 and 255. */
    const uint8_t bits[2] = {0xA0, 0x40}; /* rows "101" and "010" */
    const uint8_t want[6] = {255, 0, 255, 0, 255, 0};
    expect_image(write_png("g1.png", 3, 2, 1, PNG_COLOR_TYPE_GRAY, bits, 1, NULL, 0, NULL, 0), 2, 3, want);
}

static void test_png_gray16(void **state)
{
    (void)state;
    const uint8_t px[8] = {0, 0, 1, 1, 0x80, 0x80, 0xff, 0xff}; /* 0, 257, 32896, 65535 */
    const uint8_t want[4] = {0, 1, 128, 255};
    expect_image(write_png("g16.png", 2, 2, 16, PNG_COLOR_TYPE_GRAY, px, 4, NULL, 0, NULL, 0), 2, 2, want);
}

static uint8_t luma(int r, int g, int b)
{
    double v = 0.299 * r + 0.587 * g + 0.114 * b;
    return (uint8_t)(v + 0.5);
}

static void test_png_rgb_rgba(void **state)
{
    (void)state;
    const uint8_t rgb[12] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 90, 90, 90};
    const uint8_t want[4] = {luma(255, 0, 0), luma(0, 255, 0), luma(0, 0, 255), 90};
    expect_image(write_png("rgb.png", 2, 2, 8, PNG_COLOR_TYPE_RGB, rgb, 6, NULL, 0, NULL, 0), 2, 2, want);
    /* Alpha composited on black: value x alpha / 255. */
    const uint8_t rgba[8] = {200, 200, 200, 255, 200, 200, 200, 0};
    const uint8_t wanta[2] = {200, 0};
    expect_image(write_png("rgba.png", 2, 1, 8, PNG_COLOR_TYPE_RGBA, rgba, 8, NULL, 0, NULL, 0), 1, 2, wanta);
    const uint8_t ga[4] = {100, 128, 255, 255};
    const uint8_t wantga[2] = {50, 255};
    expect_image(write_png("ga.png", 2, 1, 8, PNG_COLOR_TYPE_GRAY_ALPHA, ga, 4, NULL, 0, NULL, 0), 1, 2, wantga);
    /* 16-bit RGB. */
    const uint8_t rgb16[6] = {0xff, 0xff, 0, 0, 0, 0};
    const uint8_t want16[1] = {luma(255, 0, 0)};
    expect_image(write_png("rgb16.png", 1, 1, 16, PNG_COLOR_TYPE_RGB, rgb16, 6, NULL, 0, NULL, 0), 1, 1, want16);
}

static void test_png_palette(void **state)
{
    (void)state;
    const png_color pal[3] = {{0, 0, 0}, {255, 255, 255}, {10, 20, 30}};
    const uint8_t idx[4] = {0, 1, 2, 1};
    const uint8_t want[4] = {0, 255, luma(10, 20, 30), 255};
    expect_image(write_png("pal.png", 2, 2, 8, PNG_COLOR_TYPE_PALETTE, idx, 2, pal, 3, NULL, 0), 2, 2, want);
    /* Palette transparency (tRNS): entry 1 fully transparent, composited on black. */
    const uint8_t trns[2] = {255, 0};
    const uint8_t want_t[4] = {0, 0, luma(10, 20, 30), 0};
    expect_image(write_png("palt.png", 2, 2, 8, PNG_COLOR_TYPE_PALETTE, idx, 2, pal, 3, trns, 2), 2, 2, want_t);
}

static void test_png_malformed(void **state)
{
    (void)state;
    uint8_t px[64 * 64];
    for (int i = 0; i < 64 * 64; i++)
        px[i] = (uint8_t)(i * 7919u >> 3); /* noisy, so the compressed data is not tiny */
    const char *good = write_png("good.png", 64, 64, 8, PNG_COLOR_TYPE_GRAY, px, 64, NULL, 0, NULL, 0);
    FILE *f = fopen(good, "rb");
    assert_non_null(f);
    static uint8_t buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    assert_true(n > 200);
    expect_error(write_bytes("half.png", buf, n / 2), "truncated PNG");
    expect_error(write_bytes("hdr.png", buf, 20), "truncated PNG");
    expect_error(write_bytes("sig.png", buf, 5), "truncated PNG");
    /* A corrupted IHDR (bad CRC) and corrupted image data are reported through libpng's error callback. */
    uint8_t bad[sizeof buf];
    memcpy(bad, buf, n);
    bad[17] ^= 0x55; /* inside IHDR's width */
    expect_error(write_bytes("crc.png", bad, n), "corrupt PNG");
    memcpy(bad, buf, n);
    for (size_t i = 60; i < n - 20; i++)
        bad[i] ^= 0xA5;
    expect_error(write_bytes("data.png", bad, n), "PNG");
    /* Dimensions above the limit (the CRC is right; the limit is ours). */
    uint8_t *zeros = calloc(1, INCV3_IMAGE_MAX_DIM / 8 + 1);
    assert_non_null(zeros);
    const char *wide = write_png("wide.png", INCV3_IMAGE_MAX_DIM + 1, 1, 1, PNG_COLOR_TYPE_GRAY, zeros,
                                 INCV3_IMAGE_MAX_DIM / 8 + 1, NULL, 0, NULL, 0);
    free(zeros);
    expect_error(wide, "dimensions");
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/incv3-test-image-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pgm_p5_comments), cmocka_unit_test(test_pgm_p5_16bit),
        cmocka_unit_test(test_pgm_p2),          cmocka_unit_test(test_pgm_malformed),
        cmocka_unit_test(test_png_gray),        cmocka_unit_test(test_png_gray16),
        cmocka_unit_test(test_png_rgb_rgba),    cmocka_unit_test(test_png_palette),
        cmocka_unit_test(test_png_malformed),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return rc;
}
