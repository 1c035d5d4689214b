/* The model summary in the seed's markdown layout (centered columns, bold block headers). */
#include <stdio.h>
#include <string.h>

#include "graph/graph_internal.h"
#include "incv3/model.h"

typedef struct row {
    char cells[3][64];
} row;

static void group_thousands(char *buf, size_t len, double v)
{
    char digits[40];
    snprintf(digits, sizeof digits, "%.0f", v);
    size_t n = strlen(digits), o = 0;
    for (size_t i = 0; i < n && o + 2 < len; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
}

static void print_centered(FILE *out, const char *s, int width)
{
    int len = (int)strlen(s), left = (width - len) / 2;
    fprintf(out, "%*s%s%*s", left, "", s, width - len - left, "");
}

static void print_table(FILE *out, const row *rows, size_t n, const char *const head[3], int centered)
{
    int w[3];
    for (int c = 0; c < 3 && head[c]; c++) {
        w[c] = (int)strlen(head[c]);
        for (size_t r = 0; r < n; r++)
            if ((int)strlen(rows[r].cells[c]) > w[c])
                w[c] = (int)strlen(rows[r].cells[c]);
    }
    int cols = head[2] ? 3 : 2;
    fputc('|', out);
    for (int c = 0; c < cols; c++) {
        fputc(' ', out);
        centered ? print_centered(out, head[c], w[c]) : (void)fprintf(out, "%-*s", w[c], head[c]);
        fputs(" |", out);
    }
    fputs("\n|", out);
    for (int c = 0; c < cols; c++) {
        fputs(centered ? " :" : " -", out);
        for (int i = 0; i < w[c] - 2; i++)
            fputc('-', out);
        fputs(centered ? ": |" : "- |", out);
    }
    fputc('\n', out);
    for (size_t r = 0; r < n; r++) {
        fputc('|', out);
        for (int c = 0; c < cols; c++) {
            fputc(' ', out);
            centered ? print_centered(out, rows[r].cells[c], w[c]) : (void)fprintf(out, "%-*s", w[c], rows[r].cells[c]);
            fputs(" |", out);
        }
        fputc('\n', out);
    }
}

double incv3_print_summary(incv3_graph *g, const incv3_model_config *cfg, FILE *out)
{
    size_t n_nodes = incv3_graph_node_count(g);
    row rows[2 * n_nodes + 1];
    size_t n = 0;
    int block = -1;
    double macs = 0;
    for (size_t i = 0; i < n_nodes; i++) {
        const incv3_node *nd = &g->nodes[i];
        if (!nd->ops->display)
            continue;
        incv3_node_info info;
        incv3_graph_node_info(g, (int)i, &info);
        macs += info.macs;
        if (nd->block != block && nd->block >= 0) {
            snprintf(rows[n].cells[0], sizeof rows[n].cells[0], "**%s**", g->blocks[nd->block]);
            strcpy(rows[n].cells[1], "---");
            strcpy(rows[n].cells[2], "---");
            n++;
        }
        block = nd->block;
        snprintf(rows[n].cells[0], sizeof rows[n].cells[0], "%s", nd->ops->display);
        if (info.flat)
            snprintf(rows[n].cells[1], sizeof rows[n].cells[1], "[-1, %d]", info.c);
        else
            snprintf(rows[n].cells[1], sizeof rows[n].cells[1], "[-1, %d, %d, %d]", info.c, info.h, info.w);
        group_thousands(rows[n].cells[2], sizeof rows[n].cells[2], (double)info.params);
        n++;
    }
    static const char *const head[3] = {"Layer (type)", "Output Shape", "Param #"};
    print_table(out, rows, n, head, 1);

    size_t total = incv3_graph_trainable_count(g), aux = 0, buffers = 0;
    for (size_t i = 0; i < incv3_graph_param_count(g); i++) {
        const incv3_param *p = incv3_graph_param(g, i);
        if (p->kind == INCV3_BUFFER)
            buffers += p->numel;
        else if (strncmp(p->name, "aux.", 4) == 0)
            aux += p->numel;
    }
    row totals[5];
    static const char *const labels[5] = {"Total params", "Trainable params",
                                          "Total params excluding auxiliary params", "Non-trainable params",
                                          "Forward multiply-accumulates per image"};
    double values[5] = {(double)total, (double)total, (double)(total - aux), 0, macs};
    for (int i = 0; i < 5; i++) {
        snprintf(totals[i].cells[0], sizeof totals[i].cells[0], "%s", labels[i]);
        group_thousands(totals[i].cells[1], sizeof totals[i].cells[1], values[i]);
    }
    static const char *const blank[3] = {"", "", NULL};
    fputc('\n', out);
    print_table(out, totals, 5, blank, 0);
    char nbuf[40];
    group_thousands(nbuf, sizeof nbuf, (double)buffers);
    fprintf(out, "\nInput 3x%dx%d, %d classes, width %g, aux head %s; BatchNorm running statistics: %s "
                 "values (buffers, not parameters).\n",
            cfg->image_size, cfg->image_size, cfg->classes, cfg->width, cfg->aux ? "on" : "off", nbuf);
    return macs;
}

/* The kernel family the non-convolution layers of a layout run (their dispatch is per layout). */
static const char *family(const incv3_graph *g, const incv3_node *nd)
{
    const int blocked = g->layout == INCV3_LAYOUT_NCHW8C;
    const char *k = nd->ops->kind;
    if (strcmp(k, "batchnorm") == 0)
        return blocked ? "bn_{fwd,bwd}_{train,infer}_f32_blocked__avx2" : "bn_{fwd,bwd}_{train,infer}_f32_ref__scalar";
    if (strcmp(k, "relu") == 0)
        return blocked ? "relu_{fwd,bwd}_f32__avx2" : "relu_{fwd,bwd}_f32_ref__scalar";
    if (strcmp(k, "maxpool") == 0)
        return blocked ? "maxpool_{fwd,bwd}_f32_blocked__avx2" : "maxpool_{fwd,bwd}_f32_ref__scalar";
    if (strcmp(k, "avgpool") == 0 || strcmp(k, "global_avgpool") == 0)
        return blocked ? "avgpool_{fwd,bwd}_f32_blocked__avx2" : "avgpool_{fwd,bwd}_f32_ref__scalar";
    if (strcmp(k, "concat") == 0)
        return blocked ? "concat_slice_{fwd,bwd}_f32_nchw8c" : "copy (NCHW)";
    if (strcmp(k, "flatten") == 0)
        return blocked ? "reorder_nchw8c_to_nchw_f32 (graph edge)" : "copy (NCHW)";
    if (strcmp(k, "linear") == 0)
        return blocked ? "linear_{fwd,bwd_data,bwd_weights}_f32_gemm__avx2 (gemm_f32_6x16__avx2)"
                       : "linear_{fwd,bwd_data,bwd_weights}_f32_ref__scalar";
    if (strcmp(k, "dropout") == 0)
        return "dropout_{fwd,bwd}_f32_ref__scalar";
    return "";
}

void incv3_print_kernels(incv3_graph *g, int batch, FILE *out)
{
    fprintf(out, "Kernels (ISA %s, layout %s, --conv-algo %s, batch %d):\n\n", incv3_isa_name(g->isa),
            g->layout == INCV3_LAYOUT_NCHW8C ? "NCHW8c" : "NCHW", g->conv_algo, batch);
    static const char dashes[] = "--------------------------------------------------";
    fprintf(out, "| %-32s | %-18s | %-42s | %-42s | %-42s |\n", "Layer", "Output Shape", "Forward", "Backward-data",
            "Backward-weights");
    fprintf(out, "|%.34s|%.20s|%.44s|%.44s|%.44s|\n", dashes, dashes, dashes, dashes, dashes);
    for (int i = 1; i < g->n_nodes; i++) {
        const incv3_node *nd = &g->nodes[i];
        char shape[48], label[INCV3_NAME_MAX];
        if (nd->flat)
            snprintf(shape, sizeof shape, "[-1, %d]", nd->c);
        else
            snprintf(shape, sizeof shape, "[-1, %d, %d, %d]", nd->c, nd->h, nd->w);
        snprintf(label, sizeof label, "%s", nd->name[0] ? nd->name : nd->ops->kind);
        if (nd->ops == &incv3_layer_conv) {
            const incv3_conv_kernel *k[3];
            incv3_conv_node_kernels(g, nd, batch, k);
            fprintf(out, "| %-32s | %-18s | %-42s | %-42s | %-42s |\n", label, shape, k[0] ? k[0]->name : "none",
                    k[1] ? k[1]->name : "none", k[2] ? k[2]->name : "none");
        } else {
            fprintf(out, "| %-32s | %-18s | %-130s |\n", label, shape, family(g, nd));
        }
    }
}
