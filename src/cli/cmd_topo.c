/* incv3 topo: what hwloc sees, the thread team the scheduler makes, and its plan for every convolution. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "incv3/model.h"
#include "sched/partition.h"
#include "sched/print.h"
#include "sched/team.h"
#include "sched/topology.h"

static const char usage[] =
    "Usage: incv3 topo [--synthetic DESC | --xml FILE] [--threads N] [--smt] [--bind core|none]\n"
    "                  [--policy spread|compact|auto] [--image-size S] [--batch B] [--no-aux] [--width W]\n"
    "\n"
    "Prints the machine as hwloc sees it (packages, NUMA nodes, L3 groups, cores with their L2 and L1d, PUs),\n"
    "the thread team (how many threads, which core and PU each runs on) and, for every convolution of the\n"
    "model, how each pass would be cut into tiles: tile size, tiles per thread, the tile's working set against\n"
    "the per-thread L2 share, and the expected load imbalance (busiest thread / mean).\n"
    "\n"
    "  --synthetic DESC  plan for a machine described in hwloc's synthetic syntax instead of this one, e.g.\n"
    "                    \"pack:2 l3:4(size=32MiB) l2:8(size=512KiB) l1d:1(size=32KiB) core:1 pu:2\"\n"
    "  --xml FILE        plan for a machine saved as XML ('lstopo FILE.xml' on that machine)\n"
    "  --threads N       threads (default: OMP_NUM_THREADS, else one per core); never more than the machine\n"
    "                    runs: one per core, or one per hardware thread with --smt\n"
    "  --smt             use hardware threads (SMT siblings), one per PU by default\n"
    "  --bind B          core (default: each thread pinned to its PU) or none\n"
    "  --policy P        spread (round-robin over packages, NUMA nodes and L3 groups), compact (package 0\n"
    "                    first) or auto (default: spread when the threads leave cores free)\n"
    "  --image-size S    model input size (default 299, at least 75)\n"
    "  --batch B         batch the plans are made for (default 32)\n"
    "  --no-aux          without the auxiliary head (needed below 299)\n"
    "  --width W         channel multiplier in (0, 4] (default 1)\n"
    "  -h, --help        this help\n";

/* The plans of every convolution of g for the team, as a table. Returns the worst imbalance. */
static double print_plans(incv3_graph *g, int batch, const incv3_team *team, FILE *out)
{
    double worst = 1.0;
    int over = 0, convs = 0;
    incv3_partition_print_header(out);
    const size_t n = incv3_graph_node_count(g);
    for (size_t i = 0; i < n; i++) {
        incv3_node_info info;
        incv3_graph_node_info(g, (int)i, &info);
        if (strcmp(info.kind, "conv") != 0)
            continue;
        incv3_conv_shape s = {.n = batch, .c = info.in_c, .h = info.in_h, .w = info.in_w, .k = info.c,
                              .kh = info.kh, .kw = info.kw, .stride_h = info.stride, .stride_w = info.stride,
                              .pad_top = info.pad_h, .pad_bottom = info.pad_h, .pad_left = info.pad_w,
                              .pad_right = info.pad_w};
        if (incv3_conv_shape_finish(&s))
            continue;
        convs++;
        for (int pass = INCV3_CONV_FWD; pass <= INCV3_CONV_BWD_WEIGHTS; pass++) {
            incv3_partition p;
            if (incv3_partition_plan(&s, (incv3_conv_pass)pass, team->threads, team->l2_share, &p))
                continue;
            incv3_partition_print_row(pass == INCV3_CONV_FWD ? info.name : "", &p, out);
            worst = p.imbalance > worst ? p.imbalance : worst;
            over += !p.fits;
        }
    }
    fprintf(out, "%d convolutions x 3 passes; worst imbalance %.3f; %d plan%s over the L2 budget\n", convs, worst, over,
            over == 1 ? "" : "s");
    return worst;
}

