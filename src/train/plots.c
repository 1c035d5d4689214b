/* gnuplot driver for the training curves (see plots.h). */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* getline, mkstemp, fdopen, posix_spawn, waitpid */
#endif

#include "train/plots.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "train/metrics.h"

extern char **environ; /* passed to gnuplot unchanged so it sees the user's locale, fonts and HOME */

/* Per-epoch values; NaN marks "no row", which gnuplot is told to treat as missing. */
typedef struct epoch_row {
    long epoch;
    double train_loss, val_loss, train_acc, val_acc;
} epoch_row;

typedef struct curves {
    epoch_row *rows;
    size_t n, cap;
} curves;

/* Absolute or relative path of an executable gnuplot found on PATH (caller frees), or NULL. An empty
 * PATH element means the current directory, as for execvp. */
static char *find_in_path(const char *name)
{
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/bin:/bin"; /* execvp's fallback when PATH is unset */
    size_t nlen = strlen(name);
    const char *p = path;
    for (;;) {
        const char *end = strchr(p, ':');
        size_t dlen = end ? (size_t)(end - p) : strlen(p);
        const char *dir = dlen ? p : ".";
        if (!dlen)
            dlen = 1;
        char *cand = malloc(dlen + 1 + nlen + 1);
        if (!cand)
            return NULL;
        memcpy(cand, dir, dlen);
        cand[dlen] = '/';
        memcpy(cand + dlen + 1, name, nlen + 1);
        struct stat st;
        if (stat(cand, &st) == 0 && S_ISREG(st.st_mode) && access(cand, X_OK) == 0)
            return cand;
        free(cand);
        if (!end)
            return NULL;
        p = end + 1;
    }
}

static epoch_row *row_for(curves *cv, long epoch)
{
    /* Rows arrive in epoch order, so the last row is almost always the match. */
    for (size_t i = cv->n; i-- > 0;)
        if (cv->rows[i].epoch == epoch)
            return &cv->rows[i];
    if (cv->n == cv->cap) {
        size_t cap = cv->cap ? 2 * cv->cap : 64;
        epoch_row *r = realloc(cv->rows, cap * sizeof *r);
        if (!r)
            return NULL;
        cv->rows = r;
        cv->cap = cap;
    }
    epoch_row *r = &cv->rows[cv->n++];
    r->epoch = epoch;
    r->train_loss = r->val_loss = r->train_acc = r->val_acc = NAN;
    return r;
}

static int cmp_epoch(const void *a, const void *b)
{
    long x = ((const epoch_row *)a)->epoch, y = ((const epoch_row *)b)->epoch;
    return (x > y) - (x < y);
}

/* Parses one field ending at ',' or the end of s; advances *s past the comma. */
static int next_field(char **s, char **field)
{
    if (!*s)
        return -1;
    *field = *s;
    char *comma = strchr(*s, ',');
    if (comma) {
        *comma = '\0';
        *s = comma + 1;
    } else {
        *s = NULL;
    }
    return 0;
}

static int parse_double(const char *s, double *v)
{
    char *end;
    /* Overflow (inf) and underflow (tiny) values are kept: the plot shows or skips them. */
    *v = strtod(s, &end);
    return end == s || *end ? -1 : 0;
}

