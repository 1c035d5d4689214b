/* incv3-kbench: one microbenchmark per kernel, variants chosen by flags. Standard output holds only the
 * result rows; notes go to standard error. */
#include <getopt.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kbench.h"
#include "util/heap_policy.h"

static const char usage[] =
    "Usage: incv3-kbench [--op OP] [--algo A] [--isa I] (--shape C,H,W,K,KH,KW,stride,padH,padW | --suite S)\n"
    "                    [--batch B] [--threads T] [--repeat R] [--format table|csv|json]\n"
    "       incv3-kbench --peak [--threads T]\n"
    "\n"
    "Times one kernel per shape: checks it against the scalar reference on batch 1 first (relative error\n"
    "<= 1e-5, 1e-4 for Winograd kernels, else it is not timed), then runs it R times at batch B after a\n"
    "warm-up. Each row: kernel, shape, median and min ms, GFLOP/s (2 x N x K x OH x OW x C x KH x KW, padded\n"
    "taps included, as oneDNN counts: for Winograd the direct-equivalent rate, which can exceed 100%% of the\n"
    "peak), %% of the FMA peak of T threads measured by this process, the speed-up over the reference (timed\n"
    "on batch 1 by the check, scaled to the batch) and, for convolutions, over the direct kernel of the ISA\n"
    "timed in the same run on the same shape.\n"
    "\n"
    "  --op OP        conv-fwd (default), conv-bwd-data, conv-bwd-weights; conv-bn-relu-fwd (the fused training\n"
    "                 forward: conv with BN statistics in its epilogue, then BN+ReLU in one pass; GFLOP/s of\n"
    "                 the conv); bn-relu-bwd (the fused BN+ReLU backward on the conv's output; ~10 flops per\n"
    "                 element); pool (max pooling forward +\n"
    "                 backward; K of --shape is ignored; --suite gives the model's pooling layers; GFLOP/s\n"
    "                 counts one compare per window cell and pass); adamw (one AdamW step over --count\n"
    "                 parameters, default the model's 25,212,020; GFLOP/s counts 12 per parameter)\n"
    "  --count N      parameters for --op adamw\n"
    "  --mnk M,N,K    one GEMM for --op gemm (C = A B, B given N x K as the linear layers' weights); without\n"
    "                 it, the GEMMs of the model's linear layers at --batch (JSON/CSV: M, N, K in kh, k, c)\n"
    "  --algo A       convolutions: auto (default: every kernel of the ISA serving the shape is timed, the\n"
    "                 fastest is reported), winograd (the fastest Winograd tile), or one of direct,\n"
    "                 winograd-f2x2, winograd-f4x4, winograd-f6x6 (3x3), winograd-f2, winograd-f4 (1x3, 3x1,\n"
    "                 1x7, 7x1), gemm (a 1x1 output: the 75x75 model's last blocks; 1xn/nx1 over lines of\n"
    "                 at most 8 pixels by their Toeplitz matrix; else im2col, where the gathered windows\n"
    "                 fit 64 MiB: 1x1 layers, small maps),\n"
    "                 ref; other ops: auto, direct, ref\n"
    "  --isa I        auto (default: the best this CPU runs), scalar, avx2, neon\n"
    "  --shape S      one convolution: C,H,W,K,KH,KW,stride,padH,padW\n"
    "  --suite S      inception (the 12 shapes oneDNN was measured on) or model (every distinct conv of\n"
    "                 the seed model); shapes the forced variant cannot serve are skipped with a note\n"
    "  --batch B      images (default 32)\n"
    "  --threads T    OpenMP threads (default 1: kernel efficiency is measured on one core)\n"
    "  --repeat R     timed runs (default 5)\n"
    "  --format F     table (default), csv, or json (one object per line)\n"
    "  --peak         print the measured FMA peak alone\n"
    "  -h, --help     this help\n";

typedef enum op_kind { OP_CONV, OP_CBR_FWD, OP_BR_BWD, OP_POOL, OP_ADAMW, OP_GEMM } op_kind;

typedef struct op_name {
    const char *name;
    op_kind kind;
    incv3_conv_pass pass; /* OP_CONV */
} op_name;

