/* The topology-aware scheduler on machines we do not have (hwloc synthetic and XML topologies): what is read
 * from hwloc, the thread team (count, one thread per core, spread over sockets, SMT only when asked), and
 * the partition of every convolution of the model (each cell exactly once, tiles within the L2 budget,
 * threads evenly loaded, deterministic). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <hwloc.h>
#include <omp.h>

#include "incv3/model.h"
#include "sched/partition.h"
#include "sched/start.h"
#include "sched/team.h"
#include "sched/topology.h"

/* 2 sockets x 32 cores, SMT-2, 512 KiB L2 per core, 32 MiB L3 per 8 cores. */
#define SERVER "pack:2 l3:4(size=32MiB) l2:8(size=512KiB) l1d:1(size=32KiB) core:1 pu:2"
/* 1 socket, 16 cores, no SMT. */
#define DESKTOP16 "pack:1 l3:1(size=32MiB) l2:16(size=1MiB) l1d:1(size=48KiB) core:1 pu:1"
/* A 4-core laptop with 2 threads per core. */
#define LAPTOP "pack:1 l3:1(size=8MiB) l2:4(size=256KiB) l1d:1(size=32KiB) core:1 pu:2"
/* 2 sockets x 2 NUMA nodes x 8 cores (an L3 per node), SMT-2. */
#define NUMA4 "pack:2 numa:2 l3:1(size=16MiB) l2:8(size=1MiB) l1d:1(size=32KiB) core:1 pu:2"
/* No L3, no L1 reported, an L2 shared by 2 cores, no NUMA level. */
#define NO_L3 "pack:1 l2:2(size=2MiB) core:2 pu:1"

/* Imbalance every plan of the model must meet on these machines (partition.h ranks plans over it last). */
#define IMBALANCE_BOUND INCV3_SCHED_IMBALANCE_MAX

static void load(incv3_topology *t, const char *desc)
{
    incv3_error err;
    if (incv3_topology_load(t, desc, NULL, &err))
        fail_msg("%s", err.msg);
}

static void plan_team(const incv3_topology *t, incv3_team *team, int threads, int smt, incv3_policy policy,
                      const char *omp_env)
{
    incv3_team_request req = {.threads = threads, .omp_num_threads = omp_env, .smt = smt, .bind = INCV3_BIND_CORE,
                              .policy = policy};
    incv3_error err;
    if (incv3_team_plan(t, &req, team, &err))
        fail_msg("%s", err.msg);
}

/* ---- topology ---- */

static void test_server_topology(void **state)
{
    (void)state;
    incv3_topology t;
    load(&t, SERVER);
    assert_int_equal(t.n_packages, 2);
    assert_int_equal(t.n_numa, 1); /* no NUMA level in the description: one node */
    assert_int_equal(t.n_cores, 64);
    assert_int_equal(t.n_pus, 128);
    assert_int_equal(t.n_l3, 8);
    assert_false(t.this_system);
    int seen[128] = {0};
    for (int c = 0; c < 64; c++) {
        const incv3_core_info *ci = &t.cores[c];
        assert_int_equal(ci->package, c / 32);
        assert_int_equal(ci->numa, 0);
        assert_int_equal(ci->n_pus, 2);
        assert_int_equal(ci->l1d.size, 32 * 1024);
        assert_int_equal(ci->l2.size, 512 * 1024);
        assert_int_equal(ci->l2.sharing, 1);
        assert_int_equal(ci->l3.size, 32 * 1024 * 1024);
        assert_int_equal(ci->l3.sharing, 8);
        assert_int_equal(ci->l3.id, c / 8);
        for (int k = 0; k < ci->n_pus; k++) {
            const int pu = incv3_topology_pu(&t, c, k);
            assert_in_range(pu, 0, 127);
            assert_int_equal(seen[pu]++, 0);
        }
    }
    incv3_topology_free(&t);
}

/* MPI ranks of one node sharing its cores: each keeps its consecutive part, the last ones with more ranks
 * than cores sharing a core. */
