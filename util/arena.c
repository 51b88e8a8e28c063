/*
 * arena.c - bump allocation for per-request and per-query memory.
 *
 * Blocks are chained newest first; an allocation larger than the default
 * block size gets a block of its own.  Everything is freed at once.
 */
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define ARENA_BLOCK_SIZE (64 * 1024)

struct arena_block {
    arena_block *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

void arena_init(arena *a, size_t limit) {
    a->head = NULL;
    a->used_total = 0;
    a->limit = limit;
}

static void *alloc_raw(arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (n == 0)
        n = 16;
    if (a->limit && (n > a->limit || a->used_total > a->limit - n))
        return NULL;
    arena_block *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > ARENA_BLOCK_SIZE / 2 ? n : ARENA_BLOCK_SIZE;
        arena_block *nb = malloc(sizeof *nb + cap);
        if (!nb)
            return NULL;
        nb->used = 0;
        nb->cap = cap;
        if (b && cap != ARENA_BLOCK_SIZE) {
            /* a big one-off block goes behind the current one so the
             * current block's free space stays usable */
            nb->next = b->next;
            b->next = nb;
        } else {
            nb->next = b;
            a->head = nb;
        }
        b = nb;
    }
    void *p = b->data + b->used;
    b->used += n;
    a->used_total += n;
    return p;
}

void *arena_alloc(arena *a, size_t n) {
    void *p = alloc_raw(a, n);
    if (p)
        memset(p, 0, (n + 15) & ~(size_t)15);
    return p;
}

void *arena_alloc_nz(arena *a, size_t n) { return alloc_raw(a, n); }

char *arena_strndup(arena *a, const char *s, size_t n) {
    char *p = arena_alloc(a, n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

void arena_free(arena *a) {
    arena_block *b = a->head;
    while (b) {
        arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->used_total = 0;
}
