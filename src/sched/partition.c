/* Partition of one convolution pass into L2-sized tiles for a thread team (see partition.h).
 *
 * Choice: every candidate tiling whose tiles fit the budget is scored by
 *     imbalance x (multiply-adds + BYTE_COST x bytes brought into the L2s),
 * with plans over INCV3_SCHED_IMBALANCE_MAX ranked after all plans under it, and plans leaving a thread
 * without a tile after those that keep every thread busy. Bigger tiles re-read less
 * (weights once per row chunk, input rows once per block group), more tiles balance better; the score
 * trades the two. Ties go to the first candidate in a fixed enumeration order, so plans are deterministic. */
#include <string.h>

#include "sched/partition.h"

#define BLK 8
#define FLT ((size_t)sizeof(float))
/* Multiply-adds one byte brought into L2 is worth: an AVX2 core does about 16 multiply-adds a cycle and,
 * with every core streaming, gets a few bytes a cycle from L3 or memory. A rough constant; it only weighs
 * traffic against balance. */
#define BYTE_COST 4.0
/* Largest block groups tried: 16 blocks = 128 channels (bwd-weights: 32 C blocks). */
#define OB_MAX 16
#define IB_MAX 32

const char *incv3_sched_pass_name(incv3_conv_pass pass)
{
    return pass == INCV3_CONV_FWD ? "fwd" : pass == INCV3_CONV_BWD_DATA ? "bwd-data" : "bwd-weights";
}

/* Balanced split of len items into parts: part i starts at i * len / parts (sizes differ by at most 1). */
static long split_start(long i, long len, long parts)
{
    return i * len / parts;
}

static long split_size(long i, long len, long parts)
{
    return split_start(i + 1, len, parts) - split_start(i, len, parts);
}

static long ceil_div(long a, long b)
{
    return (a + b - 1) / b;
}

/* Input rows a tile of `rows` rows reads: fwd and bwd-weights x rows for `rows` output rows; bwd-data dy
 * rows for `rows` dx rows. */
static long in_rows(const incv3_partition *p, long rows)
{
    const incv3_conv_shape *s = &p->shape;
    long r;
    if (p->pass == INCV3_CONV_BWD_DATA) {
        r = (rows + s->kh - 2) / s->stride_h + 1;
        return r < s->oh ? r : s->oh;
    }
    r = s->kh >= s->stride_h ? (rows - 1) * s->stride_h + s->kh : rows * s->kh;
    return r < s->h ? r : s->h;
}

/* Widths of the rows a fwd/bwd-data tile reads and writes. */
static long in_width(const incv3_partition *p)
{
    return p->pass == INCV3_CONV_BWD_DATA ? p->shape.ow : p->shape.w;
}

static long out_width(const incv3_partition *p)
{
    return p->pass == INCV3_CONV_BWD_DATA ? p->shape.w : p->shape.ow;
}

static size_t taps(const incv3_partition *p)
{
    return (size_t)p->shape.kh * p->shape.kw;
}

/* Working set of a fwd/bwd-data tile of nb blocks and nr rows, taking the reduction `chunk` blocks a step. */
static size_t fd_bytes(const incv3_partition *p, long nb, long nr, long chunk)
{
    const size_t w = (size_t)chunk * taps(p) * BLK * BLK * nb;
    const size_t x = (size_t)chunk * in_rows(p, nr) * in_width(p) * BLK;
    const size_t y = (size_t)nr * out_width(p) * BLK * nb;
    return (w + x + y) * FLT;
}

/* Working set of a bwd-weights tile of nb K blocks and nc C blocks walking nr output rows a step. */
static size_t bw_bytes(const incv3_partition *p, long nb, long nc, long nr)
{
    const size_t dw = (size_t)nb * nc * taps(p) * BLK * BLK;
    const size_t x = (size_t)nc * in_rows(p, nr) * p->shape.w * BLK;
    const size_t dy = (size_t)nb * nr * p->shape.ow * BLK;
    return (dw + x + dy) * FLT;
}

