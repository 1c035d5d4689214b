/* Human-readable views of the scheduler's decisions (used by `incv3 topo`). */
#ifndef INCV3_SCHED_PRINT_H
#define INCV3_SCHED_PRINT_H

#include <stdio.h>

#include "sched/partition.h"
#include "sched/team.h"
#include "sched/topology.h"

/* The machine as a compact tree: packages, NUMA nodes, L3 groups, and runs of identical cores
 * ("cores 0-7: L2 512 KiB, L1d 32 KiB, 2 PUs each (PUs 0-15)"). */
void incv3_topology_print(const incv3_topology *t, FILE *out);
/* The team: thread count and where it came from, policy, binding, cache shares, and runs of threads with
 * their cores and PUs. */
void incv3_team_print(const incv3_team *team, const incv3_topology *t, FILE *out);
/* One table row per plan; the header first. `layer` may be "" for the rows after a layer's first. */
void incv3_partition_print_header(FILE *out);
void incv3_partition_print_row(const char *layer, const incv3_partition *p, FILE *out);

/* "512 KiB", "32 MiB", "1.5 GiB", "100 B" into buf. */
const char *incv3_format_bytes(char *buf, size_t len, double bytes);

#endif
