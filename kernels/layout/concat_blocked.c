/* Channel-slice concatenation in NCHW8c, portable C. See concat_blocked.h.
 *
 * A slice starting on a block boundary (offset % 8 == 0) maps source block sb onto destination block
 * offset/8 + sb: full source blocks are copied whole; the last, partial source block copies only its real
 * lanes, since the destination lanes after them belong to the next slice (which then starts mid-block).
 * Other slices are copied lane by lane. Every destination element is written by one thread. */
#include <stddef.h>
#include <string.h>

#include "layout/concat_blocked.h"

#define BLK 8

static int blocks8(int c)
{
    return (c + BLK - 1) / BLK;
}

void concat_slice_fwd_f32_nchw8c(int n, int h, int w, const float *src, int src_c, float *dst, int dst_c,
                                 int offset)
{
    const size_t hw = (size_t)h * w, blk = hw * BLK;
    const int SCB = blocks8(src_c), DCB = blocks8(dst_c);

    if (offset % BLK == 0) {
        const int db0 = offset / BLK;
#pragma omp parallel for collapse(2) schedule(static)
        for (int i = 0; i < n; i++) {
            for (int sb = 0; sb < SCB; sb++) {
                const float *s = src + ((size_t)i * SCB + sb) * blk;
                float *d = dst + ((size_t)i * DCB + db0 + sb) * blk;
                const int nl = src_c - sb * BLK < BLK ? src_c - sb * BLK : BLK;
                if (nl == BLK) {
                    memcpy(d, s, blk * sizeof *d);
                } else {
                    for (size_t p = 0; p < hw; p++)
                        for (int l = 0; l < nl; l++)
                            d[p * BLK + l] = s[p * BLK + l];
                }
            }
        }
        return;
    }

    /* Unaligned: destination blocks touched are those of channels [offset, offset + src_c). */
    const int db_lo = offset / BLK, db_hi = (offset + src_c - 1) / BLK;
#pragma omp parallel for collapse(2) schedule(static)
    for (int i = 0; i < n; i++) {
        for (int db = db_lo; db <= db_hi; db++) {
            float *d = dst + ((size_t)i * DCB + db) * blk;
            const int ch_lo = db * BLK > offset ? db * BLK : offset;
            const int ch_hi = (db + 1) * BLK < offset + src_c ? (db + 1) * BLK : offset + src_c;
            const float *s = src + (size_t)i * SCB * blk;
            for (size_t p = 0; p < hw; p++) {
                for (int ch = ch_lo; ch < ch_hi; ch++) {
                    const int sc = ch - offset;
                    d[p * BLK + ch % BLK] = s[(size_t)(sc / BLK) * blk + p * BLK + sc % BLK];
                }
            }
        }
    }
}

void concat_slice_bwd_f32_nchw8c(int n, int h, int w, const float *ddst, int dst_c, int offset, float *dsrc,
                                 int src_c, int accumulate)
{
    const size_t hw = (size_t)h * w, blk = hw * BLK;
    const int SCB = blocks8(src_c), DCB = blocks8(dst_c);

#pragma omp parallel for collapse(2) schedule(static)
    for (int i = 0; i < n; i++) {
        for (int sb = 0; sb < SCB; sb++) {
            float *s = dsrc + ((size_t)i * SCB + sb) * blk;
            const int nl = src_c - sb * BLK < BLK ? src_c - sb * BLK : BLK;
            if (offset % BLK == 0) {
                const float *d = ddst + ((size_t)i * DCB + offset / BLK + sb) * blk;
                if (nl == BLK && !accumulate) {
                    memcpy(s, d, blk * sizeof *s);
                } else if (nl == BLK) {
                    for (size_t k = 0; k < blk; k++)
                        s[k] += d[k];
                } else {
                    for (size_t p = 0; p < hw; p++) {
                        for (int l = 0; l < nl; l++)
                            s[p * BLK + l] = accumulate ? s[p * BLK + l] + d[p * BLK + l] : d[p * BLK + l];
                        for (int l = nl; l < BLK; l++)
                            s[p * BLK + l] = 0.0f;
                    }
                }
            } else {
                for (int l = 0; l < BLK; l++) {
                    if (l >= nl) {
                        for (size_t p = 0; p < hw; p++)
                            s[p * BLK + l] = 0.0f;
                        continue;
                    }
                    const int ch = offset + sb * BLK + l;
                    const float *d = ddst + ((size_t)i * DCB + ch / BLK) * blk;
                    const int dl = ch % BLK;
                    if (accumulate)
                        for (size_t p = 0; p < hw; p++)
                            s[p * BLK + l] += d[p * BLK + dl];
                    else
                        for (size_t p = 0; p < hw; p++)
                            s[p * BLK + l] = d[p * BLK + dl];
                }
            }
        }
    }
}
