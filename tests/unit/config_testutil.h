/*
 * config_testutil.h - what the config/ unit tests (test_config.c,
 * test_config_errors.c) share: loading a document that must load.
 */
#ifndef KILN_CONFIG_TESTUTIL_H
#define KILN_CONFIG_TESTUTIL_H

#include <check.h>
#include <string.h>

#include "config/config.h"

/* Loads yaml as "kiln.yml"; the test fails with the error when it does not load. */
static inline config *load_ok(const char *yaml) {
    config *c = NULL;
    kiln_err err = {0};
    int rc = config_load_string("kiln.yml", yaml, strlen(yaml), &c, &err);
    ck_assert_msg(rc == 0, "load failed: %s\n--\n%s", err.msg, yaml);
    ck_assert_ptr_nonnull(c);
    return c;
}

#endif
