/* The thread team: count, placement (compact or spread over the machine) and binding. */
#include <errno.h>
#include <hwloc.h>
#include <limits.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched/team.h"

#define L2_ASSUMED_BYTES (256u * 1024u)

const char *incv3_policy_name(incv3_policy p)
{
    return p == INCV3_POLICY_SPREAD ? "spread" : p == INCV3_POLICY_COMPACT ? "compact" : "auto";
}

const char *incv3_bind_name(incv3_bind b)
{
    return b == INCV3_BIND_NONE ? "none" : "core";
}

int incv3_policy_parse(const char *s, incv3_policy *out)
{
    static const struct { const char *name; incv3_policy p; } names[] = {
        {"auto", INCV3_POLICY_AUTO}, {"spread", INCV3_POLICY_SPREAD}, {"compact", INCV3_POLICY_COMPACT}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i].name) == 0)
            return *out = names[i].p, 0;
    return -1;
}

int incv3_bind_parse(const char *s, incv3_bind *out)
{
    if (strcmp(s, "core") == 0)
        return *out = INCV3_BIND_CORE, 0;
    if (strcmp(s, "none") == 0)
        return *out = INCV3_BIND_NONE, 0;
    return -1;
}

/* The first entry of OMP_NUM_THREADS ("8" or "8,4" for nested levels), 0 when it is not a positive number. */
static int parse_omp_num_threads(const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    while (*end == ' ')
        end++;
    if (end == s || (*end != '\0' && *end != ',') || errno || v < 1 || v > INT_MAX)
        return 0;
    return (int)v;
}

/* Position of each core in the spread order: a recursive round-robin over packages, then NUMA nodes within
 * a package, L3 groups within a node, L2 groups within an L3 group and cores within an L2 group. k[0] is the
 * core's rank inside its L2 group, ..., k[4] its package's rank; sorting by (k[0], ..., k[4]) gives the
 * first cores one in every package, then one in every NUMA node of every package, and so on. */
enum { LEVELS = 5 };
typedef struct spread_key {
    int k[LEVELS];
    int core;
} spread_key;

static int cmp_spread(const void *a, const void *b)
{
    const spread_key *x = a, *y = b;
    for (int i = 0; i < LEVELS; i++)
        if (x->k[i] != y->k[i])
            return x->k[i] < y->k[i] ? -1 : 1;
    return x->core - y->core;
}

/* group[c] = dense id of the pair (up[c], id[c]) in order of first appearance; parent[g] = up of group g. */
static void number_groups(int n, const int *up, const int *id, int *group, int *parent, int *gid)
{
    int count = 0;
    for (int c = 0; c < n; c++) {
        int g = 0;
        while (g < count && !(parent[g] == up[c] && gid[g] == id[c]))
            g++;
        if (g == count)
            parent[g] = up[c], gid[g] = id[c], count++;
        group[c] = g;
    }
}

/* Rank of group g among the groups of its parent, in order of first appearance. */
static int rank_in_parent(const int *parent, int g)
{
    int r = 0;
    for (int h = 0; h < g; h++)
        r += parent[h] == parent[g];
    return r;
}

/* Fills order[] with the core indexes in the policy's order of use. */
static int core_order(const incv3_topology *t, incv3_policy policy, int *order)
{
    const int n = t->n_cores;
    if (policy == INCV3_POLICY_COMPACT) {
        for (int c = 0; c < n; c++)
            order[c] = c;
        return 0;
    }
    /* Per level L: the core's id at that level, its group, and per group its parent group and id. */
    int *buf = malloc(sizeof(int) * (size_t)n * (4 * LEVELS + 1));
    spread_key *keys = malloc(sizeof *keys * (size_t)n);
    if (!buf || !keys) {
        free(buf), free(keys);
        return -1;
    }
    int *id[LEVELS], *group[LEVELS], *parent[LEVELS], *gid[LEVELS];
    int *root = buf + (size_t)4 * LEVELS * n;
    for (int L = 0; L < LEVELS; L++) {
        id[L] = buf + (size_t)(4 * L) * n;
        group[L] = id[L] + n;
        parent[L] = group[L] + n;
        gid[L] = parent[L] + n;
    }
    for (int c = 0; c < n; c++) {
        const incv3_core_info *ci = &t->cores[c];
        root[c] = 0;
        id[0][c] = ci->package;
        id[1][c] = ci->numa;
        id[2][c] = ci->l3.id; /* -1 for every core when there is no L3: one group */
        id[3][c] = ci->l2.id;
        id[4][c] = c;
    }
    for (int L = 0; L < LEVELS; L++)
        number_groups(n, L == 0 ? root : group[L - 1], id[L], group[L], parent[L], gid[L]);
    for (int c = 0; c < n; c++) {
        keys[c].core = c;
        for (int L = 0; L < LEVELS; L++)
            keys[c].k[LEVELS - 1 - L] = rank_in_parent(parent[L], group[L][c]);
    }
    qsort(keys, (size_t)n, sizeof *keys, cmp_spread);
    for (int c = 0; c < n; c++)
        order[c] = keys[c].core;
    free(buf);
    free(keys);
    return 0;
}

