/* IDX reader. Files are streamed through a tiny "source" that hides whether the bytes come straight from
 * the file or out of zlib's inflate, so one parser checks both kinds identically. The header is read
 * first and decides exactly how many bytes to allocate; anything after the declared payload is counted
 * (and discarded) rather than stored, so neither a lying header nor a gzip bomb can make us allocate more
 * than INCV3_IDX_MAX_BYTES. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* fileno, fstat */
#endif

#include "incv3/idx.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "alloc.h"
#include "util/oom.h"

#define CHUNK ((size_t)1 << 16)

/* ------------------------------------------------------------------------------------ byte source */

typedef struct src {
    const char *path;
    FILE *fp;
    int gz;            /* 1: inflate what we read; 0: hand it out as is */
    int zinit;         /* z stream initialised (so close knows to end it) */
    int file_eof;      /* fread returned 0 at end of file */
    int logical_eof;   /* no more (decompressed) bytes will come */
    z_stream zs;
    uint8_t in[CHUNK]; /* raw file bytes; for plain files only the first chunk passes through here */
    size_t in_pos, in_len;
    uint64_t total;    /* (decompressed) bytes handed out so far */
    uint8_t drain[CHUNK]; /* where bytes past the declared payload go to be counted */
} src;

/* Refill src->in from the file. Returns 0 (possibly with file_eof set) or -1 on a read error. */
static int src_fill(src *s, incv3_error *err)
{
    s->in_pos = 0;
    s->in_len = fread(s->in, 1, CHUNK, s->fp);
    if (s->in_len == 0) {
        if (ferror(s->fp))
            return incv3_fail(err, "%s: read error: %s", s->path, strerror(errno));
        s->file_eof = 1;
    }
    return 0;
}

static int src_open(src *s, const char *path, incv3_error *err)
{
    memset(s, 0, sizeof *s);
    s->path = path;
    s->fp = fopen(path, "rb");
    if (!s->fp)
        return incv3_fail(err, "%s: cannot open: %s", path, strerror(errno));
    /* fopen succeeds on a directory; say so plainly instead of a confusing read error later. */
    struct stat st;
    if (fstat(fileno(s->fp), &st) == 0 && S_ISDIR(st.st_mode))
        return incv3_fail(err, "%s: cannot read: is a directory", path);
    if (src_fill(s, err))
        return -1;
    /* IDX files start with two zero bytes, so the gzip magic can never be mistaken for one. */
    s->gz = s->in_len >= 2 && s->in[0] == 0x1f && s->in[1] == 0x8b;
    if (s->gz) {
        /* 16 + MAX_WBITS: gzip wrapper only, so the CRC-32 and length trailer are verified too. */
        if (inflateInit2(&s->zs, 16 + MAX_WBITS) != Z_OK)
            return incv3_fail(err, "%s: cannot initialise zlib: out of memory", path);
        s->zinit = 1;
    }
    return 0;
}

static void src_close(src *s)
{
    if (s->zinit)
        inflateEnd(&s->zs);
    if (s->fp)
        fclose(s->fp);
    s->zinit = 0;
    s->fp = NULL;
}

static int src_read_plain(src *s, uint8_t *dst, size_t n, size_t *got, incv3_error *err)
{
    size_t done = 0;
    if (s->in_pos < s->in_len) { /* the sniffed first chunk */
        size_t k = s->in_len - s->in_pos < n ? s->in_len - s->in_pos : n;
        memcpy(dst, s->in + s->in_pos, k);
        s->in_pos += k;
        done = k;
    }
    while (done < n && !s->file_eof) {
        size_t k = fread(dst + done, 1, n - done, s->fp);
        if (k == 0) {
            if (ferror(s->fp))
                return incv3_fail(err, "%s: read error: %s", s->path, strerror(errno));
            s->file_eof = 1;
        }
        done += k;
    }
    if (done < n)
        s->logical_eof = 1;
    *got = done;
    return 0;
}

