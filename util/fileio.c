/*
 * fileio.c - the few file-system operations several subsystems need: making
 * a directory tree, removing one, making a directory's entries durable, and
 * writing a whole file.  Each reports failure (no error is dropped: an fsync
 * that fails means the data may not be on disk, and the caller must know).
 *
 * Threading: any thread; nothing is shared.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/util.h"

int fileio_mkdir_p(const char *path, kiln_err *err) {
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp)
        return kiln_err_set(err, KILN_EINVAL, "bad directory path \"%s\"", path);
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
            return kiln_err_set(err, KILN_EIO, "mkdir %s: %s", tmp, strerror(errno));
        *p = '/';
    }
    if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
        return kiln_err_set(err, KILN_EIO, "mkdir %s: %s", tmp, strerror(errno));
    return 0;
}

int fileio_rm_rf(const char *path, kiln_err *err) {
    DIR *d = opendir(path);
    if (!d) {
        if (errno == ENOENT || ((errno == ENOTDIR) && (unlink(path) == 0 || errno == ENOENT)))
            return 0;
        return kiln_err_set(err, KILN_EIO, "remove %s: %s", path, strerror(errno));
    }
    int rc = 0;
    struct dirent *e;
    char p[4096];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if ((size_t)snprintf(p, sizeof p, "%s/%s", path, e->d_name) >= sizeof p) {
            rc = kiln_err_set(err, KILN_EINVAL, "remove %s/%s: path too long", path, e->d_name);
            break;
        }
        rc = fileio_rm_rf(p, err);
        if (rc)
            break;
    }
    closedir(d);
    if (rc)
        return rc;
    if (rmdir(path) != 0 && errno != ENOENT)
        return kiln_err_set(err, KILN_EIO, "remove %s: %s", path, strerror(errno));
    return 0;
}

int fileio_fsync_dir(const char *path, kiln_err *err) {
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return kiln_err_set(err, KILN_EIO, "open directory %s: %s", path, strerror(errno));
    int rc = 0;
    if (fault_fsync(fd) != 0)
        rc = kiln_err_set(err, KILN_EIO, "fsync directory %s: %s", path, strerror(errno));
    close(fd);
    return rc;
}

int fileio_write_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n) {
        ssize_t w = fault_write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        if (w == 0) {
            errno = ENOSPC;
            return -1;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

int fileio_write_file(const char *path, const void *p, size_t n, kiln_err *err) {
    int fd = fault_open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return kiln_err_set(err, KILN_EIO, "create %s: %s", path, strerror(errno));
    if (fileio_write_all(fd, p, n) != 0 || fault_fsync(fd) != 0) {
        int e = errno;
        close(fd);
        return kiln_err_set(err, KILN_EIO, "write %s: %s", path, strerror(e));
    }
    if (close(fd) != 0)
        return kiln_err_set(err, KILN_EIO, "close %s: %s", path, strerror(errno));
    return 0;
}
