/* Safetensors reader and writer. The header is untrusted input: every size, offset and type in it is
 * checked before a byte of tensor data is touched, and each failure names the file and the tensor. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* pread, fsync, mkstemp, O_DIRECTORY, strdup */
#endif

#include "incv3/safetensors.h"
#include "util/atomic_file.h"
#include "util/oom.h"

#include "alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#include <zlib.h>

/* The data section is little-endian and handed out in place, so a big-endian host would silently see
 * garbage. Refuse at build time where the compiler says, and at run time everywhere else. */
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "incv3 safetensors I/O supports little-endian hosts only"
#endif

#define ST_META_KEY "__metadata__"
/* Real headers are a few hundred KB even for 1700-tensor checkpoints; anything this big is corrupt and
 * must not drive a huge allocation. */
#define ST_MAX_HEADER ((uint64_t)100 << 20)
/* Each tensor gets its own slot at this alignment so SIMD loads are aligned whatever offset the file
 * used (the format packs tensors back to back, so an I64 can follow an odd-length F32). */
#define ST_ALIGN ((size_t)64)
/* Keep single read/write calls under the 2 GiB limit some kernels impose. */
#define ST_IO_CHUNK ((size_t)1 << 30)

/* The checksum (incv3_st_writer_checksum): a CRC-32 (zlib's) of every byte of the file except the eight hex
 * digits of the checksum itself, i.e. the 8-byte header length, the whole JSON header (tensor names, dtypes,
 * shapes, offsets, every metadata entry, the padding) and the whole data section. To make "every byte except
 * the digits" well defined without a canonical JSON form, the writer puts the entry first: a checksummed
 * header starts with exactly ST_CK_PREFIX, then 8 lowercase hex digits and a quote. The reader verifies the
 * checksum whenever the metadata has a "checksum" key, and then requires that exact layout (anything else
 * is a damaged file), so the digits sit at the fixed offset 8 + strlen(ST_CK_PREFIX). CRC-32 rather than a
 * 64-bit hash: the threat is damage (torn writes, bad sectors, truncation, a bit flip), not an adversary;
 * CRC-32 catches every burst of up to 32 flipped bits and misses random damage with probability 2^-32, and
 * zlib's implementation (a dependency already) runs at memory speed. Files without the key (a PyTorch
 * state_dict, a golden file, an older incv3 file) load unchecked, as before. */
#define ST_CK_KEY "checksum"
#define ST_CK_PREFIX "{\"" ST_META_KEY "\":{\"" ST_CK_KEY "\":\"crc32:"
#define ST_CK_DIGITS 8

static int host_is_little_endian(void)
{
    const uint16_t probe = 1;
    unsigned char first;
    memcpy(&first, &probe, 1);
    return first == 1;
}

static size_t dtype_size(incv3_dtype d)
{
    return d == INCV3_I64 ? 8 : 4;
}

static const char *dtype_name(incv3_dtype d)
{
    return d == INCV3_I64 ? "I64" : d == INCV3_F32 ? "F32" : "?";
}

static int dtype_valid(incv3_dtype d)
{
    return d == INCV3_F32 || d == INCV3_I64;
}

static size_t round_up(size_t v, size_t a)
{
    return (v + a - 1) / a * a;
}

/* Writes "[2, 3, 4]" (truncated if needed) for error messages. */
static const char *format_shape(char *buf, size_t cap, const int64_t *shape, int ndim)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < ndim && used < cap; i++) {
        int n = snprintf(buf + used, cap - used, "%s%lld", i ? ", " : "[", (long long)shape[i]);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    if (used < cap)
        snprintf(buf + used, cap - used, "%s", ndim ? "]" : "[]");
    return buf;
}

/* Element and byte counts of a shape; -1 when they do not fit. The product of the non-zero dims must fit
 * even when another dim is zero, because callers derive strides from trailing dims and those would
 * overflow just the same. Bytes must also fit in int64 so offsets stay representable in JSON. */
static int shape_sizes(const int64_t *shape, int ndim, size_t elsize, size_t *numel_out, size_t *nbytes_out)
{
    size_t prod = 1;
    int has_zero = 0;
    for (int i = 0; i < ndim; i++) {
        uint64_t d = (uint64_t)shape[i];
        if (d == 0) {
            has_zero = 1;
            continue;
        }
        if (d > (uint64_t)(SIZE_MAX / prod))
            return -1;
        prod *= (size_t)d;
    }
    if (prod > SIZE_MAX / elsize || (uint64_t)(prod * elsize) > (uint64_t)INT64_MAX)
        return -1;
    *numel_out = has_zero ? 0 : prod;
    *nbytes_out = has_zero ? 0 : prod * elsize;
    return 0;
}

