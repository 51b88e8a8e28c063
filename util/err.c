/*
 * err.c - kiln_err: an error code with a message the user can read, and
 * the codes' names.  Used everywhere; a kiln_err belongs to its caller's
 * thread.
 */
#include <stdio.h>
#include <string.h>

#include "util.h"

int kiln_err_set(kiln_err *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

void kiln_err_prefix(kiln_err *err, const char *fmt, ...) {
    if (!err)
        return;
    char pre[KILN_ERR_MSG_MAX], old[KILN_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    size_t pl = strlen(pre);
    if (pl > sizeof err->msg - 3)
        pl = sizeof err->msg - 3;
    memcpy(err->msg, pre, pl);
    memcpy(err->msg + pl, ": ", 2);
    size_t room = sizeof err->msg - pl - 3;
    size_t ol = strnlen(old, room);
    memcpy(err->msg + pl + 2, old, ol);
    err->msg[pl + 2 + ol] = 0;
}

const char *kiln_strerror(int code) {
    /* indexed by -code: KILN_OK, KILN_EINVAL, ... KILN_EORDER in util.h's order */
    static const char *const names[] = {
        "ok",           "invalid argument", "out of memory", "i/o error",      "not found",
        "out of range", "already exists",   "corrupt data",  "limit exceeded", "busy",
        "canceled",     "timeout",          "out of order"};
    _Static_assert(sizeof names / sizeof *names == 1 - KILN_EORDER, "one name for each KILN_E* code");
    if (code > 0 || code < KILN_EORDER)
        return "unknown error";
    return names[-code];
}
