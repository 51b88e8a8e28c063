/*
 * strtab.h - private to config/: a table from strings to pointers, for the
 * YAML builder's anchors (yamltree.c) and the relabel regexes shared by
 * text (schema.c).
 *
 * Chained buckets, a power of two of them, doubled when the entries
 * outnumber them; a key put again shadows the older entry (newest first).
 * Entries come from the arena given to strtab_init; the bucket array is
 * malloc'd and freed by strtab_free.  Keys are borrowed: each must live as
 * long as the table.
 *
 * Threading: none; one table belongs to one load.
 */
#ifndef KILN_CONFIG_STRTAB_H
#define KILN_CONFIG_STRTAB_H

#include <stddef.h>

#include "util/util.h"

typedef struct strtab_entry strtab_entry;

typedef struct strtab {
    strtab_entry **buckets;
    size_t nbuckets, n;
    arena *a;
} strtab;

void strtab_init(strtab *t, arena *a);

/* Maps key to val (key borrowed).  0 or KILN_ENOMEM. */
KILN_MUST_CHECK int strtab_put(strtab *t, const char *key, void *val);

/* The value last put for key, or NULL. */
void *strtab_get(const strtab *t, const char *key);

/* Frees the buckets (the entries go with the arena). */
void strtab_free(strtab *t);

#endif
