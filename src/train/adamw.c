#include <stdlib.h>

#include "util/oom.h"
#include "graph/graph_internal.h"
#include "incv3/tensor.h"
#include "incv3/train.h"

struct incv3_adamw {
    incv3_adamw_hparams hp;
    int64_t steps;
    size_t count;
    float **exp_avg, **exp_avg_sq;
};

void incv3_adamw_free(incv3_adamw *opt)
{
    if (!opt)
        return;
    for (size_t i = 0; i < opt->count; i++) {
        incv3_aligned_free(opt->exp_avg[i]);
        incv3_aligned_free(opt->exp_avg_sq[i]);
    }
    free(opt->exp_avg);
    free(opt->exp_avg_sq);
    free(opt);
}

incv3_adamw *incv3_adamw_new(incv3_graph *g, incv3_adamw_hparams hp, incv3_error *err)
{
    incv3_adamw *opt = calloc(1, sizeof *opt);
    size_t n = incv3_graph_param_count(g);
    if (opt) {
        opt->hp = hp;
        opt->count = n;
        opt->exp_avg = calloc(n ? n : 1, sizeof(float *));
        opt->exp_avg_sq = calloc(n ? n : 1, sizeof(float *));
    }
    if (!opt || !opt->exp_avg || !opt->exp_avg_sq)
        goto oom;
    for (size_t i = 0; i < n; i++) {
        const incv3_param *p = incv3_graph_param(g, i);
        if (p->kind != INCV3_PARAM)
            continue;
        opt->exp_avg[i] = incv3_aligned_alloc(p->numel * sizeof(float), 1);
        opt->exp_avg_sq[i] = incv3_aligned_alloc(p->numel * sizeof(float), 1);
        if (!opt->exp_avg[i] || !opt->exp_avg_sq[i])
            goto oom;
    }
    return opt;
oom:
    incv3_adamw_free(opt);
    size_t floats = 0;
    for (size_t i = 0; i < n; i++)
        floats += incv3_graph_param(g, i)->kind == INCV3_PARAM ? incv3_graph_param(g, i)->numel : 0;
    incv3_fail_oom(err, 2 * sizeof(float) * floats, "the AdamW moments");
    return NULL;
}

void incv3_adamw_step(incv3_adamw *opt, incv3_graph *g)
{
    opt->steps++;
    for (size_t i = 0; i < opt->count; i++) {
        incv3_param *p = incv3_graph_param(g, i);
        /* PyTorch skips parameters whose grad is None (e.g. the aux head in a step without it). */
        if (p->kind != INCV3_PARAM || !p->has_grad)
            continue;
        /* The graph's ISA decides, so --isa scalar keeps every kernel scalar. */
        g->ks->adamw(p->numel, p->data, p->grad, opt->exp_avg[i], opt->exp_avg_sq[i], opt->hp.lr, opt->hp.beta1,
                     opt->hp.beta2, opt->hp.eps, opt->hp.weight_decay, opt->steps);
    }
}

int64_t incv3_adamw_steps(const incv3_adamw *opt)
{
    return opt->steps;
}

void incv3_adamw_set_steps(incv3_adamw *opt, int64_t steps)
{
    opt->steps = steps;
}

float *incv3_adamw_exp_avg(incv3_adamw *opt, size_t i)
{
    return i < opt->count ? opt->exp_avg[i] : NULL;
}

float *incv3_adamw_exp_avg_sq(incv3_adamw *opt, size_t i)
{
    return i < opt->count ? opt->exp_avg_sq[i] : NULL;
}