/* Work (in cells, all of equal cost) of tiles [0, k). */
static double work_prefix(const incv3_partition *p, long k)
{
    if (p->pass != INCV3_CONV_BWD_WEIGHTS) {
        const long per = (long)p->groups * p->row_chunks;
        const long img = k / per, rem = k % per, g = rem / p->row_chunks, r = rem % p->row_chunks;
        return (double)img * p->blocks * p->rows +
               (double)split_start(g, p->blocks, p->groups) * p->rows +
               (double)split_size(g, p->blocks, p->groups) * split_start(r, p->rows, p->row_chunks);
    }
    const long per = (long)p->groups * p->cgroups;
    const long s = k / per, rem = k % per, g = rem / p->cgroups, c = rem % p->cgroups;
    return (double)split_start(s, p->red_rows, p->segments) * p->blocks * p->cblocks +
           (double)split_size(s, p->red_rows, p->segments) *
               ((double)split_start(g, p->blocks, p->groups) * p->cblocks +
                (double)split_size(g, p->blocks, p->groups) * split_start(c, p->cblocks, p->cgroups));
}

void incv3_partition_thread_range(const incv3_partition *p, int thread, long *first, long *end)
{
    *first = split_start(thread, p->tiles, p->threads);
    *end = split_start(thread + 1, p->tiles, p->threads);
}

/* Fills tiles, tiles per thread and the imbalance from the tiling fields. */
static void measure(incv3_partition *p)
{
    p->tiles = p->pass == INCV3_CONV_BWD_WEIGHTS ? (long)p->segments * p->groups * p->cgroups
                                                 : (long)p->n * p->groups * p->row_chunks;
    p->tiles_per_thread_max = ceil_div(p->tiles, p->threads);
    p->tiles_per_thread = (double)p->tiles / p->threads;
    const double total = work_prefix(p, p->tiles);
    double most = 0;
    for (int t = 0; t < p->threads; t++) {
        long a, b;
        incv3_partition_thread_range(p, t, &a, &b);
        const double w = work_prefix(p, b) - work_prefix(p, a);
        if (w > most)
            most = w;
    }
    p->imbalance = total > 0 ? most * p->threads / total : 1.0;
}

static double macs(const incv3_partition *p)
{
    const incv3_conv_shape *s = &p->shape;
    return (double)s->n * ceil_div(s->k, BLK) * BLK * s->oh * s->ow * (double)ceil_div(s->c, BLK) * BLK * s->kh *
           s->kw;
}

/* Bytes into the L2s over the pass (the tiling fields set, imbalance not needed). */
static double traffic(const incv3_partition *p)
{
    const double f = FLT, w_block = (double)taps(p) * BLK * BLK * f;
    if (p->pass != INCV3_CONV_BWD_WEIGHTS) {
        /* Weights of the group once per tile; all input rows of the tile once per tile; output once. */
        const long R = p->row_chunks, small = p->rows / R, big_count = p->rows % R;
        const double rows_in = (double)(R - big_count) * in_rows(p, small) + (double)big_count * in_rows(p, small + 1);
        const double wt = (double)p->n * R * p->blocks * p->cblocks * w_block;
        const double x = (double)p->n * p->groups * p->cblocks * rows_in * in_width(p) * BLK * f;
        const double y = (double)p->n * p->blocks * p->rows * out_width(p) * BLK * f;
        return wt + x + y;
    }
    const incv3_conv_shape *s = &p->shape;
    const double dw_all = (double)p->blocks * p->cblocks * w_block;
    const double steps = (double)s->n * ceil_div(s->oh, p->tile_rows);
    const double x = (double)p->groups * p->cblocks * steps * in_rows(p, p->tile_rows) * s->w * BLK * f;
    const double dy = (double)p->cgroups * p->blocks * s->n * s->oh * s->ow * BLK * f;
    /* Each segment writes a whole dw (its tiles' parts); partials are written and read back once more. */
    const double dw = (double)p->segments * dw_all + 2.0 * (p->segments - 1) * dw_all;
    return x + dy + dw;
}

static double score(const incv3_partition *p)
{
    return p->imbalance * (macs(p) + BYTE_COST * p->traffic_bytes);
}

/* Rank before the score: 0 balanced with every thread busy, 1 balanced but some thread without a tile
 * (fewer tiles than threads), 2 over the imbalance bound. */
static int tier(const incv3_partition *p)
{
    if (p->imbalance > INCV3_SCHED_IMBALANCE_MAX + 1e-9)
        return 2;
    return p->tiles < p->threads;
}

