/*
 * query_testutil.h - what the query/ unit tests (test_query.c,
 * test_query_limits.c) share: a storage in a temporary directory that a
 * fixture opens and removes.
 */
#ifndef KILN_QUERY_TESTUTIL_H
#define KILN_QUERY_TESTUTIL_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "storage/storage.h"

/* Opens a new storage under a fresh /tmp/kiln-test-<tag>-XXXXXX, whose
 * name goes to dir (64 bytes); fails the test when it cannot. */
static inline storage *qt_open(char dir[64], const char *tag) {
    snprintf(dir, 64, "/tmp/kiln-test-%s-XXXXXX", tag);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    storage_opts o = storage_opts_default();
    o.dir = dir;
    kiln_err err = {0};
    storage *st = NULL;
    ck_assert_msg(storage_open(&o, &st, &err) == 0, "open: %s", err.msg);
    return st;
}

/* Closes st and removes dir. */
static inline void qt_close(storage *st, const char *dir) {
    kiln_err err = {0};
    ck_assert_msg(storage_close(st, &err) == 0, "close: %s", err.msg);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

#endif
