#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "incv3/graph.h"
#include "train/trainer.h"

static const char usage[] =
    "Usage: incv3 eval --checkpoint FILE [--data DIR] [--image-size S] [--width W] [--no-aux] [--isa I]\n"
    "                  [--conv-algo A] [--threads N] [--smt] [--bind core|none]\n"
    "\n"
    "Prints the test tables (loss, accuracy, per-class precision/recall/F1, confusion matrix) of a weights file\n"
    "on the t10k files of DIR. incv3's checkpoints and model.safetensors carry their architecture; for a\n"
    "PyTorch state_dict of the reference model saved as safetensors, the width is read off the tensors and the\n"
    "aux head is used when its tensors are present, unless --width / --no-aux say otherwise.\n"
    "\n"
    "  --checkpoint FILE  weights (safetensors)\n"
    "  --data DIR         MNIST-format files (default: the directory the run trained on, else data/mnist)\n"
    "  --image-size S     input size for files without metadata (default 299)\n"
    "  --width W          channel multiplier for files without metadata (default: from the tensors)\n"
    "  --no-aux           build the model without the aux head (files without metadata)\n"
    "  --isa I, --conv-algo A  kernels, as for incv3 train\n" CLI_TEAM_HELP
    "  -h, --help         this help\n";

int cmd_eval(int argc, char **argv)
{
    static const struct option opts[] = {
        {"checkpoint", required_argument, NULL, 'c'}, {"data", required_argument, NULL, 'd'},
        CLI_MODEL_OPTIONS, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    incv3_train_config given;
    incv3_train_config_default(&given);
    given.width = 0; /* read it off the tensors unless given */
    const char *ckpt = NULL;
    int aux_given = 0, c;
    while ((c = cli_getopt("eval", argc, argv, "h", opts)) != -1) {
        int bad = 0;
        switch (c) {
        case 'c': ckpt = optarg; break;
        case 'd': snprintf(given.data, sizeof given.data, "%s", optarg); break;
        case 'h': fputs(usage, stdout); return 0;
        default:
            if (!cli_model_flag("eval", c, optarg, &given, &aux_given, &bad))
                bad = 1;
        }
        if (bad)
            return cli_usage_hint("eval");
    }
    if (optind < argc || !ckpt) {
        fprintf(stderr, optind < argc ? "incv3 eval: unexpected argument '%s'\n" : "incv3 eval: --checkpoint FILE is "
                                                                                    "required%s\n",
                optind < argc ? argv[optind] : "");
        return cli_usage_hint("eval");
    }
    incv3_error err;
    if (incv3_kernels_check(given.isa, given.conv_algo, &err)) {
        fprintf(stderr, "incv3 eval: %s\n", err.msg);
        return EXIT_USAGE;
    }
    if (incv3_evaluate_file(ckpt, &given, aux_given, &err)) {
        fprintf(stderr, "incv3 eval: %s\n", err.msg);
        return err.msg[0] == '-' ? EXIT_USAGE : 1;
    }
    return 0;
}
