/* Graph construction, parameter table, display info and initialization. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "graph/graph_internal.h"
#include "util/rng.h"

static incv3_isa graph_isa_default(void);
static incv3_layout isa_layout(incv3_isa isa);

incv3_graph *incv3_graph_new(int in_c, int in_h, int in_w)
{
    incv3_graph *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->in_c = in_c, g->in_h = in_h, g->in_w = in_w;
    g->cur_block = -1;
    for (int i = 0; i < INCV3_MAX_OUTPUTS; i++)
        g->outputs[i] = -1;
    /* The fastest kernels this CPU runs, as "--isa auto --conv-algo auto" would choose. */
    g->isa = graph_isa_default();
    g->layout = isa_layout(g->isa);
    g->ks = incv3_kernel_set_for(g->isa);
    snprintf(g->conv_algo, sizeof g->conv_algo, "auto");
    if (in_c < 1 || in_h < 1 || in_w < 1)
        incv3_graph_build_error(g, "invalid input shape %dx%dx%d", in_c, in_h, in_w);
    int id = incv3_graph_add_node(g, &incv3_layer_input, "", 0, NULL);
    if (id == 0) {
        g->nodes[0].c = in_c, g->nodes[0].h = in_h, g->nodes[0].w = in_w;
    }
    return g;
}

static void release_node_state(incv3_node *nd)
{
    free(nd->stat_sum);
    free(nd->stat_sumsq);
    nd->stat_sum = nd->stat_sumsq = NULL;
    if (nd->ops != &incv3_layer_input)
        incv3_tensor_free(&nd->out);
    incv3_tensor_free(&nd->grad);
    if (nd->ops->release)
        nd->ops->release(nd);
}

void incv3_graph_free(incv3_graph *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->n_nodes; i++)
        release_node_state(&g->nodes[i]);
    incv3_tensor_free(&g->input_blk);
    for (int w = 0; w < INCV3_WS_COUNT; w++)
        incv3_aligned_free(g->ws[w]);
    conv_plan_clear(&g->plan);
    conv_plan_clear(&g->plan_cache);
    free(g->prof_fwd);
    free(g->prof_bwd);
    for (int s = 0; s < INCV3_MAX_OUTPUTS; s++)
        incv3_tensor_free(&g->out_plain[s]);
    for (size_t i = 0; i < g->n_params; i++) {
        incv3_aligned_free(g->params[i].data);
        incv3_aligned_free(g->params[i].grad);
    }
    for (int i = 0; i < g->n_blocks; i++)
        free(g->blocks[i]);
    free(g->blocks);
    free(g->params);
    free(g->nodes);
    free(g);
}

const char *incv3_graph_error(const incv3_graph *g)
{
    if (!g)
        return "out of memory creating the graph";
    return g->error[0] ? g->error : NULL;
}