static void test_keep_share(void **state)
{
    (void)state;
    incv3_topology t;
    load(&t, SERVER);
    incv3_topology_keep_share(&t, 1, 2); /* the second half: package 1 */
    assert_int_equal(t.n_cores, 32);
    assert_int_equal(t.n_pus, 64);
    for (int c = 0; c < 32; c++)
        assert_int_equal(t.cores[c].package, 1);
    incv3_topology_free(&t);
    load(&t, SERVER);
    const int first_pu = incv3_topology_pu(&t, 43, 0);
    incv3_topology_keep_share(&t, 2, 3); /* cores 42..63 */
    assert_int_equal(t.n_cores, 22);
    assert_int_equal(incv3_topology_pu(&t, 1, 0), first_pu);
    incv3_topology_free(&t);
    load(&t, SERVER);
    const int pu = incv3_topology_pu(&t, 70 % 64, 0);
    incv3_topology_keep_share(&t, 70, 100); /* more ranks than cores */
    assert_int_equal(t.n_cores, 1);
    assert_int_equal(incv3_topology_pu(&t, 0, 0), pu);
    incv3_topology_free(&t);
    load(&t, SERVER);
    incv3_topology_keep_share(&t, 0, 1); /* one rank: everything */
    assert_int_equal(t.n_cores, 64);
    incv3_topology_free(&t);
}

static void test_numa_and_missing_levels(void **state)
{
    (void)state;
    incv3_topology t;
    load(&t, NUMA4);
    assert_int_equal(t.n_packages, 2);
    assert_int_equal(t.n_numa, 4);
    for (int c = 0; c < t.n_cores; c++) {
        assert_int_equal(t.cores[c].numa, c / 8);
        assert_int_equal(t.cores[c].package, c / 16);
    }
    incv3_topology_free(&t);

    load(&t, NO_L3);
    assert_int_equal(t.n_cores, 4);
    assert_int_equal(t.n_numa, 1);
    assert_int_equal(t.n_l3, 0);
    for (int c = 0; c < 4; c++) {
        assert_int_equal(t.cores[c].l3.size, 0);
        assert_int_equal(t.cores[c].l3.id, -1);
        assert_int_equal(t.cores[c].l1d.size, 0);
        assert_int_equal(t.cores[c].l2.sharing, 2);
        assert_int_equal(t.cores[c].l2.id, c / 2);
    }
    incv3_team team;
    plan_team(&t, &team, 0, 0, INCV3_POLICY_AUTO, NULL);
    assert_int_equal(team.l2_share, 1024 * 1024); /* 2 MiB shared by 2 cores */
    assert_int_equal(team.l3_share, 0);
    incv3_team_free(&team);
    incv3_topology_free(&t);
}

static void test_bad_sources_are_named(void **state)
{
    (void)state;
    incv3_topology t;
    incv3_error err;
    assert_int_not_equal(incv3_topology_load(&t, "pack:2 bogus:3", NULL, &err), 0);
    assert_non_null(strstr(err.msg, "pack:2 bogus:3"));
    assert_null(t.cores);
    assert_int_not_equal(incv3_topology_load(&t, NULL, "/nonexistent/machine.xml", &err), 0);
    assert_non_null(strstr(err.msg, "/nonexistent/machine.xml"));
    char path[] = "/tmp/incv3-sched-XXXXXX";
    const int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "not xml\n", 8), 8);
    close(fd);
    assert_int_not_equal(incv3_topology_load(&t, NULL, path, &err), 0);
    assert_non_null(strstr(err.msg, path));
    unlink(path);
}