static int src_read_gz(src *s, uint8_t *dst, size_t n, size_t *got, incv3_error *err)
{
    z_stream *z = &s->zs;
    size_t done = 0;
    while (done < n && !s->logical_eof) {
        if (s->in_pos == s->in_len && !s->file_eof && src_fill(s, err))
            return -1;
        /* zlib counts in uInt; a request can exceed 4 GiB only in theory, but stay within it anyway. */
        size_t want = n - done < (size_t)UINT32_MAX ? n - done : (size_t)UINT32_MAX;
        z->next_in = s->in + s->in_pos;
        z->avail_in = (uInt)(s->in_len - s->in_pos);
        z->next_out = dst + done;
        z->avail_out = (uInt)want;
        int rc = inflate(z, Z_NO_FLUSH);
        done += want - z->avail_out;
        s->in_pos = s->in_len - z->avail_in;
        if (rc == Z_STREAM_END) {
            /* gzip allows several members back to back (cat a.gz b.gz); anything else after the end of a
             * member is damage, not data we may silently drop. */
            if (s->in_pos == s->in_len && !s->file_eof && src_fill(s, err))
                return -1;
            if (s->in_pos == s->in_len) {
                s->logical_eof = 1;
            } else if (s->in[s->in_pos] != 0x1f) {
                return incv3_fail(err, "%s: corrupt gzip stream: unexpected data after the end of the compressed "
                                       "stream", s->path);
            } else if (inflateReset(z) != Z_OK) {
                return incv3_fail(err, "%s: corrupt gzip stream: cannot restart inflate", s->path);
            }
        } else if (rc == Z_BUF_ERROR) {
            /* No progress possible: fine if the caller's buffer is full, otherwise the input ran out. */
            if (z->avail_out != 0 && s->in_pos == s->in_len && s->file_eof)
                return incv3_fail(err, "%s: corrupt gzip stream: compressed data ends early (file truncated?)",
                                  s->path);
        } else if (rc == Z_MEM_ERROR) {
            return incv3_fail(err, "%s: out of memory while decompressing", s->path);
        } else if (rc != Z_OK) {
            return incv3_fail(err, "%s: corrupt gzip stream: %s", s->path, z->msg ? z->msg : "inflate failed");
        }
    }
    *got = done;
    return 0;
}

/* Read up to n bytes; *got < n only at the end of the (decompressed) data. */
static int src_read(src *s, void *dst, size_t n, size_t *got, incv3_error *err)
{
    *got = 0;
    if (n == 0 || s->logical_eof)
        return 0;
    int rc = s->gz ? src_read_gz(s, dst, n, got, err) : src_read_plain(s, dst, n, got, err);
    s->total += *got;
    return rc;
}

/* ------------------------------------------------------------------------------------ IDX parser */

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static const char *kind_name(int ndim) { return ndim == 3 ? "images" : "labels"; }

/* The whole magic check in one place, so the message can say what the file actually looks like. */
static int check_magic(const char *path, uint32_t m, int want_ndim, incv3_error *err)
{
    uint32_t want = 0x00000800u | (uint32_t)want_ndim;
    if (m == want)
        return 0;
    const char *what = kind_name(want_ndim);
    if ((m & 0xffffff00u) == 0x00000800u) {
        int nd = (int)(m & 0xff);
        if ((want_ndim == 3 && nd == 1) || (want_ndim == 1 && nd == 3))
            return incv3_fail(err, "%s: bad magic 0x%08" PRIx32 ", expected 0x%08" PRIx32 ": this is an IDX %s file, "
                                   "but an IDX %s file was expected (images and labels swapped?)",
                              path, m, want, kind_name(nd), what);
        return incv3_fail(err, "%s: bad magic 0x%08" PRIx32 ", expected 0x%08" PRIx32 ": wrong dimension count %d "
                               "(IDX %s files have %d)", path, m, want, nd, what, want_ndim);
    }
    if ((m & 0xffff0000u) == 0 && (m & 0xff) == (uint32_t)want_ndim)
        return incv3_fail(err, "%s: bad magic 0x%08" PRIx32 ", expected 0x%08" PRIx32 ": element type 0x%02" PRIx32
                               " is not unsigned byte (0x08)", path, m, want, (m >> 8) & 0xff);
    return incv3_fail(err, "%s: bad magic 0x%08" PRIx32 ", expected 0x%08" PRIx32 " (IDX %s): not an IDX %s file",
                      path, m, want, what, what);
}

/* Reads a whole IDX file of unsigned bytes with want_ndim dimensions (3 or 1). On success dims[] holds the
 * sizes and *data the payload (malloc'd, may be NULL only if the payload were empty, which we refuse). */
