/* incv3 bench: whole-network step time, images/s and peak memory. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cli/cli.h"
#include "dist/dist.h"
#include "incv3/model.h"
#include "incv3/train.h"
#include "train/trainer.h"
#include "util/cpu_load.h"
#include "util/rng.h"

static const char usage[] =
    "Usage: incv3 bench [--mode train|infer] [--image-size N] [--batch B] [--no-aux] [--width W]\n"
    "                   [--threads N[,N...]] [--smt] [--bind core|none] [--repeat R] [--isa I]\n"
    "                   [--conv-algo A] [--profile]\n"
    "                   [--format table|json]\n"
    "\n"
    "Times whole-network steps on random data after one warm-up step per thread count: a training step is\n"
    "forward (batch statistics) + loss + backward + AdamW; inference is a forward with running statistics.\n"
    "Prints the median and best ms per step, images/s, the speed-up and parallel efficiency (speed-up /\n"
    "threads, against the first count given scaled to one thread) and the process's peak resident memory.\n"
    "With several thread counts the steps are interleaved (1, 2, 1, 2, ...) so the host's noise hits every\n"
    "count alike. It also measures what other processes took meanwhile (the machine's busy time in /proc/stat\n"
    "less this process's): a count during whose steps other work took 0.25 cores or more says so (JSON:\n"
    "other_load_cores_max, the most over its steps); such a timing is not comparable. Under mpirun the\n"
    "node's other ranks count as other processes.\n"
    "\n"
    "  --mode M         train (default) or infer\n"
    "  --image-size N   input size (default 299)\n"
    "  --batch B        images per step (default 32)\n"
    "  --no-aux         without the auxiliary head\n"
    "  --width W        channel multiplier (default 1)\n"
    "  --threads LIST   thread counts, e.g. 1,2 (default: OMP_NUM_THREADS, else one per physical core); the\n"
    "                   team is made for the largest and the smaller counts use its first threads\n"
    "  --smt            let SMT siblings (hardware threads) count and be used\n"
    "  --bind B         core (default: each thread pinned to its core with hwloc) or none\n"
    "  --repeat R       timed steps per thread count (default 3)\n"
    "  --isa I          auto (default), scalar, ...\n"
    "  --conv-algo A    auto (default), direct, winograd, gemm, ... (incv3 train --help lists them)\n"
    "  --profile        then R more steps at the last thread count timing every layer's forward and\n"
    "                   backward, printed with the convolutions' kernels and GFLOP/s to standard error\n"
    "  --format F       table (default) or json (one object per thread count and line, nothing else on\n"
    "                   standard output)\n"
    "  -h, --help       this help\n"
    "\n"
    "Under mpirun (a build with -Dmpi=enabled) --batch is the global batch, split evenly among the ranks, and\n"
    "each step includes the gradient allreduce: rank 0 prints the global images/s and the time per step spent\n"
    "waiting for the allreduce to finish after backward (what overlapping did not hide).\n";

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Everything one timed step needs. */
typedef struct bench_ctx {
    incv3_graph *g;
    incv3_adamw *opt;
    const float *input;
    const int64_t *labels;
    float *dl;
    int batch, classes, train, with_aux; /* batch: this rank's part of the global batch */
    incv3_dist *dist;
} bench_ctx;

static int run_step(const bench_ctx *b, incv3_error *err)
{
    incv3_forward_opts fo = {.mode = b->train ? INCV3_TRAIN : INCV3_INFER, .outputs = b->with_aux ? 3u : 1u,
                             .for_backward = b->train};
    if (incv3_graph_forward(b->g, b->input, b->batch, &fo, err))
        return -1;
    if (!b->train)
        return 0;
    double loss, aux_loss = 0;
    const size_t nk = (size_t)b->batch * b->classes;
    if (incv3_softmax_xent(incv3_graph_output(b->g, 0)->data, b->labels, b->batch, b->classes, 1e-4f, 1.0f, b->dl,
                           &loss, err) ||
        (b->with_aux && incv3_softmax_xent(incv3_graph_output(b->g, 1)->data, b->labels, b->batch, b->classes,
                                           1e-4f, 0.3f, b->dl + nk, &aux_loss, err)))
        return -1;
    const float *d_out[INCV3_MAX_OUTPUTS] = {b->dl, b->with_aux ? b->dl + nk : NULL, NULL, NULL};
    if (incv3_graph_backward(b->g, d_out, NULL, err) || incv3_dist_grads_finish(b->dist, b->g, err))
        return -1;
    incv3_adamw_step(b->opt, b->g);
    return 0;
}

