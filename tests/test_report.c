/* Report tests: confusion-matrix scores on a hand-computed example, the Results tables byte for byte
 * against the seed's layout (and parsed back cell by cell), the atomic writer, metrics.csv appends, and
 * the gnuplot driver (real gnuplot when on PATH, plus fake ones for "not found" and "fails"). Every
 * test works in its own mkdtemp directory. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* mkdtemp, setenv, open_memstream */
#endif

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "train/metrics.h"
#include "train/plots.h"
#include "train/report.h"
#include "util/atomic_file.h"

/* ------------------------------------------------------------------------------------ helpers */

static int setup_dir(void **state)
{
    char *dir = malloc(64);
    if (!dir)
        return -1;
    snprintf(dir, 64, "/tmp/incv3_report_XXXXXX");
    if (!mkdtemp(dir)) {
        free(dir);
        return -1;
    }
    *state = dir;
    return 0;
}

/* Removes the scratch directory and what the test left in it (one level deep is all tests create). */
static void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            rm_tree(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static int teardown_dir(void **state)
{
    rm_tree(*state);
    free(*state);
    return 0;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    int ch;
    while ((ch = fgetc(f)) != EOF)
        fputc(ch, m);
    fclose(m);
    fclose(f);
    return buf;
}

static void spit(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* Number of entries in dir whose name contains needle. */
static int count_named(const char *dir, const char *needle)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strstr(e->d_name, needle) != NULL;
    closedir(d);
    return n;
}

/* Logits row of k classes whose argmax is pred. */
static void one_hot(float *row, int k, int pred)
{
    for (int j = 0; j < k; j++)
        row[j] = j == pred ? 2.0f : -1.0f;
}

/* Fills c (4 classes) from (true, predicted) pairs through incv3_confusion_add. */
static void fill(incv3_confusion *c, const int pairs[][2], int n)
{
    float *logits = malloc(sizeof(float) * 4 * (size_t)n);
    int64_t *labels = malloc(sizeof(int64_t) * (size_t)n);
    assert_non_null(logits);
    assert_non_null(labels);
    for (int i = 0; i < n; i++) {
        labels[i] = pairs[i][0];
        one_hot(logits + 4 * i, 4, pairs[i][1]);
    }
    incv3_confusion_add(c, logits, labels, n);
    free(logits);
    free(labels);
}

/* Train example: 7 samples, 3 correct. Class 2 occurs but is never predicted; class 3 never occurs and
 * is never predicted. By hand:
 *   class 0: TP 2, FP 2, FN 1 -> P 1/2, R 2/3, F1 4/7
 *   class 1: TP 1, FP 2, FN 1 -> P 1/3, R 1/2, F1 2/5
 *   class 2: TP 0, FP 0, FN 2 -> P 0 (never predicted), R 0, F1 0
 *   class 3: nothing          -> 0, 0, 0 */
static const int train_pairs[7][2] = {{0, 0}, {0, 0}, {0, 1}, {1, 1}, {1, 0}, {2, 0}, {2, 1}};
/* Test example: 4 samples, 3 correct; class 3 is misread as 0. */
static const int test_pairs[4][2] = {{0, 0}, {1, 1}, {2, 2}, {3, 0}};

/* ------------------------------------------------------------------------------------ confusion */

static void test_confusion_scores(void **state)
{
    (void)state;
    incv3_confusion c;
    assert_int_equal(incv3_confusion_init(&c, 4, NULL), 0);
    fill(&c, train_pairs, 7);
    assert_int_equal(incv3_confusion_total(&c), 7);
    assert_int_equal(c.counts[0 * 4 + 0], 2);
    assert_int_equal(c.counts[0 * 4 + 1], 1);
    assert_int_equal(c.counts[2 * 4 + 0], 1);
    assert_int_equal(c.counts[2 * 4 + 2], 0);
    assert_true(fabs(incv3_confusion_accuracy(&c) - 3.0 / 7.0) < 1e-12);

    const double p[4] = {0.5, 1.0 / 3.0, 0, 0}, r[4] = {2.0 / 3.0, 0.5, 0, 0}, f1[4] = {4.0 / 7.0, 0.4, 0, 0};
    for (int k = 0; k < 4; k++) {
        assert_true(fabs(incv3_confusion_precision(&c, k) - p[k]) < 1e-12);
        assert_true(fabs(incv3_confusion_recall(&c, k) - r[k]) < 1e-12);
        assert_true(fabs(incv3_confusion_f1(&c, k) - f1[k]) < 1e-12);
        /* F1 as 2TP/(2TP+FP+FN) is the harmonic mean of P and R wherever that is defined. */
        if (p[k] + r[k] > 0)
            assert_true(fabs(f1[k] - 2 * p[k] * r[k] / (p[k] + r[k])) < 1e-12);
    }

    /* Ties go to the first maximum, NaN never wins over a number, an all-NaN row predicts 0, and a
     * label outside [0, 4) is skipped. */
    incv3_confusion_reset(&c);
    assert_int_equal(incv3_confusion_total(&c), 0);
    assert_true(incv3_confusion_accuracy(&c) == 0.0);
    const float nan = NAN;
    const float logits[5][4] = {
        {1, 3, 3, 0}, {nan, 1, 2, 2}, {nan, nan, nan, nan}, {0, 0, 0, 5}, {9, 0, 0, 0},
    };
    const int64_t labels[5] = {1, 2, 0, 3, 4};
    incv3_confusion_add(&c, &logits[0][0], labels, 5);
    assert_int_equal(incv3_confusion_total(&c), 4);
    assert_int_equal(c.counts[1 * 4 + 1], 1);
    assert_int_equal(c.counts[2 * 4 + 2], 1);
    assert_int_equal(c.counts[0 * 4 + 0], 1);
    assert_int_equal(c.counts[3 * 4 + 3], 1);
    assert_true(incv3_confusion_accuracy(&c) == 1.0);
    incv3_confusion_free(&c);
    incv3_confusion_free(&c); /* idempotent */

    incv3_error err = {{0}};
    assert_int_equal(incv3_confusion_init(&c, 0, &err), -1);
    assert_non_null(strstr(err.msg, "0 classes"));
    assert_null(c.counts);
}

/* ------------------------------------------------------------------------------------ tables */

/* Lines copied verbatim from the seed's README (Results section). */
static const char seed_head1[] = "|              | Training | Validation | Testing |";
static const char seed_align1[] = "| :----------: | :------: | :--------: | :-----: |";
static const char seed_loss[] = "|     Loss     |  0.0328  |   0.0276   | 0.0204  |";
static const char seed_acc[] = "| Accuracy (%) |  99.32   |   99.31    |  99.52  |";
static const char seed_head2[] =
    "| Class | Training Precision | Validation Precision | Testing Precision | Training Recall | Validation Recall "
    "| Testing Recall | Training F1 Score | Validation F1 Score | Testing F1 Score |";
static const char seed_align2[] =
    "| :---: | :----------------: | :------------------: | :---------------: | :-------------: | :---------------: "
    "| :------------: | :---------------: | :-----------------: | :--------------: |";
static const char seed_row0[] =
    "|   0   |       0.9953       |        0.9962        |      0.9969       |     0.9973      |      0.9962       "
    "|     0.9990     |      0.9963       |       0.9962        |      0.9980      |";

/* The seed line tmpl with its numbers replaced, in order, by vals (each as wide as the one it
 * replaces) and its class label by label: our row must sit exactly where the seed's does. */
static void substitute(char *out, size_t cap, const char *tmpl, const char *label, const char *const *vals)
{
    snprintf(out, cap, "%s", tmpl);
    int v = 0, cell = 0;
    for (char *p = out; *p; p++) {
        if (*p == '|') {
            cell++;
            continue;
        }
        if (*p == ' ')
            continue;
        if (cell == 1 && !label) { /* keep the row title ("Accuracy (%)") */
            p += strcspn(p, "|") - 1;
            continue;
        }
        size_t len = strcspn(p, " |");
        const char *rep = cell == 1 ? label : vals[v++];
        assert_int_equal(strlen(rep), len);
        memcpy(p, rep, len);
        p += len - 1;
    }
}

/* Splits a table line into trimmed cells; returns the count. */
static int cells_of(const char *line, char cells[][64], int max)
{
    int n = 0;
    const char *p = strchr(line, '|');
    assert_non_null(p);
    while (p && p[1] && p[1] != '\n') {
        const char *q = strchr(p + 1, '|');
        assert_non_null(q);
        const char *a = p + 1, *b = q;
        while (a < b && *a == ' ')
            a++;
        while (b > a && b[-1] == ' ')
            b--;
        assert_true(n < max);
        snprintf(cells[n], 64, "%.*s", (int)(b - a), a);
        n++;
        p = q;
    }
    return n;
}

/* s is a number with exactly `decimals` digits after the point, equal to want rounded. */
static void assert_number(const char *s, int decimals, double want)
{
    char *end;
    double v = strtod(s, &end);
    assert_true(end != s && *end == '\0');
    const char *dot = strchr(s, '.');
    assert_non_null(dot);
    assert_int_equal((int)strlen(dot + 1), decimals);
    assert_true(fabs(v - want) <= 0.5 * pow(10, -decimals) + 1e-12);
}

static char *render_tables(const incv3_split_result *a, const incv3_split_result *b, const incv3_split_result *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    assert_non_null(m);
    assert_int_equal(incv3_report_tables(m, a, b, c), 0);
    fclose(m);
    return buf;
}

static void test_tables_exact(void **state)
{
    (void)state;
    incv3_split_result tr = {INCV3_SPLIT_TRAIN, 0.0328, {0}}, va = {INCV3_SPLIT_VAL, 0.0276, {0}},
                       te = {INCV3_SPLIT_TEST, 0.0204, {0}};
    assert_int_equal(incv3_confusion_init(&tr.conf, 4, NULL), 0);
    assert_int_equal(incv3_confusion_init(&va.conf, 4, NULL), 0);
    assert_int_equal(incv3_confusion_init(&te.conf, 4, NULL), 0);
    fill(&tr.conf, train_pairs, 7);
    fill(&va.conf, train_pairs, 7);
    fill(&te.conf, test_pairs, 4);

    char *got = render_tables(&tr, &va, &te);

    /* The expected text: the seed's lines, numbers swapped for this example's. */
    char want[8192], line[1024];
    size_t off = 0;
    off += (size_t)snprintf(want + off, sizeof want - off, "%s\n%s\n%s\n", seed_head1, seed_align1, seed_loss);
    static const char *const acc[] = {"42.86", "42.86", "75.00"};
    substitute(line, sizeof line, seed_acc, NULL, acc);
    off += (size_t)snprintf(want + off, sizeof want - off, "%s\n\n%s\n%s\n", line, seed_head2, seed_align2);
    static const char *const rows[4][9] = {
        {"0.5000", "0.5000", "0.5000", "0.6667", "0.6667", "1.0000", "0.5714", "0.5714", "0.6667"},
        {"0.3333", "0.3333", "1.0000", "0.5000", "0.5000", "1.0000", "0.4000", "0.4000", "1.0000"},
        {"0.0000", "0.0000", "1.0000", "0.0000", "0.0000", "1.0000", "0.0000", "0.0000", "1.0000"},
        {"0.0000", "0.0000", "0.0000", "0.0000", "0.0000", "0.0000", "0.0000", "0.0000", "0.0000"},
    };
    for (int k = 0; k < 4; k++) {
        char label[2] = {(char)('0' + k), 0};
        substitute(line, sizeof line, seed_row0, label, rows[k]);
        off += (size_t)snprintf(want + off, sizeof want - off, "%s\n", line);
    }
    assert_string_equal(got, want);

    /* Parsed back cell by cell. */
    char cells[16][64];
    const char *ln = got;
    int row = 0;
    while (*ln) {
        const char *nl = strchr(ln, '\n');
        assert_non_null(nl);
        char one[1024];
        snprintf(one, sizeof one, "%.*s", (int)(nl - ln), ln);
        ln = nl + 1;
        row++;
        if (!one[0])
            continue; /* blank line between the tables */
        int n = cells_of(one, cells, 16);
        if (row == 1) {
            assert_int_equal(n, 4);
            assert_string_equal(cells[0], "");
            assert_string_equal(cells[1], "Training");
            assert_string_equal(cells[2], "Validation");
            assert_string_equal(cells[3], "Testing");
        } else if (row == 2 || row == 7) {
            for (int i = 0; i < n; i++) {
                size_t l = strlen(cells[i]);
                assert_true(l >= 3 && cells[i][0] == ':' && cells[i][l - 1] == ':');
                assert_int_equal((int)strspn(cells[i] + 1, "-"), (int)l - 2);
            }
        } else if (row == 3) {
            assert_string_equal(cells[0], "Loss");
            assert_number(cells[1], 4, 0.0328);
            assert_number(cells[2], 4, 0.0276);
            assert_number(cells[3], 4, 0.0204);
        } else if (row == 4) {
            assert_string_equal(cells[0], "Accuracy (%)");
            assert_number(cells[1], 2, 300.0 / 7.0);
            assert_number(cells[2], 2, 300.0 / 7.0);
            assert_number(cells[3], 2, 75.0);
        } else if (row == 6) {
            assert_int_equal(n, 10);
            assert_string_equal(cells[0], "Class");
            assert_string_equal(cells[1], "Training Precision");
            assert_string_equal(cells[9], "Testing F1 Score");
        } else {
            int k = row - 8;
            assert_true(k >= 0 && k < 4);
            assert_int_equal(n, 10);
            assert_int_equal(atoi(cells[0]), k);
            const incv3_confusion *cs[3] = {&tr.conf, &va.conf, &te.conf};
            for (int s = 0; s < 3; s++) {
                assert_number(cells[1 + s], 4, incv3_confusion_precision(cs[s], k));
                assert_number(cells[4 + s], 4, incv3_confusion_recall(cs[s], k));
                assert_number(cells[7 + s], 4, incv3_confusion_f1(cs[s], k));
            }
        }
    }
    assert_int_equal(row, 11);
    free(got);

    /* A missing split shows n/a in each of its cells; the columns re-centre around it. */
    got = render_tables(&tr, NULL, &te);
    const char *want_na = "|              | Training | Validation | Testing |\n"
                          "| :----------: | :------: | :--------: | :-----: |\n"
                          "|     Loss     |  0.0328  |    n/a     | 0.0204  |\n"
                          "| Accuracy (%) |  42.86   |    n/a     |  75.00  |\n\n";
    assert_memory_equal(got, want_na, strlen(want_na));
    assert_non_null(strstr(got, "|   3   |       0.0000       |         n/a          |      0.0000       |"));
    free(got);

    /* No splits at all: both headers, no class rows. */
    got = render_tables(NULL, NULL, NULL);
    assert_non_null(strstr(got, "|     Loss     |   n/a    |    n/a     |   n/a   |\n"));
    assert_null(strstr(got, "|   0   |"));
    free(got);

    /* The confusion matrix: rows true, columns predicted. */
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    assert_int_equal(incv3_report_confusion(m, &tr.conf, "Confusion matrix (train)"), 0);
    fclose(m);
    assert_string_equal(buf, "#### Confusion matrix (train)\n\n"
                             "| True \\\\ Predicted |  0  |  1  |  2  |  3  |\n"
                             "| :---------------: | :-: | :-: | :-: | :-: |\n"
                             "|         0         |  2  |  1  |  0  |  0  |\n"
                             "|         1         |  1  |  1  |  0  |  0  |\n"
                             "|         2         |  1  |  1  |  0  |  0  |\n"
                             "|         3         |  0  |  0  |  0  |  0  |\n");
    free(buf);

    incv3_confusion_free(&tr.conf);
    incv3_confusion_free(&va.conf);
    incv3_confusion_free(&te.conf);
}

/* ------------------------------------------------------------------------------------ atomic write */

static int write_text(FILE *f, void *ctx, incv3_error *err)
{
    (void)err;
    return fputs(ctx, f) == EOF ? -1 : 0;
}

static int write_then_fail(FILE *f, void *ctx, incv3_error *err)
{
    (void)ctx;
    fputs("half a file", f);
    return incv3_fail(err, "simulated failure");
}

static void test_atomic_write(void **state)
{
    const char *dir = *state;
    char path[256];
    snprintf(path, sizeof path, "%s/report.md", dir);
    incv3_error err = {{0}};

    spit(path, "old\n");
    assert_int_equal(incv3_write_file_atomic(path, write_text, "new content\n", &err), 0);
    char *s = slurp(path);
    assert_string_equal(s, "new content\n");
    free(s);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);

    /* A failing writer leaves the old file and no temporary behind; the message names path. */
    assert_int_equal(incv3_write_file_atomic(path, write_then_fail, NULL, &err), -1);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "simulated failure"));
    s = slurp(path);
    assert_string_equal(s, "new content\n");
    free(s);
    assert_int_equal(count_named(dir, ".tmp."), 0);

    /* A missing directory: nothing is created and the message names the path. */
    char missing[256];
    snprintf(missing, sizeof missing, "%s/no/such/dir/report.md", dir);
    assert_int_equal(incv3_write_file_atomic(missing, write_text, "x", &err), -1);
    assert_non_null(strstr(err.msg, missing));
    assert_int_equal(access(missing, F_OK), -1);
    assert_int_equal(count_named(dir, "no"), 0);

    /* report.md through the same path: header first, then plots, tables and confusion matrices. */
    incv3_split_result tr = {INCV3_SPLIT_TRAIN, 0.25, {0}};
    assert_int_equal(incv3_confusion_init(&tr.conf, 4, NULL), 0);
    fill(&tr.conf, train_pairs, 7);
    incv3_report_md r = {"# Run\n\nlr 1e-4", 1, &tr, NULL, NULL, 1, NULL, 0};
    assert_int_equal(incv3_report_write_md(path, &r, &err), 0);
    s = slurp(path);
    assert_true(strncmp(s, "# Run\n\nlr 1e-4\n\n|", 17) == 0);
    assert_non_null(strstr(s, "![Loss graph](loss.png)"));
    assert_non_null(strstr(s, "|     Loss     |  0.2500  |    n/a     |   n/a   |\n"));
    assert_non_null(strstr(s, "\n#### Confusion matrix (train)\n"));
    free(s);
    incv3_confusion_free(&tr.conf);
}

