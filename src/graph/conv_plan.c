/* The convolution plan: its table, its files and the timing of candidates (see conv_plan.h). */
#include "graph/conv_plan.h"

#include <errno.h>
#include <jansson.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "incv3/tensor.h"
#include "util/atomic_file.h"

void conv_plan_clear(incv3_conv_plan *p)
{
    free(p->entries);
    p->entries = NULL;
    p->n = p->cap = 0;
}

const char *conv_plan_get(const incv3_conv_plan *p, const char *key)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->entries[i].key, key) == 0)
            return p->entries[i].kernel;
    return NULL;
}

int conv_plan_put(incv3_conv_plan *p, const char *key, const char *kernel)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->entries[i].key, key) == 0) {
            if (p->entries[i].kernel != kernel) /* snprintf onto its own source is undefined */
                snprintf(p->entries[i].kernel, sizeof p->entries[i].kernel, "%s", kernel);
            return 0;
        }
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 64;
        conv_plan_entry *e = realloc(p->entries, cap * sizeof *e);
        if (!e)
            return -1;
        p->entries = e;
        p->cap = cap;
    }
    snprintf(p->entries[p->n].key, sizeof p->entries[p->n].key, "%s", key);
    snprintf(p->entries[p->n].kernel, sizeof p->entries[p->n].kernel, "%s", kernel);
    p->n++;
    return 0;
}

static const char *pass_name(incv3_conv_pass pass)
{
    return pass == INCV3_CONV_FWD ? "fwd" : pass == INCV3_CONV_BWD_DATA ? "bwd-data" : "bwd-weights";
}

/* FNV-1a over the names of the kernels a choice is made among: a build that adds or removes a candidate
 * (a new pass of an algorithm) gets new keys, so the cache's older choices, made without it, are not
 * reused. Taken at batch 1, so that the key stays that of the batch-free shape (some kernels serve a
 * shape only up to a batch size; a smaller last batch keeps its layers' choices). */
static unsigned candidates_hash(const char *family, incv3_conv_pass pass, incv3_isa isa,
                                const incv3_conv_shape *shape)
{
    incv3_conv_shape one = *shape;
    one.n = 1;
    const incv3_conv_shape *s = &one;
    size_t n;
    const incv3_conv_kernel *t = incv3_conv_kernel_table(&n);
    unsigned h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        if (t[i].pass != pass || t[i].isa != isa || (t[i].supports && !t[i].supports(s)) ||
            !conv_plan_in_family(&t[i], family))
            continue;
        for (const char *c = t[i].name; *c; c++)
            h = (h ^ (unsigned char)*c) * 16777619u;
        h = (h ^ ' ') * 16777619u;
    }
    return h;
}

void conv_plan_key(char *buf, size_t len, const char *family, incv3_conv_pass pass, incv3_isa isa,
                   const incv3_conv_shape *s)
{
    snprintf(buf, len, "%s %s %s c%d h%d w%d k%d %dx%d s%dx%d p%d,%d,%d,%d t%d k%08x", family, pass_name(pass),
             incv3_isa_name(isa), s->c, s->h, s->w, s->k, s->kh, s->kw, s->stride_h, s->stride_w, s->pad_top,
             s->pad_left, s->pad_bottom, s->pad_right, omp_get_max_threads(), candidates_hash(family, pass, isa, s));
}

int conv_plan_is_family(const char *conv_algo)
{
    return strcmp(conv_algo, "auto") == 0 || strcmp(conv_algo, "winograd") == 0;
}

int conv_plan_in_family(const incv3_conv_kernel *k, const char *family)
{
    if (strcmp(family, "winograd") == 0)
        return strncmp(k->algo, "winograd", 8) == 0;
    return 1;
}

/* ---- files ---- */

static void cpu_model(char *buf, size_t len)
{
    incv3_cpu_model_name(buf, len);
}

