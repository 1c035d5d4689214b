/* Command-line conventions shared by every incv3 command: errors to stderr naming the flag, exit status 2
 * for usage errors and 1 for other failures, the last of a repeated flag wins. */
#ifndef INCV3_CLI_H
#define INCV3_CLI_H

#include <getopt.h>

#define EXIT_USAGE 2

/* Strict parsers: the whole string must be a number in [lo, hi]. On failure they print
 * "incv3 CMD: --flag VALUE: reason" to stderr and return non-zero. */
int cli_parse_int(const char *cmd, const char *flag, const char *text, long lo, long hi, int *out);
int cli_parse_double(const char *cmd, const char *flag, const char *text, double lo, double hi, double *out);

/* A --threads list "1,2,4" into out (at most max counts, each 1..4096): returns how many, or 0 after
 * printing "incv3 CMD: --threads TEXT: ..." to stderr. */
int cli_parse_threads(const char *cmd, const char *text, int *out, int max);

/* Runs getopt_long and reports unknown flags and missing values by name. Returns the option, -1 at the
 * end, or '?' after printing the error (the caller exits with EXIT_USAGE). */
int cli_getopt(const char *cmd, int argc, char **argv, const char *shortopts, const struct option *longopts);

struct incv3_train_config;
/* The flags eval and predict share to describe a weights file's model, its kernels and the thread team
 * (option values 's' --image-size, 'w' --width, 'n' --no-aux, 'i' --isa, 'a' --conv-algo, 'T' --threads,
 * 'S' --smt, 'B' --bind). Returns 1 when c is one of them
 * (*bad set when its value is invalid, after printing why), else 0. */
/* The option table entries cli_model_flag handles, for the commands that describe a weights file's model. */
#define CLI_MODEL_OPTIONS                                                                                   \
    {"image-size", required_argument, NULL, 's'}, {"width", required_argument, NULL, 'w'},                  \
    {"no-aux", no_argument, NULL, 'n'}, {"isa", required_argument, NULL, 'i'},                              \
    {"conv-algo", required_argument, NULL, 'a'}, CLI_TEAM_OPTIONS
#define CLI_TEAM_OPTIONS                                                                                    \
    {"threads", required_argument, NULL, 'T'}, {"smt", no_argument, NULL, 'S'}, {"bind", required_argument, NULL, 'B'}
#define CLI_TEAM_HELP                                                                                       \
    "  --threads N        OpenMP threads (default: OMP_NUM_THREADS, else one per physical core)\n"              \
    "  --smt              let SMT siblings (hardware threads) count and be used\n"                             \
    "  --bind B           core (default: each thread pinned to its core with hwloc) or none\n"
int cli_model_flag(const char *cmd, int c, const char *arg, struct incv3_train_config *given, int *aux_given,
                   int *bad);

/* "Try 'incv3 CMD --help'." on stderr; returns EXIT_USAGE. */
int cli_usage_hint(const char *cmd);

int cmd_summary(int argc, char **argv);
int cmd_check_golden(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_topo(int argc, char **argv);

#endif
