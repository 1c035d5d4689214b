#include <errno.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "dist/dist.h"
#include "train/trainer.h"

static const char usage[] =
    "Usage: incv3 train [--data DIR] [--dataset mnist|fashion-mnist] [--out DIR] [--epochs N] [--batch B]\n"
    "                   [--lr X] [--weight-decay X] [--aux-weight X] [--label-smoothing X] [--image-size S]\n"
    "                   [--no-aux] [--width W] [--limit-train N] [--val-fraction F] [--dropout P] [--seed S]\n"
    "                   [--threads N] [--smt] [--bind core|none] [--checkpoint-every N] [--isa I]\n"
    "                   [--conv-algo A] [--mean M] [--std S] [--keep K] [--deterministic] [--sync-bn]\n"
    "       incv3 train --resume DIR [--epochs N] [--threads N] [--smt] [--bind core|none] [--keep K] [--sync-bn]\n"
    "       mpirun -np R incv3 train ...   (data-parallel over R processes; needs a build with -Dmpi=enabled)\n"
    "\n"
    "Trains the seed's Inception-V3 on MNIST-format data with the seed's recipe by default (10 epochs, batch 32,\n"
    "AdamW lr 1e-4 with weight decay 0.01, aux-loss weight 0.3, label smoothing 1e-4, 299x299), validating on a\n"
    "fixed part of the training set after every epoch, then writes the seed's result tables for the final and\n"
    "the best-validation weights. Outputs in --out: report.md, metrics.csv, loss.png, accuracy.png,\n"
    "config.json, model.safetensors, best.safetensors, checkpoints/ (epoch-E-step-S.safetensors, last.safetensors).\n"
    "SIGINT/SIGTERM finish the current batch, write a checkpoint and exit; --resume continues exactly there.\n"
    "Checkpoints carry a checksum; --resume falls back to the newest intact one when last.safetensors is damaged.\n"
    "\n"
    "  --data DIR            the four MNIST files (train-images-idx3-ubyte[.gz], ...; default data/mnist, or\n"
    "                        /usr/share/datasets/fashion-mnist with --dataset fashion-mnist)\n"
    "  --dataset D           mnist (default) or fashion-mnist (same format)\n"
    "  --out DIR             run directory (default runs/<date-time>); must be new or empty\n"
    "  --resume DIR          continue the run in DIR with its own settings (only --epochs, to extend a finished\n"
    "                        run, and --threads/--smt/--bind/--keep may be given)\n"
    "  --epochs N            default 10          --batch B            default 32\n"
    "  --lr X                default 1e-4        --weight-decay X     default 0.01 (AdamW, every parameter)\n"
    "  --aux-weight X        default 0.3         --label-smoothing X  default 1e-4\n"
    "  --image-size S        default 299 (>= 75; with the aux head 299..314)   --no-aux   without the aux head\n"
    "  --width W             channel multiplier in (0, 4], default 1\n"
    "  --limit-train N       use the first N training images (before the validation split)\n"
    "  --val-fraction F      part of the training images kept for validation, default 0.1\n"
    "  --dropout P           dropout before the final Linear, default 0 (the seed has none)\n"
    "  --seed S              initialization, shuffling and dropout, default 1\n"
    "  --threads N           OpenMP threads (default: OMP_NUM_THREADS, else one per physical core)\n"
    "  --smt                 let SMT siblings (hardware threads) count and be used\n"
    "  --bind B              core (default: each thread pinned to its core with hwloc) or none\n"
    "  --checkpoint-every N  also checkpoint every N batches (default: at the end of each epoch only)\n"
    "  --keep K              keep only the newest K epoch-E-step-S.safetensors (default: all; last, model and\n"
    "                        best are always kept)\n"
    "  --sync-bn             under mpirun: BatchNorm statistics over the global batch (as one process computes\n"
    "                        them) rather than over each rank's part; --batch is always the global batch and\n"
    "                        must be a multiple of the rank count\n"
    "  --isa I, --conv-algo A  kernels: auto (default), scalar/avx2/neon; auto (per layer the fastest, timed once\n"
    "                        per machine, the plan kept in OUT/conv-plan.json), winograd, direct,\n"
    "                        winograd-f2x2, winograd-f4x4, winograd-f6x6, winograd-f2, winograd-f4, gemm (layers\n"
    "                        with a 1x1 output, 1xn/nx1 over lines of at most 8 pixels, and im2col where the\n"
    "                        windows fit 64 MiB; direct elsewhere), ref\n"
    "  --deterministic       bitwise the same weights for any --threads: --conv-algo auto/winograd choose\n"
    "                        kernels by a fixed rule (auto: direct) instead of timing them (slower)\n"
    "  --mean M, --std S     input normalization of pixel/255, default 0.1307 and 0.3081 (MNIST), or 0.2860\n"
    "                        and 0.3530 with --dataset fashion-mnist (its training set's statistics)\n"
    "  -h, --help            this help\n";