static int write_json(FILE *f, void *ctx, incv3_error *err)
{
    (void)err;
    char *text = json_dumps(ctx, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (!text)
        return -1;
    int bad = fputs(text, f) < 0 || fputc('\n', f) == EOF;
    free(text);
    return bad ? -1 : 0;
}

static json_t *plan_object(const incv3_conv_plan *p)
{
    json_t *o = json_object();
    for (size_t i = 0; o && i < p->n; i++)
        json_object_set_new(o, p->entries[i].key, json_string(p->entries[i].kernel));
    return o;
}

/* Merges {key: kernel name} of o into p; names unknown to this build are an error naming `where`. */
static int merge_object(incv3_conv_plan *p, json_t *o, const char *where, incv3_error *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        if (!json_is_string(v) || strlen(key) >= sizeof p->entries[0].key)
            return incv3_fail(err, "%s: plan entry '%s' is not a kernel name", where, key);
        const incv3_conv_kernel *k = incv3_conv_kernel_by_name(json_string_value(v));
        if (!k)
            return incv3_fail(err, "%s: plan entry '%s' names kernel %s, which this build does not have", where,
                              key, json_string_value(v));
        if (conv_plan_put(p, key, k->name))
            return incv3_fail(err, "%s: out of memory", where);
    }
    return 0;
}

int conv_plan_write_file(const incv3_conv_plan *p, const char *path, const char *conv_algo, incv3_error *err)
{
    char cpu[256];
    cpu_model(cpu, sizeof cpu);
    json_t *o = json_pack("{s:s, s:s, s:o}", "cpu", cpu, "conv_algo", conv_algo, "plan", plan_object(p));
    if (!o)
        return incv3_fail(err, "%s: out of memory", path);
    int rc = incv3_write_file_atomic(path, write_json, o, err);
    json_decref(o);
    return rc;
}

int conv_plan_read_file(incv3_conv_plan *p, const char *path, incv3_error *err)
{
    json_error_t je;
    json_t *o = json_load_file(path, 0, &je);
    if (!o)
        return incv3_fail(err, "%s: not a readable convolution plan (%s)", path, je.text);
    json_t *plan = json_object_get(o, "plan");
    int rc = json_is_object(plan) ? merge_object(p, plan, path, err)
                                  : incv3_fail(err, "%s: no \"plan\" object in the convolution plan", path);
    json_decref(o);
    return rc;
}

/* The machine cache's file, $XDG_CACHE_HOME/incv3/conv-plan.json (else ~/.cache/incv3/...); with create_dir
 * its directories are made. Returns 0, or -1 with the reason in err (err may be NULL). */
static int cache_path(char *buf, size_t len, int create_dir, incv3_error *err)
{
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char dir[2048];
    if (xdg && xdg[0] == '/')
        snprintf(dir, sizeof dir, "%s", xdg);
    else if (home && home[0])
        snprintf(dir, sizeof dir, "%s/.cache", home);
    else
        return incv3_fail(err, "no cache directory (set XDG_CACHE_HOME or HOME)");
    if (create_dir) {
        if (mkdir(dir, 0755) && errno != EEXIST)
            return incv3_fail(err, "cannot create the cache directory %s: %s", dir, strerror(errno));
        strncat(dir, "/incv3", sizeof dir - strlen(dir) - 1);
        if (mkdir(dir, 0755) && errno != EEXIST)
            return incv3_fail(err, "cannot create the cache directory %s: %s", dir, strerror(errno));
    } else {
        strncat(dir, "/incv3", sizeof dir - strlen(dir) - 1);
    }
    if (snprintf(buf, len, "%s/conv-plan.json", dir) >= (int)len)
        return incv3_fail(err, "cache path %s/conv-plan.json is too long", dir);
    return 0;
}

void conv_plan_cache_read(incv3_conv_plan *p)
{
    char path[2200], cpu[256];
    if (cache_path(path, sizeof path, 0, NULL))
        return;
    cpu_model(cpu, sizeof cpu);
    json_error_t je;
    json_t *o = json_load_file(path, 0, &je);
    /* A damaged or foreign cache only costs the timing again; it never stops a run. A missing one is the
     * normal first run; a damaged one is said, since the next cache write replaces it. */
    if (!o && access(path, F_OK) == 0)
        fprintf(stderr, "incv3: ignoring the damaged convolution-plan cache %s (%s); it is rebuilt\n", path,
                je.text);
    else if (o && !json_is_object(json_object_get(o, "cpus")))
        fprintf(stderr, "incv3: ignoring the convolution-plan cache %s: no \"cpus\" object; it is rebuilt\n",
                path);
    json_t *mine = o ? json_object_get(json_object_get(o, "cpus"), cpu) : NULL;
    if (json_is_object(mine)) {
        /* Entry by entry: one naming a kernel this build lacks (an older build's, renamed or removed since)
         * is skipped, and dropped at the next write (conv_plan_cache_add); the others still count. */
        const char *key;
        json_t *v;
        size_t stale = 0;
        json_object_foreach(mine, key, v) {
            const incv3_conv_kernel *k = json_is_string(v) ? incv3_conv_kernel_by_name(json_string_value(v)) : NULL;
            if (k && strlen(key) < sizeof p->entries[0].key)
                conv_plan_put(p, key, k->name);
            else
                stale++;
        }
        if (stale)
            fprintf(stderr, "incv3: the convolution-plan cache %s has %zu entr%s naming kernels this build does not "
                            "have (from another build); those layers are timed again\n",
                    path, stale, stale == 1 ? "y" : "ies");
    }
    json_decref(o);
}

