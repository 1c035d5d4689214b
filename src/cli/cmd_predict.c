/* incv3 predict: classifies the user's own images (PGM or PNG) with a weights file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "incv3/graph.h"
#include "io/image.h"
#include "train/data.h"
#include "train/trainer.h"

static const char usage[] =
    "Usage: incv3 predict --checkpoint FILE [--top K | --logits] [--batch N] [--image-size S] [--width W]\n"
    "                     [--no-aux] [--isa I] [--conv-algo A] [--threads N] [--smt] [--bind core|none]\n"
    "                     IMAGE...\n"
    "\n"
    "Classifies each IMAGE (binary P5 or ASCII P2 PGM, or PNG of any bit depth and colour type) and prints\n"
    "its K most probable classes with their softmax probabilities, one line per image:\n"
    "  digit.png: 7 (0.9812), 1 (0.0101), 9 (0.0033)\n"
    "Images of any size are converted to grayscale (luma; transparency composited on black), resized to the\n"
    "model's input with bilinear interpolation and normalized like the run's training data, so draw digits\n"
    "white on black as in MNIST. The model is built as incv3 eval builds it.\n"
    "\n"
    "  --checkpoint FILE  weights (safetensors): an incv3 checkpoint or model file, or a PyTorch state_dict\n"
    "  --top K            classes to print per image, 1..classes (default 3)\n"
    "  --logits           print the raw logits of every class instead (9 significant digits, class order),\n"
    "                     e.g. to compare with another implementation of the model\n"
    "  --batch N          images per forward pass (default 32)\n"
    "  --image-size S     input size for files without metadata (default 299)\n"
    "  --width W          channel multiplier for files without metadata (default: from the tensors)\n"
    "  --no-aux           build the model without the aux head (files without metadata)\n"
    "  --isa I, --conv-algo A  kernels, as for incv3 train\n" CLI_TEAM_HELP
    "  -h, --help         this help\n"
    "\n"
    "A bad image (missing, not a PGM/PNG, corrupt) is reported on stderr naming the file and skipped; the\n"
    "others are still classified. Exit status: 0 all images classified, 1 some image or the model failed,\n"
    "2 usage error.\n";

typedef struct scored {
    int cls;
    float p;
} scored;

static int by_prob_desc(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    if (x->p != y->p)
        return x->p < y->p ? 1 : -1;
    return x->cls - y->cls;
}

/* Softmax of one row of logits (stable), then the top k printed after the image's name. */
static void print_top(const char *name, const float *logits, int classes, int k, scored *tmp)
{
    float mx = logits[0];
    for (int c = 1; c < classes; c++)
        mx = logits[c] > mx ? logits[c] : mx;
    double sum = 0;
    for (int c = 0; c < classes; c++)
        sum += exp((double)logits[c] - mx);
    for (int c = 0; c < classes; c++) {
        tmp[c].cls = c;
        tmp[c].p = (float)(exp((double)logits[c] - mx) / sum);
    }
    qsort(tmp, (size_t)classes, sizeof *tmp, by_prob_desc);
    printf("%s:", name);
    for (int i = 0; i < k; i++)
        printf("%s %d (%.4f)", i ? "," : "", tmp[i].cls, tmp[i].p);
    putchar('\n');
}

/* The logits as they are, enough digits to round-trip a float. */
static void print_logits(const char *name, const float *logits, int classes)
{
    printf("%s:", name);
    for (int c = 0; c < classes; c++)
        printf(" %.9g", (double)logits[c]);
    putchar('\n');
}

/* Runs the pending batch and prints its lines (the top k, or every logit when k is 0). Returns 0, or -1
 * after reporting the failure. */
static int flush(incv3_graph *g, const float *x, char **names, int n, int classes, int k, scored *tmp)
{
    if (n == 0)
        return 0;
    incv3_error err;
    incv3_forward_opts fo = {.mode = INCV3_INFER, .outputs = 1u};
    if (incv3_graph_forward(g, x, n, &fo, &err)) {
        for (int i = 0; i < n; i++)
            fprintf(stderr, "incv3 predict: %s: %s\n", names[i], err.msg);
        return -1;
    }
    const incv3_tensor *out = incv3_graph_output(g, 0);
    const float *logits = out->data;
    for (int i = 0; i < n; i++) {
        if (k)
            print_top(names[i], logits + (size_t)i * classes, classes, k, tmp);
        else
            print_logits(names[i], logits + (size_t)i * classes, classes);
    }
    fflush(stdout);
    return 0;
}