/* 1 when candidate c beats the best so far. */
static int better(const incv3_partition *c, const incv3_partition *best, int have_best)
{
    if (!have_best)
        return 1;
    const int tc = tier(c), tb = tier(best);
    if (tc != tb)
        return tc < tb;
    return score(c) < score(best);
}

/* 1 when the candidate cannot beat the best whatever its imbalance (>= 1) turns out to be. */
static int hopeless(const incv3_partition *c, const incv3_partition *best, int have_best)
{
    if (!have_best || tier(best) != 0)
        return 0;
    return macs(c) + BYTE_COST * c->traffic_bytes >= score(best);
}

static void plan_fwd_data(incv3_partition *p)
{
    incv3_partition best = *p, c = *p;
    int have = 0;
    const long red = p->cblocks;
    for (int G = 1; G <= p->blocks; G++) {
        const long ob = ceil_div(p->blocks, G);
        if (ob > OB_MAX)
            continue;
        for (int R = 1; R <= p->rows; R++) {
            const long nr = ceil_div(p->rows, R);
            /* The largest reduction chunk that fits with this tile. */
            const size_t fixed = fd_bytes(p, ob, nr, 0), per_chunk = fd_bytes(p, ob, nr, 1) - fixed;
            if (fixed + per_chunk > p->budget)
                continue;
            long chunk = (long)((p->budget - fixed) / per_chunk);
            if (chunk > red)
                chunk = red;
            c.groups = G, c.ob = (int)ob, c.row_chunks = R, c.tile_rows = (int)nr, c.chunk = (int)chunk;
            c.traffic_bytes = traffic(&c);
            if (hopeless(&c, &best, have))
                continue;
            measure(&c);
            if (better(&c, &best, have))
                best = c, have = 1;
        }
    }
    if (!have) { /* even one block, one row and one reduction block exceed the budget */
        best.groups = p->blocks, best.ob = 1, best.row_chunks = p->rows, best.tile_rows = 1, best.chunk = 1;
        best.traffic_bytes = traffic(&best);
        measure(&best);
    }
    best.tile_bytes = fd_bytes(&best, best.ob, best.tile_rows, best.chunk);
    *p = best;
}

/* Smallest group count whose largest group has at most `size` blocks. */
static long groups_for(long blocks, long size)
{
    return ceil_div(blocks, size);
}

static void plan_bwd_weights(incv3_partition *p)
{
    incv3_partition best = *p, c = *p;
    int have = 0;
    const size_t dw_bytes = (size_t)p->blocks * p->cblocks * taps(p) * BLK * BLK * FLT;
    long s_max = p->threads < p->red_rows ? p->threads : p->red_rows;
    if (dw_bytes > 0 && (size_t)(s_max - 1) * dw_bytes > INCV3_SCHED_PARTIAL_MAX)
        s_max = (long)(INCV3_SCHED_PARTIAL_MAX / dw_bytes) + 1;
    long prev_ob = -1;
    for (long ob = p->blocks < OB_MAX ? p->blocks : OB_MAX; ob >= 1; ob--) {
        const long GK = groups_for(p->blocks, ob), ob_real = ceil_div(p->blocks, GK);
        if (ob_real == prev_ob)
            continue;
        prev_ob = ob_real;
        long prev_ib = -1;
        for (long ib = p->cblocks < IB_MAX ? p->cblocks : IB_MAX; ib >= 1; ib--) {
            const long GC = groups_for(p->cblocks, ib), ib_real = ceil_div(p->cblocks, GC);
            if (ib_real == prev_ib)
                continue;
            prev_ib = ib_real;
            /* The most output rows a step that fit. */
            long tr = p->rows;
            while (tr >= 1 && bw_bytes(p, ob_real, ib_real, tr) > p->budget)
                tr--;
            if (tr < 1)
                continue;
            for (long S = 1; S <= s_max; S++) {
                if (S > 1 && (long)GK * GC * (S - 1) >= 16L * p->threads)
                    break; /* enough tiles already: more segments only add partial sums */
                c.groups = (int)GK, c.ob = (int)ob_real, c.cgroups = (int)GC, c.ib = (int)ib_real;
                c.tile_rows = (int)tr, c.segments = (int)S;
                c.partial_bytes = (size_t)(S - 1) * dw_bytes;
                c.traffic_bytes = traffic(&c);
                if (hopeless(&c, &best, have))
                    continue;
                measure(&c);
                if (better(&c, &best, have))
                    best = c, have = 1;
            }
        }
    }
    if (!have) {
        best.groups = p->blocks, best.ob = 1, best.cgroups = p->cblocks, best.ib = 1, best.tile_rows = 1;
        best.segments = (int)s_max;
        best.partial_bytes = (size_t)(s_max - 1) * dw_bytes;
        best.traffic_bytes = traffic(&best);
        measure(&best);
    }
    best.tile_bytes = bw_bytes(&best, best.ob, best.ib, best.tile_rows);
    *p = best;
}