int conv_plan_cache_add(const char *key, const char *kernel, incv3_error *err)
{
    char path[2200], cpu[256];
    if (cache_path(path, sizeof path, 1, err))
        return -1;
    cpu_model(cpu, sizeof cpu);
    json_t *o = json_load_file(path, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        o = json_object();
    }
    json_t *cpus = json_object_get(o, "cpus");
    if (!json_is_object(cpus)) {
        cpus = json_object();
        json_object_set_new(o, "cpus", cpus);
    }
    json_t *mine = json_object_get(cpus, cpu);
    if (!json_is_object(mine)) {
        mine = json_object();
        json_object_set_new(cpus, cpu, mine);
    }
    /* drop this CPU's entries that name kernels this build lacks (see conv_plan_cache_read) */
    const char *old_key;
    json_t *v, *tmp;
    json_object_foreach_safe(mine, tmp, old_key, v) {
        if (!json_is_string(v) || !incv3_conv_kernel_by_name(json_string_value(v)))
            json_object_del(mine, old_key);
    }
    json_object_set_new(mine, key, json_string(kernel));
    int rc = incv3_write_file_atomic(path, write_json, o, err);
    json_decref(o);
    return rc;
}

/* ---- timing ---- */

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Deterministic values in [0, 1) (like post-ReLU activations) scaled by `scale`. */
static void fill(float *p, size_t count, uint64_t seed, float scale)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < count; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        p[i] = scale * (float)(x >> 40) * (1.0f / 16777216.0f);
    }
}

double conv_plan_time_kernel(const incv3_conv_kernel *k, const incv3_conv_shape *s)
{
    const int blk = k->layout == INCV3_LAYOUT_NCHW8C ? 8 : 1;
    const size_t cpad = (size_t)(s->c + blk - 1) / blk * blk, kpad = (size_t)(s->k + blk - 1) / blk * blk;
    const size_t xs = (size_t)s->n * cpad * s->h * s->w, ys = (size_t)s->n * kpad * s->oh * s->ow;
    const size_t ws = (size_t)s->k * s->c * s->kh * s->kw;
    const size_t ps = incv3_conv_kernel_packs(k, s) ? k->packed_floats(s) : 0;
    float *x = incv3_aligned_alloc(xs * sizeof(float), 0), *y = incv3_aligned_alloc(ys * sizeof(float), 0);
    float *w = incv3_aligned_alloc(ws * sizeof(float), 0);
    float *packed = ps ? incv3_aligned_alloc(ps * sizeof(float), 0) : NULL;
    double best = -1;
    if (x && y && w && (!ps || packed)) {
        fill(x, xs, 1, 1.0f);
        fill(y, ys, 2, 1.0f);
        fill(w, ws, 3, 0.1f);
        const float *wk = packed ? packed : w;
        for (int rep = 0; rep < 3; rep++) {
            const double t0 = now_s();
            /* A training step packs the weights at every forward and backward-data: part of the cost. */
            if (packed)
                k->pack(s, w, packed);
            switch (k->pass) {
            case INCV3_CONV_FWD: k->fn.fwd(s, x, wk, y); break;
            case INCV3_CONV_BWD_DATA: k->fn.bwd_data(s, y, wk, x, 0); break;
            case INCV3_CONV_BWD_WEIGHTS: k->fn.bwd_weights(s, x, y, w); break;
            }
            const double t = now_s() - t0;
            if (rep > 0 && (best < 0 || t < best))
                best = t;
        }
    }
    incv3_aligned_free(x);
    incv3_aligned_free(y);
    incv3_aligned_free(w);
    incv3_aligned_free(packed);
    return best;
}
