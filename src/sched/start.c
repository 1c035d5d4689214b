#include "sched/start.h"

#include <errno.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched/topology.h"

int incv3_sched_start(incv3_team_request req, incv3_sched_started *out, incv3_error *err)
{
    memset(out, 0, sizeof *out);
    req.omp_num_threads = getenv("OMP_NUM_THREADS");
    incv3_topology topo;
    if (incv3_topology_load(&topo, NULL, NULL, err))
        return -1;
    const int n_cores = topo.n_cores;
    incv3_topology_keep_share(&topo, req.share, req.shares);
    incv3_team team;
    int rc = incv3_team_plan(&topo, &req, &team, err);
    if (rc == 0) {
        rc = incv3_team_apply(&team, &topo, err);
        out->threads = team.threads;
        if (req.shares > n_cores)
            snprintf(out->warning, sizeof out->warning,
                     "%d processes share this node's %d core%s: core %d is shared (oversubscribed)", req.shares,
                     n_cores, n_cores == 1 ? "" : "s", req.share % n_cores);
        else
            snprintf(out->warning, sizeof out->warning, "%s", team.warning);
        snprintf(out->summary, sizeof out->summary, "%d thread%s (%s) on %d core%s of %d package%s, %s",
                 team.threads, team.threads > 1 ? "s" : "", team.threads_from, team.cores_used,
                 team.cores_used > 1 ? "s" : "", team.packages_used, team.packages_used > 1 ? "s" : "",
                 team.bind == INCV3_BIND_CORE ? "pinned to their cores" : "not pinned");
        CPU_ZERO(&out->team_cpus);
        for (int i = 0; i < team.threads; i++) {
            if (i < CPU_SETSIZE)
                out->pu[i] = team.pu[i];
            if (team.pu[i] >= 0 && team.pu[i] < CPU_SETSIZE)
                CPU_SET(team.pu[i], &out->team_cpus);
        }
        out->have_team_cpus = team.bind == INCV3_BIND_CORE;
        incv3_team_free(&team);
    }
    incv3_topology_free(&topo);
    return rc;
}

int incv3_sched_use_threads(const incv3_sched_started *st, int n, incv3_error *err)
{
    if (n < 1 || n > st->threads)
        return incv3_fail(err, "%d threads asked of a team of %d", n, st->threads);
    omp_set_num_threads(n);
    if (!st->have_team_cpus)
        return 0;
    int bad_thread = -1, bad_errno = 0;
#pragma omp parallel num_threads(n)
    {
        const int i = omp_get_thread_num(), pu = st->pu[i];
        cpu_set_t set;
        CPU_ZERO(&set);
        if (pu >= 0 && pu < CPU_SETSIZE)
            CPU_SET(pu, &set);
        if (pu < 0 || pu >= CPU_SETSIZE || sched_setaffinity(0, sizeof set, &set)) {
            const int e = pu < 0 || pu >= CPU_SETSIZE ? EINVAL : errno;
#pragma omp critical(incv3_sched_rebind)
            if (bad_thread < 0 || i < bad_thread)
                bad_thread = i, bad_errno = e;
        }
    }
    if (bad_thread >= 0)
        return incv3_fail(err, "binding thread %d to PU %d failed (%s); --bind none leaves placement to the OS",
                          bad_thread, st->pu[bad_thread], strerror(bad_errno));
    return 0;
}