static const op_name ops[] = {
    {"conv-fwd", OP_CONV, INCV3_CONV_FWD},
    {"conv-bwd-data", OP_CONV, INCV3_CONV_BWD_DATA},
    {"conv-bwd-weights", OP_CONV, INCV3_CONV_BWD_WEIGHTS},
    {"conv-bn-relu-fwd", OP_CBR_FWD, 0},
    {"bn-relu-bwd", OP_BR_BWD, 0},
    {"pool", OP_POOL, 0},
    {"adamw", OP_ADAMW, 0},
    {"gemm", OP_GEMM, 0},
};

/* The GEMMs of the model's linear layers at batch B: aux fc1 3200 -> 1024 and fc 2048 -> 10, forward
 * (x w^T), backward-data (dy w) and backward-weights (dy^T x). {m, n, k, b_trans} with m, n, k scaled. */
typedef struct gemm_case {
    const char *what;
    int m_is_batch, n, k, b_trans, m;
} gemm_case;

static const gemm_case gemm_suite[] = {
    {"aux.fc1 fwd", 1, 1024, 3200, 1, 0}, {"aux.fc1 bwd-data", 1, 3200, 1024, 0, 0},
    {"aux.fc1 bwd-weights", 0, 3200, 0, 0, 1024}, {"fc fwd", 1, 10, 2048, 1, 0},
    {"fc bwd-data", 1, 2048, 10, 0, 0},
};

/* What a row reports as its kernel. */
typedef struct row_kernel {
    const char *name, *algo;
    incv3_isa isa;
    const char *shape; /* table label of the shape when not a convolution's, else NULL */
} row_kernel;

static int parse_int(const char *flag, const char *text, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(text, &end, 10);
    if (end == text || *end || v < lo || v > hi) {
        fprintf(stderr, "incv3-kbench: %s %s: expected an integer from %d to %d\n", flag, text, lo, hi);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int parse_shape(const char *text, kbench_shape *s)
{
    int v[9], n = 0;
    const char *p = text;
    while (n < 9) {
        char *end;
        long x = strtol(p, &end, 10);
        if (end == p || x < 0 || x > 1000000)
            break;
        v[n++] = (int)x;
        if (*end != ',') {
            p = end;
            break;
        }
        p = end + 1;
    }
    if (n != 9 || *p) {
        fprintf(stderr, "incv3-kbench: --shape %s: expected nine integers C,H,W,K,KH,KW,stride,padH,padW\n", text);
        return -1;
    }
    *s = (kbench_shape){v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8]};
    incv3_conv_shape cs = {.n = 1, .c = s->c, .h = s->h, .w = s->w, .k = s->k, .kh = s->kh, .kw = s->kw,
                           .stride_h = s->stride, .stride_w = s->stride, .pad_top = s->pad_h,
                           .pad_bottom = s->pad_h, .pad_left = s->pad_w, .pad_right = s->pad_w};
    if (incv3_conv_shape_finish(&cs)) {
        fprintf(stderr, "incv3-kbench: --shape %s: the kernel does not fit the padded input (or a value is 0)\n",
                text);
        return -1;
    }
    return 0;
}

/* x_direct: the speed-up over the direct kernel on the same shape, 0 where it does not apply. */
static void print_row(const char *format, const row_kernel *k, const char *op, const kbench_shape *s,
                      int batch, int threads, const kbench_result *r, double peak, int header, double x_direct)
{
    const double pct = 100.0 * r->gflops / peak;
    const double speedup = r->ref_ms_per_image * batch / r->median_ms;
    if (strcmp(format, "json") == 0) {
        printf("{\"kernel\":\"%s\",\"op\":\"%s\",\"algo\":\"%s\",\"isa\":\"%s\",\"c\":%d,\"h\":%d,\"w\":%d,\"k\":%d,"
               "\"kh\":%d,\"kw\":%d,\"stride\":%d,\"pad_h\":%d,\"pad_w\":%d,\"batch\":%d,\"threads\":%d,"
               "\"median_ms\":%.4f,\"min_ms\":%.4f,\"gflops\":%.3f,\"pct_peak\":%.2f,\"speedup_vs_ref\":%.2f,"
               "\"peak_gflops\":%.2f,\"gbytes_per_s\":%.2f,\"check_rel_err\":%.3g,\"speedup_vs_direct\":%.3f}\n",
               k->name, op, k->algo, incv3_isa_name(k->isa), s->c, s->h, s->w, s->k, s->kh, s->kw, s->stride,
               s->pad_h, s->pad_w, batch, threads, r->median_ms, r->min_ms, r->gflops, pct, speedup, peak, r->gbytes,
               r->check_err, x_direct);
    } else if (strcmp(format, "csv") == 0) {
        if (header)
            puts("kernel,op,algo,isa,c,h,w,k,kh,kw,stride,pad_h,pad_w,batch,threads,median_ms,min_ms,gflops,"
                 "pct_peak,speedup_vs_ref,speedup_vs_direct");
        printf("%s,%s,%s,%s,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%.4f,%.4f,%.3f,%.2f,%.2f,%.3f\n", k->name, op,
               k->algo, incv3_isa_name(k->isa), s->c, s->h, s->w, s->k, s->kh, s->kw, s->stride, s->pad_h, s->pad_w,
               batch, threads, r->median_ms, r->min_ms, r->gflops, pct, speedup, x_direct);
    } else {
        if (header)
            printf("%-42s %-16s %-28s %5s %3s %10s %10s %8s %6s %8s %8s\n", "kernel", "op", "shape", "batch", "thr",
                   "median_ms", "min_ms", "GFLOP/s", "%peak", "x ref", "x direct");
        char shape[64];
        if (k->shape)
            snprintf(shape, sizeof shape, "%s", k->shape);
        else
            snprintf(shape, sizeof shape, "%dx%dx%d->%d %dx%d s%d p%d,%d", s->c, s->h, s->w, s->k, s->kh, s->kw,
                     s->stride, s->pad_h, s->pad_w);
        char xd[16] = "-";
        if (x_direct > 0)
            snprintf(xd, sizeof xd, "%.2f", x_direct);
        printf("%-42s %-16s %-28s %5d %3d %10.3f %10.3f %8.1f %5.1f%% %8.1f %8s\n", k->name, op, shape, batch,
               threads, r->median_ms, r->min_ms, r->gflops, pct, speedup, xd);
    }
    fflush(stdout);
}

/* --algo values: the families auto and winograd, or an algorithm some kernel of the table has. */
static int known_algo(const char *algo, int conv)
{
    if (!strcmp(algo, "auto") || !strcmp(algo, "ref") || !strcmp(algo, "direct"))
        return 1;
    if (!conv)
        return 0;
    if (!strcmp(algo, "winograd"))
        return 1;
    size_t n;
    const incv3_conv_kernel *t = incv3_conv_kernel_table(&n);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(t[i].algo, algo))
            return 1;
    return 0;
}