static double median_of(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Per-layer times of the profiled steps, to stderr: convolutions with their kernels and GFLOP/s, then the
 * total per layer kind. */
static void print_profile(const incv3_graph *g, int batch, int steps, int threads)
{
    fprintf(stderr, "\nprofile: %d step%s at %d thread%s, ms per step\n", steps, steps > 1 ? "s" : "", threads,
            threads > 1 ? "s" : "");
    fprintf(stderr, "%-30s %-9s %9s %9s %8s %8s  %s\n", "layer", "kind", "fwd_ms", "bwd_ms", "fwd_GF/s", "bwd_GF/s",
            "kernels (fwd / bwd-data / bwd-weights)");
    const char *kinds[16];
    double kind_ms[16] = {0}, total = 0;
    int nkinds = 0;
    for (size_t i = 1; i < incv3_graph_node_count(g); i++) {
        incv3_node_info info;
        incv3_graph_node_info(g, (int)i, &info);
        double f, b;
        incv3_graph_node_time(g, (int)i, &f, &b);
        f *= 1e3 / steps, b *= 1e3 / steps;
        total += f + b;
        int k = 0;
        while (k < nkinds && strcmp(kinds[k], info.kind))
            k++;
        if (k == nkinds && nkinds < 16)
            kinds[nkinds++] = info.kind;
        if (k < 16)
            kind_ms[k] += f + b;
        if (strcmp(info.kind, "conv") != 0)
            continue;
        const double flop = 2.0 * info.macs * batch;
        char fg[16] = "-", bg[16] = "-";
        if (f > 0)
            snprintf(fg, sizeof fg, "%.1f", flop / f / 1e6);
        if (b > 0)
            snprintf(bg, sizeof bg, "%.1f", 2 * flop / b / 1e6);
        fprintf(stderr, "%-30s %-9s %9.2f %9.2f %8s %8s  %s / %s / %s\n", info.name, info.kind, f, b, fg, bg,
                info.kernel_fwd ? info.kernel_fwd : "-", info.kernel_bwd_data ? info.kernel_bwd_data : "-",
                info.kernel_bwd_weights ? info.kernel_bwd_weights : "-");
    }
    fprintf(stderr, "per kind:");
    for (int k = 0; k < nkinds; k++)
        fprintf(stderr, " %s %.1f ms (%.0f%%)%s", kinds[k], kind_ms[k], total > 0 ? 100 * kind_ms[k] / total : 0,
                k + 1 < nkinds ? "," : "\n");
    fprintf(stderr, "layers in total: %.1f ms per step (the rest of a step: loss, optimizer, reorders at the graph's "
                    "edges)\n",
            total);
}

static int bench_run(incv3_dist *dist, incv3_model_config *cfgp, int batch, int repeat, int train, int json,
                     int profile, int *counts, int ncounts, const char *isa, const char *algo,
                     incv3_train_config *team_cfgp);

int cmd_bench(int argc, char **argv)
{
    static const struct option opts[] = {
        {"mode", required_argument, NULL, 'm'},      {"image-size", required_argument, NULL, 's'},
        {"batch", required_argument, NULL, 'b'},     {"no-aux", no_argument, NULL, 'n'},
        {"width", required_argument, NULL, 'w'},     {"repeat", required_argument, NULL, 'r'},
        {"isa", required_argument, NULL, 'i'},       {"conv-algo", required_argument, NULL, 'a'},
        {"format", required_argument, NULL, 'f'},    {"threads", required_argument, NULL, 't'},
        {"profile", no_argument, NULL, 'p'},         {"smt", no_argument, NULL, 'S'},
        {"bind", required_argument, NULL, 'B'},      {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    incv3_model_config cfg = incv3_model_config_default();
    int batch = 32, repeat = 3, train = 1, json = 0, profile = 0, counts[16], ncounts = 0;
    const char *isa = NULL, *algo = NULL;
    incv3_train_config team_cfg;
    incv3_train_config_default(&team_cfg);
    int c;
    while ((c = cli_getopt("bench", argc, argv, "h", opts)) != -1) {
        switch (c) {
        case 'm':
            if (strcmp(optarg, "train") != 0 && strcmp(optarg, "infer") != 0) {
                fprintf(stderr, "incv3 bench: --mode %s: must be train or infer\n", optarg);
                return cli_usage_hint("bench");
            }
            train = strcmp(optarg, "train") == 0;
            break;
        case 's':
            if (cli_parse_int("bench", "--image-size", optarg, 1, 100000, &cfg.image_size))
                return cli_usage_hint("bench");
            break;
        case 'b':
            if (cli_parse_int("bench", "--batch", optarg, 1, 4096, &batch))
                return cli_usage_hint("bench");
            break;
        case 'n':
            cfg.aux = 0;
            break;
        case 'w':
            if (cli_parse_double("bench", "--width", optarg, -HUGE_VAL, HUGE_VAL, &cfg.width))
                return cli_usage_hint("bench");
            break;
        case 'r':
            if (cli_parse_int("bench", "--repeat", optarg, 1, 100000, &repeat))
                return cli_usage_hint("bench");
            break;
        case 'i':
            isa = optarg;
            break;
        case 'a':
            algo = optarg;
            break;
        case 't':
            if (!(ncounts = cli_parse_threads("bench", optarg, counts, 16)))
                return cli_usage_hint("bench");
            break;
        case 'p':
            profile = 1;
            break;
        case 'S':
            team_cfg.smt = 1;
            break;
        case 'B':
            if (strcmp(optarg, "core") && strcmp(optarg, "none")) {
                fprintf(stderr, "incv3 bench: --bind %s: expected core or none\n", optarg);
                return cli_usage_hint("bench");
            }
            snprintf(team_cfg.bind, sizeof team_cfg.bind, "%s", optarg);
            break;
        case 'f':
            if (strcmp(optarg, "table") != 0 && strcmp(optarg, "json") != 0) {
                fprintf(stderr, "incv3 bench: --format %s: must be table or json\n", optarg);
                return cli_usage_hint("bench");
            }
            json = strcmp(optarg, "json") == 0;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            return cli_usage_hint("bench");
        }
    }
    if (optind < argc) {
        fprintf(stderr, "incv3 bench: unexpected argument '%s'\n", argv[optind]);
        return cli_usage_hint("bench");
    }
    incv3_error err;
    incv3_dist *dist = NULL;
    if (incv3_dist_init(&dist, &err)) {
        fprintf(stderr, "incv3 bench: %s\n", err.msg);
        incv3_dist_abort(dist, 1, "MPI could not start");
        incv3_dist_finalize(dist);
        return 1;
    }
    const int root = incv3_dist_rank(dist) == 0, ranks = incv3_dist_size(dist);
    if (!root) /* rank 0 reports for all; the others' stderr keeps their own errors */
        if (!freopen("/dev/null", "w", stdout))
            return 1;
    int rc;
    if (batch % ranks) {
        fprintf(stderr, "incv3 bench: --batch %d cannot be split evenly among %d MPI ranks: --batch is the global "
                        "batch (give a multiple of %d)\n", batch, ranks, ranks);
        rc = EXIT_USAGE;
    } else {
        team_cfg.dist = dist;
        rc = bench_run(dist, &cfg, batch, repeat, train, json, profile, counts, ncounts, isa, algo, &team_cfg);
    }
    if (rc && ranks > 1) /* the other ranks may be waiting for this one */
        incv3_dist_abort(dist, rc, "incv3 bench failed");
    incv3_dist_finalize(dist);
    return rc;
}

/* The timed steps (this rank's batch / ranks images each) and the report; returns the exit status. */
static int bench_run(incv3_dist *dist, incv3_model_config *cfgp, int batch, int repeat, int train, int json,
                     int profile, int *counts, int ncounts, const char *isa, const char *algo,
                     incv3_train_config *team_cfgp)
{
    incv3_model_config cfg = *cfgp;
    incv3_train_config team_cfg = *team_cfgp;
    const int ranks = incv3_dist_size(dist), global_batch = batch, root = incv3_dist_rank(dist) == 0;
    batch /= ranks;
    incv3_error err;
    for (int t = 0; t < ncounts; t++)
        team_cfg.threads = counts[t] > team_cfg.threads ? counts[t] : team_cfg.threads;
    incv3_sched_started team;
    if (incv3_train_start_team(&team_cfg, &team, &err)) {
        fprintf(stderr, "incv3 bench: %s\n", err.msg);
        return 1;
    }
    if (ncounts == 0)
        counts[ncounts++] = team.threads;
    for (int t = 0; t < ncounts; t++)
        counts[t] = counts[t] > team.threads ? team.threads : counts[t]; /* clamped: the warning said so */
    if (root)
        fprintf(stderr, "incv3 bench: threads: %s\n", team.summary);
    if (incv3_model_config_check(&cfg, &err)) {
        fprintf(stderr, "incv3 bench: %s\n", err.msg);
        return EXIT_USAGE;
    }
    if (incv3_kernels_check(isa, algo, &err)) {
        fprintf(stderr, "incv3 bench: %s\n", err.msg);
        return EXIT_USAGE;
    }
    incv3_graph *g = incv3_inception_v3(&cfg, &err);
    if (!g || incv3_graph_set_kernels(g, isa, algo, &err)) {
        fprintf(stderr, "incv3 bench: %s\n", err.msg);
        incv3_graph_free(g);
        return 1;
    }
    incv3_graph_init_params(g, 1);
    /* 8 MiB buckets, as the trainer. */
    if (incv3_dist_attach(dist, g, 0, (size_t)8 << 20, &err)) {
        fprintf(stderr, "incv3 bench: %s\n", err.msg);
        incv3_dist_abort(dist, 1, "MPI failed");
        incv3_graph_free(g);
        return 1;
    }
    size_t in_count = (size_t)batch * 3 * cfg.image_size * cfg.image_size;
    float *input = malloc(in_count * sizeof(float));
    int64_t *labels = malloc((size_t)batch * sizeof *labels);
    float *dl = malloc((size_t)batch * cfg.classes * 2 * sizeof(float));
    double *times = malloc((size_t)repeat * (size_t)ncounts * sizeof(double));
    double *waits = calloc((size_t)repeat * (size_t)ncounts, sizeof(double));
    double *other = malloc((size_t)repeat * (size_t)ncounts * sizeof(double)); /* other processes' cores */
    incv3_adamw *opt = train ? incv3_adamw_new(g, (incv3_adamw_hparams){1e-4f, 0.9f, 0.999f, 1e-8f, 0.01f}, &err)
                             : NULL;
    int rc = 0;
    if (!input || !labels || !dl || !times || !waits || !other || (train && !opt)) {
        fprintf(stderr, "incv3 bench: out of memory for batch %d at %dx%d\n", batch, cfg.image_size,
                cfg.image_size);
        rc = 1;
        goto done;
    }
    uint64_t st = 42;
    for (size_t i = 0; i < in_count; i++)
        input[i] = (float)(2.0 * incv3_rng_uniform(&st) - 1.0);
    for (int i = 0; i < batch; i++)
        labels[i] = (int64_t)(incv3_rng_next(&st) % (uint64_t)cfg.classes);
    const bench_ctx b = {g, opt, input, labels, dl, batch, cfg.classes, train, train && cfg.aux, dist};
    const char *mode = train ? "train" : "infer";
    /* One warm-up step per count (first-touch, kernel choice, caches), then rounds over the counts. */
    for (int t = 0; t < ncounts; t++) {
        if (incv3_sched_use_threads(&team, counts[t], &err))
            goto step_failed;
        double t0 = now_seconds();
        if (run_step(&b, &err))
            goto step_failed;
        incv3_dist_take_wait_seconds(dist);
        if (!json && root)
            fprintf(stderr, "%s warm-up, %d thread%s: %.1f ms\n", mode, counts[t], counts[t] > 1 ? "s" : "",
                    1e3 * (now_seconds() - t0));
    }
    for (int r = 0; r < repeat; r++) {
        for (int t = 0; t < ncounts; t++) {
            if (incv3_sched_use_threads(&team, counts[t], &err))
                goto step_failed;
            const incv3_cpu_sample c0 = incv3_cpu_sample_now(NULL);
            if (run_step(&b, &err))
                goto step_failed;
            const incv3_cpu_sample c1 = incv3_cpu_sample_now(NULL);
            times[(size_t)t * repeat + r] = c1.wall_s - c0.wall_s;
            other[(size_t)t * repeat + r] = incv3_cpu_other_cores(&c0, &c1);
            waits[(size_t)t * repeat + r] = incv3_dist_take_wait_seconds(dist);
            if (!json && root)
                fprintf(stderr, "%s step %d/%d, %d thread%s: %.1f ms\n", mode, r + 1, repeat, counts[t],
                        counts[t] > 1 ? "s" : "", 1e3 * times[(size_t)t * repeat + r]);
        }
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const double rss_mib = ru.ru_maxrss / 1024.0;
    double base_rate = 0;
    for (int t = 0; t < ncounts; t++) {
        double *v = times + (size_t)t * repeat;
        const double median = median_of(v, repeat), rate = global_batch / median;
        const double wait = median_of(waits + (size_t)t * repeat, repeat);
        double other_max = -1;
        for (int r = 0; r < repeat; r++)
            other_max = other[(size_t)t * repeat + r] > other_max ? other[(size_t)t * repeat + r] : other_max;
        char other_json[64] = ",\"other_load_cores_max\":null", other_text[128] = "";
        if (other_max >= 0)
            snprintf(other_json, sizeof other_json, ",\"other_load_cores_max\":%.2f", other_max);
        if (other_max >= 0.25)
            snprintf(other_text, sizeof other_text, "; other processes took up to %.2f cores meanwhile", other_max);
        char dist_json[128] = "", dist_text[160] = "";
        if (ranks > 1) {
            snprintf(dist_json, sizeof dist_json, ",\"ranks\":%d,\"comm_wait_ms_per_step\":%.3f", ranks, 1e3 * wait);
            snprintf(dist_text, sizeof dist_text, ", %d MPI ranks of %d images (threads per rank), waiting %.1f ms "
                     "per step for the gradient allreduce (%.0f%%)", ranks, batch, 1e3 * wait, 100 * wait / median);
        }
        if (t == 0)
            base_rate = rate / counts[0]; /* one thread's share at the first count */
        const double speedup = rate / base_rate, eff = speedup / counts[t];
        if (json)
            printf("{\"mode\":\"%s\",\"image_size\":%d,\"batch\":%d,\"aux\":%s,\"width\":%g,\"isa\":\"%s\","
                   "\"conv_algo\":\"%s\",\"threads\":%d,\"median_ms_per_step\":%.3f,\"min_ms_per_step\":%.3f,"
                   "\"images_per_s\":%.3f,\"speedup\":%.3f,\"efficiency\":%.3f,\"peak_rss_mib\":%.1f%s%s}\n",
                   mode, cfg.image_size, global_batch, cfg.aux ? "true" : "false", cfg.width, isa ? isa : "auto",
                   algo ? algo : "auto", counts[t], 1e3 * median, 1e3 * v[0], rate, speedup, eff, rss_mib, other_json,
                   dist_json);
        else
            printf("%s step, %dx%d, batch %d, aux %s, width %g, %d thread%s: median %.1f ms (best %.1f ms), "
                   "%.2f images/s, speed-up %.2f, efficiency %.0f%%, peak RSS %.0f MiB%s%s\n",
                   mode, cfg.image_size, cfg.image_size, global_batch, cfg.aux ? "on" : "off", cfg.width, counts[t],
                   counts[t] > 1 ? "s" : "", 1e3 * median, 1e3 * v[0], rate, speedup, 100 * eff, rss_mib, dist_text,
                   other_text);
    }
    if (profile) {
        /* Separate steps, so the per-layer clock reads do not touch the timings above. */
        if (incv3_graph_set_profiling(g, 1)) {
            fputs("incv3 bench: out of memory for the profile\n", stderr);
            rc = 1;
            goto done;
        }
        for (int r = 0; r < repeat; r++)
            if (run_step(&b, &err))
                goto step_failed;
        if (root)
            print_profile(g, batch, repeat, counts[ncounts - 1]);
    }
    goto done;
step_failed:
    fprintf(stderr, "incv3 bench: %s\n", err.msg);
    incv3_dist_abort(dist, 1, "a step failed");
    rc = 1;
done:
    incv3_adamw_free(opt);
    free(other);
    free(waits);
    free(times);
    free(dl);
    free(labels);
    free(input);
    incv3_graph_free(g);
    return rc;
}