/* ------------------------------------------------------------------------------------ metrics.csv */

static void test_metrics_csv(void **state)
{
    const char *dir = *state;
    char path[256];
    snprintf(path, sizeof path, "%s/metrics.csv", dir);
    incv3_error err = {{0}};

    assert_int_equal(incv3_metrics_csv_append(path, 1, INCV3_SPLIT_TRAIN, 0.5, 0.875, 12.25, &err), 0);
    assert_int_equal(incv3_metrics_csv_append(path, 1, INCV3_SPLIT_VAL, 0.4, 0.9, 1.5, &err), 0);
    assert_int_equal(incv3_metrics_csv_append(path, 2, INCV3_SPLIT_TRAIN, 0.125, 0.96875, 11, &err), 0);
    char *s = slurp(path);
    assert_string_equal(s, "epoch,split,loss,accuracy,seconds\n"
                           "1,train,0.5,0.875,12.250\n"
                           "1,val,0.4,0.9,1.500\n"
                           "2,train,0.125,0.96875,11.000\n");
    /* Parsed back: every row has 5 fields that read as what was appended. */
    char *save = NULL, *ln = strtok_r(s, "\n", &save);
    int rows = 0;
    while ((ln = strtok_r(NULL, "\n", &save))) {
        int epoch;
        char split[16];
        double loss, acc, sec;
        assert_int_equal(sscanf(ln, "%d,%15[^,],%lf,%lf,%lf", &epoch, split, &loss, &acc, &sec), 5);
        rows++;
        if (rows == 2) {
            assert_int_equal(epoch, 1);
            assert_string_equal(split, "val");
            assert_true(loss == 0.4 && acc == 0.9 && sec == 1.5);
        }
    }
    assert_int_equal(rows, 3);
    free(s);

    /* A row torn by a kill is terminated before the next one. */
    FILE *f = fopen(path, "ab");
    fputs("3,train,0.1", f);
    fclose(f);
    assert_int_equal(incv3_metrics_csv_append(path, 3, INCV3_SPLIT_TRAIN, 0.1, 0.97, 10, &err), 0);
    s = slurp(path);
    assert_non_null(strstr(s, "\n3,train,0.1\n3,train,0.1,0.97,10.000\n"));
    assert_int_equal(strstr(s, "epoch,split") == s, 1);
    assert_null(strstr(s + 1, "epoch,split")); /* header once */
    free(s);

    /* Bad split names and foreign files are refused, naming the path. */
    assert_int_equal(incv3_metrics_csv_append(path, 1, "a,b", 0, 0, 0, &err), -1);
    assert_non_null(strstr(err.msg, path));
    char other[256];
    snprintf(other, sizeof other, "%s/other.csv", dir);
    spit(other, "a,b,c\n1,2,3\n");
    assert_int_equal(incv3_metrics_csv_append(other, 1, "train", 0, 0, 0, &err), -1);
    assert_non_null(strstr(err.msg, other));
    assert_non_null(strstr(err.msg, "header"));
    snprintf(other, sizeof other, "%s/missing/metrics.csv", dir);
    assert_int_equal(incv3_metrics_csv_append(other, 1, "train", 0, 0, 0, &err), -1);
    assert_non_null(strstr(err.msg, other));
}