static int cmp_int(const void *a, const void *b)
{
    const int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* min over the team of size / (cores sharing it x team threads on the core); 0 when a core lacks it. */
static uint64_t cache_share(const incv3_topology *t, const incv3_team *team, const int *per_core, int level)
{
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < team->threads; i++) {
        const incv3_core_info *c = &t->cores[team->core[i]];
        const incv3_cache_info *ci = level == 1 ? &c->l1d : level == 2 ? &c->l2 : &c->l3;
        if (ci->size == 0 || ci->sharing < 1)
            return 0;
        const uint64_t share = ci->size / (uint64_t)ci->sharing / (uint64_t)per_core[team->core[i]];
        if (share < best)
            best = share;
    }
    return best == UINT64_MAX ? 0 : best;
}

static int decide_count(const incv3_topology *t, const incv3_team_request *req, incv3_team *team)
{
    const int limit = req->smt ? t->n_pus : t->n_cores;
    int want = 0;
    const char *given = NULL;
    char given_text[64] = "";
    if (req->threads > 0) {
        want = req->threads;
        team->threads_from = "--threads";
        snprintf(given_text, sizeof given_text, "--threads %d", want);
        given = given_text;
    } else if (req->omp_num_threads && req->omp_num_threads[0]) {
        want = parse_omp_num_threads(req->omp_num_threads);
        if (want > 0) {
            team->threads_from = "OMP_NUM_THREADS";
            snprintf(given_text, sizeof given_text, "OMP_NUM_THREADS=%d", want);
            given = given_text;
        } else {
            snprintf(team->warning, sizeof team->warning,
                     "OMP_NUM_THREADS=\"%.40s\" is not a positive number; ignored", req->omp_num_threads);
        }
    }
    if (want == 0) {
        want = limit;
        team->threads_from = req->smt ? "one per PU" : "one per core";
    }
    if (want > limit) {
        if (req->smt || t->n_pus == t->n_cores)
            snprintf(team->warning, sizeof team->warning,
                     "%s: only %d hardware thread%s available; running %d rather than oversubscribe", given,
                     t->n_pus, t->n_pus == 1 ? " is" : "s are", limit);
        else
            snprintf(team->warning, sizeof team->warning,
                     "%s: %d core%s available; running %d thread%s, one per core (--smt allows up to %d, on "
                     "hardware threads)", given, t->n_cores, t->n_cores == 1 ? "" : "s", limit, limit == 1 ? "" : "s",
                     t->n_pus);
        want = limit;
    }
    return want;
}