/* An XML export of the server reads back as the same machine. */
static void test_xml_round_trip(void **state)
{
    (void)state;
    hwloc_topology_t hw;
    assert_int_equal(hwloc_topology_init(&hw), 0);
    assert_int_equal(hwloc_topology_set_synthetic(hw, SERVER), 0);
    assert_int_equal(hwloc_topology_load(hw), 0);
    char path[] = "/tmp/incv3-sched-XXXXXX";
    const int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(hwloc_topology_export_xml(hw, path, 0), 0);
    hwloc_topology_destroy(hw);

    incv3_topology a, b;
    incv3_error err;
    load(&a, SERVER);
    if (incv3_topology_load(&b, NULL, path, &err))
        fail_msg("%s", err.msg);
    unlink(path);
    assert_false(b.this_system);
    assert_int_equal(b.n_cores, a.n_cores);
    assert_int_equal(b.n_pus, a.n_pus);
    assert_int_equal(b.n_packages, a.n_packages);
    assert_int_equal(b.n_l3, a.n_l3);
    for (int c = 0; c < a.n_cores; c++) {
        assert_int_equal(b.cores[c].package, a.cores[c].package);
        assert_int_equal(b.cores[c].l2.size, a.cores[c].l2.size);
        assert_int_equal(b.cores[c].l3.id, a.cores[c].l3.id);
        assert_int_equal(incv3_topology_pu(&b, c, 1), incv3_topology_pu(&a, c, 1));
    }
    /* Binding on a machine that is not this one is hwloc's successful no-op. */
    incv3_team team;
    plan_team(&b, &team, 2, 0, INCV3_POLICY_AUTO, NULL);
    assert_int_equal(incv3_team_apply(&team, &b, &err), 0);
    incv3_team_free(&team);
    incv3_topology_free(&a);
    incv3_topology_free(&b);
}

/* ---- team ---- */

/* One thread per core (no core twice) unless smt; with smt at most one per PU; thread order follows cores. */
static void check_placement(const incv3_topology *t, const incv3_team *team)
{
    int *per_core = calloc((size_t)t->n_cores, sizeof(int));
    int *per_pu = calloc(4096, sizeof(int));
    assert_non_null(per_core);
    assert_non_null(per_pu);
    for (int i = 0; i < team->threads; i++) {
        assert_in_range(team->core[i], 0, t->n_cores - 1);
        per_core[team->core[i]]++;
        int found = 0;
        for (int k = 0; k < t->cores[team->core[i]].n_pus; k++)
            found |= incv3_topology_pu(t, team->core[i], k) == team->pu[i];
        assert_true(found); /* the PU belongs to the core */
        assert_int_equal(per_pu[team->pu[i]]++, 0);
        if (i > 0)
            assert_true(team->core[i] >= team->core[i - 1]);
    }
    int used = 0;
    for (int c = 0; c < t->n_cores; c++) {
        if (!team->smt)
            assert_true(per_core[c] <= 1);
        /* Siblings only once every chosen core... here: once every core has a thread. */
        if (per_core[c] > 1)
            assert_int_equal(team->threads > t->n_cores, 1);
        used += per_core[c] > 0;
    }
    assert_int_equal(used, team->cores_used);
    free(per_core);
    free(per_pu);
}

static int threads_in_package(const incv3_topology *t, const incv3_team *team, int pkg)
{
    int n = 0;
    for (int i = 0; i < team->threads; i++)
        n += t->cores[team->core[i]].package == pkg;
    return n;
}

