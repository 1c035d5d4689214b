/* Data-parallel training across processes: one API for the trainer and the bench, implemented over MPI
 * (dist_mpi.c, dist_grads.c; -Dmpi=enabled) or as the trivial single process (dist_single.c), so callers
 * never test INCV3_HAVE_MPI themselves. Every collective returns 0 or -1 with err filled; on -1 the caller
 * reports and calls incv3_dist_abort, because the other ranks would otherwise wait forever in their next
 * collective. */
#ifndef INCV3_DIST_H
#define INCV3_DIST_H

#include <sched.h>
#include <stddef.h>

#include "incv3/error.h"
#include "incv3/graph.h"
#include "incv3/train.h"

typedef struct incv3_dist incv3_dist;

/* Starts the process group (MPI_Init_thread with MPI_ERRORS_RETURN on the communicators); *out is the
 * context every other call takes. Without MPI, or when not started by mpirun/srun, it is one rank of one. */
int incv3_dist_init(incv3_dist **out, incv3_error *err);
/* Ends the group (MPI_Finalize) and frees the context; NULL is allowed. */
void incv3_dist_finalize(incv3_dist *d);

int incv3_dist_rank(const incv3_dist *d);        /* 0 .. size-1; 0 prints and writes files */
int incv3_dist_size(const incv3_dist *d);        /* ranks in the run */
int incv3_dist_local_rank(const incv3_dist *d);  /* rank among the ranks of this node */
int incv3_dist_local_size(const incv3_dist *d);  /* ranks on this node */

/* Prints "incv3 (rank R of N): msg" on stderr and ends every rank (MPI_Abort) with status `code`; with
 * one rank it only returns (the caller exits as usual). */
void incv3_dist_abort(incv3_dist *d, int code, const char *msg);

/* Bytes from rank 0 to every rank. */
int incv3_dist_bcast(incv3_dist *d, void *buf, size_t bytes, incv3_error *err);
/* In-place sums over the ranks. */
int incv3_dist_sum_f64(incv3_dist *d, double *buf, size_t n, incv3_error *err);
/* In-place maximum over the ranks (agreeing on a stop or an error). */
int incv3_dist_max_int(incv3_dist *d, int *v, incv3_error *err);

/* The cores this rank may use: ranks of one node whose CPU sets overlap (mpirun --bind-to none, or
 * several ranks per core set) split the overlapping set into equal consecutive parts in local-rank order;
 * ranks already bound apart (mpirun's default) keep their binding. *share / *shares say which part of how
 * many this rank gets (0 of 1: use everything the process is allowed). */
int incv3_dist_core_share(incv3_dist *d, int *share, int *shares, incv3_error *err);

/* ---- the gradient allreduce ---- */

/* Every parameter's value, every buffer (running statistics) and, with opt, AdamW's moments and step count
 * from rank 0 to all ranks, so that all start (or resume) from rank 0's state. */
int incv3_dist_bcast_params(incv3_dist *d, incv3_graph *g, incv3_adamw *opt, incv3_error *err);

/* Installs the graph's backward hook: from the next backward on, buckets of about bucket_bytes of
 * gradients start an MPI_Iallreduce as soon as backward has finished every parameter in them (the graph
 * runs backward in reverse parameter order). sync_bn: BatchNorm batch statistics and their backward sums
 * are summed over the ranks (see graph_dist.h). Without MPI, or with one rank, nothing is installed. */
int incv3_dist_attach(incv3_dist *d, incv3_graph *g, int sync_bn, size_t bucket_bytes, incv3_error *err);
/* After backward: starts the last bucket, waits for every allreduce and leaves in each parameter's grad
 * the mean over the ranks (the sum / size, as one process's loss is a mean over its batch, so the result is
 * the gradient of the mean over the global batch). */
int incv3_dist_grads_finish(incv3_dist *d, incv3_graph *g, incv3_error *err);
/* Seconds spent inside MPI waiting for gradients (grads_finish) since the last call; resets. */
double incv3_dist_take_wait_seconds(incv3_dist *d);

#endif