static int read_csv(const char *path, curves *cv, FILE *note, incv3_error *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return incv3_fail(err, "%s: cannot open: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    int rc = -1;
    while ((len = getline(&line, &cap, f)) > 0) {
        lineno++;
        if (line[len - 1] != '\n') {
            /* incv3_metrics_csv_append writes whole lines; an unterminated last one was torn by a kill. */
            if (note)
                fprintf(note, "%s:%ld: ignoring an unterminated last line\n", path, lineno);
            break;
        }
        line[--len] = '\0';
        if (len && line[len - 1] == '\r')
            line[--len] = '\0';
        if (lineno == 1) {
            if (strcmp(line, "epoch,split,loss,accuracy,seconds")) {
                incv3_fail(err, "%s:1: expected the header \"epoch,split,loss,accuracy,seconds\"", path);
                goto out;
            }
            continue;
        }
        if (!len)
            continue;
        char *s = line, *fe, *fs, *fl, *fa, *fsec;
        double loss, acc, sec;
        char *end;
        if (next_field(&s, &fe) || next_field(&s, &fs) || next_field(&s, &fl) || next_field(&s, &fa) ||
            next_field(&s, &fsec) || s) {
            incv3_fail(err, "%s:%ld: expected 5 comma-separated fields", path, lineno);
            goto out;
        }
        errno = 0;
        long epoch = strtol(fe, &end, 10);
        if (end == fe || *end || errno) {
            incv3_fail(err, "%s:%ld: epoch \"%.40s\" is not an integer", path, lineno, fe);
            goto out;
        }
        if (parse_double(fl, &loss) || parse_double(fa, &acc) || parse_double(fsec, &sec)) {
            incv3_fail(err, "%s:%ld: loss, accuracy or seconds is not a number", path, lineno);
            goto out;
        }
        int is_train = strcmp(fs, INCV3_SPLIT_TRAIN) == 0, is_val = strcmp(fs, INCV3_SPLIT_VAL) == 0;
        if (!is_train && !is_val)
            continue; /* test rows and any other split are not part of the curves */
        epoch_row *r = row_for(cv, epoch);
        if (!r) {
            incv3_fail(err, "%s: out of memory", path);
            goto out;
        }
        /* Later rows overwrite earlier ones: a resumed run re-logs the epochs it repeats. */
        if (is_train) {
            r->train_loss = loss;
            r->train_acc = 100.0 * acc;
        } else {
            r->val_loss = loss;
            r->val_acc = 100.0 * acc;
        }
    }
    if (ferror(f)) {
        incv3_fail(err, "%s: read error: %s", path, strerror(errno));
        goto out;
    }
    if (lineno == 0) {
        incv3_fail(err, "%s: empty file", path);
        goto out;
    }
    if (cv->n == 0) {
        incv3_fail(err, "%s: no \"" INCV3_SPLIT_TRAIN "\" or \"" INCV3_SPLIT_VAL "\" rows to plot", path);
        goto out;
    }
    qsort(cv->rows, cv->n, sizeof *cv->rows, cmp_epoch);
    rc = 0;
out:
    free(line);
    fclose(f);
    return rc;
}

/* gnuplot single-quoted string: backslashes are literal and a quote is written twice. Control
 * characters were rejected earlier, so nothing else can end the string or the line. */
static int put_quoted(FILE *f, const char *s)
{
    if (fputc('\'', f) == EOF)
        return -1;
    for (; *s; s++) {
        if (*s == '\'' && fputc('\'', f) == EOF)
            return -1;
        if (fputc(*s, f) == EOF)
            return -1;
    }
    return fputc('\'', f) == EOF ? -1 : 0;
}

static void put_value(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, " %.9g", v);
    else
        fputs(" NaN", f);
}

/* Column of an epoch row as numbered in the $data block (2..5). */
static double column(const epoch_row *r, int col)
{
    switch (col) {
    case 2: return r->train_loss;
    case 3: return r->val_loss;
    case 4: return r->train_acc;
    default: return r->val_acc;
    }
}

static int any_finite(const curves *cv, int col)
{
    for (size_t i = 0; i < cv->n; i++)
        if (isfinite(column(&cv->rows[i], col)))
            return 1;
    return 0;
}

/* One PNG: the columns of $data named by col_train / col_val, skipping a curve without points (gnuplot
 * would stop on a plot with no valid points at all). */
static void plot_one(FILE *f, const char *out_tmp, const char *what, const char *ylabel, const char *key_pos,
                     int col_train, int has_train, int col_val, int has_val)
{
    fputs("set output ", f);
    put_quoted(f, out_tmp);
    fprintf(f, "\nset title \"%s\"\nset ylabel \"%s\"\nset key %s\nplot ", what, ylabel, key_pos);
    if (has_train)
        fprintf(f, "$data using 1:%d with linespoints lw 2 pt 7 ps 0.6 title \"Training\"%s", col_train,
                has_val ? ", " : "");
    if (has_val)
        fprintf(f, "$data using 1:%d with linespoints lw 2 pt 7 ps 0.6 title \"Validation\"", col_val);
    fputs("\nunset output\n", f);
}