static void test_team_server(void **state)
{
    (void)state;
    incv3_topology t;
    load(&t, SERVER);
    incv3_team team;

    plan_team(&t, &team, 0, 0, INCV3_POLICY_AUTO, NULL);
    assert_int_equal(team.threads, 64);
    assert_string_equal(team.threads_from, "one per core");
    assert_int_equal(team.policy, INCV3_POLICY_COMPACT); /* the team fills the machine */
    assert_int_equal(team.l2_share, 512 * 1024);
    assert_int_equal(team.l3_share, 4 * 1024 * 1024);
    assert_string_equal(team.warning, "");
    check_placement(&t, &team);
    for (int i = 0; i < 64; i++)
        assert_int_equal(team.pu[i], incv3_topology_pu(&t, team.core[i], 0)); /* no SMT sibling */
    incv3_team_free(&team);

    /* 8 threads spread: 4 per socket, one in each L3 group. */
    plan_team(&t, &team, 8, 0, INCV3_POLICY_AUTO, NULL);
    assert_int_equal(team.policy, INCV3_POLICY_SPREAD);
    check_placement(&t, &team);
    assert_int_equal(threads_in_package(&t, &team, 0), 4);
    assert_int_equal(threads_in_package(&t, &team, 1), 4);
    int l3_seen[8] = {0};
    for (int i = 0; i < 8; i++)
        assert_int_equal(l3_seen[t.cores[team.core[i]].l3.id]++, 0);
    incv3_team_free(&team);

    /* 2 threads spread: one per socket; compact: both on socket 0, neighbouring cores. */
    plan_team(&t, &team, 2, 0, INCV3_POLICY_SPREAD, NULL);
    assert_int_equal(threads_in_package(&t, &team, 0), 1);
    assert_int_equal(threads_in_package(&t, &team, 1), 1);
    incv3_team_free(&team);
    plan_team(&t, &team, 8, 0, INCV3_POLICY_COMPACT, NULL);
    check_placement(&t, &team);
    for (int i = 0; i < 8; i++)
        assert_int_equal(team.core[i], i);
    incv3_team_free(&team);

    /* 33 threads spread: 17 + 16. */
    plan_team(&t, &team, 33, 0, INCV3_POLICY_AUTO, NULL);
    check_placement(&t, &team);
    assert_int_equal(threads_in_package(&t, &team, 0), 17);
    assert_int_equal(threads_in_package(&t, &team, 1), 16);
    incv3_team_free(&team);

    /* SMT: every PU by default; 80 threads use every core, 16 of them twice; the L2 share halves. */
    plan_team(&t, &team, 0, 1, INCV3_POLICY_AUTO, NULL);
    assert_int_equal(team.threads, 128);
    check_placement(&t, &team);
    assert_int_equal(team.l2_share, 256 * 1024);
    incv3_team_free(&team);
    plan_team(&t, &team, 80, 1, INCV3_POLICY_AUTO, NULL);
    check_placement(&t, &team);
    assert_int_equal(team.cores_used, 64);
    incv3_team_free(&team);

    /* Never oversubscribe: clamp and say so. */
    plan_team(&t, &team, 200, 0, INCV3_POLICY_AUTO, NULL);
    assert_int_equal(team.threads, 64);
    assert_non_null(strstr(team.warning, "--threads 200"));
    assert_non_null(strstr(team.warning, "--smt"));
    incv3_team_free(&team);
    plan_team(&t, &team, 200, 1, INCV3_POLICY_AUTO, NULL);
    assert_int_equal(team.threads, 128);
    assert_non_null(strstr(team.warning, "--threads 200"));
    incv3_team_free(&team);
    incv3_topology_free(&t);
}

static void test_team_sources(void **state)
{
    (void)state;
    incv3_topology t;
    load(&t, DESKTOP16);
    incv3_team team;
    plan_team(&t, &team, 0, 0, INCV3_POLICY_AUTO, NULL);
    assert_int_equal(team.threads, 16);
    check_placement(&t, &team);
    incv3_team_free(&team);
    plan_team(&t, &team, 0, 1, INCV3_POLICY_AUTO, NULL); /* no SMT to use */
    assert_int_equal(team.threads, 16);
    incv3_team_free(&team);
    plan_team(&t, &team, 0, 0, INCV3_POLICY_AUTO, "12");
    assert_int_equal(team.threads, 12);
    assert_string_equal(team.threads_from, "OMP_NUM_THREADS");
    check_placement(&t, &team);
    incv3_team_free(&team);
    plan_team(&t, &team, 0, 0, INCV3_POLICY_AUTO, "6,2"); /* nested list: the outer level */
    assert_int_equal(team.threads, 6);
    incv3_team_free(&team);
    plan_team(&t, &team, 0, 0, INCV3_POLICY_AUTO, "lots");
    assert_int_equal(team.threads, 16);
    assert_non_null(strstr(team.warning, "OMP_NUM_THREADS"));
    incv3_team_free(&team);
    plan_team(&t, &team, 3, 0, INCV3_POLICY_AUTO, "12"); /* the flag wins */
    assert_int_equal(team.threads, 3);
    incv3_team_free(&team);
    plan_team(&t, &team, 0, 0, INCV3_POLICY_AUTO, "40");
    assert_int_equal(team.threads, 16);
    assert_non_null(strstr(team.warning, "OMP_NUM_THREADS=40"));
    incv3_team_free(&team);
    incv3_error err;
    incv3_team_request bad = {.threads = -1};
    assert_int_not_equal(incv3_team_plan(&t, &bad, &team, &err), 0);
    assert_non_null(strstr(err.msg, "--threads"));
    incv3_topology_free(&t);

    load(&t, LAPTOP);
    plan_team(&t, &team, 0, 0, INCV3_POLICY_AUTO, NULL);
    assert_int_equal(team.threads, 4);
    check_placement(&t, &team);
    incv3_team_free(&team);
    plan_team(&t, &team, 0, 1, INCV3_POLICY_AUTO, NULL);
    assert_int_equal(team.threads, 8);
    check_placement(&t, &team);
    for (int i = 0; i < 8; i++)
        assert_int_equal(team.core[i], i / 2); /* siblings get neighbouring thread numbers */
    incv3_team_free(&team);
    incv3_topology_free(&t);
}

