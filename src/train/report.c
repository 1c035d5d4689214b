/* Results tables, report.md and metrics.csv (see report.h). */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* fsync, pread, O_CLOEXEC */
#endif

#include "train/report.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/atomic_file.h"

/* Every cell is short (a header such as "Validation Precision", a number, "n/a"), so fixed-size
 * cells keep the table a single allocation. */
enum { CELL_MAX = 64 };
typedef struct cell {
    char s[CELL_MAX];
} cell;

typedef struct table {
    int rows, cols; /* row 0 is the header */
    cell *c;
} table;

static int table_new(table *t, int rows, int cols)
{
    t->rows = rows;
    t->cols = cols;
    t->c = calloc((size_t)rows * (size_t)cols, sizeof *t->c);
    return t->c ? 0 : -1;
}

static char *at(const table *t, int r, int col)
{
    return t->c[(size_t)r * (size_t)t->cols + (size_t)col].s;
}

static void put_str(table *t, int r, int col, const char *s)
{
    snprintf(at(t, r, col), CELL_MAX, "%s", s);
}

static void put_num(table *t, int r, int col, const char *fmt, double v)
{
    snprintf(at(t, r, col), CELL_MAX, fmt, v);
}

static int pad(FILE *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fputc(' ', out) == EOF)
            return -1;
    return 0;
}

/* Prints t the way the seed's tables are laid out (Prettier's markdown formatting): each column is as
 * wide as its widest cell (at least 3, the shortest ":-:"), cells are centred with the odd space on
 * the right, and the second line is the centred-alignment row. */
static int table_print(FILE *out, const table *t)
{
    size_t *w = calloc((size_t)t->cols, sizeof *w);
    if (!w)
        return -1;
    for (int col = 0; col < t->cols; col++) {
        w[col] = 3;
        for (int r = 0; r < t->rows; r++) {
            size_t len = strlen(at(t, r, col));
            if (len > w[col])
                w[col] = len;
        }
    }
    int rc = 0;
    for (int r = 0; r < t->rows && !rc; r++) {
        for (int col = 0; col < t->cols && !rc; col++) {
            const char *s = at(t, r, col);
            size_t extra = w[col] - strlen(s), left = extra / 2;
            rc |= fputs("| ", out) == EOF;
            rc |= pad(out, left);
            rc |= fputs(s, out) == EOF;
            rc |= pad(out, extra - left);
            rc |= fputc(' ', out) == EOF;
        }
        rc |= fputs("|\n", out) == EOF;
        if (r == 0) {
            for (int col = 0; col < t->cols && !rc; col++) {
                rc |= fputs("| :", out) == EOF;
                for (size_t i = 2; i < w[col]; i++)
                    rc |= fputc('-', out) == EOF;
                rc |= fputs(": ", out) == EOF;
            }
            rc |= fputs("|\n", out) == EOF;
        }
    }
    free(w);
    return rc ? -1 : 0;
}

static int has_conf(const incv3_split_result *s)
{
    return s && s->conf.counts && s->conf.classes > 0;
}

