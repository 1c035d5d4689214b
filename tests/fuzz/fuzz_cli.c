/* libFuzzer harness: the command-line parsing layer without running any command's work. The input is
 * split into argv words (on NUL when the input holds one, empty words included; else on whitespace),
 * then parsed
 *   - with incv3 train's option table through cli_getopt, each value through cli_parse_int/double with
 *     train's ranges (the same calls as cmd_train.c, whose parsing cannot be reached without training),
 *   - with incv3 eval's table through cli_getopt and cli_model_flag, then incv3_kernels_check and
 *     incv3_model_config_check on the result (what eval and predict check before loading anything),
 *   - with bench's --threads list parser, cli_parse_threads;
 * and every word also goes through the three number parsers directly. */
#include "fuzz_common.h"

#include <getopt.h>
#include <math.h>

#include "cli/cli.h"
#include "incv3/graph.h"
#include "incv3/model.h"
#include "train/trainer.h"

#define MAX_WORDS 64

enum { V_STR, V_INT, V_DBL, V_NONE };

typedef struct opt_rule {
    int kind;
    double lo, hi;
} opt_rule;

/* cmd_train.c's options and value ranges. */
static const struct option train_opts[] = {
    {"data", required_argument, NULL, 0},          {"dataset", required_argument, NULL, 1},
    {"out", required_argument, NULL, 2},           {"resume", required_argument, NULL, 3},
    {"epochs", required_argument, NULL, 4},        {"batch", required_argument, NULL, 5},
    {"lr", required_argument, NULL, 6},            {"weight-decay", required_argument, NULL, 7},
    {"aux-weight", required_argument, NULL, 8},    {"label-smoothing", required_argument, NULL, 9},
    {"image-size", required_argument, NULL, 10},   {"no-aux", no_argument, NULL, 11},
    {"width", required_argument, NULL, 12},        {"limit-train", required_argument, NULL, 13},
    {"val-fraction", required_argument, NULL, 14}, {"dropout", required_argument, NULL, 15},
    {"seed", required_argument, NULL, 16},         {"threads", required_argument, NULL, 17},
    {"checkpoint-every", required_argument, NULL, 18}, {"isa", required_argument, NULL, 19},
    {"conv-algo", required_argument, NULL, 20},    {"mean", required_argument, NULL, 21},
    {"std", required_argument, NULL, 22},          {"smt", no_argument, NULL, 23},
    {"bind", required_argument, NULL, 24},         {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};
static const opt_rule train_rules[25] = {
    [0] = {V_STR, 0, 0},          [1] = {V_STR, 0, 0},       [2] = {V_STR, 0, 0},
    [3] = {V_STR, 0, 0},          [4] = {V_INT, 1, 100000},  [5] = {V_INT, 1, 4096},
    [6] = {V_DBL, 1e-12, 10},     [7] = {V_DBL, 0, 1},       [8] = {V_DBL, 0, 100},
    [9] = {V_DBL, 0, 1},          [10] = {V_INT, 1, 4096},   [11] = {V_NONE, 0, 0},
    [12] = {V_DBL, -1e9, 1e9},    [13] = {V_INT, 1, 1 << 30}, [14] = {V_DBL, 0, 0.99},
    [15] = {V_DBL, 0, 0.99},      [16] = {V_DBL, 0, 9007199254740992.0}, [17] = {V_INT, 1, 4096},
    [18] = {V_INT, 1, 1 << 30},   [19] = {V_STR, 0, 0},      [20] = {V_STR, 0, 0},
    [21] = {V_DBL, -10, 10},      [22] = {V_DBL, 1e-6, 10},  [23] = {V_NONE, 0, 0},
    [24] = {V_STR, 0, 0},
};

static void parse_train(int argc, char **argv)
{
    int c, iv;
    double dv;
    optind = 0; /* glibc: start over, forgetting the previous argv */
    while ((c = cli_getopt("train", argc, argv, "h", train_opts)) != -1) {
        if (c == '?' || c == 'h')
            break;
        if (c < 0 || c > 24)
            abort(); /* getopt returned a value no option has */
        const char *flag = train_opts[c].name;
        const opt_rule *r = &train_rules[c];
        if (r->kind != V_NONE && !optarg)
            abort();
        if (r->kind == V_INT && cli_parse_int("train", flag, optarg, (long)r->lo, (long)r->hi, &iv) == 0 &&
            (iv < r->lo || iv > r->hi))
            abort();
        if (r->kind == V_DBL && cli_parse_double("train", flag, optarg, r->lo, r->hi, &dv) == 0 &&
            !(dv >= r->lo && dv <= r->hi))
            abort();
        if (r->kind == V_STR)
            fuzz_touch(optarg, strlen(optarg));
    }
}

static void parse_eval(int argc, char **argv)
{
    static const struct option opts[] = {
        {"checkpoint", required_argument, NULL, 'c'}, {"data", required_argument, NULL, 'd'},
        CLI_MODEL_OPTIONS, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    incv3_train_config given;
    incv3_train_config_default(&given);
    given.width = 0;
    int aux_given = 0, c;
    optind = 0;
    while ((c = cli_getopt("eval", argc, argv, "h", opts)) != -1) {
        int bad = 0;
        if (c == 'c' || c == 'd')
            fuzz_touch(optarg, strlen(optarg));
        else if (c == 'h' || !cli_model_flag("eval", c, optarg, &given, &aux_given, &bad) || bad)
            return;
    }
    incv3_error err;
    if (incv3_kernels_check(given.isa, given.conv_algo, &err))
        return;
    incv3_model_config mc = incv3_model_config_default();
    mc.image_size = given.image_size;
    mc.aux = given.aux;
    mc.width = given.width > 0 ? given.width : 1;
    incv3_model_config_check(&mc, &err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Words, each NUL-terminated in one copy of the input. */
    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *words[MAX_WORDS + 2];
    int argc = 0;
    words[argc++] = "incv3-cmd";
    if (memchr(buf, '\0', size)) {
        /* NUL-separated: exactly the words between NULs, empty ones included (argv can hold ""). */
        for (size_t i = 0; i < size && argc <= MAX_WORDS; i += strlen(buf + i) + 1)
            words[argc++] = buf + i;
    } else {
        for (size_t i = 0; i < size && argc <= MAX_WORDS;) {
            while (i < size && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\n'))
                buf[i++] = '\0';
            if (i == size)
                break;
            words[argc++] = buf + i;
            while (i < size && buf[i] != ' ' && buf[i] != '\t' && buf[i] != '\n')
                i++;
        }
    }
    words[argc] = NULL;

    int iv, counts[16];
    double dv;
    for (int i = 1; i < argc; i++) {
        cli_parse_int("fuzz", "--int", words[i], -1000, 1000, &iv);
        cli_parse_double("fuzz", "--double", words[i], -HUGE_VAL, HUGE_VAL, &dv);
        int n = cli_parse_threads("fuzz", words[i], counts, 16);
        if (n < 0 || n > 16)
            abort();
        for (int k = 0; k < n; k++)
            if (counts[k] < 1 || counts[k] > 4096)
                abort();
    }
    /* getopt permutes argv, so each parser gets its own copy of the word list. */
    char *argv[MAX_WORDS + 2];
    memcpy(argv, words, sizeof argv);
    parse_train(argc, argv);
    memcpy(argv, words, sizeof argv);
    parse_eval(argc, argv);
    free(buf);
    return 0;
}
