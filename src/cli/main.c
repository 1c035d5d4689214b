/* incv3: the command-line front end. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "incv3_config.h"
#include "incv3/graph.h"
#include "registry.h"
#include "util/heap_policy.h"

static void print_help(FILE *out)
{
    fputs("incv3: trains the seed's Inception-V3 on CPUs with its own kernels (no BLAS).\n"
          "\n"
          "Usage: incv3 COMMAND [FLAGS]\n"
          "\n"
          "Commands:\n"
          "  train          train on MNIST with the seed's recipe: report, plots, checkpoints, resume\n"
          "  eval           the test tables of a checkpoint (incv3's or a PyTorch state_dict in safetensors)\n"
          "  predict        classify your own images (PGM or PNG) with a weights file: top classes, probabilities\n"
          "  summary        print the model table in the seed's format, totals and MACs\n"
          "  check-golden   check parity with a PyTorch golden file (shared/reference/make_golden.py)\n"
          "  bench          time whole-network training or inference steps (ms/step, images/s, peak memory)\n"
          "  topo           the machine as hwloc sees it, the thread team and the tiling of every convolution\n"
          "\n"
          "Global flags:\n"
          "  -h, --help     this help; 'incv3 COMMAND --help' documents each command\n"
          "  --version      version, build options and the instruction set detected on this CPU\n"
          "\n"
          "Exit status: 0 success, 1 failure, 2 usage error.\n",
          out);
}

static void print_version(void)
{
    printf("incv3 %s\n", INCV3_VERSION);
    printf("build: %s, %s, target %s, MPI data-parallel training %s\n", INCV3_BUILD_TYPE, INCV3_COMPILER,
           INCV3_HOST_CPU, INCV3_HAVE_MPI ? "on (-Dmpi=enabled)" : "off");
    printf("kernel ISAs compiled in:");
    for (int i = 0; i < INCV3_ISA_COUNT; i++) {
        size_t n;
        const incv3_conv_kernel *t = incv3_conv_kernel_table(&n);
        for (size_t k = 0; k < n; k++)
            if ((int)t[k].isa == i) {
                printf(" %s", incv3_isa_name((incv3_isa)i));
                break;
            }
    }
    const char *graph_isa = incv3_graph_default_isa();
    printf("\nCPU: AVX2+FMA %s; best kernel ISA here: %s; ISA the graph uses by default: %s",
           incv3_cpu_has_avx2_fma() ? "yes" : "no", incv3_isa_name(incv3_isa_best()), graph_isa);
    putchar('\n');
}

int main(int argc, char **argv)
{
    incv3_heap_keep_pages();
    if (argc < 2) {
        print_help(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        print_help(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        print_version();
        return 0;
    }
    if (strcmp(cmd, "summary") == 0)
        return cmd_summary(argc - 1, argv + 1);
    if (strcmp(cmd, "check-golden") == 0)
        return cmd_check_golden(argc - 1, argv + 1);
    if (strcmp(cmd, "bench") == 0)
        return cmd_bench(argc - 1, argv + 1);
    if (strcmp(cmd, "train") == 0)
        return cmd_train(argc - 1, argv + 1);
    if (strcmp(cmd, "eval") == 0)
        return cmd_eval(argc - 1, argv + 1);
    if (strcmp(cmd, "predict") == 0)
        return cmd_predict(argc - 1, argv + 1);
    if (strcmp(cmd, "topo") == 0)
        return cmd_topo(argc - 1, argv + 1);
    if (cmd[0] == '-')
        fprintf(stderr, "incv3: unknown flag %s (flags go after the command)\n", cmd);
    else
        fprintf(stderr, "incv3: unknown command '%s'\n", cmd);
    fputs("Try 'incv3 --help'.\n", stderr);
    return EXIT_USAGE;
}
