/* Text views of the topology, the team and the partitions. */
#include <stdlib.h>
#include <string.h>

#include "sched/print.h"

const char *incv3_format_bytes(char *buf, size_t len, double bytes)
{
    static const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024 && u < 4)
        bytes /= 1024, u++;
    if (u == 0 || bytes >= 100 || bytes == (double)(long)bytes)
        snprintf(buf, len, "%.0f %s", bytes, unit[u]);
    else
        snprintf(buf, len, "%.1f %s", bytes, unit[u]);
    return buf;
}

/* a, a+step, ..., count terms: "5", "3,7", "0-7", "0,8,...,56". */
static const char *format_seq(char *buf, size_t len, long a, long step, long count)
{
    const long b = a + step * (count - 1);
    if (count == 1)
        snprintf(buf, len, "%ld", a);
    else if (step == 1)
        snprintf(buf, len, "%ld-%ld", a, b);
    else if (count == 2)
        snprintf(buf, len, "%ld,%ld", a, b);
    else if (count == 3)
        snprintf(buf, len, "%ld,%ld,%ld", a, a + step, b);
    else
        snprintf(buf, len, "%ld,%ld,...,%ld", a, a + step, b);
    return buf;
}

static int cmp_int(const void *x, const void *y)
{
    const int a = *(const int *)x, b = *(const int *)y;
    return (a > b) - (a < b);
}

/* Sorted ints as ranges: "0-15", "0-7,64-71". Truncated with "..." when long. */
static void format_ranges(char *buf, size_t len, int *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_int);
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && used + 24 < len;) {
        int j = i;
        while (j + 1 < n && v[j + 1] == v[j] + 1)
            j++;
        used += (size_t)snprintf(buf + used, len - used, "%s%d", i ? "," : "", v[i]);
        if (j > i)
            used += (size_t)snprintf(buf + used, len - used, "-%d", v[j]);
        i = j + 1;
        if (i < n && used + 24 >= len)
            snprintf(buf + used, len - used, ",...");
    }
}

static int same_kind(const incv3_core_info *a, const incv3_core_info *b)
{
    return a->package == b->package && a->numa == b->numa && a->l3.id == b->l3.id && a->l2.size == b->l2.size &&
           a->l2.sharing == b->l2.sharing && a->l1d.size == b->l1d.size && a->n_pus == b->n_pus;
}

static void print_core_run(const incv3_topology *t, int first, int last, FILE *out)
{
    const incv3_core_info *c = &t->cores[first];
    char cores[48], l2[48], l1[48], pus[160], b[32];
    format_seq(cores, sizeof cores, first, 1, last - first + 1);
    if (c->l2.size == 0)
        snprintf(l2, sizeof l2, "no L2");
    else if (c->l2.sharing > 1)
        snprintf(l2, sizeof l2, "L2 %s/%d cores", incv3_format_bytes(b, sizeof b, (double)c->l2.size), c->l2.sharing);
    else
        snprintf(l2, sizeof l2, "L2 %s", incv3_format_bytes(b, sizeof b, (double)c->l2.size));
    if (c->l1d.size == 0)
        snprintf(l1, sizeof l1, "no L1d");
    else
        snprintf(l1, sizeof l1, "L1d %s", incv3_format_bytes(b, sizeof b, (double)c->l1d.size));
    int n = 0, *v = malloc(sizeof(int) * (size_t)t->n_pus);
    if (v) {
        for (int i = first; i <= last; i++)
            for (int k = 0; k < t->cores[i].n_pus; k++)
                v[n++] = incv3_topology_pu(t, i, k);
        format_ranges(pus, sizeof pus, v, n);
        free(v);
    } else {
        snprintf(pus, sizeof pus, "?");
    }
    fprintf(out, "%s %s: %s, %s, %d PU%s%s (PU%s %s)\n", first == last ? "core" : "cores", cores, l2, l1,
            c->n_pus, c->n_pus == 1 ? "" : "s", first == last ? "" : " each", n == 1 ? "" : "s", pus);
}

void incv3_topology_print(const incv3_topology *t, FILE *out)
{
    char b[32];
    fprintf(out, "machine: %s\n", t->source);
    fprintf(out, "  %d package%s, %d NUMA node%s, %d L3 group%s, %d core%s, %d PU%s (hardware threads)\n",
            t->n_packages, t->n_packages == 1 ? "" : "s", t->n_numa, t->n_numa == 1 ? "" : "s", t->n_l3,
            t->n_l3 == 1 ? "" : "s", t->n_cores, t->n_cores == 1 ? "" : "s", t->n_pus, t->n_pus == 1 ? "" : "s");
    if (t->pus_outside)
        fprintf(out, "  (%d PU%s outside this process's CPU set not shown)\n", t->pus_outside,
                t->pus_outside == 1 ? "" : "s");
    for (int p = 0; p < t->n_packages; p++) {
        fprintf(out, "  package %d\n", p);
        for (int nn = 0; nn < t->n_numa; nn++) {
            int any = 0;
            for (int c = 0; c < t->n_cores && !any; c++)
                any = t->cores[c].package == p && t->cores[c].numa == nn;
            if (!any)
                continue;
            fprintf(out, "    NUMA node %d\n", nn);
            for (int l3 = -1; l3 < t->n_l3; l3++) {
                int header = 0;
                for (int c = 0; c < t->n_cores;) {
                    const incv3_core_info *ci = &t->cores[c];
                    if (ci->package != p || ci->numa != nn || ci->l3.id != l3) {
                        c++;
                        continue;
                    }
                    if (!header && l3 >= 0)
                        fprintf(out, "      L3 %s, shared by %d core%s\n",
                                incv3_format_bytes(b, sizeof b, (double)ci->l3.size), ci->l3.sharing,
                                ci->l3.sharing == 1 ? "" : "s");
                    else if (!header)
                        fprintf(out, "      no L3\n");
                    header = 1;
                    /* A run: consecutive cores of the same kind (and so of the same group). */
                    int last = c;
                    while (last + 1 < t->n_cores && same_kind(&t->cores[last + 1], ci))
                        last++;
                    fputs("        ", out);
                    print_core_run(t, c, last, out);
                    c = last + 1;
                }
            }
        }
    }
}

