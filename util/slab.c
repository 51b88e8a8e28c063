/*
 * slab.c - memory for the head's many small, long-lived objects: its series
 * and the byte arrays of their open chunks.
 *
 * Objects are rounded up to a multiple of 16 bytes; each size has pages of
 * 16 KiB holding objects of that size alone, carved from the front and
 * reused through a free list per page.  A page whose objects are all freed
 * goes back to a common list and may serve another size next: when 100,000
 * series move their chunks from one size to the next at the same moment
 * (they are scraped together), the pages of the old size empty and are taken
 * for the new one.
 *
 * Pages come from regions of 64 MiB, aligned to their size and advised for
 * huge pages.  Appending touches a different series and chunk for every
 * sample; with 4 KiB pages most of those touches missed the TLB, and page
 * faults were a tenth of a replay.  A region's first pages hold the
 * descriptors of the others, so an object carries no header and finding its
 * page is arithmetic.  Regions fill from the front and become resident as
 * they fill.
 *
 * Faulting a huge page in costs a few milliseconds on a virtual machine
 * whose host must back it first (about a third of creating 100,000 series
 * at replay).  A thread of the slab's own keeps the next two huge pages of
 * the region resident ahead of the front (MADV_POPULATE_WRITE, which never
 * changes memory already there), so the threads that allocate do not wait
 * for it.
 *
 * slab_trim gives the system the empty pages and those populated ahead,
 * when allocating has paused for a while (the end of a replay).
 *
 * Sizes above SLAB_MAX go to malloc; the caller passes the size it asked for
 * to slab_free and slab_realloc, which is how they tell the two apart.
 *
 * Threading: one mutex; the head takes it once per series created and a few
 * times per chunk of 120 samples.  Under AddressSanitizer freed objects are
 * poisoned until they are handed out again.
 */
#include "util/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#if defined(__SANITIZE_ADDRESS__)
#define SLAB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLAB_ASAN 1
#endif
#endif
#ifdef SLAB_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define GRAIN 16
#define NCLASS (SLAB_MAX / GRAIN + 1)
#define PAGE SLAB_PAGE
#define REGION ((size_t)64 << 20)
#define NPAGES (REGION / PAGE)
#define EMPTY_KEEP 256 /* empty pages kept resident (4 MiB); more go back to the system */
#define HUGE ((size_t)2 << 20)
#define AHEAD (2 * HUGE) /* populated ahead of the front */

typedef struct pfree {
    struct pfree *next;
} pfree;

typedef struct page {
    struct page *prev, *next; /* in its size's list of pages with room, or the empty list */
    pfree *free;              /* objects freed */
    uint32_t used;            /* objects handed out */
    uint32_t carved;          /* objects carved from the front */
    uint32_t size;            /* of its objects; 0 when empty */
} page;

typedef struct region {
    page pages[NPAGES];
} region;

/* The first pages of a region hold its descriptors. */
#define FIRST_PAGE ((sizeof(region) + PAGE - 1) / PAGE)

static struct {
    pthread_mutex_t mu;
    page *room[NCLASS]; /* pages with room, by size */
    page *empty;        /* pages with no object, resident */
    page *released;     /* pages with no object, given back to the system */
    size_t nempty, nreleased;
    region *cur; /* the region being carved */
    size_t next; /* its next unused page */
    size_t regions, carved, bytes;
    /* the populating thread's work, also under mu */
    int pf_state;           /* 0: not started; 1: running; -1: unavailable */
    pthread_cond_t pf_cv;   /* work for it, or it went idle */
    uint8_t *pf_lo, *pf_hi; /* asked for and not taken yet */
    uint8_t *pf_upto;       /* asked for up to, in the current region */
    int pf_busy;
} slab = {.mu = PTHREAD_MUTEX_INITIALIZER, .pf_cv = PTHREAD_COND_INITIALIZER};

size_t slab_size(size_t n) {
    return n == 0 ? GRAIN : n <= SLAB_MAX ? (n + GRAIN - 1) / GRAIN * GRAIN : n;
}

static region *region_of(const void *p) {
    return (region *)((uintptr_t)p & ~(uintptr_t)(REGION - 1));
}

static uint8_t *page_base(page *pg) {
    region *r = region_of(pg);
    return (uint8_t *)r + (size_t)(pg - r->pages) * PAGE;
}

