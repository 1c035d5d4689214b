/* PGM and PNG reading for incv3 predict. The whole file is read into memory first (it is bounded by the
 * dimension limit), so truncation is detected by length and the PNG decoder reads from a buffer. */
#include "io/image.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A 16384 x 16384 RGBA image with 16-bit samples stored uncompressed (plus chunk overhead) stays below
 * this; larger files cannot be images we accept. */
#define MAX_FILE_BYTES ((size_t)2200 << 20)

static int read_whole_file(const char *path, uint8_t **buf, size_t *len, incv3_error *err)
{
    *buf = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return incv3_fail(err, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    uint8_t *b = malloc(cap);
    if (!b) {
        fclose(f);
        return incv3_fail(err, "%s: out of memory", path);
    }
    for (;;) {
        if (n == cap) {
            if (cap >= MAX_FILE_BYTES) {
                free(b);
                fclose(f);
                return incv3_fail(err, "%s: file too large to be an image of at most %dx%d pixels", path,
                                  INCV3_IMAGE_MAX_DIM, INCV3_IMAGE_MAX_DIM);
            }
            size_t ncap = cap * 2 > MAX_FILE_BYTES ? MAX_FILE_BYTES : cap * 2;
            uint8_t *nb = realloc(b, ncap);
            if (!nb) {
                free(b);
                fclose(f);
                return incv3_fail(err, "%s: out of memory", path);
            }
            b = nb, cap = ncap;
        }
        size_t got = fread(b + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    int saved = errno;
    fclose(f);
    if (bad) {
        free(b);
        return incv3_fail(err, "%s: read error: %s", path, strerror(saved));
    }
    *buf = b;
    *len = n;
    return 0;
}

static int check_dims(const char *path, const char *fmt, long long cols, long long rows, incv3_error *err)
{
    if (cols < 1 || rows < 1 || cols > INCV3_IMAGE_MAX_DIM || rows > INCV3_IMAGE_MAX_DIM)
        return incv3_fail(err, "%s: bad %s dimensions %lldx%lld (width and height must be 1..%d)", path, fmt, cols,
                          rows, INCV3_IMAGE_MAX_DIM);
    return 0;
}

/* ---- PGM ---- */

typedef struct pgm_cursor {
    const uint8_t *p;
    size_t len, pos;
} pgm_cursor;

static int is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Skips whitespace and '#' comments (to the end of the line). */
static void pgm_skip(pgm_cursor *c)
{
    while (c->pos < c->len) {
        if (is_space(c->p[c->pos])) {
            c->pos++;
        } else if (c->p[c->pos] == '#') {
            while (c->pos < c->len && c->p[c->pos] != '\n' && c->p[c->pos] != '\r')
                c->pos++;
        } else {
            break;
        }
    }
}

/* Reads one unsigned decimal after whitespace/comments. Returns 0, 1 at the end of the data, -1 when the
 * next token is not a number, -2 when it is too large (above `limit`; the value is clamped for messages). */
static int pgm_number(pgm_cursor *c, long long limit, long long *out)
{
    pgm_skip(c);
    if (c->pos >= c->len)
        return 1;
    if (c->p[c->pos] < '0' || c->p[c->pos] > '9')
        return -1;
    long long v = 0;
    int over = 0;
    while (c->pos < c->len && c->p[c->pos] >= '0' && c->p[c->pos] <= '9') {
        if (v <= limit)
            v = v * 10 + (c->p[c->pos] - '0');
        if (v > limit)
            over = 1;
        c->pos++;
    }
    if (c->pos < c->len && !is_space(c->p[c->pos]) && c->p[c->pos] != '#')
        return -1;
    *out = v;
    return over ? -2 : 0;
}

static int pgm_header_field(pgm_cursor *c, const char *path, const char *what, long long limit, long long *out,
                            incv3_error *err)
{
    int rc = pgm_number(c, limit, out);
    if (rc == 1)
        return incv3_fail(err, "%s: truncated PGM header (no %s)", path, what);
    if (rc == -1)
        return incv3_fail(err, "%s: bad PGM header: %s is not a number", path, what);
    if (rc == -2) {
        if (strcmp(what, "maxval") == 0)
            return incv3_fail(err, "%s: bad PGM maxval above 65535", path);
        return incv3_fail(err, "%s: bad PGM dimensions: %s above %d", path, what, INCV3_IMAGE_MAX_DIM);
    }
    return 0;
}

static uint8_t scale_sample(unsigned v, unsigned maxval)
{
    return (uint8_t)((v * 255u + maxval / 2) / maxval);
}

static int read_pgm(const char *path, const uint8_t *buf, size_t len, incv3_gray_image *out, incv3_error *err)
{
    const int plain = buf[1] == '2';
    pgm_cursor c = {buf, len, 2};
    if (c.pos < len && !is_space(buf[c.pos]) && buf[c.pos] != '#')
        return incv3_fail(err, "%s: not a PGM or PNG image (bad magic)", path);
    long long cols, rows, maxval;
    /* The limit lets "0" and "16385" through to check_dims for one message about dimensions. */
    if (pgm_header_field(&c, path, "width", INCV3_IMAGE_MAX_DIM + 1LL, &cols, err) ||
        pgm_header_field(&c, path, "height", INCV3_IMAGE_MAX_DIM + 1LL, &rows, err) ||
        check_dims(path, "PGM", cols, rows, err) || pgm_header_field(&c, path, "maxval", 65535, &maxval, err))
        return -1;
    if (maxval < 1)
        return incv3_fail(err, "%s: bad PGM maxval 0 (must be 1..65535)", path);
    const size_t npix = (size_t)rows * (size_t)cols;
    uint8_t *data = malloc(npix);
    if (!data)
        return incv3_fail(err, "%s: out of memory for %lldx%lld pixels", path, cols, rows);
    if (plain) {
        for (size_t i = 0; i < npix; i++) {
            long long v;
            int rc = pgm_number(&c, 65535, &v);
            if (rc == 1) {
                free(data);
                return incv3_fail(err, "%s: truncated PGM data: %zu of %zu pixels", path, i, npix);
            }
            if (rc != 0 || v > maxval) {
                free(data);
                return incv3_fail(err, "%s: bad PGM pixel %zu: %s", path, i,
                                  rc == -1 ? "not a number" : "above maxval");
            }
            data[i] = scale_sample((unsigned)v, (unsigned)maxval);
        }
    } else {
        /* Exactly one whitespace byte separates maxval from the raster. */
        if (c.pos >= len) {
            free(data);
            return incv3_fail(err, "%s: truncated PGM data: 0 of %zu pixels", path, npix);
        }
        if (!is_space(buf[c.pos])) {
            free(data);
            return incv3_fail(err, "%s: bad PGM header: no whitespace between maxval and the pixels", path);
        }
        c.pos++;
        const size_t bps = maxval > 255 ? 2 : 1;
        const size_t have = (len - c.pos) / bps;
        if (have < npix) {
            free(data);
            return incv3_fail(err, "%s: truncated PGM data: %zu of %zu pixels", path, have, npix);
        }
        const uint8_t *p = buf + c.pos;
        for (size_t i = 0; i < npix; i++) {
            unsigned v = bps == 2 ? (unsigned)p[2 * i] << 8 | p[2 * i + 1] : p[i];
            if (v > (unsigned)maxval) {
                free(data);
                return incv3_fail(err, "%s: bad PGM pixel %zu: %u above maxval %lld", path, i, v, maxval);
            }
            data[i] = scale_sample(v, (unsigned)maxval);
        }
    }
    out->rows = (int)rows, out->cols = (int)cols, out->data = data;
    return 0;
}

/* ---- PNG ---- */

typedef struct png_source {
    const char *path;
    const uint8_t *buf;
    size_t len, pos;
    int truncated;
    incv3_error *err;
} png_source;

static void png_read_mem(png_structp png, png_bytep dst, size_t n)
{
    png_source *s = png_get_io_ptr(png);
    if (n > s->len - s->pos) {
        s->truncated = 1;
        png_error(png, "file ends early");
    }
    memcpy(dst, s->buf + s->pos, n);
    s->pos += n;
}

/* libpng's error callback: records the message, then leaves through the jump buffer set in read_png (an
 * error callback must not return). */
static void png_on_error(png_structp png, png_const_charp msg)
{
    png_source *s = png_get_error_ptr(png);
    if (s->truncated)
        incv3_fail(s->err, "%s: truncated PNG: the file ends before its image data does", s->path);
    else
        incv3_fail(s->err, "%s: corrupt PNG: %s", s->path, msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png, (void)msg; /* ancillary-chunk trouble does not stop a prediction */
}

static int read_png(const char *path, const uint8_t *buf, size_t len, incv3_gray_image *out, incv3_error *err)
{
    png_source src = {path, buf, len, 0, 0, err};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        return incv3_fail(err, "%s: out of memory for the PNG decoder", path);
    }
    /* Everything that changes after setjmp and is needed after a longjmp is volatile, so its value survives
     * the jump (C11 7.13.2.1). */
    uint8_t *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    uint8_t *volatile gray = NULL;
    if (setjmp(png_jmpbuf(png))) {
        free(pixels);
        free(rows);
        free(gray);
        png_destroy_read_struct(&png, &info, NULL);
        return -1; /* err filled by png_on_error */
    }
    png_set_read_fn(png, &src, png_read_mem);
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff); /* our own limit is checked below, with our message */
    png_read_info(png, info);
    const png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if (check_dims(path, "PNG", (long long)w, (long long)h, err)) {
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    /* To 8-bit samples: palette to RGB, gray below 8 bits to 8, tRNS to an alpha channel, 16 bits scaled
     * with rounding. What remains is gray, gray+alpha, RGB or RGBA. */
    png_set_expand(png);
#ifdef PNG_READ_SCALE_16_TO_8_SUPPORTED
    png_set_scale_16(png);
#else
    png_set_strip_16(png);
#endif
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    const int channels = png_get_channels(png, info);
    const size_t rowbytes = png_get_rowbytes(png, info);
    if (channels < 1 || channels > 4 || rowbytes != (size_t)w * (size_t)channels) {
        png_destroy_read_struct(&png, &info, NULL);
        return incv3_fail(err, "%s: corrupt PNG: unexpected layout after conversion", path);
    }
    pixels = malloc(rowbytes * h);
    rows = malloc(sizeof(png_bytep) * h);
    gray = malloc((size_t)w * h);
    if (!pixels || !rows || !gray) {
        free(pixels);
        free(rows);
        free(gray);
        png_destroy_read_struct(&png, &info, NULL);
        return incv3_fail(err, "%s: out of memory for %ux%u pixels", path, (unsigned)w, (unsigned)h);
    }
    for (png_uint_32 y = 0; y < h; y++)
        rows[y] = pixels + (size_t)y * rowbytes;
    png_read_image(png, rows);
    png_destroy_read_struct(&png, &info, NULL);
    const size_t npix = (size_t)w * h;
    const uint8_t *p = pixels;
    uint8_t *g = gray;
    for (size_t i = 0; i < npix; i++, p += channels) {
        double v, a = 255;
        switch (channels) {
        case 1: v = p[0]; break;
        case 2: v = p[0], a = p[1]; break;
        default:
            v = 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
            if (channels == 4)
                a = p[3];
        }
        /* Composited on black: MNIST digits are white on black, so transparency is background. */
        v = v * a / 255.0;
        g[i] = (uint8_t)(v + 0.5 > 255 ? 255 : v + 0.5);
    }
    free(pixels);
    free(rows);
    out->rows = (int)h, out->cols = (int)w, out->data = gray;
    return 0;
}

int incv3_image_read(const char *path, incv3_gray_image *out, incv3_error *err)
{
    out->rows = out->cols = 0;
    out->data = NULL;
    uint8_t *buf;
    size_t len;
    if (read_whole_file(path, &buf, &len, err))
        return -1;
    int rc;
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (len >= 2 && buf[0] == 'P' && (buf[1] == '5' || buf[1] == '2'))
        rc = read_pgm(path, buf, len, out, err);
    else if (len >= 8 && memcmp(buf, png_sig, 8) == 0)
        rc = read_png(path, buf, len, out, err);
    else if (len == 0)
        rc = incv3_fail(err, "%s: empty file, not a PGM or PNG image", path);
    else if (len < 8 && memcmp(buf, png_sig, len) == 0)
        rc = incv3_fail(err, "%s: truncated PNG: the file ends inside its signature", path);
    else if (len >= 2 && buf[0] == 'P' && buf[1] >= '1' && buf[1] <= '7')
        rc = incv3_fail(err, "%s: not a PGM or PNG image (netpbm P%c; only P5 and P2 grayscale are read)", path,
                        buf[1]);
    else
        rc = incv3_fail(err, "%s: not a PGM or PNG image", path);
    free(buf);
    return rc ? -1 : 0;
}

void incv3_gray_image_free(incv3_gray_image *img)
{
    if (!img)
        return;
    free(img->data);
    img->data = NULL;
    img->rows = img->cols = 0;
}
