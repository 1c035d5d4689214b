#include "util/rng.h"

uint64_t incv3_rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double incv3_rng_uniform(uint64_t *state)
{
    return (double)(incv3_rng_next(state) >> 11) * 0x1.0p-53;
}

uint64_t incv3_rng_derive(uint64_t seed, uint64_t label)
{
    uint64_t s = seed ^ (label * 0xd1342543de82ef95ull);
    return incv3_rng_next(&s);
}