int cmd_topo(int argc, char **argv)
{
    static const struct option opts[] = {
        {"synthetic", required_argument, NULL, 'S'}, {"xml", required_argument, NULL, 'X'},
        {"threads", required_argument, NULL, 't'},   {"smt", no_argument, NULL, 'm'},
        {"bind", required_argument, NULL, 'B'},      {"policy", required_argument, NULL, 'P'},
        {"image-size", required_argument, NULL, 's'}, {"batch", required_argument, NULL, 'b'},
        {"no-aux", no_argument, NULL, 'n'},          {"width", required_argument, NULL, 'w'},
        {"help", no_argument, NULL, 'h'},            {NULL, 0, NULL, 0},
    };
    const char *synthetic = NULL, *xml = NULL;
    incv3_team_request req = {.threads = 0, .smt = 0, .bind = INCV3_BIND_CORE, .policy = INCV3_POLICY_AUTO};
    incv3_model_config cfg = incv3_model_config_default();
    int batch = 32, c;
    while ((c = cli_getopt("topo", argc, argv, "h", opts)) != -1) {
        switch (c) {
        case 'S':
            synthetic = optarg;
            break;
        case 'X':
            xml = optarg;
            break;
        case 't':
            if (cli_parse_int("topo", "--threads", optarg, 1, 1 << 20, &req.threads))
                return cli_usage_hint("topo");
            break;
        case 'm':
            req.smt = 1;
            break;
        case 'B':
            if (incv3_bind_parse(optarg, &req.bind)) {
                fprintf(stderr, "incv3 topo: --bind %s: must be core or none\n", optarg);
                return cli_usage_hint("topo");
            }
            break;
        case 'P':
            if (incv3_policy_parse(optarg, &req.policy)) {
                fprintf(stderr, "incv3 topo: --policy %s: must be spread, compact or auto\n", optarg);
                return cli_usage_hint("topo");
            }
            break;
        case 's':
            if (cli_parse_int("topo", "--image-size", optarg, 1, 100000, &cfg.image_size))
                return cli_usage_hint("topo");
            break;
        case 'b':
            if (cli_parse_int("topo", "--batch", optarg, 1, 4096, &batch))
                return cli_usage_hint("topo");
            break;
        case 'n':
            cfg.aux = 0;
            break;
        case 'w':
            if (cli_parse_double("topo", "--width", optarg, -HUGE_VAL, HUGE_VAL, &cfg.width))
                return cli_usage_hint("topo");
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            return cli_usage_hint("topo");
        }
    }
    if (optind < argc) {
        fprintf(stderr, "incv3 topo: unexpected argument '%s'\n", argv[optind]);
        return cli_usage_hint("topo");
    }
    if (synthetic && xml) {
        fprintf(stderr, "incv3 topo: --synthetic and --xml exclude each other\n");
        return cli_usage_hint("topo");
    }
    incv3_error err;
    if (incv3_model_config_check(&cfg, &err)) {
        fprintf(stderr, "incv3 topo: %s\n", err.msg);
        return EXIT_USAGE;
    }

    incv3_topology topo;
    if (incv3_topology_load(&topo, synthetic, xml, &err)) {
        fprintf(stderr, "incv3 topo: %s\n", err.msg); /* names the description or file */
        return 1;
    }
    req.omp_num_threads = getenv("OMP_NUM_THREADS");
    incv3_team team;
    if (incv3_team_plan(&topo, &req, &team, &err)) {
        fprintf(stderr, "incv3 topo: %s\n", err.msg);
        incv3_topology_free(&topo);
        return 1;
    }
    if (team.warning[0])
        fprintf(stderr, "incv3 topo: warning: %s\n", team.warning);
    incv3_graph *g = incv3_inception_v3(&cfg, &err);
    if (!g) {
        fprintf(stderr, "incv3 topo: %s\n", err.msg);
        incv3_team_free(&team);
        incv3_topology_free(&topo);
        return 1;
    }

    incv3_topology_print(&topo, stdout);
    putchar('\n');
    incv3_team_print(&team, &topo, stdout);
    /* Applying the team checks that OpenMP and the binding accept it (hwloc makes binding a no-op on a
     * synthetic or XML machine). */
    if (incv3_team_apply(&team, &topo, &err))
        fprintf(stderr, "incv3 topo: warning: %s\n", err.msg);
    else if (team.bind == INCV3_BIND_CORE)
        printf("  binding: %s\n", topo.this_system ? "each thread pinned to its PU" : "not applied (not this machine)");
    char share[32];
    printf("\nplan: batch %d, %dx%d%s, width %g; tiles must fit 3/4 of the %s L2 share per thread\n", batch,
           cfg.image_size, cfg.image_size, cfg.aux ? ", aux head" : ", no aux head", cfg.width,
           incv3_format_bytes(share, sizeof share, (double)team.l2_share));
    print_plans(g, batch, &team, stdout);

    incv3_graph_free(g);
    incv3_team_free(&team);
    incv3_topology_free(&topo);
    return 0;
}
