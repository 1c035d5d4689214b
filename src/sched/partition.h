/* How one convolution pass is cut into tiles for a thread team, so that every tile's working set fits the
 * per-thread L2 share and every thread gets the same work. Pure functions of (shape, pass, threads, L2
 * share): no timing, no machine queries, the same plan for the same inputs.
 *
 * The space is counted in 8-channel blocks (the NCHW8c layout's unit):
 *   fwd:          cells (image, output block of K, output row)  -- what one y row of 8 channels needs
 *   bwd-data:     cells (image, input block of C, input row)    -- one dx row of 8 channels
 *   bwd-weights:  cells (dw block of K, dw block of C, image-row q = n * OH + oh of the reduction)
 * fwd and bwd-data tiles are (one image, a group of up to `ob` blocks, a chunk of up to `tile_rows` rows);
 * inside a tile the reduction blocks (fwd: input blocks; bwd-data: output blocks) are taken `chunk` at a
 * time, so that the weights of a chunk (chunk x kh x kw x 8 x 8*ob floats), the input rows of the chunk and
 * the output tile fit the budget (3/4 of the L2 share, the rest for scratch and prefetch streams).
 * bwd-weights tiles are (reduction segment, group of up to `ob` K blocks, group of up to `ib` C blocks):
 * segment s sums its image-rows into partial buffer s (segment 0 into dw itself), walking them `tile_rows`
 * output rows at a time; afterwards dw += partial[1] + partial[2] + ... in segment order, element by
 * element, so the result depends on the plan only, never on which thread ran what.
 *
 * Tiles are numbered in the order fwd/bwd-data (image, block group, row chunk), bwd-weights (segment, K
 * group, C group), and thread t runs the contiguous range [t * tiles / T, (t + 1) * tiles / T): neighbouring
 * tiles share weights and input rows, and threads are numbered so that neighbours share a socket (team.h). */
#ifndef INCV3_SCHED_PARTITION_H
#define INCV3_SCHED_PARTITION_H

#include <stddef.h>
#include <stdint.h>

#include "kernel_types.h"
#include "registry.h"

/* A plan at or under this imbalance is preferred to any over it, whatever its memory traffic. */
#define INCV3_SCHED_IMBALANCE_MAX 1.25
/* Partial buffers of bwd-weights may take at most this many bytes in all. */
#define INCV3_SCHED_PARTIAL_MAX ((size_t)128 << 20)

typedef struct incv3_partition {
    incv3_conv_shape shape;
    incv3_conv_pass pass;
    int threads;
    uint64_t l2_share, budget; /* bytes: per-thread L2 share, and the 3/4 of it a tile may use */

    /* The space (see above): n images (bwd-weights: K blocks in `blocks`, C blocks in `cblocks`). */
    int n, blocks, rows, cblocks;
    long red_rows; /* bwd-weights: image-rows N * OH */

    int ob, groups;            /* blocks per tile (at most) and the number of block groups */
    int tile_rows, row_chunks; /* fwd, bwd-data: rows per tile (at most) and row chunks; bwd-weights: output
                                  rows walked at a time inside a tile (row_chunks unused, 1) */
    int chunk;                 /* fwd, bwd-data: reduction blocks per step inside a tile */
    int ib, cgroups;           /* bwd-weights: C blocks per tile (at most) and C groups; else 1, 1 */
    int segments;              /* bwd-weights: reduction segments = partial sums; else 1 */
    size_t partial_bytes;      /* bwd-weights: (segments - 1) x the blocked dw's bytes */

    long tiles;
    long tiles_per_thread_max; /* most tiles a thread runs */
    double tiles_per_thread;   /* tiles / threads */
    double imbalance;          /* the busiest thread's multiply-adds / the mean (1 = perfect) */
    size_t tile_bytes;         /* working set of the largest tile: what one thread keeps in L2 */
    int fits;                  /* tile_bytes <= budget (0 only when even the smallest tile does not fit) */
    double traffic_bytes;      /* estimated bytes brought into the L2s over the pass (the plan's cost) */
} incv3_partition;

/* One tile. Ranges are half-open. */
typedef struct incv3_tile {
    int n;       /* fwd, bwd-data: the image */
    int b0, b1;  /* blocks: fwd output (K) blocks, bwd-data input (C) blocks, bwd-weights K blocks of dw */
    int r0, r1;  /* fwd: output rows, bwd-data: input rows */
    int c0, c1;  /* bwd-weights: C blocks of dw */
    int segment; /* bwd-weights: the partial buffer it sums into (0: dw) */
    long q0, q1; /* bwd-weights: image-rows of the reduction, q = n * OH + oh */
} incv3_tile;

/* Plans the pass (s->n, oh, ow filled by incv3_conv_shape_finish). threads >= 1, l2_share > 0.
 * Returns 0, or -1 for an invalid argument. */
int incv3_partition_plan(const incv3_conv_shape *s, incv3_conv_pass pass, int threads, uint64_t l2_share,
                         incv3_partition *p);
/* Tile number `index` (0 <= index < p->tiles). */
void incv3_partition_tile(const incv3_partition *p, long index, incv3_tile *tile);
/* The tiles thread t runs: [*first, *end). */
void incv3_partition_thread_range(const incv3_partition *p, int thread, long *first, long *end);
/* Working set of one tile in bytes (weights of a chunk, its input rows, its output), as checked against
 * the budget. */
size_t incv3_partition_tile_bytes(const incv3_partition *p, const incv3_tile *tile);

const char *incv3_sched_pass_name(incv3_conv_pass pass); /* "fwd", "bwd-data", "bwd-weights" */

#endif
