#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "graph/memory_plan.h"
#include "incv3/model.h"

static const char usage[] =
    "Usage: incv3 summary [--image-size N] [--no-aux] [--classes K] [--width W] [--kernels [--isa I]\n"
    "                     [--conv-algo A] [--batch B] [--plan FILE]]\n"
    "       incv3 summary --memory [--image-size N] [--no-aux] [--width W] [--isa I] [--conv-algo A]\n"
    "                     [--batch B] [--plan FILE]\n"
    "\n"
    "Prints the model as a table in the seed's format (Layer (type) | Output Shape | Param #, with block\n"
    "headers), then the parameter totals and the forward multiply-accumulates per image.\n"
    "\n"
    "  --image-size N   input height and width (default 299, at least 75)\n"
    "  --no-aux         without the auxiliary head (needed below 299: the aux head wants a 17x17 grid)\n"
    "  --classes K      output classes (default 10)\n"
    "  --width W        channel multiplier in (0, 4] (default 1; e.g. 0.25 for small test models)\n"
    "  --memory         instead print the memory plan of one training step (forward, backward, AdamW) at\n"
    "                   --batch B and OMP_NUM_THREADS threads: parameters, gradients, moments, workspaces,\n"
    "                   input, and the activations and their gradients at the peak of the executor's\n"
    "                   allocations, by category and by layer kind (--isa, --conv-algo, --plan apply)\n"
    "  --kernels        also print the kernel every layer runs (forward, backward-data, backward-weights)\n"
    "  --isa I          with --kernels or --memory: auto (default), scalar, avx2, neon\n"
    "  --conv-algo A    with --kernels or --memory: auto (default: per layer the fastest, timed once per machine and\n"
    "                   cached), winograd (the fastest Winograd tile, direct where none serves), or one of\n"
    "                   direct, winograd-f2x2, winograd-f4x4, winograd-f6x6, winograd-f2, winograd-f4, gemm, ref\n"
    "  --batch B        with --kernels or --memory: the batch the plan is made for (default 32)\n"
    "  --plan FILE      with --kernels or --memory: follow a saved plan (a run's conv-plan.json)\n"
    "  -h, --help       this help\n";

int cmd_summary(int argc, char **argv)
{
    static const struct option opts[] = {
        {"image-size", required_argument, NULL, 's'}, {"no-aux", no_argument, NULL, 'n'},
        {"classes", required_argument, NULL, 'k'},    {"width", required_argument, NULL, 'w'},
        {"kernels", no_argument, NULL, 'K'},          {"isa", required_argument, NULL, 'i'},
        {"conv-algo", required_argument, NULL, 'a'},  {"batch", required_argument, NULL, 'b'},
        {"plan", required_argument, NULL, 'p'},       {"help", no_argument, NULL, 'h'},
        {"memory", no_argument, NULL, 'M'},
        {NULL, 0, NULL, 0},
    };
    int kernels = 0, memory = 0, batch = 32;
    const char *isa = NULL, *algo = NULL, *plan = NULL;
    incv3_model_config cfg = incv3_model_config_default();
    int c;
    while ((c = cli_getopt("summary", argc, argv, "h", opts)) != -1) {
        switch (c) {
        case 's':
            if (cli_parse_int("summary", "--image-size", optarg, 1, 100000, &cfg.image_size))
                return cli_usage_hint("summary");
            break;
        case 'n':
            cfg.aux = 0;
            break;
        case 'k':
            if (cli_parse_int("summary", "--classes", optarg, 2, 100000, &cfg.classes))
                return cli_usage_hint("summary");
            break;
        case 'w':
            /* The range is checked with the rest of the model configuration. */
            if (cli_parse_double("summary", "--width", optarg, -HUGE_VAL, HUGE_VAL, &cfg.width))
                return cli_usage_hint("summary");
            break;
        case 'K':
            kernels = 1;
            break;
        case 'M':
            memory = 1;
            break;
        case 'i':
            isa = optarg;
            break;
        case 'a':
            algo = optarg;
            break;
        case 'b':
            if (cli_parse_int("summary", "--batch", optarg, 1, 4096, &batch))
                return cli_usage_hint("summary");
            break;
        case 'p':
            plan = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            return cli_usage_hint("summary");
        }
    }
    if (optind < argc) {
        fprintf(stderr, "incv3 summary: unexpected argument '%s'\n", argv[optind]);
        return cli_usage_hint("summary");
    }
    if (memory && kernels) {
        fprintf(stderr, "incv3 summary: --memory and --kernels are separate reports; give one\n");
        return cli_usage_hint("summary");
    }
    if (plan && !kernels && !memory) {
        /* A plan that is silently not read would look like one that was followed. */
        fprintf(stderr, "incv3 summary: --plan %s needs --kernels or --memory (the plan decides the kernels)\n", plan);
        return cli_usage_hint("summary");
    }
    incv3_error err;
    if (incv3_kernels_check(isa, algo, &err)) {
        fprintf(stderr, "incv3 summary: %s\n", err.msg);
        return EXIT_USAGE;
    }
    if (incv3_model_config_check(&cfg, &err)) {
        fprintf(stderr, "incv3 summary: %s\n", err.msg);
        return EXIT_USAGE;
    }
    incv3_graph *g = incv3_inception_v3(&cfg, &err);
    if (!g) {
        fprintf(stderr, "incv3 summary: %s\n", err.msg);
        return 1;
    }
    if (!memory)
        incv3_print_summary(g, &cfg, stdout);
    if (kernels || memory) {
        if (incv3_graph_set_kernels(g, isa, algo, &err)) {
            fprintf(stderr, "incv3 summary: %s\n", err.msg);
            incv3_graph_free(g);
            return EXIT_USAGE;
        }
        if (plan && incv3_graph_load_conv_plan(g, plan, &err)) {
            fprintf(stderr, "incv3 summary: --plan %s\n", err.msg);
            incv3_graph_free(g);
            return 1;
        }
        if (memory) {
            incv3_memory_plan mp;
            if (incv3_memory_plan_make(g, batch, &mp, &err)) {
                fprintf(stderr, "incv3 summary: %s\n", err.msg);
                incv3_graph_free(g);
                return 1;
            }
            incv3_memory_plan_print(&mp, stdout);
        } else {
            fputc('\n', stdout);
            incv3_print_kernels(g, batch, stdout);
        }
    }
    incv3_graph_free(g);
    return 0;
}