/* ------------------------------------------------------------------------------------ plots */

static int has_png_signature(const char *path)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    unsigned char b[8];
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    size_t n = fread(b, 1, 8, f);
    fclose(f);
    return n == 8 && memcmp(b, sig, 8) == 0;
}

static void write_sample_csv(const char *path)
{
    for (int e = 1; e <= 5; e++) {
        assert_int_equal(incv3_metrics_csv_append(path, e, INCV3_SPLIT_TRAIN, 1.0 / e, 0.8 + 0.03 * e, 60, NULL), 0);
        assert_int_equal(incv3_metrics_csv_append(path, e, INCV3_SPLIT_VAL, 1.1 / e, 0.78 + 0.03 * e, 5, NULL), 0);
    }
    assert_int_equal(incv3_metrics_csv_append(path, 5, INCV3_SPLIT_TEST, 0.2, 0.95, 5, NULL), 0);
}

/* Runs the plotter with PATH set to path_value, capturing its note. */
static int plot_with_path(const char *path_value, const char *csv, const char *out, char **note,
                          incv3_error *err)
{
    const char *old = getenv("PATH");
    char *saved = old ? strdup(old) : NULL;
    setenv("PATH", path_value, 1);
    size_t len = 0;
    FILE *m = open_memstream(note, &len);
    int rc = incv3_plot_curves(csv, out, m, err);
    fclose(m);
    if (saved) {
        setenv("PATH", saved, 1);
        free(saved);
    }
    return rc;
}