static void test_team_numa(void **state)
{
    (void)state;
    incv3_topology t;
    load(&t, NUMA4);
    incv3_team team;
    for (int threads = 4; threads <= 12; threads += 4) {
        plan_team(&t, &team, threads, 0, INCV3_POLICY_AUTO, NULL);
        check_placement(&t, &team);
        int per_node[4] = {0};
        for (int i = 0; i < threads; i++)
            per_node[t.cores[team.core[i]].numa]++;
        for (int nn = 0; nn < 4; nn++)
            assert_int_equal(per_node[nn], threads / 4);
        incv3_team_free(&team);
    }
    incv3_topology_free(&t);
}

/* incv3_team_apply sets up OpenMP and binds (a no-op here: synthetic machine). */
static void test_team_apply(void **state)
{
    (void)state;
    incv3_topology t;
    load(&t, LAPTOP);
    incv3_team team;
    plan_team(&t, &team, 3, 0, INCV3_POLICY_AUTO, NULL);
    incv3_error err;
    if (incv3_team_apply(&team, &t, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(omp_get_max_threads(), 3);
    assert_int_equal(omp_get_dynamic(), 0);
    assert_int_equal(omp_get_max_active_levels(), 1);
    incv3_team_free(&team);
    incv3_topology_free(&t);
}

/* The PU each thread of a region of n threads runs on, or -1 where it may run on more than one. */
static void region_pus(int n, int *pu)
{
#pragma omp parallel num_threads(n)
    {
        cpu_set_t set;
        int only = -1;
        if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) == 1)
            for (int c = 0; c < CPU_SETSIZE; c++)
                if (CPU_ISSET(c, &set))
                    only = c;
        pu[omp_get_thread_num()] = only;
    }
}

/* Shrinking the active count to 1 and then 2 makes libgomp end threads 2..3; the threads it creates when
 * the count grows to 4 again inherit thread 0's binding. incv3_sched_use_threads pins them again. Four
 * threads on this machine's PUs 0 and 1 (alternating, so that a thread left on thread 0's PU shows). */
static void test_use_threads_keeps_binding(void **state)
{
    (void)state;
    cpu_set_t mine;
    assert_int_equal(sched_getaffinity(0, sizeof mine, &mine), 0);
    if (!CPU_ISSET(0, &mine) || !CPU_ISSET(1, &mine))
        skip(); /* needs PUs 0 and 1 */
    incv3_sched_started st;
    memset(&st, 0, sizeof st);
    st.threads = 4;
    st.have_team_cpus = 1;
    for (int i = 0; i < 4; i++)
        st.pu[i] = i % 2;
    incv3_error err;
    omp_set_dynamic(0);
    /* Pinned once, as incv3_team_apply does at start-up. */
#pragma omp parallel num_threads(4)
    {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(st.pu[omp_get_thread_num()], &set);
        sched_setaffinity(0, sizeof set, &set);
    }
    const int counts[] = {4, 1, 2, 4, 3, 4};
    for (size_t r = 0; r < sizeof counts / sizeof counts[0]; r++) {
        if (incv3_sched_use_threads(&st, counts[r], &err))
            fail_msg("%s", err.msg);
        assert_int_equal(omp_get_max_threads(), counts[r]);
        int pu[4] = {-1, -1, -1, -1};
        region_pus(counts[r], pu);
        for (int i = 0; i < counts[r]; i++)
            if (pu[i] != i % 2)
                fail_msg("count %d (step %zu): thread %d runs on PU %d, not %d", counts[r], r, i, pu[i], i % 2);
    }
    assert_int_equal(incv3_sched_use_threads(&st, 5, &err), -1);
    assert_non_null(strstr(err.msg, "5 threads asked of a team of 4"));
    sched_setaffinity(0, sizeof mine, &mine);
    omp_set_num_threads(1);
}