static int read_idx(const char *path, int want_ndim, uint32_t dims[3], uint8_t **data, incv3_error *err)
{
    const char *what = kind_name(want_ndim);
    *data = NULL;
    if (!path)
        return incv3_fail(err, "IDX %s reader: no path given", what);

    src *s = malloc(sizeof *s); /* 128 KiB of buffers: keep them off the stack */
    if (!s)
        return incv3_fail(err, "%s: out of memory", path);
    uint8_t *payload = NULL;
    int rc = -1;
    if (src_open(s, path, err))
        goto out;
    const char *gzs = s->gz ? " after gzip decompression" : "";

    uint8_t hdr[16];
    size_t hlen = 4 + 4 * (size_t)want_ndim, got;
    if (src_read(s, hdr, 4, &got, err))
        goto out;
    if (got == 0) {
        incv3_fail(err, "%s: truncated: file is empty%s, expected an IDX %s header", path, gzs, what);
        goto out;
    }
    if (got < 4) {
        incv3_fail(err, "%s: truncated: expected %zu bytes of header, found %zu%s", path, hlen, got, gzs);
        goto out;
    }
    if (check_magic(path, be32(hdr), want_ndim, err))
        goto out;
    if (src_read(s, hdr + 4, hlen - 4, &got, err))
        goto out;
    if (got < hlen - 4) {
        incv3_fail(err, "%s: truncated: expected %zu bytes of header, found %zu%s", path, hlen, 4 + got, gzs);
        goto out;
    }
    uint64_t items = 1;
    for (int d = 0; d < want_ndim; d++) {
        dims[d] = be32(hdr + 4 + 4 * d);
        items *= dims[d]; /* <= 2^32 * 2^12 * 2^12 once checked below, so no overflow in uint64 */
        if (d == 0 && dims[0] == 0) {
            incv3_fail(err, "%s: contains no %s (the header's count is 0)", path, what);
            goto out;
        }
        if (d > 0 && (dims[d] < 1 || dims[d] > INCV3_IDX_MAX_DIM)) {
            incv3_fail(err, "%s: bad dimensions: %s %" PRIu32 " is outside 1..%d", path, d == 1 ? "rows" : "cols",
                       dims[d], INCV3_IDX_MAX_DIM);
            goto out;
        }
    }
    uint64_t expect = hlen + items;
    if (expect > INCV3_IDX_MAX_BYTES) {
        incv3_fail(err, "%s: header declares %" PRIu32 " %s, %" PRIu64 " bytes in all, more than the 1 GiB "
                        "limit (%" PRIu64 " bytes)", path, dims[0], what, expect, INCV3_IDX_MAX_BYTES);
        goto out;
    }
    if ((uint64_t)(size_t)items != items) { /* 32-bit hosts */
        incv3_fail(err, "%s: %" PRIu64 " bytes of %s do not fit in memory", path, items, what);
        goto out;
    }
    payload = incv3_mem_try((size_t)items, 0);
    if (!payload) {
        incv3_fail_oom(err, (size_t)items, path);
        goto out;
    }
    if (src_read(s, payload, (size_t)items, &got, err))
        goto out;
    if (got < items) {
        incv3_fail(err, "%s: truncated: expected %" PRIu64 " bytes, found %" PRIu64 "%s (header declares %" PRIu32
                        " %s)", path, expect, s->total, gzs, dims[0], what);
        goto out;
    }
    /* Read on to the end: trailing bytes mean the header lies, and for gzip this also verifies the CRC.
     * They are counted, not kept, and counting stops at the size limit. */
    uint8_t *scratch = s->drain;
    do {
        if (src_read(s, scratch, CHUNK, &got, err))
            goto out;
        if (s->total > INCV3_IDX_MAX_BYTES) {
            incv3_fail(err, "%s: %s more than the 1 GiB limit (%" PRIu64 " bytes); refusing it", path,
                       s->gz ? "decompresses to" : "is", INCV3_IDX_MAX_BYTES);
            goto out;
        }
    } while (got == CHUNK);
    if (s->total != expect) {
        uint64_t extra = s->total - expect;
        incv3_fail(err, "%s: has %" PRIu64 " trailing byte%s%s: expected %" PRIu64 " bytes for %" PRIu32
                        " %s, found %" PRIu64, path, extra, extra == 1 ? "" : "s", gzs, expect, dims[0], what,
                   s->total);
        goto out;
    }
    *data = payload;
    payload = NULL;
    rc = 0;
out:
    src_close(s);
    free(s);
    free(payload);
    return rc;
}

/* ------------------------------------------------------------------------------------ public API */

int incv3_idx_read_images(const char *path, incv3_idx_images *out, incv3_error *err)
{
    if (!out)
        return incv3_fail(err, "%s: incv3_idx_read_images: no output struct", path ? path : "(null)");
    memset(out, 0, sizeof *out);
    uint32_t dims[3];
    uint8_t *data;
    if (read_idx(path, 3, dims, &data, err))
        return -1;
    out->count = dims[0];
    out->rows = (int)dims[1];
    out->cols = (int)dims[2];
    out->data = data;
    return 0;
}

