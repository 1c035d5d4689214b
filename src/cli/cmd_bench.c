/* incv3 bench: whole-network step time, images/s and peak memory. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cli/cli.h"
#include "incv3/model.h"
#include "incv3/train.h"
#include "util/rng.h"

static const char usage[] =
    "Usage: incv3 bench [--mode train|infer] [--image-size N] [--batch B] [--no-aux] [--width W]\n"
    "                   [--repeat R] [--isa I] [--conv-algo A] [--format table|json]\n"
    "\n"
    "Times whole-network steps on random data after one warm-up step: a training step is forward (batch\n"
    "statistics) + loss + backward + AdamW; inference is a forward with running statistics. Prints the median\n"
    "and best ms per step, images/s and the process's peak resident memory.\n"
    "\n"
    "  --mode M         train (default) or infer\n"
    "  --image-size N   input size (default 299)\n"
    "  --batch B        images per step (default 32)\n"
    "  --no-aux         without the auxiliary head\n"
    "  --width W        channel multiplier (default 1)\n"
    "  --repeat R       timed steps (default 3)\n"
    "  --isa I          auto (default), scalar, ...\n"
    "  --conv-algo A    auto (default), ref, ...\n"
    "  --format F       table (default) or json (one object per line)\n"
    "  -h, --help       this help\n";

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

int cmd_bench(int argc, char **argv)
{
    static const struct option opts[] = {
        {"mode", required_argument, NULL, 'm'},      {"image-size", required_argument, NULL, 's'},
        {"batch", required_argument, NULL, 'b'},     {"no-aux", no_argument, NULL, 'n'},
        {"width", required_argument, NULL, 'w'},     {"repeat", required_argument, NULL, 'r'},
        {"isa", required_argument, NULL, 'i'},       {"conv-algo", required_argument, NULL, 'a'},
        {"format", required_argument, NULL, 'f'},    {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    incv3_model_config cfg = incv3_model_config_default();
    int batch = 32, repeat = 3, train = 1, json = 0;
    const char *isa = NULL, *algo = NULL;
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
    size_t in_count = (size_t)batch * 3 * cfg.image_size * cfg.image_size;
    float *input = malloc(in_count * sizeof(float));
    int64_t *labels = malloc((size_t)batch * sizeof *labels);
    float *dl = malloc((size_t)batch * cfg.classes * 2 * sizeof(float));
    double *times = malloc((size_t)(repeat + 1) * sizeof(double));
    incv3_adamw *opt = train ? incv3_adamw_new(g, (incv3_adamw_hparams){1e-4f, 0.9f, 0.999f, 1e-8f, 0.01f}, &err)
                             : NULL;
    int rc = 0;
    if (!input || !labels || !dl || !times || (train && !opt)) {
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
    int with_aux = train && cfg.aux;
    for (int it = 0; it <= repeat; it++) {
        double t0 = now_seconds();
        incv3_forward_opts fo = {.mode = train ? INCV3_TRAIN : INCV3_INFER, .outputs = with_aux ? 3u : 1u,
                                 .for_backward = train};
        if (incv3_graph_forward(g, input, batch, &fo, &err)) {
            fprintf(stderr, "incv3 bench: %s\n", err.msg);
            rc = 1;
            goto done;
        }
        if (train) {
            double loss, aux_loss = 0;
            size_t nk = (size_t)batch * cfg.classes;
            if (incv3_softmax_xent(incv3_graph_output(g, 0)->data, labels, batch, cfg.classes, 1e-4f, 1.0f, dl,
                                   &loss, &err) ||
                (with_aux && incv3_softmax_xent(incv3_graph_output(g, 1)->data, labels, batch, cfg.classes, 1e-4f,
                                                0.3f, dl + nk, &aux_loss, &err))) {
                fprintf(stderr, "incv3 bench: %s\n", err.msg);
                rc = 1;
                goto done;
            }
            const float *d_out[INCV3_MAX_OUTPUTS] = {dl, with_aux ? dl + nk : NULL, NULL, NULL};
            if (incv3_graph_backward(g, d_out, NULL, &err)) {
                fprintf(stderr, "incv3 bench: %s\n", err.msg);
                rc = 1;
                goto done;
            }
            incv3_adamw_step(opt, g);
        }
        times[it] = now_seconds() - t0;
        if (!json)
            fprintf(stderr, "%s step %d/%d: %.1f ms%s\n", train ? "train" : "infer", it, repeat, 1e3 * times[it],
                    it == 0 ? " (warm-up)" : "");
    }
    qsort(times + 1, (size_t)repeat, sizeof(double), cmp_double);
    double median = repeat % 2 ? times[1 + repeat / 2] : 0.5 * (times[repeat / 2] + times[repeat / 2 + 1]);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss_mib = ru.ru_maxrss / 1024.0;
    const char *mode = train ? "train" : "infer";
    if (json)
        printf("{\"mode\":\"%s\",\"image_size\":%d,\"batch\":%d,\"aux\":%s,\"width\":%g,\"isa\":\"%s\","
               "\"conv_algo\":\"%s\",\"median_ms_per_step\":%.3f,\"min_ms_per_step\":%.3f,\"images_per_s\":%.3f,"
               "\"peak_rss_mib\":%.1f}\n",
               mode, cfg.image_size, batch, cfg.aux ? "true" : "false", cfg.width, isa ? isa : "auto",
               algo ? algo : "auto", 1e3 * median, 1e3 * times[1], batch / median, rss_mib);
    else
        printf("%s step, %dx%d, batch %d, aux %s, width %g: median %.1f ms (best %.1f ms), %.2f images/s, "
               "peak RSS %.0f MiB\n",
               mode, cfg.image_size, cfg.image_size, batch, cfg.aux ? "on" : "off", cfg.width, 1e3 * median,
               1e3 * times[1], batch / median, rss_mib);
done:
    incv3_adamw_free(opt);
    free(times);
    free(dl);
    free(labels);
    free(input);
    incv3_graph_free(g);
    return rc;
}