/* ---- partitions ---- */

typedef struct shape_list {
    incv3_conv_shape s[160];
    char name[160][64];
    int n;
} shape_list;

static void model_shapes(shape_list *out, int image_size, int aux, double width, int batch)
{
    incv3_model_config cfg = incv3_model_config_default();
    cfg.image_size = image_size, cfg.aux = aux, cfg.width = width;
    incv3_error err;
    incv3_graph *g = incv3_inception_v3(&cfg, &err);
    if (!g)
        fail_msg("%s", err.msg);
    out->n = 0;
    for (size_t i = 0; i < incv3_graph_node_count(g); i++) {
        incv3_node_info info;
        incv3_graph_node_info(g, (int)i, &info);
        if (strcmp(info.kind, "conv") != 0)
            continue;
        assert_true(out->n < 160);
        incv3_conv_shape s = {.n = batch, .c = info.in_c, .h = info.in_h, .w = info.in_w, .k = info.c,
                              .kh = info.kh, .kw = info.kw, .stride_h = info.stride, .stride_w = info.stride,
                              .pad_top = info.pad_h, .pad_bottom = info.pad_h, .pad_left = info.pad_w,
                              .pad_right = info.pad_w};
        assert_int_equal(incv3_conv_shape_finish(&s), 0);
        snprintf(out->name[out->n], sizeof out->name[0], "%s", info.name);
        out->s[out->n++] = s;
    }
    incv3_graph_free(g);
}

static unsigned char *cells;
static size_t cells_cap;

static unsigned char *cell_array(size_t count)
{
    if (count > cells_cap) {
        free(cells);
        cells = malloc(count);
        assert_non_null(cells);
        cells_cap = count;
    }
    memset(cells, 0, count);
    return cells;
}

/* Every cell of the pass's space is in exactly one tile, every tile within the budget, thread ranges
 * contiguous and complete, the reported imbalance the real one; planning again gives the same plan. */