enum { O_DATA = 256, O_DATASET, O_OUT, O_RESUME, O_EPOCHS, O_BATCH, O_LR, O_WD, O_AUXW, O_LS, O_SIZE, O_NOAUX,
       O_WIDTH, O_LIMIT, O_VAL, O_DROPOUT, O_SEED, O_THREADS, O_CKPT, O_ISA, O_ALGO, O_MEAN, O_STD, O_SMT,
       O_BIND, O_KEEP, O_SYNCBN, O_DETERMINISTIC };

/* The settings (a new run's or, with --resume, read by rank 0 from its run directory and sent to every rank)
 * and the run; returns the exit status. */
static int train_ranks(incv3_dist *dist, incv3_train_config *cfgp, const char *resume, const char *out,
                       const char *data, int mean_given, int std_given, int epochs, int threads, int smt, int keep,
                       int sync_bn, const char *bind)
{
    incv3_train_config cfg = *cfgp;
    incv3_error err;
    const int root = incv3_dist_rank(dist) == 0;
    if (resume) {
        int rc = root ? incv3_train_config_from_run(resume, &cfg, &err) : 0;
        if (incv3_dist_max_int(dist, &rc, &err) || (rc == 0 && incv3_dist_bcast(dist, &cfg, sizeof cfg, &err)) ||
            (rc && incv3_dist_bcast(dist, err.msg, sizeof err.msg, &err))) {
            fprintf(stderr, "incv3 train: %s\n", err.msg);
            incv3_dist_abort(dist, 1, "MPI failed");
            return 1;
        }
        if (rc) {
            if (root)
                fprintf(stderr, "incv3 train: %s\n", err.msg);
            return 1;
        }
        snprintf(cfg.out, sizeof cfg.out, "%s", resume);
    } else {
        if (strcmp(cfg.dataset, "fashion-mnist") == 0) {
            if (!mean_given)
                cfg.mean = 0.2860;
            if (!std_given)
                cfg.std = 0.3530;
        }
        if (!data)
            data = strcmp(cfg.dataset, "fashion-mnist") == 0 ? "/usr/share/datasets/fashion-mnist" : "data/mnist";
        snprintf(cfg.data, sizeof cfg.data, "%s", data);
        if (out) {
            snprintf(cfg.out, sizeof cfg.out, "%s", out);
        } else {
            char stamp[32];
            time_t t = time(NULL);
            strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", localtime(&t));
            snprintf(cfg.out, sizeof cfg.out, "runs/%s", stamp);
        }
    }
    /* A new run's --out: refused here when it cannot be a run directory at all (a file, or a path through a
     * file), so the message says that rather than "not empty"; remembered, so that the directories a run that
     * fails before writing anything created are removed again and the same --out can be used next time. */
    int out_existed = 0, bad_out = 0;
    if (!resume && root) {
        struct stat st;
        if (stat(cfg.out, &st) == 0) {
            if (!S_ISDIR(st.st_mode)) {
                fprintf(stderr, "incv3 train: --out %s: exists and is not a directory\n", cfg.out);
                bad_out = 1;
            }
            out_existed = 1;
        } else if (errno != ENOENT) {
            fprintf(stderr, "incv3 train: --out %s: cannot use it: %s\n", cfg.out, strerror(errno));
            bad_out = 1;
        }
    }
    if (incv3_dist_max_int(dist, &bad_out, &err)) {
        fprintf(stderr, "incv3 train: %s\n", err.msg);
        incv3_dist_abort(dist, 1, "MPI failed");
        return 1;
    }
    if (bad_out)
        return EXIT_USAGE;
    if (epochs > 0)
        cfg.epochs = epochs;
    cfg.threads = threads; /* 0: the scheduler's default, one per core */
    cfg.smt = smt;
    cfg.keep = keep; /* 0: keep every checkpoint */
    cfg.sync_bn = sync_bn;
    cfg.dist = dist; /* after the broadcast of cfg: each rank's own context */
    snprintf(cfg.bind, sizeof cfg.bind, "%s", bind);
    int interrupted;
    if (incv3_train(&cfg, resume != NULL, &interrupted, &err)) {
        if (root)
            fprintf(stderr, "incv3 train: %s\n", err.msg);
        if (!resume && root) { /* rmdir removes empty directories only: whatever the run wrote stays */
            char ckpts[sizeof cfg.out + 16];
            snprintf(ckpts, sizeof ckpts, "%s/checkpoints", cfg.out);
            rmdir(ckpts);
            if (!out_existed)
                rmdir(cfg.out);
        }
        /* Flag values are checked before any work: those errors name the flag and are usage errors. */
        return err.msg[0] == '-' ? EXIT_USAGE : 1;
    }
    return 0;
}

