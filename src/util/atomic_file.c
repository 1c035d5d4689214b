/* Atomic file replacement (see atomic_file.h). The steps mirror incv3_st_write in io/safetensors.c,
 * with a stdio stream handed to the caller instead of raw write() calls. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* fsync, mkstemp, fdopen, O_DIRECTORY, O_CLOEXEC */
#endif

#include "util/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Directory that holds path ("." for a bare file name, "/" for a file in the root); caller frees. */
static char *parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *src = ".";
    size_t len = 1;
    if (slash) {
        src = path;
        len = slash == path ? 1 : (size_t)(slash - path);
    }
    char *d = malloc(len + 1);
    if (d) {
        memcpy(d, src, len);
        d[len] = '\0';
    }
    return d;
}

int incv3_write_file_atomic(const char *path, incv3_file_writer write_fn, void *ctx, incv3_error *err)
{
    if (!path || !path[0] || !write_fn)
        return incv3_fail(err, "atomic write: missing destination path or writer");

    static const char suffix[] = ".tmp.XXXXXX";
    int rc = -1, fd = -1, tmp_exists = 0;
    FILE *f = NULL;
    size_t plen = strlen(path);
    char *tmp = malloc(plen + sizeof suffix);
    char *dir = parent_dir(path);
    if (!tmp || !dir) {
        incv3_fail(err, "%s: out of memory", path);
        goto out;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, suffix, sizeof suffix);
    /* Same directory as the destination, so the final rename is atomic and cannot cross filesystems. */
    fd = mkstemp(tmp);
    if (fd < 0) {
        incv3_fail(err, "%s: cannot create temporary file %s: %s", path, tmp, strerror(errno));
        goto out;
    }
    tmp_exists = 1;
    /* mkstemp creates 0600; a report should be readable like any other output file. */
    if (fchmod(fd, S_IRUSR | S_IWUSR | S_IRGRP | S_IROTH)) {
        incv3_fail(err, "%s: cannot set permissions on %s: %s", path, tmp, strerror(errno));
        goto out;
    }
    f = fdopen(fd, "w");
    if (!f) {
        incv3_fail(err, "%s: cannot open a stream on %s: %s", path, tmp, strerror(errno));
        goto out;
    }
    fd = -1; /* owned by f from here on */

    /* The callback reports into a private buffer so its text can be prefixed with the path. */
    incv3_error werr;
    werr.msg[0] = '\0';
    errno = 0;
    if (write_fn(f, ctx, &werr)) {
        int e = errno;
        if (werr.msg[0])
            incv3_fail(err, "%s: %s", path, werr.msg);
        else
            incv3_fail(err, "%s: writing the content failed%s%s", path, e ? ": " : "", e ? strerror(e) : "");
        goto out;
    }
    /* stdio buffers and defers errors: flush, then check the sticky error flag before trusting it. */
    if (fflush(f) || ferror(f)) {
        incv3_fail(err, "%s: writing %s failed: %s", path, tmp, strerror(errno));
        goto out;
    }
    /* Data must be on disk before the rename makes it visible, or a crash could leave a torn file. */
    if (fsync(fileno(f))) {
        incv3_fail(err, "%s: fsync failed: %s", path, strerror(errno));
        goto out;
    }
    FILE *cf = f;
    f = NULL;
    if (fclose(cf)) {
        incv3_fail(err, "%s: closing the temporary file failed: %s", path, strerror(errno));
        goto out;
    }
    /* Test hook (tests/test_kill_resume.sh): INCV3_TEST_SLOW_CHECKPOINT_MS=N sleeps N ms here, between the
     * complete temporary file and the rename, for .safetensors files, so that a kill lands inside a
     * checkpoint write more often. Not for production use. */
    const char *slow = getenv("INCV3_TEST_SLOW_CHECKPOINT_MS");
    if (slow && plen > 12 && strcmp(path + plen - 12, ".safetensors") == 0) {
        long ms = strtol(slow, NULL, 10);
        if (ms > 0 && ms <= 60000) {
            struct timespec ts = {ms / 1000, ms % 1000 * 1000000L};
            while (nanosleep(&ts, &ts) && errno == EINTR) {
            }
        }
    }
    if (rename(tmp, path)) {
        incv3_fail(err, "%s: cannot rename %s over it: %s", path, tmp, strerror(errno));
        goto out;
    }
    tmp_exists = 0; /* renamed: nothing left to clean up */

    /* Persist the directory entry; filesystems that cannot fsync a directory report EINVAL and are
     * accepted as they are. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        incv3_fail(err, "%s: written, but opening directory %s to sync it failed: %s", path, dir, strerror(errno));
        goto out;
    }
    if (fsync(dfd) && errno != EINVAL && errno != ENOTSUP) {
        incv3_fail(err, "%s: written, but syncing directory %s failed: %s", path, dir, strerror(errno));
        close(dfd);
        goto out;
    }
    close(dfd);
    rc = 0;

out:
    if (f)
        fclose(f);
    if (fd >= 0)
        close(fd);
    if (tmp_exists)
        unlink(tmp);
    free(tmp);
    free(dir);
    return rc;
}