static void check_partition(const char *name, const incv3_conv_shape *s, incv3_conv_pass pass, int threads,
                            uint64_t l2_share, double *worst)
{
    incv3_partition p, again;
    assert_int_equal(incv3_partition_plan(s, pass, threads, l2_share, &p), 0);
    assert_int_equal(incv3_partition_plan(s, pass, threads, l2_share, &again), 0);
    if (memcmp(&p, &again, sizeof p) != 0)
        fail_msg("%s %s: two plans differ", name, incv3_sched_pass_name(pass));
    const int KB = (s->k + 7) / 8, CB = (s->c + 7) / 8;
    const int bwd_w = pass == INCV3_CONV_BWD_WEIGHTS;
    const int blocks = pass == INCV3_CONV_BWD_DATA ? CB : KB;
    const int rows = pass == INCV3_CONV_BWD_DATA ? s->h : s->oh;
    const size_t count = bwd_w ? (size_t)KB * CB * s->n * s->oh : (size_t)s->n * blocks * rows;
    unsigned char *seen = cell_array(count);
    double *work = calloc((size_t)threads, sizeof(double));
    assert_non_null(work);
    long expect_first = 0;
    for (int th = 0; th < threads; th++) {
        long a, b;
        incv3_partition_thread_range(&p, th, &a, &b);
        assert_int_equal(a, expect_first);
        assert_true(b >= a);
        assert_true(b - a <= p.tiles_per_thread_max);
        expect_first = b;
        for (long i = a; i < b; i++) {
            incv3_tile t;
            incv3_partition_tile(&p, i, &t);
            const size_t bytes = incv3_partition_tile_bytes(&p, &t);
            if (bytes > p.budget || bytes > l2_share || bytes > p.tile_bytes)
                fail_msg("%s %s: tile %ld needs %zu bytes (budget %llu, L2 share %llu)", name,
                         incv3_sched_pass_name(pass), i, bytes, (unsigned long long)p.budget,
                         (unsigned long long)l2_share);
            if (!bwd_w) {
                assert_in_range(t.n, 0, s->n - 1);
                assert_true(0 <= t.b0 && t.b0 < t.b1 && t.b1 <= blocks && t.b1 - t.b0 <= p.ob);
                assert_true(0 <= t.r0 && t.r0 < t.r1 && t.r1 <= rows && t.r1 - t.r0 <= p.tile_rows);
                for (int b2 = t.b0; b2 < t.b1; b2++)
                    for (int r = t.r0; r < t.r1; r++)
                        seen[((size_t)t.n * blocks + b2) * rows + r]++;
                work[th] += (double)(t.b1 - t.b0) * (t.r1 - t.r0);
            } else {
                assert_true(0 <= t.b0 && t.b0 < t.b1 && t.b1 <= KB && t.b1 - t.b0 <= p.ob);
                assert_true(0 <= t.c0 && t.c0 < t.c1 && t.c1 <= CB && t.c1 - t.c0 <= p.ib);
                assert_true(0 <= t.q0 && t.q0 < t.q1 && t.q1 <= (long)s->n * s->oh);
                assert_in_range(t.segment, 0, p.segments - 1);
                for (int kb = t.b0; kb < t.b1; kb++)
                    for (int cb = t.c0; cb < t.c1; cb++)
                        for (long q = t.q0; q < t.q1; q++)
                            seen[((size_t)kb * CB + cb) * s->n * s->oh + (size_t)q]++;
                work[th] += (double)(t.b1 - t.b0) * (t.c1 - t.c0) * (t.q1 - t.q0);
            }
        }
    }
    assert_int_equal(expect_first, p.tiles);
    for (size_t i = 0; i < count; i++)
        if (seen[i] != 1)
            fail_msg("%s %s on %d threads: cell %zu covered %d times", name, incv3_sched_pass_name(pass), threads, i,
                     seen[i]);
    double most = 0, total = 0;
    for (int th = 0; th < threads; th++)
        most = work[th] > most ? work[th] : most, total += work[th];
    free(work);
    const double imbalance = most * threads / total;
    if (imbalance > p.imbalance + 1e-9 || imbalance < p.imbalance - 1e-9)
        fail_msg("%s %s: imbalance %.4f reported as %.4f", name, incv3_sched_pass_name(pass), imbalance, p.imbalance);
    assert_true(p.fits);
    if (bwd_w) {
        const size_t dw = (size_t)KB * CB * 64 * s->kh * s->kw * sizeof(float);
        assert_int_equal(p.partial_bytes, (size_t)(p.segments - 1) * dw);
        assert_true(p.partial_bytes <= INCV3_SCHED_PARTIAL_MAX);
    }
    if (p.imbalance > *worst)
        *worst = p.imbalance;
}

static void check_model(const shape_list *m, int threads, uint64_t l2_share, double bound)
{
    double worst = 0;
    for (int i = 0; i < m->n; i++)
        for (int pass = 0; pass < 3; pass++)
            check_partition(m->name[i], &m->s[i], (incv3_conv_pass)pass, threads, l2_share, &worst);
    if (worst > bound)
        fail_msg("%d threads, L2 share %llu: worst imbalance %.3f over %.3f", threads, (unsigned long long)l2_share,
                 worst, bound);
}

