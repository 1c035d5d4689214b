/* Small deterministic random numbers (splitmix64): parameter initialization and data shuffling draw
 * from explicit states, never from a global generator. */
#ifndef INCV3_RNG_H
#define INCV3_RNG_H

#include <stdint.h>

uint64_t incv3_rng_next(uint64_t *state);
/* Uniform in [0, 1). */
double incv3_rng_uniform(uint64_t *state);
/* A stream derived from a seed and a label (e.g. a parameter index), independent of draw order elsewhere. */
uint64_t incv3_rng_derive(uint64_t seed, uint64_t label);

#endif