static int write_script(FILE *f, const curves *cv, const char *loss_tmp, const char *acc_tmp)
{
    int has_tl = any_finite(cv, 2), has_vl = any_finite(cv, 3);
    int has_ta = any_finite(cv, 4), has_va = any_finite(cv, 5);
    if (!(has_tl || has_vl) || !(has_ta || has_va))
        return 1; /* no finite value at all: reported by the caller */

    /* Inline data block: no data file to create, name or quote. */
    fputs("set datafile missing \"NaN\"\n$data << EOD\n", f);
    for (size_t i = 0; i < cv->n; i++) {
        const epoch_row *r = &cv->rows[i];
        fprintf(f, "%ld", r->epoch);
        for (int col = 2; col <= 5; col++)
            put_value(f, column(r, col));
        fputc('\n', f);
    }
    fputs("EOD\n", f);
    /* pngcairo draws anti-aliased curves; the libgd png terminal is the fallback on builds without it. */
    fputs("if (strstrt(GPVAL_TERMINALS, \"pngcairo\") > 0) {\n"
          "    set terminal pngcairo size 800,600 font \"sans,11\"\n"
          "} else {\n"
          "    set terminal png size 800,600\n"
          "}\n"
          "set grid\nset xlabel \"Epoch\"\n"
          /* Margins so the first and last points do not sit on the frame. */
          "set offsets graph 0.02, graph 0.02, graph 0.05, graph 0.05\n",
          f);
    long first = cv->rows[0].epoch, last = cv->rows[cv->n - 1].epoch;
    if (first == last) /* a single epoch: give the axis some width instead of gnuplot's warning */
        fprintf(f, "set xrange [%ld:%ld]\n", first - 1, last + 1);
    if (last - first <= 20)
        fputs("set xtics 1\n", f); /* whole epochs only */
    /* Loss falls and accuracy rises: put each key where its curves are not. */
    plot_one(f, loss_tmp, "Loss", "Loss", "top right", 2, has_tl, 3, has_vl);
    plot_one(f, acc_tmp, "Accuracy", "Accuracy (%)", "bottom right", 4, has_ta, 5, has_va);
    return ferror(f) ? -1 : 0;
}

static char *join(const char *dir, const char *name)
{
    size_t dl = strlen(dir), nl = strlen(name);
    char *p = malloc(dl + 1 + nl + 1);
    if (p) {
        memcpy(p, dir, dl);
        p[dl] = '/';
        memcpy(p + dl + 1, name, nl + 1);
    }
    return p;
}

/* A temporary file "<dir>/<stem>.XXXXXX"; its path is returned in *path (caller frees and unlinks). */
static int make_temp(const char *dir, const char *stem, char **path)
{
    *path = join(dir, stem);
    if (!*path)
        return -1;
    size_t l = strlen(*path);
    char *p = realloc(*path, l + sizeof ".XXXXXX");
    if (!p) {
        free(*path);
        *path = NULL;
        return -1;
    }
    memcpy(p + l, ".XXXXXX", sizeof ".XXXXXX");
    *path = p;
    int fd = mkstemp(p);
    if (fd < 0) {
        free(p);
        *path = NULL;
    }
    return fd;
}

static int has_png_signature(const char *path)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    unsigned char buf[8];
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    size_t got = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return got == sizeof buf && memcmp(buf, sig, sizeof sig) == 0;
}

/* First non-empty line of gnuplot's stderr (the script line it choked on, usually), for the error. */
static void first_line(int fd, char *buf, size_t cap)
{
    buf[0] = '\0';
    ssize_t n = pread(fd, buf, cap - 1, 0);
    if (n <= 0)
        return;
    buf[n] = '\0';
    char *s = buf;
    while (*s == '\n' || *s == ' ')
        s++;
    size_t l = strcspn(s, "\n");
    memmove(buf, s, l);
    buf[l] = '\0';
}