/* Every conv and pass of the full model, on the teams the four machines get by default. */
static void test_partitions_cover_model(void **state)
{
    (void)state;
    static shape_list m;
    model_shapes(&m, 299, 1, 1.0, 32);
    const char *machines[] = {SERVER, DESKTOP16, LAPTOP, NUMA4, NO_L3};
    for (size_t i = 0; i < sizeof machines / sizeof machines[0]; i++) {
        incv3_topology t;
        load(&t, machines[i]);
        incv3_team team;
        plan_team(&t, &team, 0, 0, INCV3_POLICY_AUTO, NULL);
        check_model(&m, team.threads, team.l2_share, IMBALANCE_BOUND);
        incv3_team_free(&team);
        incv3_topology_free(&t);
    }
    /* Odd team sizes and SMT shares. */
    check_model(&m, 7, 256 * 1024, IMBALANCE_BOUND);
    check_model(&m, 128, 256 * 1024, IMBALANCE_BOUND);
}

/* A small model at a small batch still covers exactly once; balance cannot always be had (fewer cells than
 * threads), so only coverage and budgets are checked. */
static void test_partitions_small_model(void **state)
{
    (void)state;
    static shape_list m;
    model_shapes(&m, 75, 0, 0.25, 2);
    check_model(&m, 64, 512 * 1024, 1e9);
    check_model(&m, 1, 512 * 1024, 1.0);
    model_shapes(&m, 75, 0, 0.25, 1);
    check_model(&m, 3, 32 * 1024, 1e9);
}

/* The 17x17 and 8x8 layers at batch 32 on 64 threads: every thread gets work (tiles >= threads) and the
 * busiest thread does at most IMBALANCE_BOUND x the mean. */
static void test_small_layers_keep_threads_busy(void **state)
{
    (void)state;
    static shape_list m;
    model_shapes(&m, 299, 1, 1.0, 32);
    int checked17 = 0, checked8 = 0;
    for (int i = 0; i < m.n; i++) {
        const incv3_conv_shape *s = &m.s[i];
        if (!(s->oh == 17 || s->oh == 8))
            continue;
        checked17 += s->oh == 17, checked8 += s->oh == 8;
        for (int pass = 0; pass < 3; pass++) {
            incv3_partition p;
            assert_int_equal(incv3_partition_plan(s, (incv3_conv_pass)pass, 64, 512 * 1024, &p), 0);
            if (p.tiles < 64 || p.imbalance > IMBALANCE_BOUND)
                fail_msg("%s %s: %ld tiles on 64 threads, imbalance %.3f", m.name[i],
                         incv3_sched_pass_name((incv3_conv_pass)pass), p.tiles, p.imbalance);
        }
    }
    assert_true(checked17 > 10);
    assert_true(checked8 > 5);
}

static void test_partition_rejects_bad_arguments(void **state)
{
    (void)state;
    incv3_conv_shape s = {.n = 1, .c = 8, .h = 8, .w = 8, .k = 8, .kh = 3, .kw = 3, .stride_h = 1, .stride_w = 1,
                          .pad_top = 1, .pad_left = 1, .pad_bottom = 1, .pad_right = 1};
    assert_int_equal(incv3_conv_shape_finish(&s), 0);
    incv3_partition p;
    assert_int_equal(incv3_partition_plan(&s, INCV3_CONV_FWD, 0, 1 << 20, &p), -1);
    assert_int_equal(incv3_partition_plan(&s, INCV3_CONV_FWD, 4, 0, &p), -1);
    /* A budget too small for any tile: still a complete plan, flagged. */
    assert_int_equal(incv3_partition_plan(&s, INCV3_CONV_FWD, 4, 1024, &p), 0);
    assert_false(p.fits);
    assert_int_equal(p.tiles, 8 * 1 * 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_topology),
        cmocka_unit_test(test_keep_share),
        cmocka_unit_test(test_numa_and_missing_levels),
        cmocka_unit_test(test_bad_sources_are_named),
        cmocka_unit_test(test_xml_round_trip),
        cmocka_unit_test(test_team_server),
        cmocka_unit_test(test_team_sources),
        cmocka_unit_test(test_team_numa),
        cmocka_unit_test(test_team_apply),
        cmocka_unit_test(test_use_threads_keeps_binding),
        cmocka_unit_test(test_partitions_cover_model),
        cmocka_unit_test(test_partitions_small_model),
        cmocka_unit_test(test_small_layers_keep_threads_busy),
        cmocka_unit_test(test_partition_rejects_bad_arguments),
    };
    const int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(cells);
    return rc;
}