int incv3_idx_read_labels(const char *path, int num_classes, incv3_idx_labels *out, incv3_error *err)
{
    if (!out)
        return incv3_fail(err, "%s: incv3_idx_read_labels: no output struct", path ? path : "(null)");
    memset(out, 0, sizeof *out);
    /* Labels are single bytes, so more than 256 classes cannot be represented. */
    if (num_classes < 1 || num_classes > 256)
        return incv3_fail(err, "%s: num_classes %d is outside 1..256", path ? path : "(null)", num_classes);
    uint32_t dims[3];
    uint8_t *data;
    if (read_idx(path, 1, dims, &data, err))
        return -1;
    for (size_t i = 0; i < dims[0]; i++) {
        if (data[i] >= num_classes) {
            incv3_fail(err, "%s: label %d of item %zu is outside 0..%d", path, data[i], i, num_classes - 1);
            free(data);
            return -1;
        }
    }
    out->count = dims[0];
    out->num_classes = num_classes;
    out->data = data;
    return 0;
}

void incv3_idx_images_free(incv3_idx_images *im)
{
    if (!im)
        return;
    free(im->data);
    memset(im, 0, sizeof *im);
}

void incv3_idx_labels_free(incv3_idx_labels *lb)
{
    if (!lb)
        return;
    free(lb->data);
    memset(lb, 0, sizeof *lb);
}

int incv3_idx_check_pair(const incv3_idx_images *im, const char *im_path, const incv3_idx_labels *lb,
                         const char *lb_path, incv3_error *err)
{
    im_path = im_path ? im_path : "(images)";
    lb_path = lb_path ? lb_path : "(labels)";
    if (!im || !lb)
        return incv3_fail(err, "%s / %s: missing images or labels", im_path, lb_path);
    if (im->count != lb->count)
        return incv3_fail(err, "count mismatch: %s has %zu images but %s has %zu labels", im_path, im->count,
                          lb_path, lb->count);
    return 0;
}

/* Writes DIR/NAME (no doubled slash) into out; -1 when it does not fit. */
static int join(char *out, size_t len, const char *dir, const char *name, const char *ext)
{
    size_t dl = strlen(dir);
    const char *sep = dl > 0 && dir[dl - 1] == '/' ? "" : "/";
    int n = snprintf(out, len, "%s%s%s%s", dir, sep, name, ext);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* Plain first: a user who gunzipped the files may have left stale .gz copies beside them. */
static int find_one(const char *dir, const char *split, const char *stem, char *out, size_t len,
                    incv3_error *err)
{
    char name[128];
    int n = snprintf(name, sizeof name, "%s-%s", split, stem);
    if (n < 0 || (size_t)n >= sizeof name)
        return incv3_fail(err, "%s: split name \"%s\" is too long", dir, split);
    static const char *const exts[2] = {"", ".gz"};
    struct stat st;
    int dir_at = -1; /* a directory where the file should be: named in the error when no file is found */
    for (int i = 0; i < 2; i++) {
        if (join(out, len, dir, name, exts[i]))
            return incv3_fail(err, "%s: path of %s%s does not fit in %zu bytes", dir, name, exts[i], len);
        if (stat(out, &st) == 0) {
            if (!S_ISDIR(st.st_mode))
                return 0;
            if (dir_at < 0)
                dir_at = i;
        }
    }
    if (dir_at >= 0) {
        join(out, len, dir, name, exts[dir_at]);
        incv3_fail(err, "%s: is a directory, not an IDX file (MNIST %s %s)", out, split,
                   strstr(stem, "images") ? "images" : "labels");
        out[0] = '\0';
        return -1;
    }
    out[0] = '\0';
    return incv3_fail(err, "%s: no MNIST %s %s: looked for %s and %s.gz", dir, split,
                      strstr(stem, "images") ? "images" : "labels", name, name);
}

int incv3_mnist_find(const char *dir, const char *split, char *images_path, char *labels_path, size_t len,
                     incv3_error *err)
{
    if (!dir || !*dir)
        return incv3_fail(err, "MNIST: no data directory given");
    if (!split || !*split || strchr(split, '/'))
        return incv3_fail(err, "%s: bad MNIST split name \"%s\" (expected \"train\" or \"t10k\")", dir,
                          split ? split : "(null)");
    if (!images_path || !labels_path || len == 0)
        return incv3_fail(err, "%s: incv3_mnist_find: no output buffers", dir);
    struct stat st;
    if (stat(dir, &st) != 0)
        return incv3_fail(err, "%s: cannot open MNIST directory: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return incv3_fail(err, "%s: MNIST path is not a directory", dir);
    if (find_one(dir, split, "images-idx3-ubyte", images_path, len, err))
        return -1;
    if (find_one(dir, split, "labels-idx1-ubyte", labels_path, len, err)) {
        images_path[0] = '\0';
        return -1;
    }
    return 0;
}