/* ======================================================================================== reading */

typedef struct st_entry {
    incv3_st_tensor t; /* first, so the public pointer and the entry share an address */
    uint64_t begin, end;
    size_t header_pos; /* tie-break so equal offsets (empty tensors) keep header order */
} st_entry;

struct incv3_st_file {
    char *path;
    json_t *root;       /* owns the tensor name strings and the metadata */
    const json_t *meta; /* NULL when the file has no "__metadata__" */
    st_entry *entries;  /* sorted by data offset */
    size_t count;
    const incv3_st_tensor **by_name; /* sorted by strcmp for binary search */
    void *data;
};

/* Returns 0, or -1 with errno set (errno 0 means the file ended early). */
static int pread_all(int fd, void *buf, size_t len, uint64_t off)
{
    unsigned char *p = buf;
    while (len > 0) {
        size_t chunk = len < ST_IO_CHUNK ? len : ST_IO_CHUNK;
        ssize_t r = pread(fd, p, chunk, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0) {
            errno = 0;
            return -1;
        }
        p += r;
        len -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

static const char *read_error_text(void)
{
    return errno ? strerror(errno) : "unexpected end of file (truncated, or changed while reading?)";
}

static int parse_dtype(const char *path, const char *name, const json_t *entry, incv3_dtype *out,
                       incv3_error *err)
{
    const json_t *j = json_object_get(entry, "dtype");
    if (!j)
        return incv3_fail(err, "%s: tensor %.200s: missing \"dtype\"", path, name);
    if (!json_is_string(j))
        return incv3_fail(err, "%s: tensor %.200s: \"dtype\" is not a string", path, name);
    const char *s = json_string_value(j);
    if (strcmp(s, "F32") == 0)
        *out = INCV3_F32;
    else if (strcmp(s, "I64") == 0)
        *out = INCV3_I64;
    else
        return incv3_fail(err, "%s: tensor %.200s: dtype %.40s is not supported (F32, I64)", path, name, s);
    return 0;
}

static int parse_shape(const char *path, const char *name, const json_t *entry, incv3_st_tensor *t,
                       size_t *nbytes, incv3_error *err)
{
    const json_t *j = json_object_get(entry, "shape");
    if (!j)
        return incv3_fail(err, "%s: tensor %.200s: missing \"shape\"", path, name);
    if (!json_is_array(j))
        return incv3_fail(err, "%s: tensor %.200s: \"shape\" is not an array", path, name);
    size_t nd = json_array_size(j);
    if (nd > INCV3_ST_MAX_DIMS)
        return incv3_fail(err, "%s: tensor %.200s: shape has %zu dims, more than the supported %d", path, name,
                          nd, INCV3_ST_MAX_DIMS);
    for (size_t i = 0; i < nd; i++) {
        const json_t *d = json_array_get(j, i);
        if (!json_is_integer(d))
            return incv3_fail(err, "%s: tensor %.200s: shape[%zu] is not an integer", path, name, i);
        json_int_t v = json_integer_value(d);
        if (v < 0)
            return incv3_fail(err, "%s: tensor %.200s: shape[%zu] is negative (%lld)", path, name, i,
                              (long long)v);
        t->shape[i] = (int64_t)v;
    }
    t->ndim = (int)nd;
    if (shape_sizes(t->shape, t->ndim, dtype_size(t->dtype), &t->numel, nbytes)) {
        char sb[160];
        return incv3_fail(err, "%s: tensor %.200s: element count of shape %s overflows", path, name,
                          format_shape(sb, sizeof sb, t->shape, t->ndim));
    }
    return 0;
}

static int parse_offsets(const char *path, const char *name, const json_t *entry, size_t nbytes,
                         uint64_t data_size, st_entry *e, incv3_error *err)
{
    const json_t *j = json_object_get(entry, "data_offsets");
    if (!j)
        return incv3_fail(err, "%s: tensor %.200s: missing \"data_offsets\"", path, name);
    if (!json_is_array(j) || json_array_size(j) != 2)
        return incv3_fail(err, "%s: tensor %.200s: \"data_offsets\" must be an array [begin, end]", path, name);
    const json_t *jb = json_array_get(j, 0), *je = json_array_get(j, 1);
    if (!json_is_integer(jb) || !json_is_integer(je) || json_integer_value(jb) < 0 ||
        json_integer_value(je) < 0)
        return incv3_fail(err, "%s: tensor %.200s: \"data_offsets\" must be two non-negative integers", path,
                          name);
    uint64_t b = (uint64_t)json_integer_value(jb), en = (uint64_t)json_integer_value(je);
    if (b > en)
        return incv3_fail(err, "%s: tensor %.200s: data_offsets begin %llu is after end %llu", path, name,
                          (unsigned long long)b, (unsigned long long)en);
    if (en - b != (uint64_t)nbytes) {
        char sb[160];
        return incv3_fail(err,
                          "%s: tensor %.200s: data_offsets [%llu, %llu] span %llu bytes but dtype %s shape %s "
                          "needs %zu bytes",
                          path, name, (unsigned long long)b, (unsigned long long)en,
                          (unsigned long long)(en - b), dtype_name(e->t.dtype),
                          format_shape(sb, sizeof sb, e->t.shape, e->t.ndim), nbytes);
    }
    if (en > data_size)
        return incv3_fail(err,
                          "%s: tensor %.200s: data_offsets end %llu is beyond the data section (%llu bytes; "
                          "truncated file?)",
                          path, name, (unsigned long long)en, (unsigned long long)data_size);
    e->begin = b;
    e->end = en;
    return 0;
}

static int parse_entry(const char *path, const char *name, const json_t *val, uint64_t data_size,
                       st_entry *e, incv3_error *err)
{
    if (name[0] == '\0')
        return incv3_fail(err, "%s: a tensor has an empty name", path);
    if (!json_is_object(val))
        return incv3_fail(err, "%s: tensor %.200s: entry is not a JSON object", path, name);
    e->t.name = name;
    size_t nbytes = 0;
    if (parse_dtype(path, name, val, &e->t.dtype, err) || parse_shape(path, name, val, &e->t, &nbytes, err) ||
        parse_offsets(path, name, val, nbytes, data_size, e, err))
        return -1;
    return 0;
}

static int check_metadata(const char *path, const json_t *meta, incv3_error *err)
{
    if (!json_is_object(meta))
        return incv3_fail(err, "%s: \"" ST_META_KEY "\" is not a JSON object", path);
    const char *k;
    const json_t *v;
    /* json_object_foreach wants a mutable object; iterating does not modify it. */
    json_object_foreach ((json_t *)meta, k, v) {
        if (!json_is_string(v))
            return incv3_fail(err, "%s: \"" ST_META_KEY "\" value for key %.200s is not a string", path, k);
    }
    return 0;
}

static int cmp_entry_offset(const void *a, const void *b)
{
    const st_entry *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return x->header_pos < y->header_pos ? -1 : x->header_pos > y->header_pos;
}

static int cmp_tensor_name(const void *a, const void *b)
{
    const incv3_st_tensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

static int cmp_key_tensor_name(const void *key, const void *elem)
{
    const incv3_st_tensor *const *t = elem;
    return strcmp(key, (*t)->name);
}

/* Empty tensors own no bytes, so they may sit anywhere; everything else must not share a byte. */
static int check_overlaps(const incv3_st_file *f, incv3_error *err)
{
    const st_entry *prev = NULL;
    for (size_t i = 0; i < f->count; i++) {
        const st_entry *e = &f->entries[i];
        if (e->begin == e->end)
            continue;
        if (prev && e->begin < prev->end)
            return incv3_fail(err, "%s: tensors %.200s [%llu, %llu) and %.200s [%llu, %llu) overlap in the data "
                                   "section",
                              f->path, prev->t.name, (unsigned long long)prev->begin,
                              (unsigned long long)prev->end, e->t.name, (unsigned long long)e->begin,
                              (unsigned long long)e->end);
        prev = e;
    }
    return 0;
}

/* Copies each tensor into its own aligned slot of one buffer. */
static int load_data(incv3_st_file *f, int fd, uint64_t data_start, incv3_error *err)
{
    size_t total = 0;
    for (size_t i = 0; i < f->count; i++) {
        size_t nb = (size_t)(f->entries[i].end - f->entries[i].begin);
        size_t slot = round_up(nb, ST_ALIGN);
        if (slot < nb || total > SIZE_MAX - slot)
            return incv3_fail(err, "%s: data section too large for this host", f->path);
        total += slot;
    }
    /* Never ask for 0 bytes: empty tensors still get a valid, aligned pointer. */
    void *buf = incv3_mem_try(total ? total : ST_ALIGN, ST_ALIGN);
    if (!buf)
        return incv3_fail_oom(err, total, f->path);
    f->data = buf;
    size_t pos = 0;
    for (size_t i = 0; i < f->count; i++) {
        st_entry *e = &f->entries[i];
        size_t nb = (size_t)(e->end - e->begin);
        e->t.data = (unsigned char *)buf + pos;
        if (nb && pread_all(fd, (unsigned char *)buf + pos, nb, data_start + e->begin))
            return incv3_fail(err, "%s: reading tensor %.200s failed: %s", f->path, e->t.name, read_error_text());
        pos += round_up(nb, ST_ALIGN);
    }
    return 0;
}

/* CRC of [off, off + len) of the file, read in pieces (gaps between tensors: other writers may leave some). */
static int crc_file_range(int fd, uint64_t off, uint64_t len, uLong *crc)
{
    unsigned char buf[1 << 16];
    while (len > 0) {
        size_t n = len < sizeof buf ? (size_t)len : sizeof buf;
        if (pread_all(fd, buf, n, off))
            return -1;
        *crc = crc32_z(*crc, buf, n);
        off += n;
        len -= n;
    }
    return 0;
}

/* Verifies the "checksum" metadata entry (see ST_CK_PREFIX) against the bytes read: the length prefix and
 * header as read, the tensors from their slots in file order, any gap from the file. */
static int verify_checksum(const incv3_st_file *f, int fd, const unsigned char *lenbuf, const char *hbuf,
                           uint64_t hlen, uint64_t data_size, incv3_error *err)
{
    const char *v = incv3_st_metadata(f, ST_CK_KEY);
    if (!v)
        return 0;
    const size_t plen = strlen(ST_CK_PREFIX);
    unsigned long want = 0;
    int ok = hlen >= plen + ST_CK_DIGITS + 1 && memcmp(hbuf, ST_CK_PREFIX, plen) == 0 &&
             hbuf[plen + ST_CK_DIGITS] == '"' && strlen(v) == 6 + ST_CK_DIGITS &&
             memcmp(v, "crc32:", 6) == 0 && memcmp(v, hbuf + plen - 6, 6 + ST_CK_DIGITS) == 0;
    for (int i = 0; ok && i < ST_CK_DIGITS; i++) {
        const char c = v[6 + i];
        ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
        want = want << 4 | (unsigned long)(c <= '9' ? c - '0' : c - 'a' + 10);
    }
    if (!ok)
        return incv3_fail(err, "%s: the checksum entry \"%.40s\" is malformed or out of place: the file is damaged",
                          f->path, v);
    uLong crc = crc32_z(0L, lenbuf, 8);
    crc = crc32_z(crc, (const unsigned char *)hbuf, plen);
    crc = crc32_z(crc, (const unsigned char *)hbuf + plen + ST_CK_DIGITS, (size_t)hlen - plen - ST_CK_DIGITS);
    uint64_t pos = 0; /* within the data section */
    for (size_t i = 0; i < f->count; i++) {
        const st_entry *e = &f->entries[i];
        if (e->begin == e->end)
            continue;
        if (e->begin > pos && crc_file_range(fd, 8 + hlen + pos, e->begin - pos, &crc))
            return incv3_fail(err, "%s: reading the data section for its checksum failed: %s", f->path,
                              read_error_text());
        crc = crc32_z(crc, e->t.data, (size_t)(e->end - e->begin));
        pos = e->end;
    }
    if (pos < data_size && crc_file_range(fd, 8 + hlen + pos, data_size - pos, &crc))
        return incv3_fail(err, "%s: reading the data section for its checksum failed: %s", f->path,
                          read_error_text());
    if ((crc & 0xffffffffUL) != want)
        return incv3_fail(err, "%s: checksum mismatch: the file is damaged (crc32 %08lx, expected %08lx)", f->path,
                          (unsigned long)(crc & 0xffffffffUL), want);
    return 0;
}

static int parse_header(incv3_st_file *f, uint64_t data_size, incv3_error *err)
{
    size_t n = json_object_size(f->root);
    f->entries = calloc(n ? n : 1, sizeof *f->entries);
    f->by_name = calloc(n ? n : 1, sizeof *f->by_name);
    if (!f->entries || !f->by_name)
        return incv3_fail(err, "%s: out of memory for %zu header entries", f->path, n);
    const char *key;
    json_t *val;
    size_t pos = 0;
    json_object_foreach (f->root, key, val) {
        if (strcmp(key, ST_META_KEY) == 0) {
            if (check_metadata(f->path, val, err))
                return -1;
            f->meta = val;
            continue;
        }
        st_entry *e = &f->entries[f->count];
        e->header_pos = pos++;
        if (parse_entry(f->path, key, val, data_size, e, err))
            return -1;
        f->count++;
    }
    qsort(f->entries, f->count, sizeof *f->entries, cmp_entry_offset);
    for (size_t i = 0; i < f->count; i++)
        f->by_name[i] = &f->entries[i].t;
    qsort(f->by_name, f->count, sizeof *f->by_name, cmp_tensor_name);
    return check_overlaps(f, err);
}

incv3_st_file *incv3_st_open(const char *path, incv3_error *err)
{
    if (!path) {
        incv3_fail(err, "safetensors: no file path given");
        return NULL;
    }
    if (!host_is_little_endian()) {
        incv3_fail(err, "%s: safetensors files can only be read on little-endian hosts", path);
        return NULL;
    }
    incv3_st_file *f = calloc(1, sizeof *f);
    char *hbuf = NULL;
    int fd = -1;
    if (!f || !(f->path = strdup(path))) {
        incv3_fail(err, "%s: out of memory", path);
        goto fail;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        incv3_fail(err, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(fd, &st)) {
        incv3_fail(err, "%s: cannot stat: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        incv3_fail(err, "%s: not a regular file", path);
        goto fail;
    }
    uint64_t fsize = (uint64_t)st.st_size;
    if (fsize < 8) {
        incv3_fail(err, "%s: file is %llu bytes, too short for the 8-byte header length (not a safetensors file?)",
                   path, (unsigned long long)fsize);
        goto fail;
    }
    unsigned char lenbuf[8];
    if (pread_all(fd, lenbuf, sizeof lenbuf, 0)) {
        incv3_fail(err, "%s: reading the header length failed: %s", path, read_error_text());
        goto fail;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | lenbuf[i];
    if (hlen == 0) {
        incv3_fail(err, "%s: header length is 0 (a safetensors file needs a JSON header)", path);
        goto fail;
    }
    if (hlen > ST_MAX_HEADER) {
        incv3_fail(err, "%s: header length %llu is absurd (limit 100 MiB); not a safetensors file?", path,
                   (unsigned long long)hlen);
        goto fail;
    }
    if (hlen > fsize - 8) {
        incv3_fail(err, "%s: header length %llu exceeds the %llu bytes that follow it (truncated file?)", path,
                   (unsigned long long)hlen, (unsigned long long)(fsize - 8));
        goto fail;
    }
    hbuf = malloc((size_t)hlen);
    if (!hbuf) {
        incv3_fail(err, "%s: out of memory for a %llu-byte header", path, (unsigned long long)hlen);
        goto fail;
    }
    if (pread_all(fd, hbuf, (size_t)hlen, 8)) {
        incv3_fail(err, "%s: reading the header failed: %s", path, read_error_text());
        goto fail;
    }
    json_error_t jerr;
    f->root = json_loadb(hbuf, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!f->root) {
        incv3_fail(err, "%s: header is not valid JSON: %s (line %d, column %d)", path, jerr.text, jerr.line,
                   jerr.column);
        goto fail;
    }
    if (!json_is_object(f->root)) {
        incv3_fail(err, "%s: header is not a JSON object", path);
        goto fail;
    }
    /* The checksum is checked after the structural validation (a truncated file gets that more specific
     * message) and before the caller sees a byte. */
    if (parse_header(f, fsize - 8 - hlen, err) || load_data(f, fd, 8 + hlen, err) ||
        verify_checksum(f, fd, lenbuf, hbuf, hlen, fsize - 8 - hlen, err))
        goto fail;
    free(hbuf);
    close(fd);
    return f;

fail:
    free(hbuf);
    if (fd >= 0)
        close(fd);
    incv3_st_close(f);
    return NULL;
}

void incv3_st_close(incv3_st_file *f)
{
    if (!f)
        return;
    free(f->data);
    free(f->by_name);
    free(f->entries);
    json_decref(f->root);
    free(f->path);
    free(f);
}

size_t incv3_st_count(const incv3_st_file *f)
{
    return f ? f->count : 0;
}

const incv3_st_tensor *incv3_st_at(const incv3_st_file *f, size_t i)
{
    return f && i < f->count ? &f->entries[i].t : NULL;
}

const incv3_st_tensor *incv3_st_find(const incv3_st_file *f, const char *name)
{
    if (!f || !name || f->count == 0)
        return NULL;
    const incv3_st_tensor *const *hit = bsearch(name, f->by_name, f->count, sizeof *f->by_name, cmp_key_tensor_name);
    return hit ? *hit : NULL;
}

const incv3_st_tensor *incv3_st_require(const incv3_st_file *f, const char *name, incv3_dtype dtype,
                                        size_t expect_numel, incv3_error *err)
{
    if (!f || !name) {
        incv3_fail(err, "safetensors: require called without a file or tensor name");
        return NULL;
    }
    const incv3_st_tensor *t = incv3_st_find(f, name);
    if (!t) {
        incv3_fail(err, "%s: tensor %.200s is missing", f->path, name);
        return NULL;
    }
    if (t->dtype != dtype) {
        incv3_fail(err, "%s: tensor %.200s has dtype %s, expected %s", f->path, name, dtype_name(t->dtype),
                   dtype_name(dtype));
        return NULL;
    }
    if (expect_numel && t->numel != expect_numel) {
        char sb[160];
        incv3_fail(err, "%s: tensor %.200s has %zu elements (shape %s), expected %zu", f->path, name, t->numel,
                   format_shape(sb, sizeof sb, t->shape, t->ndim), expect_numel);
        return NULL;
    }
    return t;
}

const char *incv3_st_metadata(const incv3_st_file *f, const char *key)
{
    if (!f || !f->meta || !key)
        return NULL;
    return json_string_value(json_object_get(f->meta, key));
}

const char *incv3_st_path(const incv3_st_file *f)
{
    return f ? f->path : NULL;
}

/* ======================================================================================== writing */

typedef struct st_wtensor {
    char *name;
    incv3_dtype dtype;
    int ndim;
    int64_t shape[INCV3_ST_MAX_DIMS];
    size_t nbytes;
    const void *data;
} st_wtensor;

typedef struct st_wmeta {
    char *key;
    char *value;
} st_wmeta;

struct incv3_st_writer {
    st_wtensor *t;
    size_t nt, capt;
    st_wmeta *m;
    size_t nm, capm;
    int checksum;
};

/* Returns the array with room for one more element (cap updated), or NULL leaving it unchanged. */
static void *grow(void *arr, size_t n, size_t *cap, size_t elsize)
{
    if (n < *cap)
        return arr;
    size_t nc = *cap ? *cap * 2 : 16;
    if (nc > SIZE_MAX / elsize)
        return NULL;
    void *p = realloc(arr, nc * elsize);
    if (p)
        *cap = nc;
    return p;
}

/* jansson refuses invalid UTF-8 at dump time; catching it here names the offending string instead. */
static int is_valid_utf8(const char *s)
{
    json_t *j = json_string(s);
    json_decref(j);
    return j != NULL;
}

incv3_st_writer *incv3_st_writer_new(void)
{
    return calloc(1, sizeof(incv3_st_writer));
}

void incv3_st_writer_free(incv3_st_writer *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->nt; i++)
        free(w->t[i].name);
    for (size_t i = 0; i < w->nm; i++) {
        free(w->m[i].key);
        free(w->m[i].value);
    }
    free(w->t);
    free(w->m);
    free(w);
}

int incv3_st_writer_add(incv3_st_writer *w, const char *name, incv3_dtype dtype, int ndim, const int64_t *shape,
                        const void *data, incv3_error *err)
{
    if (!w || !name)
        return incv3_fail(err, "safetensors writer: missing writer or tensor name");
    if (name[0] == '\0')
        return incv3_fail(err, "safetensors writer: tensor name is empty");
    if (strcmp(name, ST_META_KEY) == 0)
        return incv3_fail(err, "safetensors writer: tensor name " ST_META_KEY " is reserved for metadata");
    if (!is_valid_utf8(name))
        return incv3_fail(err, "safetensors writer: tensor name %.200s is not valid UTF-8", name);
    if (!dtype_valid(dtype))
        return incv3_fail(err, "safetensors writer: tensor %.200s: unknown dtype %d", name, (int)dtype);
    if (ndim < 0 || ndim > INCV3_ST_MAX_DIMS)
        return incv3_fail(err, "safetensors writer: tensor %.200s: %d dims, must be 0..%d", name, ndim,
                          INCV3_ST_MAX_DIMS);
    if (ndim > 0 && !shape)
        return incv3_fail(err, "safetensors writer: tensor %.200s: no shape given for %d dims", name, ndim);
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0)
            return incv3_fail(err, "safetensors writer: tensor %.200s: shape[%d] is negative (%lld)", name, i,
                              (long long)shape[i]);
    size_t numel, nbytes;
    if (shape_sizes(shape, ndim, dtype_size(dtype), &numel, &nbytes)) {
        char sb[160];
        return incv3_fail(err, "safetensors writer: tensor %.200s: element count of shape %s overflows", name,
                          format_shape(sb, sizeof sb, shape, ndim));
    }
    if (nbytes && !data)
        return incv3_fail(err, "safetensors writer: tensor %.200s: no data for %zu elements", name, numel);
    /* A linear scan keeps the writer simple; even 1700 tensors cost only ~1.5M short compares. */
    for (size_t i = 0; i < w->nt; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return incv3_fail(err, "safetensors writer: duplicate tensor name %.200s", name);
    st_wtensor *arr = grow(w->t, w->nt, &w->capt, sizeof *w->t);
    if (!arr)
        return incv3_fail(err, "safetensors writer: out of memory adding tensor %.200s", name);
    w->t = arr;
    st_wtensor *t = &w->t[w->nt];
    memset(t, 0, sizeof *t);
    if (!(t->name = strdup(name)))
        return incv3_fail(err, "safetensors writer: out of memory adding tensor %.200s", name);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    t->nbytes = nbytes;
    t->data = data;
    w->nt++;
    return 0;
}

void incv3_st_writer_checksum(incv3_st_writer *w)
{
    if (w)
        w->checksum = 1;
}

int incv3_st_writer_meta(incv3_st_writer *w, const char *key, const char *value, incv3_error *err)
{
    if (!w || !key || !value)
        return incv3_fail(err, "safetensors writer: missing writer, metadata key or value");
    if (!is_valid_utf8(key) || !is_valid_utf8(value))
        return incv3_fail(err, "safetensors writer: metadata %.200s: key or value is not valid UTF-8", key);
    for (size_t i = 0; i < w->nm; i++)
        if (strcmp(w->m[i].key, key) == 0)
            return incv3_fail(err, "safetensors writer: duplicate metadata key %.200s", key);
    st_wmeta *arr = grow(w->m, w->nm, &w->capm, sizeof *w->m);
    if (!arr)
        return incv3_fail(err, "safetensors writer: out of memory adding metadata %.200s", key);
    w->m = arr;
    st_wmeta *m = &w->m[w->nm];
    m->key = strdup(key);
    m->value = strdup(value);
    if (!m->key || !m->value) {
        free(m->key);
        free(m->value);
        return incv3_fail(err, "safetensors writer: out of memory adding metadata %.200s", key);
    }
    w->nm++;
    return 0;
}

/* Builds "8-byte length + JSON padded with spaces to a multiple of 8" so the data section starts aligned. */
static unsigned char *build_header(const incv3_st_writer *w, const char *path, size_t *out_len, incv3_error *err)
{
    json_t *root = json_object();
    char *text = NULL;
    unsigned char *out = NULL;
    if (!root)
        goto oom;
    if (w->nm || w->checksum) {
        json_t *meta = json_object();
        if (json_object_set_new(root, ST_META_KEY, meta))
            goto oom;
        /* First, with placeholder digits: incv3_st_write fills them in (see ST_CK_PREFIX). */
        if (w->checksum && json_object_set_new(meta, ST_CK_KEY, json_string("crc32:00000000")))
            goto oom;
        for (size_t i = 0; i < w->nm; i++) {
            if (w->checksum && strcmp(w->m[i].key, ST_CK_KEY) == 0) {
                incv3_fail(err, "%s: metadata key \"" ST_CK_KEY "\" is reserved for the file's checksum", path);
                goto fail;
            }
            if (json_object_set_new(meta, w->m[i].key, json_string(w->m[i].value)))
                goto oom;
        }
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->nt; i++) {
        const st_wtensor *t = &w->t[i];
        if ((uint64_t)t->nbytes > (uint64_t)INT64_MAX - off) {
            incv3_fail(err, "%s: total tensor data exceeds the format's 2^63-byte limit", path);
            goto fail;
        }
        /* Each new value is attached at once so jansson owns it and a failure leaks nothing. */
        json_t *e = json_object(), *shape, *offs;
        if (json_object_set_new(root, t->name, e) || json_object_set_new(e, "dtype", json_string(dtype_name(t->dtype))))
            goto oom;
        if (json_object_set_new(e, "shape", shape = json_array()) ||
            json_object_set_new(e, "data_offsets", offs = json_array()))
            goto oom;
        for (int d = 0; d < t->ndim; d++)
            if (json_array_append_new(shape, json_integer((json_int_t)t->shape[d])))
                goto oom;
        if (json_array_append_new(offs, json_integer((json_int_t)off)) ||
            json_array_append_new(offs, json_integer((json_int_t)(off + t->nbytes))))
            goto oom;
        off += t->nbytes;
    }
    /* JSON_PRESERVE_ORDER keeps tensors in the order added on jansson versions where it is not the default. */
    text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!text)
        goto oom;
    size_t tlen = strlen(text);
    if (w->checksum && strncmp(text, ST_CK_PREFIX, strlen(ST_CK_PREFIX)) != 0) {
        incv3_fail(err, "%s: internal error: the checksum entry is not first in the header", path);
        goto fail;
    }
    size_t hlen = round_up(tlen, 8);
    if ((uint64_t)hlen > ST_MAX_HEADER) {
        incv3_fail(err, "%s: header would be %zu bytes, over the 100 MiB limit readers accept", path, hlen);
        goto fail;
    }
    out = malloc(8 + hlen);
    if (!out)
        goto oom;
    for (int i = 0; i < 8; i++)
        out[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    memcpy(out + 8, text, tlen);
    memset(out + 8 + tlen, ' ', hlen - tlen);
    *out_len = 8 + hlen;
    free(text);
    json_decref(root);
    return out;

oom:
    incv3_fail(err, "%s: out of memory building the header", path);
fail:
    free(text);
    json_decref(root);
    return NULL;
}

typedef struct st_write_ctx {
    const incv3_st_writer *w;
    const unsigned char *hdr;
    size_t hdr_len;
} st_write_ctx;

static int write_body(FILE *f, void *vctx, incv3_error *err)
{
    const st_write_ctx *c = vctx;
    if (fwrite(c->hdr, 1, c->hdr_len, f) != c->hdr_len)
        return incv3_fail(err, "writing the header failed: %s", strerror(errno));
    for (size_t i = 0; i < c->w->nt; i++)
        if (c->w->t[i].nbytes && fwrite(c->w->t[i].data, 1, c->w->t[i].nbytes, f) != c->w->t[i].nbytes)
            return incv3_fail(err, "writing tensor %.200s failed: %s", c->w->t[i].name, strerror(errno));
    return 0;
}

int incv3_st_write(const incv3_st_writer *w, const char *path, incv3_error *err)
{
    if (!w || !path || !path[0])
        return incv3_fail(err, "safetensors writer: missing writer or destination path");
    if (!host_is_little_endian())
        return incv3_fail(err, "%s: safetensors files can only be written on little-endian hosts", path);
    size_t hdr_len = 0;
    unsigned char *hdr = build_header(w, path, &hdr_len, err);
    if (!hdr)
        return -1;
    if (w->checksum) {
        /* Every byte but the digits, in file order (see ST_CK_PREFIX). */
        const size_t at = 8 + strlen(ST_CK_PREFIX);
        uLong crc = crc32_z(0L, hdr, at);
        crc = crc32_z(crc, hdr + at + ST_CK_DIGITS, hdr_len - at - ST_CK_DIGITS);
        for (size_t i = 0; i < w->nt; i++)
            if (w->t[i].nbytes)
                crc = crc32_z(crc, w->t[i].data, w->t[i].nbytes);
        char digits[ST_CK_DIGITS + 1];
        snprintf(digits, sizeof digits, "%08lx", (unsigned long)(crc & 0xffffffffUL));
        memcpy(hdr + at, digits, ST_CK_DIGITS);
    }
    st_write_ctx ctx = {w, hdr, hdr_len};
    int rc = incv3_write_file_atomic(path, write_body, &ctx, err);
    free(hdr);
    return rc;
}
