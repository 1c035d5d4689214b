/* src/dist/dist.h over MPI: the process group, rank 0's broadcasts, small sums, and the split of a node's
 * cores among its ranks. */
#include <hwloc.h>
#include <hwloc/glibc-sched.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/dist_mpi.h"

int incv3_mpi_check(int rc, const char *what, incv3_error *err)
{
    if (rc == MPI_SUCCESS)
        return 0;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS)
        snprintf(msg, sizeof msg, "error %d", rc);
    return incv3_fail(err, "MPI: %s failed: %s", what, msg);
}

int incv3_dist_init(incv3_dist **out, incv3_error *err)
{
    *out = NULL;
    incv3_dist *d = calloc(1, sizeof *d);
    if (!d)
        return incv3_fail(err, "out of memory");
    d->comm = d->local = MPI_COMM_NULL;
    int started = 0, provided;
    MPI_Initialized(&started);
    /* Only the main thread calls MPI (OpenMP threads and the data loader never do). */
    if (!started && incv3_mpi_check(MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread",
                                    err)) {
        free(d);
        return -1;
    }
    d->we_initialized = !started;
    /* Errors come back as return codes, checked everywhere, so a failing rank can say what failed before it
     * aborts the job rather than MPI's default handler killing it without our context. */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    if (incv3_mpi_check(MPI_Comm_dup(MPI_COMM_WORLD, &d->comm), "MPI_Comm_dup", err) ||
        incv3_mpi_check(MPI_Comm_set_errhandler(d->comm, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler", err) ||
        incv3_mpi_check(MPI_Comm_rank(d->comm, &d->rank), "MPI_Comm_rank", err) ||
        incv3_mpi_check(MPI_Comm_size(d->comm, &d->size), "MPI_Comm_size", err) ||
        incv3_mpi_check(MPI_Comm_split_type(d->comm, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &d->local),
                        "MPI_Comm_split_type", err) ||
        incv3_mpi_check(MPI_Comm_set_errhandler(d->local, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler", err) ||
        incv3_mpi_check(MPI_Comm_rank(d->local, &d->local_rank), "MPI_Comm_rank", err) ||
        incv3_mpi_check(MPI_Comm_size(d->local, &d->local_size), "MPI_Comm_size", err)) {
        *out = d; /* the caller aborts with it */
        return -1;
    }
    *out = d;
    return 0;
}

void incv3_dist_finalize(incv3_dist *d)
{
    if (!d)
        return;
    free(d->offset);
    free(d->flat);
    free(d->reqs);
    if (d->local != MPI_COMM_NULL)
        MPI_Comm_free(&d->local);
    if (d->comm != MPI_COMM_NULL)
        MPI_Comm_free(&d->comm);
    if (d->we_initialized)
        MPI_Finalize();
    free(d);
}

/* A NULL context is one process of one (callers that never started a group, e.g. incv3 eval). */
int incv3_dist_rank(const incv3_dist *d) { return d ? d->rank : 0; }
int incv3_dist_size(const incv3_dist *d) { return d ? d->size : 1; }
int incv3_dist_local_rank(const incv3_dist *d) { return d ? d->local_rank : 0; }
int incv3_dist_local_size(const incv3_dist *d) { return d ? d->local_size : 1; }

void incv3_dist_abort(incv3_dist *d, int code, const char *msg)
{
    if (!d || d->size <= 1)
        return;
    fprintf(stderr, "incv3 (rank %d of %d): %s; aborting every rank\n", d->rank, d->size, msg);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
}

int incv3_dist_bcast(incv3_dist *d, void *buf, size_t bytes, incv3_error *err)
{
    if (!d || d->size <= 1)
        return 0;
    for (size_t off = 0; off < bytes;) { /* MPI counts are int */
        const size_t n = bytes - off < (size_t)INT_MAX ? bytes - off : (size_t)INT_MAX;
        if (incv3_mpi_check(MPI_Bcast((char *)buf + off, (int)n, MPI_BYTE, 0, d->comm), "MPI_Bcast", err))
            return -1;
        off += n;
    }
    return 0;
}

int incv3_dist_sum_f64(incv3_dist *d, double *buf, size_t n, incv3_error *err)
{
    if (!d || d->size <= 1 || n == 0)
        return 0;
    if (n > (size_t)INT_MAX)
        return incv3_fail(err, "MPI: sum of %zu values is too large", n);
    return incv3_mpi_check(MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_SUM, d->comm), "MPI_Allreduce",
                           err);
}

int incv3_dist_max_int(incv3_dist *d, int *v, incv3_error *err)
{
    if (!d || d->size <= 1)
        return 0;
    return incv3_mpi_check(MPI_Allreduce(MPI_IN_PLACE, v, 1, MPI_INT, MPI_MAX, d->comm), "MPI_Allreduce", err);
}

/* The CPU set mpirun (or srun, taskset) bound this process to, as hwloc reads it. */
static int process_cpus(cpu_set_t *set, incv3_error *err)
{
    CPU_ZERO(set);
    hwloc_topology_t topo;
    if (hwloc_topology_init(&topo) || hwloc_topology_load(topo))
        return incv3_fail(err, "hwloc: cannot load this machine's topology");
    hwloc_bitmap_t bound = hwloc_bitmap_alloc();
    int rc = bound && hwloc_get_cpubind(topo, bound, HWLOC_CPUBIND_PROCESS) == 0 ? 0 : -1;
    if (rc == 0)
        rc = hwloc_cpuset_to_glibc_sched_affinity(topo, bound, set, sizeof *set);
    hwloc_bitmap_free(bound);
    hwloc_topology_destroy(topo);
    return rc ? incv3_fail(err, "hwloc: cannot read this process's CPU binding") : 0;
}

int incv3_dist_core_share(incv3_dist *d, int *share, int *shares, incv3_error *err)
{
    *share = 0, *shares = 1;
    if (!d || d->local_size <= 1)
        return 0;
    cpu_set_t mine;
    if (process_cpus(&mine, err))
        return -1;
    cpu_set_t *all = malloc(sizeof *all * (size_t)d->local_size);
    if (!all)
        return incv3_fail(err, "out of memory");
    if (incv3_mpi_check(MPI_Allgather(&mine, (int)sizeof mine, MPI_BYTE, all, (int)sizeof mine, MPI_BYTE, d->local),
                        "MPI_Allgather", err)) {
        free(all);
        return -1;
    }
    /* The ranks whose sets overlap this one's share it: each takes its part in local-rank order. */
    for (int r = 0; r < d->local_size; r++) {
        cpu_set_t both;
        CPU_AND(&both, &mine, &all[r]);
        if (r != d->local_rank && CPU_COUNT(&both) == 0)
            continue;
        if (r < d->local_rank)
            (*share)++;
        (*shares)++;
    }
    (*shares)--; /* counted itself once above and once in the initial 1 */
    free(all);
    return 0;
}