int cmd_predict(int argc, char **argv)
{
    static const struct option opts[] = {
        {"checkpoint", required_argument, NULL, 'c'}, {"top", required_argument, NULL, 't'},
        {"batch", required_argument, NULL, 'b'},      CLI_MODEL_OPTIONS,
        {"logits", no_argument, NULL, 'l'},           {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    incv3_train_config given;
    incv3_train_config_default(&given);
    given.width = 0; /* read it off the tensors unless given */
    const char *ckpt = NULL;
    int aux_given = 0, top = 3, top_given = 0, logits = 0, batch = 32, c;
    while ((c = cli_getopt("predict", argc, argv, "h", opts)) != -1) {
        int bad = 0;
        switch (c) {
        case 'c': ckpt = optarg; break;
        case 't':
            bad = cli_parse_int("predict", "--top", optarg, 1, 1000000, &top);
            top_given = 1;
            break;
        case 'l': logits = 1; break;
        case 'b': bad = cli_parse_int("predict", "--batch", optarg, 1, 4096, &batch); break;
        case 'h': fputs(usage, stdout); return 0;
        default:
            if (!cli_model_flag("predict", c, optarg, &given, &aux_given, &bad))
                bad = 1;
        }
        if (bad)
            return cli_usage_hint("predict");
    }
    if (top_given && logits) {
        fputs("incv3 predict: --top and --logits exclude each other (--logits prints every class)\n", stderr);
        return cli_usage_hint("predict");
    }
    if (!ckpt) {
        fputs("incv3 predict: --checkpoint FILE is required\n", stderr);
        return cli_usage_hint("predict");
    }
    if (optind >= argc) {
        fputs("incv3 predict: no IMAGE given\n", stderr);
        return cli_usage_hint("predict");
    }
    incv3_error err;
    if (incv3_kernels_check(given.isa, given.conv_algo, &err)) {
        fprintf(stderr, "incv3 predict: %s\n", err.msg);
        return EXIT_USAGE;
    }
    incv3_sched_started team;
    if (incv3_train_start_team(&given, &team, &err)) {
        fprintf(stderr, "incv3 predict: %s\n", err.msg);
        return 1;
    }
    incv3_train_config used;
    incv3_graph *g = incv3_load_model_file(ckpt, &given, aux_given, &used, &err);
    if (!g) {
        fprintf(stderr, "incv3 predict: %s\n", err.msg);
        return err.msg[0] == '-' ? EXIT_USAGE : 1;
    }
    const int classes = used.classes;
    if (top > classes) {
        fprintf(stderr, "incv3 predict: --top %d: must be between 1 and %d (the model's classes)\n", top, classes);
        incv3_graph_free(g);
        return cli_usage_hint("predict");
    }
    const int nimg = argc - optind;
    if (batch > nimg)
        batch = nimg;
    const size_t per = (size_t)3 * used.image_size * used.image_size;
    float *x = malloc(per * (size_t)batch * sizeof *x);
    char **names = malloc((size_t)batch * sizeof *names);
    scored *tmp = malloc((size_t)classes * sizeof *tmp);
    if (!x || !names || !tmp) {
        fputs("incv3 predict: out of memory\n", stderr);
        free(x), free(names), free(tmp);
        incv3_graph_free(g);
        return 1;
    }
    const incv3_preprocess pp = {used.image_size, (float)used.mean, (float)used.std};
    int failed = 0, n = 0;
    for (int i = optind; i < argc; i++) {
        incv3_gray_image img;
        if (incv3_image_read(argv[i], &img, &err)) {
            fprintf(stderr, "incv3 predict: %s\n", err.msg);
            failed = 1;
            continue;
        }
        incv3_preprocess_image(&pp, img.data, img.rows, img.cols, x + per * (size_t)n);
        incv3_gray_image_free(&img);
        names[n++] = argv[i];
        if (n == batch) {
            failed |= flush(g, x, names, n, classes, logits ? 0 : top, tmp) != 0;
            n = 0;
        }
    }
    failed |= flush(g, x, names, n, classes, logits ? 0 : top, tmp) != 0;
    free(x), free(names), free(tmp);
    incv3_graph_free(g);
    return failed ? 1 : 0;
}