int incv3_report_tables(FILE *out, const incv3_split_result *train, const incv3_split_result *val,
                        const incv3_split_result *test)
{
    const incv3_split_result *sp[3] = {train, val, test};
    static const char *const split_title[3] = {"Training", "Validation", "Testing"};
    static const char *const metric_title[3] = {"Precision", "Recall", "F1 Score"};

    /* Loss and accuracy. */
    table t;
    if (table_new(&t, 3, 4))
        return -1;
    put_str(&t, 0, 0, "");
    put_str(&t, 1, 0, "Loss");
    put_str(&t, 2, 0, "Accuracy (%)");
    for (int s = 0; s < 3; s++) {
        put_str(&t, 0, s + 1, split_title[s]);
        if (sp[s])
            put_num(&t, 1, s + 1, "%.4f", sp[s]->loss);
        else
            put_str(&t, 1, s + 1, "n/a");
        if (has_conf(sp[s]))
            put_num(&t, 2, s + 1, "%.2f", 100.0 * incv3_confusion_accuracy(&sp[s]->conf));
        else
            put_str(&t, 2, s + 1, "n/a");
    }
    int rc = table_print(out, &t);
    free(t.c);
    if (rc || fputc('\n', out) == EOF)
        return -1;

    /* Per-class precision, recall and F1: metric-major, split-minor columns as in the seed. */
    int k = 0;
    for (int s = 0; s < 3; s++)
        if (has_conf(sp[s]) && sp[s]->conf.classes > k)
            k = sp[s]->conf.classes;
    if (table_new(&t, k + 1, 10))
        return -1;
    put_str(&t, 0, 0, "Class");
    for (int m = 0; m < 3; m++)
        for (int s = 0; s < 3; s++)
            snprintf(at(&t, 0, 1 + 3 * m + s), CELL_MAX, "%s %s", split_title[s], metric_title[m]);
    for (int cls = 0; cls < k; cls++) {
        snprintf(at(&t, cls + 1, 0), CELL_MAX, "%d", cls);
        for (int s = 0; s < 3; s++) {
            const int ok = has_conf(sp[s]) && cls < sp[s]->conf.classes;
            for (int m = 0; m < 3; m++) {
                int col = 1 + 3 * m + s;
                if (!ok) {
                    put_str(&t, cls + 1, col, "n/a");
                    continue;
                }
                const incv3_confusion *c = &sp[s]->conf;
                double v = m == 0 ? incv3_confusion_precision(c, cls)
                         : m == 1 ? incv3_confusion_recall(c, cls)
                                  : incv3_confusion_f1(c, cls);
                put_num(&t, cls + 1, col, "%.4f", v);
            }
        }
    }
    rc = table_print(out, &t);
    free(t.c);
    return rc || ferror(out) ? -1 : 0;
}

int incv3_report_confusion(FILE *out, const incv3_confusion *c, const char *title)
{
    if (!c || !c->counts || c->classes < 1)
        return -1;
    if (fprintf(out, "#### %s\n\n", title && title[0] ? title : "Confusion matrix") < 0)
        return -1;
    table t;
    if (table_new(&t, c->classes + 1, c->classes + 1))
        return -1;
    /* "\\" renders as a literal backslash in markdown: rows are true classes, columns predictions. */
    put_str(&t, 0, 0, "True \\\\ Predicted");
    for (int j = 0; j < c->classes; j++) {
        snprintf(at(&t, 0, j + 1), CELL_MAX, "%d", j);
        snprintf(at(&t, j + 1, 0), CELL_MAX, "%d", j);
        for (int p = 0; p < c->classes; p++)
            snprintf(at(&t, j + 1, p + 1), CELL_MAX, "%lld",
                     (long long)c->counts[(size_t)j * (size_t)c->classes + (size_t)p]);
    }
    int rc = table_print(out, &t);
    free(t.c);
    return rc || ferror(out) ? -1 : 0;
}

static int write_md(FILE *f, void *ctx, incv3_error *err)
{
    const incv3_report_md *r = ctx;
    if (r->header_markdown && r->header_markdown[0]) {
        size_t len = strlen(r->header_markdown);
        if (fputs(r->header_markdown, f) == EOF)
            return -1;
        /* Tables need a blank line before them to be parsed as tables. */
        if (fputs(r->header_markdown[len - 1] == '\n' ? "\n" : "\n\n", f) == EOF)
            return -1;
    }
    if (r->include_plots) {
        table t;
        if (table_new(&t, 2, 2))
            return incv3_fail(err, "out of memory");
        put_str(&t, 0, 0, "Loss");
        put_str(&t, 0, 1, "Accuracy");
        put_str(&t, 1, 0, "![Loss graph](loss.png)");
        put_str(&t, 1, 1, "![Accuracy graph](accuracy.png)");
        int rc = table_print(f, &t);
        free(t.c);
        if (rc || fputc('\n', f) == EOF)
            return -1;
    }
    if (incv3_report_tables(f, r->train, r->val, r->test))
        return -1;
    if (r->include_confusion) {
        const incv3_split_result *sp[3] = {r->train, r->val, r->test};
        static const char *const fallback[3] = {"Training", "Validation", "Testing"};
        for (int s = 0; s < 3; s++) {
            if (!has_conf(sp[s]))
                continue;
            char title[128];
            snprintf(title, sizeof title, "Confusion matrix (%s)",
                     sp[s]->name && sp[s]->name[0] ? sp[s]->name : fallback[s]);
            if (fputc('\n', f) == EOF || incv3_report_confusion(f, &sp[s]->conf, title))
                return -1;
        }
    }
    if (r->best_test) {
        if (fprintf(f, "\n## Best validation weights (epoch %d, `best.safetensors`)\n\n", r->best_epoch) < 0 ||
            incv3_report_tables(f, NULL, NULL, r->best_test))
            return -1;
        if (r->include_confusion && has_conf(r->best_test) &&
            (fputc('\n', f) == EOF || incv3_report_confusion(f, &r->best_test->conf, "Confusion matrix (test, best weights)")))
            return -1;
    }
    return 0;
}

