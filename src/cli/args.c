#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "train/trainer.h"

int cli_parse_int(const char *cmd, const char *flag, const char *text, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (end == text || *end != '\0' || errno == ERANGE) {
        fprintf(stderr, "incv3 %s: %s %s: not an integer\n", cmd, flag, text);
        return -1;
    }
    if (v < lo || v > hi) {
        fprintf(stderr, "incv3 %s: %s %s: must be between %ld and %ld\n", cmd, flag, text, lo, hi);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int cli_parse_double(const char *cmd, const char *flag, const char *text, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || errno == ERANGE || !isfinite(v)) {
        fprintf(stderr, "incv3 %s: %s %s: not a number\n", cmd, flag, text);
        return -1;
    }
    if (v < lo || v > hi) {
        fprintf(stderr, "incv3 %s: %s %s: must be between %g and %g\n", cmd, flag, text, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_threads(const char *cmd, const char *text, int *out, int max)
{
    int n = 0;
    const char *p = text;
    while (*p && n < max) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 4096 || (*end && *end != ',')) {
            fprintf(stderr, "incv3 %s: --threads %s: expected thread counts like 1,2,4 (each 1..4096)\n", cmd, text);
            return 0;
        }
        out[n++] = (int)v;
        p = *end ? end + 1 : end;
    }
    if (n == 0 || *p)
        fprintf(stderr, "incv3 %s: --threads %s: expected 1 to %d thread counts like 1,2,4\n", cmd, text, max);
    return *p ? 0 : n;
}

int cli_getopt(const char *cmd, int argc, char **argv, const char *shortopts, const struct option *longopts)
{
    opterr = 0;
    int prev = optind;
    int c = getopt_long(argc, argv, shortopts, longopts, NULL);
    if (c != '?' && c != ':')
        return c;
    const char *arg = prev < argc ? argv[prev] : "?";
    if (optopt) {
        int takes_arg = 0;
        for (const struct option *o = longopts; o->name; o++)
            if (o->val == optopt && o->has_arg == required_argument)
                takes_arg = 1;
        if (takes_arg)
            fprintf(stderr, "incv3 %s: %s needs a value\n", cmd, arg);
        else
            fprintf(stderr, "incv3 %s: unknown flag %s\n", cmd, arg);
    } else {
        /* A long option: unknown, or its value is missing. */
        const char *name = arg[0] == '-' && arg[1] == '-' ? arg + 2 : arg;
        size_t len = strcspn(name, "=");
        int known = 0;
        for (const struct option *o = longopts; o->name; o++)
            if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
                known = 1;
        if (known)
            fprintf(stderr, "incv3 %s: %s needs a value\n", cmd, arg);
        else
            fprintf(stderr, "incv3 %s: unknown flag %s\n", cmd, arg);
    }
    return '?';
}

int cli_usage_hint(const char *cmd)
{
    fprintf(stderr, "Try 'incv3 %s --help'.\n", cmd);
    return EXIT_USAGE;
}

int cli_model_flag(const char *cmd, int c, const char *arg, struct incv3_train_config *given, int *aux_given,
                   int *bad)
{
    switch (c) {
    case 's':
        *bad = cli_parse_int(cmd, "--image-size", arg, 1, 4096, &given->image_size);
        return 1;
    case 'w':
        /* The range is checked with the rest of the model configuration. */
        *bad = cli_parse_double(cmd, "--width", arg, -HUGE_VAL, HUGE_VAL, &given->width);
        return 1;
    case 'n':
        given->aux = 0, *aux_given = 1;
        return 1;
    case 'i':
        snprintf(given->isa, sizeof given->isa, "%s", arg);
        return 1;
    case 'a':
        snprintf(given->conv_algo, sizeof given->conv_algo, "%s", arg);
        return 1;
    case 'T':
        *bad = cli_parse_int(cmd, "--threads", arg, 1, 4096, &given->threads);
        return 1;
    case 'S':
        given->smt = 1;
        return 1;
    case 'B':
        if (strcmp(arg, "core") && strcmp(arg, "none")) {
            fprintf(stderr, "incv3 %s: --bind %s: expected core or none\n", cmd, arg);
            *bad = 1;
        } else {
            snprintf(given->bind, sizeof given->bind, "%s", arg);
        }
        return 1;
    default:
        return 0;
    }
}
