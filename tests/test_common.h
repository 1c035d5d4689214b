/* Helpers shared by the cmocka tests. */
#ifndef INCV3_TEST_COMMON_H
#define INCV3_TEST_COMMON_H

#include <stdio.h>
#include <sys/stat.h>

/* The team's shared folder: SOURCE_ROOT/../shared (the source root comes from meson as argv[1]).
 * Returns 0 and fills buf when it exists. */
static inline int test_shared_dir(int argc, char **argv, char *buf, size_t len)
{
    struct stat st;
    if (argc < 2)
        return -1;
    snprintf(buf, len, "%s/../shared", argv[1]);
    return stat(buf, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
}

#endif
