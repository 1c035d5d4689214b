/* The machine as the scheduler needs it: packages, NUMA nodes, cores, hardware threads (PUs) and the
 * caches each core sees, read with hwloc from this machine, a synthetic description or an XML file, and
 * copied into plain arrays so that planning code and tests never touch hwloc. */
#ifndef INCV3_SCHED_TOPOLOGY_H
#define INCV3_SCHED_TOPOLOGY_H

#include <stdint.h>

#include "incv3/error.h"

/* One cache level as seen from a core. Cores with the same id share the cache (they form an "L3 group",
 * an L2 cluster, ...); `sharing` says how many, so a core's fair share is size / sharing. */
typedef struct incv3_cache_info {
    uint64_t size; /* bytes; 0 when the machine has no such level (then id is -1, sharing 0) */
    int id;        /* index of the cache among the caches of its level, 0..count-1 */
    int sharing;   /* cores under this cache (also those outside the process's CPU set) */
} incv3_cache_info;

/* A physical core: where it sits (for placement) and what caches it has (for tile sizes). */
typedef struct incv3_core_info {
    int package;        /* 0..n_packages-1 */
    int numa;           /* 0..n_numa-1: the NUMA node whose memory is local to the core */
    int pu_first, n_pus; /* its PUs: topo->pus[pu_first .. pu_first + n_pus) */
    incv3_cache_info l1d, l2, l3;
} incv3_core_info;

typedef struct incv3_topology {
    int n_packages, n_numa, n_cores, n_pus;
    int n_l3; /* L3 caches (groups of cores sharing one), 0 when the machine has no L3 */
    incv3_core_info *cores; /* in hwloc's order: package 0's cores first, neighbours in cache next to each other */
    int *pus;               /* OS indexes of the PUs (what the kernel and hwloc bind to), core by core */
    int pus_outside;        /* PUs of this machine outside the process's CPU set (taskset, cgroup): not listed */
    int this_system;        /* 1: the machine we run on (binding acts); 0: synthetic or XML (binding is a no-op) */
    char source[320];       /* "this machine", "synthetic \"...\"", "XML file ..." (for messages) */
    void *hw;               /* the hwloc topology, kept for binding; opaque to users of this header */
} incv3_topology;

/* Loads the topology into *t: from the description when `synthetic` is non-NULL (hwloc synthetic syntax,
 * e.g. "pack:2 l3:4(size=32MiB) l2:8(size=512KiB) l1d:1(size=32KiB) core:1 pu:2"), else from the XML file
 * when `xml_path` is non-NULL (as written by lstopo), else this machine. Levels hwloc does not report are
 * tolerated: no NUMA information means one node, a missing cache level has size 0, a machine without Core
 * objects gets one core per PU. On failure the message names the description or file, *t is left empty
 * and -1 is returned. */
int incv3_topology_load(incv3_topology *t, const char *synthetic, const char *xml_path, incv3_error *err);
void incv3_topology_free(incv3_topology *t);
/* Keeps part `share` of `shares` equal consecutive parts of the cores (in topology order, so a part stays
 * within a package where it can); with more parts than cores, core share % n_cores. */
void incv3_topology_keep_share(incv3_topology *t, int share, int shares);

/* The OS index of the i-th PU of core c. */
static inline int incv3_topology_pu(const incv3_topology *t, int core, int i)
{
    return t->pus[t->cores[core].pu_first + i];
}

#endif