int incv3_report_print(FILE *out, const incv3_report_md *r, incv3_error *err)
{
    return write_md(out, (void *)r, err);
}

int incv3_report_write_md(const char *path, const incv3_report_md *r, incv3_error *err)
{
    if (!r)
        return incv3_fail(err, "%s: no report content given", path ? path : "report.md");
    return incv3_write_file_atomic(path, write_md, (void *)r, err);
}

static const char csv_header[] = "epoch,split,loss,accuracy,seconds\n";

/* write() until done, retrying short writes and EINTR. */
static int write_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int incv3_metrics_csv_append(const char *path, int epoch, const char *split, double loss, double accuracy,
                             double seconds, incv3_error *err)
{
    if (!path || !path[0])
        return incv3_fail(err, "metrics.csv: missing path");
    if (!split || !split[0] || strlen(split) > 64 || strpbrk(split, ",\"\r\n"))
        return incv3_fail(err, "%s: split name \"%.64s\" is empty, longer than 64 bytes or holds ',', '\"' or a "
                          "line break", path, split ? split : "(null)");

    /* The whole line (plus header and a repair newline when needed) is built first so that it
     * reaches the file in a single write(): O_APPEND then keeps rows whole. %.9g round-trips floats
     * and keeps the file short. */
    char line[1024 + sizeof csv_header]; /* %.3f of the largest double is about 320 bytes */
    size_t off = 0;

    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return incv3_fail(err, "%s: cannot open for appending: %s", path, strerror(errno));
    int rc = -1;
    struct stat st;
    if (fstat(fd, &st)) {
        incv3_fail(err, "%s: cannot stat: %s", path, strerror(errno));
        goto out;
    }
    if (st.st_size == 0) {
        memcpy(line, csv_header, sizeof csv_header - 1);
        off = sizeof csv_header - 1;
    } else {
        /* A separate read-only descriptor: the append one cannot read. */
        int rfd = open(path, O_RDONLY | O_CLOEXEC);
        char head[sizeof csv_header - 1], last = '\n';
        ssize_t got = -1;
        if (rfd >= 0) {
            got = pread(rfd, head, sizeof head, 0);
            if (pread(rfd, &last, 1, st.st_size - 1) != 1)
                got = -1;
            close(rfd);
        }
        if (got != (ssize_t)sizeof head || memcmp(head, csv_header, sizeof head)) {
            incv3_fail(err, "%s: exists but does not start with the header \"epoch,split,loss,accuracy,seconds\"",
                       path);
            goto out;
        }
        if (last != '\n')
            line[off++] = '\n'; /* end a row torn by a killed run so the new one starts on its own line */
    }
    int n = snprintf(line + off, sizeof line - off, "%d,%s,%.9g,%.9g,%.3f\n", epoch, split, loss, accuracy,
                     seconds);
    if (n < 0 || (size_t)n >= sizeof line - off) {
        incv3_fail(err, "%s: row too long", path);
        goto out;
    }
    off += (size_t)n;
    if (write_all(fd, line, off)) {
        incv3_fail(err, "%s: appending a row failed: %s", path, strerror(errno));
        goto out;
    }
    /* On disk now, so a crash or kill later in the run keeps this epoch's row. */
    if (fsync(fd)) {
        incv3_fail(err, "%s: fsync failed: %s", path, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (close(fd) && rc == 0)
        rc = incv3_fail(err, "%s: close failed: %s", path, strerror(errno));
    return rc;
}