void incv3_team_print(const incv3_team *team, const incv3_topology *t, FILE *out)
{
    char b1[32], b2[32], b3[32];
    fprintf(out, "team: %d thread%s (%s) on %d core%s of %d package%s, policy %s, bind %s, SMT %s\n", team->threads,
            team->threads == 1 ? "" : "s", team->threads_from, team->cores_used, team->cores_used == 1 ? "" : "s",
            team->packages_used, team->packages_used == 1 ? "" : "s", incv3_policy_name(team->policy),
            incv3_bind_name(team->bind), team->smt ? "on" : "off");
    fprintf(out, "  cache share per thread: L1d %s, L2 %s%s, L3 %s\n",
            team->l1d_share ? incv3_format_bytes(b1, sizeof b1, (double)team->l1d_share) : "-",
            incv3_format_bytes(b2, sizeof b2, (double)team->l2_share), team->l2_assumed ? " (assumed: no L2 reported)" : "",
            team->l3_share ? incv3_format_bytes(b3, sizeof b3, (double)team->l3_share) : "-");
    /* Runs of threads whose cores and PUs advance by constant steps within one package and NUMA node. */
    for (int i = 0; i < team->threads;) {
        const incv3_core_info *c = &t->cores[team->core[i]];
        int j = i;
        long ds = 0, dp = 0;
        if (i + 1 < team->threads) {
            ds = team->core[i + 1] - team->core[i];
            dp = team->pu[i + 1] - team->pu[i];
        }
        while (j + 1 < team->threads && team->core[j + 1] - team->core[j] == ds && team->pu[j + 1] - team->pu[j] == dp &&
               t->cores[team->core[j + 1]].package == c->package && t->cores[team->core[j + 1]].numa == c->numa)
            j++;
        const long count = j - i + 1;
        char th[48], cores[64], pus[64];
        format_seq(th, sizeof th, i, 1, count);
        format_seq(cores, sizeof cores, team->core[i], ds, count);
        format_seq(pus, sizeof pus, team->pu[i], dp, count);
        fprintf(out, "  thread%s %s -> core%s %s (package %d, NUMA node %d), PU%s %s\n", count == 1 ? "" : "s", th,
                count == 1 ? "" : "s", cores, c->package, c->numa, count == 1 ? "" : "s", pus);
        i = j + 1;
    }
}

void incv3_partition_print_header(FILE *out)
{
    fprintf(out, "%-26s %-11s %-24s %-11s %7s %12s %10s %6s  %s\n", "layer", "pass", "tile", "step", "tiles",
            "tiles/thread", "bytes/tile", "imbal.", "notes");
}

void incv3_partition_print_row(const char *layer, const incv3_partition *p, FILE *out)
{
    char tile[48], step[32], per[32], bytes[32], notes[64] = "", b[32];
    if (p->pass == INCV3_CONV_BWD_WEIGHTS) {
        snprintf(tile, sizeof tile, "%dK x %dC blk, %d seg", p->ob, p->ib, p->segments);
        snprintf(step, sizeof step, "%d row%s", p->tile_rows, p->tile_rows == 1 ? "" : "s");
        if (p->segments > 1)
            snprintf(notes, sizeof notes, "partials %s", incv3_format_bytes(b, sizeof b, (double)p->partial_bytes));
    } else {
        snprintf(tile, sizeof tile, "1 img x %d blk x %d row%s", p->ob, p->tile_rows, p->tile_rows == 1 ? "" : "s");
        snprintf(step, sizeof step, "%d %s-blk", p->chunk < p->cblocks ? p->chunk : p->cblocks,
                 p->pass == INCV3_CONV_FWD ? "in" : "out");
    }
    if (!p->fits)
        snprintf(notes + strlen(notes), sizeof notes - strlen(notes), "%sover the L2 budget", notes[0] ? "; " : "");
    snprintf(per, sizeof per, "%.1f (max %ld)", p->tiles_per_thread, p->tiles_per_thread_max);
    incv3_format_bytes(bytes, sizeof bytes, (double)p->tile_bytes);
    fprintf(out, "%-26s %-11s %-24s %-11s %7ld %12s %10s %6.3f  %s\n", layer, incv3_sched_pass_name(p->pass), tile,
            step, p->tiles, per, bytes, p->imbalance, notes);
}
