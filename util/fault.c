/*
 * fault.c - fault injection for the file operations of the storage: every
 * write(2), fsync(2), rename(2), mmap(2) and open(2) of a file the storage
 * writes goes through fault_write, fault_fsync, ... here, which call the
 * system unless a test armed a failure for that operation.
 *
 * A failure is armed with fault_arm (unit tests) or, for the real binary,
 * the environment variable KILN_FAULTS read once at the first operation:
 *   KILN_FAULTS="write:120:1:ENOSPC,fsync:3:-1:EIO"
 * = the 121st write fails once with ENOSPC, every fsync from the 4th on
 * fails with EIO.  An armed write that would write n > 1 bytes first
 * writes n/2 of them and returns n/2 (a short write, as a filling disk
 * gives), and fails on the next call: the caller's retry loop meets the
 * error with half its record on disk, which is what recovery must handle.
 *
 * Cost when nothing is armed: one relaxed atomic load per operation.
 * Threading: any thread; the counters are atomics.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util/util.h"

typedef struct fault_slot {
    atomic_long skip;  /* successful calls still to let through */
    atomic_long count; /* failures still to give; -1: every call */
    atomic_int err;    /* errno of a failure */
    atomic_int short_done;
} fault_slot;

static fault_slot slots[FAULT_NOPS];
static atomic_int armed;     /* any slot armed */
static atomic_int env_state; /* 0: KILN_FAULTS not read yet, 1: read */
static atomic_long failures;

static const char *const op_names[FAULT_NOPS] = {"write", "fsync", "rename", "mmap", "open"};

static const struct {
    const char *name;
    int e;
} errnos[] = {{"ENOSPC", ENOSPC}, {"EIO", EIO}, {"EDQUOT", EDQUOT}, {"EROFS", EROFS}, {"ENOMEM", ENOMEM}};

void fault_arm(fault_op op, long skip, long count, int e) {
    if ((unsigned)op >= FAULT_NOPS)
        return;
    atomic_store(&slots[op].skip, skip < 0 ? 0 : skip);
    atomic_store(&slots[op].err, e ? e : EIO);
    atomic_store(&slots[op].short_done, 0);
    atomic_store(&slots[op].count, count);
    atomic_store(&armed, 1);
}

void fault_disarm_all(void) {
    for (int i = 0; i < FAULT_NOPS; i++)
        atomic_store(&slots[i].count, 0);
    atomic_store(&armed, 0);
}

long fault_failures(void) {
    return atomic_load(&failures);
}

int fault_parse(const char *spec, kiln_err *err) {
    char tmp[512];
    if (strlen(spec) >= sizeof tmp)
        return kiln_err_set(err, KILN_EINVAL, "KILN_FAULTS: too long");
    strcpy(tmp, spec);
    char *save = NULL;
    for (char *item = strtok_r(tmp, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char op[16], ename[16];
        long skip, count;
        if (sscanf(item, "%15[a-z]:%ld:%ld:%15[A-Z]", op, &skip, &count, ename) != 4)
            return kiln_err_set(err, KILN_EINVAL, "KILN_FAULTS: \"%s\" is not op:skip:count:ERRNO", item);
        int o = -1, e = 0;
        for (int i = 0; i < FAULT_NOPS; i++)
            if (!strcmp(op, op_names[i]))
                o = i;
        for (size_t i = 0; i < sizeof errnos / sizeof errnos[0]; i++)
            if (!strcmp(ename, errnos[i].name))
                e = errnos[i].e;
        if (o < 0 || !e)
            return kiln_err_set(err, KILN_EINVAL, "KILN_FAULTS: unknown operation or errno in \"%s\"", item);
        fault_arm((fault_op)o, skip, count, e);
    }
    return 0;
}

static void read_env(void) {
    int expected = 0;
    if (!atomic_compare_exchange_strong(&env_state, &expected, 1))
        return;
    const char *s = getenv("KILN_FAULTS");
    if (!s || !*s)
        return;
    kiln_err err = {0};
    if (fault_parse(s, &err) != 0)
        LOG_ERROR("ignoring KILN_FAULTS", "err=%s", err.msg);
    else
        LOG_WARN("fault injection armed", "spec=%s", s);
}

/* The errno the call must fail with, or 0 to let it through. */
static int should_fail(fault_op op) {
    if (atomic_load_explicit(&env_state, memory_order_relaxed) == 0)
        read_env();
    if (!atomic_load_explicit(&armed, memory_order_relaxed))
        return 0;
    fault_slot *s = &slots[op];
    if (atomic_load(&s->count) == 0)
        return 0;
    if (atomic_fetch_sub(&s->skip, 1) > 0)
        return 0;
    atomic_store(&s->skip, 0);
    long c = atomic_load(&s->count);
    while (c != 0) {
        if (c < 0 || atomic_compare_exchange_weak(&s->count, &c, c - 1)) {
            atomic_fetch_add(&failures, 1);
            return atomic_load(&s->err);
        }
    }
    return 0;
}

ssize_t fault_write(int fd, const void *p, size_t n) {
    int e = should_fail(FAULT_WRITE);
    if (!e)
        return write(fd, p, n);
    fault_slot *s = &slots[FAULT_WRITE];
    if (n > 1 && !atomic_exchange(&s->short_done, 1)) {
        /* half now, the error on the next call (which counts as this failure) */
        long c = atomic_load(&s->count);
        if (c >= 0)
            atomic_fetch_add(&s->count, 1);
        atomic_fetch_sub(&failures, 1);
        return write(fd, p, n / 2);
    }
    atomic_store(&s->short_done, 0);
    errno = e;
    return -1;
}

int fault_fsync(int fd) {
    int e = should_fail(FAULT_FSYNC);
    if (!e)
        return fsync(fd);
    errno = e;
    return -1;
}

int fault_rename(const char *from, const char *to) {
    int e = should_fail(FAULT_RENAME);
    if (!e)
        return rename(from, to);
    errno = e;
    return -1;
}

void *fault_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    int e = should_fail(FAULT_MMAP);
    if (!e)
        return mmap(addr, len, prot, flags, fd, off);
    errno = e;
    return MAP_FAILED;
}

int fault_open(const char *path, int flags, int mode) {
    int e = should_fail(FAULT_OPEN);
    if (!e)
        return open(path, flags, mode);
    errno = e;
    return -1;
}