static page *page_of(const void *p) {
    region *r = region_of(p);
    return &r->pages[((uintptr_t)p - (uintptr_t)r) / PAGE];
}

static void list_push(page **head, page *pg) {
    DLIST_PUSH(head, pg);
}

static void list_remove(page **head, page *pg) {
    DLIST_UNLINK(head, pg);
    pg->prev = pg->next = NULL;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

static void *populate_main(void *arg) {
    (void)arg;
    pthread_mutex_lock(&slab.mu);
    for (;;) {
        slab.pf_busy = 0;
        pthread_cond_broadcast(&slab.pf_cv);
        while (!slab.pf_lo)
            pthread_cond_wait(&slab.pf_cv, &slab.mu);
        uint8_t *p = slab.pf_lo;
        /* a huge page at a time: the front may move on to another range meanwhile */
        slab.pf_lo = p + HUGE < slab.pf_hi ? p + HUGE : NULL;
        slab.pf_busy = 1;
        pthread_mutex_unlock(&slab.mu);
        int rc = madvise(p, HUGE, MADV_POPULATE_WRITE);
        pthread_mutex_lock(&slab.mu);
        if (rc != 0 && errno == EINVAL) { /* an older kernel: go without */
            slab.pf_state = -1;
            slab.pf_lo = NULL;
            slab.pf_busy = 0;
            pthread_cond_broadcast(&slab.pf_cv);
            pthread_mutex_unlock(&slab.mu);
            return NULL;
        }
    }
}

/* The front of the current region is now at `front`: asks for what follows
 * it to be populated.  Lock held. */
static void populate_ahead(uint8_t *front) {
    uint8_t *end = (uint8_t *)slab.cur + REGION;
    uint8_t *lo = (uint8_t *)(((uintptr_t)front + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
    uint8_t *hi = lo + AHEAD < end ? lo + AHEAD : end;
    if (slab.pf_upto > lo)
        lo = slab.pf_upto;
    if (lo >= hi || slab.pf_state < 0)
        return;
    if (slab.pf_state == 0) {
        pthread_t th;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        slab.pf_state = pthread_create(&th, &at, populate_main, NULL) == 0 ? 1 : -1;
        pthread_attr_destroy(&at);
        if (slab.pf_state < 0)
            return;
    }
    if (!slab.pf_lo || slab.pf_hi != lo)
        slab.pf_lo = lo; /* what was asked before and is behind now does not matter */
    slab.pf_hi = hi;
    slab.pf_upto = hi;
    pthread_cond_broadcast(&slab.pf_cv);
}

void slab_populate_wait(void) {
    pthread_mutex_lock(&slab.mu);
    while (slab.pf_state > 0 && (slab.pf_lo || slab.pf_busy))
        pthread_cond_wait(&slab.pf_cv, &slab.mu);
    pthread_mutex_unlock(&slab.mu);
}

/* A region aligned to its size; lock held. */
static region *region_new(void) {
    uint8_t *p =
        mmap(NULL, 2 * REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    uint8_t *a = (uint8_t *)(((uintptr_t)p + REGION - 1) & ~(uintptr_t)(REGION - 1));
    if (a > p)
        munmap(p, (size_t)(a - p));
    if (p + 2 * REGION > a + REGION)
        munmap(a + REGION, (size_t)(p + 2 * REGION - (a + REGION)));
    madvise(a, REGION, MADV_HUGEPAGE); /* a hint: without it, ordinary pages */
    POISON(a + FIRST_PAGE * PAGE, REGION - FIRST_PAGE * PAGE);
    return (region *)a; /* the descriptors are zero: mapped anonymous */
}

/* A page for objects of sz bytes; lock held. */
static page *page_take(size_t sz) {
    page *pg = slab.empty ? slab.empty : slab.released;
    if (pg == slab.empty && pg) {
        list_remove(&slab.empty, pg);
        slab.nempty--;
    } else if (pg) {
        list_remove(&slab.released, pg);
        slab.nreleased--;
    } else {
        if (!slab.cur || slab.next == NPAGES) {
            region *r = region_new();
            if (!r)
                return NULL;
            slab.cur = r;
            slab.next = FIRST_PAGE;
            slab.regions++;
            slab.pf_upto = NULL;
        }
        pg = &slab.cur->pages[slab.next++];
        slab.carved++;
        populate_ahead(page_base(pg) + PAGE);
    }
    pg->free = NULL;
    pg->used = pg->carved = 0;
    pg->size = (uint32_t)sz;
    list_push(&slab.room[sz / GRAIN], pg);
    return pg;
}

void *slab_alloc(size_t n) {
    size_t sz = slab_size(n);
    if (sz > SLAB_MAX)
        return malloc(sz);
    pthread_mutex_lock(&slab.mu);
    page *pg = slab.room[sz / GRAIN];
    if (!pg && !(pg = page_take(sz))) {
        pthread_mutex_unlock(&slab.mu);
        return NULL;
    }
    void *p;
    if (pg->free) {
        pfree *f = pg->free;
        UNPOISON(f, sz);
        pg->free = f->next;
        p = f;
    } else {
        p = page_base(pg) + (size_t)pg->carved++ * sz;
        UNPOISON(p, sz);
    }
    pg->used++;
    slab.bytes += sz;
    if (!pg->free && (size_t)(pg->carved + 1) * sz > PAGE)
        list_remove(&slab.room[sz / GRAIN], pg); /* full */
    pthread_mutex_unlock(&slab.mu);
    return p;
}

void slab_free(void *p, size_t n) {
    if (!p)
        return;
    size_t sz = slab_size(n);
    if (sz > SLAB_MAX) {
        free(p);
        return;
    }
    pthread_mutex_lock(&slab.mu);
    page *pg = page_of(p);
    int was_full = !pg->free && (size_t)(pg->carved + 1) * pg->size > PAGE;
    pfree *f = p;
    slab.bytes -= pg->size;
    f->next = pg->free;
    pg->free = f;
    POISON((uint8_t *)p + sizeof *f, pg->size - sizeof *f);
    if (was_full)
        list_push(&slab.room[pg->size / GRAIN], pg);
    if (--pg->used == 0) {
        list_remove(&slab.room[pg->size / GRAIN], pg);
        pg->size = 0;
        if (slab.nempty < EMPTY_KEEP) {
            list_push(&slab.empty, pg);
            slab.nempty++;
        } else {
            /* the system may take it back (the next use faults it in, zeroed) */
            madvise(page_base(pg), PAGE, MADV_DONTNEED);
            POISON(page_base(pg), PAGE);
            list_push(&slab.released, pg);
            slab.nreleased++;
        }
    }
    pthread_mutex_unlock(&slab.mu);
}

void slab_trim(void) {
    pthread_mutex_lock(&slab.mu);
    slab.pf_lo = NULL; /* nothing more populated ahead now; then none populating */
    while (slab.pf_busy)
        pthread_cond_wait(&slab.pf_cv, &slab.mu);
    while (slab.empty) {
        page *pg = slab.empty;
        list_remove(&slab.empty, pg);
        slab.nempty--;
        madvise(page_base(pg), PAGE, MADV_DONTNEED);
        POISON(page_base(pg), PAGE);
        list_push(&slab.released, pg);
        slab.nreleased++;
    }
    if (slab.cur && slab.next < NPAGES) {
        uint8_t *front = page_base(&slab.cur->pages[slab.next]);
        if (slab.pf_upto > front)
            madvise(front, (size_t)(slab.pf_upto - front), MADV_DONTNEED);
        slab.pf_upto = NULL; /* the next page taken asks for its huge pages again */
    }
    pthread_mutex_unlock(&slab.mu);
}

void slab_get_stats(slab_stats *st) {
    pthread_mutex_lock(&slab.mu);
    st->regions = slab.regions;
    st->pages = slab.carved;
    st->empty = slab.nempty;
    st->released = slab.nreleased;
    st->bytes = slab.bytes;
    pthread_mutex_unlock(&slab.mu);
}

void *slab_realloc(void *p, size_t old, size_t n) {
    if (!p)
        return slab_alloc(n);
    size_t so = slab_size(old), sn = slab_size(n);
    if (so == sn)
        return p;
    if (so > SLAB_MAX && sn > SLAB_MAX)
        return realloc(p, sn);
    void *q = slab_alloc(n);
    if (!q)
        return NULL;
    memcpy(q, p, so < sn ? so : sn);
    slab_free(p, old);
    return q;
}