static void fake_gnuplot(const char *bindir, const char *body)
{
    char p[512];
    snprintf(p, sizeof p, "%s/gnuplot", bindir);
    spit(p, body);
    assert_int_equal(chmod(p, 0755), 0);
}

static void test_plots(void **state)
{
    const char *dir = *state;
    char csv[256], out[256], bin[256], loss[512], accp[512];
    snprintf(csv, sizeof csv, "%s/metrics.csv", dir);
    /* A quote and a space in the output directory exercise the script's quoting. */
    snprintf(out, sizeof out, "%s/it's plots", dir);
    snprintf(bin, sizeof bin, "%s/bin", dir);
    snprintf(loss, sizeof loss, "%s/loss.png", out);
    snprintf(accp, sizeof accp, "%s/accuracy.png", out);
    assert_int_equal(mkdir(out, 0755), 0);
    assert_int_equal(mkdir(bin, 0755), 0);
    write_sample_csv(csv);
    incv3_error err = {{0}};
    char *note = NULL;

    /* Not on PATH: a note, success, no files. */
    assert_int_equal(plot_with_path(bin, csv, out, &note, &err), 0);
    assert_string_equal(note, "gnuplot not found: loss.png and accuracy.png not written; apt-get install "
                              "gnuplot-nox\n");
    free(note);
    assert_int_equal(access(loss, F_OK), -1);

    /* A gnuplot that fails: -1, with its message; nothing left behind. */
    fake_gnuplot(bin, "#!/bin/sh\necho 'line 3: boom' >&2\nexit 3\n");
    assert_int_equal(plot_with_path(bin, csv, out, &note, &err), -1);
    free(note);
    assert_non_null(strstr(err.msg, "exit status 3"));
    assert_non_null(strstr(err.msg, "boom"));
    assert_int_equal(count_named(out, "tmp"), 0);
    assert_int_equal(count_named(out, ".incv3-plot"), 0);

    /* A gnuplot that exits 0 without drawing: the PNG check catches it. */
    fake_gnuplot(bin, "#!/bin/sh\nexit 0\n");
    assert_int_equal(plot_with_path(bin, csv, out, &note, &err), -1);
    free(note);
    assert_non_null(strstr(err.msg, "not a PNG"));
    assert_int_equal(access(loss, F_OK), -1);

    /* Malformed CSV: the line is named. */
    char bad[256];
    snprintf(bad, sizeof bad, "%s/bad.csv", dir);
    spit(bad, "epoch,split,loss,accuracy,seconds\n1,train,x,0.5,1\n");
    assert_int_equal(plot_with_path(bin, bad, out, &note, &err), -1);
    free(note);
    assert_non_null(strstr(err.msg, "bad.csv:2"));

    /* The real gnuplot, when installed. */
    const char *path = getenv("PATH");
    int found = 0;
    if (path) {
        char *copy = strdup(path), *save = NULL;
        for (char *d = strtok_r(copy, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
            char p[1024];
            snprintf(p, sizeof p, "%s/gnuplot", d);
            found = access(p, X_OK) == 0;
        }
        free(copy);
    }
    if (!found) {
        print_message("gnuplot not on PATH: real plotting skipped (apt-get install gnuplot-nox)\n");
        return;
    }
    note = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&note, &len);
    int rc = incv3_plot_curves(csv, out, m, &err);
    fclose(m);
    if (rc)
        print_error("%s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_string_equal(note, "");
    free(note);
    assert_true(has_png_signature(loss));
    assert_true(has_png_signature(accp));
    assert_int_equal(count_named(out, "tmp"), 0);
    assert_int_equal(count_named(out, ".incv3-plot"), 0);

    /* A single epoch with only training rows still draws. */
    char one[256];
    snprintf(one, sizeof one, "%s/one.csv", dir);
    assert_int_equal(incv3_metrics_csv_append(one, 1, INCV3_SPLIT_TRAIN, 0.3, 0.9, 1, NULL), 0);
    unlink(loss);
    assert_int_equal(incv3_plot_curves(one, out, NULL, &err), 0);
    assert_true(has_png_signature(loss));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_confusion_scores),
        cmocka_unit_test(test_tables_exact),
        cmocka_unit_test_setup_teardown(test_atomic_write, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_metrics_csv, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_plots, setup_dir, teardown_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
