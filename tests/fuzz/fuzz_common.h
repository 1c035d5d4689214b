/* Shared by the libFuzzer harnesses (tests/fuzz/fuzz_*.c) and their plain replay driver (replay_main.c).
 * The readers under test take a file path, so each input is written to one anonymous in-memory file per
 * process (memfd_create, opened again through /proc/self/fd/N); where that is unavailable, to one file in
 * $TMPDIR (default /tmp) removed at exit. Nothing is left behind and nothing of the repository is touched. */
#ifndef INCV3_FUZZ_COMMON_H
#define INCV3_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fuzz_fd = -1;
static char fuzz_path[4096];

static inline void fuzz_remove_temp(void)
{
    if (strncmp(fuzz_path, "/proc/", 6) != 0 && fuzz_path[0])
        unlink(fuzz_path);
}

/* Replaces the scratch file's contents with the input and returns its path (NULL when it cannot). */
static inline const char *fuzz_input_path(const uint8_t *data, size_t size)
{
    if (fuzz_fd < 0) {
#ifdef MFD_CLOEXEC
        fuzz_fd = memfd_create("incv3-fuzz", MFD_CLOEXEC);
        if (fuzz_fd >= 0)
            snprintf(fuzz_path, sizeof fuzz_path, "/proc/self/fd/%d", fuzz_fd);
#endif
        if (fuzz_fd < 0) {
            const char *tmp = getenv("TMPDIR");
            snprintf(fuzz_path, sizeof fuzz_path, "%s/incv3-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
            fuzz_fd = mkstemp(fuzz_path);
            if (fuzz_fd < 0) {
                perror("incv3 fuzz: scratch file");
                fuzz_path[0] = '\0';
                return NULL;
            }
            atexit(fuzz_remove_temp);
        }
    }
    if (ftruncate(fuzz_fd, 0))
        return NULL;
    size_t done = 0;
    while (done < size) {
        ssize_t w = pwrite(fuzz_fd, data + done, size - done, (off_t)done);
        if (w <= 0)
            return NULL;
        done += (size_t)w;
    }
    return fuzz_path;
}

/* Reads every byte so AddressSanitizer checks the whole span really belongs to its allocation. */
static inline unsigned fuzz_touch(const void *p, size_t n)
{
    const volatile unsigned char *c = p;
    unsigned s = 0;
    for (size_t i = 0; i < n; i++)
        s += c[i];
    return s;
}

#endif