int incv3_team_plan(const incv3_topology *topo, const incv3_team_request *req, incv3_team *team, incv3_error *err)
{
    memset(team, 0, sizeof *team);
    if (req->threads < 0)
        return incv3_fail(err, "--threads %d: must be positive", req->threads);
    if (topo->n_cores < 1)
        return incv3_fail(err, "the topology has no cores");
    team->smt = req->smt;
    team->bind = req->bind;
    const int threads = decide_count(topo, req, team);
    team->threads = threads;
    team->policy = req->policy != INCV3_POLICY_AUTO ? req->policy
                   : threads < topo->n_cores       ? INCV3_POLICY_SPREAD
                                                   : INCV3_POLICY_COMPACT;
    int *order = malloc(sizeof(int) * (size_t)topo->n_cores);
    int *per_core = calloc((size_t)topo->n_cores, sizeof(int));
    int *slots = malloc(sizeof(int) * (size_t)threads); /* core * max_pus + PU rank, sorted into thread order */
    team->core = malloc(sizeof(int) * (size_t)threads);
    team->pu = malloc(sizeof(int) * (size_t)threads);
    if (!order || !per_core || !slots || !team->core || !team->pu || core_order(topo, team->policy, order)) {
        free(order), free(per_core), free(slots);
        incv3_team_free(team);
        return incv3_fail(err, "out of memory planning the thread team");
    }
    int max_pus = 1;
    for (int c = 0; c < topo->n_cores; c++)
        if (topo->cores[c].n_pus > max_pus)
            max_pus = topo->cores[c].n_pus;
    /* One thread per core in the policy's order, then (smt) the cores' second PUs in the same order, ... */
    int used = 0;
    for (int rank = 0; rank < max_pus && used < threads; rank++)
        for (int i = 0; i < topo->n_cores && used < threads; i++)
            if (rank < topo->cores[order[i]].n_pus)
                slots[used++] = order[i] * max_pus + rank;
    qsort(slots, (size_t)threads, sizeof *slots, cmp_int);
    for (int i = 0; i < threads; i++) {
        const int c = slots[i] / max_pus, rank = slots[i] % max_pus;
        team->core[i] = c;
        team->pu[i] = incv3_topology_pu(topo, c, rank);
        team->cores_used += per_core[c]++ == 0;
    }
    int *pkg_seen = calloc((size_t)topo->n_packages + 1, sizeof(int));
    if (pkg_seen) {
        for (int i = 0; i < threads; i++)
            team->packages_used += pkg_seen[topo->cores[team->core[i]].package]++ == 0;
        free(pkg_seen);
    }
    team->l1d_share = cache_share(topo, team, per_core, 1);
    team->l2_share = cache_share(topo, team, per_core, 2);
    team->l3_share = cache_share(topo, team, per_core, 3);
    if (team->l2_share == 0) {
        int most = 1;
        for (int c = 0; c < topo->n_cores; c++)
            most = per_core[c] > most ? per_core[c] : most;
        team->l2_share = L2_ASSUMED_BYTES / (uint64_t)most;
        team->l2_assumed = 1;
    }
    free(order), free(per_core), free(slots);
    return 0;
}

void incv3_team_free(incv3_team *team)
{
    if (!team)
        return;
    free(team->core);
    free(team->pu);
    team->core = team->pu = NULL;
    team->threads = 0;
}

int incv3_team_apply(const incv3_team *team, const incv3_topology *topo, incv3_error *err)
{
    omp_set_dynamic(0);
    omp_set_max_active_levels(1);
    omp_set_num_threads(team->threads);
    int got = 0, bad_thread = -1, bad_errno = 0;
    hwloc_topology_t hw = (hwloc_topology_t)topo->hw;
    const int bind = team->bind == INCV3_BIND_CORE && hw;
#pragma omp parallel num_threads(team->threads)
    {
        const int i = omp_get_thread_num();
        if (i == 0)
            got = omp_get_num_threads();
        if (bind && i < team->threads) {
            hwloc_bitmap_t set = hwloc_bitmap_alloc();
            int rc = -1, e = ENOMEM;
            if (set) {
                hwloc_bitmap_only(set, (unsigned)team->pu[i]);
                rc = hwloc_set_cpubind(hw, set, HWLOC_CPUBIND_THREAD);
                e = errno;
                hwloc_bitmap_free(set);
            }
            if (rc) {
#pragma omp critical(incv3_team_bind)
                if (bad_thread < 0 || i < bad_thread)
                    bad_thread = i, bad_errno = e;
            }
        }
    }
    if (got != team->threads)
        return incv3_fail(err, "OpenMP started %d threads where the team has %d (OMP_THREAD_LIMIT?)", got,
                          team->threads);
    if (bad_thread >= 0)
        return incv3_fail(err, "binding thread %d to PU %d failed (%s); --bind none leaves placement to the OS",
                          bad_thread, team->pu[bad_thread], strerror(bad_errno));
    return 0;
}