int incv3_graph_build_error(incv3_graph *g, const char *fmt, ...)
{
    if (!g->error[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(g->error, sizeof g->error, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void incv3_graph_block(incv3_graph *g, const char *label)
{
    if (!label) {
        g->cur_block = -1;
        return;
    }
    char **nb = realloc(g->blocks, (size_t)(g->n_blocks + 1) * sizeof *nb);
    char *copy = strdup(label);
    if (!nb || !copy) {
        free(copy);
        if (nb)
            g->blocks = nb;
        incv3_graph_build_error(g, "out of memory");
        return;
    }
    g->blocks = nb;
    g->blocks[g->n_blocks] = copy;
    g->cur_block = g->n_blocks++;
}

int incv3_graph_add_node(incv3_graph *g, const incv3_layer_ops *ops, const char *name, int n_in, const int *ins)
{
    if (g->error[0])
        return -1;
    if (n_in > INCV3_NODE_MAX_INPUTS)
        return incv3_graph_build_error(g, "%s: %d inputs (at most %d)", ops->kind, n_in, INCV3_NODE_MAX_INPUTS);
    for (int i = 0; i < n_in; i++)
        if (ins[i] < 0 || ins[i] >= g->n_nodes)
            return incv3_graph_build_error(g, "%s %s: input node %d does not exist", ops->kind, name, ins[i]);
    if (strlen(name) >= INCV3_NAME_MAX - 16)
        return incv3_graph_build_error(g, "layer name too long: %s", name);
    if (g->n_nodes == g->cap_nodes) {
        int cap = g->cap_nodes ? 2 * g->cap_nodes : 64;
        incv3_node *nn = realloc(g->nodes, (size_t)cap * sizeof *nn);
        if (!nn)
            return incv3_graph_build_error(g, "out of memory");
        g->nodes = nn;
        g->cap_nodes = cap;
    }
    int id = g->n_nodes++;
    incv3_node *nd = &g->nodes[id];
    memset(nd, 0, sizeof *nd);
    nd->ops = ops;
    snprintf(nd->name, sizeof nd->name, "%s", name);
    nd->block = g->cur_block;
    nd->n_inputs = n_in;
    for (int i = 0; i < n_in; i++) {
        nd->inputs[i] = ins[i];
        g->nodes[ins[i]].consumers++;
    }
    nd->param_first = (int)g->n_params;
    nd->fuse_next = nd->fused_into = -1;
    if (n_in > 0) {
        const incv3_node *src = &g->nodes[ins[0]];
        nd->c = src->c, nd->h = src->h, nd->w = src->w, nd->flat = src->flat;
    }
    return id;
}

int incv3_graph_add_param(incv3_graph *g, int node, const char *suffix, incv3_param_kind kind, int ndim,
                          const int64_t *shape)
{
    incv3_node *nd = &g->nodes[node];
    if (g->n_params == g->cap_params) {
        size_t cap = g->cap_params ? 2 * g->cap_params : 128;
        incv3_param *np = realloc(g->params, cap * sizeof *np);
        if (!np)
            return incv3_graph_build_error(g, "out of memory");
        g->params = np;
        g->cap_params = cap;
    }
    incv3_param *p = &g->params[g->n_params];
    memset(p, 0, sizeof *p);
    /* add_node keeps names 16 below the limit, which leaves room for the suffixes layers use. */
    if ((size_t)snprintf(p->name, sizeof p->name, "%.*s.%s", INCV3_NAME_MAX - 20, nd->name, suffix) >=
        sizeof p->name)
        return incv3_graph_build_error(g, "parameter name too long: %s.%s", nd->name, suffix);
    if (incv3_graph_find_param(g, p->name))
        return incv3_graph_build_error(g, "duplicate parameter name %s", p->name);
    p->kind = kind;
    p->ndim = ndim;
    p->numel = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = shape[i];
        p->numel *= (size_t)shape[i];
    }
    p->data = incv3_aligned_alloc(p->numel * sizeof(float), 1);
    if (kind == INCV3_PARAM)
        p->grad = incv3_aligned_alloc(p->numel * sizeof(float), 1);
    if (!p->data || (kind == INCV3_PARAM && !p->grad)) {
        incv3_aligned_free(p->data);
        incv3_aligned_free(p->grad);
        char what[INCV3_NAME_MAX + 16], msg[sizeof what + 80];
        snprintf(what, sizeof what, "parameter %s", p->name);
        incv3_mem_describe(msg, sizeof msg, p->numel * sizeof(float) * (kind == INCV3_PARAM ? 2 : 1), what);
        return incv3_graph_build_error(g, "%s", msg);
    }
    g->n_params++;
    nd->n_params++;
    return 0;
}

int incv3_graph_input_node(const incv3_graph *g)
{
    return g->n_nodes > 0 ? 0 : -1;
}

int incv3_graph_set_output(incv3_graph *g, int slot, int node)
{
    if (node < 0)
        return -1;
    if (slot < 0 || slot >= INCV3_MAX_OUTPUTS)
        return incv3_graph_build_error(g, "output slot %d out of range", slot);
    if (node >= g->n_nodes)
        return incv3_graph_build_error(g, "output node %d does not exist", node);
    g->outputs[slot] = node;
    return 0;
}

int incv3_graph_output_node(const incv3_graph *g, int slot)
{
    return slot >= 0 && slot < INCV3_MAX_OUTPUTS ? g->outputs[slot] : -1;
}

size_t incv3_graph_node_count(const incv3_graph *g)
{
    return (size_t)g->n_nodes;
}

void incv3_graph_node_info(const incv3_graph *g, int node, incv3_node_info *info)
{
    memset(info, 0, sizeof *info);
    if (node < 0 || node >= g->n_nodes) {
        info->kind = "none";
        return;
    }
    const incv3_node *nd = &g->nodes[node];
    info->kind = nd->ops->kind;
    info->block = nd->block >= 0 ? g->blocks[nd->block] : NULL;
    info->name = nd->name;
    info->c = nd->c, info->h = nd->h, info->w = nd->w, info->flat = nd->flat;
    for (int i = 0; i < nd->n_params; i++)
        if (g->params[nd->param_first + i].kind == INCV3_PARAM)
            info->params += g->params[nd->param_first + i].numel;
    info->kh = nd->kh, info->kw = nd->kw, info->stride = nd->stride, info->pad_h = nd->pad_h,
    info->pad_w = nd->pad_w;
    if (nd->n_inputs) {
        const incv3_node *src = &g->nodes[nd->inputs[0]];
        info->in_c = src->c, info->in_h = src->h, info->in_w = src->w;
    }
    if (nd->ops == &incv3_layer_conv) {
        info->macs = (double)nd->c * nd->h * nd->w * info->in_c * nd->kh * nd->kw;
        info->kernel_fwd = nd->kfwd ? nd->kfwd->name : NULL;
        info->kernel_bwd_data = nd->kbwd_data ? nd->kbwd_data->name : NULL;
        info->kernel_bwd_weights = nd->kbwd_weights ? nd->kbwd_weights->name : NULL;
    } else if (nd->ops == &incv3_layer_linear)
        info->macs = (double)info->in_c * nd->c;
}

size_t incv3_graph_param_count(const incv3_graph *g)
{
    return g->n_params;
}

incv3_param *incv3_graph_param(incv3_graph *g, size_t i)
{
    return i < g->n_params ? &g->params[i] : NULL;
}

incv3_param *incv3_graph_find_param(incv3_graph *g, const char *name)
{
    for (size_t i = 0; i < g->n_params; i++)
        if (strcmp(g->params[i].name, name) == 0)
            return &g->params[i];
    return NULL;
}

size_t incv3_graph_trainable_count(const incv3_graph *g)
{
    size_t n = 0;
    for (size_t i = 0; i < g->n_params; i++)
        if (g->params[i].kind == INCV3_PARAM)
            n += g->params[i].numel;
    return n;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

void incv3_graph_init_params(incv3_graph *g, uint64_t seed)
{
    for (int ni = 0; ni < g->n_nodes; ni++) {
        const incv3_node *nd = &g->nodes[ni];
        for (int i = 0; i < nd->n_params; i++) {
            size_t pi = (size_t)nd->param_first + (size_t)i;
            incv3_param *p = &g->params[pi];
            /* Each parameter draws from its own stream, so adding a layer never changes the others. */
            uint64_t st = incv3_rng_derive(seed, pi);
            float fill = 0.0f;
            int uniform = 0;
            double bound = 0;
            if (nd->ops == &incv3_layer_conv || nd->ops == &incv3_layer_linear) {
                /* Kaiming-uniform with a = sqrt(5), PyTorch's default, reduces to +-1/sqrt(fan_in) for the
                 * weight, and the bias uses the same bound. */
                const incv3_param *wt = &g->params[nd->param_first];
                size_t fan_in = wt->numel / (size_t)wt->shape[0];
                bound = 1.0 / sqrt((double)fan_in);
                uniform = 1;
            } else if (ends_with(p->name, ".weight") || ends_with(p->name, ".running_var")) {
                fill = 1.0f;
            }
            for (size_t j = 0; j < p->numel; j++)
                p->data[j] = uniform ? (float)((2.0 * incv3_rng_uniform(&st) - 1.0) * bound) : fill;
        }
    }
}

/* The activations' layout of an ISA's kernels: the vector ISAs run NCHW8c, the scalar reference NCHW. */
static incv3_layout isa_layout(incv3_isa isa)
{
    const incv3_kernel_set *ks = incv3_kernel_set_for(isa);
    return ks ? ks->layout : INCV3_LAYOUT_NCHW;
}

/* ISAs the graph can run: available here, with a kernel set and convolution kernels in its layout. */
static int graph_isa_ok(incv3_isa isa)
{
    return incv3_isa_available(isa) && incv3_kernel_set_for(isa) && incv3_isa_has_layout(isa, isa_layout(isa));
}

static incv3_isa graph_isa_default(void)
{
    incv3_isa best = INCV3_ISA_SCALAR;
    for (int i = 0; i < INCV3_ISA_COUNT; i++)
        if (graph_isa_ok((incv3_isa)i))
            best = (incv3_isa)i;
    return best;
}

const char *incv3_graph_default_isa(void)
{
    return incv3_isa_name(graph_isa_default());
}

/* Resolves --isa/--conv-algo values against what this build and CPU offer the graph. */
static int resolve_kernels(const char *isa, const char *conv_algo, incv3_isa *out, incv3_error *err)
{
    incv3_isa chosen = INCV3_ISA_SCALAR;
    if (!isa || strcmp(isa, "auto") == 0) {
        chosen = graph_isa_default();
    } else {
        int v = incv3_isa_from_name(isa);
        if (v < 0 || !graph_isa_ok((incv3_isa)v)) {
            char avail[128] = "auto";
            for (int i = 0; i < INCV3_ISA_COUNT; i++)
                if (graph_isa_ok((incv3_isa)i)) {
                    strncat(avail, ", ", sizeof avail - strlen(avail) - 1);
                    strncat(avail, incv3_isa_name((incv3_isa)i), sizeof avail - strlen(avail) - 1);
                }
            return incv3_fail(err, "--isa %s: %s (available here: %s)", isa,
                              v < 0 ? "unknown instruction set" : "not available on this CPU or build", avail);
        }
        chosen = (incv3_isa)v;
    }
    if (conv_algo && strcmp(conv_algo, "auto") != 0) {
        /* An algorithm of the chosen ISA's kernels (ref is the scalar ISA's: --isa scalar). */
        size_t n;
        const incv3_conv_kernel *t = incv3_conv_kernel_table(&n);
        int known = 0, family_listed = 0;
        char avail[256] = "auto";
        for (size_t i = 0; i < n; i++) {
            if (t[i].isa != chosen || t[i].pass != INCV3_CONV_FWD || t[i].layout != isa_layout(chosen))
                continue;
            if (strcmp(t[i].algo, conv_algo) == 0 ||
                (strcmp(conv_algo, "winograd") == 0 && strncmp(t[i].algo, "winograd-", 9) == 0))
                known = 1;
            if (strncmp(t[i].algo, "winograd-", 9) == 0 && !family_listed) {
                strncat(avail, ", winograd", sizeof avail - strlen(avail) - 1);
                family_listed = 1;
            }
            int listed = 0;
            for (size_t j = 0; j < i; j++)
                listed |= t[j].isa == chosen && t[j].pass == INCV3_CONV_FWD && t[j].layout == t[i].layout &&
                          strcmp(t[j].algo, t[i].algo) == 0;
            if (!listed) {
                strncat(avail, ", ", sizeof avail - strlen(avail) - 1);
                strncat(avail, t[i].algo, sizeof avail - strlen(avail) - 1);
            }
        }
        if (!known)
            return incv3_fail(err,
                              "--conv-algo %s: no such convolution algorithm for --isa %s (available: %s; the "
                              "reference kernels run with --isa scalar --conv-algo ref)",
                              conv_algo, incv3_isa_name(chosen), avail);
    }
    *out = chosen;
    return 0;
}

int incv3_kernels_check(const char *isa, const char *conv_algo, incv3_error *err)
{
    incv3_isa chosen;
    return resolve_kernels(isa, conv_algo, &chosen, err);
}

int incv3_graph_set_kernels(incv3_graph *g, const char *isa, const char *conv_algo, incv3_error *err)
{
    incv3_isa chosen;
    if (resolve_kernels(isa, conv_algo, &chosen, err))
        return -1;
    g->isa = chosen;
    g->layout = isa_layout(chosen);
    g->ks = incv3_kernel_set_for(chosen);
    snprintf(g->conv_algo, sizeof g->conv_algo, "%s", conv_algo ? conv_algo : "auto");
    g->batch = 0; /* kernels are chosen again at the next forward */
    return 0;
}

void incv3_graph_set_deterministic(incv3_graph *g, int on)
{
    g->deterministic = on != 0;
    g->batch = 0; /* kernels are chosen again at the next forward */
}

int incv3_graph_set_profiling(incv3_graph *g, int on)
{
    free(g->prof_fwd);
    free(g->prof_bwd);
    g->prof_fwd = g->prof_bwd = NULL;
    if (!on)
        return 0;
    g->prof_fwd = calloc((size_t)g->n_nodes, sizeof(double));
    g->prof_bwd = calloc((size_t)g->n_nodes, sizeof(double));
    return g->prof_fwd && g->prof_bwd ? 0 : (incv3_graph_set_profiling(g, 0), -1);
}

void incv3_graph_node_time(const incv3_graph *g, int node, double *fwd_s, double *bwd_s)
{
    const int ok = g->prof_fwd && node >= 0 && node < g->n_nodes;
    *fwd_s = ok ? g->prof_fwd[node] : 0;
    *bwd_s = ok ? g->prof_bwd[node] : 0;
}

int incv3_graph_save_conv_plan(const incv3_graph *g, const char *path, incv3_error *err)
{
    return conv_plan_write_file(&g->plan, path, g->conv_algo, err);
}

int incv3_graph_load_conv_plan(incv3_graph *g, const char *path, incv3_error *err)
{
    if (conv_plan_read_file(&g->plan, path, err))
        return -1;
    g->batch = 0; /* kernels are chosen again at the next forward */
    return 0;
}