int incv3_partition_plan(const incv3_conv_shape *s, incv3_conv_pass pass, int threads, uint64_t l2_share,
                         incv3_partition *p)
{
    memset(p, 0, sizeof *p);
    if (threads < 1 || l2_share == 0 || s->n < 1 || s->c < 1 || s->k < 1 || s->oh < 1 || s->ow < 1 ||
        s->kh < 1 || s->kw < 1 || s->stride_h < 1)
        return -1;
    p->shape = *s;
    p->pass = pass;
    p->threads = threads;
    p->l2_share = l2_share;
    p->budget = l2_share / 4 * 3;
    p->n = s->n;
    const int KB = (int)ceil_div(s->k, BLK), CB = (int)ceil_div(s->c, BLK);
    p->segments = p->ib = p->cgroups = p->row_chunks = p->chunk = 1;
    switch (pass) {
    case INCV3_CONV_FWD:
        p->blocks = KB, p->cblocks = CB, p->rows = s->oh;
        plan_fwd_data(p);
        break;
    case INCV3_CONV_BWD_DATA:
        p->blocks = CB, p->cblocks = KB, p->rows = s->h;
        plan_fwd_data(p);
        break;
    case INCV3_CONV_BWD_WEIGHTS:
        p->blocks = KB, p->cblocks = CB, p->rows = s->oh, p->red_rows = (long)s->n * s->oh;
        plan_bwd_weights(p);
        break;
    default:
        return -1;
    }
    p->fits = p->tile_bytes <= p->budget;
    return 0;
}

void incv3_partition_tile(const incv3_partition *p, long index, incv3_tile *t)
{
    memset(t, 0, sizeof *t);
    if (p->pass != INCV3_CONV_BWD_WEIGHTS) {
        const long per = (long)p->groups * p->row_chunks;
        const long rem = index % per, g = rem / p->row_chunks, r = rem % p->row_chunks;
        t->n = (int)(index / per);
        t->b0 = (int)split_start(g, p->blocks, p->groups);
        t->b1 = (int)split_start(g + 1, p->blocks, p->groups);
        t->r0 = (int)split_start(r, p->rows, p->row_chunks);
        t->r1 = (int)split_start(r + 1, p->rows, p->row_chunks);
        return;
    }
    const long per = (long)p->groups * p->cgroups;
    const long s = index / per, rem = index % per, g = rem / p->cgroups, c = rem % p->cgroups;
    t->segment = (int)s;
    t->q0 = split_start(s, p->red_rows, p->segments);
    t->q1 = split_start(s + 1, p->red_rows, p->segments);
    t->b0 = (int)split_start(g, p->blocks, p->groups);
    t->b1 = (int)split_start(g + 1, p->blocks, p->groups);
    t->c0 = (int)split_start(c, p->cblocks, p->cgroups);
    t->c1 = (int)split_start(c + 1, p->cblocks, p->cgroups);
}

size_t incv3_partition_tile_bytes(const incv3_partition *p, const incv3_tile *t)
{
    if (p->pass != INCV3_CONV_BWD_WEIGHTS)
        return fd_bytes(p, t->b1 - t->b0, t->r1 - t->r0, p->chunk < p->cblocks ? p->chunk : p->cblocks);
    long rows = p->tile_rows;
    if (t->q1 - t->q0 < rows)
        rows = t->q1 - t->q0;
    return bw_bytes(p, t->b1 - t->b0, t->c1 - t->c0, rows);
}
