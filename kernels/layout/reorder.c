/* Layout reorders, see reorder.h. Each destination element is written by one thread, so results are
 * identical for any thread count (they are plain copies anyway). Loops run over the destination in order
 * so that writes stream; reads are strided by the plane size, which the hardware prefetcher follows. */
#include "reorder.h"

void reorder_nchw_to_nchw8c_f32(incv3_dims d, const float *src, float *dst)
{
    const int CB = incv3_blocks8(d.c);
    const size_t hw = (size_t)d.h * d.w;
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < d.n; n++) {
        for (int cb = 0; cb < CB; cb++) {
            float *o = dst + ((size_t)n * CB + cb) * hw * INCV3_BLK;
            const int c0 = cb * INCV3_BLK;
            const int nc = d.c - c0 < INCV3_BLK ? d.c - c0 : INCV3_BLK;
            const float *in = src + ((size_t)n * d.c + c0) * hw;
            for (size_t p = 0; p < hw; p++) {
                int i = 0;
                for (; i < nc; i++)
                    o[p * INCV3_BLK + i] = in[(size_t)i * hw + p];
                for (; i < INCV3_BLK; i++)
                    o[p * INCV3_BLK + i] = 0.0f;
            }
        }
    }
}

void reorder_nchw8c_to_nchw_f32(incv3_dims d, const float *src, float *dst)
{
    const int CB = incv3_blocks8(d.c);
    const size_t hw = (size_t)d.h * d.w;
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < d.n; n++) {
        for (int c = 0; c < d.c; c++) {
            const float *in = src + ((size_t)n * CB + c / INCV3_BLK) * hw * INCV3_BLK + c % INCV3_BLK;
            float *o = dst + ((size_t)n * d.c + c) * hw;
            for (size_t p = 0; p < hw; p++)
                o[p] = in[p * INCV3_BLK];
        }
    }
}

void reorder_oihw_to_oihw8i8o_f32(int k, int c, int kh, int kw, const float *src, float *dst)
{
    const int KB = incv3_blocks8(k), CB = incv3_blocks8(c);
    const int taps = kh * kw;
#pragma omp parallel for collapse(2) schedule(static)
    for (int kb = 0; kb < KB; kb++) {
        for (int cb = 0; cb < CB; cb++) {
            float *o = dst + ((size_t)kb * CB + cb) * taps * INCV3_BLK * INCV3_BLK;
            for (int t = 0; t < taps; t++) {
                for (int i = 0; i < INCV3_BLK; i++) {
                    for (int j = 0; j < INCV3_BLK; j++) {
                        const int oc = kb * INCV3_BLK + j, ic = cb * INCV3_BLK + i;
                        o[((size_t)t * INCV3_BLK + i) * INCV3_BLK + j] =
                            oc < k && ic < c ? src[((size_t)oc * c + ic) * taps + t] : 0.0f;
                    }
                }
            }
        }
    }
}

void reorder_oihw8i8o_to_oihw_f32(int k, int c, int kh, int kw, const float *src, float *dst)
{
    const int KB = incv3_blocks8(k), CB = incv3_blocks8(c);
    const int taps = kh * kw;
    /* One block (8 output x 8 input channels, all taps) at a time: it is read from cache, and each of its
     * output channels' rows is written as one run of 8 * taps floats (per output channel, one element at
     * a time over the whole tensor read every block's cache lines eight times). */
#pragma omp parallel for collapse(2) schedule(static)
    for (int kb = 0; kb < KB; kb++) {
        for (int cb = 0; cb < CB; cb++) {
            const float *in = src + ((size_t)kb * CB + cb) * taps * INCV3_BLK * INCV3_BLK;
            const int no = k - kb * INCV3_BLK < INCV3_BLK ? k - kb * INCV3_BLK : INCV3_BLK;
            const int ni = c - cb * INCV3_BLK < INCV3_BLK ? c - cb * INCV3_BLK : INCV3_BLK;
            for (int o = 0; o < no; o++) {
                float *row = dst + ((size_t)(kb * INCV3_BLK + o) * c + (size_t)cb * INCV3_BLK) * taps;
                for (int i = 0; i < ni; i++)
                    for (int t = 0; t < taps; t++)
                        row[(size_t)i * taps + t] = in[((size_t)t * INCV3_BLK + i) * INCV3_BLK + o];
            }
        }
    }
}

size_t conv_weights_oihw8i8o_floats(const incv3_conv_shape *s)
{
    return reorder_oihw8i8o_count(s->k, s->c, s->kh, s->kw);
}

void conv_weights_pack_oihw8i8o(const incv3_conv_shape *s, const float *oihw, float *w8i8o)
{
    reorder_oihw_to_oihw8i8o_f32(s->k, s->c, s->kh, s->kw, oihw, w8i8o);
}
