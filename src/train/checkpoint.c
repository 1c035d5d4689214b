#include "train/checkpoint.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "incv3/safetensors.h"

int incv3_checkpoint_save(const char *path, incv3_graph *g, incv3_adamw *opt, const char *config_json,
                          const char *position_json, incv3_error *err)
{
    incv3_st_writer *w = incv3_st_writer_new();
    if (!w)
        return incv3_fail(err, "out of memory writing %s", path);
    /* Verified by incv3_st_open, so incv3_checkpoint_load refuses a damaged file before touching g. */
    incv3_st_writer_checksum(w);
    const size_t n = incv3_graph_param_count(g);
    /* Names of the moment tensors must outlive the writer. */
    char (*names)[INCV3_NAME_MAX + 24] = opt ? calloc(2 * n, sizeof *names) : NULL;
    int rc = opt && !names ? incv3_fail(err, "out of memory writing %s", path) : 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const incv3_param *p = incv3_graph_param(g, i);
        rc = incv3_st_writer_add(w, p->name, INCV3_F32, p->ndim, p->shape, p->data, err);
        if (rc == 0 && opt && p->kind == INCV3_PARAM) {
            snprintf(names[2 * i], sizeof names[0], "optim.exp_avg.%s", p->name);
            snprintf(names[2 * i + 1], sizeof names[0], "optim.exp_avg_sq.%s", p->name);
            rc = incv3_st_writer_add(w, names[2 * i], INCV3_F32, p->ndim, p->shape, incv3_adamw_exp_avg(opt, i),
                                     err) ||
                 incv3_st_writer_add(w, names[2 * i + 1], INCV3_F32, p->ndim, p->shape,
                                     incv3_adamw_exp_avg_sq(opt, i), err);
        }
    }
    char steps[32];
    snprintf(steps, sizeof steps, "%lld", opt ? (long long)incv3_adamw_steps(opt) : 0LL);
    if (rc == 0 && config_json)
        rc = incv3_st_writer_meta(w, "config", config_json, err);
    if (rc == 0 && position_json)
        rc = incv3_st_writer_meta(w, "position", position_json, err);
    if (rc == 0 && opt)
        rc = incv3_st_writer_meta(w, "optim.steps", steps, err);
    if (rc == 0)
        rc = incv3_st_write(w, path, err);
    incv3_st_writer_free(w);
    free(names);
    return rc;
}

static char *dup_meta(const incv3_st_file *f, const char *key)
{
    const char *v = incv3_st_metadata(f, key);
    return v ? strdup(v) : NULL;
}

int incv3_checkpoint_load(const char *path, incv3_graph *g, incv3_adamw *opt, char **config_json,
                          char **position_json, incv3_error *err)
{
    incv3_st_file *f = incv3_st_open(path, err);
    if (!f)
        return -1;
    int rc = 0;
    char key[INCV3_NAME_MAX + 24];
    /* Everything is checked before anything is copied: a refused file leaves the model and optimizer as
     * they were. */
    long long steps = 0;
    if (opt) {
        const char *s = incv3_st_metadata(f, "optim.steps");
        char *end = NULL;
        errno = 0;
        steps = s ? strtoll(s, &end, 10) : -1;
        /* The count feeds pow(beta, step) and is incremented by every step: a float-exact bound keeps both
         * meaningful and the increment from overflowing. */
        if (!s || end == s || *end || errno == ERANGE || steps < 0 || steps > (1LL << 53))
            rc = incv3_fail(err, "%s: metadata optim.steps is missing or invalid", path);
    }
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        for (size_t i = 0; i < incv3_graph_param_count(g) && rc == 0; i++) {
            incv3_param *p = incv3_graph_param(g, i);
            const incv3_st_tensor *t = incv3_st_require(f, p->name, INCV3_F32, p->numel, err);
            if (!t) {
                rc = -1;
                break;
            }
            /* The same element count in another shape (a transposed weight) is another tensor. A 0-d
             * file tensor stands for a 1-element parameter only if the parameter is 1-element too. */
            int same = t->ndim == p->ndim;
            for (int d = 0; same && d < p->ndim; d++)
                same = t->shape[d] == p->shape[d];
            if (!same) {
                char want[96] = "", got[96] = "";
                for (int d = 0; d < p->ndim; d++)
                    snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", d ? ", " : "",
                             (long long)p->shape[d]);
                for (int d = 0; d < t->ndim; d++)
                    snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "",
                             (long long)t->shape[d]);
                rc = incv3_fail(err, "%s: tensor %s has shape [%s], the model needs [%s]", path, p->name, got,
                                want);
                break;
            }
            const incv3_st_tensor *m = NULL, *v = NULL;
            if (opt && p->kind == INCV3_PARAM) {
                snprintf(key, sizeof key, "optim.exp_avg.%s", p->name);
                m = incv3_st_require(f, key, INCV3_F32, p->numel, err);
                snprintf(key, sizeof key, "optim.exp_avg_sq.%s", p->name);
                v = m ? incv3_st_require(f, key, INCV3_F32, p->numel, err) : NULL;
                if (!m || !v) {
                    rc = -1;
                    break;
                }
            }
            if (pass == 1) {
                memcpy(p->data, t->data, p->numel * sizeof(float));
                if (m) {
                    memcpy(incv3_adamw_exp_avg(opt, i), m->data, p->numel * sizeof(float));
                    memcpy(incv3_adamw_exp_avg_sq(opt, i), v->data, p->numel * sizeof(float));
                }
            }
        }
    }
    if (rc == 0 && opt)
        incv3_adamw_set_steps(opt, steps);
    if (rc == 0 && config_json)
        *config_json = dup_meta(f, "config");
    if (rc == 0 && position_json)
        *position_json = dup_meta(f, "position");
    incv3_st_close(f);
    return rc;
}
