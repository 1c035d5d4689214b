/* Start-up of a command that runs kernels: the real machine's topology, the thread team decided from the
 * user's request, applied to OpenMP once (thread count, pinning). */
#ifndef INCV3_SCHED_START_H
#define INCV3_SCHED_START_H

#include <sched.h>
#include <stddef.h>

#include "incv3/error.h"
#include "sched/team.h"

typedef struct incv3_sched_started {
    int threads;
    cpu_set_t team_cpus; /* every PU of the team: where helper threads (the data loader) may run */
    int have_team_cpus;  /* 0 when the team is not pinned (bind none): helpers inherit as usual */
    char summary[256];   /* one line for the user, e.g. "2 threads (one per core) on 2 cores, pinned" */
    char warning[320];   /* non-empty when the request was changed (see incv3_team) */
    int pu[CPU_SETSIZE]; /* thread i's PU when pinned (threads <= CPU_SETSIZE: one PU each) */
} incv3_sched_started;

/* Loads this machine's topology, plans the team for req (req->omp_num_threads is filled from the
 * environment here) and applies it. Returns 0, or -1 with err naming the cause. */
int incv3_sched_start(incv3_team_request req, incv3_sched_started *out, incv3_error *err);

/* Runs the next parallel regions on the team's first n threads (1 <= n <= st->threads), each still on its
 * own PU. omp_set_num_threads alone is not enough: when a region has fewer threads than the last one,
 * libgomp ends the threads past it, and the ones it creates when the count grows again inherit the
 * calling thread's binding, i.e. all run on thread 0's PU (seen on a 16-core machine as `bench --threads
 * 1,2,4,8,16` never finishing its 16-thread step). So after the count changes, every thread pins itself
 * again. Returns 0, or -1 with err naming the thread and PU that could not be bound. */
int incv3_sched_use_threads(const incv3_sched_started *st, int n, incv3_error *err);

#endif