int incv3_plot_curves(const char *csv_path, const char *out_dir, FILE *note, incv3_error *err)
{
    if (!csv_path || !out_dir || !out_dir[0])
        return incv3_fail(err, "plots: missing metrics.csv path or output directory");
    char *gnuplot = find_in_path("gnuplot");
    if (!gnuplot) {
        if (note)
            fprintf(note, "gnuplot not found: loss.png and accuracy.png not written; apt-get install gnuplot-nox\n");
        return 0;
    }
    for (const char *p = out_dir; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            free(gnuplot);
            return incv3_fail(err, "%s: output directory name holds a control character", out_dir);
        }
    }

    int rc = -1, script_fd = -1, err_fd = -1, loss_fd = -1, acc_fd = -1;
    char *script = NULL, *errlog = NULL, *loss_tmp = NULL, *acc_tmp = NULL, *loss_png = NULL, *acc_png = NULL;
    curves cv = {0};
    if (read_csv(csv_path, &cv, note, err))
        goto out;

    loss_png = join(out_dir, "loss.png");
    acc_png = join(out_dir, "accuracy.png");
    if (!loss_png || !acc_png) {
        incv3_fail(err, "%s: out of memory", out_dir);
        goto out;
    }
    /* gnuplot writes into temporary names beside the final ones, so the renames below are atomic. */
    script_fd = make_temp(out_dir, ".incv3-plot.gp", &script);
    err_fd = script_fd >= 0 ? make_temp(out_dir, ".incv3-plot.err", &errlog) : -1;
    loss_fd = err_fd >= 0 ? make_temp(out_dir, "loss.png.tmp", &loss_tmp) : -1;
    acc_fd = loss_fd >= 0 ? make_temp(out_dir, "accuracy.png.tmp", &acc_tmp) : -1;
    if (acc_fd < 0) {
        incv3_fail(err, "%s: cannot create temporary files for the plots: %s", out_dir, strerror(errno));
        goto out;
    }
    /* gnuplot reopens the PNG paths itself; readable like any other output once renamed. */
    fchmod(loss_fd, 0644);
    fchmod(acc_fd, 0644);
    close(loss_fd);
    close(acc_fd);
    loss_fd = acc_fd = -1;

    FILE *sf = fdopen(script_fd, "w");
    if (!sf) {
        incv3_fail(err, "%s: cannot write the gnuplot script: %s", script, strerror(errno));
        goto out;
    }
    script_fd = -1; /* owned by sf */
    int ws = write_script(sf, &cv, loss_tmp, acc_tmp);
    if (fclose(sf) || ws < 0) {
        incv3_fail(err, "%s: writing the gnuplot script failed", script);
        goto out;
    }
    if (ws > 0) {
        incv3_fail(err, "%s: no finite loss or accuracy in the train/val rows", csv_path);
        goto out;
    }

    /* gnuplot runs directly (no shell) with the script path as its only argument; its stdin and
     * stdout are /dev/null and its stderr goes to errlog for the error message. */
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa)) {
        incv3_fail(err, "gnuplot: cannot prepare its launch");
        goto out;
    }
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
    char *argv[] = {"gnuplot", script, NULL};
    pid_t pid;
    int se = posix_spawn(&pid, gnuplot, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (se) {
        incv3_fail(err, "%s: cannot start: %s", gnuplot, strerror(se));
        goto out;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            incv3_fail(err, "%s: waiting for it failed: %s", gnuplot, strerror(errno));
            goto out;
        }
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char msg[512];
        first_line(err_fd, msg, sizeof msg);
        if (WIFEXITED(status))
            incv3_fail(err, "%s failed (exit status %d) drawing plots into %s: %s", gnuplot, WEXITSTATUS(status),
                       out_dir, msg[0] ? msg : "no message");
        else
            incv3_fail(err, "%s was killed by signal %d drawing plots into %s", gnuplot,
                       WIFSIGNALED(status) ? WTERMSIG(status) : 0, out_dir);
        goto out;
    }
    if (!has_png_signature(loss_tmp) || !has_png_signature(acc_tmp)) {
        incv3_fail(err, "%s: gnuplot exited cleanly but %s or %s is not a PNG file", gnuplot, loss_tmp, acc_tmp);
        goto out;
    }
    if (rename(loss_tmp, loss_png)) {
        incv3_fail(err, "%s: cannot rename %s over it: %s", loss_png, loss_tmp, strerror(errno));
        goto out;
    }
    free(loss_tmp);
    loss_tmp = NULL;
    if (rename(acc_tmp, acc_png)) {
        incv3_fail(err, "%s: cannot rename %s over it: %s", acc_png, acc_tmp, strerror(errno));
        goto out;
    }
    free(acc_tmp);
    acc_tmp = NULL;
    rc = 0;

out:
    if (script_fd >= 0)
        close(script_fd);
    if (err_fd >= 0)
        close(err_fd);
    if (loss_fd >= 0)
        close(loss_fd);
    if (acc_fd >= 0)
        close(acc_fd);
    /* Temporary files go whatever happened; a NULL name was never created or was renamed. */
    char *tmps[4] = {script, errlog, loss_tmp, acc_tmp};
    for (int i = 0; i < 4; i++) {
        if (tmps[i])
            unlink(tmps[i]);
        free(tmps[i]);
    }
    free(loss_png);
    free(acc_png);
    free(cv.rows);
    free(gnuplot);
    return rc;
}
