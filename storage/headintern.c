/*
 * headintern.c - the head's interned label strings: one copy of each
 * distinct name and value, in an arena, found through an open-addressing
 * table of pointers; series hold the copies, and the postings index is keyed
 * by their addresses.
 *
 * Called by head.c (series creation, matchers' lookups) alone, through
 * head_int.h.  Threading: under head.intern_lock (rank 5 of storage.h's
 * table), taken here.
 */
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "storage/head.h"
#include "storage/head_int.h"
#include "storage/lockrank.h"

static uint64_t hash_str(const char *s) {
    return XXH3_64bits(s, strlen(s));
}

/* The interned copy of s, or NULL; called with intern_lock held. */
static const char *intern_find_locked(head *h, const char *s, uint64_t hv) {
    if (!h->nistr_slots)
        return NULL;
    size_t mask = h->nistr_slots - 1;
    for (size_t i = hv & mask;; i = (i + 1) & mask) {
        const char *c = h->istr[i];
        if (!c)
            return NULL;
        if (strcmp(c, s) == 0)
            return c;
    }
}

const char *head_intern_find(head *h, const char *s) {
    uint64_t hv = hash_str(s);
    lockrank_mutex_lock(&h->intern_lock, LOCK_RANK_INTERN);
    const char *r = intern_find_locked(h, s, hv);
    lockrank_mutex_unlock(&h->intern_lock, LOCK_RANK_INTERN);
    return r;
}

KILN_MUST_CHECK static int intern_grow(head *h) {
    size_t ns = h->nistr_slots ? h->nistr_slots * 2 : 1024;
    const char **nv = calloc(ns, sizeof *nv);
    if (!nv)
        return KILN_ENOMEM;
    for (size_t i = 0; i < h->nistr_slots; i++) {
        const char *c = h->istr[i];
        if (!c)
            continue;
        size_t j = hash_str(c) & (ns - 1);
        while (nv[j])
            j = (j + 1) & (ns - 1);
        nv[j] = c;
    }
    free(h->istr);
    h->istr = nv;
    h->nistr_slots = ns;
    return 0;
}

/* The interned copy of s, made if needed, or NULL (out of memory); intern_lock held. */
static const char *intern_locked(head *h, const char *s, uint64_t hv) {
    const char *r = intern_find_locked(h, s, hv);
    if (r)
        return r;
    if ((h->nistr + 1) * 2 > h->nistr_slots && intern_grow(h) != 0)
        return NULL;
    size_t len = strlen(s);
    char *c = arena_alloc(&h->strings, len + 1);
    if (!c)
        return NULL;
    memcpy(c, s, len + 1);
    size_t mask = h->nistr_slots - 1, i = hv & mask;
    while (h->istr[i])
        i = (i + 1) & mask;
    h->istr[i] = c;
    h->nistr++;
    return c;
}

int head_intern_labels(head *h, const label *ls, size_t n, label *out) {
    int rc = 0;
    lockrank_mutex_lock(&h->intern_lock, LOCK_RANK_INTERN);
    for (size_t i = 0; i < n && rc == 0; i++) {
        const label *hi = i < h->nhint ? &h->hint[i] : NULL;
        out[i].name = hi && strcmp(hi->name, ls[i].name) == 0
                          ? hi->name
                          : intern_locked(h, ls[i].name, hash_str(ls[i].name));
        out[i].value = hi && strcmp(hi->value, ls[i].value) == 0
                           ? hi->value
                           : intern_locked(h, ls[i].value, hash_str(ls[i].value));
        if (!out[i].name || !out[i].value)
            rc = KILN_ENOMEM;
    }
    if (rc == 0) {
        h->nhint = n < HINT_LABELS ? n : HINT_LABELS;
        memcpy(h->hint, out, h->nhint * sizeof *out);
    }
    lockrank_mutex_unlock(&h->intern_lock, LOCK_RANK_INTERN);
    return rc;
}