int cmd_train(int argc, char **argv)
{
    static const struct option opts[] = {
        {"data", required_argument, NULL, O_DATA},         {"dataset", required_argument, NULL, O_DATASET},
        {"out", required_argument, NULL, O_OUT},           {"resume", required_argument, NULL, O_RESUME},
        {"epochs", required_argument, NULL, O_EPOCHS},     {"batch", required_argument, NULL, O_BATCH},
        {"lr", required_argument, NULL, O_LR},             {"weight-decay", required_argument, NULL, O_WD},
        {"aux-weight", required_argument, NULL, O_AUXW},   {"label-smoothing", required_argument, NULL, O_LS},
        {"image-size", required_argument, NULL, O_SIZE},   {"no-aux", no_argument, NULL, O_NOAUX},
        {"width", required_argument, NULL, O_WIDTH},       {"limit-train", required_argument, NULL, O_LIMIT},
        {"val-fraction", required_argument, NULL, O_VAL},  {"dropout", required_argument, NULL, O_DROPOUT},
        {"seed", required_argument, NULL, O_SEED},         {"threads", required_argument, NULL, O_THREADS},
        {"checkpoint-every", required_argument, NULL, O_CKPT}, {"isa", required_argument, NULL, O_ISA},
        {"conv-algo", required_argument, NULL, O_ALGO},    {"mean", required_argument, NULL, O_MEAN},
        {"std", required_argument, NULL, O_STD},           {"smt", no_argument, NULL, O_SMT},
        {"bind", required_argument, NULL, O_BIND},         {"keep", required_argument, NULL, O_KEEP},
        {"sync-bn", no_argument, NULL, O_SYNCBN},
        {"deterministic", no_argument, NULL, O_DETERMINISTIC},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    incv3_train_config cfg;
    incv3_train_config_default(&cfg);
    const char *resume = NULL, *data = NULL, *out = NULL;
    int epochs = -1, threads = 0, other_flags = 0, mean_given = 0, std_given = 0, smt = 0, keep = 0, sync_bn = 0, c;
    const char *bind = "core";
    const char *other_flag = NULL;
    double d;
    while ((c = cli_getopt("train", argc, argv, "h", opts)) != -1) {
        const char *flag = NULL;
        for (const struct option *o = opts; o->name; o++)
            if (o->val == c)
                flag = o->name;
        if (c != O_RESUME && c != O_EPOCHS && c != O_THREADS && c != O_SMT && c != O_BIND && c != O_KEEP &&
            c != O_SYNCBN && c != 'h' && c != '?') {
            other_flags++;
            other_flag = flag;
        }
        int bad = 0;
        switch (c) {
        case O_DATA: data = optarg; break;
        case O_DATASET:
            if (strcmp(optarg, "mnist") && strcmp(optarg, "fashion-mnist")) {
                fprintf(stderr, "incv3 train: --dataset %s: expected mnist or fashion-mnist\n", optarg);
                bad = 1;
            } else {
                snprintf(cfg.dataset, sizeof cfg.dataset, "%s", optarg);
            }
            break;
        case O_OUT: out = optarg; break;
        case O_RESUME: resume = optarg; break;
        case O_EPOCHS: bad = cli_parse_int("train", "--epochs", optarg, 1, 100000, &epochs); break;
        case O_BATCH: bad = cli_parse_int("train", "--batch", optarg, 1, 4096, &cfg.batch); break;
        case O_LR: bad = cli_parse_double("train", "--lr", optarg, 1e-12, 10, &cfg.lr); break;
        case O_WD: bad = cli_parse_double("train", "--weight-decay", optarg, 0, 1, &cfg.weight_decay); break;
        case O_AUXW: bad = cli_parse_double("train", "--aux-weight", optarg, 0, 100, &cfg.aux_weight); break;
        case O_LS: bad = cli_parse_double("train", "--label-smoothing", optarg, 0, 1, &cfg.label_smoothing); break;
        case O_SIZE: bad = cli_parse_int("train", "--image-size", optarg, 1, 4096, &cfg.image_size); break;
        case O_NOAUX: cfg.aux = 0; break;
        case O_WIDTH: bad = cli_parse_double("train", "--width", optarg, -1e9, 1e9, &cfg.width); break;
        case O_LIMIT: bad = cli_parse_int("train", "--limit-train", optarg, 1, 1 << 30, &cfg.limit_train); break;
        case O_VAL: bad = cli_parse_double("train", "--val-fraction", optarg, 0, 0.99, &cfg.val_fraction); break;
        case O_DROPOUT: bad = cli_parse_double("train", "--dropout", optarg, 0, 0.99, &cfg.dropout); break;
        case O_SEED:
            bad = cli_parse_double("train", "--seed", optarg, 0, 9007199254740992.0, &d);
            cfg.seed = (uint64_t)d;
            break;
        case O_THREADS: bad = cli_parse_int("train", "--threads", optarg, 1, 4096, &threads); break;
        case O_CKPT: bad = cli_parse_int("train", "--checkpoint-every", optarg, 1, 1 << 30, &cfg.checkpoint_every); break;
        case O_ISA: snprintf(cfg.isa, sizeof cfg.isa, "%s", optarg); break;
        case O_ALGO: snprintf(cfg.conv_algo, sizeof cfg.conv_algo, "%s", optarg); break;
        case O_MEAN:
            bad = cli_parse_double("train", "--mean", optarg, -10, 10, &cfg.mean);
            mean_given = 1;
            break;
        case O_STD:
            bad = cli_parse_double("train", "--std", optarg, 1e-6, 10, &cfg.std);
            std_given = 1;
            break;
        case O_SMT: smt = 1; break;
        case O_DETERMINISTIC: cfg.deterministic = 1; break;
        case O_KEEP: bad = cli_parse_int("train", "--keep", optarg, 1, 1 << 30, &keep); break;
        case O_SYNCBN: sync_bn = 1; break;
        case O_BIND:
            if (strcmp(optarg, "core") && strcmp(optarg, "none")) {
                fprintf(stderr, "incv3 train: --bind %s: expected core or none\n", optarg);
                bad = 1;
            }
            bind = optarg;
            break;
        case 'h': fputs(usage, stdout); return 0;
        default: bad = 1;
        }
        if (bad)
            return cli_usage_hint("train");
    }
    if (optind < argc) {
        fprintf(stderr, "incv3 train: unexpected argument '%s'\n", argv[optind]);
        return cli_usage_hint("train");
    }
    if (resume && other_flags) {
        fprintf(stderr, "incv3 train: --%s cannot be changed when resuming: --resume takes every setting from "
                        "%s (only --epochs, --threads, --smt, --bind, --keep and --sync-bn may be given)\n",
                other_flag, resume);
        return EXIT_USAGE;
    }
    incv3_error err;
    /* Under mpirun/srun every rank runs this; rank 0 alone reads the run directory, prints and writes. */
    incv3_dist *dist = NULL;
    if (incv3_dist_init(&dist, &err)) {
        fprintf(stderr, "incv3 train: %s\n", err.msg);
        incv3_dist_abort(dist, 1, "MPI could not start");
        incv3_dist_finalize(dist);
        return 1;
    }
    const int root = incv3_dist_rank(dist) == 0;
    if (!root) /* other ranks are silent; their own failures go to stderr */
        if (!freopen("/dev/null", "w", stdout))
            fprintf(stderr, "incv3 train: cannot silence rank %d's output\n", incv3_dist_rank(dist));
    const int rc = train_ranks(dist, &cfg, resume, out, data, mean_given, std_given, epochs, threads, smt, keep,
                               sync_bn, bind);
    incv3_dist_finalize(dist);
    return rc;
}
