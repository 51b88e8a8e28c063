/*
 * err.c - kiln_err: an error code with a message the user can read.
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
    switch (code) {
    case KILN_OK:
        return "ok";
    case KILN_EINVAL:
        return "invalid argument";
    case KILN_ENOMEM:
        return "out of memory";
    case KILN_EIO:
        return "i/o error";
    case KILN_ENOENT:
        return "not found";
    case KILN_ERANGE:
        return "out of range";
    case KILN_EEXIST:
        return "already exists";
    case KILN_ECORRUPT:
        return "corrupt data";
    case KILN_ELIMIT:
        return "limit exceeded";
    case KILN_EBUSY:
        return "busy";
    case KILN_ECANCELED:
        return "canceled";
    case KILN_ETIMEOUT:
        return "timeout";
    case KILN_EORDER:
        return "out of order";
    default:
        return "unknown error";
    }
}
