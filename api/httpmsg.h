/*
 * httpmsg.h - internal to api/: what http.c uses of httpmsg.c.
 */
#ifndef KILN_API_HTTPMSG_H
#define KILN_API_HTTPMSG_H

#include <stddef.h>

#include "util/util.h"

/* Percent-decodes s[0..n) into the arena; '+' becomes ' ' when plus_space.
 * NULL when the arena is out of memory. */
char *httpmsg_url_decode(arena *a, const char *s, size_t n, int plus_space);

#endif
