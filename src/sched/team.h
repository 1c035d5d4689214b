/* The thread team: how many OpenMP threads, on which cores, and whether they are pinned. Decided once at
 * start-up from the topology and the user's request; the kernels' parallel regions then reuse that team. */
#ifndef INCV3_SCHED_TEAM_H
#define INCV3_SCHED_TEAM_H

#include <stdint.h>

#include "incv3/error.h"
#include "sched/topology.h"

typedef enum incv3_bind {
    INCV3_BIND_CORE = 0, /* each thread pinned to its PU: caches stay warm, memory stays NUMA-local */
    INCV3_BIND_NONE = 1, /* leave placement to the OS */
} incv3_bind;

typedef enum incv3_policy {
    INCV3_POLICY_AUTO = 0, /* spread when the threads leave cores free, else compact (the same cores) */
    INCV3_POLICY_SPREAD,   /* round-robin over packages, NUMA nodes and L3 groups: every socket's memory
                              bandwidth and L3 serve the team */
    INCV3_POLICY_COMPACT,  /* package 0's cores first: least cross-socket traffic for small teams */
} incv3_policy;

/* What the user asked for. */
typedef struct incv3_team_request {
    int threads;                 /* --threads N; 0: OMP_NUM_THREADS, else one per core (or PU with smt) */
    const char *omp_num_threads; /* the value of OMP_NUM_THREADS, NULL when unset (passed in: plans stay pure) */
    int smt;                     /* 1: hardware threads (SMT siblings) may be used, and count by default */
    incv3_bind bind;
    incv3_policy policy;
    /* Several processes of one node training together (MPI ranks) with overlapping CPU sets: this one uses
     * part `share` of `shares` equal consecutive parts of its cores. shares 0 or 1: all of them. */
    int share, shares;
} incv3_team_request;

/* The decision. Thread i runs on core[i] (an index into topo->cores) and PU pu[i] (an OS index). The cores
 * are chosen by the policy but numbered in topology order, so that neighbouring threads, which get
 * neighbouring tiles of a static partition, share a socket and its L3. A core is used twice only with
 * smt, and only once every chosen core has a thread. */
typedef struct incv3_team {
    int threads;
    int *core, *pu;
    int cores_used;          /* distinct cores */
    int packages_used;       /* distinct packages */
    incv3_policy policy;     /* resolved: SPREAD or COMPACT */
    incv3_bind bind;
    int smt;
    const char *threads_from; /* "--threads", "OMP_NUM_THREADS", "one per core", "one per PU" */
    uint64_t l2_share;       /* per-thread L2 bytes: min over the team of L2 size / (cores sharing it x threads
                                on the core); 256 KiB assumed when hwloc reports no L2 (see l2_assumed) */
    int l2_assumed;
    uint64_t l1d_share, l3_share; /* likewise (0 where the level is missing) */
    char warning[320];       /* non-empty when the request was changed: clamped thread count, bad OMP_NUM_THREADS */
} incv3_team;

/* Decides the team. Fails (message naming the flag's value) only for a nonsensical request (threads < 0)
 * or memory exhaustion; a request for more threads than the machine can run one per core (PU with smt) is
 * clamped, and team->warning says so. */
int incv3_team_plan(const incv3_topology *topo, const incv3_team_request *req, incv3_team *team, incv3_error *err);
void incv3_team_free(incv3_team *team);

/* Applies the team to OpenMP: omp_set_dynamic(0), omp_set_max_active_levels(1), omp_set_num_threads, then
 * one parallel region in which each thread pins itself to its PU (bind=core; hwloc makes that a successful
 * no-op on synthetic and XML topologies). Call once at start-up, before any kernel runs. Fails when OpenMP
 * gives a different team size or binding fails (message names the thread and PU). */
int incv3_team_apply(const incv3_team *team, const incv3_topology *topo, incv3_error *err);

const char *incv3_policy_name(incv3_policy p);
const char *incv3_bind_name(incv3_bind b);
/* Parse "spread"/"compact"/"auto" and "core"/"none"; return -1 for anything else. */
int incv3_policy_parse(const char *s, incv3_policy *out);
int incv3_bind_parse(const char *s, incv3_bind *out);

#endif
