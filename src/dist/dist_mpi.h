/* The MPI context shared by dist_mpi.c (process group, collectives) and dist_grads.c (bucketed gradient
 * allreduce). */
#ifndef INCV3_DIST_MPI_H
#define INCV3_DIST_MPI_H

#include <mpi.h>

#include "dist/dist.h"
#include "graph/graph_dist.h"

struct incv3_dist {
    MPI_Comm comm;  /* a duplicate of MPI_COMM_WORLD with MPI_ERRORS_RETURN: our traffic only */
    MPI_Comm local; /* the ranks of this node (MPI_COMM_TYPE_SHARED) */
    int rank, size, local_rank, local_size;
    int we_initialized; /* MPI_Init was ours, so MPI_Finalize is too */

    /* gradient buckets (dist_grads.c) */
    incv3_graph_dist hooks;
    size_t n_params;
    size_t *offset;      /* offset[p]: where parameter p's gradient lies in flat (buffers take no room) */
    float *flat;         /* every gradient, packed for the allreduces */
    size_t bucket_bytes;
    size_t pending_from; /* parameters >= this one have their allreduce started */
    MPI_Request *reqs;
    int n_reqs, cap_reqs;
    double wait_s;
};

/* 0 when rc is MPI_SUCCESS, else -1 with err naming the call and MPI's message. */
int incv3_mpi_check(int rc, const char *what, incv3_error *err);

#endif