enum { NOT_SERVED = 2 };

/* Times the kernels --algo selects for one shape: one named algorithm, or every member of a family (auto:
 * all kernels of the ISA, winograd: its tiles) serving the shape, keeping the fastest in *best / *res.
 * *direct_ms: the direct kernel's median on the shape in this run (timed for the comparison when it is
 * not itself a candidate), 0 where there is none. Returns 0, NOT_SERVED, or -1 after a failed check. */
static int conv_best(incv3_conv_pass pass, incv3_isa isa, const char *algo, const kbench_shape *s, int batch,
                     int repeat, const incv3_conv_kernel **best, kbench_result *res, double *direct_ms)
{
    incv3_conv_shape cs = {.n = batch, .c = s->c, .h = s->h, .w = s->w, .k = s->k, .kh = s->kh, .kw = s->kw,
                           .stride_h = s->stride, .stride_w = s->stride, .pad_top = s->pad_h,
                           .pad_bottom = s->pad_h, .pad_left = s->pad_w, .pad_right = s->pad_w};
    incv3_conv_shape_finish(&cs);
    const int family = !strcmp(algo, "auto") || !strcmp(algo, "winograd");
    const incv3_isa kisa = !strcmp(algo, "ref") ? INCV3_ISA_SCALAR : isa;
    size_t n;
    const incv3_conv_kernel *t = incv3_conv_kernel_table(&n), *direct = NULL;
    int tried = 0;
    *best = NULL;
    *direct_ms = 0;
    for (size_t i = 0; i < n; i++) {
        const incv3_conv_kernel *k = &t[i];
        if (k->pass != pass || k->isa != kisa || (k->supports && !k->supports(&cs)))
            continue;
        if (!strcmp(k->algo, "direct") && !direct)
            direct = k;
        const int pick = family ? (!strcmp(algo, "auto") || !strncmp(k->algo, "winograd", 8)) : !strcmp(k->algo, algo);
        if (!pick || (family && *best && !strcmp(algo, "auto") && k->layout != (*best)->layout))
            continue;
        kbench_result r;
        tried++;
        if (kbench_conv(k, s, batch, repeat, &r))
            continue; /* reported; a family goes on with its other members */
        if (family && tried > 1)
            fprintf(stderr, "incv3-kbench: %s %.3f ms\n", k->name, r.median_ms);
        if (k == direct)
            *direct_ms = r.median_ms;
        if (!*best || r.median_ms < res->median_ms)
            *best = k, *res = r;
    }
    if (!tried)
        return NOT_SERVED;
    if (!*best)
        return -1;
    if (direct && *direct_ms == 0 && *best != direct) {
        kbench_result r;
        if (kbench_conv(direct, s, batch, repeat, &r) == 0)
            *direct_ms = r.median_ms;
    } else if (*best == direct) {
        *direct_ms = res->median_ms;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"op", required_argument, NULL, 'o'},      {"algo", required_argument, NULL, 'a'},
        {"isa", required_argument, NULL, 'i'},     {"shape", required_argument, NULL, 's'},
        {"suite", required_argument, NULL, 'S'},   {"batch", required_argument, NULL, 'b'},
        {"threads", required_argument, NULL, 't'}, {"repeat", required_argument, NULL, 'r'},
        {"format", required_argument, NULL, 'f'},  {"peak", no_argument, NULL, 'p'},
        {"count", required_argument, NULL, 'n'},   {"mnk", required_argument, NULL, 'm'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    /* as incv3 itself runs: kernels with per-call scratch reuse its pages instead of faulting in fresh ones */
    incv3_heap_keep_pages();
    int count = 25212020, mnk[3] = {0, 0, 0};
    const char *op = "conv-fwd", *algo = "auto", *isa_name = "auto", *suite = NULL, *format = "table";
    kbench_shape one;
    int have_shape = 0, batch = 32, threads = 1, repeat = 5, peak_only = 0, c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            op = optarg;
            break;
        case 'a':
            algo = optarg;
            break;
        case 'i':
            isa_name = optarg;
            break;
        case 's':
            if (parse_shape(optarg, &one))
                return 2;
            have_shape = 1, suite = NULL;
            break;
        case 'S':
            suite = optarg, have_shape = 0;
            break;
        case 'b':
            if (parse_int("--batch", optarg, 1, 4096, &batch))
                return 2;
            break;
        case 't':
            if (parse_int("--threads", optarg, 1, 4096, &threads))
                return 2;
            break;
        case 'r':
            if (parse_int("--repeat", optarg, 1, 100000, &repeat))
                return 2;
            break;
        case 'f':
            format = optarg;
            if (strcmp(format, "table") && strcmp(format, "csv") && strcmp(format, "json")) {
                fprintf(stderr, "incv3-kbench: --format %s: expected table, csv or json\n", format);
                return 2;
            }
            break;
        case 'p':
            peak_only = 1;
            break;
        case 'n':
            if (parse_int("--count", optarg, 1, 1 << 30, &count))
                return 2;
            break;
        case 'm':
            if (sscanf(optarg, "%d,%d,%d", &mnk[0], &mnk[1], &mnk[2]) != 3 || mnk[0] < 1 || mnk[1] < 1 ||
                mnk[2] < 1 || mnk[0] > 100000 || mnk[1] > 100000 || mnk[2] > 100000) {
                fprintf(stderr, "incv3-kbench: --mnk %s: expected three positive integers M,N,K\n", optarg);
                return 2;
            }
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            fprintf(stderr, "incv3-kbench: %s: unknown flag or missing value\nTry 'incv3-kbench --help'.\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "incv3-kbench: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    omp_set_num_threads(threads);
    omp_set_dynamic(0);

    const double peak = kbench_peak_gflops(threads);
    if (peak_only) {
        printf("%.1f\n", peak);
        return 0;
    }
    fprintf(stderr, "incv3-kbench: FMA peak of %d thread%s measured at %.1f GFLOP/s\n", threads,
            threads > 1 ? "s" : "", peak);

    const op_name *opn = NULL;
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (strcmp(op, ops[i].name) == 0)
            opn = &ops[i];
    if (!opn) {
        fprintf(stderr,
                "incv3-kbench: --op %s: expected conv-fwd, conv-bwd-data, conv-bwd-weights, conv-bn-relu-fwd, "
                "bn-relu-bwd, pool, adamw or gemm\n",
                op);
        return 2;
    }
    incv3_isa isa;
    if (strcmp(isa_name, "auto") == 0) {
        isa = incv3_isa_best();
    } else {
        int v = incv3_isa_from_name(isa_name);
        if (v < 0 || !incv3_isa_available((incv3_isa)v)) {
            fprintf(stderr, "incv3-kbench: --isa %s: %s (best here: %s)\n", isa_name,
                    v < 0 ? "unknown instruction set" : "not available on this CPU or build",
                    incv3_isa_name(incv3_isa_best()));
            return 2;
        }
        isa = (incv3_isa)v;
    }
    if (!known_algo(algo, opn->kind == OP_CONV)) {
        fprintf(stderr, "incv3-kbench: --algo %s: expected auto, ref or direct%s\n", algo,
                opn->kind == OP_CONV ? ", winograd or a Winograd tile (see --help)" : "");
        return 2;
    }

    /* The layer kernels of --isa's set; the reference with --isa scalar or --algo ref. */
    const incv3_kernel_set *vec = isa != INCV3_ISA_SCALAR && strcmp(algo, "ref") != 0 ? incv3_kernel_set_for(isa) : NULL;
    const incv3_isa row_isa = vec ? isa : INCV3_ISA_SCALAR;
    const char *row_algo = vec ? "direct" : "ref", *sfx = incv3_isa_name(isa);
    char kname[96];
    if (opn->kind == OP_ADAMW) {
        kbench_result r;
        if (kbench_adamw((size_t)count, repeat, vec, &r))
            return 1;
        char label[64];
        snprintf(label, sizeof label, "%d parameters", count);
        if (vec)
            snprintf(kname, sizeof kname, "adamw_f32__%s", sfx);
        const row_kernel rk = {vec ? kname : "adamw_f32_ref__scalar", row_algo, row_isa, label};
        const kbench_shape none = {count, 1, 1, 0, 0, 0, 0, 0, 0};
        print_row(format, &rk, op, &none, 1, threads, &r, peak, 1, 0);
        fprintf(stderr, "incv3-kbench: AdamW over %d parameters: %.1f GB/s\n", count, r.gbytes);
        return 0;
    }

    if (opn->kind == OP_GEMM) {
        if (vec)
            snprintf(kname, sizeof kname, "gemm_f32_%s__%s", vec->gemm_tile, sfx);
        row_kernel rk = {vec ? kname : "gemm_f32_ref__scalar", row_algo, row_isa, NULL};
        char label[64];
        rk.shape = label;
        const size_t n_cases = mnk[0] ? 1 : sizeof gemm_suite / sizeof gemm_suite[0];
        int grows = 0;
        for (size_t i = 0; i < n_cases; i++) {
            int m = mnk[0], n = mnk[1], k = mnk[2], bt = 1;
            if (!mnk[0]) {
                const gemm_case *g = &gemm_suite[i];
                m = g->m_is_batch ? batch : g->m, n = g->n, k = g->k ? g->k : batch, bt = g->b_trans;
                fprintf(stderr, "incv3-kbench: %s\n", g->what);
            }
            kbench_result r;
            if (kbench_gemm(m, n, k, bt, repeat, vec, &r))
                return 1;
            /* The row's shape fields carry M, N, K as kh, k and c (JSON and CSV). */
            const kbench_shape gs = {k, 1, 1, n, m, 1, 1, 0, 0};
            snprintf(label, sizeof label, "M%d N%d K%d%s", m, n, k, bt ? " B^T" : "");
            print_row(format, &rk, op, &gs, 1, threads, &r, peak, grows++ == 0, 0);
        }
        return 0;
    }

    kbench_shape shapes[256];
    size_t n_shapes;
    if (have_shape) {
        shapes[0] = one;
        n_shapes = 1;
    } else if (suite && opn->kind == OP_POOL) {
        n_shapes = kbench_pool_suite(shapes, 256);
    } else if (suite) {
        n_shapes = kbench_suite(suite, shapes, 256);
        if (!n_shapes) {
            fprintf(stderr, "incv3-kbench: --suite %s: expected inception or model\n", suite);
            return 2;
        }
    } else {
        fprintf(stderr, "incv3-kbench: give --shape or --suite (or --peak)\nTry 'incv3-kbench --help'.\n");
        return 2;
    }

    int rows = 0, failures = 0;
    double total_flop = 0, total_s = 0, direct_total_s = 0, direct_rows_s = 0;
    for (size_t i = 0; i < n_shapes; i++) {
        const kbench_shape *s = &shapes[i];
        if (opn->kind == OP_CBR_FWD || opn->kind == OP_BR_BWD) {
            const int bwd = opn->kind == OP_BR_BWD;
            if (vec)
                snprintf(kname, sizeof kname, "%s__%s",
                         bwd ? "bn_relu_bwd_train_f32_blocked" : "conv_fwd_stats+bn_relu_fwd_train", sfx);
            const row_kernel rk = {
                vec ? kname : (bwd ? "relu_bwd+bn_bwd_train_f32_ref__scalar" : "conv_fwd+bn_fwd_train+relu_ref__scalar"),
                row_algo, row_isa, NULL};
            kbench_result r;
            if (kbench_conv_bn_relu(s, batch, repeat, vec, bwd, &r)) {
                failures++;
                continue;
            }
            print_row(format, &rk, op, s, batch, threads, &r, peak, rows == 0, 0);
            rows++;
            total_flop += r.gflops * r.median_ms / 1e3;
            total_s += r.median_ms / 1e3;
            continue;
        }
        if (opn->kind == OP_POOL) {
            if (vec)
                snprintf(kname, sizeof kname, "maxpool_{fwd,bwd}_f32_blocked__%s", sfx);
            const row_kernel rk = {vec ? kname : "maxpool_{fwd,bwd}_f32_ref__scalar", row_algo, row_isa, NULL};
            kbench_result r;
            if (kbench_pool(s, batch, repeat, vec, &r)) {
                failures++;
                continue;
            }
            print_row(format, &rk, op, s, batch, threads, &r, peak, rows == 0, 0);
            rows++;
            total_flop += r.gflops * r.median_ms / 1e3;
            total_s += r.median_ms / 1e3;
            continue;
        }
        kbench_result r;
        const incv3_conv_kernel *k = NULL;
        double direct_ms = 0;
        const int rc = conv_best(opn->pass, isa, algo, s, batch, repeat, &k, &r, &direct_ms);
        if (rc == NOT_SERVED) {
            fprintf(stderr, "incv3-kbench: %s: no %s kernel with --algo %s for %dx%dx%d->%d %dx%d s%d%s\n", op,
                    incv3_isa_name(isa), algo, s->c, s->h, s->w, s->k, s->kh, s->kw, s->stride,
                    have_shape ? " (Winograd serves stride-1 3x3, 1x3, 3x1, 1x7 and 7x1 convolutions)" : " (skipped)");
            if (have_shape)
                return 1;
            continue;
        }
        if (rc) {
            failures++;
            continue;
        }
        const row_kernel rk = {k->name, k->algo, k->isa, NULL};
        print_row(format, &rk, op, s, batch, threads, &r, peak, rows == 0, direct_ms > 0 ? direct_ms / r.median_ms : 0);
        rows++;
        total_flop += r.gflops * r.median_ms / 1e3;
        total_s += r.median_ms / 1e3;
        if (direct_ms > 0) {
            direct_total_s += direct_ms / 1e3;
            direct_rows_s += r.median_ms / 1e3;
        }
    }
    if (rows > 1)
        fprintf(stderr, "incv3-kbench: %d shapes, time-weighted %.1f GFLOP/s = %.1f%% of the %.1f GFLOP/s peak\n",
                rows, total_flop / total_s, 100.0 * total_flop / total_s / peak, peak);
    if (rows > 1 && direct_rows_s > 0)
        fprintf(stderr, "incv3-kbench: time-weighted speed-up over the direct kernel: %.2fx (%.1f ms direct, %.1f ms "
                        "these kernels)\n",
                direct_total_s / direct_rows_s, 1e3 * direct_total_s, 1e3 * direct_rows_s);
    return failures ? 1 : 0;
}
