/*
 * strtab.c - the string -> pointer table of strtab.h: FNV-1a hashing,
 * chained buckets doubled as the table fills.
 *
 * Called by yamltree.c (anchors) and schema.c (relabel regexes) while a
 * document loads.  Threading: none.
 */
#include <stdlib.h>
#include <string.h>

#include "config/strtab.h"

struct strtab_entry {
    strtab_entry *next;
    const char *key;
    void *val;
};

static size_t hash_str(const char *s) {
    size_t h = (size_t)1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * (size_t)1099511628211ull;
    return h;
}

void strtab_init(strtab *t, arena *a) {
    memset(t, 0, sizeof *t);
    t->a = a;
}

int strtab_put(strtab *t, const char *key, void *val) {
    if (t->n >= t->nbuckets) {
        size_t nb = t->nbuckets ? t->nbuckets * 2 : 64;
        strtab_entry **b = calloc(nb, sizeof *b);
        if (!b)
            return KILN_ENOMEM;
        for (size_t i = 0; i < t->nbuckets; i++) {
            strtab_entry *e = t->buckets[i];
            while (e) {
                strtab_entry *next = e->next;
                size_t h = hash_str(e->key) & (nb - 1);
                e->next = b[h];
                b[h] = e;
                e = next;
            }
        }
        free(t->buckets);
        t->buckets = b;
        t->nbuckets = nb;
    }
    strtab_entry *e = arena_alloc(t->a, sizeof *e);
    if (!e)
        return KILN_ENOMEM;
    size_t h = hash_str(key) & (t->nbuckets - 1);
    e->key = key;
    e->val = val;
    e->next = t->buckets[h];
    t->buckets[h] = e;
    t->n++;
    return 0;
}

void *strtab_get(const strtab *t, const char *key) {
    if (!t->nbuckets)
        return NULL;
    for (strtab_entry *e = t->buckets[hash_str(key) & (t->nbuckets - 1)]; e; e = e->next)
        if (strcmp(e->key, key) == 0)
            return e->val;
    return NULL;
}

void strtab_free(strtab *t) {
    free(t->buckets);
    t->buckets = NULL;
    t->nbuckets = t->n = 0;
}
