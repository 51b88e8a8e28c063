/*
 * arena.c - bump allocation for per-request and per-query memory.
 *
 * Blocks are chained newest first; an allocation larger than the default
 * block size gets a block of its own.  Everything is freed at once.
 *
 * Freed standard-size blocks go to a process-wide pool (up to 512 MB) that
 * every thread's arenas take from: a query allocates and frees hundreds of
 * MB of sample arrays, and memory handed back to the kernel costs a page
 * fault and a zeroed page per 4 KB on the next query (a third of a
 * dashboard query's time).  Like malloc itself it is process-wide state.
 * Sanitizer builds skip the pool so that use-after-free stays visible.
 *
 * The pool must not hold a large query's memory for good: when an arena of
 * ARENA_BIG bytes or more is freed (a large query's result), the pool is cut
 * to ARENA_POOL_KEEP and the heap trimmed (malloc_trim), so resident memory
 * falls back while the dashboards' usual queries, smaller, keep their pool.
 * A caller that knows a burst of work is over (the rule manager, when its
 * workers go idle) trims the pool itself with arena_pool_trim.
 *
 * Blocks are mapped (mmap), not malloc'd, outside sanitizer builds, so a
 * block dropped from the pool goes back to the system at once: a block
 * malloc'd at the top of a thread's heap became part of the heap's top
 * chunk when freed, which glibc trims only beyond its trim threshold
 * (raised to twice the largest mapped allocation freed, tens of MB once a
 * large remote write was decoded) and malloc_trim never trims in a thread's
 * heap: each rule worker kept 1.5-1.8 MB that way.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "util.h"

/* Standard blocks come in five sizes, 64 KiB to 1 MiB: an arena's first
 * block is the smallest and each next one twice the last, so a small arena
 * stays small and a big one uses few blocks.  An allocation larger than half
 * the next size gets a one-off block of its own. */
#define ARENA_CLASSES 5
#define ARENA_MIN_BLOCK (64 * 1024)
#define ARENA_MAX_BLOCK (ARENA_MIN_BLOCK << (ARENA_CLASSES - 1))

struct arena_block {
    arena_block *next;
    size_t used, cap;
    int cls; /* size class, or -1 for a one-off block */
    _Alignas(16) unsigned char data[];
};

#if defined(__SANITIZE_ADDRESS__)
#define ARENA_POOL_MAX 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ARENA_POOL_MAX 0
#endif
#endif
#ifndef ARENA_POOL_MAX
#define ARENA_POOL_MAX ((size_t)512 << 20) /* bytes */
#endif

/* An arena this large is a large query's; the pool's size after one is freed. */
#define ARENA_BIG ((size_t)32 << 20)
#define ARENA_POOL_KEEP ((size_t)16 << 20)

/* Sanitizer builds (no pool) malloc their blocks, for the sanitizer to watch. */
#define ARENA_MAPPED (ARENA_POOL_MAX > 0)

static void *block_alloc(size_t bytes) {
    if (!ARENA_MAPPED)
        return malloc(bytes);
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void block_free(arena_block *b) {
    if (ARENA_MAPPED)
        munmap(b, sizeof *b + b->cap);
    else
        free(b);
}

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static arena_block *pool_head[ARENA_CLASSES];
static size_t pool_bytes;

static arena_block *block_new(size_t cap, int cls) {
    if (cls >= 0 && ARENA_POOL_MAX > 0) {
        pthread_mutex_lock(&pool_mu);
        arena_block *b = pool_head[cls];
        if (b) {
            pool_head[cls] = b->next;
            pool_bytes -= b->cap;
        }
        pthread_mutex_unlock(&pool_mu);
        if (b)
            return b;
    }
    arena_block *b = block_alloc(sizeof *b + cap);
    if (b) {
        b->cap = cap;
        b->cls = cls;
    }
    return b;
}

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
        int cls = b && b->cls >= 0 ? (b->cls + 1 < ARENA_CLASSES ? b->cls + 1 : b->cls) : 0;
        size_t size = (size_t)ARENA_MIN_BLOCK << cls;
        int one_off = n > size / 2;
        arena_block *nb = block_new(one_off ? n : size, one_off ? -1 : cls);
        if (!nb)
            return NULL;
        nb->used = 0;
        if (b && one_off) {
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

void *arena_alloc_nz(arena *a, size_t n) {
    return alloc_raw(a, n);
}

char *arena_strndup(arena *a, const char *s, size_t n) {
    char *p = arena_alloc(a, n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

size_t arena_pool_bytes(void) {
    pthread_mutex_lock(&pool_mu);
    size_t n = pool_bytes;
    pthread_mutex_unlock(&pool_mu);
    return n;
}

void arena_pool_trim(size_t keep) {
    arena_block *drop = NULL;
    pthread_mutex_lock(&pool_mu);
    for (int cls = ARENA_CLASSES - 1; cls >= 0 && pool_bytes > keep; cls--) {
        while (pool_head[cls] && pool_bytes > keep) {
            arena_block *b = pool_head[cls];
            pool_head[cls] = b->next;
            pool_bytes -= b->cap;
            b->next = drop;
            drop = b;
        }
    }
    pthread_mutex_unlock(&pool_mu);
    while (drop) {
        arena_block *next = drop->next;
        block_free(drop);
        drop = next;
    }
    malloc_trim(0);
}

void arena_adopt(arena *dst, arena *src) {
    arena_block *first = src->head, *last = first;
    if (!first)
        return;
    while (last->next)
        last = last->next;
    if (dst->head) { /* dst keeps allocating from its current block */
        last->next = dst->head->next;
        dst->head->next = first;
    } else {
        dst->head = first;
    }
    dst->used_total += src->used_total;
    src->head = NULL;
    src->used_total = 0;
}

void arena_free(arena *a) {
    int big = a->used_total >= ARENA_BIG;
    arena_block *b = a->head;
    while (b) {
        arena_block *next = b->next;
        int pooled = 0;
        if (b->cls >= 0 && ARENA_POOL_MAX > 0) {
            pthread_mutex_lock(&pool_mu);
            if (pool_bytes + b->cap <= ARENA_POOL_MAX) {
                b->next = pool_head[b->cls];
                pool_head[b->cls] = b;
                pool_bytes += b->cap;
                pooled = 1;
            }
            pthread_mutex_unlock(&pool_mu);
        }
        if (!pooled)
            block_free(b);
        b = next;
    }
    a->head = NULL;
    a->used_total = 0;
    if (big)
        arena_pool_trim(ARENA_POOL_KEEP);
}
