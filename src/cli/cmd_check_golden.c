#include <stdio.h>

#include "cli/cli.h"
#include "incv3/golden.h"
#include "incv3/graph.h"

static const char usage[] =
    "Usage: incv3 check-golden FILE [--isa I] [--conv-algo A] [--verbose]\n"
    "\n"
    "Builds the model a golden file from shared/reference/make_golden.py describes (width, image size, batch,\n"
    "aux head: all read from its metadata), loads its weights and input, runs the inference-mode step, the\n"
    "training-mode step and one AdamW step, and judges every tensor by the file's pass rule: tolerances derive\n"
    "from the float32 error PyTorch itself makes on each tensor. Prints one row per tensor group and exits 0\n"
    "only when every tensor passes.\n"
    "\n"
    "  --isa I          instruction set: auto (default), scalar, or another this CPU and build offer\n"
    "  --conv-algo A    convolution algorithm: auto (default), ref, ...\n"
    "  --verbose        one line per tensor (error, tolerance, PyTorch's own float32 error)\n"
    "  -h, --help       this help\n";

int cmd_check_golden(int argc, char **argv)
{
    static const struct option opts[] = {
        {"isa", required_argument, NULL, 'i'},
        {"conv-algo", required_argument, NULL, 'a'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    incv3_golden_opts go = {0};
    int c;
    while ((c = cli_getopt("check-golden", argc, argv, "h", opts)) != -1) {
        switch (c) {
        case 'i':
            go.isa = optarg;
            break;
        case 'a':
            go.conv_algo = optarg;
            break;
        case 'v':
            go.verbose = 1;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            return cli_usage_hint("check-golden");
        }
    }
    if (optind + 1 != argc) {
        fprintf(stderr, optind >= argc ? "incv3 check-golden: no golden FILE given\n"
                                       : "incv3 check-golden: exactly one FILE expected\n");
        return cli_usage_hint("check-golden");
    }
    incv3_error err;
    if (incv3_kernels_check(go.isa, go.conv_algo, &err)) {
        fprintf(stderr, "incv3 check-golden: %s\n", err.msg);
        return EXIT_USAGE;
    }
    incv3_golden_result res;
    if (incv3_check_golden(argv[optind], &go, stdout, &res, &err)) {
        fprintf(stderr, "incv3 check-golden: %s\n", err.msg);
        return 1;
    }
    return res.passed ? 0 : 1;
}
